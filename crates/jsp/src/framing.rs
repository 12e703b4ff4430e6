//! Record framing for the stream carriages: JSP datagrams over TCP and WebSocket.
//!
//! Where UDP is blocked, the same protocol runs over a reliable byte stream: the same handshake,
//! the same packet protection, the same datagrams, each wrapped in a length-prefixed record. The
//! framing, precisely enough for PROTOCOL.md:
//!
//! ```text
//! Record {
//!   Length (16),           // unsigned, big-endian (network byte order), 1..=65535
//!   Datagram (8 * Length), // exactly one JSP datagram, byte for byte what UDP would carry
//! }
//! ```
//!
//! 1. A stream carriage carries a sequence of records and nothing else: no preamble, no padding,
//!    no trailer. The first record of a client is its first Initial datagram, whose long header
//!    identifies the protocol and version.
//! 2. `Length` is the datagram's length in bytes. A record of `Length` 0 is malformed. A receiver
//!    may set a maximum below 65535 (e.g. its `max_udp_payload_size`); a longer record is
//!    malformed. A sender never writes a record longer than the peer's advertised
//!    `max_udp_payload_size`.
//! 3. A receiver processes each datagram exactly as if it had arrived alone in a UDP datagram
//!    from the stream's peer address: coalesced packets, header protection, AEAD, replay and
//!    amplification rules all apply unchanged. Datagrams that fail authentication are dropped
//!    as on UDP; the carriage stays open.
//! 4. A malformed record is fatal to the carriage: the byte stream cannot be resynchronised, so
//!    the receiver closes the TCP connection (or the WebSocket with status 1002, protocol error)
//!    without processing anything that follows.
//! 5. A stream that ends inside a record is truncated: the partial record is discarded.
//! 6. A sender may write several records in one write; a receiver must accept a record split
//!    across any number of reads.
//! 7. WebSocket: the records travel in binary messages. The concatenated payloads of the binary
//!    messages form the record stream, so message boundaries carry no meaning; a sender should
//!    put only whole records in a message (one or several). A text message is a protocol error.
//!
//! [`RecordDecoder`] turns arbitrary chunks of a stream into records, buffering at most one record
//! (bounded by its configured maximum) plus the 2-byte header. [`RecordEncoder`] batches records
//! into one buffer for one write; [`encode_record`] writes a single record into any `BufMut`.

use bytes::{BufMut, Bytes, BytesMut};

/// Bytes of the length prefix of a record.
pub const RECORD_HEADER_LEN: usize = 2;
/// Largest datagram a record can carry.
pub const MAX_RECORD_LEN: u16 = u16::MAX;
/// Default size of a [`RecordEncoder`] batch (one write): 128 KiB.
pub const DEFAULT_MAX_BATCH: usize = 128 * 1024;

/// Why a record stream is malformed (the peer's fault; close the carriage).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FramingError {
    /// A record header announced a zero-length datagram.
    #[error("malformed record stream: a record has length 0")]
    ZeroLength,
    /// A record is longer than this receiver accepts.
    #[error("malformed record stream: a record of {len} bytes exceeds the maximum of {max}")]
    TooLong {
        /// The announced length.
        len: u16,
        /// The receiver's maximum.
        max: u16,
    },
    /// The stream ended inside a record.
    #[error("record stream truncated: {missing} bytes of the last record are missing")]
    Truncated {
        /// Bytes (header and body) still expected when the stream ended.
        missing: usize,
    },
}

/// Why a datagram cannot be framed (the local caller's fault).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// Empty datagrams cannot be framed (length 0 is malformed).
    #[error("cannot frame an empty datagram")]
    Empty,
    /// The datagram is longer than the maximum record length.
    #[error("a datagram of {len} bytes exceeds the maximum record length of {max}")]
    TooLong {
        /// The datagram's length.
        len: usize,
        /// The maximum.
        max: u16,
    },
    /// The output buffer or batch has no room for this record; flush it first.
    #[error("no room for a record of {needed} bytes ({available} available): flush first")]
    NoRoom {
        /// Bytes the record needs, header included.
        needed: usize,
        /// Bytes left.
        available: usize,
    },
    /// A batch must hold at least one record of the maximum length.
    #[error("a batch of {max_batch} bytes cannot hold a record of {max_record_len} bytes")]
    BatchTooSmall {
        /// The requested batch size.
        max_batch: usize,
        /// The maximum record length.
        max_record_len: u16,
    },
}

/// Writes one record (`u16` big-endian length, then `datagram`) into `out`.
///
/// Fails without writing anything if the datagram is empty or longer than 65535 bytes, or if
/// `out` cannot grow to hold the record.
pub fn encode_record<B: BufMut>(out: &mut B, datagram: &[u8]) -> Result<(), EncodeError> {
    let len = record_len(datagram, MAX_RECORD_LEN)?;
    let needed = RECORD_HEADER_LEN + datagram.len();
    if out.remaining_mut() < needed {
        return Err(EncodeError::NoRoom {
            needed,
            available: out.remaining_mut(),
        });
    }
    out.put_u16(len);
    out.put_slice(datagram);
    Ok(())
}

fn record_len(datagram: &[u8], max: u16) -> Result<u16, EncodeError> {
    match u16::try_from(datagram.len()) {
        Ok(0) => Err(EncodeError::Empty),
        Ok(len) if len <= max => Ok(len),
        _ => Err(EncodeError::TooLong {
            len: datagram.len(),
            max,
        }),
    }
}

/// Batches records into one buffer so that several datagrams leave in one write.
///
/// ```
/// # fn main() -> Result<(), jsp::framing::EncodeError> {
/// use jsp::framing::{RecordEncoder, MAX_RECORD_LEN, DEFAULT_MAX_BATCH};
/// let mut enc = RecordEncoder::new(MAX_RECORD_LEN, DEFAULT_MAX_BATCH)?;
/// enc.push(b"first datagram")?;
/// enc.push(b"second")?;
/// let batch = enc.take(); // write_all(&batch) on the TCP stream
/// assert_eq!(&batch[..2], &[0, 14]);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RecordEncoder {
    buf: BytesMut,
    max_record_len: u16,
    max_batch: usize,
}

impl RecordEncoder {
    /// An encoder for datagrams of at most `max_record_len` bytes, batching up to `max_batch`
    /// bytes (which must hold one record of `max_record_len`, header included).
    pub fn new(max_record_len: u16, max_batch: usize) -> Result<Self, EncodeError> {
        if max_record_len == 0 || max_batch < RECORD_HEADER_LEN + usize::from(max_record_len) {
            return Err(EncodeError::BatchTooSmall {
                max_batch,
                max_record_len,
            });
        }
        Ok(Self {
            buf: BytesMut::new(),
            max_record_len,
            max_batch,
        })
    }

    /// Appends one record; [`EncodeError::NoRoom`] when the batch is full (take it first).
    pub fn push(&mut self, datagram: &[u8]) -> Result<(), EncodeError> {
        record_len(datagram, self.max_record_len)?;
        let needed = RECORD_HEADER_LEN + datagram.len();
        let available = self.max_batch.saturating_sub(self.buf.len());
        if needed > available {
            return Err(EncodeError::NoRoom { needed, available });
        }
        encode_record(&mut self.buf, datagram)
    }

    /// Largest datagram that still fits in the batch (0 when none does).
    pub fn room(&self) -> usize {
        self.max_batch
            .saturating_sub(self.buf.len())
            .saturating_sub(RECORD_HEADER_LEN)
            .min(usize::from(self.max_record_len))
    }

    /// Bytes batched so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing is batched.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The batched bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Takes the batch, leaving the encoder empty (its buffer is reused once the batch is dropped).
    pub fn take(&mut self) -> Bytes {
        self.buf.split().freeze()
    }

    /// Discards the batch.
    pub fn clear(&mut self) {
        self.buf.clear();
    }
}

/// Reassembles records from a byte stream delivered in arbitrary chunks.
///
/// Memory is bounded by the largest record accepted (`max_record_len`) plus the header,
/// whatever the chunking. After a [`FramingError`] the decoder stays failed: every later call
/// returns the same error, since the stream cannot be resynchronised.
#[derive(Debug, Clone)]
pub struct RecordDecoder {
    max_record_len: u16,
    header: [u8; RECORD_HEADER_LEN],
    header_filled: usize,
    /// Length of the record being read, once its header is complete.
    body_len: Option<u16>,
    body: Vec<u8>,
    /// The last call returned a complete record; drop it on the next call.
    delivered: bool,
    failed: Option<FramingError>,
}

impl Default for RecordDecoder {
    /// A decoder accepting records up to [`MAX_RECORD_LEN`].
    fn default() -> Self {
        Self::new(MAX_RECORD_LEN)
    }
}

impl RecordDecoder {
    /// A decoder accepting records of 1 to `max_record_len` bytes (a maximum of 0 accepts none).
    pub fn new(max_record_len: u16) -> Self {
        Self {
            max_record_len,
            header: [0; RECORD_HEADER_LEN],
            header_filled: 0,
            body_len: None,
            body: Vec::new(),
            delivered: false,
            failed: None,
        }
    }

    /// The largest record accepted.
    pub fn max_record_len(&self) -> u16 {
        self.max_record_len
    }

    /// Consumes bytes from the front of `input` up to the end of the next record and returns that
    /// record, or `Ok(None)` once all of `input` is consumed without completing one.
    ///
    /// The record is mutable so it can be decrypted in place; it stays valid until the next call.
    /// Call in a loop until `Ok(None)`:
    ///
    /// ```
    /// # fn main() -> Result<(), jsp::framing::FramingError> {
    /// let mut dec = jsp::framing::RecordDecoder::default();
    /// let mut input: &[u8] = &[0, 2, 0xaa, 0xbb, 0, 1];
    /// while let Some(datagram) = dec.decode(&mut input)? {
    ///     assert_eq!(datagram, &[0xaa, 0xbb]); // endpoint.handle_datagram(now, peer, datagram)
    /// }
    /// assert!(dec.is_mid_record());
    /// # Ok(()) }
    /// ```
    pub fn decode(&mut self, input: &mut &[u8]) -> Result<Option<&mut [u8]>, FramingError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        if self.delivered {
            self.delivered = false;
            self.header_filled = 0;
            self.body_len = None;
            self.body.clear();
        }
        let len = match self.body_len {
            Some(len) => len,
            None => {
                while self.header_filled < RECORD_HEADER_LEN {
                    let Some((&byte, rest)) = input.split_first() else {
                        return Ok(None);
                    };
                    if let Some(slot) = self.header.get_mut(self.header_filled) {
                        *slot = byte;
                    }
                    self.header_filled += 1;
                    *input = rest;
                }
                let len = u16::from_be_bytes(self.header);
                if len == 0 {
                    return Err(self.fail(FramingError::ZeroLength));
                }
                if len > self.max_record_len {
                    let max = self.max_record_len;
                    return Err(self.fail(FramingError::TooLong { len, max }));
                }
                self.body.reserve_exact(usize::from(len));
                self.body_len = Some(len);
                len
            }
        };
        let missing = usize::from(len).saturating_sub(self.body.len());
        let (now, rest) = input.split_at(missing.min(input.len()));
        self.body.extend_from_slice(now);
        *input = rest;
        if self.body.len() < usize::from(len) {
            return Ok(None);
        }
        self.delivered = true;
        Ok(Some(&mut self.body))
    }

    /// Feeds a whole chunk, calling `on_record` for each record it completes; returns how many.
    pub fn push(
        &mut self,
        mut chunk: &[u8],
        mut on_record: impl FnMut(&mut [u8]),
    ) -> Result<usize, FramingError> {
        let mut records = 0;
        while let Some(record) = self.decode(&mut chunk)? {
            on_record(record);
            records += 1;
        }
        Ok(records)
    }

    /// Whether part of a record (header or body) is buffered.
    pub fn is_mid_record(&self) -> bool {
        !self.delivered && self.header_filled > 0
    }

    /// Call when the stream ends: [`FramingError::Truncated`] if it ended inside a record, or the
    /// error the stream already failed with.
    pub fn finish(&self) -> Result<(), FramingError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        if !self.is_mid_record() {
            return Ok(());
        }
        let missing = match self.body_len {
            Some(len) => usize::from(len).saturating_sub(self.body.len()),
            None => RECORD_HEADER_LEN - self.header_filled,
        };
        Err(FramingError::Truncated { missing })
    }

    /// Bytes currently allocated for the record buffer (at most `max_record_len`).
    pub fn buffer_capacity(&self) -> usize {
        self.body.capacity()
    }

    /// Releases the record buffer's memory if no record is in progress (for idle connections).
    pub fn shrink(&mut self) {
        if !self.is_mid_record() {
            self.body = Vec::new();
            self.body_len = None;
            self.header_filled = 0;
            self.delivered = false;
        }
    }

    fn fail(&mut self, e: FramingError) -> FramingError {
        self.failed = Some(e);
        self.body = Vec::new();
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode_all(records: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for r in records {
            encode_record(&mut out, r).unwrap();
        }
        out
    }

    /// Feeds `stream` cut at `cuts` and collects the records (or the first error).
    fn decode_chunked(
        dec: &mut RecordDecoder,
        stream: &[u8],
        cuts: &[usize],
    ) -> Result<Vec<Vec<u8>>, FramingError> {
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
        points.sort_unstable();
        let mut out = Vec::new();
        let mut start = 0;
        for end in points.into_iter().chain([stream.len()]) {
            dec.push(&stream[start..end], |r| out.push(r.to_vec()))?;
            assert!(dec.buffer_capacity() <= usize::from(dec.max_record_len()));
            start = end;
        }
        Ok(out)
    }

    /// Whole-buffer reference parser.
    fn reference(stream: &[u8], max: u16) -> (Vec<Vec<u8>>, Option<FramingError>) {
        let mut out = Vec::new();
        let mut rest = stream;
        while rest.len() >= 2 {
            let len = u16::from_be_bytes([rest[0], rest[1]]);
            if len == 0 {
                return (out, Some(FramingError::ZeroLength));
            }
            if len > max {
                return (out, Some(FramingError::TooLong { len, max }));
            }
            if rest.len() < 2 + usize::from(len) {
                break;
            }
            out.push(rest[2..2 + usize::from(len)].to_vec());
            rest = &rest[2 + usize::from(len)..];
        }
        (out, None)
    }

    #[test]
    fn encodes_big_endian_length_prefix() {
        let mut out = Vec::new();
        encode_record(&mut out, &[7; 0x0102]).unwrap();
        assert_eq!(&out[..3], &[0x01, 0x02, 7]);
        assert_eq!(out.len(), 2 + 0x0102);
        encode_record(&mut out, &vec![1; 65535]).unwrap();
        assert_eq!(&out[2 + 0x0102..2 + 0x0102 + 2], &[0xff, 0xff]);
    }

    #[test]
    fn encode_rejects_empty_and_oversized_and_full_buffers() {
        let mut out = Vec::new();
        assert_eq!(encode_record(&mut out, &[]), Err(EncodeError::Empty));
        assert_eq!(
            encode_record(&mut out, &vec![0; 65536]),
            Err(EncodeError::TooLong {
                len: 65536,
                max: 65535
            })
        );
        assert!(out.is_empty());
        let mut small = [0u8; 4];
        let mut slice = &mut small[..];
        assert_eq!(
            encode_record(&mut slice, &[1, 2, 3]),
            Err(EncodeError::NoRoom {
                needed: 5,
                available: 4
            })
        );
        encode_record(&mut slice, &[1, 2]).unwrap();
        assert_eq!(small, [0, 2, 1, 2]);
    }

    #[test]
    fn encoder_batches_until_full() {
        let mut enc = RecordEncoder::new(100, 110).unwrap();
        assert_eq!(enc.room(), 100);
        enc.push(&[1; 50]).unwrap();
        assert_eq!(enc.room(), 56);
        assert_eq!(
            enc.push(&[2; 57]),
            Err(EncodeError::NoRoom {
                needed: 59,
                available: 58
            })
        );
        enc.push(&[2; 56]).unwrap();
        assert_eq!(enc.room(), 0);
        assert_eq!(enc.len(), 110);
        let batch = enc.take();
        assert!(enc.is_empty());
        let (records, err) = reference(&batch, 100);
        assert_eq!(records, vec![vec![1; 50], vec![2; 56]]);
        assert_eq!(err, None);
        assert_eq!(
            enc.push(&[0; 101]),
            Err(EncodeError::TooLong { len: 101, max: 100 })
        );
        enc.push(&[3]).unwrap();
        assert_eq!(enc.as_bytes(), &[0, 1, 3]);
        enc.clear();
        assert!(enc.is_empty());
        assert!(RecordEncoder::new(100, 101).is_err());
        assert!(RecordEncoder::new(0, 100).is_err());
        assert!(RecordEncoder::new(MAX_RECORD_LEN, DEFAULT_MAX_BATCH).is_ok());
    }

    #[test]
    fn decodes_byte_by_byte() {
        let records = vec![vec![1, 2, 3], vec![4], vec![5; 300]];
        let stream = encode_all(&records);
        let cuts: Vec<usize> = (0..stream.len()).collect();
        let mut dec = RecordDecoder::default();
        assert_eq!(decode_chunked(&mut dec, &stream, &cuts).unwrap(), records);
        assert!(!dec.is_mid_record());
        assert_eq!(dec.finish(), Ok(()));
    }

    #[test]
    fn zero_length_is_malformed_and_sticky() {
        let mut dec = RecordDecoder::default();
        let mut input: &[u8] = &[0, 1, 9, 0, 0, 0, 1, 9];
        assert_eq!(dec.decode(&mut input).unwrap().unwrap(), &[9]);
        assert_eq!(dec.decode(&mut input), Err(FramingError::ZeroLength));
        let mut more: &[u8] = &[0, 1, 9];
        assert_eq!(dec.decode(&mut more), Err(FramingError::ZeroLength));
        assert_eq!(dec.finish(), Err(FramingError::ZeroLength));
    }

    #[test]
    fn too_long_is_rejected_before_buffering() {
        let mut dec = RecordDecoder::new(1452);
        let mut input: &[u8] = &[0x05, 0xad];
        assert_eq!(
            dec.decode(&mut input),
            Err(FramingError::TooLong {
                len: 1453,
                max: 1452
            })
        );
        assert_eq!(dec.buffer_capacity(), 0);
        let mut dec = RecordDecoder::new(0);
        assert!(dec.decode(&mut &[0u8, 1, 0][..]).is_err());
    }

    #[test]
    fn truncated_stream_is_reported() {
        let mut dec = RecordDecoder::default();
        assert_eq!(dec.push(&[0], |_| {}), Ok(0));
        assert_eq!(dec.finish(), Err(FramingError::Truncated { missing: 1 }));
        assert_eq!(dec.push(&[5, 1, 2], |_| {}), Ok(0));
        assert_eq!(dec.finish(), Err(FramingError::Truncated { missing: 3 }));
        assert_eq!(dec.push(&[3, 4, 5], |_| {}), Ok(1));
        assert_eq!(dec.finish(), Ok(()));
    }

    #[test]
    fn records_can_be_modified_in_place() {
        let mut dec = RecordDecoder::default();
        let mut input: &[u8] = &[0, 2, 1, 2];
        let record = dec.decode(&mut input).unwrap().unwrap();
        record[0] = 42;
        assert_eq!(record, &[42, 2]);
        assert_eq!(dec.decode(&mut input), Ok(None));
    }

    #[test]
    fn shrink_releases_memory_between_records_only() {
        let mut dec = RecordDecoder::default();
        dec.push(&[0x10, 0, 1], |_| {}).unwrap();
        assert!(dec.buffer_capacity() >= 0x1000);
        dec.shrink();
        assert!(dec.buffer_capacity() >= 0x1000, "mid-record: kept");
        let rest = vec![2; 0x0fff];
        assert_eq!(dec.push(&rest, |r| assert_eq!(r.len(), 0x1000)), Ok(1));
        dec.shrink();
        assert_eq!(dec.buffer_capacity(), 0);
        assert_eq!(dec.push(&[0, 1, 7], |r| assert_eq!(r, &[7])), Ok(1));
    }

    fn records_strategy() -> impl Strategy<Value = Vec<Vec<u8>>> {
        let small = prop::collection::vec(any::<u8>(), 1..64);
        let medium = prop::collection::vec(any::<u8>(), 1..2000);
        let huge = (60_000usize..=65_535).prop_map(|n| vec![0xa5; n]);
        prop::collection::vec(prop_oneof![8 => small, 3 => medium, 1 => huge], 0..12)
    }

    proptest! {
        #[test]
        fn any_split_decodes_the_same_records(
            records in records_strategy(),
            cuts in prop::collection::vec(any::<usize>(), 0..40),
        ) {
            let stream = encode_all(&records);
            let mut dec = RecordDecoder::default();
            prop_assert_eq!(decode_chunked(&mut dec, &stream, &cuts).unwrap(), records.clone());
            prop_assert_eq!(dec.finish(), Ok(()));
            let mut enc = RecordEncoder::new(MAX_RECORD_LEN, DEFAULT_MAX_BATCH).unwrap();
            let mut batched = Vec::new();
            for r in &records {
                if enc.push(r).is_err() {
                    batched.extend_from_slice(&enc.take());
                    enc.push(r).unwrap();
                }
            }
            batched.extend_from_slice(&enc.take());
            prop_assert_eq!(batched, stream);
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_match_the_reference(
            stream in prop::collection::vec(any::<u8>(), 0..4096),
            cuts in prop::collection::vec(any::<usize>(), 0..40),
            max in prop_oneof![Just(MAX_RECORD_LEN), 0u16..600],
        ) {
            let mut dec = RecordDecoder::new(max);
            let got = decode_chunked(&mut dec, &stream, &cuts);
            let (records, err) = reference(&stream, max);
            match (got, err) {
                (Ok(got), None) => prop_assert_eq!(got, records),
                (Err(e), Some(expected)) => prop_assert_eq!(e, expected),
                (got, err) => prop_assert!(false, "decoder {:?} vs reference {:?}", got, err),
            }
        }
    }
}
