//! Seed corpus generator: writes real inputs for every fuzz target into
//! `fuzz/corpus/<target>/seed-*` (replacing earlier `seed-*` files, leaving any other corpus
//! entries alone): varints and packet numbers, real datagrams recorded from a seeded handshake,
//! encoded headers, frames, handshake messages, transport parameters, certificates, sealed
//! tickets, record streams, and structure-aware inputs for the two engine targets (the recorded
//! client flight by reference and raw, mutated variants, Retry and resumption modes).
//!
//! Run: `cargo run --manifest-path fuzz/Cargo.toml --bin gen_corpus`. The output depends only on
//! the seeds in `jsp_fuzz::world`, so it is reproducible (until the engine's bytes change).

use std::fs;
use std::path::{Path, PathBuf};

use jsp_fuzz::pair::{AppAction, PairInput, PairOp, MODE_NO_SETTLE, MODE_RESUME};
use jsp_fuzz::server::{recording, replay_matches, Mutation, Recording, ServerInput, ServerOp};
use jsp_fuzz::tickets::TicketWorld;
use jsp_fuzz::world::{cid_len, SEED, UNIX_AT_ZERO};
use jsp_proto::identity::Certificate;
use jsp_proto::time::UnixTime;
use jsp_proto::wire::frame::{self, Dir, NewConnectionId};
use jsp_proto::wire::header::{self, ConnectionId, LongHeaderType};
use jsp_proto::wire::messages::{
    CertificateKind, CertificateMsg, CertificateRequest, CertificateVerify, ClientHello,
    EncryptedExtensions, Finished, KeyShare, Message, NewSessionTicket, PreSharedKey, ServerHello,
    ShortList, GROUP_X25519_MLKEM768, SCHEME_ED25519,
};
use jsp_proto::wire::transport_params::TransportParameters;
use jsp_proto::wire::varint;
use jsp_sim::engine::{seeded_identity, seeded_provider};

type Seeds = Vec<(String, Vec<u8>)>;

fn cid(b: &[u8]) -> ConnectionId {
    match ConnectionId::from_slice(b) {
        Ok(c) => c,
        Err(e) => panic!("constant CID: {e:?}"),
    }
}

fn varint_seeds() -> Seeds {
    let values = [
        0u64,
        1,
        63,
        64,
        16_383,
        16_384,
        (1 << 30) - 1,
        1 << 30,
        varint::MAX,
    ];
    let mut out = Seeds::new();
    let mut all = Vec::new();
    for v in values {
        let mut b = Vec::new();
        varint::encode(v, &mut b);
        all.extend_from_slice(&b);
        out.push((format!("v{v:x}"), b));
    }
    out.push(("all".into(), all.clone()));
    // 17-byte packet number prefixes: largest acked, distance, flag.
    for (largest, distance, flag) in [
        (0u64, 0u64, 1u8),
        (1000, 3, 1),
        (0xfff_ffff, 70_000, 1),
        (5, 200, 0),
    ] {
        let mut b = Vec::new();
        b.extend_from_slice(&largest.to_le_bytes());
        b.extend_from_slice(&distance.to_le_bytes());
        b.push(flag);
        b.extend_from_slice(&all);
        out.push((format!("pn-{largest}-{distance}-{flag}"), b));
    }
    out
}

fn header_seeds(rec: &Recording) -> Seeds {
    let len = u8::try_from(cid_len()).unwrap_or(8);
    let mut out = Seeds::new();
    let mut add = |name: String, d: &[u8]| {
        let mut b = vec![len];
        b.extend_from_slice(d);
        out.push((name, b));
    };
    for (i, d) in rec.datagrams.iter().take(12).enumerate() {
        add(format!("client-{i}"), d);
    }
    for (i, d) in rec.server_datagrams.iter().take(12).enumerate() {
        add(format!("server-{i}"), d);
    }
    let (dcid, scid) = (cid(&[1, 2, 3, 4, 5, 6, 7, 8]), cid(&[9; 8]));
    let mut b = Vec::new();
    if let Ok(start) = header::encode_retry(&mut b, jsp_proto::VERSION_1, &dcid, &scid, b"token!") {
        b.extend_from_slice(&[0xaa; 16]);
        add("retry".into(), &b[start..]);
    }
    let mut b = Vec::new();
    if header::encode_version_negotiation(
        &mut b,
        &dcid,
        &scid,
        &[jsp_proto::VERSION_1, 0x0a0a_0a0a],
        0x15,
    )
    .is_ok()
    {
        add("vn".into(), &b);
    }
    for (name, ty) in [
        ("initial", LongHeaderType::Initial { token: b"tok" }),
        ("zero-rtt", LongHeaderType::ZeroRtt),
        ("handshake", LongHeaderType::Handshake),
    ] {
        let mut b = Vec::new();
        let layout =
            header::encode_long_header(&mut b, ty, jsp_proto::VERSION_1, &dcid, &scid, 7, 2);
        b.resize(layout.payload_offset() + 40, 0x5a);
        let end = b.len();
        let _ = layout.patch_length(&mut b, end);
        // Two coalesced copies.
        let mut two = b.clone();
        two.extend_from_slice(&b);
        add(name.into(), &two);
    }
    let mut b = Vec::new();
    let layout = header::encode_short_header(&mut b, &dcid, true, 300, 2);
    b.resize(layout.payload_offset() + 30, 0x11);
    add("short".into(), &b);
    let mut unsupported = b.clone();
    unsupported[0] = 0xc0;
    unsupported[1..5].copy_from_slice(&0x1a2a_3a4au32.to_be_bytes());
    add("unsupported".into(), &unsupported);
    out
}

fn frame_seeds() -> Seeds {
    let mut frames: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut f = |name, enc: &dyn Fn(&mut Vec<u8>)| {
        let mut b = Vec::new();
        enc(&mut b);
        frames.push((name, b));
    };
    f("padding", &|b| frame::encode_padding(b, 5));
    f("ping", &|b| frame::encode_ping(b));
    f("ack", &|b| {
        let _ = frame::encode_ack(b, 25, [90u64..101, 50..80, 0..10]);
    });
    f("reset-stream", &|b| {
        frame::encode_reset_stream(b, 4, 7, 1000)
    });
    f("stop-sending", &|b| frame::encode_stop_sending(b, 8, 1));
    f("crypto", &|b| {
        frame::encode_crypto(b, 1200, b"handshake bytes")
    });
    f("stream", &|b| {
        frame::encode_stream(b, 0, 0, b"hello", false, true)
    });
    f("stream-fin-off", &|b| {
        frame::encode_stream(b, 4, 70_000, b"world", true, true)
    });
    f("max-data", &|b| frame::encode_max_data(b, 1 << 20));
    f("max-stream-data", &|b| {
        frame::encode_max_stream_data(b, 4, 1 << 18)
    });
    f("max-streams", &|b| {
        frame::encode_max_streams(b, Dir::Bi, 100)
    });
    f("max-streams-uni", &|b| {
        frame::encode_max_streams(b, Dir::Uni, 1 << 60)
    });
    f("data-blocked", &|b| frame::encode_data_blocked(b, 77));
    f("stream-data-blocked", &|b| {
        frame::encode_stream_data_blocked(b, 4, 77)
    });
    f("streams-blocked", &|b| {
        frame::encode_streams_blocked(b, Dir::Uni, 3)
    });
    f("new-cid", &|b| {
        let ncid = NewConnectionId {
            sequence: 3,
            retire_prior_to: 1,
            cid: cid(&[7; 8]),
            reset_token: [0x42; 16],
        };
        frame::encode_new_connection_id(b, &ncid);
    });
    f("retire-cid", &|b| frame::encode_retire_connection_id(b, 2));
    f("path-challenge", &|b| {
        frame::encode_path_challenge(b, &[1; 8])
    });
    f("path-response", &|b| {
        frame::encode_path_response(b, &[2; 8])
    });
    f("connection-close", &|b| {
        frame::encode_connection_close(b, 0x0a, 0x06, b"bad params")
    });
    f("application-close", &|b| {
        frame::encode_application_close(b, 99, "bye \u{e9}".as_bytes())
    });
    f("handshake-done", &|b| frame::encode_handshake_done(b));
    f("stream-skip", &|b| frame::encode_stream_skip(b, 0, 10, 500));
    f("datagram", &|b| frame::encode_datagram(b, b"dgram", true));
    f("datagram-nolen", &|b| {
        frame::encode_datagram(b, b"last dgram", false)
    });
    f("stream-nolen", &|b| {
        frame::encode_stream(b, 8, 3, b"tail data", true, false)
    });
    let mut out: Seeds = frames
        .iter()
        .map(|(n, b)| (n.to_string(), b.clone()))
        .collect();
    // One payload with every frame (the ones without a length last).
    let mut all = Vec::new();
    for (n, b) in &frames {
        if !n.ends_with("nolen") {
            all.extend_from_slice(b);
        }
    }
    all.extend_from_slice(
        &frames
            .iter()
            .find(|(n, _)| *n == "stream-nolen")
            .map(|(_, b)| b.clone())
            .unwrap_or_default(),
    );
    out.push(("all".into(), all));
    out
}

fn transport_param_bytes(server: bool) -> Vec<u8> {
    let mut p = TransportParameters {
        initial_source_connection_id: Some(cid(&[3; 8])),
        ..TransportParameters::default()
    };
    if server {
        p.original_destination_connection_id = Some(cid(&[4; 8]));
        p.retry_source_connection_id = Some(cid(&[5; 8]));
        p.stateless_reset_token = Some([6; 16]);
        p.max_datagram_frame_size = 1200;
    }
    let mut b = Vec::new();
    p.encode(&mut b);
    b
}

fn transport_param_seeds() -> Seeds {
    let mut grease = transport_param_bytes(false);
    // An unknown (greased) parameter: id 0x1b, 3 bytes.
    grease.extend_from_slice(&[0x1b, 0x03, 1, 2, 3]);
    vec![
        ("client".into(), transport_param_bytes(false)),
        ("server".into(), transport_param_bytes(true)),
        ("grease".into(), grease),
    ]
}

fn certificate() -> Certificate {
    let provider = seeded_provider(SEED, 20);
    let authority = seeded_identity(provider.as_ref(), 0xca);
    let subject = seeded_identity(provider.as_ref(), 0x5b);
    match Certificate::issue(
        &authority,
        "server.example",
        &subject.public_key(),
        UnixTime(UNIX_AT_ZERO - 3600),
        UnixTime(UNIX_AT_ZERO + 86_400),
    ) {
        Ok(c) => c,
        Err(e) => panic!("issue: {e}"),
    }
}

fn certificate_seeds() -> Seeds {
    let provider = seeded_provider(SEED, 20);
    let authority = seeded_identity(provider.as_ref(), 0xca);
    let other = seeded_identity(provider.as_ref(), 0x0b);
    let mut out = vec![("server".to_string(), certificate().encode())];
    for (name, issuer, subject) in [
        ("long-subject", &authority, "x".repeat(255)),
        (
            "utf8-subject",
            &authority,
            "s\u{e9}rv\u{e9}r.example".to_string(),
        ),
        ("other-issuer", &other, "server.example".to_string()),
    ] {
        if let Ok(c) = Certificate::issue(
            issuer,
            &subject,
            &other.public_key(),
            UnixTime(0),
            UnixTime(u64::MAX),
        ) {
            out.push((name.to_string(), c.encode()));
        }
    }
    out
}

fn message_seeds() -> Seeds {
    let share_c = vec![0x31; 1216];
    let share_s = vec![0x32; 1120];
    let tp_c = transport_param_bytes(false);
    let tp_s = transport_param_bytes(true);
    let cert = certificate().encode();
    let versions = ShortList::from_slice(&[jsp_proto::VERSION_1]).unwrap_or_default();
    let suites = ShortList::from_slice(&[1u16, 2]).unwrap_or_default();
    let hello = ClientHello {
        random: [7; 32],
        versions,
        cipher_suites: suites,
        key_share: KeyShare {
            group: GROUP_X25519_MLKEM768,
            share: &share_c,
        },
        server_name: Some("server.example"),
        transport_parameters: &tp_c,
        early_data: false,
        pre_shared_key: None,
        previous_version: None,
    };
    let resuming = ClientHello {
        early_data: true,
        pre_shared_key: Some(PreSharedKey {
            identity: b"opaque ticket bytes",
            obfuscated_ticket_age: 12_345,
            binder: [9; 32],
        }),
        previous_version: Some(jsp_proto::VERSION_1),
        server_name: None,
        ..hello
    };
    let messages = [
        ("client-hello", Message::ClientHello(hello)),
        ("client-hello-psk", Message::ClientHello(resuming)),
        (
            "server-hello",
            Message::ServerHello(ServerHello {
                random: [8; 32],
                version: jsp_proto::VERSION_1,
                cipher_suite: 1,
                key_share: KeyShare {
                    group: GROUP_X25519_MLKEM768,
                    share: &share_s,
                },
                psk_accepted: true,
            }),
        ),
        (
            "encrypted-extensions",
            Message::EncryptedExtensions(EncryptedExtensions {
                transport_parameters: &tp_s,
                early_data: true,
            }),
        ),
        (
            "certificate-request",
            Message::CertificateRequest(CertificateRequest { flags: 1 }),
        ),
        (
            "certificate",
            Message::Certificate(CertificateMsg {
                kind: CertificateKind::Certificate,
                data: &cert,
            }),
        ),
        (
            "certificate-rpk",
            Message::Certificate(CertificateMsg {
                kind: CertificateKind::RawPublicKey,
                data: &[1; 33],
            }),
        ),
        (
            "certificate-none",
            Message::Certificate(CertificateMsg::NONE),
        ),
        (
            "certificate-verify",
            Message::CertificateVerify(CertificateVerify {
                scheme: SCHEME_ED25519,
                signature: &[0x55; 64],
            }),
        ),
        (
            "finished",
            Message::Finished(Finished {
                verify_data: [0x66; 32],
            }),
        ),
        (
            "new-session-ticket",
            Message::NewSessionTicket(NewSessionTicket {
                lifetime: 86_400,
                age_add: 0xdead_beef,
                nonce: &[0, 0, 0, 1],
                ticket: &[0x77; 100],
                max_early_data: Some(65_536),
            }),
        ),
    ];
    let mut out = Seeds::new();
    let mut stream = Vec::new();
    for (name, m) in &messages {
        let mut b = Vec::new();
        if m.encode(&mut b).is_ok() {
            stream.extend_from_slice(&b);
            // The body alone exercises decode_body.
            out.push((format!("{name}-body"), b[4..].to_vec()));
            out.push((name.to_string(), b));
        }
    }
    out.push(("stream".into(), stream));
    out
}

fn ticket_seeds() -> Seeds {
    let w = TicketWorld::new();
    let mut fresh = TicketWorld::new();
    for (t, _) in w.sealed() {
        let (now, age) = jsp_fuzz::tickets::fresh_probe(&fresh, t);
        assert!(
            fresh.open(now, t, age).is_ok(),
            "a sample ticket does not open in a fresh ticket world"
        );
    }
    w.sealed()
        .iter()
        .enumerate()
        .map(|(i, (t, _))| (format!("sealed-{i}"), t.clone()))
        .collect()
}

fn record_seeds(rec: &Recording) -> Seeds {
    let mut stream = Vec::new();
    for d in rec.datagrams.iter().take(6) {
        stream.extend_from_slice(&u16::try_from(d.len()).unwrap_or(0).to_be_bytes());
        stream.extend_from_slice(d);
    }
    let mut out = Seeds::new();
    for (name, max, plan) in [
        ("whole", 0xffffu16, vec![0x7f]),
        ("bytewise", 0xffff, vec![1]),
        ("mixed", 1500, vec![2, 0, 0x85, 100, 0x7f]),
        ("small-max", 64, vec![3, 7]),
    ] {
        let mut b = max.to_be_bytes().to_vec();
        b.push(u8::try_from(plan.len()).unwrap_or(0));
        b.extend_from_slice(&plan);
        b.extend_from_slice(&stream);
        out.push((name.into(), b));
    }
    // A truncated stream and a zero-length record.
    let mut b = vec![0xff, 0xff, 1, 5];
    b.extend_from_slice(&stream[..stream.len().min(700)]);
    out.push(("truncated".into(), b));
    out.push(("zero".into(), vec![0xff, 0xff, 0, 0, 3, 1, 2, 3, 0, 0]));
    out
}

fn server_seeds(rec: &Recording) -> Seeds {
    let mut out = Seeds::new();
    let replay = ServerInput {
        mode: 0,
        ops: rec.ops_by_reference(),
    };
    out.push(("replay".into(), replay.encode()));
    let raw = ServerInput {
        mode: 0,
        ops: rec.ops.clone(),
    };
    out.push(("replay-raw".into(), raw.encode()));
    // The first connection's flight only, raw (mutations of real packets).
    let first: Vec<ServerOp> = rec
        .ops
        .iter()
        .take_while(|op| !matches!(op, ServerOp::Raw { from: 1, .. }))
        .cloned()
        .collect();
    out.push((
        "first-raw".into(),
        ServerInput {
            mode: 0,
            ops: first.clone(),
        }
        .encode(),
    ));
    // The same Initial from every address (handshake cap, SERVER_BUSY), then time.
    let ops: Vec<ServerOp> = (0..4)
        .map(|from| ServerOp::Recorded {
            from,
            index: 0,
            mutations: Vec::new(),
        })
        .chain([ServerOp::AdvanceToTimeout, ServerOp::Advance { ms: 10_000 }])
        .collect();
    out.push((
        "busy".into(),
        ServerInput {
            mode: 0,
            ops: ops.clone(),
        }
        .encode(),
    ));
    out.push((
        "retry-always".into(),
        ServerInput {
            mode: 1,
            ops: ops.clone(),
        }
        .encode(),
    ));
    out.push((
        "retry-when-busy".into(),
        ServerInput { mode: 2, ops }.encode(),
    ));
    // The replay with the 1-RTT part of the first connection from another address (migration).
    let mut migrate = rec.ops_by_reference();
    let mut n = 0;
    for op in migrate.iter_mut() {
        if let ServerOp::Recorded { from: f @ 0, .. } = op {
            n += 1;
            if n > 3 {
                *f = 2;
            }
        }
    }
    out.push((
        "migrate".into(),
        ServerInput {
            mode: 0,
            ops: migrate,
        }
        .encode(),
    ));
    // Mutated replays.
    for (name, m) in [
        ("flip", Mutation::FlipBit { pos: 40, bit: 3 }),
        (
            "set-first",
            Mutation::SetByte {
                pos: 0,
                value: 0x40,
            },
        ),
        ("truncate", Mutation::Truncate { pos: 1199 }),
        ("append", Mutation::Append { n: 30 }),
    ] {
        let ops = rec
            .ops_by_reference()
            .into_iter()
            .map(|op| match op {
                ServerOp::Recorded { from, index, .. } if index % 3 == 1 => ServerOp::Recorded {
                    from,
                    index,
                    mutations: vec![m],
                },
                other => other,
            })
            .collect();
        out.push((
            format!("mutated-{name}"),
            ServerInput { mode: 0, ops }.encode(),
        ));
    }
    // Garbage that looks like a short header to a known CID length, and an unknown version.
    let mut short = vec![0x40];
    short.extend_from_slice(&[0x77; 40]);
    let mut unknown = vec![0xc0, 0x1a, 0x2a, 0x3a, 0x4a, 8];
    unknown.extend_from_slice(&[1; 8]);
    unknown.push(8);
    unknown.extend_from_slice(&[2; 8]);
    unknown.resize(1200, 0);
    out.push((
        "garbage".into(),
        ServerInput {
            mode: 0,
            ops: vec![
                ServerOp::Raw {
                    from: 0,
                    bytes: short,
                },
                ServerOp::Raw {
                    from: 1,
                    bytes: unknown,
                },
                ServerOp::AdvanceToTimeout,
            ],
        }
        .encode(),
    ));
    out
}

fn pair_seeds() -> Seeds {
    use PairOp::*;
    let inputs: Vec<(&str, PairInput)> = vec![
        (
            "clean",
            PairInput {
                mode: 0,
                ops: vec![],
            },
        ),
        (
            "resume",
            PairInput {
                mode: MODE_RESUME,
                ops: vec![],
            },
        ),
        (
            "retry",
            PairInput {
                mode: 1,
                ops: vec![],
            },
        ),
        (
            "retry-resume",
            PairInput {
                mode: MODE_RESUME | 1,
                ops: vec![],
            },
        ),
        (
            "lossy",
            PairInput {
                mode: 0,
                ops: vec![
                    Drop {
                        to_server: true,
                        idx: 0,
                    },
                    AdvanceToTimeout,
                    Duplicate {
                        to_server: true,
                        idx: 0,
                    },
                    Deliver {
                        to_server: true,
                        idx: 1,
                    },
                    Deliver {
                        to_server: false,
                        idx: 1,
                    },
                    Drop {
                        to_server: false,
                        idx: 0,
                    },
                    AdvanceToTimeout,
                    Flush,
                ],
            },
        ),
        (
            "flips",
            PairInput {
                mode: 0,
                ops: vec![
                    Flip {
                        to_server: true,
                        idx: 0,
                        pos: 30,
                        bit: 1,
                    },
                    Flush,
                    Flip {
                        to_server: false,
                        idx: 0,
                        pos: 2,
                        bit: 7,
                    },
                    Flip {
                        to_server: false,
                        idx: 1,
                        pos: 900,
                        bit: 0,
                    },
                    Flush,
                    Advance { ms: 300 },
                ],
            },
        ),
        (
            "manual-no-settle",
            PairInput {
                mode: MODE_NO_SETTLE,
                ops: vec![
                    Flush,
                    Flush,
                    Flush,
                    Flush,
                    Flush,
                    App(AppAction::ClientKeyUpdate),
                    Flush,
                    Flush,
                    App(AppAction::ServerKeyUpdate),
                    Flush,
                    Flush,
                    Flush,
                    AdvanceToTimeout,
                    Flush,
                    App(AppAction::ClientClose),
                    Flush,
                    Flush,
                    AdvanceToTimeout,
                    Flush,
                ],
            },
        ),
        (
            "migrate-rebind",
            PairInput {
                mode: 0,
                ops: vec![
                    Flush,
                    Flush,
                    Flush,
                    Flush,
                    Flush,
                    Flush,
                    App(AppAction::ClientRebind),
                    App(AppAction::ClientMigrate),
                    App(AppAction::ClientDatagram),
                    Flush,
                    Flush,
                    Flush,
                    AdvanceToTimeout,
                    Flush,
                ],
            },
        ),
        (
            "server-close",
            PairInput {
                mode: 0,
                ops: vec![
                    Flush,
                    Flush,
                    Flush,
                    Flush,
                    App(AppAction::ServerClose),
                    Flush,
                    Flush,
                ],
            },
        ),
        (
            "abort-early",
            PairInput {
                mode: MODE_RESUME,
                ops: vec![
                    Deliver {
                        to_server: true,
                        idx: 0,
                    },
                    App(AppAction::ClientAbort),
                    Flush,
                ],
            },
        ),
        (
            "reorder",
            PairInput {
                mode: 0,
                ops: vec![
                    Deliver {
                        to_server: true,
                        idx: 1,
                    },
                    Deliver {
                        to_server: true,
                        idx: 0,
                    },
                    Deliver {
                        to_server: false,
                        idx: 3,
                    },
                    Deliver {
                        to_server: false,
                        idx: 2,
                    },
                    Deliver {
                        to_server: false,
                        idx: 1,
                    },
                    Deliver {
                        to_server: false,
                        idx: 0,
                    },
                    Advance { ms: 5 },
                    Flush,
                ],
            },
        ),
    ];
    inputs
        .into_iter()
        .map(|(n, i)| (n.to_string(), i.encode()))
        .collect()
}

fn write(dir: &Path, target: &str, seeds: &Seeds) -> usize {
    let d = dir.join(target);
    if let Err(e) = fs::create_dir_all(&d) {
        panic!("create {}: {e}", d.display());
    }
    if let Ok(entries) = fs::read_dir(&d) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with("seed-") {
                let _ = fs::remove_file(e.path());
            }
        }
    }
    let mut total = 0;
    for (name, bytes) in seeds {
        let p = d.join(format!("seed-{name}"));
        if let Err(e) = fs::write(&p, bytes) {
            panic!("write {}: {e}", p.display());
        }
        total += bytes.len();
    }
    println!("{target:20} {:3} seeds {total:8} bytes", seeds.len());
    total
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus"));
    let rec = recording();
    assert!(
        rec.complete,
        "the recorded handshake did not complete: the seeds would not reach 1-RTT"
    );
    assert!(
        replay_matches(rec),
        "replaying the recording does not reproduce the server's datagrams"
    );
    println!(
        "recorded {} client and {} server datagrams in {} operations",
        rec.datagrams.len(),
        rec.server_datagrams.len(),
        rec.ops.len()
    );
    let mut total = 0;
    total += write(&dir, "varint", &varint_seeds());
    total += write(&dir, "packet_header", &header_seeds(rec));
    total += write(&dir, "frames", &frame_seeds());
    total += write(&dir, "handshake_messages", &message_seeds());
    total += write(&dir, "transport_params", &transport_param_seeds());
    total += write(&dir, "certificate", &certificate_seeds());
    total += write(&dir, "ticket", &ticket_seeds());
    total += write(&dir, "record_framing", &record_seeds(rec));
    total += write(&dir, "server_engine", &server_seeds(rec));
    total += write(&dir, "client_server_pair", &pair_seeds());
    println!("total {total} bytes in {}", dir.display());
}
