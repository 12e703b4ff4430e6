//! The UDP socket of an endpoint: large buffers, batched receives with GRO, and batched sends
//! with GSO where the kernel has them (through quinn-udp, which owns the platform code).

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;

use quinn_udp::{RecvMeta, Transmit, UdpSocketState};
use tokio::io::Interest;

/// Socket buffer size requested for both directions.
pub(crate) const SOCKET_BUFFER: usize = 8 << 20;
/// Datagrams received per receive call (each up to 64 KiB with GRO).
pub(crate) const RECV_BATCH: usize = 8;
/// Bytes of receive buffer per batch slot.
pub(crate) const RECV_SLOT: usize = 64 * 1024;

/// A bound UDP socket with its offload state.
#[derive(Debug)]
pub(crate) struct UdpIo {
    socket: tokio::net::UdpSocket,
    state: UdpSocketState,
}

impl UdpIo {
    /// Binds `addr` (optionally with SO_REUSEPORT, for one socket per core).
    pub(crate) fn bind(addr: SocketAddr, reuse_port: bool) -> io::Result<Self> {
        let domain = socket2::Domain::for_address(addr);
        let sock =
            socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
        if addr.is_ipv6() {
            let _ = sock.set_only_v6(false);
        }
        if reuse_port {
            sock.set_reuse_port(true)?;
        }
        sock.set_nonblocking(true)?;
        sock.bind(&addr.into())?;
        let std_sock: std::net::UdpSocket = sock.into();
        let socket = tokio::net::UdpSocket::from_std(std_sock)?;
        let state = UdpSocketState::new((&socket).into())?;
        // Best effort: the kernel may cap these (net.core.rmem_max).
        let _ = state.set_recv_buffer_size((&socket).into(), SOCKET_BUFFER);
        let _ = state.set_send_buffer_size((&socket).into(), SOCKET_BUFFER);
        Ok(Self { socket, state })
    }

    /// The bound address.
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Most segments one GSO send may carry (1 without GSO).
    pub(crate) fn max_gso_segments(&self) -> usize {
        self.state.max_gso_segments()
    }

    /// Waits for and receives a batch of datagrams; returns how many `meta` entries were filled.
    pub(crate) async fn recv(
        &self,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> io::Result<usize> {
        loop {
            self.socket.readable().await?;
            match self.socket.try_io(Interest::READABLE, || {
                self.state.recv((&self.socket).into(), bufs, meta)
            }) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Receives a batch of datagrams if some are waiting; `WouldBlock` if none.
    pub(crate) fn try_recv(
        &self,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> io::Result<usize> {
        self.socket.try_io(Interest::READABLE, || {
            self.state.recv((&self.socket).into(), bufs, meta)
        })
    }

    /// Sends one (possibly GSO-batched) transmit if the socket buffer has room now;
    /// `WouldBlock` if not.
    pub(crate) fn try_send(&self, transmit: &Transmit<'_>) -> io::Result<()> {
        self.socket.try_io(Interest::WRITABLE, || {
            self.state.try_send((&self.socket).into(), transmit)
        })
    }

    /// Sends one (possibly GSO-batched) transmit, waiting while the socket buffer is full.
    pub(crate) async fn send(&self, transmit: &Transmit<'_>) -> io::Result<()> {
        loop {
            match self.socket.try_io(Interest::WRITABLE, || {
                self.state.try_send((&self.socket).into(), transmit)
            }) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.socket.writable().await?;
                }
                Err(e) => return Err(e),
            }
        }
    }
}
