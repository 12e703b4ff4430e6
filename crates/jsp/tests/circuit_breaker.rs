//! The circuit breaker over real sockets: an overloaded server refuses new handshakes at once
//! with a clear SERVER_BUSY while its existing connection keeps working, and admits clients
//! again after the cool-down.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is a test failure

use std::sync::Arc;
use std::time::Duration;

use jsp::limits::CircuitBreakerConfig;
use jsp::{ClientConfig, CloseReason, ConnectionError, Endpoint, Error, ServerConfig, TrustPolicy};
use jsp_proto::crypto::default_provider;
use jsp_proto::identity::Identity;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn overload_refuses_new_handshakes_not_existing_connections() {
    let id = Identity::generate(default_provider().as_ref()).unwrap();
    let config = Arc::new(ClientConfig::new(TrustPolicy::pinned(id.fingerprint())));
    let server = Endpoint::server("127.0.0.1:0".parse().unwrap(), ServerConfig::new(id)).unwrap();
    server
        .set_circuit_breaker(CircuitBreakerConfig {
            cool_down: Duration::from_millis(200),
            half_open_probes: 1,
            ..CircuitBreakerConfig::default()
        })
        .unwrap();
    let s = server.clone();
    tokio::spawn(async move {
        while let Some(conn) = s.accept().await {
            tokio::spawn(async move {
                while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                    let d = recv.read_all(1024).await.unwrap_or_default();
                    let _ = send.write_all(&d).await;
                    let _ = send.finish();
                }
            });
        }
    });
    let client = Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let existing = client
        .connect(server.local_addr(), config.clone())
        .await
        .unwrap();

    server.set_overloaded(true);
    let refused = tokio::time::timeout(
        Duration::from_secs(5),
        client.connect(server.local_addr(), config.clone()),
    )
    .await
    .expect("a refusal, not a timeout");
    match refused {
        Err(Error::Connection(ConnectionError::PeerClosed {
            reason: CloseReason::GoingAway,
            code,
            ..
        })) => assert_eq!(code, jsp_proto::ErrorCode::SERVER_BUSY),
        other => panic!("expected SERVER_BUSY, got {other:?}"),
    }
    assert!(server.stats().refused >= 1);

    // The existing connection is unaffected.
    let (mut send, mut recv) = existing.open_bi().await.unwrap();
    send.write_all(b"still here").await.unwrap();
    send.finish().unwrap();
    let mut back = String::new();
    recv.read_to_string(&mut back).await.unwrap();
    assert_eq!(back, "still here");

    // Load gone: after the cool-down, clients are admitted again.
    server.set_overloaded(false);
    let mut admitted = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        match client.connect(server.local_addr(), config.clone()).await {
            Ok(c) => {
                admitted = Some(c);
                break;
            }
            Err(Error::Connection(ConnectionError::PeerClosed { .. })) => {
                // Still cooling down: each refused attempt is one round trip; try again.
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(admitted.is_some(), "admitted again after the cool-down");
}
