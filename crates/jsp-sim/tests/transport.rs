//! Transport guarantees a user relies on, end to end in the simulator: graceful close delivers
//! every byte, every close reason arrives as sent, heartbeats keep an idle connection alive and
//! detect a vanished peer, stream resets and stop-sending, partially reliable messages honour
//! their deadline, and datagrams can drop the oldest instead of sending late.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is a test failure

use core::time::Duration;

use jsp_proto::{CloseReason, ConnectionError, Dir, ErrorCode, Event};
use jsp_sim::engine::{seeded_identity, seeded_provider, EndpointNode, Pair};
use jsp_sim::{LinkConfig, LossModel, Verdict};

fn pair(seed: u64, link: LinkConfig) -> Pair {
    let id = seeded_identity(seeded_provider(seed, 7).as_ref(), 4);
    let (server, client) = Pair::pinned_configs(id);
    let mut p = Pair::new(seed, server, client, link);
    assert!(p.drive_handshake(Duration::from_secs(5)), "handshake");
    p
}

fn link(ms: u64) -> LinkConfig {
    LinkConfig::with_delay(Duration::from_millis(ms))
}

fn server_events(p: &mut Pair) -> Vec<Event> {
    let s = p.server_conn().expect("server connection");
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn read_all(p: &mut Pair, id: jsp_proto::StreamId) -> (Vec<u8>, bool) {
    let s = p.server_conn().expect("server connection");
    let mut out = Vec::new();
    loop {
        let Ok((d, fin)) = s.stream_read(id, 1 << 20) else {
            return (out, false);
        };
        let empty = d.is_empty();
        out.extend(d);
        if fin {
            return (out, true);
        }
        if empty {
            return (out, false);
        }
    }
}

#[test]
fn graceful_close_delivers_every_byte_first() {
    let lossy = LinkConfig {
        loss: LossModel::Random(0.1),
        ..link(20)
    };
    let mut p = pair(31, lossy);
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let now = p.sim.now();
    let c = p.client_conn().unwrap();
    let id = c.open_stream(Dir::Uni).unwrap();
    c.stream_write(id, &data, true).unwrap();
    c.close(now, CloseReason::Normal, Some("done"));
    assert!(c.is_finishing(), "close waits for the data");
    assert!(c.open_stream(Dir::Uni).is_err(), "no new data after close");
    p.sim.wake(p.client);
    let mut got = Vec::new();
    let mut closed_with = None;
    for _ in 0..2000 {
        p.sim.run_for(Duration::from_millis(10));
        for ev in server_events(&mut p) {
            match ev {
                Event::StreamReadable(s) => got.extend(read_all(&mut p, s).0),
                Event::Closed(e) => closed_with = Some(e),
                _ => {}
            }
        }
        if closed_with.is_some() {
            break;
        }
    }
    assert_eq!(got.len(), data.len(), "all data arrived before the close");
    assert!(got == data);
    assert_eq!(
        closed_with,
        Some(ConnectionError::PeerClosed {
            reason: CloseReason::Normal,
            code: ErrorCode::NO_ERROR,
            message: "done".into()
        })
    );
}

#[test]
fn every_close_reason_arrives_as_sent() {
    let reasons = [
        CloseReason::Normal,
        CloseReason::GoingAway,
        CloseReason::ProtocolError,
        CloseReason::Timeout,
        CloseReason::RateLimitExceeded,
        CloseReason::InternalError,
        CloseReason::Application(4242),
    ];
    for (i, reason) in reasons.into_iter().enumerate() {
        let mut p = pair(40 + i as u64, link(5));
        let now = p.sim.now();
        p.client_conn().unwrap().abort(now, reason, Some("why"));
        p.sim.wake(p.client);
        p.sim.run_for(Duration::from_millis(50));
        let got = server_events(&mut p)
            .into_iter()
            .find_map(|e| match e {
                Event::Closed(ConnectionError::PeerClosed {
                    reason, message, ..
                }) => Some((reason, message)),
                _ => None,
            })
            .expect("the server saw the close");
        assert_eq!(got, (reason, "why".to_string()));
        let client_err = p.client_conn().unwrap().error().cloned();
        assert_eq!(client_err, Some(ConnectionError::LocallyClosed { reason }));
    }
}

#[test]
fn heartbeats_keep_an_idle_connection_alive() {
    let mut p = pair(50, link(10));
    // Two minutes without application traffic: idle timeout is 30 s, heartbeats every 5 s.
    p.sim.run_for(Duration::from_secs(120));
    assert!(p.client_conn().unwrap().is_established());
    assert!(p.server_conn().unwrap().is_established());
}

#[test]
fn a_vanished_peer_is_detected_by_missed_heartbeats() {
    let mut p = pair(51, link(10));
    // The server disappears: nothing reaches it and it never sends again.
    p.sim.add_middlebox(
        jsp_sim::Scope::Global,
        |_: jsp_proto::Instant, _: &mut jsp_sim::Datagram| Verdict::Drop,
    );
    let t0 = p.sim.now();
    let mut ended = None;
    for _ in 0..600 {
        p.sim.run_for(Duration::from_millis(100));
        let conn = p.client_conn().unwrap();
        if let Some(e) = conn.error() {
            ended = Some((e.clone(), p.sim.now() - t0));
            break;
        }
    }
    let (err, after) = ended.expect("the client noticed");
    assert_eq!(err, ConnectionError::TimedOut);
    // 3 missed 5-second heartbeats, well before the 30 s idle timeout.
    assert!(
        after >= Duration::from_secs(14) && after <= Duration::from_secs(17),
        "{after:?}"
    );
}

#[test]
fn reset_and_stop_sending_end_to_end() {
    let mut p = pair(52, link(10));
    let c = p.client_conn().unwrap();
    let a = c.open_stream(Dir::Bi).unwrap();
    c.stream_write(a, b"partial", false).unwrap();
    p.sim.wake(p.client);
    p.sim.run_for(Duration::from_millis(50));
    p.client_conn().unwrap().reset_stream(a, 17).unwrap();
    p.sim.wake(p.client);
    p.sim.run_for(Duration::from_millis(50));
    let evs = server_events(&mut p);
    assert!(
        evs.contains(&Event::StreamReset { id: a, code: 17 }),
        "{evs:?}"
    );
    // The server asks the client to stop sending on another stream.
    let c = p.client_conn().unwrap();
    let b = c.open_stream(Dir::Bi).unwrap();
    c.stream_write(b, b"more", false).unwrap();
    p.sim.wake(p.client);
    p.sim.run_for(Duration::from_millis(50));
    let _ = server_events(&mut p);
    p.server_conn().unwrap().stop_sending(b, 99).unwrap();
    p.sim.wake(p.server);
    p.sim.run_for(Duration::from_millis(50));
    let c = p.client_conn().unwrap();
    let evs: Vec<Event> = std::iter::from_fn(|| c.poll_event()).collect();
    assert!(
        evs.contains(&Event::StreamStopped { id: b, code: 99 }),
        "{evs:?}"
    );
    // Writing fails: with the peer's code while the stream is remembered, or as an unknown
    // stream once the client's RESET_STREAM was acknowledged and the stream released (how soon
    // that happens depends on the acknowledgement timing).
    let write = c.stream_write(b, b"x", false);
    assert!(
        matches!(
            write,
            Err(jsp_proto::StreamApiError::Stopped(99) | jsp_proto::StreamApiError::UnknownStream)
        ),
        "{write:?}"
    );
    p.sim.run_for(Duration::from_millis(50));
    let evs = server_events(&mut p);
    assert!(
        evs.contains(&Event::StreamReset { id: b, code: 99 }),
        "{evs:?}"
    );
}

#[test]
fn partially_reliable_messages_are_skipped_after_their_deadline() {
    // 30% loss and a 40 ms RTT: some 60 ms messages cannot be delivered in time.
    let lossy = LinkConfig {
        loss: LossModel::Random(0.3),
        ..link(20)
    };
    let mut p = pair(53, lossy);
    let c = p.client_conn().unwrap();
    let id = c.open_stream(Dir::Uni).unwrap();
    let mut sent = Vec::new();
    for i in 0..200u32 {
        let msg = format!("frame {i:04} ").into_bytes();
        p.client_conn()
            .unwrap()
            .stream_send_message(id, &msg, Duration::from_millis(60))
            .unwrap();
        sent.push(msg);
        p.sim.wake(p.client);
        p.sim.run_for(Duration::from_millis(10));
    }
    p.sim.run_for(Duration::from_secs(2));
    let s = p.server_conn().unwrap();
    let mut delivered = Vec::new();
    let mut skipped = Vec::new();
    loop {
        let evs: Vec<Event> = std::iter::from_fn(|| s.poll_event()).collect();
        if evs.is_empty() {
            break;
        }
        for ev in evs {
            match ev {
                Event::StreamReadable(sid) => {
                    while let Ok((d, _)) = s.stream_read(sid, 1 << 16) {
                        if d.is_empty() {
                            break;
                        }
                        delivered.extend(d);
                    }
                }
                Event::StreamSkipped { range, .. } => skipped.push(range),
                _ => {}
            }
        }
    }
    assert!(!skipped.is_empty(), "some messages missed their deadline");
    // Every byte is either delivered or reported skipped, exactly once, in order.
    let total: u64 = sent.iter().map(|m| m.len() as u64).sum();
    let skipped_bytes: u64 = skipped.iter().map(|r| r.end - r.start).sum();
    assert_eq!(delivered.len() as u64 + skipped_bytes, total);
    let all: Vec<u8> = sent.concat();
    let mut pos = 0u64;
    let mut di = 0usize;
    let mut sk = skipped.iter().peekable();
    while pos < total {
        if let Some(r) = sk.peek() {
            if r.start == pos {
                pos = r.end;
                sk.next();
                continue;
            }
        }
        assert_eq!(
            delivered[di], all[pos as usize],
            "byte {pos} delivered intact"
        );
        di += 1;
        pos += 1;
    }
}

#[test]
fn datagrams_can_drop_the_oldest_instead_of_sending_late() {
    let mut p = pair(54, link(10));
    let c = p.client_conn().unwrap();
    // Fill the queue without letting the simulator send.
    for i in 0..256u32 {
        c.send_datagram(&i.to_be_bytes()).unwrap();
    }
    assert_eq!(
        c.send_datagram(b"late"),
        Err(jsp_proto::DatagramError::QueueFull)
    );
    c.send_datagram_drop_oldest(b"newest").unwrap();
    assert_eq!(c.datagrams_dropped(), 1);
    p.sim.wake(p.client);
    p.sim.run_for(Duration::from_millis(200));
    let s = p.server_conn().unwrap();
    let mut got = Vec::new();
    while let Some(d) = s.read_datagram() {
        got.push(d);
    }
    assert!(
        !got.contains(&0u32.to_be_bytes().to_vec()),
        "the oldest was dropped"
    );
    assert_eq!(got.last().map(Vec::as_slice), Some(&b"newest"[..]));
    let node = p.sim.node::<EndpointNode>(p.server);
    assert!(node.endpoint.connection_count() == 1);
}

#[test]
fn a_system_message_overtakes_a_saturating_media_stream() {
    use jsp_proto::connection::{QosClass, StreamPriority};
    let slow = LinkConfig {
        bandwidth_bps: Some(10_000_000),
        queue_bytes: 64 * 1024,
        ..link(10)
    };
    let mut p = pair(55, slow);
    let c = p.client_conn().unwrap();
    let media = c
        .open_stream_with(Dir::Uni, StreamPriority::new(QosClass::Media))
        .unwrap();
    // Incompressible, like real video: LZ4 must not shrink the backlog away.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let video: Vec<u8> = (0..4 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect();
    let mut written = c.stream_write(media, &video, false).unwrap();
    // Let the media stream saturate the 10 Mbit/s link for a second.
    for _ in 0..100 {
        if let Some(c) = p.client_conn() {
            if written < video.len() {
                if let Ok(n) = c.stream_write(media, &video[written..], false) {
                    written += n;
                }
            }
        }
        p.sim.wake(p.client);
        p.sim.run_for(Duration::from_millis(10));
        for ev in server_events(&mut p) {
            if let Event::StreamReadable(s) = ev {
                let _ = read_all(&mut p, s);
            }
        }
    }
    let c = p.client_conn().unwrap();
    assert!(
        c.unacked_stream_bytes() > 1 << 20,
        "the media stream still has a backlog"
    );
    let system = c
        .open_stream_with(Dir::Uni, StreamPriority::new(QosClass::System))
        .unwrap();
    c.stream_write(system, b"shutdown in 5 minutes", true)
        .unwrap();
    let t0 = p.sim.now();
    p.sim.wake(p.client);
    let mut arrived = None;
    for _ in 0..200 {
        p.sim.run_for(Duration::from_millis(1));
        for ev in server_events(&mut p) {
            if ev == Event::StreamReadable(system) {
                let (d, fin) = read_all(&mut p, system);
                assert_eq!((d.as_slice(), fin), (&b"shutdown in 5 minutes"[..], true));
                arrived = Some(p.sim.now() - t0);
            } else if let Event::StreamReadable(s) = ev {
                let _ = read_all(&mut p, s);
            }
        }
        if arrived.is_some() {
            break;
        }
    }
    let latency = arrived.expect("the system message arrived");
    // One-way delay is 10 ms; the bottleneck queue (64 KiB at 10 Mbit/s) adds at most ~52 ms.
    // Without priorities it would wait behind megabytes of video.
    assert!(
        latency < Duration::from_millis(120),
        "system message took {latency:?}"
    );
}

#[test]
fn a_peer_that_ignores_flow_control_is_closed_with_a_protocol_error() {
    let mut p = pair(56, link(10));
    let c = p.client_conn().unwrap();
    c.fault_ignore_flow_control();
    let id = c.open_stream(Dir::Uni).unwrap();
    // 4 MiB against a 256 KiB stream window and a 1 MiB connection window, never read.
    c.stream_write(id, &vec![1u8; 4 << 20], false).unwrap();
    p.sim.wake(p.client);
    p.sim.run_for(Duration::from_secs(2));
    let closed = server_events(&mut p).into_iter().find_map(|e| match e {
        Event::Closed(err) => Some(err),
        _ => None,
    });
    assert!(
        matches!(
            closed,
            Some(ConnectionError::ProtocolViolation {
                code: ErrorCode::FLOW_CONTROL_ERROR,
                ..
            })
        ),
        "{closed:?}"
    );
    let client_err = p.client_conn().unwrap().error().cloned();
    assert!(
        matches!(
            client_err,
            Some(ConnectionError::PeerClosed {
                reason: CloseReason::ProtocolError,
                ..
            })
        ),
        "{client_err:?}"
    );
}

#[test]
fn a_slow_reader_bounds_the_senders_memory() {
    let mut p = pair(57, link(10));
    let c = p.client_conn().unwrap();
    let id = c.open_stream(Dir::Uni).unwrap();
    let mut accepted = 0usize;
    let chunk = vec![3u8; 1 << 20];
    for _ in 0..64 {
        match p.client_conn().unwrap().stream_write(id, &chunk, false) {
            Ok(n) => accepted += n,
            Err(jsp_proto::StreamApiError::Blocked) => {}
            Err(e) => panic!("{e}"),
        }
        p.sim.wake(p.client);
        p.sim.run_for(Duration::from_millis(20));
    }
    // The server never reads: the sender stops at its send buffer (16 MiB) + nothing more.
    let c = p.client_conn().unwrap();
    assert!(c.unacked_stream_bytes() <= 16 << 20);
    assert!(accepted <= (16 << 20) + (1 << 20), "accepted {accepted}");
}

/// Lets the simulator run a little, answers and finishes every stream the server sees, and
/// reads every answer on the client, so both halves of each stream complete.
fn pump_streams(p: &mut Pair) -> usize {
    p.sim.wake(p.client);
    p.sim.run_for(Duration::from_millis(5));
    let mut finished = 0;
    for ev in server_events(p) {
        if let Event::StreamReadable(s) = ev {
            let (d, fin) = read_all(p, s);
            if fin && d.len() == 4 {
                finished += 1;
            }
            let _ = p.server_conn().unwrap().stream_write(s, b"ok", true);
        }
    }
    let c = p.client_conn().unwrap();
    while let Some(ev) = c.poll_event() {
        if let Event::StreamReadable(s) = ev {
            while let Ok((d, fin)) = c.stream_read(s, 64) {
                if fin || d.is_empty() {
                    break;
                }
            }
        }
    }
    finished
}

#[test]
fn ten_thousand_streams_open_and_close_without_leaking() {
    let mut p = pair(58, link(1));
    let mut delivered = 0;
    for i in 0..10_000u32 {
        let id = loop {
            match p.client_conn().unwrap().open_stream(Dir::Bi) {
                Ok(id) => break id,
                Err(jsp_proto::StreamApiError::LimitReached) => delivered += pump_streams(&mut p),
                Err(e) => panic!("{e}"),
            }
        };
        p.client_conn()
            .unwrap()
            .stream_write(id, &i.to_be_bytes(), true)
            .unwrap();
        if i % 50 == 0 {
            delivered += pump_streams(&mut p);
        }
    }
    for _ in 0..200 {
        delivered += pump_streams(&mut p);
    }
    assert_eq!(delivered, 10_000, "every stream's message arrived");
    let c = p.client_conn().unwrap();
    assert_eq!(c.live_streams(), 0, "client stream state is released");
    assert_eq!(
        p.server_conn().unwrap().live_streams(),
        0,
        "server stream state is released"
    );
}
