//! The LZ4 block codec as the frames of PROTOCOL.md §14.5 use it: raw LZ4 blocks (no frame
//! header, no checksum: the packet's AEAD already authenticates the bytes), optionally with a
//! dictionary, compressed into a caller's reused buffer and decompressed to exactly the length
//! the frame declares.

use super::{Dictionary, MAX_UNCOMPRESSED_FRAME};

/// Why a compressed frame's data cannot be decompressed: a `FRAME_ENCODING_ERROR` (§16).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecompressError {
    /// The declared length is 0 or above [`MAX_UNCOMPRESSED_FRAME`].
    #[error("compressed frame declares {0} bytes (1..=65536 allowed)")]
    BadLength(usize),
    /// The frame names a dictionary we did not advertise.
    #[error("compressed frame uses unknown dictionary {0:#010x}")]
    UnknownDictionary(u32),
    /// The LZ4 block is malformed or does not produce exactly the declared length.
    #[error("malformed LZ4 block")]
    Malformed,
}

/// Compresses `input` (with `dict`, if any) and appends the LZ4 block to `out`, only if the
/// block has at most `max_len` bytes; returns the block's length, or `None` (and `out`
/// unchanged) if it would be longer.
pub fn compress_append(
    input: &[u8],
    dict: Option<&Dictionary>,
    max_len: usize,
    out: &mut Vec<u8>,
) -> Option<usize> {
    let start = out.len();
    let bound = lz4_flex::block::get_maximum_output_size(input.len());
    out.resize(start + bound, 0);
    let result = match dict {
        Some(d) => lz4_flex::block::compress_into_with_dict(input, &mut out[start..], d.bytes()),
        None => lz4_flex::block::compress_into(input, &mut out[start..]),
    };
    match result {
        Ok(n) if n <= max_len => {
            out.truncate(start + n);
            Some(n)
        }
        _ => {
            out.truncate(start);
            None
        }
    }
}

/// Decompresses an LZ4 block that must expand to exactly `len` bytes into `out` (cleared first;
/// its allocation is reused).
pub fn decompress_exact(
    block: &[u8],
    dict: Option<&Dictionary>,
    len: usize,
    out: &mut Vec<u8>,
) -> Result<(), DecompressError> {
    if len == 0 || len > MAX_UNCOMPRESSED_FRAME {
        return Err(DecompressError::BadLength(len));
    }
    out.clear();
    out.resize(len, 0);
    let result = match dict {
        Some(d) => lz4_flex::block::decompress_into_with_dict(block, out, d.bytes()),
        None => lz4_flex::block::decompress_into(block, out),
    };
    match result {
        Ok(n) if n == len => Ok(()),
        _ => {
            out.clear();
            Err(DecompressError::Malformed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compression::chat_dictionary;
    use proptest::prelude::*;

    #[test]
    fn round_trip_with_and_without_dictionary() {
        let text = b"{\"type\":\"message\",\"channel\":\"general\",\"text\":\"Are you free tomorrow? Let me check and get back to you.\"}";
        let dict = chat_dictionary();
        let mut plain = Vec::new();
        let n_plain = compress_append(text, None, usize::MAX, &mut plain).unwrap();
        let mut with = Vec::new();
        let n_dict = compress_append(text, Some(&dict), usize::MAX, &mut with).unwrap();
        assert!(
            n_dict * 2 < text.len(),
            "the chat dictionary halves a chat message ({n_dict} of {})",
            text.len()
        );
        assert!(n_dict < n_plain);
        let mut out = Vec::new();
        decompress_exact(&with, Some(&dict), text.len(), &mut out).unwrap();
        assert_eq!(out, text);
        decompress_exact(&plain, None, text.len(), &mut out).unwrap();
        assert_eq!(out, text);
        // The wrong dictionary or the wrong length never yields the data silently.
        assert!(decompress_exact(&with, None, text.len(), &mut out)
            .map(|()| out != text)
            .unwrap_or(true));
        assert_eq!(
            decompress_exact(&plain, None, text.len() + 1, &mut out),
            Err(DecompressError::Malformed)
        );
    }

    #[test]
    fn refuses_when_too_long_and_leaves_out_unchanged() {
        let noise: Vec<u8> = (0..1000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let mut out = vec![7u8; 3];
        assert_eq!(compress_append(&noise, None, 500, &mut out), None);
        assert_eq!(out, vec![7u8; 3]);
    }

    #[test]
    fn length_limits() {
        let mut out = Vec::new();
        assert_eq!(
            decompress_exact(&[0], None, 0, &mut out),
            Err(DecompressError::BadLength(0))
        );
        assert_eq!(
            decompress_exact(&[0], None, MAX_UNCOMPRESSED_FRAME + 1, &mut out),
            Err(DecompressError::BadLength(MAX_UNCOMPRESSED_FRAME + 1))
        );
    }

    proptest! {
        #[test]
        fn arbitrary_blocks_never_panic(block in proptest::collection::vec(any::<u8>(), 0..300), len in 1usize..5000) {
            let mut out = Vec::new();
            let dict = chat_dictionary();
            let _ = decompress_exact(&block, None, len, &mut out);
            let _ = decompress_exact(&block, Some(&dict), len, &mut out);
        }

        #[test]
        fn any_data_round_trips(data in proptest::collection::vec(any::<u8>(), 1..3000)) {
            let mut block = Vec::new();
            let n = compress_append(&data, None, usize::MAX, &mut block).unwrap();
            prop_assert_eq!(n, block.len());
            let mut out = Vec::new();
            decompress_exact(&block, None, data.len(), &mut out).unwrap();
            prop_assert_eq!(out, data);
        }
    }
}
