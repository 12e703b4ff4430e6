//! The demo's lossy link: a UDP relay on 127.0.0.1 between one client and one server that
//! forwards both ways after a fixed one-way delay and, while switched to lossy, drops packets at
//! random with a seeded generator (each direction its own sequence, so a run is reproducible up
//! to what the endpoints send).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::clock::Stopwatch;

/// What the link does to packets.
#[derive(Debug, Clone, Copy)]
pub struct LinkSpec {
    /// Share of packets dropped in each direction while lossy (0..1).
    pub loss: f64,
    /// One-way delay added to every packet.
    pub delay: Duration,
    /// Seed of the drop decisions.
    pub seed: u64,
}

/// Packets seen and dropped while the link was lossy, both directions together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkCounts {
    /// Packets that entered the link.
    pub offered: u64,
    /// Packets it dropped.
    pub dropped: u64,
}

#[derive(Debug, Default)]
struct Shared {
    lossy: AtomicBool,
    offered: AtomicU64,
    dropped: AtomicU64,
}

/// A running relay; its tasks stop when it is dropped.
#[derive(Debug)]
pub struct Relay {
    addr: SocketAddr,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl Relay {
    /// Starts a relay in front of `server`; it is lossless until [`Relay::set_lossy`].
    pub async fn start(server: SocketAddr, spec: LinkSpec) -> std::io::Result<Self> {
        let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let front = Arc::new(UdpSocket::bind(loopback).await?);
        let back = Arc::new(UdpSocket::bind(loopback).await?);
        let addr = front.local_addr()?;
        let shared = Arc::new(Shared::default());
        let client: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let clock = Stopwatch::start();
        let (up_tx, up_rx) = mpsc::unbounded_channel();
        let (down_tx, down_rx) = mpsc::unbounded_channel();
        let seen = client.clone();
        let tasks = vec![
            // Client to server: remember who the client is.
            tokio::spawn(pump(
                front.clone(),
                spec,
                spec.seed,
                shared.clone(),
                clock,
                up_tx,
                move |from| *seen.lock().unwrap_or_else(PoisonError::into_inner) = Some(from),
            )),
            tokio::spawn(deliver(back.clone(), clock, up_rx, move || Some(server))),
            // Server to client.
            tokio::spawn(pump(
                back,
                spec,
                spec.seed ^ 0x9e37_79b9_7f4a_7c15,
                shared.clone(),
                clock,
                down_tx,
                |_| {},
            )),
            tokio::spawn(deliver(front, clock, down_rx, move || {
                *client.lock().unwrap_or_else(PoisonError::into_inner)
            })),
        ];
        Ok(Self {
            addr,
            shared,
            tasks,
        })
    }

    /// Where the client sends to reach the server.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Starts or stops dropping packets (the delay always applies).
    pub fn set_lossy(&self, lossy: bool) {
        self.shared.lossy.store(lossy, Ordering::SeqCst);
    }

    /// Packets seen and dropped while lossy so far.
    pub fn counts(&self) -> LinkCounts {
        LinkCounts {
            offered: self.shared.offered.load(Ordering::SeqCst),
            dropped: self.shared.dropped.load(Ordering::SeqCst),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A packet and when it is due at the far side (time since the relay started).
type Due = (Duration, Vec<u8>);

/// Receives on `socket`, drops or queues each packet with its due time.
async fn pump(
    socket: Arc<UdpSocket>,
    spec: LinkSpec,
    seed: u64,
    shared: Arc<Shared>,
    clock: Stopwatch,
    queue: mpsc::UnboundedSender<Due>,
    mut seen: impl FnMut(SocketAddr),
) {
    let mut rng = SplitMix64(seed);
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            // An ICMP error for an earlier send (the peer went away): not the relay's end.
            continue;
        };
        seen(from);
        if shared.lossy.load(Ordering::SeqCst) {
            shared.offered.fetch_add(1, Ordering::SeqCst);
            if rng.unit() < spec.loss {
                shared.dropped.fetch_add(1, Ordering::SeqCst);
                continue;
            }
        }
        if queue
            .send((clock.elapsed() + spec.delay, buf[..n].to_vec()))
            .is_err()
        {
            return;
        }
    }
}

/// Sends each queued packet from `socket` to `to()` at its due time (in order: the delay is
/// fixed).
async fn deliver(
    socket: Arc<UdpSocket>,
    clock: Stopwatch,
    mut queue: mpsc::UnboundedReceiver<Due>,
    to: impl Fn() -> Option<SocketAddr>,
) {
    while let Some((due, packet)) = queue.recv().await {
        tokio::time::sleep(due.saturating_sub(clock.elapsed())).await;
        if let Some(to) = to() {
            // A failed send is a lost packet, as on a network.
            let _ = socket.send_to(&packet, to).await;
        }
    }
}

/// SplitMix64: a small seeded generator, enough for drop decisions.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}
