//! Forward error correction on lossy simulated paths (PROTOCOL.md §19): real-time messages lost
//! on the way are rebuilt from repair symbols instead of waiting for a retransmission, bulk data
//! protected by FEC arrives intact, congestion control still sees every loss, and nothing FEC is
//! sent to a peer that did not advertise it or when FEC is off.
//!
//! Every run is seeded; the same seed with and without FEC sees the same link behaviour up to
//! the point where the packets sent differ.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is a test failure

mod common;

use core::time::Duration;

use jsp_proto::connection::{QosClass, StreamPriority};
use jsp_proto::recovery::congestion::CongestionControl;
use jsp_proto::time::Instant;
use jsp_proto::{ClientConfig, ConnectionStats, Dir, FecConfig, ServerConfig};
use jsp_sim::engine::{EndpointNode, Pair};
use jsp_sim::{LinkConfig, LossModel};

use common::{ms, pinned, random_bytes, secs};

/// Messages sent per run (at 50 per second: 16 s).
const MESSAGES: usize = 800;
/// Interval between real-time messages.
const INTERVAL: Duration = Duration::from_millis(20);
/// Size of a real-time message.
const MESSAGE: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Unreliable DATAGRAM frames.
    Datagram,
    /// One reliable `Media`-class stream carrying the messages back to back.
    MediaStream,
}

/// What one real-time run measured.
#[derive(Debug)]
struct Outcome {
    /// Per message: delivery latency from its scheduled send time, if delivered.
    latency: Vec<Option<Duration>>,
    client: ConnectionStats,
    server: ConnectionStats,
}

impl Outcome {
    fn delivered(&self) -> usize {
        self.latency.iter().filter(|l| l.is_some()).count()
    }

    /// The 99th percentile latency of the delivered messages (ms).
    fn p99_ms(&self) -> f64 {
        let mut l: Vec<Duration> = self.latency.iter().flatten().copied().collect();
        l.sort();
        let i = ((l.len() as f64) * 0.99).ceil() as usize;
        l.get(i.saturating_sub(1))
            .map_or(f64::INFINITY, |d| d.as_secs_f64() * 1000.0)
    }
}

fn configs(client_fec: FecConfig, server_fec: FecConfig) -> (ServerConfig, ClientConfig) {
    let (mut s, mut c) = pinned();
    s.transport.fec = server_fec;
    c.transport.fec = client_fec;
    (s, c)
}

fn lossy(one_way_ms: u64, loss: LossModel) -> LinkConfig {
    LinkConfig {
        loss,
        ..LinkConfig::with_delay(ms(one_way_ms))
    }
}

/// Connects over a clean link (so every run starts alike), then switches both directions to
/// `link` and sends [`MESSAGES`] messages of [`MESSAGE`] bytes every [`INTERVAL`] from the
/// client, recording when each is delivered to the server's application.
fn realtime(
    seed: u64,
    link: LinkConfig,
    client_fec: FecConfig,
    server_fec: FecConfig,
    kind: Kind,
) -> Outcome {
    let (s, c) = configs(client_fec, server_fec);
    let clean = LinkConfig {
        loss: LossModel::None,
        ..link.clone()
    };
    let mut pair = Pair::new(seed, s, c, clean);
    assert!(pair.drive_handshake(secs(10)), "seed {seed}: handshake");
    let (client, server) = (pair.client, pair.server);
    pair.sim.set_links(client, server, link);
    let stream = match kind {
        Kind::MediaStream => Some(
            pair.client_conn()
                .unwrap()
                .open_stream_with(Dir::Uni, StreamPriority::new(QosClass::Media))
                .unwrap(),
        ),
        Kind::Datagram => None,
    };
    let start = pair.sim.now();
    let sent_at = |i: usize| start + INTERVAL * i as u32;
    let mut latency: Vec<Option<Duration>> = vec![None; MESSAGES];
    let mut stream_bytes = 0usize;
    let mut record = |sim: &mut jsp_sim::Simulator| {
        let now = sim.now();
        let node = sim.node_mut::<EndpointNode>(server);
        let Some(h) = node.accepted.first().copied() else {
            return;
        };
        let Some(conn) = node.endpoint.connection_mut(h) else {
            return;
        };
        while let Some(d) = conn.read_datagram() {
            let i = u32::from_be_bytes(d[..4].try_into().unwrap()) as usize;
            if i < MESSAGES && latency[i].is_none() {
                latency[i] = Some(now.saturating_duration_since(sent_at(i)));
            }
        }
        while let Some(ev) = conn.poll_event() {
            if let jsp_proto::Event::StreamReadable(id) = ev {
                let (data, _) = conn.stream_read(id, usize::MAX).unwrap();
                let before = stream_bytes / MESSAGE;
                stream_bytes += data.len();
                for (i, slot) in latency
                    .iter_mut()
                    .enumerate()
                    .take((stream_bytes / MESSAGE).min(MESSAGES))
                    .skip(before)
                {
                    *slot = Some(now.saturating_duration_since(sent_at(i)));
                }
            }
        }
    };
    for i in 0..MESSAGES {
        let until = sent_at(i);
        let d = until.saturating_duration_since(pair.sim.now());
        let _ = pair.sim.run_while(
            |sim| {
                record(sim);
                true
            },
            d,
        );
        let mut msg = vec![0xa5u8; MESSAGE];
        msg[..4].copy_from_slice(&(i as u32).to_be_bytes());
        let conn = pair.client_conn().expect("client connection");
        match stream {
            Some(id) => {
                assert_eq!(conn.stream_write(id, &msg, false).unwrap(), MESSAGE);
            }
            None => conn.send_datagram(&msg).unwrap(),
        }
    }
    let _ = pair.sim.run_while(
        |sim| {
            record(sim);
            true
        },
        secs(5),
    );
    record(&mut pair.sim);
    let client_stats = pair.client_conn().expect("client alive").stats();
    let server_stats = pair.server_conn().expect("server alive").stats();
    Outcome {
        latency,
        client: client_stats,
        server: server_stats,
    }
}

fn report(label: &str, with: &Outcome, without: &Outcome) {
    eprintln!(
        "{label}: delivered {}/{MESSAGES} with FEC ({} rebuilt, {} repair sent), {}/{MESSAGES} \
         without; p99 {:.1} ms with FEC, {:.1} ms without; sender lost {} / {} packets; shape {:?}",
        with.delivered(),
        with.server.fec_recovered,
        with.client.fec_repair_sent,
        without.delivered(),
        with.p99_ms(),
        without.p99_ms(),
        with.client.packets_lost,
        without.client.packets_lost,
        with.client.fec_shape,
    );
}

/// Real-time datagrams under random loss: the adaptive policy switches FEC on, and most lost
/// datagrams are rebuilt (without FEC a lost datagram is gone for good).
#[test]
fn realtime_datagrams_are_rebuilt_under_random_loss() {
    for (loss, one_way) in [(0.05, 10), (0.10, 10), (0.10, 50), (0.20, 50)] {
        let link = lossy(one_way, LossModel::Random(loss));
        let seed = 11;
        let with = realtime(
            seed,
            link.clone(),
            FecConfig::default(),
            FecConfig::default(),
            Kind::Datagram,
        );
        let without = realtime(
            seed,
            link,
            FecConfig::off(),
            FecConfig::off(),
            Kind::Datagram,
        );
        report(
            &format!(
                "datagrams, {:.0}% loss, {} ms RTT",
                loss * 100.0,
                2 * one_way
            ),
            &with,
            &without,
        );
        assert!(with.server.fec_recovered > 0, "nothing rebuilt at {loss}");
        assert_eq!(
            without.server.fec_recovered + without.client.fec_repair_sent,
            0
        );
        let missing_with = MESSAGES - with.delivered();
        let missing_without = MESSAGES - without.delivered();
        // Most losses are repaired: at most a third of the no-FEC residual loss remains (the
        // first second runs before the policy has measured enough loss to switch on).
        assert!(
            missing_with * 3 <= missing_without,
            "{loss}: {missing_with} missing with FEC, {missing_without} without"
        );
        // A rebuilt datagram is delivered at once: p99 within a round trip plus the flush delay.
        assert!(
            with.p99_ms() <= (2 * one_way) as f64 * 1.5 + 10.0,
            "p99 {}",
            with.p99_ms()
        );
    }
}

/// Reliable real-time messages on a `Media` stream under random loss: with FEC a lost packet is
/// rebuilt within a flush delay instead of a loss-detection delay plus a retransmission, so the
/// p99 delivery latency drops well below the no-FEC run's.
#[test]
fn media_stream_p99_latency_drops_with_fec() {
    for (loss, one_way) in [(0.05, 10), (0.10, 10), (0.10, 50)] {
        let link = lossy(one_way, LossModel::Random(loss));
        let seed = 5;
        let with = realtime(
            seed,
            link.clone(),
            FecConfig::default(),
            FecConfig::default(),
            Kind::MediaStream,
        );
        let without = realtime(
            seed,
            link,
            FecConfig::off(),
            FecConfig::off(),
            Kind::MediaStream,
        );
        report(
            &format!(
                "media stream, {:.0}% loss, {} ms RTT",
                loss * 100.0,
                2 * one_way
            ),
            &with,
            &without,
        );
        assert_eq!(with.delivered(), MESSAGES, "reliable stream incomplete");
        assert_eq!(without.delivered(), MESSAGES, "reliable stream incomplete");
        assert!(with.server.fec_recovered > 0);
        assert!(
            with.p99_ms() < 0.75 * without.p99_ms(),
            "{loss}: p99 {} ms with FEC, {} ms without",
            with.p99_ms(),
            without.p99_ms()
        );
        // The sender was told, so rebuilt stream data was not all retransmitted.
        assert!(with.client.fec_peer_recovered > 0);
    }
}

/// Bursty (Gilbert-Elliott) loss: the policy measures bursts and adds repair symbols; lost
/// datagrams are still mostly rebuilt.
#[test]
fn bursty_loss_is_repaired() {
    // About 9% loss in bursts of 2 datagrams on average.
    let ge = LossModel::GilbertElliott {
        p_good_to_bad: 0.05,
        p_bad_to_good: 0.5,
        loss_in_good: 0.0,
        loss_in_bad: 1.0,
    };
    for one_way in [10, 50] {
        let link = lossy(one_way, ge);
        let with = realtime(
            3,
            link.clone(),
            FecConfig::default(),
            FecConfig::default(),
            Kind::Datagram,
        );
        let without = realtime(3, link, FecConfig::off(), FecConfig::off(), Kind::Datagram);
        report(
            &format!("datagrams, bursty loss, {} ms RTT", 2 * one_way),
            &with,
            &without,
        );
        assert!(with.server.fec_recovered > 0);
        assert!(2 * (MESSAGES - with.delivered()) <= MESSAGES - without.delivered());
    }
}

/// A bulk transfer protected by a fixed 10+2 code arrives intact through 5% loss; every packet
/// the receiver rebuilt was still declared lost by the sender (congestion control saw it), and
/// the congestion window stays below what the same transfer reaches without loss. The flows run
/// CUBIC, which answers every loss it is told of, so its window shows whether it was told (the
/// default BBR hears of them too but answers only loss with a queue or heavy loss).
#[test]
fn protected_bulk_transfer_is_intact_and_losses_still_reach_congestion_control() {
    let mut fixed = FecConfig::fixed(10, 2);
    fixed.classes.push(QosClass::Bulk);
    let run = |loss: LossModel| {
        let (mut s, mut c) = configs(fixed.clone(), fixed.clone());
        for t in [&mut s.transport, &mut c.transport] {
            t.congestion_control = CongestionControl::Cubic(Default::default());
        }
        let (mut pair, mut client, mut server) = common::connected_pair(21, s, c, lossy(20, loss));
        let data = random_bytes(21, 400_000);
        let got = common::transfer(&mut pair.sim, &mut client, &mut server, &data, secs(60));
        assert!(
            got == data,
            "corrupted or incomplete: {} of {}",
            got.len(),
            data.len()
        );
        (client.stats.clone(), server.stats.clone())
    };
    let (c, s) = run(LossModel::Random(0.05));
    let (clean_c, clean_s) = run(LossModel::None);
    eprintln!(
        "bulk 10+2 at 5% loss: {} sources, {} repair, receiver rebuilt {}, sender lost {} \
         (peer reported {} rebuilt), cwnd {} vs {} without loss",
        c.fec_source_sent,
        c.fec_repair_sent,
        s.fec_recovered,
        c.packets_lost,
        c.fec_peer_recovered,
        c.cwnd,
        clean_c.cwnd
    );
    assert!(c.fec_source_sent > 100 && c.fec_repair_sent > 10);
    assert!(s.fec_recovered > 0);
    assert_eq!(clean_s.fec_recovered, 0);
    // Recovered packets are losses to the sender: FEC hides loss from the application only.
    assert!(
        c.packets_lost >= s.fec_recovered,
        "sender counted {} lost, receiver rebuilt {}",
        c.packets_lost,
        s.fec_recovered
    );
    assert!(c.cwnd < clean_c.cwnd, "cwnd {} vs {}", c.cwnd, clean_c.cwnd);
}

/// A peer that does not advertise `fec_max_symbols` is never sent FEC frames, even by a side
/// configured to always protect; the connection works as without FEC.
#[test]
fn a_peer_without_fec_gets_no_fec_frames() {
    let link = lossy(10, LossModel::Random(0.1));
    let out = realtime(
        2,
        link,
        FecConfig::fixed(4, 2),
        FecConfig::off(),
        Kind::MediaStream,
    );
    assert_eq!(out.delivered(), MESSAGES);
    assert_eq!(out.client.fec_source_sent, 0);
    assert_eq!(out.client.fec_repair_sent, 0);
    assert_eq!(out.server.fec_recovered, 0);
    assert_eq!(out.client.fec_shape, None);
    // And the other way round: the server (FEC on) sees an old client.
    let (s, c) = configs(FecConfig::off(), FecConfig::fixed(4, 2));
    let (mut pair, mut client, mut server) =
        common::connected_pair(2, s, c, lossy(10, LossModel::Random(0.1)));
    let id = {
        let conn = server.expect_conn(&mut pair.sim);
        let id = conn.open_stream(Dir::Uni).unwrap();
        conn.set_stream_fec(id, Some(true));
        conn.stream_write(id, &random_bytes(2, 50_000), true)
            .unwrap();
        id
    };
    common::run_until(
        &mut pair.sim,
        &mut [&mut client, &mut server],
        secs(30),
        |a| a[0].finished.contains(&id.0),
    );
    assert_eq!(client.streams.get(&id.0).map_or(0, Vec::len), 50_000);
    assert_eq!(
        server.stats.fec_repair_sent + server.stats.fec_source_sent,
        0
    );
    assert!(client.closed().is_none() && server.closed().is_none());
}

/// With FEC off nothing FEC is sent, whatever the loss; with the adaptive default on a clean
/// path nothing is sent either (no extra bytes until loss is measured).
#[test]
fn fec_off_and_clean_auto_send_no_repair() {
    let off = realtime(
        4,
        lossy(10, LossModel::Random(0.1)),
        FecConfig::off(),
        FecConfig::off(),
        Kind::Datagram,
    );
    assert_eq!(off.client.fec_source_sent + off.client.fec_repair_sent, 0);
    assert_eq!(off.server.fec_recovered, 0);
    let clean = realtime(
        4,
        lossy(10, LossModel::None),
        FecConfig::default(),
        FecConfig::default(),
        Kind::Datagram,
    );
    assert_eq!(clean.delivered(), MESSAGES);
    assert_eq!(
        clean.client.fec_source_sent + clean.client.fec_repair_sent,
        0
    );
    assert_eq!(clean.client.fec_shape, None);
}

/// Real-time messages keep flowing and the connection stays up through 20% loss with FEC.
#[test]
fn connection_survives_20_percent_loss_with_fec() {
    let out = realtime(
        8,
        lossy(50, LossModel::Random(0.2)),
        FecConfig::default(),
        FecConfig::default(),
        Kind::MediaStream,
    );
    assert_eq!(out.delivered(), MESSAGES);
    assert!(out.server.fec_recovered > 0);
    let _ = Instant::ZERO;
}
