//! Errors of the async library: socket and configuration failures, and the engine's typed
//! connection errors passed through unchanged.

use std::io;

use jsp_proto::{ConnectionError, DatagramError};

/// What can go wrong when setting up or using an endpoint or connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The socket could not be bound or failed.
    #[error("socket error: {0}")]
    Io(#[from] io::Error),
    /// The configuration was rejected.
    #[error("invalid configuration: {0}")]
    Config(#[from] jsp_proto::error::ConfigError),
    /// The connection failed or ended (handshake failure, timeout, closed by the peer ...).
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    /// A datagram could not be sent.
    #[error(transparent)]
    Datagram(#[from] DatagramError),
    /// The peer asked us to stop sending on the stream (STOP_SENDING) with this application
    /// code: what was not yet acknowledged will not be delivered.
    #[error("the peer stopped the stream (code {0})")]
    StreamStopped(u64),
    /// We reset the stream: what was not yet acknowledged will not be delivered.
    #[error("the stream was reset")]
    StreamReset,
    /// Settings built with [`ConnectionConfig`](crate::ConnectionConfig) or
    /// [`ServerSettings`](crate::ServerSettings) were rejected.
    #[error(transparent)]
    Settings(#[from] crate::builder::SettingsError),
    /// A server address could not be bound (taken, not on this machine, privileged ...).
    #[error("cannot listen on {addr} ({carriage}): {source}")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// `"UDP"`, `"TCP"` or `"WebSocket"`.
        carriage: &'static str,
        /// What the system said.
        source: io::Error,
    },
    /// The endpoint was shut down or its driver stopped.
    #[error("the endpoint is closed{0}")]
    EndpointClosed(String),
}
