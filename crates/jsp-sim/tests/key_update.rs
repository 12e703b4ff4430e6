//! Key update under traffic (PROTOCOL.md §9): requested and automatic updates on both sides
//! while a large stream flows, with no packet lost to a key mismatch.

mod common;

use std::collections::BTreeSet;

use jsp_proto::Event;
use jsp_sim::for_each_seed;

use common::{connected_pair, link20, pinned, random_bytes, run_for, secs, App};

fn generations_seen(app: &App) -> BTreeSet<u64> {
    app.events
        .iter()
        .filter_map(|e| match e {
            Event::KeyUpdated { generation } => Some(*generation),
            _ => None,
        })
        .collect()
}

#[test]
fn requested_and_automatic_key_updates_during_a_2mb_transfer_lose_nothing() {
    for_each_seed(2, |seed| {
        let (mut server_cfg, client_cfg) = pinned();
        // The server rotates its keys on its own every 64 packets it sends with one key (it sends
        // about one ACK per two data packets, ~175 between two of the client's requests).
        server_cfg.transport.key_update_packets = 64;
        // A 5 Mbit/s bottleneck makes the transfer last about 3.5 s of virtual time: room for
        // four requested updates, each three PTOs after the previous one was confirmed (§9).
        let link = jsp_sim::LinkConfig {
            bandwidth_bps: Some(5_000_000),
            queue_bytes: 64 * 1024,
            ..link20()
        };
        let (mut pair, mut c, mut s) = connected_pair(seed, server_cfg, client_cfg, link);
        let sim = &mut pair.sim;
        let data = random_bytes(seed, 2 << 20);
        let id = c.send_stream(sim, &data, true);

        // The client asks for an update at each fifth of the transfer, each once the previous one
        // completed (both sides send with the same generation again).
        let mut requested_at: Vec<u64> = Vec::new();
        let mut pending: Option<u64> = None;
        let _ = sim.run_while(
            |sim| {
                c.poll(sim);
                s.poll(sim);
                let gen = |app: &mut App, sim: &jsp_sim::Simulator| {
                    app.conn_ref(sim).map_or(0, |c| c.key_generation())
                };
                let (cg, sg) = (gen(&mut c, sim), gen(&mut s, sim));
                if pending.is_some_and(|g| cg > g && sg == cg) {
                    pending = None;
                }
                let due = (requested_at.len() + 1) * data.len() / 5;
                if pending.is_none() && requested_at.len() < 4 && s.stream_bytes() >= due {
                    c.expect_conn(sim).request_key_update();
                    pending = Some(cg);
                    requested_at.push(cg);
                }
                !s.finished.contains(&id.0) && c.closed().is_none() && s.closed().is_none()
            },
            secs(300),
        );
        // The server may have rotated its send keys right after its last ACK; a reply makes the
        // client follow (PROTOCOL.md §9) so both end in the same phase.
        s.expect_conn(sim)
            .stream_write(id, b"done", true)
            .unwrap_or_else(|e| panic!("reply: {e}"));
        run_for(sim, &mut [&mut c, &mut s], secs(2));
        assert_eq!(c.streams.get(&id.0).map(Vec::as_slice), Some(&b"done"[..]));

        let got = s.streams.get(&id.0).cloned().unwrap_or_default();
        assert_eq!(got.len(), data.len(), "incomplete");
        assert!(got == data, "corrupted");
        assert!(c.closed().is_none() && s.closed().is_none());
        assert_eq!(
            requested_at.len(),
            4,
            "the client's requests did not all complete"
        );
        assert_eq!(pending, None, "the last requested update never completed");

        let cg = c.expect_conn(sim).key_generation();
        let sg = s.expect_conn(sim).key_generation();
        assert_eq!(cg, sg, "the sides ended in different key phases");
        assert!(
            cg > requested_at.len() as u64,
            "generation {cg}: no automatic update on top of the {} requested",
            requested_at.len()
        );
        // Every generation was announced to the application on both sides.
        let all: BTreeSet<u64> = (1..=cg).collect();
        assert_eq!(generations_seen(&c), all);
        assert_eq!(generations_seen(&s), all);
        assert_eq!(c.stats.dropped_auth, 0, "client: {:?}", c.stats);
        assert_eq!(s.stats.dropped_auth, 0, "server: {:?}", s.stats);
    });
}

#[test]
fn frequent_automatic_key_updates_survive_loss_and_reordering() {
    // Both sides rotate every few dozen packets while packets are lost and reordered across
    // phase changes: reordered packets of the previous phase must still open (§9), and nothing
    // may fail authentication.
    for_each_seed(5, |seed| {
        let (mut server_cfg, mut client_cfg) = pinned();
        server_cfg.transport.key_update_packets = 50;
        client_cfg.transport.key_update_packets = 80;
        // At 10 Mbit/s a 30 ms delay reorders a packet by at most ~30 packets, well inside the
        // packet-number window (twice the unacknowledged range, §5.3): reordered farther than
        // that a packet cannot be decoded at all (RFC 9000 §17.1), which is loss, not a
        // key-update failure, and would blur what this test checks.
        let link = jsp_sim::LinkConfig {
            loss: jsp_sim::LossModel::Random(0.03),
            reorder: 0.2,
            reorder_delay: common::ms(30),
            jitter: common::ms(5),
            bandwidth_bps: Some(10_000_000),
            queue_bytes: 128 * 1024,
            ..link20()
        };
        let (mut pair, mut c, mut s) = connected_pair(seed, server_cfg, client_cfg, link);
        // Long enough for five updates three PTOs apart (§9).
        let data = random_bytes(seed, 2 << 20);
        let got = common::transfer(&mut pair.sim, &mut c, &mut s, &data, secs(120));
        assert!(
            got == data,
            "stream incomplete or corrupted ({} bytes)",
            got.len()
        );
        assert!(c.closed().is_none() && s.closed().is_none());
        let cg = c.expect_conn(&mut pair.sim).key_generation();
        assert!(cg >= 5, "only {cg} key updates");
        assert_eq!(c.stats.dropped_auth, 0, "client: {:?}", c.stats);
        assert_eq!(s.stats.dropped_auth, 0, "server: {:?}", s.stats);
    });
}

#[test]
fn each_key_update_is_announced_once_per_side() {
    let (server_cfg, client_cfg) = pinned();
    let (mut pair, mut c, mut s) = connected_pair(9, server_cfg, client_cfg, link20());
    let sim = &mut pair.sim;
    for round in 1..=3u64 {
        c.expect_conn(sim).request_key_update();
        let data = random_bytes(round, 20_000);
        let got = common::transfer(sim, &mut c, &mut s, &data, secs(10));
        assert!(got == data);
        run_for(sim, &mut [&mut c, &mut s], secs(1));
        assert_eq!(c.expect_conn(sim).key_generation(), round);
        assert_eq!(s.expect_conn(sim).key_generation(), round);
    }
    // One update is one event and one count on each side, initiator included.
    assert_eq!(s.key_updates_seen(), 3, "server (follower) events");
    assert_eq!(s.stats.key_updates, 3);
    assert_eq!(
        c.key_updates_seen(),
        3,
        "client (initiator) events: {:?}",
        c.events
    );
    assert_eq!(c.stats.key_updates, 3, "client stats.key_updates");
}
