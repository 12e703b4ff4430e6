//! Automatic reconnect over real loopback sockets: a client whose connection the server closes
//! comes back with a resumed session, one whose server restarts comes back with a fresh
//! handshake, and in both cases every message it queued reaches the server. A client that cannot
//! reach its server gives up after its backoff is exhausted, and one facing the wrong server key
//! gives up at once.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is a test failure

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use jsp::backoff::BackoffConfig;
use jsp::reconnect::{ReconnectConfig, ReconnectError, ReconnectEvent, ReconnectingClient};
use jsp::{ClientConfig, CloseReason, Connection, Endpoint, ServerConfig, Targets, TrustPolicy};
use jsp_proto::crypto::default_provider;
use jsp_proto::identity::Identity;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(20);

fn udp_only(addr: SocketAddr) -> Targets {
    Targets {
        udp: Some(addr),
        tcp: None,
        ws: None,
        tcp_delay: Duration::ZERO,
        ws_delay: Duration::ZERO,
    }
}

fn fast_backoff(max_attempts: u32) -> ReconnectConfig {
    ReconnectConfig {
        backoff: BackoffConfig {
            base: Duration::from_millis(20),
            cap: Duration::from_millis(200),
            max_attempts: Some(max_attempts),
        },
        ..ReconnectConfig::default()
    }
}

/// A server that forwards every message (one per unidirectional stream) to `messages` and every
/// connection to `conns`.
fn collector(
    addr: SocketAddr,
    config: ServerConfig,
    messages: mpsc::UnboundedSender<String>,
    conns: mpsc::UnboundedSender<Connection>,
) -> Result<Endpoint, jsp::Error> {
    let server = Endpoint::server(addr, config)?;
    let s = server.clone();
    tokio::spawn(async move {
        while let Some(conn) = s.accept().await {
            let _ = conns.send(conn.clone());
            let messages = messages.clone();
            tokio::spawn(async move {
                while let Ok(mut recv) = conn.accept_uni().await {
                    let messages = messages.clone();
                    tokio::spawn(async move {
                        if let Ok(data) = recv.read_all(1 << 20).await {
                            let _ = messages.send(String::from_utf8(data).unwrap());
                        }
                    });
                }
            });
        }
    });
    Ok(server)
}

async fn next_event(client: &ReconnectingClient) -> ReconnectEvent {
    tokio::time::timeout(WAIT, client.next_event())
        .await
        .expect("an event in time")
        .expect("the client is running")
}

/// Waits for the next `Connected` event, returning it and the events before it.
async fn until_connected(client: &ReconnectingClient) -> (ReconnectEvent, Vec<ReconnectEvent>) {
    let mut before = Vec::new();
    loop {
        let ev = next_event(client).await;
        match ev {
            ReconnectEvent::Connected { .. } => return (ev, before),
            ReconnectEvent::GaveUp { .. } => panic!("gave up: {ev:?} after {before:?}"),
            _ => before.push(ev),
        }
    }
}

fn drain(rx: &mut mpsc::UnboundedReceiver<String>, into: &mut BTreeSet<String>) {
    while let Ok(m) = rx.try_recv() {
        into.insert(m);
    }
}

#[tokio::test]
async fn reconnects_with_resumption_and_loses_no_queued_message() {
    let id = Identity::generate(default_provider().as_ref()).unwrap();
    let fp = id.fingerprint();
    let server_config = ServerConfig::new(id);
    let (msg_tx, mut msg_rx) = mpsc::unbounded_channel();
    let (conn_tx, mut conn_rx) = mpsc::unbounded_channel();
    let server = collector(
        "127.0.0.1:0".parse().unwrap(),
        server_config.clone(),
        msg_tx.clone(),
        conn_tx.clone(),
    )
    .unwrap();
    let addr = server.local_addr();
    let endpoint = Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let client = ReconnectingClient::start(
        endpoint,
        udp_only(addr),
        Arc::new(ClientConfig::new(TrustPolicy::pinned(fp))),
        fast_backoff(50),
    )
    .unwrap();

    let (first, _) = until_connected(&client).await;
    assert!(
        matches!(
            first,
            ReconnectEvent::Connected {
                resumed: false,
                resent: 0,
                ..
            }
        ),
        "{first:?}"
    );
    for i in 0..20 {
        client.send(format!("m{i}")).unwrap();
    }
    tokio::time::timeout(WAIT, client.flush())
        .await
        .expect("flushed in time")
        .unwrap();
    // The client holds a ticket before the server drops it.
    let conn = client.connection().expect("connected");
    tokio::time::timeout(WAIT, conn.wait_session_ticket())
        .await
        .expect("ticket in time")
        .unwrap();

    // 1. The server sheds the connection: the client comes back resuming its session, and the
    // messages sent around the drop all arrive.
    let server_side = tokio::time::timeout(WAIT, conn_rx.recv())
        .await
        .unwrap()
        .unwrap();
    server_side.close(CloseReason::GoingAway, Some("shedding load"));
    for i in 20..40 {
        client.send(format!("m{i}")).unwrap();
    }
    let (second, before) = until_connected(&client).await;
    assert!(
        before
            .iter()
            .any(|e| matches!(e, ReconnectEvent::Disconnected { .. })),
        "the application is told about the drop: {before:?}"
    );
    assert!(
        matches!(second, ReconnectEvent::Connected { resumed: true, .. }),
        "{second:?}"
    );
    tokio::time::timeout(WAIT, client.flush())
        .await
        .expect("flushed in time")
        .unwrap();

    // 2. The server restarts (a new endpoint on the same port, same identity): the client
    // reconnects, and messages queued while nothing listened are delivered.
    tokio::time::timeout(WAIT, server.shutdown())
        .await
        .expect("shutdown in time");
    drop(server);
    for i in 40..60 {
        client.send(format!("m{i}")).unwrap();
    }
    // `shutdown` returns once the socket is closed: the port is free again.
    let _server2 = collector(addr, server_config.clone(), msg_tx.clone(), conn_tx.clone())
        .expect("the port was released by shutdown");
    let (third, _) = until_connected(&client).await;
    // The new server cannot read the old server's tickets: a full handshake, nothing lost.
    assert!(
        matches!(third, ReconnectEvent::Connected { resumed: false, .. }),
        "{third:?}"
    );
    tokio::time::timeout(WAIT, client.flush())
        .await
        .expect("flushed in time")
        .unwrap();

    // Every message arrived (at least once); server tasks forward them asynchronously.
    let want: BTreeSet<String> = (0..60).map(|i| format!("m{i}")).collect();
    let mut got = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !want.is_subset(&got) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "missing: {:?}",
            want.difference(&got).collect::<Vec<_>>()
        );
        if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(200), msg_rx.recv()).await {
            got.insert(m);
        }
        drain(&mut msg_rx, &mut got);
    }
    client.close();
    assert!(matches!(
        client.send("late"),
        Err(ReconnectError::Stopped(_))
    ));
}

#[tokio::test]
async fn gives_up_when_the_server_never_answers() {
    // A bound socket that never answers: handshakes time out.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let fp = Identity::generate(default_provider().as_ref())
        .unwrap()
        .fingerprint();
    let mut cfg = ClientConfig::new(TrustPolicy::pinned(fp));
    cfg.transport.handshake_timeout = Duration::from_millis(300);
    let endpoint = Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let client = ReconnectingClient::start(
        endpoint,
        udp_only(silent.local_addr().unwrap()),
        Arc::new(cfg),
        fast_backoff(2),
    )
    .unwrap();
    client.send("never delivered").unwrap();
    let mut retries = 0;
    loop {
        match next_event(&client).await {
            ReconnectEvent::Retrying { .. } => retries += 1,
            ReconnectEvent::GaveUp { abandoned, .. } => {
                assert_eq!(abandoned, 1);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(retries, 2, "max_attempts bounds the retries");
    assert!(matches!(client.send("x"), Err(ReconnectError::Stopped(_))));
    assert!(matches!(
        client.flush().await,
        Err(ReconnectError::Stopped(_))
    ));
}

#[tokio::test]
async fn gives_up_at_once_on_the_wrong_server_key() {
    let (msg_tx, _msg_rx) = mpsc::unbounded_channel();
    let (conn_tx, _conn_rx) = mpsc::unbounded_channel();
    let real = Identity::generate(default_provider().as_ref()).unwrap();
    let server = collector(
        "127.0.0.1:0".parse().unwrap(),
        ServerConfig::new(real),
        msg_tx,
        conn_tx,
    )
    .unwrap();
    let other = Identity::generate(default_provider().as_ref())
        .unwrap()
        .fingerprint();
    let endpoint = Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let client = ReconnectingClient::start(
        endpoint,
        udp_only(server.local_addr()),
        Arc::new(ClientConfig::new(TrustPolicy::pinned(other))),
        fast_backoff(50),
    )
    .unwrap();
    match next_event(&client).await {
        ReconnectEvent::GaveUp { error, .. } => {
            assert!(error.contains("handshake"), "{error}");
        }
        other => panic!("expected to give up at once, got {other:?}"),
    }
}
