//! `jsp connect`: lines typed on standard input go to the server on one bidirectional stream,
//! and whatever the server sends back (an `--echo` server: the same lines) is printed as it
//! arrives. End of input finishes the stream; the session ends when the server has finished its
//! side too.

use std::io::{self, BufRead};

use jsp::Connection;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::error::CliError;

/// Lines buffered between the standard input thread and the connection.
const LINE_QUEUE: usize = 64;

/// What a session moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Session {
    /// Lines sent.
    pub lines: u64,
    /// Bytes sent.
    pub sent: u64,
    /// Bytes received.
    pub received: u64,
}

/// Reads standard input line by line on a thread of its own (a blocked terminal read must not
/// hold up the runtime's shutdown). The channel closes at end of input.
pub fn stdin_lines() -> mpsc::Receiver<io::Result<Vec<u8>>> {
    let (tx, rx) = mpsc::channel(LINE_QUEUE);
    std::thread::spawn(move || {
        let mut stdin = io::stdin().lock();
        loop {
            let mut line = Vec::new();
            match stdin.read_until(b'\n', &mut line) {
                Ok(0) => return,
                Ok(_) => {
                    if tx.blocking_send(Ok(line)).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    rx
}

/// Runs a session: sends each line from `lines`, writes what comes back to `out`.
pub async fn run<W>(
    conn: &Connection,
    mut lines: mpsc::Receiver<io::Result<Vec<u8>>>,
    mut out: W,
) -> Result<Session, CliError>
where
    W: AsyncWrite + Unpin + Send + 'static,
{
    let ended = |e: &dyn std::fmt::Display| CliError::new(format!("the connection ended: {e}"));
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| ended(&e))?;
    let printer = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        let mut received = 0u64;
        loop {
            let n = recv.read(&mut buf).await?;
            if n == 0 {
                return Ok::<u64, io::Error>(received);
            }
            out.write_all(buf.get(..n).unwrap_or_default()).await?;
            out.flush().await?;
            received += n as u64;
        }
    });
    let mut session = Session::default();
    loop {
        let line = tokio::select! {
            line = lines.recv() => line,
            e = conn.closed() => return Err(ended(&e)),
        };
        match line {
            Some(Ok(line)) => {
                send.write_all(&line).await.map_err(|e| ended(&e))?;
                session.lines += 1;
                session.sent += line.len() as u64;
            }
            Some(Err(e)) => {
                return Err(CliError::io("read standard input", &e));
            }
            None => break,
        }
    }
    send.finish().map_err(|e| ended(&e))?;
    let received = tokio::select! {
        r = printer => r.map_err(|e| CliError::new(format!("internal error: {e}")))?,
        e = conn.closed() => return Err(ended(&e)),
    };
    session.received = received.map_err(|e| {
        if e.kind() == io::ErrorKind::BrokenPipe {
            CliError::Stdout(e)
        } else {
            ended(&e)
        }
    })?;
    Ok(session)
}
