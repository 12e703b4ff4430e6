//! The handshake circuit breaker: an overloaded server refuses new handshakes early rather than
//! degrading every connection it already serves.
//!
//! The breaker is fed load signals by the driver (handshakes started and how they ended, and an
//! external overload flag such as event-loop lag or memory pressure) and answers each new
//! handshake with an [`Admission`]. It has three states with hysteresis:
//!
//! - **Closed** (healthy): handshakes are accepted; at `retry_at` handshakes in flight they are
//!   sent a stateless Retry first (which also filters spoofed source addresses).
//! - **Open**: entered when handshakes in flight reach `open_at`, when `failure_threshold`
//!   handshakes failed or timed out within `failure_window`, or when the overload flag is set.
//!   Every new handshake is refused (SERVER_BUSY). After `cool_down`, once the overload flag is
//!   clear and fewer than `resume_below` handshakes are in flight, it moves to half-open.
//! - **HalfOpen**: up to `half_open_probes` handshakes are admitted as probes; when that many
//!   complete it closes, and any failure or renewed overload opens it again. If the probes neither
//!   complete nor fail within `cool_down` (a client gave up), another batch is admitted.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::LimitError;

/// Largest `failure_threshold` (the breaker remembers at most this many failure times).
pub const MAX_FAILURE_THRESHOLD: u32 = 65_536;

/// How the server answers a new handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Admission {
    /// Start the handshake.
    Accept,
    /// Answer with a stateless Retry (address validation) before spending state on it.
    Retry,
    /// Refuse statelessly (CONNECTION_CLOSE with SERVER_BUSY).
    Refuse,
}

/// How a handshake the breaker counted ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeOutcome {
    /// The connection was established.
    Completed,
    /// The handshake failed (alert, authentication failure, protocol error).
    Failed,
    /// The handshake did not complete within the handshake timeout.
    TimedOut,
}

/// The breaker's state (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Healthy: handshakes are accepted (or retried under load).
    Closed,
    /// Tripped: new handshakes are refused.
    Open,
    /// Probing: a few handshakes are admitted to test recovery.
    HalfOpen,
}

/// Thresholds of a [`CircuitBreaker`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CircuitBreakerConfig {
    /// Handshakes in flight at which new ones are sent a Retry first (`usize::MAX`: never).
    pub retry_at: usize,
    /// Handshakes in flight at which the breaker opens.
    pub open_at: usize,
    /// The breaker leaves Open only with fewer handshakes than this in flight (hysteresis).
    pub resume_below: usize,
    /// Failed or timed-out handshakes within `failure_window` that open the breaker (0: failures
    /// never open it). At most [`MAX_FAILURE_THRESHOLD`].
    pub failure_threshold: u32,
    /// The window over which failures are counted.
    pub failure_window: Duration,
    /// How long the breaker stays open before probing (and how long a probe batch may take).
    pub cool_down: Duration,
    /// Handshakes admitted while half-open, and completions needed to close again.
    pub half_open_probes: u32,
}

impl Default for CircuitBreakerConfig {
    /// Retry at 512 handshakes in flight, open at 1024 (the engine's default `max_handshakes`),
    /// resume below 256; open on 256 failures within 10 s; 5 s cool-down; 16 probes.
    fn default() -> Self {
        Self {
            retry_at: 512,
            open_at: 1024,
            resume_below: 256,
            failure_threshold: 256,
            failure_window: Duration::from_secs(10),
            cool_down: Duration::from_secs(5),
            half_open_probes: 16,
        }
    }
}

impl CircuitBreakerConfig {
    /// Checks that the thresholds are consistent.
    pub fn validate(&self) -> Result<(), LimitError> {
        if self.open_at == 0 {
            return Err(LimitError::OutOfRange {
                field: "open_at",
                detail: "at least 1",
            });
        }
        if self.resume_below == 0 || self.resume_below > self.open_at {
            return Err(LimitError::OutOfRange {
                field: "resume_below",
                detail: "between 1 and open_at",
            });
        }
        if self.failure_threshold > MAX_FAILURE_THRESHOLD {
            return Err(LimitError::OutOfRange {
                field: "failure_threshold",
                detail: "at most 65536",
            });
        }
        if self.failure_threshold > 0 && self.failure_window.is_zero() {
            return Err(LimitError::OutOfRange {
                field: "failure_window",
                detail: "above zero when failure_threshold is set",
            });
        }
        if self.half_open_probes == 0 {
            return Err(LimitError::OutOfRange {
                field: "half_open_probes",
                detail: "at least 1",
            });
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug)]
enum State {
    Closed,
    Open {
        since: Instant,
    },
    HalfOpen {
        since: Instant,
        admitted: u32,
        completed: u32,
    },
}

/// Counters of the breaker's decisions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BreakerStats {
    /// Handshakes answered [`Admission::Accept`].
    pub accepted: u64,
    /// Handshakes answered [`Admission::Retry`].
    pub retried: u64,
    /// Handshakes answered [`Admission::Refuse`].
    pub refused: u64,
    /// Times the breaker opened.
    pub opened: u64,
}

/// Decides, from the server's load, whether to accept, retry or refuse new handshakes.
///
/// The driver calls [`admit_handshake`](Self::admit_handshake) for each new handshake,
/// [`handshake_started`](Self::handshake_started) when the engine creates a connection for one,
/// [`handshake_finished`](Self::handshake_finished) when that connection is established, fails or
/// times out, and [`set_overloaded`](Self::set_overloaded) when an external load signal changes.
#[derive(Clone, Debug)]
pub struct CircuitBreaker {
    config: CircuitBreakerConfig,
    state: State,
    in_flight: usize,
    overloaded: bool,
    /// Times of recent failures, oldest first, at most `failure_threshold` of them.
    failures: VecDeque<Instant>,
    stats: BreakerStats,
}

impl CircuitBreaker {
    /// A closed breaker with these thresholds.
    pub fn new(config: CircuitBreakerConfig) -> Result<Self, LimitError> {
        config.validate()?;
        Ok(Self {
            config,
            state: State::Closed,
            in_flight: 0,
            overloaded: false,
            failures: VecDeque::new(),
            stats: BreakerStats::default(),
        })
    }

    /// The thresholds.
    pub fn config(&self) -> &CircuitBreakerConfig {
        &self.config
    }

    /// The current state (as of the last call).
    pub fn state(&self) -> BreakerState {
        match self.state {
            State::Closed => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Handshakes counted in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Decision counters.
    pub fn stats(&self) -> &BreakerStats {
        &self.stats
    }

    /// How to answer a new handshake at `now`.
    pub fn admit_handshake(&mut self, now: Instant) -> Admission {
        self.expire_failures(now);
        let admission = self.decide(now);
        match admission {
            Admission::Accept => self.stats.accepted += 1,
            Admission::Retry => self.stats.retried += 1,
            Admission::Refuse => self.stats.refused += 1,
        }
        admission
    }

    /// A handshake began (the engine created a connection for it).
    pub fn handshake_started(&mut self, now: Instant) {
        self.in_flight = self.in_flight.saturating_add(1);
        if !matches!(self.state, State::Open { .. }) && self.in_flight >= self.config.open_at {
            self.open(now);
        }
    }

    /// A handshake counted by [`handshake_started`](Self::handshake_started) ended.
    pub fn handshake_finished(&mut self, now: Instant, outcome: HandshakeOutcome) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.expire_failures(now);
        match outcome {
            HandshakeOutcome::Completed => {
                if let State::HalfOpen { completed, .. } = &mut self.state {
                    *completed = completed.saturating_add(1);
                    if *completed >= self.config.half_open_probes {
                        self.state = State::Closed;
                    }
                }
            }
            HandshakeOutcome::Failed | HandshakeOutcome::TimedOut => {
                self.record_failure(now);
                match self.state {
                    State::HalfOpen { .. } => self.open(now),
                    State::Closed if self.failures_tripped() => self.open(now),
                    _ => {}
                }
            }
        }
    }

    /// Sets the external overload flag; setting it opens the breaker at once.
    pub fn set_overloaded(&mut self, now: Instant, overloaded: bool) {
        self.overloaded = overloaded;
        if overloaded && !matches!(self.state, State::Open { .. }) {
            self.open(now);
        }
    }

    fn decide(&mut self, now: Instant) -> Admission {
        if let State::Open { since } = self.state {
            let cooled = now.saturating_duration_since(since) >= self.config.cool_down;
            if !(cooled && !self.overloaded && self.in_flight < self.config.resume_below) {
                return Admission::Refuse;
            }
            self.state = State::HalfOpen {
                since: now,
                admitted: 0,
                completed: 0,
            };
        }
        if self.should_open() {
            self.open(now);
            return Admission::Refuse;
        }
        let probes = self.config.half_open_probes;
        let cool_down = self.config.cool_down;
        match &mut self.state {
            State::Closed if self.in_flight >= self.config.retry_at => Admission::Retry,
            State::Closed => Admission::Accept,
            State::HalfOpen {
                since,
                admitted,
                completed,
            } => {
                if *admitted >= probes && now.saturating_duration_since(*since) >= cool_down {
                    // The last batch of probes went nowhere: try another.
                    *since = now;
                    *admitted = 0;
                    *completed = 0;
                }
                if *admitted < probes {
                    *admitted += 1;
                    Admission::Accept
                } else {
                    Admission::Refuse
                }
            }
            State::Open { .. } => Admission::Refuse,
        }
    }

    fn should_open(&self) -> bool {
        self.overloaded || self.in_flight >= self.config.open_at || self.failures_tripped()
    }

    fn failures_tripped(&self) -> bool {
        let threshold = self.config.failure_threshold;
        threshold > 0 && self.failures.len() >= threshold as usize
    }

    fn open(&mut self, now: Instant) {
        self.state = State::Open { since: now };
        // The failures that tripped the breaker are accounted for by the cool-down.
        self.failures.clear();
        self.stats.opened += 1;
    }

    fn record_failure(&mut self, now: Instant) {
        let threshold = self.config.failure_threshold as usize;
        if threshold == 0 {
            return;
        }
        while self.failures.len() >= threshold {
            self.failures.pop_front();
        }
        self.failures.push_back(now);
    }

    fn expire_failures(&mut self, now: Instant) {
        let window = self.config.failure_window;
        while self
            .failures
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= window)
        {
            self.failures.pop_front();
        }
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

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn config() -> CircuitBreakerConfig {
        CircuitBreakerConfig {
            retry_at: 4,
            open_at: 8,
            resume_below: 2,
            failure_threshold: 3,
            failure_window: secs(10),
            cool_down: secs(5),
            half_open_probes: 2,
        }
    }

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new(config()).unwrap()
    }

    fn start(b: &mut CircuitBreaker, now: Instant, n: usize) {
        for _ in 0..n {
            b.handshake_started(now);
        }
    }

    fn finish(b: &mut CircuitBreaker, now: Instant, n: usize, outcome: HandshakeOutcome) {
        for _ in 0..n {
            b.handshake_finished(now, outcome);
        }
    }

    #[test]
    fn closed_accepts_then_retries_under_load() {
        let t0 = epoch();
        let mut b = breaker();
        assert_eq!(b.admit_handshake(t0), Admission::Accept);
        start(&mut b, t0, 3);
        assert_eq!(b.admit_handshake(t0), Admission::Accept);
        start(&mut b, t0, 1);
        assert_eq!(b.admit_handshake(t0), Admission::Retry);
        assert_eq!(b.state(), BreakerState::Closed);
        finish(&mut b, t0, 1, HandshakeOutcome::Completed);
        assert_eq!(b.admit_handshake(t0), Admission::Accept);
    }

    #[test]
    fn opens_when_in_flight_reaches_open_at() {
        let t0 = epoch();
        let mut b = breaker();
        start(&mut b, t0, 8);
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.admit_handshake(t0), Admission::Refuse);
        // Hysteresis: dropping below open_at is not enough, not even after the cool-down.
        finish(&mut b, t0, 5, HandshakeOutcome::Completed);
        assert_eq!(b.in_flight(), 3);
        assert_eq!(b.admit_handshake(t0 + secs(60)), Admission::Refuse);
        assert_eq!(b.state(), BreakerState::Open);
        finish(&mut b, t0, 2, HandshakeOutcome::Completed);
        assert_eq!(b.admit_handshake(t0 + secs(60)), Admission::Accept);
        assert_eq!(b.state(), BreakerState::HalfOpen);
    }

    #[test]
    fn opens_on_failures_within_the_window_only() {
        let t0 = epoch();
        let mut b = breaker();
        // Two failures, then a third after the first two left the window: stays closed.
        start(&mut b, t0, 3);
        finish(&mut b, t0, 2, HandshakeOutcome::Failed);
        finish(&mut b, t0 + secs(10), 1, HandshakeOutcome::TimedOut);
        assert_eq!(b.state(), BreakerState::Closed);
        start(&mut b, t0, 2);
        finish(&mut b, t0 + secs(11), 2, HandshakeOutcome::TimedOut);
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.admit_handshake(t0 + secs(11)), Admission::Refuse);
        assert_eq!(b.stats().opened, 1);
    }

    #[test]
    fn stays_open_for_the_cool_down_then_half_opens() {
        let t0 = epoch();
        let mut b = breaker();
        b.set_overloaded(t0, true);
        b.set_overloaded(t0 + secs(1), false);
        assert_eq!(b.admit_handshake(t0 + secs(4)), Admission::Refuse);
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.admit_handshake(t0 + secs(5)), Admission::Accept);
        assert_eq!(b.state(), BreakerState::HalfOpen);
    }

    #[test]
    fn overload_flag_keeps_it_open() {
        let t0 = epoch();
        let mut b = breaker();
        b.set_overloaded(t0, true);
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.admit_handshake(t0 + secs(100)), Admission::Refuse);
        b.set_overloaded(t0 + secs(100), false);
        assert_eq!(b.admit_handshake(t0 + secs(100)), Admission::Accept);
    }

    #[test]
    fn half_open_admits_probes_and_closes_after_they_complete() {
        let t0 = epoch();
        let t1 = t0 + secs(5);
        let mut b = breaker();
        b.set_overloaded(t0, true);
        b.set_overloaded(t0, false);
        assert_eq!(b.admit_handshake(t1), Admission::Accept);
        assert_eq!(b.admit_handshake(t1), Admission::Accept);
        assert_eq!(b.admit_handshake(t1), Admission::Refuse);
        start(&mut b, t1, 2);
        finish(&mut b, t1, 1, HandshakeOutcome::Completed);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        finish(&mut b, t1, 1, HandshakeOutcome::Completed);
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.admit_handshake(t1), Admission::Accept);
    }

    #[test]
    fn half_open_failure_reopens_and_restarts_the_cool_down() {
        let t0 = epoch();
        let t1 = t0 + secs(5);
        let mut b = breaker();
        b.set_overloaded(t0, true);
        b.set_overloaded(t0, false);
        assert_eq!(b.admit_handshake(t1), Admission::Accept);
        start(&mut b, t1, 1);
        finish(&mut b, t1 + secs(1), 1, HandshakeOutcome::Failed);
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.admit_handshake(t1 + secs(5)), Admission::Refuse);
        assert_eq!(b.admit_handshake(t1 + secs(6)), Admission::Accept);
        assert_eq!(b.stats().opened, 2);
    }

    #[test]
    fn half_open_overload_reopens() {
        let t0 = epoch();
        let mut b = breaker();
        b.set_overloaded(t0, true);
        b.set_overloaded(t0, false);
        assert_eq!(b.admit_handshake(t0 + secs(5)), Admission::Accept);
        b.set_overloaded(t0 + secs(6), true);
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn stalled_probes_are_replaced_after_a_cool_down() {
        let t0 = epoch();
        let t1 = t0 + secs(5);
        let mut b = breaker();
        b.set_overloaded(t0, true);
        b.set_overloaded(t0, false);
        assert_eq!(b.admit_handshake(t1), Admission::Accept);
        assert_eq!(b.admit_handshake(t1), Admission::Accept);
        // The probes never became handshakes (clients went away).
        assert_eq!(b.admit_handshake(t1 + secs(4)), Admission::Refuse);
        assert_eq!(b.admit_handshake(t1 + secs(5)), Admission::Accept);
        assert_eq!(b.state(), BreakerState::HalfOpen);
    }

    #[test]
    fn failures_disabled_never_open() {
        let t0 = epoch();
        let mut b = CircuitBreaker::new(CircuitBreakerConfig {
            failure_threshold: 0,
            ..config()
        })
        .unwrap();
        start(&mut b, t0, 5);
        finish(&mut b, t0, 5, HandshakeOutcome::Failed);
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.admit_handshake(t0), Admission::Accept);
    }

    #[test]
    fn unmatched_finish_does_not_underflow() {
        let t0 = epoch();
        let mut b = breaker();
        finish(&mut b, t0, 3, HandshakeOutcome::Completed);
        assert_eq!(b.in_flight(), 0);
        assert_eq!(b.admit_handshake(t0), Admission::Accept);
    }

    #[test]
    fn stats_count_every_decision() {
        let t0 = epoch();
        let mut b = breaker();
        assert_eq!(b.admit_handshake(t0), Admission::Accept);
        start(&mut b, t0, 4);
        assert_eq!(b.admit_handshake(t0), Admission::Retry);
        start(&mut b, t0, 4);
        assert_eq!(b.admit_handshake(t0), Admission::Refuse);
        assert_eq!(
            b.stats(),
            &BreakerStats {
                accepted: 1,
                retried: 1,
                refused: 1,
                opened: 1
            }
        );
    }

    #[test]
    fn invalid_configs_are_rejected() {
        let bad = [
            CircuitBreakerConfig {
                open_at: 0,
                ..config()
            },
            CircuitBreakerConfig {
                resume_below: 9,
                ..config()
            },
            CircuitBreakerConfig {
                resume_below: 0,
                ..config()
            },
            CircuitBreakerConfig {
                failure_threshold: MAX_FAILURE_THRESHOLD + 1,
                ..config()
            },
            CircuitBreakerConfig {
                failure_window: Duration::ZERO,
                ..config()
            },
            CircuitBreakerConfig {
                half_open_probes: 0,
                ..config()
            },
        ];
        for cfg in bad {
            assert!(CircuitBreaker::new(cfg.clone()).is_err(), "{cfg:?}");
        }
        assert!(CircuitBreakerConfig::default().validate().is_ok());
    }
}
