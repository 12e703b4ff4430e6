//! The handshake's user-visible guarantees over the simulator: suite negotiation, server
//! authentication by pinned key and by certificate, client authentication (and that the client's
//! identity never crosses the wire readable), and the typed errors of every failure.

mod common;

use std::sync::Arc;

use jsp_proto::config::CertifiedIdentity;
use jsp_proto::connection::{DatagramError, StreamApiError};
use jsp_proto::crypto::default_provider;
use jsp_proto::crypto::CipherSuite;
use jsp_proto::error::HandshakeAlert;
use jsp_proto::identity::{Certificate, Identity};
use jsp_proto::time::UnixTime;
use jsp_proto::wire::header::PacketType;
use jsp_proto::{
    ClientAuth, ClientConfig, CloseReason, ConnectionError, Dir, ErrorCode, HandshakeError,
    ServerConfig, TrustPolicy, VERSION_1,
};
use jsp_sim::engine::{Pair, SIM_UNIX_EPOCH};
use jsp_sim::Origin;

use common::wire::{self, contains};
use common::{
    connected_pair, handshake, identity, link20, ms, pinned, run_until, secs, App, AUTHORITY_ID,
    CLIENT_ID, SERVER_ID, STRANGER_ID,
};

/// Runs a pair whose handshake must fail; returns both app views once both sides closed (or
/// 15 s passed).
fn failing_pair(seed: u64, server: ServerConfig, client: ClientConfig) -> (Pair, App, App) {
    let mut pair = Pair::new(seed, server, client, link20());
    let (mut c, mut s) = (App::client(&pair), App::server(&pair));
    run_until(&mut pair.sim, &mut [&mut c, &mut s], secs(15), |a| {
        a[0].closed().is_some() && a[1].closed().is_some()
    });
    (pair, c, s)
}

fn peer_closed_with(err: Option<&ConnectionError>, alert: HandshakeAlert) -> bool {
    matches!(
        err,
        Some(ConnectionError::PeerClosed { code, reason: CloseReason::ProtocolError, .. })
            if *code == ErrorCode::handshake(alert)
    )
}

#[test]
fn handshake_completes_with_each_suite_and_carries_streams_and_datagrams_both_ways() {
    for suite in CipherSuite::ALL {
        let (server_cfg, mut client_cfg) = pinned();
        client_cfg.transport.cipher_suites = vec![suite];
        let (mut pair, mut c, mut s) = connected_pair(7, server_cfg, client_cfg, link20());
        let sim = &mut pair.sim;

        let (cs, ss) = (c.connected().cloned(), s.connected().cloned());
        let (Some(cs), Some(ss)) = (cs, ss) else {
            panic!("{suite:?}: no Connected event");
        };
        for summary in [&cs, &ss] {
            assert_eq!(summary.suite, suite);
            assert_eq!(summary.group, "X25519-MLKEM768");
            assert_eq!(summary.version, VERSION_1);
            assert!(!summary.resumed);
        }
        let server_fp = identity(SERVER_ID).fingerprint();
        assert_eq!(cs.peer.as_ref().map(|p| p.fingerprint), Some(server_fp));
        assert_eq!(cs.peer.as_ref().and_then(|p| p.subject.clone()), None);
        assert_eq!(ss.peer, None, "an anonymous client has no identity");
        assert_eq!(
            c.conn_ref(sim).and_then(|c| c.handshake_summary()).cloned(),
            Some(cs.clone())
        );

        // Stream: client -> server, then the server answers on the same stream.
        let id = c.send_stream(sim, b"hello over a post-quantum channel", true);
        assert!(run_until(sim, &mut [&mut c, &mut s], secs(2), |a| a[1]
            .finished
            .contains(&id.0)));
        assert_eq!(s.streams[&id.0], b"hello over a post-quantum channel");
        let sconn = s.expect_conn(sim);
        sconn
            .stream_write(id, b"and back", true)
            .unwrap_or_else(|e| panic!("server write: {e}"));
        assert!(run_until(sim, &mut [&mut c, &mut s], secs(2), |a| a[0]
            .finished
            .contains(&id.0)));
        assert_eq!(c.streams[&id.0], b"and back");

        // Datagrams both ways.
        c.expect_conn(sim)
            .send_datagram(b"datagram c->s")
            .unwrap_or_else(|e| panic!("{e}"));
        s.expect_conn(sim)
            .send_datagram(b"datagram s->c")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(run_until(sim, &mut [&mut c, &mut s], secs(2), |a| {
            !a[0].datagrams.is_empty() && !a[1].datagrams.is_empty()
        }));
        assert_eq!(s.datagrams, vec![b"datagram c->s".to_vec()]);
        assert_eq!(c.datagrams, vec![b"datagram s->c".to_vec()]);
        for app in [&mut c, &mut s] {
            let stats = app.expect_conn(sim).stats();
            assert_eq!(stats.dropped_auth, 0, "{suite:?}");
        }
    }
}

#[test]
fn server_picks_the_first_suite_of_its_own_preference_list() {
    let cases = [
        (
            vec![CipherSuite::ChaCha20Poly1305, CipherSuite::Aes256Gcm],
            vec![CipherSuite::Aes256Gcm, CipherSuite::ChaCha20Poly1305],
            CipherSuite::Aes256Gcm,
        ),
        (
            vec![CipherSuite::Aes256Gcm, CipherSuite::ChaCha20Poly1305],
            vec![CipherSuite::ChaCha20Poly1305, CipherSuite::Aes256Gcm],
            CipherSuite::ChaCha20Poly1305,
        ),
    ];
    for (offered, preferred, expected) in cases {
        let (mut server_cfg, mut client_cfg) = pinned();
        client_cfg.transport.cipher_suites = offered;
        server_cfg.transport.cipher_suites = preferred;
        let (_pair, c, s) = connected_pair(3, server_cfg, client_cfg, link20());
        assert_eq!(c.connected().map(|x| x.suite), Some(expected));
        assert_eq!(s.connected().map(|x| x.suite), Some(expected));
    }
}

#[test]
fn no_common_suite_fails_with_insufficient_security_and_nobody_connects() {
    let (mut server_cfg, mut client_cfg) = pinned();
    client_cfg.transport.cipher_suites = vec![CipherSuite::ChaCha20Poly1305];
    server_cfg.transport.cipher_suites = vec![CipherSuite::Aes256Gcm];
    let (_pair, c, s) = failing_pair(5, server_cfg, client_cfg);
    assert_eq!(
        s.closed(),
        Some(&ConnectionError::Handshake(
            HandshakeError::NoCommonParameters
        ))
    );
    assert!(
        peer_closed_with(c.closed(), HandshakeAlert::InsufficientSecurity),
        "client: {:?}",
        c.closed()
    );
    assert!(c.connected().is_none() && s.connected().is_none());
}

#[test]
fn wrong_pinned_key_is_rejected_as_untrusted_and_no_data_flows() {
    let (server_cfg, _) = pinned();
    let client_cfg = ClientConfig::new(TrustPolicy::pinned(identity(STRANGER_ID).fingerprint()));
    let mut pair = Pair::new(11, server_cfg, client_cfg, link20());
    let (mut c, mut s) = (App::client(&pair), App::server(&pair));

    // Before the handshake nothing can be sent.
    let conn = c.expect_conn(&mut pair.sim);
    assert_eq!(conn.open_stream(Dir::Bi), Err(StreamApiError::NotOpen));
    assert_eq!(conn.send_datagram(b"early"), Err(DatagramError::NotOpen));

    // Try to write as soon as possible at every step: it must never become possible.
    let mut writes_accepted = 0;
    let _ = pair.sim.run_while(
        |sim| {
            c.poll(sim);
            s.poll(sim);
            if let Some(conn) = c.conn(sim) {
                if conn.open_stream(Dir::Bi).is_ok() {
                    writes_accepted += 1;
                }
            }
            !(c.closed().is_some() && s.closed().is_some())
        },
        secs(15),
    );
    assert_eq!(
        writes_accepted, 0,
        "the client opened a stream to an untrusted server"
    );
    let server_fp = identity(SERVER_ID).fingerprint().to_string();
    assert_eq!(
        c.closed(),
        Some(&ConnectionError::Handshake(HandshakeError::UntrustedPeer {
            fingerprint: server_fp
        }))
    );
    assert!(
        c.connected().is_none(),
        "client connected to an untrusted key"
    );
    assert!(
        s.connected().is_none(),
        "server completed with a client that refused it"
    );
    assert!(
        peer_closed_with(s.closed(), HandshakeAlert::UnknownCa),
        "server: {:?}",
        s.closed()
    );
    assert!(s.streams.is_empty() && s.datagrams.is_empty());
}

fn certified_server(cert: Certificate) -> ServerConfig {
    ServerConfig::new(CertifiedIdentity {
        identity: Arc::new(identity(SERVER_ID)),
        certificate: Some(cert),
    })
}

fn issue(authority: &Identity, subject: &str, not_before: u64, not_after: u64) -> Certificate {
    Certificate::issue(
        authority,
        subject,
        &identity(SERVER_ID).public_key(),
        UnixTime(not_before),
        UnixTime(not_after),
    )
    .unwrap_or_else(|e| panic!("issue: {e}"))
}

fn ca_client(name: &str) -> ClientConfig {
    let mut c = ClientConfig::new(TrustPolicy::authority(identity(AUTHORITY_ID).public_key()));
    c.server_name = Some(name.to_string());
    c
}

#[test]
fn certificate_from_a_trusted_authority_authenticates_the_server_by_name() {
    let cert = issue(
        &identity(AUTHORITY_ID),
        "srv.example",
        SIM_UNIX_EPOCH - 3600,
        SIM_UNIX_EPOCH + 86_400,
    );
    let (_pair, c, s) = connected_pair(
        13,
        certified_server(cert),
        ca_client("srv.example"),
        link20(),
    );
    let peer = c.connected().and_then(|x| x.peer.clone());
    let Some(peer) = peer else {
        panic!("no authenticated peer")
    };
    assert_eq!(peer.subject.as_deref(), Some("srv.example"));
    assert_eq!(peer.fingerprint, identity(SERVER_ID).fingerprint());
    assert!(s.connected().is_some());
}

#[test]
fn bad_certificates_fail_with_the_matching_typed_error() {
    let authority = identity(AUTHORITY_ID);
    let day = 86_400;
    let cases: Vec<(&str, Certificate, &str, HandshakeError, HandshakeAlert)> = vec![
        (
            "expired",
            issue(
                &authority,
                "srv.example",
                SIM_UNIX_EPOCH - 2 * day,
                SIM_UNIX_EPOCH - 1,
            ),
            "srv.example",
            HandshakeError::CertificateExpired,
            HandshakeAlert::CertificateExpired,
        ),
        (
            "not yet valid",
            issue(
                &authority,
                "srv.example",
                SIM_UNIX_EPOCH + 3600,
                SIM_UNIX_EPOCH + day,
            ),
            "srv.example",
            HandshakeError::CertificateExpired,
            HandshakeAlert::CertificateExpired,
        ),
        (
            "unknown authority",
            issue(
                &identity(STRANGER_ID),
                "srv.example",
                SIM_UNIX_EPOCH - day,
                SIM_UNIX_EPOCH + day,
            ),
            "srv.example",
            HandshakeError::UntrustedPeer {
                fingerprint: identity(SERVER_ID).fingerprint().to_string(),
            },
            HandshakeAlert::UnknownCa,
        ),
        (
            "wrong name",
            issue(
                &authority,
                "other.example",
                SIM_UNIX_EPOCH - day,
                SIM_UNIX_EPOCH + day,
            ),
            "srv.example",
            HandshakeError::SubjectMismatch,
            HandshakeAlert::BadCertificate,
        ),
    ];
    for (what, cert, name, expected, alert) in cases {
        let (_pair, c, s) = failing_pair(17, certified_server(cert), ca_client(name));
        assert_eq!(
            c.closed(),
            Some(&ConnectionError::Handshake(expected)),
            "{what}"
        );
        assert!(c.connected().is_none(), "{what}: client connected");
        assert!(s.connected().is_none(), "{what}: server connected");
        assert!(
            peer_closed_with(s.closed(), alert),
            "{what}: server saw {:?}",
            s.closed()
        );
    }
}

fn client_with_identity(n: u8) -> ClientConfig {
    let (_, mut c) = pinned();
    c.identity = Some(identity(n).into());
    c.server_name = Some("srv.example".into());
    c
}

fn server_requiring(auth: ClientAuth) -> ServerConfig {
    let (mut s, _) = pinned();
    s.client_auth = auth;
    s
}

#[test]
fn required_client_auth_succeeds_and_the_client_identity_is_never_readable_on_the_wire() {
    let client_fp = identity(CLIENT_ID).fingerprint();
    let (pair, c, s) = connected_pair(
        19,
        server_requiring(ClientAuth::Required(TrustPolicy::pinned(client_fp))),
        client_with_identity(CLIENT_ID),
        link20(),
    );
    assert_eq!(
        s.connected()
            .and_then(|x| x.peer.as_ref())
            .map(|p| p.fingerprint),
        Some(client_fp)
    );
    assert_eq!(
        c.connected()
            .and_then(|x| x.peer.as_ref())
            .map(|p| p.fingerprint),
        Some(identity(SERVER_ID).fingerprint())
    );

    // What an on-path observer sees: every client datagram, and the plaintext of every Initial
    // packet (Initial keys derive from the original DCID in the first datagram).
    let client_key = identity(CLIENT_ID).public_key();
    let records: Vec<_> = pair
        .sim
        .capture()
        .records()
        .iter()
        .filter(|r| r.origin == Origin::Node(pair.client))
        .collect();
    let odcid = wire::packets(&records[0].payload)[0].dcid;
    let provider = default_provider();
    let (client_initial, _) = wire::observer_initial_keys(provider.as_ref(), odcid.as_slice());
    let mut initial_plaintext = Vec::new();
    for r in &records {
        assert!(
            !contains(&r.payload, client_key.as_bytes()),
            "client key in clear"
        );
        assert!(!contains(&r.payload, client_fp.as_bytes()));
        for p in wire::initial_plaintexts(&client_initial, &r.payload) {
            initial_plaintext.extend(p);
        }
    }
    // The observer really reads the Initial packets (the ClientHello names the server) ...
    assert!(contains(&initial_plaintext, b"srv.example"));
    // ... but the client's identity travelled only in Handshake packets.
    assert!(!contains(&initial_plaintext, client_key.as_bytes()));
    assert!(!contains(&initial_plaintext, client_fp.as_bytes()));
    let handshake_packets = records
        .iter()
        .flat_map(|r| wire::packets(&r.payload))
        .filter(|p| p.ty == PacketType::Handshake)
        .count();
    assert!(handshake_packets > 0);
}

#[test]
fn required_client_auth_without_a_client_identity_fails_with_certificate_required() {
    let server_cfg = server_requiring(ClientAuth::Required(TrustPolicy::pinned(
        identity(CLIENT_ID).fingerprint(),
    )));
    let (_, client_cfg) = pinned();
    let (_pair, c, s) = failing_pair(23, server_cfg, client_cfg);
    assert_eq!(
        s.closed(),
        Some(&ConnectionError::Handshake(
            HandshakeError::CertificateRequired
        ))
    );
    assert!(s.connected().is_none());
    // As in TLS 1.3 the client completes its side once it has authenticated the server, before
    // the server has judged the client; the refusal then arrives as the server's close.
    assert!(c.connected().is_some());
    assert!(
        peer_closed_with(c.closed(), HandshakeAlert::CertificateRequired),
        "client: {:?}",
        c.closed()
    );
    assert_eq!(
        ErrorCode::handshake(HandshakeAlert::CertificateRequired),
        ErrorCode(0x100 + 116)
    );
}

#[test]
fn data_sent_by_an_unauthenticated_client_is_never_delivered() {
    let server_cfg = server_requiring(ClientAuth::Required(TrustPolicy::pinned(
        identity(CLIENT_ID).fingerprint(),
    )));
    let (_, client_cfg) = pinned();
    let mut pair = Pair::new(29, server_cfg, client_cfg, link20());
    let (mut c, mut s) = (App::client(&pair), App::server(&pair));
    // The client's handshake completes first (it has verified the server): it writes at once.
    assert!(run_until(&mut pair.sim, &mut [&mut c], secs(5), |a| a[0]
        .connected()
        .is_some()));
    c.send_stream(&mut pair.sim, b"secret request", true);
    c.expect_conn(&mut pair.sim)
        .send_datagram(b"secret datagram")
        .unwrap_or_else(|e| panic!("{e}"));
    run_until(&mut pair.sim, &mut [&mut c, &mut s], secs(15), |a| {
        a[0].closed().is_some() && a[1].closed().is_some()
    });
    assert!(s.closed().is_some());
    assert!(s.streams.is_empty(), "server delivered {:?}", s.streams);
    assert!(s.datagrams.is_empty());
    assert!(s.connected().is_none());
}

#[test]
fn client_key_not_on_the_allow_list_is_rejected() {
    let (_pair, c, s) = failing_pair(
        31,
        server_requiring(ClientAuth::Required(TrustPolicy::pinned(
            identity(CLIENT_ID).fingerprint(),
        ))),
        client_with_identity(STRANGER_ID),
    );
    assert_eq!(
        s.closed(),
        Some(&ConnectionError::Handshake(HandshakeError::UntrustedPeer {
            fingerprint: identity(STRANGER_ID).fingerprint().to_string()
        }))
    );
    assert!(s.connected().is_none());
    assert!(
        peer_closed_with(c.closed(), HandshakeAlert::UnknownCa),
        "client: {:?}",
        c.closed()
    );
}

#[test]
fn optional_client_auth_accepts_anonymous_and_identified_clients() {
    let policy = TrustPolicy::pinned(identity(CLIENT_ID).fingerprint());
    let (_p, c, s) = connected_pair(
        37,
        server_requiring(ClientAuth::Optional(policy.clone())),
        pinned().1,
        link20(),
    );
    assert!(c.connected().is_some());
    assert_eq!(s.connected().map(|x| x.peer.clone()), Some(None));

    let (_p, _c, s) = connected_pair(
        37,
        server_requiring(ClientAuth::Optional(policy)),
        client_with_identity(CLIENT_ID),
        link20(),
    );
    assert_eq!(
        s.connected()
            .and_then(|x| x.peer.as_ref())
            .map(|p| p.fingerprint),
        Some(identity(CLIENT_ID).fingerprint())
    );
}

#[test]
fn handshake_takes_one_round_trip_for_the_client() {
    let (server_cfg, client_cfg) = pinned();
    let mut pair = Pair::new(41, server_cfg, client_cfg, link20());
    let (mut c, mut s) = (App::client(&pair), App::server(&pair));
    assert!(handshake(&mut pair.sim, &mut c, &mut s, secs(5)));
    // 40 ms RTT: the client completes after one round trip, the server half a round trip later
    // when the client's Finished arrives. The server sends the rest of its flight one nanosecond
    // after its ServerHello (the driver sends the ServerHello first).
    let at = |t: Option<jsp_proto::time::Instant>| t.map(|t| t.as_nanos());
    assert_eq!(at(c.connected_at), Some(ms(40).as_nanos() as u64 + 1));
    assert_eq!(at(s.connected_at), Some(ms(60).as_nanos() as u64 + 1));
}
