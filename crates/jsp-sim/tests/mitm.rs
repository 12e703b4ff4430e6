//! An active on-path attacker against the handshake. Initial packets are protected only with keys
//! derived from the client's original DCID (PROTOCOL.md §5.4), so the attacker below really
//! decrypts the client's ClientHello, rewrites it (key share, cipher-suite list) and re-seals it,
//! and in "relay" mode also terminates both key exchanges: it answers the client with its own
//! ML-KEM ciphertext and X25519 key, derives both sides' handshake keys and translates every
//! Handshake packet between them. The engine must never let such a handshake complete: each
//! attack ends in a precise, typed outcome and no application data is delivered.

mod common;

use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;

use jsp_proto::crypto::{
    CipherSuite, ClientKeyExchange, CryptoProvider, DirectionalKeys, KeySchedule, SharedSecret,
};
use jsp_proto::error::HandshakeAlert;
use jsp_proto::time::Instant;
use jsp_proto::wire::header::PacketType;
use jsp_proto::{CloseReason, ConnectionError, ErrorCode, HandshakeError};
use jsp_sim::engine::{seeded_provider, Pair};
use jsp_sim::{Datagram, Middlebox, MiddleboxId, Scope, Verdict};

use common::wire::{self, PacketInfo};
use common::{link20, ms, pinned, run_until, secs, App};

/// What the attacker does to the client's key share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ShareAttack {
    /// Leave it.
    None,
    /// Flip one bit of the X25519 public key.
    FlipX25519Bit,
    /// Make the first ML-KEM coefficient 4095 (>= q): fails the FIPS 203 modulus check.
    InvalidMlKemKey,
    /// Replace the X25519 key with the low-order point 0.
    ZeroX25519,
    /// Replace the whole share with the attacker's own.
    Replace,
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

/// Where the cipher-suite list and the key share are in a ClientHello (header included).
struct ChLayout {
    suites: Range<usize>,
    share: Range<usize>,
}

fn ch_layout(ch: &Stream) -> Option<ChLayout> {
    let b = &ch.bytes;
    // header 4, random 32, then u8 count of u32 versions
    ch.known(0..37).then_some(())?;
    let p = 37 + 4 * usize::from(b[36]);
    ch.known(p..p + 1).then_some(())?;
    let suites = p + 1..p + 1 + 2 * usize::from(b[p]);
    let q = suites.end;
    ch.known(q..q + 4).then_some(())?;
    let share_len = usize::from(b[q + 2]) << 8 | usize::from(b[q + 3]);
    Some(ChLayout {
        suites,
        share: q + 4..q + 4 + share_len,
    })
}

/// ServerHello: header 4, random 32, version 4, suite 2, group 2, length 2, then the share.
const SH_SUITE: Range<usize> = 40..42;
const SH_SHARE_START: usize = 46;
/// Offset of the X25519 key inside the client share (after the ML-KEM encapsulation key).
const X25519_AT: usize = 1184;

struct RelayKeys {
    client_hs_from_client: DirectionalKeys,
    client_hs_to_server: DirectionalKeys,
    server_hs_from_server: DirectionalKeys,
    server_hs_to_client: DirectionalKeys,
}

struct Mitm {
    client_addr: SocketAddr,
    share: ShareAttack,
    /// Replace suite 0x0001 (AES-256-GCM) in the offer by an unknown codepoint.
    strip_aes: bool,
    /// Terminate both key exchanges and translate Handshake packets.
    relay: bool,
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
    fn new(client_addr: SocketAddr, share: ShareAttack, strip_aes: bool, relay: bool) -> Self {
        let provider = seeded_provider(99, 66);
        let (attacker_share, kx) = provider
            .client_key_share()
            .unwrap_or_else(|e| panic!("attacker share: {e}"));
        Self {
            client_addr,
            share,
            strip_aes,
            relay,
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
        if self.strip_aes && layout.suites.contains(&o) {
            let pair = layout.suites.start + (o - layout.suites.start) / 2 * 2;
            if self.ch.bytes[pair..pair + 2] == [0x00, 0x01] {
                return 0x0a;
            }
        }
        if layout.share.contains(&o) {
            let i = o - layout.share.start;
            return match self.share {
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
                if self.relay && (SH_SHARE_START..SH_SHARE_START + share.len()).contains(&o) =>
            {
                share[o - SH_SHARE_START]
            }
            _ => self.sh.bytes[o],
        }
    }

    /// Records the CRYPTO data of one Initial packet and rewrites it (client: ClientHello attack,
    /// server: ServerHello share in relay mode), re-sealing the packet in place. Returns whether
    /// anything changed.
    fn rewrite_initial(&mut self, pkt: &mut [u8], info: &PacketInfo, from_client: bool) -> bool {
        let Some(keys) = self.initial.take() else {
            return false;
        };
        let k = if from_client { &keys.0 } else { &keys.1 };
        let mut copy = pkt.to_vec();
        let mut changed = false;
        if let Some(o) = wire::unprotect(k, &mut copy, info) {
            let start = info.pn_offset + o.pn_len;
            let frames = {
                let payload = &copy[start..start + o.plain_len];
                wire::crypto_frames(payload, PacketType::Initial)
            };
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
        if !self.relay || self.to_client.is_some() {
            return;
        }
        let (Some(ch), Some(layout)) = (self.ch.message(), ch_layout(&self.ch)) else {
            return;
        };
        let client_share = &ch[layout.share];
        self.to_client = Some(
            self.provider
                .server_key_exchange(client_share)
                .unwrap_or_else(|e| panic!("attacker encapsulation: {e}")),
        );
    }

    /// Once the ServerHello is complete: derive both sessions' handshake keys (relay mode).
    fn derive_relay_keys(&mut self) {
        if !self.relay || self.relay_keys.is_some() {
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
        let server_share = &sh[SH_SHARE_START..SH_SHARE_START + 1120];
        let ss_server = kx
            .complete(server_share)
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
}

impl Middlebox for Mitm {
    fn on_datagram(&mut self, _now: Instant, d: &mut Datagram) -> Verdict {
        let from_client = d.src == self.client_addr;
        for info in wire::packets(&d.payload) {
            let pkt = &mut d.payload[info.start..info.start + info.len];
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
                PacketType::Handshake if self.relay => {
                    self.translate_handshake(pkt, &info, from_client);
                }
                _ => {}
            }
        }
        Verdict::Forward
    }
}

struct Outcome {
    client: App,
    server: App,
    pair: Pair,
    mitm: MiddleboxId,
}

impl Outcome {
    fn mitm(&self) -> &Mitm {
        self.pair.sim.middlebox::<Mitm>(self.mitm)
    }
}

fn attack(seed: u64, share: ShareAttack, strip_aes: bool, relay: bool) -> Outcome {
    let (server_cfg, client_cfg) = pinned();
    let mut pair = Pair::new(seed, server_cfg, client_cfg, link20());
    let client_addr = pair.sim.addr(pair.client);
    let mitm = pair.sim.add_middlebox(
        Scope::Global,
        Mitm::new(client_addr, share, strip_aes, relay),
    );
    let (mut c, mut s) = (App::client(&pair), App::server(&pair));
    // Try to use the connection the moment the client thinks it may.
    let _ = pair.sim.run_while(
        |sim| {
            c.poll(sim);
            s.poll(sim);
            if let Some(conn) = c.conn(sim) {
                if conn.is_established() && conn.unacked_stream_bytes() == 0 {
                    if let Ok(id) = conn.open_stream(jsp_proto::Dir::Bi) {
                        let _ = conn.stream_write(id, b"application data", true);
                    }
                }
            }
            let done = |a: &App| a.closed().is_some() || a.connected().is_some();
            !(done(&c) && done(&s))
        },
        secs(20),
    );
    run_until(&mut pair.sim, &mut [&mut c, &mut s], secs(1), |_| false);
    Outcome {
        client: c,
        server: s,
        pair,
        mitm,
    }
}

fn assert_nothing_delivered(o: &Outcome, what: &str) {
    assert!(o.client.connected().is_none(), "{what}: client connected");
    assert!(o.server.connected().is_none(), "{what}: server connected");
    assert!(o.server.streams.is_empty(), "{what}: server got data");
    assert!(o.client.streams.is_empty(), "{what}: client got data");
}

/// Both handshakes timed out after `handshake_timeout` (10 s) because each side dropped the
/// other's Handshake packets as unauthentic.
fn assert_stalled(o: &Outcome, what: &str) {
    // The client started at 0, the server when the ClientHello arrived one 20 ms hop later.
    for (app, started) in [(&o.client, ms(0)), (&o.server, ms(20))] {
        let at = app.closed_at.map(|t| t.as_nanos());
        let expected = (started + secs(10)).as_nanos() as u64;
        assert_eq!(at, Some(expected), "{what}: closed at {at:?}");
    }
    assert!(
        o.client.stats.dropped_auth > 0,
        "{what}: {:?}",
        o.client.stats
    );
    assert!(
        o.server.stats.dropped_auth > 0,
        "{what}: {:?}",
        o.server.stats
    );
}

fn peer_closed(err: Option<&ConnectionError>) -> Option<ErrorCode> {
    match err {
        Some(ConnectionError::PeerClosed {
            code,
            reason: CloseReason::ProtocolError,
            ..
        }) => Some(*code),
        _ => None,
    }
}

#[test]
fn a_man_in_the_middle_that_only_reseals_initial_packets_is_transparent() {
    // Control for the attacks below: decrypting and re-sealing every Initial packet, unchanged,
    // must not disturb the handshake, so any failure below is caused by the change itself.
    let o = attack(1, ShareAttack::None, false, false);
    assert!(o.client.connected().is_some() && o.server.connected().is_some());
    assert!(
        o.mitm().ch.message().is_some(),
        "the attacker read the ClientHello"
    );
    assert!(
        o.mitm().sh.message().is_some(),
        "the attacker read the ServerHello"
    );
    assert_eq!(o.mitm().rewritten, 0);
    assert_eq!(
        o.server.streams.values().next().map(Vec::as_slice),
        Some(&b"application data"[..])
    );
}

#[test]
fn substituted_client_key_share_without_key_control_stalls_into_handshake_timeout() {
    for share in [ShareAttack::FlipX25519Bit, ShareAttack::Replace] {
        let what = format!("{share:?}");
        let o = attack(2, share, false, false);
        assert!(
            o.mitm().rewritten > 0,
            "{what}: the ClientHello was not rewritten"
        );
        assert_nothing_delivered(&o, &what);
        // The two sides derived different handshake keys: every Handshake packet fails AEAD at
        // the other end (dropped silently, §5.5) and the handshake ends with the typed error.
        assert_eq!(
            o.client.closed(),
            Some(&ConnectionError::Handshake(
                HandshakeError::TamperingDetected
            )),
            "{what}"
        );
        assert_eq!(
            o.server.closed(),
            Some(&ConnectionError::Handshake(
                HandshakeError::TamperingDetected
            )),
            "{what}"
        );
        assert_stalled(&o, &what);
    }
}

#[test]
fn malformed_client_key_shares_are_rejected_with_illegal_parameter() {
    for share in [ShareAttack::InvalidMlKemKey, ShareAttack::ZeroX25519] {
        let what = format!("{share:?}");
        let o = attack(3, share, false, false);
        assert!(o.mitm().rewritten > 0, "{what}");
        assert_nothing_delivered(&o, &what);
        assert_eq!(
            o.server.closed(),
            Some(&ConnectionError::Handshake(
                HandshakeError::IllegalParameter("key share")
            )),
            "{what}"
        );
        assert_eq!(
            peer_closed(o.client.closed()),
            Some(ErrorCode::handshake(HandshakeAlert::IllegalParameter)),
            "{what}: client saw {:?}",
            o.client.closed()
        );
    }
}

#[test]
fn full_key_exchange_mitm_is_caught_by_the_server_signature() {
    let o = attack(4, ShareAttack::Replace, false, true);
    let m = o.mitm();
    assert!(
        m.rewritten > 0 && m.rewritten_server > 0,
        "both Hellos rewritten"
    );
    assert!(
        m.relayed > 0,
        "the attacker translated the server's Handshake flight"
    );
    assert_nothing_delivered(&o, "relay");
    // The client decrypted EncryptedExtensions, Certificate and CertificateVerify (the attacker
    // holds both sessions' keys), accepted the pinned server key, and then found that the
    // server's signature covers a different transcript.
    assert_eq!(
        o.client.closed(),
        Some(&ConnectionError::Handshake(HandshakeError::BadSignature))
    );
    assert_eq!(
        peer_closed(o.server.closed()),
        Some(ErrorCode::handshake(HandshakeAlert::DecryptError)),
        "server saw {:?}",
        o.server.closed()
    );
}

#[test]
fn suite_downgrade_is_detected() {
    // The server prefers AES-256-GCM; the attacker hides it from the client's offer so that the
    // server picks ChaCha20-Poly1305.
    let o = attack(5, ShareAttack::None, true, false);
    assert!(o.mitm().rewritten > 0);
    assert_nothing_delivered(&o, "downgrade");
    // Without control of the key exchange the handshake keys differ (they cover CH..SH), so
    // neither side can read the other's Handshake packets: detected as tampering.
    assert_eq!(
        o.client.closed(),
        Some(&ConnectionError::Handshake(
            HandshakeError::TamperingDetected
        ))
    );
    assert_eq!(
        o.server.closed(),
        Some(&ConnectionError::Handshake(
            HandshakeError::TamperingDetected
        ))
    );
    assert_stalled(&o, "downgrade");

    // With control of the key exchange too, the client reads the server's flight under the
    // downgraded suite and the server's CertificateVerify fails over the transcript.
    let o = attack(6, ShareAttack::Replace, true, true);
    assert!(o.mitm().relayed > 0);
    assert_nothing_delivered(&o, "downgrade + relay");
    assert_eq!(
        o.client.closed(),
        Some(&ConnectionError::Handshake(HandshakeError::BadSignature))
    );
}
