//! Automatic reconnect for clients: a [`ReconnectingClient`] keeps one connection to a server
//! alive, reconnecting with exponential backoff and full jitter when it fails, resuming the
//! session with the last session ticket (so queued data goes out as 0-RTT where the carriage
//! allows), and never losing a message the application queued.
//!
//! Each message travels on its own unidirectional stream. A message stays queued until the peer
//! acknowledged all of it and the end of its stream; when the connection fails first, it is sent
//! again on the next connection. Delivery is therefore at least once: a message whose
//! acknowledgement was lost with the connection arrives twice, and messages on different streams
//! may arrive out of order. Applications that need exactly-once delivery number their messages.
//! What happened is reported as [`ReconnectEvent`]s.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use jsp_proto::{ClientConfig, CloseReason, ConnectionError, SessionTicket};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, Notify};

use crate::backoff::{Backoff, BackoffConfig, BackoffError};
use crate::{Carriage, Connection, Endpoint, Error, Targets};

/// Default number of messages held (queued or unacknowledged) before [`ReconnectingClient::send`]
/// refuses more.
pub const DEFAULT_MAX_QUEUED: usize = 10_000;
/// Default largest incoming message [`ReconnectingClient::recv`] accepts.
pub const DEFAULT_MAX_INCOMING: usize = 16 * 1024 * 1024;

/// How a [`ReconnectingClient`] behaves.
#[derive(Clone, Debug)]
pub struct ReconnectConfig {
    /// Delays between attempts and when to give up.
    pub backoff: BackoffConfig,
    /// Messages held (queued or sent but unacknowledged) before `send` refuses more.
    pub max_queued: usize,
    /// Largest incoming message; a longer one is refused (its stream is stopped).
    pub max_incoming: usize,
}

impl Default for ReconnectConfig {
    fn default() -> Self {
        Self {
            backoff: BackoffConfig::default(),
            max_queued: DEFAULT_MAX_QUEUED,
            max_incoming: DEFAULT_MAX_INCOMING,
        }
    }
}

/// What a [`ReconnectingClient`] reports to the application.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReconnectEvent {
    /// A connection was established (`attempt` counts failed attempts before it since the last
    /// connection); `resumed` says whether a session ticket was used, and `resent` how many
    /// messages of a previous connection are being sent again on it.
    Connected {
        /// Failed attempts before this one.
        attempt: u32,
        /// The handshake resumed an earlier session.
        resumed: bool,
        /// The carriage that carries the connection.
        carriage: Carriage,
        /// Messages sent again because their earlier connection failed before acknowledging them.
        resent: usize,
    },
    /// The connection failed; messages not acknowledged will be sent on the next one.
    Disconnected {
        /// Why it ended.
        error: ConnectionError,
        /// Messages waiting for the next connection.
        pending: usize,
    },
    /// The next attempt starts after `delay`.
    Retrying {
        /// The attempt about to be made (from 1).
        attempt: u32,
        /// The wait before it.
        delay: Duration,
        /// Why the previous attempt or connection failed.
        error: String,
    },
    /// The client stopped trying: backoff exhausted or a failure retrying cannot fix (a server
    /// key that does not match the pin, an unsupported version, a deliberate close). Queued
    /// messages are abandoned.
    GaveUp {
        /// Why.
        error: String,
        /// Messages that were never acknowledged.
        abandoned: usize,
    },
}

/// Why [`ReconnectingClient::send`] refused a message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReconnectError {
    /// Too many messages are waiting (`max_queued`): retry later or wait with `flush`.
    #[error("{0} messages are already waiting to be delivered")]
    QueueFull(usize),
    /// The client gave up or was closed.
    #[error("the client stopped reconnecting: {0}")]
    Stopped(String),
    /// The reconnect configuration is invalid.
    #[error("invalid reconnect configuration: {0}")]
    Config(#[from] BackoffError),
}

/// Whether reconnecting may cure a connection that ended with `e`: timeouts, stateless resets,
/// and a peer going away or failing internally are transient; authentication failures, version
/// mismatches, protocol violations and deliberate closes are not.
pub fn is_transient(e: &ConnectionError) -> bool {
    match e {
        ConnectionError::TimedOut | ConnectionError::Reset => true,
        ConnectionError::PeerClosed { reason, .. } => matches!(
            reason,
            CloseReason::GoingAway | CloseReason::Timeout | CloseReason::InternalError
        ),
        _ => false,
    }
}

/// Whether a failed connection attempt is worth repeating: socket errors (a refused TCP
/// connection, an unreachable network) and transient connection errors are.
fn error_is_transient(e: &Error) -> bool {
    match e {
        Error::Io(_) => true,
        Error::Connection(c) => is_transient(c),
        _ => false,
    }
}

/// Messages waiting for delivery.
#[derive(Default)]
struct Outbox {
    next_seq: u64,
    /// Not yet written on the current connection, in order.
    queued: VecDeque<(u64, Bytes)>,
    /// Written on the current connection, not yet acknowledged.
    in_flight: BTreeMap<u64, Bytes>,
    stopped: Option<String>,
    connection: Option<Connection>,
    /// Messages the last failed connection left unacknowledged (reported on the next one).
    resend: usize,
    /// The application reported a network change: the connection it abandoned is to be
    /// replaced, not given up on.
    network_changed: bool,
    /// Heartbeat interval for every connection, if the application chose one.
    heartbeat: Option<Duration>,
}

impl Outbox {
    fn pending(&self) -> usize {
        self.queued.len() + self.in_flight.len()
    }

    /// Puts every unacknowledged message back in front of the queue, oldest first.
    fn requeue_in_flight(&mut self) -> usize {
        let n = self.in_flight.len();
        let mut back: VecDeque<(u64, Bytes)> =
            std::mem::take(&mut self.in_flight).into_iter().collect();
        back.append(&mut self.queued);
        self.queued = back;
        self.resend = n;
        n
    }
}

struct Shared {
    outbox: Mutex<Outbox>,
    /// Signalled when a message is queued or the client is closed.
    queued: Notify,
    /// Signalled when a message is acknowledged or the client stops.
    progress: Notify,
    /// Signalled when the application closes the client.
    closing: Notify,
}

impl Shared {
    fn outbox(&self) -> MutexGuard<'_, Outbox> {
        // A panic while holding the lock leaves the outbox consistent (every update is a single
        // step), so a poisoned lock is still usable.
        self.outbox.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A client connection that reconnects by itself (see the module documentation).
pub struct ReconnectingClient {
    shared: Arc<Shared>,
    events: tokio::sync::Mutex<mpsc::UnboundedReceiver<ReconnectEvent>>,
    incoming: tokio::sync::Mutex<mpsc::Receiver<Bytes>>,
    max_queued: usize,
}

impl std::fmt::Debug for ReconnectingClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReconnectingClient")
            .field("pending", &self.pending())
            .finish_non_exhaustive()
    }
}

impl ReconnectingClient {
    /// Starts connecting to `targets` from `endpoint` (with automatic carriage fallback when
    /// `targets` lists several). Returns at once; [`ReconnectingClient::next_event`] reports the
    /// connection, and messages sent meanwhile wait in the queue.
    pub fn start(
        endpoint: Endpoint,
        targets: Targets,
        client: Arc<ClientConfig>,
        config: ReconnectConfig,
    ) -> Result<Self, ReconnectError> {
        let backoff = Backoff::from_entropy(config.backoff.clone())?;
        let shared = Arc::new(Shared {
            outbox: Mutex::new(Outbox::default()),
            queued: Notify::new(),
            progress: Notify::new(),
            closing: Notify::new(),
        });
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let (in_tx, in_rx) = mpsc::channel(64);
        let supervisor = Supervisor {
            shared: shared.clone(),
            endpoint,
            targets,
            client,
            backoff,
            events: ev_tx,
            incoming: in_tx,
            max_incoming: config.max_incoming,
        };
        tokio::spawn(supervisor.run());
        Ok(Self {
            shared,
            events: tokio::sync::Mutex::new(ev_rx),
            incoming: tokio::sync::Mutex::new(in_rx),
            max_queued: config.max_queued,
        })
    }

    /// Queues one message for delivery (see the module documentation for the guarantees).
    pub fn send(&self, message: impl Into<Bytes>) -> Result<(), ReconnectError> {
        {
            let mut ob = self.shared.outbox();
            if let Some(why) = &ob.stopped {
                return Err(ReconnectError::Stopped(why.clone()));
            }
            let pending = ob.pending();
            if pending >= self.max_queued {
                return Err(ReconnectError::QueueFull(pending));
            }
            let seq = ob.next_seq;
            ob.next_seq += 1;
            ob.queued.push_back((seq, message.into()));
        }
        self.shared.queued.notify_one();
        Ok(())
    }

    /// Messages queued or sent but not yet acknowledged.
    pub fn pending(&self) -> usize {
        self.shared.outbox().pending()
    }

    /// Waits until every message sent so far was acknowledged by the server.
    ///
    /// # Errors
    /// [`ReconnectError::Stopped`] if the client gave up or was closed first.
    pub async fn flush(&self) -> Result<(), ReconnectError> {
        loop {
            let progressed = self.shared.progress.notified();
            {
                let ob = self.shared.outbox();
                if ob.pending() == 0 {
                    return Ok(());
                }
                if let Some(why) = &ob.stopped {
                    return Err(ReconnectError::Stopped(why.clone()));
                }
            }
            progressed.await;
        }
    }

    /// The next message the server sent (each on its own unidirectional stream); `None` once
    /// the client stopped.
    pub async fn recv(&self) -> Option<Bytes> {
        self.incoming.lock().await.recv().await
    }

    /// The next thing that happened; `None` once the client stopped and every event was read.
    pub async fn next_event(&self) -> Option<ReconnectEvent> {
        self.events.lock().await.recv().await
    }

    /// The current connection, if one is up.
    pub fn connection(&self) -> Option<Connection> {
        self.shared.outbox().connection.clone()
    }

    /// Tells the client that the device's network changed (Wi-Fi to cellular, a new address):
    /// the current connection is abandoned at once instead of waiting for its timeout, and a new
    /// one is made right away, resuming the session; unacknowledged messages are sent again on it.
    pub fn network_changed(&self) {
        let conn = {
            let mut ob = self.shared.outbox();
            if ob.stopped.is_some() {
                return;
            }
            // Without a connection the client is already trying to reconnect.
            ob.network_changed = ob.connection.is_some();
            ob.connection.clone()
        };
        if let Some(c) = conn {
            c.abort(CloseReason::GoingAway, Some("network changed"));
        }
    }

    /// Sets the heartbeat interval of the current and every later connection (for example
    /// longer on a low battery, see `Connection::set_heartbeat_interval`).
    pub fn set_heartbeat_interval(&self, interval: Duration) {
        let conn = {
            let mut ob = self.shared.outbox();
            ob.heartbeat = Some(interval);
            ob.connection.clone()
        };
        if let Some(c) = conn {
            c.set_heartbeat_interval(interval);
        }
    }

    /// Stops reconnecting and closes the current connection (`Normal`); unacknowledged messages
    /// are abandoned (call [`ReconnectingClient::flush`] first to deliver them).
    pub fn close(&self) {
        let conn = {
            let mut ob = self.shared.outbox();
            if ob.stopped.is_none() {
                ob.stopped = Some("closed by the application".into());
            }
            ob.connection.take()
        };
        if let Some(c) = conn {
            c.close(CloseReason::Normal, None);
        }
        self.shared.closing.notify_one();
        self.shared.queued.notify_one();
        self.shared.progress.notify_waiters();
    }
}

impl Drop for ReconnectingClient {
    fn drop(&mut self) {
        self.close();
    }
}

/// The task that connects, runs sessions and reconnects.
struct Supervisor {
    shared: Arc<Shared>,
    endpoint: Endpoint,
    targets: Targets,
    client: Arc<ClientConfig>,
    backoff: Backoff,
    events: mpsc::UnboundedSender<ReconnectEvent>,
    incoming: mpsc::Sender<Bytes>,
    max_incoming: usize,
}

impl Supervisor {
    fn stopped(&self) -> bool {
        self.shared.outbox().stopped.is_some()
    }

    fn give_up(&self, error: String) {
        let abandoned = {
            let mut ob = self.shared.outbox();
            if ob.stopped.is_none() {
                ob.stopped = Some(error.clone());
            }
            ob.connection = None;
            ob.pending()
        };
        tracing::warn!(%error, abandoned, "reconnecting client gave up");
        let _ = self
            .events
            .send(ReconnectEvent::GaveUp { error, abandoned });
        self.shared.progress.notify_waiters();
    }

    async fn run(mut self) {
        let mut ticket: Option<SessionTicket> = None;
        let mut failures: u32 = 0;
        loop {
            if self.stopped() {
                return;
            }
            let attempt = tokio::select! {
                r = self.endpoint.connect_auto_resuming(&self.targets, self.client.clone(), ticket.as_ref()) => r,
                () = self.shared.closing.notified() => return,
            };
            let error = match attempt {
                Ok(conn) => {
                    let (error, new_ticket, established) = self.session(conn, failures).await;
                    if new_ticket.is_some() {
                        ticket = new_ticket;
                    }
                    match error {
                        Some(e) => {
                            if established {
                                failures = 0;
                                self.backoff.reset();
                            } else {
                                // Refused or lost during the handshake: an attempt that failed.
                                failures += 1;
                            }
                            let moved = std::mem::take(&mut self.shared.outbox().network_changed);
                            if moved {
                                // Reconnect at once: the old path is gone, not the server.
                                failures = 0;
                                self.backoff.reset();
                                let _ = self.events.send(ReconnectEvent::Retrying {
                                    attempt: 1,
                                    delay: Duration::ZERO,
                                    error: e.to_string(),
                                });
                                continue;
                            }
                            if !is_transient(&e) {
                                self.give_up(e.to_string());
                                return;
                            }
                            e.to_string()
                        }
                        None => return, // closed by the application
                    }
                }
                Err(e) => {
                    if !error_is_transient(&e) {
                        self.give_up(e.to_string());
                        return;
                    }
                    // A failed resumption attempt may be the ticket's fault: try without it.
                    ticket = None;
                    failures += 1;
                    e.to_string()
                }
            };
            let Some(delay) = self.backoff.next_delay() else {
                self.give_up(format!("gave up after {failures} failed attempts: {error}"));
                return;
            };
            let _ = self.events.send(ReconnectEvent::Retrying {
                attempt: failures + 1,
                delay,
                error,
            });
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.shared.closing.notified() => return,
            }
        }
    }

    /// Runs one connection until it fails (`Some(error)`) or the application closes the client
    /// (`None`); also returns the newest session ticket it received.
    async fn session(
        &self,
        conn: Connection,
        failures: u32,
    ) -> (Option<ConnectionError>, Option<SessionTicket>, bool) {
        let resent = {
            let mut ob = self.shared.outbox();
            if ob.stopped.is_some() {
                conn.close(CloseReason::Normal, None);
                return (None, None, false);
            }
            ob.connection = Some(conn.clone());
            if let Some(h) = ob.heartbeat {
                conn.set_heartbeat_interval(h);
            }
            std::mem::take(&mut ob.resend)
        };
        let mut acks = tokio::task::JoinSet::new();
        let mut ticket = None;
        let mut announced = false;
        let mut established_ok = false;
        let result = {
            let sender = self.send_loop(&conn, &mut acks);
            let receiver = self.receive_loop(&conn);
            tokio::pin!(sender, receiver);
            let established = conn.established();
            tokio::pin!(established);
            let new_ticket = conn.wait_session_ticket();
            tokio::pin!(new_ticket);
            let mut ticket_done = false;
            loop {
                tokio::select! {
                    r = &mut established, if !announced => {
                        announced = true;
                        match r {
                            Ok(summary) => {
                                established_ok = true;
                                tracing::info!(resumed = summary.resumed, carriage = ?conn.carriage(), "reconnecting client connected");
                                let _ = self.events.send(ReconnectEvent::Connected {
                                    attempt: failures,
                                    resumed: summary.resumed,
                                    carriage: conn.carriage(),
                                    resent,
                                });
                            }
                            Err(e) => break Some(e),
                        }
                    }
                    t = &mut new_ticket, if !ticket_done => {
                        ticket_done = true;
                        if let Ok(t) = t {
                            ticket = Some(t);
                        }
                    }
                    e = &mut sender => break e,
                    () = &mut receiver => {}
                    e = conn.closed() => break Some(e),
                    () = self.shared.closing.notified() => break None,
                }
            }
        };
        acks.abort_all();
        let established = established_ok;
        if ticket.is_none() {
            ticket = conn.session_ticket();
        }
        let pending = {
            let mut ob = self.shared.outbox();
            ob.connection = None;
            ob.requeue_in_flight();
            ob.pending()
        };
        match result {
            Some(error) => {
                tracing::info!(%error, pending, "reconnecting client disconnected");
                let _ = self.events.send(ReconnectEvent::Disconnected {
                    error: error.clone(),
                    pending,
                });
                (Some(error), ticket, established)
            }
            None => {
                conn.close(CloseReason::Normal, None);
                (None, ticket, established)
            }
        }
    }

    /// Writes queued messages, each on its own stream, and retires them when acknowledged.
    /// Returns only when the connection failed.
    async fn send_loop(
        &self,
        conn: &Connection,
        acks: &mut tokio::task::JoinSet<()>,
    ) -> Option<ConnectionError> {
        loop {
            let queued = self.shared.queued.notified();
            let next = {
                let mut ob = self.shared.outbox();
                if ob.stopped.is_some() {
                    None
                } else {
                    let next = ob.queued.pop_front();
                    if let Some((seq, msg)) = &next {
                        ob.in_flight.insert(*seq, msg.clone());
                    }
                    next
                }
            };
            let Some((seq, msg)) = next else {
                // Reap finished acknowledgement waiters while idle.
                while acks.try_join_next().is_some() {}
                queued.await;
                continue;
            };
            let mut stream = match conn.open_uni().await {
                Ok(s) => s,
                Err(Error::Connection(e)) => return Some(e),
                Err(_) => return Some(conn.closed().await),
            };
            if stream.write_all(&msg).await.is_err() {
                return Some(conn.closed().await);
            }
            if stream.finish().is_err() {
                return Some(conn.closed().await);
            }
            let shared = self.shared.clone();
            while acks.try_join_next().is_some() {}
            acks.spawn(async move {
                if stream.acknowledged().await.is_ok() {
                    shared.outbox().in_flight.remove(&seq);
                    shared.progress.notify_waiters();
                }
            });
        }
    }

    /// Reads the server's messages (one per unidirectional stream) into the incoming channel.
    async fn receive_loop(&self, conn: &Connection) {
        loop {
            let Ok(mut stream) = conn.accept_uni().await else {
                return std::future::pending().await;
            };
            match stream.read_all(self.max_incoming).await {
                Ok(data) => {
                    if self.incoming.send(Bytes::from(data)).await.is_err() {
                        return std::future::pending().await;
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "incoming message refused");
                    stream.stop(0);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requeue_puts_unacknowledged_messages_first_in_order() {
        let mut ob = Outbox::default();
        ob.in_flight.insert(2, Bytes::from_static(b"c"));
        ob.in_flight.insert(0, Bytes::from_static(b"a"));
        ob.queued.push_back((3, Bytes::from_static(b"d")));
        assert_eq!(ob.requeue_in_flight(), 2);
        let order: Vec<u64> = ob.queued.iter().map(|m| m.0).collect();
        assert_eq!(order, vec![0, 2, 3]);
        assert!(ob.in_flight.is_empty());
    }

    #[test]
    fn transient_errors_are_the_curable_ones() {
        assert!(is_transient(&ConnectionError::TimedOut));
        assert!(is_transient(&ConnectionError::Reset));
        assert!(!is_transient(&ConnectionError::LocallyClosed {
            reason: CloseReason::Normal
        }));
        assert!(!is_transient(&ConnectionError::UnsupportedVersion {
            offered: vec![]
        }));
    }
}
