//! Sent-packet bookkeeping and loss detection for one packet number space (RFC 9002 §6, as
//! adopted by PROTOCOL.md §15): acknowledgement processing, packet- and time-threshold loss.
//! Packets in flight live in a [`PnMap`], whose memory follows the packet numbers in flight: an
//! idle connection with a packet or two outstanding holds a few slots, not a B-tree node.

use std::ops::Range;

use core::time::Duration;

use super::pn_map::PnMap;
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
    sent: PnMap<SentPacket<F>>,
    largest_acked: Option<u64>,
    loss_time: Option<Instant>,
    last_ack_eliciting_sent: Option<Instant>,
    ack_eliciting_in_flight: u64,
    bytes_in_flight: u64,
}

impl<F> Default for LossDetection<F> {
    fn default() -> Self {
        Self {
            sent: PnMap::new(),
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
        let p = self.sent.remove(pn);
        if let Some(p) = &p {
            self.forget(p);
        }
        p
    }

    /// Takes a packet no longer tracked out of the in-flight counters.
    fn forget(&mut self, p: &SentPacket<F>) {
        if p.ack_eliciting {
            self.ack_eliciting_in_flight -= 1;
        }
        if p.in_flight {
            self.bytes_in_flight -= u64::from(p.size);
        }
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
            acked.extend(self.sent.range(r).map(|(pn, _)| pn));
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
        for (pn, p) in self.sent.range(..largest_acked) {
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
        // Taking the map also frees its buffer.
        for (pn, p) in std::mem::take(&mut self.sent) {
            self.forget(&p);
            f(pn, p);
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
            .map(|(pn, _)| pn)
            .collect();
        for pn in pns {
            if let Some(p) = self.remove(pn) {
                f(pn, p);
            }
        }
    }

    /// Oldest unacknowledged ack-eliciting packets, for probing (PTO).
    pub fn oldest_unacked(&self, n: usize) -> impl Iterator<Item = (u64, &SentPacket<F>)> {
        self.sent.iter().filter(|(_, p)| p.ack_eliciting).take(n)
    }
}

fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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

    #[test]
    fn drains_and_probes() {
        let mut l = LossDetection::default();
        for pn in [0u64, 1, 2, 4, 5, 7] {
            let mut p = pkt(pn);
            p.ack_eliciting = pn != 1;
            p.in_flight = pn != 1;
            l.on_sent(pn, p);
        }
        assert_eq!(l.tracked(), 6);
        assert_eq!(l.ack_eliciting_in_flight(), 5);
        let oldest: Vec<u64> = l.oldest_unacked(3).map(|(pn, _)| pn).collect();
        assert_eq!(oldest, vec![0, 2, 4], "skips packet 1 (not ack-eliciting)");
        let mut drained = vec![];
        l.drain_where(|p| p.frames % 2 == 0, |pn, p| drained.push((pn, p.frames)));
        assert_eq!(drained, vec![(0, 0), (2, 2), (4, 4)]);
        assert_eq!(l.bytes_in_flight(), 2000);
        let mut drained = vec![];
        l.drain_all(|pn, _| drained.push(pn));
        assert_eq!(drained, vec![1, 5, 7]);
        assert_eq!(l.tracked(), 0);
        assert_eq!(l.bytes_in_flight(), 0);
        assert_eq!(l.ack_eliciting_in_flight(), 0);
        assert_eq!(l.sent.capacity(), 0, "drain_all frees the buffer");
    }

    #[test]
    fn idle_after_bulk_keeps_a_small_buffer() {
        let mut l = LossDetection::default();
        let rtt = RttEstimator::new(Duration::from_millis(100));
        // A bulk transfer: 5000 packets in flight at the peak, acked in ranges of 50.
        for pn in 0..5000 {
            l.on_sent(pn, pkt(pn));
        }
        for start in (0..4999).step_by(50) {
            l.on_ack(std::iter::once(start..(start + 50).min(4999)), |_, _| {});
            l.detect_lost(Instant::from_nanos(5_000_000_000), &rtt, |_, _| {});
        }
        // Idle: one packet (say an ACK-only one) still outstanding.
        assert_eq!(l.tracked(), 1);
        let slot = std::mem::size_of::<Option<SentPacket<u32>>>();
        let bytes = l.sent.capacity() * slot;
        assert!(bytes <= 1024.max(2 * slot), "{bytes} bytes kept");
    }

    /// The loss detection this module had before [`PnMap`] (a `BTreeMap` keyed by packet number),
    /// kept as the reference the current one must agree with.
    mod reference {
        use std::collections::BTreeMap;

        use super::super::*;

        #[derive(Default)]
        pub struct Old {
            pub sent: BTreeMap<u64, SentPacket<u32>>,
            pub largest_acked: Option<u64>,
            pub loss_time: Option<Instant>,
            pub last_ack_eliciting_sent: Option<Instant>,
            pub ack_eliciting_in_flight: u64,
            pub bytes_in_flight: u64,
        }

        impl Old {
            pub fn on_sent(&mut self, pn: u64, packet: SentPacket<u32>) {
                if packet.ack_eliciting {
                    self.ack_eliciting_in_flight += 1;
                    self.last_ack_eliciting_sent = Some(packet.time_sent);
                }
                if packet.in_flight {
                    self.bytes_in_flight += u64::from(packet.size);
                }
                self.sent.insert(pn, packet);
            }

            fn remove(&mut self, pn: u64) -> Option<SentPacket<u32>> {
                let p = self.sent.remove(&pn)?;
                if p.ack_eliciting {
                    self.ack_eliciting_in_flight -= 1;
                }
                if p.in_flight {
                    self.bytes_in_flight -= u64::from(p.size);
                }
                Some(p)
            }

            pub fn on_ack(
                &mut self,
                ranges: impl Iterator<Item = Range<u64>>,
                mut on_acked: impl FnMut(u64, SentPacket<u32>),
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

            pub fn detect_lost(
                &mut self,
                now: Instant,
                rtt: &RttEstimator,
                mut on_lost: impl FnMut(u64, SentPacket<u32>),
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

            pub fn drain_all(&mut self, mut f: impl FnMut(u64, SentPacket<u32>)) {
                let pns: Vec<u64> = self.sent.keys().copied().collect();
                for pn in pns {
                    if let Some(p) = self.remove(pn) {
                        f(pn, p);
                    }
                }
                self.loss_time = None;
            }

            pub fn drain_where(
                &mut self,
                pred: impl Fn(&SentPacket<u32>) -> bool,
                mut f: impl FnMut(u64, SentPacket<u32>),
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

            pub fn oldest_unacked(&self, n: usize) -> Vec<u64> {
                self.sent
                    .iter()
                    .filter(|(_, p)| p.ack_eliciting)
                    .take(n)
                    .map(|(&pn, _)| pn)
                    .collect()
            }
        }
    }

    /// One step of a random sender's life.
    #[derive(Clone, Debug)]
    enum Step {
        /// Send a packet after skipping `skip` packet numbers, `dt` ms after the previous one.
        Send {
            skip: u64,
            dt: u64,
            eliciting: bool,
            in_flight: bool,
            size: u16,
        },
        /// An ACK frame: ranges as (offset back from the next packet number, length).
        Ack(Vec<(u64, u64)>),
        /// An RTT sample (ms), then loss detection `dt` ms later.
        Detect { rtt: u64, dt: u64 },
        /// Drop the packets whose id is a multiple of this (0-RTT rejection).
        DrainWhere(u32),
        /// Drop everything (keys discarded).
        DrainAll,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            10 => (prop_oneof![8 => Just(0u64), 1 => 1u64..3], 0u64..15, any::<bool>(), any::<bool>(), 1u16..1500)
                .prop_map(|(skip, dt, eliciting, in_flight, size)| Step::Send { skip, dt, eliciting, in_flight, size }),
            5 => prop::collection::vec((0u64..40, 0u64..12), 1..4).prop_map(Step::Ack),
            2 => (1u64..200, 0u64..300).prop_map(|(rtt, dt)| Step::Detect { rtt, dt }),
            1 => (2u32..5).prop_map(Step::DrainWhere),
            1 => prop_oneof![20 => Just(None), 1 => Just(Some(Step::DrainAll))]
                .prop_map(|s| s.unwrap_or(Step::Detect { rtt: 50, dt: 0 })),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Random send / ACK / loss / drain sequences give exactly what the BTreeMap version gave:
        /// the same callbacks in the same order, summaries, counters, loss timer and probes.
        #[test]
        fn matches_the_btreemap_implementation(steps in prop::collection::vec(step(), 0..300)) {
            let mut new = LossDetection::default();
            let mut old = reference::Old::default();
            let mut rtt = RttEstimator::new(Duration::from_millis(30));
            let mut now_ms = 1u64;
            let mut next_pn = 0u64;
            let mut id = 0u32;
            let packet = |now_ms: u64, eliciting, in_flight, size, id| SentPacket {
                time_sent: Instant::from_nanos(now_ms * 1_000_000),
                size,
                ack_eliciting: eliciting,
                in_flight,
                frames: id,
                rate: Default::default(),
            };
            for s in steps {
                match s {
                    Step::Send { skip, dt, eliciting, in_flight, size } => {
                        now_ms += dt;
                        next_pn += skip;
                        id += 1;
                        new.on_sent(next_pn, packet(now_ms, eliciting, in_flight, size, id));
                        old.on_sent(next_pn, packet(now_ms, eliciting, in_flight, size, id));
                        next_pn += 1;
                    }
                    Step::Ack(ranges) => {
                        let ranges: Vec<Range<u64>> = ranges
                            .iter()
                            .map(|&(back, len)| {
                                let start = next_pn.saturating_sub(back);
                                start..(start + len).min(next_pn)
                            })
                            .collect();
                        let (mut a, mut b) = (vec![], vec![]);
                        let sa = new.on_ack(ranges.iter().cloned(), |pn, p| a.push((pn, p.frames)));
                        let sb = old.on_ack(ranges.iter().cloned(), |pn, p| b.push((pn, p.frames)));
                        prop_assert_eq!(a, b);
                        prop_assert_eq!(sa.largest_newly_acked, sb.largest_newly_acked);
                        prop_assert_eq!(sa.any_eliciting_acked, sb.any_eliciting_acked);
                        prop_assert_eq!(sa.bytes_acked, sb.bytes_acked);
                        prop_assert_eq!(sa.largest_acked_time_sent, sb.largest_acked_time_sent);
                    }
                    Step::Detect { rtt: sample, dt } => {
                        rtt.update(Duration::from_millis(sample), Duration::ZERO);
                        now_ms += dt;
                        let now = Instant::from_nanos(now_ms * 1_000_000);
                        let (mut a, mut b) = (vec![], vec![]);
                        new.detect_lost(now, &rtt, |pn, p| a.push((pn, p.frames)));
                        old.detect_lost(now, &rtt, |pn, p| b.push((pn, p.frames)));
                        prop_assert_eq!(a, b);
                    }
                    Step::DrainWhere(k) => {
                        let (mut a, mut b) = (vec![], vec![]);
                        new.drain_where(|p| p.frames % k == 0, |pn, p| a.push((pn, p.frames)));
                        old.drain_where(|p| p.frames % k == 0, |pn, p| b.push((pn, p.frames)));
                        prop_assert_eq!(a, b);
                    }
                    Step::DrainAll => {
                        let (mut a, mut b) = (vec![], vec![]);
                        new.drain_all(|pn, p| a.push((pn, p.frames)));
                        old.drain_all(|pn, p| b.push((pn, p.frames)));
                        prop_assert_eq!(a, b);
                    }
                }
                prop_assert_eq!(new.tracked(), old.sent.len());
                prop_assert_eq!(new.bytes_in_flight(), old.bytes_in_flight);
                prop_assert_eq!(new.ack_eliciting_in_flight(), old.ack_eliciting_in_flight);
                prop_assert_eq!(new.largest_acked(), old.largest_acked);
                prop_assert_eq!(new.loss_time(), old.loss_time);
                prop_assert_eq!(new.last_ack_eliciting_sent(), old.last_ack_eliciting_sent);
                let probes: Vec<u64> = new.oldest_unacked(3).map(|(pn, _)| pn).collect();
                prop_assert_eq!(probes, old.oldest_unacked(3));
                prop_assert_eq!(format!("{:?}", new.sent), format!("{:?}", old.sent));
            }
        }
    }
}
