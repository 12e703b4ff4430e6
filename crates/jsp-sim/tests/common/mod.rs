//! Shared helpers of the simulator integration tests: seeded identities and configurations, an
//! application-side view of a connection that records its events and reads its streams and
//! datagrams ([`App`]), drivers that run the simulator until an application-level condition
//! holds, and a small on-path toolkit that removes and re-applies Initial/Handshake/1-RTT
//! protection with the engine's public crypto API ([`wire`]).
//!
//! Every test binary compiles this module; not every binary uses every helper.
#![allow(dead_code)]

pub mod wire;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;

use core::time::Duration;

use jsp_proto::connection::HandshakeSummary;
use jsp_proto::identity::Identity;
use jsp_proto::time::Instant;
use jsp_proto::{
    ClientConfig, Connection, ConnectionError, ConnectionHandle, ConnectionStats, Dir, Endpoint,
    EndpointConfig, Event, ServerConfig, StreamId,
};
use jsp_sim::engine::{seeded_identity, seeded_provider, EndpointNode, Pair, SIM_UNIX_EPOCH};
use jsp_sim::{LinkConfig, NodeId, Simulator};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// `n` milliseconds.
pub const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// `n` seconds.
pub const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Identity number `n`: 1 is the server, 2 the client, 3 an authority, 4+ strangers. Derived
/// from `n` alone, so a test can rebuild the same identity to learn its key.
pub fn identity(n: u8) -> Identity {
    seeded_identity(seeded_provider(0, 200).as_ref(), n)
}

/// The server identity of [`pinned`].
pub const SERVER_ID: u8 = 1;
/// A client identity.
pub const CLIENT_ID: u8 = 2;
/// A certificate authority.
pub const AUTHORITY_ID: u8 = 3;
/// A key nobody trusts.
pub const STRANGER_ID: u8 = 4;

/// A server with identity [`SERVER_ID`] and a client that pins it.
pub fn pinned() -> (ServerConfig, ClientConfig) {
    Pair::pinned_configs(identity(SERVER_ID))
}

/// A 20 ms one-way, otherwise perfect, link (40 ms RTT).
pub fn link20() -> LinkConfig {
    LinkConfig::with_delay(ms(20))
}

/// Seeded random bytes.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_da7a);
    let mut v = vec![0u8; len];
    rng.fill(&mut v[..]);
    v
}

/// Parses a socket address literal.
pub fn sock(s: &str) -> SocketAddr {
    s.parse()
        .unwrap_or_else(|e| panic!("bad socket address {s}: {e}"))
}

/// Builds an endpoint with a seeded provider (`n` distinguishes endpoints of one run).
pub fn endpoint(seed: u64, n: u8, server: Option<ServerConfig>) -> Endpoint {
    Endpoint::new(
        EndpointConfig::default(),
        seeded_provider(seed, n),
        server,
        SIM_UNIX_EPOCH,
    )
    .unwrap_or_else(|e| panic!("endpoint: {e}"))
}

/// Adds a client endpoint at `addr` that starts connecting to `server` at the current time;
/// returns its node and connection handle.
pub fn add_client(
    sim: &mut Simulator,
    seed: u64,
    n: u8,
    addr: SocketAddr,
    server: SocketAddr,
    config: ClientConfig,
) -> (NodeId, ConnectionHandle) {
    let mut ep = endpoint(seed, n, None);
    let h = ep
        .connect(sim.now(), Arc::new(config), server)
        .unwrap_or_else(|e| panic!("connect: {e}"));
    let id = sim.add_node(addr, EndpointNode::new(ep, addr));
    (id, h)
}

/// The endpoint of node `id`.
pub fn ep(sim: &Simulator, id: NodeId) -> &Endpoint {
    &sim.node::<EndpointNode>(id).endpoint
}

/// The application's view of one connection: every event it was given, the bytes read from each
/// stream, the streams that ended, the datagrams received.
#[derive(Debug)]
pub struct App {
    /// The endpoint node the connection lives in.
    pub node: NodeId,
    /// The connection (for a server: the first accepted one, learnt when it exists).
    handle: Option<ConnectionHandle>,
    /// Events in the order they were polled.
    pub events: Vec<Event>,
    /// Bytes read per stream id.
    pub streams: BTreeMap<u64, Vec<u8>>,
    /// Streams whose FIN was read.
    pub finished: BTreeSet<u64>,
    /// Datagrams read.
    pub datagrams: Vec<Vec<u8>>,
    /// The connection's counters, as last seen while it existed.
    pub stats: ConnectionStats,
    /// Virtual time of the `Connected` event.
    pub connected_at: Option<Instant>,
    /// Virtual time of the `Closed` event.
    pub closed_at: Option<Instant>,
}

impl App {
    /// The client side of `pair`.
    pub fn client(pair: &Pair) -> Self {
        Self::with_handle(pair.client, Some(pair.client_conn))
    }

    /// The server side of `pair` (its first accepted connection).
    pub fn server(pair: &Pair) -> Self {
        Self::with_handle(pair.server, None)
    }

    /// A view of connection `handle` (or, if `None`, of the first connection `node` accepts).
    pub fn with_handle(node: NodeId, handle: Option<ConnectionHandle>) -> Self {
        Self {
            node,
            handle,
            events: Vec::new(),
            streams: BTreeMap::new(),
            finished: BTreeSet::new(),
            datagrams: Vec::new(),
            stats: ConnectionStats::default(),
            connected_at: None,
            closed_at: None,
        }
    }

    /// The connection handle, once known.
    pub fn handle(&mut self, sim: &Simulator) -> Option<ConnectionHandle> {
        if self.handle.is_none() {
            self.handle = sim
                .node::<EndpointNode>(self.node)
                .accepted
                .first()
                .copied();
        }
        self.handle
    }

    /// The connection, if the endpoint still has it.
    pub fn conn<'a>(&mut self, sim: &'a mut Simulator) -> Option<&'a mut Connection> {
        let h = self.handle(sim)?;
        sim.node_mut::<EndpointNode>(self.node)
            .endpoint
            .connection_mut(h)
    }

    /// The connection (read-only), if the endpoint still has it.
    pub fn conn_ref<'a>(&mut self, sim: &'a Simulator) -> Option<&'a Connection> {
        let h = self.handle(sim)?;
        sim.node::<EndpointNode>(self.node).endpoint.connection(h)
    }

    /// The connection; panics if it is gone.
    pub fn expect_conn<'a>(&mut self, sim: &'a mut Simulator) -> &'a mut Connection {
        let node = self.node;
        self.conn(sim)
            .unwrap_or_else(|| panic!("the connection of {node} is gone"))
    }

    /// Reads every pending event, and all readable stream data and datagrams.
    pub fn poll(&mut self, sim: &mut Simulator) {
        let now = sim.now();
        let Some(conn) = self.conn_ref(sim) else {
            return;
        };
        self.stats = conn.stats();
        if !conn.has_pending_events() {
            return;
        }
        let Some(conn) = self.conn(sim) else { return };
        while let Some(ev) = conn.poll_event() {
            match &ev {
                Event::Connected(_) => self.connected_at = self.connected_at.or(Some(now)),
                Event::Closed(_) => self.closed_at = self.closed_at.or(Some(now)),
                Event::StreamReadable(id) => {
                    if let Ok((data, fin)) = conn.stream_read(*id, usize::MAX) {
                        self.streams.entry(id.0).or_default().extend(data);
                        if fin {
                            self.finished.insert(id.0);
                        }
                    }
                }
                Event::DatagramReceived => {
                    while let Some(d) = conn.read_datagram() {
                        self.datagrams.push(d);
                    }
                }
                _ => {}
            }
            self.events.push(ev);
        }
    }

    /// The summary of the first `Connected` event, if any.
    pub fn connected(&self) -> Option<&HandshakeSummary> {
        self.events.iter().find_map(|e| match e {
            Event::Connected(s) => Some(s),
            _ => None,
        })
    }

    /// The error of the `Closed` event, if any.
    pub fn closed(&self) -> Option<&ConnectionError> {
        self.events.iter().find_map(|e| match e {
            Event::Closed(err) => Some(err),
            _ => None,
        })
    }

    /// How many `KeyUpdated` events were seen.
    pub fn key_updates_seen(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, Event::KeyUpdated { .. }))
            .count()
    }

    /// Total stream bytes read.
    pub fn stream_bytes(&self) -> usize {
        self.streams.values().map(Vec::len).sum()
    }

    /// Opens a bidirectional stream and writes `data` (then FIN if `fin`).
    pub fn send_stream(&mut self, sim: &mut Simulator, data: &[u8], fin: bool) -> StreamId {
        let conn = self.expect_conn(sim);
        let id = conn
            .open_stream(Dir::Bi)
            .unwrap_or_else(|e| panic!("open_stream: {e}"));
        let n = conn
            .stream_write(id, data, fin)
            .unwrap_or_else(|e| panic!("stream_write: {e}"));
        assert_eq!(n, data.len());
        id
    }
}

/// Runs `sim`, polling every app before each event, until `done` holds or `max` virtual time
/// passes. Returns whether `done` held.
pub fn run_until(
    sim: &mut Simulator,
    apps: &mut [&mut App],
    max: Duration,
    mut done: impl FnMut(&[&mut App]) -> bool,
) -> bool {
    let _ = sim.run_while(
        |sim| {
            for a in apps.iter_mut() {
                a.poll(sim);
            }
            !done(apps)
        },
        max,
    );
    for a in apps.iter_mut() {
        a.poll(sim);
    }
    done(apps)
}

/// Runs `sim` for `d` of virtual time, polling the apps before every event.
pub fn run_for(sim: &mut Simulator, apps: &mut [&mut App], d: Duration) {
    let _ = run_until(sim, apps, d, |_| false);
}

/// Runs until both apps saw `Connected` (true) or either saw `Closed` or `max` passed (false).
pub fn handshake(sim: &mut Simulator, client: &mut App, server: &mut App, max: Duration) -> bool {
    run_until(sim, &mut [client, server], max, |a| {
        let both = a.iter().all(|a| a.connected().is_some());
        let failed = a.iter().any(|a| a.closed().is_some());
        both || failed
    });
    client.connected().is_some() && server.connected().is_some()
}

/// Builds a [`Pair`], completes the handshake (panics if it does not within 10 s) and returns the
/// pair with both app views.
pub fn connected_pair(
    seed: u64,
    server: ServerConfig,
    client: ClientConfig,
    link: LinkConfig,
) -> (Pair, App, App) {
    let mut pair = Pair::new(seed, server, client, link);
    let (mut c, mut s) = (App::client(&pair), App::server(&pair));
    assert!(
        handshake(&mut pair.sim, &mut c, &mut s, secs(10)),
        "handshake failed: client {:?}, server {:?}",
        c.closed(),
        s.closed()
    );
    (pair, c, s)
}

/// Sends `data` on a new client stream (with FIN) and runs until the server has read all of it
/// and the FIN, or `max` passes. Returns the bytes the server read on that stream.
pub fn transfer(
    sim: &mut Simulator,
    client: &mut App,
    server: &mut App,
    data: &[u8],
    max: Duration,
) -> Vec<u8> {
    let id = client.send_stream(sim, data, true);
    run_until(sim, &mut [client, server], max, |a| {
        a[1].finished.contains(&id.0) || a.iter().any(|a| a.closed().is_some())
    });
    server.streams.get(&id.0).cloned().unwrap_or_default()
}
