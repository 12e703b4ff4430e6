//! Binding a server: UDP endpoints, TCP and WebSocket carriages, and messages that say what to do
//! when an address is taken.

use std::io;
use std::net::SocketAddr;

use jsp::limits::{CircuitBreakerConfig, RateLimitConfig};
use jsp::{Endpoint, ServerConfig};

use crate::error::CliError;
use crate::keyfile::describe_io;

/// Attempts at finding an ephemeral port free for both UDP and TCP.
const SAME_PORT_ATTEMPTS: usize = 16;

/// Where to listen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListenPlan {
    /// UDP addresses (one endpoint each). At least one is needed; the first also carries TCP and
    /// WebSocket.
    pub udp: Vec<SocketAddr>,
    /// TCP carriage addresses.
    pub tcp: Vec<SocketAddr>,
    /// WebSocket carriage addresses.
    pub ws: Vec<SocketAddr>,
    /// Also listen on TCP at the first UDP socket's address and port (even when that port was
    /// chosen by the system).
    pub tcp_on_udp_port: bool,
}

/// What every endpoint of a server enforces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointSettings {
    /// Per-connection and server-wide rate limits (`None`: unlimited).
    pub rate_limits: Option<RateLimitConfig>,
    /// The handshake circuit breaker (`None`: none).
    pub circuit_breaker: Option<CircuitBreakerConfig>,
}

impl EndpointSettings {
    /// Applies the settings to a new endpoint (before it accepts anything).
    fn apply(&self, endpoint: &Endpoint) -> Result<(), CliError> {
        let invalid = |e: jsp::Error| CliError::new(format!("cannot configure the server: {e}"));
        if let Some(limits) = &self.rate_limits {
            endpoint.set_rate_limits(limits.clone()).map_err(invalid)?;
        }
        if let Some(breaker) = &self.circuit_breaker {
            endpoint
                .set_circuit_breaker(breaker.clone())
                .map_err(invalid)?;
        }
        Ok(())
    }
}

/// Bound sockets.
#[derive(Debug)]
pub struct Listening {
    /// One endpoint per UDP address; the first carries the TCP and WebSocket listeners.
    pub endpoints: Vec<Endpoint>,
    /// Bound UDP addresses.
    pub udp: Vec<SocketAddr>,
    /// Bound TCP addresses.
    pub tcp: Vec<SocketAddr>,
    /// Bound WebSocket addresses.
    pub ws: Vec<SocketAddr>,
}

/// Binds everything in `plan`, each endpoint with `settings`.
pub async fn listen(
    plan: &ListenPlan,
    config: &ServerConfig,
    settings: &EndpointSettings,
) -> Result<Listening, CliError> {
    let Some(&first_udp) = plan.udp.first() else {
        return Err(CliError::new("no UDP address to listen on")
            .hint("pass --listen ADDR, e.g. --listen 0.0.0.0:4433"));
    };
    let mut attempts = 0;
    let (first, mut tcp) = loop {
        attempts += 1;
        let endpoint = Endpoint::server(first_udp, config.clone())
            .map_err(|e| bind_error("UDP", first_udp, &e))?;
        settings.apply(&endpoint)?;
        if !plan.tcp_on_udp_port {
            break (endpoint, Vec::new());
        }
        let at = endpoint.local_addr();
        match endpoint.listen_tcp(at).await {
            Ok(bound) => break (endpoint, vec![bound]),
            // The system picked a UDP port whose TCP twin is taken: pick again.
            Err(jsp::Error::Io(e))
                if e.kind() == io::ErrorKind::AddrInUse
                    && first_udp.port() == 0
                    && attempts < SAME_PORT_ATTEMPTS =>
            {
                endpoint.shutdown().await;
            }
            Err(e) => return Err(bind_error("TCP", at, &e)),
        }
    };
    let mut endpoints = vec![first.clone()];
    let mut udp = vec![first.local_addr()];
    for &addr in plan.udp.iter().skip(1) {
        let endpoint =
            Endpoint::server(addr, config.clone()).map_err(|e| bind_error("UDP", addr, &e))?;
        udp.push(endpoint.local_addr());
        endpoints.push(endpoint);
    }
    for &addr in &plan.tcp {
        let bound = first
            .listen_tcp(addr)
            .await
            .map_err(|e| bind_error("TCP", addr, &e))?;
        tcp.push(bound);
    }
    let mut ws = Vec::new();
    for &addr in &plan.ws {
        let bound = first
            .listen_ws(addr)
            .await
            .map_err(|e| bind_error("WebSocket", addr, &e))?;
        ws.push(bound);
    }
    Ok(Listening {
        endpoints,
        udp,
        tcp,
        ws,
    })
}

/// `cannot listen on ADDR (UDP): address already in use; <what to do>`.
fn bind_error(what: &str, addr: SocketAddr, e: &jsp::Error) -> CliError {
    let err = CliError::new(format!(
        "cannot listen on {addr} ({what}): {}",
        match e {
            jsp::Error::Io(io) => describe_bind(io),
            other => other.to_string(),
        }
    ));
    let kind = match e {
        jsp::Error::Io(io) => Some(io.kind()),
        _ => None,
    };
    match kind {
        Some(io::ErrorKind::AddrInUse) => {
            err.hint("stop the program using that port, or choose another port")
        }
        Some(io::ErrorKind::AddrNotAvailable) => {
            err.hint("use an address of this machine, or 0.0.0.0 for all of them")
        }
        Some(io::ErrorKind::PermissionDenied) => {
            err.hint("use a port above 1023, or run with the privilege to bind low ports")
        }
        _ => err,
    }
}

fn describe_bind(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::AddrInUse => "address already in use".to_owned(),
        io::ErrorKind::AddrNotAvailable => "address not available on this machine".to_owned(),
        _ => describe_io(e),
    }
}
