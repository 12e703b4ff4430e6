//! The byte-level reading and writing helpers behind the structure-aware inputs.
//!
//! The `Arbitrary` impls of `server_engine` and `client_server_pair` read their operations with
//! these helpers only (single bytes, big-endian `u16`s, byte strings of a given length), never
//! with `arbitrary`'s own integer or collection decoding, so the seed corpus generator can write
//! an exact encoding of a chosen operation sequence with [`Writer`]. Reads past the end yield
//! zeros or short slices, never errors.

use arbitrary::Unstructured;

/// Reads one byte (0 once the input is exhausted).
pub fn take_u8(u: &mut Unstructured<'_>) -> u8 {
    take_bytes(u, 1).first().copied().unwrap_or(0)
}

/// Reads a big-endian `u16` (missing bytes read as 0).
pub fn take_u16(u: &mut Unstructured<'_>) -> u16 {
    let b = take_bytes(u, 2);
    let hi = b.first().copied().unwrap_or(0);
    let lo = b.get(1).copied().unwrap_or(0);
    u16::from_be_bytes([hi, lo])
}

/// Reads up to `n` bytes (fewer at the end of the input).
pub fn take_bytes<'a>(u: &mut Unstructured<'a>, n: usize) -> &'a [u8] {
    let n = n.min(u.len());
    u.bytes(n).unwrap_or(&[])
}

/// Writes inputs in the format the `take_*` readers consume.
#[derive(Debug, Default, Clone)]
pub struct Writer(pub Vec<u8>);

impl Writer {
    /// An empty input.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }

    /// Appends a big-endian `u16`.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends raw bytes.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }

    /// The encoded input.
    pub fn finish(&self) -> Vec<u8> {
        self.0.clone()
    }
}

/// A length that fits the `u16` length fields of the input formats (saturating).
pub fn len16(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}
