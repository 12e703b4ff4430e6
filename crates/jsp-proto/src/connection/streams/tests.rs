//! Unit tests for streams: ordering, flow control, limits, retransmission, resets, partial
//! reliability and window autotuning.

use super::*;

const T0: Instant = Instant::ZERO;
const RTT: Duration = Duration::from_millis(50);

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

fn buffers() -> BufferLimits {
    BufferLimits {
        scheduler: Default::default(),
        max_stream_window: 4000,
        max_connection_window: 8000,
        send_buffer: 10_000,
    }
}

fn pair() -> (Streams, Streams) {
    let mut c = Streams::new(Side::Client, limits(), buffers());
    let mut s = Streams::new(Side::Server, limits(), buffers());
    c.set_peer_limits(limits());
    s.set_peer_limits(limits());
    (c, s)
}

fn chunk_bytes(s: &Streams, ch: &StreamChunk) -> Vec<u8> {
    let mut v = Vec::new();
    s.copy_chunk(ch, &mut v);
    v
}

fn deliver(from: &mut Streams, to: &mut Streams, max: usize) {
    while let Some(ch) = from.next_chunk(max) {
        to.on_stream_frame(ch.id, ch.offset, &chunk_bytes(from, &ch), ch.fin, T0)
            .unwrap();
        from.on_ack(ch.id, ch.offset..ch.offset + ch.len as u64, ch.fin);
    }
}

#[test]
fn data_flows_in_order_despite_reordering() {
    let (mut c, mut s) = pair();
    let id = c.open(Dir::Bi, T0).unwrap();
    c.write(id, b"hello world", true, None).unwrap();
    let a = c.next_chunk(6).unwrap();
    let b = c.next_chunk(100).unwrap();
    assert!(b.fin);
    s.on_stream_frame(b.id, b.offset, &chunk_bytes(&c, &b), b.fin, T0)
        .unwrap();
    s.on_stream_frame(a.id, a.offset, &chunk_bytes(&c, &a), a.fin, T0)
        .unwrap();
    assert_eq!(s.poll_event(), Some(StreamEvent::Opened(id)));
    assert_eq!(s.poll_event(), Some(StreamEvent::Readable(id)));
    assert_eq!(
        s.read(id, 100, T0, RTT).unwrap(),
        (b"hello world".to_vec(), true)
    );
}

#[test]
fn flow_control_and_stream_limits_are_enforced() {
    let (mut c, mut s) = pair();
    let id = c.open(Dir::Uni, T0).unwrap();
    c.write(id, &[0u8; 800], false, None).unwrap();
    let mut sent = 0;
    while let Some(ch) = c.next_chunk(1000) {
        sent += ch.len;
    }
    assert_eq!(sent, 500, "stream credit caps the sender");
    assert_eq!(
        s.on_stream_frame(id, 0, &[0u8; 501], false, T0)
            .unwrap_err()
            .code,
        ErrorCode::FLOW_CONTROL_ERROR
    );
    let too_many = StreamId::new(Side::Client, Dir::Bi, 2);
    assert_eq!(
        s.on_stream_frame(too_many, 0, b"x", false, T0)
            .unwrap_err()
            .code,
        ErrorCode::STREAM_LIMIT_ERROR
    );
    c.open(Dir::Uni, T0).unwrap();
    assert_eq!(c.open(Dir::Uni, T0), Err(StreamApiError::LimitReached));
}

#[test]
fn lost_data_is_resent_and_acked_data_released() {
    let (mut c, _) = pair();
    let id = c.open(Dir::Bi, T0).unwrap();
    c.write(id, &[1u8; 300], true, None).unwrap();
    let a = c.next_chunk(100).unwrap();
    let b = c.next_chunk(100).unwrap();
    let d = c.next_chunk(100).unwrap();
    assert!(c.next_chunk(100).is_none());
    c.on_ack(id, a.offset..a.offset + 100, false);
    c.on_lost(id, b.offset..b.offset + 100, false);
    let again = c.next_chunk(1000).unwrap();
    assert_eq!((again.offset, again.len), (100, 100));
    c.on_ack(id, 100..200, false);
    c.on_ack(id, 200..300, d.fin);
    assert_eq!(c.buffered_send_bytes(), 0);
    assert_eq!(
        c.live(),
        1,
        "the receive half of the bidi stream is still open"
    );
}

#[test]
fn acknowledging_released_bytes_again_does_not_stall_the_stream() {
    // An FEC recovery report and then the ACK of a retransmission (or a spurious retransmission)
    // acknowledge the same bytes twice (PROTOCOL.md §19.6).
    let (mut c, _) = pair();
    let id = c.open(Dir::Uni, T0).unwrap();
    c.write(id, &[1u8; 300], true, None).unwrap();
    let a = c.next_chunk(100).unwrap();
    let b = c.next_chunk(100).unwrap();
    let d = c.next_chunk(100).unwrap();
    c.on_ack(id, 0..100, false);
    c.on_lost(id, b.offset..b.offset + 100, false);
    // The lost range is reported delivered (FEC): it is not retransmitted.
    c.on_ack(id, 100..200, false);
    assert!(
        c.next_chunk(1000).is_none(),
        "a delivered range was queued again"
    );
    // The first range is acknowledged a second time, below the released base.
    c.on_ack(id, a.offset..a.offset + 100, false);
    c.on_ack(id, 200..300, d.fin);
    assert_eq!(c.buffered_send_bytes(), 0);
    assert_eq!(c.live(), 0, "the stream was not released");
}

#[test]
fn send_buffer_is_bounded() {
    let mut c = Streams::new(
        Side::Client,
        limits(),
        BufferLimits {
            send_buffer: 100,
            ..buffers()
        },
    );
    c.set_peer_limits(limits());
    let id = c.open(Dir::Uni, T0).unwrap();
    assert_eq!(c.write(id, &[0; 150], false, None), Ok(100));
    assert_eq!(
        c.write(id, &[0; 10], false, None),
        Err(StreamApiError::Blocked)
    );
    let ch = c.next_chunk(60).unwrap();
    assert_eq!(ch.len, 60);
    c.on_ack(id, ch.offset..ch.offset + 60, false);
    assert_eq!(c.write(id, &[0; 100], false, None), Ok(60));
    // A message with a deadline is all or nothing.
    assert_eq!(
        c.write(id, &[0; 10], false, Some(T0 + RTT)),
        Err(StreamApiError::Blocked)
    );
}

#[test]
fn reset_and_stop_sending() {
    let (mut c, mut s) = pair();
    let id = c.open(Dir::Bi, T0).unwrap();
    c.write(id, b"abcdef", false, None).unwrap();
    let ch = c.next_chunk(3).unwrap();
    s.on_stream_frame(id, ch.offset, &chunk_bytes(&c, &ch), false, T0)
        .unwrap();
    c.reset(id, 7).unwrap();
    assert_eq!(c.buffered_send_bytes(), 0);
    assert!(
        c.next_chunk(100).is_none(),
        "nothing more is sent after a reset"
    );
    let (code, final_size) = c.reset_frame(id).unwrap();
    assert_eq!((code, final_size), (7, 3));
    assert_eq!(
        c.write(id, b"x", false, None),
        Err(StreamApiError::Stopped(7))
    );
    s.on_reset_frame(id, code, final_size, T0).unwrap();
    assert!(std::iter::from_fn(|| s.poll_event()).any(|e| e == StreamEvent::Reset { id, code: 7 }));
    // A final size below what was received is a violation.
    let id2 = c.open(Dir::Bi, T0).unwrap();
    s.on_stream_frame(id2, 0, b"0123456789", false, T0).unwrap();
    assert_eq!(
        s.on_reset_frame(id2, 1, 5, T0).unwrap_err().code,
        ErrorCode::PROTOCOL_ERROR
    );
    // STOP_SENDING makes the peer reset its side with our code.
    let id3 = StreamId::new(Side::Server, Dir::Bi, 0);
    s.open(Dir::Bi, T0).unwrap();
    s.write(id3, b"data", false, None).unwrap();
    s.on_stop_sending(id3, 42).unwrap();
    assert_eq!(s.reset_frame(id3), Some((42, 0)));
}

#[test]
fn expired_messages_are_skipped_and_the_receiver_learns_the_range() {
    let (mut c, mut s) = pair();
    let id = c.open(Dir::Uni, T0).unwrap();
    let d1 = T0 + Duration::from_millis(100);
    let d2 = T0 + Duration::from_millis(200);
    c.write(id, b"first", false, Some(d1)).unwrap();
    c.write(id, b"second", false, Some(d2)).unwrap();
    c.write(id, b"third", false, None).unwrap();
    assert_eq!(c.next_deadline(), Some(d1));
    // "first" is sent and lost; "second" and "third" arrive.
    let first = c.next_chunk(5).unwrap();
    assert_eq!(chunk_bytes(&c, &first), b"first");
    let rest = c.next_chunk(100).unwrap();
    s.on_stream_frame(id, rest.offset, &chunk_bytes(&c, &rest), false, T0)
        .unwrap();
    c.on_ack(id, rest.offset..rest.offset + rest.len as u64, false);
    c.on_lost(id, 0..5, false);
    c.expire(d1);
    assert_eq!(c.pending_skips, vec![(id, 0..5)]);
    assert!(
        c.next_chunk(100).is_none(),
        "the expired message is not retransmitted"
    );
    assert_eq!(
        c.buffered_send_bytes(),
        0,
        "abandoned and acknowledged bytes are released"
    );
    s.on_skip_frame(id, 0..5, T0).unwrap();
    let _ = std::iter::from_fn(|| s.poll_event()).count();
    let (data, fin) = s.read(id, 100, T0, RTT).unwrap();
    assert_eq!((data.as_slice(), fin), (&b"secondthird"[..], false));
    assert!(std::iter::from_fn(|| s.poll_event())
        .any(|e| e == StreamEvent::Skipped { id, range: 0..5 }));
    // A message acknowledged in time is not skipped.
    c.expire(d2);
    assert!(c.pending_skips.len() == 1);
}

#[test]
fn receive_window_grows_when_the_reader_keeps_up() {
    let (mut c, mut s) = pair();
    let id = c.open(Dir::Uni, T0).unwrap();
    c.write(id, &[9u8; 400], false, None).unwrap();
    deliver(&mut c, &mut s, 1000);
    let _ = std::iter::from_fn(|| s.poll_event()).count();
    assert_eq!(s.recv_window(id), Some(500));
    // Consumed within one RTT of the last grant: the window doubles (up to the maximum).
    let now = T0 + Duration::from_millis(10);
    s.read(id, 1000, now, RTT).unwrap();
    assert_eq!(s.recv_window(id), Some(1000));
    assert_eq!(s.recv_max_data(id), Some(400 + 1000));
    assert!(s.pending_max_stream_data.contains(&id));
}

/// Sends `len` bytes at `offset` of `id` from `s`'s peer, as a STREAM frame.
fn frame(s: &mut Streams, id: StreamId, offset: u64, len: usize) {
    s.on_stream_frame(id, offset, &vec![7u8; len], false, T0)
        .unwrap();
}

#[test]
fn a_hole_widens_the_window_while_the_reader_keeps_up() {
    let (mut c, mut s) = pair();
    let id = c.open(Dir::Uni, T0).unwrap();
    // Bytes 0..100 arrive and are read; 100..150 are lost; the rest of the window arrives
    // behind the hole.
    frame(&mut s, id, 0, 100);
    s.read(id, 1000, T0, RTT).unwrap();
    s.pending_max_stream_data.clear();
    s.pending_max_data = false;
    frame(&mut s, id, 150, 200);
    assert_eq!(s.recv_window(id), Some(500), "far from the credit's end");
    frame(&mut s, id, 350, 100);
    // Within a quarter window of the end (500): the window doubles and credit goes out now,
    // counted from what was read, although nothing more was.
    assert_eq!(s.recv_window(id), Some(1000));
    assert_eq!(s.recv_max_data(id), Some(100 + 1000));
    assert!(s.pending_max_stream_data.contains(&id));
    // The connection's window keeps room for twice the stream's.
    assert!(s.pending_max_data);
    assert_eq!(s.local_max_data(), 100 + 2000);
    // The peer may now send beyond the old credit without a flow-control error.
    frame(&mut s, id, 450, 500);
    // The retransmission fills the hole: everything is read in order.
    frame(&mut s, id, 100, 50);
    let (data, _) = s.read(id, 10_000, T0, RTT).unwrap();
    assert_eq!(data.len(), 850);
}

#[test]
fn a_slow_reader_behind_a_hole_does_not_widen_the_window() {
    let (mut c, mut s) = pair();
    let id = c.open(Dir::Uni, T0).unwrap();
    // 200 contiguous bytes sit unread (more than an eighth of the window): the reader is
    // behind, so a hole after them does not earn more credit.
    frame(&mut s, id, 0, 200);
    frame(&mut s, id, 250, 230);
    assert_eq!(s.recv_window(id), Some(500));
    assert_eq!(s.recv_max_data(id), Some(500));
    assert!(!s.pending_max_stream_data.contains(&id));
    assert!(!s.pending_max_data);
    // Beyond the credit is still an error.
    assert!(s.on_stream_frame(id, 480, &[0u8; 30], false, T0).is_err());
}

#[test]
fn a_reader_that_drained_the_stream_may_lag_by_half_a_window() {
    let (mut c, mut s) = pair();
    let id = c.open(Dir::Uni, T0).unwrap();
    frame(&mut s, id, 0, 50);
    s.read(id, 1000, T0, RTT).unwrap();
    s.pending_max_stream_data.clear();
    // 150 bytes arrived since the reader drained the stream (a batch it has not had its turn
    // for yet: more than an eighth, less than half a window), then a hole and data behind it
    // up to the credit's end: the window widens.
    frame(&mut s, id, 50, 150);
    frame(&mut s, id, 250, 200);
    assert_eq!(s.recv_window(id), Some(1000));
    assert_eq!(s.recv_max_data(id), Some(50 + 1000));
    // A reader that drained once but then let more than half a window pile up is behind.
    let (mut c, mut s) = pair();
    let id = c.open(Dir::Uni, T0).unwrap();
    frame(&mut s, id, 0, 50);
    s.read(id, 1000, T0, RTT).unwrap();
    frame(&mut s, id, 50, 300);
    frame(&mut s, id, 400, 100);
    assert_eq!(s.recv_window(id), Some(500));
    assert_eq!(s.recv_max_data(id), Some(500));
}

#[test]
fn many_streams_open_and_close_without_leaking() {
    let big = StreamLimits {
        max_streams_bidi: 10,
        max_streams_uni: 10,
        max_data: 1 << 30,
        ..limits()
    };
    let mut c = Streams::new(Side::Client, big, buffers());
    let mut s = Streams::new(Side::Server, big, buffers());
    c.set_peer_limits(big);
    s.set_peer_limits(big);
    for _ in 0..10_000 {
        let id = loop {
            match c.open(Dir::Uni, T0) {
                Ok(id) => break id,
                Err(StreamApiError::LimitReached) => {
                    assert!(s.pending_max_streams[1], "closed streams are granted back");
                    s.pending_max_streams[1] = false;
                    c.on_max_streams(Dir::Uni, s.local_max_streams(Dir::Uni));
                }
                Err(e) => panic!("{e}"),
            }
        };
        c.write(id, b"msg", true, None).unwrap();
        deliver(&mut c, &mut s, 1000);
        while let Some(ev) = s.poll_event() {
            if let StreamEvent::Readable(r) = ev {
                s.read(r, 100, T0, RTT).unwrap();
            }
        }
    }
    assert_eq!(c.live(), 0);
    assert_eq!(s.live(), 0);
    assert_eq!(c.buffered_send_bytes(), 0);
}

#[test]
fn a_full_packet_does_not_unschedule_a_stream() {
    let (mut c, _) = pair();
    let id = c.open(Dir::Uni, T0).unwrap();
    c.write(id, b"data", false, None).unwrap();
    assert!(c.next_chunk(0).is_none());
    assert!(c.has_pending(), "no room is not the same as blocked");
    let ch = c.next_chunk(100).unwrap();
    assert_eq!(chunk_bytes(&c, &ch), b"data".to_vec());
}

#[test]
fn read_into_fills_small_buffers_in_order_without_allocating() {
    let (mut c, mut s) = pair();
    let id = c.open(Dir::Bi, T0).unwrap();
    // Within the 500-byte stream window, in several frames.
    let data: Vec<u8> = (0..=255u8).cycle().take(480).collect();
    c.write(id, &data, true, None).unwrap();
    deliver(&mut c, &mut s, 70);
    let mut got = Vec::new();
    let mut buf = [0u8; 33];
    loop {
        let (n, fin) = s.read_into(id, &mut buf, T0, RTT).unwrap();
        assert!(n <= buf.len());
        got.extend_from_slice(&buf[..n]);
        if fin {
            break;
        }
        assert!(n > 0, "data is ready: a read must make progress");
    }
    assert_eq!(got, data);
    // The stream is released after its FIN was read.
    assert!(s.read_into(id, &mut buf, T0, RTT).is_err());
}
