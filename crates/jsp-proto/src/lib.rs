//! JetStreamProto protocol engine (sans-IO).
//!
//! This crate owns the protocol: the wire codec, the hybrid post-quantum handshake, packet
//! protection, and the connection and endpoint state machines. It owns no sockets, no threads and
//! no clock: a driver feeds it datagrams and the current [`time::Instant`] and asks it what to send
//! and when to wake it. docs/PROTOCOL.md is the normative specification; code cites its sections.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod activity;
pub mod compression;
pub mod config;
pub mod connection;
pub mod crypto;
pub mod endpoint;
pub mod error;
pub mod fec;
pub mod handshake;
pub mod identity;
pub mod range_set;
pub mod recovery;
pub mod time;
pub mod wire;

pub use config::{
    ClientAuth, ClientConfig, EndpointConfig, FecConfig, FecMode, RetryPolicy, ServerConfig,
    TransportConfig, TrustPolicy,
};
pub use connection::{
    Connection, ConnectionStats, DatagramError, Dir, Event, StreamApiError, StreamId, Transmit,
};
pub use endpoint::{
    Admission, AdmissionControl, ConnectionHandle, Endpoint, EndpointEvent, Output,
};
pub use error::{CloseReason, ConnectionError, ErrorCode, HandshakeError};
pub use handshake::ticket::SessionTicket;
pub use time::{Instant, UnixTime};
pub use wire::header::VERSION_1;

/// Which end of a connection this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The side that initiated the connection.
    Client,
    /// The side that accepted it.
    Server,
}
