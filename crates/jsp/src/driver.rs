//! The driver task of a UDP endpoint: receives datagram batches (GRO), feeds them to the engine,
//! runs its timers, dispatches events to waiting tasks, and sends what the engine produces in
//! GSO batches through the send path it shares with application calls
//! ([`SendPath`](crate::send_path::SendPath)). It holds the state lock only while calling the
//! engine, never across a syscall.

use std::io::IoSliceMut;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};

use quinn_udp::RecvMeta;
use tracing::{debug, trace};

use crate::state::{wake_now, Shared};
use crate::udp::{UdpIo, RECV_BATCH, RECV_SLOT};

/// The worker that owns the connection a datagram is addressed to, when it is not this one
/// (only in a [`ServerPool`](crate::ServerPool)).
fn steer(st: &crate::state::State, datagram: &[u8]) -> Option<Weak<Shared>> {
    if st.workers.is_empty() {
        return None;
    }
    let w = st.proto.steering_target(datagram)?;
    st.workers.get(usize::from(w)).cloned()
}

/// Handling a receive batch that took at least this long is followed by one look for datagrams
/// that arrived meanwhile (see the receive loop in [`drive`]). Ordinary datagrams take a few
/// microseconds; a handshake flight's cryptography takes 50-150.
const LONG_HANDLING: std::time::Duration = std::time::Duration::from_micros(25);

/// Rounds in a row the driver goes round at once for a timer already due, before it waits for
/// the runtime's timer instead.
const MAX_DUE_ROUNDS: u32 = 8;

/// Hands each datagram of a receive batch (`meta`, with GRO segments split at their stride) to
/// the engine, or queues it for the worker that owns its connection.
fn handle_batch(
    st: &mut crate::state::State,
    now: jsp_proto::Instant,
    meta: &[RecvMeta],
    iovs: &mut [IoSliceMut<'_>],
    forwards: &mut Vec<(Weak<Shared>, SocketAddr, Vec<u8>)>,
) {
    for (m, iov) in meta.iter().zip(iovs.iter_mut()) {
        let slot = &mut iov[..m.len.min(RECV_SLOT)];
        if slot.is_empty() {
            // An empty datagram (anyone can send one) carries nothing; `chunks_mut(0)` would
            // panic and stop the driver.
            continue;
        }
        let stride = if m.stride == 0 { slot.len() } else { m.stride };
        for datagram in slot.chunks_mut(stride) {
            trace!(from = %m.addr, len = datagram.len(), "datagram received");
            if let Some(w) = steer(st, datagram) {
                // Another worker's connection (its client moved): hand it over once our lock
                // is released.
                forwards.push((w, m.addr, datagram.to_vec()));
                continue;
            }
            st.proto.handle_datagram(now, m.addr, datagram);
        }
    }
}

/// Runs until the endpoint is dropped and has no connections, or the socket fails.
pub(crate) async fn run(shared: Arc<Shared>, io: Arc<UdpIo>) {
    drive(&shared, &io).await;
    // Close the socket (the send path holds the other reference), then tell whoever waits.
    shared.send.lock().await.io = None;
    drop(io);
    shared
        .stopped
        .store(true, std::sync::atomic::Ordering::Release);
    shared.stopped_notify.notify_waiters();
}

async fn drive(shared: &Arc<Shared>, io: &UdpIo) {
    let mut recv_buf = vec![0u8; RECV_BATCH * RECV_SLOT];
    // Built once: the receive path allocates nothing per batch or per datagram.
    let mut iovs: Vec<IoSliceMut<'_>> = recv_buf
        .chunks_mut(RECV_SLOT)
        .map(IoSliceMut::new)
        .collect();
    let mut meta = [RecvMeta::default(); RECV_BATCH];
    let mut forwards: Vec<(Weak<Shared>, SocketAddr, Vec<u8>)> = Vec::new();
    // Tasks this round's dispatches made ready, woken before and after its sends (reused: no
    // allocation per round).
    let mut wakes: Vec<std::task::Waker> = Vec::new();
    let mut later: Vec<std::task::Waker> = Vec::new();
    debug!(addr = ?io.local_addr().ok(), gso = io.max_gso_segments(), "endpoint driver started");
    let mut due_rounds = 0u32;
    loop {
        let (deadline, due) = {
            let mut st = shared.lock();
            if st.driver_error.is_some() {
                return;
            }
            let deadline = st.proto.poll_timeout();
            st.driver_deadline = deadline;
            // Going to wait: application calls may send by themselves until one does.
            st.inline_ok = true;
            let due = deadline.is_some_and(|t| t <= shared.clock.now());
            (deadline.map(|t| shared.clock.std(t)), due)
        };
        // Already due (the rest of a server's first flight, after its ServerHello left): go
        // round at once, as a runtime timer rounds up to the next millisecond. A few times in a
        // row at most: a timer that stayed due would otherwise spin this thread.
        due_rounds = if due { due_rounds + 1 } else { 0 };
        let at_once = due && due_rounds <= MAX_DUE_ROUNDS;
        let sleep = async {
            match deadline {
                Some(_) if at_once => {}
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending::<()>().await,
            }
        };
        let received = {
            tokio::select! {
                biased;
                r = io.recv(&mut iovs, &mut meta) => Some(r),
                () = shared.wake.notified() => None,
                () = sleep => None,
            }
        };
        // A receive batch with room to spare: the endpoint is not saturated.
        let light_batch = matches!(&received, Some(Ok(n)) if *n < RECV_BATCH);
        let mut received = received;
        let mut woke_data_waiters = false;
        let mut looked_again = false;
        loop {
            let took_long = {
                let mut st = shared.lock();
                let now = shared.clock.now();
                match received {
                    Some(Ok(n)) => handle_batch(&mut st, now, &meta[..n], &mut iovs, &mut forwards),
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
                st.take_wakes(&mut wakes);
                st.take_later_wakes(&mut later);
                woke_data_waiters |= std::mem::take(&mut st.woke_data_waiters);
                shared.clock.now().saturating_duration_since(now) >= LONG_HANDLING
            };
            // A receive batch whose handling took long (a ServerHello's key exchange): what
            // arrived meanwhile (the rest of the server's flight) is handled too before anything
            // is sent, so that one datagram answers both (no acknowledgement of the first part
            // alone ahead of the Finished). Once only, and not on a saturated endpoint: under
            // load, sending sooner counts more (looking up to four times cost 15% of the
            // handshakes per second).
            if looked_again || !light_batch || !took_long {
                break;
            }
            looked_again = true;
            match io.try_recv(&mut iovs, &mut meta) {
                Ok(n) => received = Some(Ok(n)),
                // Nothing more (or an error the next round's receive reports).
                Err(_) => break,
            }
        }
        wake_now(&mut wakes);
        for (worker, from, mut datagram) in forwards.drain(..) {
            let Some(target) = worker.upgrade() else {
                continue;
            };
            trace!(%from, "datagram steered to its worker");
            shared
                .steered
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let st = {
                let mut st = target.lock();
                let now = target.clock.now();
                st.proto.handle_datagram(now, from, &mut datagram);
                st
            };
            target.after_call(st);
        }
        if light_batch && woke_data_waiters {
            // Let the tasks this batch woke (on this worker) run first: what they write (an
            // answer, a stream's next message) then leaves in the same batches as the
            // acknowledgements collected below, instead of a round later. On a saturated
            // endpoint (full batches) the driver keeps going instead. With 100 streams opening,
            // echoing and closing at once: 0.6-0.8x quinn's rate before, 0.86-0.98x with it; bulk
            // transfer unchanged. Only when the batch delivered data or freed a writer: a
            // handshake flight (the client's Finished) leaves at once, and the application
            // sees the connection established meanwhile.
            tokio::task::yield_now().await;
        }
        // Application calls send while the path is free (the tasks just woken may already have
        // sent what their calls and this batch produced); from here on, this task sends, in
        // order, what is left: first any batches the socket refused them, then the engine's.
        let mut path = shared.send.lock().await;
        path.send_all().await;
        let taken = {
            let mut st = shared.lock();
            let now = shared.clock.now();
            let taken = path.collect(&mut st, now);
            // Sending can raise events (a key update it initiated).
            st.dispatch(now, &shared.clock);
            st.take_wakes(&mut wakes);
            st.take_later_wakes(&mut later);
            taken
        };
        wake_now(&mut wakes);
        path.flush_carriages();
        path.send_all().await;
        drop(path);
        // Acceptors of new handshakes and ticket waiters run after the packets left: the answer
        // to a ClientHello does not wait behind the accepting task's wake-up (on two busy cores
        // the woken worker thread preempted the driver before its `sendmsg`).
        wake_now(&mut later);
        if taken > 0 {
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
