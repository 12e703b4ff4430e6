//! Integrity: a tampered packet is dropped silently and counted (PROTOCOL.md §5.5), never
//! processed, never fatal; reliable streams recover by retransmission.

mod common;

use jsp_proto::time::Instant;
use jsp_sim::{for_each_seed, Datagram, Fate, LinkConfig, Middlebox, Scope, Verdict};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use common::{connected_pair, ep, link20, pinned, random_bytes, secs, transfer, App};

/// Flips one random bit in a fraction of the short-header (1-RTT) datagrams it sees.
struct BitFlipper {
    rng: ChaCha8Rng,
    probability: f64,
    /// Datagrams tampered with.
    flipped: u64,
}

impl Middlebox for BitFlipper {
    fn on_datagram(&mut self, _now: Instant, d: &mut Datagram) -> Verdict {
        let short = d.payload.first().is_some_and(|b| b & 0x80 == 0);
        if short && self.rng.gen_bool(self.probability) {
            let bit = self.rng.gen_range(0..d.payload.len() * 8);
            d.payload[bit / 8] ^= 1 << (bit % 8);
            self.flipped += 1;
        }
        Verdict::Forward
    }
}

/// Everything a receiving endpoint does with a packet it will not process: connection-level
/// drops plus endpoint-level ones (unroutable: the DCID or fixed bit was hit; a version
/// negotiation reply: the form bit was hit and the rest parsed as an unknown version).
fn drops(app: &mut App, sim: &jsp_sim::Simulator) -> u64 {
    let s = &app.stats;
    let e = ep(sim, app.node).stats();
    s.dropped_auth
        + s.dropped_undecodable
        + s.dropped_duplicate
        + e.dropped_unroutable
        + e.version_negotiations_sent
}

#[test]
fn flipped_bits_in_1rtt_packets_are_dropped_and_the_stream_arrives_intact() {
    for_each_seed(10, |seed| {
        let (server_cfg, client_cfg) = pinned();
        let (mut pair, mut c, mut s) = connected_pair(seed, server_cfg, client_cfg, link20());
        let sim = &mut pair.sim;
        common::run_for(sim, &mut [&mut c, &mut s], secs(1));
        let (c0, s0) = (drops(&mut c, sim), drops(&mut s, sim));
        let (c_auth0, s_auth0) = (c.stats.dropped_auth, s.stats.dropped_auth);
        let first_record = sim.capture().records().len();
        let mb = sim.add_middlebox(
            Scope::Global,
            BitFlipper {
                rng: ChaCha8Rng::seed_from_u64(seed),
                probability: 0.1,
                flipped: 0,
            },
        );

        let data = random_bytes(seed, 200 * 1024);
        let got = transfer(sim, &mut c, &mut s, &data, secs(60));
        assert_eq!(got.len(), data.len(), "stream incomplete");
        assert!(got == data, "stream corrupted");
        assert!(
            c.closed().is_none() && s.closed().is_none(),
            "connection died"
        );
        common::run_for(sim, &mut [&mut c, &mut s], secs(1));

        // Every tampered datagram that arrived was dropped, and nothing else was.
        let flipped = sim.middlebox::<BitFlipper>(mb).flipped;
        assert!(flipped > 10, "only {flipped} datagrams tampered");
        let delivered_tampered = |from: jsp_sim::NodeId| {
            sim.capture().records()[first_record..]
                .iter()
                .filter(|r| r.rewritten && r.origin == jsp_sim::Origin::Node(from))
                .filter(|r| matches!(r.fate, Fate::Delivered(_)))
                .count() as u64
        };
        let (to_server, to_client) = (
            delivered_tampered(pair.client),
            delivered_tampered(pair.server),
        );
        // Every flip is in the capture; some flipped datagrams never arrived (a path MTU probe
        // larger than the link, say), and those the endpoints cannot have dropped.
        let rewritten = sim.capture().records()[first_record..]
            .iter()
            .filter(|r| r.rewritten)
            .count() as u64;
        assert_eq!(rewritten, flipped);
        assert!(
            to_server + to_client > 10,
            "only {} tampered datagrams arrived",
            to_server + to_client
        );
        assert_eq!(drops(&mut s, sim) - s0, to_server, "server: {:?}", s.stats);
        assert_eq!(drops(&mut c, sim) - c0, to_client, "client: {:?}", c.stats);
        assert!(
            s.stats.dropped_auth > s_auth0,
            "no AEAD failure counted at the server"
        );
        assert!(c.stats.dropped_auth >= c_auth0);
    });
}

#[test]
fn random_link_corruption_during_and_after_the_handshake_is_survived() {
    for_each_seed(10, |seed| {
        let link = LinkConfig {
            corrupt: 0.05,
            ..link20()
        };
        let (server_cfg, client_cfg) = pinned();
        let (mut pair, mut c, mut s) = connected_pair(seed, server_cfg, client_cfg, link);
        let data = random_bytes(seed, 100 * 1024);
        let got = transfer(&mut pair.sim, &mut c, &mut s, &data, secs(60));
        assert!(
            got == data,
            "stream corrupted or incomplete ({} bytes)",
            got.len()
        );
        assert!(c.closed().is_none() && s.closed().is_none());
        let corrupted = pair
            .sim
            .link_stats(pair.client, pair.server)
            .corrupted
            .datagrams
            + pair
                .sim
                .link_stats(pair.server, pair.client)
                .corrupted
                .datagrams;
        assert!(corrupted > 0);
    });
}

#[test]
fn tampered_datagrams_are_never_delivered_and_the_connection_survives() {
    // Unreliable datagrams are not retransmitted, so what arrives shows exactly what the
    // receiver accepted: only genuine payloads, each at most once, and nothing tampered.
    for_each_seed(5, |seed| {
        let (server_cfg, client_cfg) = pinned();
        let (mut pair, mut c, mut s) = connected_pair(seed, server_cfg, client_cfg, link20());
        let sim = &mut pair.sim;
        let mb = sim.add_middlebox(
            Scope::Link(pair.client, pair.server),
            BitFlipper {
                rng: ChaCha8Rng::seed_from_u64(seed),
                probability: 0.2,
                flipped: 0,
            },
        );
        let sent: Vec<Vec<u8>> = (0..300u64)
            .map(|i| {
                let mut d = i.to_be_bytes().to_vec();
                d.extend(random_bytes(seed * 1000 + i, 992));
                d
            })
            .collect();
        for d in &sent {
            c.expect_conn(sim)
                .send_datagram(d)
                .unwrap_or_else(|e| panic!("send_datagram: {e}"));
            common::run_for(sim, &mut [&mut c, &mut s], common::ms(5));
        }
        // Datagrams are congestion controlled: let the queue drain at the reduced window.
        common::run_for(sim, &mut [&mut c, &mut s], secs(20));
        let flipped = sim.middlebox::<BitFlipper>(mb).flipped;
        let mut seen = std::collections::BTreeSet::new();
        for d in &s.datagrams {
            let i = u64::from_be_bytes(d[..8].try_into().unwrap_or([0xff; 8]));
            assert!(
                sent.get(i as usize) == Some(d),
                "a datagram arrived altered (index {i})"
            );
            assert!(seen.insert(i), "datagram {i} delivered twice");
        }
        let received = s.datagrams.len() as u64;
        assert!(flipped > 20, "only {flipped} packets tampered");
        assert!(
            received + flipped >= sent.len() as u64,
            "lost more than the tampered ones"
        );
        assert!(received < sent.len() as u64);
        assert!(s.stats.dropped_auth > 0);
        assert!(c.closed().is_none() && s.closed().is_none());
    });
}
