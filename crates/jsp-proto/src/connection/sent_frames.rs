//! What a sent packet carried, so that on acknowledgement the right state is released and on loss
//! the right frames (not the packet) are queued again (PROTOCOL.md §15).

use std::ops::Range;

use super::streams::StreamId;

/// A stream range carried by a packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentStream {
    /// The stream.
    pub id: StreamId,
    /// Offsets carried.
    pub range: Range<u64>,
    /// Whether the frame carried FIN.
    pub fin: bool,
}

/// Retransmittable content of one packet. Empty collections do not allocate, and the stream
/// ranges of a typical packet (one or two) are stored inline: no allocation per packet.
#[derive(Clone, Debug, Default)]
pub struct SentFrames {
    /// CRYPTO data carried.
    pub crypto: Option<Range<u64>>,
    /// STREAM data carried.
    pub streams: smallvec::SmallVec<[SentStream; 2]>,
    /// Largest packet number acknowledged by an ACK frame in this packet.
    pub ack_largest: Option<u64>,
    /// HANDSHAKE_DONE was sent.
    pub handshake_done: bool,
    /// MAX_DATA was sent.
    pub max_data: bool,
    /// MAX_STREAM_DATA frames sent.
    pub max_stream_data: Vec<StreamId>,
    /// MAX_STREAMS (bidi, uni) sent.
    pub max_streams: [bool; 2],
    /// Sent in a 0-RTT packet (requeued if the server refuses 0-RTT).
    pub zero_rtt: bool,
    /// A PING was sent (not retransmitted).
    pub ping: bool,
    /// RESET_STREAM frames sent.
    pub resets: Vec<StreamId>,
    /// STOP_SENDING frames sent.
    pub stop_sending: Vec<(StreamId, u64)>,
    /// NEW_CONNECTION_ID frames sent (sequence numbers).
    pub new_cids: Vec<u64>,
    /// RETIRE_CONNECTION_ID frames sent.
    pub retires: Vec<u64>,
    /// A PATH_CHALLENGE was sent.
    pub path_challenge: bool,
    /// STREAM_SKIP frames sent.
    pub skips: Vec<(StreamId, Range<u64>)>,
}
