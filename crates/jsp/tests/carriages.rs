//! The same protocol over TCP and WebSocket carriages, and automatic fallback from UDP when UDP
//! is blocked, over real loopback sockets.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is a test failure

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use jsp::{Carriage, ClientConfig, Endpoint, ServerConfig, Targets, TrustPolicy};
use jsp_proto::crypto::default_provider;
use jsp_proto::identity::Identity;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Server {
    endpoint: Endpoint,
    tcp: SocketAddr,
    ws: SocketAddr,
}

async fn echo_server() -> (Server, Arc<ClientConfig>) {
    let id = Identity::generate(default_provider().as_ref()).unwrap();
    let fp = id.fingerprint();
    let endpoint = Endpoint::server("127.0.0.1:0".parse().unwrap(), ServerConfig::new(id)).unwrap();
    let tcp = endpoint
        .listen_tcp("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let ws = endpoint
        .listen_ws("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let ep = endpoint.clone();
    tokio::spawn(async move {
        while let Some(conn) = ep.accept().await {
            tokio::spawn(async move {
                while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                    tokio::spawn(async move {
                        let data = recv.read_all(16 << 20).await.unwrap();
                        send.write_all(&data).await.unwrap();
                        send.finish().unwrap();
                    });
                }
            });
        }
    });
    let config = Arc::new(ClientConfig::new(TrustPolicy::pinned(fp)));
    (Server { endpoint, tcp, ws }, config)
}

async fn echo(conn: &jsp::Connection, len: usize) {
    let data: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let w = {
        let data = data.clone();
        tokio::spawn(async move {
            send.write_all(&data).await.unwrap();
            send.finish().unwrap();
        })
    };
    let mut back = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), recv.read_to_end(&mut back))
        .await
        .expect("echo in time")
        .unwrap();
    w.await.unwrap();
    assert!(back == data);
}

#[tokio::test]
async fn tcp_carriage_runs_the_same_protocol() {
    let (server, config) = echo_server().await;
    let client = Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let conn = client.connect_tcp(server.tcp, config).await.unwrap();
    assert_eq!(conn.carriage(), Carriage::Tcp);
    assert_eq!(conn.handshake_summary().unwrap().group, "X25519-MLKEM768");
    echo(&conn, 2 << 20).await;
    assert!(conn.remote_address().unwrap().ip().is_loopback());
}

#[tokio::test]
async fn websocket_carriage_runs_the_same_protocol() {
    let (server, config) = echo_server().await;
    let client = Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let conn = client.connect_ws(server.ws, config).await.unwrap();
    assert_eq!(conn.carriage(), Carriage::WebSocket);
    echo(&conn, 2 << 20).await;
}

#[tokio::test]
async fn fallback_prefers_udp_when_it_works() {
    let (server, config) = echo_server().await;
    let client = Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let targets = Targets::all(server.endpoint.local_addr(), server.tcp, server.ws);
    let conn = client.connect_auto(&targets, config).await.unwrap();
    assert_eq!(conn.carriage(), Carriage::Udp);
    echo(&conn, 64 * 1024).await;
}

#[tokio::test]
async fn fallback_reaches_tcp_when_udp_is_blocked() {
    let (server, config) = echo_server().await;
    // "Blocked" UDP: a socket that receives and never answers.
    let black_hole = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let client = Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let targets = Targets {
        udp: Some(black_hole.local_addr().unwrap()),
        tcp: Some(server.tcp),
        ws: Some(server.ws),
        tcp_delay: Duration::from_millis(200),
        ws_delay: Duration::from_secs(5),
    };
    let conn = tokio::time::timeout(
        Duration::from_secs(10),
        client.connect_auto(&targets, config),
    )
    .await
    .expect("fallback in time")
    .unwrap();
    // The WebSocket attempt starts only after 5 s: TCP won the race.
    assert_eq!(conn.carriage(), Carriage::Tcp);
    echo(&conn, 256 * 1024).await;
}

#[tokio::test]
async fn fallback_reaches_websocket_when_udp_and_tcp_are_blocked() {
    let (server, config) = echo_server().await;
    let black_hole = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    // A TCP listener that accepts and never speaks.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let client = Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let targets = Targets {
        udp: Some(black_hole.local_addr().unwrap()),
        tcp: Some(silent_addr),
        ws: Some(server.ws),
        tcp_delay: Duration::from_millis(100),
        ws_delay: Duration::from_millis(300),
    };
    let conn = tokio::time::timeout(
        Duration::from_secs(10),
        client.connect_auto(&targets, config),
    )
    .await
    .expect("fallback in time")
    .unwrap();
    assert_eq!(conn.carriage(), Carriage::WebSocket);
    echo(&conn, 1024).await;
}

/// A server that fails authentication over UDP is the same server over TCP and WebSocket: the
/// fallback gives up at once with the authentication error instead of trying other carriages.
#[tokio::test]
async fn fallback_stops_at_an_authentication_failure() {
    let (server, _) = echo_server().await;
    let wrong = Identity::generate(default_provider().as_ref())
        .unwrap()
        .fingerprint();
    let config = Arc::new(ClientConfig::new(TrustPolicy::pinned(wrong)));
    let client = Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let targets = Targets {
        tcp_delay: Duration::from_secs(60),
        ws_delay: Duration::from_secs(120),
        ..Targets::all(server.endpoint.local_addr(), server.tcp, server.ws)
    };
    let err = tokio::time::timeout(
        Duration::from_secs(20),
        client.connect_auto(&targets, config),
    )
    .await
    .expect("no waiting for the later carriages")
    .unwrap_err();
    assert!(
        matches!(
            err,
            jsp::Error::Connection(jsp::ConnectionError::Handshake(
                jsp_proto::error::HandshakeError::UntrustedPeer { .. }
            ))
        ),
        "{err:?}"
    );
}
