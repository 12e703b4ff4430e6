//! The attacker's toolkit for the adversarial tests over real loopback sockets: configurations,
//! an echo server that records what its application saw, an on-path UDP proxy with hooks to
//! record, drop, rewrite and inject datagrams, a forger of real first flights (valid Initial
//! packets, as anyone can build them: Initial keys are public, PROTOCOL.md §5.4), and a reader of
//! a process's resident memory.
//!
//! All traffic stays on 127.0.0.0/8. Every loop here is bounded.

#![allow(dead_code)] // each test file uses part of the toolkit

// The simulator tests' toolkit for opening and re-sealing packets, shared rather than copied.
#[path = "../../../jsp-sim/tests/common/wire.rs"]
pub mod wire;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jsp::{ClientConfig, Connection, ConnectionError, Endpoint, ServerConfig, TrustPolicy};
use jsp_proto::crypto::default_provider;
use jsp_proto::identity::Identity;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UdpSocket;

/// Hang guard for anything that should finish: generous, never a timing assertion.
pub const WAIT: Duration = Duration::from_secs(60);

/// How long to listen for a reply that must not come (a bounded negative check).
pub const QUIET: Duration = Duration::from_millis(500);

/// `127.0.0.1:0`.
pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// An ephemeral port on `127.0.0.n` (any address of 127/8 is local on Linux): a distinct source
/// address per attacker or client.
pub fn host(n: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, n], 0))
}

/// A fresh server identity and a client pinning it.
pub fn pinned_pair() -> (ServerConfig, Arc<ClientConfig>) {
    let id = Identity::generate(default_provider().as_ref()).unwrap_or_else(|e| panic!("{e}"));
    let fp = id.fingerprint();
    (
        ServerConfig::new(id),
        Arc::new(ClientConfig::new(TrustPolicy::pinned(fp))),
    )
}

/// `len` bytes that differ with `seed`, cheap to generate in a debug build.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// What the server's application saw.
#[derive(Default, Debug)]
pub struct Seen {
    /// Connections that reached `established()`.
    pub established: AtomicUsize,
    /// Every bidirectional stream's complete contents, in arrival order (unless
    /// `forget_messages` is set).
    pub messages: Mutex<Vec<Vec<u8>>>,
    /// Count streams but do not keep their contents (long-running servers).
    pub forget_messages: std::sync::atomic::AtomicBool,
    /// Bidirectional streams received completely.
    pub message_count: AtomicUsize,
    /// Every datagram the application read.
    pub datagrams: Mutex<Vec<Vec<u8>>>,
    /// Why connections that failed their handshake failed.
    pub failures: Mutex<Vec<ConnectionError>>,
    /// Why established connections ended.
    pub closes: Mutex<Vec<ConnectionError>>,
}

impl Seen {
    /// How many streams carried exactly `msg`.
    pub fn count(&self, msg: &[u8]) -> usize {
        lock(&self.messages).iter().filter(|m| *m == msg).count()
    }
}

/// Locks, ignoring poisoning (a panicking task already fails the test).
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Serves `endpoint`: echoes every bidirectional stream (up to 64 MiB) and every datagram, and
/// records what the application saw.
pub fn echo_server(endpoint: &Endpoint) -> Arc<Seen> {
    let seen = Arc::new(Seen::default());
    let (ep, s) = (endpoint.clone(), seen.clone());
    tokio::spawn(async move {
        while let Some(conn) = ep.accept().await {
            tokio::spawn(serve(conn, s.clone()));
        }
    });
    seen
}

/// Serves one accepted connection like [`echo_server`].
pub async fn serve(conn: Connection, seen: Arc<Seen>) {
    if let Err(e) = conn.established().await {
        lock(&seen.failures).push(e);
        return;
    }
    seen.established.fetch_add(1, Ordering::SeqCst);
    let c2 = conn.clone();
    let s2 = seen.clone();
    tokio::spawn(async move {
        while let Ok(d) = c2.read_datagram().await {
            lock(&s2.datagrams).push(d.clone());
            let _ = c2.send_datagram(&d);
        }
    });
    loop {
        match conn.accept_bi().await {
            Ok((mut send, mut recv)) => {
                let s = seen.clone();
                tokio::spawn(async move {
                    if let Ok(data) = recv.read_all(64 << 20).await {
                        s.message_count.fetch_add(1, Ordering::SeqCst);
                        if !s.forget_messages.load(Ordering::SeqCst) {
                            lock(&s.messages).push(data.clone());
                        }
                        let _ = send.write_all(&data).await;
                        let _ = send.finish();
                    }
                });
            }
            Err(e) => {
                lock(&seen.closes).push(e);
                return;
            }
        }
    }
}

/// Sends `data` on a new stream and returns what came back (the echo).
pub async fn echo(conn: &Connection, data: &[u8]) -> Result<Vec<u8>, String> {
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
    let payload = data.to_vec();
    let writer = tokio::spawn(async move {
        send.write_all(&payload).await?;
        send.finish().map_err(std::io::Error::other)
    });
    let mut back = Vec::new();
    recv.read_to_end(&mut back)
        .await
        .map_err(|e| e.to_string())?;
    writer
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    Ok(back)
}

/// Which way a datagram crosses the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Client to server.
    ToServer,
    /// Server to client.
    ToClient,
}

/// What the proxy does with a datagram after its hook ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send it on (possibly rewritten).
    Forward,
    /// Drop it.
    Drop,
}

/// A proxy hook: sees (and may rewrite) every datagram.
pub type Hook = Box<dyn FnMut(Dir, &mut Vec<u8>) -> Verdict + Send>;

struct ProxyState {
    client: Option<SocketAddr>,
    hook: Hook,
    /// Every datagram as it arrived at the proxy (before the hook).
    log: Vec<(Dir, Vec<u8>)>,
}

/// An on-path UDP proxy on loopback for one client: the client talks to [`Proxy::addr`], the
/// server sees every datagram come from the proxy's upstream socket.
pub struct Proxy {
    /// Where clients send.
    pub addr: SocketAddr,
    /// The address the server sees the client at.
    pub upstream_addr: SocketAddr,
    server: SocketAddr,
    front: Arc<UdpSocket>,
    upstream: Arc<UdpSocket>,
    state: Arc<Mutex<ProxyState>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Proxy {
    /// A transparent proxy in front of `server`.
    pub async fn start(server: SocketAddr) -> Self {
        Self::with_hook(server, Box::new(|_, _| Verdict::Forward)).await
    }

    /// A proxy in front of `server` running `hook` on every datagram.
    pub async fn with_hook(server: SocketAddr, hook: Hook) -> Self {
        let front = Arc::new(
            UdpSocket::bind(loopback())
                .await
                .unwrap_or_else(|e| panic!("{e}")),
        );
        let upstream = Arc::new(
            UdpSocket::bind(loopback())
                .await
                .unwrap_or_else(|e| panic!("{e}")),
        );
        let state = Arc::new(Mutex::new(ProxyState {
            client: None,
            hook,
            log: Vec::new(),
        }));
        let addr = front.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let upstream_addr = upstream.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let up = {
            let (front, upstream, state) = (front.clone(), upstream.clone(), state.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                while let Ok((n, from)) = front.recv_from(&mut buf).await {
                    let mut d = buf[..n].to_vec();
                    let verdict = {
                        let mut st = lock(&state);
                        st.client = Some(from);
                        st.log.push((Dir::ToServer, d.clone()));
                        (st.hook)(Dir::ToServer, &mut d)
                    };
                    if verdict == Verdict::Forward {
                        let _ = upstream.send_to(&d, server).await;
                    }
                }
            })
        };
        let down = {
            let (front, upstream, state) = (front.clone(), upstream.clone(), state.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                while let Ok((n, _)) = upstream.recv_from(&mut buf).await {
                    let mut d = buf[..n].to_vec();
                    let (verdict, client) = {
                        let mut st = lock(&state);
                        st.log.push((Dir::ToClient, d.clone()));
                        let v = (st.hook)(Dir::ToClient, &mut d);
                        (v, st.client)
                    };
                    if let (Verdict::Forward, Some(c)) = (verdict, client) {
                        let _ = front.send_to(&d, c).await;
                    }
                }
            })
        };
        Self {
            addr,
            upstream_addr,
            server,
            front,
            upstream,
            state,
            tasks: vec![up, down],
        }
    }

    /// Replaces the hook.
    pub fn set_hook(&self, hook: Hook) {
        lock(&self.state).hook = hook;
    }

    /// Every datagram seen so far, as it arrived (before the hook).
    pub fn captured(&self) -> Vec<(Dir, Vec<u8>)> {
        lock(&self.state).log.clone()
    }

    /// Sends `d` to the server from the address the server knows the client by.
    pub async fn inject_to_server(&self, d: &[u8]) {
        let _ = self.upstream.send_to(d, self.server).await;
    }

    /// Sends `d` to the client as if from the server.
    pub async fn inject_to_client(&self, d: &[u8]) {
        let client = lock(&self.state).client;
        if let Some(c) = client {
            let _ = self.front.send_to(d, c).await;
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// A real client's first flight to `server` (the datagrams carrying its ClientHello), built by
/// the engine itself: exactly what a spoofing attacker can produce without any secret.
pub fn first_flight(server: SocketAddr, config: Arc<ClientConfig>) -> Vec<Vec<u8>> {
    use jsp_proto::time::Instant;
    let mut ep = jsp_proto::Endpoint::new(
        jsp_proto::EndpointConfig::default(),
        default_provider(),
        None,
        1_700_000_000,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    ep.connect(Instant::ZERO, config, server)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    let mut buf = Vec::new();
    for _ in 0..16 {
        let Some(t) = ep.poll_transmit(Instant::ZERO, &mut buf) else {
            break;
        };
        out.push(buf[..t.size].to_vec());
    }
    out
}

/// Resident memory of process `pid` in KiB (`VmRSS` of /proc/<pid>/status).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Every datagram that reaches `sock` until it has been quiet for [`QUIET`] (at most `max`).
pub async fn drain(sock: &UdpSocket, max: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    while out.len() < max {
        match tokio::time::timeout(QUIET, sock.recv_from(&mut buf)).await {
            Ok(Ok((n, _))) => out.push(buf[..n].to_vec()),
            _ => break,
        }
    }
    out
}

/// Awaits `f` under the [`WAIT`] hang guard.
pub async fn guard<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: did not finish within {WAIT:?}"))
}

/// A misbehaving peer: a jsp-proto engine driven directly over a tokio UDP socket, so that a
/// test can reach inside its connection (fault injection, raw stream writes) where the jsp
/// library would refuse.
pub struct RawPeer {
    /// The engine.
    pub ep: jsp_proto::Endpoint,
    /// Its one connection.
    pub conn: jsp_proto::endpoint::ConnectionHandle,
    sock: UdpSocket,
    origin: tokio::time::Instant,
    buf: Vec<u8>,
}

impl RawPeer {
    /// Starts a handshake with `server` from `127.0.0.n`.
    pub async fn connect(server: SocketAddr, config: Arc<ClientConfig>, n: u8) -> Self {
        let sock = UdpSocket::bind(host(n))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut ep = jsp_proto::Endpoint::new(
            jsp_proto::EndpointConfig::default(),
            default_provider(),
            None,
            1_700_000_000,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let origin = tokio::time::Instant::now();
        let conn = ep
            .connect(jsp_proto::Instant::ZERO, config, server)
            .unwrap_or_else(|e| panic!("{e}"));
        Self {
            ep,
            conn,
            sock,
            origin,
            buf: Vec::new(),
        }
    }

    fn now(&self) -> jsp_proto::Instant {
        let ns = self.origin.elapsed().as_nanos();
        jsp_proto::Instant::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    }

    /// The connection.
    pub fn conn(&mut self) -> &mut jsp_proto::Connection {
        self.ep
            .connection_mut(self.conn)
            .unwrap_or_else(|| panic!("the raw peer's connection is gone"))
    }

    /// Drives the engine until `done` holds (true) or its connection is gone or `limit` passes
    /// (false).
    pub async fn drive_until(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&mut jsp_proto::Connection) -> bool,
    ) -> bool {
        let end = tokio::time::Instant::now() + limit;
        let mut rx = vec![0u8; 65536];
        loop {
            let now = self.now();
            while let Some(t) = self.ep.poll_transmit(now, &mut self.buf) {
                let _ = self.sock.send_to(&self.buf[..t.size], t.destination).await;
            }
            while self.ep.poll_event().is_some() {}
            match self.ep.connection_mut(self.conn) {
                Some(c) => {
                    if done(c) {
                        return true;
                    }
                }
                None => return false,
            }
            if tokio::time::Instant::now() >= end {
                return false;
            }
            let wake = self
                .ep
                .poll_timeout()
                .map(|t| self.origin + Duration::from_nanos(t.as_nanos()))
                .unwrap_or(end)
                .min(end);
            tokio::select! {
                r = self.sock.recv_from(&mut rx) => {
                    if let Ok((n, from)) = r {
                        let now = self.now();
                        self.ep.handle_datagram(now, from, &mut rx[..n]);
                    }
                }
                () = tokio::time::sleep_until(wake) => {
                    let now = self.now();
                    self.ep.handle_timeout(now);
                }
            }
        }
    }
}
