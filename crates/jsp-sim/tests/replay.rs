//! Replay protection (PROTOCOL.md §5.6): an attacker who records the client's datagrams and
//! replays them later gets nothing delivered twice and no new session.

mod common;

use jsp_proto::wire::header::PacketType;
use jsp_sim::{Datagram, Recorder, Scope};

use common::wire;
use common::{ep, link20, pinned, random_bytes, run_for, secs, sock, transfer, App};

#[test]
fn replayed_datagrams_are_dropped_and_deliver_nothing_twice() {
    let (server_cfg, client_cfg) = pinned();
    let mut pair = jsp_sim::engine::Pair::new(43, server_cfg, client_cfg, link20());
    let rec = pair
        .sim
        .add_middlebox(Scope::Link(pair.client, pair.server), Recorder::default());
    let (mut c, mut s) = (App::client(&pair), App::server(&pair));
    assert!(common::handshake(&mut pair.sim, &mut c, &mut s, secs(5)));
    let sim = &mut pair.sim;
    let data = random_bytes(43, 150 * 1024);
    let got = transfer(sim, &mut c, &mut s, &data, secs(30));
    assert!(got == data);
    run_for(sim, &mut [&mut c, &mut s], secs(1));

    let before = s.stats.clone();
    let endpoint_before = ep(sim, pair.server).stats().clone();
    // Only what the server actually received: path MTU probes larger than the link's MTU were
    // recorded on the way but dropped by the link, so "replaying" them would be their first
    // delivery, not a replay.
    let recorded: Vec<Datagram> = sim
        .middlebox::<Recorder>(rec)
        .seen
        .iter()
        .map(|(_, d)| d.clone())
        .filter(|d| d.payload.len() <= jsp_sim::LinkConfig::DEFAULT_MTU)
        .collect();
    let (mut short, mut long) = (0u64, 0u64);
    for d in &recorded {
        for p in wire::packets(&d.payload) {
            if p.ty == PacketType::OneRtt {
                short += 1;
            } else {
                long += 1;
            }
        }
    }
    assert!(
        short > 100 && long >= 3,
        "recorded {short} 1-RTT and {long} long packets"
    );

    let now = sim.now();
    for d in recorded {
        sim.inject(now, d);
    }
    run_for(sim, &mut [&mut c, &mut s], secs(2));

    // Each replayed 1-RTT packet was rejected: as a duplicate when its truncated packet number
    // still decodes to its original number (§5.6), otherwise (an old packet with a 1-byte packet
    // number, which now decodes to a number above the largest received, §4.3) because it does
    // not authenticate under that number. Each replayed Initial/Handshake packet found its keys
    // discarded. Nothing was processed again.
    let duplicates = s.stats.dropped_duplicate - before.dropped_duplicate;
    let unauthentic = s.stats.dropped_auth - before.dropped_auth;
    assert!(
        duplicates > short / 2,
        "{duplicates} of {short} recognised as duplicates"
    );
    assert_eq!(duplicates + unauthentic, short);
    assert_eq!(
        s.stats.dropped_undecodable - before.dropped_undecodable,
        long
    );
    assert_eq!(s.stats.packets_received, before.packets_received);
    // The stream was delivered exactly once.
    assert_eq!(s.streams.len(), 1);
    assert!(s.streams.values().next() == Some(&data));
    let opened = s
        .events
        .iter()
        .filter(|e| matches!(e, jsp_proto::Event::StreamOpened(_)))
        .count();
    assert_eq!(opened, 1);
    // No new session, no stateless reply, the connection is alive.
    let e = ep(sim, pair.server).stats();
    assert_eq!(e.accepted, 1);
    assert_eq!(e, &endpoint_before);
    assert_eq!(ep(sim, pair.server).connection_count(), 1);
    assert!(c.closed().is_none() && s.closed().is_none());
}

#[test]
fn replayed_first_flight_after_establishment_creates_no_second_session() {
    let (server_cfg, client_cfg) = pinned();
    let mut pair = jsp_sim::engine::Pair::new(47, server_cfg, client_cfg, link20());
    let rec = pair
        .sim
        .add_middlebox(Scope::Link(pair.client, pair.server), Recorder::default());
    let (mut c, mut s) = (App::client(&pair), App::server(&pair));
    assert!(common::handshake(&mut pair.sim, &mut c, &mut s, secs(5)));
    let sim = &mut pair.sim;
    run_for(sim, &mut [&mut c, &mut s], secs(1));
    let first_flight: Vec<Datagram> = sim
        .middlebox::<Recorder>(rec)
        .seen
        .iter()
        .map(|(_, d)| d.clone())
        .take_while(|d| {
            wire::packets(&d.payload).first().map(|p| p.ty) == Some(PacketType::Initial)
                && d.payload.len() >= 1200
        })
        .collect();
    assert_eq!(first_flight.len(), 2, "the ClientHello spans two datagrams");
    let endpoint_before = ep(sim, pair.server).stats().clone();

    // Replay as the client, and from another address (an attacker elsewhere on the network).
    let now = sim.now();
    for d in &first_flight {
        sim.inject(now, d.clone());
        let mut spoofed = d.clone();
        spoofed.src = sock("10.9.9.9:1234");
        sim.inject(now, spoofed);
    }
    run_for(sim, &mut [&mut c, &mut s], secs(3));
    assert_eq!(ep(sim, pair.server).connection_count(), 1);
    assert_eq!(ep(sim, pair.server).stats(), &endpoint_before);
    assert_eq!(
        sim.node::<jsp_sim::EndpointNode>(pair.server)
            .accepted
            .len(),
        1
    );
    // Nothing went to the spoofed address.
    assert!(sim
        .capture()
        .records()
        .iter()
        .all(|r| r.dst != sock("10.9.9.9:1234")));
    assert!(c.closed().is_none() && s.closed().is_none());
}

#[test]
fn replayed_datagrams_from_another_address_do_not_move_the_connection() {
    let (server_cfg, client_cfg) = pinned();
    let mut pair = jsp_sim::engine::Pair::new(49, server_cfg, client_cfg, link20());
    let rec = pair
        .sim
        .add_middlebox(Scope::Link(pair.client, pair.server), Recorder::default());
    let (mut c, mut s) = (App::client(&pair), App::server(&pair));
    assert!(common::handshake(&mut pair.sim, &mut c, &mut s, secs(5)));
    let sim = &mut pair.sim;
    let data = random_bytes(49, 64 * 1024);
    assert!(transfer(sim, &mut c, &mut s, &data, secs(30)) == data);
    let client_addr = sim.addr(pair.client);
    let attacker = sock("198.51.100.7:6666");
    // The attacker re-sends the client's latest 1-RTT datagrams from its own address: ones the
    // server received. (A path MTU probe larger than the link carries never arrived: sent from
    // another address first, it is a new packet, and the server rightly validates that path.)
    let link_mtu = sim.link_config(pair.client, pair.server).mtu;
    let recent: Vec<Datagram> = sim
        .middlebox::<Recorder>(rec)
        .seen
        .iter()
        .filter(|(_, d)| d.payload.len() <= link_mtu)
        .rev()
        .take(10)
        .map(|(_, d)| Datagram::new(attacker, d.dst, d.payload.clone()))
        .collect();
    let now = sim.now();
    for d in recent {
        sim.inject(now, d);
    }
    run_for(sim, &mut [&mut c, &mut s], secs(3));
    assert_eq!(
        s.conn_ref(sim).map(|x| x.remote_address()),
        Some(client_addr),
        "the server follows replayed packets to the attacker"
    );
    assert!(sim.capture().records().iter().all(|r| r.dst != attacker));
    // The connection still works on the real path.
    let more = random_bytes(50, 10_000);
    assert!(transfer(sim, &mut c, &mut s, &more, secs(10)) == more);
}
