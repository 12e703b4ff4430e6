//! Fuzz target `packet_header`: long and short packet header decoding (PROTOCOL.md §4), with the
//! short-header CID length taken from the input, and the demultiplexing `peek`.
//!
//! Input: `cid_len u8` (modulo 24, so lengths above the 20-byte maximum are tried too), then the
//! datagram. Invariants: every coalesced packet lies inside the datagram and the remainder is
//! exactly what follows it; `peek` agrees with `decode` on form, version and destination CID;
//! the header protection sample lies inside the packet; and each header re-encoded with the
//! encoders decodes to the same fields (long headers, short headers, Retry, version negotiation).
#![no_main]

use jsp_proto::wire::header::{
    self, ConnectionId, LongHeaderType, PacketType, PartialDecode, ProtectedHeader,
    RETRY_INTEGRITY_TAG_LEN,
};
use libfuzzer_sys::fuzz_target;

fn reencode_protected(h: &ProtectedHeader<'_>, packet: &[u8], cid_len: usize) {
    let first = packet[0];
    let pn_len = header::pn_len_from_first_byte(first);
    let mut buf = Vec::new();
    match h.ty {
        PacketType::OneRtt => {
            let key_phase = first & header::KEY_PHASE_BIT != 0;
            let layout = header::encode_short_header(&mut buf, &h.dcid, key_phase, 0, pn_len);
            assert_eq!(layout.pn_offset, h.pn_offset, "short header pn offset");
            buf.resize(buf.len() + 20, 0);
            let Ok((PartialDecode::Protected(h2), rest)) = header::decode(&buf, cid_len) else {
                panic!("re-encoded short header does not decode");
            };
            assert!(rest.is_empty());
            assert_eq!(h2.dcid, h.dcid);
            assert_eq!(h2.ty, PacketType::OneRtt);
            assert_eq!(h2.pn_offset, h.pn_offset);
        }
        ty => {
            let lty = match ty {
                PacketType::Initial => LongHeaderType::Initial { token: h.token },
                PacketType::ZeroRtt => LongHeaderType::ZeroRtt,
                _ => LongHeaderType::Handshake,
            };
            let Some(version) = h.version else {
                panic!("long header without a version");
            };
            let body = h.len - h.pn_offset;
            if body < pn_len || body > 16383 {
                return;
            }
            let layout =
                header::encode_long_header(&mut buf, lty, version, &h.dcid, &h.scid, 0, pn_len);
            buf.resize(layout.pn_offset + body, 0);
            let end = buf.len();
            if layout.patch_length(&mut buf, end).is_err() {
                panic!("patch_length failed for a {body}-byte body");
            }
            let Ok((PartialDecode::Protected(h2), rest)) = header::decode(&buf, cid_len) else {
                panic!("re-encoded long header does not decode");
            };
            assert!(rest.is_empty());
            assert_eq!((h2.ty, h2.version), (h.ty, h.version));
            assert_eq!((h2.dcid, h2.scid), (h.dcid, h.scid));
            assert_eq!(h2.token, h.token);
            assert_eq!(h2.len - h2.pn_offset, body);
            assert_eq!(h2.len, buf.len());
        }
    }
}

fn check(datagram: &[u8], cid_len: usize) {
    let peeked = header::peek(datagram, cid_len);
    let mut rest = datagram;
    let mut first_packet = true;
    while !rest.is_empty() {
        let decoded = header::decode(rest, cid_len);
        if first_packet {
            if let Ok((d, _)) = &decoded {
                let Ok(p) = &peeked else {
                    panic!("decode succeeded but peek failed: {peeked:?}");
                };
                assert_eq!(p.dcid, d.dcid(), "peek and decode disagree on the DCID");
                let long = !matches!(d, PartialDecode::Protected(h) if h.ty == PacketType::OneRtt);
                assert_eq!(p.is_long, long, "peek and decode disagree on the form");
                if let PartialDecode::Protected(h) = d {
                    assert_eq!(p.version, h.version);
                }
            }
            first_packet = false;
        }
        let Ok((d, next)) = decoded else {
            return;
        };
        match d {
            PartialDecode::Protected(h) => {
                assert!(h.len <= rest.len(), "packet longer than the datagram");
                assert!(h.pn_offset <= h.len, "pn offset beyond the packet");
                assert_eq!(
                    next,
                    &rest[h.len..],
                    "remainder is not what follows the packet"
                );
                if let Some(s) = h.sample_range() {
                    assert!(s.end <= h.len, "sample beyond the packet");
                }
                if h.ty == PacketType::OneRtt {
                    assert!(next.is_empty(), "a short header must be last");
                }
                reencode_protected(&h, rest, cid_len);
            }
            PartialDecode::Retry(r) => {
                assert!(next.is_empty());
                assert!(!r.token.is_empty());
                assert_eq!(r.without_tag.len() + RETRY_INTEGRITY_TAG_LEN, rest.len());
                let mut buf = Vec::new();
                let Ok(start) =
                    header::encode_retry(&mut buf, r.version, &r.dcid, &r.scid, r.token)
                else {
                    panic!("decoded Retry does not re-encode");
                };
                assert_eq!(start, 0);
                buf.extend_from_slice(&r.integrity_tag);
                let Ok((PartialDecode::Retry(r2), _)) = header::decode(&buf, cid_len) else {
                    panic!("re-encoded Retry does not decode");
                };
                assert_eq!((r2.version, r2.dcid, r2.scid), (r.version, r.dcid, r.scid));
                assert_eq!((r2.token, r2.integrity_tag), (r.token, r.integrity_tag));
                let mut pseudo = Vec::new();
                header::retry_pseudo_packet(&mut pseudo, &ConnectionId::EMPTY, r.without_tag);
                assert_eq!(pseudo.len(), 1 + r.without_tag.len());
            }
            PartialDecode::VersionNegotiation(vn) => {
                assert!(next.is_empty());
                let versions: Vec<u32> = vn.versions().collect();
                assert!(!versions.is_empty());
                let mut buf = Vec::new();
                let unused = rest[0] & 0x7f;
                if header::encode_version_negotiation(
                    &mut buf, &vn.dcid, &vn.scid, &versions, unused,
                )
                .is_err()
                {
                    panic!("decoded version negotiation does not re-encode");
                }
                assert_eq!(buf, rest, "version negotiation re-encodes differently");
                for v in &versions {
                    assert!(vn.contains(*v));
                }
            }
            PartialDecode::UnsupportedVersion { version, .. } => {
                assert!(next.is_empty());
                assert!(!header::is_supported_version(version));
            }
        }
        if next.len() >= rest.len() {
            panic!("decode made no progress");
        }
        rest = next;
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&len_byte, datagram)) = data.split_first() else {
        return;
    };
    check(datagram, usize::from(len_byte % 24));
});
