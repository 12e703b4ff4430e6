//! A userspace `netem`: what one direction of the lossy link does to each
//! packet, decided in the same order as jsp-sim's links (and as netem with
//! a rate and a limit): bottleneck queue (tail drop when full, otherwise a
//! departure time after serialization at the link rate), then loss, then
//! the propagation delay. Pure logic over a seeded random stream and the
//! times it is given, so it is tested without sockets or clocks; both
//! real-socket paths (the TUN relay and the UDP relay) drive it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// How a link loses packets (the same models, with the same meaning, as
/// `jsp_sim::LossModel`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LossSpec {
    /// Each packet is lost independently with this probability.
    Random(f64),
    /// Gilbert-Elliott: before each packet the two-state chain may change
    /// state, then the packet is lost with the loss probability of the
    /// state it finds. The chain starts in the good state.
    GilbertElliott {
        /// Probability of moving from the good to the bad state, per packet.
        p_good_to_bad: f64,
        /// Probability of moving from the bad to the good state, per packet.
        p_bad_to_good: f64,
        /// Loss probability in the good state.
        loss_in_good: f64,
        /// Loss probability in the bad state.
        loss_in_bad: f64,
    },
}

impl LossSpec {
    /// The long-run fraction of packets lost.
    pub fn mean_loss(&self) -> f64 {
        match *self {
            LossSpec::Random(p) => clamp01(p),
            LossSpec::GilbertElliott {
                p_good_to_bad,
                p_bad_to_good,
                loss_in_good,
                loss_in_bad,
            } => {
                let (gb, bg) = (clamp01(p_good_to_bad), clamp01(p_bad_to_good));
                if gb + bg == 0.0 {
                    return clamp01(loss_in_good);
                }
                (bg * clamp01(loss_in_good) + gb * clamp01(loss_in_bad)) / (gb + bg)
            }
        }
    }
}

fn clamp01(p: f64) -> f64 {
    if p.is_nan() {
        0.0
    } else {
        p.clamp(0.0, 1.0)
    }
}

/// `true` with probability `p` (never for NaN or `p <= 0`, always for `p >= 1`).
fn chance(rng: &mut ChaCha8Rng, p: f64) -> bool {
    if p.is_nan() || p <= 0.0 {
        return false;
    }
    p >= 1.0 || rng.gen::<f64>() < p
}

/// One direction of the emulated link.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkSpec {
    /// One-way propagation delay (half the round-trip time).
    pub delay: Duration,
    /// Bottleneck rate in bits per second.
    pub rate_bps: u64,
    /// Bottleneck buffer in bytes, counting the packet being serialized;
    /// a packet that would take the queue over it is dropped (tail drop).
    pub queue_bytes: usize,
    /// How packets are lost (after the queue admitted them).
    pub loss: LossSpec,
}

impl LinkSpec {
    /// A link of `rate_bps` with round-trip time `rtt` (half each way), a
    /// queue of one bandwidth-delay product (at least 64 KiB) and `loss`.
    pub fn new(rtt: Duration, rate_bps: u64, loss: LossSpec) -> Self {
        LinkSpec {
            delay: rtt / 2,
            rate_bps,
            queue_bytes: bdp_bytes(rtt, rate_bps).max(64 * 1024),
            loss,
        }
    }
}

/// The bandwidth-delay product of a link, in bytes.
pub fn bdp_bytes(rtt: Duration, rate_bps: u64) -> usize {
    let bytes = u128::from(rate_bps) * rtt.as_nanos() / 8 / 1_000_000_000;
    usize::try_from(bytes).unwrap_or(usize::MAX)
}

/// What the link does with one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Delivered at this time.
    Deliver(Instant),
    /// Lost by the loss model.
    Lost,
    /// Dropped because the bottleneck queue was full.
    QueueFull,
}

/// The state of one direction: the bottleneck queue, the loss model's
/// state and its random stream.
#[derive(Debug)]
pub struct Netem {
    spec: LinkSpec,
    rng: ChaCha8Rng,
    bad: bool,
    /// Departure time and length of every packet still in the bottleneck.
    queue: VecDeque<(Instant, usize)>,
    queued_bytes: usize,
    /// When the bottleneck finishes the last packet it accepted.
    free_at: Option<Instant>,
}

impl Netem {
    /// A direction with `spec`, its random choices drawn from `seed`.
    pub fn new(spec: LinkSpec, seed: u64) -> Self {
        Netem {
            spec,
            rng: ChaCha8Rng::seed_from_u64(seed),
            bad: false,
            queue: VecDeque::new(),
            queued_bytes: 0,
            free_at: None,
        }
    }

    /// The link this direction emulates.
    pub fn spec(&self) -> &LinkSpec {
        &self.spec
    }

    /// Decides the fate of a packet of `len` bytes entering the link at
    /// `now` (times must not go backwards).
    pub fn admit(&mut self, now: Instant, len: usize) -> Verdict {
        while let Some(&(departure, bytes)) = self.queue.front() {
            if departure > now {
                break;
            }
            self.queue.pop_front();
            self.queued_bytes -= bytes;
        }
        if self.queued_bytes + len > self.spec.queue_bytes {
            return Verdict::QueueFull;
        }
        let start = self.free_at.map_or(now, |free| free.max(now));
        let departure = start + serialization(len, self.spec.rate_bps);
        self.free_at = Some(departure);
        self.queue.push_back((departure, len));
        self.queued_bytes += len;
        if self.lose() {
            return Verdict::Lost;
        }
        Verdict::Deliver(departure + self.spec.delay)
    }

    fn lose(&mut self) -> bool {
        match self.spec.loss {
            LossSpec::Random(p) => chance(&mut self.rng, p),
            LossSpec::GilbertElliott {
                p_good_to_bad,
                p_bad_to_good,
                loss_in_good,
                loss_in_bad,
            } => {
                let flip = if self.bad {
                    p_bad_to_good
                } else {
                    p_good_to_bad
                };
                if chance(&mut self.rng, flip) {
                    self.bad = !self.bad;
                }
                let p = if self.bad { loss_in_bad } else { loss_in_good };
                chance(&mut self.rng, p)
            }
        }
    }
}

/// How long `len` bytes take at `rate_bps` (zero for an unlimited rate).
fn serialization(len: usize, rate_bps: u64) -> Duration {
    if rate_bps == 0 {
        return Duration::ZERO;
    }
    let bits = u128::try_from(len).unwrap_or(u128::MAX).saturating_mul(8);
    let nanos = bits.saturating_mul(1_000_000_000) / u128::from(rate_bps);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_lossless_link_delays_and_paces() {
        let t0 = crate::latency::now();
        // 12 Mbit/s: a 1500-byte packet takes 1 ms.
        let spec = LinkSpec::new(ms(20), 12_000_000, LossSpec::Random(0.0));
        assert_eq!(spec.delay, ms(10));
        assert_eq!(
            spec.queue_bytes,
            64 * 1024,
            "the BDP (30 kB) is below the floor"
        );
        let mut link = Netem::new(spec, 1);
        assert_eq!(link.admit(t0, 1500), Verdict::Deliver(t0 + ms(11)));
        // Sent at the same time: queued behind the first.
        assert_eq!(link.admit(t0, 1500), Verdict::Deliver(t0 + ms(12)));
        // After the queue drained: no queueing delay.
        assert_eq!(link.admit(t0 + ms(50), 1500), Verdict::Deliver(t0 + ms(61)));
    }

    #[test]
    fn a_full_queue_drops_the_tail() {
        let t0 = crate::latency::now();
        let spec = LinkSpec {
            queue_bytes: 3000,
            ..LinkSpec::new(ms(20), 12_000_000, LossSpec::Random(0.0))
        };
        let mut link = Netem::new(spec, 1);
        assert!(matches!(link.admit(t0, 1500), Verdict::Deliver(_)));
        assert!(matches!(link.admit(t0, 1500), Verdict::Deliver(_)));
        assert_eq!(link.admit(t0, 1500), Verdict::QueueFull);
        // One packet time later the first has left.
        assert!(matches!(link.admit(t0 + ms(1), 1500), Verdict::Deliver(_)));
    }

    #[test]
    fn random_and_bursty_loss_match_their_means_and_replay_from_the_seed() {
        let t0 = crate::latency::now();
        let burst = LossSpec::GilbertElliott {
            p_good_to_bad: 0.05 * 0.25 / 0.95,
            p_bad_to_good: 0.25,
            loss_in_good: 0.0,
            loss_in_bad: 1.0,
        };
        assert!((burst.mean_loss() - 0.05).abs() < 1e-12);
        for loss in [LossSpec::Random(0.1), burst] {
            let run = |seed| {
                let mut link = Netem::new(LinkSpec::new(ms(20), 0, loss), seed);
                (0..100_000u32)
                    .map(|i| link.admit(t0 + Duration::from_micros(u64::from(i)), 100))
                    .map(|v| v == Verdict::Lost)
                    .collect::<Vec<bool>>()
            };
            let outcomes = run(7);
            assert_eq!(outcomes, run(7), "same seed, same losses");
            assert_ne!(outcomes, run(8));
            let lost = outcomes.iter().filter(|&&l| l).count();
            let rate = lost as f64 / outcomes.len() as f64;
            assert!((rate - loss.mean_loss()).abs() < 0.01, "{loss:?}: {rate}");
            let bursts = outcomes.windows(2).filter(|w| !w[0] && w[1]).count();
            let mean_burst = lost as f64 / bursts as f64;
            if matches!(loss, LossSpec::GilbertElliott { .. }) {
                assert!((3.0..5.0).contains(&mean_burst), "mean burst {mean_burst}");
            } else {
                assert!(mean_burst < 1.3, "mean burst {mean_burst}");
            }
        }
    }

    #[test]
    fn bdp() {
        assert_eq!(bdp_bytes(ms(100), 100_000_000), 1_250_000);
        assert_eq!(serialization(1500, 0), Duration::ZERO);
    }
}
