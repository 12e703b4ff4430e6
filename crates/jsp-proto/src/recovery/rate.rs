//! Delivery-rate estimation, as in draft-cheng-iccrg-delivery-rate-estimation-02 (the estimator
//! Linux TCP and BBR use).
//!
//! The connection keeps one [`DeliveryRateEstimator`]. Each congestion-controlled packet records a
//! small [`PacketRateState`] snapshot when it is sent ([`DeliveryRateEstimator::on_packet_sent`]);
//! each newly acknowledged packet feeds its snapshot back ([`DeliveryRateEstimator::on_packet_acked`]);
//! once per ACK frame [`DeliveryRateEstimator::generate_rate_sample`] turns what the frame
//! acknowledged into a [`RateSample`]: bytes delivered over the interval between the newest
//! acknowledged packet's send and its acknowledgement, measured from the flight it belonged to.
//! The rate is `delivered / max(send_elapsed, ack_elapsed)`, so neither ACK compression nor a
//! send burst can inflate it. Application-limited periods (the sender had nothing to send while
//! the window had room) are tracked so a controller can tell "the path is slow" from "we were
//! idle". No allocation, no clock: time is an argument.

use core::time::Duration;

use crate::time::Instant;

/// What the estimator needs to remember about one sent packet. Store it in the sent-packet record
/// and hand it back when the packet is acknowledged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketRateState {
    /// When the packet was sent.
    pub sent_time: Instant,
    /// Bytes the connection had delivered when the packet was sent.
    pub delivered: u64,
    /// When the last of those bytes was acknowledged (or the flight started).
    pub delivered_time: Instant,
    /// Send time of the newest acknowledged packet at send time (start of its flight).
    pub first_sent_time: Instant,
    /// Whether the packet was sent during an application-limited period.
    pub is_app_limited: bool,
}

/// A delivery-rate sample, produced once per ACK frame that acknowledged in-flight packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateSample {
    /// Delivered bytes per second over [`Self::interval`], or `None` when the interval is shorter
    /// than the minimum RTT (ACK compression or a burst: the sample would overestimate). The other
    /// fields stay valid (a controller still uses them to count rounds).
    pub delivery_rate: Option<u64>,
    /// Bytes delivered over the interval.
    pub delivered: u64,
    /// Bytes delivered when the newest acknowledged packet was sent. A round trip ends when this
    /// reaches the total delivered at the round's start.
    pub prior_delivered: u64,
    /// Total bytes delivered on the connection so far (`prior_delivered + delivered`).
    pub total_delivered: u64,
    /// The sampling interval, `max(send_elapsed, ack_elapsed)`.
    pub interval: Duration,
    /// Whether the newest acknowledged packet was sent while application-limited; such a sample
    /// may underestimate the path and must not lower a bandwidth estimate.
    pub is_app_limited: bool,
    /// Send-to-ACK time of the newest acknowledged packet (includes the peer's ACK delay).
    pub rtt: Duration,
}

/// The sample being built from the packets one ACK frame acknowledged.
#[derive(Clone, Copy, Debug, Default)]
struct PendingSample {
    has_data: bool,
    prior_delivered: u64,
    send_elapsed: Duration,
    ack_elapsed: Duration,
    is_app_limited: bool,
    rtt: Duration,
}

/// Per-connection delivery-rate estimator (draft-cheng-iccrg-delivery-rate-estimation §3).
#[derive(Clone, Debug, Default)]
pub struct DeliveryRateEstimator {
    /// Total bytes acknowledged (`C.delivered`).
    delivered: u64,
    /// When `delivered` last changed (`C.delivered_time`).
    delivered_time: Instant,
    /// Send time of the newest acknowledged packet (`C.first_sent_time`).
    first_sent_time: Instant,
    /// `C.app_limited`: 0, or the `delivered` value at which the app-limited bubble is gone.
    app_limited_until: u64,
    sample: PendingSample,
}

impl DeliveryRateEstimator {
    /// A fresh estimator (nothing delivered, not application-limited).
    pub fn new() -> Self {
        Self::default()
    }

    /// A congestion-controlled packet is being sent at `now`; `bytes_in_flight` is what was in
    /// flight *before* it (all packet number spaces). Returns the snapshot to store with it.
    pub fn on_packet_sent(&mut self, now: Instant, bytes_in_flight: u64) -> PacketRateState {
        if bytes_in_flight == 0 {
            // A new flight: measure from here, not from before the idle period.
            self.first_sent_time = now;
            self.delivered_time = now;
        }
        PacketRateState {
            sent_time: now,
            delivered: self.delivered,
            delivered_time: self.delivered_time,
            first_sent_time: self.first_sent_time,
            is_app_limited: self.app_limited_until != 0,
        }
    }

    /// A congestion-controlled packet of `bytes` with snapshot `p` was newly acknowledged at
    /// `now`. Call for every such packet of an ACK frame, then [`Self::generate_rate_sample`].
    pub fn on_packet_acked(&mut self, now: Instant, p: &PacketRateState, bytes: u64) {
        if p.delivered > self.delivered {
            // Sent before this estimator was reset (a new path, PROTOCOL.md §15.2): its snapshot
            // belongs to the old path, so it counts as delivered but gives no sample.
            self.delivered += bytes;
            return;
        }
        self.delivered += bytes;
        self.delivered_time = now;
        // Sample from the most recently sent packet acknowledged by this frame.
        let newest = !self.sample.has_data
            || p.sent_time > self.first_sent_time
            || (p.sent_time == self.first_sent_time && p.delivered >= self.sample.prior_delivered);
        if newest {
            self.sample = PendingSample {
                has_data: true,
                prior_delivered: p.delivered,
                send_elapsed: p.sent_time - p.first_sent_time,
                ack_elapsed: now - p.delivered_time,
                is_app_limited: p.is_app_limited,
                rtt: now - p.sent_time,
            };
            self.first_sent_time = p.sent_time;
        }
    }

    /// Finishes the sample for one ACK frame. `min_rtt` is the connection's minimum RTT (zero if
    /// unknown). Returns `None` if the frame acknowledged no congestion-controlled packet.
    pub fn generate_rate_sample(&mut self, min_rtt: Duration) -> Option<RateSample> {
        // The app-limited bubble is gone once everything in flight when it began is delivered.
        if self.app_limited_until != 0 && self.delivered > self.app_limited_until {
            self.app_limited_until = 0;
        }
        let s = core::mem::take(&mut self.sample);
        if !s.has_data {
            return None;
        }
        let interval = s.send_elapsed.max(s.ack_elapsed);
        let delivered = self.delivered.saturating_sub(s.prior_delivered);
        let delivery_rate = if interval.is_zero() || interval < min_rtt {
            None
        } else {
            let rate = u128::from(delivered) * 1_000_000_000 / interval.as_nanos();
            Some(u64::try_from(rate).unwrap_or(u64::MAX))
        };
        Some(RateSample {
            delivery_rate,
            delivered,
            prior_delivered: s.prior_delivered,
            total_delivered: self.delivered,
            interval,
            is_app_limited: s.is_app_limited,
            rtt: s.rtt,
        })
    }

    /// The sender is application-limited: it stopped sending for a reason other than the
    /// congestion window or the pacer (no data, flow control, stream limits) while the window had
    /// room. `bytes_in_flight` is the current total. Packets sent until all of it is delivered are
    /// marked application-limited.
    pub fn on_app_limited(&mut self, bytes_in_flight: u64) {
        self.app_limited_until = (self.delivered + bytes_in_flight).max(1);
    }

    /// Whether packets sent now are marked application-limited.
    pub fn is_app_limited(&self) -> bool {
        self.app_limited_until != 0
    }

    /// Total bytes delivered (acknowledged) so far.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Instant {
        Instant::from_nanos(v * 1_000_000)
    }

    /// A sender pacing one 1000-byte packet per ms over a 50 ms path measures 1 MB/s.
    #[test]
    fn steady_flow_measures_send_rate() {
        let mut e = DeliveryRateEstimator::new();
        let mut sent = std::collections::VecDeque::new();
        let mut in_flight = 0;
        let mut last = None;
        for t in 0..400u64 {
            // ACK of the packet sent 50 ms ago arrives.
            if t >= 50 {
                let (p, size): (PacketRateState, u64) = sent.pop_front().unwrap();
                in_flight -= size;
                e.on_packet_acked(ms(t), &p, size);
                last = e.generate_rate_sample(Duration::from_millis(50));
            }
            let p = e.on_packet_sent(ms(t), in_flight);
            in_flight += 1000;
            sent.push_back((p, 1000));
        }
        let s = last.unwrap();
        assert_eq!(s.delivery_rate, Some(1_000_000));
        assert!(!s.is_app_limited);
        assert_eq!(s.rtt, Duration::from_millis(50));
        assert_eq!(s.total_delivered, e.delivered());
    }

    /// With every tenth packet lost (never acknowledged), the samples measure the delivered
    /// rate: 90% of the send rate.
    #[test]
    fn lossy_flow_measures_delivered_rate() {
        let mut e = DeliveryRateEstimator::new();
        let mut sent = std::collections::VecDeque::new();
        let mut in_flight = 0;
        let mut rates = Vec::new();
        for t in 0..400u64 {
            if t >= 50 {
                let (i, p, size): (u64, PacketRateState, u64) = sent.pop_front().unwrap();
                in_flight -= size;
                if i % 10 != 3 {
                    e.on_packet_acked(ms(t), &p, size);
                    if let Some(s) = e.generate_rate_sample(Duration::from_millis(50)) {
                        rates.push(s.delivery_rate);
                    }
                }
            }
            let p = e.on_packet_sent(ms(t), in_flight);
            in_flight += 1000;
            sent.push_back((t, p, 1000));
        }
        let last = rates.last().copied().flatten().unwrap();
        assert!((880_000..=920_000).contains(&last), "{rates:?}");
    }

    /// Samples whose interval is shorter than min_rtt carry no rate; an ACK of several packets
    /// samples from the newest.
    #[test]
    fn short_interval_and_newest_packet() {
        let mut e = DeliveryRateEstimator::new();
        let a = e.on_packet_sent(ms(0), 0);
        let b = e.on_packet_sent(ms(1), 1000);
        e.on_packet_acked(ms(10), &b, 1000);
        e.on_packet_acked(ms(10), &a, 1000);
        let s = e.generate_rate_sample(Duration::from_millis(20)).unwrap();
        assert_eq!(s.delivery_rate, None, "10 ms interval < 20 ms min_rtt");
        assert_eq!(s.delivered, 2000);
        assert_eq!(
            s.rtt,
            Duration::from_millis(9),
            "sampled from the newest packet"
        );
        assert_eq!(
            e.generate_rate_sample(Duration::ZERO),
            None,
            "nothing new acked"
        );
    }

    /// After a reset (a new path), packets sent on the old path are counted as delivered but
    /// give no sample: their snapshot is from another estimator (an attacker-triggered path
    /// change once made this subtraction overflow).
    #[test]
    fn packets_from_before_a_reset_give_no_sample() {
        let mut old = DeliveryRateEstimator::new();
        let mut stale = old.on_packet_sent(ms(0), 0);
        for t in 1..20 {
            let p = old.on_packet_sent(ms(t), 0);
            old.on_packet_acked(ms(t + 1), &p, 1000);
            stale = old.on_packet_sent(ms(t), 0);
        }
        assert!(stale.delivered > 0);
        let mut e = DeliveryRateEstimator::new();
        e.on_packet_acked(ms(30), &stale, 1000);
        assert_eq!(e.generate_rate_sample(Duration::ZERO), None);
        assert_eq!(e.delivered(), 1000);
        let fresh = e.on_packet_sent(ms(31), 0);
        e.on_packet_acked(ms(41), &fresh, 1000);
        let s = e.generate_rate_sample(Duration::ZERO).unwrap();
        assert_eq!(s.delivered, 1000);
        assert_eq!(s.rtt, Duration::from_millis(10));
    }

    #[test]
    fn app_limited_bubble_marks_and_clears() {
        let mut e = DeliveryRateEstimator::new();
        let a = e.on_packet_sent(ms(0), 0);
        assert!(!a.is_app_limited);
        e.on_app_limited(1000);
        assert!(e.is_app_limited());
        let b = e.on_packet_sent(ms(5), 1000);
        assert!(b.is_app_limited);
        e.on_packet_acked(ms(50), &a, 1000);
        let s = e.generate_rate_sample(Duration::ZERO).unwrap();
        assert!(!s.is_app_limited);
        assert!(e.is_app_limited(), "b is still in flight");
        e.on_packet_acked(ms(55), &b, 1000);
        let s = e.generate_rate_sample(Duration::ZERO).unwrap();
        assert!(s.is_app_limited);
        assert!(!e.is_app_limited(), "bubble delivered");
    }
}
