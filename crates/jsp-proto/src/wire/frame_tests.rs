//! Tests of the frame codec: pinned byte layouts, every rejection rule, and property tests.

// ACK ranges are written as arrays of ranges on purpose: one range per element.
#![allow(clippy::single_range_in_vec_init)]

use super::*;
use crate::wire::varint::MAX;
use proptest::prelude::*;

fn decode_all(payload: &[u8]) -> Result<Vec<Frame<'_>>, FrameError> {
    FrameIter::new(payload).collect()
}

fn one(payload: &[u8]) -> Result<Frame<'_>, FrameError> {
    let mut frames = decode_all(payload)?;
    assert_eq!(frames.len(), 1, "{frames:?}");
    Ok(frames.remove(0))
}

fn err(payload: &[u8]) -> FrameError {
    decode_all(payload).unwrap_err()
}

#[test]
fn stream_off_len_fin_bytes() {
    let mut buf = Vec::new();
    encode_stream(&mut buf, 4, 100, b"hi", true, true);
    // type 0x0f, id 4, offset 100 (2-byte varint), length 2, data.
    assert_eq!(buf, [0x0f, 0x04, 0x40, 0x64, 0x02, b'h', b'i']);
    assert_eq!(stream_header_len(4, 100, 2, true), 5);
    let f = one(&buf).unwrap();
    assert_eq!(
        f,
        Frame::Stream(StreamFrame {
            stream_id: 4,
            offset: 100,
            fin: true,
            data: b"hi"
        })
    );
    assert_eq!(f.encoded_len(), buf.len());
    assert_eq!(f.ty(), FrameType::new(0x0f));
}

#[test]
fn stream_flag_variants() {
    for ty in 0x08u8..=0x0f {
        let mut buf = vec![ty, 0x01];
        if ty & 0x04 != 0 {
            buf.push(0x05);
        }
        if ty & 0x02 != 0 {
            buf.push(0x03);
        }
        buf.extend_from_slice(b"abc");
        let Frame::Stream(s) = one(&buf).unwrap() else {
            panic!()
        };
        assert_eq!(s.stream_id, 1);
        assert_eq!(s.offset, if ty & 0x04 != 0 { 5 } else { 0 });
        assert_eq!(s.fin, ty & 0x01 != 0);
        assert_eq!(s.data, b"abc");
    }
    // Without LEN the data runs to the end, even across what looks like more frames.
    let Frame::Stream(s) = one(&[0x08, 0x00, 0x01, 0x01]).unwrap() else {
        panic!()
    };
    assert_eq!(s.data, [0x01, 0x01]);
    // With LEN, a frame follows.
    let frames = decode_all(&[0x0a, 0x00, 0x01, 0xaa, 0x01]).unwrap();
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[1], Frame::Ping);
}

#[test]
fn ack_two_ranges_bytes() {
    // Packets 5..=10 and 1..=2 acknowledged: largest 10, first range 5, gap 1 (3 and 4 missing
    // means gap = 5 - 2 - 2 = 1), length 1.
    let mut buf = Vec::new();
    encode_ack(&mut buf, 7, [5..11, 1..3]).unwrap();
    assert_eq!(buf, [0x02, 10, 7, 1, 5, 1, 1]);
    assert_eq!(ack_frame_len(7, [5..11, 1..3]), Ok(buf.len()));
    let Frame::Ack(ack) = one(&buf).unwrap() else {
        panic!()
    };
    assert_eq!(ack.largest(), 10);
    assert_eq!(ack.ack_delay(), 7);
    assert_eq!(ack.ack_delay_micros(3), 56);
    assert_eq!(ack.len(), 2);
    assert_eq!(ack.iter().collect::<Vec<_>>(), [5..11, 1..3]);
    let mut again = Vec::new();
    Frame::Ack(ack).encode(&mut again);
    assert_eq!(again, buf);
    assert_eq!(Frame::Ack(ack).encoded_len(), buf.len());
}

#[test]
fn ack_edges() {
    // A range down to 0, and a single packet.
    let mut buf = Vec::new();
    encode_ack(&mut buf, 0, [0..1]).unwrap();
    assert_eq!(buf, [0x02, 0, 0, 0, 0]);
    let Frame::Ack(ack) = one(&buf).unwrap() else {
        panic!()
    };
    assert_eq!(ack.iter().collect::<Vec<_>>(), [0..1]);
    // First range below zero.
    assert_eq!(
        err(&[0x02, 3, 0, 0, 4]).reason,
        FrameErrorReason::InvalidAckRange
    );
    // Second range below zero: largest 10, first 5 -> smallest 5; gap 3 -> next largest 0; len 1.
    assert_eq!(
        err(&[0x02, 10, 0, 1, 5, 3, 1]).reason,
        FrameErrorReason::InvalidAckRange
    );
    // Gap reaching exactly 0 is fine.
    let Frame::Ack(ack) = one(&[0x02, 10, 0, 1, 5, 3, 0]).unwrap() else {
        panic!()
    };
    assert_eq!(ack.iter().collect::<Vec<_>>(), [5..11, 0..1]);
    // A huge range count with no bytes behind it is truncation, not a long loop.
    assert_eq!(
        err(&[0x02, 10, 0, 0xbf, 0xff, 0xff, 0xff, 5]).reason,
        FrameErrorReason::UnexpectedEnd
    );
    // Encoder rejections leave the buffer untouched.
    let mut buf = vec![0xaa];
    let empty: [Range<u64>; 0] = [];
    assert_eq!(
        encode_ack(&mut buf, 0, empty),
        Err(EncodeError::InvalidAckRanges)
    );
    assert_eq!(
        encode_ack(&mut buf, 0, [5..11, 4..5]),
        Err(EncodeError::InvalidAckRanges)
    ); // adjacent
    assert_eq!(
        encode_ack(&mut buf, 0, [5..11, 1..7]),
        Err(EncodeError::InvalidAckRanges)
    ); // overlap
    assert_eq!(
        encode_ack(&mut buf, 0, [1..3, 5..11]),
        Err(EncodeError::InvalidAckRanges)
    ); // ascending
    assert_eq!(
        encode_ack(&mut buf, 0, [5..5]),
        Err(EncodeError::InvalidAckRanges)
    ); // empty range
    assert_eq!(buf, [0xaa]);
    assert_eq!(
        ack_frame_len(0, [5..11, 4..5]),
        Err(EncodeError::InvalidAckRanges)
    );
}

#[test]
fn padding_runs_collapse() {
    let frames = decode_all(&[0, 0, 0, 1, 0, 0]).unwrap();
    assert_eq!(frames, [Frame::Padding(3), Frame::Ping, Frame::Padding(2)]);
    // A non-shortest PADDING type counts its bytes.
    assert_eq!(decode_all(&[0x40, 0x00, 0]).unwrap(), [Frame::Padding(3)]);
    assert!(!FrameType::PADDING.is_ack_eliciting());
    let mut buf = Vec::new();
    encode_padding(&mut buf, 4);
    assert_eq!(buf, [0; 4]);
    assert_eq!(Frame::Padding(4).encoded_len(), 4);
}

#[test]
fn non_shortest_frame_type_is_accepted() {
    assert_eq!(decode_all(&[0x40, 0x01]).unwrap(), [Frame::Ping]);
}

#[test]
fn fixed_frames_bytes() {
    let mut buf = Vec::new();
    encode_ping(&mut buf);
    encode_handshake_done(&mut buf);
    encode_max_data(&mut buf, 1 << 20);
    encode_path_challenge(&mut buf, &[1, 2, 3, 4, 5, 6, 7, 8]);
    encode_retire_connection_id(&mut buf, 3);
    encode_max_streams(&mut buf, Dir::Uni, 100);
    assert_eq!(
        buf,
        [
            0x01, 0x1e, 0x10, 0x80, 0x10, 0x00, 0x00, 0x1a, 1, 2, 3, 4, 5, 6, 7, 8, 0x19, 3, 0x13,
            0x40, 100
        ]
    );
    assert_eq!(
        decode_all(&buf).unwrap(),
        [
            Frame::Ping,
            Frame::HandshakeDone,
            Frame::MaxData(1 << 20),
            Frame::PathChallenge([1, 2, 3, 4, 5, 6, 7, 8]),
            Frame::RetireConnectionId { sequence: 3 },
            Frame::MaxStreams {
                dir: Dir::Uni,
                maximum: 100
            },
        ]
    );
}

#[test]
fn new_connection_id_rules() {
    let f = NewConnectionId {
        sequence: 2,
        retire_prior_to: 1,
        cid: ConnectionId::from_slice(&[9; 8]).unwrap(),
        reset_token: [7; 16],
    };
    let mut buf = Vec::new();
    encode_new_connection_id(&mut buf, &f);
    let mut expected = vec![0x18, 2, 1, 8];
    expected.extend_from_slice(&[9; 8]);
    expected.extend_from_slice(&[7; 16]);
    assert_eq!(buf, expected);
    assert_eq!(one(&buf).unwrap(), Frame::NewConnectionId(f));
    let mut bad = buf.clone();
    bad[2] = 3; // retire_prior_to > sequence
    assert_eq!(err(&bad).reason, FrameErrorReason::RetirePriorToTooLarge);
    let mut bad = buf.clone();
    bad[3] = 0;
    assert_eq!(err(&bad).reason, FrameErrorReason::InvalidCidLength);
    let mut bad = buf.clone();
    bad[3] = 21;
    bad.extend_from_slice(&[0; 13]);
    assert_eq!(err(&bad).reason, FrameErrorReason::InvalidCidLength);
    assert_eq!(
        err(&buf[..buf.len() - 1]).reason,
        FrameErrorReason::UnexpectedEnd
    );
}

#[test]
fn close_frames() {
    let mut buf = Vec::new();
    encode_connection_close(&mut buf, 0x0a, 0x06, b"bad tp");
    assert_eq!(
        buf,
        [0x1c, 0x0a, 0x06, 6, b'b', b'a', b'd', b' ', b't', b'p']
    );
    let f = one(&buf).unwrap();
    assert!(!f.is_ack_eliciting());
    let Frame::ConnectionClose {
        error_code,
        frame_type,
        reason,
    } = f
    else {
        panic!()
    };
    assert_eq!((error_code, frame_type), (0x0a, 0x06));
    assert_eq!(reason_lossy(reason), "bad tp");
    assert_eq!(reason_lossy(&[0x66, 0xff]), "f\u{fffd}");

    // Reasons longer than 1024 bytes are clipped on encode, at a character boundary, and
    // rejected on decode.
    let long = "é".repeat(600); // 1200 bytes
    let mut buf = Vec::new();
    encode_application_close(&mut buf, 1, long.as_bytes());
    let Frame::ApplicationClose { reason, .. } = one(&buf).unwrap() else {
        panic!()
    };
    assert_eq!(reason.len(), 1024);
    assert!(core::str::from_utf8(reason).is_ok());
    let odd = format!("a{}", "é".repeat(600));
    assert_eq!(clip_reason(odd.as_bytes()).len(), 1023);
    let mut bad = vec![0x1d, 1, 0x44, 0x01];
    bad.extend_from_slice(&[b'x'; 1025]);
    assert_eq!(err(&bad).reason, FrameErrorReason::ReasonTooLong);
}

#[test]
fn offsets_and_counts_are_bounded() {
    // STREAM at offset 2^62 - 1 with one byte of data overflows.
    let mut buf = vec![
        0x0e, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00,
    ];
    assert_eq!(err(&buf).reason, FrameErrorReason::OffsetOverflow);
    buf[10] = 0; // zero-length at the maximum offset is fine
    buf.truncate(11);
    assert!(one(&buf).is_ok());
    let crypto = [
        0x06, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00,
    ];
    assert_eq!(err(&crypto).reason, FrameErrorReason::OffsetOverflow);
    // MAX_STREAMS above 2^60.
    let mut buf = vec![0x12];
    varint::encode(MAX_STREAM_COUNT + 1, &mut buf);
    assert_eq!(err(&buf).reason, FrameErrorReason::StreamCountTooLarge);
    let mut buf = vec![0x17];
    varint::encode(MAX_STREAM_COUNT, &mut buf);
    assert!(one(&buf).is_ok());
}

#[test]
fn unknown_and_truncated() {
    let e = err(&[0x03, 0, 0, 0, 0]);
    assert_eq!(
        (e.frame_type, e.reason),
        (FrameType::new(3), FrameErrorReason::UnknownType)
    );
    assert_eq!(e.code(), crate::wire::error_code::FRAME_ENCODING_ERROR);
    let e = err(&[0x40]);
    assert_eq!(
        (e.frame_type, e.reason),
        (FrameType::PADDING, FrameErrorReason::UnexpectedEnd)
    );
    let e = err(&[0x04, 1, 2]);
    assert_eq!(
        (e.frame_type, e.reason),
        (FrameType::RESET_STREAM, FrameErrorReason::UnexpectedEnd)
    );
    // Iteration stops after the first error.
    let mut it = FrameIter::new(&[0x01, 0x03, 0x01]);
    assert_eq!(it.next(), Some(Ok(Frame::Ping)));
    assert!(matches!(it.next(), Some(Err(_))));
    assert_eq!(it.next(), None);
    assert_eq!(FrameIter::new(&[]).next(), None);
}

#[test]
fn packet_type_admissibility() {
    use PacketType::*;
    let stream = [0x08, 0x00];
    let e = FrameIter::for_packet(&stream, Initial)
        .next()
        .unwrap()
        .unwrap_err();
    assert_eq!(e.reason, FrameErrorReason::NotAllowed);
    assert_eq!(e.code(), crate::wire::error_code::PROTOCOL_ERROR);
    assert!(FrameIter::for_packet(&stream, ZeroRtt)
        .next()
        .unwrap()
        .is_ok());
    assert!(FrameIter::for_packet(&[0x03], OneRtt)
        .next()
        .unwrap()
        .is_err());

    let table: &[(u64, [bool; 4])] = &[
        // type, [Initial, 0-RTT, Handshake, 1-RTT]
        (0x00, [true, true, true, true]),
        (0x01, [true, true, true, true]),
        (0x02, [true, false, true, true]),
        (0x04, [false, true, false, true]),
        (0x05, [false, true, false, true]),
        (0x06, [true, false, true, true]),
        (0x08, [false, true, false, true]),
        (0x0f, [false, true, false, true]),
        (0x10, [false, true, false, true]),
        (0x17, [false, true, false, true]),
        (0x18, [false, false, false, true]),
        (0x19, [false, false, false, true]),
        (0x1a, [false, false, false, true]),
        (0x1b, [false, false, false, true]),
        (0x1c, [true, false, true, true]),
        (0x1d, [false, false, false, true]),
        (0x1e, [false, false, false, true]),
        (0x30, [false, true, false, true]),
        (0x31, [false, true, false, true]),
        (0x03, [false, false, false, false]),
        (0x1f, [false, false, false, false]),
    ];
    for &(ty, allowed) in table {
        let t = FrameType::new(ty);
        let got = [Initial, ZeroRtt, Handshake, OneRtt].map(|p| t.allowed_in(p));
        assert_eq!(got, allowed, "{t:?}");
    }
    for ty in [0x00, 0x02, 0x1c, 0x1d] {
        assert!(!FrameType::new(ty).is_ack_eliciting());
    }
    for ty in [0x01, 0x04, 0x06, 0x08, 0x10, 0x18, 0x1a, 0x1e, 0x30] {
        assert!(FrameType::new(ty).is_ack_eliciting());
    }
    assert_eq!(format!("{:?}", FrameType::ACK), "ACK(0x2)");
}

#[test]
fn datagram_frames() {
    let mut buf = Vec::new();
    encode_datagram(&mut buf, b"ab", true);
    encode_datagram(&mut buf, b"cd", false);
    assert_eq!(buf, [0x31, 2, b'a', b'b', 0x30, b'c', b'd']);
    assert_eq!(
        decode_all(&buf).unwrap(),
        [Frame::Datagram(b"ab"), Frame::Datagram(b"cd")]
    );
    assert_eq!(datagram_frame_len(2, true), 4);
    assert_eq!(datagram_frame_len(2, false), 3);
}

#[test]
fn capacity_examples() {
    // 64 bytes after type + id: 63 data bytes with a 1-byte Length.
    assert_eq!(stream_data_capacity(0, 0, 66, true), Some(63));
    assert_eq!(stream_data_capacity(0, 0, 66, false), Some(64));
    assert_eq!(stream_data_capacity(0, 0, 2, false), Some(0));
    assert_eq!(stream_data_capacity(0, 0, 2, true), None);
    assert_eq!(stream_data_capacity(0, 0, 1, false), None);
    assert_eq!(stream_data_capacity(0, MAX - 3, 1200, true), Some(3));
    assert_eq!(crypto_data_capacity(0, 1200), Some(1196));
    assert_eq!(crypto_data_capacity(0, 2), None);
    assert_eq!(crypto_data_capacity(0, 3), Some(0));
}

proptest! {
    #[test]
    fn stream_capacity_is_exact(
        stream_id in 0..=MAX,
        offset in prop_oneof![Just(0u64), 0..=MAX / 2],
        space in 0usize..20_000,
        with_len in any::<bool>(),
    ) {
        match stream_data_capacity(stream_id, offset, space, with_len) {
            None => prop_assert!(stream_header_len(stream_id, offset, 0, with_len) > space),
            Some(n) => {
                prop_assert!(stream_header_len(stream_id, offset, n, with_len) + n <= space);
                // One more byte would not fit.
                prop_assert!(stream_header_len(stream_id, offset, n + 1, with_len) + n + 1 > space);
            }
        }
    }

    #[test]
    fn crypto_capacity_is_exact(offset in 0..=MAX / 2, space in 0usize..70_000) {
        match crypto_data_capacity(offset, space) {
            None => prop_assert!(crypto_header_len(offset, 0) > space),
            Some(n) => {
                prop_assert!(crypto_header_len(offset, n) + n <= space);
                prop_assert!(crypto_header_len(offset, n + 1) + n + 1 > space);
            }
        }
    }

    #[test]
    fn arbitrary_payloads_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        for frame in FrameIter::new(&bytes) {
            let Ok(f) = frame else { break };
            if let Frame::Ack(ack) = f {
                // Ranges of a decoded ACK are valid and descending.
                let ranges: Vec<_> = ack.iter().collect();
                prop_assert_eq!(u64::try_from(ranges.len()).unwrap(), ack.len());
                for w in ranges.windows(2) {
                    prop_assert!(w[1].end < w[0].start);
                }
            }
        }
        for ty in [PacketType::Initial, PacketType::ZeroRtt, PacketType::Handshake, PacketType::OneRtt] {
            for f in FrameIter::for_packet(&bytes, ty).flatten() {
                prop_assert!(f.ty().allowed_in(ty));
            }
        }
    }

    #[test]
    fn ack_roundtrip(
        largest in 0..=MAX,
        delay in 0..=MAX,
        steps in proptest::collection::vec((0u64..1000, 0u64..1000), 0..40),
    ) {
        // Build descending, non-adjacent ranges down from `largest`.
        let first_len = steps.first().map_or(0, |s| s.1).min(largest);
        let mut ranges = vec![largest - first_len..largest + 1];
        for &(gap, len) in steps.iter().skip(1) {
            let prev_start = ranges.last().unwrap().start;
            let Some(end) = prev_start.checked_sub(gap + 1) else { break };
            if end == 0 { break }
            let start = end - 1 - len.min(end - 1);
            ranges.push(start..end);
        }
        let mut buf = Vec::new();
        encode_ack(&mut buf, delay, ranges.iter().cloned()).unwrap();
        prop_assert_eq!(ack_frame_len(delay, ranges.iter().cloned()), Ok(buf.len()));
        let Frame::Ack(ack) = one(&buf).unwrap() else { panic!() };
        prop_assert_eq!(ack.largest(), largest);
        prop_assert_eq!(ack.ack_delay(), delay);
        prop_assert_eq!(ack.iter().collect::<Vec<_>>(), ranges);
    }

    #[test]
    fn frames_roundtrip(specs in proptest::collection::vec(frame_spec(), 1..8)) {
        let frames: Vec<Frame<'_>> = specs.iter().map(FrameSpec::frame).collect();
        let mut buf = Vec::new();
        for f in &frames {
            let before = buf.len();
            f.encode(&mut buf);
            prop_assert_eq!(buf.len() - before, f.encoded_len(), "{:?}", f);
        }
        let decoded = decode_all(&buf).unwrap();
        prop_assert_eq!(decoded, frames);
    }

    #[test]
    fn stream_without_len_roundtrip(
        id in 0..=MAX,
        offset in 0..=MAX / 2,
        data in proptest::collection::vec(any::<u8>(), 0..100),
        fin in any::<bool>(),
    ) {
        let mut buf = Vec::new();
        encode_ping(&mut buf);
        encode_stream(&mut buf, id, offset, &data, fin, false);
        prop_assert_eq!(buf.len(), 1 + stream_header_len(id, offset, data.len(), false) + data.len());
        let frames = decode_all(&buf).unwrap();
        prop_assert_eq!(frames, vec![Frame::Ping, Frame::Stream(StreamFrame { stream_id: id, offset, fin, data: &data })]);
    }
}

/// An owned description of a frame, so that strategies can generate data the frame borrows.
#[derive(Clone, Debug)]
struct FrameSpec {
    kind: u8,
    a: u64,
    b: u64,
    c: u64,
    fin: bool,
    bytes: Vec<u8>,
    cid: Vec<u8>,
    eight: [u8; 8],
    token: [u8; 16],
}

impl FrameSpec {
    fn frame(&self) -> Frame<'_> {
        let (a, b, c) = (self.a, self.b, self.c);
        match self.kind {
            0 => Frame::Ping,
            1 => Frame::ResetStream {
                stream_id: a,
                error_code: b,
                final_size: c,
            },
            2 => Frame::StopSending {
                stream_id: a,
                error_code: b,
            },
            3 => Frame::Crypto {
                offset: a / 2,
                data: &self.bytes,
            },
            4 => Frame::Stream(StreamFrame {
                stream_id: a,
                offset: b / 2,
                fin: self.fin,
                data: &self.bytes,
            }),
            5 => Frame::MaxData(a),
            6 => Frame::MaxStreamData {
                stream_id: a,
                maximum: b,
            },
            7 => Frame::MaxStreams {
                dir: if self.fin { Dir::Bi } else { Dir::Uni },
                maximum: a % (MAX_STREAM_COUNT + 1),
            },
            8 => Frame::DataBlocked(a),
            9 => Frame::StreamDataBlocked {
                stream_id: a,
                limit: b,
            },
            10 => Frame::StreamsBlocked {
                dir: if self.fin { Dir::Bi } else { Dir::Uni },
                limit: b % (MAX_STREAM_COUNT + 1),
            },
            11 => Frame::NewConnectionId(NewConnectionId {
                sequence: a.max(b),
                retire_prior_to: a.min(b),
                cid: ConnectionId::from_slice(&self.cid).unwrap(),
                reset_token: self.token,
            }),
            12 => Frame::RetireConnectionId { sequence: a },
            13 => Frame::PathChallenge(self.eight),
            14 => Frame::PathResponse(self.eight),
            15 => Frame::ConnectionClose {
                error_code: a,
                frame_type: b,
                reason: &self.bytes,
            },
            16 => Frame::ApplicationClose {
                error_code: a,
                reason: &self.bytes,
            },
            17 => Frame::HandshakeDone,
            18 => Frame::StreamSkip {
                stream_id: a,
                start: a.min(b),
                end: a.max(b),
            },
            19 => Frame::FecSource {
                group: a,
                index: b % FEC_MAX_K,
            },
            20 if self.bytes.len() >= 2 => Frame::Repair(RepairFrame {
                group: a,
                k: 1 + b % FEC_MAX_K,
                m: 1 + c % FEC_MAX_M,
                index: (c % FEC_MAX_M) / 2,
                symbol: &self.bytes,
            }),
            21 => Frame::FecRecovered {
                group: a,
                bitmap: 1 + b % ((1 << FEC_MAX_K) - 1),
            },
            _ => Frame::Datagram(&self.bytes),
        }
    }
}

fn frame_spec() -> impl Strategy<Value = FrameSpec> {
    (
        0u8..23,
        (0..=MAX, 0..=MAX, 0..=MAX),
        any::<bool>(),
        proptest::collection::vec(any::<u8>(), 0..300),
        proptest::collection::vec(any::<u8>(), 1..=20),
        any::<[u8; 8]>(),
        any::<[u8; 16]>(),
    )
        .prop_map(
            |(kind, (a, b, c), fin, bytes, cid, eight, token)| FrameSpec {
                kind,
                a,
                b,
                c,
                fin,
                bytes,
                cid,
                eight,
                token,
            },
        )
}

#[test]
fn stream_skip_layout_and_validation() {
    let mut buf = Vec::new();
    encode_stream_skip(&mut buf, 4, 100, 300);
    assert_eq!(buf, [0x20, 0x04, 0x40, 100, 0x41, 0x2c]);
    assert_eq!(
        decode_all(&buf).unwrap(),
        [Frame::StreamSkip {
            stream_id: 4,
            start: 100,
            end: 300
        }]
    );
    // end below start is malformed.
    let bad = [0x20, 0x04, 0x05, 0x04];
    assert!(decode_all(&bad).is_err());
}

#[test]
fn compressed_frames_bytes_and_limits() {
    // STREAM_LZ4 with FIN: id 4, offset 0x100, dictionary 7, 300 bytes once decompressed,
    // a 3-byte block.
    let mut b = Vec::new();
    encode_stream_lz4_header(&mut b, 4, 0x100, true, 7, 300, 3);
    b.extend_from_slice(&[0xaa, 0xbb, 0xcc]);
    assert_eq!(
        b,
        [0x3d, 0x04, 0x41, 0x00, 0x07, 0x41, 0x2c, 0x03, 0xaa, 0xbb, 0xcc]
    );
    assert_eq!(b.len(), stream_lz4_header_len(4, 0x100, 7, 300, 3) + 3);
    let f = one(&b).unwrap();
    assert_eq!(
        f,
        Frame::StreamLz4(CompressedStreamFrame {
            stream_id: 4,
            offset: 0x100,
            fin: true,
            data: CompressedData {
                dictionary: 7,
                uncompressed_len: 300,
                block: &[0xaa, 0xbb, 0xcc],
            },
        })
    );
    let mut again = Vec::new();
    f.encode(&mut again);
    assert_eq!(again, b);
    assert_eq!(f.encoded_len(), b.len());
    assert!(f.is_ack_eliciting());
    // DATAGRAM_LZ4.
    let mut d = Vec::new();
    encode_datagram_lz4_header(&mut d, 0, 10, 1);
    d.push(0x50);
    assert_eq!(d, [0x3e, 0x00, 0x0a, 0x01, 0x50]);
    assert!(matches!(one(&d), Ok(Frame::DatagramLz4(_))));
    // Declared lengths of 0 or above 64 KiB, and dictionaries beyond 32 bits, are refused
    // before anything is decompressed.
    for (dict, len) in [(0u64, 0u64), (0, MAX_UNCOMPRESSED_LEN + 1), (1 << 32, 10)] {
        let mut bad = vec![0x3e];
        varint::encode(dict, &mut bad);
        varint::encode(len, &mut bad);
        bad.extend_from_slice(&[0x01, 0x00]);
        assert_eq!(err(&bad).reason, FrameErrorReason::InvalidCompression);
        assert_eq!(err(&bad).code(), error_code::FRAME_ENCODING_ERROR);
    }
    // Not allowed in Initial or Handshake packets.
    assert!(!FrameType::STREAM_LZ4.allowed_in(PacketType::Initial));
    assert!(FrameType::DATAGRAM_LZ4.allowed_in(PacketType::ZeroRtt));
}

#[test]
fn fec_frame_layouts() {
    let mut buf = Vec::new();
    encode_fec_source(&mut buf, 7, 3);
    assert_eq!(buf, [0x32, 7, 3]);
    assert_eq!(fec_source_len(7, 3), 3);
    buf.clear();
    let f = RepairFrame {
        group: 7,
        k: 10,
        m: 2,
        index: 1,
        symbol: &[0, 1, 0xaa],
    };
    encode_repair(&mut buf, &f);
    assert_eq!(buf, [0x33, 7, 10, 2, 1, 3, 0, 1, 0xaa]);
    assert_eq!(repair_frame_len(&f), buf.len());
    assert_eq!(decode_all(&buf).unwrap(), [Frame::Repair(f)]);
    buf.clear();
    encode_fec_recovered(&mut buf, 7, 0b101);
    assert_eq!(buf, [0x34, 7, 5]);
    assert!(!FrameType::FEC_RECOVERED.is_ack_eliciting());
    assert!(FrameType::REPAIR.is_ack_eliciting());
    assert!(!FrameType::REPAIR.allowed_in(PacketType::ZeroRtt));
    assert!(FrameType::FEC_SOURCE.allowed_in(PacketType::OneRtt));
}

#[test]
fn malformed_fec_frames_are_typed_errors() {
    let invalid = |bytes: &[u8]| {
        let err = decode_all(bytes).unwrap_err();
        assert_eq!(err.reason, FrameErrorReason::InvalidFec, "{bytes:x?}");
        assert_eq!(err.code(), crate::wire::error_code::FRAME_ENCODING_ERROR);
    };
    invalid(&[0x32, 0, 48]); // source index >= 48
    invalid(&[0x33, 0, 0, 2, 0, 2, 0, 0]); // k = 0
    invalid(&[0x33, 0, 49, 2, 0, 2, 0, 0]); // k = 49
    invalid(&[0x33, 0, 3, 0, 0, 2, 0, 0]); // m = 0
    invalid(&[0x33, 0, 3, 17, 0, 2, 0, 0]); // m = 17
    invalid(&[0x33, 0, 3, 2, 2, 2, 0, 0]); // index = m
    invalid(&[0x33, 0, 3, 2, 0, 1, 0]); // symbol shorter than its length prefix
    invalid(&[0x34, 0, 0]); // empty bitmap
    invalid(&[0x34, 0, 0xc0, 1, 0, 0, 0, 0, 0, 0]); // bit 48
                                                    // Truncated symbol.
    let err = decode_all(&[0x33, 0, 3, 2, 0, 9, 0, 0]).unwrap_err();
    assert_eq!(err.reason, FrameErrorReason::UnexpectedEnd);
    // Not in 0-RTT.
    let err = FrameIter::for_packet(&[0x32, 0, 0], PacketType::ZeroRtt)
        .next()
        .unwrap()
        .unwrap_err();
    assert_eq!(err.reason, FrameErrorReason::NotAllowed);
}

proptest! {
    /// Any bytes after an FEC frame type decode to a valid frame or a typed error, never a
    /// panic, and every decoded frame re-encodes to the bytes it came from.
    #[test]
    fn fec_frame_decoder_is_total(ty in 0x32u8..=0x34, body in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut bytes = vec![ty];
        bytes.extend_from_slice(&body);
        let mut it = FrameIter::new(&bytes);
        if let Some(Ok(f)) = it.next() {
            let consumed = bytes.len() - it.remaining().len();
            let mut out = Vec::new();
            f.encode(&mut out);
            prop_assert_eq!(out.len(), f.encoded_len());
            // Canonical varints re-encode byte for byte.
            if out.len() == consumed {
                prop_assert_eq!(&out[..], &bytes[..consumed]);
            }
        }
    }
}
