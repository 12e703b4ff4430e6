//! `jsp bench`: throughput and latency against any `jsp serve`.
//!
//! # Protocol
//!
//! One bidirectional stream per measurement, starting with the magic `JSPBNCH1`
//! ([`BENCH_MAGIC`]) and a mode byte:
//!
//! - `'U'` upload: the client sends data and finishes the stream; the server discards it and
//!   answers with a u64 (big-endian): the number of bytes it received after the mode byte.
//! - `'P'` ping: the server echoes every byte as it arrives until the client finishes; the
//!   client sends [`PING_SIZE`]-byte messages one at a time and times each round trip.

use std::io;
use std::time::Duration;

use jsp::Connection;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::clock::Stopwatch;
use crate::error::CliError;
use crate::progress::{Progress, ProgressMode};
use crate::protocol::BENCH_MAGIC;
use crate::units::{fmt_duration, fmt_rate};

/// Mode byte: upload.
const UPLOAD: u8 = b'U';
/// Mode byte: ping.
const PING: u8 = b'P';
/// Size of a ping message.
pub const PING_SIZE: usize = 32;
/// Bytes written at once during an upload.
const UPLOAD_CHUNK: usize = 256 * 1024;

/// When an upload stops.
#[derive(Debug, Clone, Copy)]
pub struct UploadLimit {
    /// After this many bytes.
    pub bytes: Option<u64>,
    /// After this long.
    pub time: Option<Duration>,
}

/// An upload's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadReport {
    /// Bytes the server counted.
    pub bytes: u64,
    /// From the first byte written to the server's count arriving.
    pub elapsed: Duration,
}

impl UploadReport {
    /// `100.0 MB in 0.92 s: 108.7 MB/s (869.6 Mbit/s)`.
    pub fn describe(&self) -> String {
        format!(
            "{} in {}: {}",
            crate::units::fmt_bytes(self.bytes),
            fmt_duration(self.elapsed),
            fmt_rate(self.bytes, self.elapsed)
        )
    }
}

/// Round-trip times of a ping run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PingReport {
    /// Every round trip, sorted.
    pub samples: Vec<Duration>,
}

impl PingReport {
    /// The `q`-quantile (0.5 for the median) by the nearest-rank method.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.samples.is_empty() {
            return Duration::ZERO;
        }
        let rank = (q * self.samples.len() as f64).ceil() as usize;
        let i = rank.clamp(1, self.samples.len()) - 1;
        self.samples.get(i).copied().unwrap_or_default()
    }

    /// `p50 0.21 ms, p99 0.48 ms, min 0.15 ms, max 0.90 ms`.
    pub fn describe(&self) -> String {
        let min = self.samples.first().copied().unwrap_or_default();
        let max = self.samples.last().copied().unwrap_or_default();
        format!(
            "p50 {}, p99 {}, min {}, max {}",
            fmt_duration(self.quantile(0.5)),
            fmt_duration(self.quantile(0.99)),
            fmt_duration(min),
            fmt_duration(max)
        )
    }
}

fn broke(e: impl std::fmt::Display) -> CliError {
    CliError::new(format!("the benchmark stream broke off: {e}"))
}

/// Uploads until `limit`, then asks the server how much arrived.
pub async fn upload(
    conn: &Connection,
    limit: UploadLimit,
    mode: ProgressMode,
) -> Result<UploadReport, CliError> {
    let (mut send, mut recv) = conn.open_bi().await.map_err(broke)?;
    let mut head = BENCH_MAGIC.to_vec();
    head.push(UPLOAD);
    send.write_all(&head).await.map_err(broke)?;
    let chunk: Vec<u8> = (0..UPLOAD_CHUNK).map(|i| (i % 251) as u8).collect();
    let mut progress = Progress::new("upload", limit.bytes, 0, mode);
    let clock = Stopwatch::start();
    let mut sent = 0u64;
    loop {
        if limit.bytes.is_some_and(|b| sent >= b)
            || limit.time.is_some_and(|t| clock.elapsed() >= t)
        {
            break;
        }
        let n = limit
            .bytes
            .map_or(chunk.len() as u64, |b| (b - sent).min(chunk.len() as u64));
        let part = chunk
            .get(..usize::try_from(n).unwrap_or(0))
            .unwrap_or_default();
        send.write_all(part).await.map_err(broke)?;
        sent += n;
        progress.set(sent);
    }
    send.finish().map_err(broke)?;
    let bytes = recv.read_u64().await.map_err(broke)?;
    let elapsed = clock.elapsed();
    progress.finish();
    if bytes != sent {
        return Err(CliError::new(format!(
            "the server counted {bytes} bytes of the {sent} sent"
        )));
    }
    Ok(UploadReport { bytes, elapsed })
}

/// Times `count` round trips of a small message on one stream.
pub async fn ping(conn: &Connection, count: u32) -> Result<PingReport, CliError> {
    let (mut send, mut recv) = conn.open_bi().await.map_err(broke)?;
    let mut head = BENCH_MAGIC.to_vec();
    head.push(PING);
    send.write_all(&head).await.map_err(broke)?;
    let mut samples = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    let mut message = [0u8; PING_SIZE];
    let mut back = [0u8; PING_SIZE];
    for i in 0..count {
        message[..4].copy_from_slice(&i.to_be_bytes());
        let clock = Stopwatch::start();
        send.write_all(&message).await.map_err(broke)?;
        recv.read_exact(&mut back).await.map_err(broke)?;
        samples.push(clock.elapsed());
        if back != message {
            return Err(CliError::new("the server echoed different bytes"));
        }
    }
    send.finish().map_err(broke)?;
    let mut rest = Vec::new();
    recv.read_to_end(&mut rest).await.map_err(broke)?;
    samples.sort();
    Ok(PingReport { samples })
}

/// The server side, after the magic header; `head` holds bytes already read after it.
/// Returns the bytes received (upload) or echoed (ping).
pub async fn serve<R, W>(recv: &mut R, send: &mut W, head: &[u8]) -> io::Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut head = head;
    let mode = match head.split_first() {
        Some((m, rest)) => {
            head = rest;
            *m
        }
        None => recv.read_u8().await?,
    };
    match mode {
        UPLOAD => {
            let mut count = head.len() as u64;
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = recv.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                count += n as u64;
            }
            send.write_u64(count).await?;
            Ok(count)
        }
        PING => {
            send.write_all(head).await?;
            let echoed = echo_copy(recv, send).await?;
            Ok(head.len() as u64 + echoed)
        }
        other => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unknown benchmark mode 0x{other:02x}"),
        )),
    }
}

/// Copies everything from `recv` to `send` as it arrives (no waiting to fill a buffer).
pub async fn echo_copy<R, W>(recv: &mut R, send: &mut W) -> io::Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = recv.read(&mut buf).await?;
        if n == 0 {
            return Ok(total);
        }
        send.write_all(buf.get(..n).unwrap_or_default()).await?;
        total += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let report = PingReport {
            samples: (1..=100).map(Duration::from_millis).collect(),
        };
        assert_eq!(report.quantile(0.5), Duration::from_millis(50));
        assert_eq!(report.quantile(0.99), Duration::from_millis(99));
        assert_eq!(report.quantile(1.0), Duration::from_millis(100));
        let one = PingReport {
            samples: vec![Duration::from_millis(7)],
        };
        assert_eq!(one.quantile(0.99), Duration::from_millis(7));
        assert_eq!(PingReport { samples: vec![] }.quantile(0.5), Duration::ZERO);
    }
}
