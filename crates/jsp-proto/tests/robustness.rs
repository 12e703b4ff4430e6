//! Untrusted input never panics the engine, and garbage gets no reply (PROTOCOL.md §5.5, §12.3):
//! arbitrary datagrams into a server endpoint, and mutated copies of a real handshake's datagrams
//! into fresh client and server endpoints.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is a test failure

use std::net::SocketAddr;
use std::sync::Arc;

use jsp_proto::crypto::deterministic::DeterministicProvider;
use jsp_proto::identity::Identity;
use jsp_proto::{ClientConfig, Endpoint, EndpointConfig, Instant, ServerConfig, TrustPolicy};
use proptest::prelude::*;

const UNIX: u64 = 1_800_000_000;

fn server() -> Endpoint {
    let p = Arc::new(DeterministicProvider::new([2; 32]));
    let id = Identity::from_seed(p.as_ref(), &[9; 32]).unwrap();
    Endpoint::new(
        EndpointConfig::default(),
        p,
        Some(ServerConfig::new(id)),
        UNIX,
    )
    .unwrap()
}

fn client_cfg() -> Arc<ClientConfig> {
    let p = DeterministicProvider::new([2; 32]);
    let id = Identity::from_seed(&p, &[9; 32]).unwrap();
    Arc::new(ClientConfig::new(TrustPolicy::pinned(id.fingerprint())))
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The datagrams of a real handshake: (from_client, bytes).
fn recorded_handshake() -> Vec<(bool, Vec<u8>)> {
    let mut s = server();
    let cp = Arc::new(DeterministicProvider::new([1; 32]));
    let mut c = Endpoint::new(EndpointConfig::default(), cp, None, UNIX).unwrap();
    let (ca, sa) = (addr("127.0.0.1:5000"), addr("127.0.0.1:4433"));
    c.connect(Instant::ZERO, client_cfg(), sa).unwrap();
    let mut log = Vec::new();
    let mut buf = Vec::new();
    for _ in 0..20 {
        let mut moved = false;
        while let Some(t) = c.poll_transmit(Instant::ZERO, &mut buf) {
            let mut d = buf[..t.size].to_vec();
            log.push((true, d.clone()));
            s.handle_datagram(Instant::ZERO, ca, &mut d);
            moved = true;
        }
        while let Some(t) = s.poll_transmit(Instant::ZERO, &mut buf) {
            let mut d = buf[..t.size].to_vec();
            log.push((false, d.clone()));
            c.handle_datagram(Instant::ZERO, sa, &mut d);
            moved = true;
        }
        if !moved {
            break;
        }
    }
    assert!(log.len() >= 4, "a handshake took place");
    log
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_datagrams_get_no_reply(datagrams in proptest::collection::vec(
        proptest::collection::vec(any::<u8>(), 0..1500), 1..8)) {
        let mut s = server();
        let mut buf = Vec::new();
        for mut d in datagrams {
            // Keep the long-header form bit clear or the version unknown-but-small, so nothing
            // here is a well-formed full-size Initial or version probe that deserves an answer.
            if d.len() >= 1200 {
                d.truncate(1199);
            }
            s.handle_datagram(Instant::ZERO, addr("10.1.1.1:1"), &mut d);
            prop_assert!(s.poll_transmit(Instant::ZERO, &mut buf).is_none());
        }
        prop_assert_eq!(s.connection_count(), 0);
    }

    #[test]
    fn mutated_handshake_datagrams_never_panic(
        flips in proptest::collection::vec((any::<usize>(), any::<usize>(), any::<u8>()), 1..6),
        truncate in any::<Option<usize>>(),
    ) {
        let log = recorded_handshake();
        let mut s = server();
        let cp = Arc::new(DeterministicProvider::new([1; 32]));
        let mut c = Endpoint::new(EndpointConfig::default(), cp, None, UNIX).unwrap();
        c.connect(Instant::ZERO, client_cfg(), addr("127.0.0.1:4433")).unwrap();
        let mut buf = Vec::new();
        for (i, (from_client, d)) in log.iter().enumerate() {
            let mut d = d.clone();
            for (which, pos, x) in &flips {
                if which % log.len() == i && !d.is_empty() {
                    let p = pos % d.len();
                    d[p] ^= x | 1;
                }
            }
            if let Some(t) = truncate {
                if t % 3 == 0 { d.truncate(t % (d.len() + 1)); }
            }
            let now = Instant::from_nanos(i as u64 * 1_000_000);
            if *from_client {
                s.handle_datagram(now, addr("127.0.0.1:5000"), &mut d);
            } else {
                c.handle_datagram(now, addr("127.0.0.1:4433"), &mut d);
            }
            while s.poll_transmit(now, &mut buf).is_some() {}
            while c.poll_transmit(now, &mut buf).is_some() {}
            s.handle_timeout(now);
            c.handle_timeout(now);
        }
    }
}
