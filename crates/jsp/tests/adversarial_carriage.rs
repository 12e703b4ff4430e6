//! Slowloris over the stream carriages, over real loopback sockets: TCP and WebSocket
//! connections that send part of a record (or part of an HTTP upgrade) and then nothing. A
//! server admits carriages like handshakes: until the JSP handshake on a carriage completes it
//! counts against `max_handshakes` (all carriages) and `max_handshakes_per_ip`, connections
//! beyond either cap are closed at once, and a carriage without a completed handshake is closed
//! after the server's `handshake_timeout`. Legitimate clients connect and transfer during the
//! attack, and their carriages outlive the handshake deadline.
//!
//! Attackers connect from 127.0.0.10 and above; legitimate clients from 127.0.0.1.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is a test failure

mod adversary;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use adversary::{echo, guard, pattern, pinned_pair, Seen};
use futures_util::{SinkExt, StreamExt};
use jsp::{Carriage, ClientConfig, Connection, Endpoint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// The server's handshake timeout: the deadline of a carriage without a completed handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);
/// The server's `max_handshakes`: carriages without a completed handshake, in all.
const MAX_PENDING: usize = 16;
/// The server's `max_handshakes_per_ip`.
const PER_IP: usize = 4;
/// How long after the attack a refused connection must have seen its close (well under the
/// handshake timeout, so a held connection is still open then).
const AT_ONCE: Duration = Duration::from_millis(1000);

/// The first bytes of a record announcing a 1200-byte datagram, and 100 of them: a partial
/// record the server must buffer.
fn partial_record() -> Vec<u8> {
    let mut r = vec![0x04, 0xb0];
    r.extend(pattern(100, 1));
    r
}

struct Server {
    ep: Endpoint,
    tcp: SocketAddr,
    ws: SocketAddr,
    seen: Arc<Seen>,
    client: Arc<ClientConfig>,
}

async fn server() -> Server {
    let (mut cfg, client) = pinned_pair();
    cfg.transport.handshake_timeout = HANDSHAKE_TIMEOUT;
    cfg.max_handshakes = MAX_PENDING;
    cfg.max_handshakes_per_ip = PER_IP;
    let ep = Endpoint::server(adversary::loopback(), cfg).unwrap();
    let tcp = ep.listen_tcp(adversary::loopback()).await.unwrap();
    let ws = ep.listen_ws(adversary::loopback()).await.unwrap();
    let seen = adversary::echo_server(&ep);
    Server {
        ep,
        tcp,
        ws,
        seen,
        client,
    }
}

/// A TCP connection to `server` from `127.0.0.n`.
async fn tcp_from(n: u8, server: SocketAddr) -> TcpStream {
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(adversary::host(n)).unwrap();
    sock.connect(server).await.unwrap()
}

/// Whether the server closed `s` (EOF or reset), reading whatever it sent meanwhile; waits at
/// most `wait`.
async fn tcp_closed(s: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let end = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(end, s.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

/// Opens `count` slowloris TCP connections from each of `ips` (in this order), each sending a
/// partial record; returns those the server still holds [`AT_ONCE`] later (the others it
/// closed by then).
async fn tcp_slowloris(server: SocketAddr, ips: &[u8], count: usize) -> Vec<TcpStream> {
    let mut all = Vec::new();
    for &n in ips {
        for _ in 0..count {
            let mut s = tcp_from(n, server).await;
            // The server may already have closed it: a failed write is a refusal too.
            let _ = s.write_all(&partial_record()).await;
            all.push(s);
        }
    }
    tokio::time::sleep(AT_ONCE).await;
    let mut held = Vec::new();
    for mut s in all {
        if !tcp_closed(&mut s, Duration::from_millis(10)).await {
            held.push(s);
        }
    }
    held
}

/// Waits (under the hang guard) until the server closed every connection of `held`.
async fn all_tcp_closed(held: &mut [TcpStream]) {
    for s in held {
        assert!(
            guard(
                "slowloris connection closed",
                tcp_closed(s, adversary::WAIT)
            )
            .await,
            "the server kept a slowloris connection open"
        );
    }
}

/// A legitimate client's connection echoes 64 KiB intact.
async fn transfers(conn: &Connection, seed: u64) {
    let data = pattern(64 << 10, seed);
    let back = guard("legitimate echo", echo(conn, &data)).await.unwrap();
    assert!(back == data, "the legitimate echo came back corrupted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_slowloris_from_one_address_is_capped_and_expires_while_a_client_transfers() {
    let s = server().await;
    // 20 connections from one address, each stuck inside a record.
    let mut held = tcp_slowloris(s.tcp, &[10], 20).await;
    assert_eq!(
        held.len(),
        PER_IP,
        "connections from one address held without a handshake"
    );
    // A legitimate TCP client (another address) connects and transfers during the attack.
    let client = Endpoint::client(adversary::loopback()).unwrap();
    let conn = guard(
        "legitimate tcp handshake",
        client.connect_tcp(s.tcp, s.client.clone()),
    )
    .await
    .unwrap_or_else(|e| panic!("a legitimate TCP client was refused: {e}"));
    assert_eq!(conn.carriage(), Carriage::Tcp);
    transfers(&conn, 1).await;
    // The held connections are closed once their handshake deadline passes.
    all_tcp_closed(&mut held).await;
    // The legitimate carriage completed its handshake: its deadline does not apply. Once it has
    // surely passed, the connection still transfers.
    tokio::time::sleep(HANDSHAKE_TIMEOUT).await;
    transfers(&conn, 2).await;
    assert_eq!(s.seen.established.load(Ordering::SeqCst), 1);
    assert_eq!(s.seen.message_count.load(Ordering::SeqCst), 2);
    // The partial records never reached the engine.
    assert_eq!(s.ep.connection_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_slowloris_from_many_addresses_is_capped_in_all_and_slots_come_back() {
    let s = server().await;
    // 6 addresses x PER_IP connections: more than MAX_PENDING in all.
    let ips: Vec<u8> = (20..26).collect();
    let mut held = tcp_slowloris(s.tcp, &ips, PER_IP).await;
    assert_eq!(
        held.len(),
        MAX_PENDING,
        "connections held without a handshake (of {})",
        ips.len() * PER_IP
    );
    // Every slot is taken: a client now is refused at once (closed before its first record is
    // read), like a handshake beyond max_handshakes.
    let mut late = tcp_from(30, s.tcp).await;
    let _ = late.write_all(&partial_record()).await;
    assert!(
        guard("late refusal", tcp_closed(&mut late, adversary::WAIT)).await,
        "a connection beyond the cap was held"
    );
    all_tcp_closed(&mut held).await;
    // The expired connections gave their slots back.
    let client = Endpoint::client(adversary::loopback()).unwrap();
    let conn = guard(
        "tcp handshake after the attack",
        client.connect_tcp(s.tcp, s.client.clone()),
    )
    .await
    .unwrap_or_else(|e| panic!("the slots did not come back: {e}"));
    transfers(&conn, 3).await;
    assert_eq!(s.seen.established.load(Ordering::SeqCst), 1);
}

/// A WebSocket from `127.0.0.n` upgraded at `server`; `None` if the server closed it first.
async fn ws_from(n: u8, server: SocketAddr) -> Option<WebSocketStream<TcpStream>> {
    let tcp = tcp_from(n, server).await;
    tokio_tungstenite::client_async(format!("ws://{server}/jsp"), tcp)
        .await
        .ok()
        .map(|(ws, _)| ws)
}

/// Whether the server closed `ws`; waits at most `wait`.
async fn ws_closed(ws: &mut WebSocketStream<TcpStream>, wait: Duration) -> bool {
    let end = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(end, ws.next()).await {
            Ok(None | Some(Err(_) | Ok(Message::Close(_)))) => return true,
            Ok(Some(Ok(_))) => {}
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_slowloris_is_capped_and_expires_while_a_client_transfers() {
    let s = server().await;
    // From 127.0.0.10: upgraded WebSockets, each stuck inside a record.
    let mut upgraded = Vec::new();
    for _ in 0..10 {
        // A refused connection fails its upgrade.
        if let Some(mut ws) = ws_from(10, s.ws).await {
            let _ = ws.send(Message::Binary(partial_record())).await;
            upgraded.push(ws);
        }
    }
    // From 127.0.0.11: half an HTTP upgrade request, then nothing.
    let mut raw = Vec::new();
    for _ in 0..10 {
        let mut t = tcp_from(11, s.ws).await;
        let _ = t
            .write_all(b"GET /jsp HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
            .await;
        raw.push(t);
    }
    tokio::time::sleep(AT_ONCE).await;
    let mut held_ws = Vec::new();
    for mut ws in upgraded {
        if !ws_closed(&mut ws, Duration::from_millis(10)).await {
            held_ws.push(ws);
        }
    }
    let mut held_raw = Vec::new();
    for mut t in raw {
        if !tcp_closed(&mut t, Duration::from_millis(10)).await {
            held_raw.push(t);
        }
    }
    assert_eq!(held_ws.len(), PER_IP, "upgraded WebSockets held");
    assert_eq!(held_raw.len(), PER_IP, "half-upgraded connections held");
    // Legitimate WebSocket and TCP clients connect and transfer during the attack.
    let client = Endpoint::client(adversary::loopback()).unwrap();
    let ws_conn = guard(
        "legitimate ws handshake",
        client.connect_ws(s.ws, s.client.clone()),
    )
    .await
    .unwrap_or_else(|e| panic!("a legitimate WebSocket client was refused: {e}"));
    assert_eq!(ws_conn.carriage(), Carriage::WebSocket);
    transfers(&ws_conn, 4).await;
    let tcp_conn = guard(
        "legitimate tcp handshake",
        client.connect_tcp(s.tcp, s.client.clone()),
    )
    .await
    .unwrap_or_else(|e| panic!("a legitimate TCP client was refused: {e}"));
    transfers(&tcp_conn, 5).await;
    // Every held connection is closed once its deadline passes.
    for ws in &mut held_ws {
        assert!(
            guard("slowloris websocket closed", ws_closed(ws, adversary::WAIT)).await,
            "the server kept a slowloris WebSocket open"
        );
    }
    all_tcp_closed(&mut held_raw).await;
    // The legitimate carriages outlive the handshake deadline.
    tokio::time::sleep(HANDSHAKE_TIMEOUT).await;
    transfers(&ws_conn, 6).await;
    transfers(&tcp_conn, 7).await;
    assert_eq!(s.seen.established.load(Ordering::SeqCst), 2);
    assert_eq!(s.seen.message_count.load(Ordering::SeqCst), 4);
}
