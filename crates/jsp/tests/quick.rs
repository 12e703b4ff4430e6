//! The original README's shape over real loopback sockets: `Connection::connect` to a
//! `host:port`, `send_on_stream`, and the server receiving whole messages; a wrong pin and an
//! unresolvable name fail with typed errors.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is a test failure

use std::time::Duration;

use jsp::{Connection, ConnectionConfig, Endpoint, ServerConfig, TrustPolicy};
use jsp_proto::crypto::default_provider;
use jsp_proto::identity::Identity;

#[tokio::test]
async fn connect_by_name_and_send_messages_on_streams() {
    let id = Identity::generate(default_provider().as_ref()).unwrap();
    let pin = id.fingerprint();
    // Listen where `localhost` resolves first on this machine (127.0.0.1 or ::1).
    let local = tokio::net::lookup_host("localhost:0")
        .await
        .unwrap()
        .next()
        .unwrap();
    let server = Endpoint::server(local, ServerConfig::new(id)).unwrap();
    let port = server.local_addr().port();
    let s = server.clone();
    let received = tokio::spawn(async move {
        let conn = s.accept().await.unwrap();
        let mut got = Vec::new();
        for _ in 0..3 {
            let (_, m) = conn.recv_message(1 << 20).await.unwrap();
            got.push(String::from_utf8(m).unwrap());
        }
        got.sort();
        got
    });
    let config = ConnectionConfig::builder()
        .session_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let client = tokio::time::timeout(
        Duration::from_secs(10),
        Connection::connect_with_config(
            &format!("localhost:{port}"),
            config,
            TrustPolicy::pinned(pin),
        ),
    )
    .await
    .expect("connected in time")
    .unwrap();
    let mut ids = Vec::new();
    for m in ["Hello, JetStreamProto!", "second", "third"] {
        ids.push(client.send_on_stream(m.as_bytes()).await.unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 3, "each message on its own stream");
    let got = tokio::time::timeout(Duration::from_secs(10), received)
        .await
        .expect("received in time")
        .unwrap();
    assert_eq!(got, vec!["Hello, JetStreamProto!", "second", "third"]);
}

#[tokio::test]
async fn connect_fails_clearly() {
    let id = Identity::generate(default_provider().as_ref()).unwrap();
    let server = Endpoint::server("127.0.0.1:0".parse().unwrap(), ServerConfig::new(id)).unwrap();
    let wrong = Identity::generate(default_provider().as_ref())
        .unwrap()
        .fingerprint();
    let err = tokio::time::timeout(
        Duration::from_secs(10),
        Connection::connect(&server.local_addr().to_string(), TrustPolicy::pinned(wrong)),
    )
    .await
    .expect("answered in time")
    .unwrap_err();
    assert!(
        matches!(
            err,
            jsp::Error::Connection(jsp::ConnectionError::Handshake(_))
        ),
        "{err:?}"
    );
    let err = Connection::connect("no-such-host.invalid:4433", TrustPolicy::pinned(wrong))
        .await
        .unwrap_err();
    assert!(matches!(err, jsp::Error::Io(_)), "{err:?}");
}
