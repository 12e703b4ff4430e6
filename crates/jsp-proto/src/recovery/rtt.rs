//! Round-trip time estimation (RFC 9002 §5): latest, minimum, smoothed RTT and its variation.

use core::time::Duration;

/// Granularity of timers: the smallest RTT variation the estimator accounts for.
pub const TIMER_GRANULARITY: Duration = Duration::from_millis(1);

/// RTT estimator following RFC 9002 §5.
#[derive(Clone, Debug)]
pub struct RttEstimator {
    latest: Duration,
    smoothed: Duration,
    var: Duration,
    min: Duration,
    has_sample: bool,
}

impl RttEstimator {
    /// A new estimator starting from `initial_rtt` until the first sample.
    pub fn new(initial_rtt: Duration) -> Self {
        Self {
            latest: initial_rtt,
            smoothed: initial_rtt,
            var: initial_rtt / 2,
            min: initial_rtt,
            has_sample: false,
        }
    }

    /// Whether at least one RTT sample was taken.
    pub fn has_sample(&self) -> bool {
        self.has_sample
    }

    /// The smoothed RTT.
    pub fn smoothed(&self) -> Duration {
        self.smoothed
    }

    /// The most recent sample.
    pub fn latest(&self) -> Duration {
        self.latest
    }

    /// The minimum RTT seen.
    pub fn min(&self) -> Duration {
        self.min
    }

    /// The RTT variation.
    pub fn var(&self) -> Duration {
        self.var
    }

    /// Adds a sample: `rtt` measured from send to ACK, `ack_delay` as reported by the peer
    /// (already capped by the caller at `max_ack_delay` once the handshake is confirmed).
    pub fn update(&mut self, rtt: Duration, ack_delay: Duration) {
        self.latest = rtt;
        if !self.has_sample {
            self.has_sample = true;
            self.min = rtt;
            self.smoothed = rtt;
            self.var = rtt / 2;
            return;
        }
        self.min = self.min.min(rtt);
        let adjusted = if rtt >= self.min + ack_delay {
            rtt - ack_delay
        } else {
            rtt
        };
        let diff = self.smoothed.abs_diff(adjusted);
        self.var = (self.var * 3 + diff) / 4;
        self.smoothed = (self.smoothed * 7 + adjusted) / 8;
    }

    /// The probe timeout base: `smoothed + max(4 * var, granularity)` (without max_ack_delay).
    pub fn pto_base(&self) -> Duration {
        self.smoothed + (self.var * 4).max(TIMER_GRANULARITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_sample_initialises() {
        let mut r = RttEstimator::new(Duration::from_millis(300));
        r.update(Duration::from_millis(40), Duration::ZERO);
        assert_eq!(r.smoothed(), Duration::from_millis(40));
        assert_eq!(r.var(), Duration::from_millis(20));
        r.update(Duration::from_millis(48), Duration::from_millis(8));
        assert_eq!(r.smoothed(), Duration::from_millis(40));
        assert_eq!(r.min(), Duration::from_millis(40));
    }
}
