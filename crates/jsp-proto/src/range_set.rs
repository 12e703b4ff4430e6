//! A set of non-overlapping, non-adjacent `u64` ranges, kept sorted.
//!
//! Used for acknowledged packet numbers, received stream offsets and data awaiting
//! retransmission. Operations are O(log n) lookups plus O(k) merges on a `BTreeMap` keyed by range
//! start; the number of ranges is bounded by the callers (gaps are what cost memory).

use std::collections::BTreeMap;
use std::ops::Range;

/// A sorted set of half-open `u64` ranges. Adjacent and overlapping inserts are merged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeSet {
    /// start -> end (exclusive)
    map: BTreeMap<u64, u64>,
}

impl RangeSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of disjoint ranges.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the set holds nothing.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Whether `value` is in the set.
    pub fn contains(&self, value: u64) -> bool {
        self.map
            .range(..=value)
            .next_back()
            .is_some_and(|(_, &end)| value < end)
    }

    /// Inserts `range`; returns true if it added at least one new value.
    pub fn insert(&mut self, range: Range<u64>) -> bool {
        if range.is_empty() {
            return false;
        }
        let mut start = range.start;
        let mut end = range.end;
        // Merge with a predecessor that overlaps or touches.
        if let Some((&s, &e)) = self.map.range(..=start).next_back() {
            if e >= end {
                return false;
            }
            if e >= start {
                start = s;
                self.map.remove(&s);
            }
        }
        // Merge successors that overlap or touch.
        while let Some((&s, &e)) = self.map.range(start..).next() {
            if s > end {
                break;
            }
            end = end.max(e);
            self.map.remove(&s);
        }
        self.map.insert(start, end);
        true
    }

    /// Inserts the part of `range` that is not in `exclude` (re-queueing what of a lost range
    /// was not acknowledged).
    pub fn insert_difference(&mut self, range: Range<u64>, exclude: &RangeSet) {
        let mut start = range.start;
        for a in exclude.iter() {
            if a.end <= start {
                continue;
            }
            if a.start >= range.end {
                break;
            }
            if a.start > start {
                self.insert(start..a.start);
            }
            start = start.max(a.end);
        }
        if start < range.end {
            self.insert(start..range.end);
        }
    }

    /// Removes every value in `range` from the set.
    pub fn remove(&mut self, range: Range<u64>) {
        if range.is_empty() {
            return;
        }
        let overlapping: Vec<(u64, u64)> = self
            .map
            .range(..range.end)
            .rev()
            .take_while(|(_, &e)| e > range.start)
            .map(|(&s, &e)| (s, e))
            .collect();
        for (s, e) in overlapping {
            self.map.remove(&s);
            if s < range.start {
                self.map.insert(s, range.start);
            }
            if e > range.end {
                self.map.insert(range.end, e);
            }
        }
    }

    /// Smallest value in the set.
    pub fn min(&self) -> Option<u64> {
        self.map.keys().next().copied()
    }

    /// Largest value in the set.
    pub fn max(&self) -> Option<u64> {
        self.map.values().next_back().map(|e| e - 1)
    }

    /// Removes and returns the first range, truncated to at most `max_len` values.
    pub fn pop_min(&mut self, max_len: u64) -> Option<Range<u64>> {
        let (&s, &e) = self.map.iter().next()?;
        self.map.remove(&s);
        let end = if e - s > max_len { s + max_len } else { e };
        if end < e {
            self.map.insert(end, e);
        }
        Some(s..end)
    }

    /// Ranges in ascending order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = Range<u64>> + ExactSizeIterator + '_ {
        self.map.iter().map(|(&s, &e)| s..e)
    }

    /// Drops every value below `bound`.
    pub fn remove_below(&mut self, bound: u64) {
        self.remove(0..bound);
    }

    /// Drops the lowest ranges until at most `max` ranges remain.
    pub fn truncate_low(&mut self, max: usize) {
        while self.map.len() > max {
            if let Some(&s) = self.map.keys().next() {
                self.map.remove(&s);
            }
        }
    }

    /// Removes everything.
    pub fn clear(&mut self) {
        self.map.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn merges_adjacent_and_overlapping() {
        let mut s = RangeSet::new();
        assert!(s.insert(0..5));
        assert!(s.insert(5..10));
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![0..10]);
        assert!(!s.insert(2..8));
        assert!(s.insert(20..30));
        assert!(s.insert(9..21));
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![0..30]);
    }

    #[test]
    fn insert_difference_skips_excluded_values() {
        let mut acked = RangeSet::new();
        acked.insert(20..40);
        acked.insert(60..70);
        let mut pending = RangeSet::new();
        pending.insert_difference(0..100, &acked);
        assert_eq!(
            pending.iter().collect::<Vec<_>>(),
            vec![0..20, 40..60, 70..100]
        );
    }

    #[test]
    fn remove_splits() {
        let mut s = RangeSet::new();
        s.insert(0..100);
        s.remove(10..20);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![0..10, 20..100]);
        assert!(!s.contains(15));
        assert!(s.contains(20));
        assert_eq!(s.pop_min(4), Some(0..4));
        assert_eq!(s.min(), Some(4));
        assert_eq!(s.max(), Some(99));
    }

    proptest! {
        #[test]
        fn behaves_like_a_set(ops in proptest::collection::vec((any::<bool>(), 0u64..200, 0u64..20), 0..60)) {
            let mut s = RangeSet::new();
            let mut model = BTreeSet::new();
            for (ins, start, len) in ops {
                if ins { s.insert(start..start + len); model.extend(start..start + len); }
                else { s.remove(start..start + len); for v in start..start + len { model.remove(&v); } }
            }
            for v in 0..230 { prop_assert_eq!(s.contains(v), model.contains(&v)); }
            let ranges: Vec<_> = s.iter().collect();
            for w in ranges.windows(2) { prop_assert!(w[0].end < w[1].start); }
        }
    }
}
