//! The reduced driver API: two endpoints complete a handshake and exchange stream data using
//! nothing but `Endpoint::process` (the shape of the future C ABI), with a tiny event loop that
//! delivers datagrams instantly and honours `Output::Callback` deadlines.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is a test failure

mod seeded_endpoints;

use std::net::SocketAddr;

use seeded_endpoints::seeded_endpoints;

use jsp_proto::{Dir, Endpoint, EndpointEvent, Event, Instant, Output};

/// A server and a client endpoint with seeded keys, the client connecting (nothing sent yet).
struct Setup {
    server: Endpoint,
    client: Endpoint,
    s_addr: SocketAddr,
    c_addr: SocketAddr,
    h: jsp_proto::ConnectionHandle,
}

fn setup(seed: u8) -> Setup {
    let (server, mut client, client_cfg) = seeded_endpoints(seed);
    let s_addr: SocketAddr = "127.0.0.1:4433".parse().unwrap();
    let c_addr: SocketAddr = "127.0.0.1:50000".parse().unwrap();
    let h = client.connect(Instant::ZERO, client_cfg, s_addr).unwrap();
    Setup {
        server,
        client,
        s_addr,
        c_addr,
        h,
    }
}

#[test]
fn handshake_and_data_through_process_only() {
    let Setup {
        mut server,
        mut client,
        s_addr,
        c_addr,
        h,
    } = setup(1);

    let mut now = Instant::ZERO;
    let mut to_server: Vec<Vec<u8>> = Vec::new();
    let mut to_client: Vec<Vec<u8>> = Vec::new();
    let mut buf = Vec::new();
    let mut sent_data = false;
    let mut received = Vec::new();
    for _ in 0..10_000 {
        let mut next = None::<Instant>;
        // Client: one input (or none) per call, drain outputs.
        let mut input = to_client.pop();
        loop {
            let out = client.process(
                now,
                input.as_mut().map(|d| (s_addr, d.as_mut_slice())),
                &mut buf,
            );
            input = None;
            match out {
                Output::Datagram(t) => to_server.insert(0, buf[..t.size].to_vec()),
                Output::Callback(t) => {
                    next = Some(next.map_or(t, |n| n.min(t)));
                    break;
                }
                Output::Idle => break,
            }
        }
        let mut input = to_server.pop();
        loop {
            let out = server.process(
                now,
                input.as_mut().map(|d| (c_addr, d.as_mut_slice())),
                &mut buf,
            );
            input = None;
            match out {
                Output::Datagram(t) => to_client.insert(0, buf[..t.size].to_vec()),
                Output::Callback(t) => {
                    next = Some(next.map_or(t, |n| n.min(t)));
                    break;
                }
                Output::Idle => break,
            }
        }
        let conn = client.connection_mut(h).unwrap();
        if conn.is_established() && !sent_data {
            let s = conn.open_stream(Dir::Uni).unwrap();
            conn.stream_write(s, b"through process()", true).unwrap();
            sent_data = true;
        }
        while let Some(EndpointEvent::NewConnection(sh)) = server.poll_event() {
            let _ = sh;
        }
        let handles: Vec<_> = server.handles().collect();
        for sh in handles {
            let c = server.connection_mut(sh).unwrap();
            while let Some(ev) = c.poll_event() {
                if let Event::StreamReadable(id) = ev {
                    received.extend(c.stream_read(id, 1024).unwrap().0);
                }
            }
        }
        if received == b"through process()" {
            return;
        }
        if to_client.is_empty() && to_server.is_empty() {
            now = next.expect("something is scheduled while the exchange is unfinished");
        }
    }
    panic!("no progress: received {received:?}");
}

/// A key update requested by the application waits until PROTOCOL.md §9 allows it (three PTOs
/// after the previous phase was confirmed) and is then started by the sending path from a timer,
/// with nothing else happening on the connection. Its `KeyUpdated` event must reach a driver that
/// dispatches events of the connections `poll_active` reports, without waiting for other traffic
/// (it used to wait for the next heartbeat, 5 s later).
#[test]
fn a_deferred_key_update_is_reported_through_poll_active_at_once() {
    let Setup {
        mut server,
        mut client,
        s_addr,
        c_addr,
        h,
    } = setup(3);
    let mut buf = Vec::new();
    let mut now = Instant::ZERO;
    let mut requested_at = None;
    let mut reported_at = None;
    // A driver loop shaped like jsp's: timers, events, sending, events again; datagrams are
    // delivered 5 ms later.
    let drain = |client: &mut Endpoint, now: Instant, reported_at: &mut Option<Instant>| {
        while let Some(active) = client.poll_active() {
            while let Some(ev) = client.poll_connection_event(active) {
                if matches!(ev, Event::KeyUpdated { .. }) && reported_at.is_none() {
                    *reported_at = Some(now);
                }
            }
        }
    };
    for _ in 0..100_000 {
        for ep in [&mut client, &mut server] {
            if ep.poll_timeout().is_some_and(|t| t <= now) {
                ep.handle_timeout(now);
            }
        }
        drain(&mut client, now, &mut reported_at);
        let mut c_out = Vec::new();
        while let Some(t) = client.poll_transmit(now, &mut buf) {
            c_out.push(buf[..t.size].to_vec());
        }
        let mut s_out = Vec::new();
        while let Some(t) = server.poll_transmit(now, &mut buf) {
            s_out.push(buf[..t.size].to_vec());
        }
        drain(&mut client, now, &mut reported_at);
        while server.poll_active().is_some() {}
        while server.poll_event().is_some() {}
        if requested_at.is_none() && client.connection(h).is_some_and(|c| c.is_established()) {
            // Idle from here on: the request is the last thing the application does.
            client.connection_mut(h).unwrap().request_key_update();
            requested_at = Some(now);
        }
        if reported_at.is_some() {
            break;
        }
        let step = [client.poll_timeout(), server.poll_timeout()]
            .into_iter()
            .flatten()
            .chain(
                (!c_out.is_empty() || !s_out.is_empty())
                    .then(|| now.saturating_add(std::time::Duration::from_millis(5))),
            )
            .min()
            .expect("something is scheduled");
        now = step.max(now);
        for mut d in c_out {
            server.handle_datagram(now, c_addr, &mut d);
        }
        for mut d in s_out {
            client.handle_datagram(now, s_addr, &mut d);
        }
    }
    let requested_at = requested_at.expect("established");
    let reported_at = reported_at.expect("the key update was reported");
    let waited = reported_at.saturating_duration_since(requested_at);
    assert_eq!(client.connection(h).unwrap().key_generation(), 1);
    assert!(
        waited < std::time::Duration::from_secs(1),
        "reported {waited:?} after the request"
    );
}
