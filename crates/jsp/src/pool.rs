//! A server that uses every core: [`ServerPool`] binds one UDP socket per worker on the same port
//! (SO_REUSEPORT, so the kernel spreads clients across them by address), each with its own
//! engine and driver task, so no single task sees every packet. The workers share what must be
//! shared: the stateless-reset key, the ticket keys and the 0-RTT anti-replay store. Each worker
//! starts the connection IDs it issues with its index; when a client's address changes and the
//! kernel hands its packets to another worker, that worker passes them to the owner
//! (PROTOCOL.md §3.1).

use std::net::SocketAddr;
use std::sync::Arc;

use jsp_proto::{EndpointConfig, ServerConfig};
use rand::RngCore;
use tokio::sync::mpsc;

use crate::{Connection, Endpoint, Error};

/// Largest number of workers (CID prefixes are one byte).
pub const MAX_WORKERS: usize = 256;

/// Several endpoints sharing one UDP port, one per core, accepting as one server.
#[derive(Debug)]
pub struct ServerPool {
    workers: Vec<Endpoint>,
    incoming: tokio::sync::Mutex<mpsc::Receiver<Connection>>,
    local_addr: SocketAddr,
}

impl ServerPool {
    /// Binds `workers` endpoints to `addr` (0: one per available core). With port 0 the first
    /// worker picks the port and the others join it.
    ///
    /// # Errors
    /// [`Error::Io`] if a socket cannot be bound (for example the port is taken by a process that
    /// did not set SO_REUSEPORT), [`Error::Config`] for an invalid server configuration.
    pub fn bind(addr: SocketAddr, config: ServerConfig, workers: usize) -> Result<Self, Error> {
        let n = if workers == 0 {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        } else {
            workers
        }
        .min(MAX_WORKERS);
        let mut reset_key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut reset_key);
        let endpoint_config = EndpointConfig {
            reset_key: Some(reset_key),
            ..EndpointConfig::default()
        };
        let mut endpoints: Vec<Endpoint> = Vec::with_capacity(n);
        let mut bind_addr = addr;
        let mut resumption = None;
        for i in 0..n {
            let prefix = u8::try_from(i).unwrap_or(u8::MAX);
            let ep = Endpoint::new_worker(
                bind_addr,
                Some(config.clone()),
                endpoint_config.clone(),
                true,
                Some((prefix, resumption.clone())),
            )?;
            if i == 0 {
                bind_addr = ep.local_addr();
                resumption = ep.shared.lock().proto.resumption_state();
            }
            endpoints.push(ep);
        }
        let weak: Vec<_> = endpoints
            .iter()
            .map(|e| Arc::downgrade(&e.shared))
            .collect();
        for ep in &endpoints {
            ep.shared.lock().workers = weak.clone();
        }
        let (tx, rx) = mpsc::channel(1024);
        for ep in &endpoints {
            let ep = ep.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                while let Some(conn) = ep.accept().await {
                    if tx.send(conn).await.is_err() {
                        return;
                    }
                }
            });
        }
        Ok(Self {
            workers: endpoints,
            incoming: tokio::sync::Mutex::new(rx),
            local_addr: bind_addr,
        })
    }

    /// The shared address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The workers, for per-worker settings (rate limits, circuit breaker, TCP/WebSocket
    /// listeners) and statistics.
    pub fn workers(&self) -> &[Endpoint] {
        &self.workers
    }

    /// The next incoming connection from any worker; `None` once every worker shut down.
    pub async fn accept(&self) -> Option<Connection> {
        self.incoming.lock().await.recv().await
    }

    /// Datagrams the workers handed to each other because a client's address changed and the
    /// kernel delivered its packets to a worker that does not own its connection.
    pub fn steered_datagrams(&self) -> u64 {
        self.workers
            .iter()
            .map(|w| w.shared.steered.load(std::sync::atomic::Ordering::Relaxed))
            .sum()
    }

    /// Live connections over all workers.
    pub fn connection_count(&self) -> usize {
        self.workers.iter().map(Endpoint::connection_count).sum()
    }

    /// Shuts every worker down gracefully (see [`Endpoint::shutdown`]).
    pub async fn shutdown(&self) {
        for w in &self.workers {
            w.shutdown().await;
        }
    }
}
