//! Maps the operating system's monotonic clock onto the engine's [`jsp_proto::Instant`] (nanoseconds
//! since the endpoint was created) and records the wall-clock time at that origin.

use std::time::{Duration, Instant as StdInstant, SystemTime, UNIX_EPOCH};

use jsp_proto::Instant;

/// The clock of one endpoint.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    origin: StdInstant,
    unix_at_origin: u64,
}

impl Clock {
    /// A clock whose engine time zero is now.
    pub(crate) fn new() -> Self {
        // The driver is the one place that reads the system clocks (docs/ARCHITECTURE.md).
        #[allow(clippy::disallowed_methods, reason = "the I/O layer owns the clock")]
        let origin = StdInstant::now();
        #[allow(clippy::disallowed_methods, reason = "the I/O layer owns the clock")]
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Self {
            origin,
            unix_at_origin: unix,
        }
    }

    /// Engine time now.
    pub(crate) fn now(&self) -> Instant {
        self.engine(std_now())
    }

    /// Engine time of a std instant.
    pub(crate) fn engine(&self, t: StdInstant) -> Instant {
        let d = t.saturating_duration_since(self.origin);
        Instant::from_nanos(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }

    /// The std instant of an engine time.
    pub(crate) fn std(&self, t: Instant) -> StdInstant {
        self.origin + Duration::from_nanos(t.as_nanos())
    }

    /// Unix seconds at engine time zero.
    pub(crate) fn unix_at_origin(&self) -> u64 {
        self.unix_at_origin
    }
}

/// The operating system's monotonic clock.
pub(crate) fn std_now() -> StdInstant {
    #[allow(clippy::disallowed_methods, reason = "the I/O layer owns the clock")]
    StdInstant::now()
}
