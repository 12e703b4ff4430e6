//! Congestion control behind a trait (PROTOCOL.md §15). Version 1 ships NewReno; the transport
//! engine adds CUBIC and BBR behind the same trait.

mod new_reno;

pub use new_reno::NewReno;

use crate::time::Instant;
use core::time::Duration;

/// Minimum congestion window, in packets of `max_datagram_size`.
pub const MIN_WINDOW_PACKETS: u64 = 2;
/// Initial congestion window, in packets (RFC 9002 §7.2 uses 10).
pub const INITIAL_WINDOW_PACKETS: u64 = 10;

/// A congestion controller: told what was sent, acknowledged and lost; says how much may be in
/// flight.
pub trait CongestionController: Send + core::fmt::Debug {
    /// Bytes were sent.
    fn on_sent(&mut self, now: Instant, bytes: u64);
    /// Bytes sent at `sent_time` were acknowledged.
    fn on_ack(&mut self, now: Instant, sent_time: Instant, bytes: u64, smoothed_rtt: Duration);
    /// Packets were lost; `largest_lost_sent` is the send time of the newest of them.
    fn on_congestion_event(&mut self, now: Instant, largest_lost_sent: Instant, persistent: bool);
    /// The congestion window in bytes.
    fn window(&self) -> u64;
    /// The maximum datagram size changed (path MTU discovery).
    fn set_max_datagram_size(&mut self, size: u64);
}
