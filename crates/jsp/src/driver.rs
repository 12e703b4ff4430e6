//! The driver task of a UDP endpoint: receives datagram batches (GRO), feeds them to the engine,
//! runs its timers, dispatches events to waiting tasks, and sends what the engine produces in
//! GSO batches. It holds the state lock only while calling the engine, never across a syscall.

use std::io::IoSliceMut;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};

use bytes::BytesMut;
use quinn_udp::{RecvMeta, Transmit};
use tracing::{debug, trace, warn};

use crate::state::Shared;
use crate::udp::{UdpIo, RECV_BATCH, RECV_SLOT};

/// Largest total size of one send call (a GSO batch is one UDP payload to the kernel: beyond
/// 65,507 bytes `sendmsg` fails with EMSGSIZE and the whole batch is lost).
const MAX_SEND_BYTES: usize = 65_507;

/// Most datagrams taken from the engine per batch before sending.
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

/// The worker that owns the connection a datagram is addressed to, when it is not this one
/// (only in a [`ServerPool`](crate::ServerPool)).
fn steer(st: &crate::state::State, datagram: &[u8]) -> Option<Weak<Shared>> {
    if st.workers.is_empty() {
        return None;
    }
    let w = st.proto.steering_target(datagram)?;
    st.workers.get(usize::from(w)).cloned()
}

/// Runs until the endpoint is dropped and has no connections, or the socket fails.
pub(crate) async fn run(shared: Arc<Shared>, io: UdpIo) {
    drive(&shared, io).await;
    // The socket is closed now (`drive` owned it): tell whoever waits.
    shared
        .stopped
        .store(true, std::sync::atomic::Ordering::Release);
    shared.stopped_notify.notify_waiters();
}

async fn drive(shared: &Arc<Shared>, io: UdpIo) {
    let mut recv_buf = vec![0u8; RECV_BATCH * RECV_SLOT];
    // Built once: the receive path allocates nothing per batch or per datagram.
    let mut iovs: Vec<IoSliceMut<'_>> = recv_buf
        .chunks_mut(RECV_SLOT)
        .map(IoSliceMut::new)
        .collect();
    let mut meta = [RecvMeta::default(); RECV_BATCH];
    let mut out = Vec::with_capacity(64 * 1024);
    let mut scratch = Vec::with_capacity(2048);
    let mut batches: Vec<Batch> = Vec::with_capacity(SEND_BATCH_DATAGRAMS);
    let mut forwards: Vec<(Weak<Shared>, SocketAddr, Vec<u8>)> = Vec::new();
    let mut stream_out: Vec<(
        SocketAddr,
        tokio::sync::mpsc::Sender<bytes::Bytes>,
        BytesMut,
    )> = Vec::new();
    let max_segments = io.max_gso_segments().max(1);
    debug!(addr = ?io.local_addr().ok(), gso = max_segments, "endpoint driver started");
    loop {
        let deadline = {
            let mut st = shared.lock();
            if st.driver_error.is_some() {
                return;
            }
            st.proto.poll_timeout().map(|t| shared.clock.std(t))
        };
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending::<()>().await,
            }
        };
        let taken_any;
        let received = {
            tokio::select! {
                biased;
                r = io.recv(&mut iovs, &mut meta) => Some(r),
                () = shared.wake.notified() => None,
                () = sleep => None,
            }
        };
        {
            let mut st = shared.lock();
            let now = shared.clock.now();
            match received {
                Some(Ok(n)) => {
                    for (i, m) in meta.iter().take(n).enumerate() {
                        let slot = &mut iovs[i][..m.len.min(RECV_SLOT)];
                        let stride = if m.stride == 0 { slot.len() } else { m.stride };
                        for datagram in slot.chunks_mut(stride) {
                            trace!(from = %m.addr, len = datagram.len(), "datagram received");
                            if let Some(w) = steer(&st, datagram) {
                                // Another worker's connection (its client moved): hand it over
                                // once our lock is released.
                                forwards.push((w, m.addr, datagram.to_vec()));
                                continue;
                            }
                            st.proto.handle_datagram(now, m.addr, datagram);
                        }
                    }
                }
                Some(Err(e)) => {
                    // ICMP errors surface as receive errors on some platforms: not fatal.
                    trace!(error = %e, "receive error");
                }
                None => {}
            }
            if st.proto.poll_timeout().is_some_and(|t| t <= now) {
                st.proto.handle_timeout(now);
            }
            st.dispatch(now, &shared.clock);
            // Collect what to send, grouping equal-size datagrams to one destination (GSO).
            out.clear();
            batches.clear();
            stream_out.clear();
            let mut taken = 0;
            while taken < SEND_BATCH_DATAGRAMS {
                let Some(t) = st.proto.poll_transmit(now, &mut scratch) else {
                    break;
                };
                taken += 1;
                let size = t.size;
                if let Some(peer) = st.stream_peers.get(&t.destination) {
                    // A TCP or WebSocket carriage: one record per datagram.
                    let buf = match stream_out.iter_mut().find(|(a, _, _)| *a == t.destination) {
                        Some((_, _, b)) => b,
                        None => {
                            stream_out.push((t.destination, peer.tx.clone(), BytesMut::new()));
                            match stream_out.last_mut() {
                                Some((_, _, b)) => b,
                                None => continue,
                            }
                        }
                    };
                    let _ = crate::framing::encode_record(buf, &scratch[..size]);
                    continue;
                }
                let extend = !t.mtu_probe
                    && batches.last().is_some_and(|b| {
                        !b.sealed
                            && b.dst == t.destination
                            && b.count < max_segments
                            && b.end - b.start + size <= MAX_SEND_BYTES
                            && size <= b.segment
                            && (b.end - b.start) % b.segment == 0
                    });
                out.extend_from_slice(&scratch[..size]);
                if extend {
                    if let Some(b) = batches.last_mut() {
                        b.end += size;
                        b.count += 1;
                    }
                } else {
                    let start = out.len() - size;
                    batches.push(Batch {
                        dst: t.destination,
                        start,
                        end: out.len(),
                        segment: size,
                        count: 1,
                        sealed: t.mtu_probe,
                    });
                }
            }
            st.dispatch(now, &shared.clock);
            taken_any = taken > 0;
        }
        for (worker, from, mut datagram) in forwards.drain(..) {
            let Some(target) = worker.upgrade() else {
                continue;
            };
            trace!(%from, "datagram steered to its worker");
            shared
                .steered
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            {
                let mut st = target.lock();
                let now = target.clock.now();
                st.proto.handle_datagram(now, from, &mut datagram);
            }
            target.wake.notify_one();
        }
        for (addr, tx, buf) in stream_out.drain(..) {
            if tx.try_send(buf.freeze()).is_err() {
                trace!(%addr, "stream carriage queue full: packets dropped");
            }
        }
        for b in &batches {
            trace!(dst = %b.dst, bytes = b.end - b.start, segments = b.count, "datagrams sent");
            let transmit = Transmit {
                destination: b.dst,
                ecn: None,
                contents: &out[b.start..b.end],
                segment_size: (b.count > 1).then_some(b.segment),
                src_ip: None,
            };
            if let Err(e) = io.send(&transmit).await {
                // A single unreachable destination must not stop the endpoint.
                warn!(error = %e, dst = %b.dst, "send failed");
            }
        }
        if !batches.is_empty() || taken_any {
            // More may be waiting (the batch limit was hit): go round without sleeping.
            shared.wake.notify_one();
        }
        let done = {
            let mut st = shared.lock();
            if st.proto.connection_count() == 0 {
                // Close packets of the last connections went out above.
                for w in st.idle_wakers.drain(..) {
                    w.wake();
                }
            }
            // Handles the application still holds do not keep the socket: they see the
            // connection ended.
            let abandoned = shared
                .endpoint_handles
                .load(std::sync::atomic::Ordering::Acquire)
                == 0;
            (st.shutting_down || abandoned) && st.proto.connection_count() == 0
        };
        if done {
            debug!("endpoint driver finished");
            return;
        }
    }
}
