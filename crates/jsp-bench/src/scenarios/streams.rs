//! Many streams: `streams` opens, uses (64 bytes echoed) and closes N
//! streams on one connection, a window of them in flight at once, and
//! reports streams per second.

use anyhow::{bail, Context};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{per_sec, Measure};
use crate::latency::now;
use crate::peers::{BenchClient, BenchConn, ServerInfo, CMD_ECHO};

/// Payload echoed on each stream.
const PAYLOAD: usize = 64;

async fn one_stream<T: BenchConn>(conn: &T) -> anyhow::Result<()> {
    let (mut send, mut recv) = conn.open_bi().await.context("opening a stream")?;
    let mut message = [0x77u8; PAYLOAD + 1];
    message[0] = CMD_ECHO;
    send.write_all(&message).await.context("writing")?;
    send.shutdown().await.context("finishing")?;
    let mut reply = Vec::with_capacity(PAYLOAD);
    recv.read_to_end(&mut reply)
        .await
        .context("reading the echo")?;
    if reply.len() != PAYLOAD {
        bail!("the echo returned {} bytes of {PAYLOAD}", reply.len());
    }
    Ok(())
}

/// `count` streams on one connection, `concurrency` at a time.
pub async fn streams<C: BenchClient>(
    server: &ServerInfo,
    count: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<Measure>> {
    let client = C::new(server).await?;
    let conn = client.connect().await.context("connecting")?;
    let start = now();
    stream::iter(0..count)
        .map(|_| one_stream(&conn))
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    let elapsed = start.elapsed();
    conn.close();
    Ok(vec![Measure::new(
        "per_sec",
        "streams/s",
        per_sec(count, elapsed),
    )])
}
