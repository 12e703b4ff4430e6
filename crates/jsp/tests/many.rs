//! One server endpoint holding 1,000 concurrent connections over loopback UDP, each of which
//! exchanges a message, then all close cleanly.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is a test failure

use std::sync::Arc;
use std::time::Duration;

use jsp::{ClientConfig, Endpoint, ServerConfig, TrustPolicy};
use jsp_proto::crypto::default_provider;
use jsp_proto::identity::Identity;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CONNECTIONS: usize = 1000;
/// Client endpoints (sockets) the connections are spread over.
const CLIENT_SOCKETS: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_connections() {
    let id = Identity::generate(default_provider().as_ref()).unwrap();
    let fp = id.fingerprint();
    let mut server_cfg = ServerConfig::new(id);
    server_cfg.max_handshakes = CONNECTIONS;
    // Every client is on 127.0.0.1: let one address hold every handshake slot (the default
    // per-IP cap is a quarter of them, against half-open floods).
    server_cfg.max_handshakes_per_ip = CONNECTIONS;
    let server = Endpoint::server("127.0.0.1:0".parse().unwrap(), server_cfg).unwrap();
    let s = server.clone();
    // Every echo the server could not send: a stream handed to the application must be
    // answerable (the client always waits for its answer).
    let server_failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let failures = server_failures.clone();
    tokio::spawn(async move {
        while let Some(conn) = s.accept().await {
            let failures = failures.clone();
            tokio::spawn(async move {
                let echoed = async {
                    let (mut send, mut recv) = conn.accept_bi().await?;
                    let msg = recv.read_all(1024).await?;
                    send.write_all(&msg).await?;
                    send.finish()?;
                    Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
                };
                if let Err(e) = echoed.await {
                    failures.lock().unwrap().push(e.to_string());
                }
                conn.closed().await;
            });
        }
    });
    let config = Arc::new(ClientConfig::new(TrustPolicy::pinned(fp)));
    let clients: Vec<Endpoint> = (0..CLIENT_SOCKETS)
        .map(|_| Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap())
        .collect();
    let mut tasks = Vec::new();
    for i in 0..CONNECTIONS {
        let ep = clients[i % CLIENT_SOCKETS].clone();
        let config = config.clone();
        let addr = server.local_addr();
        tasks.push(tokio::spawn(async move {
            let conn = ep.connect(addr, config).await.expect("handshake");
            let (mut send, mut recv) = conn.open_bi().await.unwrap();
            let msg = format!("hello from {i}");
            send.write_all(msg.as_bytes()).await.unwrap();
            send.finish().unwrap();
            let mut back = String::new();
            recv.read_to_string(&mut back).await.unwrap();
            assert_eq!(back, msg);
            conn
        }));
    }
    let mut conns = Vec::new();
    for t in tasks {
        match tokio::time::timeout(Duration::from_secs(120), t).await {
            Ok(conn) => conns.push(conn.unwrap()),
            Err(_) => panic!(
                "a connection did not get its echo in time; server-side failures: {:?}",
                server_failures.lock().unwrap()
            ),
        }
    }
    assert!(
        server_failures.lock().unwrap().is_empty(),
        "server-side failures: {:?}",
        server_failures.lock().unwrap()
    );
    assert_eq!(server.connection_count(), CONNECTIONS, "all held at once");
    for c in &conns {
        c.close(jsp::CloseReason::Normal, None);
    }
    for c in &conns {
        let _ = tokio::time::timeout(Duration::from_secs(10), c.closed()).await;
    }
}
