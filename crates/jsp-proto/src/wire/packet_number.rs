//! Packet number spaces and the truncation and recovery of packet numbers (PROTOCOL.md §4.3).
//!
//! This module owns [`SpaceId`] and the three pure functions that turn a full 62-bit packet
//! number into its 1-4 byte wire form and back: [`encode_len`] and [`truncate`] on the sending
//! side (RFC 9000 Appendix A.2) and [`decode`] on the receiving side (RFC 9000 Appendix A.3).

/// The largest packet number: 2^62 - 1 (PROTOCOL.md §4.3).
pub const MAX_PACKET_NUMBER: u64 = (1 << 62) - 1;

/// A packet number space (PROTOCOL.md §4.3). 0-RTT and 1-RTT packets share [`SpaceId::Data`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SpaceId {
    /// Initial packets.
    Initial,
    /// Handshake packets.
    Handshake,
    /// 0-RTT and 1-RTT packets (the Application space).
    Data,
}

impl SpaceId {
    /// The three spaces, in handshake order.
    pub const ALL: [SpaceId; 3] = [SpaceId::Initial, SpaceId::Handshake, SpaceId::Data];
}

/// Number of bytes (1..=4) the sender uses for `full_pn`: enough to represent more than twice the
/// number of packets not yet acknowledged (PROTOCOL.md §4.3, RFC 9000 Appendix A.2).
///
/// `largest_acked` is the largest packet number the peer acknowledged in this space, if any.
/// A distance that would need more than 4 bytes (over 2^31 packets in flight) is clamped to 4; a
/// sender never gets there because its congestion window is far smaller.
#[inline]
pub fn encode_len(full_pn: u64, largest_acked: Option<u64>) -> usize {
    let num_unacked = match largest_acked {
        None => full_pn.saturating_add(1),
        Some(largest) => full_pn.saturating_sub(largest),
    };
    // min_bits = floor(log2(num_unacked)) + 1, plus one bit so the window covers twice the range.
    let min_bits = (u64::BITS - num_unacked.leading_zeros()) + 1;
    let bytes = min_bits.div_ceil(8);
    // In 1..=9, clamped to 1..=4: the conversion cannot fail.
    usize::try_from(bytes.clamp(1, 4)).unwrap_or(4)
}

/// The low `pn_len` bytes of `full_pn`, the value written in the Packet Number field.
///
/// `pn_len` must be in 1..=4 (debug-asserted; clamped otherwise).
#[inline]
pub fn truncate(full_pn: u64, pn_len: usize) -> u32 {
    debug_assert!((1..=4).contains(&pn_len), "pn_len {pn_len}");
    let bits = 8 * pn_len.clamp(1, 4);
    let mask = (1u64 << bits) - 1;
    // Masked to at most 32 bits, so the conversion cannot fail.
    u32::try_from(full_pn & mask).unwrap_or(u32::MAX)
}

/// Recovers the full packet number from its `pn_len`-byte truncation: the value closest to
/// `largest_received + 1` whose low bits equal `truncated` (PROTOCOL.md §4.3, RFC 9000
/// Appendix A.3).
///
/// `largest_received` is the largest packet number successfully processed in this space, or
/// `None` before the first one (the expected number is then 0). `pn_len` must be in 1..=4
/// (debug-asserted; clamped otherwise); bits of `truncated` above `pn_len` bytes are ignored.
#[inline]
pub fn decode(truncated: u32, pn_len: usize, largest_received: Option<u64>) -> u64 {
    debug_assert!((1..=4).contains(&pn_len), "pn_len {pn_len}");
    let bits = 8 * pn_len.clamp(1, 4);
    let expected = largest_received.map_or(0, |l| l.saturating_add(1));
    let win = 1u64 << bits;
    let hwin = win / 2;
    let mask = win - 1;
    let candidate = (expected & !mask) | (u64::from(truncated) & mask);
    // The RFC's `candidate <= expected - hwin`, written without underflow.
    if candidate.saturating_add(hwin) <= expected && candidate < (1u64 << 62) - win {
        candidate + win
    } else if candidate > expected.saturating_add(hwin) && candidate >= win {
        candidate - win
    } else {
        candidate
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc9000_a2_examples() {
        // RFC 9000 Appendix A.2: 0xac5c02 with 0xabe8b3 acknowledged needs 16 bits; 0xace8fe
        // needs 18 bits, hence 3 bytes.
        assert_eq!(encode_len(0xac5c02, Some(0xabe8b3)), 2);
        assert_eq!(encode_len(0xace8fe, Some(0xabe8b3)), 3);
        assert_eq!(truncate(0xac5c02, 2), 0x5c02);
        assert_eq!(truncate(0xace8fe, 3), 0xace8fe);
    }

    #[test]
    fn rfc9000_a3_example() {
        // RFC 9000 Appendix A.3 (and §17.1): largest 0xa82f30ea, 2-byte 0x9b32 -> 0xa82f9b32.
        assert_eq!(decode(0x9b32, 2, Some(0xa82f30ea)), 0xa82f9b32);
    }

    #[test]
    fn first_packets() {
        assert_eq!(encode_len(0, None), 1);
        assert_eq!(encode_len(126, None), 1);
        assert_eq!(encode_len(127, None), 2);
        assert_eq!(decode(0, 1, None), 0);
        assert_eq!(decode(5, 1, None), 5);
        assert_eq!(encode_len(u64::MAX, Some(0)), 4);
        assert_eq!(encode_len(3, Some(10)), 1);
    }

    #[test]
    fn edges_of_the_number_space() {
        // Near 2^62 the candidate is never pushed past the maximum.
        let max = MAX_PACKET_NUMBER;
        assert_eq!(decode(truncate(max, 1), 1, Some(max - 1)), max);
        assert_eq!(decode(truncate(max, 4), 4, Some(max - 1000)), max);
        // Wrapping below zero is impossible.
        assert_eq!(decode(0xff, 1, Some(0)), 0xff);
    }

    proptest! {
        #[test]
        fn decode_inverts_truncate_within_window(
            largest in 0..MAX_PACKET_NUMBER - (1 << 32),
            pn_len in 1usize..=4,
            delta in any::<u32>(),
        ) {
            // Any pn in (expected - hwin, expected + hwin] decodes exactly.
            let hwin = 1u64 << (8 * pn_len - 1);
            let expected = largest + 1;
            let offset = u64::from(delta) % (2 * hwin); // 0..2*hwin
            let pn = (expected + offset + 1).saturating_sub(hwin);
            prop_assume!(pn + hwin > expected && pn <= expected + hwin);
            prop_assert_eq!(decode(truncate(pn, pn_len), pn_len, Some(largest)), pn);
        }

        #[test]
        fn encode_len_suffices_for_any_receiver_state(
            acked in 0..MAX_PACKET_NUMBER / 2,
            ahead in 1u64..(1 << 30),
            seen in any::<u64>(),
        ) {
            // The sender chose pn_len from its largest acknowledged; the receiver has processed
            // at least that packet and at most pn - 1.
            let pn = acked + ahead;
            let pn_len = encode_len(pn, Some(acked));
            let received = acked + seen % ahead;
            prop_assert_eq!(decode(truncate(pn, pn_len), pn_len, Some(received)), pn);
        }

        #[test]
        fn encode_len_without_acks(pn in 0u64..(1 << 31), seen in any::<u64>()) {
            let pn_len = encode_len(pn, None);
            let received = if pn == 0 { None } else { Some(seen % pn) };
            prop_assert_eq!(decode(truncate(pn, pn_len), pn_len, received), pn);
        }
    }
}
