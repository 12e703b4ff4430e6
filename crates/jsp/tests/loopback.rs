//! The async library over real UDP sockets on loopback: handshake, streams in both directions,
//! datagrams, resumption with 0-RTT, graceful shutdown.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is a test failure

use std::sync::Arc;
use std::time::Duration;

use jsp::{ClientConfig, Endpoint, ServerConfig, TrustPolicy};
use jsp_proto::crypto::default_provider;
use jsp_proto::identity::Identity;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn configs() -> (ServerConfig, Arc<ClientConfig>) {
    let id = Identity::generate(default_provider().as_ref()).unwrap();
    let fp = id.fingerprint();
    (
        ServerConfig::new(id),
        Arc::new(ClientConfig::new(TrustPolicy::pinned(fp))),
    )
}

/// A server that echoes every bidirectional stream and every datagram.
fn echo_server(config: ServerConfig) -> Endpoint {
    let server = Endpoint::server("127.0.0.1:0".parse().unwrap(), config).unwrap();
    let s = server.clone();
    tokio::spawn(async move {
        while let Some(conn) = s.accept().await {
            tokio::spawn(async move {
                if conn.established().await.is_err() {
                    return;
                }
                let c2 = conn.clone();
                tokio::spawn(async move {
                    while let Ok(d) = c2.read_datagram().await {
                        let _ = c2.send_datagram(&d);
                    }
                });
                while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                    tokio::spawn(async move {
                        let data = recv.read_all(64 << 20).await.unwrap();
                        send.write_all(&data).await.unwrap();
                        send.finish().unwrap();
                    });
                }
            });
        }
    });
    server
}

/// An echo server, a client endpoint, and a connection from one to the other.
async fn connected() -> (Endpoint, Endpoint, jsp::Connection) {
    let (server_cfg, client_cfg) = configs();
    let server = echo_server(server_cfg);
    let client = Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let conn = client
        .connect(server.local_addr(), client_cfg)
        .await
        .unwrap();
    (server, client, conn)
}

#[tokio::test]
async fn handshake_stream_echo_and_datagrams_over_udp() {
    let (server_cfg, client_cfg) = configs();
    let server = echo_server(server_cfg);
    let client = Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let conn = tokio::time::timeout(
        Duration::from_secs(10),
        client.connect(server.local_addr(), client_cfg),
    )
    .await
    .expect("handshake in time")
    .expect("handshake");
    let summary = conn.handshake_summary().unwrap();
    assert_eq!(summary.group, "X25519-MLKEM768");

    // 4 MiB echoed back intact (pseudo-random: compression must not shrink it, so the byte
    // counters below can be checked against the payload).
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let data: Vec<u8> = (0..4u32 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect();
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let writer = {
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
    writer.await.unwrap();
    assert!(
        back == data,
        "echoed {} of {} bytes",
        back.len(),
        data.len()
    );

    conn.send_datagram(b"ping").unwrap();
    let d = tokio::time::timeout(Duration::from_secs(5), conn.read_datagram())
        .await
        .expect("datagram in time")
        .unwrap();
    assert_eq!(d, b"ping");
    let st = conn.stats();
    assert!(st.bytes_received > 4 << 20);
    conn.close(jsp::CloseReason::Normal, Some("bye"));
}

#[tokio::test]
async fn resumption_sends_0rtt_data_over_udp() {
    let (server_cfg, client_cfg) = configs();
    let server = echo_server(server_cfg);
    let client = Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let first = client
        .connect(server.local_addr(), client_cfg.clone())
        .await
        .unwrap();
    let ticket = tokio::time::timeout(Duration::from_secs(5), first.wait_session_ticket())
        .await
        .expect("a ticket in time")
        .unwrap();
    let second = client
        .connect_resuming(server.local_addr(), client_cfg, Some(&ticket))
        .await
        .unwrap();
    let (mut send, mut recv) = second.open_bi().await.unwrap();
    send.write_all(b"early").await.unwrap();
    send.finish().unwrap();
    let mut back = String::new();
    tokio::time::timeout(Duration::from_secs(5), recv.read_to_string(&mut back))
        .await
        .expect("answer in time")
        .unwrap();
    assert_eq!(back, "early");
    let summary = second.established().await.unwrap();
    assert!(summary.resumed, "the second connection resumed the session");
}

#[tokio::test]
async fn shutdown_closes_connections_with_going_away() {
    let (server, _client, conn) = connected().await;
    tokio::time::timeout(Duration::from_secs(10), server.shutdown())
        .await
        .expect("shutdown completes");
    let err = tokio::time::timeout(Duration::from_secs(5), conn.closed())
        .await
        .expect("the client learns");
    assert!(
        matches!(
            err,
            jsp::ConnectionError::PeerClosed {
                reason: jsp::CloseReason::GoingAway,
                ..
            }
        ),
        "{err:?}"
    );
}

/// A handle the application keeps to a closed connection must never reach the next connection
/// of the endpoint: dropping it later leaves the new connection alone.
#[tokio::test]
async fn a_stale_handle_does_not_touch_a_later_connection() {
    let (server_cfg, client_cfg) = configs();
    let server = echo_server(server_cfg);
    let client = Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let old = client
        .connect(server.local_addr(), client_cfg.clone())
        .await
        .unwrap();
    old.close(jsp::CloseReason::Normal, None);
    tokio::time::timeout(Duration::from_secs(5), old.closed())
        .await
        .expect("closed in time");
    // Wait until the engine forgot it (its draining period is over).
    tokio::time::timeout(Duration::from_secs(10), client.wait_idle())
        .await
        .expect("forgotten in time");
    assert_eq!(client.connection_count(), 0);
    let new = client
        .connect(server.local_addr(), client_cfg)
        .await
        .unwrap();
    assert!(
        matches!(old.open_bi().await, Err(jsp::Error::Connection(_))),
        "the old handle still reports its own end"
    );
    drop(old);
    let (mut send, mut recv) = new.open_bi().await.unwrap();
    send.write_all(b"still here").await.unwrap();
    send.finish().unwrap();
    let mut back = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), recv.read_to_end(&mut back))
        .await
        .expect("echo in time")
        .unwrap();
    assert_eq!(back, b"still here");
}

/// `wait_idle` returns once every connection finished closing: the close reached the peer.
#[tokio::test]
async fn wait_idle_returns_after_the_close_went_out() {
    let (server_cfg, client_cfg) = configs();
    let server = Endpoint::server("127.0.0.1:0".parse().unwrap(), server_cfg).unwrap();
    let client = Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let (conn, accepted) = tokio::join!(client.connect(server.local_addr(), client_cfg), async {
        server.accept().await.unwrap()
    });
    let conn = conn.unwrap();
    accepted.established().await.unwrap();
    conn.close(jsp::CloseReason::Normal, Some("bye"));
    drop(conn);
    tokio::time::timeout(Duration::from_secs(10), client.wait_idle())
        .await
        .expect("idle in time");
    assert_eq!(client.connection_count(), 0);
    let err = tokio::time::timeout(Duration::from_secs(5), accepted.closed())
        .await
        .expect("the server learns of the close");
    assert!(
        matches!(
            err,
            jsp::ConnectionError::PeerClosed {
                reason: jsp::CloseReason::Normal,
                ..
            }
        ),
        "{err:?}"
    );
}

/// A receiver that drops a stream before its end stops the sender: writing fails instead of
/// filling buffers nobody reads.
#[tokio::test]
async fn dropping_a_recv_stream_stops_the_sender() {
    let (server_cfg, client_cfg) = configs();
    let server = Endpoint::server("127.0.0.1:0".parse().unwrap(), server_cfg).unwrap();
    let client = Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let s = server.clone();
    tokio::spawn(async move {
        let conn = s.accept().await.unwrap();
        let mut recv = conn.accept_uni().await.unwrap();
        let mut first = [0u8; 1024];
        recv.read_exact(&mut first).await.unwrap();
        drop(recv);
        conn.closed().await;
    });
    let conn = client
        .connect(server.local_addr(), client_cfg)
        .await
        .unwrap();
    let mut send = conn.open_uni().await.unwrap();
    let chunk = vec![7u8; 64 * 1024];
    let outcome = tokio::time::timeout(Duration::from_secs(20), async {
        // Far more than every buffer on the way: only a stop ends this loop.
        for _ in 0..100_000 {
            if let Err(e) = send.write_all(&chunk).await {
                return Some(e);
            }
        }
        None
    })
    .await
    .expect("the sender learns in time");
    let err = outcome.expect("writing fails once the receiver stopped the stream");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
}

/// Dropping the endpoint and its connections releases the socket once the close is done: a
/// client that connects with a throwaway endpoint does not leak a socket per connection.
#[tokio::test]
async fn dropping_everything_releases_the_socket() {
    let (_server, client, conn) = connected().await;
    let port = client.local_addr();
    let stopped = client.stopped();
    conn.close(jsp::CloseReason::Normal, None);
    drop(conn);
    drop(client);
    tokio::time::timeout(Duration::from_secs(10), stopped)
        .await
        .expect("the endpoint stops once nothing refers to it");
    assert!(
        std::net::UdpSocket::bind(port).is_ok(),
        "the socket {port} is released"
    );
}

/// Handles outlive their runtime in real programs (a connection kept in a struct dropped after
/// `main`'s runtime): using and dropping them then must fail cleanly, never panic. Calls from a
/// thread outside any task send by themselves (the driver is gone with the runtime).
#[test]
fn handles_used_and_dropped_after_the_runtime_ended_do_not_panic() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (conn, mut send, client) = runtime.block_on(async {
        let (_server, client, conn) = connected().await;
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        send.write_all(b"before").await.unwrap();
        let mut first = [0u8; 6];
        // The echo answers once the stream ends; only the connection matters here.
        let _ = tokio::time::timeout(Duration::from_millis(200), recv.read(&mut first)).await;
        (conn, send, client)
    });
    drop(runtime);
    // No runtime any more: these run on a plain thread, outside any task.
    let _ = conn.send_datagram(b"after the runtime");
    let _ = poll_without_runtime(send.write_all(b"after"));
    conn.close(jsp::CloseReason::Normal, None);
    drop(send);
    drop(conn);
    drop(client);
}

/// Polls a future to completion on this thread without a runtime (it must not need one to fail).
fn poll_without_runtime<F: std::future::Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    let waker = Waker::from(Arc::new(Noop));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    // A write either completes at once (queued in the engine) or fails; bounded either way.
    for _ in 0..1000 {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
    panic!("the write neither completed nor failed")
}

/// An empty UDP datagram (anyone can send one) is dropped: the server's driver keeps running
/// and a client connects and echoes afterwards.
#[tokio::test]
async fn an_empty_datagram_does_not_stop_the_server() {
    let (server_cfg, client_cfg) = configs();
    let server = echo_server(server_cfg);
    let addr = server.local_addr();
    let prober = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..3 {
        prober.send_to(&[], addr).unwrap();
    }
    let client = Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let conn = tokio::time::timeout(Duration::from_secs(10), client.connect(addr, client_cfg))
        .await
        .expect("the handshake completes")
        .unwrap();
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(b"still here").await.unwrap();
    send.finish().unwrap();
    let echoed = tokio::time::timeout(Duration::from_secs(10), recv.read_all(1 << 10))
        .await
        .expect("the echo arrives")
        .unwrap();
    assert_eq!(echoed, b"still here");
}
