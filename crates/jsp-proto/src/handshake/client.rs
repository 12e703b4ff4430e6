//! The client side of the handshake (PROTOCOL.md §7.9): sends ClientHello, checks ServerHello's
//! choices against what was offered, authenticates the server (pinned key or certificate, then
//! CertificateVerify, then Finished), optionally authenticates itself, and derives 1-RTT keys.

use std::sync::Arc;

use super::ticket::SessionTicket;
use super::verifier::{self, certificate_verify_content, PeerVerified, TrustedKey};
use super::{crypto_err, Completion, KeyChange, Negotiated, Output, Space};
use crate::config::ClientConfig;
use crate::crypto::key_schedule::{self, HandshakeKeySchedule, KeySchedule};
use crate::crypto::provider::{GROUP_X25519_MLKEM768, SERVER_SHARE_LEN};
use crate::crypto::{CipherSuite, ClientKeyExchange, CryptoProvider, HashContext, Secret};
use crate::error::HandshakeError;
use crate::time::UnixTime;
use crate::wire::messages::{self as msg, Message};

enum State {
    WaitServerHello {
        kx: Box<dyn ClientKeyExchange>,
        /// The PSK schedule, when a ticket was offered.
        psk: Option<(KeySchedule, CipherSuite)>,
    },
    WaitEncryptedExtensions(Box<Secrets>),
    WaitCertificateOrRequest(Box<Secrets>),
    WaitCertificate(Box<Secrets>),
    WaitCertificateVerify(Box<Secrets>, TrustedKey),
    WaitFinished(Box<Secrets>, PeerVerified),
    Done,
    Failed,
}

struct Secrets {
    schedule: HandshakeKeySchedule,
    client_hs: Secret,
    server_hs: Secret,
    cert_requested: bool,
    psk_accepted: bool,
    early_accepted: bool,
}

/// The client handshake state machine.
pub struct ClientHandshake {
    provider: Arc<dyn CryptoProvider>,
    config: Arc<ClientConfig>,
    state: State,
    transcript: Box<dyn HashContext>,
    negotiated: Option<Negotiated>,
    unix_now: UnixTime,
    client_hello: Vec<u8>,
    ticket_server: Option<super::PeerIdentity>,
    early_offered: bool,
}

/// A client key share made ahead of the connection that will use it (X25519 and ML-KEM-768 key
/// generation is most of the cost of a first flight): a driver prepares one while it waits for
/// the network, and the next connection starts without that work. Each is used by one handshake
/// only, then erased like any ephemeral key.
pub struct PreparedKeyShare {
    share: Vec<u8>,
    kx: Box<dyn ClientKeyExchange>,
}

impl PreparedKeyShare {
    /// Generates a fresh key share with `provider`.
    ///
    /// # Errors
    /// If the provider fails to generate keys.
    pub fn generate(provider: &dyn CryptoProvider) -> Result<Self, crate::crypto::CryptoError> {
        let (share, kx) = provider.client_key_share()?;
        Ok(Self { share, kx })
    }
}

impl core::fmt::Debug for PreparedKeyShare {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // The private half stays out of logs.
        f.debug_struct("PreparedKeyShare").finish_non_exhaustive()
    }
}

impl ClientHandshake {
    /// Starts a handshake: builds ClientHello (with `transport_params`) for the Initial space,
    /// with `key_share` if one was prepared (else a fresh one). With a usable `ticket` it offers
    /// resumption (PROTOCOL.md §13.2) and, if the ticket and the config allow, 0-RTT keys for
    /// early data.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        provider: Arc<dyn CryptoProvider>,
        config: Arc<ClientConfig>,
        transport_params: Vec<u8>,
        unix_now: UnixTime,
        attempted_version: u32,
        previous_version: Option<u32>,
        ticket: Option<&SessionTicket>,
        key_share: Option<PreparedKeyShare>,
        out: &mut Output,
    ) -> Result<Self, HandshakeError> {
        let ticket = ticket.filter(|t| {
            t.is_valid_at(unix_now)
                && t.version == attempted_version
                && config.transport.cipher_suites.contains(&t.suite)
        });
        let PreparedKeyShare { share, kx } = match key_share {
            Some(k) => k,
            None => PreparedKeyShare::generate(provider.as_ref()).map_err(crypto_err)?,
        };
        let mut random = [0u8; 32];
        provider.fill_random(&mut random).map_err(crypto_err)?;
        let mut versions = vec![attempted_version];
        versions.extend(
            config
                .versions
                .iter()
                .copied()
                .filter(|&v| v != attempted_version),
        );
        let suites: Vec<u16> = config
            .transport
            .cipher_suites
            .iter()
            .map(|s| s.code())
            .collect();
        let encode_err = |_| HandshakeError::Crypto("ClientHello does not encode".into());
        let hello = msg::ClientHello {
            random,
            versions: msg::ShortList::from_slice(&versions).map_err(encode_err)?,
            cipher_suites: msg::ShortList::from_slice(&suites).map_err(encode_err)?,
            key_share: msg::KeyShare {
                group: GROUP_X25519_MLKEM768,
                share: &share,
            },
            server_name: config.server_name.as_deref(),
            transport_parameters: &transport_params,
            early_data: false,
            pre_shared_key: None,
            previous_version,
        };
        let early = ticket.is_some_and(|t| config.enable_0rtt && t.max_early_data > 0);
        let mut bytes = Vec::with_capacity(1400);
        let mut psk = None;
        match ticket {
            None => {
                hello.encode(&mut bytes).map_err(encode_err)?;
            }
            Some(t) => {
                let age_ms = unix_now
                    .0
                    .saturating_sub(t.received_at.0)
                    .saturating_mul(1000);
                let obfuscated = (age_ms as u32).wrapping_add(t.age_add);
                let hello = msg::ClientHello {
                    early_data: early,
                    pre_shared_key: Some(msg::PreSharedKey {
                        identity: &t.ticket,
                        obfuscated_ticket_age: obfuscated,
                        binder: [0; 32],
                    }),
                    ..hello
                };
                let layout = hello.encode(&mut bytes).map_err(encode_err)?;
                let schedule = KeySchedule::new(provider.as_ref(), Some(&t.psk));
                let truncated = layout
                    .truncated(&bytes)
                    .ok_or(HandshakeError::Crypto("binder layout".into()))?;
                let binder = schedule
                    .psk_binder(provider.as_ref(), &provider.sha256(truncated))
                    .map_err(crypto_err)?;
                layout
                    .patch_binder(&mut bytes, &binder)
                    .map_err(encode_err)?;
                if early {
                    let secret = schedule
                        .client_early_traffic(provider.as_ref(), &provider.sha256(&bytes))
                        .map_err(crypto_err)?;
                    out.keys.push(KeyChange::ZeroRtt {
                        secret,
                        suite: t.suite,
                    });
                }
                psk = Some((schedule, t.suite));
            }
        }
        let mut transcript = provider.hash();
        transcript.update(&bytes);
        out.send(Space::Initial, bytes.clone());
        Ok(Self {
            provider,
            config,
            state: State::WaitServerHello { kx, psk },
            transcript,
            negotiated: None,
            unix_now,
            client_hello: bytes,
            ticket_server: ticket.and_then(|t| t.server.clone()),
            early_offered: early,
        })
    }

    /// The ClientHello bytes (resent unchanged after a Retry, PROTOCOL.md §12.2).
    pub fn client_hello(&self) -> &[u8] {
        &self.client_hello
    }

    /// What was negotiated, once ServerHello arrived.
    pub fn negotiated(&self) -> Option<Negotiated> {
        self.negotiated
    }

    /// Whether the handshake finished.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Processes one complete handshake message that arrived in `space`.
    pub fn handle(
        &mut self,
        space: Space,
        raw: &[u8],
        out: &mut Output,
    ) -> Result<(), HandshakeError> {
        let result = self.step(space, raw, out);
        if result.is_err() {
            self.state = State::Failed;
        }
        result
    }

    fn step(&mut self, space: Space, raw: &[u8], out: &mut Output) -> Result<(), HandshakeError> {
        let message = Message::decode(raw).map_err(|_| HandshakeError::Decode("message"))?;
        let p = self.provider.clone();
        let provider = p.as_ref();
        let state = std::mem::replace(&mut self.state, State::Failed);
        self.state = match (state, space, message) {
            (State::WaitServerHello { kx, psk }, Space::Initial, Message::ServerHello(sh)) => {
                if !self.config.versions.contains(&sh.version) {
                    return Err(HandshakeError::IllegalParameter("version"));
                }
                let suite = CipherSuite::from_code(sh.cipher_suite)
                    .filter(|s| self.config.transport.cipher_suites.contains(s))
                    .ok_or(HandshakeError::IllegalParameter("cipher suite"))?;
                if sh.key_share.group != GROUP_X25519_MLKEM768 {
                    return Err(HandshakeError::IllegalParameter("key-exchange group"));
                }
                if sh.key_share.share.len() != SERVER_SHARE_LEN {
                    return Err(HandshakeError::IllegalParameter("key share length"));
                }
                let schedule = match (sh.psk_accepted, psk) {
                    (true, None) => {
                        return Err(HandshakeError::IllegalParameter(
                            "PSK accepted but none offered",
                        ))
                    }
                    (true, Some((s, ticket_suite))) => {
                        if ticket_suite != suite {
                            return Err(HandshakeError::IllegalParameter("resumed suite"));
                        }
                        s
                    }
                    (false, _) => KeySchedule::new(provider, None),
                };
                let shared = kx
                    .complete(sh.key_share.share)
                    .map_err(|_| HandshakeError::IllegalParameter("key share"))?;
                self.transcript.update(raw);
                let hash = self.transcript.current();
                let hs = schedule
                    .into_handshake(provider, &shared)
                    .map_err(crypto_err)?;
                let client_hs = hs
                    .client_handshake_traffic(provider, &hash)
                    .map_err(crypto_err)?;
                let server_hs = hs
                    .server_handshake_traffic(provider, &hash)
                    .map_err(crypto_err)?;
                out.keys.push(KeyChange::Handshake {
                    send: client_hs.clone(),
                    recv: server_hs.clone(),
                });
                self.negotiated = Some(Negotiated {
                    version: sh.version,
                    suite,
                    group: sh.key_share.group,
                });
                State::WaitEncryptedExtensions(Box::new(Secrets {
                    schedule: hs,
                    client_hs,
                    server_hs,
                    cert_requested: false,
                    psk_accepted: sh.psk_accepted,
                    early_accepted: false,
                }))
            }
            (
                State::WaitEncryptedExtensions(mut s),
                Space::Handshake,
                Message::EncryptedExtensions(ee),
            ) => {
                out.peer_params = Some(ee.transport_parameters.to_vec());
                if ee.early_data && !(self.early_offered && s.psk_accepted) {
                    return Err(HandshakeError::IllegalParameter("early_data not offered"));
                }
                s.early_accepted = ee.early_data;
                self.transcript.update(raw);
                if s.psk_accepted {
                    // The PSK authenticates the server of the original session (§13.2).
                    State::WaitFinished(s, PeerVerified::from_psk(self.ticket_server.clone()))
                } else {
                    State::WaitCertificateOrRequest(s)
                }
            }
            (
                State::WaitCertificateOrRequest(mut s),
                Space::Handshake,
                Message::CertificateRequest(_),
            ) => {
                self.transcript.update(raw);
                s.cert_requested = true;
                State::WaitCertificate(s)
            }
            (
                State::WaitCertificateOrRequest(s) | State::WaitCertificate(s),
                Space::Handshake,
                Message::Certificate(cert),
            ) => {
                let trusted = verifier::verify_presented(
                    provider,
                    &self.config.trust,
                    cert.kind.code(),
                    cert.data,
                    self.unix_now,
                    self.config.server_name.as_deref(),
                )?;
                self.transcript.update(raw);
                State::WaitCertificateVerify(s, trusted)
            }
            (
                State::WaitCertificateVerify(s, key),
                Space::Handshake,
                Message::CertificateVerify(cv),
            ) => {
                if cv.scheme != msg::SCHEME_ED25519 {
                    return Err(HandshakeError::IllegalParameter("signature scheme"));
                }
                let content = certificate_verify_content(true, &self.transcript.current());
                provider
                    .verify_ed25519(key.key().as_bytes(), &content, cv.signature)
                    .map_err(|_| HandshakeError::BadSignature)?;
                self.transcript.update(raw);
                State::WaitFinished(s, PeerVerified::from_signature(provider, &key))
            }
            (State::WaitFinished(s, verified), Space::Handshake, Message::Finished(fin)) => {
                key_schedule::verify_finished(
                    provider,
                    &s.server_hs,
                    &self.transcript.current(),
                    &fin.verify_data,
                )
                .map_err(|_| HandshakeError::FinishedMismatch)?;
                self.transcript.update(raw);
                let server_fin_hash = self.transcript.current();
                if s.cert_requested {
                    self.send_client_certificate(out)?;
                }
                let verify_data = key_schedule::finished_verify_data(
                    provider,
                    &s.client_hs,
                    &self.transcript.current(),
                )
                .map_err(crypto_err)?;
                let mut fin_bytes = Vec::with_capacity(36);
                msg::Finished { verify_data }.encode(&mut fin_bytes);
                self.transcript.update(&fin_bytes);
                out.send(Space::Handshake, fin_bytes);
                let client_fin_hash = self.transcript.current();
                let master = s.schedule.into_master(provider).map_err(crypto_err)?;
                let send = master
                    .client_app_traffic(provider, &server_fin_hash)
                    .map_err(crypto_err)?;
                let recv = master
                    .server_app_traffic(provider, &server_fin_hash)
                    .map_err(crypto_err)?;
                out.keys.push(KeyChange::Application { send, recv });
                let resumption_master = master
                    .resumption_master(provider, &client_fin_hash)
                    .map_err(crypto_err)?;
                out.complete = Some(Completion {
                    verified,
                    resumed: s.psk_accepted,
                    early_data_accepted: s.early_accepted,
                    resumption_master: Some(resumption_master),
                });
                State::Done
            }
            (_, _, Message::NewSessionTicket(_)) if space == Space::Data => State::Done,
            _ => {
                return Err(HandshakeError::UnexpectedMessage(
                    "out of order for the client",
                ))
            }
        };
        Ok(())
    }

    fn send_client_certificate(&mut self, out: &mut Output) -> Result<(), HandshakeError> {
        let Some(id) = self.config.identity.as_ref() else {
            // No identity: an empty Certificate (PROTOCOL.md §7.6).
            let mut cert_bytes = Vec::new();
            msg::CertificateMsg::NONE
                .encode(&mut cert_bytes)
                .map_err(|_| HandshakeError::Crypto("encode".into()))?;
            self.transcript.update(&cert_bytes);
            out.send(Space::Handshake, cert_bytes);
            return Ok(());
        };
        super::send_certificate(id, false, self.transcript.as_mut(), out)
    }
}
