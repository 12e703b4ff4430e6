//! A line-based chat server over JetStreamProto.
//!
//! Shows a server endpoint with a persistent (or fresh) identity that listens on UDP and on a TCP
//! carriage at the same time, accepts many connections, reads one bidirectional stream per
//! client and relays lines between clients, then shuts down gracefully.
//!
//! Protocol: each client opens one bidirectional stream and sends `NICK name\n`, then one line
//! per message. The server relays `name: text\n` to every other client and announces
//! `* name joined` / `* name left`. The new client first receives `* welcome name, N online`;
//! a client that is refused (bad or taken nick, server full) receives `! reason` instead, and the
//! server closes the connection.
//!
//! Run it and note the fingerprint it prints:
//!
//! ```text
//! cargo run -p jsp --example chat_server -- --listen 127.0.0.1:4433 --key chat.key
//! listening 127.0.0.1:4433 tcp 127.0.0.1:4433 fingerprint SHA256:3f1c...
//! ```
//!
//! then connect clients with `chat_client` (see its header). The first stdout line is always
//! `listening UDP_ADDR tcp TCP_ADDR fingerprint FINGERPRINT` so a script can parse it; logs go to
//! stderr.
//!
//! Options:
//! - `--listen ADDR`: UDP address (default `127.0.0.1:0`, an ephemeral port).
//! - `--tcp ADDR`: TCP carriage address (default: the UDP address's IP and port, or an ephemeral
//!   port if that one is taken); `--no-tcp` disables it.
//! - `--key FILE`: load the identity from FILE, or generate one and save it there (mode 0600) if
//!   FILE does not exist. Without it a fresh identity is generated on every start.
//! - `--max-clients N`: refuse clients beyond N at once (they receive `* server full`).
//! - `--exit-after-clients N`: shut down after N clients have joined and left (for scripts and
//!   tests); otherwise the server runs until Ctrl-C.

use std::collections::HashMap;
use std::error::Error;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jsp::config_file::identity_files::{read_identity_key, write_identity_key};
use jsp::{Connection, Endpoint, RecvStream, ServerConfig};
use jsp_proto::crypto::default_provider;
use jsp_proto::identity::Identity;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{broadcast, mpsc};

/// The longest line (without its newline) a client may send.
const MAX_LINE: usize = 4096;
/// The longest nickname, in characters.
const MAX_NICK: usize = 32;
/// How long a client may take to complete the handshake, open its stream and send `NICK`.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for a leaving client to close the connection, and for the final shutdown.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Relayed lines buffered per client before a slow client starts missing some.
const RELAY_CAPACITY: usize = 1024;

/// The error type of this example.
type BoxError = Box<dyn Error + Send + Sync>;

/// Command-line options.
struct Options {
    /// UDP listening address.
    listen: SocketAddr,
    /// TCP carriage address: `None` for "the UDP address", `Some(None)` for disabled.
    tcp: Option<Option<SocketAddr>>,
    /// Identity key file to load or create.
    key: Option<PathBuf>,
    /// Refuse clients beyond this many at once.
    max_clients: Option<usize>,
    /// Exit after this many clients have joined and left.
    exit_after_clients: Option<usize>,
}

/// The usage text.
const USAGE: &str = "usage: chat_server [--listen ADDR] [--tcp ADDR | --no-tcp] [--key FILE] \
                     [--max-clients N] [--exit-after-clients N]";

impl Options {
    /// Parses `std::env::args`.
    fn parse() -> Result<Self, BoxError> {
        let mut opts = Options {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tcp: None,
            key: None,
            max_clients: None,
            exit_after_clients: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = |name: &str| {
                args.next()
                    .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
            };
            match arg.as_str() {
                "--listen" => opts.listen = parse_addr(&value("--listen")?)?,
                "--tcp" => opts.tcp = Some(Some(parse_addr(&value("--tcp")?)?)),
                "--no-tcp" => opts.tcp = Some(None),
                "--key" => opts.key = Some(PathBuf::from(value("--key")?)),
                "--max-clients" => opts.max_clients = Some(parse_count(&value("--max-clients")?)?),
                "--exit-after-clients" => {
                    opts.exit_after_clients = Some(parse_count(&value("--exit-after-clients")?)?);
                }
                "-h" | "--help" => return Err(USAGE.into()),
                other => return Err(format!("unexpected argument {other:?}\n{USAGE}").into()),
            }
        }
        Ok(opts)
    }
}

/// Parses a socket address with a readable error.
fn parse_addr(s: &str) -> Result<SocketAddr, BoxError> {
    s.parse()
        .map_err(|e| format!("invalid address {s:?}: {e}").into())
}

/// Parses a positive count.
fn parse_count(s: &str) -> Result<usize, BoxError> {
    match s.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("expected a positive number, got {s:?}").into()),
    }
}

/// Loads the identity from `path`, or generates one (and saves it to `path` when given).
fn load_identity(path: Option<&PathBuf>) -> Result<Identity, BoxError> {
    match path {
        Some(p) if p.exists() => Ok(read_identity_key(p)?),
        Some(p) => {
            let id = Identity::generate(default_provider().as_ref())?;
            write_identity_key(p, &id)?;
            eprintln!("generated a new identity in {}", p.display());
            Ok(id)
        }
        None => Ok(Identity::generate(default_provider().as_ref())?),
    }
}

/// One relayed line: the id of the client it came from (who does not get it back) and the text.
type Relay = (u64, Arc<str>);

/// The chat room: who is online and the channel every line goes through.
struct Hub {
    /// Every client subscribes to this.
    tx: broadcast::Sender<Relay>,
    /// Nicknames of the clients online, by client id.
    nicks: Mutex<HashMap<u64, String>>,
    /// Refuse clients beyond this many.
    max_clients: Option<usize>,
}

impl Hub {
    /// Registers `nick` for client `id`, announces it, and returns the client's feed and the
    /// number of clients online; `Err` with the reason to tell the client if refused.
    fn join(&self, id: u64, nick: &str) -> Result<(broadcast::Receiver<Relay>, usize), String> {
        let mut nicks = self.nicks.lock().unwrap_or_else(|e| e.into_inner());
        if self.max_clients.is_some_and(|max| nicks.len() >= max) {
            return Err(format!("server full ({} clients)", nicks.len()));
        }
        if nicks.values().any(|n| n == nick) {
            return Err(format!("nick {nick} is taken"));
        }
        nicks.insert(id, nick.to_string());
        // Subscribe before announcing so the feed starts right after the join.
        let rx = self.tx.subscribe();
        let _ = self.tx.send((id, format!("* {nick} joined\n").into()));
        Ok((rx, nicks.len()))
    }

    /// Relays one line from client `id`.
    fn say(&self, id: u64, line: String) {
        // No subscribers is not an error: the client is alone.
        let _ = self.tx.send((id, line.into()));
    }

    /// Unregisters client `id` and announces it.
    fn leave(&self, id: u64) {
        let mut nicks = self.nicks.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(nick) = nicks.remove(&id) {
            let _ = self.tx.send((id, format!("* {nick} left\n").into()));
        }
    }
}

/// Reads one line of at most [`MAX_LINE`] bytes into `buf`; `Ok(None)` at the end of the
/// stream. Cancel-safe as long as the same `buf` is passed again: bytes already read stay in it.
async fn next_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<String>> {
    let room = (MAX_LINE + 2).saturating_sub(buf.len()) as u64;
    let n = (&mut *reader).take(room).read_until(b'\n', buf).await?;
    let complete = buf.last() == Some(&b'\n');
    if complete {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    }
    if buf.len() > MAX_LINE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("line longer than {MAX_LINE} bytes"),
        ));
    }
    if !complete && n == 0 && buf.is_empty() {
        return Ok(None);
    }
    // A complete line, or the last one without a newline at the end of the stream.
    let line = String::from_utf8_lossy(buf).into_owned();
    buf.clear();
    Ok(Some(line))
}

/// Checks a `NICK name` line and returns the name.
fn parse_nick(line: &str) -> Result<String, String> {
    let nick = line
        .strip_prefix("NICK ")
        .ok_or_else(|| "expected NICK name as the first line".to_string())?
        .trim();
    if nick.is_empty()
        || nick.chars().count() > MAX_NICK
        || nick.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "a nick is 1 to {MAX_NICK} characters without spaces or control characters"
        ));
    }
    Ok(nick.to_string())
}

/// Runs one client from handshake to goodbye. Sends `()` on `left` once a client that joined
/// has left and closed its connection (or did not close it in time).
async fn session(
    conn: Connection,
    id: u64,
    hub: Arc<Hub>,
    left: mpsc::UnboundedSender<()>,
) -> Result<(), BoxError> {
    let (mut send, recv) = tokio::time::timeout(JOIN_TIMEOUT, async {
        conn.established().await?;
        conn.accept_bi().await
    })
    .await
    .map_err(|_| "no stream opened in time")??;
    let peer = conn
        .remote_address()
        .map_or_else(|| "?".to_string(), |a| a.to_string());
    let mut reader: BufReader<RecvStream> = BufReader::new(recv);
    let mut buf = Vec::new();
    let first = tokio::time::timeout(JOIN_TIMEOUT, next_line(&mut reader, &mut buf))
        .await
        .map_err(|_| "no NICK in time")??
        .ok_or("the client left before sending NICK")?;
    let joined = parse_nick(&first).and_then(|nick| {
        let (rx, online) = hub.join(id, &nick)?;
        Ok((nick, rx, online))
    });
    let (nick, mut feed, online) = match joined {
        Ok(j) => j,
        Err(reason) => {
            eprintln!("refused {peer}: {reason}");
            send.write_all(format!("! {reason}\n").as_bytes()).await?;
            send.finish()?;
            // A graceful close still delivers the refusal.
            conn.close(jsp::CloseReason::Normal, Some(&reason));
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, conn.closed()).await;
            return Ok(());
        }
    };
    eprintln!("{nick} joined from {peer} over {:?}", conn.carriage());
    let result = relay(
        &mut reader,
        &mut buf,
        &mut send,
        &mut feed,
        &hub,
        id,
        &nick,
        online,
    )
    .await;
    hub.leave(id);
    eprintln!("{nick} left");
    drop(feed);
    // Our end of the stream tells the client we saw its end; it then closes the connection.
    let finished = send.finish();
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, conn.closed()).await;
    // Counted only now, so that a shutdown it triggers cannot cut the goodbye short.
    let _ = left.send(());
    result?;
    Ok(finished?)
}

/// Relays lines both ways until the client ends its stream.
#[allow(
    clippy::too_many_arguments,
    reason = "one call site; a struct would add nothing"
)]
async fn relay(
    reader: &mut BufReader<RecvStream>,
    buf: &mut Vec<u8>,
    send: &mut jsp::SendStream,
    feed: &mut broadcast::Receiver<Relay>,
    hub: &Hub,
    id: u64,
    nick: &str,
    online: usize,
) -> Result<(), BoxError> {
    send.write_all(format!("* welcome {nick}, {online} online\n").as_bytes())
        .await?;
    loop {
        tokio::select! {
            line = next_line(reader, buf) => match line? {
                Some(text) => hub.say(id, format!("{nick}: {text}\n")),
                None => return Ok(()),
            },
            relayed = feed.recv() => match relayed {
                Ok((from, text)) if from != id => send.write_all(text.as_bytes()).await?,
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    send.write_all(format!("* you missed {n} messages\n").as_bytes()).await?;
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
        }
    }
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

/// Starts the endpoint, prints the listening line and serves until told to stop.
async fn run(opts: Options) -> Result<(), BoxError> {
    let identity = load_identity(opts.key.as_ref())?;
    let fingerprint = identity.fingerprint();
    let endpoint = Endpoint::server(opts.listen, ServerConfig::new(identity))?;
    let udp = endpoint.local_addr();
    let tcp = match opts.tcp {
        Some(Some(addr)) => Some(endpoint.listen_tcp(addr).await?),
        Some(None) => None,
        // The UDP port number for TCP too; an ephemeral port if that one is taken.
        None => match endpoint.listen_tcp(udp).await {
            Ok(a) => Some(a),
            Err(_) => Some(endpoint.listen_tcp(SocketAddr::new(udp.ip(), 0)).await?),
        },
    };
    let tcp_text = tcp.map_or_else(|| "off".to_string(), |a| a.to_string());
    println!("listening {udp} tcp {tcp_text} fingerprint {fingerprint}");

    let hub = Arc::new(Hub {
        tx: broadcast::channel(RELAY_CAPACITY).0,
        nicks: Mutex::new(HashMap::new()),
        max_clients: opts.max_clients,
    });
    let (left_tx, mut left_rx) = mpsc::unbounded_channel();
    let mut left_count = 0usize;
    let mut next_id = 0u64;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut ctrl_c_armed = true;
    loop {
        tokio::select! {
            incoming = endpoint.accept() => {
                let Some(conn) = incoming else { break };
                next_id += 1;
                let (id, hub, left) = (next_id, hub.clone(), left_tx.clone());
                tokio::spawn(async move {
                    if let Err(e) = session(conn, id, hub, left).await {
                        eprintln!("client {id}: {e}");
                    }
                });
            }
            Some(()) = left_rx.recv() => {
                left_count += 1;
                if opts.exit_after_clients.is_some_and(|n| left_count >= n) {
                    eprintln!("{left_count} clients have left: shutting down");
                    break;
                }
            }
            signal = &mut ctrl_c, if ctrl_c_armed => {
                ctrl_c_armed = false;
                match signal {
                    Ok(()) => {
                        eprintln!("interrupted: shutting down");
                        break;
                    }
                    Err(e) => eprintln!("cannot listen for Ctrl-C ({e}); stop the process instead"),
                }
            }
        }
    }
    if tokio::time::timeout(CLOSE_TIMEOUT, endpoint.shutdown())
        .await
        .is_err()
    {
        eprintln!("some clients did not close in time");
    }
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
