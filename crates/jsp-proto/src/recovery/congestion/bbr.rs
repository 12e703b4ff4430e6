//! BBR: model-based congestion control. The controller estimates the bottleneck bandwidth (a
//! windowed maximum of delivery-rate samples over 10 round trips) and the round-trip
//! propagation time (a minimum over 10 s), paces at `pacing_gain * bandwidth` and caps the data in
//! flight at `cwnd_gain * BDP` (at least 4 packets).
//!
//! The state machine is BBRv1's (draft-cardwell-iccrg-bbr-congestion-control-00): Startup
//! doubles the rate each round until the bandwidth stops growing by 25% for 3 rounds, Drain
//! empties the queue Startup built, ProbeBW cycles the pacing gain through
//! `[1.25, 0.75, 1, 1, 1, 1, 1, 1]` (one phase per min RTT), and ProbeRTT drops to 4 packets for
//! 200 ms when the minimum RTT has not been refreshed for 10 s.
//!
//! BBRv1 ignores loss, which turns a sudden bandwidth drop into a loss storm: it keeps sending at
//! the old rate until the 10-round bandwidth window forgets it. This implementation adds a
//! BBRv2/v3-style response ([`BbrConfig::loss_response`]): when more than 2% of a round's data is
//! lost the model gets a lower bound `bw_lo`. If the round's delivery rate (`bw_latest`, its best
//! sample) fell under 0.7 of the model, the path shrank and the bound is BBRv2's `0.7 * bw`;
//! otherwise it is `0.95 * bw_latest`, a little under what the round delivered so that the queue
//! drains. A probe cycle that finds the path accepts more without excessive loss raises the bound
//! to what it measured, each round without excessive loss raises it by one packet per minimum RTT,
//! and it is dropped once it reaches 0.9 of the bandwidth window. Startup also ends on excessive
//! loss (at least 6 packets and 2% in a round).
//!
//! Unlike BBRv2, loss counts as excessive only when it comes with a queue: every RTT sample of
//! the round above the minimum RTT by a quarter (1 ms at least), or when more than half of a
//! round is lost. Random loss (a radio link) leaves no queue, and answering it with `bw_lo`
//! ratcheted the rate down round after round: in the simulator a 20 ms path with 10% random loss
//! fell to 0.2 Mbit/s; it now keeps 80 of 97 Mbit/s (`tests/cc.rs` in jsp-sim). A real drop of
//! the bottleneck rate builds a queue at once and is still answered within a round or two.
//!
//! Nor, in ProbeBW, does a flow answer loss it did not cause: it answers when the lost packets
//! were sent in its own bandwidth probe (the 1.25 and 0.75 phases), when the round's delivery
//! rate fell under 0.7 of the model, or when the loss is heavy. Loss of packets sent while
//! cruising, at a rate the path still delivers, is another flow's probe overflowing the shared
//! queue. Answering it made two flows diverge instead of converging: the larger flow's probes
//! overflow the queue, its losses come while its own probe inflates its delivery rate (its bound
//! went to 0.98-0.99 of its model) and while that probe squeezes the smaller flow's (0.88-0.94),
//! and tail drop took 1.8% of the smaller flow's packets against 0.6% of the larger's. In the
//! simulator's fairness test the first flow's share went 0.57, 0.66, 0.88 and 0.83 after 5, 10, 20
//! and 30 s (from 0.13 to 0.99 on other start gaps). The additive increase makes the shares
//! converge rather than merely stop diverging: the same step is a larger fraction of the smaller
//! rate.
//!
//! Known limits: after a drop the window (`2 * bw_lo * min_rtt`) can keep a standing queue without
//! loss until the 10-round bandwidth window forgets the old rate (BBRv3's `inflight_hi` would
//! shorten that); on a bottleneck whose buffer is under a quarter of the minimum RTT, congestion
//! loss shows no queue and is treated as random (BBRv1's behaviour); a drop of the path to between
//! 0.7 and 1 of the model is answered only by the flow's next probe (once per 8 minimum RTTs) or
//! when the bandwidth window forgets (in the test model, a drop to 0.8 lost 87 packets where
//! answering every lossy round lost 29 and BBRv1 194); two BBR flows converge to a fair share, but their shares
//! still move with the probes and with ProbeRTT (a flow that enters it alone forgets its rate): in
//! the simulator's fairness test the 10 s windows from 10 to 40 s split 51/49, 49/51 and 58/42
//! (BBRv1: 42/58, 57/43, 42/58), and over 16 start gaps on four paths every 10 s window from 10
//! to 90 s stayed within 35/65 (BBRv1: 4% of the windows outside, the previous loss response 54%).
//!
//! Random loss also spends capacity: a packet lost after the bottleneck used its share of the
//! link without being delivered, so a flow paced at its delivery rate leaves that share unused
//! (0.91 of the link delivered at 5% loss instead of 0.95). The controller measures the loss
//! among the packets it sent in ProbeBW's drain phase (pacing gain 0.75), when the flow cannot
//! congest the path, and raises its pacing rate by `1 / (1 - p)` (`p` smoothed, at most 20%).
//! A drain phase whose acknowledgements show a queue is not counted: another flow shares the
//! bottleneck and the loss may be congestion. Nor is one while a loss bound is in force. Had the
//! estimate run high, the next drain phase (still under the path's rate for any `p` below 25%)
//! measures it again.

use core::time::Duration;

use super::filter::MaxFilter;
use super::{
    AckEvent, CongestionController, CongestionState, LossEvent, Phase, SentEvent,
    INITIAL_WINDOW_PACKETS,
};
use crate::recovery::rate::RateSample;
use crate::time::Instant;

/// Gains are in 1/1000.
const UNIT: u64 = 1000;
/// Startup pacing and window gain, `2 / ln 2`.
const HIGH_GAIN: u64 = 2885;
/// Drain pacing gain, `1 / HIGH_GAIN`.
const DRAIN_GAIN: u64 = 347;
/// ProbeBW window gain.
const CWND_GAIN: u64 = 2000;
/// ProbeBW pacing gain cycle.
const PACING_GAIN_CYCLE: [u64; 8] = [1250, 750, 1000, 1000, 1000, 1000, 1000, 1000];
/// Pace 1% below the estimate, so queues drain rather than creep.
const PACING_MARGIN_PERMILLE: u64 = 10;
/// Bandwidth filter window, in round trips.
const BTL_BW_FILTER_ROUNDS: u64 = 10;
/// Minimum RTT filter window.
const MIN_RTT_FILTER: Duration = Duration::from_secs(10);
/// Time spent at the minimum window in ProbeRTT.
const PROBE_RTT_DURATION: Duration = Duration::from_millis(200);
/// Window floor, in packets.
const MIN_PIPE_CWND_PACKETS: u64 = 4;
/// Startup ends when the bandwidth grew less than this (in 1/1000) ...
const FULL_BW_THRESH: u64 = 1250;
/// ... for this many rounds.
const FULL_BW_COUNT: u32 = 3;
/// Loss above this fraction of a round's data (in 1/1000) is excessive (BBRv2/v3: 2%).
const LOSS_THRESH_PERMILLE: u64 = 20;
/// Loss above this fraction of a round's data (in 1/1000) is answered even without a queue.
const HEAVY_LOSS_THRESH_PERMILLE: u64 = 500;
/// The smallest RTT excess over the minimum that counts as a queue.
const QUEUE_MIN_DELAY: Duration = Duration::from_millis(1);
/// Multiplicative back-off of the lower bound when a round's delivery rate shows the path
/// shrank, below this fraction of the model (in 1/1000; BBRv2: 0.7).
const LOSS_BETA: u64 = 700;
/// When the flow's own bandwidth probe overflowed the queue, the lower bound goes this far under
/// the round's delivery rate (in 1/1000), so that the queue drains.
const PROBE_LOSS_BETA: u64 = 950;
/// Additive increase of the lower bound: per round without excessive loss, this many packets per
/// minimum RTT.
const BOUND_GROWTH_PACKETS: u64 = 1;
/// Startup also needs this many lost packets in the round before loss ends it (BBRv3: 6).
const STARTUP_FULL_LOSS_COUNT: u64 = 6;
/// Random-loss compensation: the largest loss fraction (in 1/1000) the pacing rate makes up for.
const MAX_RANDOM_LOSS_PERMILLE: u64 = 200;
/// Random-loss compensation: a drain phase's loss counts once this many bytes' fate is known
/// (in packets).
const RANDOM_LOSS_MIN_PACKETS: u64 = 20;
/// Extra window for delayed and aggregated ACKs and pacer bursts, in packets.
const QUANTIZATION_PACKETS: u64 = 3;

/// BBR settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BbrConfig {
    /// Back off when more than 2% of a round's data is lost while the round shows a queue, or
    /// more than half of it is lost (see the module documentation). `false` is pure BBRv1,
    /// which ignores loss: kept for comparison, not for production.
    pub loss_response: bool,
}

impl Default for BbrConfig {
    fn default() -> Self {
        Self {
            loss_response: true,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Startup,
    Drain,
    ProbeBw,
    ProbeRtt,
}

/// BBR (see the module documentation).
#[derive(Clone, Debug)]
pub struct Bbr {
    config: BbrConfig,
    max_datagram_size: u64,
    mode: Mode,
    cwnd: u64,
    pacing_rate: Option<u64>,
    pacing_gain: u64,
    cwnd_gain: u64,
    // The model.
    btl_bw: MaxFilter,
    min_rtt: Option<Duration>,
    min_rtt_stamp: Instant,
    srtt: Option<Duration>,
    // Round counting.
    delivered: u64,
    round_count: u64,
    next_round_delivered: u64,
    round_start: bool,
    // Startup.
    filled_pipe: bool,
    full_bw: u64,
    full_bw_count: u32,
    // ProbeBW.
    cycle_index: usize,
    cycle_stamp: Instant,
    // ProbeRTT.
    probe_rtt_done: Option<Instant>,
    probe_rtt_round_done: bool,
    prior_cwnd: u64,
    idle_restart: bool,
    // Loss response.
    round_delivered: u64,
    round_lost: u64,
    round_lost_packets: u64,
    /// The smallest RTT sample of the current round: above the minimum RTT by a margin, the
    /// whole round saw a standing queue.
    round_min_rtt: Option<Duration>,
    loss_responded: bool,
    loss_since_ack: bool,
    bw_latest: u64,
    bw_lo: Option<u64>,
    probe_lossy: bool,
    probe_max_bw: u64,
    /// When the last bandwidth probe (its up and down phases) sent: from, and until if over.
    probe_sent: Option<(Instant, Option<Instant>)>,
    /// A packet sent during that probe was lost in this round (the newest lost packet of each
    /// loss event stands for the event): the flow's own probe overflowed the queue.
    round_probe_loss: bool,
    // Random-loss compensation.
    /// Loss measured on packets sent in ProbeBW's drain phase (in 1/1000, smoothed), when the
    /// path cannot have been congested: the pacing rate is raised by `1 / (1 - p)`.
    random_loss: u64,
    /// Drain phases measured so far.
    random_loss_samples: u64,
    /// Bytes acknowledged and lost in drain phases not yet folded into the estimate.
    random_loss_pending: (u64, u64),
    /// The drain phase being measured: send times, and the fate of the packets sent in it.
    drain_sample: Option<DrainSample>,
}

/// What became of the packets sent during one ProbeBW drain phase (pacing gain 0.75).
#[derive(Clone, Copy, Debug)]
struct DrainSample {
    from: Instant,
    until: Option<Instant>,
    acked: u64,
    lost: u64,
    /// An acknowledgement of one of these packets showed a queue: another flow shares the
    /// bottleneck, and the loss may be its congestion, not random.
    queued: bool,
}

impl DrainSample {
    fn covers(&self, sent: Instant) -> bool {
        sent >= self.from && self.until.is_none_or(|u| sent < u)
    }
}

impl Bbr {
    /// A controller for datagrams of `max_datagram_size` bytes, created at `now`.
    pub fn new(config: BbrConfig, max_datagram_size: u64, now: Instant) -> Self {
        Self {
            config,
            max_datagram_size,
            mode: Mode::Startup,
            cwnd: INITIAL_WINDOW_PACKETS * max_datagram_size,
            pacing_rate: None,
            pacing_gain: HIGH_GAIN,
            cwnd_gain: HIGH_GAIN,
            btl_bw: MaxFilter::default(),
            min_rtt: None,
            min_rtt_stamp: now,
            srtt: None,
            delivered: 0,
            round_count: 0,
            next_round_delivered: 0,
            round_start: false,
            filled_pipe: false,
            full_bw: 0,
            full_bw_count: 0,
            cycle_index: 0,
            cycle_stamp: now,
            probe_rtt_done: None,
            probe_rtt_round_done: false,
            prior_cwnd: 0,
            idle_restart: false,
            round_delivered: 0,
            round_lost: 0,
            round_lost_packets: 0,
            round_min_rtt: None,
            loss_responded: false,
            loss_since_ack: false,
            bw_latest: 0,
            bw_lo: None,
            probe_lossy: false,
            probe_max_bw: 0,
            probe_sent: None,
            round_probe_loss: false,
            random_loss: 0,
            random_loss_samples: 0,
            random_loss_pending: (0, 0),
            drain_sample: None,
        }
    }

    /// The bandwidth the controls use: the filtered maximum, capped by the loss bound.
    fn bw(&self) -> u64 {
        let max = self.btl_bw.get();
        self.bw_lo.map_or(max, |lo| lo.min(max))
    }

    fn min_pipe_cwnd(&self) -> u64 {
        MIN_PIPE_CWND_PACKETS * self.max_datagram_size
    }

    fn initial_window(&self) -> u64 {
        INITIAL_WINDOW_PACKETS * self.max_datagram_size
    }

    /// `gain * bw * min_rtt`, or `None` before the model has both.
    fn bdp(&self, gain: u64) -> Option<u64> {
        let min_rtt = self.min_rtt?;
        let bw = self.bw();
        if bw == 0 {
            return None;
        }
        let bdp = u128::from(bw) * min_rtt.as_nanos() * u128::from(gain)
            / (1_000_000_000 * u128::from(UNIT));
        Some(u64::try_from(bdp).unwrap_or(u64::MAX))
    }

    /// The window a gain asks for: `gain * BDP` plus the quantization allowance.
    fn inflight(&self, gain: u64) -> u64 {
        match self.bdp(gain) {
            Some(bdp) => bdp.saturating_add(QUANTIZATION_PACKETS * self.max_datagram_size),
            None => self.initial_window(),
        }
    }

    fn update_round(&mut self, rs: &RateSample) {
        self.delivered = rs.total_delivered;
        self.round_start = false;
        if rs.prior_delivered >= self.next_round_delivered {
            self.next_round_delivered = self.delivered;
            self.round_count += 1;
            self.round_start = true;
            if !self.loss_responded {
                self.grow_bound();
            }
            // A new loss-accounting round.
            self.round_delivered = 0;
            self.round_lost = 0;
            self.round_lost_packets = 0;
            self.round_min_rtt = None;
            self.round_probe_loss = false;
            self.loss_responded = false;
            self.bw_latest = 0;
        }
    }

    fn update_bw(&mut self, rs: &RateSample) {
        let Some(rate) = rs.delivery_rate else {
            return;
        };
        self.bw_latest = self.bw_latest.max(rate);
        self.probe_max_bw = self.probe_max_bw.max(rate);
        // An application-limited sample says only that the path carries at least this much.
        if !rs.is_app_limited || rate >= self.btl_bw.get() {
            self.btl_bw
                .update(BTL_BW_FILTER_ROUNDS, self.round_count, rate);
        }
    }

    fn update_min_rtt(&mut self, now: Instant, sample: Option<Duration>) -> bool {
        let expired = now > self.min_rtt_stamp + MIN_RTT_FILTER;
        if let Some(rtt) = sample {
            if self.min_rtt.is_none_or(|m| rtt < m) || expired {
                self.min_rtt = Some(rtt);
                self.min_rtt_stamp = now;
            }
        }
        expired
    }

    fn enter_startup(&mut self) {
        self.mode = Mode::Startup;
        self.pacing_gain = HIGH_GAIN;
        self.cwnd_gain = HIGH_GAIN;
    }

    fn enter_drain(&mut self) {
        self.mode = Mode::Drain;
        self.pacing_gain = DRAIN_GAIN;
        self.cwnd_gain = HIGH_GAIN;
    }

    fn enter_probe_bw(&mut self, now: Instant) {
        self.mode = Mode::ProbeBw;
        self.cwnd_gain = CWND_GAIN;
        // Start at a pseudo-random phase other than the drain phase (as Linux does), derived from
        // the time so that flows starting apart do not probe in step.
        let mut x = now.as_nanos() ^ 0x9E37_79B9_7F4A_7C15;
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
        const STARTS: [usize; 7] = [0, 2, 3, 4, 5, 6, 7];
        self.cycle_index = STARTS[(x % 7) as usize];
        self.start_cycle_phase(now);
    }

    fn start_cycle_phase(&mut self, now: Instant) {
        self.cycle_stamp = now;
        if let Some(sample) = self.drain_sample.as_mut() {
            if sample.until.is_none() {
                sample.until = Some(now);
            }
        }
        if PACING_GAIN_CYCLE[self.cycle_index] < UNIT {
            self.finish_drain_sample();
            // Sending below the path's rate cannot congest it: loss among these packets is
            // random. Not while a loss bound is in force (the rate was just found too high).
            if self.bw_lo.is_none() {
                self.drain_sample = Some(DrainSample {
                    from: now,
                    until: None,
                    acked: 0,
                    lost: 0,
                    queued: false,
                });
            }
        }
        self.pacing_gain = PACING_GAIN_CYCLE[self.cycle_index];
        if self.cycle_index == 0 {
            self.probe_lossy = false;
            self.probe_max_bw = 0;
            self.probe_sent = Some((now, None));
        } else if let Some((_, until @ None)) = self.probe_sent.as_mut() {
            // The probe's up and down phases are over.
            if self.cycle_index >= 2 {
                *until = Some(now);
            }
        }
    }

    fn update_cycle_phase(&mut self, now: Instant, prior_in_flight: u64) {
        if self.mode != Mode::ProbeBw {
            return;
        }
        let full_length = self.min_rtt.is_some_and(|m| now - self.cycle_stamp > m);
        let next = if self.pacing_gain > UNIT {
            full_length
                && (self.loss_since_ack || prior_in_flight >= self.inflight(self.pacing_gain))
        } else if self.pacing_gain < UNIT {
            full_length || prior_in_flight <= self.inflight(UNIT)
        } else {
            full_length
        };
        if !next {
            return;
        }
        if self.cycle_index == 1 {
            // The probe (up, then down) is over: its samples show what the path accepts.
            self.end_probe();
        }
        self.cycle_index = (self.cycle_index + 1) % PACING_GAIN_CYCLE.len();
        self.start_cycle_phase(now);
    }

    /// Folds the last drain phases' loss fraction into the random-loss estimate (the first
    /// sample as it is, then with 1/4 weight),
    /// once enough of its packets' fate is known.
    fn finish_drain_sample(&mut self) {
        let Some(sample) = self.drain_sample.take() else {
            return;
        };
        if sample.queued {
            return;
        }
        // A slow flow sends few packets per drain phase: phases add up until enough is known.
        let (acked, lost) = self.random_loss_pending;
        let (acked, lost) = (acked + sample.acked, lost + sample.lost);
        let known = acked + lost;
        if known < RANDOM_LOSS_MIN_PACKETS * self.max_datagram_size {
            self.random_loss_pending = (acked, lost);
            return;
        }
        self.random_loss_pending = (0, 0);
        let p = u128::from(lost) * u128::from(UNIT) / u128::from(known);
        let p = u64::try_from(p)
            .unwrap_or(UNIT)
            .min(MAX_RANDOM_LOSS_PERMILLE);
        self.random_loss = match self.random_loss_samples {
            0 => p,
            _ => (self.random_loss * 3 + p) / 4,
        };
        self.random_loss_samples += 1;
    }

    /// After a probe without excessive loss, raise the loss bound to what the probe measured, and
    /// drop it once the bandwidth filter agrees with it.
    fn end_probe(&mut self) {
        if self.probe_lossy {
            return;
        }
        if let Some(lo) = self.bw_lo {
            let lo = lo.max(self.probe_max_bw);
            self.bw_lo = if lo * 10 >= self.btl_bw.get() * 9 {
                None
            } else {
                Some(lo)
            };
        }
    }

    /// Additive increase of the loss bound, once per round without excessive loss (Reno's rule
    /// in rate terms: one packet per minimum RTT per round). Flows sharing a bottleneck raise
    /// their bounds by the same amount whatever their rates, so the smaller gains the larger
    /// fraction: against multiplicative cuts, the shares converge (AIMD). The bound is dropped
    /// once the bandwidth filter agrees with it.
    fn grow_bound(&mut self) {
        let (Some(lo), Some(min_rtt)) = (self.bw_lo, self.min_rtt) else {
            return;
        };
        let step = u128::from(BOUND_GROWTH_PACKETS * self.max_datagram_size) * 1_000_000_000
            / min_rtt.as_nanos().max(1);
        let lo = lo.saturating_add(u64::try_from(step).unwrap_or(u64::MAX));
        self.bw_lo = if u128::from(lo) * 10 >= u128::from(self.btl_bw.get()) * 9 {
            None
        } else {
            Some(lo)
        };
    }

    fn check_full_bw_reached(&mut self, rs: &RateSample) {
        if self.filled_pipe || !self.round_start || rs.is_app_limited {
            return;
        }
        let bw = self.btl_bw.get();
        if u128::from(bw) * u128::from(UNIT)
            >= u128::from(self.full_bw) * u128::from(FULL_BW_THRESH)
        {
            self.full_bw = bw;
            self.full_bw_count = 0;
            return;
        }
        self.full_bw_count += 1;
        if self.full_bw_count >= FULL_BW_COUNT {
            self.filled_pipe = true;
        }
    }

    fn check_drain(&mut self, now: Instant, bytes_in_flight: u64) {
        if self.mode == Mode::Startup && self.filled_pipe {
            self.enter_drain();
        }
        if self.mode == Mode::Drain && bytes_in_flight <= self.inflight(UNIT) {
            self.enter_probe_bw(now);
        }
    }

    fn save_cwnd(&mut self) {
        self.prior_cwnd = if self.mode == Mode::ProbeRtt {
            self.prior_cwnd.max(self.cwnd)
        } else {
            self.cwnd
        };
    }

    fn update_probe_rtt(
        &mut self,
        now: Instant,
        expired: bool,
        bytes_in_flight: u64,
        delivered: u64,
    ) {
        if expired && !self.idle_restart && self.mode != Mode::ProbeRtt {
            self.save_cwnd();
            self.mode = Mode::ProbeRtt;
            self.pacing_gain = UNIT;
            self.cwnd_gain = UNIT;
            self.probe_rtt_done = None;
        }
        if self.mode == Mode::ProbeRtt {
            match self.probe_rtt_done {
                None if bytes_in_flight <= self.min_pipe_cwnd() => {
                    self.probe_rtt_done = Some(now + PROBE_RTT_DURATION);
                    self.probe_rtt_round_done = false;
                    self.next_round_delivered = self.delivered;
                }
                None => {}
                Some(done) => {
                    if self.round_start {
                        self.probe_rtt_round_done = true;
                    }
                    if self.probe_rtt_round_done && now >= done {
                        self.min_rtt_stamp = now;
                        self.cwnd = self.cwnd.max(self.prior_cwnd);
                        if self.filled_pipe {
                            self.enter_probe_bw(now);
                        } else {
                            self.enter_startup();
                        }
                    }
                }
            }
        }
        if delivered > 0 {
            self.idle_restart = false;
        }
    }

    /// BBRv2/v3 loss response, at most once per round.
    fn check_loss(&mut self) {
        if !self.config.loss_response || self.loss_responded || self.round_lost == 0 {
            return;
        }
        // Early in a round compare against the data a round should carry, not the little
        // delivered so far.
        // Startup's rounds carry its gain times the estimate.
        let round_gain = if self.mode == Mode::Startup {
            HIGH_GAIN
        } else {
            UNIT
        };
        let expected = self.bdp(round_gain).unwrap_or(0);
        let volume = (self.round_delivered + self.round_lost).max(expected);
        let lost = u128::from(self.round_lost) * u128::from(UNIT);
        if lost <= u128::from(volume) * u128::from(LOSS_THRESH_PERMILLE) {
            return;
        }
        // Loss is congestion when it comes with a queue, or when it is heavy. Random loss (a
        // radio link) at a rate the path still delivers through leaves no queue: answering it
        // would ratchet the rate down round after round for nothing.
        let heavy = lost > u128::from(volume) * u128::from(HEAVY_LOSS_THRESH_PERMILLE);
        if !heavy && !self.round_saw_queue() {
            return;
        }
        match self.mode {
            Mode::Startup => {
                // Only with a bandwidth estimate to drain to that is more than the initial window
                // per round trip (not on, say, losses among the first flights of a lossy path:
                // leaving startup there left a 100 Mbit/s flow crawling at its first sample).
                let past_first_flights = self.bdp(UNIT).is_some_and(|b| b > self.initial_window());
                if self.round_lost_packets >= STARTUP_FULL_LOSS_COUNT && past_first_flights {
                    self.loss_responded = true;
                    self.filled_pipe = true;
                }
            }
            Mode::Drain | Mode::ProbeBw | Mode::ProbeRtt => {
                let bw = self.bw();
                let shrank = u128::from(self.bw_latest) * u128::from(UNIT)
                    < u128::from(bw) * u128::from(LOSS_BETA);
                // In ProbeBW, loss of packets sent while cruising, at a delivery rate the model
                // still holds, is another flow's probe overflowing the shared queue: not this
                // flow's to answer. Answering it cut the flow to the delivery rate it had while
                // the other probed, and let the larger flow's probes ratchet the smaller down.
                if self.mode == Mode::ProbeBw && !heavy && !shrank && !self.round_probe_loss {
                    return;
                }
                self.loss_responded = true;
                if self.mode == Mode::ProbeBw && self.cycle_index <= 1 {
                    self.probe_lossy = true;
                }
                // A path that shrank is cut to BBRv2's 0.7 of the model at once. Otherwise the
                // bound goes a little under the round's delivery rate (BBRv2 sets it at that
                // rate), so that the queue the probe built drains instead of standing.
                let lo = if shrank {
                    u128::from(bw) * u128::from(LOSS_BETA) / u128::from(UNIT)
                } else {
                    u128::from(self.bw_latest.min(self.btl_bw.get())) * u128::from(PROBE_LOSS_BETA)
                        / u128::from(UNIT)
                };
                let lo = u64::try_from(lo).unwrap_or(u64::MAX);
                self.bw_lo = Some(lo.min(self.btl_bw.get()));
            }
        }
    }

    /// Whether every RTT sample of this round exceeded the minimum RTT by a quarter (at least
    /// 1 ms): a standing queue at the bottleneck, the mark of congestion. A round without an
    /// RTT sample shows no queue (a round lost whole is heavy loss, answered anyway).
    fn round_saw_queue(&self) -> bool {
        self.round_min_rtt
            .is_some_and(|round| self.queue_delay(round))
    }

    /// Whether `rtt` exceeds the minimum RTT by a quarter (at least 1 ms): it waited in a queue.
    fn queue_delay(&self, rtt: Duration) -> bool {
        self.min_rtt
            .is_none_or(|min| rtt > min + (min / 4).max(QUEUE_MIN_DELAY))
    }

    fn set_pacing_rate(&mut self) {
        let bw = self.bw();
        if bw == 0 {
            // No bandwidth sample yet: high gain over the window and smoothed RTT.
            if let Some(srtt) = self.srtt {
                let rate = u128::from(self.cwnd) * u128::from(HIGH_GAIN) * 1_000_000
                    / srtt.as_nanos().max(1);
                self.pacing_rate = Some(u64::try_from(rate).unwrap_or(u64::MAX));
            }
            return;
        }
        // Random loss spends the path's capacity without being delivered: pace for what the
        // path carries, not only for what arrives.
        let keep = UNIT - self.random_loss.min(MAX_RANDOM_LOSS_PERMILLE);
        let rate = u128::from(bw)
            * u128::from(self.pacing_gain)
            * u128::from(UNIT - PACING_MARGIN_PERMILLE)
            / (u128::from(UNIT) * u128::from(keep));
        let rate = u64::try_from(rate).unwrap_or(u64::MAX).max(1);
        if self.filled_pipe || self.pacing_rate.is_none_or(|r| rate > r) {
            self.pacing_rate = Some(rate);
        }
    }

    fn set_cwnd(&mut self, bytes_acked: u64) {
        let target = self.inflight(self.cwnd_gain);
        if self.filled_pipe {
            self.cwnd = (self.cwnd + bytes_acked).min(target);
        } else if self.cwnd < target || self.delivered < self.initial_window() {
            self.cwnd += bytes_acked;
        }
        self.cwnd = self.cwnd.max(self.min_pipe_cwnd());
        if self.mode == Mode::ProbeRtt {
            self.cwnd = self.cwnd.min(self.min_pipe_cwnd());
        }
    }
}

impl CongestionController for Bbr {
    fn on_packet_sent(&mut self, ev: &SentEvent) {
        // Restarting from idle: pace at the estimated rate rather than a stale high or low gain.
        if ev.app_limited && ev.bytes_in_flight == ev.bytes {
            self.idle_restart = true;
            if self.mode == Mode::ProbeBw {
                self.pacing_gain = UNIT;
                self.set_pacing_rate();
            }
        }
    }

    fn on_packets_acked(&mut self, ev: &AckEvent<'_>) {
        if ev.rtt.has_sample() {
            self.srtt = Some(ev.rtt.smoothed());
        }
        let prior_in_flight = ev.bytes_in_flight + ev.bytes_acked;
        let Some(rs) = ev.rate else {
            // Without the delivery-rate estimator there is no model; hold the window.
            return;
        };
        self.update_round(&rs);
        self.round_delivered += ev.bytes_acked;
        let queue = self.queue_delay(rs.rtt);
        if let Some(sample) = self.drain_sample.as_mut() {
            if sample.covers(ev.largest_acked_sent) {
                sample.acked += ev.bytes_acked;
                sample.queued |= queue;
            }
        }
        self.round_min_rtt = Some(self.round_min_rtt.map_or(rs.rtt, |m| m.min(rs.rtt)));
        self.update_bw(&rs);
        let expired = self.update_min_rtt(ev.now, ev.rtt_sample().or(Some(rs.rtt)));
        self.update_cycle_phase(ev.now, prior_in_flight);
        self.check_full_bw_reached(&rs);
        self.check_drain(ev.now, ev.bytes_in_flight);
        self.update_probe_rtt(ev.now, expired, ev.bytes_in_flight, rs.delivered);
        self.set_pacing_rate();
        self.set_cwnd(ev.bytes_acked);
        self.loss_since_ack = false;
    }

    fn on_packets_lost(&mut self, ev: &LossEvent) {
        self.loss_since_ack = true;
        self.round_lost += ev.lost_bytes;
        if let Some(sample) = self.drain_sample.as_mut() {
            if sample.covers(ev.largest_lost_sent) {
                sample.lost += ev.lost_bytes;
            }
        }
        self.round_lost_packets += ev.lost_packets;
        let sent = ev.largest_lost_sent;
        if self
            .probe_sent
            .is_some_and(|(from, until)| sent >= from && until.is_none_or(|u| sent < u))
        {
            self.round_probe_loss = true;
        }
        if ev.persistent {
            self.cwnd = self.min_pipe_cwnd();
            self.full_bw = 0;
            self.full_bw_count = 0;
        }
        let was_filled = self.filled_pipe;
        self.check_loss();
        if self.filled_pipe && !was_filled {
            self.check_drain(ev.now, ev.bytes_in_flight);
        }
        if self.bw() > 0 {
            // Apply a new bound at once: the window shrinks to the new target.
            self.set_pacing_rate();
            if self.filled_pipe {
                self.cwnd = self
                    .cwnd
                    .min(self.inflight(self.cwnd_gain))
                    .max(self.min_pipe_cwnd());
            }
        }
    }

    fn window(&self) -> u64 {
        self.cwnd
    }

    fn pacing_rate(&self) -> Option<u64> {
        self.pacing_rate
    }

    fn set_max_datagram_size(&mut self, size: u64) {
        self.max_datagram_size = size;
        self.cwnd = self.cwnd.max(self.min_pipe_cwnd());
    }

    fn name(&self) -> &'static str {
        "bbr"
    }

    fn state(&self) -> CongestionState {
        CongestionState {
            algorithm: self.name(),
            phase: match self.mode {
                Mode::Startup => Phase::Startup,
                Mode::Drain => Phase::Drain,
                Mode::ProbeBw => Phase::ProbeBw,
                Mode::ProbeRtt => Phase::ProbeRtt,
            },
            window: self.cwnd,
            ssthresh: None,
            pacing_rate: self.pacing_rate,
            bandwidth: Some(self.bw()).filter(|&b| b > 0),
            min_rtt: self.min_rtt,
        }
    }
}

#[cfg(test)]
mod tests;
