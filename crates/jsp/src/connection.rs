//! A connection handle: cheap to clone, usable from any task. Every method locks the endpoint
//! state, calls the engine, and sends what the call produced (from the calling task when the
//! send path is free, else through the driver). Dropping
//! the last handle closes the connection gracefully.

use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use jsp_proto::connection::{HandshakeSummary, StreamPriority};
use jsp_proto::{
    CloseReason, ConnectionError, ConnectionHandle, ConnectionStats, Dir, SessionTicket,
    StreamApiError,
};

use crate::error::Error;
use crate::rate::{wake_after, Verdict};
use crate::state::{ConnState, Shared, State};
use crate::stream::{RecvStream, SendStream};

struct Inner {
    shared: Arc<Shared>,
    handle: ConnectionHandle,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        let now = self.shared.clock.now();
        let (last, forgotten) = match st.conns.get_mut(&self.handle) {
            Some(cs) => {
                cs.handles = cs.handles.saturating_sub(1);
                (cs.handles == 0, cs.forgotten)
            }
            None => (false, false),
        };
        if last && forgotten {
            // The engine let go first: now the handle may serve a new connection.
            st.conns.remove(&self.handle);
            st.proto.release_handle(self.handle);
        } else if last {
            if let Some(c) = st.proto.connection_mut(self.handle) {
                c.close(now, CloseReason::Normal, None);
            }
            self.shared.after_call(st);
        }
    }
}

/// A JetStreamProto connection.
#[derive(Clone)]
pub struct Connection {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("handle", &self.inner.handle)
            .finish_non_exhaustive()
    }
}

/// Runs `f` on the engine connection and the async state of `handle`; `Err` if it is gone.
fn with_conn<R>(
    st: &mut State,
    handle: ConnectionHandle,
    f: impl FnOnce(&mut jsp_proto::Connection, &mut ConnState) -> R,
) -> Result<R, ConnectionError> {
    let State { proto, conns, .. } = st;
    let cs = conns.entry(handle).or_default();
    match proto.connection_mut(handle) {
        Some(c) => Ok(f(c, cs)),
        None => Err(cs.error.clone().unwrap_or(ConnectionError::TimedOut)),
    }
}

impl Connection {
    pub(crate) fn new(shared: Arc<Shared>, handle: ConnectionHandle) -> Self {
        shared.lock().conns.entry(handle).or_default().handles += 1;
        Self {
            inner: Arc::new(Inner { shared, handle }),
        }
    }

    /// Runs `f` with the engine connection; then sends what it produced (see
    /// [`Shared::after_call`]).
    pub(crate) fn with<R>(
        &self,
        f: impl FnOnce(&mut jsp_proto::Connection, &mut ConnState) -> R,
    ) -> Result<R, ConnectionError> {
        let mut st = self.inner.shared.lock();
        let r = with_conn(&mut st, self.inner.handle, f);
        self.inner.shared.after_call(st);
        r
    }

    /// Polls `f` until it returns `Some`, registering the waker through it otherwise.
    pub(crate) async fn wait<R>(
        &self,
        mut f: impl FnMut(&mut jsp_proto::Connection, &mut ConnState, &mut Context<'_>) -> Option<R>,
    ) -> Result<R, ConnectionError> {
        poll_fn(|cx| {
            let mut st = self.inner.shared.lock();
            let r = with_conn(&mut st, self.inner.handle, |c, cs| f(c, cs, cx));
            self.inner.shared.after_call(st);
            match r {
                Ok(Some(v)) => Poll::Ready(Ok(v)),
                Ok(None) => Poll::Pending,
                Err(e) => Poll::Ready(Err(e)),
            }
        })
        .await
    }

    /// Waits until the handshake completed (the peer is authenticated) and says what was
    /// negotiated.
    pub async fn established(&self) -> Result<HandshakeSummary, ConnectionError> {
        self.wait(|_, cs, cx| {
            if let Some(s) = &cs.summary {
                return Some(Ok(s.clone()));
            }
            if let Some(e) = &cs.error {
                return Some(Err(e.clone()));
            }
            cs.connected_wakers.push(cx.waker().clone());
            None
        })
        .await?
    }

    /// Engine time now.
    pub(crate) fn engine_now(&self) -> jsp_proto::Instant {
        self.inner.shared.clock.now()
    }

    pub(crate) fn can_send_early_data(&self) -> bool {
        self.with(|c, _| c.can_send_early_data()).unwrap_or(false)
    }

    /// Opens a bidirectional stream (waits while the peer's stream limit is reached).
    pub async fn open_bi(&self) -> Result<(SendStream, RecvStream), Error> {
        let id = self.open(Dir::Bi, None).await?;
        Ok((
            SendStream::new(self.clone(), id),
            RecvStream::new(self.clone(), id),
        ))
    }

    /// Opens a unidirectional stream.
    pub async fn open_uni(&self) -> Result<SendStream, Error> {
        let id = self.open(Dir::Uni, None).await?;
        Ok(SendStream::new(self.clone(), id))
    }

    /// Opens a stream with a QoS class, priority and weight.
    pub async fn open_with_priority(
        &self,
        dir: Dir,
        priority: StreamPriority,
    ) -> Result<(SendStream, Option<RecvStream>), Error> {
        let id = self.open(dir, Some(priority)).await?;
        let recv = (dir == Dir::Bi).then(|| RecvStream::new(self.clone(), id));
        Ok((SendStream::new(self.clone(), id), recv))
    }

    async fn open(
        &self,
        dir: Dir,
        priority: Option<StreamPriority>,
    ) -> Result<jsp_proto::StreamId, Error> {
        let r = self
            .wait(|c, cs, cx| {
                let r = match priority {
                    Some(p) => c.open_stream_with(dir, p),
                    None => c.open_stream(dir),
                };
                match r {
                    Ok(id) => Some(Ok(id)),
                    Err(StreamApiError::LimitReached) => {
                        // MAX_STREAMS arrives with the peer's packets: retry then.
                        cs.write_wakers.push(cx.waker().clone());
                        None
                    }
                    Err(StreamApiError::NotOpen) if c.is_handshaking() => {
                        cs.connected_wakers.push(cx.waker().clone());
                        None
                    }
                    Err(_) => Some(Err(cs.error.clone().unwrap_or(
                        ConnectionError::LocallyClosed {
                            reason: CloseReason::Normal,
                        },
                    ))),
                }
            })
            .await?;
        Ok(r?)
    }

    /// Waits for the peer to open a bidirectional stream.
    pub async fn accept_bi(&self) -> Result<(SendStream, RecvStream), ConnectionError> {
        let now = self.inner.shared.clock.now();
        let id = self
            .wait(|c, cs, cx| match cs.incoming_bi.pop_front() {
                Some(id) => match charge_stream(c, cs, id, now) {
                    Verdict::Proceed => Some(Ok(id)),
                    Verdict::Wait(wait) => {
                        cs.incoming_bi.push_front(id);
                        wake_after(cx.waker().clone(), wait);
                        None
                    }
                    Verdict::Close => Some(Err(rate_close(c, now))),
                },
                None if cs.error.is_some() => cs.error.clone().map(Err),
                None => {
                    cs.accept_wakers.push(cx.waker().clone());
                    None
                }
            })
            .await??;
        Ok((
            SendStream::new(self.clone(), id),
            RecvStream::new(self.clone(), id),
        ))
    }

    /// Waits for the peer to open a unidirectional stream.
    pub async fn accept_uni(&self) -> Result<RecvStream, ConnectionError> {
        let now = self.inner.shared.clock.now();
        let id = self
            .wait(|c, cs, cx| match cs.incoming_uni.pop_front() {
                Some(id) => match charge_stream(c, cs, id, now) {
                    Verdict::Proceed => Some(Ok(id)),
                    Verdict::Wait(wait) => {
                        cs.incoming_uni.push_front(id);
                        wake_after(cx.waker().clone(), wait);
                        None
                    }
                    Verdict::Close => Some(Err(rate_close(c, now))),
                },
                None if cs.error.is_some() => cs.error.clone().map(Err),
                None => {
                    cs.accept_wakers.push(cx.waker().clone());
                    None
                }
            })
            .await??;
        Ok(RecvStream::new(self.clone(), id))
    }

    /// Sends an unreliable datagram (see `jsp_proto::Connection::send_datagram`).
    pub fn send_datagram(&self, data: &[u8]) -> Result<(), Error> {
        Ok(self.with(|c, _| c.send_datagram(data))??)
    }

    /// Like [`Connection::send_datagram`], dropping the oldest queued datagram when the queue
    /// is full instead of refusing the new one.
    pub fn send_datagram_drop_oldest(&self, data: &[u8]) -> Result<(), Error> {
        Ok(self.with(|c, _| c.send_datagram_drop_oldest(data))??)
    }

    /// Waits for the next datagram.
    pub async fn read_datagram(&self) -> Result<Vec<u8>, ConnectionError> {
        let now = self.inner.shared.clock.now();
        self.wait(|c, cs, cx| {
            let held = cs.held_datagram.take();
            if let Some(d) = held.or_else(|| c.read_datagram()) {
                let verdict = match cs.rate.as_mut() {
                    Some(r) => r.message(crate::clock::std_now(), d.len() as u64),
                    None => Verdict::Proceed,
                };
                return match verdict {
                    Verdict::Proceed => Some(Ok(d)),
                    Verdict::Wait(wait) => {
                        cs.held_datagram = Some(d);
                        wake_after(cx.waker().clone(), wait);
                        None
                    }
                    Verdict::Close => Some(Err(rate_close(c, now))),
                };
            }
            if let Some(e) = &cs.error {
                return Some(Err(e.clone()));
            }
            cs.datagram_wakers.push(cx.waker().clone());
            None
        })
        .await?
    }

    /// Closes gracefully: everything written is delivered first, then the close frame with
    /// `reason` and `message` is sent.
    pub fn close(&self, reason: CloseReason, message: Option<&str>) {
        let now = self.inner.shared.clock.now();
        let _ = self.with(|c, _| c.close(now, reason, message));
    }

    /// Closes at once; undelivered data is abandoned.
    pub fn abort(&self, reason: CloseReason, message: Option<&str>) {
        let now = self.inner.shared.clock.now();
        let _ = self.with(|c, _| c.abort(now, reason, message));
    }

    /// Waits until the connection has ended and says why.
    pub async fn closed(&self) -> ConnectionError {
        let r = self
            .wait(|c, cs, cx| {
                // Ended for the application once the close is recorded; the engine's closing or
                // draining period after that is internal.
                if let Some(e) = &cs.error {
                    return Some(e.clone());
                }
                if c.is_closed() {
                    return Some(ConnectionError::TimedOut);
                }
                cs.closed_wakers.push(cx.waker().clone());
                None
            })
            .await;
        match r {
            Ok(e) | Err(e) => e,
        }
    }

    /// Asks for a key update (PROTOCOL.md §9): fresh 1-RTT keys, derived from the current ones,
    /// as soon as the protocol's rules allow. [`ConnectionEvent::KeyUpdated`](crate::ConnectionEvent::KeyUpdated)
    /// reports it.
    pub fn update_keys(&self) {
        let _ = self.with(|c, _| c.request_key_update());
    }

    /// Subscribes to this connection's lifecycle events (established, streams opened by the
    /// peer, key updates, session tickets, the 0-RTT outcome, and the close). A subscriber sees
    /// the events published after it subscribed; subscribing to a connection that has already
    /// ended yields its [`ConnectionEvent::Closed`](crate::ConnectionEvent::Closed) at once.
    pub fn events(&self) -> crate::ConnectionEvents {
        let mut st = self.inner.shared.lock();
        let cs = st.conns.entry(self.inner.handle).or_default();
        match &cs.error {
            Some(e) => crate::ConnectionEvents::already_closed(e.clone()),
            None => crate::ConnectionEvents::new(cs.events.subscribe()),
        }
    }

    /// Changes how often this side sends heartbeats on a quiet connection (a phone saving
    /// battery sends them less often; zero disables them). See the engine's
    /// `Connection::set_heartbeat_interval`.
    pub fn set_heartbeat_interval(&self, interval: std::time::Duration) {
        let _ = self.with(|c, _| c.set_heartbeat_interval(interval));
    }

    /// Counters: RTT, congestion window, bytes, loss, MTU ...
    pub fn stats(&self) -> ConnectionStats {
        self.with(|c, _| c.stats()).unwrap_or_default()
    }

    /// How often the peer was held back by the endpoint's rate limits.
    pub fn rate_limited(&self) -> u64 {
        self.with(|_, cs| cs.rate.as_ref().map_or(0, |r| r.throttled))
            .unwrap_or(0)
    }

    /// The carriage this connection runs over.
    pub fn carriage(&self) -> crate::Carriage {
        let st = self.inner.shared.lock();
        let remote = st
            .proto
            .connection(self.inner.handle)
            .map(jsp_proto::Connection::remote_address);
        match remote.and_then(|r| st.stream_peers.get(&r)) {
            Some(p) => p.kind,
            None => crate::Carriage::Udp,
        }
    }

    /// The peer's address (for TCP and WebSocket carriages, the address of the TCP peer).
    pub fn remote_address(&self) -> Option<SocketAddr> {
        let st = self.inner.shared.lock();
        let remote = st
            .proto
            .connection(self.inner.handle)
            .map(jsp_proto::Connection::remote_address)?;
        if crate::carriage::is_synthetic(&remote) {
            return st.stream_peers.get(&remote).map(|p| p.real);
        }
        Some(remote)
    }

    /// What the handshake negotiated, once complete.
    pub fn handshake_summary(&self) -> Option<HandshakeSummary> {
        self.with(|_, cs| cs.summary.clone()).ok().flatten()
    }

    /// The newest session ticket the server issued (client side), to resume later with
    /// [`crate::Endpoint::connect_resuming`].
    pub fn session_ticket(&self) -> Option<SessionTicket> {
        self.with(|_, cs| cs.tickets.back().cloned()).ok().flatten()
    }

    /// Waits until the server has issued a session ticket (it does right after the handshake)
    /// and returns the newest; fails if the connection ends first.
    pub async fn wait_session_ticket(&self) -> Result<SessionTicket, ConnectionError> {
        self.wait(|_, cs, cx| {
            if let Some(t) = cs.tickets.back() {
                return Some(Ok(t.clone()));
            }
            if let Some(e) = &cs.error {
                return Some(Err(e.clone()));
            }
            cs.ticket_wakers.push(cx.waker().clone());
            None
        })
        .await?
    }
}

/// Charges a newly accepted peer stream as one message.
fn charge_stream(
    _c: &mut jsp_proto::Connection,
    cs: &mut ConnState,
    id: jsp_proto::StreamId,
    _now: jsp_proto::Instant,
) -> Verdict {
    if cs.charged_streams.contains(&id) {
        return Verdict::Proceed;
    }
    let verdict = match cs.rate.as_mut() {
        Some(r) => r.message(crate::clock::std_now(), 0),
        None => Verdict::Proceed,
    };
    if verdict == Verdict::Proceed {
        cs.charged_streams.insert(id);
    }
    verdict
}

/// Closes the connection because the peer exceeded its rate limit.
pub(crate) fn rate_close(
    c: &mut jsp_proto::Connection,
    now: jsp_proto::Instant,
) -> ConnectionError {
    c.abort(
        now,
        CloseReason::RateLimitExceeded,
        Some("rate limit exceeded"),
    );
    ConnectionError::LocallyClosed {
        reason: CloseReason::RateLimitExceeded,
    }
}
