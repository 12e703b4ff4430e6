//! Handshake edge cases a driver meets on real networks and under load.
//!
//! - A client's 1-RTT packets can overtake its Finished (the Finished datagram was lost or
//!   reordered). The server must not act on them before the handshake completes
//!   (PROTOCOL.md §7.9): a stream handed to the application then could not be answered. It holds
//!   them and processes them once the Finished arrives, so nothing the client sent is lost and the
//!   stream opens on an established connection.
//! - A driver may prepare the next connection's key share while it waits for the network; the
//!   engine uses it for exactly one connection.
//! - A client whose Finished is lost retransmits it when its probe timer fires: before the
//!   handshake is confirmed, a probe in the 1-RTT space could not complete it (RFC 9002
//!   §6.2.1), and the server would time the handshake out.
//! - The handshake's last packets travel together, and path MTU discovery stays out of a short
//!   exchange: the client's Finished shares a datagram with its first 1-RTT packet, no probe goes
//!   out before the connection has sent 32 datagrams or been up for a second, and a due probe
//!   goes after the data the application queued.
//! - A server with no other handshake in progress sends its ServerHello ahead of the rest of its
//!   flight (the client starts its key exchange meanwhile); among other handshakes, or when it
//!   resumes a session, the whole flight leaves at once.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is a test failure

mod seeded_endpoints;

use std::net::SocketAddr;

use seeded_endpoints::seeded_endpoints;

use jsp_proto::handshake::client::PreparedKeyShare;
use jsp_proto::{ConnectionHandle, Dir, Endpoint, EndpointEvent, Event, Instant};

const S_ADDR: &str = "127.0.0.1:4433";
const C_ADDR: &str = "127.0.0.1:50000";

/// Every datagram `endpoint` has to send now, including what timers due within the next
/// microsecond produce (a server's first flight after its ServerHello is due a nanosecond after
/// the ClientHello was handled).
fn drain(endpoint: &mut Endpoint, now: Instant) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = now;
    for _ in 0..8 {
        out.extend(transmit_now(endpoint, at));
        match endpoint.poll_timeout() {
            Some(t) if t <= now + std::time::Duration::from_micros(1) => {
                at = at.max(t);
                endpoint.handle_timeout(at);
            }
            _ => return out,
        }
    }
    panic!("timers stay due")
}

/// What `endpoint` sends at `now` without handling any timer.
fn transmit_now(endpoint: &mut Endpoint, now: Instant) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    while let Some(t) = endpoint.poll_transmit(now, &mut buf) {
        out.push(buf[..t.size].to_vec());
    }
    out
}

fn deliver(endpoint: &mut Endpoint, now: Instant, from: SocketAddr, datagrams: Vec<Vec<u8>>) {
    for mut d in datagrams {
        endpoint.handle_datagram(now, from, &mut d);
    }
}

fn events(endpoint: &mut Endpoint, h: ConnectionHandle) -> Vec<Event> {
    std::iter::from_fn(|| endpoint.poll_connection_event(h)).collect()
}

/// Runs a client connection's handshake to completion on both sides.
fn complete(server: &mut Endpoint, client: &mut Endpoint, ch: ConnectionHandle) {
    let (s_addr, c_addr): (SocketAddr, SocketAddr) =
        (S_ADDR.parse().unwrap(), C_ADDR.parse().unwrap());
    let now = Instant::ZERO;
    for _ in 0..4 {
        let to_server = drain(client, now);
        deliver(server, now, c_addr, to_server);
        let to_client = drain(server, now);
        deliver(client, now, s_addr, to_client);
    }
    assert!(client.connection(ch).unwrap().is_established());
}

/// Connects and carries the first two flights: the client is established, its last flight not
/// yet taken. Returns the connection and the sizes of the client's first flight.
fn until_the_client_completes(
    server: &mut Endpoint,
    client: &mut Endpoint,
    client_cfg: std::sync::Arc<jsp_proto::ClientConfig>,
) -> (ConnectionHandle, Vec<usize>) {
    let (s_addr, c_addr): (SocketAddr, SocketAddr) =
        (S_ADDR.parse().unwrap(), C_ADDR.parse().unwrap());
    let now = Instant::ZERO;
    let ch = client.connect(now, client_cfg, s_addr).unwrap();
    let hello = drain(client, now);
    let sizes = hello.iter().map(Vec::len).collect();
    deliver(server, now, c_addr, hello);
    let answer = drain(server, now);
    deliver(client, now, s_addr, answer);
    assert!(client.connection(ch).unwrap().is_established());
    (ch, sizes)
}

#[test]
fn a_prepared_key_share_serves_exactly_one_connection() {
    let (mut server, mut client, client_cfg) = seeded_endpoints(1);
    let s_addr: SocketAddr = S_ADDR.parse().unwrap();
    assert!(client.wants_key_share());
    let share = PreparedKeyShare::generate(client.provider().as_ref()).unwrap();
    assert_eq!(
        format!("{share:?}"),
        "PreparedKeyShare { .. }",
        "no key material in logs"
    );
    client.offer_key_share(share);
    assert!(!client.wants_key_share());
    let first = client
        .connect(Instant::ZERO, client_cfg.clone(), s_addr)
        .unwrap();
    assert!(client.wants_key_share(), "taken by the connection");
    complete(&mut server, &mut client, first);
    // Without a prepared share, the next connection makes its own.
    let second = client.connect(Instant::ZERO, client_cfg, s_addr).unwrap();
    complete(&mut server, &mut client, second);
}

#[test]
fn stream_data_that_overtakes_the_finished_waits_for_it() {
    let (mut server, mut client, client_cfg) = seeded_endpoints(1);
    let (s_addr, c_addr): (SocketAddr, SocketAddr) =
        (S_ADDR.parse().unwrap(), C_ADDR.parse().unwrap());
    let now = Instant::ZERO;
    let (ch, mut sent_to_server) = until_the_client_completes(&mut server, &mut client, client_cfg);
    // The client's Finished (and whatever else completes the handshake) ...
    let finished = drain(&mut client, now);
    assert!(!finished.is_empty());
    // ... then a request on a new stream, which reaches the server first.
    let conn = client.connection_mut(ch).unwrap();
    let stream = conn.open_stream(Dir::Bi).unwrap();
    conn.stream_write(stream, b"request", true).unwrap();
    let request = drain(&mut client, now);
    assert!(!request.is_empty());
    sent_to_server.extend(request.iter().chain(&finished).map(Vec::len));

    deliver(&mut server, now, c_addr, request);
    let sh = server
        .handles()
        .next()
        .expect("the server holds the connection");
    assert!(!server.connection(sh).unwrap().is_established());
    let before = events(&mut server, sh);
    assert!(
        !before
            .iter()
            .any(|e| matches!(e, Event::StreamOpened(_) | Event::StreamReadable(_))),
        "no stream before the handshake completes: {before:?}"
    );

    deliver(&mut server, now, c_addr, finished);
    assert!(server.connection(sh).unwrap().is_established());
    // A held packet counts once, when its datagram arrived (statistics and the amplification
    // budget alike; the fuzzer once caught the budget credited twice).
    let stats = server.connection(sh).unwrap().stats();
    assert_eq!(stats.datagrams_received, sent_to_server.len() as u64);
    assert_eq!(
        stats.bytes_received,
        sent_to_server.iter().sum::<usize>() as u64
    );
    let after = events(&mut server, sh);
    let connected = after
        .iter()
        .position(|e| matches!(e, Event::Connected(_)))
        .expect("the handshake completes");
    let opened = after
        .iter()
        .position(|e| matches!(e, Event::StreamOpened(s) if *s == stream))
        .expect("the held request opens its stream");
    assert!(connected < opened, "events in order: {after:?}");
    let sc = server.connection_mut(sh).unwrap();
    let (data, fin) = sc.stream_read(stream, 1024).unwrap();
    assert_eq!((data.as_slice(), fin), (&b"request"[..], true));
    // And the application can answer at once.
    sc.stream_write(stream, b"answer", true).unwrap();
    let answer = drain(&mut server, now);
    deliver(&mut client, now, s_addr, answer);
    let (data, fin) = client
        .connection_mut(ch)
        .unwrap()
        .stream_read(stream, 1024)
        .unwrap();
    assert_eq!((data.as_slice(), fin), (&b"answer"[..], true));
}

#[test]
fn the_last_handshake_packets_are_coalesced_and_path_mtu_probes_wait() {
    let (mut server, mut client, client_cfg) = seeded_endpoints(2);
    let (s_addr, c_addr): (SocketAddr, SocketAddr) =
        (S_ADDR.parse().unwrap(), C_ADDR.parse().unwrap());
    let mut now = Instant::ZERO;
    let _ = until_the_client_completes(&mut server, &mut client, client_cfg);
    let finish = drain(&mut client, now);
    assert_eq!(
        finish.len(),
        1,
        "Finished and the first 1-RTT packet in one datagram: {:?}",
        finish.iter().map(Vec::len).collect::<Vec<_>>()
    );
    deliver(&mut server, now, c_addr, finish);
    let sh = std::iter::from_fn(|| server.poll_event())
        .find_map(|e| match e {
            EndpointEvent::NewConnection(h) => Some(h),
            EndpointEvent::Forgotten(_) => None,
        })
        .expect("the server's connection");
    // A short exchange spends nothing on path MTU discovery: no probe in the handshake's last
    // flights, however large the path.
    let is_probe = |d: &Vec<u8>| d.len() > 1300;
    let answer = drain(&mut server, now);
    assert!(!answer.is_empty() && !answer.iter().any(is_probe));
    deliver(&mut client, now, s_addr, answer);
    let acks = drain(&mut client, now);
    assert!(!acks.iter().any(is_probe));
    deliver(&mut server, now, c_addr, acks);
    // Idle from here: the server's timer starts the search after SEARCH_DELAY, and its first
    // probe goes after the data the application queued at that moment.
    let start = now + jsp_proto::recovery::mtu::SEARCH_DELAY;
    loop {
        let t = server.poll_timeout().expect("the search timer at least");
        assert!(t <= start, "no timer for the search: next at {t:?}");
        if t == start {
            break;
        }
        now = t;
        server.handle_timeout(now);
        assert!(
            !drain(&mut server, now).iter().any(is_probe),
            "a probe before the delay"
        );
    }
    now = start;
    let conn = server.connection_mut(sh).unwrap();
    let stream = conn.open_stream(Dir::Uni).unwrap();
    conn.stream_write(stream, b"news", true).unwrap();
    server.handle_timeout(now);
    let sizes: Vec<usize> = drain(&mut server, now).iter().map(Vec::len).collect();
    let probe = sizes.iter().position(|&n| n > 1300);
    assert!(
        matches!(probe, Some(i) if i > 0),
        "the application's data, then the first probe: {sizes:?}"
    );
}

#[test]
fn a_lost_finished_is_what_the_clients_probes_retransmit() {
    let (mut server, mut client, client_cfg) = seeded_endpoints(3);
    let c_addr: SocketAddr = C_ADDR.parse().unwrap();
    let now = Instant::ZERO;
    let (ch, _) = until_the_client_completes(&mut server, &mut client, client_cfg);
    // The client's Finished, coalesced with its first 1-RTT packet, and the next three rounds
    // of probes are lost. After the first probe the 1-RTT packet is the oldest in flight: a
    // timer armed for its space would fire first.
    let sid = client
        .connection_mut(ch)
        .unwrap()
        .open_stream(Dir::Uni)
        .unwrap();
    client
        .connection_mut(ch)
        .unwrap()
        .stream_write(sid, b"request", true)
        .unwrap();
    let mut t = now;
    let lost = drain(&mut client, t);
    assert_eq!(lost.len(), 1, "Finished and the request in one datagram");
    for round in 0..4 {
        t = client.poll_timeout().expect("a probe timer");
        client.handle_timeout(t);
        let probes = drain(&mut client, t);
        assert!(
            !probes.is_empty(),
            "round {round}: the probe timer sent nothing"
        );
        for d in &probes {
            // Long header (0x80) of type Handshake (2): the datagram carries the Finished again.
            assert!(
                d[0] & 0x80 != 0 && (d[0] >> 4) & 0x3 == 2,
                "round {round}: a probe without the Handshake space: first byte {:#04x}",
                d[0]
            );
        }
        if round == 3 {
            deliver(&mut server, t, c_addr, probes);
        }
    }
    let accepted = std::iter::from_fn(|| server.poll_event()).find_map(|e| match e {
        EndpointEvent::NewConnection(h) => Some(h),
        _ => None,
    });
    let sh = accepted.expect("the server accepted the connection");
    assert!(
        server.connection(sh).unwrap().is_established(),
        "the retransmitted Finished completed the server's handshake"
    );
}

#[test]
fn a_lone_server_handshake_sends_its_server_hello_ahead_of_the_rest() {
    let (mut server, mut client, client_cfg) = seeded_endpoints(3);
    let (s_addr, c_addr): (SocketAddr, SocketAddr) =
        (S_ADDR.parse().unwrap(), C_ADDR.parse().unwrap());
    let now = Instant::ZERO;
    let first = client.connect(now, client_cfg.clone(), s_addr).unwrap();
    let hello = transmit_now(&mut client, now);
    deliver(&mut server, now, c_addr, hello);
    // The ServerHello (and an acknowledgement): not enough for the client to complete.
    let server_hello = transmit_now(&mut server, now);
    assert!(!server_hello.is_empty());
    deliver(&mut client, now, s_addr, server_hello);
    assert!(!client.connection(first).unwrap().is_established());
    // The rest is due a nanosecond after the ClientHello was handled.
    let due = server
        .poll_timeout()
        .expect("the rest of the flight is due");
    assert!(due > now && due <= now + std::time::Duration::from_micros(1));
    server.handle_timeout(due);
    let rest = transmit_now(&mut server, due);
    assert!(!rest.is_empty());
    deliver(&mut client, due, s_addr, rest);
    assert!(client.connection(first).unwrap().is_established());

    // The client's Finished is lost: the first handshake stays in progress at the server. A
    // second one gets its whole flight at once, and completes the client without any timer.
    let _lost_finished = transmit_now(&mut client, due);
    let second = client.connect(due, client_cfg, s_addr).unwrap();
    let hello = transmit_now(&mut client, due);
    deliver(&mut server, due, c_addr, hello);
    let flight = transmit_now(&mut server, due);
    deliver(&mut client, due, s_addr, flight);
    assert!(client.connection(second).unwrap().is_established());
}
