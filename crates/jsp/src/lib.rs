//! JetStreamProto async library (tokio): endpoints over UDP serving many connections, streams
//! implementing `AsyncRead`/`AsyncWrite`, unreliable datagrams, and everything around them.
//!
//! ```no_run
//! # async fn demo(server_fp: jsp_proto::identity::Fingerprint) -> Result<(), jsp::Error> {
//! use std::sync::Arc;
//! use tokio::io::AsyncWriteExt;
//! let endpoint = jsp::Endpoint::client("0.0.0.0:0".parse().unwrap())?;
//! let config = Arc::new(jsp::ClientConfig::new(jsp::TrustPolicy::pinned(server_fp)));
//! let conn = endpoint.connect("127.0.0.1:4433".parse().unwrap(), config).await?;
//! let (mut send, _recv) = conn.open_bi().await?;
//! send.write_all(b"hello").await?;
//! send.finish()?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod breaker;
mod builder;
mod carriage;
mod clock;
mod connection;
mod driver;
mod endpoint;
mod error;
mod events;
mod pool;
mod quick;
mod rate;
mod send_path;
mod server;
mod state;
mod stream;
mod udp;

pub use builder::{
    ConnectionConfig, ConnectionConfigBuilder, ServerSettings, ServerSettingsBuilder, SettingsError,
};
pub use carriage::Carriage;
pub use connection::Connection;
pub use endpoint::Endpoint;
pub use endpoint::Targets;
pub use error::Error;
pub use events::{ConnectionEvent, ConnectionEvents, EVENT_BUFFER};
pub use jsp_proto::{
    ClientConfig, CloseReason, ConnectionError, ConnectionStats, Dir, ServerConfig, SessionTicket,
    TransportConfig, TrustPolicy,
};
pub use pool::ServerPool;
pub use server::{CleanupStats, Server, ACCEPT_BACKLOG};
pub use stream::{RecvStream, SendStream};

pub mod backoff;
pub mod config_file;
pub mod framing;
pub mod limits;
pub mod reconnect;
