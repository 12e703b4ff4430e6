//! The per-flow compression policy of PROTOCOL.md §14.5 (local, not normative): [`Adaptive`]
//! remembers, for one stream or for a connection's datagrams, whether recent data compressed,
//! backs off exponentially while it does not, and estimates the ratio so a sender can take more
//! uncompressed bytes into a packet when they will shrink to fit.

use super::CompressionMode;

/// Bytes skipped after the first attempt that saved too little.
const FIRST_BACKOFF: u64 = 16 * 1024;
/// The longest stretch skipped between two attempts on incompressible data.
const MAX_BACKOFF: u64 = 1024 * 1024;
/// A compressed frame is kept only if it saves at least 1/8 (12.5%) of the bytes.
const MIN_SAVING_DIVISOR: usize = 8;
/// An attempt on fewer bytes than this that did not pay is no evidence about the data: LZ4 finds
/// its matches in what came before within the block, and a short block (the tail of a packet
/// after a large compressed frame, a short message) often saves less than an eighth of text that
/// compresses four to one in larger blocks. Such failures neither start a backoff nor move the
/// ratio estimate. (They did: on a bulk transfer of log lines, the small tails that ended most
/// packets kept the flow backing off and the ratio estimate near 0.6 instead of 0.23, and up to a
/// third of the data went uncompressed.)
const MIN_EVIDENCE: usize = 512;
/// Ratios are in 1/256ths.
const ONE: u32 = 256;

/// Compression state of one flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Adaptive {
    /// Bytes of this flow seen so far (compressed or not).
    seen: u64,
    /// Do not try again before `seen` reaches this.
    skip_until: u64,
    /// The current backoff, 0 after a success.
    backoff: u64,
    /// Recent compressed/uncompressed size, in 1/256ths (EWMA, 7/8 old).
    ratio: u32,
}

impl Default for Adaptive {
    fn default() -> Self {
        Self {
            seen: 0,
            skip_until: 0,
            backoff: 0,
            ratio: ONE,
        }
    }
}

impl Adaptive {
    /// Whether `len` bytes of this flow should be tried.
    pub fn should_try(&self, mode: CompressionMode, min_size: usize, len: usize) -> bool {
        match mode {
            CompressionMode::Off => false,
            CompressionMode::On => len >= min_size,
            CompressionMode::Auto => len >= min_size && self.seen >= self.skip_until,
        }
    }

    /// Whether a compressed size of `compressed` for `len` input bytes is worth sending.
    pub fn pays(len: usize, compressed: usize) -> bool {
        compressed + len / MIN_SAVING_DIVISOR <= len
    }

    /// Records an attempt: `len` bytes became `compressed` bytes (`None`: it did not pay).
    pub fn record_attempt(&mut self, len: usize, compressed: Option<usize>) {
        self.seen += len as u64;
        if compressed.is_none() && len < MIN_EVIDENCE {
            return;
        }
        let sample = match compressed {
            Some(c) if len > 0 => u32::try_from(c * ONE as usize / len)
                .unwrap_or(ONE)
                .min(ONE),
            _ => ONE,
        };
        self.ratio = (self.ratio * 7 + sample) / 8;
        if compressed.is_some() {
            self.backoff = 0;
            self.skip_until = 0;
        } else {
            self.backoff = (self.backoff * 2).clamp(FIRST_BACKOFF, MAX_BACKOFF);
            self.skip_until = self.seen + self.backoff;
        }
    }

    /// Records `len` bytes sent without an attempt.
    pub fn record_skipped(&mut self, len: usize) {
        self.seen += len as u64;
    }

    /// How many uncompressed bytes to take for a frame whose compressed data may be at most
    /// `room` bytes: more than `room` when recent data shrank, never more than `cap`.
    pub fn input_budget(&self, room: usize, cap: usize) -> usize {
        if self.ratio >= ONE * 7 / 8 {
            return room.min(cap);
        }
        // Aim 10% below the expected fit so most attempts succeed.
        let ratio = self.ratio.max(ONE / 16) as usize;
        (room * 230 / ratio).min(cap).max(room.min(cap))
    }

    /// The recent compressed/uncompressed ratio, in 1/256ths.
    pub fn ratio_256(&self) -> u32 {
        self.ratio
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_backs_off_exponentially_on_incompressible_data_and_recovers() {
        let mut a = Adaptive::default();
        let mode = CompressionMode::Auto;
        assert!(a.should_try(mode, 64, 1000));
        assert!(!a.should_try(mode, 64, 63), "below the threshold");
        a.record_attempt(1000, None);
        // 16 KiB skipped before the next try.
        let mut skipped = 0;
        while !a.should_try(mode, 64, 1000) {
            a.record_skipped(1000);
            skipped += 1000;
        }
        // 16384 bytes after the attempt, in 1000-byte pieces.
        assert_eq!(skipped, 17_000);
        a.record_attempt(1000, None);
        let mut skipped2 = 0;
        while !a.should_try(mode, 64, 1000) {
            a.record_skipped(1000);
            skipped2 += 1000;
        }
        assert!(
            skipped2 >= 2 * FIRST_BACKOFF as usize - 1000,
            "doubled: {skipped2}"
        );
        // A success resets the backoff.
        a.record_attempt(1000, Some(300));
        assert!(a.should_try(mode, 64, 1000));
        // On always tries, Off never.
        let mut b = Adaptive::default();
        b.record_attempt(1000, None);
        assert!(b.should_try(CompressionMode::On, 64, 1000));
        assert!(!b.should_try(CompressionMode::Off, 64, 1000));
    }

    #[test]
    fn backoff_is_capped() {
        let mut a = Adaptive::default();
        for _ in 0..20 {
            a.record_attempt(1000, None);
        }
        assert_eq!(a.backoff, MAX_BACKOFF);
    }

    #[test]
    fn small_attempts_that_do_not_pay_are_not_evidence() {
        let mode = CompressionMode::Auto;
        let mut a = Adaptive::default();
        for _ in 0..10 {
            a.record_attempt(4000, Some(1000));
        }
        let ratio = a.ratio_256();
        // A packet's short tail that did not shrink enough: the flow keeps compressing, and the
        // next packets still take as much data as the ratio of the large blocks promises.
        a.record_attempt(MIN_EVIDENCE - 1, None);
        assert!(a.should_try(mode, 64, 4000));
        assert_eq!(a.ratio_256(), ratio);
        // A large block that does not shrink is evidence.
        a.record_attempt(MIN_EVIDENCE, None);
        assert!(!a.should_try(mode, 64, 4000));
        assert!(a.ratio_256() > ratio);
    }

    #[test]
    fn budget_grows_with_a_good_ratio() {
        let mut a = Adaptive::default();
        assert_eq!(a.input_budget(1400, 65536), 1400);
        for _ in 0..30 {
            a.record_attempt(1000, Some(250));
        }
        let b = a.input_budget(1400, 65536);
        assert!(b > 4000 && b < 5600, "about 3.6x at a 1/4 ratio: {b}");
        assert_eq!(a.input_budget(1400, 2000), 2000);
    }

    #[test]
    fn pays_needs_an_eighth() {
        assert!(Adaptive::pays(800, 700));
        assert!(!Adaptive::pays(800, 701));
    }
}
