//! The JetStreamProto peer: a server on one [`jsp::Endpoint`] ([`JspServer`])
//! or on a [`jsp::ServerPool`] with one SO_REUSEPORT socket per worker
//! ([`JspPoolServer`]), and a client ([`JspClient`]) that opens every
//! connection from one client endpoint (one UDP socket). Both sides use the
//! library's defaults (GSO/GRO batching, CUBIC, AES-256-GCM first,
//! X25519MLKEM768) except where a benchmark scenario needs more room; every
//! such setting is a named constant below. The server answers the
//! [`CMD_SINK`]/[`CMD_ECHO`] stream contract and echoes datagrams.
//!
//! Session tickets are single-use (the server's anti-replay store refuses a
//! ticket's second use, which then falls back to a full handshake), so the
//! client keeps the unused tickets its connections received and
//! [`JspClient::connect_resumed`](super::BenchClient::connect_resumed)
//! consumes one per connection; every connection, resumed or not, leaves a
//! new one.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use jsp::{
    ClientConfig, CloseReason, Connection, Endpoint, RecvStream, SendStream, ServerConfig,
    ServerPool, SessionTicket, TransportConfig, TrustPolicy,
};
use jsp_proto::crypto::default_provider;
use jsp_proto::identity::{Fingerprint, Identity};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

use super::{
    client_bind_addr, progress_due, BenchClient, BenchConn, BenchServer, ServeOptions, ServerInfo,
    CMD_ECHO, CMD_SINK, CMD_SINK_PROGRESS,
};
use crate::latency::now;

/// Most live connections per server endpoint (per worker for the pool):
/// room for the idle-connection scenario (10,000+) and the handshake-rate
/// scenario. Default: 100,000.
pub const MAX_CONNECTIONS: usize = 200_000;

/// Most handshakes in flight per server endpoint (per worker for the pool),
/// so that the handshake-rate scenario is never refused with SERVER_BUSY.
/// Default: 1,024.
pub const MAX_HANDSHAKES: usize = 200_000;

/// Concurrent streams a client may open on one connection: the default,
/// 100, the same limit the quinn peer gets.
pub const MAX_CONCURRENT_STREAMS: u64 = 100;

/// Idle timeout on both sides (negotiated down to the smaller value, so the
/// client sets it too): idle connections outlive a minute-long scenario.
/// Default: 30 s.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// Heartbeat interval on both sides: a quiet connection sends a PING this
/// often, which keeps idle connections alive; longer than the default so
/// that 100,000 idle connections cost the server fewer packets. Default: 5 s.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(15);

/// Heartbeat intervals without hearing from the peer before a connection
/// ends (60 s at [`HEARTBEAT_INTERVAL`], so a busy machine does not drop idle
/// connections). Default: 3.
pub const HEARTBEAT_TIMEOUT_COUNT: u32 = 4;

/// Tickets the server's anti-replay store remembers: a resumption whose
/// ticket cannot be recorded falls back to a full handshake, so this bounds
/// resumptions per [`TICKET_LIFETIME`]. Default: 100,000.
pub const ANTI_REPLAY_CAPACITY: usize = 1_000_000;

/// How long a session ticket stays valid (and in the anti-replay store).
/// The client uses its tickets within seconds. Default: 24 h.
pub const TICKET_LIFETIME: Duration = Duration::from_secs(3600);

/// Bytes read per call by the server's stream tasks (one buffer per stream,
/// reused for every read).
const STREAM_BUFFER: usize = 64 * 1024;

/// How long `connect_resumed` waits for a ticket still on its way (a closing
/// connection's) when it has none.
const TICKET_WAIT: Duration = Duration::from_secs(15);

/// How long `close` postpones closing a connection whose session ticket has
/// not arrived yet, so that the ticket can resume a later connection.
const CLOSE_TICKET_WAIT: Duration = Duration::from_secs(2);

/// Unused session tickets kept by a client (the newest are kept).
const MAX_TICKETS: usize = 1024;

/// The transport settings both sides use: the defaults plus the idle
/// timeout, heartbeats and stream limit above.
pub(crate) fn transport() -> TransportConfig {
    TransportConfig {
        idle_timeout: IDLE_TIMEOUT,
        heartbeat_interval: HEARTBEAT_INTERVAL,
        heartbeat_timeout_count: HEARTBEAT_TIMEOUT_COUNT,
        max_streams: MAX_CONCURRENT_STREAMS,
        ..TransportConfig::default()
    }
}

/// A server configuration with a freshly generated identity, and the
/// identity's fingerprint (what a client pins).
///
/// Non-default settings: [`MAX_CONNECTIONS`], [`MAX_HANDSHAKES`],
/// [`ANTI_REPLAY_CAPACITY`], [`TICKET_LIFETIME`] and [`transport`]. Retry
/// stays off (the default), and no rate limit or circuit breaker is installed
/// (a bare `Endpoint` or `ServerPool` has none unless asked).
fn server_config() -> anyhow::Result<(ServerConfig, Fingerprint)> {
    server_config_with(transport())
}

/// [`server_config`] with the given transport settings.
pub(crate) fn server_config_with(
    transport: TransportConfig,
) -> anyhow::Result<(ServerConfig, Fingerprint)> {
    let identity = Identity::generate(default_provider().as_ref())
        .context("generating the server identity")?;
    let fingerprint = identity.fingerprint();
    let mut config = ServerConfig::new(identity);
    config.transport = transport;
    config.max_connections = MAX_CONNECTIONS;
    config.max_handshakes = MAX_HANDSHAKES;
    config.retry = jsp_proto::config::RetryPolicy::Never;
    config.anti_replay_capacity = ANTI_REPLAY_CAPACITY;
    config.ticket_lifetime = TICKET_LIFETIME;
    config.validate().context("server configuration")?;
    Ok((config, fingerprint))
}

/// Serves one accepted connection: once its handshake completed (the
/// server cannot write before that, so 0-RTT streams wait here), echoes its
/// datagrams on one task and serves each bidirectional stream on its own.
fn serve_connection(conn: Connection) {
    tokio::spawn(async move {
        if conn.established().await.is_err() {
            return;
        }
        let datagrams = conn.clone();
        tokio::spawn(async move {
            // The library hands each datagram over as its own `Vec`.
            while let Ok(d) = datagrams.read_datagram().await {
                // Like quinn, drop the oldest queued datagram rather than the
                // new one when the send queue is full.
                let _ = datagrams.send_datagram_drop_oldest(&d);
            }
        });
        while let Ok((send, recv)) = conn.accept_bi().await {
            tokio::spawn(async move {
                // A stream the client abandoned is no error of the server.
                let _ = serve_stream(send, recv).await;
            });
        }
    });
}

/// Serves one stream per the [`CMD_SINK`]/[`CMD_ECHO`] contract.
async fn serve_stream(mut send: SendStream, mut recv: RecvStream) -> std::io::Result<()> {
    let cmd = recv.read_u8().await?;
    // One initialized buffer per stream, reused for every read (an
    // uninitialized one would be zeroed again by every read).
    let mut buf = vec![0u8; STREAM_BUFFER];
    match cmd {
        CMD_SINK => {
            let mut total = 0u64;
            loop {
                let n = recv.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
            send.write_all(&total.to_le_bytes()).await?;
        }
        CMD_ECHO => {
            // Echoes carry request/response and real-time messages: answer in the real-time
            // class (FEC protects it once loss is measured; alone on its connection, the class
            // changes no scheduling).
            let media =
                jsp_proto::connection::StreamPriority::new(jsp_proto::connection::QosClass::Media);
            send.set_priority(media).map_err(std::io::Error::other)?;
            loop {
                let n = recv.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                send.write_all(&buf[..n]).await?;
            }
        }
        CMD_SINK_PROGRESS => {
            let mut total = 0u64;
            let mut reported = None;
            loop {
                let n = recv.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                total += n as u64;
                let t = now();
                if progress_due(reported, t) {
                    send.write_all(&total.to_le_bytes()).await?;
                    reported = Some(t);
                }
            }
            send.write_all(&total.to_le_bytes()).await?;
        }
        other => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("unknown command byte {other:#04x}"),
            ))
        }
    }
    send.shutdown().await
}

/// JetStreamProto server on one endpoint: one UDP socket, one driver task.
pub struct JspServer;

impl BenchServer for JspServer {
    async fn start(opts: &ServeOptions) -> anyhow::Result<ServerInfo> {
        start_endpoint(opts, server_config()?).await
    }
}

/// The largest UDP payload of [`Jsp1452Server`]: quinn's default upper
/// bound for path MTU discovery (jsp's default is 8952).
pub const LIKE_QUINN_MAX_UDP_PAYLOAD: u16 = 1452;

/// [`JspServer`] with path MTU discovery capped at 1452 bytes, as quinn's
/// default caps it: packet size for packet size with quinn. The server's
/// advertised `max_udp_payload_size` caps the client's packets too.
pub struct Jsp1452Server;

impl BenchServer for Jsp1452Server {
    async fn start(opts: &ServeOptions) -> anyhow::Result<ServerInfo> {
        let transport = TransportConfig {
            max_udp_payload_size: LIKE_QUINN_MAX_UDP_PAYLOAD,
            ..transport()
        };
        start_endpoint(opts, server_config_with(transport)?).await
    }
}

/// Binds one endpoint with `config` on `opts.bind` and serves it.
pub(crate) async fn start_endpoint(
    opts: &ServeOptions,
    (config, fingerprint): (ServerConfig, Fingerprint),
) -> anyhow::Result<ServerInfo> {
    {
        let endpoint =
            Endpoint::server(opts.bind_addr(), config).context("binding the jsp server")?;
        let addr = endpoint.local_addr();
        tokio::spawn(async move {
            while let Some(conn) = endpoint.accept().await {
                serve_connection(conn);
            }
        });
        Ok(ServerInfo {
            addr,
            trust: fingerprint.to_string(),
        })
    }
}

/// JetStreamProto server on a [`ServerPool`]: `opts.workers` endpoints (0:
/// one per core) on one port with SO_REUSEPORT, each with its own socket,
/// engine and driver task; connection IDs carry the worker index, so a
/// datagram the kernel hands to the wrong worker is steered to its owner.
/// The limits above apply to each worker.
pub struct JspPoolServer;

impl BenchServer for JspPoolServer {
    async fn start(opts: &ServeOptions) -> anyhow::Result<ServerInfo> {
        let (config, fingerprint) = server_config()?;
        let pool = ServerPool::bind(opts.bind_addr(), config, opts.workers)
            .context("binding the jsp server pool")?;
        let addr = pool.local_addr();
        tokio::spawn(async move {
            while let Some(conn) = pool.accept().await {
                serve_connection(conn);
            }
        });
        Ok(ServerInfo {
            addr,
            trust: fingerprint.to_string(),
        })
    }
}

/// The unused session tickets of a client, newest last.
#[derive(Default)]
struct Tickets {
    unused: Mutex<VecDeque<SessionTicket>>,
    /// Closing connections whose ticket has not arrived yet (and may still).
    pending: AtomicUsize,
    /// Woken when a ticket was stored or a pending one will not come.
    changed: Notify,
}

impl Tickets {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<SessionTicket>> {
        // A deque of tickets cannot be left half-updated by a panic.
        self.unused.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps `ticket` (the newest [`MAX_TICKETS`] are kept).
    fn store(&self, ticket: SessionTicket) {
        let mut unused = self.lock();
        if unused.len() >= MAX_TICKETS {
            unused.pop_front();
        }
        unused.push_back(ticket);
    }

    /// Keeps the ticket of `conn`, which is closing, then closes it: at once if the ticket has
    /// arrived, otherwise on a task that waits for it (at most [`CLOSE_TICKET_WAIT`]) first.
    ///
    /// Tickets are collected when a connection closes, after the measured part of every
    /// scenario, so that the bookkeeping adds no task and no cross-thread wake-up to a measured
    /// connect (quinn's client keeps its tickets inside rustls, on the driver's path).
    fn harvest_and_close(self: &Arc<Self>, conn: &Connection) {
        if let Some(t) = conn.session_ticket() {
            self.store(t);
            conn.close(CloseReason::Normal, None);
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            conn.close(CloseReason::Normal, None);
            return;
        };
        self.pending.fetch_add(1, Ordering::AcqRel);
        let (tickets, conn) = (self.clone(), conn.clone());
        handle.spawn(async move {
            if let Ok(Ok(t)) =
                tokio::time::timeout(CLOSE_TICKET_WAIT, conn.wait_session_ticket()).await
            {
                tickets.store(t);
            }
            conn.close(CloseReason::Normal, None);
            tickets.pending.fetch_sub(1, Ordering::AcqRel);
            tickets.changed.notify_waiters();
        });
    }

    /// The newest unused ticket, waiting (at most [`TICKET_WAIT`]) for one on
    /// its way if there is none; `None` if no ticket is left or coming.
    async fn take(&self) -> Option<SessionTicket> {
        let wait = async {
            loop {
                let changed = self.changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                if let Some(t) = self.lock().pop_back() {
                    return Some(t);
                }
                if self.pending.load(Ordering::Acquire) == 0 {
                    return None;
                }
                changed.await;
            }
        };
        tokio::time::timeout(TICKET_WAIT, wait).await.ok().flatten()
    }
}

/// JetStreamProto client: one client endpoint (one UDP socket) for all
/// connections, pinning the server's fingerprint, with the transport
/// settings of the server (idle timeout, heartbeats) and 0-RTT on (the
/// default).
pub struct JspClient {
    endpoint: Endpoint,
    server: SocketAddr,
    config: Arc<ClientConfig>,
    tickets: Arc<Tickets>,
}

impl BenchClient for JspClient {
    type Conn = JspConn;

    async fn new(server: &ServerInfo) -> anyhow::Result<Self> {
        Self::with_transport(server, transport())
    }

    async fn connect(&self) -> anyhow::Result<JspConn> {
        let conn = self
            .endpoint
            .connect(self.server, self.config.clone())
            .await
            .context("jsp connect")?;
        Ok(JspConn {
            conn,
            tickets: self.tickets.clone(),
        })
    }

    /// Resumes with the newest unused ticket (waiting for one still on its
    /// way if there is none); returns as soon as the connection can carry
    /// data, which for a ticket allowing early data is at once: what is
    /// written before the handshake completes goes out as 0-RTT.
    ///
    /// # Errors
    /// If no unused ticket is left or coming: each connection leaves one,
    /// each resumption consumes one.
    async fn connect_resumed(&self) -> anyhow::Result<Option<JspConn>> {
        let ticket = self.tickets.take().await.context(
            "no unused jsp session ticket (each ticket resumes one connection; connect first)",
        )?;
        let conn = self
            .endpoint
            .connect_resuming(self.server, self.config.clone(), Some(&ticket))
            .await
            .context("jsp resumed connect")?;
        Ok(Some(JspConn {
            conn,
            tickets: self.tickets.clone(),
        }))
    }
}

impl JspClient {
    /// A client for `server` with the given transport settings (the
    /// `jsp-nofec` client differs from this one only there).
    pub(crate) fn with_transport(
        server: &ServerInfo,
        transport: TransportConfig,
    ) -> anyhow::Result<Self> {
        let fingerprint: Fingerprint = server
            .trust
            .parse()
            .with_context(|| format!("server fingerprint {:?}", server.trust))?;
        let mut config = ClientConfig::new(TrustPolicy::pinned(fingerprint));
        config.transport = transport;
        config.validate().context("client configuration")?;
        let endpoint =
            Endpoint::client(client_bind_addr(server.addr)).context("binding the jsp client")?;
        Ok(Self {
            endpoint,
            server: server.addr,
            config: Arc::new(config),
            tickets: Arc::default(),
        })
    }
}

/// One JetStreamProto connection of [`JspClient`].
pub struct JspConn {
    conn: Connection,
    /// Where [`BenchConn::close`] keeps the connection's session ticket.
    tickets: Arc<Tickets>,
}

impl JspConn {
    /// The library connection (to read its handshake summary or stats).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

impl BenchConn for JspConn {
    /// `shutdown()` finishes the stream (`SendStream::finish`).
    type Send = SendStream;
    type Recv = RecvStream;

    const MULTIPLEXED: bool = true;
    const DATAGRAMS: bool = true;
    const STREAMS: bool = true;

    async fn open_bi(&self) -> anyhow::Result<(SendStream, RecvStream)> {
        self.conn.open_bi().await.context("jsp open_bi")
    }

    async fn open_realtime_bi(&self) -> anyhow::Result<(SendStream, RecvStream)> {
        let media =
            jsp_proto::connection::StreamPriority::new(jsp_proto::connection::QosClass::Media);
        let (send, recv) = self
            .conn
            .open_with_priority(jsp::Dir::Bi, media)
            .await
            .context("jsp open_with_priority")?;
        let recv = recv.context("a bidirectional stream has a receiving half")?;
        Ok((send, recv))
    }

    /// Queues the datagram; when the send queue is full the oldest queued
    /// datagram is dropped (quinn's behaviour), not this one.
    fn send_datagram(&self, data: Bytes) -> anyhow::Result<()> {
        self.conn
            .send_datagram_drop_oldest(&data)
            .context("jsp send_datagram")
    }

    async fn recv_datagram(&self) -> anyhow::Result<Bytes> {
        let d = self
            .conn
            .read_datagram()
            .await
            .context("jsp read_datagram")?;
        Ok(Bytes::from(d))
    }

    /// Closes gracefully with `CloseReason::Normal` (what was written is
    /// delivered first), keeping the connection's session ticket for a later
    /// `connect_resumed`. If the ticket has not arrived yet, the close waits
    /// for it (at most 2 s).
    fn close(&self) {
        self.tickets.harvest_and_close(&self.conn);
    }

    fn resumed(&self) -> Option<bool> {
        self.connection().handshake_summary().map(|s| s.resumed)
    }

    fn diagnostics(&self) -> Option<String> {
        let s = self.connection().stats();
        Some(format!(
            "{} {:?} ssthresh {:?} bw {:?} pacing {:?} cwnd {} in_flight {} rtt {:?} mtu {} sent {} lost {} fc-blocked {} fec {:?}/{} repair",
            s.congestion,
            s.congestion_phase,
            s.ssthresh,
            s.bandwidth.map(|b| b * 8 / 1_000_000),
            s.pacing_rate.map(|b| b * 8 / 1_000_000),
            s.cwnd,
            s.bytes_in_flight,
            s.rtt,
            s.mtu,
            s.packets_sent,
            s.packets_lost,
            s.flow_control_blocked,
            s.fec_shape,
            s.fec_repair_sent
        ))
    }
}
