//! Rate limits over real sockets: with the close policy a peer that sends too many messages is
//! disconnected with `RateLimitExceeded`; with back-pressure everything is delivered, slower, and
//! the connection stays up.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is a test failure

use std::sync::Arc;
use std::time::Duration;

use jsp::limits::{RateLimitConfig, RateLimitPolicy};
use jsp::{ClientConfig, CloseReason, ConnectionError, Endpoint, ServerConfig, TrustPolicy};
use jsp_proto::crypto::default_provider;
use jsp_proto::identity::Identity;

fn server(policy: RateLimitPolicy) -> (Endpoint, Arc<ClientConfig>) {
    let id = Identity::generate(default_provider().as_ref()).unwrap();
    let fp = id.fingerprint();
    let ep = Endpoint::server("127.0.0.1:0".parse().unwrap(), ServerConfig::new(id)).unwrap();
    ep.set_rate_limits(RateLimitConfig {
        policy,
        messages_per_sec: Some(20),
        bytes_per_sec: None,
        global_messages_per_sec: None,
        global_bytes_per_sec: None,
        burst: Duration::from_millis(500),
    })
    .unwrap();
    (ep, Arc::new(ClientConfig::new(TrustPolicy::pinned(fp))))
}

#[tokio::test]
async fn a_flooding_peer_is_closed_with_rate_limit_exceeded() {
    let (server, config) = server(RateLimitPolicy::Close);
    let s = server.clone();
    let received = tokio::spawn(async move {
        let conn = s.accept().await.unwrap();
        let mut n = 0;
        while conn.read_datagram().await.is_ok() {
            n += 1;
        }
        n
    });
    let client = Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let conn = client.connect(server.local_addr(), config).await.unwrap();
    for i in 0..100u32 {
        // The server may close the connection before the flood ends: that is the point.
        if conn.send_datagram(&i.to_be_bytes()).is_err() {
            break;
        }
    }
    let err = tokio::time::timeout(Duration::from_secs(10), conn.closed())
        .await
        .expect("closed in time");
    assert!(
        matches!(
            err,
            ConnectionError::PeerClosed {
                reason: CloseReason::RateLimitExceeded,
                ..
            }
        ),
        "{err:?}"
    );
    let n = received.await.unwrap();
    assert!(
        n <= 11,
        "at most the burst was delivered before the close, got {n}"
    );
}

#[tokio::test]
async fn back_pressure_delivers_everything_without_closing() {
    let (server, config) = server(RateLimitPolicy::BackPressure);
    let s = server.clone();
    let reader = tokio::spawn(async move {
        let conn = s.accept().await.unwrap();
        let mut got = Vec::new();
        while got.len() < 30 {
            got.push(conn.read_datagram().await.unwrap());
        }
        (got, conn.rate_limited())
    });
    let client = Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let conn = client.connect(server.local_addr(), config).await.unwrap();
    for i in 0..30u32 {
        conn.send_datagram(&i.to_be_bytes()).unwrap();
    }
    let (got, throttled) = tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .expect("delivered in time")
        .unwrap();
    let expected: Vec<Vec<u8>> = (0..30u32).map(|i| i.to_be_bytes().to_vec()).collect();
    assert_eq!(got, expected, "all delivered, in order");
    assert!(throttled > 0, "the reader was held back");
    assert!(conn.stats().bytes_received > 0);
}
