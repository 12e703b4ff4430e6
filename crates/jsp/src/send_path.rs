//! The send path of an endpoint: takes the datagrams the engine produces, groups equal-size
//! datagrams to one destination into GSO batches (records for TCP and WebSocket carriages), and
//! sends them. The driver and the application's tasks share one send path behind an async lock,
//! so packets leave in the order the engine numbered them; an application call made outside any
//! tokio task (a thread in `block_on`) that produced packets sends them itself when the driver is
//! idle and the path free, instead of waking the driver (one thread hand-off less on every
//! message).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use quinn_udp::Transmit;
use tokio::sync::mpsc;
use tracing::{trace, warn};

use crate::state::State;
use crate::udp::UdpIo;

/// Largest total size of one send call (a GSO batch is one UDP payload to the kernel: beyond
/// 65,507 bytes `sendmsg` fails with EMSGSIZE and the whole batch is lost).
const MAX_SEND_BYTES: usize = 65_507;

/// Most datagrams taken from the engine per [`SendPath::collect`].
const SEND_BATCH_DATAGRAMS: usize = 64;

/// One send unit: a run of equal-size datagrams to one destination (the last may be shorter).
struct Batch {
    dst: SocketAddr,
    start: usize,
    end: usize,
    segment: usize,
    count: usize,
    /// Closed to further datagrams (it holds an MTU probe, which must travel alone).
    sealed: bool,
}

/// Buffers of the send path, reused for every batch (nothing is allocated per datagram).
pub(crate) struct SendPath {
    /// The datagrams of every batch, back to back.
    out: Vec<u8>,
    /// Where the engine writes one datagram.
    scratch: Vec<u8>,
    batches: Vec<Batch>,
    /// Batches before this index were sent.
    next: usize,
    /// Records for stream carriages, per synthetic address.
    stream_out: Vec<(SocketAddr, mpsc::Sender<Bytes>, BytesMut)>,
    /// Most segments one GSO send may carry.
    max_segments: usize,
    /// The socket; `None` once the driver stopped (the socket closes with the driver).
    pub(crate) io: Option<Arc<UdpIo>>,
}

impl std::fmt::Debug for SendPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendPath")
            .field("batches", &self.batches.len())
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl SendPath {
    /// An empty send path for `io`.
    pub(crate) fn new(io: Arc<UdpIo>) -> Self {
        let max_segments = io.max_gso_segments();
        Self {
            io: Some(io),
            out: Vec::with_capacity(64 * 1024),
            scratch: Vec::with_capacity(2048),
            batches: Vec::with_capacity(SEND_BATCH_DATAGRAMS),
            next: 0,
            stream_out: Vec::new(),
            max_segments: max_segments.max(1),
        }
    }

    /// Batches are waiting for room in the socket buffer.
    pub(crate) fn has_unsent(&self) -> bool {
        self.next < self.batches.len()
    }

    /// Takes up to [`SEND_BATCH_DATAGRAMS`] datagrams from the engine into batches (after the
    /// previous batches were all sent); returns how many it took.
    pub(crate) fn collect(&mut self, st: &mut State, now: jsp_proto::Instant) -> usize {
        debug_assert!(!self.has_unsent(), "collect over unsent batches");
        self.out.clear();
        self.batches.clear();
        self.next = 0;
        self.stream_out.clear();
        let mut taken = 0;
        while taken < SEND_BATCH_DATAGRAMS {
            let Some(t) = st.proto.poll_transmit(now, &mut self.scratch) else {
                break;
            };
            taken += 1;
            let size = t.size;
            if let Some(peer) = st.stream_peers.get(&t.destination) {
                // A TCP or WebSocket carriage: one record per datagram.
                let i = match self
                    .stream_out
                    .iter()
                    .position(|(a, _, _)| *a == t.destination)
                {
                    Some(i) => i,
                    None => {
                        self.stream_out
                            .push((t.destination, peer.tx.clone(), BytesMut::new()));
                        self.stream_out.len() - 1
                    }
                };
                if let Some((_, _, buf)) = self.stream_out.get_mut(i) {
                    let _ = crate::framing::encode_record(buf, &self.scratch[..size]);
                }
                continue;
            }
            let max_segments = self.max_segments;
            let extend = !t.mtu_probe
                && self.batches.last().is_some_and(|b| {
                    !b.sealed
                        && b.dst == t.destination
                        && b.count < max_segments
                        && b.end - b.start + size <= MAX_SEND_BYTES
                        && size <= b.segment
                        && (b.end - b.start) % b.segment == 0
                });
            self.out.extend_from_slice(&self.scratch[..size]);
            if extend {
                if let Some(b) = self.batches.last_mut() {
                    b.end += size;
                    b.count += 1;
                }
            } else {
                let start = self.out.len() - size;
                self.batches.push(Batch {
                    dst: t.destination,
                    start,
                    end: self.out.len(),
                    segment: size,
                    count: 1,
                    sealed: t.mtu_probe,
                });
            }
        }
        taken
    }

    /// Hands the collected carriage records to their carriages (never waits: a full carriage
    /// queue drops its packets, which the engine recovers like any loss).
    pub(crate) fn flush_carriages(&mut self) {
        for (addr, tx, buf) in self.stream_out.drain(..) {
            if tx.try_send(buf.freeze()).is_err() {
                trace!(%addr, "stream carriage queue full: packets dropped");
            }
        }
    }

    fn transmit(&self, i: usize) -> Option<Transmit<'_>> {
        let b = self.batches.get(i)?;
        trace!(dst = %b.dst, bytes = b.end - b.start, segments = b.count, "datagrams sent");
        Some(Transmit {
            destination: b.dst,
            ecn: None,
            contents: &self.out[b.start..b.end],
            segment_size: (b.count > 1).then_some(b.segment),
            src_ip: None,
        })
    }

    /// Sends every unsent batch, waiting while the socket buffer is full.
    pub(crate) async fn send_all(&mut self) {
        let Some(io) = self.io.clone() else {
            self.next = self.batches.len();
            return;
        };
        while let Some(transmit) = self.transmit(self.next) {
            if let Err(e) = io.send(&transmit).await {
                // A single unreachable destination must not stop the endpoint.
                warn!(error = %e, dst = %transmit.destination, "send failed");
            }
            self.next += 1;
        }
    }

    /// Sends the unsent batches the socket takes without waiting; false if some are left (the
    /// socket buffer is full: the driver sends them once it has room).
    pub(crate) fn try_send_all(&mut self) -> bool {
        let Some(io) = self.io.clone() else {
            self.next = self.batches.len();
            return true;
        };
        while let Some(transmit) = self.transmit(self.next) {
            match io.try_send(&transmit) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
                Err(e) => warn!(error = %e, dst = %transmit.destination, "send failed"),
            }
            self.next += 1;
        }
        true
    }
}
