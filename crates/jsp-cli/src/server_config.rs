//! What `jsp serve` runs with: its command-line flags over an optional TOML config file
//! ([`jsp::config_file::ServerFile`]), turned into the library's [`ServerSettings`]. A flag,
//! when given, replaces the file's setting: `--listen` replaces `[listen] udp` and `tcp`, `--ws`
//! replaces `[listen] ws`, `--identity` replaces `[identity]`.
//!
//! Without a config file the server has no rate limits and no circuit breaker, and one worker
//! per core. With one, every setting of the file applies (rate limits, circuit breaker, limits,
//! Retry, ticket keys, `timeouts.cleanup_interval` ...), with the file's documented defaults for
//! what it leaves out (1 MiB/s and 100 messages/s per connection: set them to `"unlimited"` for
//! bulk transfers).

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use jsp::config_file::{ServerFile, MAX_CONFIG_FILE_LEN};
use jsp::{ConnectionConfig, ServerSettings, ServerSettingsBuilder};

use crate::error::CliError;
use crate::keyfile;

/// The flags of `jsp serve` that configure the server.
#[derive(Debug, Clone, Default)]
pub struct ServeFlags {
    /// `--listen`: UDP, and TCP on the same port.
    pub listen: Option<SocketAddr>,
    /// `--ws`: the WebSocket carriage.
    pub ws: Option<SocketAddr>,
    /// `--identity`: the key file.
    pub identity: Option<PathBuf>,
    /// `--config`: the config file.
    pub config: Option<PathBuf>,
}

const NEED_IDENTITY: &str =
    "create a key with `jsp keygen --out DIR` and pass --identity DIR/identity.key";

/// Combines the flags and the config file into the server's settings.
pub fn setup(flags: &ServeFlags) -> Result<ServerSettings, CliError> {
    let builder = match &flags.config {
        None => {
            let Some(key) = &flags.identity else {
                return Err(CliError::new("the server needs an identity key").hint(NEED_IDENTITY));
            };
            if flags.listen.is_none() {
                return Err(CliError::new("the server needs an address to listen on")
                    .hint("pass --listen ADDR, e.g. --listen 0.0.0.0:4433"));
            }
            let identity = keyfile::read_identity(key)?;
            let connection = ConnectionConfig::builder()
                .no_rate_limits()
                .build()
                .map_err(|e| CliError::new(format!("cannot configure the server: {e}")))?;
            let builder = ServerSettings::builder(identity)
                .connection(connection)
                .global_rate_limit_messages(None)
                .global_rate_limit_bytes(None)
                .circuit_breaker(None);
            let builder = match flags.listen {
                Some(addr) => builder.listen_udp(addr).tcp_on_udp_port(),
                None => builder,
            };
            flags
                .ws
                .into_iter()
                .fold(builder, |b, addr| b.listen_ws(addr))
        }
        Some(path) => from_file(path, flags)?,
    };
    builder
        .build()
        .map_err(|e| CliError::new(format!("cannot configure the server: {e}")))
}

fn from_file(path: &Path, flags: &ServeFlags) -> Result<ServerSettingsBuilder, CliError> {
    let text = read_config(path)?;
    let in_file = |e: &dyn std::fmt::Display| {
        CliError::new(format!("{}: {e}", path.display()))
            .hint("fix the config file (`jsp serve --example-config` prints one with every field)")
    };
    let mut file = ServerFile::parse(&text).map_err(|e| in_file(&e))?;
    if let Some(addr) = flags.listen {
        file.listen.udp = vec![addr];
        file.listen.tcp = Vec::new();
    }
    if let Some(addr) = flags.ws {
        file.listen.ws = vec![addr];
    }
    let loaded = match &flags.identity {
        Some(key) => {
            let identity = keyfile::read_identity(key)?;
            file.into_config_with_identity(identity.into())
        }
        None if file.identity.is_none() => {
            return Err(CliError::new(format!(
                "{} has no [identity] and no --identity was given",
                path.display()
            ))
            .hint(NEED_IDENTITY));
        }
        None => file.into_config(base_dir(path)),
    }
    .map_err(|e| in_file(&e))?;
    let builder = ServerSettingsBuilder::from_loaded(loaded);
    Ok(if flags.listen.is_some() {
        builder.tcp_on_udp_port()
    } else {
        builder
    })
}

fn read_config(path: &Path) -> Result<String, CliError> {
    let read_error = |e: &std::io::Error| CliError::io(format_args!("read {}", path.display()), e);
    let file = std::fs::File::open(path).map_err(|e| read_error(&e))?;
    let mut text = String::new();
    file.take(MAX_CONFIG_FILE_LEN + 1)
        .read_to_string(&mut text)
        .map_err(|e| read_error(&e))?;
    if text.len() as u64 > MAX_CONFIG_FILE_LEN {
        return Err(CliError::new(format!(
            "{} is larger than {MAX_CONFIG_FILE_LEN} bytes, not a config file",
            path.display()
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
