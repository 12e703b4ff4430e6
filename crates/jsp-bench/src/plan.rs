//! How big each scenario is in each mode: `smoke` (CI: proves the harness
//! works, measures nothing worth reading), `quick` (under three minutes on
//! two cores) and `full`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The size of a benchmark run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Tiny sizes, one run: keeps the harness from rotting in CI.
    Smoke,
    /// The default: medians of 5 runs in under 3 minutes on 2 cores.
    Quick,
    /// Full sizes (1 GiB bulk, 100,000 idle connections where the machine allows).
    Full,
}

/// Every size a scenario needs, for one mode.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The mode this plan is for.
    pub mode: Mode,
    /// Repetitions of every measurement.
    pub runs: usize,
    /// Bytes moved by `bulk` (and split over the streams of `bulk8`).
    pub bulk_bytes: u64,
    /// Messages per closed-loop request/response run.
    pub rr_closed_messages: usize,
    /// Messages per second of the fixed-rate request/response runs.
    pub rr_rate: u32,
    /// Messages per fixed-rate request/response run.
    pub rr_rate_messages: usize,
    /// Sequential handshakes per latency run.
    pub handshakes: usize,
    /// Concurrent clients in the handshake-rate run.
    pub handshake_concurrency: usize,
    /// Handshakes per handshake-rate run.
    pub handshake_rate_total: usize,
    /// Idle connections held open.
    pub idle_conns: usize,
    /// Idle connections for the TCP peers (one file descriptor per
    /// connection on each side: capped by the open-files limit).
    pub idle_conns_tcp: usize,
    /// Streams opened, used and closed on one connection.
    pub streams: usize,
    /// Streams in flight at once in the streams scenario.
    pub stream_concurrency: usize,
    /// Datagrams echoed per datagram run.
    pub datagrams: usize,
    /// Connections in the multi-core `scaling` scenario.
    pub scaling_conns: usize,
    /// The loss benchmarks (`--scenario loss`, `--scenario sim-loss`).
    pub loss: LossPlan,
}

/// Sizes of the loss benchmarks (their own group: never part of a run
/// without `--scenario`).
#[derive(Clone, Debug)]
pub struct LossPlan {
    /// Repetitions (a `--runs` given on the command line wins).
    pub runs: usize,
    /// Bottleneck rate of the emulated link (both directions), bits/s.
    pub rate_bps: u64,
    /// Bulk: time before the goodput window (slow start, window growth), at least
    /// [`BULK_WARMUP_ROUND_TRIPS`] round trips (see [`LossPlan::bulk_warmup_for`]).
    pub bulk_warmup: Duration,
    /// Bulk: the goodput window.
    pub bulk_window: Duration,
    /// Real-time messages per second.
    pub rt_rate: u32,
    /// Real-time messages per run.
    pub rt_messages: usize,
    /// Simulator: bottleneck rate (smaller in smoke mode: debug builds).
    pub sim_rate_bps: u64,
    /// Simulator: bulk warm-up.
    pub sim_bulk_warmup: Duration,
    /// Simulator: bulk window.
    pub sim_bulk_window: Duration,
    /// Simulator: real-time messages per run.
    pub sim_rt_messages: usize,
}

/// The bulk warm-up lasts at least this many round trips: goodput is a steady-state measure,
/// and startup on a 100 ms, 100 Mbit/s path (7 doublings to its 1.25 MB BDP, then draining the
/// queue they built) takes 1.3 to 2 s for every implementation measured.
pub const BULK_WARMUP_ROUND_TRIPS: u32 = 20;

impl LossPlan {
    /// The real-socket bulk warm-up on a path with `rtt`: the plan's, or
    /// [`BULK_WARMUP_ROUND_TRIPS`] round trips when that is longer.
    pub fn bulk_warmup_for(&self, rtt: Duration) -> Duration {
        self.bulk_warmup.max(rtt * BULK_WARMUP_ROUND_TRIPS)
    }

    /// The simulator's bulk warm-up on a path with `rtt` (as [`LossPlan::bulk_warmup_for`]).
    pub fn sim_bulk_warmup_for(&self, rtt: Duration) -> Duration {
        self.sim_bulk_warmup.max(rtt * BULK_WARMUP_ROUND_TRIPS)
    }

    /// The loss sizes for `mode`.
    pub fn for_mode(mode: Mode) -> Self {
        let secs = Duration::from_secs_f64;
        match mode {
            Mode::Smoke => LossPlan {
                runs: 1,
                rate_bps: 100_000_000,
                bulk_warmup: secs(0.5),
                bulk_window: secs(0.5),
                rt_rate: 100,
                rt_messages: 50,
                sim_rate_bps: 10_000_000,
                sim_bulk_warmup: secs(0.5),
                sim_bulk_window: secs(0.5),
                sim_rt_messages: 50,
            },
            Mode::Quick => LossPlan {
                runs: 1,
                rate_bps: 100_000_000,
                bulk_warmup: secs(1.0),
                bulk_window: secs(2.0),
                rt_rate: 100,
                rt_messages: 300,
                sim_rate_bps: 100_000_000,
                sim_bulk_warmup: secs(1.0),
                sim_bulk_window: secs(3.0),
                sim_rt_messages: 1_000,
            },
            Mode::Full => LossPlan {
                runs: 3,
                rate_bps: 100_000_000,
                bulk_warmup: secs(2.0),
                bulk_window: secs(10.0),
                rt_rate: 100,
                rt_messages: 3_000,
                sim_rate_bps: 100_000_000,
                sim_bulk_warmup: secs(2.0),
                sim_bulk_window: secs(10.0),
                sim_rt_messages: 10_000,
            },
        }
    }
}

impl Plan {
    /// The plan for `mode`.
    pub fn for_mode(mode: Mode) -> Self {
        match mode {
            Mode::Smoke => Plan {
                mode,
                runs: 1,
                bulk_bytes: 4 << 20,
                rr_closed_messages: 100,
                rr_rate: 2_000,
                rr_rate_messages: 200,
                handshakes: 10,
                handshake_concurrency: 4,
                handshake_rate_total: 20,
                idle_conns: 100,
                idle_conns_tcp: 100,
                streams: 200,
                stream_concurrency: 20,
                datagrams: 1_000,
                scaling_conns: 2,
                loss: LossPlan::for_mode(mode),
            },
            Mode::Quick => Plan {
                mode,
                runs: 5,
                bulk_bytes: 256 << 20,
                rr_closed_messages: 2_000,
                rr_rate: 8_000,
                rr_rate_messages: 4_000,
                handshakes: 200,
                handshake_concurrency: 32,
                handshake_rate_total: 2_000,
                idle_conns: 10_000,
                idle_conns_tcp: 10_000,
                streams: 10_000,
                stream_concurrency: 50,
                datagrams: 50_000,
                scaling_conns: 8,
                loss: LossPlan::for_mode(mode),
            },
            Mode::Full => Plan {
                mode,
                runs: 5,
                bulk_bytes: 1 << 30,
                rr_closed_messages: 20_000,
                rr_rate: 10_000,
                rr_rate_messages: 50_000,
                handshakes: 1_000,
                handshake_concurrency: 64,
                handshake_rate_total: 10_000,
                idle_conns: 100_000,
                idle_conns_tcp: 18_000,
                streams: 10_000,
                stream_concurrency: 50,
                datagrams: 500_000,
                scaling_conns: 8,
                loss: LossPlan::for_mode(mode),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bulk_warmup_covers_twenty_round_trips() {
        let plan = LossPlan::for_mode(Mode::Quick);
        let ms = Duration::from_millis;
        assert_eq!(plan.bulk_warmup_for(ms(20)), plan.bulk_warmup);
        assert_eq!(plan.bulk_warmup_for(ms(100)), ms(2000));
        assert_eq!(plan.sim_bulk_warmup_for(ms(100)), ms(2000));
        assert_eq!(plan.sim_bulk_warmup_for(ms(20)), plan.sim_bulk_warmup);
    }
}
