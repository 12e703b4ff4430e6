//! A compact map keyed by packet number, for the packets one packet number space has in flight.
//! Packet numbers are sent in increasing order with at most small gaps, so the map is a window of
//! slots (`VecDeque<Option<V>>`) starting at the packet number `base`: lookup, insertion at the
//! end and removal are O(1) (amortized), iteration is in packet number order, and the memory it
//! holds follows the span of packet numbers in flight rather than a B-tree's fixed node size. The
//! buffer shrinks (with hysteresis, so a steady sliding window never reallocates) once the window
//! gets small, so an idle connection does not keep the buffer of an earlier bulk transfer.
//!
//! Insertions must come in increasing packet number order. Anything else is a bug in the caller
//! (checked in debug builds); release builds still store the entry correctly: inside the window it
//! takes its slot, and one that would need an absurd gap of empty slots goes to a small ordered
//! side map (`spill`) instead, so memory stays bounded by what is actually stored.

use std::collections::{btree_map, vec_deque, BTreeMap, VecDeque};
use std::fmt;
use std::ops::{Bound, RangeBounds};

/// Largest run of empty slots an insertion may create before the map stores the entry in its
/// side map instead (see [`PnMap`]): packet numbers come from our own sender, which skips at most
/// a few of them, so a gap this large is a bug, not something worth `gap` slots of memory.
pub const DEFAULT_MAX_GAP: u64 = 1024;

/// Slot buffers are not shrunk below this many bytes (rounded down to whole slots, at least one).
const MIN_RETAINED_BYTES: usize = 512;

/// Below this capacity the buffer grows by doubling from a single slot; `VecDeque` alone would
/// jump straight to four, which for a ~300-byte packet record is a kilobyte per idle connection.
const SMALL_CAPACITY: usize = 4;

/// A map from packet number to `V`, for keys inserted in increasing order (see the module docs).
///
/// `MAX_GAP` bounds the empty slots one insertion may add; entries that would need more go to an
/// ordered side map whose keys all precede the window's, so iteration reads the side map, then
/// the window.
#[derive(Clone)]
pub struct PnMap<V, const MAX_GAP: u64 = DEFAULT_MAX_GAP> {
    /// Packet number of `slots[0]` (meaningless while `slots` is empty).
    base: u64,
    /// One slot per packet number from `base`; the first and last are `Some` unless empty.
    slots: VecDeque<Option<V>>,
    /// Number of `Some` slots.
    len: usize,
    /// Entries that did not fit the window without an absurd gap; every key is below `base`
    /// while `slots` is non-empty. Empty (and unallocated) in normal operation.
    spill: BTreeMap<u64, V>,
}

impl<V, const MAX_GAP: u64> Default for PnMap<V, MAX_GAP> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V: fmt::Debug, const MAX_GAP: u64> fmt::Debug for PnMap<V, MAX_GAP> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<V, const MAX_GAP: u64> PnMap<V, MAX_GAP> {
    /// An empty map (allocates nothing).
    pub const fn new() -> Self {
        Self {
            base: 0,
            slots: VecDeque::new(),
            len: 0,
            spill: BTreeMap::new(),
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len + self.spill.len()
    }

    /// Whether the map holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Slots the window's buffer can hold without reallocating (memory accounting and tests).
    pub fn capacity(&self) -> usize {
        self.slots.capacity()
    }

    /// The smallest packet number in the map.
    pub fn first_key(&self) -> Option<u64> {
        match self.spill.keys().next() {
            Some(&k) => Some(k),
            None if self.slots.is_empty() => None,
            None => Some(self.base),
        }
    }

    /// The largest packet number in the map.
    pub fn last_key(&self) -> Option<u64> {
        if self.slots.is_empty() {
            self.spill.keys().next_back().copied()
        } else {
            Some(self.base + (self.slots.len() as u64 - 1))
        }
    }

    /// Whether `pn` is a valid next insertion: past the end of the window (a packet number removed
    /// from the end may be used again), or above every spilled key while the window is empty.
    fn in_order(&self, pn: u64) -> bool {
        if self.slots.is_empty() {
            self.spill.keys().next_back().is_none_or(|&k| pn > k)
        } else {
            u128::from(pn) >= u128::from(self.base) + self.slots.len() as u128
        }
    }

    /// Index of `pn`'s slot, if the window covers it.
    fn index(&self, pn: u64) -> Option<usize> {
        let off = pn.checked_sub(self.base)?;
        usize::try_from(off).ok().filter(|&i| i < self.slots.len())
    }

    /// The value stored for `pn`.
    pub fn get(&self, pn: u64) -> Option<&V> {
        match self.index(pn) {
            Some(i) => self.slots[i].as_ref(),
            None => self.spill.get(&pn),
        }
    }

    /// The value stored for `pn`, mutably.
    pub fn get_mut(&mut self, pn: u64) -> Option<&mut V> {
        match self.index(pn) {
            Some(i) => self.slots[i].as_mut(),
            None => self.spill.get_mut(&pn),
        }
    }

    /// Stores `v` for `pn`, returning the value it replaces. `pn` must be larger than every key
    /// inserted so far that is still in the map (checked in debug builds; release builds store
    /// out-of-order keys correctly, just not in O(1)). Gaps become empty slots.
    #[inline]
    pub fn insert(&mut self, pn: u64, v: V) -> Option<V> {
        debug_assert!(
            self.in_order(pn),
            "packet number {pn} inserted out of order (window {}+{})",
            self.base,
            self.slots.len()
        );
        debug_assert!(
            self.slots.is_empty()
                || (pn.checked_sub(self.base))
                    .and_then(|off| off.checked_sub(self.slots.len() as u64))
                    .is_none_or(|gap| gap <= MAX_GAP),
            "packet number {pn} leaves a gap of more than {MAX_GAP} after {}",
            self.base + self.slots.len() as u64
        );
        self.insert_any(pn, v)
    }

    /// [`Self::insert`] without the debug checks: any order, any gap.
    #[inline]
    fn insert_any(&mut self, pn: u64, v: V) -> Option<V> {
        // The common case: the packet number right after the last slot.
        if !self.slots.is_empty() && pn.checked_sub(self.base) == Some(self.slots.len() as u64) {
            self.push_slot(v);
            self.len += 1;
            return None;
        }
        self.insert_slow(pn, v)
    }

    /// [`Self::insert_any`] for an empty window, a gap, or an out-of-order packet number.
    fn insert_slow(&mut self, pn: u64, v: V) -> Option<V> {
        if self.slots.is_empty() {
            if self.spill.keys().next_back().is_some_and(|&k| k >= pn) {
                return self.spill.insert(pn, v);
            }
            self.base = pn;
            self.push_slot(v);
            self.len = 1;
            return None;
        }
        if let Some(off) = pn.checked_sub(self.base) {
            let Some(gap) = off.checked_sub(self.slots.len() as u64) else {
                // Inside the window (out of order): take the slot.
                let i = off as usize; // < slots.len(), so it fits
                let old = self.slots[i].replace(v);
                if old.is_none() {
                    self.len += 1;
                }
                return old;
            };
            if gap > MAX_GAP {
                // Everything in the window precedes `pn`: move it aside and restart the window.
                self.spill_window();
                self.base = pn;
                self.push_slot(v);
                self.len = 1;
                return None;
            }
            // gap <= MAX_GAP, which fits in usize on every supported platform.
            let gap = usize::try_from(gap).unwrap_or(usize::MAX);
            self.slots.resize_with(self.slots.len() + gap, || None);
            self.push_slot(v);
            self.len += 1;
            return None;
        }
        // Below the window (out of order). Extend it downwards only if that is cheap and keeps
        // every spilled key below the window.
        let front_gap = self.base - pn - 1;
        let spill_below = self.spill.keys().next_back().is_none_or(|&k| k < pn);
        if front_gap > MAX_GAP || !spill_below {
            return self.spill.insert(pn, v);
        }
        for _ in 0..front_gap {
            self.slots.push_front(None);
        }
        self.slots.push_front(Some(v));
        self.base = pn;
        self.len += 1;
        None
    }

    /// Appends an occupied slot, growing a small buffer by doubling from one slot.
    #[inline]
    fn push_slot(&mut self, v: V) {
        let cap = self.slots.capacity();
        if self.slots.len() == cap && cap < SMALL_CAPACITY {
            self.slots.reserve_exact(cap.max(1));
        }
        self.slots.push_back(Some(v));
    }

    /// Moves every window entry into the side map (their keys are all above the spilled ones).
    fn spill_window(&mut self) {
        let base = self.base;
        let slots = std::mem::take(&mut self.slots);
        for (i, s) in slots.into_iter().enumerate() {
            if let Some(v) = s {
                self.spill.insert(base + i as u64, v);
            }
        }
        self.len = 0;
        self.base = 0;
    }

    /// Removes and returns the value stored for `pn`. Empty slots at either end of the window are
    /// dropped (the window start advances), and the buffer shrinks once it is mostly unused.
    #[inline]
    pub fn remove(&mut self, pn: u64) -> Option<V> {
        let Some(i) = self.index(pn) else {
            return self.spill.remove(&pn);
        };
        // Returned as taken (not unwrapped and re-wrapped): saves copying a large `V` twice.
        let v = self.slots[i].take();
        v.as_ref()?;
        self.len -= 1;
        if self.len == 0 {
            self.slots.clear();
            self.base = 0;
        } else {
            while let Some(None) = self.slots.front() {
                self.slots.pop_front();
                self.base += 1;
            }
            while let Some(None) = self.slots.back() {
                self.slots.pop_back();
            }
        }
        self.maybe_shrink();
        v
    }

    /// Smallest buffer capacity worth keeping, in slots.
    fn min_retained() -> usize {
        (MIN_RETAINED_BYTES / std::mem::size_of::<Option<V>>().max(1)).max(1)
    }

    /// Halves (at least) the buffer once the window uses a quarter of it or less. Growing doubles
    /// the capacity, so between two reallocations the window changes by a quarter of the capacity
    /// or more: amortized O(1), and a window that slides at a steady size never reallocates.
    #[inline]
    fn maybe_shrink(&mut self) {
        let cap = self.slots.capacity();
        if self.slots.len() <= cap / 4 && cap > Self::min_retained() {
            self.shrink();
        }
    }

    /// The reallocation half of [`Self::maybe_shrink`].
    #[cold]
    fn shrink(&mut self) {
        self.slots
            .shrink_to((self.slots.len() * 2).max(Self::min_retained()));
    }

    /// Entries with a packet number in `range`, in increasing packet number order.
    #[inline]
    pub fn range(&self, range: impl RangeBounds<u64>) -> Range<'_, V> {
        // Normalize to the half-open [lo, hi), with hi up to 2^64.
        let lo = match range.start_bound() {
            Bound::Included(&s) => Some(s),
            Bound::Excluded(&s) => s.checked_add(1),
            Bound::Unbounded => Some(0),
        };
        let hi: u128 = match range.end_bound() {
            Bound::Included(&e) => u128::from(e) + 1,
            Bound::Excluded(&e) => u128::from(e),
            Bound::Unbounded => u128::from(u64::MAX) + 1,
        };
        // An empty range (including lo > hi) yields nothing rather than panicking.
        let (lo, hi) = match lo {
            Some(lo) if u128::from(lo) < hi => (lo, hi),
            _ => (0, 0),
        };
        let spilled = (!self.spill.is_empty()).then(|| self.spill.range(lo..));
        // Window slots covered by [lo, hi).
        let base = u128::from(self.base);
        let n = self.slots.len() as u128;
        let start = u128::from(lo).saturating_sub(base).min(n);
        let end = hi.saturating_sub(base).min(n).max(start);
        // start <= end <= slots.len(), so both fit in usize.
        let (start, end) = (start as usize, end as usize);
        Range {
            spilled,
            hi,
            next_pn: self.base.wrapping_add(start as u64),
            window: self.slots.range(start..end),
        }
    }

    /// All entries, in increasing packet number order.
    pub fn iter(&self) -> Range<'_, V> {
        self.range(..)
    }

    /// All packet numbers, in increasing order.
    pub fn keys(&self) -> impl Iterator<Item = u64> + '_ {
        self.iter().map(|(pn, _)| pn)
    }

    /// All values, in increasing packet number order.
    pub fn values(&self) -> impl Iterator<Item = &V> + '_ {
        self.iter().map(|(_, v)| v)
    }
}

/// Iterator over the entries of a [`PnMap`] in a range of packet numbers, in increasing order.
pub struct Range<'a, V> {
    /// Spilled entries from the range start on (`None` once past the range or if none).
    spilled: Option<btree_map::Range<'a, u64, V>>,
    /// End of the range (exclusive), for the spilled entries.
    hi: u128,
    /// Packet number of the next window slot.
    next_pn: u64,
    /// The window slots inside the range.
    window: vec_deque::Iter<'a, Option<V>>,
}

impl<'a, V> Iterator for Range<'a, V> {
    type Item = (u64, &'a V);

    #[inline]
    fn next(&mut self) -> Option<(u64, &'a V)> {
        if let Some(spilled) = &mut self.spilled {
            match spilled.next() {
                Some((&k, v)) if u128::from(k) < self.hi => return Some((k, v)),
                _ => self.spilled = None,
            }
        }
        for s in self.window.by_ref() {
            let pn = self.next_pn;
            self.next_pn = self.next_pn.wrapping_add(1);
            if let Some(v) = s {
                return Some((pn, v));
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self.spilled {
            Some(_) => (0, None),
            None => (0, Some(self.window.len())),
        }
    }
}

/// Owning iterator over a [`PnMap`], in increasing packet number order.
pub struct IntoIter<V> {
    spilled: btree_map::IntoIter<u64, V>,
    next_pn: u64,
    window: vec_deque::IntoIter<Option<V>>,
}

impl<V> Iterator for IntoIter<V> {
    type Item = (u64, V);

    fn next(&mut self) -> Option<(u64, V)> {
        if let Some(e) = self.spilled.next() {
            return Some(e);
        }
        for s in self.window.by_ref() {
            let pn = self.next_pn;
            self.next_pn = self.next_pn.wrapping_add(1);
            if let Some(v) = s {
                return Some((pn, v));
            }
        }
        None
    }
}

impl<V, const MAX_GAP: u64> IntoIterator for PnMap<V, MAX_GAP> {
    type Item = (u64, V);
    type IntoIter = IntoIter<V>;

    fn into_iter(self) -> IntoIter<V> {
        IntoIter {
            spilled: self.spill.into_iter(),
            next_pn: self.base,
            window: self.slots.into_iter(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Checks the representation invariants.
    fn check<V, const G: u64>(m: &PnMap<V, G>) {
        let some = m.slots.iter().filter(|s| s.is_some()).count();
        assert_eq!(some, m.len, "len counts the occupied slots");
        if let (Some(f), Some(b)) = (m.slots.front(), m.slots.back()) {
            assert!(f.is_some() && b.is_some(), "window ends are occupied");
            if let Some(&k) = m.spill.keys().next_back() {
                assert!(k < m.base, "spilled keys precede the window");
            }
        }
        let keys: Vec<u64> = m.keys().collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "iteration is ordered");
        assert_eq!(keys.len(), m.len());
    }

    #[test]
    fn empty() {
        let m: PnMap<u32> = PnMap::new();
        assert!(m.is_empty());
        assert_eq!(m.len(), 0);
        assert_eq!(m.first_key(), None);
        assert_eq!(m.last_key(), None);
        assert_eq!(m.get(0), None);
        assert_eq!(m.iter().count(), 0);
        assert_eq!(m.range(3..10).count(), 0);
        assert_eq!(m.capacity(), 0, "nothing allocated");
        assert_eq!(format!("{m:?}"), "{}");
    }

    #[test]
    fn insert_get_remove_with_gaps() {
        let mut m: PnMap<u32> = PnMap::new();
        for pn in [5u64, 6, 8, 9, 12] {
            assert_eq!(m.insert(pn, pn as u32 * 10), None);
        }
        check(&m);
        assert_eq!(m.len(), 5);
        assert_eq!(m.first_key(), Some(5));
        assert_eq!(m.last_key(), Some(12));
        assert_eq!(m.get(7), None);
        assert_eq!(m.get(8), Some(&80));
        assert_eq!(m.get(4), None);
        assert_eq!(m.get(13), None);
        assert_eq!(m.keys().collect::<Vec<_>>(), vec![5, 6, 8, 9, 12]);
        assert_eq!(format!("{m:?}"), "{5: 50, 6: 60, 8: 80, 9: 90, 12: 120}");

        // Removing the front advances the window past the hole at 7.
        assert_eq!(m.remove(5), Some(50));
        assert_eq!(m.remove(6), Some(60));
        assert_eq!(m.base, 8);
        assert_eq!(m.slots.len(), 5);
        // Removing the back drops the trailing hole too.
        assert_eq!(m.remove(12), Some(120));
        assert_eq!(m.slots.len(), 2);
        assert_eq!(m.remove(12), None, "already gone");
        assert_eq!(m.remove(100), None, "never there");
        check(&m);
        // The hole left at the end may be reused.
        assert_eq!(m.insert(10, 100), None);
        assert_eq!(m.keys().collect::<Vec<_>>(), vec![8, 9, 10]);
        if let Some(v) = m.get_mut(9) {
            *v = 91;
        }
        assert_eq!(m.remove(9), Some(91), "a middle removal leaves a hole");
        assert_eq!(m.slots.len(), 3);
        assert_eq!(m.remove(8), Some(80));
        assert_eq!(m.remove(10), Some(100));
        assert!(m.is_empty());
        assert!(m.slots.is_empty());
        check(&m);
        // An empty map restarts its window anywhere.
        m.insert(1000, 1);
        assert_eq!(m.first_key(), Some(1000));
        assert_eq!(m.slots.len(), 1);
    }

    #[test]
    fn ranges() {
        let mut m: PnMap<u64> = PnMap::new();
        for pn in (10..30).step_by(3) {
            m.insert(pn, pn);
        }
        let keys =
            |it: &mut dyn Iterator<Item = (u64, &u64)>| it.map(|(k, _)| k).collect::<Vec<_>>();
        assert_eq!(keys(&mut m.range(..)), vec![10, 13, 16, 19, 22, 25, 28]);
        assert_eq!(keys(&mut m.range(13..22)), vec![13, 16, 19]);
        assert_eq!(keys(&mut m.range(13..=22)), vec![13, 16, 19, 22]);
        assert_eq!(keys(&mut m.range(..16)), vec![10, 13]);
        assert_eq!(keys(&mut m.range(17..)), vec![19, 22, 25, 28]);
        assert_eq!(keys(&mut m.range(0..5)), Vec::<u64>::new());
        assert_eq!(keys(&mut m.range(29..100)), Vec::<u64>::new());
        assert_eq!(keys(&mut m.range(14..16)), Vec::<u64>::new());
        assert_eq!(keys(&mut m.range(0..u64::MAX)).len(), 7);
        assert_eq!(keys(&mut m.range(..=u64::MAX)).len(), 7);
        assert_eq!(
            keys(&mut m.range((Bound::Excluded(13), Bound::Included(25)))),
            vec![16, 19, 22, 25]
        );
        assert_eq!(
            keys(&mut m.range((Bound::Excluded(u64::MAX), Bound::Unbounded))),
            Vec::<u64>::new()
        );
        // Inverted ranges are empty (a BTreeMap would panic).
        #[allow(clippy::reversed_empty_ranges)]
        let inverted = m.range(25..13).count();
        assert_eq!(inverted, 0);
        assert!(m.range(16..16).next().is_none());
        assert!(m.range(16..=16).next().is_some());
    }

    #[test]
    fn extreme_packet_numbers() {
        let mut m: PnMap<u8> = PnMap::new();
        m.insert(u64::MAX - 2, 1);
        m.insert(u64::MAX, 2);
        check(&m);
        assert_eq!(m.last_key(), Some(u64::MAX));
        assert_eq!(m.range(u64::MAX..).count(), 1);
        assert_eq!(m.range(..=u64::MAX).count(), 2);
        assert_eq!(m.range(..u64::MAX).count(), 1);
        assert_eq!(m.remove(u64::MAX), Some(2));
        assert_eq!(m.into_iter().collect::<Vec<_>>(), vec![(u64::MAX - 2, 1)]);
    }

    #[test]
    fn into_iter_in_order() {
        let mut m: PnMap<u32, 4> = PnMap::new();
        m.insert(1, 1);
        m.insert(3, 3);
        m.insert_any(100, 100); // gap > 4: 1 and 3 spill
        m.insert(102, 102);
        check(&m);
        assert_eq!(m.spill.len(), 2);
        let all: Vec<_> = m.into_iter().collect();
        assert_eq!(all, vec![(1, 1), (3, 3), (100, 100), (102, 102)]);
    }

    #[test]
    fn absurd_gap_does_not_allocate_it() {
        let mut m: PnMap<[u8; 64], 16> = PnMap::new();
        m.insert_any(0, [0; 64]);
        m.insert_any(1 << 40, [1; 64]);
        m.insert_any((1 << 40) + 1, [2; 64]);
        check(&m);
        assert!(m.capacity() <= 16, "capacity {}", m.capacity());
        assert_eq!(
            m.keys().collect::<Vec<_>>(),
            vec![0, 1 << 40, (1 << 40) + 1]
        );
        assert_eq!(m.get(0), Some(&[0; 64]));
        assert_eq!(m.remove(0), Some([0; 64]));
        assert_eq!(m.first_key(), Some(1 << 40));
        // A far key below the window goes aside too.
        m.insert_any(5, [5; 64]);
        check(&m);
        assert_eq!(m.first_key(), Some(5));
        assert!(m.capacity() <= 16);
    }

    #[cfg(debug_assertions)]
    #[test]
    #[should_panic(expected = "out of order")]
    fn out_of_order_insert_is_a_bug() {
        let mut m: PnMap<u32> = PnMap::new();
        m.insert(5, 0);
        m.insert(4, 0);
    }

    #[cfg(debug_assertions)]
    #[test]
    #[should_panic(expected = "leaves a gap")]
    fn absurd_gap_is_a_bug() {
        let mut m: PnMap<u32> = PnMap::new();
        m.insert(5, 0);
        m.insert(5 + 2 * DEFAULT_MAX_GAP, 0);
    }

    #[test]
    fn out_of_order_insert_is_stored() {
        let mut m: PnMap<u32, 8> = PnMap::new();
        m.insert_any(10, 10);
        m.insert_any(14, 14);
        assert_eq!(m.insert_any(12, 12), None, "fills a hole");
        assert_eq!(m.insert_any(14, 140), Some(14), "replaces");
        assert_eq!(m.insert_any(7, 7), None, "extends the window down");
        assert_eq!(m.base, 7);
        check(&m);
        assert_eq!(m.keys().collect::<Vec<_>>(), vec![7, 10, 12, 14]);
        assert_eq!(m.get(14), Some(&140));
        assert_eq!(m.len(), 4);
    }

    #[test]
    fn releases_buffer_when_drained() {
        let mut m: PnMap<[u8; 300]> = PnMap::new();
        for pn in 0..10_000 {
            m.insert(pn, [0; 300]);
        }
        assert!(m.capacity() >= 10_000);
        for pn in 0..9_999 {
            m.remove(pn);
        }
        // One packet still in flight: the buffer is back to (about) one slot.
        assert_eq!(m.len(), 1);
        assert!(m.capacity() <= 2, "capacity {}", m.capacity());
        m.remove(9_999);
        assert_eq!(m.capacity(), 1);
        // Drained all at once (acked out of order, back to front): also released.
        for pn in 20_000..21_000 {
            m.insert(pn, [0; 300]);
        }
        for pn in (20_000..21_000).rev() {
            m.remove(pn);
        }
        assert_eq!(m.capacity(), 1);
    }

    #[test]
    fn small_buffers_grow_from_one_slot() {
        let mut m: PnMap<[u8; 300]> = PnMap::new();
        let mut caps = vec![];
        for pn in 0..9 {
            m.insert(pn, [0; 300]);
            caps.push(m.capacity());
        }
        assert_eq!(caps, vec![1, 2, 4, 4, 8, 8, 8, 8, 16]);
        // Small values keep a 512-byte buffer instead.
        let mut m: PnMap<u64> = PnMap::new();
        m.insert(0, 0);
        m.insert(1, 1);
        for pn in 2..200 {
            m.insert(pn, pn);
            m.remove(pn - 2);
        }
        let slot = std::mem::size_of::<Option<u64>>();
        assert!(m.capacity() * slot <= 512, "capacity {}", m.capacity());
    }

    #[test]
    fn sliding_window_does_not_reallocate() {
        let mut m: PnMap<u64> = PnMap::new();
        let window = 3000u64;
        for pn in 0..window {
            m.insert(pn, pn);
        }
        let cap = m.capacity();
        let mut reallocs = 0;
        for pn in window..100_000 {
            // Ack the oldest, send one more; every 7th packet is skipped (a hole).
            m.remove(pn - window);
            if pn % 7 != 0 {
                m.insert(pn, pn);
            }
            if m.capacity() != cap {
                reallocs += 1;
            }
        }
        assert_eq!(reallocs, 0);
    }

    /// One step of a random workload.
    #[derive(Clone, Debug)]
    enum Op {
        /// Insert the next packet number after a gap.
        Insert(u64),
        /// Insert anywhere (out of order; `insert_any` only).
        InsertAny(u64),
        /// Remove the key at this fraction of the live keys.
        RemoveLive(u16),
        /// Remove an arbitrary packet number (usually absent).
        Remove(u64),
        /// Compare a range query.
        Range(u64, u64, bool),
        /// Remove every key in a range (an ACK range).
        RemoveRange(u64, u64),
    }

    fn op(max_gap: u64, out_of_order: bool) -> impl Strategy<Value = Op> {
        let insert_any = if out_of_order { 2 } else { 0 };
        prop_oneof![
            6 => (0..=max_gap).prop_map(Op::Insert),
            insert_any => (0u64..300).prop_map(Op::InsertAny),
            5 => any::<u16>().prop_map(Op::RemoveLive),
            1 => (0u64..300).prop_map(Op::Remove),
            2 => (0u64..300, 0u64..300, any::<bool>()).prop_map(|(a, b, i)| Op::Range(a, b, i)),
            1 => (0u64..300, 0u64..40).prop_map(|(a, n)| Op::RemoveRange(a, a + n)),
        ]
    }

    /// Applies `ops` to a [`PnMap`] and a `BTreeMap` and compares them after every step.
    fn run_model<const G: u64>(ops: &[Op], start: u64) {
        let mut m: PnMap<u64, G> = PnMap::new();
        let mut model: BTreeMap<u64, u64> = BTreeMap::new();
        let mut next = start;
        for (step, op) in ops.iter().enumerate() {
            let v = step as u64;
            match *op {
                Op::Insert(gap) => {
                    // In order: past the last live key and past the window end.
                    let floor = model.keys().next_back().map_or(next, |&k| next.max(k + 1));
                    let pn = floor + gap;
                    next = pn + 1;
                    let window_gap = pn - (m.base + m.slots.len() as u64);
                    let old = if m.slots.is_empty() || window_gap <= G {
                        m.insert(pn, v)
                    } else {
                        m.insert_any(pn, v) // past the gap limit: the debug check would fire
                    };
                    assert_eq!(old, model.insert(pn, v));
                }
                Op::InsertAny(pn) => {
                    let pn = start + pn;
                    assert_eq!(m.insert_any(pn, v), model.insert(pn, v));
                    next = next.max(pn + 1);
                }
                Op::RemoveLive(f) => {
                    if !model.is_empty() {
                        let i = usize::from(f) * model.len() / (usize::from(u16::MAX) + 1);
                        let pn = *model.keys().nth(i).unwrap();
                        assert_eq!(m.remove(pn), model.remove(&pn));
                    }
                }
                Op::Remove(pn) => {
                    let pn = start + pn;
                    assert_eq!(m.remove(pn), model.remove(&pn));
                }
                Op::Range(a, b, inclusive) => {
                    let (a, b) = (start + a.min(b), start + a.max(b));
                    let got: Vec<(u64, u64)> = if inclusive {
                        m.range(a..=b).map(|(k, &v)| (k, v)).collect()
                    } else {
                        m.range(a..b).map(|(k, &v)| (k, v)).collect()
                    };
                    let want: Vec<(u64, u64)> = if inclusive {
                        model.range(a..=b).map(|(&k, &v)| (k, v)).collect()
                    } else {
                        model.range(a..b).map(|(&k, &v)| (k, v)).collect()
                    };
                    assert_eq!(got, want, "range {a}..{b} inclusive={inclusive}");
                    let below: Vec<u64> = m.range(..b).map(|(k, _)| k).collect();
                    let want: Vec<u64> = model.range(..b).map(|(&k, _)| k).collect();
                    assert_eq!(below, want);
                    let above: Vec<u64> = m.range(a..).map(|(k, _)| k).collect();
                    let want: Vec<u64> = model.range(a..).map(|(&k, _)| k).collect();
                    assert_eq!(above, want);
                }
                Op::RemoveRange(a, b) => {
                    let (a, b) = (start + a, start + b);
                    let pns: Vec<u64> = m.range(a..b).map(|(k, _)| k).collect();
                    let want: Vec<u64> = model.range(a..b).map(|(&k, _)| k).collect();
                    assert_eq!(pns, want);
                    for pn in pns {
                        assert_eq!(m.remove(pn), model.remove(&pn));
                    }
                }
            }
            check(&m);
            assert_eq!(m.len(), model.len());
            assert_eq!(m.is_empty(), model.is_empty());
            assert_eq!(m.first_key(), model.keys().next().copied());
            assert_eq!(m.last_key(), model.keys().next_back().copied());
            let all: Vec<(u64, u64)> = m.iter().map(|(k, &v)| (k, v)).collect();
            let want: Vec<(u64, u64)> = model.iter().map(|(&k, &v)| (k, v)).collect();
            assert_eq!(all, want);
            for pn in next.saturating_sub(8)..next + 2 {
                assert_eq!(m.get(pn), model.get(&pn));
            }
        }
        let all: Vec<(u64, u64)> = m.into_iter().collect();
        let want: Vec<(u64, u64)> = model.into_iter().collect();
        assert_eq!(all, want);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// In-order inserts with small gaps (the sender's pattern), default gap limit.
        #[test]
        fn matches_btreemap(ops in prop::collection::vec(op(5, false), 0..400)) {
            run_model::<DEFAULT_MAX_GAP>(&ops, 0);
        }

        /// Gaps beyond a tiny limit, near the top of the packet number space.
        #[test]
        fn matches_btreemap_with_spill(ops in prop::collection::vec(op(12, false), 0..400)) {
            run_model::<4>(&ops, u64::MAX - 20_000);
        }

        /// Out-of-order inserts too (what release builds must survive).
        #[test]
        fn matches_btreemap_any_order(ops in prop::collection::vec(op(12, true), 0..400)) {
            run_model::<4>(&ops, 1000);
        }
    }
}
