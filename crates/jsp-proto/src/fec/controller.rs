//! The adaptive FEC policy (PROTOCOL.md §19.7, local): whether to protect and with which group
//! shape, from the loss rate and loss burstiness the sender measures and the smoothed RTT.
//!
//! The loss detector reports every ack-eliciting 1-RTT packet once, as acknowledged or as lost
//! (a packet the peer rebuilt with FEC still counts as lost: FEC hides loss from the
//! application, not from the network). Every [`WINDOW`] packets the window's loss fraction
//! feeds an exponentially weighted average; runs of consecutive lost packet numbers feed the
//! mean burst length. [`decide`] maps the estimates to a shape: nothing below the loss threshold
//! or on a very short RTT (a retransmission arrives about as soon as a repair would), then more
//! repair as loss grows, and longer groups with more repair for bursts.

use core::time::Duration;

use super::encoder::Shape;

/// Packets per loss-rate sample.
pub const WINDOW: u32 = 32;
/// Packets before the first (provisional) loss-rate estimate.
pub const FIRST_ESTIMATE: u32 = 8;
/// Weight of a new window in the loss-rate average.
const ALPHA: f64 = 0.25;

/// Thresholds of the policy (from [`crate::config::FecConfig`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Policy {
    /// Protection switches on at this loss rate, and off below half of it.
    pub min_loss: f64,
    /// No protection below this smoothed RTT.
    pub min_rtt: Duration,
}

/// Loss measurements and the on/off state of the adaptive policy.
#[derive(Clone, Debug, Default)]
pub struct FecController {
    loss: f64,
    burst: f64,
    window_packets: u32,
    window_lost: u32,
    samples: u32,
    last_lost: Option<u64>,
    run: u32,
    active: bool,
}

impl FecController {
    /// A controller with no measurements (protection off).
    pub fn new() -> Self {
        Self::default()
    }

    /// The smoothed loss rate.
    pub fn loss_rate(&self) -> f64 {
        self.loss
    }

    /// The smoothed mean length of loss bursts, in packets (0 before any loss).
    pub fn mean_burst(&self) -> f64 {
        self.burst
    }

    /// `n` ack-eliciting packets were acknowledged.
    pub fn on_acked(&mut self, n: u32) {
        self.window_packets += n;
        self.roll();
    }

    /// Packet `pn` was declared lost (call in increasing `pn` order within one detection).
    pub fn on_lost(&mut self, pn: u64) {
        self.window_packets += 1;
        self.window_lost += 1;
        match self.last_lost {
            Some(prev) if pn == prev + 1 => self.run += 1,
            _ => {
                self.end_burst();
                self.run = 1;
            }
        }
        self.last_lost = Some(pn);
        self.roll();
    }

    fn end_burst(&mut self) {
        if self.run > 0 {
            let run = f64::from(self.run);
            self.burst = if self.burst == 0.0 {
                run
            } else {
                self.burst * (1.0 - ALPHA) + run * ALPHA
            };
        }
    }

    fn roll(&mut self) {
        if self.samples == 0 && self.window_packets >= FIRST_ESTIMATE {
            // Until the first full window, a provisional estimate from what was seen so far, so
            // that protection starts within the first few lost packets of a lossy path.
            self.loss = f64::from(self.window_lost) / f64::from(self.window_packets);
        }
        if self.window_packets < WINDOW {
            return;
        }
        let sample = f64::from(self.window_lost) / f64::from(self.window_packets);
        self.loss = if self.samples == 0 {
            sample
        } else {
            self.loss * (1.0 - ALPHA) + sample * ALPHA
        };
        self.samples = self.samples.saturating_add(1);
        self.window_packets = 0;
        self.window_lost = 0;
    }

    /// The shape to protect with now, or `None` (updates the on/off hysteresis).
    pub fn shape(&mut self, srtt: Duration, policy: &Policy) -> Option<Shape> {
        let threshold = if self.active {
            policy.min_loss / 2.0
        } else {
            policy.min_loss
        };
        let shape = decide(self.loss, self.burst, srtt, threshold, policy.min_rtt);
        self.active = shape.is_some();
        shape
    }
}

/// The policy table (PROTOCOL.md §19.7): `None` below `min_loss` or `min_rtt`; otherwise 10+1
/// below 2% loss, 10+2 below 7%, 10+4 below 12%, 5+3 below 25%, 4+4 above; with bursts of mean
/// length `b >= 1.5`, at least `ceil(b) + 1` repair symbols over groups of at least twice that.
pub fn decide(
    loss: f64,
    burst: f64,
    srtt: Duration,
    min_loss: f64,
    min_rtt: Duration,
) -> Option<Shape> {
    if loss.is_nan() || loss < min_loss || loss <= 0.0 || srtt < min_rtt {
        return None;
    }
    let (mut k, mut m) = match loss {
        l if l < 0.02 => (10, 1),
        l if l < 0.07 => (10, 2),
        l if l < 0.12 => (10, 4),
        l if l < 0.25 => (5, 3),
        _ => (4, 4),
    };
    if burst >= 1.5 {
        let need = (burst.ceil() as usize)
            .saturating_add(1)
            .min(super::MAX_REPAIR_SYMBOLS);
        m = m.max(need);
        k = k.max(2 * m).min(super::MAX_SOURCE_SYMBOLS);
    }
    Shape::new(k, m).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Policy = Policy {
        min_loss: 0.005,
        min_rtt: Duration::from_millis(5),
    };
    const RTT: Duration = Duration::from_millis(40);

    fn shape(k: usize, m: usize) -> Option<Shape> {
        Some(Shape { k, m })
    }

    #[test]
    fn table() {
        let d = |l, b, rtt| decide(l, b, rtt, P.min_loss, P.min_rtt);
        assert_eq!(d(0.0, 0.0, RTT), None);
        assert_eq!(d(0.004, 1.0, RTT), None);
        assert_eq!(d(0.01, 1.0, RTT), shape(10, 1));
        assert_eq!(d(0.05, 1.0, RTT), shape(10, 2));
        assert_eq!(d(0.10, 1.0, RTT), shape(10, 4));
        assert_eq!(d(0.20, 1.0, RTT), shape(5, 3));
        assert_eq!(d(0.40, 1.0, RTT), shape(4, 4));
        // Retransmission is cheaper on a very short RTT.
        assert_eq!(d(0.10, 1.0, Duration::from_millis(2)), None);
        // Bursts of 4: 5 repair symbols over groups of 10.
        assert_eq!(d(0.05, 4.0, RTT), shape(10, 5));
        assert_eq!(d(0.20, 4.0, RTT), shape(10, 5));
        // Extreme bursts stay within the limits.
        assert_eq!(d(0.20, 100.0, RTT), shape(32, 16));
        assert_eq!(d(f64::NAN, 1.0, RTT), None);
    }

    #[test]
    fn measures_loss_and_bursts() {
        let mut c = FecController::new();
        // Clean path: off.
        c.on_acked(1000);
        assert_eq!(c.loss_rate(), 0.0);
        assert_eq!(c.shape(RTT, &P), None);
        // 10% loss in bursts of 2.
        let mut pn = 0u64;
        for _ in 0..100 {
            c.on_acked(8);
            pn += 8;
            c.on_lost(pn);
            c.on_lost(pn + 1);
            pn += 2;
        }
        assert!((c.loss_rate() - 0.2).abs() < 0.03, "{}", c.loss_rate());
        assert!((c.mean_burst() - 2.0).abs() < 0.01, "{}", c.mean_burst());
        assert_eq!(c.shape(RTT, &P), shape(6, 3));
    }

    #[test]
    fn a_provisional_estimate_comes_after_a_few_packets() {
        let mut c = FecController::new();
        c.on_acked(7);
        assert_eq!(c.shape(RTT, &P), None);
        c.on_lost(7);
        assert_eq!(c.loss_rate(), 1.0 / 8.0);
        assert_eq!(c.shape(RTT, &P), shape(5, 3));
        // The first full window replaces it.
        c.on_acked(24);
        assert_eq!(c.loss_rate(), 1.0 / 32.0);
    }

    #[test]
    fn hysteresis_keeps_protection_until_loss_halves() {
        let mut c = FecController::new();
        // 1 loss in 128 packets: about 0.8%.
        for i in 0..40u64 {
            c.on_acked(127);
            c.on_lost(i * 1000);
        }
        assert!(c.shape(RTT, &P).is_some());
        // Now 0.3%: above half the threshold, still on.
        for i in 0..200u64 {
            c.on_acked(333);
            c.on_lost(1_000_000 + i * 1000);
        }
        assert!(c.loss_rate() < P.min_loss, "{}", c.loss_rate());
        assert!(c.shape(RTT, &P).is_some());
        // Clean: off.
        c.on_acked(100_000);
        assert_eq!(c.shape(RTT, &P), None);
    }
}
