//! Denial-of-service defences (PROTOCOL.md §12): the amplification limit, the cap on handshakes
//! in flight, and silence towards garbage.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use jsp_proto::time::Instant;
use jsp_proto::wire::header::{self, ConnectionId, PacketType};
use jsp_proto::{CloseReason, ConnectionError, ErrorCode};
use jsp_sim::engine::{EndpointNode, Pair};
use jsp_sim::{Datagram, LinkConfig, Middlebox, NodeId, Origin, Scope, Verdict};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use common::wire::{self, Kind};
use common::{
    add_client, ep, handshake, link20, ms, pinned, random_bytes, run_for, run_until, secs, sock,
    transfer, App,
};

/// Lets the first `n` datagrams through, then drops everything.
struct DropAfter {
    n: usize,
    seen: usize,
}

impl Middlebox for DropAfter {
    fn on_datagram(&mut self, _now: Instant, _d: &mut Datagram) -> Verdict {
        self.seen += 1;
        if self.seen > self.n {
            Verdict::Drop
        } else {
            Verdict::Forward
        }
    }
}

#[test]
fn server_sends_at_most_three_times_what_an_unvalidated_address_sent() {
    // The client's address never answers after its first flight (a spoofed source, or a client
    // that vanished): everything the server sends must stay within 3x what it received. Long
    // timeouts let the server's probes run until the limit, not a timer, stops them.
    let (mut server_cfg, client_cfg) = pinned();
    server_cfg.transport.handshake_timeout = secs(120);
    server_cfg.transport.idle_timeout = secs(120);
    let mut pair = Pair::new(71, server_cfg, client_cfg, link20());
    pair.sim.add_middlebox(
        Scope::Link(pair.client, pair.server),
        DropAfter { n: 2, seen: 0 },
    );
    let received = |pair: &Pair| -> u64 {
        pair.sim
            .capture()
            .records()
            .iter()
            .filter(|r| r.origin == Origin::Node(pair.client))
            .filter(|r| matches!(r.fate, jsp_sim::Fate::Delivered(_)))
            .map(|r| r.payload.len() as u64)
            .sum()
    };
    pair.sim.run_for(secs(10));
    let (rx, tx) = (
        received(&pair),
        pair.sim.capture().bytes_sent_by(pair.server),
    );
    assert_eq!(rx, 2400, "the first flight is two padded datagrams");
    assert!(tx <= 3 * rx, "server sent {tx} bytes for {rx} received");
    assert!(
        tx > 2 * rx,
        "the server retransmitted its flight ({tx} bytes)"
    );

    pair.sim.run_for(secs(90));
    let tx = pair.sim.capture().bytes_sent_by(pair.server);
    assert!(tx <= 3 * rx, "server sent {tx} bytes for {rx} received");
    // It spent its budget down to less than the smallest packet it would build, then stopped.
    assert!(
        3 * rx - tx < 32,
        "server stopped at {tx} of {} bytes",
        3 * rx
    );
    assert_eq!(ep(&pair.sim, pair.server).stats().accepted, 1);
}

/// An on-path attacker that, every `every` until `until`, rewrites the source of a client 1-RTT
/// datagram to `victim`, so the server believes the client migrated there (and would flood the
/// victim if it trusted the new address).
struct SpoofMigrations {
    victim: SocketAddr,
    every: Duration,
    next: Option<Instant>,
    until: Option<Instant>,
    spoofed_bytes: u64,
    spoofed: usize,
}

impl Middlebox for SpoofMigrations {
    fn on_datagram(&mut self, now: Instant, d: &mut Datagram) -> Verdict {
        let until = *self.until.get_or_insert(now + Duration::from_secs(2));
        let next = *self.next.get_or_insert(now);
        let small_short_header =
            d.payload.len() < 200 && d.payload.first().is_some_and(|b| b & 0x80 == 0);
        if now >= next && now < until && small_short_header {
            d.src = self.victim;
            self.next = Some(now + self.every);
            self.spoofed += 1;
            self.spoofed_bytes += d.payload.len() as u64;
        }
        Verdict::Forward
    }
}

#[test]
fn spoofed_migrations_get_at_most_three_times_what_they_sent_and_the_transfer_survives() {
    // The server sends a stream; for two seconds after the handshake an attacker keeps
    // "migrating" the client to a victim by rewriting the source of the client's small ACK
    // datagrams. Meanwhile the server searches the path MTU with probes of up to 8952 bytes
    // (PROTOCOL.md §15.4); every byte towards the victim, probes included, must stay within 3x
    // what the victim's address sent (§12.1), and the transfer must still complete intact.
    let (server_cfg, client_cfg) = pinned();
    let link = LinkConfig {
        mtu: 9000,
        ..link20()
    };
    let (mut pair, mut c, mut s) = common::connected_pair(74, server_cfg, client_cfg, link);
    let victim = sock("10.66.0.1:4444");
    let mb = pair.sim.add_middlebox(
        Scope::Link(pair.client, pair.server),
        SpoofMigrations {
            victim,
            every: Duration::from_millis(7),
            next: None,
            until: None,
            spoofed_bytes: 0,
            spoofed: 0,
        },
    );
    let data = random_bytes(74, 1_000_000);
    let id = s.send_stream(&mut pair.sim, &data, true);
    run_until(&mut pair.sim, &mut [&mut c, &mut s], secs(60), |a| {
        a[0].finished.contains(&id.0) || a.iter().any(|a| a.closed().is_some())
    });
    let got = c.streams.get(&id.0).cloned().unwrap_or_default();
    assert!(
        got == data,
        "the transfer completes intact ({} bytes)",
        got.len()
    );
    let attacker = pair.sim.middlebox::<SpoofMigrations>(mb);
    assert!(
        attacker.spoofed > 20,
        "the attacker spoofed {}",
        attacker.spoofed
    );
    let to_victim: u64 = pair
        .sim
        .capture()
        .records()
        .iter()
        .filter(|r| r.origin == Origin::Node(pair.server) && r.dst == victim)
        .map(|r| r.payload.len() as u64)
        .sum();
    assert!(to_victim > 0, "the server challenged the spoofed address");
    assert!(
        to_victim <= 3 * attacker.spoofed_bytes,
        "server sent {to_victim} bytes to an address that sent {}",
        attacker.spoofed_bytes
    );
}

#[test]
fn handshake_cap_admits_two_and_refuses_the_rest_with_server_busy() {
    let (mut server_cfg, client_cfg) = pinned();
    server_cfg.max_handshakes = 2;
    let mut pair = Pair::new(73, server_cfg, client_cfg.clone(), link20());
    let server_addr = pair.server_addr;
    let mut clients = vec![(pair.client, pair.client_conn)];
    for i in 0..4u8 {
        let addr = sock(&format!("10.0.1.{}:50000", i + 10));
        let (node, conn) = add_client(
            &mut pair.sim,
            73,
            10 + i,
            addr,
            server_addr,
            client_cfg.clone(),
        );
        pair.sim.set_links(node, pair.server, link20());
        clients.push((node, conn));
    }
    // The first two clients' handshakes never complete: the server's packets to them vanish.
    let stalled: Vec<SocketAddr> = clients[..2]
        .iter()
        .map(|(n, _)| pair.sim.addr(*n))
        .collect();
    let to_stalled = stalled.clone();
    pair.sim
        .add_middlebox(Scope::Global, move |_: Instant, d: &mut Datagram| {
            if to_stalled.contains(&d.dst) {
                Verdict::Drop
            } else {
                Verdict::Forward
            }
        });
    let mut apps: Vec<App> = clients
        .iter()
        .map(|(n, h)| App::with_handle(*n, Some(*h)))
        .collect();
    {
        let mut refs: Vec<&mut App> = apps.iter_mut().collect();
        run_for(&mut pair.sim, &mut refs, secs(5));
    }
    let server = ep(&pair.sim, pair.server);
    assert_eq!(server.connection_count(), 2);
    assert_eq!(server.stats().accepted, 2);
    let accepted_from: Vec<SocketAddr> = pair
        .sim
        .node::<EndpointNode>(pair.server)
        .accepted
        .iter()
        .filter_map(|h| server.connection(*h).map(|c| c.remote_address()))
        .collect();
    assert_eq!(accepted_from, stalled);
    for app in &apps[2..] {
        assert_eq!(
            app.closed(),
            Some(&ConnectionError::PeerClosed {
                reason: CloseReason::GoingAway,
                code: ErrorCode::SERVER_BUSY,
                message: "server busy".into(),
            }),
            "a refused client must learn it was refused"
        );
        assert!(app.connected().is_none());
    }
    for app in &apps[..2] {
        assert!(app.closed().is_none() && app.connected().is_none());
    }
    // Each refusal is one small stateless datagram per refused Initial datagram.
    let refused_datagrams = pair
        .sim
        .capture()
        .records()
        .iter()
        .filter(|r| r.origin == Origin::Node(pair.server))
        .filter(|r| !stalled.contains(&r.dst))
        .inspect(|r| {
            assert!(
                r.payload.len() < 100,
                "busy answer of {} bytes",
                r.payload.len()
            )
        })
        .count() as u64;
    assert_eq!(server.stats().refused, refused_datagrams);
    assert!(server.stats().refused >= 3);

    // Once the stalled handshakes time out, the cap frees up for a new client.
    {
        let mut refs: Vec<&mut App> = apps.iter_mut().collect();
        run_for(&mut pair.sim, &mut refs, secs(6));
    }
    // The server application reads its connections' last events; the endpoint then forgets them.
    let closed = drain_events(&mut pair.sim, pair.server);
    assert_eq!(
        closed,
        vec![ConnectionError::TimedOut, ConnectionError::TimedOut]
    );
    pair.sim.run_for(ms(1));
    assert_eq!(ep(&pair.sim, pair.server).connection_count(), 0);
    let (node, conn) = add_client(
        &mut pair.sim,
        73,
        30,
        sock("10.0.1.30:50000"),
        server_addr,
        client_cfg,
    );
    pair.sim.set_links(node, pair.server, link20());
    let mut late = App::with_handle(node, Some(conn));
    assert!(run_until(&mut pair.sim, &mut [&mut late], secs(5), |a| a
        [0]
    .connected()
    .is_some()));
}

#[test]
fn ten_thousand_garbage_datagrams_get_no_reply_and_do_not_disturb_a_transfer() {
    let (server_cfg, client_cfg) = pinned();
    let mut pair = Pair::new(77, server_cfg, client_cfg, link20());
    let server_addr = pair.server_addr;
    let junk = garbage(77, 10_000, server_addr);
    let expected_vn = junk
        .iter()
        .filter(|d| deserves_version_negotiation(&d.payload))
        .count();
    // Half before the handshake, half spread over the handshake and the transfer.
    for (i, d) in junk.iter().enumerate() {
        let at = if i < 5_000 {
            Instant::ZERO
        } else {
            Instant::from_nanos(ms((i as u64 - 5_000) / 10).as_nanos() as u64)
        };
        pair.sim.inject(at, d.clone());
    }
    let (mut c, mut s) = (App::client(&pair), App::server(&pair));
    assert!(handshake(&mut pair.sim, &mut c, &mut s, secs(5)));
    let data = random_bytes(77, 256 * 1024);
    let got = transfer(&mut pair.sim, &mut c, &mut s, &data, secs(30));
    assert!(got == data);
    run_for(&mut pair.sim, &mut [&mut c, &mut s], secs(1));

    let client_addr = pair.sim.addr(pair.client);
    let replies: Vec<_> = pair
        .sim
        .capture()
        .records()
        .iter()
        .filter(|r| r.origin == Origin::Node(pair.server) && r.dst != client_addr)
        .collect();
    for r in &replies {
        assert!(
            matches!(wire::kind(&r.payload), Kind::VersionNegotiation(_)),
            "server answered garbage with {:?}",
            wire::kind(&r.payload)
        );
    }
    assert_eq!(replies.len(), expected_vn);
    let e = ep(&pair.sim, pair.server).stats();
    assert_eq!(e.accepted, 1);
    assert_eq!(e.version_negotiations_sent as usize, expected_vn);
    assert_eq!(e.retries_sent + e.refused, 0);
    assert!(c.closed().is_none() && s.closed().is_none());
}

/// A datagram with a well-formed Initial header of version 1 and random "protected" bytes.
fn forged_initial(rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut cid = [0u8; 8];
    rng.fill(&mut cid[..]);
    let dcid = ConnectionId::from_slice(&cid).unwrap_or(ConnectionId::EMPTY);
    rng.fill(&mut cid[..]);
    let scid = ConnectionId::from_slice(&cid).unwrap_or(ConnectionId::EMPTY);
    let mut buf = Vec::new();
    let layout = header::encode_long_header(
        &mut buf,
        header::LongHeaderType::Initial { token: &[] },
        jsp_proto::VERSION_1,
        &dcid,
        &scid,
        0,
        4,
    );
    let mut body = vec![0u8; 1200 - buf.len()];
    rng.fill(&mut body[..]);
    buf.extend_from_slice(&body);
    let end = buf.len();
    layout
        .patch_length(&mut buf, end)
        .unwrap_or_else(|e| panic!("{e:?}"));
    buf
}

#[test]
fn unauthenticated_initials_create_no_server_state() {
    let (mut server_cfg, client_cfg) = pinned();
    server_cfg.max_handshakes = 4;
    let mut pair = Pair::new(79, server_cfg, client_cfg, link20());
    let server_addr = pair.server_addr;
    let mut rng = ChaCha8Rng::seed_from_u64(79);
    for i in 0..4u8 {
        let d = forged_initial(&mut rng);
        assert!(matches!(
            wire::kind(&d),
            Kind::Protected(PacketType::Initial)
        ));
        let src = sock(&format!("192.0.2.{}:4000", i + 1));
        pair.sim
            .inject(Instant::ZERO, Datagram::new(src, server_addr, d));
    }
    let (mut c, mut s) = (App::client(&pair), App::server(&pair));
    run_for(&mut pair.sim, &mut [&mut c, &mut s], ms(10));
    // Four datagrams of random bytes that do not decrypt: dropped, counted, nothing else.
    let e = ep(&pair.sim, pair.server).stats().clone();
    assert_eq!(
        e.accepted, 0,
        "connections created for unauthenticated packets"
    );
    assert_eq!(ep(&pair.sim, pair.server).connection_count(), 0);
    // And they must not lock a real client out of a server with a cap of four handshakes.
    assert!(
        handshake(&mut pair.sim, &mut c, &mut s, secs(5)),
        "real client refused: {:?}",
        c.closed()
    );
}

/// Reads every pending event of every connection of `node`; returns the errors they closed with.
fn drain_events(sim: &mut jsp_sim::Simulator, node: NodeId) -> Vec<ConnectionError> {
    let ep = &mut sim.node_mut::<EndpointNode>(node).endpoint;
    let handles: Vec<_> = ep.handles().collect();
    let mut closed = Vec::new();
    for h in handles {
        if let Some(c) = ep.connection_mut(h) {
            while let Some(ev) = c.poll_event() {
                if let jsp_proto::Event::Closed(e) = ev {
                    closed.push(e);
                }
            }
        }
    }
    closed
}

/// `count` random datagrams (random sizes up to 1500 bytes, random sources in 10.200.0.0/16)
/// addressed to `dst`, seeded.
fn garbage(seed: u64, count: usize, dst: SocketAddr) -> Vec<Datagram> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6a7b);
    (0..count)
        .map(|_| {
            let len = rng.gen_range(0..=1500);
            let mut payload = vec![0u8; len];
            rng.fill(&mut payload[..]);
            let src = SocketAddr::from((
                [10, 200, rng.gen(), rng.gen::<u8>().max(1)],
                rng.gen_range(1024..65535),
            ));
            Datagram::new(src, dst, payload)
        })
        .collect()
}

/// Whether PROTOCOL.md §4.5 says `payload` deserves a version negotiation reply: a long header
/// of an unknown, non-zero version with CIDs of at most 20 bytes, in a datagram of at least
/// 1200 bytes.
fn deserves_version_negotiation(payload: &[u8]) -> bool {
    if payload.len() < 1200 || payload[0] & 0x80 == 0 {
        return false;
    }
    let version = u32::from_be_bytes([payload[1], payload[2], payload[3], payload[4]]);
    if version == 0 || version == jsp_proto::VERSION_1 {
        return false;
    }
    let dcid_len = usize::from(payload[5]);
    if dcid_len > 20 {
        return false;
    }
    let Some(&scid_len) = payload.get(6 + dcid_len) else {
        return false;
    };
    usize::from(scid_len) <= 20 && payload.len() >= 7 + dcid_len + usize::from(scid_len)
}
