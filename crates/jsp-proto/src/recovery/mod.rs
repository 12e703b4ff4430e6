//! Loss recovery: received-packet tracking (duplicate/replay window and ACK ranges), the RTT
//! estimator, sent-packet bookkeeping with loss detection, and congestion control
//! (PROTOCOL.md §5.6 and §15, modelled on RFC 9002).

pub mod congestion;
pub mod mtu;
pub mod pacer;
pub mod pn_map;
pub mod rate;
pub mod received;
pub mod rtt;
pub mod sent;

pub use received::ReceivedPackets;
pub use rtt::RttEstimator;
pub use sent::{LossDetection, SentPacket};
