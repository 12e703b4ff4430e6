//! Writing STREAM and DATAGRAM data into a packet, compressed where it pays, and reading the
//! compressed frames back (PROTOCOL.md §14.5).
//!
//! On the send side each stream, and the datagrams as one flow, has an [`Adaptive`] state: data
//! of at least `min_size` bytes is compressed (with the stream class's dictionary when the peer
//! advertised it), and the compressed frame is used only if it fits the packet and saves at least
//! an eighth; data that does not shrink stops being tried for a while (`Auto`). A stream whose
//! data has been shrinking takes more bytes per frame, so a packet carries more than its size. On
//! the receive side the declared length is checked (at most 64 KiB) before anything is
//! decompressed, and the decompressed data then goes through exactly the same path as a plain
//! frame's: flow control, final size, ordering.

use super::sent_frames::{SentFrames, SentStream};
use super::streams::StreamChunk;
use super::{Connection, Event, StreamId, MAX_QUEUED_DATAGRAMS};
use crate::compression::{
    codec, AdvertisedDictionaries, CompressionMode, Dictionary, DictionaryId,
    MAX_UNCOMPRESSED_FRAME,
};
use crate::error::ErrorCode;
use crate::time::Instant;
use crate::wire::frame::{self, CompressedData, CompressedStreamFrame};
use crate::wire::transport_params::COMPRESSION_LZ4;

/// Scratch buffers above this capacity are released after use, so a connection that once
/// moved large compressed frames does not keep 64 KiB buffers while idle.
const KEEP_SCRATCH: usize = 16 * 1024;

/// Room a plain STREAM header may need (type, stream id, offset, length).
const STREAM_HEADER_ROOM: usize = 24;

/// Reused buffers for compression.
#[derive(Debug, Default)]
pub(super) struct Scratch {
    /// Plain bytes of the chunk being compressed.
    plain: Vec<u8>,
    /// The LZ4 block being built.
    block: Vec<u8>,
    /// Decompressed bytes of a received frame.
    received: Vec<u8>,
}

fn trim(buf: &mut Vec<u8>) {
    if buf.capacity() > KEEP_SCRATCH {
        *buf = Vec::new();
    }
}

impl Connection {
    /// The dictionaries the peer can decompress with, if it accepts compressed frames at all.
    fn peer_compression(&self) -> Option<AdvertisedDictionaries> {
        let p = self.peer_params.as_ref()?;
        (p.compression & COMPRESSION_LZ4 != 0).then_some(p.compression_dictionaries)
    }

    /// Appends STREAM (or STREAM_LZ4) frames while there is stream data and room before `limit`.
    pub(super) fn write_stream_frames(
        &mut self,
        buf: &mut Vec<u8>,
        limit: usize,
        sent: &mut SentFrames,
    ) {
        let mode = self.transport.compression.mode;
        let peer = self
            .peer_compression()
            .filter(|_| mode != CompressionMode::Off);
        loop {
            let room = limit.saturating_sub(buf.len());
            if room < 32 {
                break;
            }
            let plain_max = room - STREAM_HEADER_ROOM;
            let chunk = match peer {
                Some(_) => self
                    .streams
                    .next_chunk_sized(|a| a.input_budget(plain_max, MAX_UNCOMPRESSED_FRAME)),
                None => self.streams.next_chunk(plain_max),
            };
            let Some(mut chunk) = chunk else {
                break;
            };
            if let Some(peer) = peer {
                if let Some(len) = self.write_compressed_chunk(buf, room, &chunk, peer) {
                    sent.streams.push(SentStream {
                        id: chunk.id,
                        range: chunk.offset..chunk.offset + len as u64,
                        fin: chunk.fin && len == chunk.len,
                    });
                    continue;
                }
                if chunk.len > plain_max {
                    // Taken in the hope it would shrink; it did not: the tail goes back.
                    let cut = chunk.offset + plain_max as u64;
                    self.streams
                        .on_lost(chunk.id, cut..chunk.offset + chunk.len as u64, chunk.fin);
                    chunk.len = plain_max;
                    chunk.fin = false;
                }
            }
            frame::encode_stream_header(buf, chunk.id.0, chunk.offset, chunk.len, chunk.fin, true);
            self.streams.copy_chunk(&chunk, buf);
            sent.streams.push(SentStream {
                id: chunk.id,
                range: chunk.offset..chunk.offset + chunk.len as u64,
                fin: chunk.fin,
            });
        }
        if !self.streams.has_pending() {
            // Idle for now: do not keep large buffers (they are reused while data flows).
            trim(&mut self.lz4.plain);
            trim(&mut self.lz4.block);
        }
    }

    /// Tries to write `chunk` as a STREAM_LZ4 frame within `room`. Returns how many of its bytes
    /// the frame carries (all, or a prefix when the whole chunk would not fit once compressed:
    /// the rest goes back to the stream), or `None` if nothing was written.
    fn write_compressed_chunk(
        &mut self,
        buf: &mut Vec<u8>,
        room: usize,
        chunk: &StreamChunk,
        peer: AdvertisedDictionaries,
    ) -> Option<usize> {
        let compression = &self.transport.compression;
        let (mode, min_size) = (compression.mode, compression.min_size.max(1));
        let (state, class) = self.streams.compression_state(chunk.id)?;
        if !state.should_try(mode, min_size, chunk.len) {
            state.record_skipped(chunk.len);
            return None;
        }
        let dict: Option<Dictionary> = compression
            .dictionary_for(class)
            .filter(|d| peer.contains(d.id()))
            .cloned();
        let dict_id = dict.as_ref().map_or(DictionaryId::NONE, Dictionary::id).0;
        // The header with the largest block length that could fit bounds the real one.
        let header =
            frame::stream_lz4_header_len(chunk.id.0, chunk.offset, dict_id, chunk.len, room);
        let fit = room.saturating_sub(header);
        self.lz4.plain.clear();
        self.streams.copy_chunk(chunk, &mut self.lz4.plain);
        self.stats.compression_attempts += 1;
        let mut len = chunk.len;
        let mut n = self.compress_plain(len, dict.as_ref());
        if let Some(big) = n.filter(|&n| n > fit) {
            // It shrank, but more was taken than fits one packet: compress the prefix that
            // should fit at the ratio just seen.
            let prefix = (len as u128 * fit as u128 * 15 / 16 / big as u128) as usize;
            n = None;
            if prefix >= min_size {
                len = prefix;
                n = self
                    .compress_plain(len, dict.as_ref())
                    .filter(|&n| n <= fit);
            }
            if n.is_none() {
                // Not evidence of incompressible data: only the ratio is learnt.
                if let Some((state, _)) = self.streams.compression_state(chunk.id) {
                    state.record_attempt(chunk.len, Some(big));
                }
                return None;
            }
        }
        if let Some((state, _)) = self.streams.compression_state(chunk.id) {
            state.record_attempt(len, n);
        }
        let n = n?;
        let fin = chunk.fin && len == chunk.len;
        if len < chunk.len {
            let end = chunk.offset + chunk.len as u64;
            self.streams
                .on_lost(chunk.id, chunk.offset + len as u64..end, chunk.fin);
        }
        frame::encode_stream_lz4_header(buf, chunk.id.0, chunk.offset, fin, dict_id, len, n);
        buf.extend_from_slice(&self.lz4.block);
        self.stats.compressed_frames_sent += 1;
        self.stats.compression_saved_bytes += (len - n) as u64;
        Some(len)
    }

    /// Compresses the first `len` bytes of the plain scratch into the block scratch, if that
    /// saves at least an eighth; returns the block's length.
    fn compress_plain(&mut self, len: usize, dict: Option<&Dictionary>) -> Option<usize> {
        let input = self.lz4.plain.get(..len)?;
        self.lz4.block.clear();
        codec::compress_append(input, dict, len - len / 8, &mut self.lz4.block)
    }

    /// Appends queued DATAGRAM (or DATAGRAM_LZ4) frames while they fit before `limit`; returns
    /// whether it wrote any.
    pub(super) fn write_datagram_frames(&mut self, buf: &mut Vec<u8>, limit: usize) -> bool {
        let start = buf.len();
        let compression = &self.transport.compression;
        let (mode, min_size) = (compression.mode, compression.min_size.max(1));
        let compress = mode != CompressionMode::Off && self.peer_compression().is_some();
        while let Some(d) = self.datagrams_out.front() {
            if buf.len() + d.len() + 3 > limit {
                break;
            }
            let Some(d) = self.datagrams_out.pop_front() else {
                break;
            };
            if compress && self.datagram_lz4.should_try(mode, min_size, d.len()) {
                let room = limit - buf.len();
                let header = frame::datagram_lz4_header_len(0, d.len(), room);
                let max_block = room.saturating_sub(header).min(d.len() - d.len() / 8);
                self.lz4.block.clear();
                let n = codec::compress_append(&d, None, max_block, &mut self.lz4.block);
                self.datagram_lz4.record_attempt(d.len(), n);
                self.stats.compression_attempts += 1;
                if let Some(n) = n {
                    frame::encode_datagram_lz4_header(buf, 0, d.len(), n);
                    buf.extend_from_slice(&self.lz4.block);
                    self.stats.compressed_frames_sent += 1;
                    self.stats.compression_saved_bytes += (d.len() - n) as u64;
                    continue;
                }
            } else {
                self.datagram_lz4.record_skipped(d.len());
            }
            frame::encode_datagram(buf, &d, true);
        }
        buf.len() > start
    }

    /// Decompresses a received frame's data into the receive scratch, which the caller must
    /// give back with [`Connection::return_received_scratch`]; closes the connection and returns
    /// `None` if the data is invalid.
    fn decompress_received(&mut self, now: Instant, data: CompressedData<'_>) -> Option<Vec<u8>> {
        let dict = if data.dictionary == 0 {
            None
        } else {
            match self
                .transport
                .compression
                .find(DictionaryId(data.dictionary))
            {
                Some(d) => Some(d.clone()),
                None => {
                    let msg =
                        codec::DecompressError::UnknownDictionary(data.dictionary).to_string();
                    self.protocol_violation(now, ErrorCode::FRAME_ENCODING_ERROR, &msg);
                    return None;
                }
            }
        };
        let mut out = core::mem::take(&mut self.lz4.received);
        match codec::decompress_exact(data.block, dict.as_ref(), data.uncompressed_len, &mut out) {
            Ok(()) => {
                self.stats.compressed_frames_received += 1;
                Some(out)
            }
            Err(e) => {
                self.return_received_scratch(out);
                self.protocol_violation(now, ErrorCode::FRAME_ENCODING_ERROR, &e.to_string());
                None
            }
        }
    }

    fn return_received_scratch(&mut self, mut buf: Vec<u8>) {
        buf.clear();
        trim(&mut buf);
        self.lz4.received = buf;
    }

    /// A STREAM_LZ4 frame: its data, once decompressed, is handled as a STREAM frame's.
    pub(super) fn on_compressed_stream_frame(
        &mut self,
        now: Instant,
        f: CompressedStreamFrame<'_>,
    ) {
        let Some(data) = self.decompress_received(now, f.data) else {
            return;
        };
        self.on_stream_data(now, StreamId(f.stream_id), f.offset, &data, f.fin);
        self.return_received_scratch(data);
    }

    /// A DATAGRAM_LZ4 frame: its data, once decompressed, is handled as a DATAGRAM frame's.
    pub(super) fn on_compressed_datagram_frame(&mut self, now: Instant, d: CompressedData<'_>) {
        let Some(data) = self.decompress_received(now, d) else {
            return;
        };
        self.on_datagram_data(now, &data);
        self.return_received_scratch(data);
    }

    /// Data of a STREAM frame (plain or decompressed).
    pub(super) fn on_stream_data(
        &mut self,
        now: Instant,
        id: StreamId,
        offset: u64,
        data: &[u8],
        fin: bool,
    ) {
        if let Err(e) = self.streams.on_stream_frame(id, offset, data, fin, now) {
            self.protocol_violation(now, e.code, e.reason);
            return;
        }
        if self.in_early_packet {
            self.early_streams.insert(id);
        }
        self.drain_stream_events();
    }

    /// Data of a DATAGRAM frame (plain or decompressed).
    pub(super) fn on_datagram_data(&mut self, now: Instant, data: &[u8]) {
        if self.transport.max_datagram_frame_size == 0
            || data.len() > usize::from(self.transport.max_datagram_frame_size)
        {
            self.protocol_violation(now, ErrorCode::PROTOCOL_ERROR, "datagram too large");
            return;
        }
        if self.datagrams_in.len() >= MAX_QUEUED_DATAGRAMS {
            self.datagrams_in.pop_front();
        }
        self.datagrams_in.push_back(data.to_vec());
        self.events.push_back(Event::DatagramReceived);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_scratch_is_released() {
        let mut v = Vec::with_capacity(KEEP_SCRATCH + 1);
        trim(&mut v);
        assert_eq!(v.capacity(), 0);
        let mut w = Vec::with_capacity(100);
        trim(&mut w);
        assert_eq!(w.capacity(), 100);
    }
}
