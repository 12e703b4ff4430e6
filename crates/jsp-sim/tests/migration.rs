//! Connection migration and stateless reset (PROTOCOL.md §15.2, §15.3) in the simulator: a NAT
//! rebinding or a network change in the middle of a large transfer loses nothing, a voluntary
//! migration uses a fresh connection ID, and a server that lost its state ends the client's
//! connection quickly with a stateless reset.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is a test failure

use core::time::Duration;

use jsp_proto::{
    ConnectionError, Dir, Endpoint, EndpointConfig, Event, ServerConfig, StreamApiError,
};
use jsp_sim::engine::{seeded_identity, seeded_provider, EndpointNode, Pair, SIM_UNIX_EPOCH};
use jsp_sim::{LinkConfig, Recorder, Scope};

const RESET_KEY: [u8; 32] = [0x42; 32];

fn pair(seed: u64, link: LinkConfig) -> (Pair, ServerConfig) {
    let id = seeded_identity(seeded_provider(seed, 7).as_ref(), 5);
    let (mut server, client) = Pair::pinned_configs(id);
    server.transport.heartbeat_interval = Duration::from_secs(5);
    let backup = server.clone();
    let mut p = Pair::new(seed, server, client, link);
    // Give the server endpoint a fixed reset key so a "restarted" one can reset old connections.
    let provider = seeded_provider(seed, 2);
    let ep = Endpoint::new(
        EndpointConfig {
            reset_key: Some(RESET_KEY),
            ..EndpointConfig::default()
        },
        provider,
        Some(backup.clone()),
        SIM_UNIX_EPOCH,
    )
    .unwrap();
    p.sim.node_mut::<EndpointNode>(p.server).endpoint = ep;
    assert!(p.drive_handshake(Duration::from_secs(5)), "handshake");
    (p, backup)
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0])
        .collect()
}

/// Transfers `data` client -> server on one stream; calls `at_third` once a third has arrived.
fn transfer(p: &mut Pair, data: &[u8], mut at_third: impl FnMut(&mut Pair)) -> Vec<u8> {
    let id = p.client_conn().unwrap().open_stream(Dir::Uni).unwrap();
    let mut written = 0;
    let mut fin_sent = false;
    let mut received = Vec::with_capacity(data.len());
    let mut fired = false;
    let limit = p.sim.now() + Duration::from_secs(600);
    while p.sim.now() < limit {
        if let Some(c) = p.client_conn() {
            while written < data.len() {
                let end = (written + 64 * 1024).min(data.len());
                match c.stream_write(id, &data[written..end], false) {
                    Ok(n) => written += n,
                    Err(StreamApiError::Blocked) => break,
                    Err(e) => panic!("write: {e}"),
                }
            }
            if written == data.len() && !fin_sent {
                c.stream_write(id, &[], true).unwrap();
                fin_sent = true;
            }
        }
        p.sim.wake(p.client);
        p.sim.run_for(Duration::from_millis(5));
        let srv = p.server_conn().expect("server connection");
        while let Some(ev) = srv.poll_event() {
            if let Event::StreamReadable(s) = ev {
                loop {
                    let (chunk, fin) = srv.stream_read(s, 1 << 20).unwrap();
                    let done = chunk.is_empty() || fin;
                    received.extend(chunk);
                    if fin {
                        return received;
                    }
                    if done {
                        break;
                    }
                }
            }
        }
        if !fired && received.len() > data.len() / 3 {
            fired = true;
            at_third(p);
        }
    }
    panic!(
        "transfer did not finish: {} of {} bytes",
        received.len(),
        data.len()
    );
}

#[test]
fn nat_rebinding_mid_transfer_loses_nothing_and_the_path_is_validated() {
    let link = LinkConfig {
        bandwidth_bps: Some(1_000_000_000),
        queue_bytes: 1 << 20,
        ..LinkConfig::with_delay(Duration::from_millis(10))
    };
    let (mut p, _) = pair(21, link);
    let data = pattern(100 << 20);
    let new_addr = "10.0.0.77:41000".parse().unwrap();
    let got = transfer(&mut p, &data, |p| {
        p.sim.rebind(p.client, new_addr);
    });
    assert!(got == data, "100 MB arrived intact across the rebinding");
    let srv = p.server_conn().unwrap();
    assert_eq!(
        srv.remote_address(),
        new_addr,
        "the server follows the new address"
    );
}

#[test]
fn voluntary_migration_switches_to_an_unlinkable_connection_id() {
    let (mut p, _) = pair(22, LinkConfig::with_delay(Duration::from_millis(10)));
    p.sim.run_for(Duration::from_millis(200));
    assert!(
        p.client_conn().unwrap().spare_remote_cids() >= 1,
        "the server issued spare connection IDs"
    );
    let rec = p
        .sim
        .add_middlebox(Scope::Link(p.client, p.server), Recorder::default());
    let data = pattern(2 << 20);
    let new_addr = "10.0.9.9:5555".parse().unwrap();
    let got = transfer(&mut p, &data, |p| {
        p.sim.rebind(p.client, new_addr);
        assert!(p.client_conn().unwrap().migrate());
    });
    assert!(got == data);
    // Short-header DCIDs (bytes 1..9) seen from the old and the new address never overlap.
    let seen = &p.sim.middlebox::<Recorder>(rec).seen;
    let dcids = |from_new: bool| -> std::collections::HashSet<Vec<u8>> {
        seen.iter()
            .filter(|(_, d)| (d.src == new_addr) == from_new && d.payload[0] & 0x80 == 0)
            .map(|(_, d)| d.payload[1..9].to_vec())
            .collect()
    };
    let (old, new) = (dcids(false), dcids(true));
    assert!(!new.is_empty());
    assert!(
        old.is_disjoint(&new),
        "the new path cannot be linked by its CID"
    );
}

#[test]
fn restarted_server_resets_old_connections_quickly() {
    let (mut p, backup) = pair(23, LinkConfig::with_delay(Duration::from_millis(10)));
    p.sim.run_for(Duration::from_millis(100));
    // The server restarts: all connection state is gone, the reset key is kept.
    let ep = Endpoint::new(
        EndpointConfig {
            reset_key: Some(RESET_KEY),
            ..EndpointConfig::default()
        },
        seeded_provider(99, 2),
        Some(backup),
        SIM_UNIX_EPOCH,
    )
    .unwrap();
    p.sim.node_mut::<EndpointNode>(p.server).endpoint = ep;
    let t0 = p.sim.now();
    let c = p.client_conn().unwrap();
    let id = c.open_stream(Dir::Bi).unwrap();
    c.stream_write(id, b"are you there?", true).unwrap();
    p.sim.wake(p.client);
    p.sim.run_for(Duration::from_millis(100));
    let c = p.client_conn().unwrap();
    assert_eq!(c.error(), Some(&ConnectionError::Reset));
    assert!(
        p.sim.now() - t0 <= Duration::from_millis(100),
        "within one RTT, not a timeout"
    );
    let stats = p
        .sim
        .node::<EndpointNode>(p.server)
        .endpoint
        .stats()
        .clone();
    // One reset per datagram of the old connection that arrived (the client's data, and at most
    // a path MTU probe sent with it), and no other reply: each reset is smaller than what
    // triggered it, and the old connection's packets were the only unroutable ones.
    assert!(
        (1..=2).contains(&stats.stateless_resets_sent),
        "{} resets",
        stats.stateless_resets_sent
    );
    assert_eq!(stats.stateless_resets_sent, stats.dropped_unroutable);
}

#[test]
fn a_reset_for_someone_elses_cid_is_not_sent() {
    // A server with another reset key does not recognise the CIDs and stays silent.
    let (mut p, backup) = pair(24, LinkConfig::with_delay(Duration::from_millis(10)));
    let ep = Endpoint::new(
        EndpointConfig {
            reset_key: Some([7; 32]),
            ..EndpointConfig::default()
        },
        seeded_provider(98, 2),
        Some(backup),
        SIM_UNIX_EPOCH,
    )
    .unwrap();
    p.sim.node_mut::<EndpointNode>(p.server).endpoint = ep;
    let c = p.client_conn().unwrap();
    let id = c.open_stream(Dir::Bi).unwrap();
    c.stream_write(id, b"hello?", true).unwrap();
    p.sim.wake(p.client);
    p.sim.run_for(Duration::from_secs(1));
    let stats = p
        .sim
        .node::<EndpointNode>(p.server)
        .endpoint
        .stats()
        .clone();
    assert_eq!(stats.stateless_resets_sent, 0);
    assert!(p.client_conn().unwrap().error().is_none());
}
