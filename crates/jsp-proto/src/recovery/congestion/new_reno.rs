//! NewReno congestion control (RFC 9002 §7): slow start, congestion avoidance, one reduction per
//! recovery period.

use super::{CongestionController, INITIAL_WINDOW_PACKETS, MIN_WINDOW_PACKETS};
use crate::time::Instant;
use core::time::Duration;

/// NewReno with RFC 9002's constants (loss reduction factor 1/2).
#[derive(Debug, Clone)]
pub struct NewReno {
    max_datagram_size: u64,
    window: u64,
    ssthresh: u64,
    recovery_start: Option<Instant>,
    bytes_acked_in_ca: u64,
}

impl NewReno {
    /// A controller for datagrams of `max_datagram_size` bytes.
    pub fn new(max_datagram_size: u64) -> Self {
        Self {
            max_datagram_size,
            window: INITIAL_WINDOW_PACKETS * max_datagram_size,
            ssthresh: u64::MAX,
            recovery_start: None,
            bytes_acked_in_ca: 0,
        }
    }

    fn min_window(&self) -> u64 {
        MIN_WINDOW_PACKETS * self.max_datagram_size
    }
}

impl CongestionController for NewReno {
    fn on_sent(&mut self, _now: Instant, _bytes: u64) {}

    fn on_ack(&mut self, _now: Instant, sent_time: Instant, bytes: u64, _rtt: Duration) {
        if self.recovery_start.is_some_and(|r| sent_time <= r) {
            return;
        }
        if self.window < self.ssthresh {
            self.window += bytes;
        } else {
            self.bytes_acked_in_ca += bytes;
            if self.bytes_acked_in_ca >= self.window {
                self.bytes_acked_in_ca -= self.window;
                self.window += self.max_datagram_size;
            }
        }
    }

    fn on_congestion_event(&mut self, now: Instant, largest_lost_sent: Instant, persistent: bool) {
        if persistent {
            self.window = self.min_window();
            self.recovery_start = Some(now);
            return;
        }
        if self.recovery_start.is_some_and(|r| largest_lost_sent <= r) {
            return;
        }
        self.recovery_start = Some(now);
        self.window = (self.window / 2).max(self.min_window());
        self.ssthresh = self.window;
        self.bytes_acked_in_ca = 0;
    }

    fn window(&self) -> u64 {
        self.window
    }

    fn set_max_datagram_size(&mut self, size: u64) {
        self.max_datagram_size = size;
        self.window = self.window.max(self.min_window());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_once_per_recovery_period() {
        let mut c = NewReno::new(1200);
        let w0 = c.window();
        let t = |ms: u64| Instant::from_nanos(ms * 1_000_000);
        c.on_congestion_event(t(100), t(50), false);
        assert_eq!(c.window(), w0 / 2);
        c.on_congestion_event(t(110), t(60), false);
        assert_eq!(c.window(), w0 / 2, "same recovery period");
        c.on_ack(t(120), t(90), w0, Duration::from_millis(10));
        assert_eq!(
            c.window(),
            w0 / 2,
            "packets sent before recovery do not grow the window"
        );
        c.on_ack(t(120), t(105), w0 / 2, Duration::from_millis(10));
        assert_eq!(
            c.window(),
            w0 / 2 + 1200,
            "congestion avoidance: one packet per window"
        );
    }
}
