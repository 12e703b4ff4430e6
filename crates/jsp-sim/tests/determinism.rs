//! A run replays byte for byte from its seed: the precondition for every "failing seed N" report.

mod common;

use jsp_sim::engine::Pair;
use jsp_sim::{CaptureRecord, LinkConfig, LossModel};

use common::{handshake, link20, ms, pinned, random_bytes, secs, transfer, App};

fn run(seed: u64) -> Vec<CaptureRecord> {
    let (server_cfg, client_cfg) = pinned();
    let link = LinkConfig {
        jitter: ms(5),
        loss: LossModel::Random(0.05),
        duplicate: 0.02,
        ..link20()
    };
    let mut pair = Pair::new(seed, server_cfg, client_cfg, link);
    let (mut c, mut s) = (App::client(&pair), App::server(&pair));
    assert!(handshake(&mut pair.sim, &mut c, &mut s, secs(10)));
    let data = random_bytes(seed, 64 * 1024);
    assert!(transfer(&mut pair.sim, &mut c, &mut s, &data, secs(30)) == data);
    pair.sim.capture().records().to_vec()
}

#[test]
fn same_seed_gives_byte_identical_captures_and_another_seed_differs() {
    let a = run(1234);
    let b = run(1234);
    assert!(a.len() > 50);
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(x, y, "record {i} differs");
    }
    let c = run(1235);
    assert_ne!(a, c);
    // Not only timing: the bytes on the wire differ (fresh keys, CIDs and randoms).
    assert_ne!(a[0].payload, c[0].payload);
}
