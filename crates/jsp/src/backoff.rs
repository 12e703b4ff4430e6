//! Exponential backoff with full jitter, for a client's automatic reconnect.
//!
//! Attempt `n` (counting from 0) waits a uniformly random time in `[0, min(cap, base * 2^n)]`
//! (the "full jitter" of the AWS Architecture Blog's *Exponential Backoff and Jitter*): the
//! ceiling grows exponentially so a dead server is not hammered, and the randomness spreads the
//! clients a server restart disconnected at once, so they do not all come back in the same
//! instant. The random number generator is injected (seed it in tests); `max_attempts` bounds how
//! often the client tries before giving up, and [`Backoff::reset`] starts over after a success.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

/// Default delay ceiling of the first attempt.
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_millis(100);
/// Default largest delay ceiling.
pub const DEFAULT_BACKOFF_CAP: Duration = Duration::from_secs(30);
/// Default number of attempts before giving up.
pub const DEFAULT_BACKOFF_MAX_ATTEMPTS: u32 = 16;

/// Why a backoff configuration is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BackoffError {
    /// The base delay is zero, so every delay would be zero.
    #[error("the base delay must be above zero")]
    ZeroBase,
    /// The cap is below the base delay.
    #[error("the cap ({cap:?}) must be at least the base delay ({base:?})")]
    CapBelowBase {
        /// The configured base.
        base: Duration,
        /// The configured cap.
        cap: Duration,
    },
    /// `max_attempts` is zero: the client would never try.
    #[error("max_attempts must be at least 1")]
    ZeroAttempts,
}

/// Settings of a [`Backoff`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackoffConfig {
    /// Ceiling of the first delay; it doubles with every attempt.
    pub base: Duration,
    /// The ceiling never exceeds this.
    pub cap: Duration,
    /// Delays handed out before [`Backoff::next_delay`] gives up (`None`: never give up).
    pub max_attempts: Option<u32>,
}

impl Default for BackoffConfig {
    /// 100 ms base, 30 s cap, 16 attempts.
    fn default() -> Self {
        Self {
            base: DEFAULT_BACKOFF_BASE,
            cap: DEFAULT_BACKOFF_CAP,
            max_attempts: Some(DEFAULT_BACKOFF_MAX_ATTEMPTS),
        }
    }
}

impl BackoffConfig {
    /// Checks that the base is above zero, the cap at least the base, and attempts at least 1.
    pub fn validate(&self) -> Result<(), BackoffError> {
        if self.base.is_zero() {
            return Err(BackoffError::ZeroBase);
        }
        if self.cap < self.base {
            return Err(BackoffError::CapBelowBase {
                base: self.base,
                cap: self.cap,
            });
        }
        if self.max_attempts == Some(0) {
            return Err(BackoffError::ZeroAttempts);
        }
        Ok(())
    }

    /// The ceiling of attempt `attempt` (from 0): `min(cap, base * 2^attempt)`, saturating.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt).unwrap_or(0);
        if factor == 0 {
            return self.cap;
        }
        self.base
            .checked_mul(factor)
            .unwrap_or(self.cap)
            .min(self.cap)
    }
}

/// Exponential backoff with full jitter over an injected random number generator.
#[derive(Clone, Debug)]
pub struct Backoff<R = StdRng> {
    config: BackoffConfig,
    attempt: u32,
    rng: R,
}

impl Backoff<StdRng> {
    /// A backoff drawing its jitter from an operating-system-seeded generator.
    pub fn from_entropy(config: BackoffConfig) -> Result<Self, BackoffError> {
        Self::new(config, StdRng::from_entropy())
    }
}

impl<R: RngCore> Backoff<R> {
    /// A backoff drawing its jitter from `rng`.
    pub fn new(config: BackoffConfig, rng: R) -> Result<Self, BackoffError> {
        config.validate()?;
        Ok(Self {
            config,
            attempt: 0,
            rng,
        })
    }

    /// The settings.
    pub fn config(&self) -> &BackoffConfig {
        &self.config
    }

    /// Delays handed out since the last reset.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Whether `max_attempts` delays were handed out (the next call gives up).
    pub fn is_exhausted(&self) -> bool {
        self.config
            .max_attempts
            .is_some_and(|max| self.attempt >= max)
    }

    /// The delay before the next attempt, uniform in `[0, ceiling(attempt)]`, or `None` once
    /// `max_attempts` delays were handed out.
    pub fn next_delay(&mut self) -> Option<Duration> {
        if self.is_exhausted() {
            return None;
        }
        let ceiling = self.config.ceiling(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Some(Duration::from_nanos(self.rng.gen_range(0..=nanos)))
    }

    /// When the next attempt should start, counting from `now` (`None`: give up).
    pub fn next_attempt_at(&mut self, now: Instant) -> Option<Instant> {
        let delay = self.next_delay()?;
        Some(now.checked_add(delay).unwrap_or(now))
    }

    /// Starts over from the first attempt (after a successful connection).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An arbitrary starting point: the code under test only compares instants.
    #[allow(
        clippy::disallowed_methods,
        reason = "tests need one arbitrary Instant to count from"
    )]
    fn epoch() -> Instant {
        Instant::now()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn seeded(config: BackoffConfig, seed: u64) -> Backoff {
        Backoff::new(config, StdRng::seed_from_u64(seed)).unwrap()
    }

    #[test]
    fn ceilings_double_up_to_the_cap() {
        let cfg = BackoffConfig {
            base: ms(100),
            cap: ms(1000),
            max_attempts: None,
        };
        let ceilings: Vec<_> = (0..6).map(|n| cfg.ceiling(n)).collect();
        assert_eq!(
            ceilings,
            [ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]
        );
        assert_eq!(cfg.ceiling(31), ms(1000));
        assert_eq!(cfg.ceiling(32), ms(1000));
        assert_eq!(cfg.ceiling(u32::MAX), ms(1000));
        let huge = BackoffConfig {
            base: Duration::MAX,
            cap: Duration::MAX,
            max_attempts: None,
        };
        assert_eq!(huge.ceiling(5), Duration::MAX);
    }

    #[test]
    fn delays_stay_within_their_ceilings() {
        let cfg = BackoffConfig {
            base: ms(10),
            cap: ms(5000),
            max_attempts: None,
        };
        for seed in 0..50 {
            let mut b = seeded(cfg.clone(), seed);
            for attempt in 0..40 {
                let d = b.next_delay().unwrap();
                assert!(
                    d <= cfg.ceiling(attempt),
                    "seed {seed} attempt {attempt}: {d:?}"
                );
            }
        }
    }

    #[test]
    fn delays_grow_on_average() {
        let cfg = BackoffConfig {
            base: ms(10),
            cap: Duration::from_secs(60),
            max_attempts: None,
        };
        let runs = 200u32;
        let mut means = [Duration::ZERO; 8];
        for seed in 0..u64::from(runs) {
            let mut b = seeded(cfg.clone(), seed);
            for mean in means.iter_mut() {
                *mean += b.next_delay().unwrap() / runs;
            }
        }
        for (n, pair) in means.windows(2).enumerate() {
            assert!(pair[1] > pair[0], "attempt {n}: {means:?}");
        }
        // Full jitter: the mean is about half the ceiling.
        let last = means[7].as_secs_f64() / cfg.ceiling(7).as_secs_f64();
        assert!((0.4..0.6).contains(&last), "{last}");
    }

    #[test]
    fn same_seed_same_sequence() {
        let cfg = BackoffConfig::default();
        let run = |seed| -> Vec<_> {
            let mut b = seeded(cfg.clone(), seed);
            std::iter::from_fn(|| b.next_delay()).collect()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        assert_eq!(run(7).len(), DEFAULT_BACKOFF_MAX_ATTEMPTS as usize);
    }

    #[test]
    fn gives_up_after_max_attempts_and_reset_starts_over() {
        let cfg = BackoffConfig {
            base: ms(100),
            cap: ms(400),
            max_attempts: Some(3),
        };
        let mut b = seeded(cfg.clone(), 1);
        let t0 = epoch();
        for attempt in 0..3 {
            let at = b.next_attempt_at(t0).unwrap();
            assert!(at - t0 <= cfg.ceiling(attempt));
        }
        assert!(b.is_exhausted());
        assert_eq!(b.next_delay(), None);
        assert_eq!(b.next_attempt_at(t0), None);
        b.reset();
        assert_eq!(b.attempt(), 0);
        assert!(b.next_delay().unwrap() <= ms(100));
    }

    #[test]
    fn unlimited_attempts_never_give_up() {
        let mut b = seeded(
            BackoffConfig {
                max_attempts: None,
                ..BackoffConfig::default()
            },
            3,
        );
        for _ in 0..10_000 {
            assert!(b.next_delay().unwrap() <= DEFAULT_BACKOFF_CAP);
        }
    }

    #[test]
    fn invalid_configs_are_rejected() {
        let base = BackoffConfig::default();
        let cases = [
            (
                BackoffConfig {
                    base: Duration::ZERO,
                    ..base.clone()
                },
                BackoffError::ZeroBase,
            ),
            (
                BackoffConfig {
                    cap: ms(1),
                    ..base.clone()
                },
                BackoffError::CapBelowBase {
                    base: ms(100),
                    cap: ms(1),
                },
            ),
            (
                BackoffConfig {
                    max_attempts: Some(0),
                    ..base.clone()
                },
                BackoffError::ZeroAttempts,
            ),
        ];
        for (cfg, err) in cases {
            assert_eq!(
                Backoff::new(cfg, StdRng::seed_from_u64(0)).unwrap_err(),
                err
            );
        }
        assert!(Backoff::from_entropy(base).is_ok());
    }
}
