//! Connection-ID steering between the workers of one server (PROTOCOL.md §3.1): every CID a
//! worker issues starts with its prefix, so a 1-RTT packet that the kernel hands to another
//! worker (after the client's address changed) names its owner; long-header packets are never
//! steered.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is a test failure

use std::net::SocketAddr;
use std::sync::Arc;

use jsp_proto::crypto::deterministic::DeterministicProvider;
use jsp_proto::identity::Identity;
use jsp_proto::{
    ClientConfig, Endpoint, EndpointConfig, Instant, Output, ServerConfig, TrustPolicy,
};

#[test]
fn one_rtt_packets_name_the_worker_that_owns_the_connection() {
    let sp = Arc::new(DeterministicProvider::new([2; 32]));
    let id = Identity::from_seed(sp.as_ref(), &[9; 32]).unwrap();
    let client_cfg = Arc::new(ClientConfig::new(TrustPolicy::pinned(id.fingerprint())));
    let server_cfg = ServerConfig::new(id);
    let mut workers: Vec<Endpoint> = (0..3u8)
        .map(|i| {
            let mut w = Endpoint::new(
                EndpointConfig::default(),
                Arc::new(DeterministicProvider::new([10 + i; 32])),
                Some(server_cfg.clone()),
                1_800_000_000,
            )
            .unwrap();
            w.set_cid_prefix(Some(i));
            w
        })
        .collect();
    let shared = workers[0].resumption_state().unwrap();
    for w in &mut workers[1..] {
        w.set_resumption_state(shared.clone());
    }
    let mut client = Endpoint::new(
        EndpointConfig::default(),
        Arc::new(DeterministicProvider::new([1; 32])),
        None,
        1_800_000_000,
    )
    .unwrap();
    let s_addr: SocketAddr = "127.0.0.1:4433".parse().unwrap();
    let c_addr: SocketAddr = "127.0.0.1:50000".parse().unwrap();
    let h = client.connect(Instant::ZERO, client_cfg, s_addr).unwrap();

    // The kernel hashed this client to worker 2. Run the handshake with it.
    let owner = 2usize;
    let mut buf = Vec::new();
    let mut now = Instant::ZERO;
    let mut long_header_seen = None;
    let mut short_header_seen = None;
    for _ in 0..1_000 {
        let mut to_server = Vec::new();
        loop {
            match client.process(now, None, &mut buf) {
                Output::Datagram(t) => to_server.push(buf[..t.size].to_vec()),
                Output::Callback(t) => {
                    now = now.max(t.min(now + core::time::Duration::from_millis(1)));
                    break;
                }
                Output::Idle => break,
            }
        }
        for d in &to_server {
            if d[0] & 0x80 != 0 {
                long_header_seen.get_or_insert_with(|| d.clone());
            } else {
                short_header_seen.get_or_insert_with(|| d.clone());
            }
        }
        let mut to_client = Vec::new();
        for mut d in to_server {
            let mut input = Some((c_addr, d.as_mut_slice()));
            while let Output::Datagram(t) = workers[owner].process(now, input.take(), &mut buf) {
                to_client.push(buf[..t.size].to_vec());
            }
        }
        for mut d in to_client {
            let _ = client.process(now, Some((s_addr, d.as_mut_slice())), &mut buf);
        }
        if client.connection(h).unwrap().is_established() && short_header_seen.is_some() {
            break;
        }
        if client.connection(h).unwrap().is_established() {
            // Make the client send a 1-RTT packet.
            let c = client.connection_mut(h).unwrap();
            let s = c.open_stream(jsp_proto::Dir::Uni).unwrap();
            c.stream_write(s, b"hello", true).unwrap();
        }
        now += core::time::Duration::from_millis(1);
    }
    let one_rtt = short_header_seen.expect("a 1-RTT packet");
    let initial = long_header_seen.expect("an Initial packet");
    for (i, w) in workers.iter().enumerate() {
        let expected = (i != owner).then_some(owner as u8);
        assert_eq!(w.steering_target(&one_rtt), expected, "worker {i}");
        assert_eq!(w.steering_target(&initial), None, "worker {i}: Initial");
    }
    // An endpoint without a prefix never steers.
    assert_eq!(client.steering_target(&one_rtt), None);
}
