//! Sends a file over JetStreamProto and proves it arrived intact.
//!
//! Shows a request/response exchange on one bidirectional stream: the sender writes a small
//! header (file name and size), the content in chunks and a SHA-256 trailer, then ends the
//! stream; the receiver hashes while writing to disk, compares, and answers `OK <sha256>` with
//! the hash it computed itself (or `ERR <reason>`). The sender exits with status 0 only when the
//! receiver confirmed exactly the hash the sender computed. SHA-256 comes from the engine's
//! crypto provider (aws-lc-rs), the same one that computes fingerprints.
//!
//! Receive into a directory (prints `listening ADDR fingerprint FINGERPRINT` on stdout):
//!
//! ```text
//! cargo run -p jsp --example file_transfer -- receive --listen 127.0.0.1:4433 --out ./inbox
//! ```
//!
//! Send a file to it, pinning the receiver's fingerprint:
//!
//! ```text
//! cargo run -p jsp --example file_transfer -- send ./photo.jpg --to 127.0.0.1:4433 --pin SHA256:3f1c...
//! ```
//!
//! Or do both in one process with a random file: `cargo run -p jsp --example file_transfer --
//! --self-test [--size BYTES]`.
//!
//! `receive` options: `--listen ADDR` (default `127.0.0.1:0`), `--out DIR` (created if missing;
//! existing files are never overwritten), `--key FILE` (load or create the identity), `--count N`
//! (exit after N transfers, with status 0 only if all were verified; otherwise run until Ctrl-C).
//! `send` options: `--to ADDR`, `--pin FINGERPRINT` (`SHA256:` and 64 hex digits, or just the
//! digits), `--name NAME` (the name to store it under), `--tcp` (TCP carriage), and
//! `--simulate-corruption`, which flips one bit of the content after hashing it, to watch the
//! receiver refuse the file.

use std::error::Error;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use jsp::config_file::identity_files::{read_identity_key, write_identity_key};
use jsp::{ClientConfig, Connection, Endpoint, ServerConfig, TrustPolicy};
use jsp_proto::crypto::default_provider;
use jsp_proto::identity::{Fingerprint, Identity};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// First bytes of a transfer: magic and version.
const MAGIC: &[u8; 5] = b"JSPF\x01";
/// The longest file name accepted, in bytes.
const MAX_NAME: usize = 255;
/// Bytes read from disk and written to the stream at a time.
const CHUNK: usize = 256 * 1024;
/// SHA-256 output length.
const HASH_LEN: usize = 32;
/// The longest answer the receiver may send.
const MAX_ANSWER: usize = 1024;
/// How long the connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a receiver waits for a connected sender to start, and the final close.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the sender waits for the verdict after the last byte was written.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// The error type of this example.
type BoxError = Box<dyn Error + Send + Sync>;

/// The usage text.
const USAGE: &str = "usage:
  file_transfer receive [--listen ADDR] --out DIR [--key FILE] [--count N]
  file_transfer send FILE --to ADDR --pin FINGERPRINT [--name NAME] [--tcp] [--simulate-corruption]
  file_transfer --self-test [--size BYTES]";

/// What to do.
enum Command {
    /// Receive files.
    Receive {
        /// UDP listening address.
        listen: SocketAddr,
        /// Where to store files.
        out: PathBuf,
        /// Identity key file to load or create.
        key: Option<PathBuf>,
        /// Exit after this many transfers.
        count: Option<u64>,
    },
    /// Send one file.
    Send {
        /// The file to send.
        file: PathBuf,
        /// The receiver's address.
        to: SocketAddr,
        /// The receiver's fingerprint.
        pin: Fingerprint,
        /// The name to store the file under (default: the file's own name).
        name: Option<String>,
        /// Use the TCP carriage.
        tcp: bool,
        /// Flip a bit of the content after hashing it.
        corrupt: bool,
    },
    /// Send a random file to a receiver in the same process.
    SelfTest {
        /// Size of the random file.
        size: u64,
    },
}

/// Parses `std::env::args`.
fn parse_args() -> Result<Command, BoxError> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().ok_or(USAGE)?;
    let mut positional = Vec::new();
    let (mut listen, mut out, mut key, mut count) = (None, None, None, None);
    let (mut to, mut pin, mut name, mut tcp, mut corrupt, mut size) =
        (None, None, None, false, false, None);
    let mut self_test = mode == "--self-test";
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| {
            args.next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--listen" => listen = Some(parse_addr(&value("--listen")?)?),
            "--out" => out = Some(PathBuf::from(value("--out")?)),
            "--key" => key = Some(PathBuf::from(value("--key")?)),
            "--count" => count = Some(parse_number(&value("--count")?)?),
            "--to" => to = Some(parse_addr(&value("--to")?)?),
            "--pin" => pin = Some(parse_pin(&value("--pin")?)?),
            "--name" => name = Some(value("--name")?),
            "--tcp" => tcp = true,
            "--simulate-corruption" => corrupt = true,
            "--size" => size = Some(parse_number(&value("--size")?)?),
            "--self-test" => self_test = true,
            "-h" | "--help" => return Err(USAGE.into()),
            a if !a.starts_with('-') => positional.push(PathBuf::from(a)),
            other => return Err(format!("unexpected argument {other:?}\n{USAGE}").into()),
        }
    }
    if self_test {
        return Ok(Command::SelfTest {
            size: size.unwrap_or(3 << 20),
        });
    }
    match mode.as_str() {
        "receive" => Ok(Command::Receive {
            listen: listen.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0))),
            out: out.ok_or(format!("receive needs --out DIR\n{USAGE}"))?,
            key,
            count,
        }),
        "send" => {
            let [file] = <[PathBuf; 1]>::try_from(positional)
                .map_err(|_| format!("send needs exactly one FILE\n{USAGE}"))?;
            Ok(Command::Send {
                file,
                to: to.ok_or(format!("send needs --to ADDR\n{USAGE}"))?,
                pin: pin.ok_or(format!("send needs --pin FINGERPRINT\n{USAGE}"))?,
                name,
                tcp,
                corrupt,
            })
        }
        other => Err(format!("unknown mode {other:?}\n{USAGE}").into()),
    }
}

/// Parses a socket address with a readable error.
fn parse_addr(s: &str) -> Result<SocketAddr, BoxError> {
    s.parse()
        .map_err(|e| format!("invalid address {s:?}: {e}").into())
}

/// Parses a positive number.
fn parse_number(s: &str) -> Result<u64, BoxError> {
    match s.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("expected a positive number, got {s:?}").into()),
    }
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

/// Lowercase hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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

/// Checks a received file name: a single plain path component, so nothing is written outside
/// the output directory.
fn check_name(name: &str) -> Result<(), String> {
    let plain = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
        && Path::new(name).file_name().is_some_and(|f| f == name);
    if plain {
        Ok(())
    } else {
        Err(format!("refusing the file name {name:?}"))
    }
}

// ---------------------------------------------------------------------------------------------
// Sender
// ---------------------------------------------------------------------------------------------

/// Sends `file` as `name` over a new stream of `conn`; returns the hash the receiver confirmed.
async fn send_file(
    conn: &Connection,
    file: &Path,
    name: &str,
    corrupt: bool,
) -> Result<[u8; HASH_LEN], BoxError> {
    if name.len() > MAX_NAME {
        return Err(format!("the file name is longer than {MAX_NAME} bytes").into());
    }
    let mut source = tokio::fs::File::open(file)
        .await
        .map_err(|e| format!("cannot open {}: {e}", file.display()))?;
    let size = source.metadata().await?.len();
    let (mut send, mut recv) = conn.open_bi().await?;

    let sending = async {
        let mut header = Vec::with_capacity(MAGIC.len() + 2 + name.len() + 8);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&u16::try_from(name.len())?.to_be_bytes());
        header.extend_from_slice(name.as_bytes());
        header.extend_from_slice(&size.to_be_bytes());
        send.write_all(&header).await?;

        let mut hasher = default_provider().hash();
        let mut buf = vec![0u8; CHUNK];
        let mut left = size;
        let mut flipped = !corrupt;
        while left > 0 {
            let want = usize::try_from(left.min(CHUNK as u64))?;
            let n = source.read(&mut buf[..want]).await?;
            if n == 0 {
                return Err(format!("{} shrank while being sent", file.display()).into());
            }
            hasher.update(&buf[..n]);
            if !flipped {
                // After hashing: the receiver's hash will differ from ours.
                buf[n / 2] ^= 0x01;
                flipped = true;
            }
            send.write_all(&buf[..n]).await?;
            left -= n as u64;
        }
        let ours = hasher.current();
        send.write_all(&ours).await?;
        send.finish()?;
        Ok::<_, BoxError>(ours)
    };
    let ours = match sending.await {
        Ok(h) => h,
        // A receiver that refuses early stops the stream: its answer says why.
        Err(e) => match tokio::time::timeout(CONNECT_TIMEOUT, recv.read_all(MAX_ANSWER)).await {
            Ok(Ok(answer)) if answer.starts_with(b"ERR ") => {
                let reason = String::from_utf8_lossy(&answer[4..]).trim_end().to_string();
                return Err(format!("the receiver refused the file: {reason}").into());
            }
            _ => return Err(e),
        },
    };

    let answer = tokio::time::timeout(ANSWER_TIMEOUT, recv.read_all(MAX_ANSWER))
        .await
        .map_err(|_| "the receiver did not answer in time")??;
    let answer = String::from_utf8_lossy(&answer);
    let answer = answer.trim_end();
    if let Some(reason) = answer.strip_prefix("ERR ") {
        return Err(format!("the receiver refused the file: {reason}").into());
    }
    let theirs = answer
        .strip_prefix("OK sha256:")
        .ok_or_else(|| format!("unexpected answer from the receiver: {answer:?}"))?;
    if theirs != hex(&ours) {
        return Err(format!(
            "hash mismatch: we sent sha256:{} but the receiver stored sha256:{theirs}",
            hex(&ours)
        )
        .into());
    }
    Ok(ours)
}

/// Connects to the receiver, sends the file, and reports.
async fn run_send(
    file: PathBuf,
    to: SocketAddr,
    pin: Fingerprint,
    name: Option<String>,
    tcp: bool,
    corrupt: bool,
) -> Result<(), BoxError> {
    let name = match name {
        Some(n) => n,
        None => file
            .file_name()
            .and_then(|f| f.to_str())
            .ok_or_else(|| format!("{} has no usable file name: use --name", file.display()))?
            .to_string(),
    };
    let bind = match to {
        SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
    };
    let endpoint = Endpoint::client(bind)?;
    let config = Arc::new(ClientConfig::new(TrustPolicy::pinned(pin)));
    let connecting = async {
        if tcp {
            endpoint.connect_tcp(to, config).await
        } else {
            endpoint.connect(to, config).await
        }
    };
    let conn = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .map_err(|_| format!("no answer from {to} in time"))?
        .map_err(|e| format!("cannot connect to {to}: {e}"))?;
    let result = send_file(&conn, &file, &name, corrupt).await;
    conn.close(jsp::CloseReason::Normal, Some("done"));
    let _ = tokio::time::timeout(IDLE_TIMEOUT, conn.closed()).await;
    drain(&endpoint).await;
    let hash = result?;
    let size = tokio::fs::metadata(&file).await?.len();
    println!(
        "sent {name} ({size} bytes) sha256:{} verified by the receiver",
        hex(&hash)
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Receiver
// ---------------------------------------------------------------------------------------------

/// What a receiver stored.
struct Received {
    /// Where the file is.
    path: PathBuf,
    /// Its size.
    size: u64,
    /// Its SHA-256.
    hash: [u8; HASH_LEN],
}

/// Why a transfer failed, and whether to tell the sender.
enum Failure {
    /// Tell the sender this.
    Refused(String),
    /// The stream or connection failed: nobody to tell.
    Broken(BoxError),
}

impl<E: Into<BoxError>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::Broken(e.into())
    }
}

/// Reads one transfer from `recv` into `out_dir`. On any failure the partial file is removed.
async fn receive_into<R: AsyncRead + Unpin>(
    recv: &mut R,
    out_dir: &Path,
) -> Result<Received, Failure> {
    let mut magic = [0u8; MAGIC.len()];
    recv.read_exact(&mut magic).await?;
    if &magic != MAGIC {
        return Err(Failure::Refused("not a file transfer (bad magic)".into()));
    }
    let name_len = usize::from(recv.read_u16().await?);
    if name_len > MAX_NAME {
        return Err(Failure::Refused(format!(
            "file name longer than {MAX_NAME} bytes"
        )));
    }
    let mut name = vec![0u8; name_len];
    recv.read_exact(&mut name).await?;
    let name = String::from_utf8(name)
        .map_err(|_| Failure::Refused("the file name is not UTF-8".into()))?;
    check_name(&name).map_err(Failure::Refused)?;
    let size = recv.read_u64().await?;

    let path = out_dir.join(&name);
    let part = out_dir.join(format!(".{name}.part"));
    if tokio::fs::try_exists(&path).await? {
        return Err(Failure::Refused(format!("{name} already exists")));
    }
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&part)
        .await
        .map_err(|e| Failure::Refused(format!("cannot create {name}: {e}")))?;
    let result = async {
        let mut hasher = default_provider().hash();
        let mut buf = vec![0u8; CHUNK];
        let mut left = size;
        while left > 0 {
            let want = usize::try_from(left.min(CHUNK as u64))?;
            let n = recv.read(&mut buf[..want]).await?;
            if n == 0 {
                return Err(Failure::Refused(format!(
                    "the stream ended {left} bytes early"
                )));
            }
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n]).await?;
            left -= n as u64;
        }
        file.flush().await?;
        file.sync_all().await?;
        let mut claimed = [0u8; HASH_LEN];
        recv.read_exact(&mut claimed).await?;
        if recv.read(&mut [0u8; 1]).await? != 0 {
            return Err(Failure::Refused("data after the end of the file".into()));
        }
        let hash = hasher.current();
        if hash != claimed {
            return Err(Failure::Refused(format!(
                "hash mismatch: the sender claims sha256:{} but the received data has sha256:{}",
                hex(&claimed),
                hex(&hash)
            )));
        }
        if tokio::fs::try_exists(&path).await? {
            return Err(Failure::Refused(format!("{name} already exists")));
        }
        tokio::fs::rename(&part, &path).await?;
        Ok(hash)
    }
    .await;
    drop(file);
    match result {
        Ok(hash) => Ok(Received { path, size, hash }),
        Err(e) => {
            let _ = tokio::fs::remove_file(&part).await;
            Err(e)
        }
    }
}

/// Serves one sender: receives its file and answers. `Ok(true)` if a file was verified and
/// stored, `Ok(false)` if it was refused.
async fn serve_sender(conn: Connection, out_dir: &Path) -> Result<bool, BoxError> {
    let (mut send, mut recv) = tokio::time::timeout(IDLE_TIMEOUT, async {
        conn.established().await?;
        conn.accept_bi().await
    })
    .await
    .map_err(|_| "the sender opened no stream in time")??;
    let (verified, answer) = match receive_into(&mut recv, out_dir).await {
        Ok(r) => {
            println!(
                "received {} ({} bytes) sha256:{}",
                r.path.display(),
                r.size,
                hex(&r.hash)
            );
            (true, format!("OK sha256:{}\n", hex(&r.hash)))
        }
        Err(Failure::Refused(reason)) => {
            println!("refused a file: {reason}");
            recv.stop(1);
            (false, format!("ERR {reason}\n"))
        }
        Err(Failure::Broken(e)) => return Err(e),
    };
    send.write_all(answer.as_bytes()).await?;
    send.finish()?;
    // A graceful close first delivers the answer: once the connection has ended (or the sender
    // closed it after reading the answer), the answer has arrived and we may exit.
    conn.close(jsp::CloseReason::Normal, Some("done"));
    let _ = tokio::time::timeout(IDLE_TIMEOUT, conn.closed()).await;
    Ok(verified)
}

/// Runs a receiver on `endpoint` until `count` senders were served (or forever); `Ok(true)` if
/// every served transfer was verified.
async fn receive_loop(
    endpoint: &Endpoint,
    out_dir: PathBuf,
    count: Option<u64>,
) -> Result<bool, BoxError> {
    let out_dir = Arc::new(out_dir);
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let (mut served, mut all_verified) = (0u64, true);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut ctrl_c_armed = true;
    loop {
        tokio::select! {
            incoming = endpoint.accept() => {
                let Some(conn) = incoming else { break };
                let (dir, done) = (out_dir.clone(), done_tx.clone());
                tokio::spawn(async move {
                    match serve_sender(conn, &dir).await {
                        Ok(verified) => {
                            let _ = done.send(verified);
                        }
                        // Failed handshakes and broken streams are not counted as transfers.
                        Err(e) => eprintln!("a sender failed: {e}"),
                    }
                });
            }
            Some(verified) = done_rx.recv() => {
                served += 1;
                all_verified &= verified;
                if count.is_some_and(|c| served >= c) {
                    break;
                }
            }
            signal = &mut ctrl_c, if ctrl_c_armed => {
                ctrl_c_armed = false;
                match signal {
                    Ok(()) => break,
                    Err(e) => eprintln!("cannot listen for Ctrl-C ({e}); stop the process instead"),
                }
            }
        }
    }
    let _ = tokio::time::timeout(IDLE_TIMEOUT, endpoint.shutdown()).await;
    drain(endpoint).await;
    Ok(all_verified)
}

/// The `receive` mode.
async fn run_receive(
    listen: SocketAddr,
    out: PathBuf,
    key: Option<PathBuf>,
    count: Option<u64>,
) -> Result<(), BoxError> {
    tokio::fs::create_dir_all(&out)
        .await
        .map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let identity = load_identity(key.as_ref())?;
    let fingerprint = identity.fingerprint();
    let (endpoint, tcp) = Endpoint::server_with_tcp(listen, ServerConfig::new(identity)).await?;
    println!(
        "listening {} tcp {tcp} fingerprint {fingerprint}",
        endpoint.local_addr()
    );
    if receive_loop(&endpoint, out, count).await? {
        Ok(())
    } else {
        Err("some transfers were refused".into())
    }
}

// ---------------------------------------------------------------------------------------------
// Self-test
// ---------------------------------------------------------------------------------------------

/// Writes `size` random bytes to `path`.
async fn random_file(path: &Path, size: u64) -> Result<(), BoxError> {
    use rand::RngCore;
    let mut file = tokio::fs::File::create(path).await?;
    let mut buf = vec![0u8; CHUNK];
    let mut left = size;
    while left > 0 {
        let n = usize::try_from(left.min(CHUNK as u64))?;
        rand::thread_rng().fill_bytes(&mut buf[..n]);
        file.write_all(&buf[..n]).await?;
        left -= n as u64;
    }
    file.flush().await?;
    Ok(())
}

/// Compares two files byte for byte.
async fn same_content(a: &Path, b: &Path) -> Result<bool, BoxError> {
    Ok(tokio::fs::read(a).await? == tokio::fs::read(b).await?)
}

/// The `--self-test` mode: a receiver and a sender in this process, over loopback UDP.
async fn run_self_test(size: u64) -> Result<(), BoxError> {
    let dir = tempfile::tempdir()?;
    let source = dir.path().join("random.bin");
    let inbox = dir.path().join("inbox");
    tokio::fs::create_dir_all(&inbox).await?;
    random_file(&source, size).await?;

    let identity = Identity::generate(default_provider().as_ref())?;
    let pin = identity.fingerprint();
    let receiver = Endpoint::server(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        ServerConfig::new(identity),
    )?;
    let to = receiver.local_addr();
    let receiving = {
        let (receiver, inbox) = (receiver.clone(), inbox.clone());
        tokio::spawn(async move { receive_loop(&receiver, inbox, Some(1)).await })
    };
    run_send(source.clone(), to, pin, None, false, false).await?;
    let all_verified = receiving.await??;
    if !all_verified {
        return Err("the receiver refused the file".into());
    }
    if !same_content(&source, &inbox.join("random.bin")).await? {
        return Err("the stored file differs from the source".into());
    }
    println!("self-test passed: {size} bytes sent, verified and compared");
    Ok(())
}

/// Parses the arguments, runs, and turns an error into a message and exit status 1.
#[tokio::main]
async fn main() -> ExitCode {
    let result = match parse_args() {
        Ok(Command::Receive {
            listen,
            out,
            key,
            count,
        }) => run_receive(listen, out, key, count).await,
        Ok(Command::Send {
            file,
            to,
            pin,
            name,
            tcp,
            corrupt,
        }) => run_send(file, to, pin, name, tcp, corrupt).await,
        Ok(Command::SelfTest { size }) => run_self_test(size).await,
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
