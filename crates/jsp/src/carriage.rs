//! Stream carriages: the same JetStreamProto packets over TCP or WebSocket, as length-prefixed
//! records (see [`crate::framing`]), for networks that block UDP.
//!
//! The engine addresses peers by socket address. Each stream carriage is given a unique synthetic
//! address in `fd00:6a73:7000::/48` (never routed, never confused with a UDP peer), the driver
//! routes packets for it to the carriage's writer task, and the reader task feeds records to the
//! engine as if they were datagrams from that address. A carriage that reconnects gets a new
//! address, which the engine treats as a migration.

use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
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

/// A stream carriage attached to an endpoint.
#[derive(Debug)]
pub(crate) struct StreamPeer {
    pub(crate) tx: mpsc::Sender<Bytes>,
    pub(crate) kind: Carriage,
    pub(crate) real: SocketAddr,
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
) -> (SocketAddr, mpsc::Receiver<Bytes>) {
    let (tx, rx) = mpsc::channel(WRITE_QUEUE);
    let mut st = shared.lock();
    st.next_stream_peer += 1;
    let addr = synthetic(st.next_stream_peer);
    st.stream_peers.insert(addr, StreamPeer { tx, kind, real });
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
    drop(st);
    shared.wake.notify_one();
    true
}

/// Attaches a TCP connection; returns its synthetic address.
pub(crate) fn attach_tcp(shared: Arc<Shared>, stream: TcpStream) -> SocketAddr {
    let real = stream
        .peer_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let _ = stream.set_nodelay(true);
    let (addr, mut rx) = register(&shared, Carriage::Tcp, real);
    let (mut rd, mut wr) = stream.into_split();
    tokio::spawn(async move {
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
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if !deliver(&shared, addr, &mut dec, &buf[..n]) {
                        break;
                    }
                }
            }
        }
        trace!(%addr, %real, "tcp carriage closed");
        unregister(&shared, addr);
    });
    addr
}

/// Attaches a WebSocket; returns its synthetic address.
pub(crate) fn attach_ws<S>(
    shared: Arc<Shared>,
    ws: tokio_tungstenite::WebSocketStream<S>,
    real: SocketAddr,
) -> SocketAddr
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (addr, mut rx) = register(&shared, Carriage::WebSocket, real);
    let (mut sink, mut stream) = ws.split();
    tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if sink.send(Message::Binary(bytes.to_vec())).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    tokio::spawn(async move {
        let mut dec = RecordDecoder::new(MAX_RECORD);
        while let Some(msg) = stream.next().await {
            match msg {
                Ok(Message::Binary(data)) => {
                    if !deliver(&shared, addr, &mut dec, &data) {
                        break;
                    }
                }
                Ok(Message::Close(_)) | Err(_) => break,
                // Text is not part of the carriage; pings are answered by tungstenite.
                Ok(_) => {}
            }
        }
        trace!(%addr, %real, "websocket carriage closed");
        unregister(&shared, addr);
    });
    addr
}
