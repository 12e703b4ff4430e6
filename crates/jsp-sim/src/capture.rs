//! The wire capture: one [`CaptureRecord`] per datagram that entered the network (sent by a node,
//! copied by duplication, or injected), with the fate it met. Tests count bytes on the wire with
//! it; examples print it.
//!
//! The capture is bounded ([`SimConfig::capture_limit`](crate::SimConfig::capture_limit)): once
//! full, further datagrams are counted in [`Capture::overflowed`] but not stored.

use core::fmt;
use std::net::SocketAddr;

use jsp_proto::time::Instant;

use crate::node::NodeId;

/// What became of a captured datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fate {
    /// Still on its way (or the simulation stopped before it arrived).
    InFlight,
    /// Handed to the destination node at this time.
    Delivered(Instant),
    /// Lost by the link's loss model.
    Lost,
    /// Larger than the link's MTU.
    MtuDropped,
    /// The link's bottleneck queue was full.
    QueueDropped,
    /// A middlebox returned [`Verdict::Drop`](crate::Verdict::Drop).
    MiddleboxDropped,
    /// No node was bound to the destination address when it entered the network, or after a
    /// middlebox redirected it.
    NoRoute,
    /// The destination node rebound to another address while it was in flight.
    AddressGone,
}

/// Where a captured datagram came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Origin {
    /// Sent by this node.
    Node(NodeId),
    /// A copy made by a link's duplication, of the record with this index.
    Duplicate(usize),
    /// Injected by a middlebox or [`Simulator::inject`](crate::Simulator::inject).
    Injected,
}

/// One datagram on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureRecord {
    /// When it entered the network.
    pub time: Instant,
    /// Where it came from.
    pub origin: Origin,
    /// Source address as it entered the link (after middleboxes).
    pub src: SocketAddr,
    /// Destination address as it entered the link (after middleboxes).
    pub dst: SocketAddr,
    /// Payload as it entered the link (after middleboxes, before corruption).
    pub payload: Vec<u8>,
    /// What became of it.
    pub fate: Fate,
    /// Whether a middlebox changed its addresses or payload.
    pub rewritten: bool,
    /// Whether the link flipped a bit of it on the way.
    pub corrupted: bool,
    /// Whether the link delivered a second copy (recorded separately with
    /// [`Origin::Duplicate`]).
    pub duplicated: bool,
}

impl fmt::Display for CaptureRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = self.time.as_nanos();
        write!(
            f,
            "{:>6}.{:06} ms  {} -> {}  {:>5} B  ",
            nanos / 1_000_000,
            nanos % 1_000_000,
            self.src,
            self.dst,
            self.payload.len()
        )?;
        match self.fate {
            Fate::Delivered(at) => write!(f, "delivered after {:?}", at - self.time)?,
            other => write!(f, "{other:?}")?,
        }
        match self.origin {
            Origin::Node(_) => {}
            Origin::Duplicate(of) => write!(f, " (duplicate of #{of})")?,
            Origin::Injected => write!(f, " (injected)")?,
        }
        for (flag, name) in [
            (self.rewritten, "rewritten"),
            (self.corrupted, "corrupted"),
            (self.duplicated, "duplicated"),
        ] {
            if flag {
                write!(f, " [{name}]")?;
            }
        }
        Ok(())
    }
}

/// A bounded, ordered record of the datagrams on the wire.
#[derive(Clone, Debug, Default)]
pub struct Capture {
    records: Vec<CaptureRecord>,
    limit: usize,
    overflowed: u64,
}

impl Capture {
    pub(crate) fn new(limit: usize) -> Self {
        Capture {
            records: Vec::new(),
            limit,
            overflowed: 0,
        }
    }

    /// The captured datagrams in the order they entered the network.
    pub fn records(&self) -> &[CaptureRecord] {
        &self.records
    }

    /// How many datagrams were not recorded because the capture was full.
    pub fn overflowed(&self) -> u64 {
        self.overflowed
    }

    /// Total payload bytes of the recorded datagrams that `node` sent (duplicates and injections
    /// excluded).
    pub fn bytes_sent_by(&self, node: NodeId) -> u64 {
        self.records
            .iter()
            .filter(|r| r.origin == Origin::Node(node))
            .map(|r| u64::try_from(r.payload.len()).unwrap_or(u64::MAX))
            .sum()
    }

    /// Forgets every record (the overflow count too), keeping the limit.
    pub fn clear(&mut self) {
        self.records.clear();
        self.overflowed = 0;
    }

    /// Appends a record and returns its index, or `None` if the capture is full.
    pub(crate) fn push(&mut self, record: CaptureRecord) -> Option<usize> {
        if self.records.len() >= self.limit {
            self.overflowed += 1;
            return None;
        }
        self.records.push(record);
        Some(self.records.len() - 1)
    }

    /// Counts a datagram that is not recorded because its original was not.
    pub(crate) fn skip(&mut self) {
        self.overflowed += 1;
    }

    pub(crate) fn get_mut(&mut self, index: Option<usize>) -> Option<&mut CaptureRecord> {
        index.and_then(|i| self.records.get_mut(i))
    }
}

impl fmt::Display for Capture {
    /// One line per record, numbered by index.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, record) in self.records.iter().enumerate() {
            writeln!(f, "#{i:<5} {record}")?;
        }
        if self.overflowed > 0 {
            writeln!(f, "({} more datagrams not captured)", self.overflowed)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(len: usize, origin: Origin) -> CaptureRecord {
        CaptureRecord {
            time: Instant::from_nanos(1_500_000),
            origin,
            src: "10.0.0.1:1".parse().unwrap(),
            dst: "10.0.0.2:2".parse().unwrap(),
            payload: vec![0; len],
            fate: Fate::Delivered(Instant::from_nanos(2_500_000)),
            rewritten: false,
            corrupted: true,
            duplicated: false,
        }
    }

    #[test]
    fn bounded_and_counts_bytes() {
        let mut capture = Capture::new(2);
        assert_eq!(capture.push(record(10, Origin::Node(NodeId(0)))), Some(0));
        assert_eq!(capture.push(record(5, Origin::Injected)), Some(1));
        assert_eq!(capture.push(record(7, Origin::Node(NodeId(0)))), None);
        assert_eq!(capture.overflowed(), 1);
        assert_eq!(capture.bytes_sent_by(NodeId(0)), 10);
        let text = capture.to_string();
        let first =
            "#0          1.500000 ms  10.0.0.1:1 -> 10.0.0.2:2     10 B  delivered after 1ms";
        assert!(text.contains(&format!("{first} [corrupted]")), "{text}");
        assert!(text.contains("(injected)"), "{text}");
        assert!(text.contains("1 more datagrams not captured"), "{text}");
        capture.clear();
        assert!(capture.records().is_empty());
    }
}
