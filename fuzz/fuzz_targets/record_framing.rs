//! Fuzz target `record_framing`: the TCP/WebSocket record decoder of `jsp::framing`
//! ([`RecordDecoder`]) fed a record stream in arbitrary chunks.
//!
//! Input: `max_record_len u16`, `plan_len u8`, `plan_len` plan bytes (chunk sizes; bit 7 asks for
//! a `shrink` before the chunk), then the stream. Invariants, against a whole-stream reference
//! parser: the chunked `decode` loop and the `push` API (with the chunking of the plan read
//! backwards) yield exactly the reference records, then the reference error (after which the
//! decoder stays failed with that error) or, at the end of the stream, the reference `finish`
//! result; the record buffer never exceeds `max_record_len`; and `RecordEncoder` re-frames the
//! records into exactly the stream prefix they came from.
#![no_main]

use jsp::framing::{FramingError, RecordDecoder, RecordEncoder, RECORD_HEADER_LEN};
use libfuzzer_sys::fuzz_target;

struct Reference {
    records: Vec<Vec<u8>>,
    /// Bytes of the stream the complete records take.
    consumed: usize,
    error: Option<FramingError>,
    /// What `finish` reports when no error occurred.
    finish: Result<(), FramingError>,
}

fn reference(stream: &[u8], max: u16) -> Reference {
    let mut records = Vec::new();
    let mut pos = 0;
    loop {
        let rest = &stream[pos..];
        if rest.is_empty() {
            return Reference {
                records,
                consumed: pos,
                error: None,
                finish: Ok(()),
            };
        }
        if rest.len() < RECORD_HEADER_LEN {
            let missing = RECORD_HEADER_LEN - rest.len();
            let finish = Err(FramingError::Truncated { missing });
            return Reference {
                records,
                consumed: pos,
                error: None,
                finish,
            };
        }
        let len = u16::from_be_bytes([rest[0], rest[1]]);
        let error = if len == 0 {
            Some(FramingError::ZeroLength)
        } else if len > max {
            Some(FramingError::TooLong { len, max })
        } else {
            None
        };
        if let Some(e) = error {
            return Reference {
                records,
                consumed: pos,
                error: Some(e),
                finish: Err(e),
            };
        }
        let body = &rest[RECORD_HEADER_LEN..];
        if body.len() < usize::from(len) {
            let missing = usize::from(len) - body.len();
            let finish = Err(FramingError::Truncated { missing });
            return Reference {
                records,
                consumed: pos,
                error: None,
                finish,
            };
        }
        records.push(body[..usize::from(len)].to_vec());
        pos += RECORD_HEADER_LEN + usize::from(len);
    }
}

fn chunks<'a>(stream: &'a [u8], plan: &[u8], reverse: bool) -> Vec<(&'a [u8], bool)> {
    let mut out = Vec::new();
    let mut rest = stream;
    let mut i = 0usize;
    while !rest.is_empty() {
        let p = if plan.is_empty() {
            0x7f
        } else if reverse {
            plan[plan.len() - 1 - i % plan.len()]
        } else {
            plan[i % plan.len()]
        };
        // Sizes 0..=126 (0: an empty read), 127 means "everything left".
        let size = usize::from(p & 0x7f);
        let size = if size == 0x7f {
            rest.len()
        } else {
            size.min(rest.len())
        };
        let (now, later) = rest.split_at(size);
        out.push((now, p & 0x80 != 0));
        rest = later;
        i += 1;
        if i > 4 * stream.len() + 8 {
            // Only empty chunks in the plan: deliver the rest at once.
            out.push((rest, false));
            break;
        }
    }
    out
}

fn run_decode(
    stream: &[u8],
    plan: &[u8],
    max: u16,
) -> (Vec<Vec<u8>>, Option<FramingError>, RecordDecoder) {
    let mut dec = RecordDecoder::new(max);
    assert_eq!(dec.max_record_len(), max);
    let mut records = Vec::new();
    for (chunk, shrink) in chunks(stream, plan, false) {
        if shrink {
            dec.shrink();
        }
        let mut input = chunk;
        loop {
            match dec.decode(&mut input) {
                Ok(Some(r)) => records.push(r.to_vec()),
                Ok(None) => {
                    assert!(input.is_empty(), "decode returned None with input left");
                    break;
                }
                Err(e) => {
                    let mut more: &[u8] = &[1, 2, 3];
                    assert_eq!(dec.decode(&mut more).err(), Some(e), "decoder recovered");
                    assert_eq!(dec.finish(), Err(e));
                    return (records, Some(e), dec);
                }
            }
            assert!(
                dec.buffer_capacity() <= usize::from(max),
                "record buffer above max"
            );
        }
        assert!(
            dec.buffer_capacity() <= usize::from(max),
            "record buffer above max"
        );
    }
    (records, None, dec)
}

fn run_push(stream: &[u8], plan: &[u8], max: u16) -> (Vec<Vec<u8>>, Option<FramingError>) {
    let mut dec = RecordDecoder::new(max);
    let mut records = Vec::new();
    for (chunk, _) in chunks(stream, plan, true) {
        let before = records.len();
        match dec.push(chunk, |r| records.push(r.to_vec())) {
            Ok(n) => assert_eq!(n, records.len() - before, "push miscounted"),
            Err(e) => return (records, Some(e)),
        }
    }
    (records, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((head, rest)) = data.split_first_chunk::<3>() else {
        return;
    };
    let max = u16::from_be_bytes([head[0], head[1]]);
    let plan_len = usize::from(head[2] % 16).min(rest.len());
    let (plan, stream) = rest.split_at(plan_len);
    let want = reference(stream, max);

    let (records, error, dec) = run_decode(stream, plan, max);
    assert_eq!(
        records, want.records,
        "chunked decode yields different records"
    );
    assert_eq!(error, want.error, "chunked decode fails differently");
    if error.is_none() {
        assert_eq!(dec.finish(), want.finish, "finish disagrees");
        assert_eq!(dec.is_mid_record(), want.finish.is_err());
    }

    let (records, error) = run_push(stream, plan, max);
    assert_eq!(records, want.records, "push yields different records");
    assert_eq!(error, want.error, "push fails differently");

    if max > 0 {
        let batch = (1 << 20).max(stream.len() + RECORD_HEADER_LEN + usize::from(max));
        let Ok(mut enc) = RecordEncoder::new(max, batch) else {
            panic!("encoder for max {max}");
        };
        for r in &want.records {
            if enc.push(r).is_err() {
                panic!("a decoded record does not re-frame");
            }
        }
        assert_eq!(
            enc.as_bytes(),
            &stream[..want.consumed],
            "re-framing differs"
        );
    }
});
