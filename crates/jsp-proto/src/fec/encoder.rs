//! Send side of FEC (PROTOCOL.md §19.5): numbers protected payloads into groups, computes the
//! repair symbols when a group has `k` sources or its flush timer fires (so that sparse real-time
//! traffic is protected too), queues them for the send path, and remembers which stream ranges
//! each source carried so that a peer's FEC_RECOVERED report releases them without a
//! retransmission.

use std::collections::VecDeque;

use core::time::Duration;

use super::codec::{ErasureCodec, RsCodec};
use super::{source_symbol, FecError, LENGTH_PREFIX, MAX_REPAIR_SYMBOLS, MAX_SOURCE_SYMBOLS};
use crate::connection::sent_frames::SentStream;
use crate::time::Instant;

/// Most repair symbols waiting to be sent; older ones are dropped first (a late repair symbol is
/// worth less than a fresh one).
pub const MAX_QUEUED_REPAIRS: usize = 64;
/// Groups whose stream ranges are remembered for FEC_RECOVERED reports.
pub const HISTORY_GROUPS: usize = 64;

/// The shape of a group: `k` source symbols protected by `m` repair symbols.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Source symbols per full group.
    pub k: usize,
    /// Repair symbols per full group.
    pub m: usize,
}

impl Shape {
    /// A shape, checked against PROTOCOL.md §19.1's limits.
    pub fn new(k: usize, m: usize) -> Result<Self, FecError> {
        if !(1..=MAX_SOURCE_SYMBOLS).contains(&k) {
            return Err(FecError::OutOfRange("k"));
        }
        if !(1..=MAX_REPAIR_SYMBOLS).contains(&m) {
            return Err(FecError::OutOfRange("m"));
        }
        Ok(Self { k, m })
    }

    /// Repair symbols for a group flushed with `n` of its `k` sources: `ceil(m * n / k)`, at
    /// least 1, and at least `min(m, 3)` when `n <= 2` (local policy, PROTOCOL.md §19.5): such a
    /// group is sparse real-time traffic of small packets, where extra repair symbols are cheap.
    /// On one reliable stream a message lost for good holds back every message behind it for a
    /// retransmission round trip (ten of them at 100 messages/s and 100 ms RTT), so the policy
    /// aims at well under 0.1% unrecovered: with `m >= 3` (10% loss and more), 10% loss leaves
    /// 0.01% instead of the 0.1% of two repairs (jsp-bench `sim-loss-10-100`: p99 170 -> 123 ms).
    pub fn repairs_for(&self, n: usize) -> usize {
        let floor = if n <= 2 { self.m.min(3) } else { 1 };
        (self.m * n).div_ceil(self.k).clamp(floor, self.m)
    }
}

/// A repair symbol waiting to be sent in a REPAIR frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepairSymbol {
    /// Its group.
    pub group: u64,
    /// Source symbols in the group.
    pub k: usize,
    /// Repair symbols in the group.
    pub m: usize,
    /// This symbol's index among the repair symbols (`0..m`).
    pub index: usize,
    /// The symbol.
    pub symbol: Vec<u8>,
}

#[derive(Debug)]
struct OpenGroup {
    id: u64,
    shape: Shape,
    payloads: Vec<Vec<u8>>,
    streams: Vec<smallvec::SmallVec<[SentStream; 2]>>,
    flush_at: Instant,
}

/// Builds FEC groups from protected payloads and produces their repair symbols.
#[derive(Debug, Default)]
pub struct FecEncoder {
    next_group: u64,
    open: Option<OpenGroup>,
    repairs: VecDeque<RepairSymbol>,
    history: VecDeque<(u64, Vec<smallvec::SmallVec<[SentStream; 2]>>)>,
    codec: RsCodec,
    /// Repair symbols computed so far.
    pub repairs_made: u64,
    /// Repair symbols dropped unsent because the queue was full.
    pub repairs_dropped: u64,
}

impl FecEncoder {
    /// A new encoder; the first group is number 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// The (group, index) the next protected payload will get.
    pub fn next_slot(&self) -> (u64, usize) {
        match &self.open {
            Some(g) => (g.id, g.payloads.len()),
            None => (self.next_group, 0),
        }
    }

    /// Adds the protected payload just written under [`FecEncoder::next_slot`], with the stream
    /// ranges it carries. Opens a group of `shape` if none is open (an open group keeps its shape);
    /// closes it (computing its repair symbols) when it has `k` sources.
    pub fn add_source(
        &mut self,
        now: Instant,
        shape: Shape,
        flush_delay: Duration,
        payload: &[u8],
        streams: smallvec::SmallVec<[SentStream; 2]>,
    ) -> Result<(), FecError> {
        let g = self.open.get_or_insert_with(|| {
            let id = self.next_group;
            self.next_group += 1;
            OpenGroup {
                id,
                shape,
                payloads: Vec::with_capacity(shape.k),
                streams: Vec::with_capacity(shape.k),
                flush_at: now + flush_delay,
            }
        });
        g.payloads.push(payload.to_vec());
        g.streams.push(streams);
        if g.payloads.len() >= g.shape.k {
            self.close()?;
        }
        Ok(())
    }

    /// When the open group must be flushed, if one is open.
    pub fn flush_deadline(&self) -> Option<Instant> {
        self.open.as_ref().map(|g| g.flush_at)
    }

    /// Closes the open group if its flush time has come (or `force`), with
    /// [`Shape::repairs_for`] repair symbols.
    pub fn flush(&mut self, now: Instant, force: bool) -> Result<(), FecError> {
        match &self.open {
            Some(g) if force || now >= g.flush_at => self.close(),
            _ => Ok(()),
        }
    }

    fn close(&mut self) -> Result<(), FecError> {
        let Some(g) = self.open.take() else {
            return Ok(());
        };
        let n = g.payloads.len();
        let m = g.shape.repairs_for(n);
        let symbol_len = LENGTH_PREFIX + g.payloads.iter().map(Vec::len).max().unwrap_or(0);
        let sources = g
            .payloads
            .iter()
            .map(|p| source_symbol(p, symbol_len).ok_or(FecError::PayloadTooLong { group: g.id }))
            .collect::<Result<Vec<_>, _>>()?;
        let repair = self.codec.encode(&sources, m)?;
        for (index, symbol) in repair.into_iter().enumerate() {
            if self.repairs.len() >= MAX_QUEUED_REPAIRS {
                self.repairs.pop_front();
                self.repairs_dropped += 1;
            }
            self.repairs.push_back(RepairSymbol {
                group: g.id,
                k: n,
                m,
                index,
                symbol,
            });
            self.repairs_made += 1;
        }
        if self.history.len() >= HISTORY_GROUPS {
            self.history.pop_front();
        }
        self.history.push_back((g.id, g.streams));
        Ok(())
    }

    /// Whether repair symbols wait to be sent.
    pub fn has_repairs(&self) -> bool {
        !self.repairs.is_empty()
    }

    /// The next repair symbol to send.
    pub fn peek_repair(&self) -> Option<&RepairSymbol> {
        self.repairs.front()
    }

    /// Takes the next repair symbol (after [`FecEncoder::peek_repair`] said it fits).
    pub fn pop_repair(&mut self) -> Option<RepairSymbol> {
        self.repairs.pop_front()
    }

    /// Drops a repair symbol that can never fit a packet on the current path.
    pub fn drop_repair(&mut self) {
        if self.repairs.pop_front().is_some() {
            self.repairs_dropped += 1;
        }
    }

    /// The stream ranges of the sources the peer reports recovered (`bitmap` bit `i` = source
    /// `i` of `group`), each once: the peer has them, so they need no retransmission.
    pub fn on_recovered(&mut self, group: u64, bitmap: u64) -> Vec<SentStream> {
        let Some((_, streams)) = self.history.iter_mut().find(|(id, _)| *id == group) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, s) in streams.iter_mut().enumerate() {
            if i < 64 && bitmap & (1 << i) != 0 {
                out.extend(s.drain(..));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::StreamId;

    fn t(ms: u64) -> Instant {
        Instant::ZERO + Duration::from_millis(ms)
    }

    #[test]
    fn full_groups_close_with_m_repairs_and_new_ids() {
        let mut e = FecEncoder::new();
        let shape = Shape::new(3, 2).unwrap();
        for i in 0..3 {
            assert_eq!(e.next_slot(), (0, i));
            e.add_source(
                t(0),
                shape,
                Duration::from_millis(5),
                b"abc",
                Default::default(),
            )
            .unwrap();
        }
        assert_eq!(e.next_slot(), (1, 0));
        assert_eq!(e.flush_deadline(), None);
        let r0 = e.pop_repair().unwrap();
        let r1 = e.pop_repair().unwrap();
        assert!(e.pop_repair().is_none());
        assert_eq!((r0.group, r0.k, r0.m, r0.index), (0, 3, 2, 0));
        assert_eq!(r1.index, 1);
        assert_eq!(r0.symbol.len(), 2 + 3);
    }

    #[test]
    fn timer_flushes_a_partial_group() {
        let mut e = FecEncoder::new();
        let shape = Shape::new(10, 2).unwrap();
        e.add_source(
            t(0),
            shape,
            Duration::from_millis(5),
            b"x",
            Default::default(),
        )
        .unwrap();
        e.add_source(
            t(1),
            shape,
            Duration::from_millis(5),
            b"yyyy",
            Default::default(),
        )
        .unwrap();
        assert_eq!(e.flush_deadline(), Some(t(5)));
        e.flush(t(4), false).unwrap();
        assert!(!e.has_repairs());
        e.flush(t(5), false).unwrap();
        let r = e.pop_repair().unwrap();
        // 2 of 10 sources: ceil(2 * 2 / 10) = 1, raised to min(m, 3) = 2, covering k = 2.
        assert_eq!((r.group, r.k, r.m, r.symbol.len()), (0, 2, 2, 6));
        assert_eq!(e.pop_repair().map(|r| r.index), Some(1));
        assert!(!e.has_repairs());
        assert_eq!(e.next_slot(), (1, 0));
    }

    #[test]
    fn recovered_reports_release_stream_ranges_once() {
        let mut e = FecEncoder::new();
        let shape = Shape::new(2, 1).unwrap();
        for i in 0..2u64 {
            let mut s = smallvec::SmallVec::new();
            s.push(SentStream {
                id: StreamId(0),
                range: i * 10..i * 10 + 10,
                fin: false,
            });
            e.add_source(t(0), shape, Duration::from_millis(5), b"p", s)
                .unwrap();
        }
        let got = e.on_recovered(0, 0b10);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].range, 10..20);
        assert!(e.on_recovered(0, 0b10).is_empty());
        assert!(e.on_recovered(7, 1).is_empty());
    }

    #[test]
    fn partial_repair_counts() {
        let s = Shape::new(10, 4).unwrap();
        assert_eq!(s.repairs_for(1), 3);
        assert_eq!(s.repairs_for(2), 3);
        assert_eq!(Shape::new(10, 2).unwrap().repairs_for(1), 2);
        assert_eq!(s.repairs_for(5), 2);
        assert_eq!(s.repairs_for(8), 4);
        assert_eq!(Shape::new(10, 2).unwrap().repairs_for(3), 1);
        assert_eq!(s.repairs_for(10), 4);
        assert_eq!(Shape::new(10, 1).unwrap().repairs_for(1), 1);
        assert!(Shape::new(0, 1).is_err());
        assert!(Shape::new(10, 17).is_err());
    }
}
