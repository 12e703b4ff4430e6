//! What `jsp serve` does with the connections it accepts: echo (with `--echo`), receive files
//! (with `--files DIR`, see [`crate::transfer`]), answer benchmarks (always, see
//! [`crate::bench`]), and otherwise read and discard what clients send.

use std::net::SocketAddr;
use std::sync::Arc;

use jsp::{Connection, RecvStream, SendStream, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{debug, info, warn};

use crate::bench;
use crate::client::{carriage_name, suite_name};
use crate::protocol::{classify, write_text_message, StreamKind};
use crate::transfer::{Received, Receiver};

/// STOP_SENDING code when the server will read no more of a stream (a refused transfer).
pub const STOP_REFUSED: u64 = 1;

/// What the server does.
#[derive(Debug, Default)]
pub struct Behaviour {
    /// Echo every stream and datagram.
    pub echo: bool,
    /// Receive files into a directory.
    pub files: Option<Receiver>,
}

impl Behaviour {
    /// `echo, files into DIR, bench`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.echo {
            parts.push("echo".to_owned());
        }
        if let Some(r) = &self.files {
            parts.push(format!("files into {}", r.dir().display()));
        }
        parts.push("bench".to_owned());
        parts.join(", ")
    }
}

/// Accepts connections on `server` until it shuts down, serving each on its own task.
pub async fn accept_loop(server: Arc<Server>, behaviour: Arc<Behaviour>) {
    while let Some(conn) = server.accept().await {
        tokio::spawn(serve_connection(conn, behaviour.clone()));
    }
}

/// Serves one connection until it ends.
pub async fn serve_connection(conn: Connection, behaviour: Arc<Behaviour>) {
    let summary = match conn.established().await {
        Ok(s) => s,
        Err(e) => {
            debug!(reason = %e, "handshake failed");
            return;
        }
    };
    let peer = peer_name(conn.remote_address());
    info!(
        %peer,
        carriage = carriage_name(conn.carriage()),
        suite = suite_name(summary.suite),
        group = summary.group,
        resumed = summary.resumed,
        "client connected"
    );
    if behaviour.echo {
        tokio::spawn(echo_datagrams(conn.clone()));
    }
    let reason = loop {
        tokio::select! {
            r = conn.accept_bi() => match r {
                Ok((send, recv)) => {
                    tokio::spawn(serve_bi(send, recv, behaviour.clone(), peer.clone()));
                }
                Err(e) => break e,
            },
            r = conn.accept_uni() => match r {
                Ok(recv) => {
                    tokio::spawn(serve_uni(conn.clone(), recv, behaviour.clone()));
                }
                Err(e) => break e,
            },
        }
    };
    let stats = conn.stats();
    info!(
        %peer,
        %reason,
        bytes_received = stats.bytes_received,
        bytes_sent = stats.bytes_sent,
        "client disconnected"
    );
}

fn peer_name(addr: Option<SocketAddr>) -> String {
    addr.map_or_else(|| "unknown".to_owned(), |a| a.to_string())
}

/// One bidirectional stream: a file, a benchmark, or data to echo or discard.
async fn serve_bi(
    mut send: SendStream,
    mut recv: RecvStream,
    behaviour: Arc<Behaviour>,
    peer: String,
) {
    let (kind, head) = match classify(&mut recv).await {
        Ok(x) => x,
        Err(e) => {
            debug!(%peer, error = %e, "stream failed");
            return;
        }
    };
    let result = match kind {
        StreamKind::File => receive_file(&mut send, &mut recv, &head, &behaviour, &peer).await,
        StreamKind::Bench => bench::serve(&mut recv, &mut send, &head)
            .await
            .map(|n| debug!(%peer, bytes = n, "benchmark stream done")),
        StreamKind::Data if behaviour.echo => echo(&mut send, &mut recv, &head).await,
        StreamKind::Data => discard(&mut recv, &head).await,
    };
    if let Err(e) = result {
        debug!(%peer, error = %e, "stream failed");
    }
    let _ = send.finish();
}

async fn receive_file(
    send: &mut SendStream,
    recv: &mut RecvStream,
    head: &[u8],
    behaviour: &Behaviour,
    peer: &str,
) -> std::io::Result<()> {
    let Some(receiver) = &behaviour.files else {
        let why = "this server does not accept files; start it with `jsp serve --files DIR`";
        write_text_message(send, b'E', why).await?;
        recv.stop(STOP_REFUSED);
        return Ok(());
    };
    let outcome = {
        let mut reader = head.chain(&mut *recv);
        receiver.receive(&mut reader, send).await
    };
    match outcome {
        Ok(Received::Stored {
            name,
            size,
            resumed_from,
        }) => info!(%peer, file = %name, size, resumed_from, "file received"),
        Ok(Received::AlreadyThere { name, size }) => {
            info!(%peer, file = %name, size, "file already here")
        }
        Err(e) => {
            warn!(%peer, error = %e, "file transfer failed");
            recv.stop(STOP_REFUSED);
        }
    }
    Ok(())
}

async fn echo(send: &mut SendStream, recv: &mut RecvStream, head: &[u8]) -> std::io::Result<()> {
    send.write_all(head).await?;
    bench::echo_copy(recv, send).await.map(|_| ())
}

async fn discard(recv: &mut RecvStream, head: &[u8]) -> std::io::Result<()> {
    let mut total = head.len() as u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = recv.read(&mut buf).await?;
        if n == 0 {
            debug!(bytes = total, "stream discarded (the server does not echo)");
            return Ok(());
        }
        total += n as u64;
    }
}

/// A unidirectional stream: echoed on a new unidirectional stream, or discarded.
async fn serve_uni(conn: Connection, mut recv: RecvStream, behaviour: Arc<Behaviour>) {
    let result = if behaviour.echo {
        match conn.open_uni().await {
            Ok(mut send) => {
                let r = bench::echo_copy(&mut recv, &mut send).await.map(|_| ());
                let _ = send.finish();
                r
            }
            Err(e) => Err(std::io::Error::other(e)),
        }
    } else {
        discard(&mut recv, &[]).await
    };
    if let Err(e) = result {
        debug!(error = %e, "unidirectional stream failed");
    }
}

/// Sends every datagram back.
async fn echo_datagrams(conn: Connection) {
    while let Ok(d) = conn.read_datagram().await {
        // A full send queue drops the echo, as the network may.
        let _ = conn.send_datagram(&d);
    }
}
