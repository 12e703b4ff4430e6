//! The scenarios, written once against [`BenchClient`]/[`BenchConn`] so
//! every implementation is measured by the same code. Each function runs
//! one repetition and returns its [`Measure`]s; the runner repeats, groups
//! and summarises them.

use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::peers::{BenchConn, CMD_ECHO, CMD_SINK};

pub mod bulk;
pub mod datagrams;
pub mod handshake;
pub mod idle;
pub mod loss;
pub mod rr;
pub mod streams;

/// One value from one repetition: metric identifier, unit, value.
#[derive(Clone, Debug, PartialEq)]
pub struct Measure {
    /// Stable metric identifier (`throughput_gbps`, `p50_us`, ...).
    pub metric: &'static str,
    /// Unit for the table.
    pub unit: &'static str,
    /// The value.
    pub value: f64,
}

impl Measure {
    /// A measure.
    pub fn new(metric: &'static str, unit: &'static str, value: f64) -> Self {
        Measure {
            metric,
            unit,
            value,
        }
    }
}

/// Size of the writes the bulk scenarios make.
pub const WRITE_CHUNK: usize = 64 * 1024;

/// Sends `bytes` on a new stream of `conn` to the server's sink and checks
/// the byte count it answers with.
pub async fn sink<T: BenchConn>(conn: &T, bytes: u64) -> anyhow::Result<()> {
    let (mut send, mut recv) = conn.open_bi().await.context("opening a stream")?;
    send.write_all(&[CMD_SINK])
        .await
        .context("writing the command")?;
    let chunk = vec![0x5a_u8; WRITE_CHUNK];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(WRITE_CHUNK as u64) as usize;
        send.write_all(&chunk[..n])
            .await
            .context("writing bulk data")?;
        left -= n as u64;
    }
    send.shutdown().await.context("finishing the stream")?;
    let mut count = [0u8; 8];
    recv.read_exact(&mut count)
        .await
        .context("reading the sink's byte count")?;
    let received = u64::from_le_bytes(count);
    if received != bytes {
        bail!("the server received {received} bytes of {bytes}");
    }
    Ok(())
}

/// Opens a stream, sends one byte to the echo and waits for it to return:
/// the "first byte echoed" that ends a handshake measurement.
pub async fn echo_one_byte<T: BenchConn>(conn: &T) -> anyhow::Result<()> {
    let (mut send, mut recv) = conn.open_bi().await.context("opening a stream")?;
    send.write_all(&[CMD_ECHO, 0x42]).await.context("writing")?;
    send.flush().await.context("writing")?;
    let mut byte = [0u8; 1];
    recv.read_exact(&mut byte)
        .await
        .context("reading the echo")?;
    if byte[0] != 0x42 {
        bail!("the echo returned {:#x}", byte[0]);
    }
    Ok(())
}

/// Gbit/s for `bytes` moved in `elapsed`.
pub fn gbps(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 * 8.0 / elapsed.as_secs_f64().max(1e-9) / 1e9
}

/// Events per second for `count` events in `elapsed`.
pub fn per_sec(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(gbps(1_000_000_000, Duration::from_secs(8)), 1.0);
        assert_eq!(per_sec(500, Duration::from_millis(250)), 2000.0);
    }
}
