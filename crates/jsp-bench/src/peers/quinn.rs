//! The quinn peer: quinn 0.11 over rustls 0.23 with the aws-lc-rs provider,
//! TLS 1.3 and `X25519MLKEM768` (see [`super::tls_cert`]), a self-signed
//! `localhost` certificate, session resumption with 0-RTT.
//!
//! Settings that differ from quinn's defaults, and why:
//! - Server: [`MAX_CONCURRENT_BIDI_STREAMS`] is set explicitly to the
//!   default, 100 (the many-streams scenario keeps 50 in flight).
//! - Both sides: idle timeout [`IDLE_TIMEOUT`] (default 30 s) and a
//!   keep-alive every [`KEEP_ALIVE_INTERVAL`] (default none), so idle
//!   connections survive minute-long scenarios.
//! - Server: `max_early_data_size = u32::MAX` (0-RTT accepted), and every
//!   incoming connection is turned into a 0.5-RTT connection at once
//!   (`Connecting::into_0rtt`), so requests arriving as 0-RTT data are
//!   answered before the handshake completes.
//! - Client: `enable_early_data` on resumption; one endpoint (one UDP
//!   socket) for all connections.
//!
//! The server keeps rustls' stateful session cache (256 sessions, two
//! tickets per handshake): rustls accepts 0-RTT only with stateful tickets.
//!
//! Datagrams use quinn's defaults (enabled, 1.25 MB receive and 1 MiB send
//! buffers); flow-control windows are quinn's defaults too.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{
    Connection, Endpoint, RecvStream, SendStream, TransportConfig, VarInt, ZeroRttAccepted,
};

use super::tcp::serve_stream;
use super::tls_cert::{ClientConfigs, ServerCert, SERVER_NAME};
use super::{client_bind_addr, BenchClient, BenchConn, BenchServer, ServeOptions, ServerInfo};

/// The number of concurrent client-opened bidirectional streams the server
/// allows per connection: quinn's default, 100. (quinn sets up a slot per
/// allowed stream on every connection: at 1,024 an idle connection cost
/// about 120 KB of server memory and handshakes slowed, which would not be
/// quinn at its best.)
pub const MAX_CONCURRENT_BIDI_STREAMS: u32 = 100;

/// How long a connection may stay silent before it is dropped.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// How often an otherwise idle connection sends a keep-alive.
pub const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// The transport configuration: quinn's defaults plus the idle timeout
/// and keep-alive, and, for the server, the stream limit.
fn transport(server: bool) -> anyhow::Result<Arc<TransportConfig>> {
    let mut transport = TransportConfig::default();
    transport
        .max_idle_timeout(Some(
            IDLE_TIMEOUT
                .try_into()
                .context("idle timeout out of range")?,
        ))
        .keep_alive_interval(Some(KEEP_ALIVE_INTERVAL));
    if server {
        transport.max_concurrent_bidi_streams(VarInt::from_u32(MAX_CONCURRENT_BIDI_STREAMS));
    }
    Ok(Arc::new(transport))
}

/// The quinn server: one endpoint on `opts.bind` (127.0.0.1), a task per connection, a
/// task per stream and one datagram echo task per connection.
pub struct QuinnServer;

impl BenchServer for QuinnServer {
    async fn start(opts: &ServeOptions) -> anyhow::Result<ServerInfo> {
        let cert = ServerCert::generate()?;
        let mut tls = cert.server_config()?;
        // QUIC allows only 0 or u32::MAX; the latter enables 0-RTT.
        tls.max_early_data_size = u32::MAX;
        let crypto = QuicServerConfig::try_from(tls).context("QUIC server TLS config")?;
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        config.transport_config(transport(true)?);
        let endpoint = Endpoint::server(config, opts.bind_addr())
            .context("binding the quinn server endpoint")?;
        let addr = endpoint.local_addr().context("server endpoint address")?;
        tokio::spawn(accept_loop(endpoint));
        Ok(ServerInfo {
            addr,
            trust: cert.trust(),
        })
    }
}

/// Accepts connections until the endpoint closes, serving each on its own
/// task from the moment it arrives (0.5-RTT).
async fn accept_loop(endpoint: Endpoint) {
    while let Some(incoming) = endpoint.accept().await {
        let Ok(connecting) = incoming.accept() else {
            continue;
        };
        match connecting.into_0rtt() {
            Ok((conn, _)) => {
                tokio::spawn(serve_connection(conn));
            }
            // Never taken: a server-side `into_0rtt` always succeeds.
            Err(connecting) => {
                tokio::spawn(async move {
                    if let Ok(conn) = connecting.await {
                        serve_connection(conn).await;
                    }
                });
            }
        }
    }
}

/// Serves one connection: echoes its datagrams on a separate task and
/// serves each bidirectional stream on its own task, until it closes.
async fn serve_connection(conn: Connection) {
    let datagrams = conn.clone();
    tokio::spawn(async move {
        while let Ok(datagram) = datagrams.read_datagram().await {
            if datagrams.send_datagram(datagram).is_err() {
                break;
            }
        }
    });
    while let Ok((send, recv)) = conn.accept_bi().await {
        tokio::spawn(serve_stream(tokio::io::join(recv, send)));
    }
}

/// The quinn client: one endpoint (one UDP socket) for all connections,
/// trusting exactly the server's certificate, with one session store.
pub struct QuinnClient {
    /// The client endpoint all connections share.
    endpoint: Endpoint,
    /// The server's UDP address.
    addr: SocketAddr,
    /// Full handshakes (stores tickets, never offers one).
    full: quinn::ClientConfig,
    /// Resumed handshakes with 0-RTT.
    resume: quinn::ClientConfig,
}

impl BenchClient for QuinnClient {
    type Conn = QuinnConn;

    async fn new(server: &ServerInfo) -> anyhow::Result<Self> {
        let configs = ClientConfigs::new(&server.trust, true)?;
        let transport = transport(false)?;
        let quic = |tls: Arc<rustls::ClientConfig>| -> anyhow::Result<quinn::ClientConfig> {
            let crypto = QuicClientConfig::try_from(tls).context("QUIC client TLS config")?;
            let mut config = quinn::ClientConfig::new(Arc::new(crypto));
            config.transport_config(Arc::clone(&transport));
            Ok(config)
        };
        let endpoint = Endpoint::client(client_bind_addr(server.addr))
            .context("binding the quinn client endpoint")?;
        Ok(Self {
            endpoint,
            addr: server.addr,
            full: quic(configs.full)?,
            resume: quic(configs.resume)?,
        })
    }

    async fn connect(&self) -> anyhow::Result<QuinnConn> {
        let conn = self
            .endpoint
            .connect_with(self.full.clone(), self.addr, SERVER_NAME)
            .context("starting a quinn connection")?
            .await
            .context("quinn handshake")?;
        Ok(QuinnConn::new(conn, None))
    }

    /// Resumes with a stored ticket: returns at once with a 0-RTT
    /// connection when the ticket allows early data, otherwise after the
    /// (resumed, or full if there is no ticket) handshake.
    ///
    /// Each resumption uses up one ticket (the store keeps at most 8). The
    /// server sends new ones (two) only once the handshake completes, after
    /// its 0.5-RTT answers: a 0-RTT connection closed right after its first
    /// exchange may leave no ticket behind, and a later resumption falls
    /// back to a full handshake ([`QuinnConn::is_0rtt`] tells).
    async fn connect_resumed(&self) -> anyhow::Result<Option<QuinnConn>> {
        let connecting = self
            .endpoint
            .connect_with(self.resume.clone(), self.addr, SERVER_NAME)
            .context("starting a quinn connection")?;
        let conn = match connecting.into_0rtt() {
            Ok((conn, accepted)) => QuinnConn::new(conn, Some(accepted)),
            Err(connecting) => QuinnConn::new(connecting.await.context("quinn handshake")?, None),
        };
        Ok(Some(conn))
    }
}

/// One quinn connection.
pub struct QuinnConn {
    /// The connection.
    conn: Connection,
    /// Whether the connection was returned before its handshake completed,
    /// sending 0-RTT data.
    zero_rtt: bool,
    /// Resolves once the handshake completes, to whether the server
    /// accepted the 0-RTT data; taken by
    /// [`QuinnConn::zero_rtt_accepted`].
    accepted: Mutex<Option<ZeroRttAccepted>>,
}

impl QuinnConn {
    /// Wraps a connection; `accepted` is set for 0-RTT connections.
    fn new(conn: Connection, accepted: Option<ZeroRttAccepted>) -> Self {
        Self {
            conn,
            zero_rtt: accepted.is_some(),
            accepted: Mutex::new(accepted),
        }
    }

    /// The underlying quinn connection.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Whether this connection was opened with 0-RTT (returned before its
    /// handshake completed).
    pub fn is_0rtt(&self) -> bool {
        self.zero_rtt
    }

    /// For a 0-RTT connection, waits for the handshake and returns whether
    /// the server accepted the early data (which implies the session was
    /// resumed). `None` for other connections, or if already asked.
    pub async fn zero_rtt_accepted(&self) -> Option<bool> {
        let accepted = self.accepted.lock().ok()?.take()?;
        Some(accepted.await)
    }
}

impl BenchConn for QuinnConn {
    type Send = SendStream;
    type Recv = RecvStream;

    const MULTIPLEXED: bool = true;
    const DATAGRAMS: bool = true;
    const STREAMS: bool = true;

    async fn open_bi(&self) -> anyhow::Result<(SendStream, RecvStream)> {
        self.conn.open_bi().await.context("opening a quinn stream")
    }

    fn send_datagram(&self, data: Bytes) -> anyhow::Result<()> {
        self.conn
            .send_datagram(data)
            .context("sending a quinn datagram")
    }

    async fn recv_datagram(&self) -> anyhow::Result<Bytes> {
        self.conn
            .read_datagram()
            .await
            .context("receiving a quinn datagram")
    }

    fn close(&self) {
        self.conn.close(0u32.into(), b"");
    }

    fn resumed(&self) -> Option<bool> {
        // A connection returned before its handshake completed resumed a
        // session (0-RTT needs a ticket).
        Some(self.is_0rtt())
    }
}
