//! The client's config file: `[server]`, `[identity]`, `[trust]`, `[session_tickets]`,
//! `[limits]`, `[timeouts]`, `[transport]`, `[fallback]` and `[reconnect]`, and its conversion
//! into a [`ClientConfig`] and [`ClientDriverSettings`].

use std::path::Path;
use std::time::Duration;

use jsp_proto::config::CertifiedIdentity;
use jsp_proto::identity::MAX_SUBJECT_LEN;
use jsp_proto::ClientConfig;
use serde::Deserialize;

use super::values::{self, Limit};
use super::{
    apply_timeouts, base_dir, engine_error, parse_toml, read_config, set, ConfigFileError,
    IdentitySection, TransportSection, TrustSection, DEFAULT_TCP_FALLBACK_DELAY,
    DEFAULT_WS_FALLBACK_DELAY,
};
use crate::backoff::{
    BackoffConfig, BackoffError, DEFAULT_BACKOFF_BASE, DEFAULT_BACKOFF_CAP,
    DEFAULT_BACKOFF_MAX_ATTEMPTS,
};

/// `[session_tickets]` of a client.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ClientTicketsSection {
    /// Send 0-RTT data when resuming with a ticket that allows it (default true).
    pub enable_0rtt: Option<bool>,
}

/// `[timeouts]` of a client.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ClientTimeoutsSection {
    /// Close the connection after this long without hearing from the server; `"0s"` never
    /// (default 30 s).
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
}

/// `[server]` of a client: whom to connect to.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ServerSection {
    /// The server's name, checked against its certificate's subject and sent in `server_name`.
    pub name: Option<String>,
    /// UDP address, `"host:port"`.
    pub udp: Option<String>,
    /// TCP carriage address, `"host:port"`.
    pub tcp: Option<String>,
    /// WebSocket carriage URL, `"ws://…"` or `"wss://…"`.
    pub ws: Option<String>,
}

fn check_host_port(field: &str, value: &str) -> Result<(), ConfigFileError> {
    let ok = value
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0));
    if ok {
        Ok(())
    } else {
        Err(ConfigFileError::invalid(
            field,
            format!("expected \"host:port\" such as \"example.org:4433\", got {value:?}"),
        ))
    }
}

impl ServerSection {
    fn addrs(&self) -> Result<ServerAddrs, ConfigFileError> {
        if let Some(name) = &self.name {
            if name.is_empty() || name.len() > MAX_SUBJECT_LEN {
                return Err(ConfigFileError::invalid(
                    "server.name",
                    format!("must be 1 to {MAX_SUBJECT_LEN} bytes long"),
                ));
            }
        }
        if let Some(udp) = &self.udp {
            check_host_port("server.udp", udp)?;
        }
        if let Some(tcp) = &self.tcp {
            check_host_port("server.tcp", tcp)?;
        }
        if let Some(ws) = &self.ws {
            let rest = ws
                .strip_prefix("wss://")
                .or_else(|| ws.strip_prefix("ws://"));
            if rest.is_none_or(|r| r.is_empty() || r.starts_with('/')) {
                return Err(ConfigFileError::invalid(
                    "server.ws",
                    format!("expected a URL such as \"wss://example.org/jsp\", got {ws:?}"),
                ));
            }
        }
        Ok(ServerAddrs {
            udp: self.udp.clone(),
            tcp: self.tcp.clone(),
            ws: self.ws.clone(),
        })
    }
}

/// `[limits]` of a client.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ClientLimitsSection {
    /// Concurrent streams of each direction the server may open (default 100).
    pub max_streams: Option<u64>,
}

/// `[fallback]`: when a client also tries the stream carriages (UDP, then TCP, then WebSocket).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct FallbackSection {
    /// After this long without a UDP connection, also try TCP (default 500 ms).
    #[serde(deserialize_with = "values::opt_duration")]
    pub tcp_delay: Option<Duration>,
    /// After this long without a connection, also try WebSocket (default 1 s; at least
    /// `tcp_delay`).
    #[serde(deserialize_with = "values::opt_duration")]
    pub ws_delay: Option<Duration>,
}

/// `[reconnect]`: automatic reconnect with exponential backoff and full jitter.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ReconnectSection {
    /// Reconnect automatically when the connection is lost (default false).
    pub enabled: Option<bool>,
    /// Delay ceiling of the first attempt, doubling with each (default 100 ms).
    #[serde(deserialize_with = "values::opt_duration")]
    pub base: Option<Duration>,
    /// Largest delay ceiling (default 30 s).
    #[serde(deserialize_with = "values::opt_duration")]
    pub cap: Option<Duration>,
    /// Attempts before giving up, or `"unlimited"` (default 16).
    pub max_attempts: Option<Limit>,
}

impl ReconnectSection {
    fn config(&self) -> Result<Option<BackoffConfig>, ConfigFileError> {
        let max_attempts = match self.max_attempts {
            None => Some(DEFAULT_BACKOFF_MAX_ATTEMPTS),
            Some(Limit::Unlimited) => None,
            Some(Limit::Finite(n)) => Some(u32::try_from(n).map_err(|_| {
                ConfigFileError::invalid("reconnect.max_attempts", "at most 4294967295")
            })?),
        };
        let config = BackoffConfig {
            base: self.base.unwrap_or(DEFAULT_BACKOFF_BASE),
            cap: self.cap.unwrap_or(DEFAULT_BACKOFF_CAP),
            max_attempts,
        };
        config.validate().map_err(|e| {
            let field = match e {
                BackoffError::ZeroBase => "reconnect.base",
                _ => "reconnect.cap",
            };
            ConfigFileError::invalid(field, e.to_string())
        })?;
        Ok(self.enabled.unwrap_or(false).then_some(config))
    }
}

/// A client config file.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ClientFile {
    /// The server to connect to.
    pub server: ServerSection,
    /// The client's own key, sent only if the server asks.
    pub identity: Option<IdentitySection>,
    /// Which server keys are trusted (at least one pin or authority).
    pub trust: TrustSection,
    /// Resumption.
    pub session_tickets: ClientTicketsSection,
    /// Stream limits.
    pub limits: ClientLimitsSection,
    /// Timeouts and heartbeats.
    pub timeouts: ClientTimeoutsSection,
    /// Transport settings.
    pub transport: TransportSection,
    /// Carriage fallback delays.
    pub fallback: FallbackSection,
    /// Automatic reconnect.
    pub reconnect: ReconnectSection,
}

/// The server's address per carriage (host names are resolved when connecting).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerAddrs {
    /// `"host:port"` for UDP.
    pub udp: Option<String>,
    /// `"host:port"` for the TCP carriage.
    pub tcp: Option<String>,
    /// `ws://` or `wss://` URL for the WebSocket carriage.
    pub ws: Option<String>,
}

/// When a client starts the fallback carriages, counted from the start of a connection attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FallbackConfig {
    /// Start TCP after this long without a connection (if a TCP address is known).
    pub tcp_delay: Duration,
    /// Start WebSocket after this long without a connection (if a WebSocket URL is known).
    pub ws_delay: Duration,
}

impl Default for FallbackConfig {
    /// TCP after 500 ms, WebSocket after 1 s.
    fn default() -> Self {
        Self {
            tcp_delay: DEFAULT_TCP_FALLBACK_DELAY,
            ws_delay: DEFAULT_WS_FALLBACK_DELAY,
        }
    }
}

/// What the async layer of a client does beyond the engine's configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientDriverSettings {
    /// Where the server is.
    pub server: ServerAddrs,
    /// Carriage fallback delays.
    pub fallback: FallbackConfig,
    /// Automatic reconnect (`None`: disabled).
    pub reconnect: Option<BackoffConfig>,
}

/// A loaded client configuration.
#[derive(Clone, Debug)]
pub struct LoadedClient {
    /// The engine's configuration.
    pub config: ClientConfig,
    /// The async layer's settings.
    pub driver: ClientDriverSettings,
}

impl ClientFile {
    /// Parses a client config file's text.
    pub fn parse(text: &str) -> Result<Self, ConfigFileError> {
        parse_toml(text)
    }

    /// Reads, parses and converts a client config file, with its key files.
    pub fn load(path: &Path) -> Result<LoadedClient, ConfigFileError> {
        let text = read_config(path)?;
        Self::parse(&text)
            .and_then(|file| file.into_config(base_dir(path)))
            .map_err(|e| e.in_file(path))
    }

    /// Converts, reading the identity files named in `[identity]` (if any) relative to
    /// `base_dir`.
    pub fn into_config(self, base_dir: &Path) -> Result<LoadedClient, ConfigFileError> {
        let identity = self
            .identity
            .as_ref()
            .map(|section| section.load(base_dir))
            .transpose()?;
        self.into_config_with_identity(identity)
    }

    /// Converts with an identity the caller already holds (or none); `[identity]` is not read.
    pub fn into_config_with_identity(
        self,
        identity: Option<CertifiedIdentity>,
    ) -> Result<LoadedClient, ConfigFileError> {
        let mut config = ClientConfig::new(self.trust.policy());
        config.identity = identity;
        let server = self.server.addrs()?;
        config.server_name = self.server.name.clone();
        set(&mut config.enable_0rtt, self.session_tickets.enable_0rtt);
        self.transport.apply(&mut config.transport)?;
        let timeouts = &self.timeouts;
        apply_timeouts(
            &mut config.transport,
            timeouts.idle,
            timeouts.handshake,
            timeouts.heartbeat_interval,
            timeouts.heartbeat_timeout_count,
        );
        set(&mut config.transport.max_streams, self.limits.max_streams);
        config.validate().map_err(engine_error)?;

        let defaults = FallbackConfig::default();
        let fallback = FallbackConfig {
            tcp_delay: self.fallback.tcp_delay.unwrap_or(defaults.tcp_delay),
            ws_delay: self.fallback.ws_delay.unwrap_or(defaults.ws_delay),
        };
        if fallback.ws_delay < fallback.tcp_delay {
            return Err(ConfigFileError::invalid(
                "fallback.ws_delay",
                format!(
                    "must be at least fallback.tcp_delay ({:?}): carriages are tried UDP, then \
                     TCP, then WebSocket",
                    fallback.tcp_delay
                ),
            ));
        }
        let driver = ClientDriverSettings {
            server,
            fallback,
            reconnect: self.reconnect.config()?,
        };
        Ok(LoadedClient { config, driver })
    }
}
