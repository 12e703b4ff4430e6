//! One direction of a simulated link: its configuration ([`LinkConfig`]), its counters
//! ([`LinkStats`]) and the private state that decides each datagram's fate and arrival time
//! (bottleneck queue, loss-model state, random stream).
//!
//! The path of a datagram through a link, in order: MTU check, bottleneck queue (tail drop when
//! the queue is full, otherwise a departure time after serialization), loss, propagation delay
//! plus jitter plus an occasional reordering delay, corruption, duplication. Middleboxes run before
//! all of this, in the simulator.

use core::time::Duration;
use std::collections::VecDeque;

use jsp_proto::time::Instant;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::capture::Fate;
use crate::loss::{chance, LossModel, LossState};

/// How one direction of a link between two nodes behaves. Every field takes effect for datagrams
/// sent after it is set; see [`Simulator::set_link`](crate::Simulator::set_link).
#[derive(Clone, Debug, PartialEq)]
pub struct LinkConfig {
    /// One-way propagation delay.
    pub delay: Duration,
    /// Extra delay drawn uniformly from `[0, jitter]` for each datagram. Jitter reorders datagrams
    /// sent closer together than the jitter.
    pub jitter: Duration,
    /// Bottleneck rate in bits per second, or `None` for infinite bandwidth. A datagram leaves the
    /// bottleneck at `max(now, previous departure) + len * 8 / rate`. `Some(0)` is a dead link:
    /// every datagram is dropped as a queue drop.
    pub bandwidth_bps: Option<u64>,
    /// Bottleneck buffer in bytes (counting the datagram being serialized), used only with
    /// `bandwidth_bps`. A datagram that would take the queued bytes over this limit is dropped
    /// (tail drop).
    pub queue_bytes: usize,
    /// How datagrams are lost.
    pub loss: LossModel,
    /// Probability that a datagram is held back an extra [`reorder_delay`](Self::reorder_delay).
    pub reorder: f64,
    /// The extra delay of a reordered datagram.
    pub reorder_delay: Duration,
    /// Probability that a datagram is delivered twice (the copy arrives at the same time, right
    /// after the original, and does not take bottleneck capacity).
    pub duplicate: f64,
    /// Probability that one random bit of the payload is flipped in transit.
    pub corrupt: f64,
    /// Largest UDP payload the link carries, in bytes; larger datagrams are dropped and counted.
    pub mtu: usize,
}

impl LinkConfig {
    /// The default MTU: the UDP payload that fits a 1500-byte Ethernet frame over IPv4.
    pub const DEFAULT_MTU: usize = 1472;
    /// The default bottleneck buffer, in bytes.
    pub const DEFAULT_QUEUE_BYTES: usize = 64 * 1024;

    /// A perfect link with the given one-way delay: no jitter, no bandwidth limit, no loss.
    pub fn with_delay(delay: Duration) -> Self {
        LinkConfig {
            delay,
            ..LinkConfig::default()
        }
    }
}

impl Default for LinkConfig {
    /// A perfect link: zero delay, no jitter, no bandwidth limit, no loss, reordering,
    /// duplication or corruption, and an MTU of [`LinkConfig::DEFAULT_MTU`].
    fn default() -> Self {
        LinkConfig {
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            bandwidth_bps: None,
            queue_bytes: Self::DEFAULT_QUEUE_BYTES,
            loss: LossModel::None,
            reorder: 0.0,
            reorder_delay: Duration::ZERO,
            duplicate: 0.0,
            corrupt: 0.0,
            mtu: Self::DEFAULT_MTU,
        }
    }
}

/// A number of datagrams and the bytes of their payloads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    /// Datagrams counted.
    pub datagrams: u64,
    /// Sum of their payload lengths, in bytes.
    pub bytes: u64,
}

impl Counter {
    pub(crate) fn add(&mut self, len: usize) {
        self.datagrams += 1;
        self.bytes = self
            .bytes
            .saturating_add(u64::try_from(len).unwrap_or(u64::MAX));
    }
}

/// What happened to the datagrams on one link direction. Every datagram counted in `sent` ends
/// up in exactly one of `delivered`, `lost`, `mtu_dropped`, `queue_dropped`, `middlebox_dropped`
/// or `unbound`, or is still in flight; `duplicated` copies are also counted in `delivered` (or
/// `unbound`) when they arrive. `corrupted` counts datagrams whose payload had a bit
/// flipped (their fate is counted separately).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Datagrams the source node sent on this link (before middleboxes).
    pub sent: Counter,
    /// Datagrams handed to the destination node, including duplicates.
    pub delivered: Counter,
    /// Datagrams lost by the loss model.
    pub lost: Counter,
    /// Extra copies made by duplication.
    pub duplicated: Counter,
    /// Datagrams with one bit flipped.
    pub corrupted: Counter,
    /// Datagrams larger than the MTU.
    pub mtu_dropped: Counter,
    /// Datagrams dropped because the bottleneck queue was full.
    pub queue_dropped: Counter,
    /// Datagrams a middlebox dropped.
    pub middlebox_dropped: Counter,
    /// Datagrams whose destination address had no node bound: the destination rebound while the
    /// datagram was in flight, or a middlebox redirected it to an unbound address.
    pub unbound: Counter,
}

/// What the link decided for one datagram.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Transit {
    /// Dropped; the fate says why.
    Dropped(Fate),
    /// Will arrive at `at`; `corrupted` if a bit was flipped (the payload was modified in place).
    Arrives {
        at: Instant,
        corrupted: bool,
        duplicated: bool,
    },
}

/// The private state of one link direction.
#[derive(Debug)]
pub(crate) struct Link {
    /// Configuration set for this direction, overriding the simulator's default.
    pub(crate) config: Option<LinkConfig>,
    pub(crate) stats: LinkStats,
    rng: ChaCha8Rng,
    loss: LossState,
    /// Departure time and length of each datagram still in the bottleneck, oldest first.
    queue: VecDeque<(Instant, usize)>,
    queued_bytes: usize,
    /// When the bottleneck finishes serializing the last datagram it accepted.
    free_at: Instant,
}

impl Link {
    /// A link whose random stream is derived from the simulation seed and the stream number
    /// alone, so it does not depend on what other links did or when this one was created.
    pub(crate) fn new(seed: u64, stream: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        Link {
            config: None,
            stats: LinkStats::default(),
            rng,
            loss: LossState::default(),
            queue: VecDeque::new(),
            queued_bytes: 0,
            free_at: Instant::ZERO,
        }
    }

    /// Sends `payload` into the link at `now` under `cfg`, updating the counters for every
    /// outcome except delivery (counted when the datagram arrives).
    pub(crate) fn transmit(
        &mut self,
        cfg: &LinkConfig,
        now: Instant,
        payload: &mut [u8],
    ) -> Transit {
        let len = payload.len();
        if len > cfg.mtu {
            self.stats.mtu_dropped.add(len);
            return Transit::Dropped(Fate::MtuDropped);
        }
        let Some(departure) = self.enqueue(cfg, now, len) else {
            self.stats.queue_dropped.add(len);
            return Transit::Dropped(Fate::QueueDropped);
        };
        if self.loss.lose(&cfg.loss, &mut self.rng) {
            self.stats.lost.add(len);
            return Transit::Dropped(Fate::Lost);
        }
        let mut at = departure + cfg.delay;
        let jitter = duration_nanos(cfg.jitter);
        if jitter > 0 {
            at += Duration::from_nanos(self.rng.gen_range(0..=jitter));
        }
        if chance(&mut self.rng, cfg.reorder) {
            at += cfg.reorder_delay;
        }
        let corrupted = len > 0 && chance(&mut self.rng, cfg.corrupt);
        if corrupted {
            let bit = self.rng.gen_range(0..len * 8);
            payload[bit / 8] ^= 1 << (bit % 8);
            self.stats.corrupted.add(len);
        }
        let duplicated = chance(&mut self.rng, cfg.duplicate);
        if duplicated {
            self.stats.duplicated.add(len);
        }
        Transit::Arrives {
            at,
            corrupted,
            duplicated,
        }
    }

    /// Admits `len` bytes to the bottleneck and returns their departure time, or `None` on tail
    /// drop.
    fn enqueue(&mut self, cfg: &LinkConfig, now: Instant, len: usize) -> Option<Instant> {
        while let Some(&(departure, bytes)) = self.queue.front() {
            if departure > now {
                break;
            }
            self.queue.pop_front();
            self.queued_bytes -= bytes;
        }
        let start = self.free_at.max(now);
        let Some(bps) = cfg.bandwidth_bps else {
            // No bottleneck now, but datagrams still queued from an earlier limit keep FIFO order.
            return Some(start);
        };
        if bps == 0 || self.queued_bytes.saturating_add(len) > cfg.queue_bytes {
            return None;
        }
        let bits = u128::try_from(len).unwrap_or(u128::MAX).saturating_mul(8);
        let nanos = bits.saturating_mul(1_000_000_000).div_ceil(u128::from(bps));
        let departure = start + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
        self.free_at = departure;
        self.queue.push_back((departure, len));
        self.queued_bytes += len;
        Some(departure)
    }
}

fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn bottleneck_serializes_and_tail_drops() {
        let cfg = LinkConfig {
            delay: Duration::from_millis(10),
            bandwidth_bps: Some(1_000_000),
            queue_bytes: 3000,
            ..LinkConfig::default()
        };
        let mut link = Link::new(0, 1);
        let mut payload = vec![0u8; 1000];
        let arrivals: Vec<Transit> = (0..5)
            .map(|_| link.transmit(&cfg, Instant::ZERO, &mut payload))
            .collect();
        let at = |ms| Transit::Arrives {
            at: Instant::from_nanos(ms * MS),
            corrupted: false,
            duplicated: false,
        };
        assert_eq!(arrivals[0], at(18));
        assert_eq!(arrivals[1], at(26));
        assert_eq!(arrivals[2], at(34));
        assert_eq!(arrivals[3], Transit::Dropped(Fate::QueueDropped));
        assert_eq!(arrivals[4], Transit::Dropped(Fate::QueueDropped));
        assert_eq!(
            link.stats.queue_dropped,
            Counter {
                datagrams: 2,
                bytes: 2000
            }
        );
        // At 8 ms the first datagram has left the bottleneck: room for exactly one more.
        let later = Instant::from_nanos(8 * MS);
        assert_eq!(link.transmit(&cfg, later, &mut payload), at(42));
        assert_eq!(
            link.transmit(&cfg, later, &mut payload),
            Transit::Dropped(Fate::QueueDropped)
        );
    }

    #[test]
    fn zero_bandwidth_is_a_dead_link() {
        let cfg = LinkConfig {
            bandwidth_bps: Some(0),
            ..LinkConfig::default()
        };
        let mut link = Link::new(0, 1);
        assert_eq!(
            link.transmit(&cfg, Instant::ZERO, &mut [1]),
            Transit::Dropped(Fate::QueueDropped)
        );
    }

    #[test]
    fn mtu_drops_larger_datagrams_only() {
        let cfg = LinkConfig {
            mtu: 100,
            ..LinkConfig::default()
        };
        let mut link = Link::new(0, 1);
        assert!(matches!(
            link.transmit(&cfg, Instant::ZERO, &mut [0; 100]),
            Transit::Arrives { .. }
        ));
        assert_eq!(
            link.transmit(&cfg, Instant::ZERO, &mut [0; 101]),
            Transit::Dropped(Fate::MtuDropped)
        );
        assert_eq!(
            link.stats.mtu_dropped,
            Counter {
                datagrams: 1,
                bytes: 101
            }
        );
    }

    #[test]
    fn corruption_flips_exactly_one_bit() {
        let cfg = LinkConfig {
            corrupt: 1.0,
            ..LinkConfig::default()
        };
        let mut link = Link::new(3, 1);
        for _ in 0..100 {
            let mut payload = vec![0u8; 37];
            assert!(matches!(
                link.transmit(&cfg, Instant::ZERO, &mut payload),
                Transit::Arrives {
                    corrupted: true,
                    ..
                }
            ));
            assert_eq!(payload.iter().map(|b| b.count_ones()).sum::<u32>(), 1);
        }
        // An empty payload has no bit to flip.
        assert!(matches!(
            link.transmit(&cfg, Instant::ZERO, &mut []),
            Transit::Arrives {
                corrupted: false,
                ..
            }
        ));
    }

    #[test]
    fn jitter_stays_in_range() {
        let cfg = LinkConfig {
            delay: Duration::from_millis(5),
            jitter: Duration::from_millis(2),
            ..LinkConfig::default()
        };
        let mut link = Link::new(9, 1);
        for _ in 0..1000 {
            let Transit::Arrives { at, .. } = link.transmit(&cfg, Instant::ZERO, &mut [0; 10])
            else {
                panic!("perfect link dropped a datagram");
            };
            assert!(at >= Instant::from_nanos(5 * MS) && at <= Instant::from_nanos(7 * MS));
        }
    }
}
