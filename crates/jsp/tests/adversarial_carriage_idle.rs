//! Idle stream carriages, over real loopback sockets: clients complete real JSP handshakes over
//! TCP and WebSocket carriages, then go silent (or close their connection) while keeping their
//! socket open. Once no connection uses an accepted carriage any more, the server closes it
//! (checked every `handshake_timeout`), so such clients cannot hold sockets after their
//! connections ended. A carriage whose connection lives (heartbeats, transfers) stays open, and
//! legitimate clients connect and transfer afterwards.
//!
//! Every client reaches the server through a [`Relay`] from its own `127.0.0.n` (20 and above),
//! which never closes the server's socket itself: what closes it is the server. Legitimate
//! clients without a relay connect from 127.0.0.1.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is a test failure

mod adversary;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use adversary::{echo, guard, pattern, pinned_pair, Seen};
use jsp::{Carriage, ClientConfig, CloseReason, Connection, Endpoint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;

/// The server's handshake timeout: also how often it checks whether connections still use an
/// accepted carriage.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);
/// The server's idle timeout: a silent client's connection ends this long after its last packet.
const IDLE_TIMEOUT: Duration = Duration::from_secs(3);
/// The server's heartbeat interval: a live client answers, so its quiet connection lasts.
const HEARTBEAT: Duration = Duration::from_secs(1);

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
    cfg.transport.idle_timeout = IDLE_TIMEOUT;
    cfg.transport.heartbeat_interval = HEARTBEAT;
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

/// A TCP relay for one client, to the server from `127.0.0.n`: forwards bytes both ways until
/// muted, and never closes (nor half-closes) its socket to the server, even when the client
/// closes its own. So the server's socket stays open until the server closes it.
struct Relay {
    /// Where the client connects (TCP or WebSocket alike: the relay forwards bytes).
    addr: SocketAddr,
    /// Set: nothing is forwarded any more, either way (the client went silent, its socket open).
    mute: Arc<AtomicBool>,
    /// Becomes true when the server closed the relay's socket (EOF or error).
    closed: watch::Receiver<bool>,
}

impl Relay {
    async fn start(server: SocketAddr, n: u8) -> Self {
        let listener = TcpListener::bind(adversary::loopback()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mute = Arc::new(AtomicBool::new(false));
        let (tx, closed) = watch::channel(false);
        let m = mute.clone();
        tokio::spawn(async move {
            let Ok((down, _)) = listener.accept().await else {
                return;
            };
            let sock = TcpSocket::new_v4().unwrap();
            sock.bind(adversary::host(n)).unwrap();
            let up = sock.connect(server).await.unwrap();
            let (mut dr, mut dw) = down.into_split();
            let (mut ur, mut uw) = up.into_split();
            let (mut from_client, mut from_server) = (vec![0u8; 65536], vec![0u8; 65536]);
            let mut client_open = true;
            loop {
                tokio::select! {
                    r = dr.read(&mut from_client), if client_open => match r {
                        // Not passed on: the server's socket stays open.
                        Ok(0) | Err(_) => client_open = false,
                        Ok(k) => {
                            if !m.load(Ordering::SeqCst) {
                                let _ = uw.write_all(&from_client[..k]).await;
                            }
                        }
                    },
                    r = ur.read(&mut from_server) => match r {
                        Ok(0) | Err(_) => break,
                        Ok(k) => {
                            if !m.load(Ordering::SeqCst) {
                                let _ = dw.write_all(&from_server[..k]).await;
                            }
                        }
                    },
                }
            }
            let _ = tx.send(true);
        });
        Self { addr, mute, closed }
    }

    fn server_closed(&self) -> bool {
        *self.closed.borrow()
    }

    /// Waits (under the hang guard) until the server closed the relay's socket.
    async fn wait_server_closed(&mut self, what: &str) {
        guard(what, self.closed.wait_for(|c| *c)).await.unwrap();
    }
}

/// A client endpoint connected over `kind` through `relay`.
async fn connect(
    kind: Carriage,
    relay: &Relay,
    config: Arc<ClientConfig>,
) -> (Endpoint, Connection) {
    let ep = Endpoint::client(adversary::loopback()).unwrap();
    let conn = match kind {
        Carriage::Tcp => guard("tcp handshake", ep.connect_tcp(relay.addr, config)).await,
        Carriage::WebSocket => guard("ws handshake", ep.connect_ws(relay.addr, config)).await,
        Carriage::Udp => unreachable!("relays carry stream carriages"),
    }
    .unwrap_or_else(|e| panic!("a {kind:?} client through a relay was refused: {e}"));
    assert_eq!(conn.carriage(), kind);
    (ep, conn)
}

/// A connection echoes 16 KiB intact.
async fn transfers(conn: &Connection, seed: u64) {
    let data = pattern(16 << 10, seed);
    let back = guard("echo", echo(conn, &data)).await.unwrap();
    assert!(back == data, "the echo came back corrupted");
}

/// How a client ends its use of the carriage while keeping its socket open.
#[derive(Clone, Copy, Debug)]
enum Ending {
    /// Goes silent after the handshake: its connection idles out on the server.
    Silent,
    /// Closes its connection (CONNECTION_CLOSE), then goes silent.
    Close,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carriages_are_closed_once_their_connections_ended_and_live_ones_stay() {
    let s = server().await;

    // Live clients, one per carriage kind, through relays: quiet at the application level from
    // now on, but their engines answer the server's heartbeats.
    let mut live = Vec::new();
    for (kind, n) in [(Carriage::Tcp, 20), (Carriage::WebSocket, 21)] {
        let relay = Relay::start(if kind == Carriage::Tcp { s.tcp } else { s.ws }, n).await;
        let (ep, conn) = connect(kind, &relay, s.client.clone()).await;
        transfers(&conn, u64::from(n)).await;
        live.push((relay, ep, conn));
    }

    // Attackers: 3 TCP and 3 WebSocket carriages (from 127.0.0.30..35), each with a real
    // handshake and one transfer; then two of each kind go silent and one closes its
    // connection, all keeping their sockets open.
    let mut gone = Vec::new();
    let plan = [
        (Carriage::Tcp, Ending::Silent),
        (Carriage::Tcp, Ending::Silent),
        (Carriage::Tcp, Ending::Close),
        (Carriage::WebSocket, Ending::Silent),
        (Carriage::WebSocket, Ending::Silent),
        (Carriage::WebSocket, Ending::Close),
    ];
    for (i, (kind, ending)) in plan.into_iter().enumerate() {
        let n = 30 + u8::try_from(i).unwrap();
        let relay = Relay::start(if kind == Carriage::Tcp { s.tcp } else { s.ws }, n).await;
        let (ep, conn) = connect(kind, &relay, s.client.clone()).await;
        transfers(&conn, u64::from(n)).await;
        match ending {
            Ending::Silent => relay.mute.store(true, Ordering::SeqCst),
            Ending::Close => {
                conn.close(CloseReason::Normal, Some("done"));
                guard("client close", conn.closed()).await;
            }
        }
        gone.push((relay, ep, conn, kind, ending));
    }

    // Every attacker's carriage is closed by the server once its connection ended (idle
    // timeout, or the client's close), at the latest one check after.
    for (relay, _, _, kind, ending) in &mut gone {
        relay
            .wait_server_closed(&format!("{kind:?} carriage after {ending:?}"))
            .await;
    }
    // Only the live clients' connections remain on the server.
    assert_eq!(s.ep.connection_count(), live.len());

    // The live carriages stayed open all along, and stay open over two more checks while their
    // connections are quiet (heartbeats only) ...
    for (relay, _, _) in &live {
        assert!(!relay.server_closed(), "the server closed a live carriage");
    }
    tokio::time::sleep(2 * HANDSHAKE_TIMEOUT).await;
    for (i, (relay, _, conn)) in live.iter().enumerate() {
        assert!(
            !relay.server_closed(),
            "the server closed a quiet live carriage"
        );
        // ... and still carry their connection.
        transfers(conn, 100 + i as u64).await;
    }

    // A live carriage is closed too once its connection ends (the client closes it).
    for (relay, _, conn) in &mut live {
        conn.close(CloseReason::Normal, Some("done"));
        guard("live client close", conn.closed()).await;
        relay
            .wait_server_closed("live carriage after its close")
            .await;
    }

    // Legitimate clients (127.0.0.1, no relay) connect and transfer afterwards.
    let client = Endpoint::client(adversary::loopback()).unwrap();
    let tcp = guard("tcp handshake", client.connect_tcp(s.tcp, s.client.clone()))
        .await
        .unwrap_or_else(|e| panic!("a legitimate TCP client was refused: {e}"));
    assert_eq!(tcp.carriage(), Carriage::Tcp);
    transfers(&tcp, 200).await;
    let ws = guard("ws handshake", client.connect_ws(s.ws, s.client.clone()))
        .await
        .unwrap_or_else(|e| panic!("a legitimate WebSocket client was refused: {e}"));
    assert_eq!(ws.carriage(), Carriage::WebSocket);
    transfers(&ws, 201).await;

    // 2 live + 6 attackers + 2 legitimate connections established; 2 + 6 + 2 + 2 echoes.
    assert_eq!(s.seen.established.load(Ordering::SeqCst), 10);
    assert_eq!(s.seen.message_count.load(Ordering::SeqCst), 12);
}
