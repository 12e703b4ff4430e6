//! The shortest path to a connection, in the shape of the original JetStreamProto README:
//! [`Connection::connect`] and [`Connection::connect_with_config`] resolve a `host:port`, bind
//! their own client endpoint and complete the handshake; [`Connection::send_on_stream`] sends
//! one message on a fresh stream and [`Connection::recv_message`] receives one. Everything else
//! (several connections per socket, fallback carriages, reconnect) is in [`Endpoint`] and
//! [`crate::reconnect`].

use std::net::SocketAddr;

use jsp_proto::{StreamId, TrustPolicy};
use tokio::io::AsyncWriteExt;

use crate::{Connection, ConnectionConfig, Endpoint, Error};

/// Resolves `server` (`host:port` or an address) to its first address.
async fn resolve(server: &str) -> Result<SocketAddr, Error> {
    let mut addrs = tokio::net::lookup_host(server).await?;
    addrs.next().ok_or_else(|| {
        Error::Io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{server} resolves to no address"),
        ))
    })
}

impl Connection {
    /// Connects to `server` (`host:port`) over UDP with the default [`ConnectionConfig`],
    /// trusting the server key(s) of `trust`, from a client endpoint of its own.
    ///
    /// # Errors
    /// [`Error::Io`] if the name does not resolve or no socket can be bound,
    /// [`Error::Connection`] if the handshake fails (an untrusted key, a timeout).
    pub async fn connect(server: &str, trust: TrustPolicy) -> Result<Connection, Error> {
        Self::connect_with_config(server, ConnectionConfig::default(), trust).await
    }

    /// [`Connection::connect`] with explicit settings (timeouts, heartbeats, streams ...).
    ///
    /// # Errors
    /// As [`Connection::connect`], and [`Error::Settings`] if `trust` is empty.
    pub async fn connect_with_config(
        server: &str,
        config: ConnectionConfig,
        trust: TrustPolicy,
    ) -> Result<Connection, Error> {
        let addr = resolve(server).await?;
        let local: SocketAddr = if addr.is_ipv4() {
            SocketAddr::from(([0, 0, 0, 0], 0))
        } else {
            SocketAddr::from(([0u16; 8], 0))
        };
        let endpoint = Endpoint::client(local)?;
        let client = config.client(trust)?;
        // The connection keeps the endpoint's driver alive after this handle is gone.
        endpoint.connect(addr, client).await
    }

    /// Sends `data` as one message on a new unidirectional stream and finishes it; returns the
    /// stream's ID. The peer reads it whole with [`Connection::recv_message`].
    ///
    /// # Errors
    /// [`Error::Connection`] if the connection ended, [`Error::Io`] if the peer stopped the stream.
    pub async fn send_on_stream(&self, data: &[u8]) -> Result<StreamId, Error> {
        let mut stream = self.open_uni().await?;
        stream.write_all(data).await?;
        stream.finish()?;
        Ok(stream.id())
    }

    /// Receives the next message the peer sent with [`Connection::send_on_stream`] (a whole
    /// unidirectional stream), refusing one longer than `limit` bytes.
    ///
    /// # Errors
    /// [`Error::Connection`] once the connection ended, [`Error::Io`] for a message over `limit`
    /// or one the peer reset.
    pub async fn recv_message(&self, limit: usize) -> Result<(StreamId, Vec<u8>), Error> {
        let mut stream = self.accept_uni().await?;
        let data = stream.read_all(limit).await?;
        Ok((stream.id(), data))
    }
}
