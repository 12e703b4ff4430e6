//! Handshake floods over real loopback sockets (PROTOCOL.md §12): spoofed first flights from
//! many addresses that never answer, Retry, the cap on handshakes in flight, half-open
//! handshakes held from one address (slowloris), and a connection flood from one address. In
//! every case the server sends at most 3x what an unvalidated address sent it, its state stays
//! bounded, and legitimate clients still connect.
//!
//! The spoofing attacker is real: it builds genuine first flights with the engine (Initial keys
//! are public, §5.4) and sends them from sockets bound to other 127.0.0.x addresses, which it
//! never reads except to count what the server sends there.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is a test failure

mod adversary;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use adversary::{echo, first_flight, guard, host, pattern, pinned_pair, wire};
use jsp::{ClientConfig, ConnectionError, Endpoint, ServerConfig};
use jsp_proto::config::RetryPolicy;
use jsp_proto::ErrorCode;
use tokio::net::UdpSocket;

/// A server whose handshakes give up after `handshake_timeout` (short, so that the tests see
/// the end of every half-open handshake).
fn server(
    handshake_timeout: Duration,
    tune: impl FnOnce(&mut ServerConfig),
) -> (Endpoint, Arc<adversary::Seen>, Arc<ClientConfig>) {
    let (mut cfg, client) = pinned_pair();
    cfg.transport.handshake_timeout = handshake_timeout;
    tune(&mut cfg);
    let ep = Endpoint::server(adversary::loopback(), cfg).unwrap();
    let seen = adversary::echo_server(&ep);
    (ep, seen, client)
}

/// One spoofed address: sends real first flights, never answers, counts what comes back.
struct Spoofer {
    sock: UdpSocket,
    sent: u64,
}

impl Spoofer {
    async fn bind(n: u8) -> Self {
        Self {
            sock: UdpSocket::bind(host(n)).await.unwrap(),
            sent: 0,
        }
    }

    async fn send_flights(&mut self, server: SocketAddr, client: &Arc<ClientConfig>, n: usize) {
        for _ in 0..n {
            for d in first_flight(server, client.clone()) {
                self.sent += self.sock.send_to(&d, server).await.unwrap() as u64;
            }
        }
    }

    /// Everything the server sends here until `until` has passed (by then every handshake
    /// this address started has timed out, so nothing more can come).
    async fn received_until(&self, until: tokio::time::Instant) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65536];
        while out.len() < 100_000 {
            match tokio::time::timeout_at(until, self.sock.recv_from(&mut buf)).await {
                Ok(Ok((n, _))) => out.push(buf[..n].to_vec()),
                _ => break,
            }
        }
        out
    }
}

fn bytes(ds: &[Vec<u8>]) -> u64 {
    ds.iter().map(|d| d.len() as u64).sum()
}

/// A legitimate client on its own address connects and echoes 64 KiB intact.
async fn legitimate_client_works(server: SocketAddr, client: Arc<ClientConfig>, n: u8) {
    let ep = Endpoint::client(host(n)).unwrap();
    let conn = guard("legitimate handshake", ep.connect(server, client))
        .await
        .unwrap_or_else(|e| panic!("a legitimate client was refused: {e}"));
    let data = pattern(64 << 10, u64::from(n));
    let back = guard("legitimate echo", echo(&conn, &data)).await.unwrap();
    assert!(
        back == data,
        "the legitimate client's echo came back corrupted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_first_flights_get_at_most_three_times_their_bytes_and_clients_still_connect() {
    // No Retry: the server answers each spoofed ClientHello with its full flight and retransmits
    // it, so only the amplification limit (§12.1) bounds what reaches the victims.
    let timeout = Duration::from_secs(3);
    let (ep, seen, client) = server(timeout, |_| {});
    let addr = ep.local_addr();
    let mut victims = Vec::new();
    for n in 10..40u8 {
        let mut s = Spoofer::bind(n).await;
        s.send_flights(addr, &client, 1).await;
        victims.push(s);
    }
    legitimate_client_works(addr, client.clone(), 2).await;
    let until = tokio::time::Instant::now() + timeout + Duration::from_secs(2);
    let mut ratios = Vec::new();
    for v in &victims {
        let got = v.received_until(until).await;
        let rx = bytes(&got);
        assert!(
            rx <= 3 * v.sent,
            "{}: the server sent {rx} bytes to an address that sent {}",
            v.sock.local_addr().unwrap(),
            v.sent
        );
        assert!(rx > 0, "the server answered the spoofed ClientHello");
        ratios.push(rx as f64 / v.sent as f64);
    }
    let max = ratios.iter().copied().fold(0.0, f64::max);
    eprintln!(
        "amplification: {} spoofed addresses, {} bytes each, max ratio {max:.2}",
        victims.len(),
        victims[0].sent
    );
    assert!(
        max > 1.0,
        "the limit, not silence, bounded the server ({max})"
    );
    assert_eq!(
        seen.established.load(Ordering::SeqCst),
        1,
        "only the legitimate client"
    );
    // Every spoofed handshake ended with the handshake timeout.
    guard("spoofed handshakes expire", async {
        while ep.connection_count() > 1 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_always_answers_a_spoofed_flood_statelessly_and_clients_still_connect() {
    let (ep, seen, client) = server(Duration::from_secs(10), |c| c.retry = RetryPolicy::Always);
    let addr = ep.local_addr();
    let flights_per_address = 20;
    let mut victims = Vec::new();
    for n in 10..30u8 {
        let mut s = Spoofer::bind(n).await;
        s.send_flights(addr, &client, flights_per_address).await;
        victims.push(s);
    }
    legitimate_client_works(addr, client.clone(), 2).await;
    // The server's answers are Retry packets only, one per ClientHello datagram at most, and
    // small: far below 3x (they cost it no state).
    let until = tokio::time::Instant::now() + Duration::from_secs(1);
    let mut retries = 0;
    for v in &victims {
        let got = v.received_until(until).await;
        for d in &got {
            assert_eq!(
                wire::kind(d),
                wire::Kind::Retry,
                "only Retry goes to a spoofed address"
            );
        }
        retries += got.len();
        assert!(
            bytes(&got) <= v.sent,
            "Retry bytes {} > sent {}",
            bytes(&got),
            v.sent
        );
    }
    let stats = ep.stats();
    eprintln!("retry flood: {retries} Retry packets received by the victims, {stats:?}");
    assert!(
        retries >= victims.len() * flights_per_address,
        "every ClientHello got a Retry"
    );
    assert_eq!(stats.accepted, 1, "no state for a spoofed address");
    assert!(
        ep.connection_count() <= 1,
        "only the legitimate client's connection"
    );
    assert_eq!(seen.established.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_when_busy_caps_handshakes_in_flight_and_validated_clients_still_connect() {
    const THRESHOLD: usize = 16;
    const MAX_HANDSHAKES: usize = 32;
    let (ep, seen, client) = server(Duration::from_secs(20), |c| {
        c.retry = RetryPolicy::WhenBusy(THRESHOLD);
        c.max_handshakes = MAX_HANDSHAKES;
    });
    let addr = ep.local_addr();
    // 400 spoofed handshakes from 20 addresses.
    let mut victims = Vec::new();
    for n in 10..30u8 {
        let mut s = Spoofer::bind(n).await;
        s.send_flights(addr, &client, 20).await;
        victims.push(s);
    }
    // Handshakes in flight never pass the threshold: beyond it, unvalidated clients get Retry.
    assert!(
        ep.connection_count() <= THRESHOLD,
        "{} handshakes in flight",
        ep.connection_count()
    );
    // Several legitimate clients still connect (through Retry), one after the other.
    for n in 2..6u8 {
        legitimate_client_works(addr, client.clone(), n).await;
    }
    let stats = ep.stats();
    eprintln!(
        "when-busy flood: {stats:?}, in flight {}",
        ep.connection_count()
    );
    assert!(stats.retries_sent >= 400 - THRESHOLD as u64, "{stats:?}");
    assert_eq!(stats.accepted, THRESHOLD as u64 + 4, "{stats:?}");
    assert_eq!(seen.established.load(Ordering::SeqCst), 4);
    assert!(ep.connection_count() <= THRESHOLD + 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_handshakes_from_one_address_are_capped_and_expire() {
    // Slowloris: one address opens many handshakes and never finishes any (it answers nothing).
    const MAX_HANDSHAKES: usize = 24;
    // By default one IP address may hold a quarter of the handshake slots (PROTOCOL.md §12.3).
    const PER_IP: usize = MAX_HANDSHAKES / 4;
    let timeout = Duration::from_secs(2);
    let (ep, seen, client) = server(timeout, |c| c.max_handshakes = MAX_HANDSHAKES);
    let addr = ep.local_addr();
    let mut attacker = Spoofer::bind(9).await;
    attacker.send_flights(addr, &client, 100).await;
    // Every ClientHello datagram beyond the cap is refused (a ClientHello spans two datagrams).
    guard("the server processes the flood", async {
        while ep.stats().refused < 2 * (100 - PER_IP as u64) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let in_flight = ep.connection_count();
    let stats = ep.stats();
    eprintln!("half-open: {in_flight} in flight, {stats:?}");
    assert!(in_flight <= PER_IP, "{in_flight} handshakes in flight");
    assert_eq!(stats.accepted, PER_IP as u64, "{stats:?}");
    assert_eq!(stats.refused, 2 * (100 - PER_IP as u64), "{stats:?}");
    // The refusals are SERVER_BUSY Initials, small and stateless.
    let until = tokio::time::Instant::now() + timeout + Duration::from_secs(2);
    let got = attacker.received_until(until).await;
    assert!(bytes(&got) <= 3 * attacker.sent);
    // The handshake timeout frees every slot; then a legitimate client connects.
    guard("half-open handshakes expire", async {
        while ep.connection_count() > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    legitimate_client_works(addr, client, 2).await;
    assert_eq!(seen.established.load(Ordering::SeqCst), 1);
    assert!(
        lock_len(&seen.failures) >= 1,
        "the half-open handshakes failed"
    );
    assert!(lock_failures_are_timeouts(&seen));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_handshakes_from_one_address_do_not_lock_out_other_addresses() {
    // The same slowloris, but the legitimate client arrives while the attacker's handshakes are
    // still pending: a per-address limit must keep one address from taking every slot.
    const MAX_HANDSHAKES: usize = 24;
    let (ep, _seen, client) = server(Duration::from_secs(20), |c| {
        c.max_handshakes = MAX_HANDSHAKES
    });
    let addr = ep.local_addr();
    let mut attacker = Spoofer::bind(9).await;
    attacker.send_flights(addr, &client, 100).await;
    eprintln!("one address holds {} handshakes", ep.connection_count());
    let legit = Endpoint::client(host(2)).unwrap();
    let res = guard("legitimate handshake", legit.connect(addr, client)).await;
    assert!(
        res.is_ok(),
        "one address holding {} half-open handshakes locked out every other client: {:?}",
        ep.connection_count(),
        res.err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_flood_from_one_address_is_bounded_by_max_connections() {
    // Real, complete handshakes from one address, as fast as possible, and kept open.
    const MAX_CONNECTIONS: usize = 20;
    let (ep, seen, client) = server(Duration::from_secs(10), |c| {
        c.max_connections = MAX_CONNECTIONS;
    });
    let addr = ep.local_addr();
    let attacker = Endpoint::client(host(9)).unwrap();
    let mut held = Vec::new();
    let mut busy = 0;
    for _ in 0..(MAX_CONNECTIONS + 30) {
        match guard("flood handshake", attacker.connect(addr, client.clone())).await {
            Ok(c) => held.push(c),
            Err(jsp::Error::Connection(ConnectionError::PeerClosed { code, .. }))
                if code == ErrorCode::SERVER_BUSY =>
            {
                busy += 1
            }
            Err(e) => panic!("unexpected refusal: {e}"),
        }
    }
    eprintln!(
        "connection flood: {} held, {busy} refused with SERVER_BUSY",
        held.len()
    );
    assert_eq!(held.len(), MAX_CONNECTIONS);
    assert_eq!(busy, 30);
    assert!(ep.connection_count() <= MAX_CONNECTIONS);
    // Existing connections keep working under the refusals.
    let data = pattern(16 << 10, 7);
    assert!(guard("held echo", echo(&held[0], &data)).await.unwrap() == data);
    // Once the flood's connections go away, a legitimate client gets in.
    for c in &held {
        c.close(jsp::CloseReason::Normal, None);
    }
    drop(held);
    guard("flood connections released", async {
        while ep.connection_count() > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    legitimate_client_works(addr, client, 2).await;
    assert_eq!(seen.established.load(Ordering::SeqCst), MAX_CONNECTIONS + 1);
}

fn lock_len<T>(m: &std::sync::Mutex<Vec<T>>) -> usize {
    adversary::lock(m).len()
}

fn lock_failures_are_timeouts(seen: &adversary::Seen) -> bool {
    adversary::lock(&seen.failures)
        .iter()
        .all(|e| matches!(e, ConnectionError::TimedOut))
}
