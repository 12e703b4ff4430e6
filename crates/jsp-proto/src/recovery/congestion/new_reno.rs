//! NewReno congestion control (RFC 9002 §7): slow start, congestion avoidance, one reduction per
//! recovery period, the minimum window on persistent congestion, and no growth while the sender is
//! application-limited (§7.8).

use core::time::Duration;

use super::{
    window_pacing_rate, AckEvent, CongestionController, CongestionState, LossEvent, Phase,
    SentEvent, INITIAL_WINDOW_PACKETS, MIN_WINDOW_PACKETS,
};
use crate::time::Instant;

/// NewReno with RFC 9002's constants (loss reduction factor 1/2).
#[derive(Debug, Clone)]
pub struct NewReno {
    max_datagram_size: u64,
    window: u64,
    ssthresh: u64,
    recovery_start: Option<Instant>,
    in_recovery: bool,
    bytes_acked_in_ca: u64,
    srtt: Option<Duration>,
}

impl NewReno {
    /// A controller for datagrams of `max_datagram_size` bytes.
    pub fn new(max_datagram_size: u64) -> Self {
        Self {
            max_datagram_size,
            window: INITIAL_WINDOW_PACKETS * max_datagram_size,
            ssthresh: u64::MAX,
            recovery_start: None,
            in_recovery: false,
            bytes_acked_in_ca: 0,
            srtt: None,
        }
    }

    fn min_window(&self) -> u64 {
        MIN_WINDOW_PACKETS * self.max_datagram_size
    }
}

impl CongestionController for NewReno {
    fn on_packet_sent(&mut self, _ev: &SentEvent) {}

    fn on_packets_acked(&mut self, ev: &AckEvent<'_>) {
        if ev.rtt.has_sample() {
            self.srtt = Some(ev.rtt.smoothed());
        }
        // Acknowledgements of packets sent before recovery began do not grow the window.
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
        if self.window < self.ssthresh {
            self.window += ev.bytes_acked;
        } else {
            self.bytes_acked_in_ca += ev.bytes_acked;
            if self.bytes_acked_in_ca >= self.window {
                self.bytes_acked_in_ca -= self.window;
                self.window += self.max_datagram_size;
            }
        }
    }

    fn on_packets_lost(&mut self, ev: &LossEvent) {
        if self.recovery_start.is_none_or(|r| ev.largest_lost_sent > r) {
            self.recovery_start = Some(ev.now);
            self.in_recovery = true;
            self.window = (self.window / 2).max(self.min_window());
            self.ssthresh = self.window;
            self.bytes_acked_in_ca = 0;
        }
        if ev.persistent {
            // RFC 9002 §7.6.2: back to the minimum window, slow start up to ssthresh.
            self.window = self.min_window();
            self.recovery_start = None;
            self.in_recovery = false;
        }
    }

    fn window(&self) -> u64 {
        self.window
    }

    fn pacing_rate(&self) -> Option<u64> {
        window_pacing_rate(self.window, self.srtt, self.window < self.ssthresh)
    }

    fn set_max_datagram_size(&mut self, size: u64) {
        self.max_datagram_size = size;
        self.window = self.window.max(self.min_window());
    }

    fn name(&self) -> &'static str {
        "newreno"
    }

    fn state(&self) -> CongestionState {
        let phase = if self.in_recovery {
            Phase::Recovery
        } else if self.window < self.ssthresh {
            Phase::SlowStart
        } else {
            Phase::CongestionAvoidance
        };
        CongestionState {
            algorithm: self.name(),
            phase,
            window: self.window,
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

    fn t(ms: u64) -> Instant {
        Instant::from_nanos(ms * 1_000_000)
    }

    fn ack(c: &mut NewReno, now: u64, sent: u64, bytes: u64) {
        let rtt = RttEstimator::new(Duration::from_millis(10));
        c.on_packets_acked(&AckEvent {
            now: t(now),
            bytes_acked: bytes,
            largest_acked_sent: t(sent),
            rtt: &rtt,
            rtt_updated: false,
            rate: None,
            bytes_in_flight: 0,
        });
    }

    fn loss(c: &mut NewReno, now: u64, sent: u64, persistent: bool) {
        c.on_packets_lost(&LossEvent {
            now: t(now),
            largest_lost_sent: t(sent),
            lost_bytes: 1200,
            lost_packets: 1,
            persistent,
            bytes_in_flight: 0,
        });
    }

    #[test]
    fn halves_once_per_recovery_period() {
        let mut c = NewReno::new(1200);
        let w0 = c.window();
        loss(&mut c, 100, 50, false);
        assert_eq!(c.window(), w0 / 2);
        assert_eq!(c.state().phase, Phase::Recovery);
        loss(&mut c, 110, 60, false);
        assert_eq!(c.window(), w0 / 2, "same recovery period");
        ack(&mut c, 120, 90, w0);
        assert_eq!(
            c.window(),
            w0 / 2,
            "packets sent before recovery do not grow it"
        );
        ack(&mut c, 120, 105, w0 / 2);
        assert_eq!(c.window(), w0 / 2 + 1200, "one packet per window");
        assert_eq!(c.state().phase, Phase::CongestionAvoidance);
        loss(&mut c, 200, 150, true);
        assert_eq!(
            c.window(),
            2 * 1200,
            "persistent congestion: minimum window"
        );
        assert_eq!(c.state().phase, Phase::SlowStart);
    }

    /// On a 10 Mbit/s, 40 ms path with a 1-BDP buffer: slow start doubles per round trip, the
    /// first loss halves the window, and the link stays mostly busy.
    #[test]
    fn slow_start_then_sawtooth_on_a_link() {
        let link = Link::new(1_250_000, Duration::from_millis(40), 50_000);
        let mut m = Model::new(CongestionControl::NewReno, link, 1);
        let mut windows = Vec::new();
        m.run_until(t(200), |m| windows.push((m.now, m.cc.window())));
        // Before any loss the window doubles each round trip (40 ms plus queueing): 10 -> 20 ->
        // 40 -> 80 packets.
        let at = |ms: u64| {
            windows
                .iter()
                .rev()
                .find(|(n, _)| *n <= t(ms))
                .map(|w| w.1 / MDS)
        };
        assert_eq!(at(30), Some(10));
        assert!(at(55).unwrap() >= 20, "{:?}", at(55));
        assert!(at(115).unwrap() >= 40, "{:?}", at(115));
        assert!(at(170).unwrap() >= 80, "{:?}", at(170));
        assert_eq!(m.lost_packets, 0);
        m.run_until(t(10_000), |_| {});
        assert!(m.lost_packets > 0);
        let s = m.cc.state();
        assert!(s.ssthresh.is_some());
        let util = m.utilisation();
        assert!(util > 0.75, "utilisation {util}");
    }
}
