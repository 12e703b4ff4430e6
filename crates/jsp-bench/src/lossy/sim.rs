//! Harness (a): the loss scenarios on jsp-sim, in process and on virtual
//! time. Two sans-IO jsp-proto endpoints (seeded crypto) are joined by a
//! simulated link with the same model as the real-socket paths (rate,
//! one-BDP tail-drop queue, seeded random or Gilbert-Elliott loss in both
//! directions, half the RTT of delay each way, 1472-byte UDP payloads), and
//! the same two measurements run on it: bulk goodput over a window after a
//! warm-up, and 100-byte messages echoed at a fixed rate. A scenario
//! replays exactly from its seed, so these numbers are reproducible to
//! the bit and a change to loss recovery shows up as a diff.
//!
//! Only JetStreamProto runs here (`jsp`, and `jsp-nofec` once FEC exists):
//! quinn's engine could be driven sans-IO, but not by this simulator, whose
//! nodes are jsp-proto endpoints; the real-socket paths compare the stacks.

use std::time::Duration;

use anyhow::{bail, Context};
use jsp_proto::connection::{QosClass, StreamPriority};
use jsp_proto::time::Instant as SimInstant;
use jsp_proto::{Connection, Dir as StreamDir, Event, StreamApiError, StreamId, TransportConfig};
use jsp_sim::engine::{seeded_identity, seeded_provider, EndpointNode, Pair};
use jsp_sim::{LinkConfig, LossModel, Simulator};

use super::netem::{bdp_bytes, LossSpec};
use crate::latency::Latencies;
use crate::scenarios::loss::{incompressible, RealtimeSpec, RT_MESSAGE};
use crate::scenarios::Measure;

/// IPv4 and UDP header bytes added to each simulated datagram's size, so
/// the wire bytes compare with the TUN path's IP packets.
const HEADER_BYTES: u64 = 28;

/// Longest the simulated handshake may take.
const HANDSHAKE_MAX: Duration = Duration::from_secs(30);

/// Simulation step of the bulk sender (it refills the stream every step).
const BULK_STEP: Duration = Duration::from_millis(1);

/// How one simulated scenario is sized.
#[derive(Clone, Copy, Debug)]
pub struct SimSpec {
    /// Round-trip time of the link.
    pub rtt: Duration,
    /// Bottleneck rate.
    pub rate_bps: u64,
    /// Loss in each direction.
    pub loss: LossSpec,
    /// Bulk warm-up before the goodput window.
    pub bulk_warmup: Duration,
    /// Bulk goodput window.
    pub bulk_window: Duration,
    /// The real-time run.
    pub rt: RealtimeSpec,
}

/// The jsp-sim model of `loss`.
pub fn to_sim(loss: LossSpec) -> LossModel {
    match loss {
        LossSpec::Random(p) if p <= 0.0 => LossModel::None,
        LossSpec::Random(p) => LossModel::Random(p),
        LossSpec::GilbertElliott {
            p_good_to_bad,
            p_bad_to_good,
            loss_in_good,
            loss_in_bad,
        } => LossModel::GilbertElliott {
            p_good_to_bad,
            p_bad_to_good,
            loss_in_good,
            loss_in_bad,
        },
    }
}

/// The simulated link of `spec` (both directions alike).
pub fn link(spec: &SimSpec) -> LinkConfig {
    LinkConfig {
        bandwidth_bps: Some(spec.rate_bps),
        queue_bytes: bdp_bytes(spec.rtt, spec.rate_bps).max(64 * 1024),
        loss: to_sim(spec.loss),
        ..LinkConfig::with_delay(spec.rtt / 2)
    }
}

/// A connected pair on the link of `spec`, both sides with `transport`.
fn connected(seed: u64, spec: &SimSpec, transport: &TransportConfig) -> anyhow::Result<Pair> {
    let identity = seeded_identity(seeded_provider(seed, 9).as_ref(), 1);
    let (mut server, mut client) = Pair::pinned_configs(identity);
    server.transport = transport.clone();
    client.transport = transport.clone();
    let mut pair = Pair::new(seed, server, client, link(spec));
    if !pair.drive_handshake(HANDSHAKE_MAX) {
        bail!("the simulated handshake did not complete (seed {seed})");
    }
    Ok(pair)
}

/// Bytes of the datagrams sent on both directions so far whose fate is
/// known (delivered, counted on arrival; lost or dropped, counted on entry),
/// with headers: as the real-socket paths count them, lined up in time with
/// what the server reads.
fn wire_bytes(pair: &Pair) -> u64 {
    [(pair.client, pair.server), (pair.server, pair.client)]
        .iter()
        .map(|&(from, to)| {
            let s = pair.sim.link_stats(from, to);
            [
                s.delivered,
                s.lost,
                s.mtu_dropped,
                s.queue_dropped,
                s.middlebox_dropped,
                s.unbound,
            ]
            .iter()
            .map(|c| c.bytes + c.datagrams * HEADER_BYTES)
            .sum::<u64>()
                - s.duplicated.bytes
                - s.duplicated.datagrams * HEADER_BYTES
        })
        .sum()
}

/// Fails if either side's connection closed.
fn check_up(pair: &mut Pair) -> anyhow::Result<()> {
    let client_up = pair.client_conn().is_some_and(|c| !c.is_closing());
    let server_up = pair.server_conn().is_some_and(|c| !c.is_closing());
    if !(client_up && server_up) {
        bail!("the simulated connection closed (client up: {client_up}, server up: {server_up})");
    }
    Ok(())
}

fn elapsed(from: SimInstant, to: SimInstant) -> Duration {
    Duration::from_nanos(to.as_nanos().saturating_sub(from.as_nanos()))
}

/// Drains every readable stream of `conn`, returning (stream, bytes) pairs.
/// The real-time class of the echo stream, both ways.
fn media() -> StreamPriority {
    StreamPriority::new(QosClass::Media)
}

fn read_all(conn: &mut Connection) -> Vec<(StreamId, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some(event) = conn.poll_event() {
        if let Event::StreamReadable(id) = event {
            while let Ok((data, _fin)) = conn.stream_read(id, usize::MAX) {
                if data.is_empty() {
                    break;
                }
                out.push((id, data));
            }
        }
    }
    out
}

/// Bulk goodput on the simulated link: `goodput_mbps` and
/// `wire_bytes_per_useful_byte`, measured like the real-socket bulk run.
pub fn bulk(
    seed: u64,
    spec: &SimSpec,
    transport: &TransportConfig,
) -> anyhow::Result<Vec<Measure>> {
    let mut pair = connected(seed, spec, transport)?;
    let stream = pair
        .client_conn()
        .context("the client connection is gone")?
        .open_stream(StreamDir::Uni)
        .context("opening the bulk stream")?;
    let chunk = incompressible(256 * 1024, seed);
    let mut delivered = 0u64;
    let start = pair.sim.now();
    let warm_at = start + spec.bulk_warmup;
    let end_at = warm_at + spec.bulk_window;
    let mut first: Option<(u64, u64)> = None;
    // `JSP_BENCH_TRACE=1`: both ends' transport state every 100 ms, on stderr.
    let trace = std::env::var_os("JSP_BENCH_TRACE").is_some();
    let mut next_trace = start;
    while pair.sim.now() < end_at {
        if trace && pair.sim.now() >= next_trace {
            next_trace += Duration::from_millis(100);
            let at = elapsed(start, pair.sim.now());
            trace_state(&mut pair, at, delivered);
        }
        if first.is_none() && pair.sim.now() >= warm_at {
            first = Some((delivered, wire_bytes(&pair)));
        }
        if let Some(conn) = pair.client_conn() {
            loop {
                match conn.stream_write(stream, &chunk, false) {
                    Ok(n) if n > 0 => {}
                    Ok(_) | Err(StreamApiError::Blocked) => break,
                    Err(err) => bail!("bulk write: {err}"),
                }
            }
        }
        pair.sim.wake(pair.client);
        pair.sim.run_for(BULK_STEP);
        if let Some(conn) = pair.server_conn() {
            delivered += read_all(conn)
                .iter()
                .map(|(_, data)| data.len() as u64)
                .sum::<u64>();
        }
    }
    check_up(&mut pair)?;
    let (delivered_at_warm, wire_at_warm) = first.unwrap_or((0, 0));
    let useful = delivered - delivered_at_warm;
    let wire = wire_bytes(&pair) - wire_at_warm;
    let mut measures = vec![Measure::new(
        "goodput_mbps",
        "Mbit/s",
        useful as f64 * 8.0 / spec.bulk_window.as_secs_f64() / 1e6,
    )];
    if useful > 0 {
        measures.push(Measure::new(
            "wire_bytes_per_useful_byte",
            "",
            wire as f64 / useful as f64,
        ));
    }
    Ok(measures)
}

/// One `JSP_BENCH_TRACE` line: what the server read so far and both ends'
/// congestion, flight and loss counters.
fn trace_state(pair: &mut Pair, at: Duration, delivered: u64) {
    let client = pair.client_conn().map(|c| c.stats());
    let server = pair.server_conn().map(|c| c.stats());
    if let (Some(c), Some(s)) = (client, server) {
        eprintln!(
            "[{:>6.3}s] read {delivered} | client {:?} bw {:?} pacing {:?} cwnd {} in_flight {} rtt {:?} sent {} lost {} fc-blocked {} | server got {} dup {} undecodable {} sent {}",
            at.as_secs_f64(),
            c.congestion_phase,
            c.bandwidth.map(|b| b * 8 / 1_000_000),
            c.pacing_rate.map(|b| b * 8 / 1_000_000),
            c.cwnd,
            c.bytes_in_flight,
            c.rtt,
            c.packets_sent,
            c.packets_lost,
            c.flow_control_blocked,
            s.packets_received,
            s.dropped_duplicate,
            s.dropped_undecodable,
            s.packets_sent,
        );
    }
}

/// The real-time run on the simulated link: the same metrics as the
/// real-socket one (`rt_p50_ms`, `rt_p99_ms`, `rt_p999_ms`,
/// `deadline_miss_ratio`, `rt_wire_bytes_per_useful_byte`), on virtual
/// time, so with no pacing error at all.
pub fn realtime(
    seed: u64,
    spec: &SimSpec,
    transport: &TransportConfig,
) -> anyhow::Result<Vec<Measure>> {
    let mut pair = connected(seed, spec, transport)?;
    let stream = pair
        .client_conn()
        .context("the client connection is gone")?
        // The class a real-time application declares (and FEC protects), as on real sockets.
        .open_stream_with(StreamDir::Bi, media())
        .context("opening the echo stream")?;
    let message = incompressible(RT_MESSAGE, seed);
    let rt = spec.rt;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rt.rate.max(1)));
    let start = pair.sim.now() + interval;
    let scheduled = |i: usize| start + interval * u32::try_from(i).unwrap_or(u32::MAX);
    let wire_before = wire_bytes(&pair);
    let (client, server) = (pair.client, pair.server);
    let client_handle = pair.client_conn;
    // Paced warm-up messages first, not recorded (as on real sockets).
    let warm = crate::scenarios::loss::paced_warmup_messages(rt.rate);
    let total = warm + rt.messages;
    let mut arrived: Vec<SimInstant> = Vec::with_capacity(total);
    let mut received_bytes = 0usize;
    let mut echo_backlog: Vec<(StreamId, Vec<u8>)> = Vec::new();
    let give_up = scheduled(total) + rt.grace;
    let mut sent = 0usize;
    // Before every simulated event: the server echoes what it read, the
    // client notes each completed message's arrival time.
    let mut poll = |sim: &mut Simulator, arrived: &mut Vec<SimInstant>| {
        let now = sim.now();
        let node = sim.node_mut::<EndpointNode>(server);
        if let Some(&h) = node.accepted.first() {
            if let Some(conn) = node.endpoint.connection_mut(h) {
                if conn.has_pending_events() {
                    for (id, data) in read_all(conn) {
                        // The echo goes back in the same class (the real-socket server does
                        // the same).
                        let _ = conn.set_stream_priority(id, media());
                        echo_backlog.push((id, data));
                    }
                }
                echo_backlog.retain_mut(|(id, data)| match conn.stream_write(*id, data, false) {
                    Ok(n) => {
                        data.drain(..n);
                        !data.is_empty()
                    }
                    Err(_) => true,
                });
            }
        }
        let node = sim.node_mut::<EndpointNode>(client);
        if let Some(conn) = node.endpoint.connection_mut(client_handle) {
            if conn.has_pending_events() {
                for (_, data) in read_all(conn) {
                    received_bytes += data.len();
                    while arrived.len() < received_bytes / RT_MESSAGE {
                        arrived.push(now);
                    }
                }
            }
        }
    };
    while arrived.len() < total && pair.sim.now() < give_up {
        let next = if sent < total {
            scheduled(sent)
        } else {
            give_up
        };
        let _ = pair.sim.run_while(
            |sim| {
                poll(sim, &mut arrived);
                arrived.len() < total
            },
            elapsed(pair.sim.now(), next),
        );
        pair.sim.run_until(next.max(pair.sim.now()));
        poll(&mut pair.sim, &mut arrived);
        if sent < total && pair.sim.now() >= scheduled(sent) {
            let conn = pair
                .client_conn()
                .context("the client connection is gone")?;
            let n = conn
                .stream_write(stream, &message, false)
                .context("writing a message")?;
            if n != message.len() {
                bail!("a 100-byte message did not fit the send buffer");
            }
            sent += 1;
            pair.sim.wake(client);
        }
    }
    check_up(&mut pair)?;
    let wire = wire_bytes(&pair) - wire_before;
    let mut latencies = Latencies::new();
    let mut missed = 0usize;
    for i in warm..total {
        let latency = match arrived.get(i) {
            Some(&at) => elapsed(scheduled(i), at),
            None => elapsed(scheduled(i), pair.sim.now()),
        };
        if arrived.get(i).is_none() || latency > rt.deadline {
            missed += 1;
        }
        latencies.record(latency);
    }
    let ms = |q: f64| latencies.quantile_us(q) / 1000.0;
    let useful = (arrived.len() * RT_MESSAGE * 2).max(1);
    Ok(vec![
        Measure::new("rt_p50_ms", "ms", ms(0.5)),
        Measure::new("rt_p99_ms", "ms", ms(0.99)),
        Measure::new("rt_p999_ms", "ms", ms(0.999)),
        Measure::new(
            "deadline_miss_ratio",
            "",
            missed as f64 / rt.messages.max(1) as f64,
        ),
        Measure::new(
            "rt_wire_bytes_per_useful_byte",
            "",
            wire as f64 / useful as f64,
        ),
    ])
}
