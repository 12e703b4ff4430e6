//! Congestion control behind a trait (PROTOCOL.md §15): NewReno (RFC 9002 §7), CUBIC (RFC 9438,
//! with HyStart++ from RFC 9406) and BBR (model-based: BBRv1's state machine with the BBRv2/v3
//! loss response). [`CongestionControl`] is the typed configuration and factory.
//!
//! A controller is told, per event, what the connection did and saw: each congestion-controlled
//! packet sent ([`SentEvent`]), each ACK frame that newly acknowledged in-flight packets
//! ([`AckEvent`], carrying the RTT estimator and the delivery-rate sample of
//! [`crate::recovery::rate`]), and each batch of packets declared lost ([`LossEvent`]). It answers
//! with a window ([`CongestionController::window`]) and optionally a pacing rate
//! ([`CongestionController::pacing_rate`]) for [`crate::recovery::pacer::Pacer`]. Controllers
//! never allocate per packet and never read a clock.

mod bbr;
mod cubic;
mod filter;
mod hystart;
mod new_reno;

#[cfg(test)]
mod model;

pub use bbr::{Bbr, BbrConfig};
pub use cubic::{Cubic, CubicConfig};
pub use new_reno::NewReno;

use core::time::Duration;

use super::rate::RateSample;
use super::rtt::RttEstimator;
use crate::time::Instant;

/// Minimum congestion window, in packets of `max_datagram_size`.
pub const MIN_WINDOW_PACKETS: u64 = 2;
/// Initial congestion window, in packets (RFC 9002 §7.2 uses 10).
pub const INITIAL_WINDOW_PACKETS: u64 = 10;

/// A congestion-controlled (ack-eliciting, in-flight) packet was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SentEvent {
    /// When.
    pub now: Instant,
    /// Its size on the wire.
    pub bytes: u64,
    /// Bytes in flight including this packet (all packet number spaces).
    pub bytes_in_flight: u64,
    /// Whether it was sent during an application-limited period
    /// ([`crate::recovery::rate::PacketRateState::is_app_limited`]).
    pub app_limited: bool,
}

/// An ACK frame newly acknowledged in-flight packets. One event per frame, after the RTT
/// estimator was updated and before loss detection runs.
#[derive(Clone, Copy, Debug)]
pub struct AckEvent<'a> {
    /// When the frame was processed.
    pub now: Instant,
    /// Bytes of newly acknowledged in-flight packets.
    pub bytes_acked: u64,
    /// Send time of the most recently sent of them.
    pub largest_acked_sent: Instant,
    /// The connection's RTT estimator.
    pub rtt: &'a RttEstimator,
    /// Whether this frame produced an RTT sample (so `rtt.latest()` is fresh).
    pub rtt_updated: bool,
    /// The delivery-rate sample for this frame (`None` only if the connection does not run an
    /// estimator: BBR then cannot build its model and stays at its initial window).
    pub rate: Option<RateSample>,
    /// Bytes in flight after removing the acknowledged packets.
    pub bytes_in_flight: u64,
}

impl AckEvent<'_> {
    /// Whether the sample says the sender was application-limited (the window was not the limit,
    /// so it must not grow: RFC 9002 §7.8).
    pub fn app_limited(&self) -> bool {
        self.rate.is_some_and(|r| r.is_app_limited)
    }

    /// The RTT sample of this frame, if any.
    pub fn rtt_sample(&self) -> Option<Duration> {
        self.rtt_updated.then(|| self.rtt.latest())
    }
}

/// Packets were declared lost (one event per loss-detection pass that found any).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LossEvent {
    /// When.
    pub now: Instant,
    /// Send time of the most recently sent lost packet (starts at most one recovery period).
    pub largest_lost_sent: Instant,
    /// Bytes of lost in-flight packets.
    pub lost_bytes: u64,
    /// Number of lost in-flight packets.
    pub lost_packets: u64,
    /// Whether the loss establishes persistent congestion (RFC 9002 §7.6).
    pub persistent: bool,
    /// Bytes in flight after removing the lost packets.
    pub bytes_in_flight: u64,
}

/// What a controller is doing, for statistics and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// Window-based slow start.
    SlowStart,
    /// HyStart++ conservative slow start (RFC 9406 §4.2).
    ConservativeSlowStart,
    /// Window-based congestion avoidance.
    CongestionAvoidance,
    /// Window-based loss recovery (no growth until a packet sent after the loss is acknowledged).
    Recovery,
    /// BBR startup: doubling the sending rate each round.
    Startup,
    /// BBR drain: emptying the queue startup built.
    Drain,
    /// BBR steady state: cycling the pacing gain around the bandwidth estimate.
    ProbeBw,
    /// BBR probing for the minimum RTT with a four-packet window.
    ProbeRtt,
}

/// A snapshot of a controller's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CongestionState {
    /// The algorithm ([`CongestionController::name`]).
    pub algorithm: &'static str,
    /// What it is doing.
    pub phase: Phase,
    /// Congestion window in bytes.
    pub window: u64,
    /// Slow-start threshold in bytes, if one was set.
    pub ssthresh: Option<u64>,
    /// Pacing rate in bytes per second, if the controller sets one.
    pub pacing_rate: Option<u64>,
    /// Estimated bottleneck bandwidth in bytes per second (model-based controllers).
    pub bandwidth: Option<u64>,
    /// The controller's minimum-RTT estimate (model-based controllers).
    pub min_rtt: Option<Duration>,
}

/// A congestion controller: told what was sent, acknowledged and lost; says how much may be in
/// flight and how fast to send it. Object-safe: the connection holds a
/// `Box<dyn CongestionController>`.
pub trait CongestionController: Send + core::fmt::Debug {
    /// A congestion-controlled packet was sent.
    fn on_packet_sent(&mut self, ev: &SentEvent);
    /// An ACK frame newly acknowledged in-flight packets.
    fn on_packets_acked(&mut self, ev: &AckEvent<'_>);
    /// In-flight packets were declared lost.
    fn on_packets_lost(&mut self, ev: &LossEvent);
    /// The congestion window in bytes.
    fn window(&self) -> u64;
    /// The pacing rate in bytes per second, or `None` to let the pacer derive one from the window
    /// and the smoothed RTT.
    fn pacing_rate(&self) -> Option<u64>;
    /// The maximum datagram size changed (path MTU discovery).
    fn set_max_datagram_size(&mut self, size: u64);
    /// The algorithm's name.
    fn name(&self) -> &'static str;
    /// A snapshot for statistics.
    fn state(&self) -> CongestionState;
}

/// Which congestion controller a connection runs, with its settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CongestionControl {
    /// NewReno (RFC 9002 §7): halves on loss, one packet per window per round trip.
    NewReno,
    /// CUBIC (RFC 9438): loss-based, TCP-friendly, fast on long fat paths.
    Cubic(CubicConfig),
    /// BBR: model-based (bottleneck bandwidth and minimum RTT), paced, tolerant of random loss.
    /// The default.
    Bbr(BbrConfig),
}

impl Default for CongestionControl {
    /// BBR: the transport is built for lossy mobile paths, where a loss-based controller reads
    /// every radio loss as congestion (CUBIC keeps 3 Mbit/s of a 100 Mbit/s, 20 ms path at 5%
    /// random loss; BBR keeps over 90%: `jsp-bench --scenario loss`). BBR still backs off on loss
    /// that comes with a queue, or that is heavy (see [`Bbr`]). CUBIC stays available for paths
    /// shared with TCP on deep buffers, where it is the fairer neighbour.
    fn default() -> Self {
        Self::Bbr(BbrConfig::default())
    }
}

impl CongestionControl {
    /// Builds a controller for datagrams of `max_datagram_size` bytes, starting at `now`.
    pub fn build(self, max_datagram_size: u64, now: Instant) -> Box<dyn CongestionController> {
        match self {
            Self::NewReno => Box::new(NewReno::new(max_datagram_size)),
            Self::Cubic(c) => Box::new(Cubic::new(c, max_datagram_size)),
            Self::Bbr(c) => Box::new(Bbr::new(c, max_datagram_size, now)),
        }
    }
}

/// Slow-start pacing gain of the window-based controllers (Linux's `tcp_pacing_ss_ratio`), in
/// 1/1000: the window doubles each round trip, so the sender must be able to.
const SLOW_START_PACING_PERMILLE: u64 = 2000;
/// Congestion-avoidance pacing gain of the window-based controllers, in 1/1000.
const AVOIDANCE_PACING_PERMILLE: u64 = 1250;

/// Pacing rate for a window-based controller: `gain * window / srtt`, or `None` before an RTT
/// sample.
fn window_pacing_rate(window: u64, srtt: Option<Duration>, slow_start: bool) -> Option<u64> {
    let srtt = srtt?.as_nanos().max(1);
    let gain = if slow_start {
        SLOW_START_PACING_PERMILLE
    } else {
        AVOIDANCE_PACING_PERMILLE
    };
    let r = u128::from(window) * u128::from(gain) * 1_000_000 / srtt;
    Some(u64::try_from(r).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factory_builds_each_controller() {
        let now = Instant::from_nanos(5);
        for (cc, name) in [
            (CongestionControl::NewReno, "newreno"),
            (CongestionControl::Cubic(CubicConfig::default()), "cubic"),
            (CongestionControl::Bbr(BbrConfig::default()), "bbr"),
        ] {
            let c = cc.build(1200, now);
            assert_eq!(c.name(), name);
            assert_eq!(c.window(), INITIAL_WINDOW_PACKETS * 1200);
            assert_eq!(c.state().algorithm, name);
            assert_eq!(c.state().window, c.window());
        }
        assert_eq!(
            CongestionControl::default(),
            CongestionControl::Bbr(BbrConfig::default())
        );
    }
}
