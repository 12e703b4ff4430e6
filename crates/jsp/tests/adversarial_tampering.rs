//! Downgrade and tampering by an on-path attacker over real loopback sockets (PROTOCOL.md §2,
//! §4.5, §5.4, §7): a jsp server and client with a UDP proxy between them that decrypts the
//! client's Initial packets (their keys derive from the client's DCID alone), rewrites the
//! ClientHello (cipher-suite list, version list, key share), re-seals it and forwards it; in
//! "relay" mode it also terminates both key exchanges, answers the client with its own share and
//! translates every Handshake packet between the two sessions. Other attackers rewrite the long
//! header's version, forge a version negotiation, or flip bits in handshake packets.
//!
//! Every attack ends in the typed error the simulator's `mitm.rs` and `negotiation.rs` expect,
//! the server's application sees no established connection and no byte, and no panic; a clean
//! retry afterwards connects. Hang guards are generous and never timing assertions.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is a test failure

mod adversary;

use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use adversary::wire::{self, PacketInfo};
use adversary::{echo, lock, pattern, pinned_pair, Dir, Proxy, Seen, Verdict};
use jsp::{ClientConfig, Connection, Endpoint};
use jsp_proto::crypto::{
    default_provider, CipherSuite, ClientKeyExchange, CryptoProvider, DirectionalKeys, KeySchedule,
    SharedSecret,
};
use jsp_proto::error::HandshakeAlert;
use jsp_proto::wire::header::{self, PacketType};
use jsp_proto::{CloseReason, ConnectionError, ErrorCode, HandshakeError, VERSION_1};

/// Hang guard for anything that must finish.
const HANG: Duration = Duration::from_secs(30);
/// The client's handshake timeout: shorter than the server's, so that the client's verdict on a
/// stalled handshake is its own, not the server's close.
const CLIENT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);
/// The server's handshake timeout.
const SERVER_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(4);
/// A version no endpoint supports (a greased value, PROTOCOL.md §2).
const UNKNOWN: u32 = 0x1a2a_3a4a;
/// What the client tries to send the moment it may.
const APP_DATA: &[u8] = b"application data";

async fn hang_guard<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(HANG, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: did not finish within {HANG:?}"))
}

/// A server (echoing, recording what its application saw) and a client configuration pinning
/// it, both with short handshake timeouts.
struct Lab {
    server: Endpoint,
    seen: Arc<Seen>,
    client_cfg: Arc<ClientConfig>,
}

fn lab(initial_rtt: Option<Duration>) -> Lab {
    let (mut server_cfg, client_cfg) = pinned_pair();
    let mut client_cfg = (*client_cfg).clone();
    server_cfg.transport.handshake_timeout = SERVER_HANDSHAKE_TIMEOUT;
    client_cfg.transport.handshake_timeout = CLIENT_HANDSHAKE_TIMEOUT;
    if let Some(rtt) = initial_rtt {
        server_cfg.transport.initial_rtt = rtt;
        client_cfg.transport.initial_rtt = rtt;
    }
    let server = Endpoint::server(adversary::loopback(), server_cfg).unwrap();
    let seen = adversary::echo_server(&server);
    Lab {
        server,
        seen,
        client_cfg: Arc::new(client_cfg),
    }
}

/// Connects through `proxy`. A completed handshake is a failure of the defence: the client then
/// tries to send data (so that the checks on the server's application see it) and the test
/// fails. Otherwise returns the client's typed error.
async fn attacked_connect(
    client: &Endpoint,
    proxy: &Proxy,
    cfg: &Arc<ClientConfig>,
) -> ConnectionError {
    match hang_guard(
        "attacked handshake",
        client.connect(proxy.addr, cfg.clone()),
    )
    .await
    {
        Ok(conn) => {
            let _ = tokio::time::timeout(Duration::from_secs(2), echo(&conn, APP_DATA)).await;
            panic!("the handshake completed through the attacker");
        }
        Err(jsp::Error::Connection(e)) => e,
        Err(e) => panic!("not a typed connection error: {e}"),
    }
}

/// The server's application saw no established connection and no byte.
fn assert_nothing_delivered(seen: &Seen, what: &str) {
    assert_eq!(
        seen.established.load(Ordering::SeqCst),
        0,
        "{what}: server connected"
    );
    assert_eq!(
        seen.message_count.load(Ordering::SeqCst),
        0,
        "{what}: server got a stream"
    );
    assert!(lock(&seen.messages).is_empty(), "{what}: server got data");
    assert!(
        lock(&seen.datagrams).is_empty(),
        "{what}: server got a datagram"
    );
}

/// Waits until the server's application saw `n` handshakes fail; returns their errors.
async fn server_failures(seen: &Seen, n: usize) -> Vec<ConnectionError> {
    hang_guard("the server's handshake ends", async {
        while lock(&seen.failures).len() < n {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    lock(&seen.failures).clone()
}

fn peer_closed(err: &ConnectionError) -> Option<ErrorCode> {
    match err {
        ConnectionError::PeerClosed {
            code,
            reason: CloseReason::ProtocolError,
            ..
        } => Some(*code),
        _ => None,
    }
}

/// After an attack: the attacker gets out of the way and a client connects through the same
/// proxy and echoes 64 KiB intact.
async fn clean_retry_connects(lab: &Lab, proxy: &Proxy, seed: u64) -> Connection {
    proxy.set_hook(Box::new(|_, _| Verdict::Forward));
    let client = Endpoint::client(adversary::loopback()).unwrap();
    let conn = hang_guard(
        "clean retry",
        client.connect(proxy.addr, lab.client_cfg.clone()),
    )
    .await
    .unwrap_or_else(|e| panic!("a clean retry after the attack failed: {e}"));
    let data = pattern(64 << 10, seed);
    let back = hang_guard("clean echo", echo(&conn, &data)).await.unwrap();
    assert!(back == data, "the clean retry's echo came back corrupted");
    conn
}

// ---------------------------------------------------------------------------------------------
// The ClientHello rewriter (the simulator's mitm.rs attacker, on real datagrams)
// ---------------------------------------------------------------------------------------------

/// What the attacker does to the client's key share.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum ShareAttack {
    /// Leave it.
    #[default]
    None,
    /// Flip one bit of the X25519 public key (still a valid key: a different one).
    FlipX25519Bit,
    /// Make the first ML-KEM coefficient 4095 (>= q): fails the FIPS 203 modulus check.
    InvalidMlKemKey,
    /// Replace the X25519 key with the low-order point 0.
    ZeroX25519,
    /// Replace the whole share with the attacker's own.
    Replace,
}

/// The attack on the ClientHello.
#[derive(Clone, Copy, Debug, Default)]
struct Attack {
    share: ShareAttack,
    /// Replace suite 0x0001 (AES-256-GCM, the server's preference) in the offer by an unknown
    /// codepoint, so that the server picks ChaCha20-Poly1305.
    strip_aes: bool,
    /// Replace version 1 in the client's version list by an unknown version.
    strip_version: bool,
    /// Terminate both key exchanges and translate Handshake packets.
    relay: bool,
}

/// A crypto stream reassembled from the frames the attacker saw.
#[derive(Default)]
struct Stream {
    bytes: Vec<u8>,
    have: Vec<bool>,
}

impl Stream {
    fn put(&mut self, offset: usize, data: &[u8]) {
        let end = offset + data.len();
        if self.bytes.len() < end {
            self.bytes.resize(end, 0);
            self.have.resize(end, false);
        }
        self.bytes[offset..end].copy_from_slice(data);
        self.have[offset..end].iter_mut().for_each(|h| *h = true);
    }

    fn known(&self, r: Range<usize>) -> bool {
        r.end <= self.have.len() && self.have[r].iter().all(|h| *h)
    }

    /// The first handshake message, once complete.
    fn message(&self) -> Option<&[u8]> {
        if !self.known(0..4) {
            return None;
        }
        let len = usize::from(self.bytes[1]) << 16
            | usize::from(self.bytes[2]) << 8
            | usize::from(self.bytes[3]);
        self.known(0..4 + len).then(|| &self.bytes[..4 + len])
    }
}

/// Where the version list, the cipher-suite list and the key share are in a ClientHello
/// (message header included; PROTOCOL.md §7.2).
struct ChLayout {
    versions: Range<usize>,
    suites: Range<usize>,
    share: Range<usize>,
}

fn ch_layout(ch: &Stream) -> Option<ChLayout> {
    let b = &ch.bytes;
    // header 4, random 32, then u8 count of u32 versions
    ch.known(0..37).then_some(())?;
    let versions = 37..37 + 4 * usize::from(b[36]);
    let p = versions.end;
    ch.known(p..p + 1).then_some(())?;
    let suites = p + 1..p + 1 + 2 * usize::from(b[p]);
    let q = suites.end;
    ch.known(q..q + 4).then_some(())?;
    let share_len = usize::from(b[q + 2]) << 8 | usize::from(b[q + 3]);
    Some(ChLayout {
        versions,
        suites,
        share: q + 4..q + 4 + share_len,
    })
}

/// ServerHello: header 4, random 32, version 4, suite 2, group 2, length 2, then the share.
const SH_SUITE: Range<usize> = 40..42;
const SH_SHARE_START: usize = 46;
/// Length of the server's share (ML-KEM ciphertext and X25519 key).
const SH_SHARE_LEN: usize = 1120;
/// Offset of the X25519 key inside the client share (after the ML-KEM encapsulation key).
const X25519_AT: usize = 1184;

struct RelayKeys {
    client_hs_from_client: DirectionalKeys,
    client_hs_to_server: DirectionalKeys,
    server_hs_from_server: DirectionalKeys,
    server_hs_to_client: DirectionalKeys,
}

struct Mitm {
    attack: Attack,
    provider: Arc<dyn CryptoProvider>,
    /// Initial keys (client's, server's), from the first client Initial's DCID.
    initial: Option<(DirectionalKeys, DirectionalKeys)>,
    ch: Stream,
    sh: Stream,
    attacker_share: Vec<u8>,
    attacker_kx: Option<Box<dyn ClientKeyExchange>>,
    /// The attacker's reply to the client's share, and the secret it shares with the client.
    to_client: Option<(Vec<u8>, SharedSecret)>,
    relay_keys: Option<RelayKeys>,
    /// Client Initial packets changed.
    rewritten: usize,
    /// Server Initial packets changed.
    rewritten_server: usize,
    /// Handshake packets translated between the two sessions.
    relayed: usize,
}

impl Mitm {
    fn new(attack: Attack) -> Self {
        let provider = default_provider();
        let (attacker_share, kx) = provider
            .client_key_share()
            .unwrap_or_else(|e| panic!("attacker share: {e}"));
        Self {
            attack,
            provider,
            initial: None,
            ch: Stream::default(),
            sh: Stream::default(),
            attacker_share,
            attacker_kx: Some(kx),
            to_client: None,
            relay_keys: None,
            rewritten: 0,
            rewritten_server: 0,
            relayed: 0,
        }
    }

    /// The byte the server gets at ClientHello offset `o`.
    fn ch_byte(&self, layout: &ChLayout, o: usize) -> u8 {
        let orig = self.ch.bytes[o];
        if self.attack.strip_version && layout.versions.contains(&o) {
            let at = layout.versions.start + (o - layout.versions.start) / 4 * 4;
            if self.ch.bytes[at..at + 4] == VERSION_1.to_be_bytes() {
                return UNKNOWN.to_be_bytes()[o - at];
            }
        }
        if self.attack.strip_aes && layout.suites.contains(&o) {
            let pair = layout.suites.start + (o - layout.suites.start) / 2 * 2;
            if self.ch.bytes[pair..pair + 2] == [0x00, 0x01] {
                return 0x0a;
            }
        }
        if layout.share.contains(&o) {
            let i = o - layout.share.start;
            return match self.attack.share {
                ShareAttack::None => orig,
                ShareAttack::FlipX25519Bit if i == X25519_AT + 7 => orig ^ 0x10,
                ShareAttack::FlipX25519Bit => orig,
                ShareAttack::InvalidMlKemKey if i == 0 => 0xff,
                ShareAttack::InvalidMlKemKey if i == 1 => orig | 0x0f,
                ShareAttack::InvalidMlKemKey => orig,
                ShareAttack::ZeroX25519 if i >= X25519_AT => 0,
                ShareAttack::ZeroX25519 => orig,
                ShareAttack::Replace => self.attacker_share[i],
            };
        }
        orig
    }

    /// The ServerHello byte the client gets at offset `o`.
    fn sh_byte(&self, o: usize) -> u8 {
        match &self.to_client {
            Some((share, _))
                if self.attack.relay
                    && (SH_SHARE_START..SH_SHARE_START + share.len()).contains(&o) =>
            {
                share[o - SH_SHARE_START]
            }
            _ => self.sh.bytes[o],
        }
    }

    /// Records the CRYPTO data of one Initial packet and rewrites it (client: the ClientHello
    /// attack; server: the ServerHello share in relay mode), re-sealing the packet in place.
    /// Returns whether anything changed.
    fn rewrite_initial(&mut self, pkt: &mut [u8], info: &PacketInfo, from_client: bool) -> bool {
        let Some(keys) = self.initial.take() else {
            return false;
        };
        let k = if from_client { &keys.0 } else { &keys.1 };
        let mut copy = pkt.to_vec();
        let mut changed = false;
        if let Some(o) = wire::unprotect(k, &mut copy, info) {
            let start = info.pn_offset + o.pn_len;
            let frames =
                wire::crypto_frames(&copy[start..start + o.plain_len], PacketType::Initial);
            let stream = if from_client {
                &mut self.ch
            } else {
                &mut self.sh
            };
            for f in &frames {
                let at = start + f.at;
                stream.put(f.offset as usize, &copy[at..at + f.len]);
            }
            let layout = if from_client {
                ch_layout(&self.ch)
            } else {
                None
            };
            for f in &frames {
                for i in 0..f.len {
                    let off = f.offset as usize + i;
                    let new = match (&layout, from_client) {
                        (Some(l), true) => self.ch_byte(l, off),
                        (None, true) => self.ch.bytes[off],
                        (_, false) => self.sh_byte(off),
                    };
                    let at = start + f.at + i;
                    if copy[at] != new {
                        copy[at] = new;
                        changed = true;
                    }
                }
            }
            wire::protect(k, &mut copy, info, &o);
            pkt.copy_from_slice(&copy);
        }
        self.initial = Some(keys);
        changed
    }

    fn modified_ch(&self) -> Option<Vec<u8>> {
        let orig = self.ch.message()?;
        let layout = ch_layout(&self.ch)?;
        Some((0..orig.len()).map(|o| self.ch_byte(&layout, o)).collect())
    }

    /// Once the ClientHello is complete: answer the client's share (relay mode).
    fn prepare_reply(&mut self) {
        if !self.attack.relay || self.to_client.is_some() {
            return;
        }
        let (Some(ch), Some(layout)) = (self.ch.message(), ch_layout(&self.ch)) else {
            return;
        };
        self.to_client = Some(
            self.provider
                .server_key_exchange(&ch[layout.share])
                .unwrap_or_else(|e| panic!("attacker encapsulation: {e}")),
        );
    }

    /// Once the ServerHello is complete: derive both sessions' handshake keys (relay mode).
    fn derive_relay_keys(&mut self) {
        if !self.attack.relay || self.relay_keys.is_some() {
            return;
        }
        let (Some(sh), Some(ch_mod), Some(ch)) =
            (self.sh.message(), self.modified_ch(), self.ch.message())
        else {
            return;
        };
        let Some((_, ss_client)) = &self.to_client else {
            return;
        };
        let Some(kx) = self.attacker_kx.take() else {
            return;
        };
        let p = self.provider.as_ref();
        let ss_server = kx
            .complete(&sh[SH_SHARE_START..SH_SHARE_START + SH_SHARE_LEN])
            .unwrap_or_else(|e| panic!("attacker decapsulation: {e}"));
        let suite = CipherSuite::from_code(u16::from_be_bytes([
            sh[SH_SUITE.start],
            sh[SH_SUITE.start + 1],
        ]))
        .unwrap_or_else(|| panic!("unknown suite"));
        let sh_mod: Vec<u8> = (0..sh.len()).map(|o| self.sh_byte(o)).collect();
        let hash = |a: &[u8], b: &[u8]| {
            let mut h = p.hash();
            h.update(a);
            h.update(b);
            h.current()
        };
        let keys = |ss: &SharedSecret, transcript: &[u8; 32]| {
            let hs = KeySchedule::new(p, None)
                .into_handshake(p, ss)
                .unwrap_or_else(|e| panic!("{e}"));
            let c = hs
                .client_handshake_traffic(p, transcript)
                .unwrap_or_else(|e| panic!("{e}"));
            let s = hs
                .server_handshake_traffic(p, transcript)
                .unwrap_or_else(|e| panic!("{e}"));
            let dk =
                |secret| DirectionalKeys::new(p, suite, secret).unwrap_or_else(|e| panic!("{e}"));
            (dk(&c), dk(&s))
        };
        let (c_server_side, s_server_side) = keys(&ss_server, &hash(&ch_mod, sh));
        let (c_client_side, s_client_side) = keys(ss_client, &hash(ch, &sh_mod));
        self.relay_keys = Some(RelayKeys {
            client_hs_from_client: c_client_side,
            client_hs_to_server: c_server_side,
            server_hs_from_server: s_server_side,
            server_hs_to_client: s_client_side,
        });
    }

    fn translate_handshake(&mut self, pkt: &mut [u8], info: &PacketInfo, from_client: bool) {
        let Some(r) = &self.relay_keys else { return };
        let (from, to) = if from_client {
            (&r.client_hs_from_client, &r.client_hs_to_server)
        } else {
            (&r.server_hs_from_server, &r.server_hs_to_client)
        };
        let mut copy = pkt.to_vec();
        if let Some(o) = wire::unprotect(from, &mut copy, info) {
            wire::protect(to, &mut copy, info, &o);
            pkt.copy_from_slice(&copy);
            self.relayed += 1;
        }
    }

    /// The proxy hook: rewrites `d` in place; always forwards.
    fn on_datagram(&mut self, dir: Dir, d: &mut [u8]) {
        let from_client = dir == Dir::ToServer;
        for info in wire::packets(d) {
            let pkt = &mut d[info.start..info.start + info.len];
            match info.ty {
                PacketType::Initial => {
                    if self.initial.is_none() && from_client {
                        self.initial = Some(wire::observer_initial_keys(
                            self.provider.as_ref(),
                            info.dcid.as_slice(),
                        ));
                    }
                    if self.rewrite_initial(pkt, &info, from_client) {
                        if from_client {
                            self.rewritten += 1;
                        } else {
                            self.rewritten_server += 1;
                        }
                    }
                    if from_client {
                        self.prepare_reply();
                    } else {
                        self.derive_relay_keys();
                    }
                }
                PacketType::Handshake if self.attack.relay => {
                    self.translate_handshake(pkt, &info, from_client);
                }
                _ => {}
            }
        }
    }
}

/// What an attack on the ClientHello left behind.
struct Outcome {
    lab: Lab,
    proxy: Proxy,
    mitm: Arc<Mutex<Mitm>>,
    client: ConnectionError,
    /// The server's handshake failure, as its application saw it.
    server: ConnectionError,
}

async fn attack(a: Attack) -> Outcome {
    let lab = lab(None);
    let mitm = Arc::new(Mutex::new(Mitm::new(a)));
    let m = mitm.clone();
    let proxy = Proxy::with_hook(
        lab.server.local_addr(),
        Box::new(move |dir, d| {
            lock(&m).on_datagram(dir, d);
            Verdict::Forward
        }),
    )
    .await;
    let client = Endpoint::client(adversary::loopback()).unwrap();
    let client_err = attacked_connect(&client, &proxy, &lab.client_cfg).await;
    let server_err = server_failures(&lab.seen, 1).await.remove(0);
    eprintln!("{a:?}: client {client_err:?}, server {server_err:?}");
    assert_nothing_delivered(&lab.seen, &format!("{a:?}"));
    Outcome {
        lab,
        proxy,
        mitm,
        client: client_err,
        server: server_err,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_that_only_reseals_initial_packets_is_transparent() {
    // Control for the attacks below: decrypting and re-sealing every Initial packet unchanged
    // does not disturb the handshake, so each failure below is caused by the change itself.
    let lab = lab(None);
    let mitm = Arc::new(Mutex::new(Mitm::new(Attack::default())));
    let m = mitm.clone();
    let proxy = Proxy::with_hook(
        lab.server.local_addr(),
        Box::new(move |dir, d| {
            lock(&m).on_datagram(dir, d);
            Verdict::Forward
        }),
    )
    .await;
    let client = Endpoint::client(adversary::loopback()).unwrap();
    let conn = hang_guard(
        "handshake",
        client.connect(proxy.addr, lab.client_cfg.clone()),
    )
    .await
    .unwrap();
    let back = hang_guard("echo", echo(&conn, APP_DATA)).await.unwrap();
    assert_eq!(back, APP_DATA);
    let m = lock(&mitm);
    assert!(
        m.ch.message().is_some(),
        "the attacker read the ClientHello"
    );
    assert!(
        m.sh.message().is_some(),
        "the attacker read the ServerHello"
    );
    assert_eq!(m.rewritten, 0);
    assert_eq!(lab.seen.count(APP_DATA), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripping_the_preferred_suite_is_detected_and_a_clean_retry_gets_it() {
    // The server prefers AES-256-GCM; the attacker hides it from the client's offer so that the
    // server picks ChaCha20-Poly1305. The handshake keys cover ClientHello..ServerHello, so the
    // two sides derive different keys: neither reads the other's Handshake packets, and both
    // give up at their handshake timeout with TamperingDetected (mitm::suite_downgrade_is_detected).
    let o = attack(Attack {
        strip_aes: true,
        ..Attack::default()
    })
    .await;
    assert!(lock(&o.mitm).rewritten > 0, "the ClientHello was rewritten");
    assert_eq!(
        o.client,
        ConnectionError::Handshake(HandshakeError::TamperingDetected)
    );
    assert_eq!(
        o.server,
        ConnectionError::Handshake(HandshakeError::TamperingDetected)
    );
    // Without the attacker the client gets the suite both prefer.
    let conn = clean_retry_connects(&o.lab, &o.proxy, 1).await;
    assert_eq!(
        conn.handshake_summary().map(|s| s.suite),
        Some(CipherSuite::Aes256Gcm)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripping_the_preferred_suite_with_both_key_exchanges_relayed_fails_the_signature() {
    // With control of both key exchanges too, the client reads the server's flight under the
    // downgraded suite, and the server's CertificateVerify fails over the client's transcript.
    let o = attack(Attack {
        strip_aes: true,
        share: ShareAttack::Replace,
        relay: true,
        ..Attack::default()
    })
    .await;
    assert!(
        lock(&o.mitm).relayed > 0,
        "the attacker translated Handshake packets"
    );
    assert_eq!(
        o.client,
        ConnectionError::Handshake(HandshakeError::BadSignature)
    );
    assert_eq!(
        peer_closed(&o.server),
        Some(ErrorCode::handshake(HandshakeAlert::DecryptError)),
        "server saw {:?}",
        o.server
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripping_the_version_from_the_client_hello_is_an_illegal_parameter() {
    // The long header still says version 1, the rewritten list no longer offers it (PROTOCOL.md
    // §2: the list is in the transcript; the server checks the attempted version against it).
    let o = attack(Attack {
        strip_version: true,
        ..Attack::default()
    })
    .await;
    assert!(lock(&o.mitm).rewritten > 0);
    assert_eq!(
        o.server,
        ConnectionError::Handshake(HandshakeError::IllegalParameter(
            "attempted version not offered"
        ))
    );
    assert_eq!(
        peer_closed(&o.client),
        Some(ErrorCode::handshake(HandshakeAlert::IllegalParameter)),
        "client saw {:?}",
        o.client
    );
    clean_retry_connects(&o.lab, &o.proxy, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewritten_header_version_gets_a_version_negotiation_the_client_ignores() {
    // The attacker rewrites the version of every long header the client sends. The server
    // answers with a version negotiation listing version 1 (its only version) and keeps no
    // state; the client ignores a negotiation that lists the version it attempted (§4.5) and
    // times out.
    let lab = lab(None);
    let proxy = Proxy::with_hook(
        lab.server.local_addr(),
        Box::new(|dir, d| {
            if dir == Dir::ToServer && d.len() >= 5 && d[0] & 0x80 != 0 {
                d[1..5].copy_from_slice(&UNKNOWN.to_be_bytes());
            }
            Verdict::Forward
        }),
    )
    .await;
    let client = Endpoint::client(adversary::loopback()).unwrap();
    let err = attacked_connect(&client, &proxy, &lab.client_cfg).await;
    assert_eq!(err, ConnectionError::TimedOut);
    let vns: Vec<_> = proxy
        .captured()
        .into_iter()
        .filter(|(dir, _)| *dir == Dir::ToClient)
        .map(|(_, d)| wire::kind(&d))
        .collect();
    assert!(!vns.is_empty(), "the server answered");
    assert!(
        vns.iter()
            .all(|k| *k == wire::Kind::VersionNegotiation(vec![VERSION_1])),
        "{vns:?}"
    );
    let stats = lab.server.stats();
    assert_eq!(stats.accepted, 0, "{stats:?}");
    assert!(stats.version_negotiations_sent >= 1, "{stats:?}");
    assert_nothing_delivered(&lab.seen, "header version");
    assert!(lock(&lab.seen.failures).is_empty());
    clean_retry_connects(&lab, &proxy, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_version_negotiation_ends_the_handshake_with_unsupported_version() {
    // The attacker drops the client's Initial datagrams and answers each with a version
    // negotiation that echoes the client's CIDs and lists only a version the client does not
    // support: the client fails with UnsupportedVersion (it cannot be moved to a version it did
    // not offer), and the server never hears of it.
    let lab = lab(None);
    let forged: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let f = forged.clone();
    let proxy = Arc::new(
        Proxy::with_hook(
            lab.server.local_addr(),
            Box::new(move |dir, d| {
                if dir == Dir::ToServer {
                    if let Some(info) = wire::packets(d).first() {
                        let mut vn = Vec::new();
                        header::encode_version_negotiation(
                            &mut vn,
                            &info.scid,
                            &info.dcid,
                            &[UNKNOWN],
                            0x2a,
                        )
                        .unwrap();
                        lock(&f).push(vn);
                    }
                    return Verdict::Drop;
                }
                Verdict::Forward
            }),
        )
        .await,
    );
    let injector = {
        let proxy = proxy.clone();
        tokio::spawn(async move {
            loop {
                let pending: Vec<_> = lock(&forged).drain(..).collect();
                for vn in pending {
                    proxy.inject_to_client(&vn).await;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let client = Endpoint::client(adversary::loopback()).unwrap();
    let err = attacked_connect(&client, &proxy, &lab.client_cfg).await;
    injector.abort();
    assert_eq!(
        err,
        ConnectionError::UnsupportedVersion {
            offered: vec![UNKNOWN]
        }
    );
    let stats = lab.server.stats();
    assert_eq!(stats.accepted, 0, "{stats:?}");
    assert_nothing_delivered(&lab.seen, "forged version negotiation");
    clean_retry_connects(&lab, &proxy, 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_share_swapped_for_the_attackers_with_both_exchanges_relayed_fails_the_signature() {
    // The full man-in-the-middle attempt: the attacker substitutes its own share toward the
    // server, answers the client's share itself, and holds both sessions' handshake keys. The
    // client decrypts the server's flight, accepts the pinned key, and finds that the server's
    // CertificateVerify covers a different transcript.
    let o = attack(Attack {
        share: ShareAttack::Replace,
        relay: true,
        ..Attack::default()
    })
    .await;
    {
        let m = lock(&o.mitm);
        assert!(
            m.rewritten > 0 && m.rewritten_server > 0,
            "both Hellos rewritten"
        );
        assert!(
            m.relayed > 0,
            "the attacker translated the server's Handshake flight"
        );
    }
    assert_eq!(
        o.client,
        ConnectionError::Handshake(HandshakeError::BadSignature)
    );
    assert_eq!(
        peer_closed(&o.server),
        Some(ErrorCode::handshake(HandshakeAlert::DecryptError)),
        "server saw {:?}",
        o.server
    );
    clean_retry_connects(&o.lab, &o.proxy, 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_substituted_key_share_without_key_control_stalls_into_tampering_detected() {
    // A valid but different share (one X25519 bit flipped, or the attacker's own share without
    // answering the client): the two sides derive different handshake keys, drop each other's
    // Handshake packets (§5.5) and fail at their handshake timeout with TamperingDetected.
    for share in [ShareAttack::FlipX25519Bit, ShareAttack::Replace] {
        let o = attack(Attack {
            share,
            ..Attack::default()
        })
        .await;
        assert!(lock(&o.mitm).rewritten > 0, "{share:?}");
        assert_eq!(
            o.client,
            ConnectionError::Handshake(HandshakeError::TamperingDetected),
            "{share:?}"
        );
        assert_eq!(
            o.server,
            ConnectionError::Handshake(HandshakeError::TamperingDetected),
            "{share:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_key_share_bytes_are_an_illegal_parameter() {
    // An ML-KEM key failing the FIPS 203 modulus check, and the X25519 low-order point 0: the
    // server refuses the share at once (§7.4) and tells the client.
    for share in [ShareAttack::InvalidMlKemKey, ShareAttack::ZeroX25519] {
        let o = attack(Attack {
            share,
            ..Attack::default()
        })
        .await;
        assert!(lock(&o.mitm).rewritten > 0, "{share:?}");
        assert_eq!(
            o.server,
            ConnectionError::Handshake(HandshakeError::IllegalParameter("key share")),
            "{share:?}"
        );
        assert_eq!(
            peer_closed(&o.client),
            Some(ErrorCode::handshake(HandshakeAlert::IllegalParameter)),
            "{share:?}: client saw {:?}",
            o.client
        );
        clean_retry_connects(&o.lab, &o.proxy, 6).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Bit flips
// ---------------------------------------------------------------------------------------------

/// A proxy hook flipping one random bit in each long-header (Initial or Handshake) datagram,
/// the first `per_dir[0]` to the server and `per_dir[1]` to the client; counts the flips.
fn bit_flipper(seed: u64, per_dir: [usize; 2], flips: Arc<Mutex<[usize; 2]>>) -> adversary::Hook {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    Box::new(move |dir, d| {
        let i = usize::from(dir == Dir::ToClient);
        let mut n = lock(&flips);
        if d.first().is_some_and(|b| b & 0x80 != 0) && n[i] < per_dir[i] {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let bit = (x % (d.len() as u64 * 8)) as usize;
            d[bit / 8] ^= 1 << (bit % 8);
            n[i] += 1;
        }
        Verdict::Forward
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bit_flipped_in_every_handshake_datagram_fails_typed_and_a_clean_retry_connects() {
    // Every long-header datagram in one direction has one bit flipped: each packet it hits fails
    // AEAD or does not parse (or is a version negotiation the client ignores) and is dropped.
    // Nothing authentic gets through, so the handshake cannot complete: the client fails with
    // TimedOut (no Handshake packet to authenticate) or TamperingDetected (a coalesced Initial
    // survived, a Handshake packet did not). Client to server first (the server never gets a
    // ClientHello it can open), then server to client.
    for (i, per_dir) in [[usize::MAX, 0], [0, usize::MAX]].into_iter().enumerate() {
        let lab = lab(Some(Duration::from_millis(30)));
        let flips = Arc::new(Mutex::new([0usize; 2]));
        let proxy = Proxy::with_hook(
            lab.server.local_addr(),
            bit_flipper(7 + i as u64, per_dir, flips.clone()),
        )
        .await;
        let client = Endpoint::client(adversary::loopback()).unwrap();
        let err = attacked_connect(&client, &proxy, &lab.client_cfg).await;
        let n = *lock(&flips);
        eprintln!("flips {n:?} (to server, to client): client {err:?}");
        assert!(n[i] > 1, "the peer retransmitted into the flips: {n:?}");
        assert!(
            matches!(
                err,
                ConnectionError::TimedOut
                    | ConnectionError::Handshake(HandshakeError::TamperingDetected)
            ),
            "client saw {err:?}"
        );
        // Whatever the server made of it ended without a session.
        hang_guard("server handshakes end", async {
            while lab.server.connection_count() > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        let failures = lock(&lab.seen.failures).clone();
        eprintln!(
            "server: {} accepted, failures {failures:?}",
            lab.server.stats().accepted
        );
        for e in &failures {
            assert!(
                matches!(
                    e,
                    ConnectionError::TimedOut
                        | ConnectionError::Handshake(HandshakeError::TamperingDetected)
                        | ConnectionError::PeerClosed {
                            code: ErrorCode::TIMEOUT,
                            ..
                        }
                ),
                "server saw {e:?}"
            );
        }
        if i == 0 {
            assert_eq!(lab.server.stats().accepted, 0, "no ClientHello opened");
        }
        assert_nothing_delivered(&lab.seen, "bit flips");
        clean_retry_connects(&lab, &proxy, 7).await;
        assert_eq!(lab.seen.established.load(Ordering::SeqCst), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bits_flipped_in_the_first_handshake_datagrams_are_dropped_and_retransmission_recovers() {
    // One bit flipped in each of the first 2 long-header datagrams in each direction, 6 seeds:
    // the damaged packets are dropped and retransmitted. Every attempt either connects with the
    // right keys (its echo is intact) or fails with a typed error; never a panic, never a
    // session that delivers wrong bytes.
    let lab = lab(Some(Duration::from_millis(30)));
    let proxy = Proxy::start(lab.server.local_addr()).await;
    let mut connected = 0;
    for seed in 0..6u64 {
        let flips = Arc::new(Mutex::new([0usize; 2]));
        proxy.set_hook(bit_flipper(100 + seed, [2, 2], flips.clone()));
        let client = Endpoint::client(adversary::loopback()).unwrap();
        let r = hang_guard(
            "flipped handshake",
            client.connect(proxy.addr, lab.client_cfg.clone()),
        )
        .await;
        let n = *lock(&flips);
        match r {
            Ok(conn) => {
                let data = pattern(16 << 10, seed);
                let back = hang_guard("echo after flips", echo(&conn, &data))
                    .await
                    .unwrap();
                assert!(back == data, "seed {seed}: echo corrupted");
                connected += 1;
                eprintln!("seed {seed}: {n:?} flips, connected");
            }
            Err(jsp::Error::Connection(e)) => {
                eprintln!("seed {seed}: {n:?} flips, failed with {e:?}");
                assert!(
                    matches!(
                        e,
                        ConnectionError::TimedOut
                            | ConnectionError::Handshake(HandshakeError::TamperingDetected)
                    ),
                    "seed {seed}: {e:?}"
                );
            }
            Err(e) => panic!("seed {seed}: not a typed connection error: {e}"),
        }
        assert_eq!(n, [2, 2], "seed {seed}: every flip was made");
    }
    assert_eq!(lab.seen.established.load(Ordering::SeqCst), connected);
    assert_eq!(lab.seen.message_count.load(Ordering::SeqCst), connected);
    assert!(
        connected > 0,
        "retransmission never recovered from 2 flips per direction"
    );
}
