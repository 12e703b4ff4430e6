//! Transport parameters (PROTOCOL.md §8): the [`TransportParameters`] carried in the
//! `transport_parameters` extension of ClientHello and EncryptedExtensions, with their defaults,
//! range checks and codec.
//!
//! The encoding is a sequence of `varint id || varint length || value`. Decoding rejects
//! duplicates, values of the wrong size and values out of range, and ignores unknown ids; every
//! error is a `TRANSPORT_PARAMETER_ERROR` (§16). The encoder writes every parameter explicitly,
//! defaults included, so the encoding does not depend on how a receiver interprets an absent
//! parameter.

use super::error_code;
use super::header::{ConnectionId, MAX_CID_LEN};
use super::varint::{self, Reader};
use crate::compression::{AdvertisedDictionaries, DictionaryId, MAX_ADVERTISED_DICTIONARIES};

/// Transport parameter ids (PROTOCOL.md §8).
pub mod id {
    /// max_idle_timeout.
    pub const MAX_IDLE_TIMEOUT: u64 = 0x01;
    /// max_udp_payload_size.
    pub const MAX_UDP_PAYLOAD_SIZE: u64 = 0x02;
    /// initial_max_data.
    pub const INITIAL_MAX_DATA: u64 = 0x03;
    /// initial_max_stream_data_bidi_local.
    pub const INITIAL_MAX_STREAM_DATA_BIDI_LOCAL: u64 = 0x04;
    /// initial_max_stream_data_bidi_remote.
    pub const INITIAL_MAX_STREAM_DATA_BIDI_REMOTE: u64 = 0x05;
    /// initial_max_stream_data_uni.
    pub const INITIAL_MAX_STREAM_DATA_UNI: u64 = 0x06;
    /// initial_max_streams_bidi.
    pub const INITIAL_MAX_STREAMS_BIDI: u64 = 0x07;
    /// initial_max_streams_uni.
    pub const INITIAL_MAX_STREAMS_UNI: u64 = 0x08;
    /// ack_delay_exponent.
    pub const ACK_DELAY_EXPONENT: u64 = 0x09;
    /// max_ack_delay.
    pub const MAX_ACK_DELAY: u64 = 0x0a;
    /// active_connection_id_limit.
    pub const ACTIVE_CONNECTION_ID_LIMIT: u64 = 0x0b;
    /// original_destination_connection_id.
    pub const ORIGINAL_DESTINATION_CONNECTION_ID: u64 = 0x0c;
    /// retry_source_connection_id.
    pub const RETRY_SOURCE_CONNECTION_ID: u64 = 0x0d;
    /// initial_source_connection_id.
    pub const INITIAL_SOURCE_CONNECTION_ID: u64 = 0x0e;
    /// max_datagram_frame_size.
    pub const MAX_DATAGRAM_FRAME_SIZE: u64 = 0x0f;
    /// stateless_reset_token.
    pub const STATELESS_RESET_TOKEN: u64 = 0x10;
    /// fec_max_symbols (PROTOCOL.md §19.1).
    pub const FEC_MAX_SYMBOLS: u64 = 0x11;

    /// compression: which compressed frames the sender accepts (§14.5).
    pub const COMPRESSION: u64 = 0x20;
    /// compression_dictionaries: the dictionary ids the sender can decompress with (§14.5).
    pub const COMPRESSION_DICTIONARIES: u64 = 0x21;

    /// Whether `id` is a parameter this implementation knows.
    pub(crate) const fn is_known(id: u64) -> bool {
        matches!(id, 0x01..=0x11 | 0x20 | 0x21)
    }
}

/// Bit of the `compression` parameter: STREAM_LZ4 and DATAGRAM_LZ4 frames are accepted (§14.5).
pub const COMPRESSION_LZ4: u64 = 0x01;

/// The smallest allowed max_udp_payload_size (PROTOCOL.md §8).
pub const MIN_UDP_PAYLOAD_SIZE: u64 = 1200;
/// The largest allowed ack_delay_exponent (PROTOCOL.md §8).
pub const MAX_ACK_DELAY_EXPONENT: u8 = 20;
/// max_ack_delay must be below this many milliseconds: 2^14 (PROTOCOL.md §8).
pub const MAX_ACK_DELAY_LIMIT: u64 = 1 << 14;
/// The smallest allowed active_connection_id_limit (PROTOCOL.md §8).
pub const MIN_ACTIVE_CONNECTION_ID_LIMIT: u64 = 2;
/// The largest initial stream count: 2^60 (as MAX_STREAMS, PROTOCOL.md §10).
pub const MAX_STREAMS: u64 = 1 << 60;

/// Which endpoint sent a set of transport parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sender {
    /// The client (in ClientHello).
    Client,
    /// The server (in EncryptedExtensions).
    Server,
}

/// Transport parameters that do not decode or are not allowed. Every variant is a
/// `TRANSPORT_PARAMETER_ERROR` (PROTOCOL.md §8, §16); the id names the offending parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportParameterError {
    /// The sequence of parameters is truncated.
    #[error("transport parameters truncated")]
    Malformed,
    /// A parameter appears twice.
    #[error("transport parameter {0:#x} appears twice")]
    Duplicate(u64),
    /// A parameter has the wrong size or is out of range.
    #[error("transport parameter {0:#x} has an invalid value")]
    InvalidValue(u64),
    /// A required parameter is absent.
    #[error("required transport parameter {0:#x} is missing")]
    Missing(u64),
    /// A server-only parameter was sent by a client.
    #[error("transport parameter {0:#x} is server-only")]
    ServerOnly(u64),
}

impl TransportParameterError {
    /// The transport error code to close with: `TRANSPORT_PARAMETER_ERROR` (PROTOCOL.md §16).
    pub const fn code(&self) -> u64 {
        error_code::TRANSPORT_PARAMETER_ERROR
    }
}

/// The transport parameters of PROTOCOL.md §8. [`Default`] gives the §8 defaults, which are also
/// the values a decoder assumes for parameters that are absent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransportParameters {
    /// Idle timeout in milliseconds; 0 means none.
    pub max_idle_timeout: u64,
    /// Largest UDP payload the sender is willing to receive; at least 1200.
    pub max_udp_payload_size: u64,
    /// Connection flow-control credit, in bytes.
    pub initial_max_data: u64,
    /// Stream credit for bidirectional streams the sender of the parameters opens.
    pub initial_max_stream_data_bidi_local: u64,
    /// Stream credit for bidirectional streams the peer opens.
    pub initial_max_stream_data_bidi_remote: u64,
    /// Stream credit for unidirectional streams the peer opens.
    pub initial_max_stream_data_uni: u64,
    /// Bidirectional streams the peer may open; at most 2^60.
    pub initial_max_streams_bidi: u64,
    /// Unidirectional streams the peer may open; at most 2^60.
    pub initial_max_streams_uni: u64,
    /// Exponent of the ACK Delay field; at most 20.
    pub ack_delay_exponent: u8,
    /// Maximum ACK delay in milliseconds; below 2^14.
    pub max_ack_delay: u64,
    /// Connection IDs the sender is willing to store; at least 2.
    pub active_connection_id_limit: u64,
    /// The DCID of the client's first Initial (server only).
    pub original_destination_connection_id: Option<ConnectionId>,
    /// The SCID of the server's Retry (server only, iff it sent a Retry).
    pub retry_source_connection_id: Option<ConnectionId>,
    /// The SCID of the sender's first Initial (both; required).
    pub initial_source_connection_id: Option<ConnectionId>,
    /// Largest DATAGRAM frame the sender accepts; 0 means datagrams are not accepted.
    pub max_datagram_frame_size: u64,
    /// Stateless reset token for the server's handshake CID (server only).
    pub stateless_reset_token: Option<[u8; 16]>,
    /// Compressed frames the sender accepts, a bit set ([`COMPRESSION_LZ4`]); 0 = none.
    pub compression: u64,
    /// Dictionaries the sender can decompress with (at most 4).
    pub compression_dictionaries: AdvertisedDictionaries,
    /// Largest FEC group (`k + m` symbols) the sender decodes; 0 (the default, and the value of
    /// an absent parameter) means it does not support FEC (PROTOCOL.md §19.1). Encoded only when
    /// non-zero.
    pub fec_max_symbols: u64,
}

impl Default for TransportParameters {
    fn default() -> Self {
        TransportParameters {
            max_idle_timeout: 30_000,
            max_udp_payload_size: 1452,
            initial_max_data: 1 << 20,
            initial_max_stream_data_bidi_local: 256 << 10,
            initial_max_stream_data_bidi_remote: 256 << 10,
            initial_max_stream_data_uni: 256 << 10,
            initial_max_streams_bidi: 100,
            initial_max_streams_uni: 100,
            ack_delay_exponent: 3,
            max_ack_delay: 25,
            active_connection_id_limit: 4,
            original_destination_connection_id: None,
            retry_source_connection_id: None,
            initial_source_connection_id: None,
            max_datagram_frame_size: 1200,
            stateless_reset_token: None,
            compression: 0,
            compression_dictionaries: AdvertisedDictionaries::default(),
            fec_max_symbols: 0,
        }
    }
}

impl TransportParameters {
    /// Checks every range rule of PROTOCOL.md §8 (the decoder applies the same checks).
    pub fn validate(&self) -> Result<(), TransportParameterError> {
        use TransportParameterError::InvalidValue;
        let checks = [
            (id::MAX_IDLE_TIMEOUT, self.max_idle_timeout <= varint::MAX),
            (
                id::MAX_UDP_PAYLOAD_SIZE,
                (MIN_UDP_PAYLOAD_SIZE..=varint::MAX).contains(&self.max_udp_payload_size),
            ),
            (id::INITIAL_MAX_DATA, self.initial_max_data <= varint::MAX),
            (
                id::INITIAL_MAX_STREAM_DATA_BIDI_LOCAL,
                self.initial_max_stream_data_bidi_local <= varint::MAX,
            ),
            (
                id::INITIAL_MAX_STREAM_DATA_BIDI_REMOTE,
                self.initial_max_stream_data_bidi_remote <= varint::MAX,
            ),
            (
                id::INITIAL_MAX_STREAM_DATA_UNI,
                self.initial_max_stream_data_uni <= varint::MAX,
            ),
            (
                id::INITIAL_MAX_STREAMS_BIDI,
                self.initial_max_streams_bidi <= MAX_STREAMS,
            ),
            (
                id::INITIAL_MAX_STREAMS_UNI,
                self.initial_max_streams_uni <= MAX_STREAMS,
            ),
            (
                id::ACK_DELAY_EXPONENT,
                self.ack_delay_exponent <= MAX_ACK_DELAY_EXPONENT,
            ),
            (id::MAX_ACK_DELAY, self.max_ack_delay < MAX_ACK_DELAY_LIMIT),
            (
                id::ACTIVE_CONNECTION_ID_LIMIT,
                (MIN_ACTIVE_CONNECTION_ID_LIMIT..=varint::MAX)
                    .contains(&self.active_connection_id_limit),
            ),
            (
                id::MAX_DATAGRAM_FRAME_SIZE,
                self.max_datagram_frame_size <= varint::MAX,
            ),
            (id::FEC_MAX_SYMBOLS, self.fec_max_symbols <= varint::MAX),
        ];
        match checks.iter().find(|(_, ok)| !ok) {
            Some(&(bad, _)) => Err(InvalidValue(bad)),
            None => Ok(()),
        }
    }

    /// Appends the encoding of every parameter (PROTOCOL.md §8), in id order. Values must pass
    /// [`TransportParameters::validate`] (debug-asserted).
    pub fn encode(&self, buf: &mut Vec<u8>) {
        debug_assert_eq!(self.validate(), Ok(()));
        let put_int = |buf: &mut Vec<u8>, id: u64, v: u64| {
            varint::encode(id, buf);
            // A varint's size (1..=8) always fits in a u64.
            varint::encode(u64::try_from(varint::encoded_len(v)).unwrap_or(8), buf);
            varint::encode(v, buf);
        };
        let put_bytes = |buf: &mut Vec<u8>, id: u64, v: &[u8]| {
            varint::encode(id, buf);
            varint::encode(u64::try_from(v.len()).unwrap_or(varint::MAX), buf);
            buf.extend_from_slice(v);
        };
        put_int(buf, id::MAX_IDLE_TIMEOUT, self.max_idle_timeout);
        put_int(buf, id::MAX_UDP_PAYLOAD_SIZE, self.max_udp_payload_size);
        put_int(buf, id::INITIAL_MAX_DATA, self.initial_max_data);
        put_int(
            buf,
            id::INITIAL_MAX_STREAM_DATA_BIDI_LOCAL,
            self.initial_max_stream_data_bidi_local,
        );
        put_int(
            buf,
            id::INITIAL_MAX_STREAM_DATA_BIDI_REMOTE,
            self.initial_max_stream_data_bidi_remote,
        );
        put_int(
            buf,
            id::INITIAL_MAX_STREAM_DATA_UNI,
            self.initial_max_stream_data_uni,
        );
        put_int(
            buf,
            id::INITIAL_MAX_STREAMS_BIDI,
            self.initial_max_streams_bidi,
        );
        put_int(
            buf,
            id::INITIAL_MAX_STREAMS_UNI,
            self.initial_max_streams_uni,
        );
        put_int(
            buf,
            id::ACK_DELAY_EXPONENT,
            u64::from(self.ack_delay_exponent),
        );
        put_int(buf, id::MAX_ACK_DELAY, self.max_ack_delay);
        put_int(
            buf,
            id::ACTIVE_CONNECTION_ID_LIMIT,
            self.active_connection_id_limit,
        );
        if let Some(cid) = &self.original_destination_connection_id {
            put_bytes(buf, id::ORIGINAL_DESTINATION_CONNECTION_ID, cid);
        }
        if let Some(cid) = &self.retry_source_connection_id {
            put_bytes(buf, id::RETRY_SOURCE_CONNECTION_ID, cid);
        }
        if let Some(cid) = &self.initial_source_connection_id {
            put_bytes(buf, id::INITIAL_SOURCE_CONNECTION_ID, cid);
        }
        put_int(
            buf,
            id::MAX_DATAGRAM_FRAME_SIZE,
            self.max_datagram_frame_size,
        );
        if let Some(token) = &self.stateless_reset_token {
            put_bytes(buf, id::STATELESS_RESET_TOKEN, token);
        }
        put_int(buf, id::COMPRESSION, self.compression);
        let mut ids = [0u8; 4 * MAX_ADVERTISED_DICTIONARIES];
        let n = self.compression_dictionaries.as_slice().len();
        for (chunk, id) in ids
            .chunks_exact_mut(4)
            .zip(self.compression_dictionaries.as_slice())
        {
            chunk.copy_from_slice(&id.to_be_bytes());
        }
        put_bytes(buf, id::COMPRESSION_DICTIONARIES, &ids[..4 * n]);
        if self.fec_max_symbols != 0 {
            put_int(buf, id::FEC_MAX_SYMBOLS, self.fec_max_symbols);
        }
    }

    /// Decodes parameters (PROTOCOL.md §8): rejects truncation, duplicates, values of the wrong
    /// size or out of range, and a missing initial_source_connection_id; ignores unknown ids;
    /// absent parameters take their [`Default`] values. Use [`TransportParameters::decode_from`]
    /// to also apply the rules that depend on the sender.
    pub fn decode(bytes: &[u8]) -> Result<Self, TransportParameterError> {
        use TransportParameterError::{Duplicate, InvalidValue, Malformed};
        let mut p = TransportParameters::default();
        let mut seen: u64 = 0;
        let mut r = Reader::new(bytes);
        while !r.is_empty() {
            let id = r.get_varint().map_err(|_| Malformed)?;
            let value = r.get_varint_prefixed().map_err(|_| Malformed)?;
            // Anything but the known ids is ignored (greasing, extensions).
            if !id::is_known(id) {
                continue;
            }
            let bit = 1u64 << id;
            if seen & bit != 0 {
                return Err(Duplicate(id));
            }
            seen |= bit;
            let int = || exact_varint(value).ok_or(InvalidValue(id));
            let cid = || {
                (value.len() <= MAX_CID_LEN)
                    .then(|| ConnectionId::from_slice(value).ok())
                    .flatten()
                    .ok_or(InvalidValue(id))
            };
            match id {
                id::MAX_IDLE_TIMEOUT => p.max_idle_timeout = int()?,
                id::MAX_UDP_PAYLOAD_SIZE => p.max_udp_payload_size = int()?,
                id::INITIAL_MAX_DATA => p.initial_max_data = int()?,
                id::INITIAL_MAX_STREAM_DATA_BIDI_LOCAL => {
                    p.initial_max_stream_data_bidi_local = int()?
                }
                id::INITIAL_MAX_STREAM_DATA_BIDI_REMOTE => {
                    p.initial_max_stream_data_bidi_remote = int()?
                }
                id::INITIAL_MAX_STREAM_DATA_UNI => p.initial_max_stream_data_uni = int()?,
                id::INITIAL_MAX_STREAMS_BIDI => p.initial_max_streams_bidi = int()?,
                id::INITIAL_MAX_STREAMS_UNI => p.initial_max_streams_uni = int()?,
                id::ACK_DELAY_EXPONENT => {
                    p.ack_delay_exponent = u8::try_from(int()?).map_err(|_| InvalidValue(id))?
                }
                id::MAX_ACK_DELAY => p.max_ack_delay = int()?,
                id::ACTIVE_CONNECTION_ID_LIMIT => p.active_connection_id_limit = int()?,
                id::ORIGINAL_DESTINATION_CONNECTION_ID => {
                    p.original_destination_connection_id = Some(cid()?)
                }
                id::RETRY_SOURCE_CONNECTION_ID => p.retry_source_connection_id = Some(cid()?),
                id::INITIAL_SOURCE_CONNECTION_ID => p.initial_source_connection_id = Some(cid()?),
                id::MAX_DATAGRAM_FRAME_SIZE => p.max_datagram_frame_size = int()?,
                id::COMPRESSION => p.compression = int()?,
                id::COMPRESSION_DICTIONARIES => {
                    if value.len() % 4 != 0 || value.len() > 4 * MAX_ADVERTISED_DICTIONARIES {
                        return Err(InvalidValue(id));
                    }
                    for chunk in value.chunks_exact(4) {
                        let raw = <[u8; 4]>::try_from(chunk).map_err(|_| InvalidValue(id))?;
                        p.compression_dictionaries
                            .insert(DictionaryId(u32::from_be_bytes(raw)));
                    }
                }
                id::FEC_MAX_SYMBOLS => p.fec_max_symbols = int()?,
                _ => {
                    let token = <[u8; 16]>::try_from(value).map_err(|_| InvalidValue(id))?;
                    p.stateless_reset_token = Some(token);
                }
            }
        }
        p.validate()?;
        if p.initial_source_connection_id.is_none() {
            return Err(TransportParameterError::Missing(
                id::INITIAL_SOURCE_CONNECTION_ID,
            ));
        }
        Ok(p)
    }

    /// [`TransportParameters::decode`], plus the rule that a client MUST NOT send the server-only
    /// parameters original_destination_connection_id, retry_source_connection_id and
    /// stateless_reset_token (PROTOCOL.md §8).
    pub fn decode_from(bytes: &[u8], sender: Sender) -> Result<Self, TransportParameterError> {
        let p = Self::decode(bytes)?;
        if sender == Sender::Client {
            let server_only = [
                (
                    id::ORIGINAL_DESTINATION_CONNECTION_ID,
                    p.original_destination_connection_id.is_some(),
                ),
                (
                    id::RETRY_SOURCE_CONNECTION_ID,
                    p.retry_source_connection_id.is_some(),
                ),
                (id::STATELESS_RESET_TOKEN, p.stateless_reset_token.is_some()),
            ];
            if let Some(&(bad, _)) = server_only.iter().find(|(_, present)| *present) {
                return Err(TransportParameterError::ServerOnly(bad));
            }
        }
        Ok(p)
    }
}

/// A value that is exactly one varint, or `None`.
fn exact_varint(value: &[u8]) -> Option<u64> {
    let mut r = Reader::new(value);
    let v = r.get_varint().ok()?;
    r.is_empty().then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cid(b: &[u8]) -> ConnectionId {
        ConnectionId::from_slice(b).unwrap()
    }

    fn minimal() -> TransportParameters {
        TransportParameters {
            initial_source_connection_id: Some(cid(&[1; 8])),
            ..TransportParameters::default()
        }
    }

    fn param(buf: &mut Vec<u8>, id: u64, value: &[u8]) {
        varint::encode(id, buf);
        varint::encode(value.len() as u64, buf);
        buf.extend_from_slice(value);
    }

    fn iscid() -> Vec<u8> {
        let mut b = Vec::new();
        param(&mut b, id::INITIAL_SOURCE_CONNECTION_ID, &[1; 8]);
        b
    }

    #[test]
    fn defaults_when_absent() {
        let p = TransportParameters::decode(&iscid()).unwrap();
        assert_eq!(p, minimal());
        assert_eq!(p.max_idle_timeout, 30_000);
        assert_eq!(p.max_udp_payload_size, 1452);
        assert_eq!(p.initial_max_data, 1 << 20);
        assert_eq!(p.initial_max_stream_data_uni, 256 * 1024);
        assert_eq!(p.ack_delay_exponent, 3);
        assert_eq!(p.max_ack_delay, 25);
        assert_eq!(p.active_connection_id_limit, 4);
        assert_eq!(p.max_datagram_frame_size, 1200);
    }

    #[test]
    fn pinned_bytes() {
        let mut buf = Vec::new();
        minimal().encode(&mut buf);
        let expected: &[u8] = &[
            0x01, 0x04, 0x80, 0x00, 0x75, 0x30, // max_idle_timeout 30000
            0x02, 0x02, 0x45, 0xac, // max_udp_payload_size 1452
            0x03, 0x04, 0x80, 0x10, 0x00, 0x00, // initial_max_data 1 MiB
            0x04, 0x04, 0x80, 0x04, 0x00, 0x00, // 256 KiB
            0x05, 0x04, 0x80, 0x04, 0x00, 0x00, //
            0x06, 0x04, 0x80, 0x04, 0x00, 0x00, //
            0x07, 0x02, 0x40, 0x64, // 100 streams
            0x08, 0x02, 0x40, 0x64, //
            0x09, 0x01, 0x03, // ack_delay_exponent
            0x0a, 0x01, 0x19, // max_ack_delay 25
            0x0b, 0x01, 0x04, // active_connection_id_limit
            0x0e, 0x08, 1, 1, 1, 1, 1, 1, 1, 1, // initial_source_connection_id
            0x0f, 0x02, 0x44, 0xb0, // max_datagram_frame_size 1200
            0x20, 0x01, 0x00, // compression: none
            0x21, 0x00, // compression_dictionaries: none
        ];
        assert_eq!(buf, expected);
        assert_eq!(TransportParameters::decode(&buf), Ok(minimal()));
    }

    #[test]
    fn rejections() {
        use TransportParameterError::*;
        let with = |id: u64, value: &[u8]| {
            let mut b = iscid();
            param(&mut b, id, value);
            TransportParameters::decode(&b)
        };
        assert_eq!(
            with(id::MAX_UDP_PAYLOAD_SIZE, &[0x44, 0xaf]),
            Err(InvalidValue(2))
        ); // 1199
        assert!(with(id::MAX_UDP_PAYLOAD_SIZE, &[0x44, 0xb0]).is_ok()); // 1200
        assert_eq!(with(id::ACK_DELAY_EXPONENT, &[21]), Err(InvalidValue(9)));
        assert!(with(id::ACK_DELAY_EXPONENT, &[20]).is_ok());
        assert_eq!(
            with(id::MAX_ACK_DELAY, &[0x80, 0, 0x40, 0]),
            Err(InvalidValue(0x0a))
        ); // 2^14
        assert!(with(id::MAX_ACK_DELAY, &[0x7f, 0xff]).is_ok());
        assert_eq!(
            with(id::ACTIVE_CONNECTION_ID_LIMIT, &[1]),
            Err(InvalidValue(0x0b))
        );
        assert_eq!(
            with(id::RETRY_SOURCE_CONNECTION_ID, &[0; 21]),
            Err(InvalidValue(0x0d))
        );
        assert!(with(id::RETRY_SOURCE_CONNECTION_ID, &[0; 20]).is_ok());
        assert_eq!(
            with(id::STATELESS_RESET_TOKEN, &[0; 15]),
            Err(InvalidValue(0x10))
        );
        assert_eq!(
            with(id::STATELESS_RESET_TOKEN, &[0; 17]),
            Err(InvalidValue(0x10))
        );
        assert!(with(id::STATELESS_RESET_TOKEN, &[0; 16]).is_ok());
        // A varint value with trailing bytes, or an empty one.
        assert_eq!(
            with(id::INITIAL_MAX_DATA, &[0x01, 0x00]),
            Err(InvalidValue(3))
        );
        assert_eq!(with(id::INITIAL_MAX_DATA, &[]), Err(InvalidValue(3)));
        // Streams above 2^60.
        let mut big = Vec::new();
        varint::encode(MAX_STREAMS + 1, &mut big);
        assert_eq!(
            with(id::INITIAL_MAX_STREAMS_UNI, &big),
            Err(InvalidValue(8))
        );
        // Duplicates, including of the required CID.
        assert_eq!(
            with(id::INITIAL_SOURCE_CONNECTION_ID, &[2]),
            Err(Duplicate(0x0e))
        );
        // Missing initial_source_connection_id.
        assert_eq!(TransportParameters::decode(&[]), Err(Missing(0x0e)));
        // Truncated.
        let mut b = iscid();
        b.extend_from_slice(&[0x03, 0x04, 0x80]);
        assert_eq!(TransportParameters::decode(&b), Err(Malformed));
        assert_eq!(TransportParameters::decode(&[0x40]), Err(Malformed));
        for e in [
            Malformed,
            Duplicate(1),
            InvalidValue(1),
            Missing(1),
            ServerOnly(1),
        ] {
            assert_eq!(e.code(), 0x0a);
        }
    }

    #[test]
    fn unknown_ids_are_ignored() {
        let mut b = iscid();
        param(&mut b, 0x00, &[1, 2, 3]);
        param(&mut b, 0x12, &[]);
        param(&mut b, 0x1a2a, &[9; 40]);
        param(&mut b, 0x1a2a, &[9; 40]);
        param(&mut b, varint::MAX, &[0]);
        assert_eq!(TransportParameters::decode(&b), Ok(minimal()));
    }

    #[test]
    fn fec_max_symbols_is_optional() {
        // Absent: 0 (no FEC); written only when non-zero (PROTOCOL.md §8, §19.1).
        let mut b = Vec::new();
        minimal().encode(&mut b);
        assert_eq!(TransportParameters::decode(&b).unwrap().fec_max_symbols, 0);
        let with = TransportParameters {
            fec_max_symbols: 64,
            ..minimal()
        };
        let mut c = Vec::new();
        with.encode(&mut c);
        assert_eq!(&c[b.len()..], [0x11, 2, 0x40, 0x40]);
        assert_eq!(TransportParameters::decode(&c), Ok(with));
        param(&mut c, 0x11, &[1]);
        assert_eq!(
            TransportParameters::decode(&c),
            Err(TransportParameterError::Duplicate(0x11))
        );
    }

    #[test]
    fn server_only_from_client() {
        let server = TransportParameters {
            original_destination_connection_id: Some(cid(&[3; 8])),
            retry_source_connection_id: Some(cid(&[4; 8])),
            stateless_reset_token: Some([5; 16]),
            ..minimal()
        };
        let mut b = Vec::new();
        server.encode(&mut b);
        assert_eq!(
            TransportParameters::decode_from(&b, Sender::Server),
            Ok(server)
        );
        assert_eq!(
            TransportParameters::decode_from(&b, Sender::Client),
            Err(TransportParameterError::ServerOnly(0x0c))
        );
        let mut b = Vec::new();
        minimal().encode(&mut b);
        assert!(TransportParameters::decode_from(&b, Sender::Client).is_ok());
    }

    fn any_cid() -> impl Strategy<Value = Option<ConnectionId>> {
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..=20).prop_map(|v| cid(&v)))
    }

    #[test]
    fn compression_parameters() {
        let mut b = iscid();
        param(&mut b, id::COMPRESSION, &[0x01]);
        param(
            &mut b,
            id::COMPRESSION_DICTIONARIES,
            &[0, 0, 0, 7, 0xde, 0xad, 0xbe, 0xef],
        );
        let p = TransportParameters::decode(&b).unwrap();
        assert_eq!(p.compression, COMPRESSION_LZ4);
        assert_eq!(p.compression_dictionaries.as_slice(), &[7, 0xdead_beef]);
        assert_eq!(
            TransportParameters::decode(&iscid()).unwrap().compression,
            0,
            "absent: none"
        );
        for bad in [&[0u8, 0, 1][..], &[0u8; 20][..]] {
            let mut b = iscid();
            param(&mut b, id::COMPRESSION_DICTIONARIES, bad);
            assert_eq!(
                TransportParameters::decode(&b),
                Err(TransportParameterError::InvalidValue(
                    id::COMPRESSION_DICTIONARIES
                ))
            );
        }
    }

    fn any_params() -> impl Strategy<Value = TransportParameters> {
        let v = 0..=varint::MAX;
        (
            (
                v.clone(),
                MIN_UDP_PAYLOAD_SIZE..=varint::MAX,
                v.clone(),
                v.clone(),
                v.clone(),
                v.clone(),
            ),
            (
                0..=MAX_STREAMS,
                0..=MAX_STREAMS,
                0..=MAX_ACK_DELAY_EXPONENT,
                0..MAX_ACK_DELAY_LIMIT,
            ),
            (
                2..=varint::MAX,
                any_cid(),
                any_cid(),
                any_cid(),
                v,
                proptest::option::of(any::<[u8; 16]>()),
            ),
            (
                0..=varint::MAX,
                proptest::collection::vec(any::<u32>(), 0..=MAX_ADVERTISED_DICTIONARIES),
            ),
        )
            .prop_map(
                |((a, b, c, d, e, f), (g, h, i, j), (k, l, m, n, o, p), (q, r))| {
                    let mut dictionaries = AdvertisedDictionaries::default();
                    for id in r {
                        dictionaries.insert(DictionaryId(id));
                    }
                    TransportParameters {
                        max_idle_timeout: a,
                        max_udp_payload_size: b,
                        initial_max_data: c,
                        initial_max_stream_data_bidi_local: d,
                        initial_max_stream_data_bidi_remote: e,
                        initial_max_stream_data_uni: f,
                        initial_max_streams_bidi: g,
                        initial_max_streams_uni: h,
                        ack_delay_exponent: i,
                        max_ack_delay: j,
                        active_connection_id_limit: k,
                        original_destination_connection_id: l,
                        retry_source_connection_id: m,
                        initial_source_connection_id: Some(n.unwrap_or_default()),
                        max_datagram_frame_size: o,
                        stateless_reset_token: p,
                        compression: q,
                        compression_dictionaries: dictionaries,
                        fec_max_symbols: a % 100,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn roundtrip(p in any_params()) {
            let mut buf = Vec::new();
            p.encode(&mut buf);
            prop_assert_eq!(TransportParameters::decode_from(&buf, Sender::Server), Ok(p));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            if let Ok(p) = TransportParameters::decode(&bytes) {
                prop_assert_eq!(p.validate(), Ok(()));
                let mut again = Vec::new();
                p.encode(&mut again);
                prop_assert_eq!(TransportParameters::decode(&again), Ok(p));
            }
        }
    }
}
