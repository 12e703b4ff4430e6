//! Rate limits and the handshake circuit breaker: the server's defences against one greedy peer
//! and against overload.
//!
//! A [`TokenBucket`] admits `rate_per_sec` units per second with bursts of up to `burst`, in exact
//! integer arithmetic (no drift, no overflow). Each connection owns a [`RateLimits`] (a bucket for
//! messages and one for bytes); all connections of a server share one [`GlobalLimiter`]. The
//! driver charges every message with [`check_rate`] and acts on the [`RateAction`] that the
//! configured [`RateLimitPolicy`] makes of the result: proceed, wait (back-pressure), or close the
//! connection with `CloseReason::RateLimitExceeded`. The [`CircuitBreaker`] watches handshake load
//! and failures and decides whether a new handshake is accepted, sent a Retry, or refused, so that
//! an overloaded server turns new clients away early instead of degrading every connection it
//! already has. Time is always an argument (`now`); nothing here reads a clock.

mod breaker;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

pub use breaker::{
    Admission, BreakerState, BreakerStats, CircuitBreaker, CircuitBreakerConfig, HandshakeOutcome,
    MAX_FAILURE_THRESHOLD,
};

/// Default per-connection message rate, messages per second.
pub const DEFAULT_RATE_LIMIT_MESSAGES: u64 = 100;
/// Default per-connection byte rate, bytes per second (1 MiB/s).
pub const DEFAULT_RATE_LIMIT_BYTES: u64 = 1_048_576;
/// Default server-wide message rate, messages per second.
pub const DEFAULT_GLOBAL_RATE_LIMIT_MESSAGES: u64 = 10_000;
/// Default server-wide byte rate, bytes per second (100 MB/s).
pub const DEFAULT_GLOBAL_RATE_LIMIT_BYTES: u64 = 100_000_000;
/// Default burst: every bucket holds this much time's worth of its rate.
pub const DEFAULT_RATE_LIMIT_BURST: Duration = Duration::from_secs(1);

/// Credit is kept in billionths of a token, so a rate of `r` tokens per second adds exactly `r`
/// units per nanosecond: refills are exact integers and rounding never accumulates.
const UNITS_PER_TOKEN: i128 = 1_000_000_000;

/// Why a limit cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitError {
    /// A rate must admit at least one unit per second (leave the limit out to disable it).
    #[error("{field}: the rate must be at least 1 per second (omit the limit to disable it)")]
    ZeroRate {
        /// The offending setting.
        field: &'static str,
    },
    /// A bucket must hold at least one token.
    #[error("{field}: the burst must be at least 1")]
    ZeroBurst {
        /// The offending setting.
        field: &'static str,
    },
    /// A setting is outside its allowed range.
    #[error("{field}: {detail}")]
    OutOfRange {
        /// The offending setting.
        field: &'static str,
        /// What is allowed.
        detail: &'static str,
    },
}

/// A token bucket: admits `rate_per_sec` tokens per second on average and at most `burst` at once.
///
/// The bucket starts full at the first `now` it is shown. It refills by the exact time elapsed
/// between calls (integer token-nanoseconds, so rounding never accumulates) and never above
/// `burst`. An amount larger than `burst` is admitted when the bucket is full and leaves it in
/// debt, so one oversized message is never blocked forever while the long-run rate still holds.
/// A `now` earlier than one already seen is treated as no time having passed.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    rate_per_sec: u64,
    burst: u64,
    /// Credit in units of 1e-9 token; negative while in debt.
    credit: i128,
    /// The latest `now` the credit is valid for; `None` until first used (bucket full).
    last: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket refilling at `rate_per_sec` and holding at most `burst` tokens; both must be
    /// at least 1.
    pub fn new(rate_per_sec: u64, burst: u64) -> Result<Self, LimitError> {
        if rate_per_sec == 0 {
            return Err(LimitError::ZeroRate {
                field: "rate_per_sec",
            });
        }
        if burst == 0 {
            return Err(LimitError::ZeroBurst { field: "burst" });
        }
        Ok(Self {
            rate_per_sec,
            burst,
            credit: Self::units(burst),
            last: None,
        })
    }

    /// A bucket for `rate_per_sec` holding `burst_time` worth of it (at least one token).
    pub fn with_burst_time(rate_per_sec: u64, burst_time: Duration) -> Result<Self, LimitError> {
        Self::new(rate_per_sec, burst_for(rate_per_sec, burst_time))
    }

    /// Tokens added per second.
    pub fn rate_per_sec(&self) -> u64 {
        self.rate_per_sec
    }

    /// Most tokens the bucket holds.
    pub fn burst(&self) -> u64 {
        self.burst
    }

    /// Whole tokens available at `now` (0 while in debt).
    pub fn available(&self, now: Instant) -> u64 {
        let tokens = self.credit_at(now) / UNITS_PER_TOKEN;
        u64::try_from(tokens.max(0)).unwrap_or(u64::MAX)
    }

    /// Takes `amount` tokens if the bucket allows it at `now`; returns whether it did. Taking 0
    /// always succeeds.
    pub fn try_take(&mut self, now: Instant, amount: u64) -> bool {
        self.refill(now);
        if self.credit < self.needed(amount) {
            return false;
        }
        self.credit = self.credit.saturating_sub(Self::units(amount));
        true
    }

    /// How long after `now` [`try_take`](Self::try_take) of `amount` would succeed: `None` if it
    /// would succeed now, otherwise the exact wait (rounded up to the nanosecond).
    pub fn time_until(&self, now: Instant, amount: u64) -> Option<Duration> {
        let deficit = self.needed(amount).saturating_sub(self.credit_at(now));
        if deficit <= 0 {
            return None;
        }
        // rate_per_sec >= 1, so each nanosecond adds at least one unit.
        let rate = i128::from(self.rate_per_sec);
        let nanos = deficit.saturating_add(rate - 1) / rate;
        Some(Duration::from_nanos(
            u64::try_from(nanos).unwrap_or(u64::MAX),
        ))
    }

    /// Credit required to take `amount`: the amount, or a full bucket for oversized amounts.
    fn needed(&self, amount: u64) -> i128 {
        Self::units(amount.min(self.burst))
    }

    fn units(tokens: u64) -> i128 {
        i128::from(tokens).saturating_mul(UNITS_PER_TOKEN)
    }

    fn credit_at(&self, now: Instant) -> i128 {
        let Some(last) = self.last else {
            return self.credit;
        };
        let elapsed = now.saturating_duration_since(last).as_nanos();
        let elapsed = i128::try_from(elapsed).unwrap_or(i128::MAX);
        let added = elapsed.saturating_mul(i128::from(self.rate_per_sec));
        self.credit
            .saturating_add(added)
            .min(Self::units(self.burst))
    }

    fn refill(&mut self, now: Instant) {
        self.credit = self.credit_at(now);
        match self.last {
            Some(last) if now <= last => {}
            _ => self.last = Some(now),
        }
    }
}

/// Tokens in `burst_time` worth of `rate_per_sec`, at least 1 (saturating).
fn burst_for(rate_per_sec: u64, burst_time: Duration) -> u64 {
    let tokens = u128::from(rate_per_sec).saturating_mul(burst_time.as_nanos()) / 1_000_000_000;
    u64::try_from(tokens).unwrap_or(u64::MAX).max(1)
}

/// What a rate check says about a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum RateDecision {
    /// The message fits: its tokens were taken.
    Allow,
    /// The message does not fit now; nothing was taken. It would fit after this long.
    Wait(Duration),
}

/// A connection's limits: messages per second and bytes per second (`None` = unlimited).
#[derive(Clone, Debug, Default)]
pub struct RateLimits {
    /// Bucket charged one token per message.
    pub messages: Option<TokenBucket>,
    /// Bucket charged one token per byte.
    pub bytes: Option<TokenBucket>,
}

impl RateLimits {
    /// No limits at all.
    pub fn unlimited() -> Self {
        Self::default()
    }

    /// Whether neither messages nor bytes are limited.
    pub fn is_unlimited(&self) -> bool {
        self.messages.is_none() && self.bytes.is_none()
    }

    /// How long after `now` one message of `bytes` bytes fits both buckets (`None`: it fits now).
    pub fn time_until(&self, now: Instant, bytes: u64) -> Option<Duration> {
        let m = self.messages.as_ref().and_then(|b| b.time_until(now, 1));
        let b = self.bytes.as_ref().and_then(|b| b.time_until(now, bytes));
        m.max(b)
    }

    /// Charges one message of `bytes` bytes if both buckets allow it; takes nothing otherwise.
    pub fn check(&mut self, now: Instant, bytes: u64) -> RateDecision {
        check_rate(self, None, now, bytes)
    }

    fn take(&mut self, now: Instant, bytes: u64) {
        // Only called after `time_until` said both fit at `now`, so both takes succeed.
        if let Some(b) = self.messages.as_mut() {
            let _ = b.try_take(now, 1);
        }
        if let Some(b) = self.bytes.as_mut() {
            let _ = b.try_take(now, bytes);
        }
    }
}

/// Limits shared by every connection of a server (wrap it in an `Arc`).
#[derive(Debug, Default)]
pub struct GlobalLimiter {
    limits: Mutex<RateLimits>,
}

impl GlobalLimiter {
    /// A limiter enforcing `limits` across all connections that share it.
    pub fn new(limits: RateLimits) -> Self {
        Self {
            limits: Mutex::new(limits),
        }
    }

    /// Charges one message of `bytes` bytes against the global limits alone.
    pub fn check(&self, now: Instant, bytes: u64) -> RateDecision {
        check_rate(&mut RateLimits::unlimited(), Some(self), now, bytes)
    }

    /// How long after `now` one message of `bytes` bytes fits the global limits.
    pub fn time_until(&self, now: Instant, bytes: u64) -> Option<Duration> {
        self.lock().time_until(now, bytes)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RateLimits> {
        // The buckets hold plain integers: a panic elsewhere cannot leave them inconsistent.
        self.limits.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Charges one message of `bytes` bytes against a connection's limits and, if given, the server's
/// global limits. Tokens are taken from all of them or from none: a message that does not fit
/// one bucket leaves the others untouched, and the wait is the longest of the waits.
pub fn check_rate(
    connection: &mut RateLimits,
    global: Option<&GlobalLimiter>,
    now: Instant,
    bytes: u64,
) -> RateDecision {
    let local_wait = connection.time_until(now, bytes);
    let Some(global) = global else {
        return match local_wait {
            Some(wait) => RateDecision::Wait(wait),
            None => {
                connection.take(now, bytes);
                RateDecision::Allow
            }
        };
    };
    let mut shared = global.lock();
    match local_wait.max(shared.time_until(now, bytes)) {
        Some(wait) => RateDecision::Wait(wait),
        None => {
            connection.take(now, bytes);
            shared.take(now, bytes);
            RateDecision::Allow
        }
    }
}

/// What the driver does when a message exceeds a rate limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateLimitPolicy {
    /// Hold the message until the limit allows it (the writer or reader waits).
    #[default]
    BackPressure,
    /// Close the connection with `CloseReason::RateLimitExceeded`.
    Close,
}

/// What the driver must do with a message, from a [`RateDecision`] under a [`RateLimitPolicy`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum RateAction {
    /// Send or deliver the message now.
    Proceed,
    /// Retry after this long (back-pressure); nothing was charged.
    Wait(Duration),
    /// Close the connection with `CloseReason::RateLimitExceeded`.
    Close,
}

impl RateLimitPolicy {
    /// The action this policy takes on `decision`.
    pub fn action(self, decision: RateDecision) -> RateAction {
        match (decision, self) {
            (RateDecision::Allow, _) => RateAction::Proceed,
            (RateDecision::Wait(wait), RateLimitPolicy::BackPressure) => RateAction::Wait(wait),
            (RateDecision::Wait(_), RateLimitPolicy::Close) => RateAction::Close,
        }
    }
}

/// The rate-limit settings of a server: per-connection and global rates and the policy.
///
/// A "message" is whatever the driver charges one token for. The defaults (100 per second per
/// connection) are sized for application messages (a datagram, a message written to a stream),
/// not for packets: a 1 MiB/s transfer is some 750 packets per second.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// What happens to a message beyond a limit.
    pub policy: RateLimitPolicy,
    /// Messages per second per connection (`None` = unlimited).
    pub messages_per_sec: Option<u64>,
    /// Bytes per second per connection (`None` = unlimited).
    pub bytes_per_sec: Option<u64>,
    /// Messages per second across all connections of the server (`None` = unlimited).
    pub global_messages_per_sec: Option<u64>,
    /// Bytes per second across all connections of the server (`None` = unlimited).
    pub global_bytes_per_sec: Option<u64>,
    /// Each bucket holds this much time's worth of its rate (at least one token).
    pub burst: Duration,
}

impl Default for RateLimitConfig {
    /// 100 messages and 1 MiB per second per connection, 10,000 messages and 100 MB per second
    /// per server, one second of burst, back-pressure.
    fn default() -> Self {
        Self {
            policy: RateLimitPolicy::default(),
            messages_per_sec: Some(DEFAULT_RATE_LIMIT_MESSAGES),
            bytes_per_sec: Some(DEFAULT_RATE_LIMIT_BYTES),
            global_messages_per_sec: Some(DEFAULT_GLOBAL_RATE_LIMIT_MESSAGES),
            global_bytes_per_sec: Some(DEFAULT_GLOBAL_RATE_LIMIT_BYTES),
            burst: DEFAULT_RATE_LIMIT_BURST,
        }
    }
}

impl RateLimitConfig {
    /// No limits anywhere.
    pub fn unlimited() -> Self {
        Self {
            policy: RateLimitPolicy::default(),
            messages_per_sec: None,
            bytes_per_sec: None,
            global_messages_per_sec: None,
            global_bytes_per_sec: None,
            burst: DEFAULT_RATE_LIMIT_BURST,
        }
    }

    /// Checks that every configured rate is at least 1 and the burst is not zero.
    pub fn validate(&self) -> Result<(), LimitError> {
        let rates = [
            ("rate_limit_messages", self.messages_per_sec),
            ("rate_limit_bytes", self.bytes_per_sec),
            ("global_rate_limit_messages", self.global_messages_per_sec),
            ("global_rate_limit_bytes", self.global_bytes_per_sec),
        ];
        if let Some((field, _)) = rates.iter().find(|(_, rate)| *rate == Some(0)) {
            return Err(LimitError::ZeroRate { field });
        }
        if self.burst.is_zero() {
            return Err(LimitError::ZeroBurst {
                field: "rate_limit_burst",
            });
        }
        Ok(())
    }

    /// Fresh buckets for one new connection.
    pub fn connection_limits(&self) -> Result<RateLimits, LimitError> {
        self.validate()?;
        Ok(RateLimits {
            messages: self.bucket(self.messages_per_sec)?,
            bytes: self.bucket(self.bytes_per_sec)?,
        })
    }

    /// The server-wide limiter, or `None` when there are no global limits.
    pub fn global_limiter(&self) -> Result<Option<Arc<GlobalLimiter>>, LimitError> {
        self.validate()?;
        let limits = RateLimits {
            messages: self.bucket(self.global_messages_per_sec)?,
            bytes: self.bucket(self.global_bytes_per_sec)?,
        };
        Ok((!limits.is_unlimited()).then(|| Arc::new(GlobalLimiter::new(limits))))
    }

    fn bucket(&self, rate: Option<u64>) -> Result<Option<TokenBucket>, LimitError> {
        rate.map(|r| TokenBucket::with_burst_time(r, self.burst))
            .transpose()
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

    #[test]
    fn bucket_starts_full_and_empties() {
        let t0 = epoch();
        let mut b = TokenBucket::new(10, 5).unwrap();
        assert_eq!(b.available(t0), 5);
        for _ in 0..5 {
            assert!(b.try_take(t0, 1));
        }
        assert!(!b.try_take(t0, 1));
        assert_eq!(b.time_until(t0, 1), Some(ms(100)));
    }

    #[test]
    fn time_until_is_exact_to_the_nanosecond() {
        let t0 = epoch();
        let mut b = TokenBucket::new(3, 3).unwrap();
        assert!(b.try_take(t0, 3));
        // One token every 333,333,333.33 ns: the wait rounds up.
        let wait = b.time_until(t0, 1).unwrap();
        assert_eq!(wait, Duration::from_nanos(333_333_334));
        assert!(!b.try_take(t0 + wait - Duration::from_nanos(1), 1));
        assert!(b.try_take(t0 + wait, 1));
    }

    #[test]
    fn refill_does_not_drift_over_many_small_steps() {
        // 7 tokens per second (1/7 s is not a whole number of nanoseconds) taken in 1 ms steps
        // for 10 s: exactly 70 tokens beyond the burst, the last one at exactly 10 s.
        let t0 = epoch();
        let mut b = TokenBucket::new(7, 100).unwrap();
        let mut taken = 0u64;
        for step in 0..10_000u64 {
            if b.try_take(t0 + ms(step), 1) {
                taken += 1;
            }
        }
        assert_eq!(taken, 100 + 69);
        assert!(b.try_take(t0 + ms(10_000), 1));
    }

    #[test]
    fn refill_is_capped_at_burst() {
        let t0 = epoch();
        let mut b = TokenBucket::new(1000, 10).unwrap();
        assert!(b.try_take(t0, 10));
        assert_eq!(b.available(t0 + Duration::from_secs(3600)), 10);
        assert!(b.try_take(t0 + Duration::from_secs(3600), 10));
        assert!(!b.try_take(t0 + Duration::from_secs(3600), 1));
    }

    #[test]
    fn huge_values_do_not_overflow() {
        let t0 = epoch();
        let mut b = TokenBucket::new(u64::MAX, u64::MAX).unwrap();
        assert!(b.try_take(t0, u64::MAX));
        assert!(b.try_take(t0 + Duration::from_secs(1), u64::MAX));
        let far = t0 + Duration::from_secs(100 * 365 * 24 * 3600);
        assert_eq!(b.available(far), u64::MAX);
        let mut slow = TokenBucket::new(1, 1).unwrap();
        assert!(slow.try_take(t0, u64::MAX));
        // Debt of u64::MAX - 1 tokens at 1 token/s: the wait saturates, it does not wrap.
        assert_eq!(slow.time_until(t0, 1), Some(Duration::from_nanos(u64::MAX)));
    }

    #[test]
    fn oversized_amount_waits_for_a_full_bucket_then_leaves_debt() {
        let t0 = epoch();
        let mut b = TokenBucket::new(100, 100).unwrap();
        assert!(b.try_take(t0, 50));
        assert_eq!(b.time_until(t0, 250), Some(ms(500)));
        assert!(!b.try_take(t0 + ms(499), 250));
        assert!(b.try_take(t0 + ms(500), 250));
        // 150 tokens of debt plus 1 token: 1.51 s at 100/s.
        assert_eq!(b.time_until(t0 + ms(500), 1), Some(ms(1510)));
    }

    #[test]
    fn time_going_backwards_adds_nothing() {
        let t0 = epoch();
        let t1 = t0 + Duration::from_secs(1);
        let mut b = TokenBucket::new(10, 10).unwrap();
        assert!(b.try_take(t1, 10));
        assert!(!b.try_take(t0, 1));
        assert_eq!(b.time_until(t0, 1), b.time_until(t1, 1));
        assert!(b.try_take(t1 + ms(100), 1));
    }

    #[test]
    fn zero_rate_or_burst_is_rejected() {
        assert!(matches!(
            TokenBucket::new(0, 1),
            Err(LimitError::ZeroRate { .. })
        ));
        assert!(matches!(
            TokenBucket::new(1, 0),
            Err(LimitError::ZeroBurst { .. })
        ));
        // A burst time shorter than one token still holds one token.
        let b = TokenBucket::with_burst_time(1, ms(1)).unwrap();
        assert_eq!(b.burst(), 1);
    }

    #[test]
    fn connection_limits_charge_both_buckets_or_neither() {
        let t0 = epoch();
        let mut limits = RateLimits {
            messages: Some(TokenBucket::new(10, 10).unwrap()),
            bytes: Some(TokenBucket::new(1000, 1000).unwrap()),
        };
        assert_eq!(limits.check(t0, 900), RateDecision::Allow);
        // Bytes are short: the message bucket must not be charged.
        assert_eq!(limits.check(t0, 200), RateDecision::Wait(ms(100)));
        assert_eq!(limits.messages.as_ref().unwrap().available(t0), 9);
        for _ in 0..9 {
            assert_eq!(limits.check(t0, 0), RateDecision::Allow);
        }
        assert_eq!(limits.check(t0, 0), RateDecision::Wait(ms(100)));
        assert_eq!(limits.bytes.as_ref().unwrap().available(t0), 100);
    }

    #[test]
    fn unlimited_always_allows() {
        let t0 = epoch();
        let mut limits = RateLimits::unlimited();
        for _ in 0..10_000 {
            assert_eq!(limits.check(t0, u64::MAX), RateDecision::Allow);
        }
    }

    #[test]
    fn global_limit_is_shared_between_connections() {
        let t0 = epoch();
        let global = Arc::new(GlobalLimiter::new(RateLimits {
            messages: Some(TokenBucket::new(3, 3).unwrap()),
            bytes: None,
        }));
        let mut a = RateLimits::unlimited();
        let mut b = RateLimits::unlimited();
        assert_eq!(
            check_rate(&mut a, Some(&global), t0, 1),
            RateDecision::Allow
        );
        assert_eq!(
            check_rate(&mut b, Some(&global), t0, 1),
            RateDecision::Allow
        );
        assert_eq!(
            check_rate(&mut a, Some(&global), t0, 1),
            RateDecision::Allow
        );
        let third = Duration::from_nanos(333_333_334);
        assert_eq!(
            check_rate(&mut b, Some(&global), t0, 1),
            RateDecision::Wait(third)
        );
        assert_eq!(global.check(t0 + third, 1), RateDecision::Allow);
    }

    #[test]
    fn global_refusal_leaves_connection_untouched_and_vice_versa() {
        let t0 = epoch();
        let global = GlobalLimiter::new(RateLimits {
            messages: None,
            bytes: Some(TokenBucket::new(100, 100).unwrap()),
        });
        let mut conn = RateLimits {
            messages: Some(TokenBucket::new(2, 1).unwrap()),
            bytes: None,
        };
        assert_eq!(global.check(t0, 60), RateDecision::Allow);
        // Global bytes are short: the connection's message must not be charged.
        assert_eq!(
            check_rate(&mut conn, Some(&global), t0, 50),
            RateDecision::Wait(ms(100))
        );
        assert_eq!(conn.messages.as_ref().unwrap().available(t0), 1);
        assert_eq!(
            check_rate(&mut conn, Some(&global), t0, 40),
            RateDecision::Allow
        );
        // The connection is out of messages: the global bytes must not be charged.
        let t1 = t0 + ms(300);
        assert_eq!(
            check_rate(&mut conn, Some(&global), t1, 10),
            RateDecision::Wait(ms(200))
        );
        assert_eq!(global.lock().bytes.as_ref().unwrap().available(t1), 30);
    }

    #[test]
    fn policy_maps_decisions_to_actions() {
        let wait = RateDecision::Wait(ms(5));
        assert_eq!(
            RateLimitPolicy::BackPressure.action(wait),
            RateAction::Wait(ms(5))
        );
        assert_eq!(RateLimitPolicy::Close.action(wait), RateAction::Close);
        for p in [RateLimitPolicy::BackPressure, RateLimitPolicy::Close] {
            assert_eq!(p.action(RateDecision::Allow), RateAction::Proceed);
        }
    }

    #[test]
    fn default_config_matches_documented_defaults() {
        let t0 = epoch();
        let cfg = RateLimitConfig::default();
        let conn = cfg.connection_limits().unwrap();
        let m = conn.messages.unwrap();
        let b = conn.bytes.unwrap();
        assert_eq!((m.rate_per_sec(), m.burst()), (100, 100));
        assert_eq!((b.rate_per_sec(), b.burst()), (1_048_576, 1_048_576));
        let global = cfg.global_limiter().unwrap().unwrap();
        assert_eq!(global.time_until(t0, 100_000_000), None);
        assert_eq!(
            global.time_until(t0, 100_000_001),
            None,
            "oversized: full bucket suffices"
        );
        assert_eq!(cfg.policy, RateLimitPolicy::BackPressure);
    }

    #[test]
    fn unlimited_config_builds_no_buckets() {
        let cfg = RateLimitConfig::unlimited();
        assert!(cfg.connection_limits().unwrap().is_unlimited());
        assert!(cfg.global_limiter().unwrap().is_none());
    }

    #[test]
    fn config_rejects_zero_rates_and_burst() {
        let cfg = RateLimitConfig {
            global_bytes_per_sec: Some(0),
            ..RateLimitConfig::default()
        };
        assert_eq!(
            cfg.validate(),
            Err(LimitError::ZeroRate {
                field: "global_rate_limit_bytes"
            })
        );
        let cfg = RateLimitConfig {
            burst: Duration::ZERO,
            ..RateLimitConfig::default()
        };
        assert!(cfg.connection_limits().is_err());
    }
}
