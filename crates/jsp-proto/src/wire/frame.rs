//! Frames (PROTOCOL.md §10): the parsed [`Frame`] representation, the [`FrameIter`] decoder over
//! a decrypted payload, one encoder per frame type, and the size helpers the packet builder uses
//! to fit frames into the space left in a packet.
//!
//! Decoding borrows: STREAM, CRYPTO and DATAGRAM data, ACK ranges and close reasons are slices of
//! the payload, never copies. ACK frames are validated once, when decoded, so that iterating
//! their ranges ([`Ack::iter`]) cannot fail. Runs of PADDING collapse into one
//! [`Frame::Padding`]. Encoders append to a caller-provided `Vec<u8>`; varint fields must be at
//! most 2^62 - 1 (see [`varint::encode`]).

use core::ops::Range;
use std::borrow::Cow;

use super::error_code;
use super::header::{ConnectionId, PacketType, MAX_CID_LEN};
use super::varint::{self, DecodeError, EncodeError, Reader};

/// The largest stream count in MAX_STREAMS and STREAMS_BLOCKED: 2^60, because a stream ID keeps
/// two bits for its type (PROTOCOL.md §10, RFC 9000 §19.11).
pub const MAX_STREAM_COUNT: u64 = 1 << 60;

/// Most source symbols in an FEC group (PROTOCOL.md §19.1).
pub const FEC_MAX_K: u64 = 48;
/// Most repair symbols in an FEC group (PROTOCOL.md §19.1).
pub const FEC_MAX_M: u64 = 16;

/// The largest close reason, in bytes (PROTOCOL.md §10).
pub const MAX_REASON_LEN: usize = 1024;

/// Length of a stateless reset token (PROTOCOL.md §10, §8).
pub const RESET_TOKEN_LEN: usize = 16;

/// STREAM type bit: an Offset field is present (PROTOCOL.md §10).
pub const STREAM_OFF_BIT: u64 = 0x04;
/// STREAM type bit: a Length field is present (PROTOCOL.md §10).
pub const STREAM_LEN_BIT: u64 = 0x02;
/// STREAM type bit: this frame ends the stream (PROTOCOL.md §10).
pub const STREAM_FIN_BIT: u64 = 0x01;

// Packet types as bits, for the admissibility table of §10.
const IN_INITIAL: u8 = 1;
const IN_0RTT: u8 = 2;
const IN_HANDSHAKE: u8 = 4;
const IN_1RTT: u8 = 8;
const ALL: u8 = IN_INITIAL | IN_0RTT | IN_HANDSHAKE | IN_1RTT;
const IH1: u8 = IN_INITIAL | IN_HANDSHAKE | IN_1RTT;
const APP: u8 = IN_0RTT | IN_1RTT;

/// A frame type codepoint (PROTOCOL.md §10). Unknown values are representable so that errors can
/// report them in CONNECTION_CLOSE's frame_type field.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FrameType(u64);

impl FrameType {
    /// PADDING (0x00).
    pub const PADDING: FrameType = FrameType(0x00);
    /// PING (0x01).
    pub const PING: FrameType = FrameType(0x01);
    /// ACK (0x02).
    pub const ACK: FrameType = FrameType(0x02);
    /// RESET_STREAM (0x04).
    pub const RESET_STREAM: FrameType = FrameType(0x04);
    /// STOP_SENDING (0x05).
    pub const STOP_SENDING: FrameType = FrameType(0x05);
    /// CRYPTO (0x06).
    pub const CRYPTO: FrameType = FrameType(0x06);
    /// STREAM with no flag bits (0x08); the flags OFF, LEN, FIN make 0x08..=0x0f.
    pub const STREAM: FrameType = FrameType(0x08);
    /// MAX_DATA (0x10).
    pub const MAX_DATA: FrameType = FrameType(0x10);
    /// MAX_STREAM_DATA (0x11).
    pub const MAX_STREAM_DATA: FrameType = FrameType(0x11);
    /// MAX_STREAMS for bidirectional streams (0x12).
    pub const MAX_STREAMS_BIDI: FrameType = FrameType(0x12);
    /// MAX_STREAMS for unidirectional streams (0x13).
    pub const MAX_STREAMS_UNI: FrameType = FrameType(0x13);
    /// DATA_BLOCKED (0x14).
    pub const DATA_BLOCKED: FrameType = FrameType(0x14);
    /// STREAM_DATA_BLOCKED (0x15).
    pub const STREAM_DATA_BLOCKED: FrameType = FrameType(0x15);
    /// STREAMS_BLOCKED for bidirectional streams (0x16).
    pub const STREAMS_BLOCKED_BIDI: FrameType = FrameType(0x16);
    /// STREAMS_BLOCKED for unidirectional streams (0x17).
    pub const STREAMS_BLOCKED_UNI: FrameType = FrameType(0x17);
    /// NEW_CONNECTION_ID (0x18).
    pub const NEW_CONNECTION_ID: FrameType = FrameType(0x18);
    /// RETIRE_CONNECTION_ID (0x19).
    pub const RETIRE_CONNECTION_ID: FrameType = FrameType(0x19);
    /// PATH_CHALLENGE (0x1a).
    pub const PATH_CHALLENGE: FrameType = FrameType(0x1a);
    /// PATH_RESPONSE (0x1b).
    pub const PATH_RESPONSE: FrameType = FrameType(0x1b);
    /// CONNECTION_CLOSE, transport error (0x1c).
    pub const CONNECTION_CLOSE: FrameType = FrameType(0x1c);
    /// APPLICATION_CLOSE, application error (0x1d).
    pub const APPLICATION_CLOSE: FrameType = FrameType(0x1d);
    /// HANDSHAKE_DONE (0x1e).
    pub const HANDSHAKE_DONE: FrameType = FrameType(0x1e);
    /// STREAM_SKIP (0x20): the sender abandoned a range of a partially reliable stream.
    pub const STREAM_SKIP: FrameType = FrameType(0x20);
    /// DATAGRAM extending to the end of the packet (0x30).
    pub const DATAGRAM: FrameType = FrameType(0x30);
    /// DATAGRAM with a Length field (0x31).
    pub const DATAGRAM_WITH_LEN: FrameType = FrameType(0x31);
    /// STREAM_LZ4 (0x3c): LZ4-compressed stream data (PROTOCOL.md §14.5).
    pub const STREAM_LZ4: FrameType = FrameType(0x3c);
    /// STREAM_LZ4 that ends the stream (0x3d).
    pub const STREAM_LZ4_FIN: FrameType = FrameType(0x3d);
    /// DATAGRAM_LZ4 (0x3e): an LZ4-compressed datagram (PROTOCOL.md §14.5).
    pub const DATAGRAM_LZ4: FrameType = FrameType(0x3e);
    /// FEC_SOURCE (0x32): the rest of the packet is FEC-protected (PROTOCOL.md §19.2).
    pub const FEC_SOURCE: FrameType = FrameType(0x32);
    /// REPAIR (0x33): one FEC repair symbol (PROTOCOL.md §19.2).
    pub const REPAIR: FrameType = FrameType(0x33);
    /// FEC_RECOVERED (0x34): sources the receiver rebuilt with FEC (PROTOCOL.md §19.6).
    pub const FEC_RECOVERED: FrameType = FrameType(0x34);

    /// The type with codepoint `raw`.
    pub const fn new(raw: u64) -> Self {
        FrameType(raw)
    }

    /// The codepoint.
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// Whether this is one of the eight STREAM types (0x08..=0x0f).
    pub const fn is_stream(self) -> bool {
        self.0 >= 0x08 && self.0 <= 0x0f
    }

    /// The packet types the frame may appear in, as a bitmask, or 0 for an unknown type.
    const fn spaces(self) -> u8 {
        match self.0 {
            0x00 | 0x01 => ALL,
            0x02 | 0x06 | 0x1c => IH1,
            0x04 | 0x05 | 0x08..=0x17 | 0x20 | 0x30 | 0x31 | 0x3c..=0x3e => APP,
            0x18..=0x1b | 0x1d | 0x1e | 0x32..=0x34 => IN_1RTT,
            _ => 0,
        }
    }

    /// Whether the type is defined by PROTOCOL.md §10.
    pub const fn is_known(self) -> bool {
        self.spaces() != 0
    }

    /// Whether a frame of this type may be sent in a packet of type `ty` (the "spaces" column of
    /// PROTOCOL.md §10). Receiving a frame where it is not allowed is a `PROTOCOL_ERROR`.
    /// HANDSHAKE_DONE is further restricted to the server as sender, which the connection checks.
    pub const fn allowed_in(self, ty: PacketType) -> bool {
        let bit = match ty {
            PacketType::Initial => IN_INITIAL,
            PacketType::ZeroRtt => IN_0RTT,
            PacketType::Handshake => IN_HANDSHAKE,
            PacketType::OneRtt => IN_1RTT,
        };
        self.spaces() & bit != 0
    }

    /// Whether a packet containing this frame must be acknowledged: every frame except PADDING,
    /// ACK, CONNECTION_CLOSE, APPLICATION_CLOSE and FEC_RECOVERED (PROTOCOL.md §10, as
    /// RFC 9002 §2; FEC_RECOVERED travels with acknowledgements, §19.6).
    pub const fn is_ack_eliciting(self) -> bool {
        !matches!(self.0, 0x00 | 0x02 | 0x1c | 0x1d | 0x34)
    }

    fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0x00 => "PADDING",
            0x01 => "PING",
            0x02 => "ACK",
            0x04 => "RESET_STREAM",
            0x05 => "STOP_SENDING",
            0x06 => "CRYPTO",
            0x08..=0x0f => "STREAM",
            0x10 => "MAX_DATA",
            0x11 => "MAX_STREAM_DATA",
            0x12 => "MAX_STREAMS_BIDI",
            0x13 => "MAX_STREAMS_UNI",
            0x14 => "DATA_BLOCKED",
            0x15 => "STREAM_DATA_BLOCKED",
            0x16 => "STREAMS_BLOCKED_BIDI",
            0x17 => "STREAMS_BLOCKED_UNI",
            0x18 => "NEW_CONNECTION_ID",
            0x19 => "RETIRE_CONNECTION_ID",
            0x1a => "PATH_CHALLENGE",
            0x1b => "PATH_RESPONSE",
            0x1c => "CONNECTION_CLOSE",
            0x1d => "APPLICATION_CLOSE",
            0x1e => "HANDSHAKE_DONE",
            0x20 => "STREAM_SKIP",
            0x30 | 0x31 => "DATAGRAM",
            0x3c | 0x3d => "STREAM_LZ4",
            0x3e => "DATAGRAM_LZ4",
            0x32 => "FEC_SOURCE",
            0x33 => "REPAIR",
            0x34 => "FEC_RECOVERED",
            _ => return None,
        })
    }
}

impl core::fmt::Debug for FrameType {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name}({:#x})", self.0),
            None => write!(f, "FrameType({:#x})", self.0),
        }
    }
}

impl core::fmt::Display for FrameType {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(self, f)
    }
}

/// Why a frame failed to decode. All reasons but [`FrameErrorReason::NotAllowed`] are a
/// `FRAME_ENCODING_ERROR` (PROTOCOL.md §10, §16).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameErrorReason {
    /// The frame type is not defined (§10).
    UnknownType,
    /// A field runs past the end of the payload (§1.2).
    UnexpectedEnd,
    /// An ACK range runs below packet number 0.
    InvalidAckRange,
    /// STREAM or CRYPTO offset + length exceeds 2^62 - 1.
    OffsetOverflow,
    /// MAX_STREAMS or STREAMS_BLOCKED above 2^60.
    StreamCountTooLarge,
    /// NEW_CONNECTION_ID with a CID length outside 1..=20.
    InvalidCidLength,
    /// NEW_CONNECTION_ID with Retire Prior To greater than Sequence Number.
    RetirePriorToTooLarge,
    /// A close reason longer than 1024 bytes.
    ReasonTooLong,
    /// The frame is not allowed in this packet type: a `PROTOCOL_ERROR` (§10).
    NotAllowed,
    /// A compressed frame declares an uncompressed length of 0 or above 65536 bytes, or a
    /// dictionary id above 2^32 - 1 (§14.5).
    InvalidCompression,
    /// An FEC field is out of range: a source index of 48 or more, REPAIR with k outside
    /// 1..=48, m outside 1..=16, an index not below m or a symbol shorter than 2 bytes, or
    /// FEC_RECOVERED with an empty bitmap or one of 48 bits or more (§19.2).
    InvalidFec,
}

impl From<DecodeError> for FrameErrorReason {
    fn from(_: DecodeError) -> Self {
        // The frame decoders only read fields, so every decode error is truncation.
        FrameErrorReason::UnexpectedEnd
    }
}

/// A frame that failed to decode, with the type to report in CONNECTION_CLOSE's frame_type field
/// (PROTOCOL.md §10). When the type itself is truncated it is reported as 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid {frame_type} frame: {reason:?}")]
pub struct FrameError {
    /// The type of the offending frame.
    pub frame_type: FrameType,
    /// What is wrong with it.
    pub reason: FrameErrorReason,
}

impl FrameError {
    /// The transport error code to close the connection with (PROTOCOL.md §16):
    /// `PROTOCOL_ERROR` for a frame in the wrong packet type, `FRAME_ENCODING_ERROR` otherwise.
    pub const fn code(&self) -> u64 {
        match self.reason {
            FrameErrorReason::NotAllowed => error_code::PROTOCOL_ERROR,
            _ => error_code::FRAME_ENCODING_ERROR,
        }
    }
}

/// Stream direction, for MAX_STREAMS and STREAMS_BLOCKED (PROTOCOL.md §10).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dir {
    /// Bidirectional.
    Bi,
    /// Unidirectional.
    Uni,
}

/// An ACK frame (PROTOCOL.md §10, RFC 9000 §19.3), validated when decoded: every range lies in
/// `0..=largest`. The additional ranges stay encoded in the payload; [`Ack::iter`] walks them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack<'a> {
    largest: u64,
    ack_delay: u64,
    range_count: u64,
    first_range: u64,
    ranges: &'a [u8],
}

impl<'a> Ack<'a> {
    /// The largest packet number acknowledged.
    pub const fn largest(&self) -> u64 {
        self.largest
    }

    /// The encoded ACK Delay: microseconds shifted right by the sender's ack_delay_exponent.
    pub const fn ack_delay(&self) -> u64 {
        self.ack_delay
    }

    /// The ACK Delay in microseconds, given the sender's `ack_delay_exponent` (§8); saturating.
    pub fn ack_delay_micros(&self, ack_delay_exponent: u8) -> u64 {
        let factor = 1u64.checked_shl(u32::from(ack_delay_exponent)).unwrap_or(0);
        self.ack_delay.saturating_mul(factor)
    }

    /// The number of ranges, including the first.
    pub fn len(&self) -> u64 {
        self.range_count.saturating_add(1)
    }

    /// Always false: an ACK frame holds at least one range.
    pub const fn is_empty(&self) -> bool {
        false
    }

    /// The acknowledged ranges, largest first, as half-open ranges of packet numbers.
    pub fn iter(&self) -> AckIter<'a> {
        AckIter {
            next: Some(self.largest.saturating_sub(self.first_range)..self.largest + 1),
            r: Reader::new(self.ranges),
        }
    }
}

impl<'a> IntoIterator for &Ack<'a> {
    type Item = Range<u64>;
    type IntoIter = AckIter<'a>;
    fn into_iter(self) -> AckIter<'a> {
        self.iter()
    }
}

/// Iterator over the ranges of an [`Ack`], largest first.
#[derive(Clone, Debug)]
pub struct AckIter<'a> {
    next: Option<Range<u64>>,
    r: Reader<'a>,
}

impl Iterator for AckIter<'_> {
    type Item = Range<u64>;

    fn next(&mut self) -> Option<Range<u64>> {
        let current = self.next.take()?;
        if !self.r.is_empty() {
            // Validated at decode time; a failure here cannot happen and ends the iteration.
            let gap = self.r.get_varint().ok()?;
            let len = self.r.get_varint().ok()?;
            let largest = current.start.checked_sub(gap)?.checked_sub(2)?;
            let smallest = largest.checked_sub(len)?;
            self.next = Some(smallest..largest + 1);
        }
        Some(current)
    }
}

impl core::iter::FusedIterator for AckIter<'_> {}

/// A STREAM frame (PROTOCOL.md §10).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamFrame<'a> {
    /// The stream.
    pub stream_id: u64,
    /// Offset of `data` in the stream (0 when the OFF bit is clear).
    pub offset: u64,
    /// Whether this frame carries the end of the stream.
    pub fin: bool,
    /// The data; `offset + data.len() <= 2^62 - 1`.
    pub data: &'a [u8],
}

/// The compressed body of a STREAM_LZ4 or DATAGRAM_LZ4 frame (PROTOCOL.md §14.5); the
/// connection decompresses it ([`crate::compression::codec`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompressedData<'a> {
    /// The dictionary (0: none), see [`crate::compression::DictionaryId`].
    pub dictionary: u32,
    /// Length of the data once decompressed: 1..=65536.
    pub uncompressed_len: usize,
    /// The LZ4 block.
    pub block: &'a [u8],
}

/// A STREAM_LZ4 frame (PROTOCOL.md §14.5): stream data at `offset`, compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompressedStreamFrame<'a> {
    /// The stream.
    pub stream_id: u64,
    /// Offset of the first decompressed byte in the stream.
    pub offset: u64,
    /// Whether the decompressed data ends the stream.
    pub fin: bool,
    /// The compressed data; `offset + uncompressed_len <= 2^62 - 1`.
    pub data: CompressedData<'a>,
}

/// A NEW_CONNECTION_ID frame (PROTOCOL.md §10): `retire_prior_to <= sequence`, CID of 1..=20
/// bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewConnectionId {
    /// Sequence number of this CID.
    pub sequence: u64,
    /// The peer must retire CIDs with lower sequence numbers.
    pub retire_prior_to: u64,
    /// The connection ID.
    pub cid: ConnectionId,
    /// Its stateless reset token.
    pub reset_token: [u8; RESET_TOKEN_LEN],
}

/// A REPAIR frame (PROTOCOL.md §19.2): repair symbol `index` of group `group`, whose `k` source
/// symbols are protected by `m` repair symbols. Validated on decode: `1 <= k <= 48`,
/// `1 <= m <= 16`, `index < m`, `symbol.len() >= 2`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RepairFrame<'a> {
    /// The group.
    pub group: u64,
    /// Source symbols in the group.
    pub k: u64,
    /// Repair symbols in the group.
    pub m: u64,
    /// This symbol's index among the repair symbols.
    pub index: u64,
    /// The symbol (every symbol of a group has this length).
    pub symbol: &'a [u8],
}

/// A frame, borrowing its variable-length parts from the decrypted payload (PROTOCOL.md §10).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A run of PADDING bytes, with its length.
    Padding(usize),
    /// PING.
    Ping,
    /// ACK.
    Ack(Ack<'a>),
    /// RESET_STREAM.
    ResetStream {
        /// The stream.
        stream_id: u64,
        /// Application error code.
        error_code: u64,
        /// Final size of the stream.
        final_size: u64,
    },
    /// STOP_SENDING.
    StopSending {
        /// The stream.
        stream_id: u64,
        /// Application error code.
        error_code: u64,
    },
    /// CRYPTO; `offset + data.len() <= 2^62 - 1`.
    Crypto {
        /// Offset of `data` in the crypto stream of this packet number space.
        offset: u64,
        /// The data.
        data: &'a [u8],
    },
    /// STREAM (any of the eight flag combinations).
    Stream(StreamFrame<'a>),
    /// STREAM_LZ4 (§14.5).
    StreamLz4(CompressedStreamFrame<'a>),
    /// DATAGRAM_LZ4 (§14.5).
    DatagramLz4(CompressedData<'a>),
    /// MAX_DATA.
    MaxData(u64),
    /// MAX_STREAM_DATA.
    MaxStreamData {
        /// The stream.
        stream_id: u64,
        /// Maximum offset the peer may send.
        maximum: u64,
    },
    /// MAX_STREAMS; `maximum <= 2^60`.
    MaxStreams {
        /// Which streams.
        dir: Dir,
        /// Cumulative number of streams the peer may open.
        maximum: u64,
    },
    /// DATA_BLOCKED.
    DataBlocked(u64),
    /// STREAM_DATA_BLOCKED.
    StreamDataBlocked {
        /// The stream.
        stream_id: u64,
        /// The limit the sender is blocked at.
        limit: u64,
    },
    /// STREAMS_BLOCKED; `limit <= 2^60`.
    StreamsBlocked {
        /// Which streams.
        dir: Dir,
        /// The stream limit the sender is blocked at.
        limit: u64,
    },
    /// NEW_CONNECTION_ID.
    NewConnectionId(NewConnectionId),
    /// RETIRE_CONNECTION_ID.
    RetireConnectionId {
        /// Sequence number of the CID to retire.
        sequence: u64,
    },
    /// PATH_CHALLENGE.
    PathChallenge([u8; 8]),
    /// PATH_RESPONSE.
    PathResponse([u8; 8]),
    /// CONNECTION_CLOSE (transport error); see [`reason_lossy`] for the reason.
    ConnectionClose {
        /// Transport error code (§16).
        error_code: u64,
        /// The type of the frame that caused the error, or 0.
        frame_type: u64,
        /// Reason phrase, at most 1024 bytes, meant to be UTF-8 but not validated.
        reason: &'a [u8],
    },
    /// APPLICATION_CLOSE (application error); see [`reason_lossy`] for the reason.
    ApplicationClose {
        /// Application error code.
        error_code: u64,
        /// Reason phrase, at most 1024 bytes, meant to be UTF-8 but not validated.
        reason: &'a [u8],
    },
    /// HANDSHAKE_DONE.
    HandshakeDone,
    /// STREAM_SKIP: bytes `start..end` of a stream were abandoned by the sender (partial
    /// reliability, PROTOCOL.md §14.2); `start <= end <= 2^62 - 1`.
    StreamSkip {
        /// The stream.
        stream_id: u64,
        /// First abandoned offset.
        start: u64,
        /// Offset after the last abandoned byte.
        end: u64,
    },
    /// DATAGRAM (with or without a Length field).
    Datagram(&'a [u8]),
    /// FEC_SOURCE: the frames after it in the packet are source symbol `index` of FEC group
    /// `group` (PROTOCOL.md §19.2); `index < 48`.
    FecSource {
        /// The group.
        group: u64,
        /// The source index in the group.
        index: u64,
    },
    /// REPAIR: one repair symbol.
    Repair(RepairFrame<'a>),
    /// FEC_RECOVERED: the receiver rebuilt the sources of `group` whose bits are set in `bitmap`
    /// (bit i = source i; non-zero, below 2^48).
    FecRecovered {
        /// The group.
        group: u64,
        /// Recovered source indices as bits.
        bitmap: u64,
    },
}

/// A close reason as text, replacing invalid UTF-8 (PROTOCOL.md §10 says UTF-8, but a peer's
/// bytes are not trusted to be).
pub fn reason_lossy(reason: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(reason)
}

/// Iterator over the frames of a decrypted payload, yielding each frame or the first error, after
/// which it stops (PROTOCOL.md §10).
///
/// An empty payload yields nothing; the caller treats a packet without frames as a
/// `PROTOCOL_ERROR` (§5.2).
#[derive(Clone, Debug)]
pub struct FrameIter<'a> {
    r: Reader<'a>,
    packet_type: Option<PacketType>,
}

impl<'a> FrameIter<'a> {
    /// Iterates over `payload` without checking which packet type the frames are allowed in.
    pub fn new(payload: &'a [u8]) -> Self {
        FrameIter {
            r: Reader::new(payload),
            packet_type: None,
        }
    }

    /// Iterates over the payload of a packet of type `ty`, failing with
    /// [`FrameErrorReason::NotAllowed`] on a frame §10 does not allow there.
    pub fn for_packet(payload: &'a [u8], ty: PacketType) -> Self {
        FrameIter {
            r: Reader::new(payload),
            packet_type: Some(ty),
        }
    }
}

impl<'a> FrameIter<'a> {
    /// The bytes not yet decoded: after a [`Frame::FecSource`], the protected part of the
    /// payload (PROTOCOL.md §19.2).
    pub fn remaining(&self) -> &'a [u8] {
        self.r.peek_rest()
    }
}

impl<'a> Iterator for FrameIter<'a> {
    type Item = Result<Frame<'a>, FrameError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.r.is_empty() {
            return None;
        }
        let result = decode_frame(&mut self.r, self.packet_type);
        if result.is_err() {
            // Stop after the first error.
            self.r.take_rest();
        }
        Some(result)
    }
}

impl core::iter::FusedIterator for FrameIter<'_> {}

#[inline]
fn decode_frame<'a>(
    r: &mut Reader<'a>,
    packet_type: Option<PacketType>,
) -> Result<Frame<'a>, FrameError> {
    let frame_start = r.position();
    let ty = r.get_varint().map(FrameType).map_err(|_| FrameError {
        frame_type: FrameType::PADDING,
        reason: FrameErrorReason::UnexpectedEnd,
    })?;
    let error = |reason| FrameError {
        frame_type: ty,
        reason,
    };
    if let Some(pt) = packet_type {
        if !ty.allowed_in(pt) {
            let reason = if ty.is_known() {
                FrameErrorReason::NotAllowed
            } else {
                FrameErrorReason::UnknownType
            };
            return Err(error(reason));
        }
    }
    decode_body(ty, r, frame_start).map_err(error)
}

fn decode_body<'a>(
    ty: FrameType,
    r: &mut Reader<'a>,
    frame_start: usize,
) -> Result<Frame<'a>, FrameErrorReason> {
    let frame = match ty.0 {
        0x00 => {
            let zeros = r.peek_rest().iter().take_while(|&&b| b == 0).count();
            r.skip(zeros)?;
            // The type (normally one byte) plus the zeros that follow.
            Frame::Padding(r.position() - frame_start)
        }
        0x01 => Frame::Ping,
        0x02 => Frame::Ack(decode_ack(r)?),
        0x04 => Frame::ResetStream {
            stream_id: r.get_varint()?,
            error_code: r.get_varint()?,
            final_size: r.get_varint()?,
        },
        0x05 => Frame::StopSending {
            stream_id: r.get_varint()?,
            error_code: r.get_varint()?,
        },
        0x06 => {
            let offset = r.get_varint()?;
            let data = r.get_varint_prefixed()?;
            check_offset(offset, data.len())?;
            Frame::Crypto { offset, data }
        }
        0x08..=0x0f => {
            let stream_id = r.get_varint()?;
            let offset = if ty.0 & STREAM_OFF_BIT != 0 {
                r.get_varint()?
            } else {
                0
            };
            let data = if ty.0 & STREAM_LEN_BIT != 0 {
                r.get_varint_prefixed()?
            } else {
                r.take_rest()
            };
            check_offset(offset, data.len())?;
            Frame::Stream(StreamFrame {
                stream_id,
                offset,
                fin: ty.0 & STREAM_FIN_BIT != 0,
                data,
            })
        }
        0x10 => Frame::MaxData(r.get_varint()?),
        0x11 => Frame::MaxStreamData {
            stream_id: r.get_varint()?,
            maximum: r.get_varint()?,
        },
        0x12 | 0x13 => Frame::MaxStreams {
            dir: dir_of(ty.0 == 0x12),
            maximum: stream_count(r.get_varint()?)?,
        },
        0x14 => Frame::DataBlocked(r.get_varint()?),
        0x15 => Frame::StreamDataBlocked {
            stream_id: r.get_varint()?,
            limit: r.get_varint()?,
        },
        0x16 | 0x17 => Frame::StreamsBlocked {
            dir: dir_of(ty.0 == 0x16),
            limit: stream_count(r.get_varint()?)?,
        },
        0x18 => {
            let sequence = r.get_varint()?;
            let retire_prior_to = r.get_varint()?;
            let len = usize::from(r.get_u8()?);
            if !(1..=MAX_CID_LEN).contains(&len) {
                return Err(FrameErrorReason::InvalidCidLength);
            }
            let cid = ConnectionId::from_slice(r.get_bytes(len)?)
                .map_err(|_| FrameErrorReason::InvalidCidLength)?;
            let reset_token = r.get_array()?;
            if retire_prior_to > sequence {
                return Err(FrameErrorReason::RetirePriorToTooLarge);
            }
            Frame::NewConnectionId(NewConnectionId {
                sequence,
                retire_prior_to,
                cid,
                reset_token,
            })
        }
        0x19 => Frame::RetireConnectionId {
            sequence: r.get_varint()?,
        },
        0x1a => Frame::PathChallenge(r.get_array()?),
        0x1b => Frame::PathResponse(r.get_array()?),
        0x1c => Frame::ConnectionClose {
            error_code: r.get_varint()?,
            frame_type: r.get_varint()?,
            reason: get_reason(r)?,
        },
        0x1d => Frame::ApplicationClose {
            error_code: r.get_varint()?,
            reason: get_reason(r)?,
        },
        0x1e => Frame::HandshakeDone,
        0x20 => {
            let stream_id = r.get_varint()?;
            let start = r.get_varint()?;
            let end = r.get_varint()?;
            if end < start {
                return Err(FrameErrorReason::OffsetOverflow);
            }
            Frame::StreamSkip {
                stream_id,
                start,
                end,
            }
        }
        0x30 => Frame::Datagram(r.take_rest()),
        0x31 => Frame::Datagram(r.get_varint_prefixed()?),
        0x3c | 0x3d => {
            let stream_id = r.get_varint()?;
            let offset = r.get_varint()?;
            let data = decode_compressed(r)?;
            check_offset(offset, data.uncompressed_len)?;
            Frame::StreamLz4(CompressedStreamFrame {
                stream_id,
                offset,
                fin: ty.0 == 0x3d,
                data,
            })
        }
        0x3e => Frame::DatagramLz4(decode_compressed(r)?),
        0x32 => {
            let group = r.get_varint()?;
            let index = r.get_varint()?;
            if index >= FEC_MAX_K {
                return Err(FrameErrorReason::InvalidFec);
            }
            Frame::FecSource { group, index }
        }
        0x33 => {
            let group = r.get_varint()?;
            let k = r.get_varint()?;
            let m = r.get_varint()?;
            let index = r.get_varint()?;
            let symbol = r.get_varint_prefixed()?;
            if !(1..=FEC_MAX_K).contains(&k)
                || !(1..=FEC_MAX_M).contains(&m)
                || index >= m
                || symbol.len() < 2
            {
                return Err(FrameErrorReason::InvalidFec);
            }
            Frame::Repair(RepairFrame {
                group,
                k,
                m,
                index,
                symbol,
            })
        }
        0x34 => {
            let group = r.get_varint()?;
            let bitmap = r.get_varint()?;
            if bitmap == 0 || bitmap >= 1 << FEC_MAX_K {
                return Err(FrameErrorReason::InvalidFec);
            }
            Frame::FecRecovered { group, bitmap }
        }
        _ => return Err(FrameErrorReason::UnknownType),
    };
    Ok(frame)
}

fn decode_compressed<'a>(r: &mut Reader<'a>) -> Result<CompressedData<'a>, FrameErrorReason> {
    let dictionary =
        u32::try_from(r.get_varint()?).map_err(|_| FrameErrorReason::InvalidCompression)?;
    let uncompressed_len = r.get_varint()?;
    if uncompressed_len == 0 || uncompressed_len > MAX_UNCOMPRESSED_LEN {
        return Err(FrameErrorReason::InvalidCompression);
    }
    let block = r.get_varint_prefixed()?;
    Ok(CompressedData {
        dictionary,
        uncompressed_len: usize::try_from(uncompressed_len)
            .map_err(|_| FrameErrorReason::InvalidCompression)?,
        block,
    })
}

/// The largest uncompressed length a STREAM_LZ4 or DATAGRAM_LZ4 frame may declare (§14.5).
pub const MAX_UNCOMPRESSED_LEN: u64 = 64 * 1024;

fn dir_of(bidi: bool) -> Dir {
    if bidi {
        Dir::Bi
    } else {
        Dir::Uni
    }
}

fn stream_count(n: u64) -> Result<u64, FrameErrorReason> {
    if n > MAX_STREAM_COUNT {
        Err(FrameErrorReason::StreamCountTooLarge)
    } else {
        Ok(n)
    }
}

fn check_offset(offset: u64, len: usize) -> Result<(), FrameErrorReason> {
    let len = u64::try_from(len).map_err(|_| FrameErrorReason::OffsetOverflow)?;
    match offset.checked_add(len) {
        Some(end) if end <= varint::MAX => Ok(()),
        _ => Err(FrameErrorReason::OffsetOverflow),
    }
}

fn get_reason<'a>(r: &mut Reader<'a>) -> Result<&'a [u8], FrameErrorReason> {
    let len = r.get_varint()?;
    if len > len_u64(MAX_REASON_LEN) {
        return Err(FrameErrorReason::ReasonTooLong);
    }
    Ok(r.get_bytes_u64(len)?)
}

fn decode_ack<'a>(r: &mut Reader<'a>) -> Result<Ack<'a>, FrameErrorReason> {
    let largest = r.get_varint()?;
    let ack_delay = r.get_varint()?;
    let range_count = r.get_varint()?;
    let first_range = r.get_varint()?;
    let mut smallest = largest
        .checked_sub(first_range)
        .ok_or(FrameErrorReason::InvalidAckRange)?;
    let rest = r.peek_rest();
    let start = r.position();
    // Each iteration consumes at least two bytes or fails, so the loop is bounded by the payload.
    for _ in 0..range_count {
        let gap = r.get_varint()?;
        let len = r.get_varint()?;
        smallest = smallest
            .checked_sub(gap)
            .and_then(|s| s.checked_sub(2))
            .and_then(|l| l.checked_sub(len))
            .ok_or(FrameErrorReason::InvalidAckRange)?;
    }
    let ranges = rest.get(..r.position() - start).unwrap_or(&[]);
    Ok(Ack {
        largest,
        ack_delay,
        range_count,
        first_range,
        ranges,
    })
}

// ---------------------------------------------------------------------------------------------
// Encoders

fn put_var(buf: &mut Vec<u8>, v: u64) {
    varint::encode(v, buf);
}

fn len_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Appends `n` PADDING frames (zero bytes).
pub fn encode_padding(buf: &mut Vec<u8>, n: usize) {
    buf.resize(buf.len().saturating_add(n), 0);
}

/// Appends a PING frame.
pub fn encode_ping(buf: &mut Vec<u8>) {
    buf.push(0x01);
}

/// Appends an ACK frame for `ranges` (half-open ranges of packet numbers, largest first, each
/// non-empty, separated by at least one missing packet number), with the already-shifted
/// `ack_delay` (PROTOCOL.md §10, RFC 9000 §19.3).
///
/// Fails with [`EncodeError::InvalidAckRanges`], leaving `buf` unchanged, if `ranges` is empty or
/// not as described, or if its `len()` is wrong.
pub fn encode_ack<I>(buf: &mut Vec<u8>, ack_delay: u64, ranges: I) -> Result<(), EncodeError>
where
    I: IntoIterator<Item = Range<u64>>,
    I::IntoIter: ExactSizeIterator,
{
    let start = buf.len();
    let result = write_ack(buf, ack_delay, ranges.into_iter());
    if result.is_err() {
        buf.truncate(start);
    }
    result
}

fn write_ack<I>(buf: &mut Vec<u8>, ack_delay: u64, mut ranges: I) -> Result<(), EncodeError>
where
    I: ExactSizeIterator<Item = Range<u64>>,
{
    let first = ranges.next().ok_or(EncodeError::InvalidAckRanges)?;
    if first.start >= first.end || first.end > varint::MAX + 1 {
        return Err(EncodeError::InvalidAckRanges);
    }
    let count = len_u64(ranges.len());
    buf.push(0x02);
    put_var(buf, first.end - 1);
    put_var(buf, ack_delay);
    put_var(buf, count);
    put_var(buf, first.end - 1 - first.start);
    let mut prev_start = first.start;
    let mut written = 0u64;
    for range in ranges {
        if range.start >= range.end {
            return Err(EncodeError::InvalidAckRanges);
        }
        // gap = previous smallest - this largest - 2 = prev_start - (end - 1) - 2.
        let gap = prev_start
            .checked_sub(range.end)
            .and_then(|g| g.checked_sub(1))
            .ok_or(EncodeError::InvalidAckRanges)?;
        put_var(buf, gap);
        put_var(buf, range.end - 1 - range.start);
        prev_start = range.start;
        written += 1;
    }
    if written != count {
        return Err(EncodeError::InvalidAckRanges);
    }
    Ok(())
}

/// Size of the ACK frame [`encode_ack`] would write, or the same error.
pub fn ack_frame_len<I>(ack_delay: u64, ranges: I) -> Result<usize, EncodeError>
where
    I: IntoIterator<Item = Range<u64>>,
    I::IntoIter: ExactSizeIterator,
{
    let mut ranges = ranges.into_iter();
    let first = ranges.next().ok_or(EncodeError::InvalidAckRanges)?;
    if first.start >= first.end || first.end > varint::MAX + 1 {
        return Err(EncodeError::InvalidAckRanges);
    }
    let mut len = 1
        + varint::encoded_len(first.end - 1)
        + varint::encoded_len(ack_delay)
        + varint::encoded_len(len_u64(ranges.len()))
        + varint::encoded_len(first.end - 1 - first.start);
    let mut prev_start = first.start;
    for range in ranges {
        if range.start >= range.end {
            return Err(EncodeError::InvalidAckRanges);
        }
        let gap = prev_start
            .checked_sub(range.end)
            .and_then(|g| g.checked_sub(1))
            .ok_or(EncodeError::InvalidAckRanges)?;
        len += varint::encoded_len(gap) + varint::encoded_len(range.end - 1 - range.start);
        prev_start = range.start;
    }
    Ok(len)
}

/// Appends a RESET_STREAM frame.
pub fn encode_reset_stream(buf: &mut Vec<u8>, stream_id: u64, error_code: u64, final_size: u64) {
    buf.push(0x04);
    put_var(buf, stream_id);
    put_var(buf, error_code);
    put_var(buf, final_size);
}

/// Appends a STOP_SENDING frame.
pub fn encode_stop_sending(buf: &mut Vec<u8>, stream_id: u64, error_code: u64) {
    buf.push(0x05);
    put_var(buf, stream_id);
    put_var(buf, error_code);
}

/// Appends the header of a CRYPTO frame carrying `data_len` bytes at `offset`; the caller appends
/// the data.
pub fn encode_crypto_header(buf: &mut Vec<u8>, offset: u64, data_len: usize) {
    buf.push(0x06);
    put_var(buf, offset);
    put_var(buf, len_u64(data_len));
}

/// Appends a CRYPTO frame.
pub fn encode_crypto(buf: &mut Vec<u8>, offset: u64, data: &[u8]) {
    encode_crypto_header(buf, offset, data.len());
    buf.extend_from_slice(data);
}

/// Size of a CRYPTO frame's header (type, offset, length) for `data_len` bytes at `offset`.
pub fn crypto_header_len(offset: u64, data_len: usize) -> usize {
    1 + varint::encoded_len(offset) + varint::encoded_len(len_u64(data_len))
}

/// The most CRYPTO data bytes at `offset` that fit, header included, in `space` bytes, or
/// `None` if not even an empty frame fits.
pub fn crypto_data_capacity(offset: u64, space: usize) -> Option<usize> {
    let avail = space.checked_sub(1 + varint::encoded_len(offset))?;
    let cap = capacity_with_len(avail)?;
    Some(cap.min(max_len_at(offset)))
}

/// The STREAM type for these fields: 0x08 with OFF set iff `offset != 0`, LEN iff `with_len`,
/// FIN iff `fin`.
pub fn stream_frame_type(offset: u64, fin: bool, with_len: bool) -> FrameType {
    let mut ty = 0x08;
    if offset != 0 {
        ty |= STREAM_OFF_BIT;
    }
    if with_len {
        ty |= STREAM_LEN_BIT;
    }
    if fin {
        ty |= STREAM_FIN_BIT;
    }
    FrameType(ty)
}

/// Appends the header of a STREAM frame carrying `data_len` bytes at `offset` of `stream_id`;
/// the caller appends the data. The Offset field is omitted when `offset` is 0.
///
/// Without a Length field (`with_len == false`) the data extends to the end of the packet, so the
/// frame must be the last one: padding the packet then has to go *before* it.
/// `offset + data_len` must be at most 2^62 - 1 (use [`stream_data_capacity`]).
pub fn encode_stream_header(
    buf: &mut Vec<u8>,
    stream_id: u64,
    offset: u64,
    data_len: usize,
    fin: bool,
    with_len: bool,
) {
    debug_assert!(
        check_offset(offset, data_len).is_ok(),
        "stream offset overflow"
    );
    buf.push(stream_frame_type(offset, fin, with_len).0.to_be_bytes()[7]);
    put_var(buf, stream_id);
    if offset != 0 {
        put_var(buf, offset);
    }
    if with_len {
        put_var(buf, len_u64(data_len));
    }
}

/// Appends a STREAM frame; see [`encode_stream_header`].
pub fn encode_stream(
    buf: &mut Vec<u8>,
    stream_id: u64,
    offset: u64,
    data: &[u8],
    fin: bool,
    with_len: bool,
) {
    encode_stream_header(buf, stream_id, offset, data.len(), fin, with_len);
    buf.extend_from_slice(data);
}

/// Size of the header [`encode_stream_header`] writes.
pub fn stream_header_len(stream_id: u64, offset: u64, data_len: usize, with_len: bool) -> usize {
    let mut len = 1 + varint::encoded_len(stream_id);
    if offset != 0 {
        len += varint::encoded_len(offset);
    }
    if with_len {
        len += varint::encoded_len(len_u64(data_len));
    }
    len
}

/// The most data bytes a STREAM frame for `stream_id` at `offset` can carry in `space` bytes,
/// header included, or `None` if not even an empty frame fits. Also bounded so that
/// `offset + data <= 2^62 - 1`. A result of 0 still allows a FIN-only frame.
///
/// With `with_len` the size of the Length field depends on the amount of data; the result is the
/// largest amount whose frame fits exactly, e.g. 63 bytes (1-byte Length) in a 64-byte space left
/// after the type and stream ID.
pub fn stream_data_capacity(
    stream_id: u64,
    offset: u64,
    space: usize,
    with_len: bool,
) -> Option<usize> {
    let mut header = 1 + varint::encoded_len(stream_id);
    if offset != 0 {
        header += varint::encoded_len(offset);
    }
    let avail = space.checked_sub(header)?;
    let cap = if with_len {
        capacity_with_len(avail)?
    } else {
        avail
    };
    Some(cap.min(max_len_at(offset)))
}

/// The largest `n` with `varint_len(n) + n <= avail`, or `None` if `avail` is 0.
fn capacity_with_len(avail: usize) -> Option<usize> {
    if avail == 0 {
        return None;
    }
    // For each Length size, the largest n it can hold within `avail`.
    let best = [
        (1usize, 63usize),
        (2, 16383),
        (4, (1 << 30) - 1),
        (8, usize::MAX),
    ]
    .iter()
    .filter_map(|&(size, max)| avail.checked_sub(size).map(|n| n.min(max)))
    .max();
    best
}

fn max_len_at(offset: u64) -> usize {
    usize::try_from(varint::MAX.saturating_sub(offset)).unwrap_or(usize::MAX)
}

/// Appends a MAX_DATA frame.
pub fn encode_max_data(buf: &mut Vec<u8>, maximum: u64) {
    buf.push(0x10);
    put_var(buf, maximum);
}

/// Appends a MAX_STREAM_DATA frame.
pub fn encode_max_stream_data(buf: &mut Vec<u8>, stream_id: u64, maximum: u64) {
    buf.push(0x11);
    put_var(buf, stream_id);
    put_var(buf, maximum);
}

/// Appends a MAX_STREAMS frame; `maximum` must be at most 2^60.
pub fn encode_max_streams(buf: &mut Vec<u8>, dir: Dir, maximum: u64) {
    debug_assert!(maximum <= MAX_STREAM_COUNT);
    buf.push(match dir {
        Dir::Bi => 0x12,
        Dir::Uni => 0x13,
    });
    put_var(buf, maximum.min(MAX_STREAM_COUNT));
}

/// Appends a DATA_BLOCKED frame.
pub fn encode_data_blocked(buf: &mut Vec<u8>, limit: u64) {
    buf.push(0x14);
    put_var(buf, limit);
}

/// Appends a STREAM_DATA_BLOCKED frame.
pub fn encode_stream_data_blocked(buf: &mut Vec<u8>, stream_id: u64, limit: u64) {
    buf.push(0x15);
    put_var(buf, stream_id);
    put_var(buf, limit);
}

/// Appends a STREAMS_BLOCKED frame; `limit` must be at most 2^60.
pub fn encode_streams_blocked(buf: &mut Vec<u8>, dir: Dir, limit: u64) {
    debug_assert!(limit <= MAX_STREAM_COUNT);
    buf.push(match dir {
        Dir::Bi => 0x16,
        Dir::Uni => 0x17,
    });
    put_var(buf, limit.min(MAX_STREAM_COUNT));
}

/// Appends a NEW_CONNECTION_ID frame. The CID must not be empty and `retire_prior_to` must not
/// exceed `sequence` (debug-asserted; the peer rejects such a frame).
pub fn encode_new_connection_id(buf: &mut Vec<u8>, frame: &NewConnectionId) {
    debug_assert!(!frame.cid.is_empty() && frame.retire_prior_to <= frame.sequence);
    buf.push(0x18);
    put_var(buf, frame.sequence);
    put_var(buf, frame.retire_prior_to);
    frame.cid.encode_with_len(buf);
    buf.extend_from_slice(&frame.reset_token);
}

/// Appends a RETIRE_CONNECTION_ID frame.
pub fn encode_retire_connection_id(buf: &mut Vec<u8>, sequence: u64) {
    buf.push(0x19);
    put_var(buf, sequence);
}

/// Appends a PATH_CHALLENGE frame.
pub fn encode_path_challenge(buf: &mut Vec<u8>, data: &[u8; 8]) {
    buf.push(0x1a);
    buf.extend_from_slice(data);
}

/// Appends a PATH_RESPONSE frame.
pub fn encode_path_response(buf: &mut Vec<u8>, data: &[u8; 8]) {
    buf.push(0x1b);
    buf.extend_from_slice(data);
}

/// `reason` cut to at most 1024 bytes, backing off to a UTF-8 character boundary when the cut
/// falls inside one.
pub fn clip_reason(reason: &[u8]) -> &[u8] {
    if reason.len() <= MAX_REASON_LEN {
        return reason;
    }
    let mut end = MAX_REASON_LEN;
    // Back off over at most three continuation bytes (0b10xx_xxxx).
    while end > MAX_REASON_LEN - 3 && reason.get(end).is_some_and(|b| b & 0xc0 == 0x80) {
        end -= 1;
    }
    reason.get(..end).unwrap_or(reason)
}

/// Appends a CONNECTION_CLOSE frame (transport error); `reason` is clipped by [`clip_reason`].
pub fn encode_connection_close(buf: &mut Vec<u8>, error_code: u64, frame_type: u64, reason: &[u8]) {
    let reason = clip_reason(reason);
    buf.push(0x1c);
    put_var(buf, error_code);
    put_var(buf, frame_type);
    put_var(buf, len_u64(reason.len()));
    buf.extend_from_slice(reason);
}

/// Appends an APPLICATION_CLOSE frame; `reason` is clipped by [`clip_reason`].
pub fn encode_application_close(buf: &mut Vec<u8>, error_code: u64, reason: &[u8]) {
    let reason = clip_reason(reason);
    buf.push(0x1d);
    put_var(buf, error_code);
    put_var(buf, len_u64(reason.len()));
    buf.extend_from_slice(reason);
}

/// Appends a STREAM_SKIP frame (PROTOCOL.md §14.2).
pub fn encode_stream_skip(buf: &mut Vec<u8>, stream_id: u64, start: u64, end: u64) {
    buf.push(0x20);
    varint::encode(stream_id, buf);
    varint::encode(start, buf);
    varint::encode(end, buf);
}

/// Appends a HANDSHAKE_DONE frame.
pub fn encode_handshake_done(buf: &mut Vec<u8>) {
    buf.push(0x1e);
}

/// Appends a DATAGRAM frame: type 0x31 with a Length field if `with_len`, otherwise type 0x30,
/// whose data extends to the end of the packet (so it must be the last frame).
pub fn encode_datagram(buf: &mut Vec<u8>, data: &[u8], with_len: bool) {
    if with_len {
        buf.push(0x31);
        put_var(buf, len_u64(data.len()));
    } else {
        buf.push(0x30);
    }
    buf.extend_from_slice(data);
}

/// Appends the header of a STREAM_LZ4 frame (PROTOCOL.md §14.5) whose LZ4 block of
/// `block_len` bytes the caller appends next.
pub fn encode_stream_lz4_header(
    buf: &mut Vec<u8>,
    stream_id: u64,
    offset: u64,
    fin: bool,
    dictionary: u32,
    uncompressed_len: usize,
    block_len: usize,
) {
    buf.push(if fin { 0x3d } else { 0x3c });
    put_var(buf, stream_id);
    put_var(buf, offset);
    put_var(buf, u64::from(dictionary));
    put_var(buf, len_u64(uncompressed_len));
    put_var(buf, len_u64(block_len));
}

/// Size of a STREAM_LZ4 header (everything but the block).
pub fn stream_lz4_header_len(
    stream_id: u64,
    offset: u64,
    dictionary: u32,
    uncompressed_len: usize,
    block_len: usize,
) -> usize {
    let v = varint::encoded_len;
    1 + v(stream_id)
        + v(offset)
        + v(u64::from(dictionary))
        + v(len_u64(uncompressed_len))
        + v(len_u64(block_len))
}

/// Appends the header of a DATAGRAM_LZ4 frame (PROTOCOL.md §14.5) whose LZ4 block of
/// `block_len` bytes the caller appends next.
pub fn encode_datagram_lz4_header(
    buf: &mut Vec<u8>,
    dictionary: u32,
    uncompressed_len: usize,
    block_len: usize,
) {
    buf.push(0x3e);
    put_var(buf, u64::from(dictionary));
    put_var(buf, len_u64(uncompressed_len));
    put_var(buf, len_u64(block_len));
}

/// Size of a DATAGRAM_LZ4 header (everything but the block).
pub fn datagram_lz4_header_len(
    dictionary: u32,
    uncompressed_len: usize,
    block_len: usize,
) -> usize {
    let v = varint::encoded_len;
    1 + v(u64::from(dictionary)) + v(len_u64(uncompressed_len)) + v(len_u64(block_len))
}

/// Appends a FEC_SOURCE frame (PROTOCOL.md §19.2).
pub fn encode_fec_source(buf: &mut Vec<u8>, group: u64, index: u64) {
    buf.push(0x32);
    put_var(buf, group);
    put_var(buf, index);
}

/// Size of a FEC_SOURCE frame.
pub fn fec_source_len(group: u64, index: u64) -> usize {
    1 + varint::encoded_len(group) + varint::encoded_len(index)
}

/// Appends a REPAIR frame (PROTOCOL.md §19.2).
pub fn encode_repair(buf: &mut Vec<u8>, f: &RepairFrame<'_>) {
    buf.push(0x33);
    put_var(buf, f.group);
    put_var(buf, f.k);
    put_var(buf, f.m);
    put_var(buf, f.index);
    put_var(buf, len_u64(f.symbol.len()));
    buf.extend_from_slice(f.symbol);
}

/// Size of a REPAIR frame.
pub fn repair_frame_len(f: &RepairFrame<'_>) -> usize {
    let v = varint::encoded_len;
    1 + v(f.group) + v(f.k) + v(f.m) + v(f.index) + v(len_u64(f.symbol.len())) + f.symbol.len()
}

/// Appends a FEC_RECOVERED frame (PROTOCOL.md §19.6).
pub fn encode_fec_recovered(buf: &mut Vec<u8>, group: u64, bitmap: u64) {
    buf.push(0x34);
    put_var(buf, group);
    put_var(buf, bitmap);
}

/// Size of a DATAGRAM frame carrying `data_len` bytes.
pub fn datagram_frame_len(data_len: usize, with_len: bool) -> usize {
    let len_field = if with_len {
        varint::encoded_len(len_u64(data_len))
    } else {
        0
    };
    1 + len_field + data_len
}

impl Frame<'_> {
    /// The frame's type, as [`Frame::encode`] writes it (STREAM and DATAGRAM with a Length).
    pub fn ty(&self) -> FrameType {
        match self {
            Frame::Padding(_) => FrameType::PADDING,
            Frame::Ping => FrameType::PING,
            Frame::Ack(_) => FrameType::ACK,
            Frame::ResetStream { .. } => FrameType::RESET_STREAM,
            Frame::StopSending { .. } => FrameType::STOP_SENDING,
            Frame::Crypto { .. } => FrameType::CRYPTO,
            Frame::Stream(s) => stream_frame_type(s.offset, s.fin, true),
            Frame::MaxData(_) => FrameType::MAX_DATA,
            Frame::MaxStreamData { .. } => FrameType::MAX_STREAM_DATA,
            Frame::MaxStreams { dir: Dir::Bi, .. } => FrameType::MAX_STREAMS_BIDI,
            Frame::MaxStreams { dir: Dir::Uni, .. } => FrameType::MAX_STREAMS_UNI,
            Frame::DataBlocked(_) => FrameType::DATA_BLOCKED,
            Frame::StreamDataBlocked { .. } => FrameType::STREAM_DATA_BLOCKED,
            Frame::StreamsBlocked { dir: Dir::Bi, .. } => FrameType::STREAMS_BLOCKED_BIDI,
            Frame::StreamsBlocked { dir: Dir::Uni, .. } => FrameType::STREAMS_BLOCKED_UNI,
            Frame::NewConnectionId(_) => FrameType::NEW_CONNECTION_ID,
            Frame::RetireConnectionId { .. } => FrameType::RETIRE_CONNECTION_ID,
            Frame::PathChallenge(_) => FrameType::PATH_CHALLENGE,
            Frame::PathResponse(_) => FrameType::PATH_RESPONSE,
            Frame::ConnectionClose { .. } => FrameType::CONNECTION_CLOSE,
            Frame::ApplicationClose { .. } => FrameType::APPLICATION_CLOSE,
            Frame::HandshakeDone => FrameType::HANDSHAKE_DONE,
            Frame::StreamSkip { .. } => FrameType::STREAM_SKIP,
            Frame::Datagram(_) => FrameType::DATAGRAM_WITH_LEN,
            Frame::StreamLz4(s) if s.fin => FrameType::STREAM_LZ4_FIN,
            Frame::StreamLz4(_) => FrameType::STREAM_LZ4,
            Frame::DatagramLz4(_) => FrameType::DATAGRAM_LZ4,
            Frame::FecSource { .. } => FrameType::FEC_SOURCE,
            Frame::Repair(_) => FrameType::REPAIR,
            Frame::FecRecovered { .. } => FrameType::FEC_RECOVERED,
        }
    }

    /// Whether the frame elicits an acknowledgement (see [`FrameType::is_ack_eliciting`]).
    pub fn is_ack_eliciting(&self) -> bool {
        self.ty().is_ack_eliciting()
    }

    /// Appends the frame. STREAM and DATAGRAM frames are written with a Length field, so the
    /// result is valid anywhere in a packet; close reasons are clipped by [`clip_reason`].
    pub fn encode(&self, buf: &mut Vec<u8>) {
        match *self {
            Frame::Padding(n) => encode_padding(buf, n),
            Frame::Ping => encode_ping(buf),
            Frame::Ack(ack) => {
                buf.push(0x02);
                put_var(buf, ack.largest);
                put_var(buf, ack.ack_delay);
                put_var(buf, ack.range_count);
                put_var(buf, ack.first_range);
                buf.extend_from_slice(ack.ranges);
            }
            Frame::ResetStream {
                stream_id,
                error_code,
                final_size,
            } => encode_reset_stream(buf, stream_id, error_code, final_size),
            Frame::StopSending {
                stream_id,
                error_code,
            } => encode_stop_sending(buf, stream_id, error_code),
            Frame::Crypto { offset, data } => encode_crypto(buf, offset, data),
            Frame::Stream(s) => encode_stream(buf, s.stream_id, s.offset, s.data, s.fin, true),
            Frame::MaxData(m) => encode_max_data(buf, m),
            Frame::MaxStreamData { stream_id, maximum } => {
                encode_max_stream_data(buf, stream_id, maximum)
            }
            Frame::MaxStreams { dir, maximum } => encode_max_streams(buf, dir, maximum),
            Frame::DataBlocked(l) => encode_data_blocked(buf, l),
            Frame::StreamDataBlocked { stream_id, limit } => {
                encode_stream_data_blocked(buf, stream_id, limit)
            }
            Frame::StreamsBlocked { dir, limit } => encode_streams_blocked(buf, dir, limit),
            Frame::NewConnectionId(ref f) => encode_new_connection_id(buf, f),
            Frame::RetireConnectionId { sequence } => encode_retire_connection_id(buf, sequence),
            Frame::PathChallenge(ref d) => encode_path_challenge(buf, d),
            Frame::PathResponse(ref d) => encode_path_response(buf, d),
            Frame::ConnectionClose {
                error_code,
                frame_type,
                reason,
            } => encode_connection_close(buf, error_code, frame_type, reason),
            Frame::ApplicationClose { error_code, reason } => {
                encode_application_close(buf, error_code, reason)
            }
            Frame::HandshakeDone => encode_handshake_done(buf),
            Frame::StreamSkip {
                stream_id,
                start,
                end,
            } => encode_stream_skip(buf, stream_id, start, end),
            Frame::Datagram(data) => encode_datagram(buf, data, true),
            Frame::StreamLz4(s) => {
                encode_stream_lz4_header(
                    buf,
                    s.stream_id,
                    s.offset,
                    s.fin,
                    s.data.dictionary,
                    s.data.uncompressed_len,
                    s.data.block.len(),
                );
                buf.extend_from_slice(s.data.block);
            }
            Frame::DatagramLz4(d) => {
                encode_datagram_lz4_header(buf, d.dictionary, d.uncompressed_len, d.block.len());
                buf.extend_from_slice(d.block);
            }
            Frame::FecSource { group, index } => encode_fec_source(buf, group, index),
            Frame::Repair(ref f) => encode_repair(buf, f),
            Frame::FecRecovered { group, bitmap } => encode_fec_recovered(buf, group, bitmap),
        }
    }

    /// Size of what [`Frame::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        let v = varint::encoded_len;
        match *self {
            Frame::Padding(n) => n,
            Frame::Ping | Frame::HandshakeDone => 1,
            Frame::Ack(a) => {
                1 + v(a.largest)
                    + v(a.ack_delay)
                    + v(a.range_count)
                    + v(a.first_range)
                    + a.ranges.len()
            }
            Frame::ResetStream {
                stream_id,
                error_code,
                final_size,
            } => 1 + v(stream_id) + v(error_code) + v(final_size),
            Frame::StopSending {
                stream_id,
                error_code,
            } => 1 + v(stream_id) + v(error_code),
            Frame::Crypto { offset, data } => crypto_header_len(offset, data.len()) + data.len(),
            Frame::Stream(s) => {
                stream_header_len(s.stream_id, s.offset, s.data.len(), true) + s.data.len()
            }
            Frame::MaxData(x) | Frame::DataBlocked(x) => 1 + v(x),
            Frame::MaxStreams { maximum: x, .. } | Frame::StreamsBlocked { limit: x, .. } => {
                1 + v(x.min(MAX_STREAM_COUNT))
            }
            Frame::RetireConnectionId { sequence: x } => 1 + v(x),
            Frame::MaxStreamData {
                stream_id,
                maximum: x,
            }
            | Frame::StreamDataBlocked {
                stream_id,
                limit: x,
            } => 1 + v(stream_id) + v(x),
            Frame::NewConnectionId(ref f) => {
                1 + v(f.sequence) + v(f.retire_prior_to) + 1 + f.cid.len() + RESET_TOKEN_LEN
            }
            Frame::PathChallenge(_) | Frame::PathResponse(_) => 9,
            Frame::ConnectionClose {
                error_code,
                frame_type,
                reason,
            } => {
                let r = clip_reason(reason).len();
                1 + v(error_code) + v(frame_type) + v(len_u64(r)) + r
            }
            Frame::ApplicationClose { error_code, reason } => {
                let r = clip_reason(reason).len();
                1 + v(error_code) + v(len_u64(r)) + r
            }
            Frame::Datagram(data) => datagram_frame_len(data.len(), true),
            Frame::StreamLz4(s) => {
                stream_lz4_header_len(
                    s.stream_id,
                    s.offset,
                    s.data.dictionary,
                    s.data.uncompressed_len,
                    s.data.block.len(),
                ) + s.data.block.len()
            }
            Frame::DatagramLz4(d) => {
                datagram_lz4_header_len(d.dictionary, d.uncompressed_len, d.block.len())
                    + d.block.len()
            }
            Frame::StreamSkip {
                stream_id,
                start,
                end,
            } => 1 + v(stream_id) + v(start) + v(end),
            Frame::FecSource { group, index } => fec_source_len(group, index),
            Frame::Repair(ref f) => repair_frame_len(f),
            Frame::FecRecovered { group, bitmap } => 1 + v(group) + v(bitmap),
        }
    }
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
