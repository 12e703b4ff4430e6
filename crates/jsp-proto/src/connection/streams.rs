//! Streams: identifiers, send buffers with retransmission, receive reassembly, credit-based flow
//! control per stream and per connection with windows that grow to the bandwidth-delay product,
//! stream-count limits, resets, and partially reliable messages with deadlines (PROTOCOL.md §14).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Range;

use core::time::Duration;

use super::scheduler::{QosClass, Scheduler, StreamPriority};
use crate::compression::Adaptive;
use crate::error::ErrorCode;
use crate::range_set::RangeSet;
use crate::time::Instant;
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
    /// The stream cannot be written (the peer's unidirectional stream, finished, or reset).
    #[error("the stream is not writable")]
    NotWritable,
    /// The peer's stream limit is reached; wait for it to allow more.
    #[error("stream limit reached")]
    LimitReached,
    /// The connection's send buffer is full; write again once the peer acknowledged data.
    #[error("send buffer full")]
    Blocked,
    /// The peer asked us to stop sending on this stream (STOP_SENDING with this code).
    #[error("the peer stopped the stream with code {0}")]
    Stopped(u64),
    /// The connection is not established or is closing.
    #[error("the connection is not open")]
    NotOpen,
}

/// Something that happened to a stream, for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// The peer opened a stream.
    Opened(StreamId),
    /// Data or the end of the stream can be read.
    Readable(StreamId),
    /// The peer reset its sending side: the stream ends without its remaining data.
    Reset {
        /// The stream.
        id: StreamId,
        /// The peer's application error code.
        code: u64,
    },
    /// The peer asked us to stop sending; our side was reset with its code.
    Stopped {
        /// The stream.
        id: StreamId,
        /// The peer's application error code.
        code: u64,
    },
    /// Everything we wrote on the stream, and its end, was acknowledged by the peer (bytes
    /// abandoned by a partial-reliability deadline count as done): nothing more will be sent.
    Acknowledged(StreamId),
    /// The sender abandoned `range` of the stream (partial reliability): those bytes will never
    /// be delivered; reading continues after it.
    Skipped {
        /// The stream.
        id: StreamId,
        /// The abandoned offsets.
        range: Range<u64>,
    },
}

#[derive(Debug, Clone, Copy)]
struct SendReset {
    code: u64,
    final_size: u64,
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
    /// Partially reliable messages: (start, end, deadline), in offset order.
    deadlines: VecDeque<(u64, u64, Instant)>,
    reset: Option<SendReset>,
    prio: StreamPriority,
    /// Whether this stream's data has been compressing (PROTOCOL.md §14.5).
    lz4: Adaptive,
}

impl SendStream {
    fn unacked(&self) -> u64 {
        self.data.len() as u64
    }
}

/// Flow-control autotuning: a peer whose data came within this fraction of a window of the
/// credit's end was blocked by it, and the window grows (up to its configured maximum).
const PEER_BLOCKED_FRACTION: u64 = 16;

/// Loss-aware autotuning: a reader with no more than this fraction of a window of contiguous
/// data unread keeps up with the network, and a window held back by a hole may grow.
const READER_BACKLOG_FRACTION: u64 = 8;

/// Loss-aware autotuning: data held behind a hole grows the window once the peer's data comes
/// within this fraction of a window of the credit's end.
const HOLE_NEAR_END_FRACTION: u64 = 4;

#[derive(Debug)]
struct RecvStream {
    /// Bytes at offsets `read..read + ready.len()`, in order: the common case appends here
    /// without allocating (the buffer is reused).
    ready: VecDeque<u8>,
    /// Out-of-order data beyond the contiguous end, by offset.
    fragments: BTreeMap<u64, Vec<u8>>,
    read: u64,
    /// Highest offset received (flow-control accounting).
    highest: u64,
    final_size: Option<u64>,
    /// Credit we granted.
    max_data: u64,
    /// Current window (grows with autotuning).
    window: u64,
    last_grant: Instant,
    /// Whether the reader's last read took every contiguous byte there was: data that arrived
    /// since is waiting for the reader's next turn, not for a slow reader.
    drained: bool,
    /// Ranges the sender abandoned.
    skips: RangeSet,
}

impl RecvStream {
    fn contiguous_end(&self) -> u64 {
        self.read + self.ready.len() as u64
    }

    /// Stores received bytes at `offset`: appended in place when they continue the contiguous
    /// data, kept as a fragment otherwise.
    fn insert(&mut self, offset: u64, data: &[u8]) {
        let end = offset + data.len() as u64;
        let cend = self.contiguous_end();
        if end <= cend || data.is_empty() {
            return;
        }
        if offset <= cend {
            let skip = usize::try_from(cend - offset).unwrap_or(usize::MAX);
            self.ready.extend(&data[skip.min(data.len())..]);
            self.absorb_fragments();
        } else {
            let keep = self
                .fragments
                .get(&offset)
                .is_none_or(|old| old.len() < data.len());
            if keep {
                self.fragments.insert(offset, data.to_vec());
            }
        }
    }

    /// Moves fragments that now touch the contiguous end into `ready`.
    fn absorb_fragments(&mut self) {
        loop {
            let cend = self.contiguous_end();
            let Some((&off, _)) = self.fragments.range(..=cend).next() else {
                return;
            };
            let Some(frag) = self.fragments.remove(&off) else {
                return;
            };
            let frag_end = off + frag.len() as u64;
            if frag_end > cend {
                let skip = usize::try_from(cend - off).unwrap_or(usize::MAX);
                self.ready.extend(&frag[skip.min(frag.len())..]);
            }
        }
    }

    fn has_readable(&self) -> bool {
        !self.ready.is_empty()
            || self.final_size == Some(self.read)
            || self.skips.contains(self.read)
    }
}

/// A chunk of stream data to put in a STREAM frame; its bytes are copied straight from the send
/// buffer into the packet with [`Streams::copy_chunk`] (no intermediate allocation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamChunk {
    /// The stream.
    pub id: StreamId,
    /// Offset of the first byte.
    pub offset: u64,
    /// Number of bytes.
    pub len: usize,
    /// Whether this chunk carries FIN.
    pub fin: bool,
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

/// Local buffer and window bounds.
#[derive(Debug, Clone)]
pub struct BufferLimits {
    /// Stream scheduling policy.
    pub scheduler: super::scheduler::SchedulerConfig,
    /// Largest per-stream receive window autotuning may reach.
    pub max_stream_window: u64,
    /// Largest connection receive window autotuning may reach.
    pub max_connection_window: u64,
    /// Most bytes buffered for sending (written, not yet acknowledged) over all streams.
    pub send_buffer: u64,
}

/// All streams of a connection.
#[derive(Debug)]
pub struct Streams {
    side: Side,
    limits: BufferLimits,
    send: HashMap<StreamId, SendStream>,
    recv: HashMap<StreamId, RecvStream>,
    next_local: [u64; 2],
    peer_max_streams: [u64; 2],
    local_max_streams: [u64; 2],
    peer_opened: [u64; 2],
    /// Streams with data or FIN to send, by QoS class, priority and weight.
    sched: Scheduler,
    events: VecDeque<StreamEvent>,
    peer_max_data: u64,
    data_sent: u64,
    local_max_data: u64,
    local_window: u64,
    last_conn_grant: Instant,
    data_received: u64,
    data_consumed: u64,
    stream_window: u64,
    peer_stream_window_bidi_local: u64,
    peer_stream_window_bidi_remote: u64,
    peer_stream_window_uni: u64,
    send_buffered: u64,
    /// Times a stream with new data found no flow-control credit.
    flow_blocked: u64,
    /// Streams with partially reliable messages, by earliest deadline.
    deadlines: BTreeSet<(Instant, StreamId)>,
    /// MAX_DATA to send.
    pub pending_max_data: bool,
    /// Streams whose MAX_STREAM_DATA should be sent.
    pub pending_max_stream_data: Vec<StreamId>,
    /// Directions whose MAX_STREAMS should be sent.
    pub pending_max_streams: [bool; 2],
    /// Streams whose RESET_STREAM should be (re)sent.
    pub pending_resets: Vec<StreamId>,
    /// STOP_SENDING frames to (re)send.
    pub pending_stop_sending: Vec<(StreamId, u64)>,
    /// STREAM_SKIP frames to (re)send.
    pub pending_skips: Vec<(StreamId, Range<u64>)>,
    /// Fault injection: send beyond the peer's credit.
    #[cfg(feature = "fault-injection")]
    pub ignore_peer_credit: bool,
}

fn di(dir: Dir) -> usize {
    match dir {
        Dir::Bi => 0,
        Dir::Uni => 1,
    }
}

impl Streams {
    /// Streams for `side`, granting `local` limits to the peer.
    pub fn new(side: Side, local: StreamLimits, limits: BufferLimits) -> Self {
        let sched = Scheduler::new(limits.scheduler.clone());
        Self {
            side,
            limits,
            send: HashMap::new(),
            recv: HashMap::new(),
            next_local: [0, 0],
            peer_max_streams: [0, 0],
            local_max_streams: [local.max_streams_bidi, local.max_streams_uni],
            peer_opened: [0, 0],
            sched,
            events: VecDeque::new(),
            peer_max_data: 0,
            data_sent: 0,
            local_max_data: local.max_data,
            local_window: local.max_data,
            last_conn_grant: Instant::ZERO,
            data_received: 0,
            data_consumed: 0,
            stream_window: local.stream_data_bidi_remote,
            peer_stream_window_bidi_local: 0,
            peer_stream_window_bidi_remote: 0,
            peer_stream_window_uni: 0,
            send_buffered: 0,
            deadlines: BTreeSet::new(),
            pending_max_data: false,
            pending_max_stream_data: Vec::new(),
            flow_blocked: 0,
            pending_max_streams: [false, false],
            pending_resets: Vec::new(),
            pending_stop_sending: Vec::new(),
            pending_skips: Vec::new(),
            #[cfg(feature = "fault-injection")]
            ignore_peer_credit: false,
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

    /// Whether events wait for the application.
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// The next stream event.
    pub fn poll_event(&mut self) -> Option<StreamEvent> {
        self.events.pop_front()
    }

    fn new_recv(&self, now: Instant) -> RecvStream {
        RecvStream {
            ready: VecDeque::new(),
            fragments: BTreeMap::new(),
            read: 0,
            highest: 0,
            final_size: None,
            max_data: self.stream_window,
            window: self.stream_window,
            last_grant: now,
            drained: false,
            skips: RangeSet::new(),
        }
    }

    /// Opens a local stream with the default priority.
    pub fn open(&mut self, dir: Dir, now: Instant) -> Result<StreamId, StreamApiError> {
        self.open_with(dir, StreamPriority::default(), now)
    }

    /// Opens a local stream with `prio` (QoS class, numeric priority, weight).
    pub fn open_with(
        &mut self,
        dir: Dir,
        prio: StreamPriority,
        now: Instant,
    ) -> Result<StreamId, StreamApiError> {
        let d = di(dir);
        if self.next_local[d] >= self.peer_max_streams[d] {
            return Err(StreamApiError::LimitReached);
        }
        let id = StreamId::new(self.side, dir, self.next_local[d]);
        self.next_local[d] += 1;
        let max_data = match dir {
            Dir::Bi => self.peer_stream_window_bidi_remote,
            Dir::Uni => self.peer_stream_window_uni,
        };
        self.send.insert(
            id,
            SendStream {
                max_data,
                prio,
                ..SendStream::default()
            },
        );
        if dir == Dir::Bi {
            let r = self.new_recv(now);
            self.recv.insert(id, r);
        }
        Ok(id)
    }

    /// Changes the scheduling priority of a stream's sending side.
    pub fn set_priority(
        &mut self,
        id: StreamId,
        prio: StreamPriority,
    ) -> Result<(), StreamApiError> {
        let s = self
            .send
            .get_mut(&id)
            .ok_or(StreamApiError::UnknownStream)?;
        s.prio = prio;
        if self.sched.contains(id) {
            self.sched.set_ready(id, prio);
        }
        Ok(())
    }

    /// Queues data (and FIN if `fin`) on a stream; with a `deadline` the data is one partially
    /// reliable message, abandoned if not acknowledged by then (PROTOCOL.md §14.2). Returns the
    /// bytes accepted, which is fewer than `data.len()` when the send buffer is nearly full
    /// (a message with a deadline is accepted whole or not at all).
    pub fn write(
        &mut self,
        id: StreamId,
        data: &[u8],
        fin: bool,
        deadline: Option<Instant>,
    ) -> Result<usize, StreamApiError> {
        let room = self.limits.send_buffer.saturating_sub(self.send_buffered);
        let s = self
            .send
            .get_mut(&id)
            .ok_or(StreamApiError::UnknownStream)?;
        if let Some(r) = s.reset {
            return Err(StreamApiError::Stopped(r.code));
        }
        if s.fin {
            return Err(StreamApiError::NotWritable);
        }
        let take = if deadline.is_some() && (data.len() as u64) > room {
            0
        } else {
            usize::try_from(room).unwrap_or(usize::MAX).min(data.len())
        };
        if take == 0 && !data.is_empty() {
            return Err(StreamApiError::Blocked);
        }
        let start = s.end;
        s.data.extend(&data[..take]);
        s.end += take as u64;
        self.send_buffered += take as u64;
        if s.end > start {
            s.pending.insert(start..s.end);
        }
        if let Some(d) = deadline {
            if s.end > start {
                s.deadlines.push_back((start, s.end, d));
                self.deadlines.insert((d, id));
            }
        }
        if fin && take == data.len() {
            s.fin = true;
            s.fin_pending = true;
        }
        self.sched.set_ready(id, s.prio);
        Ok(take)
    }

    /// Bytes written and not yet acknowledged, over all streams.
    pub fn buffered_send_bytes(&self) -> u64 {
        self.send_buffered
    }

    /// Whether any stream has something sendable now.
    pub fn has_pending(&self) -> bool {
        !self.sched.is_empty()
    }

    /// Whether control frames (resets, stop-sending, skips, credit) wait to be sent.
    pub fn has_pending_control(&self) -> bool {
        self.pending_max_data
            || !self.pending_max_stream_data.is_empty()
            || self.pending_max_streams.iter().any(|b| *b)
            || !self.pending_resets.is_empty()
            || !self.pending_stop_sending.is_empty()
            || !self.pending_skips.is_empty()
    }

    /// Takes the next chunk to send, of at most `max_len` bytes of data, respecting flow control.
    pub fn next_chunk(&mut self, max_len: usize) -> Option<StreamChunk> {
        self.next_chunk_sized(|_| max_len)
    }

    /// As [`Streams::next_chunk`], with the most bytes to take chosen per stream from its
    /// compression state (more than fits uncompressed when its data has been shrinking).
    pub fn next_chunk_sized(&mut self, size: impl Fn(&Adaptive) -> usize) -> Option<StreamChunk> {
        loop {
            let id = self.sched.next()?;
            #[allow(unused_mut)]
            let mut conn_credit = self.peer_max_data.saturating_sub(self.data_sent);
            #[cfg(feature = "fault-injection")]
            if self.ignore_peer_credit {
                conn_credit = u64::MAX / 4;
            }
            #[cfg(feature = "fault-injection")]
            let ignore = self.ignore_peer_credit;
            let Some(s) = self.send.get_mut(&id) else {
                self.sched.remove(id);
                continue;
            };
            #[cfg(feature = "fault-injection")]
            if ignore {
                s.max_data = u64::MAX / 4;
            }
            if s.reset.is_some() {
                self.sched.remove(id);
                continue;
            }
            let max_len = size(&s.lz4);
            if max_len == 0 {
                return None; // no room in this packet: the stream stays scheduled
            }
            let mut chunk = None;
            let first = s.pending.iter().next();
            if let Some(r) = first {
                // New bytes (beyond max_sent) consume connection credit; retransmits do not.
                let mut end = r.end.min(r.start + max_len as u64).min(s.max_data);
                if end > s.max_sent {
                    let new_allowed = s.max_sent.max(r.start) + conn_credit;
                    end = end.min(new_allowed);
                }
                if end > r.start {
                    s.pending.remove(r.start..end);
                    let len = usize::try_from(end - r.start).unwrap_or(0);
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
                        len,
                        fin,
                    });
                }
            } else if s.fin_pending {
                s.fin_pending = false;
                chunk = Some(StreamChunk {
                    id,
                    offset: s.end,
                    len: 0,
                    fin: true,
                });
            }
            let more = !s.pending.is_empty() || s.fin_pending;
            match &chunk {
                Some(c) => {
                    self.sched.on_sent(id, c.len + 8);
                    if !more {
                        self.sched.remove(id);
                    }
                    return chunk;
                }
                // Blocked by flow control: MAX_DATA / MAX_STREAM_DATA make it ready again.
                None => {
                    if !s.pending.is_empty() {
                        self.flow_blocked += 1;
                    }
                    self.sched.remove(id);
                }
            }
        }
    }

    /// Times a stream had new data but no flow-control credit (for [`super::ConnectionStats`]).
    pub fn flow_control_blocked(&self) -> u64 {
        self.flow_blocked
    }

    /// The QoS class of a stream we send on (for FEC eligibility, PROTOCOL.md §19.5).
    pub fn send_class(&self, id: StreamId) -> Option<super::QosClass> {
        self.send.get(&id).map(|s| s.prio.class)
    }

    /// Appends the bytes of `chunk` (returned by [`Streams::next_chunk`]) to `out`.
    pub fn copy_chunk(&self, chunk: &StreamChunk, out: &mut Vec<u8>) {
        let Some(s) = self.send.get(&chunk.id) else {
            return;
        };
        let from = usize::try_from(chunk.offset.saturating_sub(s.base)).unwrap_or(usize::MAX);
        let to = from.saturating_add(chunk.len).min(s.data.len());
        let from = from.min(to);
        let (a, b) = s.data.as_slices();
        if from < a.len() {
            out.extend_from_slice(&a[from..to.min(a.len())]);
        }
        if to > a.len() {
            out.extend_from_slice(&b[from.saturating_sub(a.len())..to - a.len()]);
        }
    }

    /// The compression state and QoS class of a sending stream.
    pub fn compression_state(&mut self, id: StreamId) -> Option<(&mut Adaptive, QosClass)> {
        self.send.get_mut(&id).map(|s| (&mut s.lz4, s.prio.class))
    }

    /// A sent chunk was acknowledged.
    pub fn on_ack(&mut self, id: StreamId, range: Range<u64>, fin: bool) {
        let Some(s) = self.send.get_mut(&id) else {
            return;
        };
        // The same bytes can be acknowledged twice (an FEC recovery report, PROTOCOL.md §19.6,
        // then the ACK of a retransmission, or a spurious retransmission): what is below `base`
        // is already released, and must not be recorded again (it would sit in front of the
        // acknowledged set and stop `base` from advancing).
        let range = range.start.max(s.base)..range.end.max(s.base);
        // A range queued for retransmission that turns out to be delivered is not sent again.
        s.pending.remove(range.clone());
        if !range.is_empty() {
            s.acked.insert(range);
        }
        if fin {
            s.fin_acked = true;
            s.fin_pending = false;
        }
        let first = s.acked.iter().next();
        if let Some(first) = first {
            if first.start <= s.base && first.end > s.base {
                let n = usize::try_from(first.end - s.base).unwrap_or(0);
                let n = n.min(s.data.len());
                s.data.drain(..n);
                self.send_buffered -= n as u64;
                s.base = first.end;
                s.acked.remove_below(s.base);
            }
        }
        while s.deadlines.front().is_some_and(|m| m.1 <= s.base) {
            s.deadlines.pop_front();
        }
        if s.fin_acked && s.base == s.end {
            self.release_send(id);
            self.events.push_back(StreamEvent::Acknowledged(id));
        }
    }

    fn release_send(&mut self, id: StreamId) {
        self.sched.remove(id);
        if let Some(s) = self.send.remove(&id) {
            self.send_buffered -= s.unacked();
            for (_, _, d) in s.deadlines {
                self.deadlines.remove(&(d, id));
            }
        }
        self.maybe_release(id);
    }

    /// A sent chunk was lost: queue its unacknowledged part again.
    pub fn on_lost(&mut self, id: StreamId, range: Range<u64>, fin: bool) {
        let Some(s) = self.send.get_mut(&id) else {
            return;
        };
        if s.reset.is_some() {
            return;
        }
        s.pending
            .insert_difference(range.start.max(s.base)..range.end, &s.acked);
        if fin && !s.fin_acked {
            s.fin_pending = true;
        }
        self.sched.set_ready(id, s.prio);
    }

    fn maybe_release(&mut self, id: StreamId) {
        if self.send.contains_key(&id) || self.recv.contains_key(&id) {
            return;
        }
        if id.initiator() != self.side {
            // Grant a new stream for each one closed.
            let d = di(id.dir());
            self.local_max_streams[d] += 1;
            self.pending_max_streams[d] = true;
        }
    }

    // ---- partial reliability (PROTOCOL.md §14.2) ----

    /// The earliest message deadline, for the connection's timer.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.iter().next().map(|(d, _)| *d)
    }

    /// Abandons messages whose deadline passed before they were acknowledged: their bytes are
    /// dropped from the send buffer and the receiver is told to skip them.
    pub fn expire(&mut self, now: Instant) {
        while let Some(&(deadline, id)) = self.deadlines.iter().next() {
            if deadline > now {
                break;
            }
            self.deadlines.remove(&(deadline, id));
            let Some(s) = self.send.get_mut(&id) else {
                continue;
            };
            let Some(pos) = s.deadlines.iter().position(|m| m.2 == deadline) else {
                continue;
            };
            let Some((start, end, _)) = s.deadlines.remove(pos) else {
                continue;
            };
            let start = start.max(s.base);
            if start >= end {
                continue; // fully acknowledged in time
            }
            // Everything in start..end that is not acknowledged is abandoned.
            s.pending.remove(start..end);
            s.acked.insert(start..end);
            if end > s.max_sent {
                self.data_sent += end - s.max_sent;
                s.max_sent = end;
            }
            self.pending_skips.push((id, start..end));
            // Release the front of the buffer if it is now acknowledged.
            let first = s.acked.iter().next();
            if let Some(first) = first {
                if first.start <= s.base && first.end > s.base {
                    let n = usize::try_from(first.end - s.base)
                        .unwrap_or(0)
                        .min(s.data.len());
                    s.data.drain(..n);
                    self.send_buffered -= n as u64;
                    s.base = first.end;
                    s.acked.remove_below(s.base);
                }
            }
            if s.fin && s.base == s.end && s.fin_acked {
                self.release_send(id);
                self.events.push_back(StreamEvent::Acknowledged(id));
            }
        }
    }

    /// A STREAM_SKIP we sent was lost: send it again.
    pub fn on_skip_lost(&mut self, id: StreamId, range: Range<u64>) {
        self.pending_skips.push((id, range));
    }

    /// Handles a STREAM_SKIP frame.
    pub fn on_skip_frame(
        &mut self,
        id: StreamId,
        range: Range<u64>,
        now: Instant,
    ) -> Result<(), StreamError> {
        self.check_receivable(id)?;
        self.ensure_peer_stream(id, now)?;
        let Some(r) = self.recv.get_mut(&id) else {
            return Ok(());
        };
        if r.final_size.is_some_and(|f| range.end > f) {
            return Err(err(ErrorCode::PROTOCOL_ERROR, "skip beyond final size"));
        }
        if range.end > r.max_data {
            return Err(err(ErrorCode::FLOW_CONTROL_ERROR, "skip beyond credit"));
        }
        if range.end > r.highest {
            self.data_received += range.end - r.highest;
            r.highest = range.end;
            if self.data_received > self.local_max_data {
                return Err(err(
                    ErrorCode::FLOW_CONTROL_ERROR,
                    "connection credit exceeded",
                ));
            }
        }
        if range.end > r.read {
            r.skips.insert(range.start.max(r.read)..range.end);
            if !self.events.contains(&StreamEvent::Readable(id)) {
                self.events.push_back(StreamEvent::Readable(id));
            }
        }
        Ok(())
    }

    // ---- resets ----

    /// Resets our sending side with `code` (RESET_STREAM): unsent and unacknowledged data is
    /// abandoned.
    pub fn reset(&mut self, id: StreamId, code: u64) -> Result<(), StreamApiError> {
        let s = self
            .send
            .get_mut(&id)
            .ok_or(StreamApiError::UnknownStream)?;
        if s.reset.is_some() {
            return Ok(());
        }
        s.reset = Some(SendReset {
            code,
            final_size: s.max_sent,
        });
        s.pending.clear();
        s.fin_pending = false;
        let freed = s.unacked();
        s.data.clear();
        self.send_buffered -= freed;
        self.sched.remove(id);
        self.pending_resets.push(id);
        Ok(())
    }

    /// The RESET_STREAM frame to send for `id`: (code, final size).
    pub fn reset_frame(&self, id: StreamId) -> Option<(u64, u64)> {
        self.send
            .get(&id)
            .and_then(|s| s.reset)
            .map(|r| (r.code, r.final_size))
    }

    /// Our RESET_STREAM was acknowledged: the sending side is done.
    pub fn on_reset_acked(&mut self, id: StreamId) {
        if self.send.get(&id).is_some_and(|s| s.reset.is_some()) {
            self.release_send(id);
        }
    }

    /// Asks the peer to stop sending on `id` (STOP_SENDING); buffered incoming data is dropped.
    pub fn stop_sending(&mut self, id: StreamId, code: u64) -> Result<(), StreamApiError> {
        if !self.recv.contains_key(&id) {
            return Err(StreamApiError::UnknownStream);
        }
        self.pending_stop_sending.push((id, code));
        Ok(())
    }

    /// Handles RESET_STREAM from the peer.
    pub fn on_reset_frame(
        &mut self,
        id: StreamId,
        code: u64,
        final_size: u64,
        now: Instant,
    ) -> Result<(), StreamError> {
        self.check_receivable(id)?;
        self.ensure_peer_stream(id, now)?;
        let Some(r) = self.recv.get_mut(&id) else {
            return Ok(());
        };
        if final_size < r.highest || r.final_size.is_some_and(|f| f != final_size) {
            return Err(err(
                ErrorCode::PROTOCOL_ERROR,
                "reset with an inconsistent final size",
            ));
        }
        if final_size > r.max_data {
            return Err(err(ErrorCode::FLOW_CONTROL_ERROR, "reset beyond credit"));
        }
        self.data_received += final_size - r.highest;
        // Unread bytes no longer count against the connection window.
        self.data_consumed += final_size - r.read;
        if self.data_received > self.local_max_data {
            return Err(err(
                ErrorCode::FLOW_CONTROL_ERROR,
                "connection credit exceeded",
            ));
        }
        self.recv.remove(&id);
        self.events.push_back(StreamEvent::Reset { id, code });
        self.maybe_release(id);
        Ok(())
    }

    /// Handles STOP_SENDING from the peer: reset our sending side with its code.
    pub fn on_stop_sending(&mut self, id: StreamId, code: u64) -> Result<(), StreamError> {
        if id.dir() == Dir::Uni && id.initiator() != self.side {
            return Err(err(
                ErrorCode::STREAM_STATE_ERROR,
                "STOP_SENDING for a receive-only stream",
            ));
        }
        if id.initiator() == self.side && id.index() >= self.next_local[di(id.dir())] {
            return Err(err(ErrorCode::STREAM_STATE_ERROR, "stream not opened yet"));
        }
        if self.send.contains_key(&id) {
            let _ = self.reset(id, code);
            self.events.push_back(StreamEvent::Stopped { id, code });
        }
        Ok(())
    }

    // ---- receiving ----

    fn check_receivable(&self, id: StreamId) -> Result<(), StreamError> {
        if id.initiator() == self.side && id.dir() == Dir::Uni {
            return Err(err(
                ErrorCode::STREAM_STATE_ERROR,
                "data on our own unidirectional stream",
            ));
        }
        Ok(())
    }

    /// Handles a STREAM frame.
    pub fn on_stream_frame(
        &mut self,
        id: StreamId,
        offset: u64,
        data: &[u8],
        fin: bool,
        now: Instant,
    ) -> Result<(), StreamError> {
        self.check_receivable(id)?;
        self.ensure_peer_stream(id, now)?;
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
        r.insert(offset, data);
        if r.has_readable() && !self.events.contains(&StreamEvent::Readable(id)) {
            self.events.push_back(StreamEvent::Readable(id));
        }
        self.widen_behind_hole(id);
        Ok(())
    }

    /// Loss-aware autotuning (PROTOCOL.md §14): a lost packet leaves a hole that holds back every
    /// byte received after it until the retransmission arrives, about one and a half round trips
    /// later, and that held-back data eats the window. When a stream's data sits behind a hole,
    /// its reader keeps up with the contiguous data, and the peer's data came within a quarter
    /// of a window of the credit's end, the window (and the connection's, on the same terms)
    /// doubles up to its configured maximum and the new credit goes out at once, instead of
    /// after the hole is filled and read: a sender is not stopped by a window sized for a
    /// loss-free path. The reader keeps up when no more than an eighth of a window waits for it,
    /// or up to half a window arrived since its last read drained every contiguous byte (it has
    /// not had its turn yet). A reader that falls behind leaves contiguous data unread and no
    /// window grows, so the memory a slow reader commits stays bounded by the window it had.
    fn widen_behind_hole(&mut self, id: StreamId) {
        let Some(r) = self.recv.get_mut(&id) else {
            return;
        };
        let unread = r.ready.len() as u64;
        let reader_keeps_up =
            unread <= r.window / READER_BACKLOG_FRACTION || (r.drained && unread <= r.window / 2);
        if r.fragments.is_empty() || !reader_keeps_up || r.final_size.is_some() {
            return;
        }
        if r.max_data - r.highest < r.window / HOLE_NEAR_END_FRACTION
            && r.window < self.limits.max_stream_window
        {
            r.window = (r.window * 2).min(self.limits.max_stream_window);
            r.max_data = r.max_data.max(r.read + r.window);
            if !self.pending_max_stream_data.contains(&id) {
                self.pending_max_stream_data.push(id);
            }
        }
        // The connection's window keeps room for twice the widened stream's, so the stream's
        // new credit is not cut short by the connection's.
        let stream_room = r.window.saturating_mul(2);
        let conn_near_end =
            self.local_max_data - self.data_received < self.local_window / HOLE_NEAR_END_FRACTION;
        if (conn_near_end || self.local_window < stream_room)
            && self.local_window < self.limits.max_connection_window
        {
            self.local_window = (self.local_window * 2)
                .max(stream_room)
                .min(self.limits.max_connection_window);
            self.local_max_data = self
                .local_max_data
                .max(self.data_consumed + self.local_window);
            self.pending_max_data = true;
        }
    }

    fn ensure_peer_stream(&mut self, id: StreamId, now: Instant) -> Result<(), StreamError> {
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
            let recv = self.new_recv(now);
            self.recv.insert(sid, recv);
            if id.dir() == Dir::Bi {
                let send = SendStream {
                    max_data: self.peer_stream_window_bidi_local,
                    ..SendStream::default()
                };
                self.send.insert(sid, send);
            }
            self.events.push_back(StreamEvent::Opened(sid));
        }
        self.peer_opened[d] = id.index() + 1;
        Ok(())
    }

    /// Reads up to `max` contiguous bytes: `(data, fin)`; `fin` is true once the last byte of the
    /// stream has been read. Reading stops at an abandoned range; the next read reports it
    /// ([`StreamEvent::Skipped`]) and continues after it. `srtt` drives window autotuning.
    pub fn read(
        &mut self,
        id: StreamId,
        max: usize,
        now: Instant,
        srtt: Duration,
    ) -> Result<(Vec<u8>, bool), StreamApiError> {
        let mut out = Vec::new();
        let (_, fin) = self.read_with(id, max, now, srtt, |chunk| out.extend_from_slice(chunk))?;
        Ok((out, fin))
    }

    /// [`Streams::read`] into `buf` without allocating: `(bytes written, fin)`.
    pub fn read_into(
        &mut self,
        id: StreamId,
        buf: &mut [u8],
        now: Instant,
        srtt: Duration,
    ) -> Result<(usize, bool), StreamApiError> {
        let mut at = 0;
        self.read_with(id, buf.len(), now, srtt, |chunk| {
            buf[at..at + chunk.len()].copy_from_slice(chunk);
            at += chunk.len();
        })
    }

    /// The read loop: hands up to `max` contiguous bytes to `emit` in order (at most `max` in
    /// all) and returns `(bytes emitted, fin)`.
    fn read_with(
        &mut self,
        id: StreamId,
        max: usize,
        now: Instant,
        srtt: Duration,
        mut emit: impl FnMut(&[u8]),
    ) -> Result<(usize, bool), StreamApiError> {
        let r = self
            .recv
            .get_mut(&id)
            .ok_or(StreamApiError::UnknownStream)?;
        let mut emitted = 0usize;
        let mut skipped = None;
        while emitted < max {
            let first_skip = r.skips.iter().next();
            if let Some(s) = first_skip.clone().filter(|s| s.start <= r.read) {
                if emitted > 0 {
                    break; // deliver what precedes the gap first
                }
                let range = r.read..s.end;
                r.skips.remove(range.clone());
                let drop = usize::try_from(range.end - r.read)
                    .unwrap_or(usize::MAX)
                    .min(r.ready.len());
                r.ready.drain(..drop);
                if r.ready.is_empty() {
                    // The abandoned range reached past the contiguous data: forget what lies
                    // inside it.
                    r.fragments
                        .retain(|&off, frag| off + frag.len() as u64 > range.end);
                }
                r.read = range.end;
                r.absorb_fragments();
                skipped = Some(range);
                continue;
            }
            if r.ready.is_empty() {
                break;
            }
            let mut take = (max - emitted).min(r.ready.len());
            if let Some(s) = first_skip {
                take = take.min(usize::try_from(s.start - r.read).unwrap_or(usize::MAX));
            }
            let (a, b) = r.ready.as_slices();
            let from_a = take.min(a.len());
            emit(&a[..from_a]);
            if take > from_a {
                emit(&b[..take - from_a]);
            }
            emitted += take;
            r.ready.drain(..take);
            r.read += take as u64;
        }
        let consumed_to = r.read;
        let fin = r.final_size == Some(r.read);
        if let Some(range) = skipped.clone() {
            self.events.push_back(StreamEvent::Skipped { id, range });
        }
        // Stream credit: re-grant when half the window was consumed; grow the window when the
        // previous one lasted less than ~2 RTTs (the reader keeps up: window < BDP), or when the
        // peer's data reached the credit's end (it was blocked: on a lossy path the data held
        // behind a hole while its retransmission travels needs room too).
        let mut grant = false;
        if !fin && r.max_data - consumed_to < r.window / 2 {
            let peer_blocked =
                r.highest >= r.max_data.saturating_sub(r.window / PEER_BLOCKED_FRACTION);
            if peer_blocked || now.saturating_duration_since(r.last_grant) < srtt * 2 {
                r.window = (r.window * 2).min(self.limits.max_stream_window);
            }
            r.max_data = consumed_to + r.window;
            r.last_grant = now;
            grant = true;
        }
        let more = !r.ready.is_empty() || r.skips.contains(r.read);
        r.drained = !more;
        if grant {
            self.pending_max_stream_data.push(id);
        }
        let consumed = emitted as u64 + skipped.map_or(0, |s| s.end - s.start);
        self.data_consumed += consumed;
        if self.local_max_data - self.data_consumed < self.local_window / 2 {
            let peer_blocked = self.data_received
                >= self
                    .local_max_data
                    .saturating_sub(self.local_window / PEER_BLOCKED_FRACTION);
            if peer_blocked || now.saturating_duration_since(self.last_conn_grant) < srtt * 2 {
                self.local_window = (self.local_window * 2).min(self.limits.max_connection_window);
            }
            self.local_max_data = self.data_consumed + self.local_window;
            self.last_conn_grant = now;
            self.pending_max_data = true;
        }
        if fin {
            self.recv.remove(&id);
            self.maybe_release(id);
        } else if more && !self.events.contains(&StreamEvent::Readable(id)) {
            self.events.push_back(StreamEvent::Readable(id));
        }
        Ok((emitted, fin))
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
        if max > self.peer_max_data {
            self.peer_max_data = max;
            self.requeue_all();
        }
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
            if !s.pending.is_empty() || s.fin_pending {
                self.sched.set_ready(id, s.prio);
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
            if !s.pending.is_empty() || s.fin_pending {
                self.sched.set_ready(*id, s.prio);
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

    /// The current receive window of `id` (for tests and stats).
    pub fn recv_window(&self, id: StreamId) -> Option<u64> {
        self.recv.get(&id).map(|r| r.window)
    }
}

#[cfg(test)]
mod tests;
