//! Stream carriages: the same JetStreamProto packets over TCP or WebSocket, as length-prefixed
//! records (see [`crate::framing`]), for networks that block UDP.
//!
//! The engine addresses peers by socket address. Each stream carriage is given a unique synthetic
//! address in `fd00:6a73:7000::/48` (never routed, never confused with a UDP peer), the driver
//! routes packets for it to the carriage's writer task, and the reader task feeds records to the
//! engine as if they were datagrams from that address. A carriage that reconnects gets a new
//! address, which the engine treats as a migration.
//!
//! Carriages a server accepts are admitted like handshakes (slowloris defence): until the JSP
//! handshake on a carriage completes, it holds a slot counted against the server's
//! `max_handshakes` (all carriages) and `handshake_cap_per_ip` (carriages from one IP address);
//! a connection beyond either cap is closed at once, and a carriage whose handshake has not
//! completed within the server's `transport.handshake_timeout` of its acceptance (WebSocket
//! upgrade included) is closed. So the partial records (up to 64 KiB each) and sockets that
//! clients which never finish a handshake can hold are bounded in count and in time.
//!
//! Once a handshake on an accepted carriage completed, the carriage lives as long as connections
//! use it: every `transport.handshake_timeout` the server checks whether a connection (in any
//! state) still has the carriage as its peer address, and closes the carriage if none does (all
//! ended, or they moved onto another carriage). So a client that completes handshakes and then
//! goes silent holds its sockets until its connections idle out, plus at most one handshake
//! timeout, not until it closes them.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tracing::{debug, trace};

use crate::framing::RecordDecoder;
use crate::state::Shared;

/// Records queued per carriage before the driver drops packets for it (like a full UDP buffer:
/// the protocol's loss recovery copes).
pub(crate) const WRITE_QUEUE: usize = 256;
/// Largest record accepted on a stream carriage.
pub(crate) const MAX_RECORD: u16 = 65535;

/// How a connection reaches its peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Carriage {
    /// UDP datagrams.
    Udp,
    /// Records over a TCP connection.
    Tcp,
    /// Records in binary WebSocket messages.
    WebSocket,
}

/// How long a WebSocket client may take to complete its HTTP upgrade (and never longer than the
/// handshake deadline of its carriage).
const WS_UPGRADE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest WebSocket message (and frame) a server accepts: 64 records of the largest size, what
/// one batch of the driver can put in a message. tungstenite's default (64 MiB) would let every
/// connection hold that much in a partial message.
const WS_MAX_MESSAGE: usize = 64 * (MAX_RECORD as usize + crate::framing::RECORD_HEADER_LEN);

/// A stream carriage attached to an endpoint.
#[derive(Debug)]
pub(crate) struct StreamPeer {
    pub(crate) tx: mpsc::Sender<Bytes>,
    pub(crate) kind: Carriage,
    pub(crate) real: SocketAddr,
    /// Set for carriages a server accepted: told when a handshake on the carriage completes.
    handshake: Option<Arc<HandshakeDone>>,
}

impl StreamPeer {
    /// A connection on this carriage completed its handshake: its admission slot is released and
    /// its handshake deadline no longer applies.
    pub(crate) fn handshake_completed(&self) {
        if let Some(h) = &self.handshake {
            h.done.store(true, Ordering::Release);
            h.notify.notify_one();
        }
    }
}

/// Whether a handshake on an accepted carriage completed.
#[derive(Debug, Default)]
struct HandshakeDone {
    done: AtomicBool,
    notify: Notify,
}

/// Limits on accepted carriages whose JSP handshake has not completed, from the server's
/// configuration.
#[derive(Clone, Copy, Debug)]
struct CarriageLimits {
    /// How long after acceptance a carriage may go without a completed handshake.
    handshake_timeout: Duration,
    /// Most such carriages at once (the server's `max_handshakes`).
    max_pending: usize,
    /// Most such carriages from one IP address (the server's `handshake_cap_per_ip`).
    max_pending_per_ip: usize,
}

/// Accepted carriages whose handshake has not completed, counted against [`CarriageLimits`].
#[derive(Debug, Default)]
pub(crate) struct PendingCarriages {
    /// `None` for an endpoint without a server configuration (no limits).
    limits: Option<CarriageLimits>,
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

impl PendingCarriages {
    /// The limits of a server with `config` (none without one).
    pub(crate) fn new(config: Option<&jsp_proto::ServerConfig>) -> Self {
        Self {
            limits: config.map(|c| CarriageLimits {
                handshake_timeout: c.transport.handshake_timeout,
                max_pending: c.max_handshakes,
                max_pending_per_ip: c.handshake_cap_per_ip(),
            }),
            total: 0,
            per_ip: HashMap::new(),
        }
    }

    /// Takes a slot for a carriage from `ip`; `None` if a cap is reached. Returns the
    /// carriage's handshake timeout (`None` inside `Some`: no limits).
    fn admit(&mut self, ip: IpAddr) -> Option<Option<Duration>> {
        let Some(l) = self.limits else {
            return Some(None);
        };
        let from_ip = self.per_ip.get(&ip).copied().unwrap_or(0);
        if self.total >= l.max_pending || from_ip >= l.max_pending_per_ip {
            return None;
        }
        self.total += 1;
        self.per_ip.insert(ip, from_ip + 1);
        Some(Some(l.handshake_timeout))
    }

    fn release(&mut self, ip: IpAddr) {
        self.total = self.total.saturating_sub(1);
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }
}

/// An accepted carriage's admission slot; released when dropped.
struct Slot {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.shared.lock().pending_carriages.release(self.ip);
    }
}

/// The admission of an accepted carriage: until a handshake on it completes, its slot and
/// handshake deadline; afterwards, when it is next checked for connections using it.
struct Admission {
    /// Held for its `Drop` until a handshake completes; `None` for an endpoint without limits.
    slot: Option<Slot>,
    /// A handshake on the carriage completed (or an established connection moved onto it).
    completed: bool,
    /// Until `completed`, the handshake deadline; afterwards, the next check for connections
    /// using the carriage. `None` for an endpoint without limits.
    deadline: Option<Instant>,
    /// The server's handshake timeout, also the interval of those checks (`None`: no limits).
    timeout: Option<Duration>,
    handshake: Arc<HandshakeDone>,
}

/// Admits a carriage from `real` accepted by a server; `None` (the connection must be closed)
/// beyond the caps on carriages whose handshake has not completed.
fn admit(shared: &Arc<Shared>, real: SocketAddr) -> Option<Admission> {
    let ip = real.ip();
    let timeout = shared.lock().pending_carriages.admit(ip)?;
    Some(Admission {
        slot: timeout.map(|_| Slot {
            shared: shared.clone(),
            ip,
        }),
        completed: false,
        deadline: timeout.map(|t| Instant::now() + t),
        timeout,
        handshake: Arc::new(HandshakeDone::default()),
    })
}

/// Resolves, with the reason, when the accepted carriage at `addr` must be closed: at its
/// deadline if no handshake on it completed (and no established connection moved onto it);
/// afterwards, at the first of the checks made every handshake timeout that finds no connection
/// using it. Never for a carriage we opened (no admission), nor after its handshake on an
/// endpoint without limits. Cancel-safe: its progress is kept in `admission`.
async fn must_close(
    admission: &mut Option<Admission>,
    shared: &Shared,
    addr: SocketAddr,
) -> &'static str {
    let Some(a) = admission else {
        return std::future::pending().await;
    };
    loop {
        if !a.completed {
            let expired = match a.deadline {
                Some(deadline) => {
                    tokio::select! {
                        () = a.handshake.notify.notified() => false,
                        () = tokio::time::sleep_until(deadline) => {
                            !a.handshake.done.load(Ordering::Acquire)
                        }
                    }
                }
                None => {
                    a.handshake.notify.notified().await;
                    false
                }
            };
            if expired && !carries(shared, addr, true) {
                return "no handshake completed in time";
            }
            // Completed: the slot goes, the handshake deadline no longer applies.
            a.completed = true;
            a.slot = None;
            a.deadline = a.timeout.map(|t| Instant::now() + t);
            continue;
        }
        let (Some(deadline), Some(every)) = (a.deadline, a.timeout) else {
            return std::future::pending().await;
        };
        tokio::time::sleep_until(deadline).await;
        if !carries(shared, addr, false) {
            return "no connection uses it any more";
        }
        a.deadline = Some(Instant::now() + every);
    }
}

/// Whether a connection runs over the carriage at `addr`: an established one if `established`
/// (one that migrated to it completed its handshake elsewhere), else one in any state
/// (handshaking, open, closing). Scans the connections: done per accepted carriage at its
/// handshake deadline, then once per handshake timeout.
fn carries(shared: &Shared, addr: SocketAddr, established: bool) -> bool {
    let st = shared.lock();
    let found = st.proto.handles().any(|h| {
        st.proto
            .connection(h)
            .is_some_and(|c| c.remote_address() == addr && (!established || c.is_established()))
    });
    found
}

/// The synthetic address of the `n`-th stream carriage.
fn synthetic(n: u64) -> SocketAddr {
    let segs = [
        0xfd00,
        0x6a73,
        0x7000,
        0,
        (n >> 48) as u16,
        (n >> 32) as u16,
        (n >> 16) as u16,
        n as u16,
    ];
    SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(segs), 1, 0, 0))
}

/// Whether `addr` is a stream carriage's synthetic address.
pub(crate) fn is_synthetic(addr: &SocketAddr) -> bool {
    match addr {
        SocketAddr::V6(a) => a.ip().segments()[..3] == [0xfd00, 0x6a73, 0x7000],
        SocketAddr::V4(_) => false,
    }
}

fn register(
    shared: &Shared,
    kind: Carriage,
    real: SocketAddr,
    handshake: Option<Arc<HandshakeDone>>,
) -> (SocketAddr, mpsc::Receiver<Bytes>) {
    let (tx, rx) = mpsc::channel(WRITE_QUEUE);
    let mut st = shared.lock();
    st.next_stream_peer += 1;
    let addr = synthetic(st.next_stream_peer);
    st.stream_peers.insert(
        addr,
        StreamPeer {
            tx,
            kind,
            real,
            handshake,
        },
    );
    (addr, rx)
}

fn unregister(shared: &Shared, addr: SocketAddr) {
    shared.lock().stream_peers.remove(&addr);
}

/// Feeds the records in `chunk` to the engine as datagrams from `addr`. False on a framing error
/// (the carriage must be closed).
fn deliver(shared: &Shared, addr: SocketAddr, dec: &mut RecordDecoder, mut chunk: &[u8]) -> bool {
    let mut st = shared.lock();
    let now = shared.clock.now();
    loop {
        match dec.decode(&mut chunk) {
            Ok(Some(record)) => st.proto.handle_datagram(now, addr, record),
            Ok(None) => break,
            Err(e) => {
                debug!(%addr, error = %e, "malformed record on a stream carriage");
                return false;
            }
        }
    }
    st.dispatch(now, &shared.clock);
    shared.after_call(st);
    true
}

/// Attaches a TCP connection we opened (client side); returns its synthetic address.
pub(crate) fn attach_tcp(shared: Arc<Shared>, stream: TcpStream) -> SocketAddr {
    attach_tcp_admitted(shared, stream, None)
}

/// Admits and attaches a TCP connection a server accepted from `real`, or closes it at once if
/// too many carriages have not completed their handshake (in all, or from its IP address).
pub(crate) fn accept_tcp(shared: Arc<Shared>, stream: TcpStream, real: SocketAddr) {
    match admit(&shared, real) {
        Some(admission) => {
            attach_tcp_admitted(shared, stream, Some(admission));
        }
        None => debug!(%real, "tcp carriage refused: too many handshakes in flight"),
    }
}

fn attach_tcp_admitted(
    shared: Arc<Shared>,
    stream: TcpStream,
    mut admission: Option<Admission>,
) -> SocketAddr {
    let real = stream
        .peer_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let _ = stream.set_nodelay(true);
    let handshake = admission.as_ref().map(|a| a.handshake.clone());
    let (addr, mut rx) = register(&shared, Carriage::Tcp, real, handshake);
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if wr.write_all(&bytes).await.is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        let mut dec = RecordDecoder::new(MAX_RECORD);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            tokio::select! {
                r = rd.read(&mut buf) => match r {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if !deliver(&shared, addr, &mut dec, &buf[..n]) {
                            break;
                        }
                    }
                },
                reason = must_close(&mut admission, &shared, addr) => {
                    debug!(%addr, %real, reason, "tcp carriage closed by the server");
                    // Close now, even if the peer does not read what is queued for it.
                    writer.abort();
                    break;
                }
            }
        }
        trace!(%addr, %real, "tcp carriage closed");
        unregister(&shared, addr);
        drop(admission);
    });
    addr
}

/// Attaches a WebSocket we opened (client side); returns its synthetic address.
pub(crate) fn attach_ws<S>(
    shared: Arc<Shared>,
    ws: tokio_tungstenite::WebSocketStream<S>,
    real: SocketAddr,
) -> SocketAddr
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    attach_ws_admitted(shared, ws, real, None)
}

/// Admits a TCP connection a server accepted from `real` for a WebSocket carriage, or closes it
/// at once if too many carriages have not completed their handshake (in all, or from its IP
/// address); then completes the HTTP upgrade (within [`WS_UPGRADE_TIMEOUT`] and the carriage's
/// handshake deadline) and attaches the WebSocket.
pub(crate) fn accept_ws(shared: Arc<Shared>, stream: TcpStream, real: SocketAddr) {
    let Some(admission) = admit(&shared, real) else {
        debug!(%real, "websocket carriage refused: too many handshakes in flight");
        return;
    };
    tokio::spawn(async move {
        let mut until = Instant::now() + WS_UPGRADE_TIMEOUT;
        if let Some(d) = admission.deadline {
            until = until.min(d);
        }
        // A slow or silent client must not hold the accept loop.
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
            max_message_size: Some(WS_MAX_MESSAGE),
            max_frame_size: Some(WS_MAX_MESSAGE),
            ..Default::default()
        };
        let upgrade = tokio::time::timeout_at(
            until,
            tokio_tungstenite::accept_async_with_config(stream, Some(config)),
        )
        .await;
        match upgrade {
            Ok(Ok(ws)) => {
                attach_ws_admitted(shared, ws, real, Some(admission));
            }
            Ok(Err(e)) => debug!(%real, error = %e, "websocket upgrade failed"),
            Err(_) => debug!(%real, "websocket upgrade timed out"),
        }
    });
}

fn attach_ws_admitted<S>(
    shared: Arc<Shared>,
    ws: tokio_tungstenite::WebSocketStream<S>,
    real: SocketAddr,
    mut admission: Option<Admission>,
) -> SocketAddr
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let handshake = admission.as_ref().map(|a| a.handshake.clone());
    let (addr, mut rx) = register(&shared, Carriage::WebSocket, real, handshake);
    let (mut sink, mut stream) = ws.split();
    let writer = tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if sink.send(Message::Binary(bytes.to_vec())).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    tokio::spawn(async move {
        let mut dec = RecordDecoder::new(MAX_RECORD);
        loop {
            tokio::select! {
                msg = stream.next() => match msg {
                    Some(Ok(Message::Binary(data))) => {
                        if !deliver(&shared, addr, &mut dec, &data) {
                            break;
                        }
                    }
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                    // Text is not part of the carriage; pings are answered by tungstenite.
                    Some(Ok(_)) => {}
                },
                reason = must_close(&mut admission, &shared, addr) => {
                    debug!(%addr, %real, reason, "websocket carriage closed by the server");
                    // Close now, even if the peer does not read what is queued for it.
                    writer.abort();
                    break;
                }
            }
        }
        trace!(%addr, %real, "websocket carriage closed");
        unregister(&shared, addr);
        drop(admission);
    });
    addr
}
