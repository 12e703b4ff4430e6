//! Variable-length integers (PROTOCOL.md §1.2) and the byte cursor every decoder is built on.
//!
//! This module owns the 62-bit varint codec ([`VarInt`], [`encode`], [`decode`],
//! [`encoded_len`]), the [`Reader`] cursor over untrusted bytes, and the two error types shared by
//! the whole codec: [`DecodeError`] (input that does not parse) and [`EncodeError`] (a value the
//! wire format cannot represent). Decoding never panics and never allocates; every length read
//! from the wire is checked against the bytes that remain before it is used.

use core::fmt;

/// The largest value a varint can hold: 2^62 - 1 (PROTOCOL.md §1.2).
pub const MAX: u64 = (1 << 62) - 1;

/// Why untrusted bytes failed to decode.
///
/// Inside a protected payload every variant is a `FRAME_ENCODING_ERROR` (or the error code the
/// enclosing structure names); in a header it means the packet is dropped silently (PROTOCOL.md
/// §1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// A field runs past the end of its buffer.
    #[error("unexpected end of input")]
    UnexpectedEnd,
    /// A field holds a value the format does not allow.
    #[error("invalid value")]
    InvalidValue,
    /// Bytes remain after a structure whose length is exact.
    #[error("trailing bytes after an exact-length structure")]
    TrailingBytes,
}

/// A value the wire format cannot represent was handed to an encoder.
///
/// Encoders that can fail leave the output buffer as it was before the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// An integer exceeds 2^62 - 1 and cannot be a varint.
    #[error("value exceeds the varint range (2^62 - 1)")]
    VarIntOutOfRange,
    /// A variable-length field is longer than its length prefix (or the spec) allows.
    #[error("{field} is {len} bytes, more than the {max} allowed")]
    TooLong {
        /// The field, named as in PROTOCOL.md.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The maximum the format allows.
        max: usize,
    },
    /// A list has fewer or more entries than the format allows.
    #[error("{field} has {len} entries, outside {min}..={max}")]
    BadCount {
        /// The field, named as in PROTOCOL.md.
        field: &'static str,
        /// Its number of entries.
        len: usize,
        /// The minimum number of entries.
        min: usize,
        /// The maximum number of entries.
        max: usize,
    },
    /// ACK ranges are empty, not in descending order, overlapping or adjacent (PROTOCOL.md §10).
    #[error("ACK ranges are empty, overlapping, adjacent or not descending")]
    InvalidAckRanges,
    /// A field holds a value the format does not allow (named as in PROTOCOL.md).
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// An offset handed to a patch function lies outside the buffer or before the field it
    /// measures from.
    #[error("offset outside the buffer")]
    OutOfBounds,
}

/// Error from constructing a [`VarInt`] out of a value above 2^62 - 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("value exceeds the varint range (2^62 - 1)")]
pub struct VarIntBoundsExceeded;

/// An integer in `0..=2^62-1`: every value of this type can be encoded as a varint
/// (PROTOCOL.md §1.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VarInt(u64);

impl VarInt {
    /// The largest varint, 2^62 - 1.
    pub const MAX: VarInt = VarInt(MAX);
    /// Zero.
    pub const ZERO: VarInt = VarInt(0);

    /// Converts a `u32`; infallible because every `u32` is in range.
    pub const fn from_u32(v: u32) -> Self {
        // Widening, lossless.
        VarInt(v as u64)
    }

    /// Converts a `u64`, failing if it exceeds 2^62 - 1.
    pub const fn from_u64(v: u64) -> Result<Self, VarIntBoundsExceeded> {
        if v <= MAX {
            Ok(VarInt(v))
        } else {
            Err(VarIntBoundsExceeded)
        }
    }

    /// The value.
    pub const fn into_inner(self) -> u64 {
        self.0
    }

    /// Number of bytes of the shortest encoding: 1, 2, 4 or 8.
    pub const fn size(self) -> usize {
        encoded_len(self.0)
    }

    /// Appends the shortest encoding to `buf`.
    pub fn encode(self, buf: &mut Vec<u8>) {
        encode(self.0, buf);
    }
}

impl TryFrom<u64> for VarInt {
    type Error = VarIntBoundsExceeded;
    fn try_from(v: u64) -> Result<Self, Self::Error> {
        VarInt::from_u64(v)
    }
}

impl TryFrom<usize> for VarInt {
    type Error = VarIntBoundsExceeded;
    fn try_from(v: usize) -> Result<Self, Self::Error> {
        u64::try_from(v)
            .map_err(|_| VarIntBoundsExceeded)
            .and_then(VarInt::from_u64)
    }
}

impl From<u32> for VarInt {
    fn from(v: u32) -> Self {
        VarInt::from_u32(v)
    }
}

impl From<u16> for VarInt {
    fn from(v: u16) -> Self {
        VarInt(u64::from(v))
    }
}

impl From<u8> for VarInt {
    fn from(v: u8) -> Self {
        VarInt(u64::from(v))
    }
}

impl From<VarInt> for u64 {
    fn from(v: VarInt) -> Self {
        v.0
    }
}

impl fmt::Display for VarInt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Number of bytes of the shortest varint encoding of `v`: 1, 2, 4 or 8.
///
/// Values above 2^62 - 1 report 8, the size [`encode`] writes for them (clamped).
#[inline]
pub const fn encoded_len(v: u64) -> usize {
    if v < (1 << 6) {
        1
    } else if v < (1 << 14) {
        2
    } else if v < (1 << 30) {
        4
    } else {
        8
    }
}

/// Appends the shortest varint encoding of `v` to `buf` (PROTOCOL.md §1.2).
///
/// `v` must be at most 2^62 - 1. Values on the wire come from local state whose invariants keep
/// them in range (limits are themselves varints received from the peer, offsets are bounded by
/// them), so a larger value is a local bug: it trips a `debug_assert!` in debug and test builds,
/// and release builds write [`MAX`] instead, keeping the encoding well-formed rather than
/// panicking on a path a peer might influence.
#[inline]
pub fn encode(v: u64, buf: &mut Vec<u8>) {
    debug_assert!(v <= MAX, "varint out of range: {v}");
    let v = if v > MAX { MAX } else { v };
    if v < (1 << 6) {
        // In range of u8 by the branch condition.
        buf.push(v.to_be_bytes()[7]);
    } else if v < (1 << 14) {
        let b = v.to_be_bytes();
        buf.extend_from_slice(&[0x40 | b[6], b[7]]);
    } else if v < (1 << 30) {
        let b = v.to_be_bytes();
        buf.extend_from_slice(&[0x80 | b[4], b[5], b[6], b[7]]);
    } else {
        let mut b = v.to_be_bytes();
        b[0] |= 0xc0;
        buf.extend_from_slice(&b);
    }
}

/// Appends `v` as a 2-byte varint, the fixed-size form used for fields patched in place
/// (the long-header Length, PROTOCOL.md §4.1).
///
/// Fails if `v` does not fit in 14 bits (16383).
pub fn encode_2byte(v: u64, buf: &mut Vec<u8>) -> Result<(), EncodeError> {
    let bytes = two_byte(v)?;
    buf.extend_from_slice(&bytes);
    Ok(())
}

/// The 2-byte varint encoding of `v`, or an error if `v > 16383`.
pub(crate) fn two_byte(v: u64) -> Result<[u8; 2], EncodeError> {
    if v >= (1 << 14) {
        return Err(EncodeError::TooLong {
            field: "2-byte varint",
            len: usize::try_from(v).unwrap_or(usize::MAX),
            max: (1 << 14) - 1,
        });
    }
    let b = v.to_be_bytes();
    Ok([0x40 | b[6], b[7]])
}

/// Decodes one varint from the front of `buf`, returning the value and the bytes consumed.
///
/// Any of the four lengths is accepted, shortest or not (PROTOCOL.md §1.2).
#[inline]
pub fn decode(buf: &[u8]) -> Result<(u64, usize), DecodeError> {
    let mut r = Reader::new(buf);
    let v = r.get_varint()?;
    Ok((v, r.position()))
}

/// A cursor over untrusted bytes: every read checks the remaining length first and fails with
/// [`DecodeError::UnexpectedEnd`] instead of panicking. Slices it returns borrow from the input.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader positioned at the start of `buf`.
    #[inline]
    pub const fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    #[inline]
    pub const fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not yet consumed.
    #[inline]
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Whether every byte has been consumed.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The bytes not yet consumed, without consuming them.
    #[inline]
    pub fn peek_rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    /// Consumes and returns every remaining byte.
    #[inline]
    pub fn take_rest(&mut self) -> &'a [u8] {
        let rest = self.peek_rest();
        self.pos = self.buf.len();
        rest
    }

    /// The next byte, without consuming it.
    #[inline]
    pub fn peek_u8(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    /// Consumes `n` bytes and returns them.
    #[inline]
    pub fn get_bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::UnexpectedEnd)?;
        let bytes = self
            .buf
            .get(self.pos..end)
            .ok_or(DecodeError::UnexpectedEnd)?;
        self.pos = end;
        Ok(bytes)
    }

    /// Consumes `n` bytes, where `n` comes from the wire as a `u64`.
    #[inline]
    pub fn get_bytes_u64(&mut self, n: u64) -> Result<&'a [u8], DecodeError> {
        let n = usize::try_from(n).map_err(|_| DecodeError::UnexpectedEnd)?;
        self.get_bytes(n)
    }

    /// Consumes exactly `N` bytes into an array.
    #[inline]
    pub fn get_array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let bytes = self.get_bytes(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    /// Consumes `n` bytes without returning them.
    #[inline]
    pub fn skip(&mut self, n: usize) -> Result<(), DecodeError> {
        self.get_bytes(n).map(|_| ())
    }

    /// Consumes a `u8`.
    #[inline]
    pub fn get_u8(&mut self) -> Result<u8, DecodeError> {
        let b = *self.buf.get(self.pos).ok_or(DecodeError::UnexpectedEnd)?;
        self.pos += 1;
        Ok(b)
    }

    /// Consumes a big-endian `u16`.
    #[inline]
    pub fn get_u16(&mut self) -> Result<u16, DecodeError> {
        self.get_array().map(u16::from_be_bytes)
    }

    /// Consumes a big-endian `u24` (PROTOCOL.md §1.1), returned as a `u32`.
    #[inline]
    pub fn get_u24(&mut self) -> Result<u32, DecodeError> {
        let [a, b, c] = self.get_array()?;
        Ok(u32::from_be_bytes([0, a, b, c]))
    }

    /// Consumes a big-endian `u32`.
    #[inline]
    pub fn get_u32(&mut self) -> Result<u32, DecodeError> {
        self.get_array().map(u32::from_be_bytes)
    }

    /// Consumes a big-endian `u64`.
    #[inline]
    pub fn get_u64(&mut self) -> Result<u64, DecodeError> {
        self.get_array().map(u64::from_be_bytes)
    }

    /// Consumes a varint of any length (PROTOCOL.md §1.2).
    #[inline]
    pub fn get_varint(&mut self) -> Result<u64, DecodeError> {
        let first = self.peek_u8().ok_or(DecodeError::UnexpectedEnd)?;
        let tag = first >> 6;
        let first = u64::from(first & 0x3f);
        let v = match tag {
            0 => {
                self.pos += 1;
                return Ok(first);
            }
            1 => {
                let [_, b] = self.get_array::<2>()?;
                (first << 8) | u64::from(b)
            }
            2 => {
                let [_, b, c, d] = self.get_array::<4>()?;
                (first << 24) | u64::from(u32::from_be_bytes([0, b, c, d]))
            }
            _ => {
                let mut b = self.get_array::<8>()?;
                b[0] &= 0x3f;
                u64::from_be_bytes(b)
            }
        };
        Ok(v)
    }

    /// Consumes a varint and returns it as a [`VarInt`].
    #[inline]
    pub fn get_var(&mut self) -> Result<VarInt, DecodeError> {
        // A decoded varint is always at most 2^62 - 1.
        self.get_varint().map(VarInt)
    }

    /// Consumes a `u8` length and that many bytes.
    #[inline]
    pub fn get_u8_prefixed(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.get_u8()?;
        self.get_bytes(usize::from(n))
    }

    /// Consumes a `u16` length and that many bytes.
    #[inline]
    pub fn get_u16_prefixed(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.get_u16()?;
        self.get_bytes(usize::from(n))
    }

    /// Consumes a varint length and that many bytes.
    #[inline]
    pub fn get_varint_prefixed(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.get_varint()?;
        self.get_bytes_u64(n)
    }

    /// Succeeds only if every byte has been consumed, for structures whose length is exact.
    #[inline]
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc9000_appendix_a1_examples() {
        let cases: [(&[u8], u64); 4] = [
            (
                &[0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c],
                151_288_809_941_952_652,
            ),
            (&[0x9d, 0x7f, 0x3e, 0x7d], 494_878_333),
            (&[0x7b, 0xbd], 15_293),
            (&[0x25], 37),
        ];
        for (bytes, v) in cases {
            assert_eq!(decode(bytes), Ok((v, bytes.len())));
            let mut out = Vec::new();
            encode(v, &mut out);
            assert_eq!(out, bytes);
            assert_eq!(encoded_len(v), bytes.len());
        }
        // Non-shortest form is accepted (§1.2).
        assert_eq!(decode(&[0x40, 0x25]), Ok((37, 2)));
    }

    #[test]
    fn boundaries() {
        for (v, len) in [
            (0, 1),
            (63, 1),
            (64, 2),
            (16383, 2),
            (16384, 4),
            ((1 << 30) - 1, 4),
            (1 << 30, 8),
            (MAX, 8),
        ] {
            let mut out = Vec::new();
            encode(v, &mut out);
            assert_eq!(out.len(), len, "{v}");
            assert_eq!(decode(&out), Ok((v, len)));
        }
        assert_eq!(VarInt::from_u64(MAX + 1), Err(VarIntBoundsExceeded));
        assert_eq!(VarInt::from_u64(MAX).map(VarInt::into_inner), Ok(MAX));
        assert_eq!(VarInt::MAX.size(), 8);
    }

    #[test]
    fn truncated() {
        assert_eq!(decode(&[]), Err(DecodeError::UnexpectedEnd));
        assert_eq!(decode(&[0x40]), Err(DecodeError::UnexpectedEnd));
        assert_eq!(decode(&[0x80, 0, 0]), Err(DecodeError::UnexpectedEnd));
        assert_eq!(
            decode(&[0xc0, 0, 0, 0, 0, 0, 0]),
            Err(DecodeError::UnexpectedEnd)
        );
    }

    #[test]
    fn two_byte_form() {
        let mut out = Vec::new();
        encode_2byte(5, &mut out).unwrap();
        assert_eq!(out, [0x40, 0x05]);
        assert!(encode_2byte(16384, &mut out).is_err());
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn reader_fixed_width() {
        let bytes = [
            1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18,
        ];
        let mut r = Reader::new(&bytes);
        assert_eq!(r.get_u8(), Ok(1));
        assert_eq!(r.get_u16(), Ok(0x0203));
        assert_eq!(r.get_u24(), Ok(0x040506));
        assert_eq!(r.get_u32(), Ok(0x0708090a));
        assert_eq!(r.remaining(), 8);
        assert_eq!(r.finish(), Err(DecodeError::TrailingBytes));
        assert_eq!(r.get_u64(), Ok(0x0b0c0d0e0f101112));
        assert!(r.is_empty());
        assert_eq!(r.finish(), Ok(()));
        assert_eq!(r.get_u8(), Err(DecodeError::UnexpectedEnd));
        let mut r = Reader::new(&bytes);
        assert_eq!(r.get_bytes(usize::MAX), Err(DecodeError::UnexpectedEnd));
        assert_eq!(r.get_bytes_u64(u64::MAX), Err(DecodeError::UnexpectedEnd));
        assert_eq!(r.position(), 0);
    }

    proptest! {
        #[test]
        fn roundtrip(v in 0..=MAX) {
            let mut out = Vec::new();
            encode(v, &mut out);
            prop_assert_eq!(out.len(), encoded_len(v));
            prop_assert_eq!(decode(&out), Ok((v, out.len())));
        }

        #[test]
        fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
            if let Ok((v, n)) = decode(&bytes) {
                prop_assert!(v <= MAX);
                prop_assert!(n <= bytes.len());
            }
        }
    }
}
