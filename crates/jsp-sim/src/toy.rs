//! Toy nodes for tests and examples: [`Sink`] records what arrives, [`Echo`] sends every datagram
//! back to its source, and [`Sender`] sends numbered datagrams to a peer at a fixed pace.
//!
//! Every toy node keeps what it received in a public `received` list of `(arrival time,
//! datagram)`, so tests can assert on delivery times, order, sources and payloads.

use core::time::Duration;
use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};

use jsp_proto::time::Instant;

use crate::node::{Datagram, Node};

/// The source address toy nodes put in outgoing datagrams; the simulator overwrites it.
const UNSPECIFIED: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

/// The sequence number a [`Sender`] wrote at the start of `payload`, if it is long enough.
pub fn sequence_number(payload: &[u8]) -> Option<u32> {
    let bytes: [u8; 4] = payload.get(..4)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}

/// Records every datagram it receives and never sends.
#[derive(Clone, Debug, Default)]
pub struct Sink {
    /// What arrived, in arrival order.
    pub received: Vec<(Instant, Datagram)>,
}

impl Node for Sink {
    fn handle_datagram(&mut self, now: Instant, datagram: Datagram) {
        self.received.push((now, datagram));
    }
    fn poll_transmit(&mut self, _now: Instant) -> Option<Datagram> {
        None
    }
    fn poll_timeout(&mut self) -> Option<Instant> {
        None
    }
    fn handle_timeout(&mut self, _now: Instant) {}
}

/// Sends every datagram it receives straight back to the datagram's source.
#[derive(Clone, Debug, Default)]
pub struct Echo {
    /// What arrived, in arrival order.
    pub received: Vec<(Instant, Datagram)>,
    replies: VecDeque<Datagram>,
}

impl Node for Echo {
    fn handle_datagram(&mut self, now: Instant, datagram: Datagram) {
        self.replies.push_back(Datagram::new(
            UNSPECIFIED,
            datagram.src,
            datagram.payload.clone(),
        ));
        self.received.push((now, datagram));
    }
    fn poll_transmit(&mut self, _now: Instant) -> Option<Datagram> {
        self.replies.pop_front()
    }
    fn poll_timeout(&mut self) -> Option<Instant> {
        None
    }
    fn handle_timeout(&mut self, _now: Instant) {}
}

/// Sends `count` datagrams of `size` bytes to `peer`, numbered from 0 (see
/// [`sequence_number`]), one every `interval` starting at `start`; with a zero interval, all at
/// once. Records what it receives.
#[derive(Clone, Debug)]
pub struct Sender {
    /// Where the datagrams go.
    pub peer: SocketAddr,
    /// How many to send in all.
    pub count: u32,
    /// Payload size in bytes (at least 4, for the sequence number).
    pub size: usize,
    /// Time between two datagrams.
    pub interval: Duration,
    /// How many were sent so far.
    pub sent: u32,
    /// When the next one is due.
    pub next_at: Instant,
    /// What arrived, in arrival order.
    pub received: Vec<(Instant, Datagram)>,
}

impl Sender {
    /// Sends `count` datagrams of `size` bytes to `peer`, all at time zero.
    pub fn new(peer: SocketAddr, count: u32, size: usize) -> Self {
        Sender {
            peer,
            count,
            size: size.max(4),
            interval: Duration::ZERO,
            sent: 0,
            next_at: Instant::ZERO,
            received: Vec::new(),
        }
    }

    /// Paces the datagrams `interval` apart.
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Sends the first datagram at `start` instead of time zero.
    pub fn starting_at(mut self, start: Instant) -> Self {
        self.next_at = start;
        self
    }
}

impl Node for Sender {
    fn handle_datagram(&mut self, now: Instant, datagram: Datagram) {
        self.received.push((now, datagram));
    }

    fn poll_transmit(&mut self, now: Instant) -> Option<Datagram> {
        if self.sent >= self.count || now < self.next_at {
            return None;
        }
        let mut payload = vec![0; self.size.max(4)];
        payload[..4].copy_from_slice(&self.sent.to_be_bytes());
        self.sent += 1;
        self.next_at += self.interval;
        Some(Datagram::new(UNSPECIFIED, self.peer, payload))
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        (self.sent < self.count).then_some(self.next_at)
    }

    /// Nothing to do: `poll_transmit`, called right after, sends what is due.
    fn handle_timeout(&mut self, _now: Instant) {}
}
