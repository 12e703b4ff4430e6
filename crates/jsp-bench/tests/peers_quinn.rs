//! Contract tests of the quinn peer: the in-process server answers sink and
//! echo streams (many at once) and datagrams, the handshake can only use
//! X25519MLKEM768, and resumption sends 0-RTT data the server accepts.

mod common;

use std::time::Duration;

use anyhow::{ensure, Context};
use bytes::Bytes;
use common::{bounded, echo, payload, sink};
use jsp_bench::peers::quinn::{QuinnClient, QuinnConn, QuinnServer};
use jsp_bench::peers::tls_cert::crypto_provider;
use jsp_bench::peers::{
    BenchClient, BenchConn, BenchServer, ServeOptions, ServerInfo, MAX_BENCH_DATAGRAM,
};
use rustls::NamedGroup;

/// How long one datagram attempt waits for its echo before resending.
const ATTEMPT: Duration = Duration::from_secs(2);

/// Sends `data` as a datagram and returns the echo, resending a few times
/// in case the datagram (or its echo) was lost.
async fn datagram_echo<C: BenchConn>(conn: &C, data: Bytes) -> anyhow::Result<Bytes> {
    for _ in 0..5 {
        conn.send_datagram(data.clone())?;
        if let Ok(back) = tokio::time::timeout(ATTEMPT, conn.recv_datagram()).await {
            return back;
        }
    }
    anyhow::bail!("no datagram echo after 5 attempts")
}

/// Starts a server and a client for it.
async fn start() -> anyhow::Result<(ServerInfo, QuinnClient)> {
    let info = bounded(
        "server start",
        QuinnServer::start(&ServeOptions {
            workers: 1,
            ..Default::default()
        }),
    )
    .await?;
    ensure!(info.addr.ip().is_loopback());
    ensure!(!info.trust.is_empty());
    let client = bounded("client", QuinnClient::new(&info)).await?;
    Ok((info, client))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quinn_streams_and_datagrams() -> anyhow::Result<()> {
    ensure!(QuinnConn::MULTIPLEXED && QuinnConn::STREAMS && QuinnConn::DATAGRAMS);
    let (_info, client) = start().await?;
    let conn = bounded("connect", client.connect()).await?;
    ensure!(!conn.is_0rtt());

    let count = bounded("sink 1 MiB", sink(&conn, 1 << 20)).await?;
    ensure!(count == 1 << 20, "sink counted {count}");
    ensure!(bounded("empty sink", sink(&conn, 0)).await? == 0);

    let data = payload(1 << 20);
    let back = bounded("echo 1 MiB", echo(&conn, &data)).await?;
    ensure!(back == data, "echo returned {} different bytes", back.len());

    // Many concurrent streams on one connection.
    let echoes = (0..200u32).map(|i| {
        let conn = &conn;
        async move {
            let data = i.to_le_bytes().repeat(100);
            let back = echo(conn, &data).await?;
            ensure!(back == data, "stream {i}: echo differs");
            anyhow::Ok(())
        }
    });
    bounded("200 concurrent echoes", async {
        futures_util::future::try_join_all(echoes).await.map(drop)
    })
    .await?;

    for len in [1, 100, MAX_BENCH_DATAGRAM] {
        let data: Bytes = payload(len).into();
        let back = datagram_echo(&conn, data.clone()).await?;
        ensure!(back == data, "datagram echo of {len} bytes differs");
    }

    // A second connection over the same client endpoint.
    let other = bounded("connect", client.connect()).await?;
    ensure!(bounded("echo", echo(&other, b"second")).await? == b"second");
    other.close();
    conn.close();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quinn_key_exchange_is_x25519mlkem768_only() -> anyhow::Result<()> {
    // Both sides offer nothing else, so a completed handshake used it.
    let groups: Vec<NamedGroup> = crypto_provider()
        .kx_groups
        .iter()
        .map(|g| g.name())
        .collect();
    ensure!(groups == [NamedGroup::X25519MLKEM768], "groups {groups:?}");
    let (_info, client) = start().await?;
    let conn = bounded("connect", client.connect()).await?;
    ensure!(bounded("echo", echo(&conn, b"pq")).await? == b"pq");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quinn_resumption_uses_0rtt() -> anyhow::Result<()> {
    let (_info, client) = start().await?;

    // Without a ticket, `connect_resumed` falls back to a full handshake.
    let cold = bounded("connect_resumed", client.connect_resumed())
        .await?
        .context("quinn has resumption")?;
    ensure!(!cold.is_0rtt(), "0-RTT without a ticket");
    ensure!(bounded("echo", echo(&cold, b"cold")).await? == b"cold");

    let first = bounded("connect", client.connect()).await?;
    ensure!(bounded("echo", echo(&first, b"tickets")).await? == b"tickets");

    // Resumption, twice in a row (the resumed connection leaves tickets too).
    for round in 0..2 {
        let resumed = bounded("connect_resumed", client.connect_resumed())
            .await?
            .context("quinn has resumption")?;
        ensure!(resumed.is_0rtt(), "round {round}: no 0-RTT");
        // Used before the handshake completes: the request travels as
        // 0-RTT data.
        ensure!(bounded("0-RTT echo", echo(&resumed, b"early")).await? == b"early");
        let accepted =
            bounded("handshake", async { Ok(resumed.zero_rtt_accepted().await) }).await?;
        ensure!(
            accepted == Some(true),
            "round {round}: 0-RTT accepted: {accepted:?}"
        );
        ensure!(bounded("echo", echo(&resumed, b"later")).await? == b"later");
        let data: Bytes = payload(MAX_BENCH_DATAGRAM).into();
        ensure!(datagram_echo(&resumed, data.clone()).await? == data);
        resumed.close();
    }
    Ok(())
}
