//! Many connections: `idle_conns` opens N connections to a freshly started
//! server, leaves them idle, and reports the server's resident memory per
//! connection (RSS delta / N) and how fast they were established.

use std::time::Duration;

use anyhow::Context;
use futures_util::stream::{self, StreamExt, TryStreamExt};

use super::{echo_one_byte, per_sec, Measure};
use crate::child::ServerProcess;
use crate::latency::now;
use crate::peers::{BenchClient, BenchConn};

/// Handshakes in flight at once while establishing.
const CONCURRENCY: usize = 64;

/// Time left for the server to free handshake state and settle before
/// its memory is read.
const SETTLE: Duration = Duration::from_millis(500);

/// Opens `count` connections to `server` and measures the server's memory.
pub async fn idle_conns<C: BenchClient>(
    server: &ServerProcess,
    count: usize,
) -> anyhow::Result<Vec<Measure>> {
    let client = C::new(server.info()).await?;
    // One full exchange first so that lazily created server state (buffers,
    // pools, runtime threads) is part of the baseline, not the delta.
    let warm = client.connect().await.context("connecting")?;
    echo_one_byte(&warm).await?;
    warm.close();
    tokio::time::sleep(SETTLE).await;
    let before = server.rss_bytes()?;
    let start = now();
    let conns: Vec<C::Conn> = stream::iter(0..count)
        .map(|_| client.connect())
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await
        .context("establishing the idle connections")?;
    let elapsed = start.elapsed();
    tokio::time::sleep(SETTLE).await;
    let after = server.rss_bytes()?;
    for conn in &conns {
        conn.close();
    }
    let per_conn = after.saturating_sub(before) as f64 / count as f64;
    Ok(vec![
        Measure::new("bytes_per_conn", "B", per_conn),
        Measure::new("establish_per_sec", "conn/s", per_sec(count, elapsed)),
    ])
}
