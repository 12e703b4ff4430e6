//! Packet headers: connection IDs, versions, parsing and encoding of long and short headers,
//! version negotiation and Retry packets (PROTOCOL.md §2, §3, §4, §4.5, §12.2).
//!
//! Parsing happens in two steps because header protection (§5.3) hides the low bits of the first
//! byte and the packet number. [`decode`] reads only the unprotected part from the front of a
//! datagram and returns a [`PartialDecode`] plus the rest of the datagram (coalesced packets);
//! the crypto layer then removes header protection using [`ProtectedHeader::pn_offset`] and
//! [`ProtectedHeader::sample_range`]. [`peek`] is the cheaper look at `(is_long, version, dcid)`
//! that an endpoint needs to route a datagram. Every error of this module means "drop the
//! datagram silently" (§4.1, §5.5).
//!
//! Encoders append to a caller-provided `Vec<u8>` and return a [`HeaderLayout`] giving the offset
//! of the packet number and of the Length field. The Length field of a long header is always
//! written as a 2-byte varint (values up to 16383) so that it can be patched in place with
//! [`HeaderLayout::patch_length`] once the payload size is known.

use core::fmt;
use core::ops::Range;

use super::varint::{self, DecodeError, EncodeError, Reader};

/// The largest connection ID length, in bytes (PROTOCOL.md §3).
pub const MAX_CID_LEN: usize = 20;

/// JetStreamProto version 1 (PROTOCOL.md §2).
pub const VERSION_1: u32 = 0x4A53_5001;

/// The version field of a version negotiation packet (PROTOCOL.md §4.5).
pub const VERSION_NEGOTIATION: u32 = 0;

/// Versions whose packet format this module parses, in preference order (PROTOCOL.md §2).
pub const SUPPORTED_VERSIONS: &[u32] = &[VERSION_1];

/// Length of the Retry Integrity Tag (PROTOCOL.md §12.2).
pub const RETRY_INTEGRITY_TAG_LEN: usize = 16;

/// Length of the header protection sample (PROTOCOL.md §5.3).
pub const SAMPLE_LEN: usize = 16;

/// Bits of the first byte of a long header covered by header protection (PROTOCOL.md §5.3).
pub const LONG_HP_MASK: u8 = 0x0f;
/// Bits of the first byte of a short header covered by header protection (PROTOCOL.md §5.3).
pub const SHORT_HP_MASK: u8 = 0x1f;
/// Reserved bits of a long header, which MUST be 0 once protection is removed (PROTOCOL.md §4.4).
pub const LONG_RESERVED_BITS: u8 = 0x0c;
/// Reserved bits of a short header, which MUST be 0 once protection is removed (PROTOCOL.md §4.4).
pub const SHORT_RESERVED_BITS: u8 = 0x18;
/// The Key Phase bit of a short header (PROTOCOL.md §4.2, §9).
pub const KEY_PHASE_BIT: u8 = 0x04;

const FORM_BIT: u8 = 0x80;
const FIXED_BIT: u8 = 0x40;
const LONG_TYPE_SHIFT: u8 = 4;

/// Whether `version` is reserved for greasing (`0x?A?A?A?A`, PROTOCOL.md §2).
pub const fn is_greased_version(version: u32) -> bool {
    version & 0x0f0f_0f0f == 0x0a0a_0a0a
}

/// Whether this module parses packets of `version` (PROTOCOL.md §2).
pub fn is_supported_version(version: u32) -> bool {
    SUPPORTED_VERSIONS.contains(&version)
}

/// The packet number length (1..=4) encoded in the low two bits of an unprotected first byte
/// (PROTOCOL.md §4.1, §4.2).
pub const fn pn_len_from_first_byte(first: u8) -> usize {
    // Two bits plus one: 1..=4.
    // Widening u8 -> usize (`From` is not const).
    ((first & 0x03) + 1) as usize
}

/// Whether the reserved bits of an unprotected first byte are zero (PROTOCOL.md §4.4). Non-zero
/// reserved bits in a packet that authenticates are a `PROTOCOL_ERROR`.
pub const fn reserved_bits_clear(first: u8) -> bool {
    let mask = if first & FORM_BIT != 0 {
        LONG_RESERVED_BITS
    } else {
        SHORT_RESERVED_BITS
    };
    first & mask == 0
}

/// A connection ID of 0 to 20 bytes (PROTOCOL.md §3), stored inline.
///
/// Bytes past `len` are always zero, so the derived equality, ordering and hashing only see the
/// ID itself.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ConnectionId {
    len: u8,
    bytes: [u8; MAX_CID_LEN],
}

/// Error from building a [`ConnectionId`] longer than 20 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("connection ID of {0} bytes exceeds the 20-byte maximum")]
pub struct CidTooLong(pub usize);

impl ConnectionId {
    /// The zero-length connection ID.
    pub const EMPTY: ConnectionId = ConnectionId {
        len: 0,
        bytes: [0; MAX_CID_LEN],
    };

    /// Copies `id`, failing if it is longer than 20 bytes.
    #[inline]
    pub fn from_slice(id: &[u8]) -> Result<Self, CidTooLong> {
        let len = u8::try_from(id.len()).map_err(|_| CidTooLong(id.len()))?;
        let mut bytes = [0; MAX_CID_LEN];
        bytes
            .get_mut(..id.len())
            .ok_or(CidTooLong(id.len()))?
            .copy_from_slice(id);
        Ok(ConnectionId { len, bytes })
    }

    /// The ID's length in bytes (0..=20).
    #[inline]
    pub const fn len(&self) -> usize {
        // Widening u8 -> usize (`From` is not const).
        self.len as usize
    }

    /// Whether this is the zero-length ID.
    #[inline]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The ID's bytes.
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        self.bytes.get(..self.len()).unwrap_or(&[])
    }

    /// Appends `u8 length || id` to `buf` (the encoding used in long headers and frames).
    #[inline]
    pub fn encode_with_len(&self, buf: &mut Vec<u8>) {
        buf.push(self.len);
        buf.extend_from_slice(self.as_slice());
    }

    /// Reads `u8 length || id`, rejecting lengths above 20.
    fn decode_with_len(r: &mut Reader<'_>) -> Result<Self, HeaderError> {
        let len = r.get_u8()?;
        if usize::from(len) > MAX_CID_LEN {
            return Err(HeaderError::CidTooLong);
        }
        let id = r.get_bytes(usize::from(len))?;
        ConnectionId::from_slice(id).map_err(|_| HeaderError::CidTooLong)
    }
}

impl core::ops::Deref for ConnectionId {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for ConnectionId {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl TryFrom<&[u8]> for ConnectionId {
    type Error = CidTooLong;
    fn try_from(id: &[u8]) -> Result<Self, CidTooLong> {
        ConnectionId::from_slice(id)
    }
}

impl fmt::Debug for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnectionId({self})")
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.as_slice() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Why the front of a datagram is not a packet this endpoint can process. Every variant means
/// the packet, and the rest of the datagram, is dropped silently (PROTOCOL.md §4.1, §5.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// A field runs past the end of the datagram.
    #[error("header truncated")]
    UnexpectedEnd,
    /// A varint length or other field holds an impossible value.
    #[error("invalid header field")]
    InvalidValue,
    /// The Fixed Bit is 0 in a packet other than version negotiation (§4.2).
    #[error("fixed bit is zero")]
    FixedBitZero,
    /// A connection ID length exceeds 20 (§4.1), or the local CID length given to the decoder
    /// does.
    #[error("connection ID longer than 20 bytes")]
    CidTooLong,
    /// The Length field runs past the end of the datagram (§4.1).
    #[error("Length field runs past the end of the datagram")]
    LengthExceedsDatagram,
    /// A version negotiation packet lists no version, or a list not a multiple of 4 bytes (§4.5).
    #[error("malformed version negotiation list")]
    InvalidVersionList,
    /// A Retry packet too short for its integrity tag, or with an empty token (§12.2).
    #[error("malformed Retry packet")]
    InvalidRetry,
}

impl From<DecodeError> for HeaderError {
    fn from(e: DecodeError) -> Self {
        match e {
            DecodeError::UnexpectedEnd => HeaderError::UnexpectedEnd,
            _ => HeaderError::InvalidValue,
        }
    }
}

/// The packet types that carry protected frames, i.e. the encryption levels of PROTOCOL.md §4
/// and §6.3. Frame admissibility (§10) is expressed against this type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PacketType {
    /// Long header type 0.
    Initial,
    /// Long header type 1.
    ZeroRtt,
    /// Long header type 2.
    Handshake,
    /// Short header.
    OneRtt,
}

impl PacketType {
    /// The packet number space this type numbers its packets in (PROTOCOL.md §4.3).
    pub const fn space(self) -> super::packet_number::SpaceId {
        use super::packet_number::SpaceId;
        match self {
            PacketType::Initial => SpaceId::Initial,
            PacketType::Handshake => SpaceId::Handshake,
            PacketType::ZeroRtt | PacketType::OneRtt => SpaceId::Data,
        }
    }

    /// Whether the type uses a long header.
    pub const fn is_long(self) -> bool {
        !matches!(self, PacketType::OneRtt)
    }
}

/// The unprotected part of a packet that still has header protection and AEAD to remove:
/// Initial, 0-RTT, Handshake or 1-RTT (PROTOCOL.md §4.1, §4.2).
///
/// Offsets are relative to the packet's first byte, which is the first byte of the slice given to
/// [`decode`]. The packet occupies `0..len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProtectedHeader<'a> {
    /// The packet type.
    pub ty: PacketType,
    /// The version (long headers); `None` for 1-RTT packets, whose version is the connection's.
    pub version: Option<u32>,
    /// Destination connection ID.
    pub dcid: ConnectionId,
    /// Source connection ID (long headers; empty for 1-RTT).
    pub scid: ConnectionId,
    /// The address-validation token of an Initial packet (empty otherwise, or when absent).
    pub token: &'a [u8],
    /// Offset of the Packet Number field.
    pub pn_offset: usize,
    /// Total length of this packet: header, packet number, payload and AEAD tag.
    pub len: usize,
}

impl ProtectedHeader<'_> {
    /// The 16-byte header protection sample, starting 4 bytes after the start of the Packet
    /// Number field (PROTOCOL.md §5.3), or `None` if the packet is too short to sample, in
    /// which case it is dropped silently.
    #[inline]
    pub fn sample_range(&self) -> Option<Range<usize>> {
        let start = self.pn_offset.checked_add(4)?;
        let end = start.checked_add(SAMPLE_LEN)?;
        (end <= self.len).then_some(start..end)
    }

    /// The mask applied to the first byte by header protection: [`LONG_HP_MASK`] or
    /// [`SHORT_HP_MASK`] (PROTOCOL.md §5.3).
    #[inline]
    pub const fn first_byte_mask(&self) -> u8 {
        if self.ty.is_long() {
            LONG_HP_MASK
        } else {
            SHORT_HP_MASK
        }
    }
}

/// A Retry packet (PROTOCOL.md §4.1, §12.2): the whole rest of the datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPacket<'a> {
    /// The version.
    pub version: u32,
    /// Destination connection ID (the client's SCID).
    pub dcid: ConnectionId,
    /// Source connection ID: the server's new CID, which the client uses as DCID from now on.
    pub scid: ConnectionId,
    /// The Retry token (non-empty).
    pub token: &'a [u8],
    /// The Retry Integrity Tag.
    pub integrity_tag: [u8; RETRY_INTEGRITY_TAG_LEN],
    /// The packet without its tag: the part of the AAD that follows the original DCID (§12.2).
    pub without_tag: &'a [u8],
}

/// A version negotiation packet (PROTOCOL.md §4.5): the whole rest of the datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VersionNegotiation<'a> {
    /// Destination connection ID (echoes the client's SCID).
    pub dcid: ConnectionId,
    /// Source connection ID (echoes the client's DCID).
    pub scid: ConnectionId,
    /// The supported versions: a non-empty multiple of 4 bytes.
    versions: &'a [u8],
}

impl<'a> VersionNegotiation<'a> {
    /// The versions the server lists, in order.
    pub fn versions(&self) -> impl ExactSizeIterator<Item = u32> + 'a {
        self.versions
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }

    /// Whether the list contains `version`.
    pub fn contains(&self, version: u32) -> bool {
        self.versions().any(|v| v == version)
    }
}

/// The result of parsing the unprotected part of the packet at the front of a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartialDecode<'a> {
    /// Initial, 0-RTT, Handshake or 1-RTT: remove header protection, then decrypt.
    Protected(ProtectedHeader<'a>),
    /// A Retry packet.
    Retry(RetryPacket<'a>),
    /// A version negotiation packet.
    VersionNegotiation(VersionNegotiation<'a>),
    /// A long header of a version this module does not parse: the version and CIDs are all a
    /// server needs to answer with version negotiation (§4.5). The rest of the datagram is not
    /// parsed.
    UnsupportedVersion {
        /// The version the client attempted.
        version: u32,
        /// Destination connection ID.
        dcid: ConnectionId,
        /// Source connection ID.
        scid: ConnectionId,
    },
}

impl PartialDecode<'_> {
    /// The destination connection ID.
    pub fn dcid(&self) -> ConnectionId {
        match self {
            PartialDecode::Protected(h) => h.dcid,
            PartialDecode::Retry(r) => r.dcid,
            PartialDecode::VersionNegotiation(v) => v.dcid,
            PartialDecode::UnsupportedVersion { dcid, .. } => *dcid,
        }
    }
}

/// Parses the unprotected part of the packet at the front of `datagram` (PROTOCOL.md §4).
///
/// `local_cid_len` is the length of the connection IDs this endpoint issues: short headers do
/// not carry it (§3). Returns the parsed header and the bytes after this packet, which may hold
/// further coalesced packets (only after Initial, 0-RTT and Handshake packets; 1-RTT, Retry,
/// version negotiation and unsupported-version packets extend to the end of the datagram).
/// Trailing zero padding after the last packet parses as a short header with the Fixed Bit
/// cleared ([`HeaderError::FixedBitZero`]), which the caller treats as the end of the datagram.
pub fn decode(
    datagram: &[u8],
    local_cid_len: usize,
) -> Result<(PartialDecode<'_>, &[u8]), HeaderError> {
    let mut r = Reader::new(datagram);
    let first = r.get_u8()?;
    if first & FORM_BIT == 0 {
        return decode_short(first, r, datagram, local_cid_len);
    }
    let version = r.get_u32()?;
    let dcid = ConnectionId::decode_with_len(&mut r)?;
    let scid = ConnectionId::decode_with_len(&mut r)?;
    if version == VERSION_NEGOTIATION {
        let versions = r.take_rest();
        if versions.is_empty() || versions.len() % 4 != 0 {
            return Err(HeaderError::InvalidVersionList);
        }
        let vn = VersionNegotiation {
            dcid,
            scid,
            versions,
        };
        return Ok((PartialDecode::VersionNegotiation(vn), &[]));
    }
    if !is_supported_version(version) {
        let unsupported = PartialDecode::UnsupportedVersion {
            version,
            dcid,
            scid,
        };
        return Ok((unsupported, &[]));
    }
    if first & FIXED_BIT == 0 {
        return Err(HeaderError::FixedBitZero);
    }
    let (ty, token) = match (first >> LONG_TYPE_SHIFT) & 0x03 {
        0 => (PacketType::Initial, r.get_varint_prefixed()?),
        1 => (PacketType::ZeroRtt, &[][..]),
        2 => (PacketType::Handshake, &[][..]),
        _ => return decode_retry(version, dcid, scid, r, datagram),
    };
    let length = r.get_varint()?;
    let pn_offset = r.position();
    let len = usize::try_from(length)
        .ok()
        .and_then(|l| l.checked_add(pn_offset))
        .filter(|&end| end <= datagram.len())
        .ok_or(HeaderError::LengthExceedsDatagram)?;
    let (_, rest) = datagram.split_at(len);
    let header = ProtectedHeader {
        ty,
        version: Some(version),
        dcid,
        scid,
        token,
        pn_offset,
        len,
    };
    Ok((PartialDecode::Protected(header), rest))
}

fn decode_short<'a>(
    first: u8,
    mut r: Reader<'a>,
    datagram: &'a [u8],
    local_cid_len: usize,
) -> Result<(PartialDecode<'a>, &'a [u8]), HeaderError> {
    if first & FIXED_BIT == 0 {
        return Err(HeaderError::FixedBitZero);
    }
    if local_cid_len > MAX_CID_LEN {
        return Err(HeaderError::CidTooLong);
    }
    let dcid = ConnectionId::from_slice(r.get_bytes(local_cid_len)?)
        .map_err(|_| HeaderError::CidTooLong)?;
    let header = ProtectedHeader {
        ty: PacketType::OneRtt,
        version: None,
        dcid,
        scid: ConnectionId::EMPTY,
        token: &[],
        pn_offset: r.position(),
        len: datagram.len(),
    };
    Ok((PartialDecode::Protected(header), &[]))
}

fn decode_retry<'a>(
    version: u32,
    dcid: ConnectionId,
    scid: ConnectionId,
    mut r: Reader<'a>,
    datagram: &'a [u8],
) -> Result<(PartialDecode<'a>, &'a [u8]), HeaderError> {
    let rest = r.take_rest();
    let token_len = rest
        .len()
        .checked_sub(RETRY_INTEGRITY_TAG_LEN)
        .filter(|&n| n > 0)
        .ok_or(HeaderError::InvalidRetry)?;
    let (token, tag) = rest.split_at(token_len);
    let without_tag_len = datagram.len().saturating_sub(RETRY_INTEGRITY_TAG_LEN);
    let mut integrity_tag = [0; RETRY_INTEGRITY_TAG_LEN];
    integrity_tag.copy_from_slice(tag);
    let retry = RetryPacket {
        version,
        dcid,
        scid,
        token,
        integrity_tag,
        without_tag: datagram.get(..without_tag_len).unwrap_or(&[]),
    };
    Ok((PartialDecode::Retry(retry), &[]))
}

/// What an endpoint needs to route a datagram to a connection, read without parsing the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peek {
    /// Whether the first packet has a long header.
    pub is_long: bool,
    /// Its version (long headers only).
    pub version: Option<u32>,
    /// Its destination connection ID.
    pub dcid: ConnectionId,
}

/// Reads just the form, version and destination CID of the first packet in `datagram`, for
/// demultiplexing (PROTOCOL.md §3, §4). `local_cid_len` is as for [`decode`]. Fails on a short
/// header with the Fixed Bit cleared, a CID length above 20 or a truncated header.
#[inline]
pub fn peek(datagram: &[u8], local_cid_len: usize) -> Result<Peek, HeaderError> {
    let mut r = Reader::new(datagram);
    let first = r.get_u8()?;
    if first & FORM_BIT == 0 {
        if first & FIXED_BIT == 0 {
            return Err(HeaderError::FixedBitZero);
        }
        if local_cid_len > MAX_CID_LEN {
            return Err(HeaderError::CidTooLong);
        }
        let dcid = ConnectionId::from_slice(r.get_bytes(local_cid_len)?)
            .map_err(|_| HeaderError::CidTooLong)?;
        return Ok(Peek {
            is_long: false,
            version: None,
            dcid,
        });
    }
    let version = r.get_u32()?;
    let dcid = ConnectionId::decode_with_len(&mut r)?;
    Ok(Peek {
        is_long: true,
        version: Some(version),
        dcid,
    })
}

/// The long packet types an endpoint builds with [`encode_long_header`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LongHeaderType<'a> {
    /// Initial, with its address-validation token (empty if none).
    Initial {
        /// The token from a Retry, or empty.
        token: &'a [u8],
    },
    /// 0-RTT.
    ZeroRtt,
    /// Handshake.
    Handshake,
}

/// Where an encoded header put its fields, as absolute offsets into the output buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderLayout {
    /// Offset of the packet's first byte.
    pub start: usize,
    /// Offset of the 2-byte Length field (long headers only).
    pub length_offset: Option<usize>,
    /// Offset of the Packet Number field; the payload starts at `pn_offset + pn_len`.
    pub pn_offset: usize,
    /// Length of the Packet Number field (1..=4).
    pub pn_len: usize,
}

impl HeaderLayout {
    /// Offset where the payload (the first frame) starts.
    #[inline]
    pub const fn payload_offset(&self) -> usize {
        self.pn_offset + self.pn_len
    }

    /// Writes the Length field of a long header so that the packet ends at `packet_end` (an
    /// absolute offset into `buf`, including the AEAD tag that sealing will append).
    ///
    /// Call it after the frames are written and *before* sealing: the header is the AEAD's
    /// associated data (PROTOCOL.md §5.2). Length counts the packet number and the protected
    /// payload (§4.1) and must fit the 2-byte varint written by [`encode_long_header`]
    /// (at most 16383). A no-op for short headers.
    pub fn patch_length(&self, buf: &mut [u8], packet_end: usize) -> Result<(), EncodeError> {
        let Some(at) = self.length_offset else {
            return Ok(());
        };
        let length = packet_end
            .checked_sub(self.pn_offset)
            .ok_or(EncodeError::OutOfBounds)?;
        let bytes = varint::two_byte(u64::try_from(length).unwrap_or(u64::MAX))?;
        let field = at
            .checked_add(2)
            .and_then(|end| buf.get_mut(at..end))
            .ok_or(EncodeError::OutOfBounds)?;
        field.copy_from_slice(&bytes);
        Ok(())
    }
}

fn put_packet_number(buf: &mut Vec<u8>, pn: u64, pn_len: usize) -> usize {
    let pn_len = pn_len.clamp(1, 4);
    let truncated = super::packet_number::truncate(pn, pn_len).to_be_bytes();
    buf.extend_from_slice(truncated.get(4 - pn_len..).unwrap_or(&truncated));
    pn_len
}

/// Appends an Initial, 0-RTT or Handshake header, including the packet number truncated to
/// `pn_len` bytes (PROTOCOL.md §4.1, §4.3).
///
/// The Reserved Bits are written as 0 and the Length field as a placeholder 2-byte varint: fill
/// it with [`HeaderLayout::patch_length`] before sealing. `pn_len` (from
/// [`encode_len`](super::packet_number::encode_len)) must be in 1..=4.
pub fn encode_long_header(
    buf: &mut Vec<u8>,
    ty: LongHeaderType<'_>,
    version: u32,
    dcid: &ConnectionId,
    scid: &ConnectionId,
    pn: u64,
    pn_len: usize,
) -> HeaderLayout {
    debug_assert!((1..=4).contains(&pn_len), "pn_len {pn_len}");
    let start = buf.len();
    let type_bits: u8 = match ty {
        LongHeaderType::Initial { .. } => 0,
        LongHeaderType::ZeroRtt => 1,
        LongHeaderType::Handshake => 2,
    };
    let pn_bits = encoded_pn_bits(pn_len);
    buf.push(FORM_BIT | FIXED_BIT | (type_bits << LONG_TYPE_SHIFT) | pn_bits);
    buf.extend_from_slice(&version.to_be_bytes());
    dcid.encode_with_len(buf);
    scid.encode_with_len(buf);
    if let LongHeaderType::Initial { token } = ty {
        varint::encode(u64::try_from(token.len()).unwrap_or(varint::MAX), buf);
        buf.extend_from_slice(token);
    }
    let length_offset = buf.len();
    buf.extend_from_slice(&[0x40, 0x00]);
    let pn_offset = buf.len();
    let pn_len = put_packet_number(buf, pn, pn_len);
    HeaderLayout {
        start,
        length_offset: Some(length_offset),
        pn_offset,
        pn_len,
    }
}

/// Appends a 1-RTT short header with Spin Bit 0, the given Key Phase, and the packet number
/// truncated to `pn_len` bytes (PROTOCOL.md §4.2).
pub fn encode_short_header(
    buf: &mut Vec<u8>,
    dcid: &ConnectionId,
    key_phase: bool,
    pn: u64,
    pn_len: usize,
) -> HeaderLayout {
    debug_assert!((1..=4).contains(&pn_len), "pn_len {pn_len}");
    let start = buf.len();
    let kp = if key_phase { KEY_PHASE_BIT } else { 0 };
    buf.push(FIXED_BIT | kp | encoded_pn_bits(pn_len));
    buf.extend_from_slice(dcid.as_slice());
    let pn_offset = buf.len();
    let pn_len = put_packet_number(buf, pn, pn_len);
    HeaderLayout {
        start,
        length_offset: None,
        pn_offset,
        pn_len,
    }
}

fn encoded_pn_bits(pn_len: usize) -> u8 {
    // pn_len - 1 in 0..=3.
    u8::try_from(pn_len.clamp(1, 4) - 1).unwrap_or(3)
}

/// Appends a version negotiation packet (PROTOCOL.md §4.5).
///
/// `dcid` must echo the client's SCID and `scid` the client's DCID. `unused` supplies the 7 random
/// low bits of the first byte (the engine owns no RNG). `versions` must not be empty.
pub fn encode_version_negotiation(
    buf: &mut Vec<u8>,
    dcid: &ConnectionId,
    scid: &ConnectionId,
    versions: &[u32],
    unused: u8,
) -> Result<(), EncodeError> {
    if versions.is_empty() {
        return Err(EncodeError::BadCount {
            field: "supported versions",
            len: 0,
            min: 1,
            max: usize::MAX,
        });
    }
    buf.push(FORM_BIT | (unused & !FORM_BIT));
    buf.extend_from_slice(&VERSION_NEGOTIATION.to_be_bytes());
    dcid.encode_with_len(buf);
    scid.encode_with_len(buf);
    for v in versions {
        buf.extend_from_slice(&v.to_be_bytes());
    }
    Ok(())
}

/// Appends a Retry packet without its integrity tag (PROTOCOL.md §4.1, §12.2) and returns the
/// packet's start offset.
///
/// The caller computes the Retry Integrity Tag over [`retry_pseudo_packet`] and appends its 16
/// bytes. `token` must not be empty.
pub fn encode_retry(
    buf: &mut Vec<u8>,
    version: u32,
    dcid: &ConnectionId,
    scid: &ConnectionId,
    token: &[u8],
) -> Result<usize, EncodeError> {
    if token.is_empty() {
        return Err(EncodeError::BadCount {
            field: "Retry token",
            len: 0,
            min: 1,
            max: usize::MAX,
        });
    }
    let start = buf.len();
    // Type 3; the four low bits are unused and written as 0.
    buf.push(FORM_BIT | FIXED_BIT | (3 << LONG_TYPE_SHIFT));
    buf.extend_from_slice(&version.to_be_bytes());
    dcid.encode_with_len(buf);
    scid.encode_with_len(buf);
    buf.extend_from_slice(token);
    Ok(start)
}

/// Appends the associated data of the Retry Integrity Tag: `u8 len || original_dcid || the Retry
/// packet without its tag` (PROTOCOL.md §12.2).
pub fn retry_pseudo_packet(out: &mut Vec<u8>, original_dcid: &ConnectionId, without_tag: &[u8]) {
    original_dcid.encode_with_len(out);
    out.extend_from_slice(without_tag);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cid(b: &[u8]) -> ConnectionId {
        ConnectionId::from_slice(b).unwrap()
    }

    #[test]
    fn connection_id() {
        let c = cid(&[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(format!("{c:?}"), "ConnectionId(deadbeef)");
        assert_eq!(c.len(), 4);
        assert_eq!(&*c, &[0xde, 0xad, 0xbe, 0xef]);
        assert!(ConnectionId::EMPTY.is_empty());
        assert_eq!(ConnectionId::from_slice(&[0; 21]), Err(CidTooLong(21)));
        assert_eq!(cid(&[0; 20]).len(), 20);
        assert_ne!(cid(&[0]), cid(&[0, 0]));
        assert_eq!(ConnectionId::default(), ConnectionId::EMPTY);
    }

    #[test]
    fn minimal_short_header_bytes() {
        let mut buf = Vec::new();
        let dcid = cid(&[1, 2, 3, 4, 5, 6, 7, 8]);
        let layout = encode_short_header(&mut buf, &dcid, true, 0x1234, 2);
        assert_eq!(buf, [0x45, 1, 2, 3, 4, 5, 6, 7, 8, 0x12, 0x34]);
        assert_eq!(layout.pn_offset, 9);
        assert_eq!(layout.payload_offset(), 11);
        assert_eq!(layout.patch_length(&mut buf, 100), Ok(()));
        buf.extend_from_slice(&[0; 20]);
        let (p, rest) = decode(&buf, 8).unwrap();
        assert!(rest.is_empty());
        let PartialDecode::Protected(h) = p else {
            panic!("{p:?}")
        };
        assert_eq!(h.ty, PacketType::OneRtt);
        assert_eq!(h.dcid, dcid);
        assert_eq!(h.pn_offset, 9);
        assert_eq!(h.len, 31);
        assert_eq!(h.sample_range(), Some(13..29));
        assert_eq!(h.first_byte_mask(), SHORT_HP_MASK);
        assert_eq!(pn_len_from_first_byte(buf[0]), 2);
        assert!(reserved_bits_clear(buf[0]));
        assert!(!reserved_bits_clear(buf[0] | 0x08));
    }

    #[test]
    fn initial_header_bytes_and_coalescing() {
        let mut buf = Vec::new();
        let dcid = cid(&[0xaa; 8]);
        let scid = cid(&[0xbb; 4]);
        let layout = encode_long_header(
            &mut buf,
            LongHeaderType::Initial { token: &[7, 7] },
            VERSION_1,
            &dcid,
            &scid,
            0,
            1,
        );
        let mut expected = vec![0xc0, 0x4a, 0x53, 0x50, 0x01, 8];
        expected.extend_from_slice(&[0xaa; 8]);
        expected.extend_from_slice(&[4, 0xbb, 0xbb, 0xbb, 0xbb]);
        expected.extend_from_slice(&[2, 7, 7]); // token
        expected.extend_from_slice(&[0x40, 0x00]); // Length placeholder
        expected.push(0x00); // pn
        assert_eq!(buf, expected);
        assert_eq!(layout.length_offset, Some(expected.len() - 3));
        buf.extend_from_slice(&[0x01; 30]); // payload + "tag"
        let end = buf.len();
        layout.patch_length(&mut buf, end).unwrap();
        assert_eq!(&buf[end - 33..end - 31], &[0x40, 31]);
        // Coalesce a Handshake packet after it.
        let hs = encode_long_header(
            &mut buf,
            LongHeaderType::Handshake,
            VERSION_1,
            &dcid,
            &scid,
            0x0102_0304,
            4,
        );
        buf.extend_from_slice(&[0x02; 25]);
        let end = buf.len();
        hs.patch_length(&mut buf, end).unwrap();

        let (p, rest) = decode(&buf, 8).unwrap();
        let PartialDecode::Protected(h) = p else {
            panic!("{p:?}")
        };
        assert_eq!(h.ty, PacketType::Initial);
        assert_eq!(h.version, Some(VERSION_1));
        assert_eq!((h.dcid, h.scid, h.token), (dcid, scid, &[7u8, 7][..]));
        assert_eq!(h.pn_offset, layout.pn_offset);
        assert_eq!(h.len, hs.start);
        assert_eq!(h.first_byte_mask(), LONG_HP_MASK);
        let (p2, rest2) = decode(rest, 8).unwrap();
        assert!(rest2.is_empty());
        let PartialDecode::Protected(h2) = p2 else {
            panic!("{p2:?}")
        };
        assert_eq!(h2.ty, PacketType::Handshake);
        assert_eq!(h2.pn_offset, hs.pn_offset - hs.start);
        assert_eq!(&rest[h2.pn_offset..h2.pn_offset + 4], &[1, 2, 3, 4]);
        assert_eq!(h2.len, rest.len());
        assert_eq!(pn_len_from_first_byte(rest[0]), 4);
        assert_eq!(
            peek(&buf, 8).unwrap(),
            Peek {
                is_long: true,
                version: Some(VERSION_1),
                dcid
            }
        );
    }

    #[test]
    fn zero_rtt_and_trailing_padding() {
        let mut buf = Vec::new();
        let l = encode_long_header(
            &mut buf,
            LongHeaderType::ZeroRtt,
            VERSION_1,
            &cid(&[1; 8]),
            &ConnectionId::EMPTY,
            7,
            1,
        );
        buf.extend_from_slice(&[0; 20]);
        let end = buf.len();
        l.patch_length(&mut buf, end).unwrap();
        buf.extend_from_slice(&[0; 50]);
        let (p, rest) = decode(&buf, 8).unwrap();
        assert!(matches!(
            p,
            PartialDecode::Protected(ProtectedHeader {
                ty: PacketType::ZeroRtt,
                ..
            })
        ));
        assert_eq!(rest.len(), 50);
        assert_eq!(decode(rest, 8), Err(HeaderError::FixedBitZero));
    }

    #[test]
    fn length_checks() {
        let mut buf = Vec::new();
        let l = encode_long_header(
            &mut buf,
            LongHeaderType::Handshake,
            VERSION_1,
            &cid(&[1; 8]),
            &cid(&[2; 8]),
            0,
            1,
        );
        assert!(l.patch_length(&mut buf, l.pn_offset + 16384).is_err());
        l.patch_length(&mut buf, l.pn_offset + 40).unwrap();
        assert_eq!(decode(&buf, 8), Err(HeaderError::LengthExceedsDatagram));
        buf.extend_from_slice(&[0; 39]);
        assert!(decode(&buf, 8).is_ok());
        // Too short to sample: parses, but sample_range says no.
        l.patch_length(&mut buf, l.pn_offset + 19).unwrap();
        let (PartialDecode::Protected(h), rest) = decode(&buf, 8).unwrap() else {
            panic!()
        };
        assert_eq!(h.sample_range(), None);
        assert_eq!(rest.len(), 21);
    }

    #[test]
    fn cid_too_long() {
        let mut buf = vec![0xc0, 0x4a, 0x53, 0x50, 0x01, 21];
        buf.extend_from_slice(&[0; 40]);
        assert_eq!(decode(&buf, 8), Err(HeaderError::CidTooLong));
        assert_eq!(peek(&buf, 8), Err(HeaderError::CidTooLong));
        assert_eq!(decode(&[0x40; 30], 21), Err(HeaderError::CidTooLong));
    }

    #[test]
    fn fixed_bit_zero() {
        let mut buf = vec![0x80, 0x4a, 0x53, 0x50, 0x01, 0, 0, 0x40, 20];
        buf.extend_from_slice(&[0; 20]);
        assert_eq!(decode(&buf, 0), Err(HeaderError::FixedBitZero));
        assert_eq!(decode(&[0x00; 30], 8), Err(HeaderError::FixedBitZero));
        assert_eq!(peek(&[0x00; 30], 8), Err(HeaderError::FixedBitZero));
    }

    #[test]
    fn version_negotiation() {
        let mut buf = Vec::new();
        let dcid = cid(&[1, 2]);
        let scid = cid(&[3; 8]);
        encode_version_negotiation(&mut buf, &dcid, &scid, &[VERSION_1, 0x1a2a3a4a], 0xff).unwrap();
        assert_eq!(
            buf,
            [
                0xff, 0, 0, 0, 0, 2, 1, 2, 8, 3, 3, 3, 3, 3, 3, 3, 3, 0x4a, 0x53, 0x50, 0x01, 0x1a,
                0x2a, 0x3a, 0x4a
            ]
        );
        let (p, rest) = decode(&buf, 8).unwrap();
        assert!(rest.is_empty());
        let PartialDecode::VersionNegotiation(vn) = p else {
            panic!("{p:?}")
        };
        assert_eq!((vn.dcid, vn.scid), (dcid, scid));
        assert_eq!(vn.versions().collect::<Vec<_>>(), [VERSION_1, 0x1a2a3a4a]);
        assert!(vn.contains(VERSION_1));
        // Empty list and a list that is not a multiple of 4.
        assert_eq!(decode(&buf[..17], 8), Err(HeaderError::InvalidVersionList));
        assert_eq!(decode(&buf[..19], 8), Err(HeaderError::InvalidVersionList));
        assert!(encode_version_negotiation(&mut buf, &dcid, &scid, &[], 0).is_err());
    }

    #[test]
    fn unsupported_version() {
        let mut buf = vec![0xc0, 0x1a, 0x2a, 0x3a, 0x4a, 1, 9, 2, 8, 8];
        buf.extend_from_slice(&[0xff; 1190]);
        let (p, rest) = decode(&buf, 8).unwrap();
        assert!(rest.is_empty());
        assert_eq!(
            p,
            PartialDecode::UnsupportedVersion {
                version: 0x1a2a3a4a,
                dcid: cid(&[9]),
                scid: cid(&[8, 8])
            }
        );
        assert!(is_greased_version(0x1a2a3a4a));
        assert!(!is_greased_version(VERSION_1));
        assert_eq!(p.dcid(), cid(&[9]));
    }

    #[test]
    fn retry() {
        let mut buf = Vec::new();
        let dcid = cid(&[1; 8]);
        let scid = cid(&[2; 8]);
        encode_retry(&mut buf, VERSION_1, &dcid, &scid, b"token").unwrap();
        let without = buf.len();
        buf.extend_from_slice(&[0xee; 16]);
        assert_eq!(buf[0], 0xf0);
        let (p, rest) = decode(&buf, 8).unwrap();
        assert!(rest.is_empty());
        let PartialDecode::Retry(r) = p else {
            panic!("{p:?}")
        };
        assert_eq!((r.dcid, r.scid, r.token), (dcid, scid, &b"token"[..]));
        assert_eq!(r.integrity_tag, [0xee; 16]);
        assert_eq!(r.without_tag, &buf[..without]);
        let mut aad = Vec::new();
        retry_pseudo_packet(&mut aad, &cid(&[9; 8]), r.without_tag);
        assert_eq!(aad[0], 8);
        assert_eq!(aad.len(), 9 + without);
        // Tag only, no token.
        assert_eq!(
            decode(&buf[..without - 5], 8).map(|_| ()),
            Err(HeaderError::InvalidRetry)
        );
        let mut short = buf[..without - 5].to_vec();
        short.extend_from_slice(&[0; 16]);
        assert_eq!(
            decode(&short, 8).map(|_| ()),
            Err(HeaderError::InvalidRetry)
        );
        assert!(encode_retry(&mut buf, VERSION_1, &dcid, &scid, b"").is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_datagrams_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..2048),
            cid_len in 0usize..=21,
        ) {
            let _ = peek(&bytes, cid_len);
            let mut rest = &bytes[..];
            // Each iteration consumes at least one byte, so this terminates.
            while let Ok((p, r)) = decode(rest, cid_len) {
                prop_assert!(r.len() < rest.len());
                if let PartialDecode::Protected(h) = p {
                    prop_assert!(h.pn_offset <= h.len);
                    prop_assert!(h.len <= rest.len());
                    if let Some(s) = h.sample_range() {
                        prop_assert!(s.end <= h.len);
                    }
                }
                rest = r;
            }
        }

        #[test]
        fn long_header_roundtrip(
            kind in 0u8..3,
            dcid in proptest::collection::vec(any::<u8>(), 0..=20),
            scid in proptest::collection::vec(any::<u8>(), 0..=20),
            token in proptest::collection::vec(any::<u8>(), 0..100),
            pn in 0..crate::wire::packet_number::MAX_PACKET_NUMBER,
            pn_len in 1usize..=4,
            payload_len in 0usize..1200,
        ) {
            let dcid = cid(&dcid);
            let scid = cid(&scid);
            let ty = match kind {
                0 => LongHeaderType::Initial { token: &token },
                1 => LongHeaderType::ZeroRtt,
                _ => LongHeaderType::Handshake,
            };
            let mut buf = Vec::new();
            let l = encode_long_header(&mut buf, ty, VERSION_1, &dcid, &scid, pn, pn_len);
            buf.resize(buf.len() + payload_len, 0x5a);
            let end = buf.len();
            l.patch_length(&mut buf, end).unwrap();
            let (p, rest) = decode(&buf, 0).unwrap();
            prop_assert!(rest.is_empty());
            let PartialDecode::Protected(h) = p else { panic!() };
            prop_assert_eq!(h.dcid, dcid);
            prop_assert_eq!(h.scid, scid);
            prop_assert_eq!(h.pn_offset, l.pn_offset);
            prop_assert_eq!(h.len, end);
            let expected_token: &[u8] = if kind == 0 { &token } else { &[] };
            prop_assert_eq!(h.token, expected_token);
            prop_assert_eq!(pn_len_from_first_byte(buf[0]), pn_len);
            let pk = peek(&buf, 0).unwrap();
            prop_assert_eq!(pk.dcid, dcid);
        }

        #[test]
        fn short_header_roundtrip(
            dcid in proptest::collection::vec(any::<u8>(), 0..=20),
            key_phase in any::<bool>(),
            pn in any::<u64>(),
            pn_len in 1usize..=4,
        ) {
            let dcid = cid(&dcid);
            let mut buf = Vec::new();
            let l = encode_short_header(&mut buf, &dcid, key_phase, pn, pn_len);
            let (p, _) = decode(&buf, dcid.len()).unwrap();
            let PartialDecode::Protected(h) = p else { panic!() };
            prop_assert_eq!(h.dcid, dcid);
            prop_assert_eq!(h.pn_offset, l.pn_offset);
            prop_assert_eq!(buf[0] & KEY_PHASE_BIT != 0, key_phase);
            let truncated = super::super::packet_number::truncate(pn, pn_len);
            let mut wire = [0u8; 4];
            wire[4 - pn_len..].copy_from_slice(&buf[l.pn_offset..]);
            prop_assert_eq!(u32::from_be_bytes(wire), truncated);
        }
    }
}
