//! The driver task of a UDP endpoint: receives datagram batches (GRO), feeds them to the engine,
//! runs its timers, dispatches events to waiting tasks, and sends what the engine produces in
//! GSO batches. It holds the state lock only while calling the engine, never across a syscall.

use std::io::IoSliceMut;
use std::net::SocketAddr;
use std::sync::Arc;

use quinn_udp::{RecvMeta, Transmit};
use tracing::{debug, trace, warn};

use crate::state::Shared;
use crate::udp::{UdpIo, RECV_BATCH, RECV_SLOT};

/// Most datagrams taken from the engine per batch before sending.
const SEND_BATCH_DATAGRAMS: usize = 64;

/// One send unit: a run of equal-size datagrams to one destination (the last may be shorter).
struct Batch {
    dst: SocketAddr,
    start: usize,
    end: usize,
    segment: usize,
    count: usize,
}

/// Runs until the endpoint is dropped and has no connections, or the socket fails.
pub(crate) async fn run(shared: Arc<Shared>, io: UdpIo) {
    let mut recv_buf = vec![0u8; RECV_BATCH * RECV_SLOT];
    let mut meta = [RecvMeta::default(); RECV_BATCH];
    let mut out = Vec::with_capacity(64 * 1024);
    let mut scratch = Vec::with_capacity(2048);
    let mut batches: Vec<Batch> = Vec::with_capacity(SEND_BATCH_DATAGRAMS);
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
        let received = {
            let mut iovs: Vec<IoSliceMut<'_>> = recv_buf
                .chunks_mut(RECV_SLOT)
                .map(IoSliceMut::new)
                .collect();
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
                        let slot =
                            &mut recv_buf[i * RECV_SLOT..i * RECV_SLOT + m.len.min(RECV_SLOT)];
                        let stride = if m.stride == 0 { slot.len() } else { m.stride };
                        for datagram in slot.chunks_mut(stride) {
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
            st.dispatch(now);
            // Collect what to send, grouping equal-size datagrams to one destination (GSO).
            out.clear();
            batches.clear();
            while batches.len() < SEND_BATCH_DATAGRAMS {
                let Some(t) = st.proto.poll_transmit(now, &mut scratch) else {
                    break;
                };
                let size = t.size;
                let extend = batches.last().is_some_and(|b| {
                    b.dst == t.destination
                        && b.count < max_segments
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
                    });
                }
            }
            st.dispatch(now);
        }
        for b in &batches {
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
        if !batches.is_empty() {
            // More may be waiting (the batch limit was hit): go round without sleeping.
            shared.wake.notify_one();
        }
        let done = {
            let st = shared.lock();
            st.shutting_down && st.conns.is_empty() && st.proto.connection_count() == 0
        };
        if done {
            debug!("endpoint driver finished");
            return;
        }
    }
}
