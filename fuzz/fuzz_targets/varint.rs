//! Fuzz target `varint`: the QUIC-style variable-length integer codec and the [`Reader`] built on
//! it (PROTOCOL.md §1.2), plus packet number truncation and recovery (§4.3).
//!
//! Invariants: a decoded varint used exactly the length its 2-bit prefix announces, is at most
//! 2^62 - 1, and re-encodes minimally to a value that decodes back to itself; the [`Reader`]
//! agrees with the free function; the length-prefixed readers never read past the input; and a
//! packet number truncated with `encode_len` against the peer's largest acknowledged number
//! decodes back to itself at a receiver whose largest received number is that same number.
#![no_main]

use jsp_proto::wire::packet_number;
use jsp_proto::wire::varint::{self, Reader, VarInt};
use libfuzzer_sys::fuzz_target;

fn check_varints(data: &[u8]) {
    let mut r = Reader::new(data);
    let mut rest = data;
    loop {
        let free = varint::decode(rest);
        let before = r.remaining();
        let via_reader = r.get_varint();
        match (free, via_reader) {
            (Ok((v, n)), Ok(w)) => {
                assert_eq!(v, w, "Reader and decode disagree");
                let first = rest[0];
                assert_eq!(n, 1 << (first >> 6), "length does not match the prefix");
                assert_eq!(
                    before - r.remaining(),
                    n,
                    "Reader consumed a different length"
                );
                assert!(v <= varint::MAX);
                let mut buf = Vec::new();
                varint::encode(v, &mut buf);
                assert_eq!(buf.len(), varint::encoded_len(v));
                assert!(buf.len() <= n, "minimal encoding longer than the input's");
                assert_eq!(varint::decode(&buf).ok(), Some((v, buf.len())));
                let vi = VarInt::from_u64(v).ok();
                assert_eq!(vi.map(VarInt::into_inner), Some(v));
                assert_eq!(vi.map(VarInt::size), Some(buf.len()));
                let mut two = Vec::new();
                match varint::encode_2byte(v, &mut two) {
                    Ok(()) => {
                        assert!(v < 1 << 14);
                        assert_eq!(varint::decode(&two).ok(), Some((v, 2)));
                    }
                    Err(_) => assert!(v >= 1 << 14),
                }
                rest = &rest[n..];
            }
            (Err(_), Err(_)) => break,
            (a, b) => panic!("decode {a:?} but Reader {b:?}"),
        }
    }
    // The prefixed readers stay within bounds whatever the lengths say.
    for which in 0..3 {
        let mut r = Reader::new(data);
        while !r.is_empty() {
            let before = r.remaining();
            let got = match which {
                0 => r.get_u8_prefixed(),
                1 => r.get_u16_prefixed(),
                _ => r.get_varint_prefixed(),
            };
            match got {
                Ok(s) => assert!(s.len() < before, "prefixed read took more than the input"),
                Err(_) => break,
            }
        }
    }
}

fn check_packet_numbers(data: &[u8]) {
    let Some((head, _)) = data.split_first_chunk::<17>() else {
        return;
    };
    let word = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&head[i..i + 8]);
        u64::from_le_bytes(b)
    };
    let has_acked = head[16] & 1 == 1;
    // Stay below 2^62 - 2^32 so the window never reaches the end of the number space.
    let limit = (1u64 << 62) - (1u64 << 32);
    let largest = word(0) % limit;
    let distance = word(8) % (1u64 << 30);
    let (pn, acked) = if has_acked {
        (largest + 1 + distance, Some(largest))
    } else {
        (distance, None)
    };
    if pn >= limit {
        return;
    }
    let len = packet_number::encode_len(pn, acked);
    assert!((1..=4).contains(&len));
    let truncated = packet_number::truncate(pn, len);
    if len < 4 {
        assert!(u64::from(truncated) < 1u64 << (8 * len));
    }
    assert_eq!(
        packet_number::decode(truncated, len, acked),
        pn,
        "pn {pn} (len {len}, largest acked {acked:?}) does not round trip"
    );
    // Whatever the input, decoding never panics.
    let _ = packet_number::decode(
        u32::from_le_bytes([head[0], head[1], head[2], head[3]]),
        usize::from(head[4] % 4) + 1,
        Some(word(8)),
    );
}

fuzz_target!(|data: &[u8]| {
    check_varints(data);
    check_packet_numbers(data);
});
