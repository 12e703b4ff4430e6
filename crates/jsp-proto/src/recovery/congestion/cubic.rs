//! CUBIC congestion control (RFC 9438) with HyStart++ (RFC 9406) in slow start.
//!
//! After a congestion event the window drops to `0.7 * cwnd` and then follows
//! `W(t) = C * (t - K)^3 + W_max` (in packets, `t` in seconds since congestion avoidance began,
//! `C = 0.4`, `K = cbrt((W_max - cwnd_epoch) / C)`): concave up to the window where the last loss
//! happened, flat around it, convex beyond. Where Reno would grow faster (short RTTs, small
//! windows) the window follows Reno's estimate instead (the Reno-friendly region, §4.3). Fast
//! convergence (§4.7) lowers `W_max` when losses come before the previous maximum was reached,
//! giving bandwidth up to newer flows. Time spent idle is not counted in `t` (§5.8), and the window
//! does not grow while the sender is application-limited.

use core::time::Duration;

use super::hystart::{HyStart, Verdict, CSS_GROWTH_DIVISOR};
use super::{
    window_pacing_rate, AckEvent, CongestionController, CongestionState, LossEvent, Phase,
    SentEvent, INITIAL_WINDOW_PACKETS, MIN_WINDOW_PACKETS,
};
use crate::time::Instant;

/// The cubic constant `C` (RFC 9438 §4.2).
const C: f64 = 0.4;
/// Multiplicative decrease factor `β_cubic` (RFC 9438 §4.6).
const BETA: f64 = 0.7;
/// Reno-friendly additive increase `α_cubic = 3 (1 - β) / (1 + β)` (RFC 9438 §4.3).
const ALPHA_RENO_FRIENDLY: f64 = 3.0 * (1.0 - BETA) / (1.0 + BETA);

/// CUBIC settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CubicConfig {
    /// Leave slow start on RTT increase (HyStart++, RFC 9406) rather than on loss.
    pub hystart: bool,
    /// Fast convergence (RFC 9438 §4.7).
    pub fast_convergence: bool,
}

impl Default for CubicConfig {
    fn default() -> Self {
        Self {
            hystart: true,
            fast_convergence: true,
        }
    }
}

/// CUBIC (RFC 9438).
#[derive(Clone, Debug)]
pub struct Cubic {
    config: CubicConfig,
    max_datagram_size: u64,
    /// Congestion window in bytes (fractional: increments per ACK are often below a byte).
    cwnd: f64,
    ssthresh: u64,
    recovery_start: Option<Instant>,
    in_recovery: bool,
    /// Window before the last reduction (`W_max`), bytes.
    w_max: f64,
    /// Start of the current congestion-avoidance epoch (`t_epoch`).
    epoch_start: Option<Instant>,
    /// `K`, in seconds.
    k: f64,
    /// Reno-friendly window estimate (`W_est`), bytes.
    w_est: f64,
    hystart: HyStart,
    last_sent: Option<Instant>,
    srtt: Option<Duration>,
}

impl Cubic {
    /// A controller for datagrams of `max_datagram_size` bytes.
    pub fn new(config: CubicConfig, max_datagram_size: u64) -> Self {
        Self {
            config,
            max_datagram_size,
            cwnd: (INITIAL_WINDOW_PACKETS * max_datagram_size) as f64,
            ssthresh: u64::MAX,
            recovery_start: None,
            in_recovery: false,
            w_max: 0.0,
            epoch_start: None,
            k: 0.0,
            w_est: 0.0,
            hystart: HyStart::default(),
            last_sent: None,
            srtt: None,
        }
    }

    fn mds(&self) -> f64 {
        self.max_datagram_size as f64
    }

    fn min_window(&self) -> f64 {
        (MIN_WINDOW_PACKETS * self.max_datagram_size) as f64
    }

    fn in_slow_start(&self) -> bool {
        self.window() < self.ssthresh
    }

    /// `W_cubic(t)` in bytes, `t` in seconds since the epoch began.
    fn w_cubic(&self, t: f64) -> f64 {
        let d = t - self.k;
        C * d * d * d * self.mds() + self.w_max
    }

    /// Starts a congestion-avoidance epoch at `now`.
    fn start_epoch(&mut self, now: Instant) {
        self.epoch_start = Some(now);
        if self.w_max <= self.cwnd {
            // Slow start ended without a loss, or the window already passed W_max: grow from here
            // (the convex region).
            self.w_max = self.cwnd;
            self.k = 0.0;
        } else {
            self.k = ((self.w_max - self.cwnd) / self.mds() / C).cbrt();
        }
        self.w_est = self.cwnd;
    }

    fn congestion_avoidance(&mut self, now: Instant, acked: f64) {
        let epoch_start = match self.epoch_start {
            Some(e) => e,
            None => {
                self.start_epoch(now);
                now
            }
        };
        let t = (now - epoch_start).as_secs_f64();
        let rtt = self.srtt.unwrap_or_default().as_secs_f64();
        // Reno-friendly estimate (RFC 9438 §4.3): α per window, 1 once W_max is passed.
        let alpha = if self.w_est >= self.w_max {
            1.0
        } else {
            ALPHA_RENO_FRIENDLY
        };
        self.w_est += alpha * acked * self.mds() / self.cwnd;
        let cubic_now = self.w_cubic(t);
        if cubic_now < self.w_est {
            self.cwnd = self.w_est;
        } else {
            // Concave / convex regions (§4.4, §4.5): approach W_cubic(t + RTT) within an RTT.
            let target = self.w_cubic(t + rtt).clamp(self.cwnd, 1.5 * self.cwnd);
            self.cwnd += (target - self.cwnd) * acked / self.cwnd;
        }
    }
}

impl CongestionController for Cubic {
    fn on_packet_sent(&mut self, ev: &SentEvent) {
        // Nothing else in flight: the sender was idle since its last send. Shift the epoch so the
        // idle time does not count as growth time (RFC 9438 §5.8).
        if ev.bytes_in_flight == ev.bytes {
            if let (Some(last), Some(epoch)) = (self.last_sent, self.epoch_start) {
                let idle = ev.now - last;
                self.epoch_start = Some((epoch + idle).min(ev.now));
            }
        }
        self.last_sent = Some(ev.now);
    }

    fn on_packets_acked(&mut self, ev: &AckEvent<'_>) {
        if ev.rtt.has_sample() {
            self.srtt = Some(ev.rtt.smoothed());
        }
        if self
            .recovery_start
            .is_some_and(|r| ev.largest_acked_sent <= r)
        {
            return;
        }
        self.in_recovery = false;
        if ev.app_limited() {
            return;
        }
        let acked = ev.bytes_acked as f64;
        if self.in_slow_start() {
            let verdict = if self.config.hystart {
                let last_sent = self.last_sent.unwrap_or(ev.largest_acked_sent);
                self.hystart
                    .on_ack(ev.largest_acked_sent, last_sent, ev.rtt_sample())
            } else {
                Verdict::SlowStart
            };
            match verdict {
                Verdict::SlowStart => self.cwnd += acked,
                Verdict::Conservative => self.cwnd += acked / CSS_GROWTH_DIVISOR as f64,
                Verdict::Exit => self.ssthresh = self.window(),
            }
            if !self.in_slow_start() {
                self.hystart = HyStart::default();
            }
            return;
        }
        self.congestion_avoidance(ev.now, acked);
    }

    fn on_packets_lost(&mut self, ev: &LossEvent) {
        if self.recovery_start.is_none_or(|r| ev.largest_lost_sent > r) {
            self.recovery_start = Some(ev.now);
            self.in_recovery = true;
            // Fast convergence (§4.7): a loss below the previous maximum means another flow
            // needs room.
            self.w_max = if self.config.fast_convergence && self.cwnd < self.w_max {
                self.cwnd * (1.0 + BETA) / 2.0
            } else {
                self.cwnd
            };
            self.cwnd = (self.cwnd * BETA).max(self.min_window());
            self.ssthresh = self.window();
            self.epoch_start = None;
            self.hystart = HyStart::default();
        }
        if ev.persistent {
            self.cwnd = self.min_window();
            self.recovery_start = None;
            self.in_recovery = false;
            self.epoch_start = None;
        }
    }

    fn window(&self) -> u64 {
        self.cwnd as u64
    }

    fn pacing_rate(&self) -> Option<u64> {
        window_pacing_rate(self.window(), self.srtt, self.in_slow_start())
    }

    fn set_max_datagram_size(&mut self, size: u64) {
        self.max_datagram_size = size;
        self.cwnd = self.cwnd.max(self.min_window());
    }

    fn name(&self) -> &'static str {
        "cubic"
    }

    fn state(&self) -> CongestionState {
        let phase = if self.in_recovery {
            Phase::Recovery
        } else if !self.in_slow_start() {
            Phase::CongestionAvoidance
        } else if self.hystart.in_css() {
            Phase::ConservativeSlowStart
        } else {
            Phase::SlowStart
        };
        CongestionState {
            algorithm: self.name(),
            phase,
            window: self.window(),
            ssthresh: (self.ssthresh != u64::MAX).then_some(self.ssthresh),
            pacing_rate: self.pacing_rate(),
            bandwidth: None,
            min_rtt: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::model::{Link, Model, MDS};
    use super::super::CongestionControl;
    use super::*;
    use crate::recovery::rtt::RttEstimator;

    fn at(ns: u64) -> Instant {
        Instant::from_nanos(ns)
    }

    fn ms(v: u64) -> Instant {
        at(v * 1_000_000)
    }

    fn ack(c: &mut Cubic, rtt: &RttEstimator, now: Instant, sent: Instant, bytes: u64) {
        c.on_packets_acked(&AckEvent {
            now,
            bytes_acked: bytes,
            largest_acked_sent: sent,
            rtt,
            rtt_updated: true,
            rate: None,
            bytes_in_flight: 0,
        });
    }

    fn loss(c: &mut Cubic, now: Instant, sent: Instant) {
        c.on_packets_lost(&LossEvent {
            now,
            largest_lost_sent: sent,
            lost_bytes: MDS,
            lost_packets: 1,
            persistent: false,
            bytes_in_flight: 0,
        });
    }

    fn no_hystart() -> CubicConfig {
        CubicConfig {
            hystart: false,
            ..CubicConfig::default()
        }
    }

    /// Grows the window in slow start to `packets`, then loses once at `now`.
    fn grown_then_lost(config: CubicConfig, packets: u64, now: Instant) -> Cubic {
        let mut c = Cubic::new(config, MDS);
        let mut rtt = RttEstimator::new(Duration::from_millis(100));
        rtt.update(Duration::from_millis(100), Duration::ZERO);
        ack(&mut c, &rtt, now, now, (packets - 10) * MDS);
        assert_eq!(c.window(), packets * MDS);
        assert_eq!(c.state().phase, Phase::SlowStart);
        loss(&mut c, now, now);
        c
    }

    /// Feeds ACKs of one window per RTT, in 1 ms slices, from `from` for `dur`, and returns the
    /// window after each slice.
    fn fluid_acks(c: &mut Cubic, rtt_ms: u64, from: Instant, dur_ms: u64) -> Vec<(f64, u64)> {
        let mut rtt = RttEstimator::new(Duration::from_millis(rtt_ms));
        rtt.update(Duration::from_millis(rtt_ms), Duration::ZERO);
        let mut out = Vec::new();
        let mut carry = 0;
        for i in 1..=dur_ms {
            let now = from + Duration::from_millis(i);
            let bytes = c.window() + carry;
            let slice = bytes / rtt_ms;
            carry = bytes % rtt_ms;
            ack(c, &rtt, now, now, slice);
            out.push(((now - from).as_secs_f64(), c.window()));
        }
        out
    }

    #[test]
    fn slow_start_then_reduction_to_0_7() {
        let c = grown_then_lost(no_hystart(), 100, ms(10));
        assert_eq!(c.window(), 70 * MDS);
        assert_eq!(c.state().ssthresh, Some(70 * MDS));
        assert_eq!(c.state().phase, Phase::Recovery);
    }

    /// After a loss at 1000 packets the window tracks W(t) = C (t - K)^3 + W_max, with
    /// K = cbrt(1000 * 0.3 / 0.4) = 9.09 s: concave up to W_max, flat near K, convex beyond.
    #[test]
    fn window_follows_the_cubic_curve() {
        let mut c = grown_then_lost(no_hystart(), 1000, ms(0));
        let w_max = 1000.0;
        let k = (w_max * (1.0 - BETA) / C).cbrt();
        assert!((k - 9.0856).abs() < 1e-3);
        // The first ACK after recovery starts the epoch.
        let start = ms(1);
        let trace = fluid_acks(&mut c, 100, start, 14_000);
        for (t, w) in trace.iter().step_by(500).skip(1) {
            let expected = C * (t - k).powi(3) + w_max;
            let got = *w as f64 / MDS as f64;
            // The window aims one RTT ahead (W(t + RTT)); allow that plus a little slack.
            let ahead = C * (t + 0.1 - k).powi(3) + w_max;
            let (lo, hi) = (expected.min(ahead) * 0.99, expected.max(ahead) * 1.01);
            assert!(
                got >= lo && got <= hi,
                "t={t:.1}s: {got:.1} packets, W(t)={expected:.1}"
            );
        }
    }

    /// With a small window and a short RTT Reno grows faster than the cubic curve: CUBIC follows
    /// W_est (about 0.53 packets per RTT until W_max, one after).
    #[test]
    fn reno_friendly_region() {
        let mut c = grown_then_lost(no_hystart(), 20, ms(0));
        assert_eq!(c.window(), 14 * MDS);
        let trace = fluid_acks(&mut c, 10, ms(1), 1000);
        // 100 RTTs: about 11 RTTs of 0.53/RTT to reach 20 packets, then 1/RTT: about 109 packets;
        // the cubic curve alone would be near W_max = 20 (K = 2.47 s).
        let w = trace.last().unwrap().1 as f64 / MDS as f64;
        assert!((95.0..115.0).contains(&w), "{w}");
    }

    /// A second loss before reaching W_max lowers W_max to cwnd (1 + β) / 2.
    #[test]
    fn fast_convergence() {
        let mut c = grown_then_lost(no_hystart(), 1000, ms(0));
        let _ = fluid_acks(&mut c, 100, ms(1), 1000);
        let before = c.cwnd;
        assert!(before < 1000.0 * MDS as f64);
        loss(&mut c, ms(2000), ms(1999));
        assert!((c.w_max - before * 0.85).abs() < 1.0);
        assert!((c.cwnd - before * 0.7).abs() < 1.0);
        let mut slow = grown_then_lost(
            CubicConfig {
                fast_convergence: false,
                ..no_hystart()
            },
            1000,
            ms(0),
        );
        let _ = fluid_acks(&mut slow, 100, ms(1), 1000);
        loss(&mut slow, ms(2000), ms(1999));
        assert!((slow.w_max - before).abs() < 1.0);
    }

    #[test]
    fn idle_time_is_not_growth_time() {
        let mut c = grown_then_lost(no_hystart(), 1000, ms(0));
        let _ = fluid_acks(&mut c, 100, ms(1), 1000);
        let epoch = c.epoch_start.unwrap();
        let send = |c: &mut Cubic, t: u64, in_flight: u64| {
            c.on_packet_sent(&SentEvent {
                now: ms(t),
                bytes: MDS,
                bytes_in_flight: in_flight,
                app_limited: true,
            });
        };
        send(&mut c, 1001, 5 * MDS);
        send(&mut c, 6001, MDS);
        assert_eq!(c.epoch_start.unwrap(), epoch + Duration::from_secs(5));
    }

    /// Packets lost in the first 3 s over a 20 Mbit/s, 50 ms path with a buffer of `bdps` BDPs,
    /// and how many were lost when slow start ended.
    fn startup_losses(hystart: bool, bdps: u64) -> (u64, Option<u64>) {
        let link = Link::new(2_500_000, Duration::from_millis(50), bdps * 125_000);
        let config = CubicConfig {
            hystart,
            ..CubicConfig::default()
        };
        let mut m = Model::new(CongestionControl::Cubic(config), link, 1);
        let mut at_exit = None;
        m.run_until(ms(3000), |m| {
            if at_exit.is_none() && m.cc.state().phase == Phase::CongestionAvoidance {
                at_exit = Some(m.lost_packets);
            }
        });
        assert!(m.utilisation() > 0.9, "{}", m.utilisation());
        (m.lost_packets, at_exit)
    }

    /// HyStart++ leaves slow start on the RTT rise instead of on buffer overflow: on a deep
    /// buffer (8 BDP) without any loss, on a 4-BDP buffer with a fraction of plain slow start's.
    #[test]
    fn hystart_avoids_slow_start_overshoot() {
        let (_, at_exit) = startup_losses(true, 8);
        assert_eq!(at_exit, Some(0));
        let (plain, _) = startup_losses(false, 8);
        assert!(plain > 500, "{plain}");
        let (hystart, _) = startup_losses(true, 4);
        let (plain, _) = startup_losses(false, 4);
        assert!(hystart * 4 < plain, "{hystart} vs {plain}");
    }

    /// Long run on a 10 Mbit/s, 40 ms path with a 1-BDP buffer: full link, bounded loss.
    #[test]
    fn keeps_the_link_busy() {
        let link = Link::new(1_250_000, Duration::from_millis(40), 50_000);
        let mut m = Model::new(CongestionControl::default(), link, 7);
        m.run_until(ms(2000), |_| {});
        m.mark();
        m.run_until(ms(30_000), |_| {});
        assert!(m.utilisation() > 0.9, "{}", m.utilisation());
        assert!(
            m.lost_packets * 100 < m.sent_packets,
            "{} / {}",
            m.lost_packets,
            m.sent_packets
        );
    }
}
