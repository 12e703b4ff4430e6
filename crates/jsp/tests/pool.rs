//! A server pool over real loopback sockets: one socket per worker on one port (SO_REUSEPORT).
//! Clients spread over the workers and all get served; a client whose address keeps changing
//! (a NAT rebinding, emulated by a relay that switches its outgoing socket) keeps its connection
//! although the kernel hands its packets to other workers, because they steer them to the owner
//! by connection ID.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is a test failure

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jsp::{ClientConfig, Connection, Endpoint, ServerConfig, ServerPool, TrustPolicy};
use jsp_proto::crypto::default_provider;
use jsp_proto::identity::Identity;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UdpSocket;

const WAIT: Duration = Duration::from_secs(20);

fn configs() -> (ServerConfig, Arc<ClientConfig>) {
    let id = Identity::generate(default_provider().as_ref()).unwrap();
    let fp = id.fingerprint();
    (
        ServerConfig::new(id),
        Arc::new(ClientConfig::new(TrustPolicy::pinned(fp))),
    )
}

/// Echoes every bidirectional stream of every connection the pool accepts.
fn echo(pool: Arc<ServerPool>) {
    tokio::spawn(async move {
        while let Some(conn) = pool.accept().await {
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
async fn clients_spread_over_workers_and_all_are_served() {
    let (server_cfg, client_cfg) = configs();
    let pool = Arc::new(ServerPool::bind("127.0.0.1:0".parse().unwrap(), server_cfg, 4).unwrap());
    assert_eq!(pool.workers().len(), 4);
    echo(pool.clone());
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..48u32 {
        let cfg = client_cfg.clone();
        let addr = pool.local_addr();
        tasks.spawn(async move {
            let ep = Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
            let conn = ep.connect(addr, cfg).await.unwrap();
            let msg = format!("client {i}");
            assert_eq!(round_trip(&conn, msg.as_bytes()).await, msg.as_bytes());
            (ep, conn)
        });
    }
    let mut keep = Vec::new();
    while let Some(r) = tokio::time::timeout(WAIT, tasks.join_next())
        .await
        .expect("clients in time")
    {
        keep.push(r.unwrap());
    }
    assert_eq!(keep.len(), 48);
    let per_worker: Vec<usize> = pool
        .workers()
        .iter()
        .map(Endpoint::connection_count)
        .collect();
    assert_eq!(per_worker.iter().sum::<usize>(), 48, "{per_worker:?}");
    assert!(
        per_worker.iter().filter(|n| **n > 0).count() > 1,
        "the kernel spread 48 clients over several workers: {per_worker:?}"
    );
}

/// A relay between a client and the pool whose outgoing socket (so the address the server sees)
/// can be replaced, like a NAT that rebinds.
struct Relay {
    front: Arc<UdpSocket>,
    current: Arc<Mutex<Arc<UdpSocket>>>,
    client: Arc<Mutex<Option<SocketAddr>>>,
    server: SocketAddr,
}

impl Relay {
    async fn start(server: SocketAddr) -> Arc<Self> {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let first = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let relay = Arc::new(Self {
            front,
            current: Arc::new(Mutex::new(first.clone())),
            client: Arc::new(Mutex::new(None)),
            server,
        });
        relay.back_path(first);
        let r = relay.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok((n, from)) = r.front.recv_from(&mut buf).await {
                *r.client.lock().unwrap() = Some(from);
                let out = r.current.lock().unwrap().clone();
                let _ = out.send_to(&buf[..n], r.server).await;
            }
        });
        relay
    }

    /// Forwards what the server sends to `sock` back to the client.
    fn back_path(&self, sock: Arc<UdpSocket>) {
        let front = self.front.clone();
        let client = self.client.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok((n, _)) = sock.recv_from(&mut buf).await {
                let to = *client.lock().unwrap();
                if let Some(to) = to {
                    let _ = front.send_to(&buf[..n], to).await;
                }
            }
        });
    }

    /// From now on the server sees the client at a new address.
    async fn rebind(&self) {
        let next = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        self.back_path(next.clone());
        *self.current.lock().unwrap() = next;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_whose_address_changes_keeps_its_connection_across_workers() {
    let (server_cfg, client_cfg) = configs();
    let pool = Arc::new(ServerPool::bind("127.0.0.1:0".parse().unwrap(), server_cfg, 4).unwrap());
    echo(pool.clone());
    let relay = Relay::start(pool.local_addr()).await;
    let ep = Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let conn = tokio::time::timeout(
        WAIT,
        ep.connect(relay.front.local_addr().unwrap(), client_cfg),
    )
    .await
    .expect("handshake in time")
    .unwrap();
    assert_eq!(round_trip(&conn, b"before").await, b"before");
    // Each rebind lands on a worker chosen by the kernel's hash of the new address: over 12
    // rebinds among 4 workers, some land elsewhere than the owner.
    for i in 0..12 {
        relay.rebind().await;
        let msg = format!("after rebind {i}");
        assert_eq!(
            round_trip(&conn, msg.as_bytes()).await,
            msg.as_bytes(),
            "rebind {i}"
        );
    }
    assert!(
        pool.steered_datagrams() > 0,
        "some datagrams reached a worker that does not own the connection and were steered"
    );
    assert_eq!(pool.connection_count(), 1, "still the one connection");
}
