//! docs/test-vectors/fec.json (PROTOCOL.md §19): one FEC group built by the engine's encoder from
//! fixed protected payloads: the FEC_SOURCE and REPAIR frames, the source symbols, the repair
//! symbols, a FEC_RECOVERED frame, and the payloads a receiver rebuilds when sources are lost.
//!
//! - `regenerate_fec_vectors` (ignored) writes the file when `JSP_REGEN_VECTORS=1`;
//! - `fec_vectors_replay` checks the committed repair symbols with the decoder (every loss pattern
//!   of up to m sources rebuilds the recorded payloads) and the frame codec;
//! - `fec_vectors_match_code` recomputes the whole document and diffs it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod vectors_support;

use core::time::Duration;

use jsp_proto::fec::decoder::{FecDecoder, RepairInfo};
use jsp_proto::fec::encoder::{FecEncoder, Shape};
use jsp_proto::fec::source_symbol;
use jsp_proto::time::Instant;
use jsp_proto::wire::frame::{self, Frame, FrameIter, RepairFrame};
use serde_json::{json, Value};

use vectors_support::*;

const FILE: &str = "fec.json";

const DESCRIPTION: &str = "JetStreamProto v1 FEC test vectors (docs/PROTOCOL.md §19). One group \
(group id 5, k = 3 source symbols, m = 2 repair symbols) over the protected payloads in \
`payloads` (hex; each is the frames that follow a FEC_SOURCE frame in a 1-RTT packet). \
`symbol_length` = 2 + the longest payload; `source_symbols[i]` = u16 big-endian length of \
payload i || payload i || zeros up to symbol_length (§19.2); `repair_symbols[j]` = the \
Reed-Solomon code of §19.3 (GF(2^8), polynomial 0x11d, systematic Vandermonde matrix) over the \
source symbols; `fec_source_frames[i]`, `repair_frames[j]` are the frames that carry them; \
`rebuild` lists loss patterns (lost source indices, the repair indices used) and the payloads a \
receiver rebuilds; `fec_recovered_frame` reports sources 0 and 2 of the group rebuilt. Generated \
by crates/jsp-proto/tests/vectors_fec.rs; regenerate with `JSP_REGEN_VECTORS=1 cargo test -p \
jsp-proto -- --ignored regenerate_`.";

const GROUP: u64 = 5;
const K: usize = 3;
const M: usize = 2;

fn payloads() -> Vec<Vec<u8>> {
    let mut a = Vec::new();
    frame::encode_datagram(&mut a, b"voice frame 1", true);
    let mut b = Vec::new();
    frame::encode_stream(&mut b, 2, 1000, b"chat: hello, world", false, true);
    let mut c = Vec::new();
    frame::encode_datagram(&mut c, &[0x42; 7], true);
    frame::encode_ping(&mut c);
    vec![a, b, c]
}

fn compute() -> Value {
    let payloads = payloads();
    let mut enc = FecEncoder::new();
    // Groups 0..4 precede ours; they are empty here, so advance the counter with one-source
    // groups flushed at once.
    let one = Shape::new(1, 1).unwrap();
    for _ in 0..GROUP {
        enc.add_source(Instant::ZERO, one, Duration::ZERO, b"", Default::default())
            .unwrap();
        while enc.pop_repair().is_some() {}
    }
    let shape = Shape::new(K, M).unwrap();
    let mut source_frames = Vec::new();
    for p in &payloads {
        let (g, i) = enc.next_slot();
        let mut f = Vec::new();
        frame::encode_fec_source(&mut f, g, i as u64);
        source_frames.push(jhx(&f));
        enc.add_source(Instant::ZERO, shape, Duration::ZERO, p, Default::default())
            .unwrap();
    }
    let repairs: Vec<_> = std::iter::from_fn(|| enc.pop_repair()).collect();
    assert_eq!(repairs.len(), M);
    let symbol_length = 2 + payloads.iter().map(Vec::len).max().unwrap();
    let sources: Vec<Value> = payloads
        .iter()
        .map(|p| jhx(&source_symbol(p, symbol_length).unwrap()))
        .collect();
    let repair_frames: Vec<Value> = repairs
        .iter()
        .map(|r| {
            let mut f = Vec::new();
            frame::encode_repair(
                &mut f,
                &RepairFrame {
                    group: r.group,
                    k: r.k as u64,
                    m: r.m as u64,
                    index: r.index as u64,
                    symbol: &r.symbol,
                },
            );
            jhx(&f)
        })
        .collect();
    let mut rebuild = Vec::new();
    for (lost, used) in [
        (vec![0usize], vec![0usize]),
        (vec![1], vec![1]),
        (vec![0, 2], vec![0, 1]),
    ] {
        let mut d = FecDecoder::new();
        let mut got = Vec::new();
        for (i, p) in payloads.iter().enumerate() {
            if !lost.contains(&i) {
                got.extend(d.on_source(GROUP, i, p).unwrap().1);
            }
        }
        for &j in &used {
            let r = &repairs[j];
            let info = RepairInfo {
                group: r.group,
                k: r.k,
                m: r.m,
                index: r.index,
            };
            got.extend(d.on_repair(info, &r.symbol).unwrap());
        }
        let rebuilt: Vec<Value> = got
            .iter()
            .map(|r| json!({"index": r.index, "payload": jhx(&r.payload)}))
            .collect();
        rebuild.push(json!({"lost": lost, "repair_used": used, "rebuilt": rebuilt}));
    }
    let mut recovered = Vec::new();
    frame::encode_fec_recovered(&mut recovered, GROUP, 0b101);
    let mut params = Vec::new();
    jsp_proto::wire::transport_params::TransportParameters {
        fec_max_symbols: 64,
        initial_source_connection_id: Some(Default::default()),
        ..Default::default()
    }
    .encode(&mut params);
    json!({
        "description": DESCRIPTION,
        "group": GROUP,
        "k": K,
        "m": M,
        "payloads": payloads.iter().map(|p| jhx(p)).collect::<Vec<_>>(),
        "symbol_length": symbol_length,
        "source_symbols": sources,
        "fec_source_frames": source_frames,
        "repair_symbols": repairs.iter().map(|r| jhx(&r.symbol)).collect::<Vec<_>>(),
        "repair_frames": repair_frames,
        "rebuild": rebuild,
        "fec_recovered_frame": jhx(&recovered),
        "transport_parameter_fec_max_symbols_64": jhx(&params[params.len() - 4..]),
    })
}

#[test]
#[ignore = "writes docs/test-vectors/fec.json when JSP_REGEN_VECTORS=1"]
fn regenerate_fec_vectors() {
    regenerate(FILE, &compute());
}

#[test]
fn fec_vectors_match_code() {
    assert_file_matches(FILE, &compute());
}

/// Replays the committed bytes through the public decoders (not the encoder that made them).
#[test]
fn fec_vectors_replay() {
    let v = load(FILE);
    let payloads: Vec<Vec<u8>> = arr(&v, "payloads")
        .iter()
        .map(|p| unhex(p.as_str().unwrap()))
        .collect();
    let frames: Vec<Vec<u8>> = arr(&v, "repair_frames")
        .iter()
        .map(|p| unhex(p.as_str().unwrap()))
        .collect();
    let group = u(&v, "group");
    // Every loss pattern of at most m sources, rebuilt from the committed REPAIR frames.
    for mask in 1u32..(1 << K) {
        if mask.count_ones() as usize > M {
            continue;
        }
        let mut d = FecDecoder::new();
        let mut got = Vec::new();
        for (i, p) in payloads.iter().enumerate() {
            if mask & (1 << i) == 0 {
                got.extend(d.on_source(group, i, p).unwrap().1);
            }
        }
        for f in &frames {
            let Some(Ok(Frame::Repair(r))) = FrameIter::new(f).next() else {
                panic!("not a REPAIR frame");
            };
            let info = RepairInfo {
                group: r.group,
                k: r.k as usize,
                m: r.m as usize,
                index: r.index as usize,
            };
            got.extend(d.on_repair(info, r.symbol).unwrap());
        }
        assert_eq!(got.len(), mask.count_ones() as usize);
        for r in got {
            assert_eq!(r.payload, payloads[r.index], "mask {mask:b}");
        }
    }
    for (i, f) in arr(&v, "fec_source_frames").iter().enumerate() {
        let f = unhex(f.as_str().unwrap());
        assert_eq!(
            FrameIter::new(&f).next().unwrap().unwrap(),
            Frame::FecSource {
                group,
                index: i as u64
            }
        );
    }
    let rec = unhex(s(&v, "fec_recovered_frame"));
    assert_eq!(
        FrameIter::new(&rec).next().unwrap().unwrap(),
        Frame::FecRecovered {
            group,
            bitmap: 0b101
        }
    );
}
