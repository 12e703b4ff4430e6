//! Fuzz target `frames`: every frame decoder (PROTOCOL.md §10), through [`FrameIter`] over
//! arbitrary payloads, with and without the per-packet-type admissibility check.
//!
//! Invariants: the iterator stops after its first error; checking admissibility for a packet
//! type yields a prefix of the unchecked frames, each allowed in that type; every decoded frame
//! re-encodes to exactly `encoded_len` bytes that decode back to the same frame; ACK ranges are
//! validated at decode time (descending, disjoint, within `0..=largest`, as many as announced)
//! and re-encode through `encode_ack` to the same ranges. FEC frames (§19) respect their ranges,
//! and feeding them to an FEC decoder (`jsp_proto::fec::decoder`) never panics and keeps its
//! memory bounds.
#![no_main]

use jsp_proto::fec::decoder::{FecDecoder, RepairInfo, MAX_BUFFERED, MAX_GROUPS};
use jsp_proto::wire::frame::{self, Frame, FrameIter};
use jsp_proto::wire::header::PacketType;
use libfuzzer_sys::fuzz_target;

const TYPES: [PacketType; 4] = [
    PacketType::Initial,
    PacketType::ZeroRtt,
    PacketType::Handshake,
    PacketType::OneRtt,
];

fn check_ack(ack: &frame::Ack<'_>) {
    let ranges: Vec<_> = ack.iter().collect();
    assert_eq!(
        ranges.len() as u64,
        ack.len(),
        "ACK yields a different range count"
    );
    let mut prev_start: Option<u64> = None;
    for r in &ranges {
        assert!(r.start < r.end, "empty ACK range {r:?}");
        assert!(r.end - 1 <= ack.largest(), "ACK range {r:?} above largest");
        if let Some(p) = prev_start {
            assert!(
                r.end < p,
                "ACK ranges overlap or touch: {r:?} then start {p}"
            );
        }
        prev_start = Some(r.start);
    }
    assert_eq!(ranges.first().map(|r| r.end - 1), Some(ack.largest()));
    let mut buf = Vec::new();
    if frame::encode_ack(&mut buf, ack.ack_delay(), ranges.iter().cloned()).is_err() {
        panic!("decoded ACK ranges do not re-encode: {ranges:?}");
    }
    assert_eq!(
        frame::ack_frame_len(ack.ack_delay(), ranges.iter().cloned()).ok(),
        Some(buf.len())
    );
    let mut it = FrameIter::new(&buf);
    let Some(Ok(Frame::Ack(again))) = it.next() else {
        panic!("re-encoded ACK does not decode");
    };
    assert!(it.next().is_none());
    assert_eq!(again.iter().collect::<Vec<_>>(), ranges);
    assert_eq!(again.ack_delay(), ack.ack_delay());
    let _ = ack.ack_delay_micros(255);
}

fn check_frame(f: &Frame<'_>) {
    let mut buf = Vec::new();
    f.encode(&mut buf);
    assert_eq!(buf.len(), f.encoded_len(), "encoded_len is wrong for {f:?}");
    let mut it = FrameIter::new(&buf);
    match it.next() {
        Some(Ok(g)) => assert_eq!(&g, f, "frame does not round trip"),
        other => panic!("re-encoded {f:?} decodes as {other:?}"),
    }
    assert!(
        it.next().is_none(),
        "re-encoded frame decodes as more than one"
    );
    let _ = f.is_ack_eliciting();
    if let Frame::Ack(a) = f {
        check_ack(a);
    }
    if let Frame::ConnectionClose { reason, .. } | Frame::ApplicationClose { reason, .. } = f {
        let _ = frame::reason_lossy(reason);
    }
    if let Frame::Repair(r) = f {
        assert!((1..=frame::FEC_MAX_K).contains(&r.k), "REPAIR k {}", r.k);
        assert!((1..=frame::FEC_MAX_M).contains(&r.m), "REPAIR m {}", r.m);
        assert!(r.index < r.m && r.symbol.len() >= 2, "REPAIR {r:?}");
    }
    if let Frame::FecSource { index, .. } = f {
        assert!(*index < frame::FEC_MAX_K);
    }
    if let Frame::FecRecovered { bitmap, .. } = f {
        assert!(*bitmap != 0 && *bitmap < 1 << frame::FEC_MAX_K);
    }
}

/// Feeds the FEC frames of `data` to a decoder, as the receive path does.
fn check_fec(data: &[u8]) {
    let mut decoder = FecDecoder::new();
    let mut it = FrameIter::new(data);
    while let Some(Ok(f)) = it.next() {
        let result = match f {
            Frame::FecSource { group, index } => decoder
                .on_source(group, index as usize, it.remaining())
                .map(|(_, r)| r),
            Frame::Repair(r) => decoder.on_repair(
                RepairInfo {
                    group: r.group,
                    k: r.k as usize,
                    m: r.m as usize,
                    index: r.index as usize,
                },
                r.symbol,
            ),
            _ => continue,
        };
        if let Ok(rebuilt) = result {
            for r in rebuilt {
                assert!(r.index < frame::FEC_MAX_K as usize);
            }
        }
        assert!(decoder.groups() <= MAX_GROUPS && decoder.buffered() <= MAX_BUFFERED);
    }
}

fuzz_target!(|data: &[u8]| {
    let mut all = Vec::new();
    let mut failed = false;
    for item in FrameIter::new(data) {
        assert!(!failed, "FrameIter continued after an error");
        match item {
            Ok(f) => all.push(f),
            Err(e) => {
                let _ = e.code();
                failed = true;
            }
        }
    }
    for f in &all {
        check_frame(f);
    }
    check_fec(data);
    for ty in TYPES {
        for (i, item) in FrameIter::for_packet(data, ty).enumerate() {
            match item {
                Ok(f) => {
                    assert_eq!(all.get(i), Some(&f), "checked iteration diverged");
                    assert!(f.ty().allowed_in(ty), "{f:?} accepted in a {ty:?} packet");
                }
                Err(_) => break,
            }
        }
    }
});
