//! Behaviour of the simulator as a whole, driven with the toy nodes.

use core::time::Duration;
use std::net::SocketAddr;

use jsp_proto::time::Instant;

use super::*;
use crate::capture::{CaptureRecord, Fate, Origin};
use crate::loss::LossModel;
use crate::middlebox::{Injection, Recorder, Verdict};
use crate::node::Datagram;
use crate::toy::{sequence_number, Echo, Sender, Sink};

const MS: u64 = 1_000_000;

fn ms(n: u64) -> Instant {
    Instant::from_nanos(n * MS)
}

fn addr(host: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, host], 4433))
}

/// A sender at 10.0.0.1 sending to a sink at 10.0.0.2 over `link`.
fn sender_to_sink(seed: u64, sender: Sender, link: LinkConfig) -> (Simulator, NodeId, NodeId) {
    let mut sim = Simulator::new(SimConfig::with_seed(seed));
    let a = sim.add_node(addr(1), sender);
    let b = sim.add_node(addr(2), Sink::default());
    sim.set_link(a, b, link);
    (sim, a, b)
}

fn received_seqs(sim: &Simulator, sink: NodeId) -> Vec<u32> {
    sim.node::<Sink>(sink)
        .received
        .iter()
        .filter_map(|(_, d)| sequence_number(&d.payload))
        .collect()
}

fn arrival_times(sim: &Simulator, sink: NodeId) -> Vec<Instant> {
    sim.node::<Sink>(sink)
        .received
        .iter()
        .map(|(at, _)| *at)
        .collect()
}

#[test]
fn delay_is_applied_exactly() {
    let sender = Sender::new(addr(2), 3, 100).with_interval(Duration::from_millis(10));
    let (mut sim, a, b) =
        sender_to_sink(0, sender, LinkConfig::with_delay(Duration::from_millis(25)));
    sim.run_until(ms(1000));
    assert_eq!(arrival_times(&sim, b), [ms(25), ms(35), ms(45)]);
    assert_eq!(received_seqs(&sim, b), [0, 1, 2]);
    assert_eq!(sim.now(), ms(1000));
    let stats = sim.link_stats(a, b);
    assert_eq!(
        stats.sent,
        Counter {
            datagrams: 3,
            bytes: 300
        }
    );
    assert_eq!(stats.delivered, stats.sent);
    assert_eq!(sim.link_stats(b, a), LinkStats::default());
}

#[test]
fn bandwidth_serializes_and_tail_drops() {
    // 1 Mbit/s: a 1000-byte datagram takes 8 ms; the queue holds three.
    let link = LinkConfig {
        delay: Duration::from_millis(10),
        bandwidth_bps: Some(1_000_000),
        queue_bytes: 3000,
        ..LinkConfig::default()
    };
    let (mut sim, a, b) = sender_to_sink(0, Sender::new(addr(2), 5, 1000), link);
    sim.run_until(ms(1000));
    assert_eq!(arrival_times(&sim, b), [ms(18), ms(26), ms(34)]);
    assert_eq!(received_seqs(&sim, b), [0, 1, 2]);
    let stats = sim.link_stats(a, b);
    assert_eq!(
        stats.queue_dropped,
        Counter {
            datagrams: 2,
            bytes: 2000
        }
    );
    let fates: Vec<Fate> = sim.capture().records().iter().map(|r| r.fate).collect();
    assert_eq!(fates[3..], [Fate::QueueDropped, Fate::QueueDropped]);
}

#[test]
fn paced_sender_under_the_bottleneck_rate_loses_nothing() {
    // 1000 bytes every 10 ms is 0.8 Mbit/s through a 1 Mbit/s bottleneck: 8 ms of queueing each.
    let link = LinkConfig {
        bandwidth_bps: Some(1_000_000),
        queue_bytes: 1000,
        ..LinkConfig::default()
    };
    let sender = Sender::new(addr(2), 50, 1000).with_interval(Duration::from_millis(10));
    let (mut sim, _, b) = sender_to_sink(0, sender, link);
    sim.run_until(ms(1000));
    let expected: Vec<Instant> = (0..50).map(|i| ms(10 * i + 8)).collect();
    assert_eq!(arrival_times(&sim, b), expected);
}

#[test]
fn a_sudden_bandwidth_drop_mid_run() {
    let fast = LinkConfig {
        bandwidth_bps: Some(8_000_000),
        ..LinkConfig::default()
    };
    let sender = Sender::new(addr(2), 4, 1000).with_interval(Duration::from_millis(10));
    let (mut sim, a, b) = sender_to_sink(0, sender, fast);
    sim.run_until(ms(15));
    sim.set_link(
        a,
        b,
        LinkConfig {
            bandwidth_bps: Some(800_000),
            ..LinkConfig::default()
        },
    );
    assert_eq!(sim.link_config(a, b).bandwidth_bps, Some(800_000));
    sim.run_until(ms(1000));
    // 1 ms of serialization before the change, 10 ms after.
    assert_eq!(arrival_times(&sim, b), [ms(1), ms(11), ms(30), ms(40)]);
}

#[test]
fn random_loss_is_near_p_and_reproducible() {
    let run = |seed| {
        let link = LinkConfig {
            loss: LossModel::Random(0.1),
            ..LinkConfig::default()
        };
        let (mut sim, a, b) = sender_to_sink(seed, Sender::new(addr(2), 10_000, 10), link);
        sim.run_until(ms(1));
        let stats = sim.link_stats(a, b);
        assert_eq!(stats.lost.datagrams + stats.delivered.datagrams, 10_000);
        stats.lost.datagrams
    };
    let lost = run(1);
    assert!(
        (900..=1100).contains(&lost),
        "lost {lost} of 10000 at p = 0.1"
    );
    assert_eq!(run(1), lost, "same seed, same losses");
    assert_ne!(run(2), lost, "another seed, other losses");
}

#[test]
fn gilbert_elliott_loses_in_bursts() {
    let link = LinkConfig {
        loss: LossModel::GilbertElliott {
            p_good_to_bad: 0.02,
            p_bad_to_good: 0.2,
            loss_in_good: 0.0,
            loss_in_bad: 1.0,
        },
        ..LinkConfig::default()
    };
    let (mut sim, _, b) = sender_to_sink(3, Sender::new(addr(2), 20_000, 10), link);
    sim.run_until(ms(1));
    let received = received_seqs(&sim, b);
    let mut lost_runs = Vec::new();
    let mut expected = 0;
    for seq in received.iter().copied().chain([20_000]) {
        if seq > expected {
            lost_runs.push(seq - expected);
        }
        expected = seq + 1;
    }
    let lost: u32 = lost_runs.iter().sum();
    let mean_burst = f64::from(lost) / lost_runs.len() as f64;
    assert!(
        mean_burst > 3.0,
        "mean burst {mean_burst} over {} bursts",
        lost_runs.len()
    );
    let rate = f64::from(lost) / 20_000.0;
    assert!((rate - 0.0909).abs() < 0.03, "loss rate {rate}");
}

#[test]
fn duplication_and_corruption_happen_and_are_reported() {
    let link = LinkConfig {
        duplicate: 0.3,
        corrupt: 0.3,
        ..LinkConfig::default()
    };
    let (mut sim, a, b) = sender_to_sink(5, Sender::new(addr(2), 1000, 64), link);
    sim.run_until(ms(1));
    let stats = sim.link_stats(a, b);
    assert!(
        stats.duplicated.datagrams > 200 && stats.duplicated.datagrams < 400,
        "{stats:?}"
    );
    assert!(
        stats.corrupted.datagrams > 200 && stats.corrupted.datagrams < 400,
        "{stats:?}"
    );
    assert_eq!(stats.delivered.datagrams, 1000 + stats.duplicated.datagrams);

    // Every send and copy is captured, and all were delivered at time zero in capture order, so
    // the sink's list lines up with the capture: corrupted ones differ by exactly one bit.
    let records = sim.capture().records();
    let received = &sim.node::<Sink>(b).received;
    assert_eq!(records.len(), received.len());
    for (record, (_, datagram)) in records.iter().zip(received) {
        assert_eq!(record.fate, Fate::Delivered(Instant::ZERO));
        let bits: u32 = record
            .payload
            .iter()
            .zip(&datagram.payload)
            .map(|(x, y)| (x ^ y).count_ones())
            .sum();
        assert_eq!(bits, u32::from(record.corrupted), "{record}");
    }
    let corrupted_sends = records
        .iter()
        .filter(|r| r.corrupted && matches!(r.origin, Origin::Node(_)))
        .count();
    assert_eq!(
        u64::try_from(corrupted_sends).unwrap(),
        stats.corrupted.datagrams
    );
    let copies = records
        .iter()
        .filter(|r| matches!(r.origin, Origin::Duplicate(_)))
        .count();
    assert_eq!(u64::try_from(copies).unwrap(), stats.duplicated.datagrams);
    assert_eq!(records.iter().filter(|r| r.duplicated).count(), copies);
}

#[test]
fn oversized_datagrams_are_dropped_and_counted() {
    let link = LinkConfig {
        mtu: 1200,
        ..LinkConfig::default()
    };
    let mut sim = Simulator::new(SimConfig::default());
    let a = sim.add_node(addr(1), Sender::new(addr(2), 2, 1200));
    let c = sim.add_node(addr(3), Sender::new(addr(2), 3, 1201));
    let b = sim.add_node(addr(2), Sink::default());
    sim.set_link(a, b, link.clone());
    sim.set_link(c, b, link);
    sim.run_until(ms(1));
    assert_eq!(sim.node::<Sink>(b).received.len(), 2);
    assert_eq!(
        sim.link_stats(c, b).mtu_dropped,
        Counter {
            datagrams: 3,
            bytes: 3603
        }
    );
    assert_eq!(sim.link_stats(a, b).mtu_dropped, Counter::default());
    let mtu_drops = sim
        .capture()
        .records()
        .iter()
        .filter(|r| r.fate == Fate::MtuDropped)
        .count();
    assert_eq!(mtu_drops, 3);
}

#[test]
fn jitter_and_reordering_reorder() {
    let link = LinkConfig {
        delay: Duration::from_millis(10),
        jitter: Duration::from_millis(5),
        reorder: 0.1,
        reorder_delay: Duration::from_millis(50),
        ..LinkConfig::default()
    };
    let sender = Sender::new(addr(2), 200, 10).with_interval(Duration::from_millis(1));
    let (mut sim, _, b) = sender_to_sink(11, sender, link);
    sim.run_until(ms(1000));
    let received = &sim.node::<Sink>(b).received;
    assert_eq!(received.len(), 200);
    let seqs = received_seqs(&sim, b);
    assert!(
        seqs.windows(2).any(|w| w[0] > w[1]),
        "nothing was reordered"
    );
    let mut late = 0;
    for (at, d) in received {
        let sent = ms(u64::from(sequence_number(&d.payload).unwrap()));
        let delay = *at - sent;
        assert!(
            delay >= Duration::from_millis(10) && delay <= Duration::from_millis(65),
            "{delay:?}"
        );
        if delay >= Duration::from_millis(60) {
            late += 1;
        }
    }
    assert!(
        (5..=40).contains(&late),
        "{late} datagrams took the reordering delay"
    );
}

fn lossy_exchange(seed: u64) -> Vec<CaptureRecord> {
    let link = LinkConfig {
        delay: Duration::from_millis(5),
        jitter: Duration::from_millis(3),
        loss: LossModel::Random(0.2),
        duplicate: 0.1,
        corrupt: 0.1,
        ..LinkConfig::default()
    };
    let mut sim = Simulator::new(SimConfig::with_seed(seed));
    let a = sim.add_node(
        addr(1),
        Sender::new(addr(2), 100, 50).with_interval(Duration::from_millis(1)),
    );
    let b = sim.add_node(addr(2), Echo::default());
    sim.set_links(a, b, link);
    sim.run_until(ms(1000));
    sim.capture().records().to_vec()
}

#[test]
fn same_seed_same_capture_different_seed_different_capture() {
    let first = lossy_exchange(42);
    assert!(first.len() > 150);
    assert_eq!(first, lossy_exchange(42));
    assert_ne!(first, lossy_exchange(43));
}

#[test]
fn rebind_changes_the_source_the_peer_sees() {
    let sender = Sender::new(addr(2), 4, 10).with_interval(Duration::from_millis(10));
    let mut sim = Simulator::new(SimConfig::default());
    let a = sim.add_node(addr(1), sender);
    let b = sim.add_node(addr(2), Echo::default());
    sim.set_links(a, b, LinkConfig::with_delay(Duration::from_millis(3)));
    // Echoes of datagram 1 (sent at 10 ms) are in flight back to 10.0.0.1 at 14 ms.
    sim.run_until(ms(14));
    assert_eq!(sim.rebind(a, addr(9)), addr(1));
    assert_eq!(sim.addr(a), addr(9));
    assert_eq!(sim.node_at(addr(1)), None);
    sim.run_until(ms(1000));
    let sources: Vec<SocketAddr> = sim
        .node::<Echo>(b)
        .received
        .iter()
        .map(|(_, d)| d.src)
        .collect();
    assert_eq!(sources, [addr(1), addr(1), addr(9), addr(9)]);
    // The echo of datagram 1 was in flight to the old address and was dropped.
    let echoed: Vec<u32> = sim
        .node::<Sender>(a)
        .received
        .iter()
        .filter_map(|(_, d)| sequence_number(&d.payload))
        .collect();
    assert_eq!(echoed, [0, 2, 3]);
    assert_eq!(sim.link_stats(b, a).unbound.datagrams, 1);
    assert!(sim
        .capture()
        .records()
        .iter()
        .any(|r| r.fate == Fate::AddressGone));
}

#[test]
fn rebind_can_deliver_in_flight_datagrams() {
    let mut sim = Simulator::new(SimConfig {
        deliver_after_rebind: true,
        ..SimConfig::default()
    });
    let a = sim.add_node(addr(1), Sink::default());
    let b = sim.add_node(addr(2), Sender::new(addr(1), 1, 10));
    sim.set_link(b, a, LinkConfig::with_delay(Duration::from_millis(3)));
    sim.run_until(ms(1));
    sim.rebind(a, addr(9));
    sim.run_until(ms(10));
    let received = &sim.node::<Sink>(a).received;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].1.dst, addr(1));
}

#[test]
fn sending_to_an_unbound_address_is_counted() {
    let mut sim = Simulator::new(SimConfig::default());
    sim.add_node(addr(1), Sender::new(addr(7), 2, 10));
    sim.run_until(ms(1));
    assert_eq!(
        sim.stats().unroutable,
        Counter {
            datagrams: 2,
            bytes: 20
        }
    );
    assert!(sim
        .capture()
        .records()
        .iter()
        .all(|r| r.fate == Fate::NoRoute));
}

#[test]
fn middlebox_drops_and_rewrites() {
    let (mut sim, a, b) = sender_to_sink(0, Sender::new(addr(2), 6, 8), LinkConfig::default());
    sim.add_middlebox(
        Scope::Link(a, b),
        |_now: Instant, d: &mut Datagram| match sequence_number(&d.payload) {
            Some(seq) if seq % 2 == 0 => Verdict::Drop,
            _ => {
                d.payload[7] = 0xAA;
                Verdict::Forward
            }
        },
    );
    // A middlebox on the other direction sees nothing.
    let idle = sim.add_middlebox(Scope::Link(b, a), Recorder::default());
    sim.run_until(ms(1));
    assert_eq!(received_seqs(&sim, b), [1, 3, 5]);
    assert!(sim
        .node::<Sink>(b)
        .received
        .iter()
        .all(|(_, d)| d.payload[7] == 0xAA));
    assert_eq!(sim.link_stats(a, b).middlebox_dropped.datagrams, 3);
    assert!(sim.middlebox::<Recorder>(idle).seen.is_empty());
    let records = sim.capture().records();
    assert_eq!(records.iter().filter(|r| r.rewritten).count(), 3);
    assert_eq!(
        records
            .iter()
            .filter(|r| r.fate == Fate::MiddleboxDropped)
            .count(),
        3
    );
}

#[test]
fn middlebox_redirects_to_another_node() {
    let mut sim = Simulator::new(SimConfig::default());
    let a = sim.add_node(addr(1), Sender::new(addr(2), 2, 8));
    let b = sim.add_node(addr(2), Sink::default());
    let c = sim.add_node(addr(3), Sink::default());
    sim.add_middlebox(Scope::Global, |_now: Instant, d: &mut Datagram| {
        d.dst = addr(3);
        Verdict::Forward
    });
    sim.run_until(ms(1));
    assert!(sim.node::<Sink>(b).received.is_empty());
    assert_eq!(sim.node::<Sink>(c).received.len(), 2);
    // Accounted on the link it entered.
    assert_eq!(sim.link_stats(a, b).delivered.datagrams, 2);
}

/// Replays every datagram it sees 100 ms later, with a spoofed source.
struct Replayer {
    pending: Vec<Injection>,
}

impl Middlebox for Replayer {
    fn on_datagram(&mut self, now: Instant, datagram: &mut Datagram) -> Verdict {
        let mut copy = datagram.clone();
        copy.src = addr(66);
        self.pending.push(Injection {
            at: now + Duration::from_millis(100),
            datagram: copy,
        });
        Verdict::Forward
    }
    fn poll_inject(&mut self, _now: Instant) -> Option<Injection> {
        self.pending.pop()
    }
}

#[test]
fn middlebox_injects_replays() {
    let sender = Sender::new(addr(2), 2, 8).with_interval(Duration::from_millis(1));
    let (mut sim, a, b) =
        sender_to_sink(0, sender, LinkConfig::with_delay(Duration::from_millis(10)));
    sim.add_middlebox(
        Scope::Link(a, b),
        Replayer {
            pending: Vec::new(),
        },
    );
    sim.run_until(ms(1000));
    let received: Vec<(Instant, SocketAddr, Option<u32>)> = sim
        .node::<Sink>(b)
        .received
        .iter()
        .map(|(at, d)| (*at, d.src, sequence_number(&d.payload)))
        .collect();
    assert_eq!(
        received,
        [
            (ms(10), addr(1), Some(0)),
            (ms(11), addr(1), Some(1)),
            (ms(100), addr(66), Some(0)),
            (ms(101), addr(66), Some(1)),
        ]
    );
    assert_eq!(sim.stats().injected.datagrams, 2);
    let injected = sim
        .capture()
        .records()
        .iter()
        .filter(|r| r.origin == Origin::Injected)
        .count();
    assert_eq!(injected, 2);
}

#[test]
fn recorded_datagrams_can_be_replayed_by_the_test() {
    let (mut sim, a, b) = sender_to_sink(0, Sender::new(addr(2), 1, 8), LinkConfig::default());
    let recorder = sim.add_middlebox(Scope::Link(a, b), Recorder::default());
    sim.run_until(ms(5));
    let (seen_at, datagram) = sim.middlebox::<Recorder>(recorder).seen[0].clone();
    assert_eq!(seen_at, Instant::ZERO);
    sim.inject(ms(20), datagram.clone());
    // Injecting into the past delivers now.
    sim.inject(Instant::ZERO, datagram);
    sim.run_until(ms(100));
    assert_eq!(arrival_times(&sim, b), [ms(0), ms(5), ms(20)]);
    assert!(sim.remove_middlebox(recorder));
    assert!(!sim.remove_middlebox(recorder));
    assert!(sim.try_middlebox::<Recorder>(recorder).is_none());
}

/// Asks for a timeout at each of `wants` in turn and records when it fired.
struct Alarm {
    wants: Vec<Instant>,
    fired: Vec<Instant>,
}

impl Node for Alarm {
    fn handle_datagram(&mut self, _now: Instant, _datagram: Datagram) {}
    fn poll_transmit(&mut self, _now: Instant) -> Option<Datagram> {
        None
    }
    fn poll_timeout(&mut self) -> Option<Instant> {
        self.wants.first().copied()
    }
    fn handle_timeout(&mut self, now: Instant) {
        assert!(now >= self.wants[0], "fired early");
        self.wants.remove(0);
        self.fired.push(now);
    }
}

#[test]
fn timeouts_fire_at_the_requested_time() {
    let mut sim = Simulator::new(SimConfig::default());
    let id = sim.add_node(
        addr(1),
        Alarm {
            wants: vec![ms(7), ms(19), ms(19), ms(40)],
            fired: Vec::new(),
        },
    );
    sim.run_until(ms(30));
    assert_eq!(sim.node::<Alarm>(id).fired, [ms(7), ms(19), ms(19)]);
    // Moving the pending timer earlier makes the old entry stale.
    sim.node_mut::<Alarm>(id).wants = vec![ms(33)];
    sim.run_until(ms(100));
    assert_eq!(sim.node::<Alarm>(id).fired, [ms(7), ms(19), ms(19), ms(33)]);
    assert!(!sim.step(), "the stale 40 ms timer must not fire");
    assert_eq!(sim.pending_events(), 0);
}

#[test]
fn a_timer_tick_makes_timeouts_fire_on_the_next_tick() {
    let mut sim = Simulator::new(SimConfig::default());
    let id = sim.add_node(
        addr(1),
        Alarm {
            wants: vec![
                Instant::from_nanos(7_300_000),
                ms(8),
                ms(9) + Duration::from_nanos(1),
            ],
            fired: Vec::new(),
        },
    );
    sim.set_timer_tick(id, Some(Duration::from_millis(2)));
    sim.run_until(ms(30));
    // 7.3 ms and 8 ms both fire at the 8 ms tick; just past 9 ms waits for 10 ms.
    assert_eq!(sim.node::<Alarm>(id).fired, [ms(8), ms(8), ms(10)]);
}

#[test]
fn a_timeout_in_the_past_fires_now() {
    let mut sim = Simulator::new(SimConfig::default());
    sim.run_until(ms(50));
    let id = sim.add_node(
        addr(1),
        Alarm {
            wants: vec![ms(10)],
            fired: Vec::new(),
        },
    );
    assert!(sim.step());
    assert_eq!(sim.node::<Alarm>(id).fired, [ms(50)]);
}

#[test]
fn run_while_stops_on_the_predicate_the_deadline_or_idleness() {
    let sender = Sender::new(addr(2), 1000, 10).with_interval(Duration::from_millis(10));
    let (mut sim, _, b) =
        sender_to_sink(0, sender, LinkConfig::with_delay(Duration::from_millis(5)));
    let reason = sim.run_while(
        |sim| sim.node::<Sink>(b).received.len() < 5,
        Duration::from_secs(10),
    );
    assert_eq!(reason, StopReason::PredicateFalse);
    assert_eq!(sim.now(), ms(45));
    let reason = sim.run_while(|_| true, Duration::from_millis(1000));
    assert_eq!(reason, StopReason::Deadline);
    assert_eq!(sim.now(), ms(1045));
    assert_eq!(sim.node::<Sink>(b).received.len(), 105);

    let mut quiet = Simulator::new(SimConfig::default());
    quiet.add_node(addr(1), Sink::default());
    assert_eq!(
        quiet.run_while(|_| true, Duration::from_secs(1)),
        StopReason::Idle
    );
    assert_eq!(quiet.now(), Instant::ZERO);
}

#[test]
#[should_panic(expected = "livelock")]
fn zero_delay_ping_pong_is_caught_as_livelock() {
    let mut sim = Simulator::new(SimConfig {
        max_events_per_instant: 1000,
        ..SimConfig::default()
    });
    sim.add_node(addr(1), Echo::default());
    sim.add_node(addr(2), Echo::default());
    sim.inject(
        Instant::ZERO,
        Datagram::new(addr(1), addr(2), b"ping".to_vec()),
    );
    sim.run_until(ms(1));
}

#[test]
fn node_mut_wakes_the_node() {
    let mut sim = Simulator::new(SimConfig::default());
    let a = sim.add_node(addr(1), Sender::new(addr(2), 0, 10));
    let b = sim.add_node(addr(2), Sink::default());
    sim.run_until(ms(10));
    assert!(sim.node::<Sink>(b).received.is_empty());
    sim.node_mut::<Sender>(a).count = 1;
    assert!(sim.step());
    assert_eq!(arrival_times(&sim, b), [ms(10)]);
}

#[test]
fn typed_access_checks_the_type() {
    let mut sim = Simulator::new(SimConfig::default());
    let id = sim.add_node(addr(1), Sink::default());
    assert!(sim.try_node::<Echo>(id).is_none());
    assert!(sim.try_node_mut::<Echo>(id).is_none());
    assert!(sim.try_node::<Sink>(id).is_some());
    assert_eq!(sim.node_count(), 1);
    assert_eq!(id.index(), 0);
    assert_eq!(id.to_string(), "node0");
}

#[test]
#[should_panic(expected = "is not a")]
fn wrong_node_type_panics() {
    let mut sim = Simulator::new(SimConfig::default());
    let id = sim.add_node(addr(1), Sink::default());
    let _ = sim.node::<Echo>(id);
}

#[test]
#[should_panic(expected = "is bound there")]
fn two_nodes_cannot_share_an_address() {
    let mut sim = Simulator::new(SimConfig::default());
    sim.add_node(addr(1), Sink::default());
    sim.add_node(addr(1), Sink::default());
}

#[test]
fn capture_counts_bytes_and_respects_its_limit() {
    let mut sim = Simulator::new(SimConfig {
        capture_limit: 3,
        ..SimConfig::default()
    });
    let a = sim.add_node(addr(1), Sender::new(addr(2), 5, 100));
    sim.add_node(addr(2), Sink::default());
    sim.run_until(ms(1));
    assert_eq!(sim.capture().records().len(), 3);
    assert_eq!(sim.capture().overflowed(), 2);
    assert_eq!(sim.capture().bytes_sent_by(a), 300);
    sim.capture_mut().clear();
    assert!(sim.capture().records().is_empty());
}

#[test]
fn links_have_independent_random_streams() {
    // Traffic on another link does not change the losses on this one.
    let losses = |with_other_traffic: bool| {
        let link = LinkConfig {
            loss: LossModel::Random(0.5),
            ..LinkConfig::default()
        };
        let mut sim = Simulator::new(SimConfig {
            seed: 9,
            default_link: link,
            ..SimConfig::default()
        });
        let a = sim.add_node(addr(1), Sender::new(addr(2), 100, 10));
        let b = sim.add_node(addr(2), Sink::default());
        let other = if with_other_traffic { 50 } else { 0 };
        sim.add_node(addr(3), Sender::new(addr(4), other, 10));
        sim.add_node(addr(4), Sink::default());
        sim.run_until(ms(1));
        let _ = a;
        received_seqs(&sim, b)
    };
    assert_eq!(losses(false), losses(true));
}
