//! The TCP peers: TCP + TLS 1.3 (tokio-rustls with aws-lc-rs,
//! X25519MLKEM768, see [`super::tls_cert`]) and plain TCP as an unencrypted
//! ceiling. One connection carries exactly one stream (the connection
//! itself), so [`BenchConn::open_bi`] succeeds once per connection and
//! there are no datagrams. Also owns [`serve_stream`], the server side of
//! the stream contract, which the quinn peer reuses.
//!
//! Settings that differ from the defaults, and why:
//! - `TCP_NODELAY` on both sides (latency scenarios write small messages).
//! - The listening socket's backlog is [`LISTEN_BACKLOG`] (tokio's default
//!   is 1024), so bursts of concurrent connects are not dropped and
//!   retried after a SYN timeout.
//! - TLS server: a stateless ticketer (`aws_lc_rs::Ticketer`) instead of
//!   rustls' stateful session cache; rustls' default of two TLS 1.3 tickets
//!   per handshake. No early data (0-RTT): tokio-rustls needs an extra
//!   feature for it and cannot read it on the server side, so a resumed TLS
//!   connection is TCP's round trip plus a 1-RTT PSK handshake.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use rustls::pki_types::ServerName;
use rustls::{HandshakeKind, NamedGroup};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::tls_cert::{ClientConfigs, ServerCert};
use super::{
    progress_due, BenchClient, BenchConn, BenchServer, ServeOptions, ServerInfo, CMD_ECHO,
    CMD_SINK, CMD_SINK_PROGRESS,
};
use crate::latency::now;

/// Size of the buffer a served stream reads into: allocated (not zeroed)
/// once per stream, reused for every read.
pub const SERVE_BUF: usize = 64 * 1024;

/// Backlog of the listening sockets (capped by the kernel's `somaxconn`).
pub const LISTEN_BACKLOG: u32 = 4096;

/// Serves one stream of the contract in [`super`]: reads the command byte,
/// then either counts everything up to the end of the stream and answers
/// with the count ([`CMD_SINK`]), or writes back every chunk as soon as it
/// is read ([`CMD_ECHO`]), or counts and reports the count as it grows
/// ([`CMD_SINK_PROGRESS`]); finishes the sending side at the end.
pub async fn serve_stream<S>(mut stream: S) -> anyhow::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut command = [0u8; 1];
    stream
        .read_exact(&mut command)
        .await
        .context("reading the command byte")?;
    // Uninitialized capacity, filled by `read_buf`: no 64 KiB memset per
    // stream, which the many-small-streams scenarios would pay.
    let mut buf: Vec<u8> = Vec::with_capacity(SERVE_BUF);
    match command[0] {
        CMD_SINK => {
            let mut count = 0u64;
            loop {
                buf.clear();
                let n = stream.read_buf(&mut buf).await.context("sink read")?;
                if n == 0 {
                    break;
                }
                count += n as u64;
            }
            stream
                .write_all(&count.to_le_bytes())
                .await
                .context("writing the sink count")?;
        }
        CMD_ECHO => loop {
            buf.clear();
            let n = stream.read_buf(&mut buf).await.context("echo read")?;
            if n == 0 {
                break;
            }
            stream.write_all(&buf).await.context("echo write")?;
            // A TLS stream may keep records it could not write yet.
            stream.flush().await.context("echo flush")?;
        },
        CMD_SINK_PROGRESS => {
            let mut count = 0u64;
            let mut reported = None;
            loop {
                buf.clear();
                let n = stream.read_buf(&mut buf).await.context("sink read")?;
                if n == 0 {
                    break;
                }
                count += n as u64;
                let t = now();
                if progress_due(reported, t) {
                    stream
                        .write_all(&count.to_le_bytes())
                        .await
                        .context("writing a progress count")?;
                    stream.flush().await.context("progress flush")?;
                    reported = Some(t);
                }
            }
            stream
                .write_all(&count.to_le_bytes())
                .await
                .context("writing the sink count")?;
        }
        other => bail!("unknown command byte {other:#04x}"),
    }
    stream.shutdown().await.context("finishing the stream")?;
    Ok(())
}

/// Binds a listening TCP socket on `opts.bind` (port 0) with
/// [`LISTEN_BACKLOG`].
fn listen(opts: &ServeOptions) -> anyhow::Result<TcpListener> {
    let socket = if opts.bind.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .context("TCP socket")?;
    socket
        .bind(opts.bind_addr())
        .context("binding the TCP listener")?;
    socket
        .listen(LISTEN_BACKLOG)
        .context("listening on the TCP socket")
}

/// Accepts connections forever, handing each (with `TCP_NODELAY` set) to
/// `serve` on its own task.
async fn accept_loop<F, Fut>(listener: TcpListener, serve: F)
where
    F: Fn(TcpStream) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                if stream.set_nodelay(true).is_err() {
                    continue;
                }
                tokio::spawn(serve(stream));
            }
            Err(err) => {
                // Typically out of file descriptors: back off instead of
                // spinning.
                eprintln!("tcp accept: {err}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Connects a TCP socket to `addr` with `TCP_NODELAY`.
async fn connect_tcp(addr: SocketAddr) -> anyhow::Result<TcpStream> {
    let stream = TcpStream::connect(addr).await.context("TCP connect")?;
    stream.set_nodelay(true).context("TCP_NODELAY")?;
    Ok(stream)
}

/// Takes the halves out of a connection's slot: the first call gets them,
/// every later call fails.
fn take_halves<T>(slot: &Mutex<Option<T>>) -> anyhow::Result<T> {
    let mut slot = slot
        .lock()
        .map_err(|_| anyhow::anyhow!("connection lock poisoned"))?;
    slot.take()
        .context("a TCP connection carries one stream, and it is already open")
}

/// The TCP + TLS 1.3 server: a self-signed `localhost` certificate,
/// stateless session tickets, one task per connection.
pub struct TcpTlsServer;

impl BenchServer for TcpTlsServer {
    async fn start(opts: &ServeOptions) -> anyhow::Result<ServerInfo> {
        let cert = ServerCert::generate()?;
        let mut config = cert.server_config()?;
        config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new().context("TLS ticketer")?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = listen(opts)?;
        let addr = listener.local_addr().context("listener address")?;
        tokio::spawn(accept_loop(listener, move |stream| {
            let acceptor = acceptor.clone();
            async move {
                let tls = acceptor.accept(stream).await.context("TLS accept")?;
                serve_stream(tls).await
            }
        }));
        Ok(ServerInfo {
            addr,
            trust: cert.trust(),
        })
    }
}

/// The TCP + TLS 1.3 client: trusts exactly the server's certificate and
/// keeps one session store (TLS 1.3 tickets) for all its connections.
pub struct TcpTlsClient {
    /// The server's TCP address.
    addr: SocketAddr,
    /// The server name sent in SNI and checked against the certificate.
    server_name: ServerName<'static>,
    /// Full handshakes (stores tickets, never offers one).
    full: TlsConnector,
    /// Resumed handshakes (offers a stored ticket).
    resume: TlsConnector,
}

impl TcpTlsClient {
    /// TCP connect, `TCP_NODELAY`, then a complete TLS handshake through
    /// `connector`.
    async fn connect_with(&self, connector: &TlsConnector) -> anyhow::Result<TlsConn> {
        let tcp = connect_tcp(self.addr).await?;
        let tls = connector
            .connect(self.server_name.clone(), tcp)
            .await
            .context("TLS handshake")?;
        let session = tls.get_ref().1;
        let handshake_kind = session.handshake_kind();
        let key_exchange_group = session.negotiated_key_exchange_group().map(|g| g.name());
        let (recv, send) = tokio::io::split(tls);
        Ok(TlsConn {
            halves: Mutex::new(Some((send, recv))),
            handshake_kind,
            key_exchange_group,
        })
    }
}

impl BenchClient for TcpTlsClient {
    type Conn = TlsConn;

    async fn new(server: &ServerInfo) -> anyhow::Result<Self> {
        let configs = ClientConfigs::new(&server.trust, false)?;
        Ok(Self {
            addr: server.addr,
            server_name: ClientConfigs::server_name()?,
            full: TlsConnector::from(configs.full),
            resume: TlsConnector::from(configs.resume),
        })
    }

    async fn connect(&self) -> anyhow::Result<TlsConn> {
        self.connect_with(&self.full).await
    }

    /// TLS 1.3 PSK resumption with a stored ticket (a full handshake if the
    /// store has none); no early data.
    async fn connect_resumed(&self) -> anyhow::Result<Option<TlsConn>> {
        self.connect_with(&self.resume).await.map(Some)
    }
}

/// The TLS stream over one TCP connection, split in two halves.
type TlsStream = tokio_rustls::client::TlsStream<TcpStream>;

/// One TCP + TLS 1.3 connection: its single stream, until
/// [`BenchConn::open_bi`] takes it, and what its handshake negotiated.
pub struct TlsConn {
    /// The connection's two halves, until `open_bi` takes them.
    halves: Mutex<Option<(WriteHalf<TlsStream>, ReadHalf<TlsStream>)>>,
    /// Full or resumed, as rustls reports it.
    handshake_kind: Option<HandshakeKind>,
    /// The negotiated key exchange group.
    key_exchange_group: Option<NamedGroup>,
}

impl TlsConn {
    /// Whether the handshake was full or resumed.
    pub fn handshake_kind(&self) -> Option<HandshakeKind> {
        self.handshake_kind
    }

    /// The key exchange group the handshake negotiated.
    pub fn key_exchange_group(&self) -> Option<NamedGroup> {
        self.key_exchange_group
    }
}

impl BenchConn for TlsConn {
    type Send = WriteHalf<TlsStream>;
    type Recv = ReadHalf<TlsStream>;

    const MULTIPLEXED: bool = false;
    const DATAGRAMS: bool = false;
    const STREAMS: bool = true;

    /// Returns the connection's two halves; fails on a second call.
    async fn open_bi(&self) -> anyhow::Result<(Self::Send, Self::Recv)> {
        take_halves(&self.halves)
    }

    fn send_datagram(&self, _data: Bytes) -> anyhow::Result<()> {
        bail!("TCP + TLS has no datagrams")
    }

    async fn recv_datagram(&self) -> anyhow::Result<Bytes> {
        bail!("TCP + TLS has no datagrams")
    }

    /// Drops the connection if its stream was never taken; otherwise the
    /// connection closes when the caller drops both halves.
    fn close(&self) {
        if let Ok(mut slot) = self.halves.lock() {
            slot.take();
        }
    }

    fn resumed(&self) -> Option<bool> {
        self.handshake_kind()
            .map(|kind| kind == rustls::HandshakeKind::Resumed)
    }
}

/// The plain TCP server: one task per connection, no encryption.
pub struct TcpServer;

impl BenchServer for TcpServer {
    async fn start(opts: &ServeOptions) -> anyhow::Result<ServerInfo> {
        let listener = listen(opts)?;
        let addr = listener.local_addr().context("listener address")?;
        tokio::spawn(accept_loop(listener, serve_stream));
        Ok(ServerInfo {
            addr,
            trust: String::new(),
        })
    }
}

/// The plain TCP client.
pub struct TcpClient {
    /// The server's TCP address.
    addr: SocketAddr,
}

impl BenchClient for TcpClient {
    type Conn = TcpConn;

    async fn new(server: &ServerInfo) -> anyhow::Result<Self> {
        Ok(Self { addr: server.addr })
    }

    async fn connect(&self) -> anyhow::Result<TcpConn> {
        let stream = connect_tcp(self.addr).await?;
        let (recv, send) = stream.into_split();
        Ok(TcpConn {
            halves: Mutex::new(Some((send, recv))),
        })
    }

    /// Plain TCP has no resumption.
    async fn connect_resumed(&self) -> anyhow::Result<Option<TcpConn>> {
        Ok(None)
    }
}

/// One plain TCP connection: its single stream, until
/// [`BenchConn::open_bi`] takes it.
pub struct TcpConn {
    /// The connection's two halves (tokio's lock-free owned split), until
    /// `open_bi` takes them.
    halves: Mutex<Option<(OwnedWriteHalf, OwnedReadHalf)>>,
}

impl BenchConn for TcpConn {
    type Send = OwnedWriteHalf;
    type Recv = OwnedReadHalf;

    const MULTIPLEXED: bool = false;
    const DATAGRAMS: bool = false;
    const STREAMS: bool = true;

    /// Returns the connection's two halves; fails on a second call.
    async fn open_bi(&self) -> anyhow::Result<(Self::Send, Self::Recv)> {
        take_halves(&self.halves)
    }

    fn send_datagram(&self, _data: Bytes) -> anyhow::Result<()> {
        bail!("TCP has no datagrams")
    }

    async fn recv_datagram(&self) -> anyhow::Result<Bytes> {
        bail!("TCP has no datagrams")
    }

    /// Drops the connection if its stream was never taken; otherwise the
    /// connection closes when the caller drops both halves.
    fn close(&self) {
        if let Ok(mut slot) = self.halves.lock() {
            slot.take();
        }
    }
}
