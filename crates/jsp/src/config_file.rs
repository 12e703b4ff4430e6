//! Server and client configuration loaded from TOML files, as an alternative to building
//! [`ServerConfig`](jsp_proto::ServerConfig) and [`ClientConfig`](jsp_proto::ClientConfig) in code.
//!
//! [`ServerFile`] and [`ClientFile`] mirror the file (see [`EXAMPLE_SERVER_TOML`] and
//! [`EXAMPLE_CLIENT_TOML`], which set every field). Unknown fields are errors, so a typo never
//! silently falls back to a default; a field that is left out takes the documented default (the
//! engine's for engine settings). Errors name the field and say what is wrong, e.g.
//! `limits.max_streams: invalid type: string "many", expected u64 (line 12, column 15)`.
//!
//! Loading produces the engine's configuration plus the settings the async layer owns
//! ([`ServerDriverSettings`], [`ClientDriverSettings`]): listen addresses, rate limits and their
//! policy, the circuit breaker, the cleanup interval, server addresses, carriage fallback and
//! reconnect. Paths in a file are relative to the file's directory. The key and certificate file
//! formats are in [`identity_files`].

mod client;
mod examples;
pub mod identity_files;
mod server;
mod values;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jsp_proto::config::CertifiedIdentity;
use jsp_proto::error::ConfigError;
use jsp_proto::identity::{Fingerprint, PublicKey};
use jsp_proto::{TransportConfig, TrustPolicy};
use serde::de::DeserializeOwned;
use serde::Deserialize;

pub use client::{
    ClientDriverSettings, ClientFile, ClientLimitsSection, ClientTicketsSection,
    ClientTimeoutsSection, FallbackConfig, FallbackSection, LoadedClient, ReconnectSection,
    ServerAddrs, ServerSection,
};
pub use examples::{EXAMPLE_CLIENT_TOML, EXAMPLE_SERVER_TOML};
pub use identity_files::IdentityFileError;
pub use server::{
    CircuitBreakerSection, ClientAuthMode, ClientAuthSection, ListenAddrs, ListenSection,
    LoadedServer, RetryMode, RetrySection, ServerDriverSettings, ServerFile, ServerLimitsSection,
    ServerTicketsSection, ServerTimeoutsSection,
};
pub use values::{CompressionName, CongestionName, Limit, SuiteName};

/// Largest config file read.
pub const MAX_CONFIG_FILE_LEN: u64 = 1024 * 1024;
/// Default interval between sweeps of closed and idle sessions.
pub const DEFAULT_CLEANUP_INTERVAL: Duration = Duration::from_secs(10);
/// Default delay before a client also tries the TCP carriage.
pub const DEFAULT_TCP_FALLBACK_DELAY: Duration = Duration::from_millis(500);
/// Default delay before a client also tries the WebSocket carriage.
pub const DEFAULT_WS_FALLBACK_DELAY: Duration = Duration::from_millis(1000);

/// Why a config file could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigFileError {
    /// The config file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown field, or a value of the wrong type.
    #[error("{}{}{message}{}", file_prefix(file), field_prefix(field), position(*line, *column))]
    Parse {
        /// The file, when loaded from one.
        file: Option<PathBuf>,
        /// Dotted path of the field (`limits.max_streams`, `trust.pinned[1]`); empty for syntax
        /// errors outside any field.
        field: String,
        /// What is wrong.
        message: String,
        /// 1-based line of the offending text.
        line: Option<usize>,
        /// 1-based column (in characters) of the offending text.
        column: Option<usize>,
    },
    /// A value parsed but is out of range or inconsistent with another.
    #[error("{}{field}: {message}", file_prefix(file))]
    Invalid {
        /// The file, when loaded from one.
        file: Option<PathBuf>,
        /// Dotted path of the field.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A key or certificate file named by the config is unusable.
    #[error("{}{field}: {source}", file_prefix(file))]
    Identity {
        /// The config file, when loaded from one.
        file: Option<PathBuf>,
        /// The field naming the key or certificate file.
        field: String,
        /// What is wrong with it.
        #[source]
        source: IdentityFileError,
    },
}

fn file_prefix(file: &Option<PathBuf>) -> String {
    file.as_ref()
        .map(|f| format!("{}: ", f.display()))
        .unwrap_or_default()
}

fn field_prefix(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!("{field}: ")
    }
}

fn position(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(" (line {l}, column {c})"),
        _ => String::new(),
    }
}

impl ConfigFileError {
    /// The dotted path of the offending field, if the error concerns one.
    pub fn field(&self) -> Option<&str> {
        match self {
            ConfigFileError::Read { .. } => None,
            ConfigFileError::Parse { field, .. }
            | ConfigFileError::Invalid { field, .. }
            | ConfigFileError::Identity { field, .. } => Some(field),
        }
    }

    fn invalid(field: &str, message: impl Into<String>) -> Self {
        ConfigFileError::Invalid {
            file: None,
            field: field.to_owned(),
            message: message.into(),
        }
    }

    fn in_file(mut self, path: &Path) -> Self {
        match &mut self {
            ConfigFileError::Parse { file, .. }
            | ConfigFileError::Invalid { file, .. }
            | ConfigFileError::Identity { file, .. } => *file = Some(path.to_owned()),
            ConfigFileError::Read { .. } => {}
        }
        self
    }
}

/// Parses TOML into `T`, reporting the field path and position of the first error.
fn parse_toml<T: DeserializeOwned>(text: &str) -> Result<T, ConfigFileError> {
    let de = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let (line, column) = inner
            .span()
            .map(|span| line_column(text, span.start))
            .unzip();
        ConfigFileError::Parse {
            file: None,
            field: if path == "." { String::new() } else { path },
            message: inner.message().trim_end().replace('\n', "; "),
            line,
            column,
        }
    })
}

/// 1-based line and column (in characters) of byte offset `at`.
fn line_column(text: &str, at: usize) -> (usize, usize) {
    let before = text.get(..at).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

fn read_config(path: &Path) -> Result<String, ConfigFileError> {
    let read_error = |source| ConfigFileError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut text = String::new();
    file.take(MAX_CONFIG_FILE_LEN + 1)
        .read_to_string(&mut text)
        .map_err(read_error)?;
    if text.len() as u64 > MAX_CONFIG_FILE_LEN {
        return Err(read_error(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {MAX_CONFIG_FILE_LEN} bytes"),
        )));
    }
    Ok(text)
}

fn base_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn set<T>(dst: &mut T, src: Option<T>) {
    if let Some(v) = src {
        *dst = v;
    }
}

/// `[identity]`: the endpoint's key and optional certificate.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct IdentitySection {
    /// The `identity.key` file (see [`identity_files`]).
    pub key_file: PathBuf,
    /// A certificate file for that key, sent instead of the bare key.
    pub certificate_file: Option<PathBuf>,
}

impl IdentitySection {
    /// Reads the key (and certificate) files, relative to `base_dir`.
    pub fn load(&self, base_dir: &Path) -> Result<CertifiedIdentity, ConfigFileError> {
        let identity_error = |field: &str, source| ConfigFileError::Identity {
            file: None,
            field: field.to_owned(),
            source,
        };
        let identity = identity_files::read_identity_key(&base_dir.join(&self.key_file))
            .map_err(|e| identity_error("identity.key_file", e))?;
        let certificate = match &self.certificate_file {
            None => None,
            Some(path) => {
                let cert = identity_files::read_certificate(&base_dir.join(path))
                    .map_err(|e| identity_error("identity.certificate_file", e))?;
                if cert.public_key() != &identity.public_key() {
                    let provider = jsp_proto::crypto::default_provider();
                    return Err(ConfigFileError::invalid(
                        "identity.certificate_file",
                        format!(
                            "the certificate is for key {}, not for the identity key {}",
                            cert.public_key().fingerprint(provider.as_ref()),
                            identity.fingerprint()
                        ),
                    ));
                }
                Some(cert)
            }
        };
        Ok(CertifiedIdentity {
            identity: Arc::new(identity),
            certificate,
        })
    }
}

/// Which keys are trusted: `[trust]` of a client, or part of `[client_auth]` of a server.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct TrustSection {
    /// Pinned key fingerprints, `"SHA256:<64 hex digits>"`.
    #[serde(deserialize_with = "values::fingerprints")]
    pub pinned: Vec<Fingerprint>,
    /// Trusted certificate authorities, `"jsp-ed25519 <64 hex digits>"`.
    #[serde(deserialize_with = "values::public_keys")]
    pub authorities: Vec<PublicKey>,
}

impl TrustSection {
    fn policy(&self) -> TrustPolicy {
        TrustPolicy {
            pinned: self.pinned.clone(),
            authorities: self.authorities.clone(),
        }
    }
}

/// `[transport]`: engine transport settings shared by clients and servers (defaults: the
/// engine's [`TransportConfig::default`]).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct TransportSection {
    /// `"bbr"` (default), `"cubic"` or `"newreno"`.
    pub congestion_control: Option<CongestionName>,
    /// Cipher suites in preference order: `"aes-256-gcm"`, `"chacha20-poly1305"`.
    pub cipher_suites: Option<Vec<SuiteName>>,
    /// RTT assumed before the first sample.
    #[serde(deserialize_with = "values::opt_duration")]
    pub initial_rtt: Option<Duration>,
    /// Largest UDP payload accepted.
    pub max_udp_payload_size: Option<u16>,
    /// Datagram size before path MTU discovery (at least 1200).
    pub initial_mtu: Option<u16>,
    /// Rotate keys after this many packets.
    pub key_update_packets: Option<u64>,
    /// Rotate keys after this long.
    #[serde(deserialize_with = "values::opt_duration")]
    pub key_update_interval: Option<Duration>,
    /// Longest delay of an acknowledgement.
    #[serde(deserialize_with = "values::opt_duration")]
    pub max_ack_delay: Option<Duration>,
    /// Acknowledge at least every this many ack-eliciting packets.
    pub ack_eliciting_threshold: Option<u32>,
    /// Largest DATAGRAM frame accepted (0 disables datagrams).
    pub max_datagram_frame_size: Option<u16>,
    /// Most datagrams queued for sending.
    pub datagram_send_queue: Option<usize>,
    /// Connection flow-control credit offered.
    pub initial_max_data: Option<u64>,
    /// Per-stream flow-control credit offered.
    pub initial_max_stream_data: Option<u64>,
    /// Largest per-stream window autotuning may reach.
    pub max_stream_window: Option<u64>,
    /// Largest connection window autotuning may reach.
    pub max_connection_window: Option<u64>,
    /// Most unacknowledged bytes buffered for sending per connection.
    pub send_buffer: Option<u64>,
    /// LZ4 compression of what we send: `"off"`, `"on"` or `"auto"` (default: only where it
    /// pays).
    pub compression: Option<CompressionName>,
    /// Data shorter than this many bytes is never compressed (default 64).
    pub compression_min_size: Option<usize>,
}

impl TransportSection {
    fn apply(&self, t: &mut TransportConfig) -> Result<(), ConfigFileError> {
        if let Some(cc) = self.congestion_control {
            t.congestion_control = cc.controller();
        }
        if let Some(names) = &self.cipher_suites {
            for (i, name) in names.iter().enumerate() {
                if names.get(..i).is_some_and(|before| before.contains(name)) {
                    return Err(ConfigFileError::invalid(
                        &format!("transport.cipher_suites[{i}]"),
                        format!("\"{}\" is listed twice", name.name()),
                    ));
                }
            }
            t.cipher_suites = names.iter().map(|n| n.suite()).collect();
        }
        set(&mut t.initial_rtt, self.initial_rtt);
        set(&mut t.max_udp_payload_size, self.max_udp_payload_size);
        set(&mut t.initial_mtu, self.initial_mtu);
        set(&mut t.key_update_packets, self.key_update_packets);
        set(&mut t.key_update_interval, self.key_update_interval);
        set(&mut t.max_ack_delay, self.max_ack_delay);
        set(&mut t.ack_eliciting_threshold, self.ack_eliciting_threshold);
        set(&mut t.max_datagram_frame_size, self.max_datagram_frame_size);
        set(&mut t.datagram_send_queue, self.datagram_send_queue);
        set(&mut t.initial_max_data, self.initial_max_data);
        set(&mut t.initial_max_stream_data, self.initial_max_stream_data);
        set(&mut t.max_stream_window, self.max_stream_window);
        set(&mut t.max_connection_window, self.max_connection_window);
        set(&mut t.send_buffer, self.send_buffer);
        if let Some(mode) = self.compression {
            t.compression.mode = mode.mode();
        }
        set(&mut t.compression.min_size, self.compression_min_size);
        Ok(())
    }
}

fn apply_timeouts(
    t: &mut TransportConfig,
    idle: Option<Duration>,
    handshake: Option<Duration>,
    heartbeat_interval: Option<Duration>,
    heartbeat_timeout_count: Option<u32>,
) {
    set(&mut t.idle_timeout, idle);
    set(&mut t.handshake_timeout, handshake);
    set(&mut t.heartbeat_interval, heartbeat_interval);
    set(&mut t.heartbeat_timeout_count, heartbeat_timeout_count);
}

/// Maps the engine's own validation errors to the file's field names.
fn engine_error(e: ConfigError) -> ConfigFileError {
    let file_field = |engine: &str| -> String {
        match engine {
            "heartbeat_timeout_count" => "timeouts.heartbeat_timeout_count".to_owned(),
            "max_handshakes" => "limits.max_handshakes".to_owned(),
            "ticket_lifetime" => "session_tickets.lifetime".to_owned(),
            "versions" => "versions".to_owned(),
            other => format!("transport.{other}"),
        }
    };
    match e {
        ConfigError::NoTrustAnchors => ConfigFileError::invalid(
            "trust",
            "the client trusts no server key: set trust.pinned or trust.authorities",
        ),
        ConfigError::Empty(field) => {
            ConfigFileError::invalid(&file_field(field), "must not be empty")
        }
        ConfigError::OutOfRange { field, detail } => {
            ConfigFileError::invalid(&file_field(field), format!("out of range: {detail}"))
        }
        other => ConfigFileError::invalid("", other.to_string()),
    }
}

#[cfg(test)]
mod tests;
