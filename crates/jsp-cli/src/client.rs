//! Connecting to a `jsp serve` the way every client subcommand does: resolve the address, pin
//! the server's key, pick the carriage (or race them), and turn failures into messages that say
//! what to check.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use jsp::{Carriage, ClientConfig, Connection, Endpoint, Targets, TrustPolicy};
use jsp_proto::connection::HandshakeSummary;
use jsp_proto::crypto::CipherSuite;
use jsp_proto::identity::Fingerprint;
use jsp_proto::{ConnectionError, HandshakeError};

use crate::clock::Stopwatch;
use crate::error::CliError;
use crate::keyfile::describe_io;
use crate::units::fmt_duration;

/// Default time allowed for a handshake.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait, after a connection closed, for its close to reach the peer.
const CLOSE_LINGER: Duration = Duration::from_secs(1);
/// How often the close linger checks whether the endpoint has finished.
const CLOSE_POLL: Duration = Duration::from_millis(5);

/// Which carriage a client uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    /// UDP first, then race TCP (after 500 ms) and WebSocket (after 1 s, with --ws).
    Auto,
    /// UDP only.
    Udp,
    /// The TCP carriage only (on the server's port).
    Tcp,
    /// The WebSocket carriage only (at --ws, or the server's address).
    Ws,
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The server's address as typed (`host:port`).
    pub server: String,
    /// The pinned fingerprint of the server's key.
    pub pin: Fingerprint,
    /// The carriage.
    pub transport: Transport,
    /// The server's WebSocket address, as typed.
    pub ws: Option<String>,
    /// Time allowed for the handshake.
    pub timeout: Duration,
}

/// An established connection and what it took.
#[derive(Debug)]
pub struct Connected {
    /// The client endpoint (keep it for [`close`]).
    pub endpoint: Endpoint,
    /// The connection.
    pub conn: Connection,
    /// How long the handshake took (including the carriage's own connection setup).
    pub handshake: Duration,
    /// What was negotiated.
    pub summary: HandshakeSummary,
    /// The carriage that won.
    pub carriage: Carriage,
    /// The address connected to.
    pub remote: SocketAddr,
}

impl Connected {
    /// One line: where, over what, how long, and what was negotiated.
    pub fn describe(&self) -> String {
        format!(
            "connected to {} over {} in {}: {}, {}{}",
            self.remote,
            carriage_name(self.carriage),
            fmt_duration(self.handshake),
            suite_name(self.summary.suite),
            self.summary.group,
            if self.summary.resumed {
                " (resumed)"
            } else {
                ""
            },
        )
    }
}

/// The name people know a cipher suite by.
pub fn suite_name(suite: CipherSuite) -> &'static str {
    match suite {
        CipherSuite::Aes256Gcm => "AES-256-GCM",
        CipherSuite::ChaCha20Poly1305 => "ChaCha20-Poly1305",
    }
}

/// The name of a carriage.
pub fn carriage_name(carriage: Carriage) -> &'static str {
    match carriage {
        Carriage::Udp => "UDP",
        Carriage::Tcp => "TCP",
        Carriage::WebSocket => "WebSocket",
    }
}

/// Resolves `host:port` to one address (the first the resolver gives).
pub async fn resolve(text: &str, flag: &str) -> Result<SocketAddr, CliError> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if !text.contains(':') {
        return Err(CliError::new(format!("{flag} {text:?} has no port"))
            .hint("write HOST:PORT, e.g. 127.0.0.1:4433"));
    }
    let mut addrs = tokio::net::lookup_host(text).await.map_err(|e| {
        CliError::new(format!("cannot resolve {text}: {}", describe_io(&e)))
            .hint(format!("check the host name in {flag}"))
    })?;
    addrs.next().ok_or_else(|| {
        CliError::new(format!("{text} resolves to no address"))
            .hint(format!("check the host name in {flag}"))
    })
}

/// Connects and completes the handshake.
pub async fn connect(opts: &ClientOptions) -> Result<Connected, CliError> {
    let server = resolve(&opts.server, "the server address").await?;
    let ws = match &opts.ws {
        Some(text) => Some(resolve(text, "--ws").await?),
        None => None,
    };
    let local: SocketAddr = if server.is_ipv6() {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let endpoint = Endpoint::client(local)
        .map_err(|e| CliError::new(format!("cannot open a UDP socket: {e}")))?;
    let mut config = ClientConfig::new(TrustPolicy::pinned(opts.pin));
    config.transport.handshake_timeout = opts.timeout;
    let config = Arc::new(config);

    let target = match opts.transport {
        Transport::Ws => ws.unwrap_or(server),
        _ => server,
    };
    let transport = opts.transport;
    let ep = endpoint.clone();
    let attempt = async move {
        match transport {
            Transport::Udp => ep.connect(target, config).await,
            Transport::Tcp => ep.connect_tcp(target, config).await,
            Transport::Ws => ep.connect_ws(target, config).await,
            Transport::Auto => {
                let targets = Targets {
                    ws,
                    ..Targets::all(server, server, server)
                };
                ep.connect_auto(&targets, config).await
            }
        }
    };
    let clock = Stopwatch::start();
    // The engine's handshake timeout covers the handshake; this also bounds a TCP connect to a
    // silent host and the carriage race.
    let bound = opts.timeout + Duration::from_secs(2);
    let conn = match tokio::time::timeout(bound, attempt).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => return Err(connect_error(&e, opts, target)),
        Err(_) => return Err(timed_out(opts, target)),
    };
    let handshake = clock.elapsed();
    let summary = conn
        .established()
        .await
        .map_err(|e| connect_error(&jsp::Error::Connection(e), opts, target))?;
    let carriage = conn.carriage();
    let remote = conn.remote_address().unwrap_or(target);
    Ok(Connected {
        endpoint,
        conn,
        handshake,
        summary,
        carriage,
        remote,
    })
}

fn transport_words(opts: &ClientOptions) -> &'static str {
    match opts.transport {
        Transport::Auto => "UDP, TCP or WebSocket",
        Transport::Udp => "UDP",
        Transport::Tcp => "TCP",
        Transport::Ws => "WebSocket",
    }
}

fn timed_out(opts: &ClientOptions, target: SocketAddr) -> CliError {
    let mut hint = String::from("check the address and that `jsp serve` is running there");
    if opts.transport == Transport::Udp {
        hint.push_str(" (if UDP is blocked, try --transport tcp)");
    }
    CliError::new(format!(
        "no answer from {target} over {} within {}",
        transport_words(opts),
        fmt_duration(opts.timeout)
    ))
    .hint(hint)
}

/// Explains a failed connection attempt.
pub fn connect_error(e: &jsp::Error, opts: &ClientOptions, target: SocketAddr) -> CliError {
    match e {
        jsp::Error::Connection(ConnectionError::Handshake(HandshakeError::UntrustedPeer {
            fingerprint,
        })) => CliError::new(format!(
            "the server at {target} presented the key {fingerprint}, not the pinned {}",
            opts.pin
        ))
        .hint(
            "check --pin: the server prints its fingerprint when it starts \
             (or run `jsp fingerprint identity.pub` next to its key)",
        ),
        jsp::Error::Connection(ConnectionError::TimedOut) => timed_out(opts, target),
        jsp::Error::Connection(ConnectionError::PeerClosed { .. }) => CliError::new(format!(
            "the server at {target} refused the connection: {e}"
        ))
        .hint("check the server's log"),
        jsp::Error::Connection(err) => CliError::new(format!("cannot connect to {target}: {err}")),
        jsp::Error::Io(io) => CliError::new(format!(
            "cannot reach {target} over {}: {}",
            transport_words(opts),
            describe_net(io)
        ))
        .hint("check the address and that `jsp serve` is running there"),
        other => CliError::new(format!("cannot connect to {target}: {other}")),
    }
}

/// A short lowercase description of a network error.
pub fn describe_net(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused => "connection refused".to_owned(),
        K::ConnectionReset => "connection reset".to_owned(),
        K::ConnectionAborted => "connection aborted".to_owned(),
        K::TimedOut => "timed out".to_owned(),
        K::HostUnreachable => "host unreachable".to_owned(),
        K::NetworkUnreachable => "network unreachable".to_owned(),
        K::AddrNotAvailable => "address not available".to_owned(),
        _ => describe_io(e),
    }
}

/// Closes `conn` gracefully (what was written is delivered first) and waits, briefly, until the
/// close has gone out, so that the server learns it at once instead of after its idle timeout.
pub async fn close(connected: Connected) {
    let Connected { endpoint, conn, .. } = connected;
    conn.close(jsp::CloseReason::Normal, None);
    let _ = tokio::time::timeout(CLOSE_LINGER, conn.closed()).await;
    drop(conn);
    // The engine forgets a connection once its close has been sent and the closing period is
    // over; the library has no call that waits for that (see the report), so poll, bounded.
    let wait = async {
        while endpoint.connection_count() > 0 {
            tokio::time::sleep(CLOSE_POLL).await;
        }
    };
    let _ = tokio::time::timeout(CLOSE_LINGER, wait).await;
}

/// One line of connection statistics: RTT, congestion window, bytes, loss, MTU, carriage.
pub fn describe_stats(stats: &jsp::ConnectionStats, carriage: Carriage) -> String {
    let loss = if stats.packets_sent == 0 {
        0.0
    } else {
        stats.packets_lost as f64 * 100.0 / stats.packets_sent as f64
    };
    format!(
        "rtt {}, cwnd {}, {} sent in {} packets, {} received, {} lost ({loss:.2}%), \
         path MTU {} B, {} over {}",
        fmt_duration(stats.rtt),
        crate::units::fmt_bytes(stats.cwnd),
        crate::units::fmt_bytes(stats.bytes_sent),
        stats.packets_sent,
        crate::units::fmt_bytes(stats.bytes_received),
        stats.packets_lost,
        stats.mtu,
        stats.congestion,
        carriage_name(carriage),
    )
}
