//! The sans-IO endpoint: one per socket. It demultiplexes datagrams to connections by connection
//! ID, accepts or refuses new handshakes (Retry, handshake caps, version negotiation), and sends
//! the few stateless replies the protocol allows (PROTOCOL.md §3, §4.5, §12).
//!
//! Driver loop: `handle_datagram` for every datagram received; `handle_timeout` once
//! `poll_timeout` has passed; then drain `poll_transmit` and `poll_event`, and each connection's
//! events through [`Endpoint::connection_mut`].

use core::net::SocketAddr;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use crate::activity::Activity;
use crate::config::{ClientConfig, EndpointConfig, RetryPolicy, ServerConfig};
use crate::connection::{Connection, ServerContext, Transmit, MIN_INITIAL_DATAGRAM};
use crate::crypto::CryptoProvider;
use crate::error::{ConfigError, ConnectionError};
use crate::handshake::client::PreparedKeyShare;
use crate::handshake::retry::{self, RetryTokenKey};
use crate::handshake::ticket::{ResumptionState, SessionTicket, SharedResumption};
use crate::time::{Instant, UnixTime};
use crate::wire::header::{self, ConnectionId, PacketType, PartialDecode};

/// Smallest stateless reset datagram (and smallest datagram that can trigger one): a minimal
/// short-header packet with an 8-byte CID (PROTOCOL.md §15.3).
pub const MIN_STATELESS_RESET: usize = 26;
/// Largest stateless reset sent.
pub const MAX_STATELESS_RESET: usize = 64;
/// Length of the authentication tag at the end of CIDs this endpoint issues.
const CID_TAG_LEN: usize = 4;
/// CIDs shorter than this carry no tag (and never trigger stateless resets).
const CID_TAG_MIN_LEN: usize = 8;

/// Identifies a connection within its endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionHandle(pub usize);

/// Something that happened at the endpoint level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointEvent {
    /// A client started a handshake with this server; the connection exists now.
    NewConnection(ConnectionHandle),
    /// A closed connection was forgotten and its handle is held until
    /// [`Endpoint::release_handle`] (only with [`Endpoint::set_defer_handle_reuse`]).
    Forgotten(ConnectionHandle),
}

/// A decision on a new handshake (PROTOCOL.md §12.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Proceed (subject to the Retry policy and the caps).
    Accept,
    /// Validate the client's address with Retry first.
    Retry,
    /// Refuse at once with SERVER_BUSY.
    Refuse,
}

/// Consulted once for each new handshake, before the Retry policy: lets a driver shed load early
/// (a circuit breaker) instead of degrading existing connections.
pub trait AdmissionControl: Send {
    /// Decides on a new handshake while `handshakes_in_flight` others are running.
    fn admit(&mut self, now: Instant, handshakes_in_flight: usize) -> Admission;
}

/// What [`Endpoint::process`] asks the driver to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Output {
    /// Send the datagram now in the output buffer.
    Datagram(Transmit),
    /// Call `process` again at this time (or earlier, when a datagram arrives).
    Callback(Instant),
    /// Nothing is scheduled.
    Idle,
}

/// Counters of the endpoint's own decisions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// Datagrams that did not parse or matched no connection and got no reply.
    pub dropped_unroutable: u64,
    /// Version negotiation packets sent.
    pub version_negotiations_sent: u64,
    /// Retry packets sent.
    pub retries_sent: u64,
    /// Initial packets with an invalid Retry token (dropped).
    pub invalid_tokens: u64,
    /// Initial datagrams refused because of the handshake or connection cap (one SERVER_BUSY
    /// reply each; a ClientHello spanning two datagrams counts twice).
    pub refused: u64,
    /// Connections accepted.
    pub accepted: u64,
    /// Stateless resets sent for unknown connection IDs.
    pub stateless_resets_sent: u64,
}

struct ServerState {
    ctx: ServerContext,
    retry_key: RetryTokenKey,
}

/// A sans-IO JetStreamProto endpoint.
pub struct Endpoint {
    config: EndpointConfig,
    provider: Arc<dyn CryptoProvider>,
    server: Option<ServerState>,
    connections: Vec<Option<Connection>>,
    free: Vec<usize>,
    /// Reaped slots not yet released by the driver (see [`Endpoint::set_defer_handle_reuse`]).
    held: std::collections::HashSet<usize>,
    defer_handle_reuse: bool,
    /// First byte of every CID this endpoint issues, when it is one worker of several sharing a
    /// port (PROTOCOL.md §3.1).
    cid_prefix: Option<u8>,
    by_cid: HashMap<ConnectionId, ConnectionHandle>,
    cids_of: HashMap<ConnectionHandle, Vec<ConnectionId>>,
    by_reset_token: HashMap<[u8; 16], ConnectionHandle>,
    tokens_of: HashMap<ConnectionHandle, Vec<[u8; 16]>>,
    handshaking: HashSet<ConnectionHandle>,
    /// Connections seen closed, to forget once their events were read.
    closed: Vec<ConnectionHandle>,
    stateless: VecDeque<(SocketAddr, Vec<u8>)>,
    events: VecDeque<EndpointEvent>,
    unix_at_zero: u64,
    reset_key: zeroize::Zeroizing<[u8; 32]>,
    activity: Activity,
    admission: Option<Box<dyn AdmissionControl>>,
    stats: EndpointStats,
    /// A key share prepared for the next client connection (see
    /// [`Endpoint::offer_key_share`]).
    spare_key_share: Option<PreparedKeyShare>,
}

impl core::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Endpoint")
            .field("connections", &self.by_cid.len())
            .field("server", &self.server.is_some())
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// Creates an endpoint. `server` makes it accept connections. `unix_at_zero` is the wall-clock
    /// time (Unix seconds) at engine [`Instant::ZERO`], used for certificates and tickets.
    pub fn new(
        config: EndpointConfig,
        provider: Arc<dyn CryptoProvider>,
        server: Option<ServerConfig>,
        unix_at_zero: u64,
    ) -> Result<Self, ConfigError> {
        if !(4..=header::MAX_CID_LEN).contains(&config.cid_len) {
            return Err(ConfigError::OutOfRange {
                field: "cid_len",
                detail: "4..=20",
            });
        }
        let server = match server {
            Some(cfg) => {
                cfg.validate()?;
                let retry_key = RetryTokenKey::generate(provider.as_ref())
                    .map_err(|e| ConfigError::Crypto(e.to_string()))?;
                Some(ServerState {
                    ctx: ServerContext {
                        resumption: Arc::new(Mutex::new(ResumptionState::new(
                            cfg.ticket_key_rotation.as_secs(),
                            cfg.ticket_lifetime.as_secs(),
                            cfg.anti_replay_capacity,
                        ))),
                        config: Arc::new(cfg),
                    },
                    retry_key,
                })
            }
            None => None,
        };
        let mut reset_key = zeroize::Zeroizing::new([0u8; 32]);
        match config.reset_key {
            Some(k) => *reset_key = k,
            None => provider
                .fill_random(reset_key.as_mut_slice())
                .map_err(|e| ConfigError::Crypto(e.to_string()))?,
        }
        Ok(Self {
            reset_key,
            config,
            provider,
            server,
            connections: Vec::new(),
            free: Vec::new(),
            held: std::collections::HashSet::new(),
            defer_handle_reuse: false,
            cid_prefix: None,
            by_cid: HashMap::new(),
            cids_of: HashMap::new(),
            by_reset_token: HashMap::new(),
            tokens_of: HashMap::new(),
            handshaking: HashSet::new(),
            closed: Vec::new(),
            stateless: VecDeque::new(),
            events: VecDeque::new(),
            unix_at_zero,
            activity: Activity::default(),
            admission: None,
            stats: EndpointStats::default(),
            spare_key_share: None,
        })
    }

    /// The endpoint's crypto provider (for work a driver does off the engine, like
    /// [`PreparedKeyShare::generate`]).
    pub fn provider(&self) -> &Arc<dyn CryptoProvider> {
        &self.provider
    }

    /// Whether the next client connection would have to generate its key share itself: a driver
    /// that has idle time prepares one ([`PreparedKeyShare::generate`]) and hands it over with
    /// [`Endpoint::offer_key_share`].
    pub fn wants_key_share(&self) -> bool {
        self.spare_key_share.is_none()
    }

    /// Keeps `share` for the next client connection, which then sends its first flight without
    /// generating keys. One share serves one connection; a second offer replaces the first.
    pub fn offer_key_share(&mut self, share: PreparedKeyShare) {
        self.spare_key_share = Some(share);
    }

    fn unix_now(&self, now: Instant) -> UnixTime {
        UnixTime(self.unix_at_zero + now.as_nanos() / 1_000_000_000)
    }

    /// A fresh CID of ours: random, ending with a 4-byte tag `HMAC(reset_key, "cid" || rest)`
    /// when there is room, so that only CIDs this endpoint (or one sharing its reset key) issued
    /// ever trigger a stateless reset (PROTOCOL.md §15.3).
    fn random_cid(&self, len: usize) -> Result<ConnectionId, ConnectionError> {
        let mut b = [0u8; header::MAX_CID_LEN];
        loop {
            self.provider
                .fill_random(&mut b[..len])
                .map_err(|e| ConnectionError::Handshake(crate::handshake::crypto_err(e)))?;
            if let Some(p) = self.cid_prefix {
                b[0] = p;
            }
            if len >= CID_TAG_MIN_LEN {
                let tag = self.cid_tag(&b[..len - CID_TAG_LEN]);
                b[len - CID_TAG_LEN..len].copy_from_slice(&tag);
            }
            let cid = ConnectionId::from_slice(&b[..len]).map_err(|_| {
                ConnectionError::Handshake(crate::error::HandshakeError::Crypto("cid".into()))
            })?;
            if !self.by_cid.contains_key(&cid) {
                return Ok(cid);
            }
        }
    }

    /// A fully random CID (the client's original DCID, chosen for the server, PROTOCOL.md §3).
    fn plain_random_cid(&self, len: usize) -> Result<ConnectionId, ConnectionError> {
        let mut b = [0u8; header::MAX_CID_LEN];
        self.provider
            .fill_random(&mut b[..len])
            .map_err(|e| ConnectionError::Handshake(crate::handshake::crypto_err(e)))?;
        ConnectionId::from_slice(&b[..len]).map_err(|_| {
            ConnectionError::Handshake(crate::error::HandshakeError::Crypto("cid".into()))
        })
    }

    fn cid_tag(&self, body: &[u8]) -> [u8; CID_TAG_LEN] {
        let mut input = Vec::with_capacity(3 + body.len());
        input.extend_from_slice(b"cid");
        input.extend_from_slice(body);
        let mac = self.provider.hmac_sha256(self.reset_key.as_slice(), &input);
        let mut t = [0u8; CID_TAG_LEN];
        t.copy_from_slice(&mac[..CID_TAG_LEN]);
        t
    }

    /// Whether `cid` carries this endpoint's tag (it could have been issued by us).
    fn is_our_cid(&self, cid: &ConnectionId) -> bool {
        let b = cid.as_slice();
        b.len() >= CID_TAG_MIN_LEN
            && b[b.len() - CID_TAG_LEN..] == self.cid_tag(&b[..b.len() - CID_TAG_LEN])
    }

    /// The stateless reset token of `cid`: `HMAC-SHA256(reset_key, cid)[..16]` (PROTOCOL.md
    /// §15.3), so it can be recomputed without state.
    fn reset_token(&self, cid: &ConnectionId) -> [u8; 16] {
        let mac = self
            .provider
            .hmac_sha256(self.reset_key.as_slice(), cid.as_slice());
        let mut t = [0u8; 16];
        t.copy_from_slice(&mac[..16]);
        t
    }

    /// Serves a connection's requests for connection IDs.
    fn serve_requests(&mut self, h: ConnectionHandle) {
        loop {
            let Some(req) = self
                .connections
                .get_mut(h.0)
                .and_then(Option::as_mut)
                .and_then(Connection::poll_endpoint_request)
            else {
                return;
            };
            match req {
                crate::connection::EndpointRequest::MintCids(n) => {
                    for _ in 0..n.min(8) {
                        let Ok(cid) = self.random_cid(self.config.cid_len) else {
                            return;
                        };
                        let token = self.reset_token(&cid);
                        self.by_cid.insert(cid, h);
                        self.cids_of.entry(h).or_default().push(cid);
                        if let Some(c) = self.connections.get_mut(h.0).and_then(Option::as_mut) {
                            c.add_local_cid(cid, token);
                        }
                        self.activity.mark(h.0);
                    }
                }
                crate::connection::EndpointRequest::RegisterResetToken(token) => {
                    let list = self.tokens_of.entry(h).or_default();
                    if list.len() < 16 {
                        list.push(token);
                        self.by_reset_token.insert(token, h);
                    }
                }
                crate::connection::EndpointRequest::RetireCid(cid) => {
                    if self.by_cid.get(&cid) == Some(&h) {
                        self.by_cid.remove(&cid);
                    }
                    if let Some(list) = self.cids_of.get_mut(&h) {
                        list.retain(|c| *c != cid);
                    }
                }
            }
        }
    }

    /// Answers a short-header datagram for an unknown CID with a stateless reset
    /// (PROTOCOL.md §15.3): smaller than the trigger, so two endpoints cannot loop.
    fn send_stateless_reset(
        &mut self,
        remote: SocketAddr,
        dcid: &ConnectionId,
        trigger_len: usize,
    ) {
        if trigger_len <= MIN_STATELESS_RESET || !self.is_our_cid(dcid) {
            return; // garbage gets no reply
        }
        let len = (trigger_len - 1).min(MAX_STATELESS_RESET);
        let mut buf = vec![0u8; len];
        if self.provider.fill_random(&mut buf[..len - 16]).is_err() {
            return;
        }
        buf[0] = (buf[0] & 0x3f) | 0x40;
        let token = self.reset_token(dcid);
        buf[len - 16..].copy_from_slice(&token);
        self.stats.stateless_resets_sent += 1;
        self.stateless.push_back((remote, buf));
    }

    fn insert(&mut self, conn: Connection, extra_cids: &[ConnectionId]) -> ConnectionHandle {
        let cid = conn.local_cid();
        let h = match self.free.pop() {
            Some(i) => {
                self.connections[i] = Some(conn);
                ConnectionHandle(i)
            }
            None => {
                self.connections.push(Some(conn));
                ConnectionHandle(self.connections.len() - 1)
            }
        };
        let mut cids = vec![cid];
        cids.extend_from_slice(extra_cids);
        for c in &cids {
            self.by_cid.insert(*c, h);
        }
        self.cids_of.insert(h, cids);
        self.handshaking.insert(h);
        self.activity.mark(h.0);
        h
    }

    /// Starts a client connection to `remote`.
    pub fn connect(
        &mut self,
        now: Instant,
        config: Arc<ClientConfig>,
        remote: SocketAddr,
    ) -> Result<ConnectionHandle, ConnectionError> {
        self.connect_resuming(now, config, remote, None)
    }

    /// Starts a client connection to `remote`, resuming the session of `ticket` when given
    /// (PROTOCOL.md §13.2): the handshake skips the certificate, still runs a fresh key exchange,
    /// and, if the ticket allows, data written before the handshake completes goes out as 0-RTT.
    pub fn connect_resuming(
        &mut self,
        now: Instant,
        config: Arc<ClientConfig>,
        remote: SocketAddr,
        ticket: Option<&SessionTicket>,
    ) -> Result<ConnectionHandle, ConnectionError> {
        let local = self.random_cid(self.config.cid_len)?;
        let odcid = self.plain_random_cid(8)?;
        let unix = self.unix_now(now);
        let conn = Connection::connect(
            self.provider.clone(),
            config,
            local,
            odcid,
            remote,
            now,
            unix,
            ticket,
            self.spare_key_share.take(),
        )?;
        Ok(self.insert(conn, &[]))
    }

    /// The server's ticket keys and anti-replay store, to share with other endpoints of the same
    /// server (one per core) so a ticket is accepted at most once across all of them.
    pub fn resumption_state(&self) -> Option<SharedResumption> {
        self.server.as_ref().map(|s| s.ctx.resumption.clone())
    }

    /// Makes this endpoint one worker of several sharing a port: every connection ID it issues
    /// from now on starts with `prefix`, so a 1-RTT packet that reaches another worker (after the
    /// client's address changed and the kernel hashed it elsewhere) can be handed to this one
    /// (see [`Endpoint::steering_target`]).
    pub fn set_cid_prefix(&mut self, prefix: Option<u8>) {
        self.cid_prefix = prefix;
    }

    /// Shares another endpoint's ticket keys and anti-replay store (from
    /// [`Endpoint::resumption_state`]): the workers of one server then accept each other's
    /// tickets and a 0-RTT ticket at most once across all of them. No effect on a client.
    pub fn set_resumption_state(&mut self, state: SharedResumption) {
        if let Some(s) = self.server.as_mut() {
            s.ctx.resumption = state;
        }
    }

    /// The worker a datagram belongs to, when this endpoint has a CID prefix and the datagram is
    /// a 1-RTT packet addressed to a connection ID with another prefix; `None` means handle it
    /// here. Long-header packets are never steered: during the handshake the client's address
    /// does not change, so they reach the worker that owns the connection.
    pub fn steering_target(&self, datagram: &[u8]) -> Option<u8> {
        let mine = self.cid_prefix?;
        let first = *datagram.first()?;
        if first & 0x80 != 0 {
            return None;
        }
        let peek = header::peek(datagram, self.config.cid_len).ok()?;
        let owner = *peek.dcid.as_slice().first()?;
        (owner != mine).then_some(owner)
    }

    /// With `true`, the handle of a forgotten connection is not given to a new connection until
    /// [`Endpoint::release_handle`] is called: a driver whose application may still hold the old
    /// handle keeps it from reaching somebody else's connection.
    pub fn set_defer_handle_reuse(&mut self, defer: bool) {
        self.defer_handle_reuse = defer;
    }

    /// Makes the handle of a forgotten connection reusable (with deferred reuse); does nothing
    /// for a live connection or a handle already released.
    pub fn release_handle(&mut self, handle: ConnectionHandle) {
        if self.held.remove(&handle.0) {
            self.free.push(handle.0);
        }
    }

    /// Installs an admission control consulted for each new handshake.
    pub fn set_admission_control(&mut self, control: Box<dyn AdmissionControl>) {
        self.admission = Some(control);
    }

    /// The connection behind `handle` (the endpoint then re-reads its timers and send queue).
    pub fn connection_mut(&mut self, handle: ConnectionHandle) -> Option<&mut Connection> {
        let c = self
            .connections
            .get_mut(handle.0)
            .and_then(Option::as_mut)?;
        self.activity.mark(handle.0);
        Some(c)
    }

    /// The next event of connection `handle` (reading events changes nothing the endpoint
    /// schedules, so unlike [`Endpoint::connection_mut`] this does not mark it active).
    pub fn poll_connection_event(&mut self, handle: ConnectionHandle) -> Option<crate::Event> {
        self.connections
            .get_mut(handle.0)
            .and_then(Option::as_mut)?
            .poll_event()
    }

    /// The next connection that something happened to since the last call (new events may be
    /// waiting): lets a driver dispatch events without scanning every connection.
    pub fn poll_active(&mut self) -> Option<ConnectionHandle> {
        loop {
            let i = self.activity.pop_active()?;
            if self.connections.get(i).is_some_and(Option::is_some) {
                return Some(ConnectionHandle(i));
            }
        }
    }

    /// The connection behind `handle`.
    pub fn connection(&self, handle: ConnectionHandle) -> Option<&Connection> {
        self.connections.get(handle.0).and_then(Option::as_ref)
    }

    /// Handles of all live connections.
    pub fn handles(&self) -> impl Iterator<Item = ConnectionHandle> + '_ {
        self.connections
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_some())
            .map(|(i, _)| ConnectionHandle(i))
    }

    /// Number of live connections.
    pub fn connection_count(&self) -> usize {
        self.connections.len() - self.free.len() - self.held.len()
    }

    /// Counters.
    pub fn stats(&self) -> &EndpointStats {
        &self.stats
    }

    /// The next endpoint event.
    pub fn poll_event(&mut self) -> Option<EndpointEvent> {
        self.events.pop_front()
    }

    fn handshakes_in_flight(&mut self) -> usize {
        let conns = &self.connections;
        self.handshaking.retain(|h| {
            conns
                .get(h.0)
                .and_then(Option::as_ref)
                .is_some_and(Connection::is_handshaking)
        });
        self.handshaking.len()
    }

    /// Handshakes in flight from `ip` (call after [`Endpoint::handshakes_in_flight`] pruned the
    /// list): O(handshakes in flight), only when a new handshake arrives.
    fn handshakes_from(&self, ip: core::net::IpAddr) -> usize {
        self.handshaking
            .iter()
            .filter(|h| {
                self.connections
                    .get(h.0)
                    .and_then(Option::as_ref)
                    .is_some_and(|c| c.remote_address().ip() == ip)
            })
            .count()
    }

    /// Handles a datagram from `remote`; `data` is decrypted in place.
    pub fn handle_datagram(&mut self, now: Instant, remote: SocketAddr, data: &mut [u8]) {
        self.reap();
        let Ok(peek) = header::peek(data, self.config.cid_len) else {
            self.stats.dropped_unroutable += 1;
            return;
        };
        if let Some(&h) = self.by_cid.get(&peek.dcid) {
            if let Some(c) = self.connections.get_mut(h.0).and_then(Option::as_mut) {
                c.handle_datagram(now, remote, data);
                if c.is_closed() {
                    self.closed.push(h);
                }
                self.activity.mark(h.0);
                self.serve_requests(h);
                return;
            }
        }
        if !peek.is_long {
            if data.len() >= MIN_STATELESS_RESET {
                let tail: [u8; 16] = match data[data.len() - 16..].try_into() {
                    Ok(t) => t,
                    Err(_) => return,
                };
                if let Some(&h) = self.by_reset_token.get(&tail) {
                    if let Some(c) = self.connections.get_mut(h.0).and_then(Option::as_mut) {
                        c.on_stateless_reset();
                        self.closed.push(h);
                        // Let the driver see the Closed(Reset) event (poll_active).
                        self.activity.mark(h.0);
                        return;
                    }
                }
            }
            self.stats.dropped_unroutable += 1;
            self.send_stateless_reset(remote, &peek.dcid, data.len());
            return;
        }
        if self.server.is_none() {
            self.stats.dropped_unroutable += 1;
            return;
        }
        self.handle_new(now, remote, data);
    }

    fn handle_new(&mut self, now: Instant, remote: SocketAddr, data: &mut [u8]) {
        let len = data.len();
        let (first, _) = match header::decode(data, self.config.cid_len) {
            Ok(x) => x,
            Err(_) => {
                self.stats.dropped_unroutable += 1;
                return;
            }
        };
        let hdr = match first {
            PartialDecode::UnsupportedVersion { dcid, scid, .. } => {
                // PROTOCOL.md §4.5: reply only to full-size datagrams, never larger than them.
                if len >= MIN_INITIAL_DATAGRAM {
                    self.send_version_negotiation(remote, scid, dcid, len);
                } else {
                    self.stats.dropped_unroutable += 1;
                }
                return;
            }
            PartialDecode::Protected(h) if h.ty == PacketType::Initial => h,
            _ => {
                self.stats.dropped_unroutable += 1;
                return;
            }
        };
        if len < MIN_INITIAL_DATAGRAM {
            self.stats.dropped_unroutable += 1;
            return;
        }
        let in_flight = self.handshakes_in_flight();
        let Some(server) = self.server.as_ref() else {
            return;
        };
        let cfg = server.ctx.config.clone();
        let version = hdr.version.unwrap_or(crate::VERSION_1);
        let (dcid, scid) = (hdr.dcid, hdr.scid);
        let token = hdr.token.to_vec();
        let validated = if token.is_empty() {
            None
        } else {
            match server
                .retry_key
                .open(&token, &remote, now, cfg.retry_token_lifetime)
            {
                Some(v) if v.retry_scid == dcid => Some(v),
                _ => {
                    self.stats.invalid_tokens += 1;
                    return;
                }
            }
        };
        // Admission control applies to every new handshake, validated or not: a shedding or
        // shutting-down server refuses clients that carry a token too; Retry is pointless for
        // an address a token already validated.
        let decision = match self.admission.as_mut() {
            Some(a) => a.admit(now, in_flight),
            None => Admission::Accept,
        };
        match decision {
            Admission::Accept => {}
            Admission::Retry if validated.is_some() => {}
            Admission::Retry => {
                self.send_retry(now, remote, version, scid, dcid);
                return;
            }
            Admission::Refuse => {
                self.stats.refused += 1;
                self.send_busy(remote, version, scid, dcid);
                return;
            }
        }
        let wants_retry = match cfg.retry {
            RetryPolicy::Never => false,
            RetryPolicy::Always => true,
            RetryPolicy::WhenBusy(n) => in_flight >= n,
        };
        if validated.is_none() && wants_retry {
            self.send_retry(now, remote, version, scid, dcid);
            return;
        }
        if in_flight >= cfg.max_handshakes
            || self.connection_count() >= cfg.max_connections
            || self.handshakes_from(remote.ip()) >= cfg.handshake_cap_per_ip()
        {
            // PROTOCOL.md §12.3: refuse early rather than degrade existing connections.
            self.stats.refused += 1;
            self.send_busy(remote, version, scid, dcid);
            return;
        }
        let Ok(local) = self.random_cid(self.config.cid_len) else {
            return;
        };
        let (odcid, retry_scid) = match validated {
            Some(v) => (v.original_dcid, Some(v.retry_scid)),
            None => (dcid, None),
        };
        let unix = self.unix_now(now);
        let ctx = server.ctx.clone();
        let token = self.reset_token(&local);
        let conn = match Connection::accept(
            self.provider.clone(),
            ctx,
            version,
            local,
            scid,
            odcid,
            retry_scid,
            remote,
            now,
            unix,
            token,
        ) {
            Ok(c) => c,
            Err(_) => return,
        };
        // PROTOCOL.md §5.5: nothing unauthenticated creates state. The datagram must contain a
        // packet that opens under the Initial keys before the connection is kept.
        let mut conn = conn;
        // Alone, the handshake's latency counts most: its ServerHello leaves ahead of the rest of
        // the flight. Among others, fewer datagrams count more.
        conn.set_split_first_flight(in_flight == 0);
        conn.handle_datagram(now, remote, data);
        if conn.stats().packets_received == 0 {
            self.stats.dropped_unroutable += 1;
            return;
        }
        // Route the client's current DCID here until it switches to ours.
        let h = self.insert(conn, &[dcid]);
        self.stats.accepted += 1;
        self.events.push_back(EndpointEvent::NewConnection(h));
        self.serve_requests(h);
    }

    /// Refuses a handshake statelessly: CONNECTION_CLOSE(SERVER_BUSY) in an Initial packet
    /// protected with the client's Initial keys (PROTOCOL.md §12.3), far below 3x the 1200 bytes
    /// the client sent.
    fn send_busy(
        &mut self,
        remote: SocketAddr,
        version: u32,
        client_scid: ConnectionId,
        client_dcid: ConnectionId,
    ) {
        let Ok((send, _)) =
            crate::crypto::initial_keys(self.provider.as_ref(), client_dcid.as_slice(), false)
        else {
            return;
        };
        let mut buf = Vec::with_capacity(96);
        let layout = header::encode_long_header(
            &mut buf,
            header::LongHeaderType::Initial { token: &[] },
            version,
            &client_scid,
            &client_dcid,
            0,
            1,
        );
        let payload_start = buf.len();
        crate::wire::frame::encode_connection_close(
            &mut buf,
            crate::error::ErrorCode::SERVER_BUSY.0,
            0,
            b"server busy",
        );
        let _ = payload_start;
        let tag_len = crate::crypto::provider::TAG_LEN;
        let end = buf.len() + tag_len;
        if layout.patch_length(&mut buf, end).is_err() {
            return;
        }
        let (head, payload) = buf.split_at_mut(layout.payload_offset());
        let Ok(tag) = send.packet.seal(0, head, payload) else {
            return;
        };
        buf.extend_from_slice(&tag);
        let at = layout.pn_offset + 4;
        let Some(sample) = buf
            .get(at..at + 16)
            .and_then(|s| <[u8; 16]>::try_from(s).ok())
        else {
            return;
        };
        let Ok(mask) = send.header.mask(&sample) else {
            return;
        };
        buf[0] ^= mask[0] & header::LONG_HP_MASK;
        buf[layout.pn_offset] ^= mask[1];
        self.stateless.push_back((remote, buf));
    }

    fn send_version_negotiation(
        &mut self,
        remote: SocketAddr,
        client_scid: ConnectionId,
        client_dcid: ConnectionId,
        limit: usize,
    ) {
        let versions: Vec<u32> = self
            .server
            .as_ref()
            .map(|s| s.ctx.config.versions.clone())
            .unwrap_or_else(|| vec![crate::VERSION_1]);
        let mut unused = [0u8; 1];
        let _ = self.provider.fill_random(&mut unused);
        let mut buf = Vec::with_capacity(64);
        if header::encode_version_negotiation(
            &mut buf,
            &client_scid,
            &client_dcid,
            &versions,
            unused[0],
        )
        .is_ok()
            && buf.len() <= limit
        {
            self.stats.version_negotiations_sent += 1;
            self.stateless.push_back((remote, buf));
        }
    }

    fn send_retry(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        version: u32,
        client_scid: ConnectionId,
        original_dcid: ConnectionId,
    ) {
        let Ok(retry_scid) = self.random_cid(self.config.cid_len) else {
            return;
        };
        let Some(server) = self.server.as_ref() else {
            return;
        };
        let Ok(token) = server.retry_key.seal(
            self.provider.as_ref(),
            &remote,
            now,
            &original_dcid,
            &retry_scid,
        ) else {
            return;
        };
        let mut buf = Vec::with_capacity(128);
        let Ok(start) = header::encode_retry(&mut buf, version, &client_scid, &retry_scid, &token)
        else {
            return;
        };
        let Ok(tag) = retry::integrity_tag(self.provider.as_ref(), &original_dcid, &buf[start..])
        else {
            return;
        };
        buf.extend_from_slice(&tag);
        self.stats.retries_sent += 1;
        self.stateless.push_back((remote, buf));
    }

    /// Writes the next datagram to send into `buf`.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        self.reap();
        if let Some((dst, bytes)) = self.stateless.pop_front() {
            buf.clear();
            buf.extend_from_slice(&bytes);
            return Some(Transmit {
                destination: dst,
                size: bytes.len(),
                mtu_probe: false,
            });
        }
        while let Some(i) = self.activity.pop_ready() {
            let Some(c) = self.connections.get_mut(i).and_then(Option::as_mut) else {
                continue;
            };
            let sent = c.poll_transmit(now, buf);
            // Sending arms loss and pacing timers.
            self.activity.mark_timer(i);
            if c.has_pending_events() {
                // Sending can raise events (a key update it initiated): have them dispatched.
                self.activity.activate(i);
            }
            if let Some(t) = sent {
                self.activity.requeue(i);
                return Some(t);
            }
        }
        None
    }

    /// The reduced driver API (neqo's shape, the base of the C ABI): feed at most one received
    /// datagram, run due timers, and get back at most one thing to do. Call it again while it
    /// returns [`Output::Datagram`]; after [`Output::Callback`] call it at that time (or when a
    /// datagram arrives); [`Output::Idle`] means nothing is scheduled.
    pub fn process(
        &mut self,
        now: Instant,
        input: Option<(SocketAddr, &mut [u8])>,
        out: &mut Vec<u8>,
    ) -> Output {
        if let Some((from, data)) = input {
            self.handle_datagram(now, from, data);
        }
        if self.poll_timeout().is_some_and(|t| t <= now) {
            self.handle_timeout(now);
        }
        if let Some(t) = self.poll_transmit(now, out) {
            return Output::Datagram(t);
        }
        match self.poll_timeout() {
            Some(t) => Output::Callback(t),
            None => Output::Idle,
        }
    }

    fn refresh_timers(&mut self) {
        let conns = &self.connections;
        self.activity.refresh(|i| {
            conns
                .get(i)
                .and_then(Option::as_ref)
                .and_then(Connection::poll_timeout)
        });
    }

    /// When [`Endpoint::handle_timeout`] should next be called.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        self.refresh_timers();
        self.activity.next_deadline()
    }

    /// Handles expired timers of every connection and forgets closed connections whose events
    /// were all read.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.reap();
        self.refresh_timers();
        while let Some(i) = self.activity.pop_due(now) {
            let Some(c) = self.connections.get_mut(i).and_then(Option::as_mut) else {
                continue;
            };
            c.handle_timeout(now);
            if c.is_closed() {
                self.closed.push(ConnectionHandle(i));
            }
            self.activity.mark(i);
            self.serve_requests(ConnectionHandle(i));
        }
        self.reap();
    }

    /// Forgets closed connections whose events were all read (their CIDs stop routing).
    fn reap(&mut self) {
        if self.closed.is_empty() {
            return;
        }
        let mut keep = Vec::new();
        for h in std::mem::take(&mut self.closed) {
            let Some(c) = self.connections.get(h.0).and_then(Option::as_ref) else {
                continue;
            };
            if c.has_pending_events() {
                keep.push(h);
                continue;
            }
            self.connections[h.0] = None;
            if self.defer_handle_reuse {
                self.held.insert(h.0);
                self.events.push_back(EndpointEvent::Forgotten(h));
            } else {
                self.free.push(h.0);
            }
            self.activity.forget(h.0);
            if let Some(cids) = self.cids_of.remove(&h) {
                for c in cids {
                    self.by_cid.remove(&c);
                }
            }
            if let Some(tokens) = self.tokens_of.remove(&h) {
                for t in tokens {
                    self.by_reset_token.remove(&t);
                }
            }
            self.handshaking.remove(&h);
        }
        keep.dedup();
        self.closed = keep;
    }
}
