//! CPU cost of each step of a full handshake in the engine alone (no sockets, no runtime), with
//! the production crypto provider: what the handshake latency cannot go below on this machine.
//!
//! `cargo run --release -p jsp-proto --example handshake_cost [ITERATIONS]`
//!
//! Each iteration connects a fresh client endpoint to one server endpoint, passes every datagram
//! across at once, and times four steps: the client's first flight, the server's answer to it,
//! the client's answer to that (the handshake completes there, for the client), and the server's
//! handling of the client's last flight. Medians and 90th percentiles are printed.
#![allow(clippy::disallowed_methods)] // wall-clock timing is this example's purpose

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant as WallInstant, SystemTime, UNIX_EPOCH};

use jsp_proto::crypto::default_provider;
use jsp_proto::identity::Identity;
use jsp_proto::{
    ClientConfig, Endpoint, EndpointConfig, Instant, Output, ServerConfig, TrustPolicy,
};

/// Runs `endpoint.process` with `input`, then until it has nothing more to send; returns the
/// datagrams it sent.
fn pump(
    endpoint: &mut Endpoint,
    now: Instant,
    from: SocketAddr,
    mut inputs: Vec<Vec<u8>>,
    buf: &mut Vec<u8>,
) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    if inputs.is_empty() {
        inputs.push(Vec::new());
    }
    for mut input in inputs {
        let mut input = (!input.is_empty()).then_some(input.as_mut_slice());
        let mut at = now;
        loop {
            match endpoint.process(at, input.take().map(|d| (from, d)), buf) {
                Output::Datagram(t) => out.push(buf[..t.size].to_vec()),
                // The rest of a server's first flight is due a nanosecond after its ServerHello.
                Output::Callback(t) if t <= now + Duration::from_micros(1) => at = t,
                _ => break,
            }
        }
    }
    out
}

fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
    samples.get(i).copied().unwrap_or_default()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let iterations: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(500);
    let provider = default_provider();
    let unix = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let identity = Identity::generate(provider.as_ref())?;
    let client_config = Arc::new(ClientConfig::new(TrustPolicy::pinned(
        identity.fingerprint(),
    )));
    let mut server_config = ServerConfig::new(identity);
    server_config.max_connections = iterations + 16;
    server_config.max_handshakes = iterations + 16;
    let mut server = Endpoint::new(
        EndpointConfig::default(),
        provider.clone(),
        Some(server_config),
        unix,
    )?;
    let s_addr: SocketAddr = "127.0.0.1:4433".parse()?;
    let c_addr: SocketAddr = "127.0.0.1:50000".parse()?;
    let mut buf = Vec::new();
    let names = [
        "client: first flight",
        "server: answer",
        "client: complete",
        "server: complete",
    ];
    let mut steps: [Vec<Duration>; 4] = Default::default();
    let mut sizes: [Vec<usize>; 4] = Default::default();
    for _ in 0..iterations {
        let mut client = Endpoint::new(EndpointConfig::default(), provider.clone(), None, unix)?;
        let now = Instant::ZERO;
        let t = WallInstant::now();
        client.connect(now, client_config.clone(), s_addr)?;
        let hello = pump(&mut client, now, s_addr, Vec::new(), &mut buf);
        steps[0].push(t.elapsed());
        let t = WallInstant::now();
        let answer = pump(&mut server, now, c_addr, hello.clone(), &mut buf);
        steps[1].push(t.elapsed());
        let t = WallInstant::now();
        let finish = pump(&mut client, now, s_addr, answer.clone(), &mut buf);
        steps[2].push(t.elapsed());
        let t = WallInstant::now();
        let last = pump(&mut server, now, c_addr, finish.clone(), &mut buf);
        steps[3].push(t.elapsed());
        for (size, flight) in sizes.iter_mut().zip([&hello, &answer, &finish, &last]) {
            *size = flight.iter().map(Vec::len).collect();
        }
    }
    let mut total = Duration::ZERO;
    for ((name, samples), size) in names.iter().zip(steps.iter_mut()).zip(sizes) {
        let p50 = quantile(samples, 0.5);
        total += p50;
        println!(
            "{name:<22} p50 {:>6.1} us  p90 {:>6.1} us  sends datagrams of {size:?} B",
            p50.as_secs_f64() * 1e6,
            quantile(samples, 0.9).as_secs_f64() * 1e6
        );
    }
    println!(
        "sum of medians        {:>6.1} us",
        total.as_secs_f64() * 1e6
    );
    Ok(())
}
