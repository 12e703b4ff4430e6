//! The client side of the file transfer: `jsp send`.

use std::io::{self, SeekFrom};
use std::path::Path;
use std::time::Duration;

use jsp::{CloseReason, Connection, ConnectionError, RecvStream};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::sync::watch;

use super::{check_name, hash_file, Offer, CHUNK, ERROR, OK, PROGRESS, PROGRESS_INTERVAL, READY};
use crate::clock::Stopwatch;
use crate::error::CliError;
use crate::progress::{Progress, ProgressMode};
use crate::protocol::read_text;
use crate::units::fmt_bytes;

/// After a write failed, how long to wait for the server's reason.
const REASON_WAIT: Duration = Duration::from_secs(2);

/// How to send.
#[derive(Debug, Clone)]
pub struct SendOptions {
    /// The name the server stores the file under.
    pub name: String,
    /// Progress display.
    pub progress: ProgressMode,
    /// For tests of resumption: send only this many bytes, wait until the server has written
    /// them (to the last whole [`PROGRESS_INTERVAL`]), say so on standard error, then stop
    /// sending without ending the stream and wait forever (to be killed).
    pub stall_after: Option<u64>,
}

/// What a completed transfer did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendReport {
    /// The name stored under.
    pub name: String,
    /// The file's size.
    pub size: u64,
    /// Bytes the server already had.
    pub resumed_from: u64,
    /// Bytes sent now.
    pub sent: u64,
    /// SHA-256 of the file, verified by the server.
    pub sha256: [u8; 32],
    /// Time from the offer to the server's confirmation.
    pub elapsed: Duration,
}

/// Sends the file at `path` over a new stream of `conn`; `Ok` only once the server confirmed
/// that it stored the whole file with the announced SHA-256.
pub async fn send_file(
    conn: &Connection,
    path: &Path,
    opts: &SendOptions,
) -> Result<SendReport, CliError> {
    check_name(&opts.name).map_err(|why| CliError::new(why).hint("choose another with --name"))?;
    let read_error = |e: &io::Error| CliError::io(format_args!("read {}", path.display()), e);
    let meta = tokio::fs::metadata(path)
        .await
        .map_err(|e| read_error(&e))?;
    if !meta.is_file() {
        return Err(CliError::new(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    let (sha256, size) = hash_file(path).await.map_err(|e| read_error(&e))?;
    let offer = Offer {
        name: opts.name.clone(),
        size,
        sha256,
    };
    let stream_error = |e: io::Error| {
        CliError::new(format!("the transfer of {} broke off: {e}", opts.name))
            .hint("run the same command again to resume")
    };
    let clock = Stopwatch::start();
    let (mut send, mut recv) = conn
        .open_bi()
        .await
        .map_err(|e| CliError::new(format!("cannot open a stream: {e}")))?;
    send.write_all(&offer.encode())
        .await
        .map_err(stream_error)?;
    let resumed_from = match recv.read_u8().await.map_err(stream_error)? {
        READY => recv.read_u64().await.map_err(stream_error)?,
        ERROR => return Err(refused(&mut recv).await),
        other => return Err(protocol_error(other)),
    };
    if resumed_from > size {
        return Err(CliError::new(format!(
            "the server claims {resumed_from} bytes of a {size}-byte file"
        )));
    }
    send.write_u64(resumed_from).await.map_err(stream_error)?;

    let (have_tx, mut have_rx) = watch::channel(resumed_from);
    let mut replies = tokio::spawn(read_replies(recv, have_tx));
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| read_error(&e))?;
    file.seek(SeekFrom::Start(resumed_from))
        .await
        .map_err(|e| read_error(&e))?;
    let mut progress = Progress::new(
        &format!("send {}", opts.name),
        Some(size),
        resumed_from,
        opts.progress,
    );
    if resumed_from > 0 && resumed_from < size {
        progress.println(&format!(
            "resuming {}: the server has {} of {}",
            opts.name,
            fmt_bytes(resumed_from),
            fmt_bytes(size)
        ));
    }
    let stop_at = opts
        .stall_after
        .map_or(size, |n| size.min(resumed_from + n));
    let mut position = resumed_from;
    let mut buf = vec![0u8; CHUNK];
    let mut write_error = None;
    while position < stop_at {
        if replies.is_finished() {
            // The server answered early: an error, reported below.
            break;
        }
        let want = usize::try_from(stop_at - position)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let chunk = buf.get_mut(..want).unwrap_or_default();
        let n = file.read(chunk).await.map_err(|e| read_error(&e))?;
        if n == 0 {
            return Err(CliError::new(format!(
                "{} became shorter while it was being sent",
                path.display()
            ))
            .hint("send it again once it no longer changes"));
        }
        if let Err(e) = send.write_all(chunk.get(..n).unwrap_or_default()).await {
            // The server stopped the stream: its reply says why.
            write_error = Some(e);
            break;
        }
        position += n as u64;
        progress.set(position);
    }
    if opts.stall_after.is_some() && position < size && !replies.is_finished() {
        let wait_for = position / PROGRESS_INTERVAL * PROGRESS_INTERVAL;
        let _ = have_rx.wait_for(|have| *have >= wait_for).await;
        progress.finish();
        eprintln!("stalled after sending {position} bytes; the server has written {wait_for}");
        std::future::pending::<()>().await;
    }
    let outcome = match write_error {
        None => {
            let _ = send.finish();
            (&mut replies).await
        }
        Some(e) => match tokio::time::timeout(REASON_WAIT, &mut replies).await {
            Ok(outcome) => outcome,
            Err(_) => Ok(Reply::Broken(e)),
        },
    }
    .map_err(|e| CliError::new(format!("internal error: {e}")))?;
    progress.finish();
    match outcome {
        Reply::Ok(confirmed) if confirmed == size => Ok(SendReport {
            name: opts.name.clone(),
            size,
            resumed_from,
            sent: position - resumed_from,
            sha256,
            elapsed: clock.elapsed(),
        }),
        Reply::Ok(confirmed) => Err(CliError::new(format!(
            "the server confirmed {confirmed} bytes of a {size}-byte file"
        ))),
        Reply::Refused(why) => Err(CliError::new(format!("the server refused: {why}"))),
        Reply::Broken(e) => Err(broke_off(conn, &opts.name, e).await),
    }
}

/// Why a transfer broke off, from the connection's end if it ended.
async fn broke_off(conn: &Connection, name: &str, e: io::Error) -> CliError {
    let ended = tokio::time::timeout(Duration::ZERO, conn.closed())
        .await
        .ok();
    match ended {
        Some(
            reason @ ConnectionError::PeerClosed {
                reason: CloseReason::RateLimitExceeded,
                ..
            },
        ) => CliError::new(format!("the server closed the connection: {reason}")).hint(
            "it limits how fast a client may send: ask its operator to raise \
             [limits] rate_limit_bytes, then run the same command again to resume",
        ),
        Some(reason) => CliError::new(format!("the transfer of {name} broke off: {reason}"))
            .hint("run the same command again to resume"),
        None => CliError::new(format!("the transfer of {name} broke off: {e}"))
            .hint("run the same command again to resume"),
    }
}

/// The server's last word.
enum Reply {
    Ok(u64),
    Refused(String),
    Broken(io::Error),
}

/// Reads progress reports until the server's final answer.
async fn read_replies(mut recv: RecvStream, have: watch::Sender<u64>) -> Reply {
    loop {
        let kind = match recv.read_u8().await {
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Reply::Broken(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server ended the stream without confirming",
                ))
            }
            Err(e) => return Reply::Broken(e),
        };
        match kind {
            PROGRESS => match recv.read_u64().await {
                Ok(n) => {
                    have.send_replace(n);
                }
                Err(e) => return Reply::Broken(e),
            },
            OK => {
                return match recv.read_u64().await {
                    Ok(n) => Reply::Ok(n),
                    Err(e) => Reply::Broken(e),
                }
            }
            ERROR => {
                return match read_text(&mut recv).await {
                    Ok(t) => Reply::Refused(t),
                    Err(e) => Reply::Broken(e),
                }
            }
            other => {
                return Reply::Broken(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("unexpected reply byte 0x{other:02x}"),
                ))
            }
        }
    }
}

async fn refused(recv: &mut RecvStream) -> CliError {
    match read_text(recv).await {
        Ok(why) => CliError::new(format!("the server refused: {why}")),
        Err(e) => CliError::new(format!(
            "the server refused, and its reason was cut off: {e}"
        )),
    }
}

fn protocol_error(byte: u8) -> CliError {
    CliError::new(format!(
        "the server answered 0x{byte:02x}, which is not part of the file transfer protocol"
    ))
    .hint("check that the address is a `jsp serve --files DIR` server")
}

/// The file name a path is sent under by default.
pub fn default_name(path: &Path) -> Result<String, CliError> {
    let name = path
        .file_name()
        .ok_or_else(|| CliError::new(format!("{} does not name a file", path.display())))?;
    name.to_str().map(str::to_owned).ok_or_else(|| {
        CliError::new(format!("the name of {} is not valid UTF-8", path.display()))
            .hint("choose a name with --name")
    })
}
