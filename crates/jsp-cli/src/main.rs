//! `jsp`: the JetStreamProto command-line tool.
//!
//! Every failure is one line on standard error, `error: ` followed by what went wrong and what to
//! do, and exit code 1. Command-line usage errors are clap's (exit code 2); `--help` and
//! `--version` exit 0. Results go to standard output; progress, connection details and logs
//! (`--log-format`, `RUST_LOG`) to standard error.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use jsp_cli::bench::{self, UploadLimit};
use jsp_cli::client::{self, describe_stats, ClientOptions, Connected, Transport};
use jsp_cli::error::CliError;
use jsp_cli::interactive;
use jsp_cli::keyfile::{self, KeyFileError};
use jsp_cli::listen;
use jsp_cli::logging::{self, LogFormat};
use jsp_cli::progress::ProgressMode;
use jsp_cli::serve::{accept_loop, Behaviour};
use jsp_cli::server_config::{self, ServeFlags};
use jsp_cli::transfer::{self, Receiver, SendOptions};
use jsp_cli::units::{fmt_duration, fmt_rate, parse_size};
use jsp_proto::crypto::{default_provider, CryptoError};
use jsp_proto::identity::{Fingerprint, Identity};

/// How long a server's graceful shutdown may take before it exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long the runtime waits for leftover blocking work at exit.
const RUNTIME_EXIT_WAIT: Duration = Duration::from_secs(1);

/// JetStreamProto command-line tool: keys, a server, an interactive client, file transfer,
/// benchmarks and a demo.
///
/// Start with `jsp demo`. Then, across two machines:
///
///     jsp keygen --out keys
///     jsp serve --listen 0.0.0.0:4433 --identity keys/identity.key --echo
///     jsp connect SERVER:4433 --pin SHA256:...
#[derive(Debug, Parser)]
#[command(name = "jsp", version, verbatim_doc_comment)]
struct Cli {
    /// Format of log lines on standard error (filter them with RUST_LOG, e.g. RUST_LOG=debug)
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Keygen(KeygenArgs),
    Fingerprint(FingerprintArgs),
    Serve(ServeArgs),
    Connect(ConnectArgs),
    Send(SendArgs),
    Bench(BenchArgs),
    Demo(DemoArgs),
}

/// Generate a server identity (an Ed25519 key pair).
///
/// Writes DIR/identity.key (the secret key, mode 0600: the server loads it) and DIR/identity.pub
/// (the public key, mode 0644: safe to share), creating DIR if it is missing. The last line of
/// the output is the fingerprint alone, which clients pin the server with:
///
///     FP=$(jsp keygen --out DIR | tail -n1)
#[derive(Debug, Args)]
struct KeygenArgs {
    /// Directory to write identity.key and identity.pub into
    #[arg(short, long, value_name = "DIR")]
    out: PathBuf,
    /// Replace an existing DIR/identity.key (the old identity is lost)
    #[arg(short, long)]
    force: bool,
}

/// Print the fingerprint (SHA256:...) of an identity.key or identity.pub.
///
/// The kind of file is recognised by its content. The fingerprint is printed alone on one line.
#[derive(Debug, Args)]
struct FingerprintArgs {
    /// An identity.key or identity.pub written by `jsp keygen`
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

/// Run a server until interrupted (Ctrl-C or SIGTERM), then shut down gracefully.
///
/// Listens on UDP at --listen and on TCP at the same address and port (for networks that block
/// UDP), and on WebSocket at --ws. Prints its fingerprint and bound addresses, then logs to
/// standard error. Every server answers `jsp bench`; --echo echoes every stream and datagram;
/// --files DIR receives `jsp send` files into DIR.
///
/// With --config FILE the TOML file configures everything (see --example-config); --listen,
/// --ws and --identity override it.
#[derive(Debug, Args)]
struct ServeArgs {
    /// UDP (and TCP) address to listen on, e.g. 0.0.0.0:4433 (port 0: any free port)
    #[arg(short, long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// The server's identity.key, written by `jsp keygen`
    #[arg(short, long, value_name = "FILE")]
    identity: Option<PathBuf>,
    /// Also accept WebSocket carriages at ADDR
    #[arg(long, value_name = "ADDR")]
    ws: Option<SocketAddr>,
    /// Echo every stream and datagram back to its sender
    #[arg(long)]
    echo: bool,
    /// Receive files sent with `jsp send` into DIR (created if missing)
    #[arg(long, value_name = "DIR")]
    files: Option<PathBuf>,
    /// A TOML server config file
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print an example config file with every field, and exit
    #[arg(long, exclusive = true)]
    example_config: bool,
}

/// Where a client connects and how it checks the server.
#[derive(Debug, Args)]
struct ClientArgs {
    /// The server's key fingerprint (SHA256:..., printed by `jsp serve` and `jsp keygen`), or
    /// its identity.pub file
    #[arg(short, long, value_name = "FINGERPRINT", value_parser = parse_pin)]
    pin: Fingerprint,
    /// Carriage: auto tries UDP, then TCP on the same port, then WebSocket at --ws
    #[arg(short, long, value_enum, default_value_t = Transport::Auto)]
    transport: Transport,
    /// The server's WebSocket address (for --transport ws or auto)
    #[arg(long, value_name = "ADDR")]
    ws: Option<String>,
    /// Seconds allowed for the handshake
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = parse_seconds)]
    timeout: Duration,
}

impl ClientArgs {
    fn options(&self, server: &str) -> ClientOptions {
        ClientOptions {
            server: server.to_owned(),
            pin: self.pin,
            transport: self.transport,
            ws: self.ws.clone(),
            timeout: self.timeout,
        }
    }
}

/// Connect to a server and exchange lines: each line typed is sent, and what the server sends
/// back (the same line, from an --echo server) is printed.
///
/// The lines go on one bidirectional stream; end of input (Ctrl-D) finishes it, and the
/// connection closes gracefully once the server has finished its side. The negotiated cipher
/// suite, key exchange and carriage are printed to standard error at connect.
#[derive(Debug, Args)]
struct ConnectArgs {
    /// The server, HOST:PORT
    #[arg(value_name = "ADDR")]
    server: String,
    #[command(flatten)]
    client: ClientArgs,
}

/// Send a file to a `jsp serve --files DIR` server; exits 0 only when the server confirmed it
/// stored the whole file with the right SHA-256.
///
/// An interrupted transfer resumes where it stopped when the same command runs again. Progress
/// shows as a bar on a terminal and as plain lines otherwise.
#[derive(Debug, Args)]
struct SendArgs {
    /// The file to send
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// The server, HOST:PORT
    #[arg(long, value_name = "ADDR")]
    to: String,
    /// Store the file under this name (default: FILE's name)
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    #[command(flatten)]
    client: ClientArgs,
    /// For tests of resumption: send BYTES, wait until the server has written them, then hang
    #[arg(long, hide = true, value_name = "BYTES", value_parser = parse_size)]
    stall_after: Option<u64>,
}

/// Measure latency (round trips of a small message) and upload throughput to any `jsp serve`.
#[derive(Debug, Args)]
struct BenchArgs {
    /// The server, HOST:PORT
    #[arg(value_name = "ADDR")]
    server: String,
    #[command(flatten)]
    client: ClientArgs,
    /// Upload this much (e.g. 500M, 1GiB); with --seconds, whichever comes first
    #[arg(long, value_name = "N", value_parser = parse_size)]
    bytes: Option<u64>,
    /// Upload for this long (default 5 s unless --bytes is given)
    #[arg(long, value_name = "S", value_parser = parse_seconds)]
    seconds: Option<Duration>,
    /// Round trips for the latency measurement
    #[arg(long, value_name = "N", default_value_t = 100)]
    pings: u32,
}

/// See the protocol work, with no setup: a server and a client in this process, over loopback.
///
/// Shows the post-quantum handshake (suite, key exchange, time), an echo round trip, a 100 MB
/// transfer with its rate, the connection's statistics, and forward error correction rebuilding
/// lost packets on a lossy link (with and without FEC, side by side).
#[derive(Debug, Args)]
struct DemoArgs {
    /// Bytes to transfer (tests use less)
    #[arg(long, hide = true, default_value = "100M", value_parser = parse_size)]
    bytes: u64,
    /// Run only this part of the demo
    #[arg(long, value_enum, value_name = "STEP")]
    only: Option<jsp_cli::demo::DemoStep>,
}

fn parse_pin(text: &str) -> Result<Fingerprint, String> {
    if text.starts_with("SHA256:") {
        return text.parse().map_err(|e| format!("{e}"));
    }
    let path = std::path::Path::new(text);
    if path.is_file() {
        let provider = default_provider();
        return keyfile::read_key_file(path, &*provider)
            .map(|k| k.fingerprint(&*provider))
            .map_err(|e| e.to_string());
    }
    Err(
        "expected a fingerprint SHA256:<64 hex digits> (printed by `jsp serve`) \
         or the server's identity.pub"
            .to_owned(),
    )
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .trim_end_matches('s')
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    match Duration::try_from_secs_f64(secs) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(format!("{text:?} is not a positive number of seconds")),
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // --help and --version arrive here too, with exit code 0.
            let _ = err.print();
            return ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(2));
        }
    };
    let result = run(cli);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`jsp ... | head -n1`): nothing useful to say, like SIGPIPE.
        Err(CliError::Stdout(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::FAILURE,
        Err(err) => {
            let _ = writeln!(io::stderr(), "error: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    let mut stdout = io::stdout().lock();
    match cli.command {
        Command::Keygen(args) => keygen(&args, &mut stdout),
        Command::Fingerprint(args) => fingerprint(&args, &mut stdout),
        Command::Serve(args) if args.example_config => {
            write!(stdout, "{}", jsp::config_file::EXAMPLE_SERVER_TOML).map_err(CliError::Stdout)
        }
        Command::Serve(args) => {
            logging::init(cli.log_format, "info")?;
            drop(stdout);
            block_on(serve(args))
        }
        Command::Connect(args) => {
            logging::init(cli.log_format, "warn")?;
            drop(stdout);
            block_on(connect(args))
        }
        Command::Send(args) => {
            logging::init(cli.log_format, "warn")?;
            drop(stdout);
            block_on(send(args))
        }
        Command::Bench(args) => {
            logging::init(cli.log_format, "warn")?;
            drop(stdout);
            block_on(bench_cmd(args))
        }
        Command::Demo(args) => {
            logging::init(cli.log_format, "warn")?;
            drop(stdout);
            block_on(async move {
                let mut out = io::stdout();
                jsp_cli::demo::run(args.bytes, args.only, &mut out).await
            })
        }
    }
    .and_then(|()| io::stdout().flush().map_err(CliError::Stdout))
}

/// Runs `fut` on a multi-threaded runtime.
fn block_on<F: std::future::Future<Output = Result<(), CliError>>>(fut: F) -> Result<(), CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::new(format!("cannot start the async runtime: {e}")))?;
    let result = runtime.block_on(fut);
    runtime.shutdown_timeout(RUNTIME_EXIT_WAIT);
    result
}

fn print(line: impl std::fmt::Display) -> Result<(), CliError> {
    let mut out = io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(CliError::Stdout)
}

async fn serve(args: ServeArgs) -> Result<(), CliError> {
    let flags = ServeFlags {
        listen: args.listen,
        ws: args.ws,
        identity: args.identity.clone(),
        config: args.config.clone(),
    };
    let settings = server_config::setup(&flags)?;
    let files = match &args.files {
        Some(dir) => Some(Receiver::new(dir).map_err(|e| {
            CliError::io(format_args!("use {} for received files", dir.display()), &e)
                .hint("pass a directory you can write to with --files")
        })?),
        None => None,
    };
    let fingerprint = settings.server_config().identity.identity.fingerprint();
    let limits = settings.rate_limits().clone();
    let breaker = settings.circuit_breaker().is_some();
    let cleanup_interval = settings.cleanup_interval();
    let server = Arc::new(listen::start(settings).await?);
    tracing::info!(
        policy = ?limits.policy,
        messages_per_sec = ?limits.messages_per_sec,
        bytes_per_sec = ?limits.bytes_per_sec,
        global_messages_per_sec = ?limits.global_messages_per_sec,
        global_bytes_per_sec = ?limits.global_bytes_per_sec,
        circuit_breaker = breaker,
        ?cleanup_interval,
        "rate limits per connection and per server (None: unlimited)"
    );
    let mut signals = Signals::install()?;
    let behaviour = Arc::new(Behaviour {
        echo: args.echo,
        files,
    });

    print(format_args!("fingerprint: {fingerprint}"))?;
    for (kind, addrs) in [
        ("udp", server.udp_addrs()),
        ("tcp", server.tcp_addrs()),
        ("ws", server.ws_addrs()),
    ] {
        for addr in addrs {
            print(format_args!("listening: {kind} {addr}"))?;
        }
    }
    print(format_args!("serving: {}", behaviour.describe()))?;
    if let Some(addr) = server.udp_addrs().first() {
        let host = if addr.ip().is_unspecified() {
            format!("HOST:{}", addr.port())
        } else {
            addr.to_string()
        };
        print(format_args!(
            "connect with: jsp connect {host} --pin {fingerprint}"
        ))?;
    }
    tokio::spawn(accept_loop(server.clone(), behaviour.clone()));

    let signal = signals.next().await;
    tracing::info!(signal, "shutting down: closing connections gracefully");
    let drained = server.shutdown();
    tokio::select! {
        () = drained => tracing::info!("all connections closed"),
        () = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::warn!("connections still open after {SHUTDOWN_GRACE:?}: exiting anyway");
        }
        _ = signals.next() => tracing::warn!("second signal: exiting at once"),
    }
    print("stopped")
}

/// Ctrl-C (SIGINT) and SIGTERM, watched from the moment they are installed (a server: once it
/// is ready; a client: from the start, so that it always closes its connection cleanly).
struct Signals {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Self, CliError> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let install = |e: io::Error| CliError::new(format!("cannot watch for signals: {e}"));
            Ok(Self {
                int: signal(SignalKind::interrupt()).map_err(install)?,
                term: signal(SignalKind::terminate()).map_err(install)?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// Waits for the next signal and names it.
    async fn next(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.int.recv() => "SIGINT",
                _ = self.term.recv() => "SIGTERM",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }
}

async fn connect_and_describe(opts: &ClientOptions) -> Result<Connected, CliError> {
    let connected = client::connect(opts).await?;
    eprintln!("{}", connected.describe());
    Ok(connected)
}

async fn connect(args: ConnectArgs) -> Result<(), CliError> {
    let mut signals = Signals::install()?;
    let opts = args.client.options(&args.server);
    let connected = tokio::select! {
        r = connect_and_describe(&opts) => r?,
        _ = signals.next() => return Err(CliError::new("interrupted")),
    };
    eprintln!("type lines to send; end with Ctrl-D");
    let session = tokio::select! {
        r = interactive::run(&connected.conn, interactive::stdin_lines(), tokio::io::stdout()) => r?,
        _ = signals.next() => {
            client::close(connected).await;
            return Err(CliError::new("interrupted"));
        }
    };
    tracing::info!(
        lines = session.lines,
        sent = session.sent,
        received = session.received,
        "session ended"
    );
    client::close(connected).await;
    Ok(())
}

async fn send(args: SendArgs) -> Result<(), CliError> {
    let name = match &args.name {
        Some(n) => n.clone(),
        None => transfer::default_name(&args.file)?,
    };
    transfer::check_name(&name)
        .map_err(|why| CliError::new(why).hint("choose another with --name"))?;
    let mut signals = Signals::install()?;
    let opts = args.client.options(&args.to);
    let connected = tokio::select! {
        r = connect_and_describe(&opts) => r?,
        _ = signals.next() => return Err(CliError::new("interrupted")),
    };
    let opts = SendOptions {
        name,
        progress: ProgressMode::Auto,
        stall_after: args.stall_after,
    };
    let report = tokio::select! {
        r = transfer::send_file(&connected.conn, &args.file, &opts) => r?,
        _ = signals.next() => {
            // At once: a graceful close would first deliver everything still buffered.
            connected.conn.abort(jsp::CloseReason::Normal, Some("interrupted"));
            client::close(connected).await;
            return Err(CliError::new("interrupted; the server keeps what it received")
                .hint("run the same command again to resume"));
        }
    };
    client::close(connected).await;
    if report.resumed_from == report.size && report.size > 0 {
        return print(format_args!(
            "{} is already on the server: {} bytes; SHA-256 {}",
            report.name,
            report.size,
            transfer::hex(&report.sha256),
        ));
    }
    let resumed = if report.resumed_from > 0 {
        format!(
            ", {} sent (resumed at {})",
            report.sent, report.resumed_from
        )
    } else {
        " sent".to_owned()
    };
    print(format_args!(
        "stored {} on the server: {} bytes{resumed} in {}, {}; SHA-256 {}",
        report.name,
        report.size,
        fmt_duration(report.elapsed),
        fmt_rate(report.sent, report.elapsed),
        transfer::hex(&report.sha256),
    ))
}

async fn bench_cmd(args: BenchArgs) -> Result<(), CliError> {
    let connected = connect_and_describe(&args.client.options(&args.server)).await?;
    let conn = &connected.conn;
    if args.pings > 0 {
        let pings = bench::ping(conn, args.pings).await?;
        print(format_args!(
            "latency: {} round trips of {} bytes: {}",
            args.pings,
            bench::PING_SIZE,
            pings.describe()
        ))?;
    }
    let limit = UploadLimit {
        bytes: args.bytes,
        time: match (args.bytes, args.seconds) {
            (None, None) => Some(Duration::from_secs(5)),
            (_, s) => s,
        },
    };
    let upload = bench::upload(conn, limit, ProgressMode::Auto).await?;
    print(format_args!("upload: {}", upload.describe()))?;
    print(format_args!(
        "connection: {}",
        describe_stats(&conn.stats(), connected.carriage)
    ))?;
    client::close(connected).await;
    Ok(())
}

/// Why `keygen` or `fingerprint` failed.
fn key_error(e: KeyFileError) -> CliError {
    CliError::from(e)
}

fn keygen(args: &KeygenArgs, out: &mut impl Write) -> Result<(), CliError> {
    let provider = default_provider();
    let identity = Identity::generate(&*provider)
        .map_err(|e: CryptoError| CliError::new(format!("cannot generate a key: {e}")))?;
    let (key_path, pub_path) =
        keyfile::write_identity(&args.out, &identity, args.force).map_err(key_error)?;
    writeln!(
        out,
        "Wrote the secret key to {} (keep it private) and the public key to {}.\n\
         Clients pin this server with its fingerprint:\n{}",
        key_path.display(),
        pub_path.display(),
        identity.fingerprint()
    )
    .map_err(CliError::Stdout)
}

fn fingerprint(args: &FingerprintArgs, out: &mut impl Write) -> Result<(), CliError> {
    let provider = default_provider();
    let key = keyfile::read_key_file(&args.file, &*provider).map_err(key_error)?;
    writeln!(out, "{}", key.fingerprint(&*provider)).map_err(CliError::Stdout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn seconds_parse() {
        assert_eq!(parse_seconds("2.5"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_seconds("3s"), Ok(Duration::from_secs(3)));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("soon").is_err());
    }
}
