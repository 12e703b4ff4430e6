//! Wire codec: varints, packet headers, packet numbers, frames, transport parameters and handshake
//! messages (PROTOCOL.md §1.2, §4, §7, §8, §10).
//!
//! This module owns every byte layout of the protocol and nothing else: no state, no crypto, no
//! I/O. Decoders take untrusted bytes and return parsed representations that borrow from them
//! (smoltcp's "parse, don't validate"): they never panic, never allocate, and reject every
//! structure the spec does not allow with a typed error that names the transport error code or
//! alert to close with. Encoders append to a caller-provided `Vec<u8>` without intermediate
//! allocations and report where fields that must be patched later (lengths, binders) were put.

pub mod frame;
pub mod header;
pub mod messages;
pub mod packet_number;
pub mod transport_params;
pub mod varint;

pub use frame::{Frame, FrameError, FrameIter, FrameType};
pub use header::{ConnectionId, PacketType, PartialDecode, MAX_CID_LEN, VERSION_1};
pub use messages::{Message, MessageError, MessageReader, MessageType};
pub use packet_number::SpaceId;
pub use transport_params::{TransportParameterError, TransportParameters};
pub use varint::{DecodeError, EncodeError, Reader, VarInt};

/// The error codes of PROTOCOL.md §16 that the codec's errors map to, as sent in
/// CONNECTION_CLOSE.
pub mod error_code {
    /// NO_ERROR.
    pub const NO_ERROR: u64 = 0x00;
    /// GOING_AWAY.
    pub const GOING_AWAY: u64 = 0x01;
    /// PROTOCOL_ERROR.
    pub const PROTOCOL_ERROR: u64 = 0x02;
    /// TIMEOUT.
    pub const TIMEOUT: u64 = 0x03;
    /// RATE_LIMIT_EXCEEDED.
    pub const RATE_LIMIT_EXCEEDED: u64 = 0x04;
    /// INTERNAL_ERROR.
    pub const INTERNAL_ERROR: u64 = 0x05;
    /// FLOW_CONTROL_ERROR.
    pub const FLOW_CONTROL_ERROR: u64 = 0x06;
    /// STREAM_LIMIT_ERROR.
    pub const STREAM_LIMIT_ERROR: u64 = 0x07;
    /// STREAM_STATE_ERROR.
    pub const STREAM_STATE_ERROR: u64 = 0x08;
    /// FRAME_ENCODING_ERROR.
    pub const FRAME_ENCODING_ERROR: u64 = 0x09;
    /// TRANSPORT_PARAMETER_ERROR.
    pub const TRANSPORT_PARAMETER_ERROR: u64 = 0x0a;
    /// CONNECTION_ID_LIMIT_ERROR.
    pub const CONNECTION_ID_LIMIT_ERROR: u64 = 0x0b;
    /// KEY_UPDATE_ERROR.
    pub const KEY_UPDATE_ERROR: u64 = 0x0c;
    /// CRYPTO_BUFFER_EXCEEDED.
    pub const CRYPTO_BUFFER_EXCEEDED: u64 = 0x0d;
    /// INVALID_TOKEN.
    pub const INVALID_TOKEN: u64 = 0x0e;
    /// AEAD_LIMIT_REACHED.
    pub const AEAD_LIMIT_REACHED: u64 = 0x0f;
    /// VERSION_NEGOTIATION_ERROR.
    pub const VERSION_NEGOTIATION_ERROR: u64 = 0x10;
    /// SERVER_BUSY.
    pub const SERVER_BUSY: u64 = 0x11;
    /// Base of handshake failures: the code is `HANDSHAKE_ALERT_BASE + alert`.
    pub const HANDSHAKE_ALERT_BASE: u64 = 0x100;

    /// The transport error code for a handshake alert: `0x100 + alert`.
    pub const fn handshake_alert(alert: u8) -> u64 {
        // Widening u8 -> u64 (`From` is not const).
        HANDSHAKE_ALERT_BASE + alert as u64
    }
}

/// The handshake alerts of PROTOCOL.md §16.
pub mod alert {
    /// UNEXPECTED_MESSAGE.
    pub const UNEXPECTED_MESSAGE: u8 = 10;
    /// BAD_RECORD.
    pub const BAD_RECORD: u8 = 20;
    /// HANDSHAKE_FAILURE.
    pub const HANDSHAKE_FAILURE: u8 = 40;
    /// BAD_CERTIFICATE.
    pub const BAD_CERTIFICATE: u8 = 42;
    /// CERTIFICATE_EXPIRED.
    pub const CERTIFICATE_EXPIRED: u8 = 45;
    /// ILLEGAL_PARAMETER.
    pub const ILLEGAL_PARAMETER: u8 = 47;
    /// UNKNOWN_CA.
    pub const UNKNOWN_CA: u8 = 48;
    /// DECODE_ERROR.
    pub const DECODE_ERROR: u8 = 50;
    /// DECRYPT_ERROR.
    pub const DECRYPT_ERROR: u8 = 51;
    /// INSUFFICIENT_SECURITY.
    pub const INSUFFICIENT_SECURITY: u8 = 71;
    /// CERTIFICATE_REQUIRED.
    pub const CERTIFICATE_REQUIRED: u8 = 116;
}
