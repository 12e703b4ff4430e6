//! The fixed world every engine-level target runs in: seeds, simulated addresses (in-process
//! values only, nothing touches a socket), server and client configurations, the client-side
//! driver with its application (one echoed stream, one datagram), and the invariant bookkeeping
//! that does not depend on the target: PROTOCOL.md §12.1 amplification accounting per peer
//! address and the bounds on each emitted datagram.
//!
//! Setup failures (an endpoint that cannot be built from constant configs) are harness bugs and
//! panic with a `setup:` message; everything fed from fuzz input is handled without unwrapping.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use core::time::Duration;

use jsp_proto::connection::{Dir, StreamId};
use jsp_proto::handshake::ticket::SessionTicket;
use jsp_proto::identity::Identity;
use jsp_proto::time::Instant;
use jsp_proto::wire::header::{self, PacketType, PartialDecode};
use jsp_proto::{
    ClientConfig, ConnectionHandle, Endpoint, EndpointConfig, EndpointEvent, Event, RetryPolicy,
    ServerConfig, TrustPolicy,
};
use jsp_sim::engine::{seeded_identity, seeded_provider, SIM_UNIX_EPOCH};

/// Seed of every provider in the fuzz world.
pub const SEED: u64 = 0x4a53_5046_757a;
/// Wall-clock seconds at engine time zero (certificates and tickets).
pub const UNIX_AT_ZERO: u64 = SIM_UNIX_EPOCH;
/// Number of distinct client addresses the inputs choose from.
pub const PEERS: u8 = 4;
/// Server handshake cap, small so that inputs reach SERVER_BUSY and Retry-when-busy.
pub const MAX_HANDSHAKES: usize = 3;
/// Server connection cap.
pub const MAX_CONNECTIONS: usize = 6;
/// Most datagrams one endpoint may emit without time passing before a target calls it a
/// livelock: congestion control, pacing and the amplification limit keep real bursts far below.
pub const MAX_BURST: usize = 4096;
/// Largest UDP payload (what a datagram can ever be).
pub const MAX_UDP_PAYLOAD: usize = 65_527;
/// Size of the stream the client writes and expects echoed.
pub const STREAM_LEN: usize = 3000;
/// The datagram the client sends once connected.
pub const CLIENT_DATAGRAM: &[u8] = b"jsp-fuzz datagram";

/// The server's address.
pub fn server_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 2], 4433))
}

/// Client address number `i` (taken modulo [`PEERS`]).
pub fn client_addr(i: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 50_000 + u16::from(i % PEERS)))
}

/// The server's identity (the same in every run).
pub fn server_identity() -> Identity {
    seeded_identity(seeded_provider(SEED, 9).as_ref(), 7)
}

/// How the server answers new handshakes; chosen by the first byte of the structure-aware inputs.
pub fn retry_policy(mode: u8) -> RetryPolicy {
    match mode % 3 {
        0 => RetryPolicy::Never,
        1 => RetryPolicy::Always,
        _ => RetryPolicy::WhenBusy(1),
    }
}

/// The server configuration (small caps; otherwise defaults).
pub fn server_config(retry: RetryPolicy) -> ServerConfig {
    let mut c = ServerConfig::new(server_identity());
    c.retry = retry;
    c.max_handshakes = MAX_HANDSHAKES;
    c.max_connections = MAX_CONNECTIONS;
    c
}

/// The client configuration: pins the server's identity.
pub fn client_config() -> ClientConfig {
    ClientConfig::new(TrustPolicy::pinned(server_identity().fingerprint()))
}

/// A fresh server endpoint (seeded; identical in every run).
pub fn new_server(retry: RetryPolicy) -> Endpoint {
    match Endpoint::new(
        EndpointConfig::default(),
        seeded_provider(SEED, 2),
        Some(server_config(retry)),
        UNIX_AT_ZERO,
    ) {
        Ok(e) => e,
        Err(e) => panic!("setup: server endpoint: {e}"),
    }
}

/// The local CID length of every endpoint here (the default).
pub fn cid_len() -> usize {
    EndpointConfig::default().cid_len
}

/// The byte at `i` of the stream the client writes on its stream number `stream`.
pub fn pattern_byte(stream: u64, i: usize) -> u8 {
    // Truncation intended: a repeating pattern.
    (i.wrapping_mul(31).wrapping_add(stream as usize * 7) % 251) as u8
}

/// Whether a datagram could validate the sender's address at a server (PROTOCOL.md §12.1): it
/// holds a Handshake packet (which validates if it authenticates) or an Initial with a token
/// (which validates if the token is valid). Conservative: the engine validates on a subset.
/// 1-RTT packets are not counted: PATH_RESPONSE validation needs an answer to a challenge the
/// fuzzer cannot produce for a new address, and the handshake address is validated earlier.
pub fn may_validate(datagram: &[u8]) -> bool {
    let mut rest = datagram;
    while !rest.is_empty() {
        match header::decode(rest, cid_len()) {
            Ok((PartialDecode::Protected(h), next)) => {
                if h.ty == PacketType::Handshake
                    || (h.ty == PacketType::Initial && !h.token.is_empty())
                {
                    return true;
                }
                if next.len() >= rest.len() {
                    return false;
                }
                rest = next;
            }
            _ => return false,
        }
    }
    false
}

/// How strictly [`Amplification`] reads PROTOCOL.md §12.1, from the `JSP_FUZZ_AMP` environment
/// variable: `address` (default: bytes sent to each address against bytes received from that
/// same address, as §12.1 words it), `total` (bytes sent to all addresses against bytes received
/// from all, until anything may have validated any address: what the engine's per-connection
/// budget guarantees, to keep exploring past a per-address finding), or `off` (no amplification
/// check). Read once per process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmpMode {
    /// Per address.
    Address,
    /// Summed over addresses, until the first possible validation.
    Total,
    /// No check.
    Off,
}

/// The mode in force.
pub fn amp_mode() -> AmpMode {
    static MODE: std::sync::OnceLock<AmpMode> = std::sync::OnceLock::new();
    *MODE.get_or_init(|| match std::env::var("JSP_FUZZ_AMP").as_deref() {
        Ok("off") => AmpMode::Off,
        Ok("total") => AmpMode::Total,
        _ => AmpMode::Address,
    })
}

/// Bytes exchanged with one peer address.
#[derive(Debug, Default, Clone)]
pub struct PeerAccount {
    /// Bytes of datagrams the server received from it.
    pub received: u64,
    /// Bytes of datagrams the server sent to it.
    pub sent: u64,
    /// Whether something it sent may have validated it.
    pub maybe_validated: bool,
}

/// The server's view of every peer address: checks that it only ever sends to addresses it heard
/// from, and at most three times what an address sent before that address could have been
/// validated (PROTOCOL.md §12.1; the per-connection budget plus stateless replies, each no larger
/// than the datagram that triggered it, add up to at most that per address).
#[derive(Debug, Default, Clone)]
pub struct Amplification {
    /// Per address.
    pub peers: BTreeMap<SocketAddr, PeerAccount>,
    /// Bytes received from all addresses.
    pub received: u64,
    /// Bytes sent to all addresses.
    pub sent: u64,
    /// Whether any address may have been validated.
    pub any_validated: bool,
}

impl Amplification {
    /// Records a datagram delivered to the server. `genuine` says it is an unmodified datagram of
    /// a real client, which answers a PATH_CHALLENGE the server sent to this address before
    /// (PROTOCOL.md §15.2), so a 1-RTT datagram may then validate the address too.
    pub fn on_received(&mut self, from: SocketAddr, datagram: &[u8], genuine: bool) {
        let validates = may_validate(datagram);
        let short = datagram.first().is_some_and(|b| b & 0x80 == 0);
        let p = self.peers.entry(from).or_default();
        p.received += datagram.len() as u64;
        let validated = validates || (genuine && short && p.sent > 0);
        p.maybe_validated |= validated;
        self.any_validated |= validated;
        self.received += datagram.len() as u64;
    }

    /// Records a datagram the server sent, checking the invariants.
    pub fn on_sent(&mut self, to: SocketAddr, len: usize) {
        let Some(p) = self.peers.get_mut(&to) else {
            panic!("server sent {len} bytes to {to}, an address it never received from");
        };
        p.sent += len as u64;
        self.sent += len as u64;
        if amp_mode() == AmpMode::Total && !self.any_validated {
            assert!(
                self.sent <= 3 * self.received,
                "amplification limit (PROTOCOL.md §12.1) exceeded before any validation: \
                 sent {} bytes in all after receiving {}",
                self.sent,
                self.received
            );
        }
        if !p.maybe_validated && amp_mode() == AmpMode::Address {
            assert!(
                p.sent <= 3 * p.received,
                "amplification limit (PROTOCOL.md §12.1) exceeded for unvalidated {to}: \
                 sent {} bytes after receiving {}",
                p.sent,
                p.received
            );
        }
    }
}

/// Checks the size of a datagram an endpoint emitted.
pub fn check_datagram(side: &str, len: usize, max_udp_payload_size: usize) {
    assert!(len > 0, "{side} emitted an empty datagram");
    assert!(
        len <= MAX_UDP_PAYLOAD && len <= max_udp_payload_size,
        "{side} emitted a {len}-byte datagram, above its max_udp_payload_size \
         {max_udp_payload_size}"
    );
}

/// One client endpoint with one connection and a small application: once connected it opens a
/// bidirectional stream, writes [`STREAM_LEN`] pattern bytes with FIN and sends a datagram; it
/// checks that what the server echoes is a prefix of what it wrote, and keeps session tickets.
pub struct ClientSide {
    /// The endpoint.
    pub ep: Endpoint,
    /// Its address.
    pub addr: SocketAddr,
    /// Its connection.
    pub handle: ConnectionHandle,
    /// The latest session ticket received.
    pub ticket: Option<SessionTicket>,
    /// Whether the handshake completed.
    pub connected: bool,
    /// Streams written: id -> bytes written.
    written: BTreeMap<u64, usize>,
    /// Echo received per stream: id -> (bytes, fin seen).
    echoed: BTreeMap<u64, (usize, bool)>,
    sent_app: bool,
    buf: Vec<u8>,
    max_udp: usize,
}

impl ClientSide {
    /// Client number `n` (its address and provider seed) connecting at `now`, resuming `ticket`
    /// when given (then writing its stream as 0-RTT data if the ticket allows).
    pub fn connect(n: u8, now: Instant, ticket: Option<&SessionTicket>) -> Self {
        let mut ep = match Endpoint::new(
            EndpointConfig::default(),
            seeded_provider(SEED, 10 + n),
            None,
            UNIX_AT_ZERO,
        ) {
            Ok(e) => e,
            Err(e) => panic!("setup: client endpoint: {e}"),
        };
        let config = client_config();
        let max_udp = usize::from(config.transport.max_udp_payload_size);
        let handle = match ep.connect_resuming(now, Arc::new(config), server_addr(), ticket) {
            Ok(h) => h,
            Err(e) => panic!("setup: connect: {e}"),
        };
        let mut c = Self {
            ep,
            addr: client_addr(n),
            handle,
            ticket: None,
            connected: false,
            written: BTreeMap::new(),
            echoed: BTreeMap::new(),
            sent_app: false,
            buf: Vec::with_capacity(2048),
            max_udp,
        };
        if c.ep
            .connection(handle)
            .is_some_and(|conn| conn.can_send_early_data())
        {
            c.start_app();
        }
        c
    }

    /// Opens the stream, writes it, sends the datagram (once).
    fn start_app(&mut self) {
        if self.sent_app {
            return;
        }
        let Some(conn) = self.ep.connection_mut(self.handle) else {
            return;
        };
        let Ok(id) = conn.open_stream(Dir::Bi) else {
            return;
        };
        self.sent_app = true;
        let data: Vec<u8> = (0..STREAM_LEN).map(|i| pattern_byte(id.0, i)).collect();
        let n = conn.stream_write(id, &data, true).unwrap_or(0);
        self.written.insert(id.0, n);
        let _ = conn.send_datagram(CLIENT_DATAGRAM);
    }

    /// Handles connection and endpoint events; checks echo integrity.
    pub fn serve_app(&mut self) {
        while let Some(ev) = self.ep.poll_event() {
            if let EndpointEvent::Forgotten(h) = ev {
                self.ep.release_handle(h);
            }
        }
        let mut readable = Vec::new();
        while let Some(ev) = self.ep.poll_connection_event(self.handle) {
            match ev {
                Event::Connected(_) => self.connected = true,
                Event::SessionTicket(t) => self.ticket = Some(*t),
                Event::StreamReadable(id) | Event::StreamOpened(id) => readable.push(id),
                _ => {}
            }
        }
        if self.connected {
            self.start_app();
        }
        for id in readable {
            self.read_echo(id);
        }
        if let Some(conn) = self.ep.connection_mut(self.handle) {
            while conn.read_datagram().is_some() {}
        }
    }

    fn read_echo(&mut self, id: StreamId) {
        let Some(conn) = self.ep.connection_mut(self.handle) else {
            return;
        };
        for _ in 0..64 {
            let Ok((bytes, fin)) = conn.stream_read(id, 4096) else {
                return;
            };
            let (seen, fin_seen) = self.echoed.entry(id.0).or_insert((0, false));
            let written = self.written.get(&id.0).copied().unwrap_or(0);
            for (k, b) in bytes.iter().enumerate() {
                let at = *seen + k;
                assert!(
                    at < written && *b == pattern_byte(id.0, at),
                    "stream {} echo corrupted at offset {at} (wrote {written} bytes)",
                    id.0
                );
            }
            *seen += bytes.len();
            if fin {
                assert_eq!(
                    *seen, written,
                    "stream {} echo ended after {} of {written} bytes",
                    id.0, *seen
                );
                *fin_seen = true;
            }
            if bytes.is_empty() || fin {
                return;
            }
        }
    }

    /// Whether the whole stream came back with FIN.
    pub fn echo_complete(&self) -> bool {
        !self.written.is_empty()
            && self
                .written
                .iter()
                .all(|(id, n)| self.echoed.get(id).is_some_and(|&(m, fin)| fin && m == *n))
    }

    /// The next datagram the client sends (checked), after serving its application.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        self.serve_app();
        let t = self.ep.poll_transmit(now, &mut self.buf)?;
        check_datagram("client", t.size, self.max_udp);
        assert_eq!(
            t.destination,
            server_addr(),
            "client sent to an address it never talked to"
        );
        self.buf.get(..t.size).map(<[u8]>::to_vec)
    }

    /// Delivers a datagram from the server.
    pub fn handle_datagram(&mut self, now: Instant, data: &mut [u8]) {
        self.ep.handle_datagram(now, server_addr(), data);
        self.serve_app();
    }

    /// Runs the client's timers due at `now`.
    pub fn on_time(&mut self, now: Instant) {
        if self.ep.poll_timeout().is_some_and(|t| t <= now) {
            self.ep.handle_timeout(now);
        }
        self.serve_app();
    }

    /// When the client next needs [`ClientSide::on_time`].
    pub fn next_timeout(&mut self) -> Option<Instant> {
        self.ep.poll_timeout()
    }
}

/// Whole milliseconds from `now` to `then`, rounded up, at least 1.
pub fn ms_until(now: Instant, then: Instant) -> u64 {
    let d = then.saturating_duration_since(now);
    let ms = d.as_nanos().div_ceil(1_000_000);
    u64::try_from(ms).unwrap_or(u64::MAX).max(1)
}

/// `n` milliseconds.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
