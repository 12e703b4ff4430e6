//! Received packet numbers of one packet number space: the duplicate/replay window
//! (PROTOCOL.md §5.6) and the ranges reported in ACK frames.

use crate::range_set::RangeSet;
use crate::time::Instant;

/// Packets more than this far below the largest received are treated as duplicates.
pub const REPLAY_WINDOW: u64 = 2048;
const WORDS: usize = (REPLAY_WINDOW / 64) as usize;
/// Most ACK ranges remembered (older gaps are forgotten, which only costs spurious retransmits).
pub const MAX_ACK_RANGES: usize = 32;

/// Tracks which packet numbers arrived, for duplicate rejection and acknowledgement.
#[derive(Clone, Debug)]
pub struct ReceivedPackets {
    largest: Option<u64>,
    largest_time: Instant,
    /// Bit `i` of the window means packet `largest - i` was received.
    window: [u64; WORDS],
    ranges: RangeSet,
    /// Ack-eliciting packets received since the last ACK was sent.
    pub unacked_eliciting: u32,
    /// When the first not-yet-acknowledged ack-eliciting packet arrived.
    pub ack_pending_since: Option<Instant>,
    /// An ACK must go out immediately (reordering, handshake, or threshold reached).
    pub ack_immediately: bool,
    /// Whether any packet arrived since the last ACK we sent (so an ACK has news).
    pub ack_has_news: bool,
}

impl Default for ReceivedPackets {
    fn default() -> Self {
        Self {
            largest: None,
            largest_time: Instant::ZERO,
            window: [0; WORDS],
            ranges: RangeSet::new(),
            unacked_eliciting: 0,
            ack_pending_since: None,
            ack_immediately: false,
            ack_has_news: false,
        }
    }
}

impl ReceivedPackets {
    /// Largest packet number received.
    pub fn largest(&self) -> Option<u64> {
        self.largest
    }

    /// When the largest packet number arrived.
    pub fn largest_time(&self) -> Instant {
        self.largest_time
    }

    /// Whether `pn` was already received or is too old to tell (PROTOCOL.md §5.6).
    pub fn is_duplicate(&self, pn: u64) -> bool {
        let Some(largest) = self.largest else {
            return false;
        };
        if pn > largest {
            return false;
        }
        let age = largest - pn;
        if age >= REPLAY_WINDOW {
            return true;
        }
        let (w, b) = ((age / 64) as usize, age % 64);
        self.window[w] & (1 << b) != 0
    }

    /// Records `pn` as received at `now`. The caller has checked [`Self::is_duplicate`].
    /// Returns true if the packet arrived out of order (a gap below it or it fills a gap).
    pub fn insert(&mut self, pn: u64, now: Instant, ack_eliciting: bool) -> bool {
        let out_of_order;
        match self.largest {
            None => {
                self.largest = Some(pn);
                self.largest_time = now;
                self.window = [0; WORDS];
                self.window[0] = 1;
                out_of_order = pn != 0;
            }
            Some(largest) if pn > largest => {
                self.shift(pn - largest);
                self.window[0] |= 1;
                self.largest = Some(pn);
                self.largest_time = now;
                out_of_order = pn != largest + 1;
            }
            Some(largest) => {
                let age = largest - pn;
                if age < REPLAY_WINDOW {
                    let (w, b) = ((age / 64) as usize, age % 64);
                    self.window[w] |= 1 << b;
                }
                out_of_order = true;
            }
        }
        self.ranges.insert(pn..pn + 1);
        self.ranges.truncate_low(MAX_ACK_RANGES);
        self.ack_has_news = true;
        if ack_eliciting {
            self.unacked_eliciting += 1;
            if self.ack_pending_since.is_none() {
                self.ack_pending_since = Some(now);
            }
            if out_of_order {
                self.ack_immediately = true;
            }
        }
        out_of_order
    }

    fn shift(&mut self, by: u64) {
        if by >= REPLAY_WINDOW {
            self.window = [0; WORDS];
            return;
        }
        let words = (by / 64) as usize;
        let bits = (by % 64) as u32;
        if words > 0 {
            for i in (0..WORDS).rev() {
                self.window[i] = if i >= words {
                    self.window[i - words]
                } else {
                    0
                };
            }
        }
        if bits > 0 {
            for i in (0..WORDS).rev() {
                let carry = if i > 0 {
                    self.window[i - 1] >> (64 - bits)
                } else {
                    0
                };
                self.window[i] = (self.window[i] << bits) | carry;
            }
        }
    }

    /// The ranges to acknowledge, highest first.
    pub fn ack_ranges(&self) -> impl ExactSizeIterator<Item = core::ops::Range<u64>> + '_ {
        self.ranges.iter().rev()
    }

    /// Whether anything was received.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The peer acknowledged our ACK covering everything up to `largest`: stop reporting below.
    pub fn on_ack_acked(&mut self, largest: u64) {
        // Keep the range containing `largest` so the next ACK still reports it.
        let keep_from = self
            .ranges
            .iter()
            .find(|r| r.contains(&largest))
            .map_or(largest, |r| r.start);
        self.ranges.remove_below(keep_from);
    }

    /// Notes that an ACK was just sent.
    pub fn on_ack_sent(&mut self) {
        self.unacked_eliciting = 0;
        self.ack_pending_since = None;
        self.ack_immediately = false;
        self.ack_has_news = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_detected_in_and_below_window() {
        let mut r = ReceivedPackets::default();
        let now = Instant::ZERO;
        for pn in [0u64, 1, 2, 5, 3] {
            assert!(!r.is_duplicate(pn));
            r.insert(pn, now, true);
        }
        for pn in [0u64, 1, 2, 3, 5] {
            assert!(r.is_duplicate(pn), "{pn}");
        }
        assert!(!r.is_duplicate(4));
        r.insert(5000, now, true);
        assert!(r.is_duplicate(5000));
        assert!(r.is_duplicate(4)); // below the window
        assert!(!r.is_duplicate(4999));
        r.insert(4999 - 100, now, true);
        assert!(r.is_duplicate(4899));
        assert!(!r.is_duplicate(4900));
    }

    #[test]
    fn window_shifts_across_words() {
        let mut r = ReceivedPackets::default();
        let now = Instant::ZERO;
        r.insert(10, now, false);
        r.insert(10 + 70, now, false);
        assert!(r.is_duplicate(10));
        assert!(!r.is_duplicate(11));
        r.insert(10 + 70 + 1000, now, false);
        assert!(r.is_duplicate(10));
        assert!(r.is_duplicate(80));
        assert!(!r.is_duplicate(81));
    }

    #[test]
    fn ack_ranges_highest_first() {
        let mut r = ReceivedPackets::default();
        for pn in [0u64, 1, 2, 6, 7, 9] {
            r.insert(pn, Instant::ZERO, true);
        }
        let v: Vec<_> = r.ack_ranges().collect();
        assert_eq!(v, vec![9..10, 6..8, 0..3]);
        r.on_ack_acked(7);
        let v: Vec<_> = r.ack_ranges().collect();
        assert_eq!(v, vec![9..10, 6..8]);
    }
}
