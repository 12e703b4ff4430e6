//! Exactly-once, in-order delivery (PROTOCOL.md §14, §15) over 1,000 seeded networks with 0-30%
//! loss, reordering, duplication, corruption and jitter: random stream data on several streams
//! arrives intact, and datagrams are never duplicated or corrupted.
//!
//! `JSP_SIM_SEEDS=N` changes the number of seeds; `JSP_SIM_SEED=S` replays one.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is a test failure

use std::collections::HashSet;

use core::time::Duration;

use jsp_proto::{Dir, Event, StreamApiError, StreamId};
use jsp_sim::engine::{seeded_identity, seeded_provider, Pair};
use jsp_sim::{for_each_seed, LinkConfig, LossModel};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn seeds() -> u64 {
    std::env::var("JSP_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000)
}

fn random_link(rng: &mut ChaCha8Rng) -> LinkConfig {
    let loss = match rng.gen_range(0..4) {
        0 => LossModel::None,
        1 => LossModel::Random(rng.gen_range(0.0..0.3)),
        2 => LossModel::GilbertElliott {
            p_good_to_bad: rng.gen_range(0.01..0.1),
            p_bad_to_good: rng.gen_range(0.2..0.6),
            loss_in_good: 0.0,
            loss_in_bad: rng.gen_range(0.3..0.9),
        },
        _ => LossModel::Random(0.3),
    };
    LinkConfig {
        delay: Duration::from_millis(rng.gen_range(1..60)),
        jitter: Duration::from_millis(rng.gen_range(0..10)),
        reorder: rng.gen_range(0.0..0.2),
        reorder_delay: Duration::from_millis(rng.gen_range(1..20)),
        duplicate: rng.gen_range(0.0..0.1),
        corrupt: rng.gen_range(0.0..0.05),
        loss,
        ..LinkConfig::default()
    }
}

/// Reads the client's events: a stream reported acknowledged must already be complete at the
/// server (its data was read in the same step at the latest).
fn poll_acknowledged(p: &mut Pair, seed: u64, ids: &[StreamId], done: &[bool], acked: &mut [bool]) {
    let Some(c) = p.client_conn() else {
        return;
    };
    while let Some(ev) = c.poll_event() {
        if let Event::StreamAcknowledged(sid) = ev {
            let i = ids.iter().position(|x| *x == sid).unwrap();
            assert!(
                done[i],
                "seed {seed}: stream {i} acknowledged before the server had all of it"
            );
            assert!(!acked[i], "seed {seed}: stream {i} acknowledged twice");
            acked[i] = true;
        }
    }
}

fn run(seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    let link = random_link(&mut rng);
    let id = seeded_identity(seeded_provider(seed, 7).as_ref(), 1);
    let (server, client) = Pair::pinned_configs(id);
    let mut p = Pair::new(seed, server, client, link.clone());
    assert!(
        p.drive_handshake(Duration::from_secs(30)),
        "seed {seed}: handshake over {link:?}"
    );
    let n_streams = rng.gen_range(1..4);
    let payloads: Vec<Vec<u8>> = (0..n_streams)
        .map(|_| {
            let len = rng.gen_range(0..60_000);
            (0..len).map(|_| rng.gen()).collect()
        })
        .collect();
    let c = p.client_conn().unwrap();
    let ids: Vec<StreamId> = payloads
        .iter()
        .map(|_| c.open_stream(Dir::Uni).unwrap())
        .collect();
    let mut written = vec![0usize; payloads.len()];
    let mut fin_sent = vec![false; payloads.len()];
    let mut datagrams_sent = HashSet::new();
    let mut got: Vec<Vec<u8>> = vec![Vec::new(); payloads.len()];
    let mut done = vec![false; payloads.len()];
    let mut datagrams_got = Vec::new();
    let mut acked = vec![false; payloads.len()];
    for step in 0..6000u32 {
        if let Some(c) = p.client_conn() {
            for (i, data) in payloads.iter().enumerate() {
                if written[i] < data.len() {
                    let chunk = &data[written[i]..(written[i] + 4096).min(data.len())];
                    match c.stream_write(ids[i], chunk, false) {
                        Ok(n) => written[i] += n,
                        Err(StreamApiError::Blocked) => {}
                        Err(e) => panic!("seed {seed}: write: {e}"),
                    }
                }
                if written[i] == data.len() && !fin_sent[i] {
                    c.stream_write(ids[i], &[], true).unwrap();
                    fin_sent[i] = true;
                }
            }
            if step < 50 {
                let d = step.to_be_bytes();
                if c.send_datagram(&d).is_ok() {
                    datagrams_sent.insert(d.to_vec());
                }
            }
        }
        p.sim.wake(p.client);
        p.sim.run_for(Duration::from_millis(20));
        let s = p.server_conn().expect("server connection");
        while let Some(ev) = s.poll_event() {
            match ev {
                Event::StreamReadable(sid) => {
                    let i = ids.iter().position(|x| *x == sid).unwrap();
                    loop {
                        let (d, fin) = s.stream_read(sid, 1 << 20).unwrap();
                        let empty = d.is_empty();
                        got[i].extend(d);
                        if fin {
                            done[i] = true;
                            break;
                        }
                        if empty {
                            break;
                        }
                    }
                }
                Event::DatagramReceived => {
                    while let Some(d) = s.read_datagram() {
                        datagrams_got.push(d);
                    }
                }
                Event::Closed(e) => panic!("seed {seed}: server closed: {e}"),
                _ => {}
            }
        }
        poll_acknowledged(&mut p, seed, &ids, &done, &mut acked);
        if done.iter().all(|d| *d) && acked.iter().all(|a| *a) {
            break;
        }
    }
    assert!(
        acked.iter().all(|a| *a),
        "seed {seed}: every finished stream is reported acknowledged to its sender: {acked:?}"
    );
    if !done.iter().all(|d| *d) {
        let now = p.sim.now();
        match p.client_conn() {
            Some(c) => eprintln!(
                "client: {c:?} err {:?} stats {:?} timeout {:?} now {now:?}",
                c.error(),
                c.stats(),
                c.poll_timeout()
            ),
            None => eprintln!("client: gone"),
        }
        match p.server_conn() {
            Some(c) => eprintln!(
                "server: {c:?} err {:?} stats {:?} timeout {:?}",
                c.error(),
                c.stats(),
                c.poll_timeout()
            ),
            None => eprintln!("server: gone"),
        }
    }
    for (i, data) in payloads.iter().enumerate() {
        assert!(
            done[i],
            "seed {seed}: stream {i} finished ({} of {} bytes) over {link:?}",
            got[i].len(),
            data.len()
        );
        assert!(got[i] == *data, "seed {seed}: stream {i} intact");
    }
    let unique: HashSet<&Vec<u8>> = datagrams_got.iter().collect();
    assert_eq!(
        unique.len(),
        datagrams_got.len(),
        "seed {seed}: a datagram was delivered twice"
    );
    for d in &datagrams_got {
        assert!(
            datagrams_sent.contains(d),
            "seed {seed}: a datagram arrived corrupted"
        );
    }
}

#[test]
fn exactly_once_in_order_over_many_lossy_networks() {
    for_each_seed(seeds(), run);
}
