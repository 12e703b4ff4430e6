//! Mobile demo: what a phone app does with JetStreamProto, in one process on loopback.
//!
//! A server counts the messages it receives. The "phone" is a [`ReconnectingClient`] whose
//! packets cross an emulated radio network (a UDP relay). The demo then
//! 1. sends messages while the battery is full (heartbeat every 5 s);
//! 2. drains the battery: below 20 % the app stretches the heartbeat to 25 s, so the radio wakes
//!    up five times less often on a quiet connection;
//! 3. switches networks (Wi-Fi to cellular): the old path goes dark mid-transfer, the OS tells
//!    the app, the app calls `network_changed()`, and the client reconnects at once over the new
//!    path, resuming the session (0-RTT) and resending what the old path lost;
//! 4. checks that every message arrived.
//!
//! Run: `cargo run -p jsp --example mobile_demo [-- --messages N]`

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jsp::reconnect::{ReconnectConfig, ReconnectEvent, ReconnectingClient};
use jsp::{ClientConfig, Endpoint, ServerConfig, Targets, TrustPolicy};
use jsp_proto::crypto::default_provider;
use jsp_proto::identity::Identity;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long any single step may take before the demo reports failure.
const STEP: Duration = Duration::from_secs(20);

/// The emulated radio network between the phone and the server: a UDP relay whose outgoing
/// socket (the phone's public address) changes when the phone changes networks, and which can
/// go dark.
struct Radio {
    front: Arc<UdpSocket>,
    upstream: Mutex<Arc<UdpSocket>>,
    phone: Mutex<Option<SocketAddr>>,
    dark: std::sync::atomic::AtomicBool,
    server: SocketAddr,
}

impl Radio {
    async fn start(server: SocketAddr) -> Result<Arc<Self>, BoxError> {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        let first = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        let radio = Arc::new(Self {
            front,
            upstream: Mutex::new(first.clone()),
            phone: Mutex::new(None),
            dark: std::sync::atomic::AtomicBool::new(false),
            server,
        });
        radio.clone().downlink(first);
        let r = radio.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok((n, from)) = r.front.recv_from(&mut buf).await {
                if r.dark.load(std::sync::atomic::Ordering::Relaxed) {
                    continue;
                }
                *r.phone.lock().unwrap_or_else(|p| p.into_inner()) = Some(from);
                let up = r.upstream.lock().unwrap_or_else(|p| p.into_inner()).clone();
                let _ = up.send_to(&buf[..n], r.server).await;
            }
        });
        Ok(radio)
    }

    /// Carries what the server sends to `sock` back to the phone.
    fn downlink(self: Arc<Self>, sock: Arc<UdpSocket>) {
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok((n, _)) = sock.recv_from(&mut buf).await {
                if self.dark.load(std::sync::atomic::Ordering::Relaxed) {
                    continue;
                }
                let phone = *self.phone.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(to) = phone {
                    let _ = self.front.send_to(&buf[..n], to).await;
                }
            }
        });
    }

    fn set_dark(&self, dark: bool) {
        self.dark.store(dark, std::sync::atomic::Ordering::Relaxed);
    }

    /// The phone is now on another network: a new public address.
    async fn switch_network(self: &Arc<Self>) -> Result<SocketAddr, BoxError> {
        let next = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        let addr = next.local_addr()?;
        self.clone().downlink(next.clone());
        *self.upstream.lock().unwrap_or_else(|p| p.into_inner()) = next;
        Ok(addr)
    }
}

/// A server that reports every message (one per unidirectional stream).
fn server(config: ServerConfig) -> Result<(Endpoint, mpsc::UnboundedReceiver<Vec<u8>>), BoxError> {
    let ep = Endpoint::server("127.0.0.1:0".parse()?, config)?;
    let (tx, rx) = mpsc::unbounded_channel();
    let accept = ep.clone();
    tokio::spawn(async move {
        while let Some(conn) = accept.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                while let Ok(mut recv) = conn.accept_uni().await {
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        if let Ok(m) = recv.read_all(64 * 1024).await {
                            let _ = tx.send(m);
                        }
                    });
                }
            });
        }
    });
    Ok((ep, rx))
}

fn parse_messages() -> Result<usize, BoxError> {
    let mut args = std::env::args().skip(1);
    let mut n = 20;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--messages" => {
                let v = args.next().ok_or("--messages needs a number")?;
                n = v
                    .parse()
                    .map_err(|_| format!("--messages: not a number: {v}"))?;
            }
            "-h" | "--help" => {
                println!("usage: mobile_demo [--messages N]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other} (try --help)").into()),
        }
    }
    if n < 2 {
        return Err("--messages must be at least 2".into());
    }
    Ok(n)
}

async fn next_connected(client: &ReconnectingClient) -> Result<ReconnectEvent, BoxError> {
    loop {
        let ev = tokio::time::timeout(STEP, client.next_event())
            .await
            .map_err(|_| "no connection in time")?
            .ok_or("the client stopped")?;
        match ev {
            ReconnectEvent::Connected { .. } => return Ok(ev),
            ReconnectEvent::GaveUp { error, .. } => return Err(error.into()),
            _ => {}
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let total = parse_messages()?;
    let id = Identity::generate(default_provider().as_ref())?;
    let pin = id.fingerprint();
    let (server, mut received) = server(ServerConfig::new(id))?;
    let radio = Radio::start(server.local_addr()).await?;
    println!(
        "server on {}, phone reaches it through the radio at {}",
        server.local_addr(),
        radio.front.local_addr()?
    );

    let phone = Endpoint::client("127.0.0.1:0".parse()?)?;
    let targets = Targets {
        udp: Some(radio.front.local_addr()?),
        tcp: None,
        ws: None,
        tcp_delay: Duration::ZERO,
        ws_delay: Duration::ZERO,
    };
    let client = ReconnectingClient::start(
        phone,
        targets,
        Arc::new(ClientConfig::new(TrustPolicy::pinned(pin))),
        ReconnectConfig::default(),
    )?;
    if let ReconnectEvent::Connected { carriage, .. } = next_connected(&client).await? {
        println!("connected over {carriage:?}");
    }

    // 1. Full battery.
    let half = total / 2;
    for i in 0..half {
        client.send(format!("message {i}"))?;
    }
    tokio::time::timeout(STEP, client.flush())
        .await
        .map_err(|_| "flush timed out")??;
    println!("battery 100%: heartbeat every 5s, {half} messages delivered");

    // 2. The battery drains: stretch the heartbeat.
    let mut battery = 100u32;
    while battery >= 20 {
        battery -= 17;
    }
    client.set_heartbeat_interval(Duration::from_secs(25));
    let now = client
        .connection()
        .map(|c| format!("{:?}", c.stats().rtt))
        .unwrap_or_default();
    println!("battery {battery}% (low): heartbeat every 25s (rtt {now})");

    // 3. Wi-Fi goes dark mid-transfer; the phone moves to cellular.
    radio.set_dark(true);
    for i in half..total {
        client.send(format!("message {i}"))?;
    }
    let new_addr = radio.switch_network().await?;
    radio.set_dark(false);
    let started = tokio::time::Instant::now();
    client.network_changed();
    match next_connected(&client).await? {
        ReconnectEvent::Connected {
            resumed, resent, ..
        } => println!(
            "network changed (Wi-Fi -> cellular, now {new_addr}): reconnected in {:.1} ms, resumed={resumed}, {resent} messages resent",
            started.elapsed().as_secs_f64() * 1000.0
        ),
        other => return Err(format!("unexpected {other:?}").into()),
    }
    tokio::time::timeout(STEP, client.flush())
        .await
        .map_err(|_| "flush timed out")??;

    // 4. Every message arrived (at least once).
    let mut got = HashSet::new();
    let deadline = tokio::time::Instant::now() + STEP;
    while got.len() < total {
        let m = tokio::time::timeout_at(deadline, received.recv())
            .await
            .map_err(|_| format!("only {} of {total} messages arrived", got.len()))?
            .ok_or("server stopped")?;
        got.insert(m);
    }
    println!("delivered {}/{total} messages", got.len());
    client.close();
    server.shutdown().await;
    Ok(())
}
