//! Identity attacks over real loopback sockets (PROTOCOL.md §11): a server whose key is not the
//! pinned one, certificates that are expired, not yet valid or from an untrusted authority, and
//! a client whose key is not on the server's allow-list. Each is refused with a typed error and
//! no application data flows.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is a test failure
#![allow(clippy::disallowed_methods)] // certificates need today's wall-clock date

mod adversary;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use adversary::{echo_server, guard, host, lock};
use jsp::{ClientConfig, ConnectionError, Endpoint, ServerConfig, TrustPolicy};
use jsp_proto::config::{CertifiedIdentity, ClientAuth};
use jsp_proto::crypto::default_provider;
use jsp_proto::error::HandshakeAlert;
use jsp_proto::identity::Certificate;
use jsp_proto::identity::Identity;
use jsp_proto::{ErrorCode, HandshakeError, UnixTime};

fn id() -> Identity {
    Identity::generate(default_provider().as_ref()).unwrap()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Runs a server with `server` and a client with `client`; returns the client's outcome and
/// the server's view.
async fn attempt(
    server: ServerConfig,
    client: ClientConfig,
) -> (Result<jsp::Connection, jsp::Error>, Arc<adversary::Seen>) {
    let ep = Endpoint::server(adversary::loopback(), server).unwrap();
    let seen = echo_server(&ep);
    let cep = Endpoint::client(host(2)).unwrap();
    let res = guard("handshake", cep.connect(ep.local_addr(), Arc::new(client))).await;
    if res.is_err() {
        // The server's side of a refused handshake ends too (alert received, or its timeout).
        guard("server side ends", async {
            while ep.connection_count() > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    }
    (res, seen)
}

fn handshake_error(res: &Result<jsp::Connection, jsp::Error>) -> Option<HandshakeError> {
    match res {
        Err(jsp::Error::Connection(ConnectionError::Handshake(e))) => Some(e.clone()),
        _ => None,
    }
}

fn assert_refused(
    res: &Result<jsp::Connection, jsp::Error>,
    seen: &adversary::Seen,
    want: HandshakeError,
    what: &str,
) {
    let got = handshake_error(res);
    eprintln!(
        "{what}: client error {:?}; server saw {:?}",
        res.as_ref().err(),
        lock(&seen.failures)
    );
    assert!(
        matches!(
            (&got, &want),
            (
                Some(HandshakeError::UntrustedPeer { .. }),
                HandshakeError::UntrustedPeer { .. }
            )
        ) || got.as_ref() == Some(&want),
        "{what}: expected {want:?}, got {:?}",
        res.as_ref().err()
    );
    assert_eq!(
        seen.established.load(Ordering::SeqCst),
        0,
        "{what}: the server established"
    );
    assert!(lock(&seen.messages).is_empty(), "{what}: data flowed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_key_that_is_not_the_pinned_one_is_refused() {
    let (real, impostor) = (id(), id());
    let client = ClientConfig::new(TrustPolicy::pinned(real.fingerprint()));
    let (res, seen) = attempt(ServerConfig::new(impostor), client).await;
    assert_refused(
        &res,
        &seen,
        HandshakeError::UntrustedPeer {
            fingerprint: String::new(),
        },
        "wrong pin",
    );
    // The server learns why: the client's alert.
    let failures = lock(&seen.failures).clone();
    assert!(
        failures.iter().all(|e| matches!(e, ConnectionError::PeerClosed { code, .. } if *code == ErrorCode::handshake(HandshakeAlert::UnknownCa))),
        "{failures:?}"
    );
}

fn certified(ca: &Identity, not_before: u64, not_after: u64) -> CertifiedIdentity {
    let server = id();
    let cert = Certificate::issue(
        ca,
        "server.test",
        &server.public_key(),
        UnixTime(not_before),
        UnixTime(not_after),
    )
    .unwrap();
    CertifiedIdentity {
        identity: Arc::new(server),
        certificate: Some(cert),
    }
}

fn ca_client(ca: &Identity) -> ClientConfig {
    let mut c = ClientConfig::new(TrustPolicy::authority(ca.public_key()));
    c.server_name = Some("server.test".into());
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_expired_not_yet_valid_or_from_an_untrusted_authority_are_refused() {
    let now = unix_now();
    let day = 24 * 3600;
    let ca = id();
    // Control: a valid certificate from the trusted authority works.
    let (res, seen) = attempt(
        ServerConfig::new(certified(&ca, now - day, now + day)),
        ca_client(&ca),
    )
    .await;
    assert!(
        res.is_ok(),
        "a valid certificate was refused: {:?}",
        res.err()
    );
    established_once(&seen).await;
    drop(res);

    let (res, seen) = attempt(
        ServerConfig::new(certified(&ca, now - 10 * day, now - day)),
        ca_client(&ca),
    )
    .await;
    assert_refused(&res, &seen, HandshakeError::CertificateExpired, "expired");

    let (res, seen) = attempt(
        ServerConfig::new(certified(&ca, now + day, now + 10 * day)),
        ca_client(&ca),
    )
    .await;
    assert_refused(
        &res,
        &seen,
        HandshakeError::CertificateExpired,
        "not yet valid",
    );

    let rogue = id();
    let (res, seen) = attempt(
        ServerConfig::new(certified(&rogue, now - day, now + day)),
        ca_client(&ca),
    )
    .await;
    assert_refused(
        &res,
        &seen,
        HandshakeError::UntrustedPeer {
            fingerprint: String::new(),
        },
        "untrusted authority",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_key_not_on_the_allow_list_is_refused() {
    let server = id();
    let (allowed, stranger) = (id(), id());
    let mut cfg = ServerConfig::new(server);
    cfg.client_auth = ClientAuth::Required(TrustPolicy::pinned(allowed.fingerprint()));
    let fp = cfg.identity.identity.fingerprint();

    // The allowed client gets in (control).
    let mut ok = ClientConfig::new(TrustPolicy::pinned(fp));
    ok.identity = Some(allowed.into());
    let (res, seen) = attempt(cfg.clone(), ok).await;
    assert!(
        res.is_ok(),
        "the allowed client was refused: {:?}",
        res.err()
    );
    established_once(&seen).await;
    drop(res);

    // A stranger is refused: the server names the untrusted key, the client hears the alert.
    let mut bad = ClientConfig::new(TrustPolicy::pinned(fp));
    bad.identity = Some(stranger.into());
    let (res, seen) = attempt(cfg.clone(), bad).await;
    server_failed(&seen).await;
    let failures = lock(&seen.failures).clone();
    eprintln!(
        "stranger: client {:?}; server {failures:?}",
        res.as_ref().err()
    );
    assert!(
        failures.iter().any(|e| matches!(
            e,
            ConnectionError::Handshake(HandshakeError::UntrustedPeer { .. })
        )),
        "{failures:?}"
    );
    assert_eq!(seen.established.load(Ordering::SeqCst), 0);
    if let Ok(conn) = &res {
        // The client may finish its side before the server's verdict arrives: it must then
        // learn the refusal, and nothing it sends is delivered.
        let err = guard("the client learns", conn.closed()).await;
        assert!(
            matches!(err, ConnectionError::PeerClosed { code, .. } if code == ErrorCode::handshake(HandshakeAlert::UnknownCa)),
            "{err:?}"
        );
    } else {
        assert!(
            matches!(res.as_ref().err(), Some(jsp::Error::Connection(ConnectionError::PeerClosed { code, .. })) if *code == ErrorCode::handshake(HandshakeAlert::UnknownCa)),
            "{:?}",
            res.as_ref().err()
        );
    }
    assert!(lock(&seen.messages).is_empty());

    // No identity at all: CertificateRequired.
    let anon = ClientConfig::new(TrustPolicy::pinned(fp));
    let (res, seen) = attempt(cfg, anon).await;
    server_failed(&seen).await;
    let failures = lock(&seen.failures).clone();
    eprintln!(
        "anonymous: client {:?}; server {failures:?}",
        res.as_ref().err()
    );
    assert!(
        failures.iter().any(|e| matches!(
            e,
            ConnectionError::Handshake(HandshakeError::CertificateRequired)
        )),
        "{failures:?}"
    );
    assert_eq!(seen.established.load(Ordering::SeqCst), 0);
}

/// Waits until the server's side of the control handshake completed.
async fn established_once(seen: &adversary::Seen) {
    guard("the server establishes", async {
        while seen.established.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(seen.established.load(Ordering::SeqCst), 1);
}

/// Waits until the server's application learned that a handshake failed.
async fn server_failed(seen: &adversary::Seen) {
    guard("the server's handshake fails", async {
        while lock(&seen.failures).is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}
