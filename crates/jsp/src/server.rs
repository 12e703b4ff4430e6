//! A complete server from [`ServerSettings`]: [`Server::start`] binds a [`ServerPool`] (one
//! SO_REUSEPORT socket per worker) on each UDP address, opens the TCP and WebSocket carriage
//! listeners on the first pool's first worker, applies the per-connection and global rate limits
//! and the handshake circuit breaker to every worker, and runs the cleanup task.
//!
//! The global rate limits and the circuit breaker are shared by all workers, so they bound the
//! whole server, not each worker. The engine's `max_connections` and `max_handshakes` are
//! enforced per worker: each worker gets its share (rounded up). TCP and WebSocket clients are
//! all served by the first worker, so they share that worker's share.
//!
//! What "cleanup" means here: the engine already ends idle connections (the session timeout),
//! stalled handshakes (the handshake timeout) and silent peers (heartbeats) with its own
//! per-connection timers the moment they expire, and frees them; a connection whose last
//! application handle is dropped is closed at once. What no timer covers is the accept backlog:
//! connections the engine accepted that ended (the client gave up, the handshake failed, the
//! session timed out) before the application called [`Server::accept`]. They would keep their
//! per-connection state until accepted. Every `cleanup_interval` the cleanup task sweeps them out
//! ([`Server::cleanup_stats`] counts sweeps and discarded connections), and [`Server::accept`]
//! never returns a connection that has already ended.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::task::AbortHandle;

use crate::builder::ServerSettings;
use crate::{Connection, Error, ServerPool};

/// Most live connections waiting in the accept backlog; beyond it the server stops taking
/// connections from its workers until the application accepts some (the workers then queue
/// them in turn).
pub const ACCEPT_BACKLOG: usize = 1024;

/// What the cleanup task has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CleanupStats {
    /// Sweeps of the accept backlog run.
    pub sweeps: u64,
    /// Connections dropped from the accept backlog because they ended before the application
    /// accepted them (by a sweep or by [`Server::accept`] skipping them).
    pub discarded: u64,
}

/// A connection waiting for [`Server::accept`].
struct Pending {
    conn: Connection,
    /// Set by the watcher task once the connection has ended.
    ended: Arc<AtomicBool>,
    /// The task waiting for the connection to end.
    watcher: AbortHandle,
}

impl Pending {
    fn ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

/// Connections accepted by the workers and not yet by the application.
struct Backlog {
    queue: Mutex<VecDeque<Pending>>,
    /// A connection was queued, or the last forwarder stopped.
    ready: Notify,
    /// A connection left the queue.
    space: Notify,
    /// Forwarders (one per pool) still running.
    forwarders: AtomicUsize,
    /// The server was shut down.
    shut: AtomicBool,
    stats: watch::Sender<CleanupStats>,
}

impl Backlog {
    fn lock(&self) -> MutexGuard<'_, VecDeque<Pending>> {
        // The queue is consistent between operations: a panic cannot leave it half-updated.
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits until the queue has room.
    async fn wait_for_space(&self) {
        loop {
            let notified = self.space.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.lock().len() < ACCEPT_BACKLOG {
                return;
            }
            notified.await;
        }
    }

    /// Queues `conn` with a watcher that marks it once it ends.
    fn push(&self, conn: Connection) {
        let ended = Arc::new(AtomicBool::new(false));
        let watched = conn.clone();
        let flag = ended.clone();
        let watcher = tokio::spawn(async move {
            watched.closed().await;
            flag.store(true, Ordering::Release);
        })
        .abort_handle();
        self.lock().push_back(Pending {
            conn,
            ended,
            watcher,
        });
        self.ready.notify_one();
    }

    /// Removes the connections that ended; returns how many.
    fn sweep(&self) -> usize {
        let removed: Vec<Pending> = {
            let mut q = self.lock();
            let (gone, live): (VecDeque<Pending>, VecDeque<Pending>) =
                q.drain(..).partition(Pending::ended);
            *q = live;
            gone.into_iter().collect()
        };
        // Dropped outside the lock: dropping the last handle takes the endpoint's lock.
        let n = removed.len();
        drop(removed);
        if n > 0 {
            self.space.notify_waiters();
        }
        n
    }

    fn count_discarded(&self, n: usize, sweep: bool) {
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        self.stats.send_modify(|s| {
            s.discarded = s.discarded.saturating_add(n);
            if sweep {
                s.sweeps = s.sweeps.saturating_add(1);
            }
        });
    }

    /// Whether no connection will be queued any more.
    fn finished(&self) -> bool {
        self.shut.load(Ordering::Acquire) || self.forwarders.load(Ordering::Acquire) == 0
    }

    fn forwarder_done(&self) {
        if self.forwarders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.ready.notify_waiters();
        }
    }
}

/// A running server: worker pools on its UDP addresses, carriage listeners, rate limits, circuit
/// breaker and cleanup, started by [`Server::start`] from [`ServerSettings`].
///
/// The global rate limits and the circuit breaker are shared by all workers; `max_connections`
/// and `max_handshakes` are enforced per worker (each gets its share, rounded up), and TCP and
/// WebSocket clients are served by the first worker.
///
/// Cleanup: the engine itself ends idle connections (the session timeout), stalled handshakes
/// and silent peers with per-connection timers as they expire, and a connection whose handles
/// are all dropped is closed at once. What no timer covers is the accept backlog: connections
/// that ended before the application accepted them. Every `cleanup_interval` they are swept out
/// ([`Server::cleanup_stats`]), and [`Server::accept`] never returns one.
///
/// Call [`Server::shutdown`] to stop it: dropping it stops the cleanup and accept tasks, but the
/// workers keep serving the connections they have until those end.
pub struct Server {
    pools: Vec<Arc<ServerPool>>,
    udp_addrs: Vec<SocketAddr>,
    tcp_addrs: Vec<SocketAddr>,
    ws_addrs: Vec<SocketAddr>,
    backlog: Arc<Backlog>,
    tasks: Vec<AbortHandle>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("udp", &self.udp_addrs)
            .field("tcp", &self.tcp_addrs)
            .field("ws", &self.ws_addrs)
            .finish_non_exhaustive()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Workers for `requested` (0: one per core), capped like [`ServerPool::bind`].
fn worker_count(requested: usize) -> usize {
    let n = if requested == 0 {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    } else {
        requested
    };
    n.clamp(1, crate::pool::MAX_WORKERS)
}

/// The loopback address of `ip`'s family.
fn loopback_like(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
    }
}

fn invalid(what: &str, e: impl std::fmt::Display) -> Error {
    Error::EndpointClosed(format!(": invalid {what}: {e}"))
}

impl Server {
    /// Starts a server with `settings`: binds every listen address, applies the limits and
    /// starts accepting and cleaning up.
    ///
    /// A server with only TCP or WebSocket addresses still needs an engine endpoint with a UDP
    /// socket: it gets one worker on an ephemeral port of the loopback address (not reported by
    /// [`Server::local_addr`]).
    ///
    /// # Errors
    /// [`Error::Io`] if an address cannot be bound, [`Error::Config`] if the engine rejects the
    /// configuration.
    pub async fn start(settings: ServerSettings) -> Result<Self, Error> {
        let listen = settings.listen();
        let mut binds: Vec<(SocketAddr, usize)> = listen
            .udp
            .iter()
            .map(|a| (*a, worker_count(settings.workers())))
            .collect();
        if binds.is_empty() {
            let carriage = listen.tcp.iter().chain(&listen.ws).next().copied();
            let ip = carriage.map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |a| a.ip());
            binds.push((SocketAddr::new(loopback_like(ip), 0), 1));
        }
        let global = settings
            .rate_limits()
            .global_limiter()
            .map_err(|e| invalid("rate limits", e))?;
        let breaker = settings
            .circuit_breaker()
            .map(|c| crate::limits::CircuitBreaker::new(c.clone()))
            .transpose()
            .map_err(|e| invalid("circuit breaker", e))?
            .map(|b| Arc::new(Mutex::new(b)));

        let mut pools: Vec<Arc<ServerPool>> = Vec::with_capacity(binds.len());
        let mut udp_addrs = Vec::new();
        let mut twin_tcp = None;
        for (i, (addr, workers)) in binds.into_iter().enumerate() {
            let mut config = settings.server_config().clone();
            config.max_connections = config.max_connections.div_ceil(workers);
            config.max_handshakes = config.max_handshakes.div_ceil(workers);
            let bound = if i == 0 && settings.tcp_on_udp_port() && !listen.udp.is_empty() {
                bind_with_tcp_twin(addr, &config, workers)
                    .await
                    .map(|(pool, tcp)| {
                        twin_tcp = Some(tcp);
                        pool
                    })
            } else {
                ServerPool::bind(addr, config, workers).map_err(|e| bind_error(addr, "UDP", e))
            };
            let pool = match bound {
                Ok(pool) => pool,
                Err(e) => {
                    for pool in &pools {
                        pool.shutdown().await;
                    }
                    return Err(e);
                }
            };
            for w in pool.workers() {
                let mut st = w.shared.lock();
                st.rate = Some(crate::rate::EndpointRate {
                    config: settings.rate_limits().clone(),
                    global: global.clone(),
                });
                if let Some(b) = &breaker {
                    st.proto
                        .set_admission_control(Box::new(crate::breaker::BreakerHook {
                            breaker: b.clone(),
                            clock: w.shared.clock,
                        }));
                    st.breaker = Some(b.clone());
                }
            }
            if !listen.udp.is_empty() {
                udp_addrs.push(pool.local_addr());
            }
            pools.push(Arc::new(pool));
        }

        let (tcp_addrs, ws_addrs) = match listen_carriages(&pools, &listen.tcp, &listen.ws).await {
            Ok((tcp, ws)) => (twin_tcp.into_iter().chain(tcp).collect(), ws),
            Err(e) => {
                // Release the sockets already bound.
                for pool in &pools {
                    pool.shutdown().await;
                }
                return Err(e);
            }
        };

        let (stats, _) = watch::channel(CleanupStats::default());
        let backlog = Arc::new(Backlog {
            queue: Mutex::new(VecDeque::new()),
            ready: Notify::new(),
            space: Notify::new(),
            forwarders: AtomicUsize::new(pools.len()),
            shut: AtomicBool::new(false),
            stats,
        });
        let mut tasks = Vec::with_capacity(pools.len() + 1);
        for pool in &pools {
            let pool = pool.clone();
            let backlog = backlog.clone();
            let task = tokio::spawn(async move {
                while let Some(conn) = pool.accept().await {
                    backlog.wait_for_space().await;
                    backlog.push(conn);
                }
                backlog.forwarder_done();
            });
            tasks.push(task.abort_handle());
        }
        tasks.push(spawn_cleanup(backlog.clone(), settings.cleanup_interval()));
        Ok(Self {
            pools,
            udp_addrs,
            tcp_addrs,
            ws_addrs,
            backlog,
            tasks,
        })
    }

    /// The next incoming connection from any worker or carriage (its handshake may still be
    /// running: await [`Connection::established`]). Connections that ended while waiting are
    /// skipped. `None` once the server has shut down.
    pub async fn accept(&self) -> Option<Connection> {
        loop {
            let notified = self.backlog.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let mut skipped = Vec::new();
            let next = {
                let mut q = self.backlog.lock();
                loop {
                    match q.pop_front() {
                        Some(p) if p.ended() => skipped.push(p),
                        other => break other,
                    }
                }
            };
            if !skipped.is_empty() {
                let n = skipped.len();
                drop(skipped);
                self.backlog.count_discarded(n, false);
            }
            if let Some(p) = next {
                self.backlog.space.notify_waiters();
                return Some(p.conn.clone());
            }
            if self.backlog.finished() {
                return None;
            }
            notified.await;
        }
    }

    /// The first UDP address (`None` if the server listens on carriages only).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.udp_addrs.first().copied()
    }

    /// Every bound UDP address, in the order configured.
    pub fn udp_addrs(&self) -> &[SocketAddr] {
        &self.udp_addrs
    }

    /// The first TCP carriage address, if any.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addrs.first().copied()
    }

    /// Every bound TCP carriage address.
    pub fn tcp_addrs(&self) -> &[SocketAddr] {
        &self.tcp_addrs
    }

    /// The first WebSocket carriage address, if any.
    pub fn ws_addr(&self) -> Option<SocketAddr> {
        self.ws_addrs.first().copied()
    }

    /// Every bound WebSocket carriage address.
    pub fn ws_addrs(&self) -> &[SocketAddr] {
        &self.ws_addrs
    }

    /// Live connections over all workers (handshaking, established, or closing).
    pub fn connection_count(&self) -> usize {
        self.pools.iter().map(|p| p.connection_count()).sum()
    }

    /// Connections waiting for [`Server::accept`] (some may have ended since the last sweep).
    pub fn pending(&self) -> usize {
        self.backlog.lock().len()
    }

    /// The cleanup task's counters, updated after every sweep (use
    /// [`watch::Receiver::wait_for`] to wait for one).
    pub fn cleanup_stats(&self) -> watch::Receiver<CleanupStats> {
        self.backlog.stats.subscribe()
    }

    /// The worker pools, one per UDP address (for statistics and per-worker control such as
    /// [`crate::Endpoint::set_overloaded`]).
    pub fn pools(&self) -> &[Arc<ServerPool>] {
        &self.pools
    }

    /// Stops accepting (new handshakes are refused with SERVER_BUSY), closes every connection
    /// gracefully with `GoingAway`, waits until all have ended, and stops the cleanup task;
    /// [`Server::accept`] then returns `None`.
    pub async fn shutdown(&self) {
        for pool in &self.pools {
            pool.shutdown().await;
        }
        let drained: Vec<Pending> = self.backlog.lock().drain(..).collect();
        drop(drained);
        self.backlog.space.notify_waiters();
        for t in &self.tasks {
            t.abort();
        }
        self.backlog.shut.store(true, Ordering::Release);
        self.backlog.ready.notify_waiters();
    }
}

/// Opens the TCP and WebSocket listeners on the first worker of the first pool; returns their
/// bound addresses.
async fn listen_carriages(
    pools: &[Arc<ServerPool>],
    tcp: &[SocketAddr],
    ws: &[SocketAddr],
) -> Result<(Vec<SocketAddr>, Vec<SocketAddr>), Error> {
    let mut tcp_addrs = Vec::with_capacity(tcp.len());
    let mut ws_addrs = Vec::with_capacity(ws.len());
    if let Some(first) = pools.first().and_then(|p| p.workers().first()) {
        for addr in tcp {
            let bound = first.listen_tcp(*addr).await;
            tcp_addrs.push(bound.map_err(|e| bind_error(*addr, "TCP", e))?);
        }
        for addr in ws {
            let bound = first.listen_ws(*addr).await;
            ws_addrs.push(bound.map_err(|e| bind_error(*addr, "WebSocket", e))?);
        }
    }
    Ok((tcp_addrs, ws_addrs))
}

/// Attempts at finding an ephemeral port free for both UDP and TCP.
const SAME_PORT_ATTEMPTS: usize = 16;

/// Binds a pool at `addr` and a TCP carriage listener on its first worker at the same address
/// and port. With port 0, a port whose TCP twin is taken is given up and another one tried.
async fn bind_with_tcp_twin(
    addr: SocketAddr,
    config: &jsp_proto::ServerConfig,
    workers: usize,
) -> Result<(ServerPool, SocketAddr), Error> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let pool = ServerPool::bind(addr, config.clone(), workers)
            .map_err(|e| bind_error(addr, "UDP", e))?;
        let at = pool.local_addr();
        let Some(first) = pool.workers().first() else {
            return Err(Error::EndpointClosed(": the pool has no worker".into()));
        };
        match first.listen_tcp(at).await {
            Ok(tcp) => return Ok((pool, tcp)),
            // The system picked a UDP port whose TCP twin is taken: pick again.
            Err(Error::Io(e))
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && addr.port() == 0
                    && attempts < SAME_PORT_ATTEMPTS =>
            {
                pool.shutdown().await;
            }
            Err(e) => {
                pool.shutdown().await;
                return Err(bind_error(at, "TCP", e));
            }
        }
    }
}

/// Names the address and carriage of a socket error; other errors pass through.
fn bind_error(addr: SocketAddr, carriage: &'static str, e: Error) -> Error {
    match e {
        Error::Io(source) => Error::Bind {
            addr,
            carriage,
            source,
        },
        other => other,
    }
}

/// Sweeps the backlog every `interval`.
fn spawn_cleanup(backlog: Arc<Backlog>, interval: Duration) -> AbortHandle {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick completes at once.
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let n = backlog.sweep();
            backlog.count_discarded(n, true);
        }
    })
    .abort_handle()
}
