//! The Reed-Solomon erasure code behind a small trait ([`ErasureCodec`]), so that the encoder and
//! decoder do not depend on one library.
//!
//! The wire code (PROTOCOL.md §19.3) is the systematic Vandermonde code over GF(2^8) of
//! reed-solomon-erasure 6 ([`RsCodec`], pure Rust). Measured with `cargo run --release -p
//! jsp-proto --example fec_codecs` (1,400-byte symbols, 2-core VM under a load average of about
//! 5 from other builds; medians of three runs of that example, each the median of 5 timings; the
//! spread is wide): reed-solomon-erasure encodes a 10+2 group in 10-15 us (runs 7-21 us) and
//! rebuilds 2 lost symbols in 8-16 us, a 32+8 group in about 95 us (79-330) and 80-97 us;
//! reed-solomon-simd 3.1 encodes 10+2 in 0.7 us and 32+8 in 4-5 us, but a rebuild costs it
//! 150-250 us at either size, and its code is a different one (GF(2^16) FFT). Groups here are
//! small (at most 48+16) and a rebuild is on the latency path of real-time data, so the wire
//! uses reed-solomon-erasure; its encoding cost (about 1-3 us per protected packet) is below
//! the 5-8 us the kernel takes to send one.

use std::collections::HashMap;

use reed_solomon_erasure::galois_8::ReedSolomon;

use super::{FecError, MAX_REPAIR_SYMBOLS, MAX_SOURCE_SYMBOLS};

/// An erasure code: `k` source symbols make `m` repair symbols; any `k` of the `k + m` rebuild
/// the rest. All symbols of one group have the same length.
pub trait ErasureCodec {
    /// Computes the `m` repair symbols of `sources` (which all have one length).
    fn encode(&mut self, sources: &[Vec<u8>], m: usize) -> Result<Vec<Vec<u8>>, FecError>;

    /// Fills in the missing source symbols: `shards` holds the `k` source symbols then the `m`
    /// repair symbols, `None` where missing; at least `k` must be present.
    fn reconstruct(&mut self, k: usize, shards: &mut [Option<Vec<u8>>]) -> Result<(), FecError>;
}

/// [`ErasureCodec`] with reed-solomon-erasure (GF(2^8), PROTOCOL.md §19.3), caching one
/// encoding matrix per `(k, m)`.
#[derive(Default)]
pub struct RsCodec {
    cache: HashMap<(usize, usize), ReedSolomon>,
}

impl core::fmt::Debug for RsCodec {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RsCodec")
            .field("shapes", &self.cache.len())
            .finish()
    }
}

/// Most `(k, m)` shapes whose matrices are kept.
const MAX_CACHED_SHAPES: usize = 16;

impl RsCodec {
    fn rs(&mut self, k: usize, m: usize) -> Result<&ReedSolomon, FecError> {
        if !(1..=MAX_SOURCE_SYMBOLS).contains(&k) {
            return Err(FecError::OutOfRange("k"));
        }
        if !(1..=MAX_REPAIR_SYMBOLS).contains(&m) {
            return Err(FecError::OutOfRange("m"));
        }
        if !self.cache.contains_key(&(k, m)) {
            if self.cache.len() >= MAX_CACHED_SHAPES {
                self.cache.clear();
            }
            let rs = ReedSolomon::new(k, m).map_err(|e| FecError::Codec(format!("{e:?}")))?;
            self.cache.insert((k, m), rs);
        }
        self.cache
            .get(&(k, m))
            .ok_or_else(|| FecError::Codec("matrix cache".into()))
    }
}

impl ErasureCodec for RsCodec {
    fn encode(&mut self, sources: &[Vec<u8>], m: usize) -> Result<Vec<Vec<u8>>, FecError> {
        let k = sources.len();
        let len = sources.first().map_or(0, Vec::len);
        if sources.iter().any(|s| s.len() != len) || len == 0 {
            return Err(FecError::OutOfRange("symbol length"));
        }
        let rs = self.rs(k, m)?;
        let refs: Vec<&[u8]> = sources.iter().map(Vec::as_slice).collect();
        let mut parity = vec![vec![0u8; len]; m];
        rs.encode_sep(&refs, &mut parity)
            .map_err(|e| FecError::Codec(format!("{e:?}")))?;
        Ok(parity)
    }

    fn reconstruct(&mut self, k: usize, shards: &mut [Option<Vec<u8>>]) -> Result<(), FecError> {
        let m = shards
            .len()
            .checked_sub(k)
            .ok_or(FecError::OutOfRange("m"))?;
        let rs = self.rs(k, m)?;
        rs.reconstruct_data(shards)
            .map_err(|e| FecError::Codec(format!("{e:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(k: usize, len: usize, seed: u8) -> Vec<Vec<u8>> {
        (0..k)
            .map(|i| {
                (0..len)
                    .map(|j| (i as u8).wrapping_mul(31) ^ (j as u8).wrapping_mul(7) ^ seed)
                    .collect()
            })
            .collect()
    }

    /// Every erasure pattern of up to `m` symbols is rebuilt, for several shapes.
    #[test]
    fn any_m_erasures_are_rebuilt() {
        let mut codec = RsCodec::default();
        for (k, m) in [(1, 1), (3, 2), (5, 3), (10, 2), (10, 4)] {
            let src = sources(k, 37, k as u8);
            let repair = codec.encode(&src, m).unwrap();
            assert_eq!(repair.len(), m);
            let n = k + m;
            // All subsets of erased positions of size <= m (bitmask enumeration, n <= 14).
            for mask in 0u32..(1 << n) {
                if mask.count_ones() as usize > m {
                    continue;
                }
                let mut shards: Vec<Option<Vec<u8>>> =
                    src.iter().chain(repair.iter()).cloned().map(Some).collect();
                for (i, s) in shards.iter_mut().enumerate() {
                    if mask & (1 << i) != 0 {
                        *s = None;
                    }
                }
                codec.reconstruct(k, &mut shards).unwrap();
                for i in 0..k {
                    assert_eq!(
                        shards[i].as_ref(),
                        Some(&src[i]),
                        "k={k} m={m} mask={mask:b}"
                    );
                }
            }
        }
    }

    #[test]
    fn too_many_erasures_and_bad_shapes_are_typed_errors() {
        let mut codec = RsCodec::default();
        let src = sources(4, 8, 1);
        let repair = codec.encode(&src, 2).unwrap();
        let mut shards: Vec<Option<Vec<u8>>> =
            src.iter().chain(repair.iter()).cloned().map(Some).collect();
        shards[0] = None;
        shards[1] = None;
        shards[2] = None;
        assert!(matches!(
            codec.reconstruct(4, &mut shards),
            Err(FecError::Codec(_))
        ));
        assert_eq!(codec.encode(&src, 0), Err(FecError::OutOfRange("m")));
        assert_eq!(
            codec.encode(&sources(49, 8, 0), 1),
            Err(FecError::OutOfRange("k"))
        );
        let uneven = vec![vec![1u8; 3], vec![2u8; 4]];
        assert_eq!(
            codec.encode(&uneven, 1),
            Err(FecError::OutOfRange("symbol length"))
        );
    }

    /// The code is the one PROTOCOL.md §19.3 specifies, checked against an independent
    /// implementation of the specification's arithmetic (not the library's).
    #[test]
    fn code_matches_the_specified_matrix() {
        let mut codec = RsCodec::default();
        for (k, m) in [(1, 1), (3, 2), (10, 2), (32, 8)] {
            let src = sources(k, 16, 9);
            let repair = codec.encode(&src, m).unwrap();
            let reference = spec::encode(&src, m);
            assert_eq!(repair, reference, "k={k} m={m}");
        }
    }

    /// A from-the-spec GF(2^8) implementation (PROTOCOL.md §19.3), for the test above.
    pub(crate) mod spec {
        fn mul(mut a: u8, mut b: u8) -> u8 {
            let mut p = 0u8;
            while b != 0 {
                if b & 1 != 0 {
                    p ^= a;
                }
                let carry = a & 0x80 != 0;
                a <<= 1;
                if carry {
                    a ^= 0x1d; // x^8 = x^4 + x^3 + x^2 + 1
                }
                b >>= 1;
            }
            p
        }

        fn pow(a: u8, n: usize) -> u8 {
            (0..n).fold(1u8, |acc, _| mul(acc, a))
        }

        fn inv(a: u8) -> u8 {
            (1..=255u8).find(|&x| mul(a, x) == 1).unwrap_or(0)
        }

        /// Inverts a square matrix by Gauss-Jordan elimination.
        fn invert(mut a: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
            let n = a.len();
            let mut r: Vec<Vec<u8>> = (0..n)
                .map(|i| (0..n).map(|j| u8::from(i == j)).collect())
                .collect();
            for c in 0..n {
                let p = (c..n).find(|&i| a[i][c] != 0).unwrap();
                a.swap(c, p);
                r.swap(c, p);
                let f = inv(a[c][c]);
                for j in 0..n {
                    a[c][j] = mul(a[c][j], f);
                    r[c][j] = mul(r[c][j], f);
                }
                for i in 0..n {
                    if i != c && a[i][c] != 0 {
                        let f = a[i][c];
                        for j in 0..n {
                            a[i][j] ^= mul(f, a[c][j]);
                            r[i][j] ^= mul(f, r[c][j]);
                        }
                    }
                }
            }
            r
        }

        /// Repair symbol `j` = sum over i of E[k + j][i] * source[i], where
        /// E = V * inverse(V[0..k]) and V[r][c] = r^c.
        pub(crate) fn encode(sources: &[Vec<u8>], m: usize) -> Vec<Vec<u8>> {
            let k = sources.len();
            let v = |r: usize| -> Vec<u8> { (0..k).map(|c| pow(r as u8, c)).collect() };
            let top_inv = invert((0..k).map(v).collect());
            (0..m)
                .map(|j| {
                    let row = v(k + j);
                    let coef: Vec<u8> = (0..k)
                        .map(|c| (0..k).fold(0u8, |acc, t| acc ^ mul(row[t], top_inv[t][c])))
                        .collect();
                    (0..sources[0].len())
                        .map(|b| (0..k).fold(0u8, |acc, i| acc ^ mul(coef[i], sources[i][b])))
                        .collect()
                })
                .collect()
        }
    }
}
