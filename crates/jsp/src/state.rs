//! State shared between an endpoint's driver task and the application's handles: the sans-IO
//! engine behind one mutex, plus, per connection, the wakers of tasks waiting on it and the
//! events the engine produced that the application has not consumed yet.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::task::Waker;

use jsp_proto::connection::HandshakeSummary;
use jsp_proto::{ConnectionError, ConnectionHandle, Event, SessionTicket, StreamId};
use tokio::sync::Notify;

use crate::clock::Clock;
use crate::events::ConnectionEvent;
use crate::send_path::SendPath;

/// Everything the driver and the handles share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    /// Wakes the driver (the application queued data, opened or closed something).
    pub(crate) wake: Notify,
    pub(crate) clock: Clock,
    /// Live [`Endpoint`](crate::Endpoint) handles: with none left and no connection, the driver
    /// stops and the socket is released.
    pub(crate) endpoint_handles: std::sync::atomic::AtomicUsize,
    /// The driver stopped and the socket is closed.
    pub(crate) stopped: std::sync::atomic::AtomicBool,
    /// Woken when `stopped` becomes true.
    pub(crate) stopped_notify: Notify,
    /// Datagrams this endpoint handed to another worker of its pool.
    pub(crate) steered: std::sync::atomic::AtomicU64,
    /// The send path, shared by the driver and application calls. Lock order: this, then
    /// `state`; application calls only ever `try_lock` it.
    pub(crate) send: tokio::sync::Mutex<SendPath>,
}

impl Shared {
    /// Locks the state. A panic while holding the lock cannot leave the engine half-updated in a
    /// way that matters more than the panic itself, so a poisoned lock is used as is.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Finishes an application call that may have given the engine something to do (`st` is the
    /// lock it was made under): dispatches the events it raised and, when the caller is not a
    /// tokio task, the driver is idle and the send path free, sends the packets the call produced
    /// from the calling thread (one thread hand-off less for a request, a response or a first
    /// flight). It wakes the driver when the driver must act: its timer has to fire earlier, the
    /// path was busy, the socket buffer is full, or this thread just sent (the driver then takes
    /// whatever the application queues next, in batches, so a burst of small writes or
    /// datagrams is not sent one syscall each).
    pub(crate) fn after_call(&self, st: MutexGuard<'_, State>) {
        self.finish_call(st, false);
    }

    /// [`Self::after_call`] for a call whose packets nothing would batch with and whose latency
    /// the user waits on: a connection's first flight. It sends from the calling thread (task or
    /// not) whenever the send path is free, even if the driver has not gone idle since the last
    /// inline send. Measured on the handshake benchmark: the driver was still busy with the
    /// previous connection's close in most connects, and the ClientHello then waited for the
    /// driver's thread to be scheduled (100 us or more on two busy cores).
    pub(crate) fn after_urgent_call(&self, st: MutexGuard<'_, State>) {
        self.finish_call(st, true);
    }

    fn finish_call(&self, mut st: MutexGuard<'_, State>, urgent: bool) {
        // A spawned task wakes the driver onto its own worker thread, where it runs as soon as
        // the task yields and batches what the task and its neighbours queued: only a caller
        // outside any task (a thread blocked in `block_on`, like `#[tokio::main]`'s) saves a
        // thread hand-off by sending itself. With tasks sending inline, 100 concurrent streams
        // ran at 0.45x quinn's rate instead of 0.7x.
        if !urgent && (!st.inline_ok || tokio::task::try_id().is_some()) {
            // The driver is awake (or will be): it goes round again and takes ours.
            unlock_and_wake(st);
            self.wake.notify_one();
            return;
        }
        let Ok(mut path) = self.send.try_lock() else {
            // The driver (or another task) is sending: it goes round again and takes ours.
            unlock_and_wake(st);
            self.wake.notify_one();
            return;
        };
        if path.has_unsent() || st.driver_error.is_some() {
            unlock_and_wake(st);
            drop(path);
            self.wake.notify_one();
            return;
        }
        let now = self.clock.now();
        st.dispatch(now, &self.clock);
        let taken = path.collect(&mut st, now);
        if taken > 0 {
            // Sending can raise events (a key update it initiated).
            st.dispatch(now, &self.clock);
            // Until the driver has run and gone idle again, what follows goes through it.
            st.inline_ok = false;
        }
        let timer_earlier = match (st.proto.poll_timeout(), st.driver_deadline) {
            (Some(t), Some(armed)) => t < armed,
            (Some(_), None) => true,
            (None, _) => false,
        };
        let mut wakes = std::mem::take(&mut st.pending_wakes);
        let mut later = std::mem::take(&mut st.later_wakes);
        drop(st);
        wake_now(&mut wakes);
        path.flush_carriages();
        let all_sent = path.try_send_all();
        drop(path);
        wake_now(&mut later);
        if timer_earlier || !all_sent || taken > 0 {
            self.wake.notify_one();
        }
    }
}

/// Releases the state lock, then wakes the tasks its dispatches made ready.
pub(crate) fn unlock_and_wake(mut st: MutexGuard<'_, State>) {
    if st.pending_wakes.is_empty() && st.later_wakes.is_empty() {
        return;
    }
    let mut wakes = std::mem::take(&mut st.pending_wakes);
    wakes.append(&mut st.later_wakes);
    drop(st);
    wake_now(&mut wakes);
}

/// The engine and the per-connection bookkeeping.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) proto: jsp_proto::Endpoint,
    /// Boxed: the hash table spreads its entries over all of its capacity, so inline states
    /// would keep the table's slack resident too (about 500 bytes per connection).
    pub(crate) conns: HashMap<ConnectionHandle, Box<ConnState>>,
    /// Accepted connections not yet handed to `Endpoint::accept`.
    pub(crate) incoming: VecDeque<ConnectionHandle>,
    pub(crate) accept_wakers: Vec<Waker>,
    /// Tasks in [`Endpoint::wait_idle`](crate::Endpoint::wait_idle).
    pub(crate) idle_wakers: Vec<Waker>,
    /// Set when the driver stopped (socket error or shutdown).
    pub(crate) driver_error: Option<String>,
    /// The endpoint is shutting down: refuse new connections.
    pub(crate) shutting_down: bool,
    /// TCP and WebSocket carriages by synthetic address.
    pub(crate) stream_peers: HashMap<std::net::SocketAddr, crate::carriage::StreamPeer>,
    pub(crate) next_stream_peer: u64,
    /// Accepted carriages whose handshake has not completed, and their limits.
    pub(crate) pending_carriages: crate::carriage::PendingCarriages,
    /// Rate limits applied to the peers of accepted connections.
    pub(crate) rate: Option<crate::rate::EndpointRate>,
    /// The circuit breaker on new handshakes, if one is installed.
    pub(crate) breaker: Option<crate::breaker::SharedBreaker>,
    /// The workers of a [`ServerPool`](crate::ServerPool), indexed by CID prefix (empty for a
    /// lone endpoint): 1-RTT datagrams for another worker's connections are handed to it.
    pub(crate) workers: Vec<std::sync::Weak<Shared>>,
    /// The engine deadline the driver's timer is set for (`None`: no timer). An application
    /// call that brings the engine's deadline before it wakes the driver.
    pub(crate) driver_deadline: Option<jsp_proto::Instant>,
    /// Application calls may send from their own task: the driver is idle (set when it goes to
    /// wait, cleared by a call that sent).
    pub(crate) inline_ok: bool,
    /// A dispatch woke a waiter that may answer at once (a stream or datagram reader, a stream
    /// acceptor, a blocked writer): the driver yields once before collecting (see the driver).
    pub(crate) woke_data_waiters: bool,
    /// Tasks a dispatch made ready, woken once the state lock is released (a woken task on
    /// another thread would block on it at once): see [`State::take_wakes`].
    pub(crate) pending_wakes: Vec<Waker>,
    /// Tasks a dispatch made ready that nothing waits on before the packets being sent leave:
    /// acceptors of connections whose handshake just started, session-ticket waiters. The driver
    /// wakes them after it sent (see [`State::take_later_wakes`]).
    pub(crate) later_wakes: Vec<Waker>,
}

/// Per-connection state the async layer keeps.
#[derive(Debug, Default)]
pub(crate) struct ConnState {
    pub(crate) summary: Option<HandshakeSummary>,
    pub(crate) error: Option<ConnectionError>,
    pub(crate) connected_wakers: Vec<Waker>,
    pub(crate) incoming_bi: VecDeque<StreamId>,
    pub(crate) incoming_uni: VecDeque<StreamId>,
    pub(crate) accept_wakers: Vec<Waker>,
    pub(crate) readable: HashSet<StreamId>,
    pub(crate) read_wakers: HashMap<StreamId, Waker>,
    pub(crate) stream_resets: HashMap<StreamId, u64>,
    pub(crate) write_wakers: Vec<Waker>,
    /// Our finished send streams whose handle is alive: their acknowledgement is recorded for
    /// [`SendStream::acknowledged`](crate::SendStream::acknowledged).
    pub(crate) ack_watch: HashSet<StreamId>,
    /// Watched send streams whose data and end the peer acknowledged.
    pub(crate) acked_streams: HashSet<StreamId>,
    /// Our send streams the peer stopped, with its code.
    pub(crate) stopped_streams: HashMap<StreamId, u64>,
    /// Tasks waiting for a send stream to be acknowledged.
    pub(crate) ack_wakers: HashMap<StreamId, Waker>,
    pub(crate) datagram_wakers: Vec<Waker>,
    pub(crate) tickets: VecDeque<SessionTicket>,
    pub(crate) ticket_wakers: Vec<Waker>,
    pub(crate) closed_wakers: Vec<Waker>,
    /// Application handles alive; the connection is closed and forgotten at zero.
    pub(crate) handles: usize,
    /// The connection's tracing span (peer, connection ID, carriage); lifecycle events are logged
    /// inside it.
    pub(crate) span: Option<tracing::Span>,
    /// The peer's rate budget (accepted connections on a rate-limited endpoint).
    pub(crate) rate: Option<crate::rate::ConnRate>,
    /// Streams opened by the peer that were charged as messages.
    pub(crate) charged_streams: HashSet<StreamId>,
    /// A datagram read from the engine but held back by the rate limit.
    pub(crate) held_datagram: Option<Vec<u8>>,
    /// An accepted handshake the circuit breaker counts as in flight.
    pub(crate) breaker_in_flight: bool,
    /// The engine forgot the connection; its handle is released with the last application
    /// handle.
    pub(crate) forgotten: bool,
    /// Subscribers to [`Connection::events`](crate::Connection::events).
    pub(crate) events: crate::events::EventPublisher,
}

impl State {
    /// The span of connection `h`, created on first use.
    fn span_of(&mut self, h: ConnectionHandle) -> tracing::Span {
        let State {
            proto,
            conns,
            stream_peers,
            ..
        } = self;
        let cs = conns.entry(h).or_default();
        if let Some(s) = &cs.span {
            return s.clone();
        }
        let span = match proto.connection(h) {
            Some(c) => {
                let remote = c.remote_address();
                let (carriage, peer) = match stream_peers.get(&remote) {
                    Some(p) => (p.kind, p.real),
                    None => (crate::Carriage::Udp, remote),
                };
                tracing::info_span!(
                    "conn",
                    side = ?c.side(),
                    %peer,
                    cid = ?c.local_cid(),
                    ?carriage
                )
            }
            None => tracing::info_span!("conn", handle = h.0),
        };
        cs.span = Some(span.clone());
        span
    }
}

/// Queues every waker of `w` on `pending` (woken after the lock is released).
fn defer_all(pending: &mut Vec<Waker>, w: &mut Vec<Waker>) {
    pending.append(w);
}

/// Wakes and removes every waker of `wakes` (the state lock must not be held: a woken task on
/// another thread would block on it at once).
pub(crate) fn wake_now(wakes: &mut Vec<Waker>) {
    for w in wakes.drain(..) {
        w.wake();
    }
}

impl State {
    /// Moves the wakers dispatches queued to `into` (which keeps its capacity): the caller wakes
    /// them with [`wake_now`] once it released the lock.
    pub(crate) fn take_wakes(&mut self, into: &mut Vec<Waker>) {
        into.append(&mut self.pending_wakes);
    }

    /// Moves the wakers that can wait until the packets are sent to `into`.
    pub(crate) fn take_later_wakes(&mut self, into: &mut Vec<Waker>) {
        into.append(&mut self.later_wakes);
    }

    /// Moves engine events into per-connection state and queues the wakers of whoever waits on
    /// them on `pending_wakes` (see [`State::take_wakes`]).
    pub(crate) fn dispatch(&mut self, now: jsp_proto::Instant, clock: &crate::clock::Clock) {
        while let Some(ev) = self.proto.poll_event() {
            let h = match ev {
                jsp_proto::EndpointEvent::NewConnection(h) => h,
                jsp_proto::EndpointEvent::Forgotten(h) => {
                    self.forget(h);
                    continue;
                }
            };
            let rate = self.rate.as_ref().and_then(crate::rate::ConnRate::new);
            let cs = self.conns.entry(h).or_default();
            cs.rate = rate;
            if let Some(b) = &self.breaker {
                crate::breaker::record(b, clock, now, None);
                cs.breaker_in_flight = true;
            }
            if self.shutting_down {
                if let Some(c) = self.proto.connection_mut(h) {
                    c.abort(
                        now,
                        jsp_proto::CloseReason::GoingAway,
                        Some("server shutting down"),
                    );
                }
                continue;
            }
            self.incoming.push_back(h);
            // The application can do nothing with it before the handshake completes: its wake-up
            // waits until the answer to the ClientHello is sent.
            defer_all(&mut self.later_wakes, &mut self.accept_wakers);
        }
        while let Some(h) = self.proto.poll_active() {
            self.dispatch_one(h, now, clock);
        }
    }

    /// The engine forgot connection `h`: waiters learn it ended; its state and handle go once no
    /// application handle refers to it.
    fn forget(&mut self, h: ConnectionHandle) {
        match self.conns.get_mut(&h) {
            Some(cs) => {
                if cs.error.is_none() {
                    cs.error = Some(ConnectionError::TimedOut);
                }
                cs.forgotten = true;
                wake_everyone(cs, &mut self.later_wakes);
                if cs.handles == 0 {
                    self.conns.remove(&h);
                    self.proto.release_handle(h);
                }
            }
            None => self.proto.release_handle(h),
        }
    }

    /// Dispatches the events of one connection.
    pub(crate) fn dispatch_one(
        &mut self,
        h: ConnectionHandle,
        now: jsp_proto::Instant,
        clock: &crate::clock::Clock,
    ) {
        let breaker = self.breaker.clone();
        if self.proto.connection(h).is_none() {
            self.forget(h);
            return;
        }
        let span = self.span_of(h);
        let _entered = span.enter();
        let remote = self.proto.connection(h).map(|c| c.remote_address());
        let cs = self.conns.entry(h).or_default();
        let pending = &mut self.pending_wakes;
        let mut any = false;
        while let Some(ev) = self.proto.poll_connection_event(h) {
            any = true;
            tracing::trace!(event = ?ev, "connection event");
            match ev {
                Event::Connected(s) => {
                    tracing::info!(
                        suite = ?s.suite,
                        group = s.group,
                        resumed = s.resumed,
                        peer_identity = ?s.peer.as_ref().map(|p| p.fingerprint.to_string()),
                        "connection established"
                    );
                    cs.events
                        .publish(|| ConnectionEvent::Established(s.clone()));
                    cs.summary = Some(s);
                    defer_all(pending, &mut cs.connected_wakers);
                    if let Some(p) = remote.and_then(|r| self.stream_peers.get(&r)) {
                        p.handshake_completed();
                    }
                    if let (true, Some(b)) = (cs.breaker_in_flight, &breaker) {
                        cs.breaker_in_flight = false;
                        crate::breaker::record(
                            b,
                            clock,
                            now,
                            Some(crate::limits::HandshakeOutcome::Completed),
                        );
                    }
                }
                Event::StreamOpened(id) => {
                    cs.events.publish(|| ConnectionEvent::StreamOpened(id));
                    match id.dir() {
                        jsp_proto::Dir::Bi => cs.incoming_bi.push_back(id),
                        jsp_proto::Dir::Uni => cs.incoming_uni.push_back(id),
                    }
                    defer_all(pending, &mut cs.accept_wakers);
                    self.woke_data_waiters = true;
                }
                Event::StreamReadable(id) | Event::StreamSkipped { id, .. } => {
                    self.woke_data_waiters = true;
                    cs.readable.insert(id);
                    if let Some(w) = cs.read_wakers.remove(&id) {
                        pending.push(w);
                    }
                }
                Event::StreamReset { id, code } => {
                    cs.stream_resets.insert(id, code);
                    if let Some(w) = cs.read_wakers.remove(&id) {
                        pending.push(w);
                    }
                }
                Event::StreamStopped { id, code } => {
                    if cs.ack_watch.contains(&id) {
                        cs.stopped_streams.insert(id, code);
                    }
                    if let Some(w) = cs.ack_wakers.remove(&id) {
                        pending.push(w);
                    }
                    defer_all(pending, &mut cs.write_wakers);
                }
                Event::StreamAcknowledged(id) => {
                    // Kept only while the stream's handle is alive: bounded by open handles.
                    if cs.ack_watch.contains(&id) {
                        cs.acked_streams.insert(id);
                    }
                    if let Some(w) = cs.ack_wakers.remove(&id) {
                        pending.push(w);
                    }
                }
                Event::DatagramReceived => {
                    self.woke_data_waiters = true;
                    defer_all(pending, &mut cs.datagram_wakers);
                }
                Event::SessionTicket(t) => {
                    if cs.tickets.len() >= 8 {
                        cs.tickets.pop_front();
                    }
                    cs.tickets.push_back(*t);
                    defer_all(&mut self.later_wakes, &mut cs.ticket_wakers);
                    cs.events.publish(|| ConnectionEvent::SessionTicket);
                }
                Event::Closed(e) => {
                    tracing::info!(reason = %e, "connection closed");
                    if let (true, Some(b)) = (cs.breaker_in_flight, &breaker) {
                        cs.breaker_in_flight = false;
                        let outcome = if e == ConnectionError::TimedOut {
                            crate::limits::HandshakeOutcome::TimedOut
                        } else {
                            crate::limits::HandshakeOutcome::Failed
                        };
                        crate::breaker::record(b, clock, now, Some(outcome));
                    }
                    cs.events.publish(|| ConnectionEvent::Closed(e.clone()));
                    cs.error = Some(e);
                    // Nothing its waiters do can join this round's packets (the connection is
                    // closed): they run after the driver sent, not before. A client's close
                    // often arrives in one batch with its next ClientHello, whose answer the
                    // wake-ups of the old connection's tasks delayed by 20-40 us.
                    wake_everyone(cs, &mut self.later_wakes);
                }
                Event::KeyUpdated { generation } => {
                    tracing::debug!(generation, "key update");
                    cs.events
                        .publish(|| ConnectionEvent::KeyUpdated { generation });
                }
                Event::ZeroRttRejected => {
                    tracing::debug!("0-RTT data refused by the server: resent as 1-RTT");
                    cs.events.publish(|| ConnectionEvent::ZeroRttRejected);
                }
                Event::EarlyDataAccepted => {
                    cs.events.publish(|| ConnectionEvent::EarlyDataAccepted);
                }
                _ => {}
            }
        }
        // Acknowledgements may have freed send buffer space: let blocked writers retry.
        if any || !cs.write_wakers.is_empty() {
            self.woke_data_waiters |= !cs.write_wakers.is_empty();
            defer_all(pending, &mut cs.write_wakers);
        }
    }
}

fn wake_everyone(cs: &mut ConnState, pending: &mut Vec<Waker>) {
    defer_all(pending, &mut cs.connected_wakers);
    defer_all(pending, &mut cs.accept_wakers);
    defer_all(pending, &mut cs.write_wakers);
    defer_all(pending, &mut cs.datagram_wakers);
    defer_all(pending, &mut cs.closed_wakers);
    defer_all(pending, &mut cs.ticket_wakers);
    pending.extend(cs.read_wakers.drain().map(|(_, w)| w));
    pending.extend(cs.ack_wakers.drain().map(|(_, w)| w));
}
