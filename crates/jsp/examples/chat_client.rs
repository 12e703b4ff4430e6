//! A line-based chat client for the `chat_server` example.
//!
//! Shows a client that authenticates the server by its pinned fingerprint, uses one
//! bidirectional stream in both directions at once, and leaves gracefully: at the end of stdin it
//! ends its stream, waits until the server has ended its own, then closes the connection.
//!
//! Start a server (see `chat_server`), then in two terminals:
//!
//! ```text
//! cargo run -p jsp --example chat_client -- 127.0.0.1:4433 --pin SHA256:3f1c... --nick alice
//! cargo run -p jsp --example chat_client -- 127.0.0.1:4433 --pin SHA256:3f1c... --nick bob --tcp
//! ```
//!
//! Every line typed is sent; every line received (`bob: hi`, `* alice joined` ...) is printed on
//! stdout. Ctrl-D (end of input) leaves the chat; the exit status is 0 after a graceful goodbye
//! and 1 if the connection failed, the server refused us (a `! reason` line: nick taken, server
//! full ...) or the server ended the chat.
//!
//! Options: `ADDR` (or `--connect ADDR`) the server's address, `--pin FINGERPRINT` the server's
//! fingerprint (`SHA256:` and 64 hex digits, or just the hex digits), `--nick NAME`, and `--tcp`
//! to use the TCP carriage instead of UDP (give the server's TCP address).

use std::error::Error;
use std::io::BufRead;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use jsp::{ClientConfig, Endpoint, TrustPolicy};
use jsp_proto::identity::Fingerprint;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// How long the connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for the server's goodbye and for the close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The error type of this example.
type BoxError = Box<dyn Error + Send + Sync>;

/// Command-line options.
struct Options {
    /// The server's address.
    server: SocketAddr,
    /// The server's fingerprint.
    pin: Fingerprint,
    /// Our nickname.
    nick: String,
    /// Use the TCP carriage.
    tcp: bool,
}

/// The usage text.
const USAGE: &str = "usage: chat_client ADDR --pin FINGERPRINT --nick NAME [--tcp]";

impl Options {
    /// Parses `std::env::args`.
    fn parse() -> Result<Self, BoxError> {
        let (mut server, mut pin, mut nick, mut tcp) = (None, None, None, false);
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = |name: &str| {
                args.next()
                    .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
            };
            match arg.as_str() {
                "--connect" => server = Some(parse_addr(&value("--connect")?)?),
                "--pin" => pin = Some(parse_pin(&value("--pin")?)?),
                "--nick" => nick = Some(value("--nick")?),
                "--tcp" => tcp = true,
                "-h" | "--help" => return Err(USAGE.into()),
                a if !a.starts_with('-') && server.is_none() => server = Some(parse_addr(a)?),
                other => return Err(format!("unexpected argument {other:?}\n{USAGE}").into()),
            }
        }
        Ok(Options {
            server: server.ok_or(format!("the server address is missing\n{USAGE}"))?,
            pin: pin.ok_or(format!("--pin is missing\n{USAGE}"))?,
            nick: nick.ok_or(format!("--nick is missing\n{USAGE}"))?,
            tcp,
        })
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

/// Reads stdin lines on a plain thread (a blocking read cannot be cancelled, so it must not hold
/// up the runtime at exit); the channel closes at the end of input.
fn stdin_lines() -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(64);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            match line {
                Ok(l) => {
                    if tx.blocking_send(l).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    eprintln!("stdin: {e}");
                    return;
                }
            }
        }
    });
    rx
}

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

/// Connects, chats until the end of stdin, and says goodbye.
async fn run(opts: Options) -> Result<(), BoxError> {
    let bind = match opts.server {
        SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
    };
    let endpoint = Endpoint::client(bind)?;
    let config = Arc::new(ClientConfig::new(TrustPolicy::pinned(opts.pin)));
    let connecting = async {
        if opts.tcp {
            endpoint.connect_tcp(opts.server, config).await
        } else {
            endpoint.connect(opts.server, config).await
        }
    };
    let conn = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .map_err(|_| format!("no answer from {} in time", opts.server))?
        .map_err(|e| format!("cannot connect to {}: {e}", opts.server))?;
    eprintln!("connected to {} over {:?}", opts.server, conn.carriage());
    let (mut send, recv) = conn.open_bi().await?;
    send.write_all(format!("NICK {}\n", opts.nick).as_bytes())
        .await?;

    // Everything the server sends is printed as it arrives; `! reason` means we were refused.
    let mut printer = tokio::spawn(async move {
        let mut lines = BufReader::new(recv).lines();
        while let Some(line) = lines.next_line().await.map_err(|e| e.to_string())? {
            if let Some(reason) = line.strip_prefix("! ") {
                return Err(format!("refused by the server: {reason}"));
            }
            println!("{line}");
        }
        Ok::<(), String>(())
    });
    let mut input = stdin_lines();
    loop {
        tokio::select! {
            line = input.recv() => match line {
                Some(text) => send.write_all(format!("{text}\n").as_bytes()).await?,
                None => break,
            },
            ended = &mut printer => {
                // The server ended the chat before we did. It closes the connection once we have
                // acknowledged what it sent: wait for that rather than vanish without a word.
                let closed = tokio::time::timeout(CLOSE_TIMEOUT, conn.closed()).await;
                drain(&endpoint).await;
                let why = match (ended, closed) {
                    (Ok(Err(refusal)), _) => return Err(refusal.into()),
                    (Ok(Ok(())), Ok(e)) => e.to_string(),
                    (Ok(Ok(())), Err(_)) => "the server ended the chat".to_string(),
                    (Err(e), _) => e.to_string(),
                };
                return Err(format!("disconnected: {why}").into());
            }
        }
    }

    // End of input: end our stream, wait for the server to end its own (it has then seen
    // everything we sent), then close.
    send.finish()?;
    match tokio::time::timeout(CLOSE_TIMEOUT, &mut printer).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => return Err(e.into()),
        Ok(Err(e)) => return Err(e.into()),
        Err(_) => return Err("the server did not answer our goodbye in time".into()),
    }
    conn.close(jsp::CloseReason::Normal, Some("bye"));
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, conn.closed()).await;
    drain(&endpoint).await;
    Ok(())
}

/// Parses the arguments, runs, and turns an error into a message and exit status 1.
#[tokio::main]
async fn main() -> ExitCode {
    let result = match Options::parse() {
        Ok(opts) => run(opts).await,
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
