//! Streams: identifiers, send buffers with retransmission, receive reassembly, credit-based flow
//! control per stream and per connection, and stream-count limits (PROTOCOL.md §10, §14).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Range;

use crate::error::ErrorCode;
use crate::range_set::RangeSet;
use crate::Side;

/// A stream identifier (PROTOCOL.md §10): bit 0 = initiator (0 client), bit 1 = direction (1 uni).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(pub u64);

/// Stream direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Both sides send.
    Bi,
    /// Only the initiator sends.
    Uni,
}

impl StreamId {
    /// Builds the `index`-th stream of `initiator` in `dir`.
    pub fn new(initiator: Side, dir: Dir, index: u64) -> Self {
        let mut id = index << 2;
        if initiator == Side::Server {
            id |= 1;
        }
        if dir == Dir::Uni {
            id |= 2;
        }
        StreamId(id)
    }
    /// Who opened it.
    pub fn initiator(self) -> Side {
        if self.0 & 1 == 0 {
            Side::Client
        } else {
            Side::Server
        }
    }
    /// Its direction.
    pub fn dir(self) -> Dir {
        if self.0 & 2 == 0 {
            Dir::Bi
        } else {
            Dir::Uni
        }
    }
    /// Its index among streams of the same initiator and direction.
    pub fn index(self) -> u64 {
        self.0 >> 2
    }
}

/// A stream-level protocol violation by the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamError {
    /// Code to close the connection with.
    pub code: ErrorCode,
    /// What happened.
    pub reason: &'static str,
}

fn err(code: ErrorCode, reason: &'static str) -> StreamError {
    StreamError { code, reason }
}

/// Errors returned to the application by stream operations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StreamApiError {
    /// The stream does not exist (never opened, or finished and released).
    #[error("unknown stream")]
    UnknownStream,
    /// The stream cannot be written (the peer's unidirectional stream, or already finished).
    #[error("the stream is not writable")]
    NotWritable,
    /// The peer's stream limit is reached; wait for it to allow more.
    #[error("stream limit reached")]
    LimitReached,
    /// The connection is not established or is closing.
    #[error("the connection is not open")]
    NotOpen,
}

#[derive(Debug, Default)]
struct SendStream {
    /// Unacknowledged bytes; `data[0]` is at offset `base`.
    data: VecDeque<u8>,
    base: u64,
    /// Offset after the last byte written.
    end: u64,
    /// Offsets waiting for (re)transmission.
    pending: RangeSet,
    acked: RangeSet,
    /// Highest offset ever sent (for connection flow control accounting).
    max_sent: u64,
    /// Peer's credit for this stream.
    max_data: u64,
    fin: bool,
    fin_pending: bool,
    fin_acked: bool,
}

#[derive(Debug, Default)]
struct RecvStream {
    fragments: BTreeMap<u64, Vec<u8>>,
    read: u64,
    /// Highest offset received (flow-control accounting).
    highest: u64,
    final_size: Option<u64>,
    /// Credit we granted.
    max_data: u64,
    /// Credit last advertised (to decide when to send MAX_STREAM_DATA).
    window: u64,
    fin_delivered: bool,
}

/// A chunk of stream data to put in a STREAM frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamChunk {
    /// The stream.
    pub id: StreamId,
    /// Offset of the first byte.
    pub offset: u64,
    /// The bytes.
    pub data: Vec<u8>,
    /// Whether this chunk carries FIN.
    pub fin: bool,
}

/// All streams of a connection.
#[derive(Debug)]
pub struct Streams {
    side: Side,
    send: HashMap<StreamId, SendStream>,
    recv: HashMap<StreamId, RecvStream>,
    next_local: [u64; 2],
    /// How many streams of each direction the peer allows us to open.
    peer_max_streams: [u64; 2],
    /// How many streams of each direction we allow the peer to open.
    local_max_streams: [u64; 2],
    /// Peer-initiated streams opened so far (per direction).
    peer_opened: [u64; 2],
    /// Peer-initiated streams closed so far (to grant more).
    peer_closed: [u64; 2],
    /// Streams with data or FIN to send, round robin.
    send_queue: VecDeque<StreamId>,
    /// Newly opened peer streams to announce.
    opened: VecDeque<StreamId>,
    /// Streams with data to read, to announce.
    readable: VecDeque<StreamId>,
    /// Connection credit the peer gave us and what we used.
    peer_max_data: u64,
    data_sent: u64,
    /// Connection credit we gave and what the peer used / the app consumed.
    local_max_data: u64,
    local_window: u64,
    data_received: u64,
    data_consumed: u64,
    stream_window: u64,
    peer_stream_window_bidi_local: u64,
    peer_stream_window_bidi_remote: u64,
    peer_stream_window_uni: u64,
    /// MAX_DATA / MAX_STREAM_DATA / MAX_STREAMS updates to send.
    pub pending_max_data: bool,
    /// Streams whose MAX_STREAM_DATA should be sent.
    pub pending_max_stream_data: Vec<StreamId>,
    /// Directions whose MAX_STREAMS should be sent.
    pub pending_max_streams: [bool; 2],
}

fn di(dir: Dir) -> usize {
    match dir {
        Dir::Bi => 0,
        Dir::Uni => 1,
    }
}

/// Limits one side grants: what we offer, what the peer offered.
#[derive(Debug, Clone, Copy)]
pub struct StreamLimits {
    /// Connection credit.
    pub max_data: u64,
    /// Credit for a bidirectional stream opened by the holder of these limits.
    pub stream_data_bidi_local: u64,
    /// Credit for a bidirectional stream opened by the other side.
    pub stream_data_bidi_remote: u64,
    /// Credit for a unidirectional stream.
    pub stream_data_uni: u64,
    /// Bidirectional streams the other side may open.
    pub max_streams_bidi: u64,
    /// Unidirectional streams the other side may open.
    pub max_streams_uni: u64,
}

impl Streams {
    /// Streams for `side`, granting `local` limits to the peer.
    pub fn new(side: Side, local: StreamLimits) -> Self {
        Self {
            side,
            send: HashMap::new(),
            recv: HashMap::new(),
            next_local: [0, 0],
            peer_max_streams: [0, 0],
            local_max_streams: [local.max_streams_bidi, local.max_streams_uni],
            peer_opened: [0, 0],
            peer_closed: [0, 0],
            send_queue: VecDeque::new(),
            opened: VecDeque::new(),
            readable: VecDeque::new(),
            peer_max_data: 0,
            data_sent: 0,
            local_max_data: local.max_data,
            local_window: local.max_data,
            data_received: 0,
            data_consumed: 0,
            stream_window: local.stream_data_bidi_remote,
            peer_stream_window_bidi_local: 0,
            peer_stream_window_bidi_remote: 0,
            peer_stream_window_uni: 0,
            pending_max_data: false,
            pending_max_stream_data: Vec::new(),
            pending_max_streams: [false, false],
        }
    }

    /// Applies the peer's transport parameters (their limits on us).
    pub fn set_peer_limits(&mut self, peer: StreamLimits) {
        self.peer_max_data = peer.max_data;
        self.peer_max_streams = [peer.max_streams_bidi, peer.max_streams_uni];
        self.peer_stream_window_bidi_local = peer.stream_data_bidi_local;
        self.peer_stream_window_bidi_remote = peer.stream_data_bidi_remote;
        self.peer_stream_window_uni = peer.stream_data_uni;
        for (id, s) in self.send.iter_mut() {
            let credit = if id.dir() == Dir::Uni {
                peer.stream_data_uni
            } else if id.initiator() == self.side {
                peer.stream_data_bidi_remote
            } else {
                peer.stream_data_bidi_local
            };
            s.max_data = s.max_data.max(credit);
        }
    }

    fn peer_credit_for_local_stream(&self, dir: Dir) -> u64 {
        match dir {
            Dir::Bi => self.peer_stream_window_bidi_remote,
            Dir::Uni => self.peer_stream_window_uni,
        }
    }

    /// Opens a local stream.
    pub fn open(&mut self, dir: Dir) -> Result<StreamId, StreamApiError> {
        let d = di(dir);
        if self.next_local[d] >= self.peer_max_streams[d] {
            return Err(StreamApiError::LimitReached);
        }
        let id = StreamId::new(self.side, dir, self.next_local[d]);
        self.next_local[d] += 1;
        let send = SendStream {
            max_data: self.peer_credit_for_local_stream(dir),
            ..SendStream::default()
        };
        self.send.insert(id, send);
        if dir == Dir::Bi {
            self.recv.insert(id, self.new_recv());
        }
        Ok(id)
    }

    fn new_recv(&self) -> RecvStream {
        RecvStream {
            max_data: self.stream_window,
            window: self.stream_window,
            ..RecvStream::default()
        }
    }

    /// Queues `data` (and FIN if `fin`) on a stream. Returns the bytes accepted (all of them:
    /// back-pressure by flow control applies when sending, not when buffering).
    pub fn write(&mut self, id: StreamId, data: &[u8], fin: bool) -> Result<usize, StreamApiError> {
        let s = self
            .send
            .get_mut(&id)
            .ok_or(StreamApiError::UnknownStream)?;
        if s.fin {
            return Err(StreamApiError::NotWritable);
        }
        let start = s.end;
        s.data.extend(data);
        s.end += data.len() as u64;
        if s.end > start {
            s.pending.insert(start..s.end);
        }
        if fin {
            s.fin = true;
            s.fin_pending = true;
        }
        if !self.send_queue.contains(&id) {
            self.send_queue.push_back(id);
        }
        Ok(data.len())
    }

    /// Bytes buffered but not yet acknowledged, over all streams.
    pub fn buffered_send_bytes(&self) -> u64 {
        self.send.values().map(|s| s.data.len() as u64).sum()
    }

    /// Whether any stream has something sendable now.
    pub fn has_pending(&self) -> bool {
        !self.send_queue.is_empty()
    }

    /// Takes the next chunk to send, of at most `max_len` bytes of data, respecting flow control.
    pub fn next_chunk(&mut self, max_len: usize) -> Option<StreamChunk> {
        let rounds = self.send_queue.len();
        for _ in 0..rounds {
            let id = self.send_queue.pop_front()?;
            let conn_credit = self.peer_max_data.saturating_sub(self.data_sent);
            let Some(s) = self.send.get_mut(&id) else {
                continue;
            };
            let mut chunk = None;
            if let Some(r) = s
                .pending
                .min()
                .and_then(|m| s.pending.iter().find(|r| r.start == m))
            {
                // New bytes (beyond max_sent) consume connection credit; retransmits do not.
                let mut end = r.end.min(r.start + max_len as u64).min(s.max_data);
                if end > s.max_sent {
                    let new_allowed = s.max_sent.max(r.start) + conn_credit;
                    end = end.min(new_allowed);
                }
                if end > r.start {
                    s.pending.remove(r.start..end);
                    let from = usize::try_from(r.start - s.base).unwrap_or(0);
                    let to = usize::try_from(end - s.base).unwrap_or(0);
                    let data: Vec<u8> = s.data.range(from..to).copied().collect();
                    if end > s.max_sent {
                        self.data_sent += end - s.max_sent.max(r.start);
                        s.max_sent = end;
                    }
                    let fin = s.fin_pending && end == s.end && s.pending.is_empty();
                    if fin {
                        s.fin_pending = false;
                    }
                    chunk = Some(StreamChunk {
                        id,
                        offset: r.start,
                        data,
                        fin,
                    });
                }
            } else if s.fin_pending {
                s.fin_pending = false;
                chunk = Some(StreamChunk {
                    id,
                    offset: s.end,
                    data: Vec::new(),
                    fin: true,
                });
            }
            let more = !s.pending.is_empty() || s.fin_pending;
            if more {
                self.send_queue.push_back(id);
            }
            if chunk.is_some() {
                return chunk;
            }
        }
        None
    }

    /// A sent chunk was acknowledged.
    pub fn on_ack(&mut self, id: StreamId, range: Range<u64>, fin: bool) {
        let Some(s) = self.send.get_mut(&id) else {
            return;
        };
        s.acked.insert(range);
        if fin {
            s.fin_acked = true;
        }
        // Release acknowledged bytes from the front.
        let first = s.acked.iter().next();
        if let Some(first) = first {
            if first.start <= s.base && first.end > s.base {
                let n = usize::try_from(first.end - s.base).unwrap_or(0);
                s.data.drain(..n.min(s.data.len()));
                s.base = first.end;
                s.acked.remove_below(s.base);
            }
        }
        if s.fin_acked && s.base == s.end {
            self.send.remove(&id);
            self.maybe_release(id);
        }
    }

    /// A sent chunk was lost: queue its unacknowledged part again.
    pub fn on_lost(&mut self, id: StreamId, range: Range<u64>, fin: bool) {
        let Some(s) = self.send.get_mut(&id) else {
            return;
        };
        let mut start = range.start.max(s.base);
        for a in s.acked.iter() {
            if a.end <= start {
                continue;
            }
            if a.start >= range.end {
                break;
            }
            if a.start > start {
                s.pending.insert(start..a.start);
            }
            start = start.max(a.end);
        }
        if start < range.end {
            s.pending.insert(start..range.end);
        }
        if fin && !s.fin_acked {
            s.fin_pending = true;
        }
        if !self.send_queue.contains(&id) {
            self.send_queue.push_back(id);
        }
    }

    fn maybe_release(&mut self, id: StreamId) {
        if self.send.contains_key(&id) || self.recv.contains_key(&id) {
            return;
        }
        if id.initiator() != self.side {
            let d = di(id.dir());
            self.peer_closed[d] += 1;
            // Grant a new stream for each one closed, announced in batches.
            self.local_max_streams[d] += 1;
            self.pending_max_streams[d] = true;
        }
    }

    /// Handles a STREAM frame.
    pub fn on_stream_frame(
        &mut self,
        id: StreamId,
        offset: u64,
        data: &[u8],
        fin: bool,
    ) -> Result<(), StreamError> {
        if id.initiator() == self.side && id.dir() == Dir::Uni {
            return Err(err(
                ErrorCode::STREAM_STATE_ERROR,
                "data on our own unidirectional stream",
            ));
        }
        self.ensure_peer_stream(id)?;
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or(err(ErrorCode::FRAME_ENCODING_ERROR, "offset overflow"))?;
        let Some(r) = self.recv.get_mut(&id) else {
            return Ok(()); // already fully read and released: a late duplicate
        };
        if let Some(fs) = r.final_size {
            if end > fs || (fin && end != fs) {
                return Err(err(ErrorCode::PROTOCOL_ERROR, "data beyond final size"));
            }
        }
        if fin {
            if end < r.highest {
                return Err(err(
                    ErrorCode::PROTOCOL_ERROR,
                    "final size below received data",
                ));
            }
            r.final_size = Some(end);
        }
        if end > r.max_data {
            return Err(err(
                ErrorCode::FLOW_CONTROL_ERROR,
                "stream flow-control credit exceeded",
            ));
        }
        if end > r.highest {
            let grew = end - r.highest;
            r.highest = end;
            self.data_received += grew;
            if self.data_received > self.local_max_data {
                return Err(err(
                    ErrorCode::FLOW_CONTROL_ERROR,
                    "connection flow-control credit exceeded",
                ));
            }
        }
        if end > r.read && !data.is_empty() {
            let skip = usize::try_from(r.read.saturating_sub(offset)).unwrap_or(0);
            let (off, bytes) = (offset.max(r.read), &data[skip.min(data.len())..]);
            let keep = r
                .fragments
                .get(&off)
                .is_none_or(|old| old.len() < bytes.len());
            if keep {
                r.fragments.insert(off, bytes.to_vec());
            }
        }
        if (r.fragments.contains_key(&r.read) || r.final_size == Some(r.read))
            && !self.readable.contains(&id)
        {
            self.readable.push_back(id);
        }
        Ok(())
    }

    fn ensure_peer_stream(&mut self, id: StreamId) -> Result<(), StreamError> {
        if id.initiator() == self.side {
            if id.index() >= self.next_local[di(id.dir())] {
                return Err(err(ErrorCode::STREAM_STATE_ERROR, "stream not opened yet"));
            }
            return Ok(());
        }
        let d = di(id.dir());
        if id.index() < self.peer_opened[d] {
            return Ok(());
        }
        if id.index() >= self.local_max_streams[d] {
            return Err(err(ErrorCode::STREAM_LIMIT_ERROR, "stream limit exceeded"));
        }
        for index in self.peer_opened[d]..=id.index() {
            let sid = StreamId::new(id.initiator(), id.dir(), index);
            let recv = self.new_recv();
            self.recv.insert(sid, recv);
            if id.dir() == Dir::Bi {
                let send = SendStream {
                    max_data: self.peer_stream_window_bidi_local,
                    ..SendStream::default()
                };
                self.send.insert(sid, send);
            }
            self.opened.push_back(sid);
        }
        self.peer_opened[d] = id.index() + 1;
        Ok(())
    }

    /// The next stream the peer opened.
    pub fn poll_opened(&mut self) -> Option<StreamId> {
        self.opened.pop_front()
    }

    /// The next stream with data (or FIN) to read.
    pub fn poll_readable(&mut self) -> Option<StreamId> {
        self.readable.pop_front()
    }

    /// Reads up to `max` contiguous bytes. Returns `(data, fin)`; `fin` is true once the last
    /// byte of the stream has been read.
    pub fn read(&mut self, id: StreamId, max: usize) -> Result<(Vec<u8>, bool), StreamApiError> {
        let r = self
            .recv
            .get_mut(&id)
            .ok_or(StreamApiError::UnknownStream)?;
        let mut out = Vec::new();
        while out.len() < max {
            let Some(frag) = r.fragments.remove(&r.read) else {
                // A fragment may start before `read` after partial reads.
                let Some((&off, _)) = r.fragments.range(..r.read).next_back() else {
                    break;
                };
                let Some(frag) = r.fragments.remove(&off) else {
                    break;
                };
                let skip = usize::try_from(r.read - off).unwrap_or(usize::MAX);
                if skip < frag.len() {
                    r.fragments.insert(r.read, frag[skip..].to_vec());
                }
                continue;
            };
            let take = frag.len().min(max - out.len());
            out.extend_from_slice(&frag[..take]);
            if take < frag.len() {
                r.fragments
                    .insert(r.read + take as u64, frag[take..].to_vec());
            }
            r.read += take as u64;
        }
        let consumed = out.len() as u64;
        let fin = r.final_size == Some(r.read);
        if fin {
            r.fin_delivered = true;
        }
        // Flow-control credit: re-grant when half the window was consumed.
        if !fin && r.max_data - r.read < r.window / 2 {
            r.max_data = r.read + r.window;
            self.pending_max_stream_data.push(id);
        }
        self.data_consumed += consumed;
        if self.local_max_data - self.data_consumed < self.local_window / 2 {
            self.local_max_data = self.data_consumed + self.local_window;
            self.pending_max_data = true;
        }
        if fin {
            self.recv.remove(&id);
            self.maybe_release(id);
        } else if r_has_more(self.recv.get(&id)) && !self.readable.contains(&id) {
            self.readable.push_back(id);
        }
        Ok((out, fin))
    }

    /// The credit to announce in MAX_STREAM_DATA for `id`.
    pub fn recv_max_data(&self, id: StreamId) -> Option<u64> {
        self.recv.get(&id).map(|r| r.max_data)
    }

    /// The credit to announce in MAX_DATA.
    pub fn local_max_data(&self) -> u64 {
        self.local_max_data
    }

    /// The stream count to announce in MAX_STREAMS for `dir`.
    pub fn local_max_streams(&self, dir: Dir) -> u64 {
        self.local_max_streams[di(dir)]
    }

    /// MAX_DATA from the peer.
    pub fn on_max_data(&mut self, max: u64) {
        self.peer_max_data = self.peer_max_data.max(max);
        self.requeue_all();
    }

    /// MAX_STREAM_DATA from the peer.
    pub fn on_max_stream_data(&mut self, id: StreamId, max: u64) -> Result<(), StreamError> {
        if id.initiator() != self.side && id.dir() == Dir::Uni {
            return Err(err(
                ErrorCode::STREAM_STATE_ERROR,
                "credit for a receive-only stream",
            ));
        }
        if let Some(s) = self.send.get_mut(&id) {
            s.max_data = s.max_data.max(max);
            if !s.pending.is_empty() && !self.send_queue.contains(&id) {
                self.send_queue.push_back(id);
            }
        }
        Ok(())
    }

    /// MAX_STREAMS from the peer.
    pub fn on_max_streams(&mut self, dir: Dir, max: u64) {
        let d = di(dir);
        self.peer_max_streams[d] = self.peer_max_streams[d].max(max);
    }

    fn requeue_all(&mut self) {
        for (id, s) in &self.send {
            if (!s.pending.is_empty() || s.fin_pending) && !self.send_queue.contains(id) {
                self.send_queue.push_back(*id);
            }
        }
    }

    /// Number of live streams (send or receive half open).
    pub fn live(&self) -> usize {
        let mut n = self.send.len();
        n += self
            .recv
            .keys()
            .filter(|k| !self.send.contains_key(k))
            .count();
        n
    }
}

fn r_has_more(r: Option<&RecvStream>) -> bool {
    r.is_some_and(|r| r.fragments.contains_key(&r.read))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> StreamLimits {
        StreamLimits {
            max_data: 1000,
            stream_data_bidi_local: 500,
            stream_data_bidi_remote: 500,
            stream_data_uni: 500,
            max_streams_bidi: 2,
            max_streams_uni: 2,
        }
    }

    fn pair() -> (Streams, Streams) {
        let mut c = Streams::new(Side::Client, limits());
        let mut s = Streams::new(Side::Server, limits());
        c.set_peer_limits(limits());
        s.set_peer_limits(limits());
        (c, s)
    }

    #[test]
    fn data_flows_in_order_despite_reordering() {
        let (mut c, mut s) = pair();
        let id = c.open(Dir::Bi).unwrap();
        c.write(id, b"hello world", true).unwrap();
        let a = c.next_chunk(6).unwrap();
        let b = c.next_chunk(100).unwrap();
        assert!(b.fin);
        s.on_stream_frame(b.id, b.offset, &b.data, b.fin).unwrap();
        s.on_stream_frame(a.id, a.offset, &a.data, a.fin).unwrap();
        assert_eq!(s.poll_opened(), Some(id));
        assert_eq!(s.poll_readable(), Some(id));
        assert_eq!(s.read(id, 100).unwrap(), (b"hello world".to_vec(), true));
    }

    #[test]
    fn flow_control_and_stream_limits_are_enforced() {
        let (mut c, mut s) = pair();
        let id = c.open(Dir::Uni).unwrap();
        c.write(id, &[0u8; 800], false).unwrap();
        let mut sent = 0;
        while let Some(ch) = c.next_chunk(1000) {
            sent += ch.data.len();
        }
        assert_eq!(sent, 500, "stream credit caps the sender");
        assert_eq!(
            s.on_stream_frame(id, 0, &[0u8; 501], false)
                .unwrap_err()
                .code,
            ErrorCode::FLOW_CONTROL_ERROR
        );
        let too_many = StreamId::new(Side::Client, Dir::Bi, 2);
        assert_eq!(
            s.on_stream_frame(too_many, 0, b"x", false)
                .unwrap_err()
                .code,
            ErrorCode::STREAM_LIMIT_ERROR
        );
        c.open(Dir::Uni).unwrap();
        assert_eq!(c.open(Dir::Uni), Err(StreamApiError::LimitReached));
    }

    #[test]
    fn lost_data_is_resent_and_acked_data_released() {
        let (mut c, _) = pair();
        let id = c.open(Dir::Bi).unwrap();
        c.write(id, &[1u8; 300], true).unwrap();
        let a = c.next_chunk(100).unwrap();
        let b = c.next_chunk(100).unwrap();
        let d = c.next_chunk(100).unwrap();
        assert!(c.next_chunk(100).is_none());
        c.on_ack(id, a.offset..a.offset + 100, false);
        c.on_lost(id, b.offset..b.offset + 100, false);
        let again = c.next_chunk(1000).unwrap();
        assert_eq!((again.offset, again.data.len()), (100, 100));
        c.on_ack(id, 100..200, false);
        c.on_ack(id, 200..300, d.fin);
        assert_eq!(c.buffered_send_bytes(), 0);
    }
}
