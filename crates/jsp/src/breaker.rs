//! Connects the circuit breaker ([`crate::limits::CircuitBreaker`]) to the engine: the engine asks
//! it about each new handshake (through `jsp_proto::AdmissionControl`), and the driver tells it
//! when handshakes start and how they end.

use std::sync::{Arc, Mutex};

use jsp_proto::{Admission as EngineAdmission, AdmissionControl, Instant};

use crate::clock::Clock;
use crate::limits::{Admission, CircuitBreaker, HandshakeOutcome};

/// The breaker shared by the engine hook and the driver.
pub(crate) type SharedBreaker = Arc<Mutex<CircuitBreaker>>;

/// The engine-side hook.
pub(crate) struct BreakerHook {
    pub(crate) breaker: SharedBreaker,
    pub(crate) clock: Clock,
}

impl AdmissionControl for BreakerHook {
    fn admit(&mut self, now: Instant, _in_flight: usize) -> EngineAdmission {
        let mut b = self.breaker.lock().unwrap_or_else(|e| e.into_inner());
        match b.admit_handshake(self.clock.std(now)) {
            Admission::Accept => EngineAdmission::Accept,
            Admission::Retry => EngineAdmission::Retry,
            Admission::Refuse => EngineAdmission::Refuse,
        }
    }
}

/// Tells the breaker about a handshake's start or end.
pub(crate) fn record(
    breaker: &SharedBreaker,
    clock: &Clock,
    now: Instant,
    outcome: Option<HandshakeOutcome>,
) {
    let mut b = breaker.lock().unwrap_or_else(|e| e.into_inner());
    let t = clock.std(now);
    match outcome {
        None => b.handshake_started(t),
        Some(o) => b.handshake_finished(t, o),
    }
}

/// The admission control of an endpoint that is shutting down: every new handshake is refused
/// with SERVER_BUSY, which clients see as the server going away and may retry elsewhere or later.
pub(crate) struct RefuseAll;

impl jsp_proto::endpoint::AdmissionControl for RefuseAll {
    fn admit(
        &mut self,
        _now: jsp_proto::Instant,
        _handshakes_in_flight: usize,
    ) -> jsp_proto::endpoint::Admission {
        jsp_proto::endpoint::Admission::Refuse
    }
}
