//! A garbage flood over real loopback sockets: a million random datagrams at the server's UDP
//! port, and random bytes on its TCP and WebSocket carriages, while clients on all three
//! carriages keep transferring data. The server must not crash, its resident memory must stay
//! flat, it must not answer garbage, and every client transfer must arrive intact.
//!
//! The server runs in a child process (this test binary re-executed with `JSP_FLOOD_CHILD=1`
//! running only [`flood_server_child`]) so that its resident memory can be read from
//! `/proc/<pid>/status` apart from the attacker's and the clients'.
//!
//! "Garbage gets no reply" is checked exactly: the flood is random bytes, so some datagrams do
//! parse as a full-size long header of an unknown version, which PROTOCOL.md §4.5 answers with a
//! Version Negotiation packet no larger than the trigger. The attacker classifies every datagram
//! it sends; the only replies allowed are Version Negotiation packets, at most one per such
//! datagram, and nothing else.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is a test failure
#![allow(clippy::disallowed_methods)] // the flood's wall-time cap and rate are read from the real clock

mod adversary;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use adversary::{echo, guard, host, pattern, wire};
use futures_util::{SinkExt, StreamExt};
use jsp::{ClientConfig, Connection, Endpoint, ServerConfig, TrustPolicy};
use jsp_proto::crypto::default_provider;
use jsp_proto::identity::{Fingerprint, Identity};
use jsp_proto::wire::header::{self, PartialDecode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Datagrams in the UDP flood.
const FLOOD_DATAGRAMS: u64 = 1_000_000;
/// Wall-time cap of the flood phase (the count actually sent is reported and asserted on).
const FLOOD_CAP: Duration = Duration::from_secs(25);
/// Sending threads, each with its own source addresses.
const FLOOD_THREADS: u64 = 2;
/// Sockets (source addresses 127.0.0.x) per thread.
const SOCKETS_PER_THREAD: usize = 4;
/// Allowed growth of the server's resident memory over the whole flood.
const RSS_BUDGET_KIB: u64 = 16 * 1024;
/// Garbage TCP and WebSocket connections, and random bytes written on each.
const STREAM_ATTACKERS: usize = 16;
const STREAM_GARBAGE: usize = 256 * 1024;

/// The server process: UDP, TCP and WebSocket on loopback, echoing everything. Prints
/// `READY <udp> <tcp> <ws> <fingerprint>`, answers `stats` on stdin with one `STATS ...` line,
/// and exits when stdin closes. Does nothing unless run as the flood's child.
#[test]
fn flood_server_child() {
    if std::env::var("JSP_FLOOD_CHILD").as_deref() != Ok("1") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let id = Identity::generate(default_provider().as_ref()).unwrap();
        let fp = id.fingerprint();
        let ep = Endpoint::server(adversary::loopback(), ServerConfig::new(id)).unwrap();
        let tcp = ep.listen_tcp(adversary::loopback()).await.unwrap();
        let ws = ep.listen_ws(adversary::loopback()).await.unwrap();
        let seen = adversary::echo_server(&ep);
        // A long-running server keeps nothing per message.
        seen.forget_messages.store(true, Ordering::SeqCst);
        println!("READY {} {tcp} {ws} {fp}", ep.local_addr());
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin());
        let mut line = String::new();
        // Bounded: the parent closes stdin when done, and a lost parent ends the child too.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
        loop {
            line.clear();
            let read = tokio::time::timeout_at(
                deadline,
                tokio::io::AsyncBufReadExt::read_line(&mut lines, &mut line),
            )
            .await;
            match read {
                Ok(Ok(n)) if n > 0 => {
                    let s = ep.stats();
                    println!(
                        "STATS dropped_unroutable={} version_negotiations={} resets={} accepted={} refused={} connections={}",
                        s.dropped_unroutable,
                        s.version_negotiations_sent,
                        s.stateless_resets_sent,
                        s.accepted,
                        s.refused,
                        ep.connection_count()
                    );
                }
                _ => break,
            }
        }
    });
}

struct ChildServer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: std::sync::mpsc::Receiver<String>,
    udp: SocketAddr,
    tcp: SocketAddr,
    ws: SocketAddr,
    fingerprint: Fingerprint,
}

impl ChildServer {
    fn start() -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "flood_server_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("JSP_FLOOD_CHILD", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let ready = loop {
            let line = lines
                .recv_timeout(adversary::WAIT)
                .expect("the server child starts");
            // libtest prints "test flood_server_child ... " on the same line.
            if let Some((_, rest)) = line.split_once("READY ") {
                break rest.to_owned();
            }
        };
        let f: Vec<&str> = ready.split_whitespace().collect();
        Self {
            stdin: child.stdin.take(),
            child,
            lines,
            udp: f[0].parse().unwrap(),
            tcp: f[1].parse().unwrap(),
            ws: f[2].parse().unwrap(),
            fingerprint: f[3].parse().unwrap(),
        }
    }

    fn rss_kib(&self) -> u64 {
        adversary::rss_kib(self.child.id())
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The server's endpoint counters, by name.
    fn stats(&mut self) -> std::collections::HashMap<String, u64> {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "stats").unwrap();
        stdin.flush().unwrap();
        let line = loop {
            let l = self.lines.recv_timeout(adversary::WAIT).expect("stats");
            if let Some((_, rest)) = l.split_once("STATS ") {
                break rest.to_owned();
            }
        };
        line.split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.parse().unwrap()))
            .collect()
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        drop(self.stdin.take());
        // The child exits when its stdin closes; kill it (by its own pid) if it does not.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one flood thread sent and got back.
#[derive(Default)]
struct FloodReport {
    sent: u64,
    bytes: u64,
    /// Datagrams that parse as a full-size long header of an unknown version (§4.5 answers
    /// those with Version Negotiation).
    vn_eligible: u64,
    replies: u64,
    vn_replies: u64,
    other_replies: u64,
}

fn vn_eligible(d: &[u8]) -> bool {
    d.len() >= 1200
        && matches!(
            header::decode(d, wire::CID_LEN),
            Ok((PartialDecode::UnsupportedVersion { .. }, _))
        )
}

/// Sends random datagrams (1..=1472 bytes, from a pool of random bytes) at `server` from
/// `SOCKETS_PER_THREAD` addresses until `quota` are sent or `stop` is set; counts every reply.
fn flood_thread(
    server: SocketAddr,
    first_host: u8,
    quota: u64,
    stop: Arc<AtomicBool>,
) -> FloodReport {
    let socks: Vec<std::net::UdpSocket> = (0..SOCKETS_PER_THREAD)
        .map(|i| {
            let s = std::net::UdpSocket::bind(host(first_host + i as u8)).unwrap();
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect();
    let pool = pattern(1 << 20, u64::from(first_host));
    let mut r = FloodReport::default();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d ^ u64::from(first_host);
    let mut buf = vec![0u8; 65536];
    let mut collect = |r: &mut FloodReport, socks: &[std::net::UdpSocket]| {
        for s in socks {
            while let Ok((n, _)) = s.recv_from(&mut buf) {
                r.replies += 1;
                if matches!(wire::kind(&buf[..n]), wire::Kind::VersionNegotiation(_)) {
                    r.vn_replies += 1;
                } else {
                    r.other_replies += 1;
                }
            }
        }
    };
    while r.sent < quota && !stop.load(Ordering::Relaxed) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = 1 + (x >> 40) as usize % 1472;
        let at = (x as usize >> 3) % (pool.len() - len);
        let d = &pool[at..at + len];
        let sock = &socks[(r.sent as usize) % socks.len()];
        match sock.send_to(d, server) {
            Ok(_) => {
                r.sent += 1;
                r.bytes += len as u64;
                if vn_eligible(d) {
                    r.vn_eligible += 1;
                }
            }
            // The socket buffer is full: the kernel is the bottleneck; retry.
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::yield_now(),
            Err(e) => panic!("flood send: {e}"),
        }
        if r.sent % 4096 == 0 {
            collect(&mut r, &socks);
        }
    }
    // Late replies: wait a bounded while for anything still in flight.
    let quiet_until = Instant::now() + adversary::QUIET;
    while Instant::now() < quiet_until {
        collect(&mut r, &socks);
        std::thread::sleep(Duration::from_millis(10));
    }
    r
}

/// A client that echoes `size`-byte messages over `conn` until `stop`, checking each; returns
/// the number of intact round trips.
async fn keep_transferring(conn: Connection, size: usize, stop: Arc<AtomicBool>, seed: u64) -> u64 {
    let mut rounds = 0;
    while !stop.load(Ordering::Relaxed) && rounds < 10_000 {
        let data = pattern(size, seed + rounds);
        let back = guard("echo under flood", echo(&conn, &data))
            .await
            .unwrap_or_else(|e| panic!("a transfer failed under the flood: {e}"));
        assert!(
            back == data,
            "a transfer came back corrupted under the flood"
        );
        rounds += 1;
    }
    rounds
}

/// Writes random bytes on a raw TCP connection; returns the bytes the server sent back.
async fn tcp_garbage(addr: SocketAddr, seed: u64) -> usize {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut garbage = pattern(STREAM_GARBAGE, seed);
    // Never a zero-length record at the start, so the server has to chew through records.
    garbage[0] = 0x05;
    let _ = s.write_all(&garbage).await;
    let _ = s.shutdown().await;
    let mut back = Vec::new();
    let _ = tokio::time::timeout(adversary::QUIET * 4, s.read_to_end(&mut back)).await;
    back.len()
}

/// Random binary messages on an upgraded WebSocket, then random bytes instead of an upgrade;
/// returns the binary payload bytes the server sent back.
async fn ws_garbage(addr: SocketAddr, seed: u64) -> usize {
    use tokio_tungstenite::tungstenite::Message;
    let mut back = 0;
    if let Ok((mut ws, _)) = tokio_tungstenite::connect_async(format!("ws://{addr}/jsp")).await {
        for i in 0..16u64 {
            let mut m = pattern(STREAM_GARBAGE / 16, seed + i);
            m[0] = 0x05;
            if ws.send(Message::Binary(m)).await.is_err() {
                break;
            }
        }
        let _ = ws.close(None).await;
        let _ = tokio::time::timeout(adversary::QUIET * 4, async {
            while let Some(Ok(m)) = ws.next().await {
                if let Message::Binary(b) = m {
                    back += b.len();
                }
            }
        })
        .await;
    }
    // Not even an HTTP upgrade: random bytes on the WebSocket port.
    back + tcp_garbage(addr, seed ^ 0xffff).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_garbage_datagrams_and_stream_garbage_leave_clients_intact_and_server_flat() {
    let mut server = ChildServer::start();
    let config = Arc::new(ClientConfig::new(TrustPolicy::pinned(server.fingerprint)));
    let client = Endpoint::client(host(2)).unwrap();
    let udp = guard("udp connect", client.connect(server.udp, config.clone()))
        .await
        .unwrap();
    let tcp = guard(
        "tcp connect",
        client.connect_tcp(server.tcp, config.clone()),
    )
    .await
    .unwrap();
    let ws = guard("ws connect", client.connect_ws(server.ws, config.clone()))
        .await
        .unwrap();
    // Warm up: every path of the server has run once before the baseline.
    for (i, c) in [&udp, &tcp, &ws].into_iter().enumerate() {
        let data = pattern(1 << 20, i as u64);
        assert!(guard("warm-up echo", echo(c, &data)).await.unwrap() == data);
    }
    let rss_before = server.rss_kib();
    assert!(rss_before > 0, "cannot read the server's memory");

    let stop = Arc::new(AtomicBool::new(false));
    let transfers: Vec<_> = [udp.clone(), tcp.clone(), ws.clone()]
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            tokio::spawn(keep_transferring(
                c,
                256 << 10,
                stop.clone(),
                100 * i as u64,
            ))
        })
        .collect();
    let streams: Vec<_> = (0..STREAM_ATTACKERS)
        .map(|i| {
            let (tcp_addr, ws_addr) = (server.tcp, server.ws);
            tokio::spawn(async move {
                if i % 2 == 0 {
                    tcp_garbage(tcp_addr, i as u64).await
                } else {
                    ws_garbage(ws_addr, i as u64).await
                }
            })
        })
        .collect();
    let flood_stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let floods: Vec<_> = (0..FLOOD_THREADS)
        .map(|t| {
            let (udp_addr, fs) = (server.udp, flood_stop.clone());
            std::thread::spawn(move || {
                flood_thread(
                    udp_addr,
                    10 + (t as u8) * 10,
                    FLOOD_DATAGRAMS / FLOOD_THREADS,
                    fs,
                )
            })
        })
        .collect();
    let peak = Arc::new(AtomicU64::new(rss_before));
    {
        // Stop the flood at its wall-time cap; sample the server's memory meanwhile.
        let pid = server.child.id();
        let (fs, peak_w) = (flood_stop.clone(), peak.clone());
        let watcher = std::thread::spawn(move || {
            while started.elapsed() < FLOOD_CAP && !fs.load(Ordering::Relaxed) {
                peak_w.fetch_max(adversary::rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
            fs.store(true, Ordering::Relaxed);
        });
        let reports: Vec<FloodReport> = tokio::task::spawn_blocking(move || {
            floods.into_iter().map(|f| f.join().unwrap()).collect()
        })
        .await
        .unwrap();
        flood_stop.store(true, Ordering::Relaxed);
        watcher.join().unwrap();
        let elapsed = started.elapsed();
        let sum = |f: fn(&FloodReport) -> u64| reports.iter().map(f).sum::<u64>();
        let (sent, bytes, eligible) = (sum(|r| r.sent), sum(|r| r.bytes), sum(|r| r.vn_eligible));
        let (vn, other) = (sum(|r| r.vn_replies), sum(|r| r.other_replies));
        let stream_replies: Vec<usize> = {
            let mut v = Vec::new();
            for s in streams {
                v.push(guard("stream attacker", s).await.unwrap());
            }
            v
        };
        stop.store(true, Ordering::Relaxed);
        let mut rounds = Vec::new();
        for t in transfers {
            rounds.push(guard("transfers", t).await.unwrap());
        }
        let rss_after = server.rss_kib();
        let stats = server.stats();
        eprintln!(
            "flood: {sent} datagrams ({} MiB) in {elapsed:.1?} = {:.0} datagrams/s; \
             {eligible} parse as unknown-version long headers, {vn} Version Negotiation replies, \
             {other} other replies; stream garbage replies {stream_replies:?}; \
             round trips during the flood (udp, tcp, ws) {rounds:?}; \
             server RSS {rss_before} KiB before, peak {} KiB, {rss_after} KiB after; server {stats:?}",
            bytes >> 20,
            sent as f64 / elapsed.as_secs_f64(),
            peak.load(Ordering::Relaxed),
        );
        assert!(server.alive(), "the server crashed");
        assert!(
            sent >= FLOOD_DATAGRAMS || elapsed >= FLOOD_CAP,
            "the flood stopped early: {sent} sent"
        );
        assert!(
            sent >= 100_000,
            "the flood was too small to mean anything: {sent}"
        );
        assert_eq!(other, 0, "the server answered garbage");
        assert!(
            vn <= eligible,
            "{vn} Version Negotiation replies for {eligible} triggers"
        );
        assert!(
            stream_replies.iter().all(|&b| b == 0),
            "the server answered stream garbage: {stream_replies:?}"
        );
        assert!(
            rounds.iter().all(|&r| r >= 1),
            "a client made no progress: {rounds:?}"
        );
        let growth = peak.load(Ordering::Relaxed).max(rss_after) - rss_before;
        assert!(
            growth <= RSS_BUDGET_KIB,
            "the server's memory grew by {growth} KiB under the flood"
        );
        assert!(stats["dropped_unroutable"] > 0, "{stats:?}");
        assert_eq!(
            stats["accepted"], 3,
            "garbage created no connection: {stats:?}"
        );
        assert_eq!(
            stats["resets"], 0,
            "garbage triggered stateless resets: {stats:?}"
        );
    }
    // After the flood the same connections still work.
    for (i, c) in [&udp, &tcp, &ws].into_iter().enumerate() {
        let data = pattern(1 << 20, 1000 + i as u64);
        assert!(guard("echo after the flood", echo(c, &data)).await.unwrap() == data);
    }
}
