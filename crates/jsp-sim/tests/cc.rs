//! Congestion control, pacing and path MTU discovery in the simulator (PROTOCOL.md §15): a bulk
//! flow fills a 100 Mbit/s, 20 ms path; two flows share it fairly; a sudden bandwidth drop does
//! not cause a loss storm; BBR keeps its rate under random loss; the path MTU is found (by a busy
//! and by an idle connection) and a black hole is survived.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is a test failure

mod common_bulk;

use std::sync::Arc;

use core::time::Duration;

use common_bulk::{bottleneck, configs, mbps, Bulk};
use jsp_proto::recovery::congestion::{BbrConfig, CongestionControl};
use jsp_proto::time::Instant;
use jsp_proto::ConnectionHandle;
use jsp_sim::engine::{EndpointNode, Pair};
use jsp_sim::{Datagram, Injection, LinkConfig, LossModel, Middlebox, Scope, Verdict};

fn connected(seed: u64, link: LinkConfig, cc: CongestionControl) -> Pair {
    let (s, c) = configs(seed, |t| t.congestion_control = cc);
    let mut p = Pair::new(seed, s, c, link);
    assert!(p.drive_handshake(Duration::from_secs(5)));
    p
}

fn cubic() -> CongestionControl {
    CongestionControl::Cubic(Default::default())
}

fn bbr() -> CongestionControl {
    CongestionControl::Bbr(BbrConfig::default())
}

#[test]
fn one_bulk_flow_uses_at_least_90_percent_of_a_100mbit_20ms_path() {
    for cc in [cubic(), bbr()] {
        let mut p = connected(61, bottleneck(100, 10), cc);
        let h = p.client_conn;
        let mut bulk = Bulk::new(&mut p, &[h]);
        bulk.run(&mut p, Duration::from_secs(3)); // ramp up
        let measured = Duration::from_secs(4);
        let got = bulk.run(&mut p, measured);
        let rate = mbps(got[0], measured);
        eprintln!("utilisation {}: {rate:.1} Mbit/s of 100", cc_name(cc));
        assert!(rate >= 90.0, "{cc:?}: {rate:.1} Mbit/s of 100");
    }
}

/// Delivers the server's datagrams (the ACKs of a bulk upload) after the path's one-way delay,
/// but only on a `tick` boundary, in bursts: ACK compression, as receive batching (GRO), Wi-Fi
/// aggregation and a relay's timer produce it.
struct AckCompressor {
    delay: Duration,
    tick_ns: u64,
    held: std::collections::VecDeque<Injection>,
}

impl Middlebox for AckCompressor {
    fn on_datagram(&mut self, now: Instant, datagram: &mut Datagram) -> Verdict {
        let due = now.saturating_add(self.delay).as_nanos();
        let at = Instant::from_nanos(due.div_ceil(self.tick_ns) * self.tick_ns);
        self.held.push_back(Injection {
            at,
            datagram: datagram.clone(),
        });
        Verdict::Drop
    }

    fn poll_inject(&mut self, _now: Instant) -> Option<Injection> {
        self.held.pop_front()
    }
}

/// With ACKs arriving in bursts and timers firing on a 1 ms tick (tokio's), a paced sender often
/// has window to spare while the pacer holds the next packet. That is not running out of data:
/// the window must keep growing until the long path is full. (Counting it as application-limited
/// froze slow start at 15 Mbit/s on a real 100 ms path.)
#[test]
fn paced_sender_with_compressed_acks_fills_a_long_path() {
    for cc in [cubic(), bbr()] {
        let mut p = connected(64, bottleneck(100, 50), cc);
        for node in [p.client, p.server] {
            p.sim.set_timer_tick(node, Some(Duration::from_millis(1)));
        }
        p.sim.add_middlebox(
            Scope::Link(p.server, p.client),
            AckCompressor {
                delay: Duration::from_millis(50),
                tick_ns: 4_000_000,
                held: std::collections::VecDeque::new(),
            },
        );
        let h = p.client_conn;
        let mut bulk = Bulk::new(&mut p, &[h]);
        bulk.run(&mut p, Duration::from_secs(3)); // ramp up
        let measured = Duration::from_secs(3);
        let got = bulk.run(&mut p, measured);
        let rate = mbps(got[0], measured);
        eprintln!(
            "100 ms path, ACKs in 4 ms bursts, {}: {rate:.1} Mbit/s of 100",
            cc_name(cc)
        );
        assert!(rate >= 80.0, "{cc:?}: {rate:.1} Mbit/s of 100");
    }
}

/// Two flows started `gap` apart on a 50 Mbit/s, 10 ms one-way bottleneck with a 1-BDP queue:
/// after 10 s of convergence, the first flow's share and the two flows' total goodput over each
/// of `windows` consecutive 10 s windows.
fn two_flows(cc: CongestionControl, gap: Duration, windows: usize) -> Vec<(f64, f64)> {
    let mut p = connected(62, bottleneck(50, 10), cc);
    let now = p.sim.now();
    let (_, c) = configs(62, |t| t.congestion_control = cc);
    let server_addr = p.server_addr;
    let h2 = p
        .sim
        .node_mut::<EndpointNode>(p.client)
        .endpoint
        .connect(now, Arc::new(c), server_addr)
        .unwrap();
    p.sim.wake(p.client);
    p.sim.run_for(gap);
    let h1 = p.client_conn;
    let mut bulk = Bulk::new(&mut p, &[h1, h2]);
    bulk.run(&mut p, Duration::from_secs(10));
    let measured = Duration::from_secs(10);
    (0..windows)
        .map(|i| {
            let got = bulk.run(&mut p, measured);
            assert_eq!(got.len(), 2);
            let (a, b) = (got[0] as f64, got[1] as f64);
            let share = a / (a + b);
            let total = mbps(got[0] + got[1], measured);
            eprintln!(
                "fairness, {}, started {} ms apart, {}-{} s: {:.1} / {:.1} Mbit/s (share {share:.3})",
                cc_name(cc),
                gap.as_millis(),
                10 * (i + 1),
                10 * (i + 2),
                mbps(got[0], measured),
                mbps(got[1], measured)
            );
            (share, total)
        })
        .collect()
}

#[test]
fn two_cubic_flows_share_a_bottleneck_within_20_percent() {
    let (share, total) = two_flows(cubic(), Duration::from_millis(500), 1)[0];
    assert!((0.4..=0.6).contains(&share), "share {share:.3}");
    assert!(total > 45.0, "together they fill the link: {total:.1}");
}

/// Two BBR flows converge to a fair share and stay there: every 10 s window from 10 s to 40 s
/// splits within 35/65, for two start gaps, and together they fill the link. (Before the loss
/// response told its own probe's loss from another flow's, the split drifted apart: the first
/// flow's share was 0.66, 0.88 and 0.83 after 10, 20 and 30 s with a 500 ms gap, and 0.68, 0.76
/// and 0.78 with 200 ms.)
#[test]
fn two_bbr_flows_converge_to_a_fair_share_and_fill_the_link() {
    for gap in [500, 200] {
        for (i, (share, total)) in two_flows(bbr(), Duration::from_millis(gap), 3)
            .into_iter()
            .enumerate()
        {
            let from = 10 * (i + 1);
            assert!(
                (0.35..=0.65).contains(&share),
                "{gap} ms apart, {from} s on: share {share:.3}"
            );
            assert!(
                total > 45.0,
                "{gap} ms apart, {from} s on: together they fill the link: {total:.1}"
            );
        }
    }
}

#[test]
fn a_sudden_bandwidth_drop_does_not_cause_a_loss_storm() {
    for cc in [cubic(), bbr()] {
        let mut p = connected(63, bottleneck(100, 10), cc);
        let h = p.client_conn;
        let mut bulk = Bulk::new(&mut p, &[h]);
        bulk.run(&mut p, Duration::from_secs(3));
        let before = client_stats(&mut p, h);
        let (c, s) = (p.client, p.server);
        p.sim.set_link(c, s, bottleneck(20, 10));
        // The first RTTs lose what no longer fits: up to a window in flight at the drop plus
        // what the sender sends before the first loss is detected (a multiplicative decrease of
        // 0.7 needs a few rounds to get from 5x too much down to the new rate). The window, not
        // the data in flight, bounds it: BBR's is twice the BDP it keeps in flight.
        bulk.run(&mut p, Duration::from_millis(500));
        let adapted = client_stats(&mut p, h);
        let burst = adapted.packets_lost - before.packets_lost;
        let window_packets = before.cwnd.max(before.bytes_in_flight) / 1200 + 1;
        eprintln!(
            "{}: {burst} lost after the drop; window {window_packets} packets",
            cc_name(cc)
        );
        assert!(
            burst <= 2 * window_packets,
            "{cc:?}: {burst} lost right after the drop, the window was {window_packets} packets"
        );
        // Then no storm: loss stays rare while the link is kept full.
        let got = bulk.run(&mut p, Duration::from_secs(3));
        let st = client_stats(&mut p, h);
        let lost = st.packets_lost - adapted.packets_lost;
        let sent = st.packets_sent - adapted.packets_sent;
        let loss_rate = lost as f64 / sent as f64;
        assert!(
            loss_rate < 0.02,
            "{cc:?}: lost {lost} of {sent} packets after adapting"
        );
        let rate = mbps(got[0], Duration::from_secs(3));
        assert!(
            rate > 14.0,
            "{cc:?}: still uses the new 20 Mbit/s ({rate:.1})"
        );
    }
}

/// Goodput of one default (BBR) bulk flow on a 100 Mbit/s path with `one_way` delay and `loss`
/// random loss in both directions, after a 2 s ramp, over 3 s.
fn goodput_with_loss(seed: u64, one_way: u64, loss: f64) -> f64 {
    let link = LinkConfig {
        loss: LossModel::Random(loss),
        ..bottleneck(100, one_way)
    };
    let mut p = connected(seed, link, CongestionControl::default());
    let h = p.client_conn;
    let mut bulk = Bulk::new(&mut p, &[h]);
    bulk.run(&mut p, Duration::from_secs(2));
    let measured = Duration::from_secs(3);
    mbps(bulk.run(&mut p, measured)[0], measured)
}

/// Seeds each lossy configuration runs with: one seed's loss pattern moves the ratio by up to
/// 0.1 at 10% loss (0.72 to 0.91 over 16 seeds at 100 ms), so the median of several is judged.
const LOSS_SEEDS: [u64; 5] = [1, 2, 3, 4, 5];

/// Random loss (a radio link) is not congestion: the default controller keeps most of the
/// lossless goodput (issue target: 90% at 5% loss; the real-socket numbers are in
/// docs/BENCHMARKS.md). Before BBR answered only loss that comes with a queue, 10% loss took a
/// 20 ms path down to 0.2 Mbit/s; before flow control grew its window for a blocked peer, 5%
/// loss held a 100 ms path to 43 Mbit/s, and before data held behind a hole widened the
/// window at once (0.83 of lossless at 5%, 100 ms) the stalls cost a tenth more. Pacing for the
/// random loss measured in the drain phase took 5% loss at 20 ms from 0.92 to 0.94 and 10% from
/// 0.84 to 0.90 (one seed). Medians over [`LOSS_SEEDS`] when written: 0.993, 0.947, 0.898 at
/// 20 ms and 0.989, 0.911, 0.843 at 100 ms.
#[test]
fn random_loss_keeps_most_of_the_lossless_goodput() {
    for (one_way, losses) in [
        (10, [(0.01, 0.95), (0.05, 0.92), (0.10, 0.86)]),
        (50, [(0.01, 0.9), (0.05, 0.88), (0.10, 0.8)]),
    ] {
        let clean = goodput_with_loss(64, one_way, 0.0);
        for (loss, at_least) in losses {
            // Independent simulations: one thread each.
            let mut ratios: Vec<f64> = std::thread::scope(|scope| {
                let runs: Vec<_> = LOSS_SEEDS
                    .iter()
                    .map(|&seed| scope.spawn(move || goodput_with_loss(seed, one_way, loss)))
                    .collect();
                runs.into_iter()
                    .map(|r| r.join().expect("simulation thread") / clean)
                    .collect()
            });
            ratios.sort_by(f64::total_cmp);
            let ratio = ratios[ratios.len() / 2];
            eprintln!(
                "{} ms RTT, {}% loss: median {ratio:.3} of {clean:.1} Mbit/s (seeds: {ratios:.3?})",
                2 * one_way,
                loss * 100.0
            );
            assert!(ratio >= at_least, "{ratio:.3} < {at_least}");
        }
    }
}

#[test]
fn path_mtu_is_discovered_and_a_black_hole_is_survived() {
    let link = LinkConfig {
        mtu: 1350,
        ..bottleneck(100, 10)
    };
    let mut p = connected(65, link.clone(), CongestionControl::default());
    let h = p.client_conn;
    let mut bulk = Bulk::new(&mut p, &[h]);
    bulk.run(&mut p, Duration::from_secs(2));
    let mtu = client_stats(&mut p, h).mtu;
    assert!(
        (1330..=1350).contains(&mtu),
        "found {mtu} on a 1350-byte path"
    );
    // The path suddenly carries only 1200-byte datagrams.
    let (c, s) = (p.client, p.server);
    p.sim.set_link(c, s, LinkConfig { mtu: 1200, ..link });
    bulk.run(&mut p, Duration::from_secs(5));
    assert_eq!(
        client_stats(&mut p, h).mtu,
        1200,
        "fell back to the base size"
    );
    let measured = Duration::from_secs(2);
    let got = bulk.run(&mut p, measured);
    assert!(
        mbps(got[0], measured) > 50.0,
        "data flows again after the black hole"
    );
}

/// An idle connection finds its path MTU too: a probe is its own reason to send (PING and
/// padding), so the search does not wait for application data to carry it.
#[test]
fn path_mtu_is_discovered_on_an_idle_connection() {
    let link = LinkConfig {
        mtu: 1350,
        ..bottleneck(100, 10)
    };
    let mut p = connected(66, link, CongestionControl::default());
    let h = p.client_conn;
    p.sim.run_for(Duration::from_secs(3));
    let client = client_stats(&mut p, h).mtu;
    let server = p.server_conn().expect("server connection").stats().mtu;
    for (side, mtu) in [("client", client), ("server", server)] {
        assert!(
            (1330..=1350).contains(&mtu),
            "{side} found {mtu} on a 1350-byte path, with no data sent"
        );
    }
}

fn cc_name(cc: CongestionControl) -> &'static str {
    match cc {
        CongestionControl::Bbr(_) => "bbr",
        CongestionControl::NewReno => "newreno",
        _ => "cubic",
    }
}

fn client_stats(p: &mut Pair, h: ConnectionHandle) -> jsp_proto::ConnectionStats {
    p.sim
        .node_mut::<EndpointNode>(p.client)
        .endpoint
        .connection_mut(h)
        .expect("client connection")
        .stats()
}

/// A lossy handshake is not a bandwidth measurement: its flights wait on the handshake, not on
/// the window, so their rounds cannot end BBR's startup. (They once did, on a few seeds at 10-20%
/// loss: the bulk transfer that followed started in ProbeBW at its first tiny sample and took
/// seconds to reach the link rate.)
#[test]
fn a_lossy_handshake_does_not_end_startup() {
    for seed in 1..=30 {
        let link = LinkConfig {
            loss: LossModel::Random(0.2),
            ..bottleneck(100, 10)
        };
        let mut p = connected(seed, link, CongestionControl::default());
        // The connection sits idle a while (handshake confirmation, ACKs, a heartbeat).
        p.sim.run_for(Duration::from_millis(500));
        let h = p.client_conn;
        let phase = client_stats(&mut p, h).congestion_phase;
        assert_eq!(
            phase,
            Some(jsp_proto::recovery::congestion::Phase::Startup),
            "seed {seed}"
        );
    }
}
