//! Connection events for the application: [`Connection::events`](crate::Connection::events)
//! subscribes to a connection's lifecycle ([`ConnectionEvent`]: established, peer streams,
//! key updates, tickets, 0-RTT outcome, close) without polling.
//!
//! Subscribing costs nothing until the first subscriber: the channel is created then. Every
//! subscriber sees every event published after it subscribed; a subscriber that falls more than
//! [`EVENT_BUFFER`] events behind skips the oldest and can read how many with
//! [`ConnectionEvents::missed`]. After [`ConnectionEvent::Closed`] the stream ends.

use jsp_proto::connection::HandshakeSummary;
use jsp_proto::{ConnectionError, StreamId};
use tokio::sync::broadcast;

/// Events a subscriber may fall behind by before it skips the oldest.
pub const EVENT_BUFFER: usize = 64;

/// Something that happened to a connection.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ConnectionEvent {
    /// The handshake completed: the peer is authenticated.
    Established(HandshakeSummary),
    /// The peer opened a stream (accept it with `accept_bi`/`accept_uni`).
    StreamOpened(StreamId),
    /// The 1-RTT keys were updated; `generation` counts updates.
    KeyUpdated {
        /// Number of key updates so far.
        generation: u64,
    },
    /// The server issued a session ticket (client side): the connection can be resumed later.
    SessionTicket,
    /// The server refused our 0-RTT data (client side); it is being resent, nothing is lost.
    ZeroRttRejected,
    /// The client's 0-RTT data was accepted (server side); it may be a replay, see the
    /// engine's `received_early_data`.
    EarlyDataAccepted,
    /// The connection ended. No further events follow.
    Closed(ConnectionError),
}

/// A subscription to one connection's events; see [`Connection::events`](crate::Connection::events).
#[derive(Debug)]
pub struct ConnectionEvents {
    receiver: Option<broadcast::Receiver<ConnectionEvent>>,
    /// Set when the connection had already ended at subscription.
    ended: Option<ConnectionError>,
    missed: u64,
}

impl ConnectionEvents {
    pub(crate) fn new(receiver: broadcast::Receiver<ConnectionEvent>) -> Self {
        Self {
            receiver: Some(receiver),
            ended: None,
            missed: 0,
        }
    }

    /// A subscription to a connection that has already ended: yields its close and ends.
    pub(crate) fn already_closed(error: ConnectionError) -> Self {
        Self {
            receiver: None,
            ended: Some(error),
            missed: 0,
        }
    }

    /// The next event; `None` once the connection has ended and its [`ConnectionEvent::Closed`]
    /// was returned.
    pub async fn next(&mut self) -> Option<ConnectionEvent> {
        if let Some(error) = self.ended.take() {
            return Some(ConnectionEvent::Closed(error));
        }
        let receiver = self.receiver.as_mut()?;
        loop {
            match receiver.recv().await {
                Ok(event) => {
                    if matches!(event, ConnectionEvent::Closed(_)) {
                        self.receiver = None;
                    }
                    return Some(event);
                }
                Err(broadcast::error::RecvError::Lagged(n)) => self.missed += n,
                Err(broadcast::error::RecvError::Closed) => {
                    self.receiver = None;
                    return None;
                }
            }
        }
    }

    /// Events skipped because this subscriber fell more than [`EVENT_BUFFER`] behind.
    pub fn missed(&self) -> u64 {
        self.missed
    }
}

/// The publishing side, kept in the connection's state once someone subscribed.
#[derive(Debug, Default)]
pub(crate) struct EventPublisher {
    sender: Option<broadcast::Sender<ConnectionEvent>>,
}

impl EventPublisher {
    /// A new subscription (creates the channel on first use).
    pub(crate) fn subscribe(&mut self) -> broadcast::Receiver<ConnectionEvent> {
        match &self.sender {
            Some(sender) => sender.subscribe(),
            None => {
                let (sender, receiver) = broadcast::channel(EVENT_BUFFER);
                self.sender = Some(sender);
                receiver
            }
        }
    }

    /// Publishes `event` to the subscribers, if any (the event is built only then).
    pub(crate) fn publish(&mut self, event: impl FnOnce() -> ConnectionEvent) {
        if let Some(sender) = &self.sender {
            let event = event();
            let last = matches!(event, ConnectionEvent::Closed(_));
            let _ = sender.send(event);
            if last {
                self.sender = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn subscribers_see_events_in_order_and_the_stream_ends_after_closed() {
        let mut publisher = EventPublisher::default();
        publisher.publish(|| panic!("no subscriber: the event is never built"));
        let mut events = ConnectionEvents::new(publisher.subscribe());
        publisher.publish(|| ConnectionEvent::KeyUpdated { generation: 1 });
        publisher.publish(|| ConnectionEvent::Closed(ConnectionError::TimedOut));
        assert_eq!(
            events.next().await,
            Some(ConnectionEvent::KeyUpdated { generation: 1 })
        );
        assert_eq!(
            events.next().await,
            Some(ConnectionEvent::Closed(ConnectionError::TimedOut))
        );
        assert_eq!(events.next().await, None);
    }

    #[tokio::test]
    async fn a_slow_subscriber_skips_the_oldest_and_counts_them() {
        let mut publisher = EventPublisher::default();
        let mut events = ConnectionEvents::new(publisher.subscribe());
        for generation in 0..(EVENT_BUFFER as u64 + 10) {
            publisher.publish(|| ConnectionEvent::KeyUpdated { generation });
        }
        assert_eq!(
            events.next().await,
            Some(ConnectionEvent::KeyUpdated { generation: 10 })
        );
        assert_eq!(events.missed(), 10);
    }

    #[tokio::test]
    async fn subscribing_to_an_ended_connection_yields_its_close() {
        let mut events = ConnectionEvents::already_closed(ConnectionError::TimedOut);
        assert_eq!(
            events.next().await,
            Some(ConnectionEvent::Closed(ConnectionError::TimedOut))
        );
        assert_eq!(events.next().await, None);
    }
}
