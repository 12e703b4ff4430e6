//! Bulk throughput: `bulk` (one connection, one stream), `bulk8` (eight
//! streams on one connection, or eight connections where the transport
//! has no streams), and `scaling` (several connections, each from its own
//! client socket, so a multi-socket server can spread them over cores).

use std::sync::Arc;

use anyhow::Context;

use super::{gbps, sink, Measure};
use crate::latency::now;
use crate::peers::{BenchClient, BenchConn, ServerInfo};

/// Moves `bytes` over one stream of one connection.
pub async fn bulk<C: BenchClient>(server: &ServerInfo, bytes: u64) -> anyhow::Result<Vec<Measure>> {
    let client = C::new(server).await?;
    let conn = client.connect().await.context("connecting")?;
    let start = now();
    sink(&conn, bytes).await?;
    let elapsed = start.elapsed();
    conn.close();
    Ok(vec![Measure::new(
        "throughput_gbps",
        "Gbit/s",
        gbps(bytes, elapsed),
    )])
}

/// Moves `bytes` in total over `streams` parallel streams of one
/// connection (or `streams` connections when the transport has no
/// multiplexing).
pub async fn parallel<C: BenchClient>(
    server: &ServerInfo,
    bytes: u64,
    streams: usize,
) -> anyhow::Result<Vec<Measure>> {
    let client = C::new(server).await?;
    let per_stream = bytes / streams as u64;
    let mut conns = Vec::with_capacity(streams);
    if C::Conn::MULTIPLEXED {
        let conn = Arc::new(client.connect().await.context("connecting")?);
        conns.extend(std::iter::repeat_n(conn, streams));
    } else {
        for _ in 0..streams {
            conns.push(Arc::new(client.connect().await.context("connecting")?));
        }
    }
    let start = now();
    let tasks: Vec<_> = conns
        .iter()
        .map(|conn| {
            let conn = Arc::clone(conn);
            tokio::spawn(async move { sink(&*conn, per_stream).await })
        })
        .collect();
    for task in tasks {
        task.await.context("a stream task panicked")??;
    }
    let elapsed = start.elapsed();
    for conn in &conns {
        conn.close();
    }
    Ok(vec![Measure::new(
        "throughput_gbps",
        "Gbit/s",
        gbps(per_stream * streams as u64, elapsed),
    )])
}

/// Moves `bytes` in total over `conns` connections, each from its own
/// client (its own socket), in parallel.
pub async fn scaling<C: BenchClient>(
    server: &ServerInfo,
    bytes: u64,
    conns: usize,
) -> anyhow::Result<Vec<Measure>> {
    let per_conn = bytes / conns as u64;
    let mut clients = Vec::with_capacity(conns);
    for _ in 0..conns {
        let client = C::new(server).await?;
        let conn = Arc::new(client.connect().await.context("connecting")?);
        clients.push((client, conn));
    }
    let start = now();
    let tasks: Vec<_> = clients
        .iter()
        .map(|(_, conn)| {
            let conn = Arc::clone(conn);
            tokio::spawn(async move { sink(&*conn, per_conn).await })
        })
        .collect();
    for task in tasks {
        task.await.context("a connection task panicked")??;
    }
    let elapsed = start.elapsed();
    for (_, conn) in &clients {
        conn.close();
    }
    Ok(vec![Measure::new(
        "throughput_gbps",
        "Gbit/s",
        gbps(per_conn * conns as u64, elapsed),
    )])
}
