//! The two measurements of the loss benchmarks, run over a lossy path (see
//! [`crate::lossy`]) and written once against [`BenchClient`]:
//!
//! - [`bulk_goodput`]: one connection, one stream to the server's
//!   progress-reporting sink ([`CMD_SINK_PROGRESS`]), kept full with
//!   incompressible bytes; goodput is the growth of the server's byte count
//!   over a measurement window after a warm-up, so a connection crawling
//!   through 20% loss is measured in bounded time too. Wire bytes (every IP
//!   packet offered to the link, both directions) over the same window give
//!   the bytes on the wire per useful byte.
//! - [`realtime`]: 100-byte messages on one stream to the echo at a fixed
//!   rate from a pacing thread; each latency runs from the message's
//!   scheduled send time to its echo (a round trip, so both directions'
//!   loss counts), and a message whose echo has not come back within the
//!   deadline is a miss (one that never came back is a miss too, and is
//!   recorded at the time the run gave up on it).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Measure;
use crate::latency::{now, Latencies};
use crate::peers::{BenchClient, BenchConn, ServerInfo, CMD_ECHO, CMD_SINK_PROGRESS};

/// Counts the bytes on the wire of a lossy path: every IP packet (for the
/// UDP relay: every datagram plus 28 bytes of IPv4 and UDP headers)
/// offered to the link in either direction, lost ones included.
pub trait WireMeter: Send + Sync {
    /// Bytes of the packets offered so far whose fate is known: delivered
    /// (counted on arrival), lost or dropped (counted on entry). Counting on
    /// arrival lines the wire bytes up in time with what the server counts.
    fn wire_bytes(&self) -> u64;

    /// How long the server's progress reports take to reach the client
    /// (the link's server-to-client delay): a report arriving at `t` counts
    /// what the server had received at `t - report_delay()`.
    fn report_delay(&self) -> Duration;
}

/// Size of the writes the bulk measurement makes.
const BULK_WRITE: usize = 64 * 1024;

/// Longest a connection may take to establish through the lossy path.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Size of each real-time message.
pub const RT_MESSAGE: usize = 100;

/// Messages echoed in a closed loop before the paced run (the stream and
/// the connection's RTT estimate warm up).
const RT_WARMUP: usize = 5;

/// Paced messages sent before the measured ones, whose latencies are not recorded: the run
/// measures a flow in its steady state (RTT estimates converged, and for jsp the adaptive FEC
/// engaged once it measured the loss), the same for every implementation.
pub const RT_PACED_WARMUP: Duration = Duration::from_secs(1);

/// How many messages the paced warm-up sends at `rate` per second.
pub fn paced_warmup_messages(rate: u32) -> usize {
    usize::try_from(
        u64::from(rate) * u64::try_from(RT_PACED_WARMUP.as_millis()).unwrap_or(0) / 1000,
    )
    .unwrap_or(0)
}

/// Longest a paced write may block before the run is abandoned.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Seeded bytes that no compressor shrinks (jsp compresses what pays, the
/// others do not: constant bytes would flatter it).
pub fn incompressible(len: usize, seed: u64) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut bytes);
    bytes
}

/// Connects through the path, bounded by [`CONNECT_TIMEOUT`].
async fn connect<C: BenchClient>(server: &ServerInfo) -> anyhow::Result<(C, C::Conn)> {
    let client = C::new(server).await?;
    let conn = tokio::time::timeout(CONNECT_TIMEOUT, client.connect())
        .await
        .with_context(|| format!("no connection within {CONNECT_TIMEOUT:?}"))?
        .context("connecting")?;
    Ok((client, conn))
}

/// One progress report: when it arrived, the server's count.
#[derive(Clone, Copy, Debug)]
struct Report {
    at: Instant,
    count: u64,
}

/// Most wire-byte samples a bulk run keeps (one per progress report, at
/// most 100 a second: more than an hour of reports).
const MAX_WIRE_SAMPLES: usize = 400_000;

/// The wire bytes at `at`, from samples in time order: interpolated between the samples around
/// it (samples come with progress reports, 10 ms or more apart, so taking the one before `at`
/// undercounted up to a report interval of traffic; on a 0.5 s window on a loaded machine that
/// once put the ratio under 1), or the first or last sample outside them.
fn wire_at(samples: &[(Instant, u64)], at: Instant) -> u64 {
    let i = samples.partition_point(|&(t, _)| t <= at);
    let before = i.checked_sub(1).and_then(|j| samples.get(j));
    match (before, samples.get(i)) {
        (Some(&(t0, w0)), Some(&(t1, w1))) if t1 > t0 => {
            let part = at.duration_since(t0).as_secs_f64() / t1.duration_since(t0).as_secs_f64();
            w0 + (w1.saturating_sub(w0) as f64 * part) as u64
        }
        (Some(&(_, w0)), _) => w0,
        (None, Some(&(_, w1))) => w1,
        (None, None) => 0,
    }
}

/// Bulk goodput through the path: `warmup`, then a `window` over which the
/// server's byte count is followed. Returns `goodput_mbps` and
/// `wire_bytes_per_useful_byte` (the latter only if something was
/// delivered in the window).
pub async fn bulk_goodput<C: BenchClient>(
    server: &ServerInfo,
    warmup: Duration,
    window: Duration,
    meter: Arc<dyn WireMeter>,
) -> anyhow::Result<Vec<Measure>> {
    let (_client, conn) = connect::<C>(server).await?;
    let (mut send, mut recv) = conn.open_bi().await.context("opening a stream")?;
    send.write_all(&[CMD_SINK_PROGRESS])
        .await
        .context("writing the command")?;
    let chunk = incompressible(BULK_WRITE, 0x6b75_6c6b);
    let start = now();
    // The writer keeps the stream full until it is dropped (aborted below).
    let writer = tokio::spawn(async move {
        loop {
            if send.write_all(&chunk).await.is_err() {
                break;
            }
        }
    });
    let warm_at = start + warmup;
    let end_at = warm_at + window;
    let mut first = Report {
        at: start,
        count: 0,
    };
    let mut last: Option<Report> = None;
    // Wire bytes over time, to read them where a report's count was taken.
    let mut wire = vec![(start, meter.wire_bytes())];
    let mut count = [0u8; 8];
    // `JSP_BENCH_TRACE=1`: the transport's state every 100 ms, on stderr.
    let trace = std::env::var_os("JSP_BENCH_TRACE").is_some();
    let mut next_trace = start;
    let outcome = loop {
        let read = tokio::time::timeout_at(end_at.into(), recv.read_exact(&mut count)).await;
        match read {
            Err(_) => break Ok(()),
            Ok(Err(err)) => break Err(err).context("reading a progress report"),
            Ok(Ok(_)) => {
                let report = Report {
                    at: now(),
                    count: u64::from_le_bytes(count),
                };
                if wire.len() < MAX_WIRE_SAMPLES {
                    wire.push((report.at, meter.wire_bytes()));
                }
                if trace && report.at >= next_trace {
                    next_trace = report.at + Duration::from_millis(100);
                    if let Some(line) = conn.diagnostics() {
                        eprintln!(
                            "[{:>6.3}s] delivered {} B | {line}",
                            report.at.duration_since(start).as_secs_f64(),
                            report.count
                        );
                    }
                }
                if report.at <= warm_at {
                    first = report;
                } else {
                    last = Some(report);
                }
            }
        }
    };
    writer.abort();
    conn.close();
    outcome?;
    let mut measures = Vec::new();
    match last {
        Some(last) if last.count > first.count => {
            let useful = last.count - first.count;
            let elapsed = last.at.saturating_duration_since(first.at);
            measures.push(Measure::new(
                "goodput_mbps",
                "Mbit/s",
                useful as f64 * 8.0 / elapsed.as_secs_f64().max(1e-9) / 1e6,
            ));
            // The counts were taken one report delay before they arrived.
            let lag = meter.report_delay();
            let wire_first = wire_at(&wire, first.at.checked_sub(lag).unwrap_or(first.at));
            let wire_last = wire_at(&wire, last.at.checked_sub(lag).unwrap_or(last.at));
            measures.push(Measure::new(
                "wire_bytes_per_useful_byte",
                "",
                wire_last.saturating_sub(wire_first) as f64 / useful as f64,
            ));
        }
        // Nothing delivered in the window: the connection is up (the reads
        // did not fail) but starved.
        _ => measures.push(Measure::new("goodput_mbps", "Mbit/s", 0.0)),
    }
    Ok(measures)
}

/// How a real-time run is sized.
#[derive(Clone, Copy, Debug)]
pub struct RealtimeSpec {
    /// Messages per second.
    pub rate: u32,
    /// Messages sent.
    pub messages: usize,
    /// The deadline a message's echo must meet, from its scheduled send.
    pub deadline: Duration,
    /// How long after the last scheduled send the run waits for echoes.
    pub grace: Duration,
}

/// The real-time measurement: see the module documentation. Returns
/// `rt_p50_ms`, `rt_p99_ms`, `rt_p999_ms`, `deadline_miss_ratio` and
/// `rt_wire_bytes_per_useful_byte` (useful: each message once each way).
pub async fn realtime<C: BenchClient>(
    server: &ServerInfo,
    spec: RealtimeSpec,
    meter: Arc<dyn WireMeter>,
) -> anyhow::Result<Vec<Measure>> {
    let (_client, conn) = connect::<C>(server).await?;
    let (mut send, mut recv) = conn
        .open_realtime_bi()
        .await
        .context("opening a real-time stream")?;
    send.write_all(&[CMD_ECHO]).await?;
    send.flush().await?;
    let message = incompressible(RT_MESSAGE, 0x7274);
    let mut reply = vec![0u8; RT_MESSAGE];
    for _ in 0..RT_WARMUP {
        send.write_all(&message).await?;
        send.flush().await?;
        tokio::time::timeout(CONNECT_TIMEOUT, recv.read_exact(&mut reply))
            .await
            .context("warm-up echo timed out")??;
    }
    let warm = paced_warmup_messages(spec.rate);
    let measured = spec.messages;
    let messages = warm + measured;
    let interval = Duration::from_secs_f64(1.0 / f64::from(spec.rate.max(1)));
    let wire_before = meter.wire_bytes();
    let start = now() + Duration::from_millis(2);
    let scheduled = move |i: usize| start + interval * u32::try_from(i).unwrap_or(u32::MAX);
    let handle = tokio::runtime::Handle::current();
    let pacer_message = message.clone();
    let pacer = std::thread::spawn(move || -> anyhow::Result<()> {
        for i in 0..messages {
            let wait = scheduled(i).saturating_duration_since(now());
            if !wait.is_zero() {
                std::thread::sleep(wait);
            }
            let write = async {
                tokio::time::timeout(WRITE_TIMEOUT, async {
                    send.write_all(&pacer_message).await?;
                    send.flush().await
                })
                .await
            };
            handle
                .block_on(write)
                .context("a message could not be sent for 30 s")?
                .context("sending a message")?;
        }
        Ok(())
    });
    let mut latencies = Latencies::new();
    let mut missed = 0usize;
    let give_up = scheduled(messages) + spec.grace;
    let mut received = 0usize;
    let mut failure = None;
    while received < messages {
        match tokio::time::timeout_at(give_up.into(), recv.read_exact(&mut reply)).await {
            Err(_) => break,
            Ok(Err(err)) => {
                failure = Some(err);
                break;
            }
            Ok(Ok(_)) => {
                if received >= warm {
                    let latency = now().saturating_duration_since(scheduled(received));
                    if latency > spec.deadline {
                        missed += 1;
                    }
                    latencies.record(latency);
                }
                received += 1;
            }
        }
    }
    let wire = meter.wire_bytes().saturating_sub(wire_before);
    // Echoes that never came: misses, recorded at the time the run gave up.
    let gave_up_at = now();
    for i in received.max(warm)..messages {
        missed += 1;
        latencies.record(gave_up_at.saturating_duration_since(scheduled(i)));
    }
    // Unblock a pacer stuck in a write before joining it.
    conn.close();
    let paced = tokio::task::spawn_blocking(move || pacer.join())
        .await
        .context("joining the pacer")?;
    if let Some(err) = failure {
        return Err(err).context("reading an echo");
    }
    match paced {
        // A pacer that could not send everything before the run gave up
        // left messages that count as misses; the connection itself is
        // still up (the reads did not fail).
        Ok(result) if received == messages => result?,
        Ok(_) => {}
        Err(_) => bail!("the pacer thread panicked"),
    }
    if received > 0 && reply != message {
        bail!("the echo changed the message");
    }
    let useful = (received * RT_MESSAGE * 2).max(1);
    let ms = |q: f64| latencies.quantile_us(q) / 1000.0;
    Ok(vec![
        Measure::new("rt_p50_ms", "ms", ms(0.5)),
        Measure::new("rt_p99_ms", "ms", ms(0.99)),
        Measure::new("rt_p999_ms", "ms", ms(0.999)),
        Measure::new(
            "deadline_miss_ratio",
            "",
            missed as f64 / measured.max(1) as f64,
        ),
        Measure::new(
            "rt_wire_bytes_per_useful_byte",
            "",
            wire as f64 / useful as f64,
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_bytes_are_interpolated_between_samples() {
        let t0 = now();
        let ms = Duration::from_millis;
        let samples = [(t0, 1_000), (t0 + ms(10), 2_000), (t0 + ms(30), 6_000)];
        assert_eq!(wire_at(&samples, t0 + ms(5)), 1_500);
        assert_eq!(wire_at(&samples, t0 + ms(20)), 4_000);
        assert_eq!(wire_at(&samples, t0 + ms(10)), 2_000);
        // Outside the samples: the nearest one.
        assert_eq!(wire_at(&samples, t0 + ms(40)), 6_000);
        assert_eq!(wire_at(&samples[1..], t0), 2_000);
        assert_eq!(wire_at(&[], t0), 0);
    }
}
