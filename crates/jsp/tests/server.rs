//! `jsp::Server` over loopback sockets, configured with the builders or from a TOML file: it
//! serves UDP, TCP and WebSocket clients; a per-connection rate limit from the file closes a
//! flooding client; `max_connections` refuses the next client with SERVER_BUSY; the session
//! timeout ends an idle connection; the cleanup task sweeps connections that ended before they
//! were accepted; and the builders' defaults and validation match the original API.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is a test failure

use std::sync::Arc;
use std::time::Duration;

use jsp::limits::RateLimitPolicy;
use jsp::{
    Carriage, ClientConfig, CloseReason, Connection, ConnectionConfig, ConnectionError, Endpoint,
    Error, Server, ServerSettings, SettingsError, TrustPolicy,
};
use jsp_proto::crypto::default_provider;
use jsp_proto::identity::Identity;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(20);

fn identity() -> (Identity, Arc<ClientConfig>) {
    let id = Identity::generate(default_provider().as_ref()).unwrap();
    let client = ConnectionConfig::default()
        .client(TrustPolicy::pinned(id.fingerprint()))
        .unwrap();
    (id, client)
}

fn loopback() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn client_endpoint() -> Endpoint {
    Endpoint::client(loopback()).unwrap()
}

/// Echoes every bidirectional stream of every connection the server accepts.
fn echo(server: Arc<Server>) {
    tokio::spawn(async move {
        while let Some(conn) = server.accept().await {
            tokio::spawn(async move {
                while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                    tokio::spawn(async move {
                        if let Ok(data) = recv.read_all(1 << 20).await {
                            let _ = send.write_all(&data).await;
                            let _ = send.finish();
                        }
                    });
                }
            });
        }
    });
}

async fn round_trip(conn: &Connection, msg: &[u8]) -> Vec<u8> {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(msg).await.unwrap();
    send.finish().unwrap();
    let mut back = Vec::new();
    tokio::time::timeout(WAIT, recv.read_to_end(&mut back))
        .await
        .expect("echo in time")
        .unwrap();
    back
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_builder_server_serves_udp_tcp_and_websocket_clients() {
    let (id, client_config) = identity();
    let settings = ServerSettings::builder(id)
        .connection(
            ConnectionConfig::builder()
                .session_timeout(Duration::from_secs(60))
                .heartbeat_interval(Duration::from_secs(10))
                .max_streams(200)
                .rate_limit_messages(500)
                .build()
                .unwrap(),
        )
        .global_rate_limit_messages(Some(50_000))
        .cleanup_interval(Duration::from_secs(30))
        .workers(2)
        .listen_udp(loopback())
        .listen_tcp(loopback())
        .listen_ws(loopback())
        .build()
        .unwrap();
    assert_eq!(settings.server_config().transport.max_streams, 200);
    assert_eq!(settings.rate_limits().messages_per_sec, Some(500));
    assert_eq!(settings.rate_limits().global_messages_per_sec, Some(50_000));
    let server = Arc::new(
        tokio::time::timeout(WAIT, Server::start(settings))
            .await
            .expect("started in time")
            .unwrap(),
    );
    assert_eq!(server.pools()[0].workers().len(), 2);
    echo(server.clone());

    let client = client_endpoint();
    let udp = tokio::time::timeout(
        WAIT,
        client.connect(server.local_addr().unwrap(), client_config.clone()),
    )
    .await
    .expect("UDP connect in time")
    .unwrap();
    let tcp = tokio::time::timeout(
        WAIT,
        client.connect_tcp(server.tcp_addr().unwrap(), client_config.clone()),
    )
    .await
    .expect("TCP connect in time")
    .unwrap();
    let ws = tokio::time::timeout(
        WAIT,
        client.connect_ws(server.ws_addr().unwrap(), client_config.clone()),
    )
    .await
    .expect("WebSocket connect in time")
    .unwrap();
    for (conn, carriage) in [
        (&udp, Carriage::Udp),
        (&tcp, Carriage::Tcp),
        (&ws, Carriage::WebSocket),
    ] {
        assert_eq!(conn.carriage(), carriage);
        let msg = format!("hello over {carriage:?}");
        assert_eq!(round_trip(conn, msg.as_bytes()).await, msg.as_bytes());
    }
    assert!(server.connection_count() >= 3);

    tokio::time::timeout(WAIT, server.shutdown())
        .await
        .expect("shut down in time");
    assert!(tokio::time::timeout(WAIT, server.accept())
        .await
        .expect("accept ends after shutdown")
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_from_a_toml_file_closes_a_flooding_client() {
    let dir = tempfile::tempdir().unwrap();
    let id = Identity::generate(default_provider().as_ref()).unwrap();
    let fp = id.fingerprint();
    jsp::config_file::identity_files::write_identity_key(&dir.path().join("server.key"), &id)
        .unwrap();
    let path = dir.path().join("server.toml");
    std::fs::write(
        &path,
        r#"
[identity]
key_file = "server.key"

[listen]
udp = ["127.0.0.1:0"]

[limits]
rate_limit_policy = "close"
rate_limit_messages = 20
rate_limit_burst = "500ms"

[timeouts]
cleanup_interval = "2s"
"#,
    )
    .unwrap();
    let settings = ServerSettings::from_file(&path).unwrap();
    assert_eq!(settings.rate_limits().policy, RateLimitPolicy::Close);
    assert_eq!(settings.rate_limits().messages_per_sec, Some(20));
    assert_eq!(settings.connection().rate_limit_messages(), Some(20));
    assert_eq!(settings.cleanup_interval(), Duration::from_secs(2));
    let server = Arc::new(Server::start(settings).await.unwrap());

    let s = server.clone();
    let received = tokio::spawn(async move {
        let conn = s.accept().await.unwrap();
        let mut n = 0;
        while conn.read_datagram().await.is_ok() {
            n += 1;
        }
        n
    });
    let client = client_endpoint();
    let config = Arc::new(ClientConfig::new(TrustPolicy::pinned(fp)));
    let conn = tokio::time::timeout(WAIT, client.connect(server.local_addr().unwrap(), config))
        .await
        .expect("connected in time")
        .unwrap();
    for i in 0..100u32 {
        // The server may close the connection before the flood ends: that is the point.
        if conn.send_datagram(&i.to_be_bytes()).is_err() {
            break;
        }
    }
    let err = tokio::time::timeout(WAIT, conn.closed())
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
    let n = tokio::time::timeout(WAIT, received)
        .await
        .expect("reader ends in time")
        .unwrap();
    assert!(n <= 11, "at most the burst was delivered, got {n}");
    tokio::time::timeout(WAIT, server.shutdown())
        .await
        .expect("shut down in time");
}

#[tokio::test]
async fn max_connections_refuses_the_next_client_with_server_busy() {
    let (id, config) = identity();
    let settings = ServerSettings::builder(id)
        .max_connections(2)
        .workers(1)
        .listen_udp(loopback())
        .build()
        .unwrap();
    let server = Server::start(settings).await.unwrap();
    let addr = server.local_addr().unwrap();
    let client = client_endpoint();
    let mut held = Vec::new();
    for _ in 0..2 {
        let conn = tokio::time::timeout(WAIT, client.connect(addr, config.clone()))
            .await
            .expect("connected in time")
            .unwrap();
        held.push(conn);
    }
    let refused = tokio::time::timeout(WAIT, client.connect(addr, config.clone()))
        .await
        .expect("a refusal, not a timeout");
    match refused {
        Err(Error::Connection(ConnectionError::PeerClosed { code, .. })) => {
            assert_eq!(code, jsp_proto::ErrorCode::SERVER_BUSY);
        }
        other => panic!("expected SERVER_BUSY, got {other:?}"),
    }
    assert_eq!(server.connection_count(), 2);
    assert!(server.pools()[0].workers()[0].stats().refused >= 1);

    // The admitted connections still work once the server accepts them.
    let first = tokio::time::timeout(WAIT, server.accept())
        .await
        .expect("accepted in time")
        .unwrap();
    let (mut send, _recv) = held[0].open_bi().await.unwrap();
    send.write_all(b"ok").await.unwrap();
    send.finish().unwrap();
    let (_s, mut recv) = tokio::time::timeout(WAIT, first.accept_bi())
        .await
        .expect("stream in time")
        .unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(WAIT, recv.read_to_end(&mut got))
        .await
        .expect("data in time")
        .unwrap();
    assert_eq!(got, b"ok");
    tokio::time::timeout(WAIT, server.shutdown())
        .await
        .expect("shut down in time");
}

#[tokio::test]
async fn the_session_timeout_ends_an_idle_connection() {
    let (id, config) = identity();
    let connection = ConnectionConfig::builder()
        .session_timeout(Duration::from_millis(300))
        .heartbeat_interval(Duration::ZERO)
        .build()
        .unwrap();
    assert_eq!(connection.session_timeout(), Duration::from_millis(300));
    let settings = ServerSettings::builder(id)
        .connection(connection)
        .workers(1)
        .listen_udp(loopback())
        .build()
        .unwrap();
    assert_eq!(
        settings.server_config().transport.idle_timeout,
        Duration::from_millis(300)
    );
    let server = Server::start(settings).await.unwrap();
    // The client keeps its defaults (30 s, heartbeat every 5 s): the two sides settle on the
    // smaller timeout, and the client's first heartbeat would come long after it.
    let client = client_endpoint();
    let conn = tokio::time::timeout(WAIT, client.connect(server.local_addr().unwrap(), config))
        .await
        .expect("connected in time")
        .unwrap();
    let accepted = tokio::time::timeout(WAIT, server.accept())
        .await
        .expect("accepted in time")
        .unwrap();
    let client_end = tokio::time::timeout(WAIT, conn.closed())
        .await
        .expect("the client side ends in time");
    assert_eq!(client_end, ConnectionError::TimedOut);
    let server_end = tokio::time::timeout(WAIT, accepted.closed())
        .await
        .expect("the server side ends in time");
    assert_eq!(server_end, ConnectionError::TimedOut);
    drop(accepted);
    tokio::time::timeout(WAIT, server.shutdown())
        .await
        .expect("shut down in time");
}

#[tokio::test]
async fn cleanup_sweeps_connections_that_ended_before_they_were_accepted() {
    let (id, config) = identity();
    let settings = ServerSettings::builder(id)
        .cleanup_interval(Duration::from_millis(50))
        .workers(1)
        .listen_udp(loopback())
        .build()
        .unwrap();
    let server = Server::start(settings).await.unwrap();
    let addr = server.local_addr().unwrap();
    let mut stats = server.cleanup_stats();

    // A client connects and leaves before the application accepts its connection.
    let gone_client = client_endpoint();
    let gone = tokio::time::timeout(WAIT, gone_client.connect(addr, config.clone()))
        .await
        .expect("connected in time")
        .unwrap();
    gone.close(CloseReason::Normal, None);
    tokio::time::timeout(WAIT, gone.closed())
        .await
        .expect("closed in time");
    let after = tokio::time::timeout(WAIT, stats.wait_for(|s| s.discarded >= 1))
        .await
        .expect("swept in time")
        .unwrap()
        .to_owned();
    assert!(after.sweeps >= 1);
    assert_eq!(server.pending(), 0);

    // The next accept returns the next live client, not the one that left.
    let live_client = client_endpoint();
    let live = tokio::time::timeout(WAIT, live_client.connect(addr, config))
        .await
        .expect("connected in time")
        .unwrap();
    let accepted = tokio::time::timeout(WAIT, server.accept())
        .await
        .expect("accepted in time")
        .unwrap();
    assert_eq!(
        accepted.remote_address(),
        Some(live_client.local_addr()),
        "the live client's connection"
    );
    drop(live);
    tokio::time::timeout(WAIT, server.shutdown())
        .await
        .expect("shut down in time");
}

#[test]
fn connection_config_defaults_match_the_original_api() {
    let c = ConnectionConfig::default();
    assert_eq!(c.session_timeout(), Duration::from_secs(30));
    assert_eq!(c.heartbeat_interval(), Duration::from_secs(5));
    assert_eq!(c.heartbeat_timeout_count(), 3);
    assert_eq!(c.max_streams(), 100);
    assert_eq!(c.rate_limit_messages(), Some(100));
    assert_eq!(c.rate_limit_bytes(), Some(1_048_576));
    let built = ConnectionConfig::builder().build().unwrap();
    assert_eq!(built.session_timeout(), c.session_timeout());
    assert_eq!(built.rate_limit_bytes(), c.rate_limit_bytes());

    let id = Identity::generate(default_provider().as_ref()).unwrap();
    let s = ServerSettings::builder(id)
        .listen_udp(loopback())
        .build()
        .unwrap();
    assert_eq!(s.rate_limits().global_messages_per_sec, Some(10_000));
    assert_eq!(s.rate_limits().global_bytes_per_sec, Some(100_000_000));
    assert_eq!(s.cleanup_interval(), Duration::from_secs(10));
    assert_eq!(s.connection().session_timeout(), Duration::from_secs(30));
}

#[test]
fn the_builders_reject_invalid_settings() {
    let zero_timeout = ConnectionConfig::builder()
        .session_timeout(Duration::ZERO)
        .build();
    assert!(matches!(
        zero_timeout,
        Err(SettingsError::ZeroDuration {
            field: "session_timeout"
        })
    ));
    let never = ConnectionConfig::builder()
        .no_session_timeout()
        .build()
        .unwrap();
    assert_eq!(never.session_timeout(), Duration::ZERO);
    assert!(matches!(
        ConnectionConfig::builder()
            .handshake_timeout(Duration::ZERO)
            .build(),
        Err(SettingsError::ZeroDuration {
            field: "handshake_timeout"
        })
    ));
    assert!(matches!(
        ConnectionConfig::builder()
            .heartbeat_timeout_count(0)
            .build(),
        Err(SettingsError::Engine(_))
    ));
    assert!(matches!(
        ConnectionConfig::builder()
            .cipher_suites(Vec::new())
            .build(),
        Err(SettingsError::Engine(_))
    ));
    assert!(matches!(
        ConnectionConfig::builder().rate_limit_messages(0).build(),
        Err(SettingsError::RateLimit(_))
    ));
    assert!(matches!(
        ConnectionConfig::default().client(TrustPolicy::default()),
        Err(SettingsError::Engine(_))
    ));

    let id = || Identity::generate(default_provider().as_ref()).unwrap();
    assert!(matches!(
        ServerSettings::builder(id()).build(),
        Err(SettingsError::NoListenAddress)
    ));
    assert!(matches!(
        ServerSettings::builder(id())
            .listen_udp(loopback())
            .cleanup_interval(Duration::ZERO)
            .build(),
        Err(SettingsError::ZeroDuration {
            field: "cleanup_interval"
        })
    ));
    assert!(matches!(
        ServerSettings::builder(id())
            .listen_udp(loopback())
            .max_connections(0)
            .build(),
        Err(SettingsError::ZeroCount {
            field: "max_connections"
        })
    ));
    assert!(matches!(
        ServerSettings::builder(id())
            .listen_udp(loopback())
            .max_handshakes(0)
            .build(),
        Err(SettingsError::Engine(_))
    ));
    assert!(matches!(
        ServerSettings::builder(id())
            .listen_udp(loopback())
            .global_rate_limit_bytes(Some(0))
            .build(),
        Err(SettingsError::RateLimit(_))
    ));
    let missing = ServerSettings::from_file(std::path::Path::new("/nonexistent/jsp/server.toml"));
    assert!(matches!(missing, Err(SettingsError::File(_))));
}

#[tokio::test]
async fn a_carriage_only_server_serves_tcp_and_a_taken_port_fails_to_start() {
    let (id, config) = identity();
    let settings = ServerSettings::builder(id)
        .listen_tcp(loopback())
        .build()
        .unwrap();
    let server = Arc::new(Server::start(settings).await.unwrap());
    assert_eq!(server.local_addr(), None, "no UDP address was asked for");
    echo(server.clone());
    let client = client_endpoint();
    let conn = tokio::time::timeout(WAIT, client.connect_tcp(server.tcp_addr().unwrap(), config))
        .await
        .expect("connected in time")
        .unwrap();
    assert_eq!(round_trip(&conn, b"tcp only").await, b"tcp only");
    tokio::time::timeout(WAIT, server.shutdown())
        .await
        .expect("shut down in time");

    let taken = std::net::TcpListener::bind(loopback()).unwrap();
    let (id, _) = identity();
    let settings = ServerSettings::builder(id)
        .workers(1)
        .listen_udp(loopback())
        .listen_tcp(taken.local_addr().unwrap())
        .build()
        .unwrap();
    let started = tokio::time::timeout(WAIT, Server::start(settings))
        .await
        .expect("start ends in time");
    match started {
        Err(Error::Bind {
            addr,
            carriage: "TCP",
            source,
        }) => {
            assert_eq!(addr, taken.local_addr().unwrap());
            assert_eq!(source.kind(), std::io::ErrorKind::AddrInUse);
        }
        other => panic!("expected a TCP bind error, got {other:?}"),
    }
}

#[tokio::test]
async fn tcp_on_the_udp_port_shares_the_port_and_names_a_taken_twin() {
    // Port 0: the server finds a port free for both and serves TCP clients on it.
    let (id, config) = identity();
    let settings = ServerSettings::builder(id)
        .workers(1)
        .listen_udp(loopback())
        .tcp_on_udp_port()
        .build()
        .unwrap();
    let server = Arc::new(Server::start(settings).await.unwrap());
    let udp = server.local_addr().unwrap();
    assert_eq!(server.tcp_addrs(), &[udp][..]);
    echo(server.clone());
    let client = client_endpoint();
    let conn = tokio::time::timeout(WAIT, client.connect_tcp(udp, config))
        .await
        .expect("connected in time")
        .unwrap();
    assert_eq!(round_trip(&conn, b"same port").await, b"same port");
    tokio::time::timeout(WAIT, server.shutdown())
        .await
        .expect("shut down in time");

    // A fixed port whose TCP twin is taken: a bind error naming TCP and the address.
    let taken = std::net::TcpListener::bind(loopback()).unwrap();
    let at = taken.local_addr().unwrap();
    let (id, _) = identity();
    let settings = ServerSettings::builder(id)
        .workers(1)
        .listen_udp(at)
        .tcp_on_udp_port()
        .build()
        .unwrap();
    let started = tokio::time::timeout(WAIT, Server::start(settings))
        .await
        .expect("start ends in time");
    assert!(
        matches!(&started, Err(Error::Bind { addr, carriage: "TCP", .. }) if *addr == at),
        "{started:?}"
    );
}
