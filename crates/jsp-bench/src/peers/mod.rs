//! The implementations under test and the one interface every scenario
//! drives them through.
//!
//! Each implementation (JetStreamProto, quinn, TCP + TLS 1.3, plain TCP,
//! plain UDP) provides a server, started in a child process, and a client,
//! driven by the scenarios in the parent process. The server of every
//! implementation speaks the same tiny application protocol, so the
//! scenarios measure the transports and nothing else:
//!
//! - Every bidirectional stream (for TCP: every connection) starts with one
//!   command byte written by the client:
//!   - [`CMD_SINK`] (`b'S'`): the server reads to the end of the stream,
//!     then writes the number of bytes it read after the command byte as a
//!     little-endian `u64` and finishes its side.
//!   - [`CMD_ECHO`] (`b'E'`): the server writes back every byte it reads,
//!     as soon as it reads it, and finishes its side at the end of the
//!     stream.
//!   - [`CMD_SINK_PROGRESS`] (`b'P'`): like [`CMD_SINK`], but while reading
//!     the server also reports the running byte count (a little-endian
//!     `u64`) at most every [`PROGRESS_INTERVAL`], so a client can measure
//!     goodput over a time window without finishing the stream (the loss
//!     benchmarks). The last count follows the end of the stream.
//! - Every datagram the server receives is sent back unchanged.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};

pub mod jsp;
pub mod jsp_nofec;
pub mod quinn;
pub mod tcp;
pub mod tls_cert;
pub mod udp;

/// First byte of a stream: read everything, answer with the byte count.
pub const CMD_SINK: u8 = b'S';
/// First byte of a stream: echo everything back.
pub const CMD_ECHO: u8 = b'E';
/// First byte of a stream: read everything, reporting the byte count as it
/// grows (at most every [`PROGRESS_INTERVAL`]) and once more at the end.
pub const CMD_SINK_PROGRESS: u8 = b'P';

/// Shortest time between two progress reports of a [`CMD_SINK_PROGRESS`]
/// stream: fine enough to time a window of a second, coarse enough that
/// the reports add next to nothing to the return path.
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(10);

/// Whether a [`CMD_SINK_PROGRESS`] server reports `total` now, given when
/// it last reported: at least [`PROGRESS_INTERVAL`] ago (or never).
pub fn progress_due(last: Option<std::time::Instant>, now: std::time::Instant) -> bool {
    last.is_none_or(|last| now.saturating_duration_since(last) >= PROGRESS_INTERVAL)
}

/// The largest datagram payload the scenarios send (fits every
/// implementation's datagram limit on loopback).
pub const MAX_BENCH_DATAGRAM: usize = 1024;

/// Which implementation a server or client is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ImplKind {
    /// JetStreamProto over UDP, one endpoint.
    Jsp,
    /// JetStreamProto with packets capped at 1452 bytes, quinn's default
    /// path MTU bound (used by the bulk scenarios).
    #[value(name = "jsp-1452")]
    #[serde(rename = "jsp-1452")]
    Jsp1452,
    /// JetStreamProto over UDP, a `ServerPool` with one worker per core
    /// (used by the `scaling` scenario).
    JspPool,
    /// quinn 0.11 with rustls and aws-lc-rs (X25519MLKEM768).
    Quinn,
    /// TCP with rustls TLS 1.3 (X25519MLKEM768).
    TcpTls,
    /// Plain TCP, no encryption: a ceiling.
    Tcp,
    /// Plain UDP echo, no encryption: a ceiling (datagrams only).
    Udp,
    /// JetStreamProto with forward error correction off and nothing else
    /// changed (loss benchmarks only): retransmission-only recovery. See
    /// [`jsp_nofec::disable_fec`], the one place it differs from `jsp`.
    #[value(name = "jsp-nofec")]
    #[serde(rename = "jsp-nofec")]
    JspNofec,
}

impl ImplKind {
    /// The stable identifier used in the JSON output and the table.
    pub fn id(self) -> &'static str {
        match self {
            ImplKind::Jsp => "jsp",
            ImplKind::JspPool => "jsp-pool",
            ImplKind::Jsp1452 => "jsp-1452",
            ImplKind::Quinn => "quinn",
            ImplKind::TcpTls => "tcp-tls",
            ImplKind::Tcp => "tcp",
            ImplKind::Udp => "udp",
            ImplKind::JspNofec => "jsp-nofec",
        }
    }
}

/// How the child process should run its server.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServeOptions {
    /// Worker count for implementations that can spread over cores
    /// (`jsp-pool`); the others ignore it.
    pub workers: usize,
    /// The address the server binds (port 0): 127.0.0.1, or the server's
    /// address inside a loss benchmark's network namespace.
    pub bind: IpAddr,
}

impl Default for ServeOptions {
    /// One worker per core, on 127.0.0.1.
    fn default() -> Self {
        ServeOptions {
            workers: 0,
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
        }
    }
}

impl ServeOptions {
    /// The address to bind: [`ServeOptions::bind`], port 0.
    pub fn bind_addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind, 0)
    }
}

/// The unspecified address of `server`'s family, or its loopback address
/// when `server` is on loopback: where a client socket binds so that it can
/// reach `server` (on loopback, or through a loss benchmark's namespace).
pub fn client_bind_addr(server: SocketAddr) -> SocketAddr {
    let ip = match (server.ip().is_loopback(), server) {
        (true, SocketAddr::V4(_)) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        (true, SocketAddr::V6(_)) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        (false, SocketAddr::V4(_)) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        (false, SocketAddr::V6(_)) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
    };
    SocketAddr::new(ip, 0)
}

/// What a started server tells the clients: where it listens and how to
/// trust it. Printed by the child process as one JSON line after `READY `.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServerInfo {
    /// The address the server listens on (UDP or TCP, by implementation).
    pub addr: SocketAddr,
    /// Trust material, by implementation: the JetStreamProto identity
    /// fingerprint, or the hex DER of the self-signed TLS certificate.
    /// Empty for the unencrypted ceilings.
    pub trust: String,
}

/// The server side of one implementation.
pub trait BenchServer {
    /// Binds on [`ServeOptions::bind_addr`] (127.0.0.1 unless a loss
    /// benchmark says otherwise, port 0), spawns the serving tasks on the current
    /// tokio runtime and returns once the server accepts connections. The
    /// serving tasks run until the process exits.
    fn start(opts: &ServeOptions) -> impl Future<Output = anyhow::Result<ServerInfo>> + Send;
}

/// The client side of one implementation: what is shared between
/// connections (sockets, endpoints, trust configuration, session cache).
pub trait BenchClient: Send + Sync + Sized + 'static {
    /// One established connection.
    type Conn: BenchConn;

    /// Prepares a client for the server described by `server`.
    fn new(server: &ServerInfo) -> impl Future<Output = anyhow::Result<Self>> + Send;

    /// Opens a new connection with a full handshake (no resumption) and
    /// returns once it is established.
    fn connect(&self) -> impl Future<Output = anyhow::Result<Self::Conn>> + Send;

    /// Opens a new connection resuming an earlier session, sending early
    /// (0-RTT) data where the implementation allows it: the returned
    /// connection may be used before the handshake completes. Returns
    /// `Ok(None)` if the implementation has no resumption. The client keeps
    /// whatever ticket an earlier `connect` or `connect_resumed` left.
    fn connect_resumed(&self) -> impl Future<Output = anyhow::Result<Option<Self::Conn>>> + Send;
}

/// One connection of one implementation.
pub trait BenchConn: Send + Sync + Sized + 'static {
    /// The sending half of a bidirectional stream. `shutdown()` finishes it.
    type Send: AsyncWrite + Unpin + Send + 'static;
    /// The receiving half of a bidirectional stream.
    type Recv: AsyncRead + Unpin + Send + 'static;

    /// Whether this implementation multiplexes streams: if not,
    /// [`BenchConn::open_bi`] succeeds only once per connection.
    const MULTIPLEXED: bool;
    /// Whether this implementation has datagrams.
    const DATAGRAMS: bool;
    /// Whether this implementation has streams at all.
    const STREAMS: bool;

    /// Opens a bidirectional stream.
    fn open_bi(&self) -> impl Future<Output = anyhow::Result<(Self::Send, Self::Recv)>> + Send;

    /// Opens a bidirectional stream for real-time messages: in the implementation's real-time
    /// class where it has one (jsp: `QosClass::Media`, as a real-time application would
    /// declare it; FEC protects that class), else a plain stream.
    fn open_realtime_bi(
        &self,
    ) -> impl Future<Output = anyhow::Result<(Self::Send, Self::Recv)>> + Send {
        self.open_bi()
    }

    /// Sends one unreliable datagram (at most [`MAX_BENCH_DATAGRAM`] bytes).
    fn send_datagram(&self, data: Bytes) -> anyhow::Result<()>;

    /// Waits for the next datagram.
    fn recv_datagram(&self) -> impl Future<Output = anyhow::Result<Bytes>> + Send;

    /// Closes the connection (graceful where the implementation has it).
    fn close(&self);

    /// Whether this connection resumed an earlier session (asked once an
    /// exchange completed); `None` where the implementation cannot tell.
    fn resumed(&self) -> Option<bool> {
        None
    }

    /// A one-line view of the connection's transport state (congestion window, bytes in
    /// flight, RTT, losses) for `JSP_BENCH_TRACE` diagnostics; `None` where the
    /// implementation does not expose it.
    fn diagnostics(&self) -> Option<String> {
        None
    }
}
