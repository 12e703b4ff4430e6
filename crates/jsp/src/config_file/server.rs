//! The server's config file: `[identity]`, `[listen]`, `[client_auth]`, `[retry]`, `[limits]`,
//! `[circuit_breaker]`, `[session_tickets]`, `[timeouts]` and `[transport]`, and its conversion
//! into a [`ServerConfig`] and [`ServerDriverSettings`].

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use jsp_proto::config::CertifiedIdentity;
use jsp_proto::identity::{Fingerprint, PublicKey};
use jsp_proto::{ClientAuth, RetryPolicy, ServerConfig, TrustPolicy};
use serde::Deserialize;

use super::values::{self, Limit};
use super::{
    apply_timeouts, base_dir, engine_error, parse_toml, read_config, set, ConfigFileError,
    IdentitySection, TransportSection, DEFAULT_CLEANUP_INTERVAL,
};
use crate::limits::{CircuitBreakerConfig, LimitError, RateLimitConfig, RateLimitPolicy};

/// `[client_auth] mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMode {
    /// Clients are anonymous (the default).
    #[default]
    None,
    /// Clients may present an identity; if they do, it must be trusted.
    Optional,
    /// Clients must present a trusted identity.
    Required,
}

/// `[client_auth]`: whether and how a server authenticates clients.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ClientAuthSection {
    /// The policy (default `"none"`).
    pub mode: ClientAuthMode,
    /// Client key fingerprints accepted.
    #[serde(deserialize_with = "values::fingerprints")]
    pub pinned: Vec<Fingerprint>,
    /// Authorities whose client certificates are accepted.
    #[serde(deserialize_with = "values::public_keys")]
    pub authorities: Vec<PublicKey>,
}

impl ClientAuthSection {
    fn client_auth(&self) -> Result<ClientAuth, ConfigFileError> {
        let trust = TrustPolicy {
            pinned: self.pinned.clone(),
            authorities: self.authorities.clone(),
        };
        match self.mode {
            ClientAuthMode::None if !trust.is_empty() => Err(ConfigFileError::invalid(
                "client_auth.mode",
                "clients are not authenticated with mode \"none\", so the pinned keys and \
                 authorities would be ignored: set mode to \"optional\" or \"required\"",
            )),
            ClientAuthMode::None => Ok(ClientAuth::None),
            _ if trust.is_empty() => Err(ConfigFileError::invalid(
                "client_auth",
                "client authentication needs at least one client_auth.pinned fingerprint or \
                 client_auth.authorities key",
            )),
            ClientAuthMode::Optional => Ok(ClientAuth::Optional(trust)),
            ClientAuthMode::Required => Ok(ClientAuth::Required(trust)),
        }
    }
}

/// `[retry] policy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryMode {
    /// Never send Retry (the default).
    #[default]
    Never,
    /// Validate every client address with a Retry first.
    Always,
    /// Send Retry once `busy_threshold` handshakes are in flight.
    WhenBusy,
}

/// `[retry]`: stateless address validation (PROTOCOL.md §12.2).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct RetrySection {
    /// When to send Retry (default `"never"`).
    pub policy: RetryMode,
    /// Handshakes in flight from which Retry is sent (required with `"when_busy"`, refused
    /// otherwise).
    pub busy_threshold: Option<usize>,
    /// How long a Retry token stays valid (engine default 10 s).
    #[serde(deserialize_with = "values::opt_duration")]
    pub token_lifetime: Option<Duration>,
}

impl RetrySection {
    fn policy(&self) -> Result<RetryPolicy, ConfigFileError> {
        match (self.policy, self.busy_threshold) {
            (RetryMode::WhenBusy, Some(n)) => Ok(RetryPolicy::WhenBusy(n)),
            (RetryMode::WhenBusy, None) => Err(ConfigFileError::invalid(
                "retry.busy_threshold",
                "required with policy \"when_busy\" (handshakes in flight from which Retry is sent)",
            )),
            (_, Some(_)) => Err(ConfigFileError::invalid(
                "retry.busy_threshold",
                "only used with policy \"when_busy\"",
            )),
            (RetryMode::Never, None) => Ok(RetryPolicy::Never),
            (RetryMode::Always, None) => Ok(RetryPolicy::Always),
        }
    }
}

/// `[limits]` of a server.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ServerLimitsSection {
    /// Most established connections (engine default 100,000).
    pub max_connections: Option<usize>,
    /// Most handshakes in flight; more are refused or retried (engine default 1024).
    pub max_handshakes: Option<usize>,
    /// Concurrent streams of each direction a peer may open (default 100).
    pub max_streams: Option<u64>,
    /// What a message beyond a rate limit does (default `"back_pressure"`).
    pub rate_limit_policy: Option<RateLimitPolicy>,
    /// Messages per second per connection (default 100).
    pub rate_limit_messages: Option<Limit>,
    /// Bytes per second per connection (default 1,048,576).
    pub rate_limit_bytes: Option<Limit>,
    /// Each rate-limit bucket holds this much time's worth of its rate (default 1 s).
    #[serde(deserialize_with = "values::opt_duration")]
    pub rate_limit_burst: Option<Duration>,
    /// Messages per second across the server (default 10,000).
    pub global_rate_limit_messages: Option<Limit>,
    /// Bytes per second across the server (default 100,000,000).
    pub global_rate_limit_bytes: Option<Limit>,
}

impl ServerLimitsSection {
    fn rate_limits(&self) -> Result<RateLimitConfig, ConfigFileError> {
        let defaults = RateLimitConfig::default();
        let rate = |value: Option<Limit>, default| value.map_or(default, Limit::finite);
        let config = RateLimitConfig {
            policy: self.rate_limit_policy.unwrap_or(defaults.policy),
            messages_per_sec: rate(self.rate_limit_messages, defaults.messages_per_sec),
            bytes_per_sec: rate(self.rate_limit_bytes, defaults.bytes_per_sec),
            global_messages_per_sec: rate(
                self.global_rate_limit_messages,
                defaults.global_messages_per_sec,
            ),
            global_bytes_per_sec: rate(self.global_rate_limit_bytes, defaults.global_bytes_per_sec),
            burst: self.rate_limit_burst.unwrap_or(defaults.burst),
        };
        config.validate().map_err(|e| limit_error("limits", e))?;
        Ok(config)
    }
}

fn limit_error(section: &str, e: LimitError) -> ConfigFileError {
    let (field, message) = match &e {
        LimitError::ZeroRate { field } => (*field, "must be at least 1".to_owned()),
        LimitError::ZeroBurst { field } => (*field, "must be above zero".to_owned()),
        LimitError::OutOfRange { field, detail } => (*field, format!("must be {detail}")),
    };
    ConfigFileError::invalid(&format!("{section}.{field}"), message)
}

/// `[circuit_breaker]`: refuse new handshakes early when the server is overloaded.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct CircuitBreakerSection {
    /// Whether the breaker runs (default true).
    pub enabled: Option<bool>,
    /// Handshakes in flight that open it (default `limits.max_handshakes`).
    pub open_at: Option<usize>,
    /// It closes again only below this many handshakes in flight (default a quarter of
    /// `open_at`).
    pub resume_below: Option<usize>,
    /// Failed or timed-out handshakes within `failure_window` that open it; 0 disables (default
    /// 256).
    pub failure_threshold: Option<u32>,
    /// Window for counting failures (default 10 s).
    #[serde(deserialize_with = "values::opt_duration")]
    pub failure_window: Option<Duration>,
    /// Time open before probing (default 5 s).
    #[serde(deserialize_with = "values::opt_duration")]
    pub cool_down: Option<Duration>,
    /// Handshakes admitted while probing, and completions that close it (default 16).
    pub half_open_probes: Option<u32>,
}

impl CircuitBreakerSection {
    fn config(
        &self,
        max_handshakes: usize,
        retry: RetryPolicy,
    ) -> Result<Option<CircuitBreakerConfig>, ConfigFileError> {
        if self.enabled == Some(false) {
            return Ok(None);
        }
        let defaults = CircuitBreakerConfig::default();
        let open_at = self.open_at.unwrap_or(max_handshakes);
        let config = CircuitBreakerConfig {
            retry_at: match retry {
                RetryPolicy::Never => usize::MAX,
                RetryPolicy::Always => 0,
                RetryPolicy::WhenBusy(n) => n,
            },
            open_at,
            resume_below: self.resume_below.unwrap_or((open_at / 4).max(1)),
            failure_threshold: self.failure_threshold.unwrap_or(defaults.failure_threshold),
            failure_window: self.failure_window.unwrap_or(defaults.failure_window),
            cool_down: self.cool_down.unwrap_or(defaults.cool_down),
            half_open_probes: self.half_open_probes.unwrap_or(defaults.half_open_probes),
        };
        config
            .validate()
            .map_err(|e| limit_error("circuit_breaker", e))?;
        Ok(Some(config))
    }
}

/// `[session_tickets]` of a server: resumption and 0-RTT.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ServerTicketsSection {
    /// Tickets issued after each handshake; 0 disables resumption (engine default 1).
    pub per_connection: Option<u8>,
    /// Lifetime of a ticket, at most 7 days (engine default 24 h).
    #[serde(deserialize_with = "values::opt_duration")]
    pub lifetime: Option<Duration>,
    /// How often the ticket-sealing key rotates (engine default 1 h).
    #[serde(deserialize_with = "values::opt_duration")]
    pub key_rotation: Option<Duration>,
    /// Tickets remembered against replay (engine default 100,000).
    pub anti_replay_capacity: Option<usize>,
    /// 0-RTT bytes accepted per resumed connection; 0 disables 0-RTT (engine default 65,536).
    pub max_early_data: Option<u32>,
}

/// `[timeouts]` of a server.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ServerTimeoutsSection {
    /// Close a connection after this long without hearing from the peer; `"0s"` never (default
    /// 30 s).
    #[serde(deserialize_with = "values::opt_duration")]
    pub idle: Option<Duration>,
    /// Fail a handshake not complete within this time (default 10 s).
    #[serde(deserialize_with = "values::opt_duration")]
    pub handshake: Option<Duration>,
    /// Send a PING after this long without sending; `"0s"` disables heartbeats (default 5 s).
    #[serde(deserialize_with = "values::opt_duration")]
    pub heartbeat_interval: Option<Duration>,
    /// Close after this many silent heartbeat intervals (default 3).
    pub heartbeat_timeout_count: Option<u32>,
    /// How often closed and idle sessions are swept (default 10 s).
    #[serde(deserialize_with = "values::opt_duration")]
    pub cleanup_interval: Option<Duration>,
}

/// `[listen]`: where a server accepts connections.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ListenSection {
    /// UDP sockets, e.g. `["0.0.0.0:4433", "[::]:4433"]`.
    #[serde(deserialize_with = "values::socket_addrs")]
    pub udp: Vec<SocketAddr>,
    /// TCP carriage listeners.
    #[serde(deserialize_with = "values::socket_addrs")]
    pub tcp: Vec<SocketAddr>,
    /// WebSocket carriage listeners.
    #[serde(deserialize_with = "values::socket_addrs")]
    pub ws: Vec<SocketAddr>,
}

/// A server config file.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ServerFile {
    /// The server's key (required by [`ServerFile::into_config`]).
    pub identity: Option<IdentitySection>,
    /// Listen addresses (at least one is required).
    pub listen: ListenSection,
    /// Client authentication.
    pub client_auth: ClientAuthSection,
    /// Stateless Retry.
    pub retry: RetrySection,
    /// Connection, handshake, stream and rate limits.
    pub limits: ServerLimitsSection,
    /// The handshake circuit breaker.
    pub circuit_breaker: CircuitBreakerSection,
    /// Resumption and 0-RTT.
    pub session_tickets: ServerTicketsSection,
    /// Timeouts, heartbeats and cleanup.
    pub timeouts: ServerTimeoutsSection,
    /// Transport settings.
    pub transport: TransportSection,
}

/// Where a server listens, per carriage.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListenAddrs {
    /// UDP sockets.
    pub udp: Vec<SocketAddr>,
    /// TCP carriage listeners.
    pub tcp: Vec<SocketAddr>,
    /// WebSocket carriage listeners.
    pub ws: Vec<SocketAddr>,
}

/// What the async layer of a server does beyond the engine's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerDriverSettings {
    /// Listen addresses.
    pub listen: ListenAddrs,
    /// Per-connection and global rate limits and what happens beyond them.
    pub rate_limits: RateLimitConfig,
    /// The handshake circuit breaker (`None`: disabled).
    pub circuit_breaker: Option<CircuitBreakerConfig>,
    /// How often closed and idle sessions are swept.
    pub cleanup_interval: Duration,
}

impl Default for ServerDriverSettings {
    /// No listen address, default rate limits, a breaker for the engine's default 1024
    /// handshakes, cleanup every 10 s.
    fn default() -> Self {
        Self {
            listen: ListenAddrs::default(),
            rate_limits: RateLimitConfig::default(),
            circuit_breaker: Some(CircuitBreakerConfig {
                retry_at: usize::MAX,
                ..CircuitBreakerConfig::default()
            }),
            cleanup_interval: DEFAULT_CLEANUP_INTERVAL,
        }
    }
}

/// A loaded server configuration.
#[derive(Clone, Debug)]
pub struct LoadedServer {
    /// The engine's configuration.
    pub config: ServerConfig,
    /// The async layer's settings.
    pub driver: ServerDriverSettings,
}

impl ServerFile {
    /// Parses a server config file's text.
    pub fn parse(text: &str) -> Result<Self, ConfigFileError> {
        parse_toml(text)
    }

    /// Reads, parses and converts a server config file, with its key files.
    pub fn load(path: &Path) -> Result<LoadedServer, ConfigFileError> {
        let text = read_config(path)?;
        Self::parse(&text)
            .and_then(|file| file.into_config(base_dir(path)))
            .map_err(|e| e.in_file(path))
    }

    /// Converts, reading the identity files named in `[identity]` relative to `base_dir`.
    pub fn into_config(self, base_dir: &Path) -> Result<LoadedServer, ConfigFileError> {
        let Some(section) = &self.identity else {
            return Err(ConfigFileError::invalid(
                "identity.key_file",
                "a server needs an identity key file (create one with `jsp keygen`)",
            ));
        };
        let identity = section.load(base_dir)?;
        self.into_config_with_identity(identity)
    }

    /// Converts with an identity the caller already holds; `[identity]` is not read.
    pub fn into_config_with_identity(
        self,
        identity: CertifiedIdentity,
    ) -> Result<LoadedServer, ConfigFileError> {
        let mut config = ServerConfig::new(identity);
        self.transport.apply(&mut config.transport)?;
        let timeouts = &self.timeouts;
        apply_timeouts(
            &mut config.transport,
            timeouts.idle,
            timeouts.handshake,
            timeouts.heartbeat_interval,
            timeouts.heartbeat_timeout_count,
        );
        let limits = &self.limits;
        if limits.max_connections == Some(0) {
            return Err(ConfigFileError::invalid(
                "limits.max_connections",
                "must be at least 1",
            ));
        }
        set(&mut config.max_connections, limits.max_connections);
        set(&mut config.max_handshakes, limits.max_handshakes);
        set(&mut config.transport.max_streams, limits.max_streams);
        config.client_auth = self.client_auth.client_auth()?;
        config.retry = self.retry.policy()?;
        set(&mut config.retry_token_lifetime, self.retry.token_lifetime);
        let tickets = &self.session_tickets;
        set(&mut config.tickets_per_connection, tickets.per_connection);
        set(&mut config.ticket_lifetime, tickets.lifetime);
        set(&mut config.ticket_key_rotation, tickets.key_rotation);
        set(
            &mut config.anti_replay_capacity,
            tickets.anti_replay_capacity,
        );
        set(&mut config.max_early_data, tickets.max_early_data);
        if tickets.key_rotation == Some(Duration::ZERO) {
            return Err(ConfigFileError::invalid(
                "session_tickets.key_rotation",
                "must be above zero",
            ));
        }
        config.validate().map_err(engine_error)?;

        let listen = ListenAddrs {
            udp: self.listen.udp.clone(),
            tcp: self.listen.tcp.clone(),
            ws: self.listen.ws.clone(),
        };
        if listen.udp.is_empty() && listen.tcp.is_empty() && listen.ws.is_empty() {
            return Err(ConfigFileError::invalid(
                "listen",
                "no address to listen on: set listen.udp, listen.tcp or listen.ws",
            ));
        }
        let cleanup_interval = timeouts
            .cleanup_interval
            .unwrap_or(DEFAULT_CLEANUP_INTERVAL);
        if cleanup_interval.is_zero() {
            return Err(ConfigFileError::invalid(
                "timeouts.cleanup_interval",
                "must be above zero",
            ));
        }
        let driver = ServerDriverSettings {
            listen,
            rate_limits: limits.rate_limits()?,
            circuit_breaker: self
                .circuit_breaker
                .config(config.max_handshakes, config.retry)?,
            cleanup_interval,
        };
        Ok(LoadedServer { config, driver })
    }
}
