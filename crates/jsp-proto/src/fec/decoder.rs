//! Receive side of FEC (PROTOCOL.md §19.6): keeps the protected payloads and repair symbols of
//! recent groups, rebuilds missing payloads as soon as a group holds `k` of its `k + m` symbols,
//! and remembers which sources were delivered so that an original arriving after its recovery
//! does not deliver its datagrams twice.
//!
//! Memory is bounded: at most [`MAX_GROUPS`] groups and [`MAX_BUFFERED`] bytes are held; the
//! oldest group goes first.

use std::collections::VecDeque;

use super::codec::{ErasureCodec, RsCodec};
use super::{source_symbol, symbol_payload, FecError, LENGTH_PREFIX, MAX_SOURCE_SYMBOLS};

/// Most groups held at once.
pub const MAX_GROUPS: usize = 32;
/// Most payload and symbol bytes held at once.
pub const MAX_BUFFERED: usize = 1 << 20;
/// Finished groups whose delivered sources are remembered (for late originals).
pub const LOG_GROUPS: usize = 256;

/// What a REPAIR frame says about its group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RepairInfo {
    /// The group.
    pub group: u64,
    /// Source symbols in the group.
    pub k: usize,
    /// Repair symbols in the group.
    pub m: usize,
    /// This symbol's index (`0..m`).
    pub index: usize,
}

/// What to do with the frames after a FEC_SOURCE frame (PROTOCOL.md §19.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceOutcome {
    /// A new payload: process its frames.
    Fresh,
    /// Already delivered by recovery, or too old to tell: process its STREAM frames (they are
    /// idempotent) but drop its DATAGRAM frames.
    Duplicate,
}

/// A payload rebuilt by FEC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovered {
    /// Its group.
    pub group: u64,
    /// Its source index.
    pub index: usize,
    /// The protected frames.
    pub payload: Vec<u8>,
}

#[derive(Debug)]
struct Group {
    id: u64,
    /// (k, m, symbol length), from the first REPAIR frame.
    shape: Option<(usize, usize, usize)>,
    sources: Vec<Option<Vec<u8>>>,
    repairs: Vec<Option<Vec<u8>>>,
    /// Bit i: source i was delivered (received or recovered).
    delivered: u64,
}

impl Group {
    fn bytes(&self) -> usize {
        let f = |v: &Vec<Option<Vec<u8>>>| v.iter().flatten().map(Vec::len).sum::<usize>();
        f(&self.sources) + f(&self.repairs)
    }
}

/// Tracks FEC groups and rebuilds lost payloads.
#[derive(Debug, Default)]
pub struct FecDecoder {
    groups: VecDeque<Group>,
    log: VecDeque<(u64, u64)>,
    newest: Option<u64>,
    buffered: usize,
    codec: RsCodec,
}

impl FecDecoder {
    /// A new decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes held.
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// Groups held.
    pub fn groups(&self) -> usize {
        self.groups.len()
    }

    /// A source payload arrived: `payload` is everything after its FEC_SOURCE frame.
    pub fn on_source(
        &mut self,
        group: u64,
        index: usize,
        payload: &[u8],
    ) -> Result<(SourceOutcome, Vec<Recovered>), FecError> {
        if index >= MAX_SOURCE_SYMBOLS {
            return Err(FecError::OutOfRange("source index"));
        }
        let Some(pos) = self.find_or_create(group) else {
            let delivered = self.logged(group);
            let dup = delivered.is_none_or(|bits| bits & (1 << index) != 0);
            let outcome = if dup {
                SourceOutcome::Duplicate
            } else {
                SourceOutcome::Fresh
            };
            return Ok((outcome, Vec::new()));
        };
        let g = &mut self.groups[pos];
        if g.delivered & (1 << index) != 0 {
            return Ok((SourceOutcome::Duplicate, Vec::new()));
        }
        if let Some((k, _, len)) = g.shape {
            if index >= k {
                return Err(FecError::OutOfRange("source index"));
            }
            if payload.len() + LENGTH_PREFIX > len {
                return Err(FecError::PayloadTooLong { group });
            }
        }
        g.delivered |= 1 << index;
        if g.sources.len() <= index {
            g.sources.resize(index + 1, None);
        }
        g.sources[index] = Some(payload.to_vec());
        self.buffered += payload.len();
        let recovered = self.try_rebuild(pos)?;
        self.enforce_limits();
        Ok((SourceOutcome::Fresh, recovered))
    }

    /// A repair symbol arrived.
    pub fn on_repair(
        &mut self,
        info: RepairInfo,
        symbol: &[u8],
    ) -> Result<Vec<Recovered>, FecError> {
        let RepairInfo { group, k, m, index } = info;
        if !(1..=MAX_SOURCE_SYMBOLS).contains(&k)
            || !(1..=super::MAX_REPAIR_SYMBOLS).contains(&m)
            || index >= m
            || symbol.len() < LENGTH_PREFIX
        {
            return Err(FecError::OutOfRange("REPAIR field"));
        }
        let Some(pos) = self.find_or_create(group) else {
            return Ok(Vec::new()); // finished or too old: nothing left to rebuild
        };
        let g = &mut self.groups[pos];
        match g.shape {
            Some(shape) if shape != (k, m, symbol.len()) => {
                return Err(FecError::InconsistentGroup { group });
            }
            Some(_) => {}
            None => {
                if g.sources.len() > k {
                    return Err(FecError::OutOfRange("source index"));
                }
                if g.sources
                    .iter()
                    .flatten()
                    .any(|p| p.len() + LENGTH_PREFIX > symbol.len())
                {
                    return Err(FecError::PayloadTooLong { group });
                }
                g.shape = Some((k, m, symbol.len()));
                g.repairs = vec![None; m];
            }
        }
        if g.repairs[index].is_none() {
            g.repairs[index] = Some(symbol.to_vec());
            self.buffered += symbol.len();
        }
        let recovered = self.try_rebuild(pos)?;
        self.enforce_limits();
        Ok(recovered)
    }

    /// Position of `group`, creating it if it is new; `None` if it is finished (logged) or older
    /// than everything remembered.
    fn find_or_create(&mut self, group: u64) -> Option<usize> {
        if let Some(pos) = self.groups.iter().position(|g| g.id == group) {
            return Some(pos);
        }
        if self.logged(group).is_some() {
            return None;
        }
        if let Some(newest) = self.newest {
            if group.saturating_add(LOG_GROUPS as u64) <= newest {
                return None;
            }
        }
        self.newest = Some(self.newest.map_or(group, |n| n.max(group)));
        if self.groups.len() >= MAX_GROUPS {
            self.evict_oldest();
        }
        self.groups.push_back(Group {
            id: group,
            shape: None,
            sources: Vec::new(),
            repairs: Vec::new(),
            delivered: 0,
        });
        Some(self.groups.len() - 1)
    }

    fn logged(&self, group: u64) -> Option<u64> {
        if let Some(&(_, bits)) = self.log.iter().find(|(id, _)| *id == group) {
            return Some(bits);
        }
        match self.newest {
            Some(n) if group.saturating_add(LOG_GROUPS as u64) <= n => Some(u64::MAX),
            _ => None,
        }
    }

    fn evict_oldest(&mut self) {
        let Some(pos) = self
            .groups
            .iter()
            .enumerate()
            .min_by_key(|(_, g)| g.id)
            .map(|(i, _)| i)
        else {
            return;
        };
        self.finish(pos);
    }

    /// Drops a group's buffers and logs what it delivered.
    fn finish(&mut self, pos: usize) {
        if let Some(g) = self.groups.remove(pos) {
            self.buffered = self.buffered.saturating_sub(g.bytes());
            if self.log.len() >= LOG_GROUPS {
                self.log.pop_front();
            }
            self.log.push_back((g.id, g.delivered));
        }
    }

    fn enforce_limits(&mut self) {
        while self.buffered > MAX_BUFFERED && !self.groups.is_empty() {
            self.evict_oldest();
        }
    }

    fn try_rebuild(&mut self, pos: usize) -> Result<Vec<Recovered>, FecError> {
        let g = &self.groups[pos];
        let Some((k, m, len)) = g.shape else {
            return Ok(Vec::new());
        };
        let have_sources = g.sources.iter().take(k).filter(|s| s.is_some()).count();
        if have_sources == k {
            self.finish(pos);
            return Ok(Vec::new());
        }
        let have_repairs = g.repairs.iter().filter(|s| s.is_some()).count();
        if have_sources + have_repairs < k {
            return Ok(Vec::new());
        }
        let group = g.id;
        let mut shards: Vec<Option<Vec<u8>>> = Vec::with_capacity(k + m);
        for i in 0..k {
            let s = g.sources.get(i).and_then(Option::as_ref);
            shards.push(match s {
                Some(p) => Some(source_symbol(p, len).ok_or(FecError::PayloadTooLong { group })?),
                None => None,
            });
        }
        shards.extend(g.repairs.iter().cloned());
        self.codec.reconstruct(k, &mut shards)?;
        let mut out = Vec::new();
        let g = &mut self.groups[pos];
        for (i, shard) in shards.iter().take(k).enumerate() {
            if g.sources.get(i).is_some_and(Option::is_some) {
                continue;
            }
            let symbol = shard
                .as_ref()
                .ok_or(FecError::BadReconstruction { group })?;
            let payload = symbol_payload(symbol).ok_or(FecError::BadReconstruction { group })?;
            g.delivered |= 1 << i;
            out.push(Recovered {
                group,
                index: i,
                payload: payload.to_vec(),
            });
        }
        self.finish(pos);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fec::encoder::{FecEncoder, Shape};
    use crate::time::Instant;
    use core::time::Duration;

    /// Encodes `payloads` as one group and returns the repair symbols.
    fn group(payloads: &[&[u8]], m: usize) -> Vec<crate::fec::encoder::RepairSymbol> {
        let mut e = FecEncoder::new();
        let shape = Shape::new(payloads.len(), m).unwrap();
        for p in payloads {
            e.add_source(Instant::ZERO, shape, Duration::ZERO, p, Default::default())
                .unwrap();
        }
        std::iter::from_fn(|| e.pop_repair()).collect()
    }

    fn info(r: &crate::fec::encoder::RepairSymbol) -> RepairInfo {
        RepairInfo {
            group: r.group,
            k: r.k,
            m: r.m,
            index: r.index,
        }
    }

    #[test]
    fn rebuilds_missing_sources_in_any_order() {
        let payloads: [&[u8]; 4] = [b"one", b"two two", b"", b"four!"];
        let repairs = group(&payloads, 2);
        // Repairs first, then sources 0 and 3: sources 1 and 2 are rebuilt.
        let mut d = FecDecoder::new();
        assert!(d
            .on_repair(info(&repairs[0]), &repairs[0].symbol)
            .unwrap()
            .is_empty());
        assert!(d
            .on_repair(info(&repairs[1]), &repairs[1].symbol)
            .unwrap()
            .is_empty());
        let (o, r) = d.on_source(0, 0, payloads[0]).unwrap();
        assert_eq!((o, r.len()), (SourceOutcome::Fresh, 0));
        let (_, r) = d.on_source(0, 3, payloads[3]).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].index, r[0].payload.as_slice()), (1, &b"two two"[..]));
        assert_eq!((r[1].index, r[1].payload.as_slice()), (2, &b""[..]));
        assert_eq!(d.groups(), 0);
        assert_eq!(d.buffered(), 0);
        // The original of a recovered source arrives late: a duplicate.
        let (o, _) = d.on_source(0, 1, payloads[1]).unwrap();
        assert_eq!(o, SourceOutcome::Duplicate);
    }

    #[test]
    fn sources_then_repair_and_complete_groups() {
        let payloads: [&[u8]; 3] = [b"a", b"bb", b"ccc"];
        let repairs = group(&payloads, 1);
        let mut d = FecDecoder::new();
        d.on_source(5, 0, payloads[0]).unwrap();
        d.on_source(5, 2, payloads[2]).unwrap();
        let mut r = repairs[0].clone();
        r.group = 5;
        let got = d.on_repair(info(&r), &r.symbol).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].payload, b"bb");
        // A group that arrives whole needs no rebuild and frees its buffers.
        let mut d = FecDecoder::new();
        for (i, p) in payloads.iter().enumerate() {
            d.on_source(1, i, p).unwrap();
        }
        let mut r = repairs[0].clone();
        r.group = 1;
        assert!(d.on_repair(info(&r), &r.symbol).unwrap().is_empty());
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn inconsistent_or_out_of_range_input_is_a_typed_error() {
        let mut d = FecDecoder::new();
        let i = RepairInfo {
            group: 0,
            k: 3,
            m: 2,
            index: 0,
        };
        d.on_repair(i, &[0; 10]).unwrap();
        assert_eq!(
            d.on_repair(RepairInfo { k: 4, ..i }, &[0; 10]),
            Err(FecError::InconsistentGroup { group: 0 })
        );
        assert_eq!(
            d.on_repair(RepairInfo { index: 1, ..i }, &[0; 11]),
            Err(FecError::InconsistentGroup { group: 0 })
        );
        assert_eq!(
            d.on_source(0, 3, b"x"),
            Err(FecError::OutOfRange("source index"))
        );
        assert_eq!(
            d.on_source(0, 1, &[0; 9]),
            Err(FecError::PayloadTooLong { group: 0 })
        );
        assert!(d.on_repair(RepairInfo { index: 2, ..i }, &[0; 10]).is_err());
        assert!(d.on_source(9, 48, b"").is_err());
        // A source longer than a later REPAIR's symbols.
        let mut d = FecDecoder::new();
        d.on_source(0, 0, &[1; 20]).unwrap();
        assert_eq!(
            d.on_repair(i, &[0; 10]),
            Err(FecError::PayloadTooLong { group: 0 })
        );
    }

    #[test]
    fn a_corrupt_length_prefix_is_detected() {
        // k = 1: the repair symbol is the source symbol itself (times a constant 1).
        let mut d = FecDecoder::new();
        let info = RepairInfo {
            group: 0,
            k: 1,
            m: 1,
            index: 0,
        };
        assert_eq!(
            d.on_repair(info, &[0xff, 0xff, 0, 0]),
            Err(FecError::BadReconstruction { group: 0 })
        );
    }

    #[test]
    fn memory_is_bounded() {
        let mut d = FecDecoder::new();
        for g in 0..1000u64 {
            d.on_source(g, 0, &[7u8; 1400]).unwrap();
            assert!(d.groups() <= MAX_GROUPS);
            assert!(d.buffered() <= MAX_BUFFERED);
        }
        // Far older than anything remembered: treated as a duplicate (datagrams dropped).
        assert_eq!(d.on_source(3, 1, b"x").unwrap().0, SourceOutcome::Duplicate);
        // Evicted but logged, and never delivered: fresh.
        assert_eq!(d.on_source(990, 1, b"x").unwrap().0, SourceOutcome::Fresh);
    }
}
