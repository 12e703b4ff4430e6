//! Builders for connection and server settings, in the spirit of the original JetStreamProto API
//! (`ConnectionConfig::builder().session_timeout(..).build()`,
//! `ServerSettings::builder(identity).connection(..).cleanup_interval(..).build()`).
//!
//! Every setting maps onto a real knob: [`ConnectionConfig`] holds the engine's
//! [`TransportConfig`] (session timeout = `idle_timeout`, heartbeats, stream limit, handshake
//! timeout, congestion control, cipher suites) plus the per-connection rate limits a server
//! applies to its peers ([`RateLimitConfig`]). [`ServerSettings`] adds the engine's
//! [`ServerConfig`] policies (connection and handshake limits, Retry, client authentication), the
//! global rate limits, the circuit breaker, the accept-backlog cleanup interval, the number of
//! workers and the listen addresses, and is what [`Server::start`](crate::Server::start) runs.
//! Settings can also come from a TOML file through [`crate::config_file`]
//! ([`ServerSettings::from_file`]). `build()` validates and returns a typed [`SettingsError`].

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jsp_proto::config::{CertifiedIdentity, ClientAuth, RetryPolicy};
use jsp_proto::crypto::CipherSuite;
use jsp_proto::error::ConfigError;
use jsp_proto::recovery::congestion::CongestionControl;
use jsp_proto::{ClientConfig, ServerConfig, TransportConfig, TrustPolicy};

use crate::config_file::{
    ConfigFileError, ListenAddrs, LoadedServer, ServerFile, DEFAULT_CLEANUP_INTERVAL,
};
use crate::limits::{
    CircuitBreakerConfig, LimitError, RateLimitConfig, RateLimitPolicy,
    DEFAULT_GLOBAL_RATE_LIMIT_BYTES, DEFAULT_GLOBAL_RATE_LIMIT_MESSAGES, DEFAULT_RATE_LIMIT_BURST,
    DEFAULT_RATE_LIMIT_BYTES, DEFAULT_RATE_LIMIT_MESSAGES,
};

/// Why connection or server settings were rejected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// A timeout or interval that must be positive is zero.
    #[error("{field} must be above zero")]
    ZeroDuration {
        /// The offending setting.
        field: &'static str,
    },
    /// A count that must be positive is zero.
    #[error("{field} must be at least 1")]
    ZeroCount {
        /// The offending setting.
        field: &'static str,
    },
    /// The engine rejected the transport or server configuration.
    #[error("invalid engine configuration: {0}")]
    Engine(#[from] ConfigError),
    /// A rate limit is invalid.
    #[error("invalid rate limit: {0}")]
    RateLimit(#[source] LimitError),
    /// The circuit breaker thresholds are inconsistent.
    #[error("invalid circuit breaker: {0}")]
    CircuitBreaker(#[source] LimitError),
    /// The server has no address to listen on.
    #[error("no address to listen on: set listen_udp, listen_tcp or listen_ws")]
    NoListenAddress,
    /// The config file could not be loaded.
    #[error(transparent)]
    File(#[from] ConfigFileError),
}

/// Per-connection settings: the engine's transport settings plus the rate limits a server
/// applies to each peer.
///
/// [`ConnectionConfig::default`] matches the original API: 30 s session timeout, heartbeat every
/// 5 s with 3 missed heartbeats ending the connection, 100 streams, 100 messages and 1 MiB per
/// second per connection.
#[derive(Clone, Debug)]
pub struct ConnectionConfig {
    transport: TransportConfig,
    rate_limit_messages: Option<u64>,
    rate_limit_bytes: Option<u64>,
    rate_limit_policy: RateLimitPolicy,
    rate_limit_burst: Duration,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self {
            transport: TransportConfig::default(),
            rate_limit_messages: Some(DEFAULT_RATE_LIMIT_MESSAGES),
            rate_limit_bytes: Some(DEFAULT_RATE_LIMIT_BYTES),
            rate_limit_policy: RateLimitPolicy::default(),
            rate_limit_burst: DEFAULT_RATE_LIMIT_BURST,
        }
    }
}

impl ConnectionConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> ConnectionConfigBuilder {
        ConnectionConfigBuilder {
            config: Self::default(),
            zero_session_timeout: false,
        }
    }

    /// The settings a loaded config file gives a server's connections.
    fn from_loaded(transport: TransportConfig, rates: &RateLimitConfig) -> Self {
        Self {
            transport,
            rate_limit_messages: rates.messages_per_sec,
            rate_limit_bytes: rates.bytes_per_sec,
            rate_limit_policy: rates.policy,
            rate_limit_burst: rates.burst,
        }
    }

    /// How long a connection may stay silent before it ends with `TimedOut` (the engine's
    /// `idle_timeout`; zero: never). The two sides' values are negotiated down to the smaller.
    pub fn session_timeout(&self) -> Duration {
        self.transport.idle_timeout
    }

    /// How often a quiet connection sends a heartbeat PING (zero: no heartbeats).
    pub fn heartbeat_interval(&self) -> Duration {
        self.transport.heartbeat_interval
    }

    /// Heartbeat intervals without hearing from the peer after which the connection ends.
    pub fn heartbeat_timeout_count(&self) -> u32 {
        self.transport.heartbeat_timeout_count
    }

    /// Concurrent streams of each direction the peer may open.
    pub fn max_streams(&self) -> u64 {
        self.transport.max_streams
    }

    /// How long a handshake may take.
    pub fn handshake_timeout(&self) -> Duration {
        self.transport.handshake_timeout
    }

    /// Messages per second a server accepts from each peer (`None`: unlimited).
    pub fn rate_limit_messages(&self) -> Option<u64> {
        self.rate_limit_messages
    }

    /// Bytes per second a server accepts from each peer (`None`: unlimited).
    pub fn rate_limit_bytes(&self) -> Option<u64> {
        self.rate_limit_bytes
    }

    /// What a server does with a message beyond a peer's limit.
    pub fn rate_limit_policy(&self) -> RateLimitPolicy {
        self.rate_limit_policy
    }

    /// How much time's worth of its rate each rate-limit bucket holds.
    pub fn rate_limit_burst(&self) -> Duration {
        self.rate_limit_burst
    }

    /// The engine transport settings.
    pub fn transport(&self) -> &TransportConfig {
        &self.transport
    }

    /// A client configuration using these transport settings and trusting `trust` (the rate
    /// limits only apply on a server, to its peers).
    ///
    /// # Errors
    /// [`SettingsError::Engine`] if `trust` is empty.
    pub fn client(&self, trust: TrustPolicy) -> Result<Arc<ClientConfig>, SettingsError> {
        let mut config = ClientConfig::new(trust);
        config.transport = self.transport.clone();
        config.validate()?;
        Ok(Arc::new(config))
    }

    /// The rate-limit configuration of a server using these per-connection limits and the
    /// given global ones.
    fn rate_limits(
        &self,
        global_messages: Option<u64>,
        global_bytes: Option<u64>,
    ) -> RateLimitConfig {
        RateLimitConfig {
            policy: self.rate_limit_policy,
            messages_per_sec: self.rate_limit_messages,
            bytes_per_sec: self.rate_limit_bytes,
            global_messages_per_sec: global_messages,
            global_bytes_per_sec: global_bytes,
            burst: self.rate_limit_burst,
        }
    }
}

/// Builds a [`ConnectionConfig`]; see [`ConnectionConfig::builder`].
#[derive(Clone, Debug)]
#[must_use]
pub struct ConnectionConfigBuilder {
    config: ConnectionConfig,
    /// `session_timeout(Duration::ZERO)` was asked for (an error: zero is spelled
    /// `no_session_timeout`).
    zero_session_timeout: bool,
}

impl ConnectionConfigBuilder {
    /// Starts from these engine transport settings instead of the defaults (for knobs without
    /// a setter here); later setters override them.
    pub fn transport(mut self, transport: TransportConfig) -> Self {
        self.config.transport = transport;
        self
    }

    /// Ends a connection that has heard nothing from its peer for this long (must be above
    /// zero; see [`no_session_timeout`](Self::no_session_timeout)).
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.config.transport.idle_timeout = timeout;
        self.zero_session_timeout = timeout.is_zero();
        self
    }

    /// Never ends a silent connection on a timer of this side (heartbeats, if enabled, still
    /// detect a vanished peer; the peer's own timeout still applies).
    pub fn no_session_timeout(mut self) -> Self {
        self.config.transport.idle_timeout = Duration::ZERO;
        self.zero_session_timeout = false;
        self
    }

    /// Sends a heartbeat PING when nothing was sent for this long (zero disables heartbeats).
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.config.transport.heartbeat_interval = interval;
        self
    }

    /// Ends the connection after this many heartbeat intervals without a packet from the peer
    /// (at least 1 while heartbeats are enabled).
    pub fn heartbeat_timeout_count(mut self, count: u32) -> Self {
        self.config.transport.heartbeat_timeout_count = count;
        self
    }

    /// Concurrent streams of each direction the peer may open.
    pub fn max_streams(mut self, max: u64) -> Self {
        self.config.transport.max_streams = max;
        self
    }

    /// Fails a handshake not complete within this time (must be above zero).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.config.transport.handshake_timeout = timeout;
        self
    }

    /// The congestion controller.
    pub fn congestion_control(mut self, cc: CongestionControl) -> Self {
        self.config.transport.congestion_control = cc;
        self
    }

    /// Cipher suites in preference order (must not be empty).
    pub fn cipher_suites(mut self, suites: Vec<CipherSuite>) -> Self {
        self.config.transport.cipher_suites = suites;
        self
    }

    /// Messages per second a server accepts from each peer (datagrams and streams it opens; at
    /// least 1).
    pub fn rate_limit_messages(mut self, per_sec: u64) -> Self {
        self.config.rate_limit_messages = Some(per_sec);
        self
    }

    /// Stream bytes per second a server accepts from each peer (at least 1).
    pub fn rate_limit_bytes(mut self, per_sec: u64) -> Self {
        self.config.rate_limit_bytes = Some(per_sec);
        self
    }

    /// Removes the per-connection message and byte limits.
    pub fn no_rate_limits(mut self) -> Self {
        self.config.rate_limit_messages = None;
        self.config.rate_limit_bytes = None;
        self
    }

    /// What a server does with a message beyond a peer's limit: wait (default) or close the
    /// connection with `RateLimitExceeded`.
    pub fn rate_limit_policy(mut self, policy: RateLimitPolicy) -> Self {
        self.config.rate_limit_policy = policy;
        self
    }

    /// How much time's worth of its rate each rate-limit bucket holds (default 1 s; above zero).
    pub fn rate_limit_burst(mut self, burst: Duration) -> Self {
        self.config.rate_limit_burst = burst;
        self
    }

    /// Validates and returns the settings.
    ///
    /// # Errors
    /// [`SettingsError::ZeroDuration`] for a zero session or handshake timeout (use
    /// [`no_session_timeout`](Self::no_session_timeout) to disable the former),
    /// [`SettingsError::Engine`] for transport settings the engine rejects (such as a zero
    /// heartbeat count with heartbeats on, or no cipher suite), [`SettingsError::RateLimit`] for
    /// a zero rate or burst.
    pub fn build(self) -> Result<ConnectionConfig, SettingsError> {
        if self.zero_session_timeout {
            return Err(SettingsError::ZeroDuration {
                field: "session_timeout",
            });
        }
        let c = self.config;
        if c.transport.handshake_timeout.is_zero() {
            return Err(SettingsError::ZeroDuration {
                field: "handshake_timeout",
            });
        }
        c.transport.validate()?;
        c.rate_limits(None, None)
            .validate()
            .map_err(SettingsError::RateLimit)?;
        Ok(c)
    }
}

/// The circuit breaker choice of a builder.
#[derive(Clone, Debug)]
enum BreakerChoice {
    /// Derived from `max_handshakes` and the Retry policy, like a config file.
    Auto,
    /// Given explicitly (`None`: disabled).
    Explicit(Option<CircuitBreakerConfig>),
}

/// Everything a [`Server`](crate::Server) runs with: the engine's server configuration, the
/// per-connection settings, global rate limits, the circuit breaker, cleanup, workers and listen
/// addresses. Made by [`ServerSettings::builder`] or from a config file.
#[derive(Clone, Debug)]
pub struct ServerSettings {
    config: ServerConfig,
    connection: ConnectionConfig,
    rate_limits: RateLimitConfig,
    circuit_breaker: Option<CircuitBreakerConfig>,
    cleanup_interval: Duration,
    workers: usize,
    listen: ListenAddrs,
    tcp_on_udp_port: bool,
}

impl ServerSettings {
    /// A builder for a server with `identity` and the defaults: [`ConnectionConfig::default`],
    /// 10,000 messages and 100 MB per second across the server, cleanup every 10 s, one worker
    /// per core, the engine's connection and handshake limits, a circuit breaker opening at
    /// `max_handshakes` handshakes in flight, and no listen address.
    pub fn builder(identity: impl Into<CertifiedIdentity>) -> ServerSettingsBuilder {
        ServerSettingsBuilder {
            config: ServerConfig::new(identity),
            connection: ConnectionConfig::default(),
            global_messages: Some(DEFAULT_GLOBAL_RATE_LIMIT_MESSAGES),
            global_bytes: Some(DEFAULT_GLOBAL_RATE_LIMIT_BYTES),
            circuit_breaker: BreakerChoice::Auto,
            cleanup_interval: DEFAULT_CLEANUP_INTERVAL,
            workers: 0,
            listen: ListenAddrs::default(),
            tcp_on_udp_port: false,
        }
    }

    /// Loads a server config file (see [`crate::config_file::EXAMPLE_SERVER_TOML`]) with its
    /// key files; one worker per core.
    ///
    /// # Errors
    /// [`SettingsError::File`] if the file cannot be read or is invalid.
    pub fn from_file(path: &Path) -> Result<Self, SettingsError> {
        Self::from_loaded(ServerFile::load(path)?)
    }

    /// Settings from an already loaded config file; one worker per core.
    ///
    /// # Errors
    /// As [`ServerSettingsBuilder::build`].
    pub fn from_loaded(loaded: LoadedServer) -> Result<Self, SettingsError> {
        ServerSettingsBuilder::from_loaded(loaded).build()
    }

    /// The engine's server configuration (identity, policies, limits, transport).
    pub fn server_config(&self) -> &ServerConfig {
        &self.config
    }

    /// The per-connection settings.
    pub fn connection(&self) -> &ConnectionConfig {
        &self.connection
    }

    /// The rate limits applied to peers (per connection and across the server).
    pub fn rate_limits(&self) -> &RateLimitConfig {
        &self.rate_limits
    }

    /// The handshake circuit breaker (`None`: disabled).
    pub fn circuit_breaker(&self) -> Option<&CircuitBreakerConfig> {
        self.circuit_breaker.as_ref()
    }

    /// How often the accept backlog is swept (see [`crate::Server`]).
    pub fn cleanup_interval(&self) -> Duration {
        self.cleanup_interval
    }

    /// Workers per UDP address (0: one per core).
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// The listen addresses.
    pub fn listen(&self) -> &ListenAddrs {
        &self.listen
    }

    /// Whether the server also listens on TCP at the first UDP socket's address and port.
    pub fn tcp_on_udp_port(&self) -> bool {
        self.tcp_on_udp_port
    }
}

/// Builds [`ServerSettings`]; see [`ServerSettings::builder`].
#[derive(Clone, Debug)]
#[must_use]
pub struct ServerSettingsBuilder {
    config: ServerConfig,
    connection: ConnectionConfig,
    global_messages: Option<u64>,
    global_bytes: Option<u64>,
    circuit_breaker: BreakerChoice,
    cleanup_interval: Duration,
    workers: usize,
    listen: ListenAddrs,
    tcp_on_udp_port: bool,
}

impl ServerSettingsBuilder {
    /// A builder holding a loaded config file's settings (one worker per core), to adjust
    /// before [`build`](Self::build).
    pub fn from_loaded(loaded: LoadedServer) -> Self {
        let LoadedServer { config, driver } = loaded;
        let connection =
            ConnectionConfig::from_loaded(config.transport.clone(), &driver.rate_limits);
        Self {
            connection,
            global_messages: driver.rate_limits.global_messages_per_sec,
            global_bytes: driver.rate_limits.global_bytes_per_sec,
            circuit_breaker: BreakerChoice::Explicit(driver.circuit_breaker),
            cleanup_interval: driver.cleanup_interval,
            workers: 0,
            listen: driver.listen,
            tcp_on_udp_port: false,
            config,
        }
    }

    /// The per-connection settings (transport and per-peer rate limits).
    pub fn connection(mut self, connection: ConnectionConfig) -> Self {
        self.connection = connection;
        self
    }

    /// Messages per second across all connections of the server (`None`: unlimited).
    pub fn global_rate_limit_messages(mut self, per_sec: Option<u32>) -> Self {
        self.global_messages = per_sec.map(u64::from);
        self
    }

    /// Bytes per second across all connections of the server (`None`: unlimited).
    pub fn global_rate_limit_bytes(mut self, per_sec: Option<u64>) -> Self {
        self.global_bytes = per_sec;
        self
    }

    /// How often the accept backlog is swept of connections that ended before the application
    /// accepted them (above zero; see [`crate::Server`]).
    pub fn cleanup_interval(mut self, interval: Duration) -> Self {
        self.cleanup_interval = interval;
        self
    }

    /// Most live connections (established or handshaking); more are refused with SERVER_BUSY.
    /// With several workers each enforces its share (rounded up).
    pub fn max_connections(mut self, max: usize) -> Self {
        self.config.max_connections = max;
        self
    }

    /// Most handshakes in flight; more are refused (or sent a Retry). With several workers each
    /// enforces its share (rounded up).
    pub fn max_handshakes(mut self, max: usize) -> Self {
        self.config.max_handshakes = max;
        self
    }

    /// When clients are sent a Retry to validate their address.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.config.retry = policy;
        self
    }

    /// Whether and how clients authenticate.
    pub fn client_auth(mut self, auth: ClientAuth) -> Self {
        self.config.client_auth = auth;
        self
    }

    /// The handshake circuit breaker (`None` disables it). Without this call it opens at
    /// `max_handshakes` handshakes in flight and sends Retries as the Retry policy says.
    pub fn circuit_breaker(mut self, breaker: Option<CircuitBreakerConfig>) -> Self {
        self.circuit_breaker = BreakerChoice::Explicit(breaker);
        self
    }

    /// Workers (sockets and driver tasks) per UDP address; 0 (default) is one per core.
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// Adds a UDP address to listen on.
    pub fn listen_udp(mut self, addr: SocketAddr) -> Self {
        self.listen.udp.push(addr);
        self
    }

    /// Adds a TCP carriage address to listen on.
    pub fn listen_tcp(mut self, addr: SocketAddr) -> Self {
        self.listen.tcp.push(addr);
        self
    }

    /// Adds a WebSocket carriage address to listen on.
    pub fn listen_ws(mut self, addr: SocketAddr) -> Self {
        self.listen.ws.push(addr);
        self
    }

    /// The listen addresses given so far.
    pub fn listen_addrs(&self) -> &ListenAddrs {
        &self.listen
    }

    /// Removes every listen address given so far (by the config file or earlier calls), for
    /// example to replace the file's addresses with a command-line flag's.
    pub fn clear_listen(mut self) -> Self {
        self.listen = ListenAddrs::default();
        self.tcp_on_udp_port = false;
        self
    }

    /// Also listens on TCP at the first UDP address's final address and port, the usual "UDP
    /// and TCP on one port" server. With port 0, the server picks a port free for both.
    pub fn tcp_on_udp_port(mut self) -> Self {
        self.tcp_on_udp_port = true;
        self
    }

    /// Validates and returns the settings.
    ///
    /// # Errors
    /// [`SettingsError::NoListenAddress`] without any listen address,
    /// [`SettingsError::ZeroDuration`] for a zero cleanup interval, [`SettingsError::ZeroCount`]
    /// for zero `max_connections`, [`SettingsError::Engine`] for what the engine rejects (zero
    /// `max_handshakes` ...), [`SettingsError::RateLimit`] or [`SettingsError::CircuitBreaker`]
    /// for invalid limits, and the errors of [`ConnectionConfigBuilder::build`].
    pub fn build(self) -> Result<ServerSettings, SettingsError> {
        let connection = ConnectionConfigBuilder {
            config: self.connection,
            zero_session_timeout: false,
        }
        .build()?;
        let mut config = self.config;
        config.transport = connection.transport.clone();
        if config.max_connections == 0 {
            return Err(SettingsError::ZeroCount {
                field: "max_connections",
            });
        }
        config.validate()?;
        if self.cleanup_interval.is_zero() {
            return Err(SettingsError::ZeroDuration {
                field: "cleanup_interval",
            });
        }
        if self.listen.udp.is_empty() && self.listen.tcp.is_empty() && self.listen.ws.is_empty() {
            return Err(SettingsError::NoListenAddress);
        }
        let rate_limits = connection.rate_limits(self.global_messages, self.global_bytes);
        rate_limits.validate().map_err(SettingsError::RateLimit)?;
        let circuit_breaker = match self.circuit_breaker {
            BreakerChoice::Explicit(b) => b,
            BreakerChoice::Auto => {
                let open_at = config.max_handshakes;
                Some(CircuitBreakerConfig {
                    retry_at: match config.retry {
                        RetryPolicy::Never => usize::MAX,
                        RetryPolicy::Always => 0,
                        RetryPolicy::WhenBusy(n) => n,
                    },
                    open_at,
                    resume_below: (open_at / 4).max(1),
                    ..CircuitBreakerConfig::default()
                })
            }
        };
        if let Some(b) = &circuit_breaker {
            b.validate().map_err(SettingsError::CircuitBreaker)?;
        }
        Ok(ServerSettings {
            config,
            connection,
            rate_limits,
            circuit_breaker,
            cleanup_interval: self.cleanup_interval,
            workers: self.workers,
            listen: self.listen,
            tcp_on_udp_port: self.tcp_on_udp_port,
        })
    }
}
