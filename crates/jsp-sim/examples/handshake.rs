//! Two JetStreamProto engines perform the post-quantum handshake over the deterministic simulator
//! (20 ms one-way delay), then exchange a message on a stream. Prints the negotiated suite, the
//! key-exchange group, every datagram on the wire, and the totals.
//!
//! Run: `cargo run -p jsp-sim --example handshake [-- --chacha] [-- --seed N]`

use core::time::Duration;

use jsp_proto::crypto::CipherSuite;
use jsp_proto::{Dir, Event};
use jsp_sim::engine::{seeded_identity, seeded_provider, Pair};
use jsp_sim::{LinkConfig, Origin};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seed = args
        .iter()
        .position(|a| a == "--seed")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let chacha = args.iter().any(|a| a == "--chacha");

    let identity = seeded_identity(seeded_provider(seed, 9).as_ref(), 1);
    let fingerprint = identity.fingerprint();
    let (server_cfg, mut client_cfg) = Pair::pinned_configs(identity);
    if chacha {
        client_cfg.transport.cipher_suites = vec![CipherSuite::ChaCha20Poly1305];
    }
    let link = LinkConfig::with_delay(Duration::from_millis(20));
    let mut pair = Pair::new(seed, server_cfg, client_cfg, link);

    println!("JetStreamProto handshake over the simulator (seed {seed}, 20 ms one-way)");
    println!("server key pinned by the client: {fingerprint}");
    if !pair.drive_handshake(Duration::from_secs(5)) {
        let err = pair.client_conn().and_then(|c| c.error().cloned());
        eprintln!("handshake failed: {err:?}");
        std::process::exit(1);
    }
    let t_hs = pair.sim.now();
    let Some(client) = pair.client_conn() else {
        eprintln!("client connection vanished");
        std::process::exit(1);
    };
    let summary = client.handshake_summary().cloned();
    // Send one message on a stream and let the server read it.
    let sent = client.open_stream(Dir::Bi).and_then(|id| {
        client
            .stream_write(id, b"hello, post-quantum world", true)
            .map(|_| id)
    });
    let Ok(stream) = sent else {
        eprintln!("could not open a stream");
        std::process::exit(1);
    };
    pair.sim.run_for(Duration::from_millis(100));
    let mut received = Vec::new();
    if let Some(server) = pair.server_conn() {
        while let Some(ev) = server.poll_event() {
            if let Event::StreamReadable(id) = ev {
                if let Ok((data, _fin)) = server.stream_read(id, 1 << 16) {
                    received.extend(data);
                }
            }
        }
    }

    if let Some(s) = summary {
        println!("version:        {:#010x}", s.version);
        println!("cipher suite:   {:?}", s.suite);
        println!("key exchange:   {}", s.group);
        println!(
            "server:         {}",
            s.peer
                .map_or("?".to_string(), |p| p.fingerprint.to_string())
        );
    }
    println!(
        "handshake done: {:.1} ms of virtual time (1 RTT = 40 ms)",
        t_hs.as_nanos() as f64 / 1e6
    );
    println!(
        "stream {}: server received {:?}",
        stream.0,
        String::from_utf8_lossy(&received)
    );
    println!("\nbytes on the wire:");
    let (client_id, server_id) = (pair.client, pair.server);
    for r in pair.sim.capture().records() {
        let who = match r.origin {
            Origin::Node(n) if n == client_id => "client -> server",
            Origin::Node(n) if n == server_id => "server -> client",
            _ => "other",
        };
        let head: String = r
            .payload
            .iter()
            .take(12)
            .map(|b| format!("{b:02x}"))
            .collect();
        println!(
            "  {:>8.3} ms  {who}  {:>5} bytes  {head}..",
            r.time.as_nanos() as f64 / 1e6,
            r.payload.len()
        );
    }
    println!(
        "total: client sent {} bytes, server sent {} bytes",
        pair.sim.capture().bytes_sent_by(client_id),
        pair.sim.capture().bytes_sent_by(server_id)
    );
}
