//! Rate limiting of what a peer sends (PROTOCOL-independent, a server policy): each datagram and
//! each stream the peer opens is a message, and stream bytes count against the byte budget. With
//! back-pressure the application's reads wait (and flow control slows the peer); with the close
//! policy the connection is closed with `RateLimitExceeded`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::limits::{
    check_rate, GlobalLimiter, RateAction, RateLimitConfig, RateLimitPolicy, RateLimits,
};

/// The rate-limit settings of an endpoint.
#[derive(Debug, Clone)]
pub(crate) struct EndpointRate {
    pub(crate) config: RateLimitConfig,
    pub(crate) global: Option<Arc<GlobalLimiter>>,
}

/// A connection's budget.
#[derive(Debug)]
pub(crate) struct ConnRate {
    limits: RateLimits,
    policy: RateLimitPolicy,
    global: Option<Arc<GlobalLimiter>>,
    /// Stream bytes read but not yet charged (back-pressure charges them before the next read).
    debt: u64,
    /// Times the peer was held back.
    pub(crate) throttled: u64,
}

/// Wakes `waker` after `d` (back-pressure).
pub(crate) fn wake_after(waker: std::task::Waker, d: Duration) {
    tokio::spawn(async move {
        tokio::time::sleep(d).await;
        waker.wake();
    });
}

/// What to do with a message or read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Go ahead.
    Proceed,
    /// Wait this long, then try again.
    Wait(Duration),
    /// Close the connection with `RateLimitExceeded`.
    Close,
}

impl ConnRate {
    /// A budget from the endpoint's settings (`None` if nothing is limited).
    pub(crate) fn new(rate: &EndpointRate) -> Option<Self> {
        let limits = rate.config.connection_limits().ok()?;
        if limits.is_unlimited() && rate.global.is_none() {
            return None;
        }
        Some(Self {
            limits,
            policy: rate.config.policy,
            global: rate.global.clone(),
            debt: 0,
            throttled: 0,
        })
    }

    fn act(&mut self, action: RateAction) -> Verdict {
        match action {
            RateAction::Proceed => Verdict::Proceed,
            RateAction::Wait(d) => {
                self.throttled += 1;
                Verdict::Wait(d)
            }
            RateAction::Close => Verdict::Close,
        }
    }

    /// Charges one message of `bytes` (a datagram, or a new stream with 0 bytes).
    pub(crate) fn message(&mut self, now: Instant, bytes: u64) -> Verdict {
        let decision = check_rate(&mut self.limits, self.global.as_deref(), now, bytes);
        let action = self.policy.action(decision);
        self.act(action)
    }

    /// Before reading stream data: settles bytes read earlier.
    pub(crate) fn before_read(&mut self, now: Instant) -> Verdict {
        if self.debt == 0 {
            return Verdict::Proceed;
        }
        let Some(bucket) = self.limits.bytes.as_mut() else {
            self.debt = 0;
            return Verdict::Proceed;
        };
        if bucket.try_take(now, self.debt) {
            self.debt = 0;
            return Verdict::Proceed;
        }
        match self.policy {
            RateLimitPolicy::Close => Verdict::Close,
            RateLimitPolicy::BackPressure => {
                let wait = bucket.time_until(now, self.debt).unwrap_or(Duration::ZERO);
                self.act(RateAction::Wait(wait))
            }
        }
    }

    /// After reading `n` stream bytes.
    pub(crate) fn after_read(&mut self, n: u64) {
        self.debt += n;
    }
}
