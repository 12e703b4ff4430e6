//! The command's one reader of the monotonic clock. The library crates never read a clock
//! (`clippy.toml` bans it); a command-line tool measures handshakes, round trips and rates, so
//! it reads it here and nowhere else.

use std::time::{Duration, Instant};

/// A running stopwatch.
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch {
    started: Instant,
}

impl Stopwatch {
    /// Starts now.
    pub fn start() -> Self {
        #[allow(
            clippy::disallowed_methods,
            reason = "the CLI is an I/O program: it measures elapsed time"
        )]
        let started = Instant::now();
        Self { started }
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}
