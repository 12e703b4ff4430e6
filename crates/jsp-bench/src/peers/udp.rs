//! The plain UDP peer: an unencrypted datagram echo, the ceiling of the
//! datagram scenarios. No handshake, no streams, no resumption: a
//! connection is a connected UDP socket of its own.
//!
//! Settings: the kernel's default socket buffers on both sides. One server
//! task echoes every datagram back to its sender with a reused buffer.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Mutex;

use anyhow::{bail, Context};
use bytes::{Bytes, BytesMut};
use tokio::net::UdpSocket;

use super::{BenchClient, BenchConn, BenchServer, ServeOptions, ServerInfo};

/// The largest UDP payload over IPv4: the server's receive buffer, and the
/// spare room a client keeps before each receive, so nothing is truncated.
const MAX_UDP_PAYLOAD: usize = 65_507;

/// How much a client's receive buffer grows by when its spare room runs
/// out; received datagrams are split off it, so one allocation serves many
/// datagrams.
const CLIENT_RX_CHUNK: usize = 256 * 1024;

/// The plain UDP echo server: one socket on 127.0.0.1, one task.
pub struct UdpServer;

impl BenchServer for UdpServer {
    async fn start(opts: &ServeOptions) -> anyhow::Result<ServerInfo> {
        let socket = UdpSocket::bind(opts.bind_addr())
            .await
            .context("binding the UDP server socket")?;
        let addr = socket.local_addr().context("UDP server address")?;
        tokio::spawn(echo_loop(socket));
        Ok(ServerInfo {
            addr,
            trust: String::new(),
        })
    }
}

/// Sends every datagram back to its sender, forever.
async fn echo_loop(socket: UdpSocket) {
    let mut buf = vec![0u8; MAX_UDP_PAYLOAD];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            // Such as an ICMP port unreachable reported for an earlier
            // send to a client that is gone.
            continue;
        };
        // A failed send is a lost datagram, which UDP allows.
        let _ = socket.send_to(&buf[..n], from).await;
    }
}

/// The plain UDP client: each connection is a new connected socket.
pub struct UdpClient {
    /// The server's UDP address.
    addr: SocketAddr,
}

impl BenchClient for UdpClient {
    type Conn = UdpConn;

    async fn new(server: &ServerInfo) -> anyhow::Result<Self> {
        Ok(Self { addr: server.addr })
    }

    /// Binds a socket on 127.0.0.1 and connects it to the server; no
    /// packet is exchanged.
    async fn connect(&self) -> anyhow::Result<UdpConn> {
        let socket = UdpSocket::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .context("binding a UDP client socket")?;
        socket
            .connect(self.addr)
            .await
            .context("connecting the UDP socket")?;
        // tokio's `try_send` fails with `WouldBlock` until the reactor has
        // seen the socket writable once; without this the first datagram
        // of every connection would be dropped.
        socket
            .writable()
            .await
            .context("waiting for the UDP socket")?;
        Ok(UdpConn {
            socket,
            rx: Mutex::new(BytesMut::new()),
        })
    }

    /// Plain UDP has no resumption.
    async fn connect_resumed(&self) -> anyhow::Result<Option<UdpConn>> {
        Ok(None)
    }
}

/// One plain UDP "connection": a socket connected to the server.
pub struct UdpConn {
    /// The connected socket.
    socket: UdpSocket,
    /// Where datagrams are received; each one is split off as a [`Bytes`].
    rx: Mutex<BytesMut>,
}

impl BenchConn for UdpConn {
    type Send = tokio::io::Sink;
    type Recv = tokio::io::Empty;

    const MULTIPLEXED: bool = false;
    const DATAGRAMS: bool = true;
    const STREAMS: bool = false;

    async fn open_bi(&self) -> anyhow::Result<(Self::Send, Self::Recv)> {
        bail!("plain UDP has no streams")
    }

    /// Sends without waiting; a full socket buffer drops the datagram (as
    /// the network would) instead of failing.
    fn send_datagram(&self, data: Bytes) -> anyhow::Result<()> {
        match self.socket.try_send(&data) {
            Ok(_) => Ok(()),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(err) => Err(err).context("sending a UDP datagram"),
        }
    }

    async fn recv_datagram(&self) -> anyhow::Result<Bytes> {
        loop {
            self.socket
                .readable()
                .await
                .context("waiting for a UDP datagram")?;
            let mut rx = self
                .rx
                .lock()
                .map_err(|_| anyhow::anyhow!("receive buffer lock poisoned"))?;
            if rx.capacity() - rx.len() < MAX_UDP_PAYLOAD {
                rx.reserve(CLIENT_RX_CHUNK);
            }
            match self.socket.try_recv_buf(&mut *rx) {
                Ok(n) => return Ok(rx.split_to(n).freeze()),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                Err(err) => return Err(err).context("receiving a UDP datagram"),
            }
        }
    }

    /// Nothing to do: the socket closes when the connection is dropped.
    fn close(&self) {}
}
