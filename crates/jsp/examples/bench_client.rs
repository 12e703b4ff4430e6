//! Measures bulk throughput and round-trip latency over JetStreamProto.
//!
//! Shows how fast one stream moves data and how quickly small messages make a round trip. Two
//! measurements run on one connection:
//!
//! - throughput: a stream that opens with `S` is a sink: the client writes `--bytes` bytes and
//!   ends the stream, the server counts them and answers the count (8 bytes, big-endian). The
//!   time is from the first byte written to the answer.
//! - latency: a stream that opens with `E` is echoed: the client sends `--pings` messages of
//!   `--ping-size` bytes one at a time and times each until its echo is back; p50, p99 and the
//!   maximum are reported.
//!
//! Without an address the client starts its own echo server in the same process, on loopback:
//!
//! ```text
//! cargo run --release -p jsp --example bench_client
//! cargo run --release -p jsp --example bench_client -- --bytes 256M --pings 10000
//! ```
//!
//! To measure across machines, run the server part on one (`--serve` prints
//! `listening ADDR tcp ADDR fingerprint FINGERPRINT`) and point the client at it:
//!
//! ```text
//! cargo run --release -p jsp --example bench_client -- --serve --listen 0.0.0.0:4433
//! cargo run --release -p jsp --example bench_client -- 192.0.2.7:4433 --pin SHA256:3f1c...
//! ```
//!
//! Options: `--bytes N` (default 64M; suffixes K, M, G are powers of 1024), `--pings N` (default
//! 1000), `--ping-size N` (default 32), `--tcp` (use the TCP carriage: give the TCP address).
//! Debug builds are much slower than release builds: measure with `--release`.

use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use jsp::{ClientConfig, Connection, Endpoint, ServerConfig, TrustPolicy};
use jsp_proto::crypto::default_provider;
use jsp_proto::identity::{Fingerprint, Identity};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// How long the connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one measurement may take at most.
const RUN_TIMEOUT: Duration = Duration::from_secs(600);
/// Bytes per write in the throughput run.
const CHUNK: usize = 64 * 1024;
/// The largest ping message.
const MAX_PING: usize = 1 << 20;

/// The error type of this example.
type BoxError = Box<dyn Error + Send + Sync>;

/// The usage text.
const USAGE: &str = "usage:
  bench_client [ADDR --pin FINGERPRINT] [--bytes N] [--pings N] [--ping-size N] [--tcp]
  bench_client --serve [--listen ADDR]";

/// Command-line options.
struct Options {
    /// Run as a server.
    serve: bool,
    /// Server mode: the UDP listening address.
    listen: SocketAddr,
    /// Client mode: the server to measure (`None`: start one in this process).
    server: Option<SocketAddr>,
    /// The server's fingerprint.
    pin: Option<Fingerprint>,
    /// Bytes to send in the throughput run.
    bytes: u64,
    /// Round trips in the latency run.
    pings: usize,
    /// Size of each ping.
    ping_size: usize,
    /// Use the TCP carriage.
    tcp: bool,
}

impl Options {
    /// Parses `std::env::args`.
    fn parse() -> Result<Self, BoxError> {
        let mut opts = Options {
            serve: false,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            server: None,
            pin: None,
            bytes: 64 << 20,
            pings: 1000,
            ping_size: 32,
            tcp: false,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = |name: &str| {
                args.next()
                    .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
            };
            match arg.as_str() {
                "--serve" => opts.serve = true,
                "--listen" => opts.listen = parse_addr(&value("--listen")?)?,
                "--pin" => opts.pin = Some(parse_pin(&value("--pin")?)?),
                "--bytes" => opts.bytes = parse_size(&value("--bytes")?)?,
                "--pings" => opts.pings = usize::try_from(parse_size(&value("--pings")?)?)?,
                "--ping-size" => {
                    opts.ping_size = usize::try_from(parse_size(&value("--ping-size")?)?)?;
                    if opts.ping_size > MAX_PING {
                        return Err(format!("--ping-size is at most {MAX_PING}").into());
                    }
                }
                "--tcp" => opts.tcp = true,
                "-h" | "--help" => return Err(USAGE.into()),
                a if !a.starts_with('-') && opts.server.is_none() => {
                    opts.server = Some(parse_addr(a)?);
                }
                other => return Err(format!("unexpected argument {other:?}\n{USAGE}").into()),
            }
        }
        if opts.server.is_some() != opts.pin.is_some() {
            return Err(
                format!("give both a server address and --pin, or neither\n{USAGE}").into(),
            );
        }
        Ok(opts)
    }
}

/// Parses a socket address with a readable error.
fn parse_addr(s: &str) -> Result<SocketAddr, BoxError> {
    s.parse()
        .map_err(|e| format!("invalid address {s:?}: {e}").into())
}

/// Parses a fingerprint, with or without its `SHA256:` prefix.
fn parse_pin(s: &str) -> Result<Fingerprint, BoxError> {
    let full = if s.starts_with(Fingerprint::PREFIX) {
        s.to_string()
    } else {
        format!("{}{s}", Fingerprint::PREFIX)
    };
    full.parse()
        .map_err(|e| format!("invalid --pin {s:?}: {e}").into())
}

/// Parses a positive count with an optional K, M or G (powers of 1024) suffix.
fn parse_size(s: &str) -> Result<u64, BoxError> {
    let (digits, unit) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 1 << 10),
        Some((i, 'm' | 'M')) => (&s[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&s[..i], 1 << 30),
        _ => (s, 1u64),
    };
    match digits.parse::<u64>().ok().and_then(|n| n.checked_mul(unit)) {
        Some(n) if n > 0 => Ok(n),
        _ => Err(format!("expected a positive number like 1000 or 64M, got {s:?}").into()),
    }
}

// ---------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------

/// Serves one stream: `S` counts and answers the count, `E` echoes.
async fn serve_stream(
    mut send: jsp::SendStream,
    mut recv: jsp::RecvStream,
) -> Result<(), BoxError> {
    match recv.read_u8().await? {
        b'S' => {
            let mut buf = vec![0u8; CHUNK];
            let mut total = 0u64;
            loop {
                let n = recv.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
            send.write_all(&total.to_be_bytes()).await?;
        }
        b'E' => {
            tokio::io::copy(&mut recv, &mut send).await?;
        }
        other => return Err(format!("unknown stream kind {other:#04x}").into()),
    }
    send.finish()?;
    Ok(())
}

/// Starts a benchmark server on `listen` (and a TCP carriage on the same port when free).
/// Returns the endpoint, its TCP address and its fingerprint.
async fn start_server(
    listen: SocketAddr,
) -> Result<(Endpoint, Option<SocketAddr>, Fingerprint), BoxError> {
    let identity = Identity::generate(default_provider().as_ref())?;
    let fingerprint = identity.fingerprint();
    let config = ServerConfig::new(identity);
    let (endpoint, tcp) = match Endpoint::server_with_tcp(listen, config.clone()).await {
        Ok((endpoint, tcp)) => (endpoint, Some(tcp)),
        // The TCP twin of a fixed port is taken: serve UDP alone.
        Err(_) => (Endpoint::server(listen, config)?, None),
    };
    let ep = endpoint.clone();
    tokio::spawn(async move {
        while let Some(conn) = ep.accept().await {
            tokio::spawn(async move {
                while let Ok((send, recv)) = conn.accept_bi().await {
                    tokio::spawn(async move {
                        if let Err(e) = serve_stream(send, recv).await {
                            eprintln!("stream failed: {e}");
                        }
                    });
                }
            });
        }
    });
    Ok((endpoint, tcp, fingerprint))
}

/// The `--serve` mode: serves until Ctrl-C.
async fn run_server(listen: SocketAddr) -> Result<(), BoxError> {
    let (endpoint, tcp, fingerprint) = start_server(listen).await?;
    let tcp = tcp.map_or_else(|| "off".to_string(), |a| a.to_string());
    println!(
        "listening {} tcp {tcp} fingerprint {fingerprint}",
        endpoint.local_addr()
    );
    tokio::signal::ctrl_c().await?;
    let _ = tokio::time::timeout(Duration::from_secs(5), endpoint.shutdown()).await;
    drain(&endpoint).await;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------------

/// How long to wait, before exiting, for the endpoint to let go of its connections.
const LINGER: Duration = Duration::from_secs(2);

/// Waits (at most [`LINGER`]) until `endpoint` has forgotten all its connections.
///
/// [`jsp::Connection::closed`] resolves as soon as a close is decided, possibly before the
/// CONNECTION_CLOSE packet has left (over TCP a separate task writes it), and a process that
/// exits right then can leave its peer waiting for a timeout. The engine forgets a closed
/// connection only at the end of its closing period (three probe timeouts, about 0.1 s on a
/// LAN), well after that packet went out: once none is left, exiting is safe.
async fn drain(endpoint: &Endpoint) {
    let deadline = tokio::time::Instant::now() + LINGER;
    while endpoint.connection_count() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Sends `bytes` bytes into a sink stream; returns the seconds until the server confirmed them.
async fn throughput(conn: &Connection, bytes: u64) -> Result<f64, BoxError> {
    let (mut send, mut recv) = conn.open_bi().await?;
    let chunk: Vec<u8> = (0..CHUNK).map(|i| (i % 251) as u8).collect();
    let start = Instant::now();
    send.write_all(b"S").await?;
    let mut left = bytes;
    while left > 0 {
        let n = usize::try_from(left.min(CHUNK as u64))?;
        send.write_all(&chunk[..n]).await?;
        left -= n as u64;
    }
    send.finish()?;
    let counted = recv.read_u64().await?;
    let seconds = start.elapsed().as_secs_f64();
    if counted != bytes {
        return Err(format!("the server counted {counted} bytes, we sent {bytes}").into());
    }
    Ok(seconds)
}

/// Sends `pings` messages of `size` bytes one at a time over an echo stream; returns each round
/// trip time, sorted.
async fn latency(conn: &Connection, pings: usize, size: usize) -> Result<Vec<Duration>, BoxError> {
    let (mut send, mut recv) = conn.open_bi().await?;
    send.write_all(b"E").await?;
    let mut msg = vec![0u8; size];
    let mut back = vec![0u8; size];
    let mut rtts = Vec::with_capacity(pings);
    for i in 0..pings {
        for (j, b) in msg.iter_mut().enumerate() {
            *b = (i + j) as u8;
        }
        let start = Instant::now();
        send.write_all(&msg).await?;
        recv.read_exact(&mut back).await?;
        rtts.push(start.elapsed());
        if back != msg {
            return Err(format!("ping {i} came back altered").into());
        }
    }
    // The server ends its side once it has echoed everything: wait for that so closing the
    // connection does not cut its stream short.
    send.finish()?;
    if recv.read(&mut back).await? != 0 {
        return Err("the echo stream carried more than was sent".into());
    }
    rtts.sort();
    Ok(rtts)
}

/// The value below which `pct` percent of the sorted `values` lie (nearest rank).
fn percentile(sorted: &[Duration], pct: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (sorted.len() * pct).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

/// Milliseconds with three decimals.
fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// The client mode: connects (to `server`, or to a server started here) and measures.
async fn run_client(opts: Options) -> Result<(), BoxError> {
    let (target, pin, _local_server) = match (opts.server, opts.pin) {
        (Some(addr), Some(pin)) => (addr, pin, None),
        _ => {
            let (endpoint, tcp, fingerprint) = start_server(opts.listen).await?;
            let addr = if opts.tcp {
                tcp.ok_or("could not start the in-process TCP carriage")?
            } else {
                endpoint.local_addr()
            };
            println!("started an in-process echo server at {addr}");
            (addr, fingerprint, Some(endpoint))
        }
    };
    let bind = match target {
        SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
    };
    let endpoint = Endpoint::client(bind)?;
    let config = Arc::new(ClientConfig::new(TrustPolicy::pinned(pin)));
    let start = Instant::now();
    let connecting = async {
        if opts.tcp {
            endpoint.connect_tcp(target, config).await
        } else {
            endpoint.connect(target, config).await
        }
    };
    let conn = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .map_err(|_| format!("no answer from {target} in time"))?
        .map_err(|e| format!("cannot connect to {target}: {e}"))?;
    let handshake = start.elapsed();
    let negotiated = conn.handshake_summary().map_or_else(
        || "?".to_string(),
        |s| format!("{}, {:?}", s.group, s.suite),
    );
    println!(
        "connected to {target} over {:?} in {} ({negotiated})",
        conn.carriage(),
        ms(handshake),
    );

    let seconds = tokio::time::timeout(RUN_TIMEOUT, throughput(&conn, opts.bytes))
        .await
        .map_err(|_| "the throughput run took too long")??;
    let mib = opts.bytes as f64 / f64::from(1u32 << 20);
    let rate = if seconds > 0.0 { mib / seconds } else { 0.0 };
    println!(
        "throughput {rate:.2} MiB/s ({:.1} Mbit/s): {mib:.2} MiB in {seconds:.3} s",
        rate * 8.0 * 1.048_576
    );

    if opts.pings > 0 {
        let rtts = tokio::time::timeout(RUN_TIMEOUT, latency(&conn, opts.pings, opts.ping_size))
            .await
            .map_err(|_| "the latency run took too long")??;
        println!(
            "latency p50 {} p99 {} max {} over {} round trips of {} bytes",
            ms(percentile(&rtts, 50)),
            ms(percentile(&rtts, 99)),
            ms(percentile(&rtts, 100)),
            rtts.len(),
            opts.ping_size
        );
    }
    let stats = conn.stats();
    println!(
        "packets sent {} lost {}, smoothed rtt {}, {} congestion window {} bytes, mtu {}",
        stats.packets_sent,
        stats.packets_lost,
        ms(stats.rtt),
        stats.congestion,
        stats.cwnd,
        stats.mtu
    );
    conn.close(jsp::CloseReason::Normal, Some("done"));
    let _ = tokio::time::timeout(Duration::from_secs(5), conn.closed()).await;
    drain(&endpoint).await;
    Ok(())
}

/// Parses the arguments, runs, and turns an error into a message and exit status 1.
#[tokio::main]
async fn main() -> ExitCode {
    let result = match Options::parse() {
        Ok(opts) if opts.serve => run_server(opts.listen).await,
        Ok(opts) => run_client(opts).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
