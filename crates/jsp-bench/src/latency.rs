//! Time and latency recording: the harness's one clock ([`now`]) and an
//! HDR histogram of microseconds ([`Latencies`]) with the percentiles the
//! reports use.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// The wall clock the harness measures with. Benchmarks are the one place
/// where reading the real clock is the point.
#[allow(clippy::disallowed_methods, reason = "a benchmark measures real time")]
pub fn now() -> Instant {
    Instant::now()
}

/// Highest latency recorded (anything slower is clamped to it): 60 s.
const MAX_RECORDED_US: u64 = 60_000_000;

/// A latency histogram in microseconds, 3 significant digits.
pub struct Latencies {
    histogram: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

impl Latencies {
    /// An empty histogram.
    #[allow(clippy::expect_used, reason = "constant bounds, checked by the tests")]
    pub fn new() -> Self {
        let histogram = Histogram::new_with_bounds(1, MAX_RECORDED_US, 3)
            .expect("1 us..60 s at 3 digits is valid");
        Latencies { histogram }
    }

    /// Records one latency (sub-microsecond values count as 1 us).
    pub fn record(&mut self, latency: Duration) {
        let us = (latency.as_nanos() / 1_000).clamp(1, u128::from(MAX_RECORDED_US)) as u64;
        self.histogram.saturating_record(us);
    }

    /// Number of recorded values.
    pub fn len(&self) -> u64 {
        self.histogram.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.histogram.is_empty()
    }

    /// The value at `quantile` (0.5 for the median) in microseconds.
    pub fn quantile_us(&self, quantile: f64) -> f64 {
        self.histogram.value_at_quantile(quantile) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut latencies = Latencies::new();
        for us in 1..=1000u64 {
            latencies.record(Duration::from_micros(us));
        }
        assert_eq!(latencies.len(), 1000);
        let p50 = latencies.quantile_us(0.5);
        let p99 = latencies.quantile_us(0.99);
        assert!((499.0..=501.0).contains(&p50), "p50 {p50}");
        assert!((989.0..=991.0).contains(&p99), "p99 {p99}");
    }

    #[test]
    fn sub_microsecond_and_huge_values_are_clamped() {
        let mut latencies = Latencies::new();
        latencies.record(Duration::from_nanos(10));
        latencies.record(Duration::from_secs(3600));
        assert_eq!(latencies.len(), 2);
        assert_eq!(latencies.quantile_us(0.0), 1.0);
        assert!(latencies.quantile_us(1.0) >= 59_000_000.0);
    }
}
