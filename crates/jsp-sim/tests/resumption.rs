//! Session resumption and 0-RTT (PROTOCOL.md §13) through the simulator: tickets are issued,
//! resumption skips the certificate but not the key exchange, 0-RTT data is delivered once and
//! flagged as replayable, a reused or replayed ticket is refused, and refused 0-RTT data is resent
//! without loss.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is a test failure

use std::sync::Arc;

use core::time::Duration;

use jsp_proto::{
    ClientConfig, ConnectionHandle, Dir, Event, Instant, ServerConfig, SessionTicket, StreamId,
};
use jsp_sim::engine::{seeded_identity, seeded_provider, EndpointNode, Pair};
use jsp_sim::{Datagram, LinkConfig, Recorder, Scope};

const EARLY: &[u8] = b"GET /inbox (idempotent, sent as 0-RTT)";

fn configs(seed: u64) -> (ServerConfig, ClientConfig) {
    let id = seeded_identity(seeded_provider(seed, 7).as_ref(), 3);
    Pair::pinned_configs(id)
}

fn link() -> LinkConfig {
    LinkConfig::with_delay(Duration::from_millis(10))
}

/// Runs a first connection and returns the pair plus the ticket the client received.
fn first_session(seed: u64) -> (Pair, ClientConfig, SessionTicket) {
    let (server, client) = configs(seed);
    let mut pair = Pair::new(seed, server, client.clone(), link());
    assert!(
        pair.drive_handshake(Duration::from_secs(5)),
        "first handshake"
    );
    pair.sim.run_for(Duration::from_millis(200));
    let conn = pair.client_conn().expect("client connection");
    let mut ticket = None;
    while let Some(ev) = conn.poll_event() {
        if let Event::SessionTicket(t) = ev {
            ticket = Some(*t);
        }
    }
    let ticket = ticket.expect("the server issues a session ticket after the handshake");
    assert!(ticket.max_early_data > 0);
    (pair, client, ticket)
}

/// Starts a resumed connection from the client endpoint, writing `EARLY` immediately.
fn resume(
    pair: &mut Pair,
    client: &ClientConfig,
    ticket: &SessionTicket,
) -> (ConnectionHandle, StreamId) {
    let now = pair.sim.now();
    let server_addr = pair.server_addr;
    let node = pair.sim.node_mut::<EndpointNode>(pair.client);
    let h = node
        .endpoint
        .connect_resuming(now, Arc::new(client.clone()), server_addr, Some(ticket))
        .expect("connect");
    let c = node.endpoint.connection_mut(h).expect("conn");
    let id = c
        .open_stream(Dir::Bi)
        .expect("0-RTT stream opens before the handshake");
    c.stream_write(id, EARLY, true).expect("write");
    pair.sim.wake(pair.client);
    (h, id)
}

/// Collects, over every server connection, (stream data, early flag, resumed) per connection.
fn server_view(pair: &mut Pair) -> Vec<(Vec<u8>, bool, bool)> {
    let node = pair.sim.node_mut::<EndpointNode>(pair.server);
    let handles = node.accepted.clone();
    let mut out = Vec::new();
    for h in handles {
        let Some(c) = node.endpoint.connection_mut(h) else {
            continue;
        };
        let mut data = Vec::new();
        let mut early = false;
        let mut resumed = false;
        while let Some(ev) = c.poll_event() {
            match ev {
                Event::StreamReadable(id) => {
                    let (d, _) = c.stream_read(id, 1 << 20).expect("read");
                    early |= c.received_early_data(id);
                    data.extend(d);
                }
                Event::Connected(s) => resumed = s.resumed,
                _ => {}
            }
        }
        out.push((data, early, resumed));
    }
    out
}

#[test]
fn resumed_session_delivers_0rtt_data_flagged_as_early() {
    let (mut pair, client, ticket) = first_session(11);
    let _ = server_view(&mut pair);
    let t0 = pair.sim.now();
    let (h, _) = resume(&mut pair, &client, &ticket);
    pair.sim.run_for(Duration::from_millis(15));
    // One-way delay is 10 ms: the 0-RTT data is at the server before the client has heard back.
    let view = server_view(&mut pair);
    let second = view.last().expect("second connection");
    assert_eq!(
        second.0, EARLY,
        "0-RTT data delivered within half a round trip"
    );
    assert!(
        second.1,
        "the application is told the data arrived as 0-RTT"
    );
    pair.sim.run_for(Duration::from_millis(200));
    let node = pair.sim.node_mut::<EndpointNode>(pair.client);
    let c = node.endpoint.connection_mut(h).expect("client conn");
    let summary = c.handshake_summary().expect("established").clone();
    assert!(summary.resumed);
    assert_eq!(
        summary.peer, ticket.server,
        "the PSK authenticates the original server"
    );
    let mut rejected = false;
    while let Some(ev) = c.poll_event() {
        rejected |= ev == Event::ZeroRttRejected;
    }
    assert!(!rejected);
    assert!(pair.sim.now() > t0);
}

#[test]
fn resumption_still_runs_a_fresh_key_exchange() {
    // The resumed ClientHello carries a full hybrid key share (1216 bytes), so its first flight
    // is still two full-size datagrams.
    let (mut pair, client, ticket) = first_session(12);
    pair.sim.capture_mut().clear();
    let _ = resume(&mut pair, &client, &ticket);
    pair.sim.run_for(Duration::from_millis(100));
    let client_bytes = pair.sim.capture().bytes_sent_by(pair.client);
    assert!(client_bytes >= 2 * 1200, "client sent {client_bytes} bytes");
}

#[test]
fn reused_ticket_falls_back_to_full_handshake_without_losing_0rtt_data() {
    let (mut pair, client, ticket) = first_session(13);
    let _ = server_view(&mut pair);
    let (h1, _) = resume(&mut pair, &client, &ticket);
    pair.sim.run_for(Duration::from_millis(300));
    let first = server_view(&mut pair);
    assert!(first.last().expect("conn").2, "first use resumes");
    // Same ticket again: the anti-replay store refuses it.
    let (h2, _) = resume(&mut pair, &client, &ticket);
    pair.sim.run_for(Duration::from_millis(500));
    let view = server_view(&mut pair);
    let last = view.last().expect("third connection");
    assert!(!last.2, "a reused ticket does not resume");
    assert_eq!(
        last.0, EARLY,
        "the refused 0-RTT data was resent as 1-RTT data"
    );
    assert!(!last.1, "and it no longer counts as early data");
    let node = pair.sim.node_mut::<EndpointNode>(pair.client);
    let c = node.endpoint.connection_mut(h2).expect("client conn");
    let mut rejected = false;
    while let Some(ev) = c.poll_event() {
        rejected |= ev == Event::ZeroRttRejected;
    }
    assert!(rejected, "the client is told its 0-RTT data was refused");
    assert!(node.endpoint.connection(h1).is_some());
}

#[test]
fn replayed_0rtt_flight_is_not_delivered_twice() {
    let (mut pair, client, ticket) = first_session(14);
    let _ = server_view(&mut pair);
    let rec = pair
        .sim
        .add_middlebox(Scope::Link(pair.client, pair.server), Recorder::default());
    let (h, _) = resume(&mut pair, &client, &ticket);
    pair.sim.run_for(Duration::from_millis(300));
    let delivered = server_view(&mut pair);
    assert_eq!(delivered.last().expect("conn").0, EARLY);
    // Close the resumed connection and let both sides forget it.
    let now = pair.sim.now();
    {
        let node = pair.sim.node_mut::<EndpointNode>(pair.client);
        let c = node.endpoint.connection_mut(h).expect("client conn");
        c.close(now, jsp_proto::CloseReason::Normal, None);
    }
    pair.sim.wake(pair.client);
    pair.sim.run_for(Duration::from_secs(5));
    let _ = server_view(&mut pair);
    // An attacker replays the whole captured client flight from another address.
    let captured: Vec<Datagram> = pair
        .sim
        .middlebox::<Recorder>(rec)
        .seen
        .iter()
        .map(|(_, d)| d.clone())
        .collect();
    let accepted_before = pair.sim.node::<EndpointNode>(pair.server).accepted.len();
    let attacker = "10.9.9.9:4444".parse().expect("addr");
    let at = pair.sim.now() + Duration::from_millis(1);
    for mut d in captured {
        d.src = attacker;
        pair.sim.inject(at, d);
    }
    pair.sim.run_for(Duration::from_secs(2));
    let accepted_after = pair.sim.node::<EndpointNode>(pair.server).accepted.len();
    assert_eq!(
        accepted_after,
        accepted_before + 1,
        "the replayed ClientHello reached the handshake (and its ticket was refused)"
    );
    let after = server_view(&mut pair);
    assert!(
        after.iter().all(|(data, _, _)| data.is_empty()),
        "replayed 0-RTT data was delivered again: {after:?}"
    );
}

#[test]
fn expired_ticket_is_not_offered() {
    let (mut server, client) = configs(15);
    server.ticket_lifetime = Duration::from_secs(10);
    let mut pair = Pair::new(15, server, client.clone(), link());
    assert!(pair.drive_handshake(Duration::from_secs(5)));
    pair.sim.run_for(Duration::from_millis(200));
    let conn = pair.client_conn().expect("client");
    let mut ticket = None;
    while let Some(ev) = conn.poll_event() {
        if let Event::SessionTicket(t) = ev {
            ticket = Some(*t);
        }
    }
    let ticket = ticket.expect("ticket");
    assert_eq!(ticket.lifetime, 10);
    pair.sim.run_until(Instant::from_nanos(30_000_000_000));
    let _ = server_view(&mut pair);
    let now = pair.sim.now();
    let server_addr = pair.server_addr;
    let node = pair.sim.node_mut::<EndpointNode>(pair.client);
    let h = node
        .endpoint
        .connect_resuming(now, Arc::new(client), server_addr, Some(&ticket))
        .expect("connect");
    let c = node.endpoint.connection_mut(h).expect("conn");
    assert!(!c.can_send_early_data(), "a stale ticket gives no 0-RTT");
    pair.sim.wake(pair.client);
    pair.sim.run_for(Duration::from_millis(300));
    let view = server_view(&mut pair);
    assert!(
        !view.last().expect("conn").2,
        "a stale ticket does not resume"
    );
}
