//! Version negotiation (PROTOCOL.md §4.5) and Retry (§12.2) through the simulator, including
//! forged version negotiation packets, corrupted Retry packets and stolen Retry tokens.

mod common;

use jsp_proto::time::Instant;
use jsp_proto::wire::header::{self, ConnectionId, PacketType};
use jsp_proto::{ClientConfig, ConnectionError, RetryPolicy, VERSION_1};
use jsp_sim::engine::Pair;
use jsp_sim::{Datagram, Fate, Injection, Middlebox, Origin, Scope, Verdict};

use common::wire::{self, Kind};
use common::{add_client, ep, handshake, link20, ms, pinned, run_for, run_until, secs, sock, App};

/// A version no server supports (a greased value, PROTOCOL.md §2).
const UNKNOWN: u32 = 0x1a2a_3a4a;

#[test]
fn client_offering_only_unknown_versions_fails_with_unsupported_version() {
    let (server_cfg, mut client_cfg) = pinned();
    client_cfg.versions = vec![UNKNOWN];
    let mut pair = Pair::new(51, server_cfg, client_cfg, link20());
    let (mut c, mut s) = (App::client(&pair), App::server(&pair));
    assert!(run_until(
        &mut pair.sim,
        &mut [&mut c, &mut s],
        secs(5),
        |a| a[0].closed().is_some()
    ));
    assert_eq!(
        c.closed(),
        Some(&ConnectionError::UnsupportedVersion {
            offered: vec![VERSION_1]
        })
    );
    assert!(c.connected().is_none());
    // The server kept no state and answered each full-size probe with a version negotiation
    // packet no larger than the datagram that caused it.
    let e = ep(&pair.sim, pair.server).stats();
    assert_eq!(e.accepted, 0);
    assert!(e.version_negotiations_sent >= 1);
    let records = pair.sim.capture().records();
    let mut answered = 0;
    for vn in records
        .iter()
        .filter(|r| r.origin == Origin::Node(pair.server))
    {
        assert_eq!(
            wire::kind(&vn.payload),
            Kind::VersionNegotiation(vec![VERSION_1])
        );
        let trigger = records
            .iter()
            .find(|r| r.origin == Origin::Node(pair.client) && r.fate == Fate::Delivered(vn.time))
            .unwrap_or_else(|| panic!("no datagram arrived when the server answered"));
        assert!(
            vn.payload.len() <= trigger.payload.len(),
            "{} byte answer to {} bytes",
            vn.payload.len(),
            trigger.payload.len()
        );
        answered += 1;
    }
    assert_eq!(answered as u64, e.version_negotiations_sent);
}

#[test]
fn small_datagrams_with_unknown_versions_get_no_answer() {
    let (server_cfg, mut client_cfg) = pinned();
    client_cfg.versions = vec![UNKNOWN];
    let mut pair = Pair::new(53, server_cfg, client_cfg, link20());
    // Stop the real client; replay its first datagram truncated below 1200 bytes.
    let first = loop {
        assert!(pair.sim.step(), "nothing sent");
        if let Some(r) = pair.sim.capture().records().first() {
            break r.payload.clone();
        }
    };
    let prober = sock("10.0.0.77:5000");
    for len in [40, 600, 1199] {
        let now = pair.sim.now();
        pair.sim.inject(
            now,
            Datagram::new(prober, pair.server_addr, first[..len].to_vec()),
        );
    }
    pair.sim.run_for(secs(1));
    assert!(pair.sim.capture().records().iter().all(|r| r.dst != prober));
}

/// Injects one forged version negotiation packet towards the client, right after its first
/// datagram goes by.
struct VnForger {
    versions: Vec<u32>,
    echo_cids: bool,
    sent: bool,
    pending: Option<Injection>,
}

impl Middlebox for VnForger {
    fn on_datagram(&mut self, now: Instant, d: &mut Datagram) -> Verdict {
        if self.sent {
            return Verdict::Forward;
        }
        let Some(p) = wire::packets(&d.payload).into_iter().next() else {
            return Verdict::Forward;
        };
        let (dcid, scid) = if self.echo_cids {
            (p.scid, p.dcid)
        } else {
            let other = ConnectionId::from_slice(&[7; 8]).unwrap_or(ConnectionId::EMPTY);
            (other, other)
        };
        let mut vn = Vec::new();
        header::encode_version_negotiation(&mut vn, &dcid, &scid, &self.versions, 0x35)
            .unwrap_or_else(|e| panic!("{e}"));
        self.pending = Some(Injection {
            at: now + ms(1),
            datagram: Datagram::new(d.dst, d.src, vn),
        });
        self.sent = true;
        Verdict::Forward
    }

    fn poll_inject(&mut self, _now: Instant) -> Option<Injection> {
        self.pending.take()
    }
}

fn with_forged_vn(seed: u64, versions: Vec<u32>, echo_cids: bool) -> (App, App) {
    let (server_cfg, client_cfg) = pinned();
    let mut pair = Pair::new(seed, server_cfg, client_cfg, link20());
    pair.sim.add_middlebox(
        Scope::Link(pair.client, pair.server),
        VnForger {
            versions,
            echo_cids,
            sent: false,
            pending: None,
        },
    );
    let (mut c, mut s) = (App::client(&pair), App::server(&pair));
    handshake(&mut pair.sim, &mut c, &mut s, secs(5));
    assert_eq!(
        pair.sim.stats().injected.datagrams,
        1,
        "the forgery was delivered"
    );
    (c, s)
}

#[test]
fn forged_version_negotiation_listing_our_version_or_not_echoing_our_cids_is_ignored() {
    // Lists the version the client attempted: MUST be ignored.
    let (c, s) = with_forged_vn(55, vec![0x5a5a_5a5a, VERSION_1], true);
    assert!(
        c.connected().is_some() && s.connected().is_some(),
        "{:?}",
        c.closed()
    );
    // Does not echo the client's CIDs (an off-path forger cannot know them): ignored.
    let (c, s) = with_forged_vn(57, vec![0x5a5a_5a5a], false);
    assert!(
        c.connected().is_some() && s.connected().is_some(),
        "{:?}",
        c.closed()
    );
}

#[test]
fn on_path_forged_version_negotiation_can_only_abort_the_attempt() {
    // An on-path attacker who echoes the CIDs and omits the client's version makes the client
    // give up, as §4.5 specifies: a denial of service it could cause by dropping packets anyway,
    // never a downgrade (the client shares no version with the list).
    let (c, s) = with_forged_vn(59, vec![0x5a5a_5a5a], true);
    assert_eq!(
        c.closed(),
        Some(&ConnectionError::UnsupportedVersion {
            offered: vec![0x5a5a_5a5a]
        })
    );
    assert!(c.connected().is_none() && s.connected().is_none());
}

fn retry_server() -> (jsp_proto::ServerConfig, ClientConfig) {
    let (mut s, c) = pinned();
    s.retry = RetryPolicy::Always;
    (s, c)
}

/// Tokens of the client's Initial packets, in order.
fn client_initial_tokens(pair: &Pair) -> Vec<(Vec<u8>, ConnectionId)> {
    pair.sim
        .capture()
        .records()
        .iter()
        .filter(|r| r.origin == Origin::Node(pair.client))
        .flat_map(|r| wire::packets(&r.payload))
        .filter(|p| p.ty == PacketType::Initial)
        .map(|p| (p.token, p.dcid))
        .collect()
}

#[test]
fn retry_always_validates_the_address_and_the_handshake_completes() {
    let (server_cfg, client_cfg) = retry_server();
    let mut pair = Pair::new(61, server_cfg, client_cfg, link20());
    let (mut c, mut s) = (App::client(&pair), App::server(&pair));
    assert!(handshake(&mut pair.sim, &mut c, &mut s, secs(5)));
    let e = ep(&pair.sim, pair.server).stats().clone();
    assert_eq!(e.accepted, 1);
    assert_eq!(e.invalid_tokens, 0);

    let initials = client_initial_tokens(&pair);
    let without_token = initials.iter().take_while(|(t, _)| t.is_empty()).count();
    // The first flight (two datagrams: the ClientHello does not fit one) had no token; the server
    // answered each of its datagrams with a Retry, statelessly.
    assert_eq!(without_token, 2);
    assert_eq!(e.retries_sent, without_token as u64);
    // The client accepted exactly one Retry: every later Initial carries its token, and the
    // resent first flight goes to the Retry's CID.
    let (token, dcid) = initials[without_token].clone();
    assert!(!token.is_empty());
    assert!(initials[without_token..].iter().all(|(t, _)| *t == token));
    assert_eq!(initials[without_token + 1].1, dcid);
    assert_ne!(
        dcid, initials[0].1,
        "the client switched to the Retry's CID"
    );
    // One round trip more than without Retry (plus the nanosecond between the server's
    // ServerHello and the rest of its flight).
    assert_eq!(
        c.connected_at,
        Some(Instant::from_nanos(ms(80).as_nanos() as u64 + 1))
    );
}

/// Flips a bit of the integrity tag of the first `n` Retry packets.
struct RetryCorrupter {
    remaining: usize,
    corrupted: usize,
}

impl Middlebox for RetryCorrupter {
    fn on_datagram(&mut self, _now: Instant, d: &mut Datagram) -> Verdict {
        if self.remaining > 0 && wire::kind(&d.payload) == Kind::Retry {
            if let Some(last) = d.payload.last_mut() {
                *last ^= 0x01;
            }
            self.remaining -= 1;
            self.corrupted += 1;
        }
        Verdict::Forward
    }
}

#[test]
fn retry_with_a_bad_integrity_tag_is_ignored() {
    // Every Retry corrupted: the client ignores them all (counting each as unauthentic), keeps
    // sending its first flight, and times out; the server never creates a connection.
    let (server_cfg, client_cfg) = retry_server();
    let mut pair = Pair::new(63, server_cfg, client_cfg, link20());
    let mb = pair.sim.add_middlebox(
        Scope::Link(pair.server, pair.client),
        RetryCorrupter {
            remaining: usize::MAX,
            corrupted: 0,
        },
    );
    let (mut c, mut s) = (App::client(&pair), App::server(&pair));
    run_until(&mut pair.sim, &mut [&mut c, &mut s], secs(15), |a| {
        a[0].closed().is_some()
    });
    assert_eq!(c.closed(), Some(&ConnectionError::TimedOut));
    assert_eq!(
        c.closed_at,
        Some(Instant::from_nanos(secs(10).as_nanos() as u64))
    );
    let corrupted = pair.sim.middlebox::<RetryCorrupter>(mb).corrupted as u64;
    assert!(corrupted >= 2);
    assert_eq!(
        c.stats.dropped_auth, corrupted,
        "each bad Retry was counted and ignored"
    );
    assert!(client_initial_tokens(&pair)
        .iter()
        .all(|(t, _)| t.is_empty()));
    assert_eq!(ep(&pair.sim, pair.server).stats().accepted, 0);

    // Only the first Retry corrupted: the second one (for the second datagram of the first
    // flight) is genuine and the handshake completes.
    let (server_cfg, client_cfg) = retry_server();
    let mut pair = Pair::new(65, server_cfg, client_cfg, link20());
    pair.sim.add_middlebox(
        Scope::Link(pair.server, pair.client),
        RetryCorrupter {
            remaining: 1,
            corrupted: 0,
        },
    );
    let (mut c, mut s) = (App::client(&pair), App::server(&pair));
    assert!(handshake(&mut pair.sim, &mut c, &mut s, secs(5)));
    assert_eq!(c.stats.dropped_auth, 1);
}

/// Re-sends the first token-carrying datagram of the client from another address (an attacker
/// who stole the token), dropping the original.
struct TokenThief {
    spoofed: std::net::SocketAddr,
    done: bool,
}

impl Middlebox for TokenThief {
    fn on_datagram(&mut self, _now: Instant, d: &mut Datagram) -> Verdict {
        let has_token = wire::packets(&d.payload)
            .first()
            .is_some_and(|p| p.ty == PacketType::Initial && !p.token.is_empty());
        if has_token && !self.done {
            d.src = self.spoofed;
            self.done = true;
        }
        Verdict::Forward
    }
}

#[test]
fn retry_token_presented_from_another_address_is_rejected() {
    let (server_cfg, client_cfg) = retry_server();
    let mut pair = Pair::new(67, server_cfg, client_cfg, link20());
    let thief = sock("10.0.0.66:40000");
    pair.sim.add_middlebox(
        Scope::Link(pair.client, pair.server),
        TokenThief {
            spoofed: thief,
            done: false,
        },
    );
    let (mut c, mut s) = (App::client(&pair), App::server(&pair));
    // The stolen datagram is lost to the client; its retransmission completes the handshake.
    assert!(handshake(&mut pair.sim, &mut c, &mut s, secs(5)));
    let e = ep(&pair.sim, pair.server).stats();
    assert_eq!(e.invalid_tokens, 1);
    assert_eq!(e.accepted, 1);
    assert_eq!(
        s.conn_ref(&pair.sim).map(|c| c.remote_address()),
        Some(pair.sim.addr(pair.client))
    );
    assert!(pair.sim.capture().records().iter().all(|r| r.dst != thief));
}

#[test]
fn retry_when_busy_validates_only_clients_beyond_the_threshold() {
    let (mut server_cfg, client_cfg) = pinned();
    server_cfg.retry = RetryPolicy::WhenBusy(1);
    let mut pair = Pair::new(69, server_cfg, client_cfg.clone(), link20());
    let (mut a, mut sa) = (App::client(&pair), App::server(&pair));
    // A second client starts 5 ms later, while the first handshake is in flight.
    run_for(&mut pair.sim, &mut [&mut a, &mut sa], ms(5));
    let server_addr = pair.server_addr;
    let (b_node, b_conn) = add_client(
        &mut pair.sim,
        69,
        3,
        sock("10.0.0.3:50000"),
        server_addr,
        client_cfg,
    );
    pair.sim.set_links(b_node, pair.server, link20());
    let mut b = App::with_handle(b_node, Some(b_conn));
    assert!(run_until(
        &mut pair.sim,
        &mut [&mut a, &mut b],
        secs(5),
        |x| x.iter().all(|x| x.connected().is_some())
    ));
    let e = ep(&pair.sim, pair.server).stats();
    assert_eq!(e.accepted, 2);
    assert!(e.retries_sent >= 1);
    let tokens_from = |node| {
        pair.sim
            .capture()
            .records()
            .iter()
            .filter(|r| r.origin == Origin::Node(node))
            .flat_map(|r| wire::packets(&r.payload))
            .any(|p| p.ty == PacketType::Initial && !p.token.is_empty())
    };
    assert!(
        !tokens_from(pair.client),
        "the first client was not asked to retry"
    );
    assert!(
        tokens_from(b_node),
        "the second client was validated with Retry"
    );
}
