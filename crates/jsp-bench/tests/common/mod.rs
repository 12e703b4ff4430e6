//! Helpers shared by the peers' contract tests: bounded waits, payloads, and the sink and echo
//! exchanges of the bench wire contract.

#![allow(dead_code)] // each test binary uses its own subset

use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use jsp_bench::peers::{BenchConn, CMD_ECHO, CMD_SINK};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Bound on every wait in these tests.
pub const LIMIT: Duration = Duration::from_secs(20);

/// Awaits `fut` for at most [`LIMIT`].
pub async fn bounded<T>(
    what: &str,
    fut: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::time::timeout(LIMIT, fut)
        .await
        .with_context(|| format!("{what}: timed out"))?
}

/// A deterministic payload of `len` bytes.
pub fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Opens a stream, sinks `len` bytes and returns the server's count.
pub async fn sink<C: BenchConn>(conn: &C, len: usize) -> anyhow::Result<u64> {
    let (mut send, mut recv) = conn.open_bi().await?;
    send.write_all(&[CMD_SINK]).await?;
    send.write_all(&payload(len)).await?;
    send.shutdown().await?;
    let mut reply = Vec::new();
    recv.read_to_end(&mut reply).await?;
    let count: [u8; 8] = reply
        .as_slice()
        .try_into()
        .context("sink reply is not 8 bytes")?;
    Ok(u64::from_le_bytes(count))
}

/// Opens a stream, echoes `data` (writing and reading concurrently) and
/// returns what came back.
pub async fn echo<C: BenchConn>(conn: &C, data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let (mut send, mut recv) = conn.open_bi().await?;
    let write = async {
        send.write_all(&[CMD_ECHO]).await?;
        send.write_all(data).await?;
        send.shutdown().await
    };
    let read = async {
        let mut back = Vec::new();
        recv.read_to_end(&mut back).await.map(|_| back)
    };
    let (written, back) = tokio::join!(write, read);
    written?;
    Ok(back?)
}
