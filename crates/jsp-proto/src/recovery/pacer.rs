//! Packet pacing: a token bucket that spreads congestion-controlled packets over the round trip
//! instead of sending a whole window back to back (which fills shallow router buffers and loses
//! packets a paced sender would not).
//!
//! The bucket fills at the pacing rate: the controller's own rate when it has one (BBR, or the
//! window-based controllers' rate once they have an RTT sample), otherwise
//! `1.25 * window / smoothed_rtt` as quinn does. Its capacity, the largest burst, is the rate
//! times [`BURST_INTERVAL`], at least [`MIN_BURST_PACKETS`] datagrams (so a small window, such as
//! the initial one, goes out at once) and at most [`MAX_BURST_PACKETS`]. The driver asks
//! [`Pacer::delay_until`] before building an ack-eliciting packet, arms a timer for the answer, and
//! reports each sent packet with [`Pacer::on_sent`]. ACK-only packets are not paced. No
//! allocation, no clock.

use core::time::Duration;

use crate::time::Instant;

/// The largest burst, expressed as time at the pacing rate.
pub const BURST_INTERVAL: Duration = Duration::from_millis(2);
/// The smallest burst capacity, in datagrams.
pub const MIN_BURST_PACKETS: u64 = 10;
/// The largest burst capacity, in datagrams.
pub const MAX_BURST_PACKETS: u64 = 256;
/// Without a rate from the controller the pacer sends `window / srtt` times this (in 1/1000).
pub const WINDOW_PACING_GAIN_PERMILLE: u64 = 1250;

/// A token-bucket pacer for one path.
#[derive(Clone, Debug)]
pub struct Pacer {
    max_datagram_size: u64,
    /// Bytes per second; 0 until the first [`Pacer::update`] (no pacing).
    rate: u64,
    capacity: u64,
    tokens: u64,
    /// When `tokens` was last brought up to date.
    last: Option<Instant>,
}

impl Pacer {
    /// A pacer for datagrams of `max_datagram_size` bytes. Until [`Pacer::update`] gives it a rate
    /// it lets everything through.
    pub fn new(max_datagram_size: u64) -> Self {
        let capacity = MIN_BURST_PACKETS * max_datagram_size;
        Self {
            max_datagram_size,
            rate: 0,
            capacity,
            tokens: capacity,
            last: None,
        }
    }

    /// The rate a pacer uses: the controller's `pacing_rate` if it has one, otherwise
    /// `1.25 * window / srtt` (bytes per second).
    pub fn rate_for(pacing_rate: Option<u64>, window: u64, srtt: Duration) -> u64 {
        if let Some(r) = pacing_rate {
            return r.max(1);
        }
        let nanos = srtt.as_nanos().max(1);
        let r = u128::from(window) * u128::from(WINDOW_PACING_GAIN_PERMILLE) * 1_000_000 / nanos;
        u64::try_from(r).unwrap_or(u64::MAX).max(1)
    }

    /// Sets the rate from the controller's state (call before [`Pacer::delay_until`] whenever the
    /// window, pacing rate or RTT may have changed; it is cheap).
    pub fn update(&mut self, now: Instant, pacing_rate: Option<u64>, window: u64, srtt: Duration) {
        let rate = Self::rate_for(pacing_rate, window, srtt);
        if rate == self.rate {
            return;
        }
        // Tokens earned so far were earned at the old rate.
        self.refill(now);
        self.rate = rate;
        let burst = u128::from(rate) * BURST_INTERVAL.as_nanos() / 1_000_000_000;
        let burst = u64::try_from(burst).unwrap_or(u64::MAX);
        self.capacity = burst.clamp(
            MIN_BURST_PACKETS * self.max_datagram_size,
            MAX_BURST_PACKETS * self.max_datagram_size,
        );
        self.tokens = self.tokens.min(self.capacity);
    }

    /// When a packet of `bytes` may be sent: `None` if now, otherwise the instant at which enough
    /// tokens will have accumulated (arm a timer for it).
    pub fn delay_until(&self, now: Instant, bytes: u64) -> Option<Instant> {
        if self.rate == 0 {
            return None;
        }
        let tokens = self.tokens_at(now);
        if tokens >= bytes.min(self.capacity) {
            return None;
        }
        let missing = bytes.min(self.capacity) - tokens;
        // Round up so the timer never fires a nanosecond too early.
        let nanos = (u128::from(missing) * 1_000_000_000).div_ceil(u128::from(self.rate));
        let nanos = u64::try_from(nanos).unwrap_or(u64::MAX);
        Some(now.saturating_add(Duration::from_nanos(nanos)))
    }

    /// A paced packet of `bytes` was sent at `now`.
    pub fn on_sent(&mut self, now: Instant, bytes: u64) {
        self.refill(now);
        self.tokens = self.tokens.saturating_sub(bytes);
    }

    /// The datagram size changed (path MTU discovery).
    pub fn set_max_datagram_size(&mut self, size: u64) {
        self.max_datagram_size = size;
        self.capacity = self
            .capacity
            .clamp(MIN_BURST_PACKETS * size, MAX_BURST_PACKETS * size);
        self.tokens = self.tokens.min(self.capacity);
    }

    /// The current rate in bytes per second (0: not pacing yet).
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// The burst capacity in bytes.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    fn tokens_at(&self, now: Instant) -> u64 {
        let Some(last) = self.last else {
            return self.tokens;
        };
        let elapsed = now.saturating_duration_since(last).as_nanos();
        let earned = u128::from(self.rate) * elapsed / 1_000_000_000;
        let earned = u64::try_from(earned).unwrap_or(u64::MAX);
        self.tokens.saturating_add(earned).min(self.capacity)
    }

    fn refill(&mut self, now: Instant) {
        self.tokens = self.tokens_at(now);
        // Keep the instant only when it moves forward, so a stale `now` cannot mint tokens twice.
        if self.last.is_none_or(|l| now > l) {
            self.last = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MDS: u64 = 1200;

    /// Sends as fast as the pacer allows and returns the send times.
    fn drain(p: &mut Pacer, start: Instant, packets: u64) -> Vec<Instant> {
        let mut now = start;
        let mut times = Vec::new();
        for _ in 0..packets {
            if let Some(t) = p.delay_until(now, MDS) {
                assert!(t > now);
                now = t;
                assert_eq!(p.delay_until(now, MDS), None, "ready when it said");
            }
            p.on_sent(now, MDS);
            times.push(now);
        }
        times
    }

    /// A window of 100 packets over a 100 ms RTT goes out over about one RTT (0.8 RTT at the
    /// 1.25 gain), with only the first burst back to back.
    #[test]
    fn spreads_a_window_over_the_rtt() {
        let mut p = Pacer::new(MDS);
        let rtt = Duration::from_millis(100);
        let start = Instant::from_nanos(1_000_000_000);
        p.update(start, None, 100 * MDS, rtt);
        assert_eq!(p.rate(), 1_500_000, "1.25 * 120 kB / 100 ms");
        assert_eq!(p.capacity(), MIN_BURST_PACKETS * MDS);
        let times = drain(&mut p, start, 100);
        let span = times[99] - times[0];
        assert!(
            span >= Duration::from_millis(70) && span <= rtt,
            "window spread over {span:?}"
        );
        let burst = times.iter().filter(|&&t| t == start).count() as u64;
        assert_eq!(burst, MIN_BURST_PACKETS, "initial burst");
        // After the burst, packets are evenly spaced at 1200 B / 1.5 MB/s = 0.8 ms.
        let gap = times[50] - times[49];
        assert!(gap.abs_diff(Duration::from_micros(800)) < Duration::from_micros(2));
    }

    /// A controller's own rate wins; the burst grows with the rate; idle time refills only up to
    /// the capacity.
    #[test]
    fn explicit_rate_burst_and_idle() {
        let mut p = Pacer::new(MDS);
        let t0 = Instant::from_nanos(0);
        p.update(t0, Some(120_000_000), 10 * MDS, Duration::from_millis(1));
        assert_eq!(p.rate(), 120_000_000);
        assert_eq!(p.capacity(), 240_000, "2 ms at 120 MB/s = 200 packets");
        let mut p = Pacer::new(MDS);
        p.update(t0, Some(1_200_000), 0, Duration::from_millis(1));
        let times = drain(&mut p, t0, 20);
        assert_eq!(times[10] - times[9], Duration::from_millis(1));
        // Idle for 1 s: only a capacity's worth may go at once.
        let later = times[19] + Duration::from_secs(1);
        let times = drain(&mut p, later, 11);
        assert_eq!(times[9], later);
        assert_eq!(times[10], later + Duration::from_millis(1));
    }

    #[test]
    fn no_rate_means_no_pacing() {
        let p = Pacer::new(MDS);
        assert_eq!(p.delay_until(Instant::ZERO, u64::MAX), None);
    }
}
