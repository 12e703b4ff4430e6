//! `jsp demo`: a server and a client in one process on loopback, showing in a few lines the
//! post-quantum handshake, an echo round trip, a bulk transfer and the connection's statistics,
//! then forward error correction rebuilding lost packets on a lossy link ([`fec`], also run
//! alone with `jsp demo --only fec`).

pub mod fec;
pub mod relay;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use jsp::{ConnectionConfig, ServerSettings};
use jsp_proto::crypto::default_provider;
use jsp_proto::identity::Identity;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::bench::{self, UploadLimit};
use crate::client::{self, describe_stats, suite_name, ClientOptions, Transport};
use crate::clock::Stopwatch;
use crate::error::CliError;
use crate::listen;
use crate::progress::ProgressMode;
use crate::serve::{accept_loop, Behaviour};
use crate::units::fmt_duration;

/// Bytes moved by the demo's transfer.
pub const DEFAULT_DEMO_BYTES: u64 = 100_000_000;
/// The message echoed.
const ECHO_MESSAGE: &str = "hello, post-quantum world";

/// A part of the demo that runs alone (`jsp demo --only STEP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoStep {
    /// Forward error correction on a lossy link, with and without FEC.
    Fec,
}

/// The first line of every demo.
const TITLE: &str =
    "JetStreamProto demo: a server and a client in this process, over UDP on 127.0.0.1";

/// Runs the demo (or only the step `only`), writing its lines to `out`.
pub async fn run(bytes: u64, only: Option<DemoStep>, out: &mut impl Write) -> Result<(), CliError> {
    let mut say = |line: &str| -> Result<(), CliError> {
        writeln!(out, "{line}")
            .and_then(|()| out.flush())
            .map_err(CliError::Stdout)
    };
    match only {
        Some(DemoStep::Fec) => {
            say(TITLE)?;
            fec::run(&mut say).await
        }
        None => run_all(bytes, &mut say).await,
    }
}

/// A fresh server identity.
fn generate_identity() -> Result<Identity, CliError> {
    Identity::generate(default_provider().as_ref())
        .map_err(|e| CliError::new(format!("cannot generate a key: {e}")))
}

/// A server on any free UDP port of 127.0.0.1, without rate limits.
fn server_settings(identity: Identity) -> Result<ServerSettings, CliError> {
    let loopback: SocketAddr = (std::net::Ipv4Addr::LOCALHOST, 0).into();
    let unconfigurable = |e: &dyn std::fmt::Display| CliError::new(format!("demo settings: {e}"));
    let connection = ConnectionConfig::builder()
        .no_rate_limits()
        .build()
        .map_err(|e| unconfigurable(&e))?;
    // One worker: the client shares this process and its cores.
    ServerSettings::builder(identity)
        .listen_udp(loopback)
        .workers(1)
        .connection(connection)
        .global_rate_limit_messages(None)
        .global_rate_limit_bytes(None)
        .build()
        .map_err(|e| unconfigurable(&e))
}

/// Every step in turn.
async fn run_all(
    bytes: u64,
    say: &mut impl FnMut(&str) -> Result<(), CliError>,
) -> Result<(), CliError> {
    let identity = generate_identity()?;
    let fingerprint = identity.fingerprint();
    let loopback: SocketAddr = (std::net::Ipv4Addr::LOCALHOST, 0).into();
    let server = Arc::new(listen::start(server_settings(identity)?).await?);
    let server_addr = server.local_addr().unwrap_or(loopback);
    let behaviour = Arc::new(Behaviour {
        echo: true,
        files: None,
    });
    tokio::spawn(accept_loop(server.clone(), behaviour));
    say(TITLE)?;
    say(&format!("server     {server_addr}, key {fingerprint}"))?;

    let opts = ClientOptions {
        server: server_addr.to_string(),
        pin: fingerprint,
        transport: Transport::Udp,
        ws: None,
        timeout: client::DEFAULT_CONNECT_TIMEOUT,
    };
    let connected = client::connect(&opts).await?;
    say(&format!(
        "handshake  {}, 1 round trip: {}, {} key exchange (post-quantum hybrid), \
         server key pinned",
        fmt_duration(connected.handshake),
        suite_name(connected.summary.suite),
        connected.summary.group,
    ))?;

    let conn = &connected.conn;
    let broke = |e: &dyn std::fmt::Display| CliError::new(format!("the echo stream broke: {e}"));
    let clock = Stopwatch::start();
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| broke(&e))?;
    send.write_all(ECHO_MESSAGE.as_bytes())
        .await
        .map_err(|e| broke(&e))?;
    send.finish().map_err(|e| broke(&e))?;
    let mut back = Vec::new();
    recv.read_to_end(&mut back).await.map_err(|e| broke(&e))?;
    let round_trip = clock.elapsed();
    if back != ECHO_MESSAGE.as_bytes() {
        return Err(CliError::new("the server echoed different bytes"));
    }
    say(&format!(
        "echo       {ECHO_MESSAGE:?} came back in {}",
        fmt_duration(round_trip)
    ))?;

    let limit = UploadLimit {
        bytes: Some(bytes),
        time: None,
    };
    let upload = bench::upload(conn, limit, ProgressMode::TerminalOnly).await?;
    say(&format!(
        "transfer   {}, counted by the server",
        upload.describe()
    ))?;
    say(&format!(
        "stats      {}",
        describe_stats(&conn.stats(), connected.carriage)
    ))?;
    client::close(connected).await;
    server.shutdown().await;
    fec::run(say).await?;
    say("next       jsp keygen --out keys && \
         jsp serve --listen 0.0.0.0:4433 --identity keys/identity.key --echo")?;
    say("           then elsewhere: jsp connect SERVER:4433 --pin <the fingerprint it prints>")?;
    Ok(())
}
