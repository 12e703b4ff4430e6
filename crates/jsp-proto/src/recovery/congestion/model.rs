//! Test-only model of one bulk flow over a bottleneck link ([`Model`]), or of several sharing it
//! ([`Shared`]), driving a controller the way the connection does: delivery-rate estimator, RTT
//! estimator, pacer, one ACK event per arrival instant, packet-threshold loss detection. The link
//! is a FIFO served at `rate` bytes/s with a tail-drop buffer, a fixed two-way propagation delay
//! and optional random loss after the bottleneck (one flow only). Deterministic: the only
//! randomness is a seeded xorshift.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};

use core::time::Duration;

use super::{AckEvent, CongestionControl, CongestionController, LossEvent, SentEvent};
use crate::recovery::pacer::Pacer;
use crate::recovery::rate::{DeliveryRateEstimator, PacketRateState};
use crate::recovery::rtt::RttEstimator;
use crate::time::Instant;

/// Datagram size used by the model.
pub const MDS: u64 = 1200;

/// The bottleneck.
#[derive(Clone, Debug)]
pub struct Link {
    /// Service rate in bytes per second.
    pub rate: u64,
    /// Two-way propagation delay (the minimum RTT, plus one packet's serialisation).
    pub rtt: Duration,
    /// Buffer in bytes (tail drop beyond it).
    pub buffer: u64,
    /// Probability of random loss after the bottleneck, in 1/1,000,000.
    pub loss_ppm: u64,
}

impl Link {
    /// A lossless link.
    pub fn new(rate: u64, rtt: Duration, buffer: u64) -> Self {
        Self {
            rate,
            rtt,
            buffer,
            loss_ppm: 0,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    /// The head of the bottleneck queue finished serialising.
    Depart,
    /// The ACK for a packet arrives.
    Ack(u64),
    /// A dropped packet is detected lost (when three later packets would be acknowledged).
    Lost(u64),
}

#[derive(Clone, Copy, Debug)]
struct Pkt {
    sent: Instant,
    rate: PacketRateState,
}

/// Timed events in order of time, then of scheduling (equal times keep their order).
#[derive(Debug)]
struct Events<E> {
    heap: BinaryHeap<Reverse<(Instant, u64, E)>>,
    seq: u64,
}

impl<E: Ord + Copy> Events<E> {
    fn new() -> Self {
        Self {
            heap: BinaryHeap::new(),
            seq: 0,
        }
    }

    fn schedule(&mut self, at: Instant, ev: E) {
        self.seq += 1;
        self.heap.push(Reverse((at, self.seq, ev)));
    }

    /// When the next event is due.
    fn next_at(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((t, _, _))| *t)
    }

    /// The next event due at or before `now`.
    fn pop_due(&mut self, now: Instant) -> Option<E> {
        if self.next_at()? > now {
            return None;
        }
        self.heap.pop().map(|Reverse((_, _, ev))| ev)
    }
}

/// A sender's machinery around its controller, as the connection has it: delivery-rate and RTT
/// estimators, pacer, packets in flight. [`Model`] and each flow of [`Shared`] have one.
#[derive(Debug)]
struct Sender {
    rate_est: DeliveryRateEstimator,
    rtt: RttEstimator,
    pacer: Pacer,
    in_flight: BTreeMap<u64, Pkt>,
    bytes_in_flight: u64,
    next_pn: u64,
}

/// What one instant's arrivals acknowledged and declared lost, reported to the controller at once
/// ([`Sender::report`]).
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    acked_bytes: u64,
    largest_acked: Option<(u64, Instant)>,
    lost: u64,
    largest_lost_sent: Option<Instant>,
}

impl Sender {
    fn new() -> Self {
        Self {
            rate_est: DeliveryRateEstimator::new(),
            rtt: RttEstimator::new(Duration::from_millis(333)),
            pacer: Pacer::new(MDS),
            in_flight: BTreeMap::new(),
            bytes_in_flight: 0,
            next_pn: 0,
        }
    }

    /// Sends one packet if the window and the pacer allow: its number, or else when the pacer
    /// next allows a send (`None`: the window is full).
    fn try_send(
        &mut self,
        now: Instant,
        cc: &mut dyn CongestionController,
    ) -> Result<u64, Option<Instant>> {
        if self.bytes_in_flight + MDS > cc.window() {
            return Err(None);
        }
        self.pacer
            .update(now, cc.pacing_rate(), cc.window(), self.rtt.smoothed());
        if let Some(at) = self.pacer.delay_until(now, MDS) {
            return Err(Some(at));
        }
        let pn = self.next_pn;
        self.next_pn += 1;
        let rate = self.rate_est.on_packet_sent(now, self.bytes_in_flight);
        self.bytes_in_flight += MDS;
        self.in_flight.insert(pn, Pkt { sent: now, rate });
        self.pacer.on_sent(now, MDS);
        cc.on_packet_sent(&SentEvent {
            now,
            bytes: MDS,
            bytes_in_flight: self.bytes_in_flight,
            app_limited: rate.is_app_limited,
        });
        Ok(pn)
    }

    /// The ACK of packet `pn` arrived.
    fn on_ack(&mut self, now: Instant, pn: u64, tally: &mut Tally) {
        if let Some(p) = self.in_flight.remove(&pn) {
            self.bytes_in_flight -= MDS;
            tally.acked_bytes += MDS;
            self.rate_est.on_packet_acked(now, &p.rate, MDS);
            if tally.largest_acked.is_none_or(|(l, _)| pn > l) {
                tally.largest_acked = Some((pn, p.sent));
            }
        }
    }

    /// Packet `pn` is detected lost.
    fn on_lost(&mut self, pn: u64, tally: &mut Tally) {
        if let Some(p) = self.in_flight.remove(&pn) {
            self.bytes_in_flight -= MDS;
            tally.lost += 1;
            tally.largest_lost_sent = Some(
                tally
                    .largest_lost_sent
                    .map_or(p.sent, |s: Instant| s.max(p.sent)),
            );
        }
    }

    /// Reports an instant's arrivals to `cc`; returns the bytes acknowledged and the packets lost.
    fn report(
        &mut self,
        now: Instant,
        cc: &mut dyn CongestionController,
        tally: Tally,
    ) -> (u64, u64) {
        let mut acked = 0;
        if let Some((_, sent)) = tally.largest_acked {
            self.rtt.update(now - sent, Duration::ZERO);
            acked = tally.acked_bytes;
            let rate = self.rate_est.generate_rate_sample(self.rtt.min());
            cc.on_packets_acked(&AckEvent {
                now,
                bytes_acked: tally.acked_bytes,
                largest_acked_sent: sent,
                rtt: &self.rtt,
                rtt_updated: true,
                rate,
                bytes_in_flight: self.bytes_in_flight,
            });
        }
        let mut lost = 0;
        if let Some(s) = tally.largest_lost_sent {
            lost = tally.lost;
            cc.on_packets_lost(&LossEvent {
                now,
                largest_lost_sent: s,
                lost_bytes: tally.lost * MDS,
                lost_packets: tally.lost,
                persistent: false,
                bytes_in_flight: self.bytes_in_flight,
            });
        }
        (acked, lost)
    }
}

/// One flow over one [`Link`].
#[derive(Debug)]
pub struct Model {
    /// The controller under test.
    pub cc: Box<dyn CongestionController>,
    /// The link (its fields may be changed between runs: rate, loss).
    pub link: Link,
    /// The model's clock.
    pub now: Instant,
    /// Bytes acknowledged.
    pub delivered: u64,
    /// Packets sent.
    pub sent_packets: u64,
    /// Packets declared lost.
    pub lost_packets: u64,
    sender: Sender,
    queue: VecDeque<u64>,
    queued_bytes: u64,
    events: Events<Ev>,
    rng: u64,
    delivered_at_mark: (Instant, u64),
}

impl Model {
    /// A flow starting at time zero with `cc`, over `link`, with loss seeded by `seed`.
    pub fn new(cc: CongestionControl, link: Link, seed: u64) -> Self {
        let now = Instant::ZERO;
        Self {
            cc: cc.build(MDS, now),
            link,
            now,
            delivered: 0,
            sent_packets: 0,
            lost_packets: 0,
            sender: Sender::new(),
            queue: VecDeque::new(),
            queued_bytes: 0,
            events: Events::new(),
            rng: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            delivered_at_mark: (now, 0),
        }
    }

    /// Fraction of the link's capacity delivered since the last [`Self::mark`] (or the start).
    pub fn utilisation(&self) -> f64 {
        let (t0, d0) = self.delivered_at_mark;
        let secs = (self.now - t0).as_secs_f64();
        (self.delivered - d0) as f64 / (self.link.rate as f64 * secs)
    }

    /// Starts a new utilisation measurement.
    pub fn mark(&mut self) {
        self.delivered_at_mark = (self.now, self.delivered);
    }

    fn schedule(&mut self, at: Instant, ev: Ev) {
        self.events.schedule(at, ev);
    }

    fn random_loss(&mut self) -> bool {
        if self.link.loss_ppm == 0 {
            return false;
        }
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng % 1_000_000 < self.link.loss_ppm
    }

    fn serialisation(&self, bytes: u64) -> Duration {
        Duration::from_nanos(bytes * 1_000_000_000 / self.link.rate)
    }

    /// Sends while the window and the pacer allow; returns when the pacer next allows a send.
    fn send_what_we_can(&mut self) -> Option<Instant> {
        loop {
            let pn = match self.sender.try_send(self.now, self.cc.as_mut()) {
                Ok(pn) => pn,
                Err(next) => return next,
            };
            self.sent_packets += 1;
            // The packet reaches the bottleneck at once.
            if self.queued_bytes + MDS > self.link.buffer {
                let wait = self.serialisation(self.queued_bytes + MDS) + self.link.rtt;
                let ser = self.serialisation(3 * MDS);
                self.schedule(self.now + wait + ser, Ev::Lost(pn));
            } else {
                if self.queue.is_empty() {
                    let ser = self.serialisation(MDS);
                    self.schedule(self.now + ser, Ev::Depart);
                }
                self.queue.push_back(pn);
                self.queued_bytes += MDS;
            }
        }
    }

    /// Runs the model until `end`, calling `observe` after each batch of events.
    pub fn run_until(&mut self, end: Instant, mut observe: impl FnMut(&Self)) {
        loop {
            let next_send = self.send_what_we_can();
            let next_ev = self.events.next_at();
            let next = match (next_send, next_ev) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => a.or(b).unwrap_or(end),
            };
            if next > end {
                self.now = end;
                return;
            }
            self.now = next;
            self.process_events();
            observe(self);
        }
    }

    fn process_events(&mut self) {
        let now = self.now;
        let mut tally = Tally::default();
        while let Some(ev) = self.events.pop_due(now) {
            match ev {
                Ev::Depart => {
                    if let Some(pn) = self.queue.pop_front() {
                        self.queued_bytes -= MDS;
                        if self.random_loss() {
                            let ser = self.serialisation(3 * MDS);
                            self.schedule(now + self.link.rtt + ser, Ev::Lost(pn));
                        } else {
                            self.schedule(now + self.link.rtt, Ev::Ack(pn));
                        }
                    }
                    if !self.queue.is_empty() {
                        let ser = self.serialisation(MDS);
                        self.schedule(now + ser, Ev::Depart);
                    }
                }
                Ev::Ack(pn) => self.sender.on_ack(now, pn, &mut tally),
                Ev::Lost(pn) => self.sender.on_lost(pn, &mut tally),
            }
        }
        let (acked, lost) = self.sender.report(now, self.cc.as_mut(), tally);
        self.delivered += acked;
        self.lost_packets += lost;
    }
}

/// One flow of a [`Shared`] link: its controller and the sender's machinery.
#[derive(Debug)]
pub struct Flow {
    /// The flow's controller.
    pub cc: Box<dyn CongestionController>,
    /// Bytes acknowledged.
    pub delivered: u64,
    /// Packets declared lost.
    pub lost_packets: u64,
    start: Instant,
    sender: Sender,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum SharedEv {
    /// The head of the bottleneck queue finished serialising.
    Depart,
    /// The ACK for a flow's packet arrives.
    Ack(usize, u64),
    /// A flow's dropped packet is detected lost.
    Lost(usize, u64),
}

/// Several bulk flows through one [`Link`]'s FIFO and tail-drop buffer, each driven as
/// [`Model`] drives its one flow (no random loss: the buffer is the only loss). Deterministic.
#[derive(Debug)]
pub struct Shared {
    /// The flows, in the order given to [`Shared::new`].
    pub flows: Vec<Flow>,
    /// The link.
    pub link: Link,
    /// The model's clock.
    pub now: Instant,
    queue: VecDeque<(usize, u64)>,
    queued_bytes: u64,
    events: Events<SharedEv>,
}

impl Shared {
    /// Flows with `cc`, each starting to send at its own time, through `link`.
    pub fn new(cc: CongestionControl, link: Link, starts: &[Instant]) -> Self {
        let flows = starts
            .iter()
            .map(|&start| Flow {
                cc: cc.build(MDS, start),
                delivered: 0,
                lost_packets: 0,
                start,
                sender: Sender::new(),
            })
            .collect();
        Self {
            flows,
            link,
            now: Instant::ZERO,
            queue: VecDeque::new(),
            queued_bytes: 0,
            events: Events::new(),
        }
    }

    /// Bytes each flow has had acknowledged so far.
    pub fn delivered(&self) -> Vec<u64> {
        self.flows.iter().map(|f| f.delivered).collect()
    }

    fn schedule(&mut self, at: Instant, ev: SharedEv) {
        self.events.schedule(at, ev);
    }

    fn serialisation(&self, bytes: u64) -> Duration {
        Duration::from_nanos(bytes * 1_000_000_000 / self.link.rate)
    }

    /// Lets flow `i` send while its window and pacer allow; returns when it can send next.
    fn send_what_we_can(&mut self, i: usize) -> Option<Instant> {
        let now = self.now;
        if now < self.flows[i].start {
            return Some(self.flows[i].start);
        }
        loop {
            let f = &mut self.flows[i];
            let pn = match f.sender.try_send(now, f.cc.as_mut()) {
                Ok(pn) => pn,
                Err(next) => return next,
            };
            if self.queued_bytes + MDS > self.link.buffer {
                let wait = self.serialisation(self.queued_bytes + 4 * MDS) + self.link.rtt;
                self.schedule(now + wait, SharedEv::Lost(i, pn));
            } else {
                if self.queue.is_empty() {
                    let ser = self.serialisation(MDS);
                    self.schedule(now + ser, SharedEv::Depart);
                }
                self.queue.push_back((i, pn));
                self.queued_bytes += MDS;
            }
        }
    }

    /// Runs the model until `end`.
    pub fn run_until(&mut self, end: Instant) {
        loop {
            let mut next = self.events.next_at();
            for i in 0..self.flows.len() {
                if let Some(at) = self.send_what_we_can(i) {
                    next = Some(next.map_or(at, |n| n.min(at)));
                }
            }
            match next {
                Some(next) if next <= end => {
                    self.now = next;
                    self.process_events();
                }
                _ => {
                    self.now = end;
                    return;
                }
            }
        }
    }

    fn process_events(&mut self) {
        let now = self.now;
        let n = self.flows.len();
        let mut tallies = vec![Tally::default(); n];
        while let Some(ev) = self.events.pop_due(now) {
            match ev {
                SharedEv::Depart => {
                    if let Some((i, pn)) = self.queue.pop_front() {
                        self.queued_bytes -= MDS;
                        self.schedule(now + self.link.rtt, SharedEv::Ack(i, pn));
                    }
                    if !self.queue.is_empty() {
                        let ser = self.serialisation(MDS);
                        self.schedule(now + ser, SharedEv::Depart);
                    }
                }
                SharedEv::Ack(i, pn) => self.flows[i].sender.on_ack(now, pn, &mut tallies[i]),
                SharedEv::Lost(i, pn) => self.flows[i].sender.on_lost(pn, &mut tallies[i]),
            }
        }
        for (f, tally) in self.flows.iter_mut().zip(tallies) {
            let (acked, lost) = f.sender.report(now, f.cc.as_mut(), tally);
            f.delivered += acked;
            f.lost_packets += lost;
        }
    }
}
