//! `jsp demo`'s FEC step (`jsp demo --only fec` runs it alone): real-time messages through a
//! lossy link, once with forward error correction off and once with it on, side by side.
//!
//! A relay on 127.0.0.1 ([`super::relay`]) sits between a client and a server in this process:
//! 20 ms each way (40 ms round trip) and, once the handshake is done, 10% of the packets dropped
//! each way by a seeded generator. The client sends [`MESSAGES`] messages of [`MESSAGE_BYTES`]
//! bytes every [`INTERVAL`] on a `Media`-class stream (reliable, ordered: every message arrives,
//! the question is when). Without FEC a lost packet waits for loss detection and a
//! retransmission, and the messages behind it wait too; with FEC the server rebuilds it from a
//! repair symbol sent a few milliseconds later.
//!
//! The FEC run uses a fixed 10+2 code rather than the adaptive default: adaptive FEC switches
//! on only after it has measured the loss, which would blur the first second of a short demo.
//! With messages this sparse each one is flushed alone with two repair symbols
//! (PROTOCOL.md §19.5), which is what the overhead row shows.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use jsp::{ClientConfig, Connection, ConnectionStats, Dir, Endpoint, Server, TrustPolicy};
use jsp_proto::connection::{QosClass, StreamPriority};
use jsp_proto::identity::Fingerprint;
use jsp_proto::FecConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::relay::{LinkCounts, LinkSpec, Relay};
use crate::client::{self, Connected};
use crate::clock::Stopwatch;
use crate::error::CliError;
use crate::units::fmt_duration;

/// Messages sent per run.
pub const MESSAGES: usize = 150;
/// Interval between messages (50 per second).
pub const INTERVAL: Duration = Duration::from_millis(20);
/// Size of a message: its number, its send time, padding.
pub const MESSAGE_BYTES: usize = 100;
/// The link.
pub const LINK: LinkSpec = LinkSpec {
    loss: 0.10,
    delay: Duration::from_millis(20),
    seed: 7,
};
/// The FEC run's code: source and repair symbols per group.
pub const FEC_SHAPE: (u8, u8) = (10, 2);
/// A message delivered within this is on time for a real-time receiver (about a jitter
/// buffer); a retransmission on this link takes longer.
pub const ON_TIME: Duration = Duration::from_millis(50);
/// Bound on a run's handshake and on the delivery of its last message.
const PATIENCE: Duration = Duration::from_secs(10);

/// What one run measured.
#[derive(Debug)]
struct Run {
    /// Per message: delivery latency, if it arrived.
    latency: Vec<Option<Duration>>,
    link: LinkCounts,
    client: ConnectionStats,
    server: ConnectionStats,
}

impl Run {
    fn delivered(&self) -> usize {
        self.latency.iter().flatten().count()
    }

    fn on_time(&self) -> usize {
        self.latency
            .iter()
            .flatten()
            .filter(|l| **l <= ON_TIME)
            .count()
    }

    /// The `q` quantile of the delivery latencies.
    fn quantile(&self, q: f64) -> Option<Duration> {
        let mut l: Vec<Duration> = self.latency.iter().flatten().copied().collect();
        l.sort_unstable();
        let i = ((l.len() as f64) * q).ceil() as usize;
        l.get(i.saturating_sub(1)).copied()
    }
}

/// Runs the step with a server of its own, writing its lines with `say`.
pub async fn run(say: &mut impl FnMut(&str) -> Result<(), CliError>) -> Result<(), CliError> {
    let (fec_data, fec_repair) = FEC_SHAPE;
    let ms = |d: Duration| format!("{} ms", d.as_millis());
    say(&format!(
        "fec        forward error correction on a lossy link: a relay on 127.0.0.1 drops {:.0}% \
         of the",
        LINK.loss * 100.0
    ))?;
    say(&format!(
        "           packets each way at random (seed {}) and delays each by {} ({} round trip).",
        LINK.seed,
        ms(LINK.delay),
        ms(LINK.delay * 2),
    ))?;
    say(&format!(
        "           The client sends {MESSAGES} messages of {MESSAGE_BYTES} B at {}/s on a \
         Media-class stream, twice:",
        Duration::from_secs(1).as_micros() / INTERVAL.as_micros().max(1),
    ))?;
    say(&format!(
        "           FEC off, then FEC fixed {fec_data}+{fec_repair} (up to {fec_data} packets and \
         {fec_repair} repair symbols per group;"
    ))?;
    say(&format!(
        "           a group waits at most {}, so each message here is a group of its own) ...",
        ms(FecConfig::default().flush_delay)
    ))?;
    let identity = super::generate_identity()?;
    let fingerprint = identity.fingerprint();
    let server = crate::listen::start(super::server_settings(identity)?).await?;
    let server_addr = server
        .local_addr()
        .ok_or_else(|| CliError::new("the demo server has no UDP address"))?;
    let runs = async {
        let off = one_run(&server, server_addr, fingerprint, FecConfig::off()).await?;
        let fixed = FecConfig::fixed(fec_data, fec_repair);
        let on = one_run(&server, server_addr, fingerprint, fixed).await?;
        Ok::<_, CliError>((off, on))
    }
    .await;
    server.shutdown().await;
    let (off, on) = runs?;

    let cell = |f: &dyn Fn(&Run) -> String| format!("{:>12} {:>12}", f(&off), f(&on));
    let quantile = |r: &Run, q: f64| r.quantile(q).map_or_else(|| "-".to_owned(), fmt_duration);
    let heading = format!(
        "{:>12} {:>12}",
        "FEC off",
        format!("FEC {fec_data}+{fec_repair}")
    );
    let late = format!("over {}", ms(ON_TIME));
    let rows = [
        ("", heading, ""),
        (
            "link dropped",
            cell(&|r| format!("{} / {}", r.link.dropped, r.link.offered)),
            "packets, both ways",
        ),
        (
            "delivered",
            cell(&|r| format!("{} / {MESSAGES}", r.delivered())),
            "messages",
        ),
        (
            "rebuilt by FEC",
            cell(&|r| r.server.fec_recovered.to_string()),
            "lost packets rebuilt by the server",
        ),
        (
            "repair sent",
            cell(&|r| {
                format!(
                    "{} / {}",
                    r.client.fec_repair_sent, r.client.fec_source_sent
                )
            }),
            "repair / protected packets",
        ),
        ("latency p50", cell(&|r| quantile(r, 0.50)), ""),
        ("latency p99", cell(&|r| quantile(r, 0.99)), ""),
        (
            late.as_str(),
            cell(&|r| (MESSAGES - r.on_time()).to_string()),
            "messages (waiting for a retransmission)",
        ),
    ];
    for (label, cells, note) in rows {
        say(format!("           {label:<16}{cells}  {note}").trim_end())?;
    }
    let per_message = on.client.fec_repair_sent as f64 / on.client.fec_source_sent.max(1) as f64;
    say(&format!(
        "           FEC rebuilt {} lost packets on arrival: {} messages took over {} instead of {},",
        on.server.fec_recovered,
        MESSAGES - on.on_time(),
        ms(ON_TIME),
        MESSAGES - off.on_time(),
    ))?;
    say(&format!(
        "           at the cost of {} repair packets ({per_message:.1} per protected packet)",
        on.client.fec_repair_sent,
    ))?;
    Ok(())
}

/// One run: connect through a fresh relay (lossless for the handshake), make it lossy, send the
/// messages and wait (bounded) until they are all delivered.
async fn one_run(
    server: &Server,
    server_addr: SocketAddr,
    pin: Fingerprint,
    fec: FecConfig,
) -> Result<Run, CliError> {
    let relay = Relay::start(server_addr, LINK)
        .await
        .map_err(|e| CliError::new(format!("cannot start the lossy relay: {e}")))?;
    let endpoint = Endpoint::client((std::net::Ipv4Addr::LOCALHOST, 0).into())
        .map_err(|e| CliError::new(format!("cannot open a UDP socket: {e}")))?;
    let mut config = ClientConfig::new(TrustPolicy::pinned(pin));
    config.transport.fec = fec;
    let failed = |e: &dyn std::fmt::Display| CliError::new(format!("the FEC demo failed: {e}"));
    let connect = async {
        let conn = endpoint
            .connect(relay.addr(), Arc::new(config))
            .await
            .map_err(|e| failed(&e))?;
        let summary = conn.established().await.map_err(|e| failed(&e))?;
        let accepted = server
            .accept()
            .await
            .ok_or_else(|| CliError::new("the demo server stopped"))?;
        accepted.established().await.map_err(|e| failed(&e))?;
        Ok::<_, CliError>((conn, summary, accepted))
    };
    let (conn, summary, accepted) = tokio::time::timeout(PATIENCE, connect)
        .await
        .map_err(|_| CliError::new("the FEC demo's handshake timed out"))??;

    relay.set_lossy(true);
    let clock = Stopwatch::start();
    let mut latency = vec![None; MESSAGES];
    let receiving = async {
        let bound = INTERVAL * MESSAGES as u32 + PATIENCE;
        // Past the bound, the messages not delivered are reported missing.
        let _ = tokio::time::timeout(bound, receive(&accepted, clock, &mut latency)).await;
    };
    let (sent, ()) = tokio::join!(send(&conn, clock), receiving);
    relay.set_lossy(false);
    sent.map_err(|e| failed(&e))?;
    let run = Run {
        link: relay.counts(),
        client: conn.stats(),
        server: accepted.stats(),
        latency,
    };
    let remote = relay.addr();
    client::close(Connected {
        endpoint,
        carriage: conn.carriage(),
        conn,
        handshake: Duration::ZERO,
        summary,
        remote,
    })
    .await;
    drop(accepted);
    Ok(run)
}

/// Writes the messages at their pace on a `Media` stream: number, send time, padding.
async fn send(conn: &Connection, clock: Stopwatch) -> Result<(), String> {
    let (mut stream, _) = conn
        .open_with_priority(Dir::Uni, StreamPriority::new(QosClass::Media))
        .await
        .map_err(|e| e.to_string())?;
    let mut tick = tokio::time::interval(INTERVAL);
    let mut msg = [0u8; MESSAGE_BYTES];
    for (i, b) in msg.iter_mut().enumerate().skip(12) {
        // Not all zeros: real-time payloads (encoded audio, game state) do not compress.
        *b = (i as u8).wrapping_mul(151).wrapping_add(17);
    }
    for i in 0..MESSAGES {
        tick.tick().await;
        msg[..4].copy_from_slice(&(i as u32).to_be_bytes());
        let now = u64::try_from(clock.elapsed().as_micros()).unwrap_or(u64::MAX);
        msg[4..12].copy_from_slice(&now.to_be_bytes());
        stream.write_all(&msg).await.map_err(|e| e.to_string())?;
    }
    stream.finish().map_err(|e| e.to_string())?;
    Ok(())
}

/// Reads the messages on the server side, recording each one's delivery latency.
async fn receive(conn: &Connection, clock: Stopwatch, latency: &mut [Option<Duration>]) {
    let Ok(mut stream) = conn.accept_uni().await else {
        return;
    };
    let mut msg = [0u8; MESSAGE_BYTES];
    while stream.read_exact(&mut msg).await.is_ok() {
        let now = clock.elapsed();
        let mut index = [0u8; 4];
        index.copy_from_slice(&msg[..4]);
        let mut sent = [0u8; 8];
        sent.copy_from_slice(&msg[4..12]);
        let sent = Duration::from_micros(u64::from_be_bytes(sent));
        if let Some(slot) = latency.get_mut(u32::from_be_bytes(index) as usize) {
            *slot = Some(now.saturating_sub(sent));
        }
        if latency.iter().all(Option::is_some) {
            return;
        }
    }
}
