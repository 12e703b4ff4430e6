//! A UDP endpoint: one socket serving many connections, as client, server or both. Creating one
//! spawns its driver task on the current tokio runtime.

use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::task::Poll;

use jsp_proto::crypto::default_provider;
use jsp_proto::handshake::client::PreparedKeyShare;
use jsp_proto::{ClientConfig, ConnectionError, EndpointConfig, ServerConfig, SessionTicket};
use tokio::sync::Notify;

use crate::carriage::Carriage;
use crate::clock::Clock;
use crate::connection::Connection;
use crate::error::Error;
use crate::send_path::SendPath;
use crate::state::{Shared, State};
use crate::udp::UdpIo;

/// Where to reach a server over each carriage, and when to fall back (see
/// [`Endpoint::connect_auto`]).
#[derive(Debug, Clone)]
pub struct Targets {
    /// The server's UDP address.
    pub udp: Option<SocketAddr>,
    /// The server's TCP carriage address.
    pub tcp: Option<SocketAddr>,
    /// The server's WebSocket carriage address.
    pub ws: Option<SocketAddr>,
    /// Start the TCP attempt if UDP has not connected by then.
    pub tcp_delay: std::time::Duration,
    /// Start the WebSocket attempt if nothing has connected by then.
    pub ws_delay: std::time::Duration,
}

impl Targets {
    /// All three carriages with the default delays (TCP after 500 ms, WebSocket after 1 s).
    pub fn all(udp: SocketAddr, tcp: SocketAddr, ws: SocketAddr) -> Self {
        Self {
            udp: Some(udp),
            tcp: Some(tcp),
            ws: Some(ws),
            tcp_delay: std::time::Duration::from_millis(500),
            ws_delay: std::time::Duration::from_secs(1),
        }
    }
}

/// A JetStreamProto endpoint over UDP. Cheap to clone; once every handle is dropped and its last
/// connection has ended, the driver stops and the socket is released.
#[derive(Debug)]
pub struct Endpoint {
    pub(crate) shared: Arc<Shared>,
    local_addr: SocketAddr,
}

impl Clone for Endpoint {
    fn clone(&self) -> Self {
        self.shared
            .endpoint_handles
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Self {
            shared: self.shared.clone(),
            local_addr: self.local_addr,
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        let before = self
            .shared
            .endpoint_handles
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        if before == 1 {
            // Let the driver see whether it may stop.
            self.shared.wake.notify_one();
        }
    }
}

impl Endpoint {
    /// A server listening on `addr` (which may also open client connections).
    pub fn server(addr: SocketAddr, config: ServerConfig) -> Result<Self, Error> {
        Self::new(addr, Some(config), EndpointConfig::default(), false)
    }

    /// A server endpoint on UDP `addr` that also listens on TCP at the same address and port
    /// (the usual "one port for both" server); returns the endpoint and the TCP address. With
    /// port 0 the system's UDP port may have its TCP twin taken: another port is then tried,
    /// up to 16 times.
    ///
    /// # Errors
    /// As [`Endpoint::server`] and [`Endpoint::listen_tcp`].
    pub async fn server_with_tcp(
        addr: SocketAddr,
        config: ServerConfig,
    ) -> Result<(Self, SocketAddr), Error> {
        const ATTEMPTS: usize = 16;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let endpoint = Self::server(addr, config.clone())?;
            match endpoint.listen_tcp(endpoint.local_addr()).await {
                Ok(tcp) => return Ok((endpoint, tcp)),
                Err(Error::Io(e))
                    if e.kind() == std::io::ErrorKind::AddrInUse
                        && addr.port() == 0
                        && attempt < ATTEMPTS =>
                {
                    endpoint.shutdown().await;
                }
                Err(e) => {
                    endpoint.shutdown().await;
                    return Err(e);
                }
            }
        }
    }

    /// A client endpoint bound to `addr` (use port 0 for an ephemeral port).
    pub fn client(addr: SocketAddr) -> Result<Self, Error> {
        Self::new(addr, None, EndpointConfig::default(), false)
    }

    /// An endpoint with explicit settings; `reuse_port` lets several endpoints share the port
    /// (one per core).
    pub fn new(
        addr: SocketAddr,
        server: Option<ServerConfig>,
        config: EndpointConfig,
        reuse_port: bool,
    ) -> Result<Self, Error> {
        Self::new_worker(addr, server, config, reuse_port, None)
    }

    /// [`Endpoint::new`] for one worker of a [`ServerPool`](crate::ServerPool): `worker` is its CID
    /// prefix and the ticket state it shares with the others.
    pub(crate) fn new_worker(
        addr: SocketAddr,
        server: Option<ServerConfig>,
        config: EndpointConfig,
        reuse_port: bool,
        worker: Option<(u8, Option<jsp_proto::handshake::ticket::SharedResumption>)>,
    ) -> Result<Self, Error> {
        let io = Arc::new(UdpIo::bind(addr, reuse_port)?);
        let local_addr = io.local_addr()?;
        let clock = Clock::new();
        let pending_carriages = crate::carriage::PendingCarriages::new(server.as_ref());
        let mut proto =
            jsp_proto::Endpoint::new(config, default_provider(), server, clock.unix_at_origin())?;
        // Application handles may outlive the engine's connection: its handle must not reach a
        // new connection until they are gone (see `State::forget`).
        proto.set_defer_handle_reuse(true);
        if let Some((prefix, resumption)) = worker {
            proto.set_cid_prefix(Some(prefix));
            if let Some(r) = resumption {
                proto.set_resumption_state(r);
            }
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                proto,
                conns: HashMap::new(),
                incoming: VecDeque::new(),
                accept_wakers: Vec::new(),
                idle_wakers: Vec::new(),
                driver_error: None,
                shutting_down: false,
                stream_peers: HashMap::new(),
                next_stream_peer: 0,
                pending_carriages,
                rate: None,
                breaker: None,
                workers: Vec::new(),
                driver_deadline: None,
                inline_ok: false,
                woke_data_waiters: false,
                pending_wakes: Vec::new(),
                later_wakes: Vec::new(),
            }),
            wake: Notify::new(),
            clock,
            steered: std::sync::atomic::AtomicU64::new(0),
            endpoint_handles: std::sync::atomic::AtomicUsize::new(1),
            stopped: std::sync::atomic::AtomicBool::new(false),
            stopped_notify: Notify::new(),
            send: tokio::sync::Mutex::new(SendPath::new(io.clone())),
        });
        tokio::spawn(crate::driver::run(shared.clone(), io));
        Ok(Self { shared, local_addr })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Connects to `addr` and completes the handshake.
    pub async fn connect(
        &self,
        addr: SocketAddr,
        config: Arc<ClientConfig>,
    ) -> Result<Connection, Error> {
        self.connect_resuming(addr, config, None).await
    }

    /// Connects, resuming the session of `ticket` when given; data written before the handshake
    /// completes then goes out as 0-RTT. Returns once the connection can carry data (at once for
    /// 0-RTT; otherwise after the handshake).
    pub async fn connect_resuming(
        &self,
        addr: SocketAddr,
        config: Arc<ClientConfig>,
        ticket: Option<&SessionTicket>,
    ) -> Result<Connection, Error> {
        let h = {
            let mut st = self.shared.lock();
            if st.shutting_down {
                return Err(Error::EndpointClosed(": shutting down".into()));
            }
            let now = self.shared.clock.now();
            let h = st.proto.connect_resuming(now, config, addr, ticket)?;
            st.conns.entry(h).or_default();
            // The first flight leaves from here unless the driver is sending right now.
            self.shared.after_urgent_call(st);
            h
        };
        let conn = Connection::new(self.shared.clone(), h);
        if conn.can_send_early_data() {
            // The application writes 0-RTT data next: prepare on another task.
            let shared = self.shared.clone();
            tokio::spawn(async move { prepare_key_share(&shared) });
        } else {
            prepare_key_share(&self.shared);
            conn.established().await?;
        }
        Ok(conn)
    }

    /// The next incoming connection (its handshake may still be running: await
    /// [`Connection::established`]). `None` once the endpoint shuts down.
    pub async fn accept(&self) -> Option<Connection> {
        let h = poll_fn(|cx| {
            let mut st = self.shared.lock();
            if let Some(h) = st.incoming.pop_front() {
                return Poll::Ready(Some(h));
            }
            if st.shutting_down || st.driver_error.is_some() {
                return Poll::Ready(None);
            }
            st.accept_wakers.push(cx.waker().clone());
            Poll::Pending
        })
        .await?;
        Some(Connection::new(self.shared.clone(), h))
    }

    /// Stops accepting (new handshakes are refused with SERVER_BUSY), closes every connection
    /// gracefully with `GoingAway` (each first delivers what was written to it), and waits until
    /// all have ended; the socket is then released.
    pub async fn shutdown(&self) {
        let handles: Vec<_> = {
            let mut st = self.shared.lock();
            st.shutting_down = true;
            st.proto
                .set_admission_control(Box::new(crate::breaker::RefuseAll));
            let now = self.shared.clock.now();
            let hs: Vec<_> = st.proto.handles().collect();
            for h in &hs {
                if let Some(c) = st.proto.connection_mut(*h) {
                    c.close(
                        now,
                        jsp_proto::CloseReason::GoingAway,
                        Some("server shutting down"),
                    );
                }
            }
            for w in st.accept_wakers.drain(..) {
                w.wake();
            }
            hs
        };
        self.shared.wake.notify_one();
        for h in handles {
            Connection::new(self.shared.clone(), h).closed().await;
        }
        self.stopped().await;
    }

    /// A future that completes once the endpoint's driver stopped and its socket is closed:
    /// after [`Endpoint::shutdown`], or once every handle was dropped and the last connection
    /// ended. It holds no handle, so it does not keep the endpoint alive.
    pub fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let shared = self.shared.clone();
        async move {
            loop {
                let notified = shared.stopped_notify.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if shared.stopped.load(std::sync::atomic::Ordering::Acquire) {
                    return;
                }
                notified.await;
            }
        }
    }

    /// Waits until the endpoint has no connection left: every close was sent and every draining
    /// period is over. Call it before the process exits, so that the peers receive the close
    /// instead of waiting for their idle timeout.
    pub async fn wait_idle(&self) {
        poll_fn(|cx| {
            let mut st = self.shared.lock();
            if st.proto.connection_count() == 0 || st.driver_error.is_some() {
                return std::task::Poll::Ready(());
            }
            st.idle_wakers.push(cx.waker().clone());
            std::task::Poll::Pending
        })
        .await;
    }

    /// Also accepts TCP carriages on `addr` (the same protocol in length-prefixed records).
    /// Returns the bound address.
    pub async fn listen_tcp(&self, addr: SocketAddr) -> Result<SocketAddr, Error> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let shared = self.shared.clone();
        tokio::spawn(async move {
            while let Ok((stream, real)) = listener.accept().await {
                if shared.lock().shutting_down {
                    break;
                }
                crate::carriage::accept_tcp(shared.clone(), stream, real);
            }
        });
        Ok(local)
    }

    /// Also accepts WebSocket carriages on `addr` (binary messages carrying records; any path).
    /// Returns the bound address.
    pub async fn listen_ws(&self, addr: SocketAddr) -> Result<SocketAddr, Error> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let shared = self.shared.clone();
        tokio::spawn(async move {
            while let Ok((stream, real)) = listener.accept().await {
                if shared.lock().shutting_down {
                    break;
                }
                crate::carriage::accept_ws(shared.clone(), stream, real);
            }
        });
        Ok(local)
    }

    /// Connects over a TCP carriage to a server's `listen_tcp` address.
    pub async fn connect_tcp(
        &self,
        server: SocketAddr,
        config: Arc<ClientConfig>,
    ) -> Result<Connection, Error> {
        self.connect_tcp_resuming(server, config, None).await
    }

    /// [`Endpoint::connect_tcp`], resuming the session of `ticket` when given (0-RTT).
    pub async fn connect_tcp_resuming(
        &self,
        server: SocketAddr,
        config: Arc<ClientConfig>,
        ticket: Option<&SessionTicket>,
    ) -> Result<Connection, Error> {
        let stream = tokio::net::TcpStream::connect(server).await?;
        let addr = crate::carriage::attach_tcp(self.shared.clone(), stream);
        self.connect_resuming(addr, config, ticket).await
    }

    /// Connects over a WebSocket carriage to a server's `listen_ws` address.
    pub async fn connect_ws(
        &self,
        server: SocketAddr,
        config: Arc<ClientConfig>,
    ) -> Result<Connection, Error> {
        self.connect_ws_resuming(server, config, None).await
    }

    /// [`Endpoint::connect_ws`], resuming the session of `ticket` when given (0-RTT).
    pub async fn connect_ws_resuming(
        &self,
        server: SocketAddr,
        config: Arc<ClientConfig>,
        ticket: Option<&SessionTicket>,
    ) -> Result<Connection, Error> {
        let url = format!("ws://{server}/jsp");
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e)))?;
        let addr = crate::carriage::attach_ws(self.shared.clone(), ws, server);
        self.connect_resuming(addr, config, ticket).await
    }

    /// Connects over one carriage, resuming the session of `ticket` when given.
    async fn connect_over(
        &self,
        kind: Carriage,
        addr: SocketAddr,
        config: Arc<ClientConfig>,
        ticket: Option<&SessionTicket>,
    ) -> Result<Connection, Error> {
        match kind {
            Carriage::Udp => self.connect_resuming(addr, config, ticket).await,
            Carriage::Tcp => self.connect_tcp_resuming(addr, config, ticket).await,
            Carriage::WebSocket => self.connect_ws_resuming(addr, config, ticket).await,
        }
    }

    /// Connects with automatic fallback: UDP first; if no connection after `tcp_delay`, races a
    /// TCP carriage; after `ws_delay`, a WebSocket one. The first handshake to complete wins and
    /// the others are abandoned; [`Connection::carriage`] says which won.
    pub async fn connect_auto(
        &self,
        targets: &Targets,
        config: Arc<ClientConfig>,
    ) -> Result<Connection, Error> {
        self.connect_auto_resuming(targets, config, None).await
    }

    /// [`Endpoint::connect_auto`], resuming the session of `ticket` when given. With a single
    /// carriage in `targets` the connection is returned at once and data written before the
    /// handshake completes goes out as 0-RTT; with several, the race is decided by the first
    /// completed handshake (an unanswered 0-RTT attempt proves nothing about the path).
    pub async fn connect_auto_resuming(
        &self,
        targets: &Targets,
        config: Arc<ClientConfig>,
        ticket: Option<&SessionTicket>,
    ) -> Result<Connection, Error> {
        let single = [targets.udp, targets.tcp, targets.ws]
            .iter()
            .filter(|t| t.is_some())
            .count()
            == 1;
        if single {
            let (kind, addr) = match (targets.udp, targets.tcp, targets.ws) {
                (Some(a), _, _) => (Carriage::Udp, a),
                (_, Some(a), _) => (Carriage::Tcp, a),
                (_, _, Some(a)) => (Carriage::WebSocket, a),
                _ => return Err(Error::EndpointClosed(": no carriage to try".into())),
            };
            return self.connect_over(kind, addr, config, ticket).await;
        }
        let mut attempts: tokio::task::JoinSet<Result<Connection, Error>> =
            tokio::task::JoinSet::new();
        let mut last_err = None;
        let mut pending: Vec<(std::time::Duration, Carriage, SocketAddr)> = Vec::new();
        if let Some(a) = targets.udp {
            pending.push((std::time::Duration::ZERO, Carriage::Udp, a));
        }
        if let Some(a) = targets.tcp {
            pending.push((targets.tcp_delay, Carriage::Tcp, a));
        }
        if let Some(a) = targets.ws {
            pending.push((targets.ws_delay, Carriage::WebSocket, a));
        }
        pending.sort_by_key(|p| p.0);
        let start = tokio::time::Instant::now();
        let mut next = 0;
        loop {
            while next < pending.len() && start.elapsed() >= pending[next].0 {
                let (_, kind, addr) = pending[next];
                let ep = self.clone();
                let cfg = config.clone();
                let ticket = ticket.cloned();
                attempts.spawn(async move {
                    let conn = ep.connect_over(kind, addr, cfg, ticket.as_ref()).await?;
                    conn.established().await?;
                    Ok(conn)
                });
                next += 1;
            }
            if attempts.is_empty() && next >= pending.len() {
                return Err(last_err
                    .unwrap_or_else(|| Error::EndpointClosed(": no carriage to try".into())));
            }
            let wake_at = pending.get(next).map(|p| start + p.0);
            let timer = async {
                match wake_at {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                Some(joined) = attempts.join_next(), if !attempts.is_empty() => {
                    match joined {
                        // The winner: dropping the set aborts the other attempts, whose
                        // connections close when their handles drop.
                        Ok(Ok(conn)) => return Ok(conn),
                        // The server answered and failed authentication (or the handshake broke):
                        // another carriage reaches the same server, so stop here.
                        Ok(Err(e @ Error::Connection(ConnectionError::Handshake(_)))) => {
                            return Err(e)
                        }
                        Ok(Err(e)) => last_err = Some(e),
                        Err(e) => last_err = Some(Error::Io(std::io::Error::other(e))),
                    }
                }
                () = timer => {}
            }
        }
    }

    /// Limits what each peer of an accepted connection may send (and all peers together):
    /// datagrams and streams the peer opens are messages, stream data is bytes. With
    /// back-pressure the application's reads wait; with the close policy the connection is closed
    /// with `RateLimitExceeded`. Applies to connections accepted from now on.
    pub fn set_rate_limits(&self, config: crate::limits::RateLimitConfig) -> Result<(), Error> {
        let global = config
            .global_limiter()
            .map_err(|e| Error::EndpointClosed(format!(": invalid rate limits: {e}")))?;
        config
            .connection_limits()
            .map_err(|e| Error::EndpointClosed(format!(": invalid rate limits: {e}")))?;
        self.shared.lock().rate = Some(crate::rate::EndpointRate { config, global });
        Ok(())
    }

    /// Installs a circuit breaker on new handshakes: under load (too many handshakes in flight,
    /// failures, or [`Endpoint::set_overloaded`]) new clients get a Retry or a clear refusal
    /// (SERVER_BUSY) instead of every existing connection getting slower.
    pub fn set_circuit_breaker(
        &self,
        config: crate::limits::CircuitBreakerConfig,
    ) -> Result<(), Error> {
        let breaker = crate::limits::CircuitBreaker::new(config)
            .map_err(|e| Error::EndpointClosed(format!(": invalid circuit breaker: {e}")))?;
        let shared = Arc::new(Mutex::new(breaker));
        let mut st = self.shared.lock();
        st.proto
            .set_admission_control(Box::new(crate::breaker::BreakerHook {
                breaker: shared.clone(),
                clock: self.shared.clock,
            }));
        st.breaker = Some(shared);
        Ok(())
    }

    /// Reports an external overload signal to the circuit breaker (opens it while true).
    pub fn set_overloaded(&self, overloaded: bool) {
        let st = self.shared.lock();
        if let Some(b) = &st.breaker {
            let mut b = b.lock().unwrap_or_else(|e| e.into_inner());
            b.set_overloaded(crate::clock::std_now(), overloaded);
        }
    }

    /// Live connections.
    pub fn connection_count(&self) -> usize {
        self.shared.lock().proto.connection_count()
    }

    /// The engine's endpoint counters (refusals, retries, resets ...).
    pub fn stats(&self) -> jsp_proto::endpoint::EndpointStats {
        self.shared.lock().proto.stats().clone()
    }
}

/// Generates the key share of the endpoint's next client connection, if the engine has none,
/// while a first flight is on its way (the key generation then costs the next connection no
/// time). Outside the state lock: the driver goes on meanwhile.
fn prepare_key_share(shared: &Shared) {
    let provider = {
        let st = shared.lock();
        if !st.proto.wants_key_share() {
            return;
        }
        st.proto.provider().clone()
    };
    // A failure here only means the next connection generates its own (and reports it).
    if let Ok(share) = PreparedKeyShare::generate(provider.as_ref()) {
        shared.lock().proto.offer_key_share(share);
    }
}
