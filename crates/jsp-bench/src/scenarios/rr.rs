//! Request/response latency over one stream to the server's echo: closed
//! loop (one message in flight: the round-trip time as the application
//! sees it) and at a fixed rate (open loop: each message's latency is
//! counted from the time it was *scheduled* to be sent, so a stall delays
//! every later message's clock too and coordinated omission cannot hide
//! it).

use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{per_sec, Measure};
use crate::latency::{now, Latencies};
use crate::peers::{BenchClient, BenchConn, ServerInfo, CMD_ECHO};

/// Messages exchanged before measuring (connection warm-up).
const WARMUP: usize = 100;

/// Longest a paced write may block before the run is abandoned.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

fn percentiles(latencies: &Latencies) -> Vec<Measure> {
    vec![
        Measure::new("p50_us", "us", latencies.quantile_us(0.5)),
        Measure::new("p99_us", "us", latencies.quantile_us(0.99)),
        Measure::new("p999_us", "us", latencies.quantile_us(0.999)),
    ]
}

/// `messages` messages of `size` bytes, each sent when the previous one's
/// echo arrived.
pub async fn closed_loop<C: BenchClient>(
    server: &ServerInfo,
    size: usize,
    messages: usize,
) -> anyhow::Result<Vec<Measure>> {
    let client = C::new(server).await?;
    let conn = client.connect().await.context("connecting")?;
    let (mut send, mut recv) = conn.open_bi().await.context("opening a stream")?;
    send.write_all(&[CMD_ECHO]).await?;
    send.flush().await?;
    let message = vec![0x33u8; size];
    let mut reply = vec![0u8; size];
    let mut latencies = Latencies::new();
    let mut measured_time = Duration::ZERO;
    for i in 0..WARMUP + messages {
        let start = now();
        send.write_all(&message)
            .await
            .context("sending a request")?;
        send.flush().await.context("sending a request")?;
        recv.read_exact(&mut reply)
            .await
            .context("reading a response")?;
        if i >= WARMUP {
            let elapsed = start.elapsed();
            latencies.record(elapsed);
            measured_time += elapsed;
        }
    }
    if reply != message {
        bail!("the echo changed the message");
    }
    conn.close();
    let mut measures = percentiles(&latencies);
    measures.push(Measure::new(
        "per_sec",
        "msg/s",
        per_sec(messages, measured_time),
    ));
    Ok(measures)
}

/// `messages` messages of `size` bytes sent at `rate` per second whatever
/// the echoes do; latency from each message's scheduled send time.
///
/// The pacing runs on its own OS thread (a tokio timer only has millisecond
/// resolution) and writes on that thread; the echoes are read on the
/// runtime.
pub async fn fixed_rate<C: BenchClient>(
    server: &ServerInfo,
    size: usize,
    rate: u32,
    messages: usize,
) -> anyhow::Result<Vec<Measure>> {
    let client = C::new(server).await?;
    let conn = client.connect().await.context("connecting")?;
    let (mut send, mut recv) = conn.open_bi().await.context("opening a stream")?;
    send.write_all(&[CMD_ECHO]).await?;
    send.flush().await?;
    // Warm up in a closed loop first.
    let message = vec![0x33u8; size];
    let mut reply = vec![0u8; size];
    for _ in 0..WARMUP {
        send.write_all(&message).await?;
        send.flush().await?;
        recv.read_exact(&mut reply).await?;
    }
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let start = now() + Duration::from_millis(2);
    let handle = tokio::runtime::Handle::current();
    let pacer = std::thread::spawn(move || -> anyhow::Result<()> {
        for i in 0..messages {
            let due = start + interval * i as u32;
            let wait = due.saturating_duration_since(now());
            if !wait.is_zero() {
                std::thread::sleep(wait);
            }
            // The timer must be created inside the runtime's context.
            let write = async {
                tokio::time::timeout(WRITE_TIMEOUT, async {
                    send.write_all(&message).await?;
                    send.flush().await
                })
                .await
            };
            handle
                .block_on(write)
                .context("a request could not be sent for 30 s")?
                .context("sending a request")?;
        }
        Ok(())
    });
    let mut latencies = Latencies::new();
    let deadline = Duration::from_secs(30) + interval * messages as u32;
    let receive = async {
        for i in 0..messages {
            recv.read_exact(&mut reply)
                .await
                .context("reading a response")?;
            latencies.record(now().saturating_duration_since(start + interval * i as u32));
        }
        anyhow::Ok(())
    };
    let received = tokio::time::timeout(deadline, receive).await;
    if !matches!(received, Ok(Ok(()))) {
        // Unblock a pacer stuck in a write before joining it.
        conn.close();
    }
    let paced = tokio::task::spawn_blocking(move || pacer.join())
        .await
        .context("joining the pacer")?;
    match paced {
        Ok(result) => result?,
        Err(_) => bail!("the pacer thread panicked"),
    }
    received.context("responses stopped arriving")??;
    conn.close();
    Ok(percentiles(&latencies))
}
