//! The simulator's event queue: a min-heap on (time, insertion sequence), so events at equal
//! times run in the order they were scheduled and every run replays identically.

use core::cmp::Ordering;
use std::collections::BinaryHeap;

use jsp_proto::time::Instant;

use crate::node::{Datagram, NodeId};

/// Something scheduled to happen.
#[derive(Debug)]
pub(crate) enum Event {
    /// A datagram arrives at the end of `link` (a `(from, to)` pair) for node `to` (the link's
    /// end unless a middlebox redirected it).
    Deliver {
        link: (NodeId, NodeId),
        to: NodeId,
        datagram: Datagram,
        /// Index of its capture record, if captured.
        record: Option<usize>,
    },
    /// A node's timer, stale unless the node still requests exactly `requested`.
    Timer { node: NodeId, requested: Instant },
    /// A datagram injected by a middlebox or the test, delivered straight to its destination.
    Inject { datagram: Datagram },
}

#[derive(Debug)]
struct Entry {
    at: Instant,
    seq: u64,
    event: Event,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    /// Reversed, so the max-heap pops the earliest (time, sequence) first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Pending events, earliest first, ties broken by scheduling order.
#[derive(Debug, Default)]
pub(crate) struct EventQueue {
    heap: BinaryHeap<Entry>,
    next_seq: u64,
}

impl EventQueue {
    pub(crate) fn push(&mut self, at: Instant, event: Event) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Entry { at, seq, event });
    }

    pub(crate) fn peek(&self) -> Option<(Instant, &Event)> {
        self.heap.peek().map(|e| (e.at, &e.event))
    }

    pub(crate) fn pop(&mut self) -> Option<(Instant, Event)> {
        self.heap.pop().map(|e| (e.at, e.event))
    }

    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timer(node: usize) -> Event {
        Event::Timer {
            node: NodeId(node),
            requested: Instant::ZERO,
        }
    }

    #[test]
    fn earliest_first_then_insertion_order() {
        let mut q = EventQueue::default();
        q.push(Instant::from_nanos(5), timer(0));
        q.push(Instant::from_nanos(1), timer(1));
        q.push(Instant::from_nanos(5), timer(2));
        q.push(Instant::from_nanos(1), timer(3));
        let order: Vec<usize> = std::iter::from_fn(|| q.pop())
            .map(|(_, e)| match e {
                Event::Timer { node, .. } => node.0,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(order, [1, 3, 0, 2]);
    }
}
