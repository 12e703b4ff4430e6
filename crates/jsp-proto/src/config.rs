//! Engine configuration: transport knobs shared by both sides, the client's trust policy and
//! identity, and the server's identity, client-auth, Retry, ticket and limit policies.
//!
//! Every field is read by the engine; defaults follow PROTOCOL.md §8 and the original README.

use core::time::Duration;
use std::sync::Arc;

use crate::compression::CompressionConfig;
use crate::connection::scheduler::{QosClass, SchedulerConfig};
use crate::crypto::CipherSuite;
use crate::error::ConfigError;
use crate::identity::{Certificate, Fingerprint, Identity, PublicKey};
use crate::recovery::congestion::CongestionControl;
use crate::VERSION_1;

/// Transport settings used by both clients and servers.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// Close the connection after this long without receiving anything (0 = never).
    pub idle_timeout: Duration,
    /// Fail a handshake that has not completed within this time.
    pub handshake_timeout: Duration,
    /// RTT assumed before the first sample (drives the first probe timeout).
    pub initial_rtt: Duration,
    /// Largest UDP payload this endpoint accepts (advertised as `max_udp_payload_size`), and
    /// the upper bound of path MTU discovery (PROTOCOL.md §15.4). Default 8952: jumbo frames
    /// where the path carries them; a 1500-byte path settles near 1452.
    pub max_udp_payload_size: u16,
    /// Datagram size used before path MTU discovery (at least 1200).
    pub initial_mtu: u16,
    /// Cipher suites in preference order.
    pub cipher_suites: Vec<CipherSuite>,
    /// Rotate 1-RTT keys after this many packets sent with one key (PROTOCOL.md §9).
    pub key_update_packets: u64,
    /// Rotate 1-RTT keys after this long with one key (PROTOCOL.md §9).
    pub key_update_interval: Duration,
    /// How long we may delay an acknowledgement (advertised as `max_ack_delay`).
    pub max_ack_delay: Duration,
    /// Send an ACK at least every this many ack-eliciting packets.
    pub ack_eliciting_threshold: u32,
    /// Largest DATAGRAM frame accepted (0 disables datagrams).
    pub max_datagram_frame_size: u16,
    /// Most datagrams queued for sending; see `Connection::send_datagram` and
    /// `Connection::send_datagram_drop_oldest` for what happens when it is full.
    pub datagram_send_queue: usize,
    /// Connection flow-control credit offered to the peer.
    pub initial_max_data: u64,
    /// Per-stream flow-control credit offered to the peer.
    pub initial_max_stream_data: u64,
    /// Concurrent streams of each direction the peer may open.
    pub max_streams: u64,
    /// How streams share the connection: QoS class order (`System` > `Chat` > `Media` > `Bulk`
    /// strictly by default), sharing between classes of equal rank.
    pub scheduler: SchedulerConfig,
    /// The congestion controller (BBR by default, loss-tolerant; CUBIC with HyStart++; NewReno).
    pub congestion_control: CongestionControl,
    /// Largest per-stream receive window flow-control autotuning may grow to.
    pub max_stream_window: u64,
    /// Largest connection receive window flow-control autotuning may grow to.
    pub max_connection_window: u64,
    /// Most bytes buffered for sending (written, not yet acknowledged) per connection; writes
    /// beyond it are refused until the peer acknowledges data (back-pressure).
    pub send_buffer: u64,
    /// Send a PING when nothing ack-eliciting was sent for this long (0 disables heartbeats).
    /// Heartbeats keep NAT bindings open and detect a vanished peer.
    pub heartbeat_interval: Duration,
    /// Close with `Timeout` after this many heartbeat intervals without hearing from the peer.
    pub heartbeat_timeout_count: u32,
    /// LZ4 compression of what we send: off, on, or auto (the default: only where it pays),
    /// with per-class dictionaries (PROTOCOL.md §14.5).
    pub compression: CompressionConfig,
    /// Forward error correction (PROTOCOL.md §19): adaptive by default, protecting datagrams
    /// and `Media` streams once loss is measured.
    pub fec: FecConfig,
}

/// When to send FEC repair symbols (PROTOCOL.md §19).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FecMode {
    /// No FEC: `fec_max_symbols` is not advertised, so the peer sends no FEC frames either, and
    /// none are sent.
    Off,
    /// Always protect eligible traffic with groups of `data` source and `repair` repair symbols
    /// (1..=48 and 1..=16), if the peer supports FEC.
    Fixed {
        /// Source symbols (protected packets) per group.
        data: u8,
        /// Repair symbols per group.
        repair: u8,
    },
    /// Protect only when the measured loss rate, burstiness and RTT make it pay off
    /// (PROTOCOL.md §19.7); nothing extra is sent on a clean path.
    #[default]
    Auto,
}

/// Forward error correction settings (PROTOCOL.md §19).
#[derive(Clone, Debug, PartialEq)]
pub struct FecConfig {
    /// Off, fixed ratio, or adaptive.
    pub mode: FecMode,
    /// Longest time a partly filled group waits for more packets before its repair symbols are
    /// sent (so sparse real-time traffic is protected too); the engine uses at most a quarter of
    /// the smoothed RTT, and at least 1 ms.
    pub flush_delay: Duration,
    /// Protect DATAGRAM frames.
    pub datagrams: bool,
    /// Stream QoS classes protected by default (a stream can override its class with
    /// `Connection::set_stream_fec`).
    pub classes: Vec<QosClass>,
    /// `Auto`: protection switches on at this loss rate (and off below half of it).
    pub min_loss: f64,
    /// `Auto`: no protection while the smoothed RTT is below this (a retransmission is as fast).
    pub min_rtt: Duration,
}

impl Default for FecConfig {
    fn default() -> Self {
        Self {
            mode: FecMode::Auto,
            flush_delay: Duration::from_millis(10),
            datagrams: true,
            classes: vec![QosClass::Media],
            min_loss: 0.005,
            min_rtt: Duration::from_millis(5),
        }
    }
}

impl FecConfig {
    /// FEC disabled (neither sent nor accepted).
    pub fn off() -> Self {
        Self {
            mode: FecMode::Off,
            ..Self::default()
        }
    }

    /// Always protect with `data` + `repair` groups.
    pub fn fixed(data: u8, repair: u8) -> Self {
        Self {
            mode: FecMode::Fixed { data, repair },
            ..Self::default()
        }
    }

    /// Checks ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let FecMode::Fixed { data, repair } = self.mode {
            if crate::fec::encoder::Shape::new(usize::from(data), usize::from(repair)).is_err() {
                return Err(ConfigError::OutOfRange {
                    field: "fec.mode",
                    detail: "Fixed needs 1 <= data <= 48 and 1 <= repair <= 16",
                });
            }
        }
        if self.flush_delay.is_zero() || self.flush_delay > Duration::from_secs(1) {
            return Err(ConfigError::OutOfRange {
                field: "fec.flush_delay",
                detail: "above 0 and at most 1 s",
            });
        }
        if !(0.0..1.0).contains(&self.min_loss) {
            return Err(ConfigError::OutOfRange {
                field: "fec.min_loss",
                detail: "0 <= min_loss < 1",
            });
        }
        Ok(())
    }
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(10),
            initial_rtt: Duration::from_millis(100),
            max_udp_payload_size: 8952,
            initial_mtu: 1200,
            cipher_suites: vec![CipherSuite::Aes256Gcm, CipherSuite::ChaCha20Poly1305],
            key_update_packets: 1 << 20,
            key_update_interval: Duration::from_secs(3600),
            max_ack_delay: Duration::from_millis(25),
            ack_eliciting_threshold: 2,
            max_datagram_frame_size: 1200,
            datagram_send_queue: 256,
            initial_max_data: 1 << 20,
            initial_max_stream_data: 256 << 10,
            max_streams: 100,
            scheduler: SchedulerConfig::default(),
            congestion_control: CongestionControl::default(),
            max_stream_window: 16 << 20,
            max_connection_window: 24 << 20,
            send_buffer: 16 << 20,
            heartbeat_interval: Duration::from_secs(5),
            heartbeat_timeout_count: 3,
            compression: CompressionConfig::default(),
            fec: FecConfig::default(),
        }
    }
}

impl TransportConfig {
    /// Checks ranges and non-empty lists.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.cipher_suites.is_empty() {
            return Err(ConfigError::Empty("cipher_suites"));
        }
        if self.initial_mtu < 1200 || self.max_udp_payload_size < self.initial_mtu {
            return Err(ConfigError::OutOfRange {
                field: "initial_mtu",
                detail: "1200 <= initial_mtu <= max_udp_payload_size",
            });
        }
        if self.max_ack_delay >= Duration::from_millis(1 << 14) {
            return Err(ConfigError::OutOfRange {
                field: "max_ack_delay",
                detail: "below 16384 ms",
            });
        }
        if !self.heartbeat_interval.is_zero() && self.heartbeat_timeout_count == 0 {
            return Err(ConfigError::OutOfRange {
                field: "heartbeat_timeout_count",
                detail: "at least 1 when heartbeats are enabled",
            });
        }
        if self.key_update_packets == 0 {
            return Err(ConfigError::OutOfRange {
                field: "key_update_packets",
                detail: "at least 1",
            });
        }
        self.fec.validate()
    }
}

/// Which keys a verifier trusts (PROTOCOL.md §11.3, §11.4).
#[derive(Clone, Debug, Default)]
pub struct TrustPolicy {
    /// Accepted key fingerprints.
    pub pinned: Vec<Fingerprint>,
    /// Accepted certificate authorities.
    pub authorities: Vec<PublicKey>,
}

impl TrustPolicy {
    /// Trusts exactly one pinned key.
    pub fn pinned(fp: Fingerprint) -> Self {
        Self {
            pinned: vec![fp],
            authorities: Vec::new(),
        }
    }

    /// Trusts certificates signed by `authority`.
    pub fn authority(authority: PublicKey) -> Self {
        Self {
            pinned: Vec::new(),
            authorities: vec![authority],
        }
    }

    /// Whether nothing is trusted.
    pub fn is_empty(&self) -> bool {
        self.pinned.is_empty() && self.authorities.is_empty()
    }
}

/// An identity with an optional certificate for it.
#[derive(Clone, Debug)]
pub struct CertifiedIdentity {
    /// The key pair (shared: identities are not copied).
    pub identity: Arc<Identity>,
    /// A certificate for `identity`'s public key, sent instead of the raw key when present.
    pub certificate: Option<Certificate>,
}

impl From<Identity> for CertifiedIdentity {
    fn from(identity: Identity) -> Self {
        Self {
            identity: Arc::new(identity),
            certificate: None,
        }
    }
}

/// Client-side settings.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Transport settings.
    pub transport: TransportConfig,
    /// Which server keys to trust. Must not be empty.
    pub trust: TrustPolicy,
    /// The server's name, checked against its certificate's subject and sent in `server_name`.
    pub server_name: Option<String>,
    /// The client's own identity, sent only if the server asks (encrypted on the wire).
    pub identity: Option<CertifiedIdentity>,
    /// Versions offered, in preference order.
    pub versions: Vec<u32>,
    /// Send 0-RTT data when resuming with a ticket that allows it.
    pub enable_0rtt: bool,
}

impl ClientConfig {
    /// A client trusting `trust`, with default transport settings.
    pub fn new(trust: TrustPolicy) -> Self {
        Self {
            transport: TransportConfig::default(),
            trust,
            server_name: None,
            identity: None,
            versions: vec![VERSION_1],
            enable_0rtt: true,
        }
    }

    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.trust.is_empty() {
            return Err(ConfigError::NoTrustAnchors);
        }
        if self.versions.is_empty() {
            return Err(ConfigError::Empty("versions"));
        }
        self.transport.validate()
    }
}

/// Whether and how the server authenticates clients (PROTOCOL.md §11.4).
#[derive(Clone, Debug, Default)]
pub enum ClientAuth {
    /// Clients are anonymous.
    #[default]
    None,
    /// Clients may present an identity; if they do it must be trusted.
    Optional(TrustPolicy),
    /// Clients must present a trusted identity.
    Required(TrustPolicy),
}

/// When the server answers a ClientHello with Retry (PROTOCOL.md §12.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RetryPolicy {
    /// Never send Retry.
    #[default]
    Never,
    /// Validate every client address with Retry first.
    Always,
    /// Send Retry once this many handshakes are in flight.
    WhenBusy(usize),
}

/// Server-side settings.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Transport settings.
    pub transport: TransportConfig,
    /// The server's key and optional certificate.
    pub identity: CertifiedIdentity,
    /// Client authentication policy.
    pub client_auth: ClientAuth,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Maximum handshakes in flight; new ones beyond it are refused (or retried).
    pub max_handshakes: usize,
    /// Maximum handshakes in flight from one IP address (any port), so one address cannot hold
    /// every slot with half-open handshakes (PROTOCOL.md §12.3). 0 (the default) means a quarter
    /// of `max_handshakes`, at least 1.
    pub max_handshakes_per_ip: usize,
    /// Maximum established connections.
    pub max_connections: usize,
    /// How long a Retry token stays valid.
    pub retry_token_lifetime: Duration,
    /// Session tickets issued after each handshake (0 disables resumption).
    pub tickets_per_connection: u8,
    /// Lifetime of a session ticket.
    pub ticket_lifetime: Duration,
    /// How often the ticket-sealing key rotates.
    pub ticket_key_rotation: Duration,
    /// Bound on remembered tickets for anti-replay (PROTOCOL.md §13.3).
    pub anti_replay_capacity: usize,
    /// Most 0-RTT bytes accepted per resumed connection (0 disables 0-RTT).
    pub max_early_data: u32,
    /// Versions supported, in preference order.
    pub versions: Vec<u32>,
}

impl ServerConfig {
    /// A server with `identity` and default settings.
    pub fn new(identity: impl Into<CertifiedIdentity>) -> Self {
        Self {
            transport: TransportConfig::default(),
            identity: identity.into(),
            client_auth: ClientAuth::None,
            retry: RetryPolicy::Never,
            max_handshakes: 1024,
            max_handshakes_per_ip: 0,
            max_connections: 100_000,
            retry_token_lifetime: Duration::from_secs(10),
            tickets_per_connection: 1,
            ticket_lifetime: Duration::from_secs(24 * 3600),
            ticket_key_rotation: Duration::from_secs(3600),
            anti_replay_capacity: 100_000,
            max_early_data: 64 * 1024,
            versions: vec![VERSION_1],
        }
    }

    /// The effective [`ServerConfig::max_handshakes_per_ip`].
    pub fn handshake_cap_per_ip(&self) -> usize {
        match self.max_handshakes_per_ip {
            0 => (self.max_handshakes / 4).max(1),
            n => n,
        }
    }

    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.versions.is_empty() {
            return Err(ConfigError::Empty("versions"));
        }
        if self.max_handshakes == 0 {
            return Err(ConfigError::OutOfRange {
                field: "max_handshakes",
                detail: "at least 1",
            });
        }
        if self.ticket_lifetime > Duration::from_secs(7 * 24 * 3600) {
            return Err(ConfigError::OutOfRange {
                field: "ticket_lifetime",
                detail: "at most 7 days",
            });
        }
        self.transport.validate()
    }
}

/// Endpoint-wide settings.
#[derive(Clone, Debug)]
pub struct EndpointConfig {
    /// Length of the connection IDs this endpoint issues (4..=20).
    pub cid_len: usize,
    /// Secret from which stateless reset tokens are derived (PROTOCOL.md §15.3). Keep it across
    /// restarts (and share it between the endpoints of one server) so that a restarted server can
    /// still reset its old connections; `None` draws a random one.
    pub reset_key: Option<[u8; 32]>,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        Self {
            cid_len: 8,
            reset_key: None,
        }
    }
}
