//! LZ4 compression end to end in the simulator (PROTOCOL.md §14.5): chat messages shrink with the
//! built-in dictionary and arrive intact, compressible bulk moves in fewer bytes, incompressible
//! data is sampled and then left alone, `Off` sends nothing compressed, and compressed datagrams
//! arrive as sent. The wire-byte figures the tests print are the ones docs/BENCHMARKS.md quotes.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is a test failure

mod common;

use jsp_proto::compression::{CompressionConfig, CompressionMode};
use jsp_proto::connection::{QosClass, StreamPriority};
use jsp_proto::{ClientConfig, Dir, ServerConfig};

use common::{connected_pair, link20, pinned, random_bytes, run_until, secs};

fn configs(mode: CompressionMode) -> (ServerConfig, ClientConfig) {
    let (mut server, mut client) = pinned();
    let compression = CompressionConfig {
        mode,
        ..CompressionConfig::default()
    };
    server.transport.compression = compression.clone();
    client.transport.compression = compression;
    (server, client)
}

/// A chat message of about 100 bytes, different every time.
fn chat_message(i: usize) -> Vec<u8> {
    let texts = [
        "Are you free tomorrow?",
        "Sounds good, see you soon!",
        "Can you send me the file?",
        "I'll be there in 5 minutes.",
        "Thanks! Have a great day!",
    ];
    format!(
        "{{\"type\":\"message\",\"id\":\"m{i}\",\"channel\":\"general\",\"ts\":{},\"text\":\"{}\"}}",
        1_700_000_000_000u64 + i as u64 * 1337,
        texts[i % texts.len()]
    )
    .into_bytes()
}

/// Sends `count` chat messages one at a time on one `Chat` stream (each flushed before the next,
/// as a chat client does), returns what the server read and the bytes the client put on the wire
/// from the first message on.
fn send_chat(
    mode: CompressionMode,
    count: usize,
) -> (Vec<u8>, Vec<u8>, u64, usize, jsp_proto::ConnectionStats) {
    let (server, client) = configs(mode);
    let (mut pair, mut c, mut s) = connected_pair(81, server, client, link20());
    run_until(&mut pair.sim, &mut [&mut c, &mut s], secs(1), |_| false);
    let before = pair.sim.capture().bytes_sent_by(pair.client);
    let records_before = pair.sim.capture().records().len();
    let id = c
        .expect_conn(&mut pair.sim)
        .open_stream_with(Dir::Bi, StreamPriority::new(QosClass::Chat))
        .unwrap();
    let mut sent = Vec::new();
    for i in 0..count {
        let m = chat_message(i);
        let fin = i + 1 == count;
        c.expect_conn(&mut pair.sim)
            .stream_write(id, &m, fin)
            .unwrap();
        sent.extend_from_slice(&m);
        pair.sim.wake(pair.client);
        let want = sent.len();
        run_until(&mut pair.sim, &mut [&mut c, &mut s], secs(5), |a| {
            a[1].streams.get(&id.0).map_or(0, Vec::len) >= want
        });
    }
    run_until(&mut pair.sim, &mut [&mut c, &mut s], secs(5), |a| {
        a[1].finished.contains(&id.0)
    });
    let wire = pair.sim.capture().bytes_sent_by(pair.client) - before;
    // The median client datagram: one message per datagram (ACK-only datagrams are smaller).
    let mut sizes: Vec<usize> = pair.sim.capture().records()[records_before..]
        .iter()
        .filter(|r| r.origin == jsp_sim::Origin::Node(pair.client))
        .map(|r| r.payload.len())
        .collect();
    sizes.sort_unstable();
    let median = sizes.get(sizes.len() / 2).copied().unwrap_or(0);
    let stats = c.expect_conn(&mut pair.sim).stats();
    let got = s.streams.get(&id.0).cloned().unwrap_or_default();
    (sent, got, wire, median, stats)
}

#[test]
fn chat_messages_shrink_with_the_builtin_dictionary() {
    let n = 200;
    let (sent, got, wire_auto, median_auto, stats) = send_chat(CompressionMode::Auto, n);
    assert!(got == sent, "every chat message arrived intact");
    assert!(
        stats.compressed_frames_sent as usize >= n * 9 / 10,
        "nearly every message went compressed: {}",
        stats.compressed_frames_sent
    );
    let (sent_off, got_off, wire_off, median_off, stats_off) = send_chat(CompressionMode::Off, n);
    assert!(got_off == sent_off);
    assert_eq!(
        stats_off.compressed_frames_sent, 0,
        "Off sends nothing compressed"
    );
    let avg = sent.len() as f64 / n as f64;
    println!(
        "chat: {n} messages of {avg:.0} B avg: {:.1} wire bytes per message compressed, {:.1} plain (the client's ACKs included); median datagram {median_auto} B compressed, {median_off} B plain",
        wire_auto as f64 / n as f64,
        wire_off as f64 / n as f64
    );
    assert!(
        wire_auto * 100 < wire_off * 85,
        "compression saved at least 15% on the wire: {wire_auto} vs {wire_off}"
    );
}

/// Sends `data` on one Bulk stream and returns (what arrived, client wire bytes, client stats).
fn bulk(mode: CompressionMode, data: &[u8]) -> (Vec<u8>, u64, jsp_proto::ConnectionStats) {
    let (server, client) = configs(mode);
    let (mut pair, mut c, mut s) = connected_pair(82, server, client, link20());
    let before = pair.sim.capture().bytes_sent_by(pair.client);
    let got = common::transfer(&mut pair.sim, &mut c, &mut s, data, secs(120));
    let wire = pair.sim.capture().bytes_sent_by(pair.client) - before;
    (got, wire, c.expect_conn(&mut pair.sim).stats())
}

fn log_lines(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 200);
    let mut i = 0u64;
    while out.len() < len {
        out.extend_from_slice(
            format!(
                "2026-11-21T10:{:02}:{:02}.{:03}Z INFO http request path=/api/v1/items/{} status=200 bytes={}\n",
                (i / 60_000) % 60,
                (i / 1000) % 60,
                i % 1000,
                i % 977,
                (i * 7919) % 100_000
            )
            .as_bytes(),
        );
        i += 1;
    }
    out.truncate(len);
    out
}

#[test]
fn compressible_bulk_moves_in_fewer_bytes_and_arrives_intact() {
    let data = log_lines(4 << 20);
    let (got, wire, stats) = bulk(CompressionMode::Auto, &data);
    assert!(got == data, "4 MiB of logs arrived intact");
    println!(
        "logs: {} bytes in {} wire bytes ({:.2} wire bytes per useful byte), {} compressed frames",
        data.len(),
        wire,
        wire as f64 / data.len() as f64,
        stats.compressed_frames_sent
    );
    // These logs compress about four to one in large blocks; 0.37 wire bytes per byte once meant
    // the sender kept backing off on the short tails of its packets.
    assert!(
        wire * 3 < data.len() as u64,
        "less than a third of the bytes on the wire: {wire}"
    );
    // Packets carry more data than their size: fewer packets than plain data would need.
    let plain_packets = data.len() / stats.mtu.max(1200);
    assert!(
        (stats.packets_sent as usize) < plain_packets,
        "{} packets for {} bytes at MTU {}",
        stats.packets_sent,
        data.len(),
        stats.mtu
    );
}

#[test]
fn incompressible_data_is_sampled_then_left_alone() {
    let data = random_bytes(83, 2 << 20);
    let (got, wire, stats) = bulk(CompressionMode::Auto, &data);
    assert!(got == data);
    assert_eq!(stats.compressed_frames_sent, 0);
    // Exponential backoff from 16 KiB to 1 MiB: a handful of attempts for 2 MiB, where trying
    // every packet would be over a thousand.
    assert!(
        (1..=12).contains(&stats.compression_attempts),
        "{} attempts",
        stats.compression_attempts
    );
    // `On` tries every frame, and still never sends an expanded one.
    let (got_on, wire_on, stats_on) = bulk(CompressionMode::On, &data);
    assert!(got_on == data);
    assert_eq!(stats_on.compressed_frames_sent, 0);
    assert!(stats_on.compression_attempts > 500);
    assert!(wire <= wire_on + wire_on / 50, "{wire} vs {wire_on}");
}

#[test]
fn compressed_datagrams_arrive_as_sent() {
    let (server, client) = configs(CompressionMode::Auto);
    let (mut pair, mut c, mut s) = connected_pair(84, server, client, link20());
    let msgs: Vec<Vec<u8>> = (0..50)
        .map(|i| {
            format!("position x={i}.5 y=20.25 z=0.0 position x={i}.5 y=20.75 z=0.0 position x={i}.5 y=21.25 z=0.0")
                .into_bytes()
        })
        .collect();
    for m in &msgs {
        c.expect_conn(&mut pair.sim).send_datagram(m).unwrap();
        pair.sim.wake(pair.client);
        let want = s.datagrams.len() + 1;
        run_until(&mut pair.sim, &mut [&mut c, &mut s], secs(2), |a| {
            a[1].datagrams.len() >= want
        });
    }
    assert_eq!(s.datagrams, msgs);
    let stats = c.expect_conn(&mut pair.sim).stats();
    assert!(
        stats.compressed_frames_sent >= 45,
        "{}",
        stats.compressed_frames_sent
    );
    assert!(stats.compression_saved_bytes > 50 * 20);
    assert!(
        s.stats.compressed_frames_received >= 45,
        "{}",
        s.stats.compressed_frames_received
    );
}
