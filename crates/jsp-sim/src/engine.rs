//! Adapter and harness that put real JetStreamProto endpoints on the simulated network.
//!
//! [`EndpointNode`] drives a sans-IO [`Endpoint`] as a simulator [`Node`]; [`Pair`] builds the
//! common test topology (one client endpoint, one server endpoint, a link between them) with
//! seeded deterministic crypto, so a whole handshake replays byte for byte from its seed.

use std::net::SocketAddr;
use std::sync::Arc;

use core::time::Duration;

use jsp_proto::crypto::deterministic::DeterministicProvider;
use jsp_proto::crypto::CryptoProvider;
use jsp_proto::identity::Identity;
use jsp_proto::time::Instant;
use jsp_proto::{
    ClientConfig, Connection, ConnectionHandle, Endpoint, EndpointConfig, EndpointEvent,
    ServerConfig, TrustPolicy,
};

use crate::{Datagram, LinkConfig, Node, NodeId, SimConfig, Simulator, StopReason};

/// Wall-clock time at virtual time zero in simulated runs (2027-01-15).
pub const SIM_UNIX_EPOCH: u64 = 1_800_000_000;

/// A sans-IO endpoint as a simulator node.
pub struct EndpointNode {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// Connections accepted by this endpoint (server side), in order.
    pub accepted: Vec<ConnectionHandle>,
    buf: Vec<u8>,
    addr: SocketAddr,
}

impl EndpointNode {
    /// Wraps `endpoint`, bound at `addr`.
    pub fn new(endpoint: Endpoint, addr: SocketAddr) -> Self {
        Self {
            endpoint,
            accepted: Vec::new(),
            buf: Vec::with_capacity(2048),
            addr,
        }
    }

    fn collect_events(&mut self) {
        while let Some(ev) = self.endpoint.poll_event() {
            match ev {
                EndpointEvent::NewConnection(h) => self.accepted.push(h),
                // Handle reuse is not deferred in the simulator.
                EndpointEvent::Forgotten(h) => self.endpoint.release_handle(h),
            }
        }
    }
}

impl Node for EndpointNode {
    fn handle_datagram(&mut self, now: Instant, datagram: Datagram) {
        let mut payload = datagram.payload;
        self.endpoint
            .handle_datagram(now, datagram.src, &mut payload);
        self.collect_events();
    }

    fn poll_transmit(&mut self, now: Instant) -> Option<Datagram> {
        let t = self.endpoint.poll_transmit(now, &mut self.buf)?;
        Some(Datagram::new(
            self.addr,
            t.destination,
            self.buf[..t.size].to_vec(),
        ))
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        self.endpoint.poll_timeout()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.endpoint.handle_timeout(now);
        self.collect_events();
    }
}

/// A deterministic provider for node `n` of a run seeded with `seed`.
pub fn seeded_provider(seed: u64, n: u8) -> Arc<dyn CryptoProvider> {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&seed.to_le_bytes());
    s[8] = n;
    Arc::new(DeterministicProvider::new(s))
}

/// A server identity derived from `seed` (reproducible).
pub fn seeded_identity(provider: &dyn CryptoProvider, seed: u8) -> Identity {
    let mut s = [0u8; 32];
    s[0] = seed;
    s[31] = 0x5e;
    match Identity::from_seed(provider, &s) {
        Ok(id) => id,
        Err(e) => panic!("identity from seed: {e}"),
    }
}

/// One client endpoint and one server endpoint joined by a link.
pub struct Pair {
    /// The simulator.
    pub sim: Simulator,
    /// The client node.
    pub client: NodeId,
    /// The server node.
    pub server: NodeId,
    /// The client's connection.
    pub client_conn: ConnectionHandle,
    /// The server's address.
    pub server_addr: SocketAddr,
}

/// Client address in [`Pair`] runs.
pub const CLIENT_ADDR: &str = "10.0.0.1:50000";
/// Server address in [`Pair`] runs.
pub const SERVER_ADDR: &str = "10.0.0.2:4433";

fn addr(s: &str) -> SocketAddr {
    match s.parse() {
        Ok(a) => a,
        Err(e) => panic!("bad address {s}: {e}"),
    }
}

impl Pair {
    /// Builds the pair; the client starts connecting at time zero.
    pub fn new(seed: u64, server: ServerConfig, client: ClientConfig, link: LinkConfig) -> Self {
        let mut sim = Simulator::new(SimConfig {
            default_link: link,
            ..SimConfig::with_seed(seed)
        });
        let server_addr = addr(SERVER_ADDR);
        let client_addr = addr(CLIENT_ADDR);
        let server_ep = match Endpoint::new(
            EndpointConfig::default(),
            seeded_provider(seed, 2),
            Some(server),
            SIM_UNIX_EPOCH,
        ) {
            Ok(e) => e,
            Err(e) => panic!("server endpoint: {e}"),
        };
        let mut client_ep = match Endpoint::new(
            EndpointConfig::default(),
            seeded_provider(seed, 1),
            None,
            SIM_UNIX_EPOCH,
        ) {
            Ok(e) => e,
            Err(e) => panic!("client endpoint: {e}"),
        };
        let client_conn = match client_ep.connect(Instant::ZERO, Arc::new(client), server_addr) {
            Ok(h) => h,
            Err(e) => panic!("connect: {e}"),
        };
        let server_id = sim.add_node(server_addr, EndpointNode::new(server_ep, server_addr));
        let client_id = sim.add_node(client_addr, EndpointNode::new(client_ep, client_addr));
        Self {
            sim,
            client: client_id,
            server: server_id,
            client_conn,
            server_addr,
        }
    }

    /// A server config with `identity` and a client config pinning it.
    pub fn pinned_configs(identity: Identity) -> (ServerConfig, ClientConfig) {
        let fp = identity.fingerprint();
        (
            ServerConfig::new(identity),
            ClientConfig::new(TrustPolicy::pinned(fp)),
        )
    }

    /// The client's connection (`None` once the endpoint forgot it).
    pub fn client_conn(&mut self) -> Option<&mut Connection> {
        let h = self.client_conn;
        self.sim
            .node_mut::<EndpointNode>(self.client)
            .endpoint
            .connection_mut(h)
    }

    /// The server's first accepted connection.
    pub fn server_conn(&mut self) -> Option<&mut Connection> {
        let node = self.sim.node_mut::<EndpointNode>(self.server);
        let h = *node.accepted.first()?;
        node.endpoint.connection_mut(h)
    }

    /// Runs until both sides are established, either side closes, or `max` virtual time passes.
    /// Returns true if both are established.
    pub fn drive_handshake(&mut self, max: Duration) -> bool {
        let (client, server) = (self.client, self.server);
        let ch = self.client_conn;
        let r = self.sim.run_while(
            move |sim| {
                let c = sim.node_mut::<EndpointNode>(client).endpoint.connection(ch);
                let c_done = c.is_none_or(|c| c.is_established() || c.is_closing());
                let c_est = c.is_some_and(Connection::is_established);
                let s_node = sim.node_mut::<EndpointNode>(server);
                let s = s_node
                    .accepted
                    .first()
                    .and_then(|h| s_node.endpoint.connection(*h));
                let s_done = s.is_some_and(|s| s.is_established() || s.is_closing());
                !(c_done && (s_done || !c_est))
            },
            max,
        );
        let _: StopReason = r;
        let c_ok = self.client_conn().is_some_and(|c| c.is_established());
        let s_ok = self.server_conn().is_some_and(|c| c.is_established());
        c_ok && s_ok
    }
}
