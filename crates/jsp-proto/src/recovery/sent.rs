//! Sent-packet bookkeeping and loss detection for one packet number space (RFC 9002 §6, as
//! adopted by PROTOCOL.md §15): acknowledgement processing, packet- and time-threshold loss.

use std::collections::BTreeMap;
use std::ops::Range;

use core::time::Duration;

use super::rtt::{RttEstimator, TIMER_GRANULARITY};
use crate::time::Instant;

/// A packet is lost once this many later packets were acknowledged.
pub const PACKET_THRESHOLD: u64 = 3;

/// A packet in flight, with what it carried (`F`) so lost frames can be re-queued.
#[derive(Clone, Debug)]
pub struct SentPacket<F> {
    /// When it was sent.
    pub time_sent: Instant,
    /// Bytes on the wire (counts toward bytes in flight when `in_flight`).
    pub size: u16,
    /// Whether it elicits an acknowledgement.
    pub ack_eliciting: bool,
    /// Whether it counts toward congestion control.
    pub in_flight: bool,
    /// What to re-send if it is lost, and what to release when it is acknowledged.
    pub frames: F,
    /// Delivery-rate state at send time (in-flight packets only).
    pub rate: super::rate::PacketRateState,
}

/// What an ACK frame changed.
#[derive(Debug, Default)]
pub struct AckSummary {
    /// The largest newly acknowledged packet number, if any.
    pub largest_newly_acked: Option<u64>,
    /// Whether any newly acknowledged packet was ack-eliciting.
    pub any_eliciting_acked: bool,
    /// Bytes of newly acknowledged in-flight packets.
    pub bytes_acked: u64,
    /// Send time of the largest newly acknowledged packet.
    pub largest_acked_time_sent: Option<Instant>,
}

/// Loss detection state for one packet number space.
#[derive(Debug)]
pub struct LossDetection<F> {
    sent: BTreeMap<u64, SentPacket<F>>,
    largest_acked: Option<u64>,
    loss_time: Option<Instant>,
    last_ack_eliciting_sent: Option<Instant>,
    ack_eliciting_in_flight: u64,
    bytes_in_flight: u64,
}

impl<F> Default for LossDetection<F> {
    fn default() -> Self {
        Self {
            sent: BTreeMap::new(),
            largest_acked: None,
            loss_time: None,
            last_ack_eliciting_sent: None,
            ack_eliciting_in_flight: 0,
            bytes_in_flight: 0,
        }
    }
}

impl<F> LossDetection<F> {
    /// Records a sent packet.
    pub fn on_sent(&mut self, pn: u64, packet: SentPacket<F>) {
        if packet.ack_eliciting {
            self.ack_eliciting_in_flight += 1;
            self.last_ack_eliciting_sent = Some(packet.time_sent);
        }
        if packet.in_flight {
            self.bytes_in_flight += u64::from(packet.size);
        }
        self.sent.insert(pn, packet);
    }

    /// Largest packet number the peer acknowledged.
    pub fn largest_acked(&self) -> Option<u64> {
        self.largest_acked
    }

    /// Bytes in flight in this space.
    pub fn bytes_in_flight(&self) -> u64 {
        self.bytes_in_flight
    }

    /// Ack-eliciting packets not yet acknowledged or declared lost.
    pub fn ack_eliciting_in_flight(&self) -> u64 {
        self.ack_eliciting_in_flight
    }

    /// When the last ack-eliciting packet was sent.
    pub fn last_ack_eliciting_sent(&self) -> Option<Instant> {
        self.last_ack_eliciting_sent
    }

    /// The earliest time a packet will be declared lost by the time threshold.
    pub fn loss_time(&self) -> Option<Instant> {
        self.loss_time
    }

    /// Number of packets being tracked.
    pub fn tracked(&self) -> usize {
        self.sent.len()
    }

    fn remove(&mut self, pn: u64) -> Option<SentPacket<F>> {
        let p = self.sent.remove(&pn)?;
        if p.ack_eliciting {
            self.ack_eliciting_in_flight -= 1;
        }
        if p.in_flight {
            self.bytes_in_flight -= u64::from(p.size);
        }
        Some(p)
    }

    /// Processes the ranges of an ACK frame (any order). Each newly acknowledged packet is passed
    /// to `on_acked`. Returns a summary; the caller then updates RTT and runs [`Self::detect_lost`].
    pub fn on_ack(
        &mut self,
        ranges: impl Iterator<Item = Range<u64>>,
        mut on_acked: impl FnMut(u64, SentPacket<F>),
    ) -> AckSummary {
        let mut summary = AckSummary::default();
        let mut acked = Vec::new();
        for r in ranges {
            acked.clear();
            acked.extend(self.sent.range(r).map(|(&pn, _)| pn));
            for &pn in &acked {
                if let Some(p) = self.remove(pn) {
                    if summary.largest_newly_acked.is_none_or(|l| pn > l) {
                        summary.largest_newly_acked = Some(pn);
                        summary.largest_acked_time_sent = Some(p.time_sent);
                    }
                    summary.any_eliciting_acked |= p.ack_eliciting;
                    if p.in_flight {
                        summary.bytes_acked += u64::from(p.size);
                    }
                    on_acked(pn, p);
                }
            }
        }
        if let Some(l) = summary.largest_newly_acked {
            self.largest_acked = Some(self.largest_acked.map_or(l, |x| x.max(l)));
        }
        summary
    }

    /// Declares packets lost by packet or time threshold (RFC 9002 §6.1). Each lost packet is
    /// passed to `on_lost`; the loss timer is re-armed.
    pub fn detect_lost(
        &mut self,
        now: Instant,
        rtt: &RttEstimator,
        mut on_lost: impl FnMut(u64, SentPacket<F>),
    ) {
        self.loss_time = None;
        let Some(largest_acked) = self.largest_acked else {
            return;
        };
        let loss_delay = (rtt.latest().max(rtt.smoothed()) * 9 / 8).max(TIMER_GRANULARITY);
        let lost_send_time = now.as_nanos().checked_sub(duration_nanos(loss_delay));
        let mut lost = Vec::new();
        for (&pn, p) in self.sent.range(..largest_acked) {
            let by_time = lost_send_time.is_some_and(|t| p.time_sent.as_nanos() <= t);
            let by_count = largest_acked >= pn + PACKET_THRESHOLD;
            if by_time || by_count {
                lost.push(pn);
            } else {
                let at = p.time_sent + loss_delay;
                self.loss_time = Some(self.loss_time.map_or(at, |t| t.min(at)));
            }
        }
        for pn in lost {
            if let Some(p) = self.remove(pn) {
                on_lost(pn, p);
            }
        }
    }

    /// Declares every packet lost (used when keys are discarded, for 0-RTT rejection, or on a
    /// probe in a space that must retransmit everything).
    pub fn drain_all(&mut self, mut f: impl FnMut(u64, SentPacket<F>)) {
        let pns: Vec<u64> = self.sent.keys().copied().collect();
        for pn in pns {
            if let Some(p) = self.remove(pn) {
                f(pn, p);
            }
        }
        self.loss_time = None;
    }

    /// Removes the packets matching `pred`, passing each to `f` (0-RTT rejection).
    pub fn drain_where(
        &mut self,
        pred: impl Fn(&SentPacket<F>) -> bool,
        mut f: impl FnMut(u64, SentPacket<F>),
    ) {
        let pns: Vec<u64> = self
            .sent
            .iter()
            .filter(|(_, p)| pred(p))
            .map(|(&pn, _)| pn)
            .collect();
        for pn in pns {
            if let Some(p) = self.remove(pn) {
                f(pn, p);
            }
        }
    }

    /// Oldest unacknowledged ack-eliciting packets, for probing (PTO).
    pub fn oldest_unacked(&self, n: usize) -> impl Iterator<Item = (&u64, &SentPacket<F>)> {
        self.sent.iter().filter(|(_, p)| p.ack_eliciting).take(n)
    }
}

fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(t: u64) -> SentPacket<u32> {
        SentPacket {
            time_sent: Instant::from_nanos(t * 1_000_000),
            size: 1000,
            ack_eliciting: true,
            in_flight: true,
            frames: t as u32,
            rate: Default::default(),
        }
    }

    #[test]
    fn packet_threshold_loss() {
        let mut l = LossDetection::default();
        for pn in 0..6 {
            l.on_sent(pn, pkt(pn));
        }
        assert_eq!(l.bytes_in_flight(), 6000);
        let mut acked = vec![];
        let s = l.on_ack(std::iter::once(4u64..6), |pn, _| acked.push(pn));
        assert_eq!(acked, vec![4, 5]);
        assert_eq!(s.largest_newly_acked, Some(5));
        let rtt = RttEstimator::new(Duration::from_millis(100));
        let mut lost = vec![];
        l.detect_lost(Instant::from_nanos(6_000_000), &rtt, |pn, _| lost.push(pn));
        assert_eq!(lost, vec![0, 1, 2]);
        assert!(
            l.loss_time().is_some(),
            "packet 3 waits for the time threshold"
        );
        let mut lost = vec![];
        l.detect_lost(Instant::from_nanos(1_000_000_000), &rtt, |pn, _| {
            lost.push(pn)
        });
        assert_eq!(lost, vec![3]);
        assert_eq!(l.bytes_in_flight(), 0);
    }
}
