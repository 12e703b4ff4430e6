//! Replay over real loopback sockets (PROTOCOL.md §5.6, §13.3): an on-path attacker records
//! every datagram a client sends and replays them, during the session, from another address,
//! and after the session into a fresh one; and replays a resumed client's 0-RTT flight. Nothing
//! is delivered twice, no second session is established, 0-RTT data is accepted at most once.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is a test failure

mod adversary;

use std::sync::atomic::Ordering;
use std::time::Duration;

use adversary::{echo, echo_server, guard, host, lock, pattern, pinned_pair, wire, Dir, Proxy};
use jsp::Endpoint;
use jsp_proto::wire::header::PacketType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn to_server(p: &Proxy) -> Vec<Vec<u8>> {
    p.captured()
        .into_iter()
        .filter(|(d, _)| *d == Dir::ToServer)
        .map(|(_, b)| b)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_datagrams_and_handshakes_deliver_nothing_twice_and_start_no_session() {
    let (mut cfg, client) = pinned_pair();
    cfg.transport.handshake_timeout = Duration::from_secs(2);
    let ep = Endpoint::server(adversary::loopback(), cfg).unwrap();
    let seen = echo_server(&ep);
    let proxy = Proxy::start(ep.local_addr()).await;
    let cep = Endpoint::client(host(2)).unwrap();
    let conn = guard("connect", cep.connect(proxy.addr, client))
        .await
        .unwrap();
    let messages: Vec<Vec<u8>> = (0..20u64).map(|i| pattern(4096 + i as usize, i)).collect();
    for m in &messages {
        assert!(guard("echo", echo(&conn, m)).await.unwrap() == *m);
    }
    for i in 0..20u8 {
        conn.send_datagram(&[0xd0, i]).unwrap();
        guard("datagram echo", conn.read_datagram()).await.unwrap();
    }
    let recorded = to_server(&proxy);
    let (mut short, mut long) = (0, 0);
    for d in &recorded {
        match wire::packets(d).first().map(|p| p.ty) {
            Some(PacketType::OneRtt) => short += 1,
            Some(_) => long += 1,
            None => {}
        }
    }
    assert!(
        short > 40 && long >= 2,
        "recorded {short} 1-RTT and {long} long datagrams"
    );

    // 1. Replay everything during the session, from the client's address and from another one.
    let other = tokio::net::UdpSocket::bind(host(77)).await.unwrap();
    for d in &recorded {
        proxy.inject_to_server(d).await;
        other.send_to(d, ep.local_addr()).await.unwrap();
    }
    // The same connection still works; its next echo is queued behind the replays.
    let last = pattern(10_000, 77);
    assert!(
        guard("echo after replay", echo(&conn, &last))
            .await
            .unwrap()
            == last
    );
    for m in &messages {
        assert_eq!(seen.count(m), 1, "a message was delivered twice");
    }
    let dgrams = lock(&seen.datagrams).clone();
    for i in 0..20u8 {
        assert_eq!(
            dgrams.iter().filter(|d| **d == [0xd0, i]).count(),
            1,
            "datagram {i}"
        );
    }
    assert_eq!(
        seen.established.load(Ordering::SeqCst),
        1,
        "no second session"
    );
    // Nothing went back to the other address but what its replayed ClientHello earns (a new
    // handshake that can never complete: the replayer has no keys).
    let other_got = adversary::drain(&other, 10_000).await;
    let other_sent: u64 = recorded.iter().map(|d| d.len() as u64).sum();
    let other_bytes: u64 = other_got.iter().map(|d| d.len() as u64).sum();
    assert!(other_bytes <= 3 * other_sent);

    // 2. After the session: replay the whole recording into a fresh session.
    conn.close(jsp::CloseReason::Normal, None);
    guard("closed", conn.closed()).await;
    for d in &recorded {
        proxy.inject_to_server(d).await;
    }
    // Whatever the replayed ClientHello started times out: no second session, no data.
    guard("replayed handshakes expire", async {
        while ep.connection_count() > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let stats = ep.stats();
    eprintln!(
        "replay: {} datagrams recorded ({short} 1-RTT, {long} long), replayed 3 times; server {stats:?}; failures {:?}",
        recorded.len(),
        lock(&seen.failures)
    );
    assert_eq!(
        seen.established.load(Ordering::SeqCst),
        1,
        "no second session"
    );
    for m in &messages {
        assert_eq!(seen.count(m), 1, "a message was delivered twice");
    }
    assert_eq!(lock(&seen.messages).len(), messages.len() + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_0rtt_flight_is_not_accepted_twice() {
    let (mut cfg, client) = pinned_pair();
    cfg.transport.handshake_timeout = Duration::from_secs(2);
    let ep = Endpoint::server(adversary::loopback(), cfg).unwrap();
    let seen = echo_server(&ep);
    let cep = Endpoint::client(host(2)).unwrap();
    let first = guard(
        "first session",
        cep.connect(ep.local_addr(), client.clone()),
    )
    .await
    .unwrap();
    let ticket = guard("ticket", first.wait_session_ticket()).await.unwrap();
    first.close(jsp::CloseReason::Normal, None);

    // The resumed session sends its request as 0-RTT through the attacker's proxy. The proxy
    // holds back the server's answers until a 0-RTT packet went by, so the request cannot
    // race the handshake into 1-RTT on a fast or a loaded machine (the server retransmits).
    let saw_0rtt = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = saw_0rtt.clone();
    let proxy = Proxy::with_hook(
        ep.local_addr(),
        Box::new(move |dir, d| {
            if dir == Dir::ToServer && wire::packets(d).iter().any(|p| p.ty == PacketType::ZeroRtt)
            {
                flag.store(true, Ordering::SeqCst);
            }
            if dir == Dir::ToClient && !flag.load(Ordering::SeqCst) {
                adversary::Verdict::Drop
            } else {
                adversary::Verdict::Forward
            }
        }),
    )
    .await;
    let second = guard(
        "resume",
        cep.connect_resuming(proxy.addr, client.clone(), Some(&ticket)),
    )
    .await
    .unwrap();
    let early = b"transfer 100 coins to mallory, request 7f3a".to_vec();
    let (mut send, mut recv) = second.open_bi().await.unwrap();
    send.write_all(&early).await.unwrap();
    send.finish().unwrap();
    let mut back = Vec::new();
    guard("answer", recv.read_to_end(&mut back)).await.unwrap();
    assert_eq!(back, early);
    assert!(second.established().await.unwrap().resumed);
    let flight: Vec<Vec<u8>> = to_server(&proxy)
        .into_iter()
        .filter(|d| {
            wire::packets(d)
                .iter()
                .any(|p| matches!(p.ty, PacketType::Initial | PacketType::ZeroRtt))
        })
        .collect();
    let zero_rtt = flight
        .iter()
        .filter(|d| wire::packets(d).iter().any(|p| p.ty == PacketType::ZeroRtt))
        .count();
    assert!(zero_rtt > 0, "the request went out as 0-RTT");

    // Replay the ClientHello + 0-RTT flight: during the session, then after it, from the
    // client's address and from another one.
    let other = tokio::net::UdpSocket::bind(host(78)).await.unwrap();
    for d in &flight {
        proxy.inject_to_server(d).await;
        other.send_to(d, ep.local_addr()).await.unwrap();
    }
    second.close(jsp::CloseReason::Normal, None);
    guard("closed", second.closed()).await;
    for d in &flight {
        proxy.inject_to_server(d).await;
        other.send_to(d, ep.local_addr()).await.unwrap();
    }
    guard("replayed handshakes expire", async {
        while ep.connection_count() > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    eprintln!(
        "0-RTT replay: {} flight datagrams ({zero_rtt} with 0-RTT) replayed 4 times; server {:?}",
        flight.len(),
        ep.stats()
    );
    assert_eq!(seen.count(&early), 1, "0-RTT data accepted more than once");
    assert_eq!(
        seen.established.load(Ordering::SeqCst),
        2,
        "no third session"
    );
}
