//! What `jsp serve` runs with: its command-line flags over an optional TOML config file
//! ([`jsp::config_file::ServerFile`]). A flag, when given, replaces the file's setting: `--listen`
//! replaces `[listen] udp` and `tcp`, `--ws` replaces `[listen] ws`, `--identity` replaces
//! `[identity]`.
//!
//! Without a config file the server has the library's defaults: no rate limits, no circuit
//! breaker. With one, the file's `[limits]` rate limits and `[circuit_breaker]` apply, with the
//! file's documented defaults for what it leaves out (1 MiB/s and 100 messages/s per connection:
//! set them to `"unlimited"` for bulk transfers).

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use jsp::config_file::{ServerFile, MAX_CONFIG_FILE_LEN};
use jsp::ServerConfig;

use crate::error::CliError;
use crate::keyfile;
use crate::listen::{EndpointSettings, ListenPlan};

/// The flags of `jsp serve` that configure the endpoint.
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

/// The server's engine configuration and where it listens.
#[derive(Debug)]
pub struct ServeSetup {
    /// The engine's configuration.
    pub config: ServerConfig,
    /// Where to listen.
    pub plan: ListenPlan,
    /// Rate limits and circuit breaker of each endpoint.
    pub endpoint: EndpointSettings,
    /// Settings of the config file that this version does not apply, to warn about.
    pub ignored: Vec<&'static str>,
}

const NEED_IDENTITY: &str =
    "create a key with `jsp keygen --out DIR` and pass --identity DIR/identity.key";

/// Combines the flags and the config file.
pub fn setup(flags: &ServeFlags) -> Result<ServeSetup, CliError> {
    match &flags.config {
        None => {
            let Some(key) = &flags.identity else {
                return Err(CliError::new("the server needs an identity key").hint(NEED_IDENTITY));
            };
            let Some(listen) = flags.listen else {
                return Err(CliError::new("the server needs an address to listen on")
                    .hint("pass --listen ADDR, e.g. --listen 0.0.0.0:4433"));
            };
            let identity = keyfile::read_identity(key)?;
            Ok(ServeSetup {
                config: ServerConfig::new(identity),
                plan: ListenPlan {
                    udp: vec![listen],
                    tcp: Vec::new(),
                    ws: flags.ws.into_iter().collect(),
                    tcp_on_udp_port: true,
                },
                endpoint: EndpointSettings::default(),
                ignored: Vec::new(),
            })
        }
        Some(path) => from_file(path, flags),
    }
}

fn from_file(path: &Path, flags: &ServeFlags) -> Result<ServeSetup, CliError> {
    let text = read_config(path)?;
    let in_file = |e: &dyn std::fmt::Display| {
        CliError::new(format!("{}: {e}", path.display()))
            .hint("fix the config file (`jsp serve --example-config` prints one with every field)")
    };
    let mut file = ServerFile::parse(&text).map_err(|e| in_file(&e))?;
    let mut tcp_on_udp_port = false;
    if let Some(addr) = flags.listen {
        file.listen.udp = vec![addr];
        file.listen.tcp = Vec::new();
        tcp_on_udp_port = true;
    }
    if let Some(addr) = flags.ws {
        file.listen.ws = vec![addr];
    }
    // The library has no setting for the sweep interval: it sweeps as connections end.
    let ignored = if file.timeouts.cleanup_interval.is_some() {
        vec!["timeouts.cleanup_interval"]
    } else {
        Vec::new()
    };
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
    let listen = loaded.driver.listen;
    let mut udp = listen.udp;
    if udp.is_empty() {
        // The library needs a UDP socket even for TCP- or WebSocket-only servers: take a free
        // port next to the first stream listener.
        let ip = listen
            .tcp
            .first()
            .or(listen.ws.first())
            .map_or(std::net::Ipv4Addr::LOCALHOST.into(), SocketAddr::ip);
        udp.push(SocketAddr::new(ip, 0));
    }
    Ok(ServeSetup {
        config: loaded.config,
        plan: ListenPlan {
            udp,
            tcp: listen.tcp,
            ws: listen.ws,
            tcp_on_udp_port,
        },
        endpoint: EndpointSettings {
            rate_limits: Some(loaded.driver.rate_limits),
            circuit_breaker: loaded.driver.circuit_breaker,
        },
        ignored,
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
