//! Handshakes: `handshake` (full handshake latency, from connect to the
//! first byte echoed back), `handshake_rate` (handshakes per second the
//! server sustains with many clients connecting at once) and `resume`
//! (the same latency with session resumption and 0-RTT data where the
//! implementation has them).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context};

use super::{echo_one_byte, per_sec, Measure};
use crate::latency::{now, Latencies};
use crate::peers::{BenchClient, BenchConn, ServerInfo};

/// Handshakes made before measuring (caches, allocator, first-use costs).
const WARMUP: usize = 5;

fn latency_measures(latencies: &Latencies) -> Vec<Measure> {
    vec![
        Measure::new("p50_us", "us", latencies.quantile_us(0.5)),
        Measure::new("p99_us", "us", latencies.quantile_us(0.99)),
    ]
}

/// `count` sequential full handshakes, each timed from the start of the
/// connect to the first byte echoed.
pub async fn latency<C: BenchClient>(
    server: &ServerInfo,
    count: usize,
) -> anyhow::Result<Vec<Measure>> {
    let client = C::new(server).await?;
    let mut latencies = Latencies::new();
    for i in 0..WARMUP + count {
        let start = now();
        let conn = client.connect().await.context("connecting")?;
        echo_one_byte(&conn).await?;
        let elapsed = start.elapsed();
        conn.close();
        if i >= WARMUP {
            latencies.record(elapsed);
        }
    }
    Ok(latency_measures(&latencies))
}

/// `total` handshakes (each with a one-byte echo) by `concurrency` clients
/// at once; handshakes per second over the whole run.
pub async fn rate<C: BenchClient>(
    server: &ServerInfo,
    concurrency: usize,
    total: usize,
) -> anyhow::Result<Vec<Measure>> {
    let client = Arc::new(C::new(server).await?);
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let start = now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, next, failed) =
                (Arc::clone(&client), Arc::clone(&next), Arc::clone(&failed));
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < total {
                    match client.connect().await {
                        Ok(conn) => {
                            if echo_one_byte(&conn).await.is_err() {
                                failed.fetch_add(1, Ordering::Relaxed);
                            }
                            conn.close();
                        }
                        Err(_) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.context("a handshake task panicked")?;
    }
    let elapsed = start.elapsed();
    let failed = failed.load(Ordering::Relaxed);
    if failed * 100 > total {
        bail!("{failed} of {total} handshakes failed");
    }
    Ok(vec![Measure::new(
        "per_sec",
        "hs/s",
        per_sec(total - failed, elapsed),
    )])
}

/// `count` sequential resumed handshakes (0-RTT where available), each
/// timed from the start of the connect to the first byte echoed. `None`
/// when the implementation has no resumption.
pub async fn resume<C: BenchClient>(
    server: &ServerInfo,
    count: usize,
) -> anyhow::Result<Option<Vec<Measure>>> {
    let client = C::new(server).await?;
    let first = client.connect().await.context("connecting")?;
    echo_one_byte(&first).await?;
    first.close();
    let mut latencies = Latencies::new();
    let (mut asked, mut resumed) = (0usize, 0usize);
    for i in 0..WARMUP + count {
        let start = now();
        let Some(conn) = client.connect_resumed().await.context("resuming")? else {
            return Ok(None);
        };
        echo_one_byte(&conn).await?;
        let elapsed = start.elapsed();
        if i >= WARMUP {
            if let Some(was_resumed) = conn.resumed() {
                asked += 1;
                resumed += usize::from(was_resumed);
            }
        }
        // One more round trip before closing (not timed): the server sends its next session
        // ticket after the handshake, and the next resumption needs one. (TLS sends its
        // tickets with the handshake's last flight, and has one stream per connection.)
        if C::Conn::MULTIPLEXED {
            echo_one_byte(&conn).await?;
        }
        conn.close();
        if i >= WARMUP {
            latencies.record(elapsed);
        }
    }
    let mut measures = latency_measures(&latencies);
    if asked > 0 {
        // Resumptions that fell back to a full handshake would flatter nobody: report them.
        measures.push(Measure::new(
            "resumed_ratio",
            "",
            resumed as f64 / asked as f64,
        ));
    }
    Ok(Some(measures))
}
