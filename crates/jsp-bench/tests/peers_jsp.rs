//! The JetStreamProto peer against the benchmark contract, in process on
//! loopback: for the single-endpoint server and the worker pool, a sink
//! stream counts 1 MiB, an echo stream returns 1 MiB unchanged, datagrams
//! come back, 200 streams opened at once on one connection all work, and
//! `connect_resumed` resumes the session and sends its first stream as 0-RTT
//! (checked through a relay that holds the server's packets back).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context as _};
use bytes::Bytes;
use jsp::{CloseReason, ConnectionError};
use jsp_bench::peers::jsp::{JspClient, JspConn, JspPoolServer, JspServer};
use jsp_bench::peers::{
    BenchClient, BenchConn, BenchServer, ServeOptions, ServerInfo, CMD_ECHO, CMD_SINK,
    MAX_BENCH_DATAGRAM,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UdpSocket;
use tokio::sync::watch;

/// Longest any single step may take.
const WAIT: Duration = Duration::from_secs(30);

/// How long one datagram round trip may take before it is sent again.
const DATAGRAM_WAIT: Duration = Duration::from_secs(2);

/// Bytes sent through the sink and echo streams.
const MIB: usize = 1 << 20;

/// Streams opened at once on one connection.
const STREAMS: usize = 200;

/// Runs `f`, failing if it takes longer than [`WAIT`].
async fn bounded<F: Future>(what: &str, f: F) -> anyhow::Result<F::Output> {
    tokio::time::timeout(WAIT, f)
        .await
        .with_context(|| format!("{what}: no result within {WAIT:?}"))
}

/// `len` bytes of a pattern depending on `seed`.
fn pattern(len: usize, seed: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 7 + seed) % 251) as u8).collect()
}

/// Sends `data` on a sink stream; returns the count the server answered.
async fn sink(conn: &JspConn, data: &[u8]) -> anyhow::Result<u64> {
    let (mut send, mut recv) = conn.open_bi().await?;
    send.write_all(&[CMD_SINK]).await?;
    send.write_all(data).await?;
    // `shutdown` must finish the stream: the server answers only at its end.
    send.shutdown().await?;
    let mut answer = Vec::new();
    recv.read_to_end(&mut answer).await?;
    let count: [u8; 8] = answer
        .as_slice()
        .try_into()
        .with_context(|| format!("the sink answered {} bytes, not 8", answer.len()))?;
    Ok(u64::from_le_bytes(count))
}

/// Sends `data` on an echo stream (writing and reading at once); returns
/// what came back before the server finished its side.
async fn echo(conn: &JspConn, data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let (mut send, mut recv) = conn.open_bi().await?;
    let write = async {
        send.write_all(&[CMD_ECHO]).await?;
        send.write_all(data).await?;
        send.shutdown().await
    };
    let mut back = Vec::with_capacity(data.len());
    let (written, read) = tokio::join!(write, recv.read_to_end(&mut back));
    written.context("writing the echo stream")?;
    read.context("reading the echo stream")?;
    Ok(back)
}

/// Sends `data` as a datagram until it comes back (a datagram may be lost).
async fn datagram_round_trip(conn: &JspConn, data: Bytes) -> anyhow::Result<()> {
    for _ in 0..5 {
        conn.send_datagram(data.clone())?;
        if let Ok(back) = tokio::time::timeout(DATAGRAM_WAIT, conn.recv_datagram()).await {
            ensure!(back? == data, "the datagram came back altered");
            return Ok(());
        }
    }
    anyhow::bail!("no datagram of {} bytes came back", data.len())
}

/// Starts server `S` with `workers` and checks every part of the contract
/// on one connection of a [`JspClient`].
async fn check_contract<S: BenchServer>(workers: usize) -> anyhow::Result<()> {
    let info = S::start(&ServeOptions {
        workers,
        ..Default::default()
    })
    .await?;
    ensure!(info.addr.ip().is_loopback(), "listens on {}", info.addr);
    let client = JspClient::new(&info).await?;
    let conn = Arc::new(bounded("connect", client.connect()).await??);
    let summary = conn
        .connection()
        .handshake_summary()
        .context("connect returned before the handshake completed")?;
    ensure!(!summary.resumed, "a plain connect resumed a session");

    let data = pattern(MIB, 1);
    let counted = bounded("sink of 1 MiB", sink(&conn, &data)).await??;
    ensure!(counted == MIB as u64, "the sink counted {counted} bytes");
    let back = bounded("echo of 1 MiB", echo(&conn, &data)).await??;
    ensure!(
        back == data,
        "echoed {} of {} bytes, or altered",
        back.len(),
        data.len()
    );
    // An empty sink stream counts zero.
    let counted = bounded("empty sink", sink(&conn, &[])).await??;
    ensure!(counted == 0, "the empty sink counted {counted} bytes");

    for (len, seed) in [(1, 2), (100, 3), (MAX_BENCH_DATAGRAM, 4)] {
        let d = Bytes::from(pattern(len, seed));
        bounded("datagram echo", datagram_round_trip(&conn, d)).await??;
    }

    // 200 streams at once on the one connection, echo and sink alternating.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..STREAMS {
        let conn = conn.clone();
        tasks.spawn(async move {
            let data = pattern(1000 + i, i);
            if i % 2 == 0 {
                let back = echo(&conn, &data).await?;
                ensure!(back == data, "stream {i}: the echo differs");
            } else {
                let counted = sink(&conn, &data).await?;
                ensure!(
                    counted == data.len() as u64,
                    "stream {i}: counted {counted}"
                );
            }
            anyhow::Ok(())
        });
    }
    bounded("200 concurrent streams", async {
        while let Some(r) = tasks.join_next().await {
            r??;
        }
        anyhow::Ok(())
    })
    .await??;

    conn.close();
    let ended = bounded("close", conn.connection().closed()).await?;
    ensure!(
        ended
            == ConnectionError::LocallyClosed {
                reason: CloseReason::Normal
            },
        "closed with {ended}"
    );
    Ok(())
}

/// A UDP relay between one client and a server that can hold back what the
/// server sends: while the gate is closed no server packet reaches the
/// client, so no handshake through the relay can complete.
struct Relay {
    /// The address clients send to.
    addr: SocketAddr,
    /// `true`: server packets pass; `false`: they wait.
    gate: watch::Sender<bool>,
}

impl Relay {
    /// Starts a relay to `server` with the gate open.
    async fn start(server: SocketAddr) -> anyhow::Result<Self> {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        back.connect(server).await?;
        let addr = front.local_addr()?;
        let (gate, mut open) = watch::channel(true);
        let (client_tx, mut client_rx) = watch::channel(None::<SocketAddr>);
        let (f, b) = (front.clone(), back.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            while let Ok((n, from)) = f.recv_from(&mut buf).await {
                client_tx.send_if_modified(|c| c.replace(from) != Some(from));
                if b.send(&buf[..n]).await.is_err() {
                    return;
                }
            }
        });
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            while let Ok(n) = back.recv(&mut buf).await {
                // Checked after the packet arrived: a packet answering
                // anything sent after the gate closed waits here.
                if open.wait_for(|o| *o).await.is_err() {
                    return;
                }
                let Some(client) = *client_rx.borrow_and_update() else {
                    continue;
                };
                if front.send_to(&buf[..n], client).await.is_err() {
                    return;
                }
            }
        });
        Ok(Self { addr, gate })
    }

    /// Lets server packets through (`true`) or holds them back (`false`).
    fn set_open(&self, open: bool) {
        self.gate.send_replace(open);
    }
}

/// Starts server `S` and checks, through a [`Relay`], that
/// `connect_resumed` returns before the server answered (so the stream
/// written next leaves as 0-RTT data), that the session was resumed, and
/// that a resumed connection leaves a ticket for the next resumption.
async fn check_resumption<S: BenchServer>(workers: usize) -> anyhow::Result<()> {
    let info = S::start(&ServeOptions {
        workers,
        ..Default::default()
    })
    .await?;
    let relay = Relay::start(info.addr).await?;
    let client = JspClient::new(&ServerInfo {
        addr: relay.addr,
        trust: info.trust.clone(),
    })
    .await?;
    let first = bounded("connect", client.connect()).await??;
    let hello = pattern(100, 5);
    ensure!(bounded("echo", echo(&first, &hello)).await?? == hello);
    bounded("first ticket", first.connection().wait_session_ticket()).await??;
    first.close();

    for round in 0..2 {
        relay.set_open(false);
        let resumed = bounded("connect_resumed", client.connect_resumed())
            .await??
            .context("jsp has resumption")?;
        ensure!(
            resumed.connection().handshake_summary().is_none(),
            "round {round}: the handshake completed with the server held back"
        );
        // Written before the server could answer: only possible as 0-RTT.
        let data = pattern(1000, round);
        let (mut send, mut recv) = resumed.open_bi().await?;
        bounded("0-RTT write", async {
            send.write_all(&[CMD_ECHO]).await?;
            send.write_all(&data).await?;
            send.shutdown().await
        })
        .await??;
        relay.set_open(true);
        let mut back = Vec::new();
        bounded("echo of the 0-RTT stream", recv.read_to_end(&mut back)).await??;
        ensure!(back == data, "round {round}: the echo differs");
        let summary = bounded("resumed handshake", resumed.connection().established()).await??;
        ensure!(
            summary.resumed,
            "round {round}: the session was not resumed"
        );
        // The next round resumes with the ticket this connection received.
        bounded("ticket", resumed.connection().wait_session_ticket()).await??;
        resumed.close();
        bounded("close", resumed.connection().closed()).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_server_keeps_the_contract() -> anyhow::Result<()> {
    check_contract::<JspServer>(0).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_server_keeps_the_contract() -> anyhow::Result<()> {
    check_contract::<JspPoolServer>(2).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_server_resumes_with_0rtt() -> anyhow::Result<()> {
    check_resumption::<JspServer>(0).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_server_resumes_with_0rtt() -> anyhow::Result<()> {
    check_resumption::<JspPoolServer>(2).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumption_without_a_ticket_fails_clearly() -> anyhow::Result<()> {
    let info = JspServer::start(&ServeOptions {
        workers: 0,
        ..Default::default()
    })
    .await?;
    let client = JspClient::new(&info).await?;
    let r = bounded("connect_resumed", client.connect_resumed()).await?;
    ensure!(r.is_err(), "resumed without any ticket");
    Ok(())
}
