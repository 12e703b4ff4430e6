//! JetStreamProto protocol engine (sans-IO).
//!
//! This crate owns the protocol: the wire codec, the hybrid post-quantum handshake, packet
//! protection, and the connection and endpoint state machines. It owns no sockets, no threads and
//! no clock: a driver feeds it datagrams and the current [`time::Instant`] and asks it what to send
//! and when to wake it. docs/PROTOCOL.md is the normative specification; code cites its sections.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod time;
pub mod crypto;
pub mod identity;
pub mod wire;
pub mod error;
pub mod range_set;
pub mod recovery;
