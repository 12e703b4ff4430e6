//! A UDP endpoint: one socket serving many connections, as client, server or both. Creating one
//! spawns its driver task on the current tokio runtime.

use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::task::Poll;

use jsp_proto::crypto::default_provider;
use jsp_proto::{ClientConfig, EndpointConfig, ServerConfig, SessionTicket};
use tokio::sync::Notify;

use crate::clock::Clock;
use crate::connection::Connection;
use crate::error::Error;
use crate::state::{Shared, State};
use crate::udp::UdpIo;

/// A JetStreamProto endpoint over UDP.
#[derive(Debug, Clone)]
pub struct Endpoint {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
}

impl Endpoint {
    /// A server listening on `addr` (which may also open client connections).
    pub fn server(addr: SocketAddr, config: ServerConfig) -> Result<Self, Error> {
        Self::new(addr, Some(config), EndpointConfig::default(), false)
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
        let io = UdpIo::bind(addr, reuse_port)?;
        let local_addr = io.local_addr()?;
        let clock = Clock::new();
        let proto =
            jsp_proto::Endpoint::new(config, default_provider(), server, clock.unix_at_origin())?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                proto,
                conns: HashMap::new(),
                incoming: VecDeque::new(),
                accept_wakers: Vec::new(),
                driver_error: None,
                shutting_down: false,
            }),
            wake: Notify::new(),
            clock,
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
            h
        };
        self.shared.wake.notify_one();
        let conn = Connection::new(self.shared.clone(), h);
        if !conn.can_send_early_data() {
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

    /// Stops accepting, closes every connection gracefully with `GoingAway` (each first delivers
    /// what was written to it), and waits until all have ended.
    pub async fn shutdown(&self) {
        let handles: Vec<_> = {
            let mut st = self.shared.lock();
            st.shutting_down = true;
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
