//! An on-path attacker's toolkit built only on jsp-proto's public API: split a datagram into its
//! packets, remove header protection and decrypt a packet with known keys, re-seal it after a
//! change, and find the CRYPTO frames inside a payload. Initial keys derive from the client's
//! original DCID alone (PROTOCOL.md §5.4), so anyone on the path can do this to Initial packets.

use jsp_proto::crypto::{initial_keys, CryptoProvider, DirectionalKeys};
use jsp_proto::wire::frame::{Frame, FrameIter};
use jsp_proto::wire::header::{self, ConnectionId, PacketType, PartialDecode};
use jsp_proto::wire::packet_number;

/// The CID length every endpoint in these tests issues (`EndpointConfig::default`).
pub const CID_LEN: usize = 8;
/// AEAD tag length.
pub const TAG_LEN: usize = 16;

/// One protected packet found in a datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacketInfo {
    /// Offset of its first byte in the datagram.
    pub start: usize,
    /// Its length.
    pub len: usize,
    /// Its type.
    pub ty: PacketType,
    /// Offset of the packet number field, relative to `start`.
    pub pn_offset: usize,
    /// Destination CID.
    pub dcid: ConnectionId,
    /// Source CID (long headers).
    pub scid: ConnectionId,
    /// Initial token.
    pub token: Vec<u8>,
}

/// What the first packet of a datagram is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Initial, 0-RTT, Handshake or 1-RTT.
    Protected(PacketType),
    /// Retry.
    Retry,
    /// Version negotiation, with its list.
    VersionNegotiation(Vec<u32>),
    /// A long header of an unsupported version.
    UnsupportedVersion,
    /// Does not parse.
    Garbage,
}

/// The kind of the first packet of `datagram` (short headers parsed with [`CID_LEN`]).
pub fn kind(datagram: &[u8]) -> Kind {
    match header::decode(datagram, CID_LEN) {
        Ok((PartialDecode::Protected(h), _)) => Kind::Protected(h.ty),
        Ok((PartialDecode::Retry(_), _)) => Kind::Retry,
        Ok((PartialDecode::VersionNegotiation(vn), _)) => {
            Kind::VersionNegotiation(vn.versions().collect())
        }
        Ok((PartialDecode::UnsupportedVersion { .. }, _)) => Kind::UnsupportedVersion,
        Err(_) => Kind::Garbage,
    }
}

/// The protected packets of `datagram`, in order, up to the first that does not parse (trailing
/// padding, or garbage).
pub fn packets(datagram: &[u8]) -> Vec<PacketInfo> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < datagram.len() {
        let Ok((PartialDecode::Protected(h), _)) = header::decode(&datagram[start..], CID_LEN)
        else {
            break;
        };
        out.push(PacketInfo {
            start,
            len: h.len,
            ty: h.ty,
            pn_offset: h.pn_offset,
            dcid: h.dcid,
            scid: h.scid,
            token: h.token.to_vec(),
        });
        if h.ty == PacketType::OneRtt {
            break;
        }
        start += h.len;
    }
    out
}

/// A packet whose protection was removed in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opened {
    /// Full packet number.
    pub pn: u64,
    /// Packet number length on the wire.
    pub pn_len: usize,
    /// Plaintext length (the plaintext starts at `pn_offset + pn_len`).
    pub plain_len: usize,
}

fn first_byte_mask(ty: PacketType) -> u8 {
    if ty == PacketType::OneRtt {
        header::SHORT_HP_MASK
    } else {
        header::LONG_HP_MASK
    }
}

fn mask_at(keys: &DirectionalKeys, packet: &[u8], pn_offset: usize) -> Option<[u8; 5]> {
    let sample: [u8; 16] = packet.get(pn_offset + 4..pn_offset + 20)?.try_into().ok()?;
    keys.header.mask(&sample).ok()
}

/// Removes header protection from and decrypts `packet` (exactly one packet: `info.len` bytes
/// from its first byte) in place. `None` (with `packet` in an unspecified state) if it does not
/// authenticate under `keys`.
pub fn unprotect(keys: &DirectionalKeys, packet: &mut [u8], info: &PacketInfo) -> Option<Opened> {
    let mask = mask_at(keys, packet, info.pn_offset)?;
    packet[0] ^= mask[0] & first_byte_mask(info.ty);
    let pn_len = header::pn_len_from_first_byte(packet[0]);
    let mut truncated = 0u32;
    for i in 0..pn_len {
        packet[info.pn_offset + i] ^= mask[1 + i];
        truncated = (truncated << 8) | u32::from(packet[info.pn_offset + i]);
    }
    let pn = packet_number::decode(truncated, pn_len, None);
    let (head, body) = packet.split_at_mut(info.pn_offset + pn_len);
    let plain_len = keys.packet.open(pn, head, body).ok()?;
    Some(Opened {
        pn,
        pn_len,
        plain_len,
    })
}

/// Seals the plaintext of an [`unprotect`]ed packet again (same packet number, same header) and
/// re-applies header protection.
pub fn protect(keys: &DirectionalKeys, packet: &mut [u8], info: &PacketInfo, o: &Opened) {
    let header_len = info.pn_offset + o.pn_len;
    let (head, body) = packet.split_at_mut(header_len);
    let tag = keys
        .packet
        .seal(o.pn, head, &mut body[..o.plain_len])
        .unwrap_or_else(|e| panic!("seal: {e}"));
    body[o.plain_len..o.plain_len + TAG_LEN].copy_from_slice(&tag);
    let mask = mask_at(keys, packet, info.pn_offset).unwrap_or_else(|| panic!("no sample"));
    packet[0] ^= mask[0] & first_byte_mask(info.ty);
    for i in 0..o.pn_len {
        packet[info.pn_offset + i] ^= mask[1 + i];
    }
}

/// A CRYPTO frame inside a payload: where its data is, and its offset in the crypto stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CryptoFrame {
    /// Position of the data in the payload.
    pub at: usize,
    /// Length of the data.
    pub len: usize,
    /// Offset of the data in the space's crypto stream.
    pub offset: u64,
}

/// The CRYPTO frames of a decrypted payload.
pub fn crypto_frames(payload: &[u8], ty: PacketType) -> Vec<CryptoFrame> {
    let base = payload.as_ptr() as usize;
    FrameIter::for_packet(payload, ty)
        .map_while(Result::ok)
        .filter_map(|f| match f {
            Frame::Crypto { offset, data } => Some(CryptoFrame {
                at: data.as_ptr() as usize - base,
                len: data.len(),
                offset,
            }),
            _ => None,
        })
        .collect()
}

/// Initial keys an observer derives from the client's original DCID: `(client's, server's)`.
pub fn observer_initial_keys(
    provider: &dyn CryptoProvider,
    odcid: &[u8],
) -> (DirectionalKeys, DirectionalKeys) {
    initial_keys(provider, odcid, true).unwrap_or_else(|e| panic!("initial keys: {e}"))
}

/// The plaintext payloads of the Initial packets of `datagram` that open under `keys`.
pub fn initial_plaintexts(keys: &DirectionalKeys, datagram: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for info in packets(datagram) {
        if info.ty != PacketType::Initial {
            continue;
        }
        let mut pkt = datagram[info.start..info.start + info.len].to_vec();
        if let Some(o) = unprotect(keys, &mut pkt, &info) {
            let from = info.pn_offset + o.pn_len;
            out.push(pkt[from..from + o.plain_len].to_vec());
        }
    }
    out
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}
