//! Codec micro-measurement behind the choice in `src/fec/codec.rs` (PROTOCOL.md §19.8):
//! reed-solomon-erasure (the wire code) against reed-solomon-simd, encoding a group and
//! rebuilding `m` lost source symbols, for 10+2 and 32+8 groups of 1,400-byte symbols.
//!
//! `cargo run --release -p jsp-proto --example fec_codecs` prints nanoseconds per group (the
//! median of 5 runs of many iterations each, and the spread). Timing is the example's job, not
//! the engine's: the engine never reads a clock.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::time::Instant;

use jsp_proto::fec::codec::{ErasureCodec, RsCodec};

const SYMBOL: usize = 1400;

fn sources(k: usize) -> Vec<Vec<u8>> {
    (0..k)
        .map(|i| (0..SYMBOL).map(|j| (i * 131 + j * 7) as u8).collect())
        .collect()
}

/// Median and (min, max) of 5 runs of `f`, each timed over `iters` calls, in ns per call.
fn measure(iters: u32, mut f: impl FnMut()) -> (f64, f64, f64) {
    let mut runs: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_nanos() as f64 / f64::from(iters)
        })
        .collect();
    runs.sort_by(|a, b| a.total_cmp(b));
    (runs[2], runs[0], runs[4])
}

fn print(label: &str, (median, min, max): (f64, f64, f64)) {
    println!("{label:<44} {median:>10.0} ns/group  (min {min:.0}, max {max:.0})");
}

fn main() {
    for (k, m, iters) in [(10usize, 2usize, 2000u32), (32, 8, 300)] {
        let src = sources(k);
        let mut rs = RsCodec::default();
        print(
            &format!("reed-solomon-erasure {k}+{m} encode"),
            measure(iters, || {
                std::hint::black_box(rs.encode(&src, m).unwrap());
            }),
        );
        let repair = rs.encode(&src, m).unwrap();
        print(
            &format!("reed-solomon-erasure {k}+{m} rebuild {m} lost"),
            measure(iters, || {
                let mut shards: Vec<Option<Vec<u8>>> =
                    src.iter().chain(repair.iter()).cloned().map(Some).collect();
                for s in shards.iter_mut().take(m) {
                    *s = None;
                }
                rs.reconstruct(k, &mut shards).unwrap();
                std::hint::black_box(&shards);
            }),
        );
        let mut enc = reed_solomon_simd::ReedSolomonEncoder::new(k, m, SYMBOL).unwrap();
        print(
            &format!("reed-solomon-simd {k}+{m} encode"),
            measure(iters, || {
                enc.reset(k, m, SYMBOL).unwrap();
                for s in &src {
                    enc.add_original_shard(s).unwrap();
                }
                let r = enc.encode().unwrap();
                std::hint::black_box(r.recovery_iter().count());
            }),
        );
        let simd_repair = reed_solomon_simd::encode(k, m, &src).unwrap();
        let mut dec = reed_solomon_simd::ReedSolomonDecoder::new(k, m, SYMBOL).unwrap();
        print(
            &format!("reed-solomon-simd {k}+{m} rebuild {m} lost"),
            measure(iters, || {
                dec.reset(k, m, SYMBOL).unwrap();
                for (i, s) in src.iter().enumerate().skip(m) {
                    dec.add_original_shard(i, s).unwrap();
                }
                for (i, s) in simd_repair.iter().enumerate() {
                    dec.add_recovery_shard(i, s).unwrap();
                }
                let r = dec.decode().unwrap();
                std::hint::black_box(r.restored_original_iter().count());
            }),
        );
        print(
            &format!("reed-solomon-simd {k}+{m} rebuild, one-shot API"),
            measure(iters / 4, || {
                let r = reed_solomon_simd::decode(
                    k,
                    m,
                    src.iter().enumerate().skip(m),
                    simd_repair.iter().enumerate(),
                )
                .unwrap();
                std::hint::black_box(r.len());
            }),
        );
    }
}
