//! Bulk-transfer helpers shared by the congestion-control and snapshot tests: keep streams full
//! from client to server, read everything at the server, and measure goodput over a window.

#![allow(dead_code)] // each test file uses a subset

use core::time::Duration;

use jsp_proto::{
    ClientConfig, ConnectionHandle, Dir, Event, ServerConfig, StreamApiError, StreamId,
};
use jsp_sim::engine::{seeded_identity, seeded_provider, EndpointNode, Pair};
use jsp_sim::LinkConfig;

/// A bottleneck link of `mbps` with one-way delay `owd_ms` and a queue of one BDP.
pub fn bottleneck(mbps: u64, owd_ms: u64) -> LinkConfig {
    let bdp = (mbps * 1_000_000 / 8) * (2 * owd_ms) / 1000;
    LinkConfig {
        bandwidth_bps: Some(mbps * 1_000_000),
        queue_bytes: usize::try_from(bdp.max(64 * 1024)).unwrap_or(usize::MAX),
        ..LinkConfig::with_delay(Duration::from_millis(owd_ms))
    }
}

/// Configs for a pair pinned to a seeded identity, with `tweak` applied to both transports.
pub fn configs(
    seed: u64,
    tweak: impl Fn(&mut jsp_proto::TransportConfig),
) -> (ServerConfig, ClientConfig) {
    let id = seeded_identity(seeded_provider(seed, 7).as_ref(), 2);
    let (mut s, mut c) = Pair::pinned_configs(id);
    tweak(&mut s.transport);
    tweak(&mut c.transport);
    (s, c)
}

/// One bulk sender per connection handle on the client endpoint.
pub struct Bulk {
    /// (client connection, its stream)
    pub flows: Vec<(ConnectionHandle, StreamId)>,
    /// Bytes delivered so far per server connection.
    pub delivered: std::collections::BTreeMap<ConnectionHandle, u64>,
    chunk: Vec<u8>,
}

impl Bulk {
    /// Opens one unidirectional stream on each of `handles`.
    pub fn new(p: &mut Pair, handles: &[ConnectionHandle]) -> Self {
        let mut flows = Vec::new();
        for &h in handles {
            let node = p.sim.node_mut::<EndpointNode>(p.client);
            let c = node.endpoint.connection_mut(h).expect("connection");
            let id = c.open_stream(Dir::Uni).expect("stream");
            flows.push((h, id));
        }
        Self {
            flows,
            delivered: Default::default(),
            chunk: incompressible(256 * 1024),
        }
    }

    /// Runs for `d` in 1 ms steps, keeping every stream's send buffer full and draining the
    /// server. Returns the bytes each server connection delivered during `d` (in accept order).
    pub fn run(&mut self, p: &mut Pair, d: Duration) -> Vec<u64> {
        let start = self.delivered.clone();
        let end = p.sim.now() + d;
        while p.sim.now() < end {
            {
                let node = p.sim.node_mut::<EndpointNode>(p.client);
                for (h, id) in &self.flows {
                    if let Some(c) = node.endpoint.connection_mut(*h) {
                        loop {
                            match c.stream_write(*id, &self.chunk, false) {
                                Ok(n) if n > 0 => {}
                                Ok(_) | Err(StreamApiError::Blocked) => break,
                                Err(e) => panic!("write: {e}"),
                            }
                        }
                    }
                }
            }
            p.sim.wake(p.client);
            p.sim.run_for(Duration::from_millis(1));
            let node = p.sim.node_mut::<EndpointNode>(p.server);
            let handles = node.accepted.clone();
            for sh in handles {
                let Some(c) = node.endpoint.connection_mut(sh) else {
                    continue;
                };
                while let Some(ev) = c.poll_event() {
                    if let Event::StreamReadable(sid) = ev {
                        while let Ok((data, _)) = c.stream_read(sid, 1 << 20) {
                            if data.is_empty() {
                                break;
                            }
                            *self.delivered.entry(sh).or_default() += data.len() as u64;
                        }
                    }
                }
            }
        }
        self.delivered
            .iter()
            .map(|(h, b)| b - start.get(h).copied().unwrap_or(0))
            .collect()
    }
}

/// Goodput in Mbit/s of `bytes` over `d`.
pub fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 * 8.0 / d.as_secs_f64() / 1e6
}

/// `len` pseudo-random bytes (xorshift64), so compression cannot make the link look faster
/// than it is: these flows measure congestion control, not LZ4.
fn incompressible(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}
