//! Forward error correction (PROTOCOL.md §19): Reed-Solomon repair symbols over groups of
//! protected 1-RTT payloads, so that a receiver holding any `k` of the `k + m` symbols of a group
//! rebuilds the missing payloads without waiting for a retransmission.
//!
//! The pieces, one job each: [`codec`] wraps the Reed-Solomon library behind a small trait,
//! [`encoder`] builds groups on the send side and emits repair symbols (when a group is full, or
//! on a timer for sparse real-time traffic), [`decoder`] tracks groups on the receive side and
//! reconstructs lost payloads, and [`controller`] decides from the measured loss rate, loss
//! burstiness and RTT whether to protect and with which ratio. The connection glues them to the
//! send and receive paths; the configuration is [`crate::config::FecConfig`].

pub mod codec;
pub mod controller;
pub mod decoder;
pub mod encoder;

/// Most source symbols in one group (`k`), PROTOCOL.md §19.1.
pub const MAX_SOURCE_SYMBOLS: usize = 48;
/// Most repair symbols in one group (`m`), PROTOCOL.md §19.1.
pub const MAX_REPAIR_SYMBOLS: usize = 16;
/// Most symbols in one group (`k + m`): what an endpoint that supports FEC advertises in the
/// `fec_max_symbols` transport parameter (PROTOCOL.md §8, §19.1).
pub const MAX_GROUP_SYMBOLS: usize = 64;
/// Bytes of the length prefix that starts every source symbol (PROTOCOL.md §19.2).
pub const LENGTH_PREFIX: usize = 2;

/// Why FEC input was rejected. Every variant is a peer error closing the connection with
/// `PROTOCOL_ERROR` (PROTOCOL.md §19.4), except [`FecError::Codec`], a local failure.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FecError {
    /// A group parameter is out of range (k, m, an index, a symbol length).
    #[error("FEC {0} out of range")]
    OutOfRange(&'static str),
    /// Two REPAIR frames of one group disagree on k, m or the symbol length.
    #[error("REPAIR frames of group {group} disagree on the group's shape")]
    InconsistentGroup {
        /// The group.
        group: u64,
    },
    /// A protected payload is longer than its group's symbols allow.
    #[error("a protected payload of group {group} does not fit its symbol length")]
    PayloadTooLong {
        /// The group.
        group: u64,
    },
    /// A reconstructed symbol's length prefix runs past the symbol.
    #[error("a reconstructed symbol of group {group} has an invalid length prefix")]
    BadReconstruction {
        /// The group.
        group: u64,
    },
    /// The Reed-Solomon library refused the input (a local bug, not the peer's fault).
    #[error("Reed-Solomon codec failure: {0}")]
    Codec(String),
}

/// Builds the source symbol of a protected payload (PROTOCOL.md §19.2): a 16-bit big-endian
/// length, the payload, then zeros up to `symbol_len`. Returns `None` if the payload does not fit.
pub fn source_symbol(payload: &[u8], symbol_len: usize) -> Option<Vec<u8>> {
    let len = u16::try_from(payload.len()).ok()?;
    if payload.len() + LENGTH_PREFIX > symbol_len {
        return None;
    }
    let mut s = Vec::with_capacity(symbol_len);
    s.extend_from_slice(&len.to_be_bytes());
    s.extend_from_slice(payload);
    s.resize(symbol_len, 0);
    Some(s)
}

/// The payload inside a source symbol (the inverse of [`source_symbol`]), or `None` if the length
/// prefix runs past the symbol.
pub fn symbol_payload(symbol: &[u8]) -> Option<&[u8]> {
    let prefix = symbol.get(..LENGTH_PREFIX)?;
    let len = usize::from(u16::from_be_bytes([prefix[0], prefix[1]]));
    symbol.get(LENGTH_PREFIX..LENGTH_PREFIX + len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_round_trip_and_reject_bad_lengths() {
        let s = source_symbol(b"hello", 10).unwrap();
        assert_eq!(s, [0, 5, b'h', b'e', b'l', b'l', b'o', 0, 0, 0]);
        assert_eq!(symbol_payload(&s), Some(&b"hello"[..]));
        assert_eq!(source_symbol(b"hello", 6), None);
        assert_eq!(symbol_payload(&[0, 9, 1, 2]), None);
        assert_eq!(symbol_payload(&[0]), None);
        assert_eq!(symbol_payload(&[0, 0]), Some(&b""[..]));
    }
}
