//! Datagrams: `datagrams` sends N unreliable 64-byte messages to the
//! server's echo with a window of them in flight, and reports echoed
//! messages per second, their round-trip latency and the fraction lost.
//!
//! A message whose echo has not arrived 20 ms after the last echo is
//! counted lost and its window slot reused, so a loss never stalls the run.

use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;

use super::{per_sec, Measure};
use crate::latency::{now, Latencies};
use crate::peers::{BenchClient, BenchConn, ServerInfo};

/// Messages in flight at once.
const WINDOW: usize = 64;
/// Size of each message (sequence number, send time, padding).
const SIZE: usize = 64;
/// Silence after which the messages in flight are counted lost.
const LOSS_TIMEOUT: Duration = Duration::from_millis(20);

/// Echoes `count` datagrams.
pub async fn datagrams<C: BenchClient>(
    server: &ServerInfo,
    count: usize,
) -> anyhow::Result<Vec<Measure>> {
    let client = C::new(server).await?;
    let conn = client.connect().await.context("connecting")?;
    let start = now();
    let mut latencies = Latencies::new();
    let (mut sent, mut in_flight, mut received, mut lost) = (0usize, 0usize, 0usize, 0usize);
    let mut message = [0u8; SIZE];
    while received + lost < count {
        while in_flight < WINDOW && sent < count {
            message[..8].copy_from_slice(&(sent as u64).to_le_bytes());
            let sent_at = start.elapsed().as_nanos() as u64;
            message[8..16].copy_from_slice(&sent_at.to_le_bytes());
            conn.send_datagram(Bytes::copy_from_slice(&message))
                .context("sending a datagram")?;
            sent += 1;
            in_flight += 1;
        }
        match tokio::time::timeout(LOSS_TIMEOUT, conn.recv_datagram()).await {
            Ok(echo) => {
                let echo = echo.context("receiving a datagram")?;
                let Some(stamp) = echo.get(8..16) else {
                    bail!("a {}-byte echo", echo.len());
                };
                let mut sent_at = [0u8; 8];
                sent_at.copy_from_slice(stamp);
                let sent_at = Duration::from_nanos(u64::from_le_bytes(sent_at));
                latencies.record(start.elapsed().saturating_sub(sent_at));
                received += 1;
                in_flight = in_flight.saturating_sub(1);
            }
            Err(_) => {
                lost += in_flight;
                in_flight = 0;
            }
        }
    }
    let elapsed = start.elapsed();
    conn.close();
    if received == 0 {
        bail!("no datagram came back");
    }
    Ok(vec![
        Measure::new("per_sec", "msg/s", per_sec(received, elapsed)),
        Measure::new("p50_us", "us", latencies.quantile_us(0.5)),
        Measure::new("p99_us", "us", latencies.quantile_us(0.99)),
        Measure::new("loss_ratio", "", lost as f64 / count as f64),
    ])
}
