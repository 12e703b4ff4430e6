//! Connection events over loopback: the application learns of streams the peer opened, key
//! updates and the close by subscribing, not by polling; a late subscriber to an ended
//! connection still learns why it ended.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is a test failure

use std::sync::Arc;
use std::time::Duration;

use jsp::{
    ClientConfig, CloseReason, ConnectionError, ConnectionEvent, ConnectionEvents, Endpoint,
    ServerConfig, TrustPolicy,
};
use jsp_proto::crypto::default_provider;
use jsp_proto::identity::Identity;
use tokio::io::AsyncWriteExt;

const WAIT: Duration = Duration::from_secs(20);

/// The next event matching `want`, skipping others (tickets may arrive at any time).
async fn next_matching(
    events: &mut ConnectionEvents,
    want: impl Fn(&ConnectionEvent) -> bool,
) -> ConnectionEvent {
    tokio::time::timeout(WAIT, async {
        loop {
            let event = events.next().await.expect("the event stream ended early");
            if want(&event) {
                return event;
            }
        }
    })
    .await
    .expect("the event arrived in time")
}

#[tokio::test]
async fn streams_key_updates_and_the_close_arrive_as_events() {
    let id = Identity::generate(default_provider().as_ref()).unwrap();
    let client_config = Arc::new(ClientConfig::new(TrustPolicy::pinned(id.fingerprint())));
    let server = Endpoint::server("127.0.0.1:0".parse().unwrap(), ServerConfig::new(id)).unwrap();
    let client = Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let accepting = tokio::spawn({
        let server = server.clone();
        async move { server.accept().await.unwrap() }
    });
    let conn = tokio::time::timeout(WAIT, client.connect(server.local_addr(), client_config))
        .await
        .unwrap()
        .unwrap();
    let server_conn = accepting.await.unwrap();
    let mut server_events = server_conn.events();
    tokio::time::timeout(WAIT, server_conn.established())
        .await
        .unwrap()
        .unwrap();
    let mut client_events = conn.events();

    // The server opens a stream: the client hears of it.
    let (mut send, _recv) = server_conn.open_bi().await.unwrap();
    send.write_all(b"ping").await.unwrap();
    let opened = next_matching(&mut client_events, |e| {
        matches!(e, ConnectionEvent::StreamOpened(_))
    })
    .await;
    assert_eq!(opened, ConnectionEvent::StreamOpened(send.id()));

    // A key update asked for by the client is reported on both sides.
    conn.update_keys();
    let updated = next_matching(&mut client_events, |e| {
        matches!(e, ConnectionEvent::KeyUpdated { .. })
    })
    .await;
    assert_eq!(updated, ConnectionEvent::KeyUpdated { generation: 1 });
    let updated = next_matching(&mut server_events, |e| {
        matches!(e, ConnectionEvent::KeyUpdated { .. })
    })
    .await;
    assert_eq!(updated, ConnectionEvent::KeyUpdated { generation: 1 });

    // The client closes: the server's stream of events ends with the reason.
    conn.close(CloseReason::Normal, Some("bye"));
    let closed = next_matching(&mut server_events, |e| {
        matches!(e, ConnectionEvent::Closed(_))
    })
    .await;
    assert!(
        matches!(
            &closed,
            ConnectionEvent::Closed(ConnectionError::PeerClosed { .. })
        ),
        "{closed:?}"
    );
    assert_eq!(
        tokio::time::timeout(WAIT, server_events.next())
            .await
            .unwrap(),
        None
    );

    // Subscribing after the end still says why it ended.
    let mut late = server_conn.events();
    assert_eq!(
        tokio::time::timeout(WAIT, late.next()).await.unwrap(),
        Some(closed)
    );
    assert_eq!(late.next().await, None);
}
