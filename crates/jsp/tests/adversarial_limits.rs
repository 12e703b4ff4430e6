//! Resource limits against misbehaving peers over real loopback sockets, and stateless reset and
//! key update under attack.
//!
//! - A peer that ignores flow control (a real engine with the `fault-injection` hook, driven
//!   over a UDP socket) is closed with `FLOW_CONTROL_ERROR`; one that sends a DATAGRAM frame
//!   larger than allowed is refused locally; one that opens streams past the limit is held back
//!   by MAX_STREAMS; one that never reads is flow-controlled, so the server buffers at most one
//!   window.
//! - Forged stateless resets (random tokens) close nothing; a genuine one (from a restarted
//!   server sharing the reset key) closes the client with `Reset`.
//! - Key updates under an attacker who replays old-phase packets and flips bits: the transfer
//!   arrives intact and the connection survives.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is a test failure

mod adversary;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use adversary::{
    echo, echo_server, guard, host, lock, pattern, pinned_pair, wire, Dir, Proxy, RawPeer, Verdict,
    QUIET,
};
use jsp::{ConnectionError, Endpoint};
use jsp_proto::wire::header::PacketType;
use jsp_proto::ErrorCode;
use tokio::io::AsyncWriteExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_ignores_flow_control_is_closed_with_flow_control_error() {
    let (cfg, client) = pinned_pair();
    let window = cfg.transport.initial_max_stream_data;
    let ep = Endpoint::server(adversary::loopback(), cfg).unwrap();
    // The server's application accepts the stream but never reads it.
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    {
        let ep = ep.clone();
        tokio::spawn(async move {
            if let Some(conn) = ep.accept().await {
                let _ = conn.established().await;
                let held = conn.accept_uni().await;
                let err = conn.closed().await;
                let _ = tx.send((err, held.is_ok())).await;
            }
        });
    }
    let mut peer = RawPeer::connect(ep.local_addr(), client, 3).await;
    assert!(
        peer.drive_until(adversary::WAIT, |c| c.is_established())
            .await,
        "the raw peer's handshake"
    );
    peer.conn().fault_ignore_flow_control();
    let id = peer.conn().open_stream(jsp::Dir::Uni).unwrap();
    // 4 MiB against a 256 KiB stream window and a 1 MiB connection window.
    let written = peer
        .conn()
        .stream_write(id, &vec![7u8; 4 << 20], false)
        .unwrap();
    assert!(
        written as u64 > 4 * window,
        "the fault lets the peer queue {written} bytes"
    );
    let closed = peer
        .drive_until(adversary::WAIT, |c| c.is_closed() || c.is_closing())
        .await;
    let (server_err, got_stream) = guard("server closes", rx.recv()).await.unwrap();
    eprintln!(
        "flow control: server closed with {server_err:?}; the peer saw {:?}",
        peer.ep
            .connection(peer.conn)
            .and_then(|c| c.error().cloned())
    );
    assert!(got_stream);
    assert!(
        matches!(
            server_err,
            ConnectionError::ProtocolViolation {
                code: ErrorCode::FLOW_CONTROL_ERROR,
                ..
            }
        ),
        "{server_err:?}"
    );
    assert!(closed, "the peer learned that it was closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_past_the_limit_wait_for_credit_and_a_reader_that_never_reads_bounds_the_sender() {
    const MAX_STREAMS: u64 = 4;
    let (mut cfg, client) = pinned_pair();
    cfg.transport.max_streams = MAX_STREAMS;
    let window = cfg.transport.initial_max_stream_data;
    let conn_window = cfg.transport.initial_max_data;
    let ep = Endpoint::server(adversary::loopback(), cfg).unwrap();
    // The server's application accepts streams but never reads them.
    let accepted = Arc::new(Mutex::new(Vec::new()));
    {
        let (ep, accepted) = (ep.clone(), accepted.clone());
        tokio::spawn(async move {
            if let Some(conn) = ep.accept().await {
                while let Ok(s) = conn.accept_bi().await {
                    lock(&accepted).push(s);
                }
            }
        });
    }
    let cep = Endpoint::client(host(2)).unwrap();
    let conn = guard("connect", cep.connect(ep.local_addr(), client))
        .await
        .unwrap();
    let mut sends = Vec::new();
    for _ in 0..MAX_STREAMS {
        let (send, _recv) = guard("open within the limit", conn.open_bi())
            .await
            .unwrap();
        sends.push(send);
    }
    // A fifth stream must wait for the server to release one.
    let fifth = tokio::time::timeout(QUIET * 2, conn.open_bi()).await;
    assert!(fifth.is_err(), "a stream past MAX_STREAMS was opened");
    // Write 8 MiB on the first stream (the client buffers up to `send_buffer` locally): what
    // goes on the wire is bounded by the server's windows.
    let mut first = sends.remove(0);
    let big = pattern(8 << 20, 1);
    let _ = tokio::time::timeout(QUIET * 4, first.write_all(&big)).await;
    // Give the sender time to push everything the windows allow (and more, if they did not).
    tokio::time::sleep(QUIET * 4).await;
    let st = conn.stats();
    eprintln!(
        "never-reading server: client sent {} bytes on the wire for 8 MiB written; stream window {window}, connection window {conn_window}",
        st.bytes_sent
    );
    // What reached the server is bounded by the windows (plus packet overhead and headroom for
    // the handshake, acknowledgements and retransmissions), not by what the client wrote.
    assert!(
        st.bytes_sent < window + (256 << 10),
        "the client sent {} bytes to a stream that is never read",
        st.bytes_sent
    );
    eprintln!("{st:?}");
    assert!(
        st.bytes_sent > 8 << 10,
        "the stream carried data: {}",
        st.bytes_sent
    );
    assert!(lock(&accepted).len() as u64 <= MAX_STREAMS);
    assert_eq!(ep.connection_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_datagram_frames_are_refused_by_the_sender() {
    let (mut cfg, client) = pinned_pair();
    cfg.transport.max_datagram_frame_size = 512;
    let ep = Endpoint::server(adversary::loopback(), cfg).unwrap();
    let seen = echo_server(&ep);
    let cep = Endpoint::client(host(2)).unwrap();
    let conn = guard("connect", cep.connect(ep.local_addr(), client))
        .await
        .unwrap();
    let err = conn.send_datagram(&vec![1u8; 4096]).unwrap_err();
    eprintln!("huge datagram: {err}");
    assert!(matches!(err, jsp::Error::Datagram(_)), "{err}");
    conn.send_datagram(b"small").unwrap();
    let back = guard("small datagram echo", conn.read_datagram())
        .await
        .unwrap();
    assert_eq!(back, b"small");
    assert!(lock(&seen.datagrams).iter().all(|d| d.len() <= 512));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_stateless_resets_close_nothing_and_a_genuine_one_does() {
    let (cfg, client) = pinned_pair();
    let reset_key = [42u8; 32];
    let endpoint_cfg = jsp_proto::EndpointConfig {
        reset_key: Some(reset_key),
        ..Default::default()
    };
    let ep = Endpoint::new(
        adversary::loopback(),
        Some(cfg.clone()),
        endpoint_cfg.clone(),
        false,
    )
    .unwrap();
    let server_addr = ep.local_addr();
    let _seen = echo_server(&ep);
    let proxy = Proxy::start(server_addr).await;
    let cep = Endpoint::client(host(2)).unwrap();
    let conn = guard("connect", cep.connect(proxy.addr, client))
        .await
        .unwrap();
    let data = pattern(64 << 10, 5);
    assert!(guard("echo", echo(&conn, &data)).await.unwrap() == data);
    // The attacker sees the client's DCID in every short header and forges resets with it:
    // random bytes with a random token, of every size a reset can have.
    let dcid = proxy
        .captured()
        .iter()
        .rev()
        .find_map(|(d, b)| {
            (*d == Dir::ToServer)
                .then(|| wire::packets(b))
                .and_then(|p| {
                    p.first()
                        .filter(|p| p.ty == PacketType::OneRtt)
                        .map(|p| p.dcid)
                })
        })
        .expect("a 1-RTT packet from the client");
    assert_eq!(dcid.as_slice().len(), wire::CID_LEN);
    let mut forged = 0;
    for (i, len) in (26..=64).enumerate() {
        let mut d = pattern(len, 900 + i as u64);
        d[0] = (d[0] & 0x3f) | 0x40;
        proxy.inject_to_client(&d).await;
        forged += 1;
    }
    assert!(
        guard("echo after forged resets", echo(&conn, &data))
            .await
            .unwrap()
            == data
    );
    assert!(
        tokio::time::timeout(QUIET, conn.closed()).await.is_err(),
        "a forged stateless reset closed the connection"
    );
    eprintln!("{forged} forged stateless resets ignored");

    // The server restarts (same reset key, no state): the client's next packet gets a genuine
    // reset and the client learns at once.
    ep.shutdown().await;
    drop(ep);
    let restarted = guard("rebind", async {
        loop {
            match Endpoint::new(server_addr, Some(cfg.clone()), endpoint_cfg.clone(), false) {
                Ok(e) => break e,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
    .await;
    let _ = conn.send_datagram(b"are you there?");
    let err = guard("reset arrives", conn.closed()).await;
    eprintln!(
        "after restart: {err:?}, resets sent {}",
        restarted.stats().stateless_resets_sent
    );
    // The graceful shutdown may have reached the client first (GOING_AWAY); if not, the reset.
    assert!(
        matches!(
            err,
            ConnectionError::Reset | ConnectionError::PeerClosed { .. }
        ),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_after_a_silent_restart_closes_the_client_with_reset() {
    // The server vanishes without a word (no shutdown), restarts with the same reset key: the
    // client's next packet draws a stateless reset and the client ends with `Reset`.
    let (cfg, client) = pinned_pair();
    let endpoint_cfg = jsp_proto::EndpointConfig {
        reset_key: Some([7u8; 32]),
        ..Default::default()
    };
    let ep = Endpoint::new(
        adversary::loopback(),
        Some(cfg.clone()),
        endpoint_cfg.clone(),
        false,
    )
    .unwrap();
    let server_addr = ep.local_addr();
    let _seen = echo_server(&ep);
    // The proxy lets the test cut the old server off without it saying goodbye.
    let proxy = Proxy::start(server_addr).await;
    let cep = Endpoint::client(host(2)).unwrap();
    let conn = guard("connect", cep.connect(proxy.addr, client))
        .await
        .unwrap();
    let data = pattern(16 << 10, 6);
    assert!(guard("echo", echo(&conn, &data)).await.unwrap() == data);
    // A second server instance (the "restarted" one), sharing the reset key, behind a second
    // proxy hop: from now on the client's packets go there.
    let restarted = Endpoint::new(adversary::loopback(), Some(cfg), endpoint_cfg, false).unwrap();
    let new_addr = restarted.local_addr();
    let forward_to_new = Arc::new(Mutex::new(Vec::<Vec<u8>>::new()));
    {
        let q = forward_to_new.clone();
        proxy.set_hook(Box::new(move |dir, d| {
            if dir == Dir::ToServer {
                lock(&q).push(d.clone());
                Verdict::Drop
            } else {
                Verdict::Forward
            }
        }));
    }
    // Relay what the client sends to the restarted server, and its answers back.
    let relay = tokio::net::UdpSocket::bind(host(1)).await.unwrap();
    let _ = conn.send_datagram(b"are you there?");
    let mut resets = 0;
    let mut buf = vec![0u8; 65536];
    let outcome = guard("the client learns of the reset", async {
        loop {
            let pending: Vec<Vec<u8>> = std::mem::take(&mut *lock(&forward_to_new));
            for d in pending {
                let _ = relay.send_to(&d, new_addr).await;
            }
            tokio::select! {
                r = relay.recv_from(&mut buf) => {
                    if let Ok((n, _)) = r {
                        resets += 1;
                        proxy.inject_to_client(&buf[..n]).await;
                    }
                }
                err = conn.closed() => break err,
                () = tokio::time::sleep(Duration::from_millis(20)) => {
                    let _ = conn.send_datagram(b"ping");
                }
            }
        }
    })
    .await;
    eprintln!(
        "silent restart: client closed with {outcome:?}; {resets} datagrams from the restarted server, {:?}",
        restarted.stats()
    );
    assert_eq!(outcome, ConnectionError::Reset);
    assert!(restarted.stats().stateless_resets_sent >= 1);
    assert_eq!(restarted.stats().accepted, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_updates_survive_replayed_old_phase_packets_and_flipped_bits() {
    let (cfg, client) = pinned_pair();
    let ep = Endpoint::server(adversary::loopback(), cfg).unwrap();
    let seen = echo_server(&ep);
    let proxy = Proxy::start(ep.local_addr()).await;
    let cep = Endpoint::client(host(2)).unwrap();
    let conn = guard("connect", cep.connect(proxy.addr, client))
        .await
        .unwrap();
    // The attacker flips one bit in every 7th 1-RTT datagram either way.
    let n = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let flipped = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    {
        let (n, flipped) = (n.clone(), flipped.clone());
        proxy.set_hook(Box::new(move |_, d| {
            let short = d.first().is_some_and(|b| b & 0x80 == 0);
            if short && n.fetch_add(1, Ordering::Relaxed) % 7 == 3 && d.len() > 40 {
                let at = 20 + d.len() % (d.len() - 20);
                d[at] ^= 0x04;
                flipped.fetch_add(1, Ordering::Relaxed);
            }
            Verdict::Forward
        }));
    }
    let mut replayed = 0;
    let mut events = conn.events();
    for round in 0..4u64 {
        let before = proxy.captured().len();
        let data = pattern(256 << 10, round);
        assert!(
            guard("echo across a key update", echo(&conn, &data))
                .await
                .unwrap()
                == data,
            "round {round}: corrupted"
        );
        // The client updates its keys (as soon as PROTOCOL.md §9 allows: three PTOs after the
        // previous update was confirmed); then the attacker replays everything the client sent
        // in the previous phase (old keys, old packet numbers).
        let generation = conn.stats().key_updates;
        conn.update_keys();
        guard("the requested key update", async {
            loop {
                match events.next().await {
                    Some(jsp::ConnectionEvent::KeyUpdated { generation: g }) if g > generation => {
                        break
                    }
                    Some(_) => {}
                    None => panic!("the connection ended before its key update"),
                }
            }
        })
        .await;
        let old: Vec<Vec<u8>> = proxy.captured()[before..]
            .iter()
            .filter(|(d, _)| *d == Dir::ToServer)
            .map(|(_, b)| b.clone())
            .collect();
        for d in &old {
            proxy.inject_to_server(d).await;
            replayed += 1;
        }
    }
    let data = pattern(64 << 10, 99);
    assert!(guard("final echo", echo(&conn, &data)).await.unwrap() == data);
    let st = conn.stats();
    eprintln!(
        "key update under attack: {} key updates, {} datagrams flipped, {replayed} replayed, client {st:?}",
        st.key_updates,
        flipped.load(Ordering::Relaxed)
    );
    assert!(st.key_updates >= 4, "{st:?}");
    assert!(flipped.load(Ordering::Relaxed) > 0);
    assert!(
        st.dropped_auth > 0,
        "the client dropped the flipped datagrams: {st:?}"
    );
    // Nothing was delivered twice: every message arrived exactly once.
    for round in 0..4u64 {
        assert_eq!(seen.count(&pattern(256 << 10, round)), 1, "round {round}");
    }
    assert_eq!(seen.established.load(Ordering::SeqCst), 1);
    assert!(lock(&seen.closes).is_empty(), "{:?}", lock(&seen.closes));
}
