//! Measures the memory an idle established connection costs: establishes N connections between
//! one client endpoint and one server endpoint in the simulator, lets them go idle, and reports
//! the resident-set growth per connection side (Linux `/proc/self/statm`).
//!
//! Run: `cargo run --release -p jsp-sim --example idle_memory [-- N]`

#![allow(clippy::expect_used)] // a demo program: any failure is fatal and says what failed

use std::sync::Arc;

use core::time::Duration;

use jsp_proto::{ClientConfig, Endpoint, EndpointConfig};
use jsp_sim::engine::{seeded_identity, seeded_provider, EndpointNode, Pair, SIM_UNIX_EPOCH};
use jsp_sim::{LinkConfig, SimConfig, Simulator};

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let id = seeded_identity(seeded_provider(1, 7).as_ref(), 1);
    let (mut server_cfg, client_cfg) = Pair::pinned_configs(id);
    server_cfg.max_handshakes = n + 10;
    let client_cfg = Arc::new(ClientConfig { ..client_cfg });
    let mut sim = Simulator::new(SimConfig {
        default_link: LinkConfig::with_delay(Duration::from_millis(1)),
        capture_limit: 0,
        ..SimConfig::with_seed(1)
    });
    let saddr = "10.0.0.2:4433".parse().expect("addr");
    let caddr = "10.0.0.1:5000".parse().expect("addr");
    let server = Endpoint::new(
        EndpointConfig::default(),
        seeded_provider(1, 2),
        Some(server_cfg),
        SIM_UNIX_EPOCH,
    )
    .expect("server");
    let client = Endpoint::new(
        EndpointConfig::default(),
        seeded_provider(1, 1),
        None,
        SIM_UNIX_EPOCH,
    )
    .expect("client");
    let s = sim.add_node(saddr, EndpointNode::new(server, saddr));
    let c = sim.add_node(caddr, EndpointNode::new(client, caddr));
    sim.run_for(Duration::from_millis(10));
    let before = rss_bytes();
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let now = sim.now();
        let node = sim.node_mut::<EndpointNode>(c);
        handles.push(
            node.endpoint
                .connect(now, client_cfg.clone(), saddr)
                .expect("connect"),
        );
        if i % 50 == 49 {
            sim.run_for(Duration::from_millis(20));
        }
    }
    sim.run_for(Duration::from_secs(2));
    // Drain events so nothing is held for the application.
    for &h in &handles {
        if let Some(conn) = sim.node_mut::<EndpointNode>(c).endpoint.connection_mut(h) {
            while conn.poll_event().is_some() {}
        }
    }
    let established = handles
        .iter()
        .filter(|h| {
            sim.node_mut::<EndpointNode>(c)
                .endpoint
                .connection(**h)
                .is_some_and(|x| x.is_established())
        })
        .count();
    let after = rss_bytes();
    let server_conns = sim.node::<EndpointNode>(s).endpoint.connection_count();
    let per_side = (after.saturating_sub(before)) as f64 / (2.0 * n as f64);
    println!("{established}/{n} client connections established, {server_conns} on the server");
    println!(
        "RSS grew {:.1} MiB: about {:.1} KiB per idle connection side",
        (after - before) as f64 / (1 << 20) as f64,
        per_side / 1024.0
    );
}
