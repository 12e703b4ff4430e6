//! The server side of the handshake (PROTOCOL.md §7.9): validates ClientHello, selects version and
//! suite, completes the hybrid key exchange, proves its identity (CertificateVerify) and the
//! transcript (Finished), optionally authenticates the client, and derives 1-RTT keys.

use std::sync::Arc;

use super::ticket::{SharedResumption, TicketState};
use super::verifier::{self, certificate_verify_content, PeerVerified, TrustedKey};
use super::{crypto_err, Completion, KeyChange, Negotiated, Output, Space};
use crate::config::{ClientAuth, ServerConfig};
use crate::crypto::key_schedule::{self, KeySchedule, MasterKeySchedule};
use crate::crypto::provider::{CLIENT_SHARE_LEN, GROUP_X25519_MLKEM768};
use crate::crypto::{CipherSuite, CryptoProvider, HashContext, Secret, ServerKeyExchange};
use crate::error::HandshakeError;
use crate::time::UnixTime;
use crate::wire::messages::{self as msg, Message};

enum State {
    /// The ServerHello is out; the rest of the first flight is not produced yet.
    Answering(Box<PendingAnswer>),
    WaitClientCertificate,
    WaitClientCertificateVerify(TrustedKey),
    WaitFinished(PeerVerified),
    Done,
    Failed,
}

/// What the server needs to finish its first flight once the ServerHello has left.
struct PendingAnswer {
    exchange: Box<dyn ServerKeyExchange>,
    schedule: KeySchedule,
    server_params: Vec<u8>,
    /// The session being resumed, if any.
    resumed: Option<TicketState>,
}

/// The server handshake state machine, created from a ClientHello.
pub struct ServerHandshake {
    provider: Arc<dyn CryptoProvider>,
    config: Arc<ServerConfig>,
    state: State,
    transcript: Box<dyn HashContext>,
    /// Set by [`ServerHandshake::answer`].
    client_hs: Option<Secret>,
    master: Option<MasterKeySchedule>,
    resumed: bool,
    early_accepted: bool,
    negotiated: Negotiated,
    unix_now: UnixTime,
}

impl std::fmt::Debug for ServerHandshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandshake")
            .field("negotiated", &self.negotiated)
            .finish_non_exhaustive()
    }
}

/// What the server learned from a ClientHello.
pub struct Accepted {
    /// The handshake state machine.
    pub handshake: ServerHandshake,
    /// The client's transport parameters (raw).
    pub client_params: Vec<u8>,
}

impl ServerHandshake {
    /// Handles a ClientHello: selects parameters, resumes from a ticket when it can, and produces
    /// the start of the server's first flight, the ServerHello (in Initial);
    /// [`ServerHandshake::answer`] produces the rest (EncryptedExtensions .. Finished in
    /// Handshake), except when a session is resumed: then the whole flight comes at once.
    /// `server_params` are this side's encoded transport parameters.
    #[allow(clippy::too_many_arguments)]
    pub fn accept(
        provider: Arc<dyn CryptoProvider>,
        config: Arc<ServerConfig>,
        raw_client_hello: &[u8],
        attempted_version: u32,
        server_params: Vec<u8>,
        resumption: Option<&SharedResumption>,
        unix_now: UnixTime,
        out: &mut Output,
    ) -> Result<Accepted, HandshakeError> {
        let p = provider.clone();
        let provider_ref = p.as_ref();
        let encode_err = |_| HandshakeError::Crypto("message does not encode".into());
        let ch = match Message::decode(raw_client_hello)
            .map_err(|_| HandshakeError::Decode("ClientHello"))?
        {
            Message::ClientHello(ch) => ch,
            _ => return Err(HandshakeError::UnexpectedMessage("expected ClientHello")),
        };
        check_version(&config, &ch, attempted_version)?;
        if ch.key_share.group != GROUP_X25519_MLKEM768 {
            return Err(HandshakeError::NoCommonParameters);
        }
        if ch.key_share.share.len() != CLIENT_SHARE_LEN {
            return Err(HandshakeError::IllegalParameter("key share length"));
        }
        // Resumption (PROTOCOL.md §13.2): any failure falls back to a full handshake.
        let resumed = match (ch.pre_shared_key.as_ref(), resumption) {
            (Some(offer), Some(res)) => try_resume(
                provider_ref,
                &config,
                res,
                unix_now,
                offer,
                raw_client_hello,
                attempted_version,
                ch.cipher_suites.as_slice(),
            ),
            _ => None,
        };
        let suite = match &resumed {
            Some(state) => state.suite,
            None => config
                .transport
                .cipher_suites
                .iter()
                .copied()
                .find(|s| ch.cipher_suites.as_slice().contains(&s.code()))
                .ok_or(HandshakeError::NoCommonParameters)?,
        };
        let client_params = ch.transport_parameters.to_vec();
        let (server_share, exchange) = provider
            .server_key_share(ch.key_share.share)
            .map_err(|_| HandshakeError::IllegalParameter("key share"))?;
        let mut transcript = provider.hash();
        transcript.update(raw_client_hello);

        let schedule = KeySchedule::new(provider_ref, resumed.as_ref().map(|s| &s.psk));
        let early_accepted = ch.early_data
            && resumed
                .as_ref()
                .is_some_and(|s| s.max_early_data > 0 && config.max_early_data > 0);
        if early_accepted {
            let secret = schedule
                .client_early_traffic(provider_ref, &transcript.current())
                .map_err(crypto_err)?;
            out.keys.push(KeyChange::ZeroRtt { secret, suite });
        }

        let mut random = [0u8; 32];
        provider.fill_random(&mut random).map_err(crypto_err)?;
        let mut sh = Vec::with_capacity(1200);
        msg::ServerHello {
            random,
            version: attempted_version,
            cipher_suite: suite.code(),
            key_share: msg::KeyShare {
                group: GROUP_X25519_MLKEM768,
                share: &server_share,
            },
            psk_accepted: resumed.is_some(),
        }
        .encode(&mut sh)
        .map_err(encode_err)?;
        transcript.update(&sh);
        out.send(Space::Initial, sh);

        let resumed_flag = resumed.is_some();
        let pending = PendingAnswer {
            exchange,
            schedule,
            server_params,
            resumed,
        };
        let mut handshake = ServerHandshake {
            provider,
            config,
            state: State::Answering(Box::new(pending)),
            transcript,
            client_hs: None,
            master: None,
            resumed: resumed_flag,
            early_accepted,
            negotiated: Negotiated {
                version: attempted_version,
                suite,
                group: GROUP_X25519_MLKEM768,
            },
            unix_now,
        };
        if resumed_flag {
            // No signature to overlap, and the answer to 0-RTT data waits for the 1-RTT keys:
            // the whole flight at once.
            handshake.answer(out)?;
        }
        Ok(Accepted {
            handshake,
            client_params,
        })
    }

    /// Whether the rest of the first flight is still to be produced by
    /// [`ServerHandshake::answer`].
    pub fn is_answering(&self) -> bool {
        matches!(self.state, State::Answering(_))
    }

    /// Produces the rest of the server's first flight (EncryptedExtensions .. Finished in
    /// Handshake, with the Handshake and 1-RTT keys), after [`ServerHandshake::accept`] produced
    /// the ServerHello: the X25519 agreement, the key schedule and the CertificateVerify
    /// signature, which the ServerHello does not need and which can run while it travels. Does
    /// nothing once done.
    pub fn answer(&mut self, out: &mut Output) -> Result<(), HandshakeError> {
        let r = self.finish_answer(out);
        if r.is_err() {
            self.state = State::Failed;
        }
        r
    }

    fn finish_answer(&mut self, out: &mut Output) -> Result<(), HandshakeError> {
        let encode_err = |_| HandshakeError::Crypto("message does not encode".into());
        let state = std::mem::replace(&mut self.state, State::Failed);
        let State::Answering(pending) = state else {
            self.state = state;
            return Ok(());
        };
        let PendingAnswer {
            exchange,
            schedule,
            server_params,
            resumed,
        } = *pending;
        let p = self.provider.clone();
        let provider_ref = p.as_ref();
        let config = self.config.clone();
        let transcript = self.transcript.as_mut();
        let shared = exchange
            .complete()
            .map_err(|_| HandshakeError::IllegalParameter("key share"))?;

        let hash = transcript.current();
        let hs = schedule
            .into_handshake(provider_ref, &shared)
            .map_err(crypto_err)?;
        let client_hs = hs
            .client_handshake_traffic(provider_ref, &hash)
            .map_err(crypto_err)?;
        let server_hs = hs
            .server_handshake_traffic(provider_ref, &hash)
            .map_err(crypto_err)?;
        out.keys.push(KeyChange::Handshake {
            send: server_hs.clone(),
            recv: client_hs.clone(),
        });

        let mut ee = Vec::with_capacity(128);
        msg::EncryptedExtensions {
            transport_parameters: &server_params,
            early_data: self.early_accepted,
        }
        .encode(&mut ee)
        .map_err(encode_err)?;
        transcript.update(&ee);
        out.send(Space::Handshake, ee);

        let wants_client_auth =
            resumed.is_none() && !matches!(config.client_auth, ClientAuth::None);
        if wants_client_auth {
            let mut cr = Vec::with_capacity(8);
            msg::CertificateRequest { flags: 0 }.encode(&mut cr);
            transcript.update(&cr);
            out.send(Space::Handshake, cr);
        }
        if resumed.is_none() {
            super::send_certificate(&config.identity, true, transcript, out)?;
        }

        let verify_data =
            key_schedule::finished_verify_data(provider_ref, &server_hs, &transcript.current())
                .map_err(crypto_err)?;
        let mut fin = Vec::with_capacity(36);
        msg::Finished { verify_data }.encode(&mut fin);
        transcript.update(&fin);
        out.send(Space::Handshake, fin);

        let server_fin_hash = transcript.current();
        let master = hs.into_master(provider_ref).map_err(crypto_err)?;
        let send = master
            .server_app_traffic(provider_ref, &server_fin_hash)
            .map_err(crypto_err)?;
        let recv = master
            .client_app_traffic(provider_ref, &server_fin_hash)
            .map_err(crypto_err)?;
        out.keys.push(KeyChange::Application { send, recv });

        self.state = match &resumed {
            Some(t) => State::WaitFinished(PeerVerified::from_psk(t.client.map(|fp| {
                super::PeerIdentity {
                    fingerprint: fp,
                    subject: None,
                }
            }))),
            None if wants_client_auth => State::WaitClientCertificate,
            None => State::WaitFinished(PeerVerified::anonymous()),
        };
        self.client_hs = Some(client_hs);
        self.master = Some(master);
        Ok(())
    }

    /// What was negotiated.
    pub fn negotiated(&self) -> Negotiated {
        self.negotiated
    }

    /// The selected suite.
    pub fn suite(&self) -> CipherSuite {
        self.negotiated.suite
    }

    /// Whether the handshake finished.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Processes one complete handshake message from the client.
    pub fn handle(
        &mut self,
        space: Space,
        raw: &[u8],
        out: &mut Output,
    ) -> Result<(), HandshakeError> {
        let r = self.step(space, raw, out);
        if r.is_err() {
            self.state = State::Failed;
        }
        r
    }

    fn step(&mut self, space: Space, raw: &[u8], out: &mut Output) -> Result<(), HandshakeError> {
        if space != Space::Handshake {
            return Err(HandshakeError::UnexpectedMessage(
                "client message outside Handshake",
            ));
        }
        let message = Message::decode(raw).map_err(|_| HandshakeError::Decode("message"))?;
        let p = self.provider.clone();
        let provider = p.as_ref();
        let state = std::mem::replace(&mut self.state, State::Failed);
        self.state = match (state, message) {
            (State::WaitClientCertificate, Message::Certificate(cert)) => {
                let (policy, required) = match &self.config.client_auth {
                    ClientAuth::Required(p) => (p, true),
                    ClientAuth::Optional(p) => (p, false),
                    ClientAuth::None => {
                        return Err(HandshakeError::UnexpectedMessage("unrequested certificate"))
                    }
                };
                self.transcript.update(raw);
                if cert.is_none() {
                    if required {
                        return Err(HandshakeError::CertificateRequired);
                    }
                    State::WaitFinished(PeerVerified::anonymous())
                } else {
                    let key = verifier::verify_presented(
                        provider,
                        policy,
                        cert.kind.code(),
                        cert.data,
                        self.unix_now,
                        None,
                    )?;
                    State::WaitClientCertificateVerify(key)
                }
            }
            (State::WaitClientCertificateVerify(key), Message::CertificateVerify(cv)) => {
                if cv.scheme != msg::SCHEME_ED25519 {
                    return Err(HandshakeError::IllegalParameter("signature scheme"));
                }
                let content = certificate_verify_content(false, &self.transcript.current());
                provider
                    .verify_ed25519(key.key().as_bytes(), &content, cv.signature)
                    .map_err(|_| HandshakeError::BadSignature)?;
                self.transcript.update(raw);
                State::WaitFinished(PeerVerified::from_signature(provider, &key))
            }
            (State::WaitFinished(verified), Message::Finished(fin)) => {
                let client_hs =
                    self.client_hs
                        .as_ref()
                        .ok_or(HandshakeError::UnexpectedMessage(
                            "Finished before the answer",
                        ))?;
                key_schedule::verify_finished(
                    provider,
                    client_hs,
                    &self.transcript.current(),
                    &fin.verify_data,
                )
                .map_err(|_| HandshakeError::FinishedMismatch)?;
                self.transcript.update(raw);
                let resumption_master = match self.master.take() {
                    Some(m) => Some(
                        m.resumption_master(provider, &self.transcript.current())
                            .map_err(crypto_err)?,
                    ),
                    None => None,
                };
                out.complete = Some(Completion {
                    verified,
                    resumed: self.resumed,
                    early_data_accepted: self.early_accepted,
                    resumption_master,
                });
                State::Done
            }
            _ => {
                return Err(HandshakeError::UnexpectedMessage(
                    "out of order for the server",
                ))
            }
        };
        Ok(())
    }
}

/// Checks the attempted version against the client's list and ours (PROTOCOL.md §2, §4.5).
fn check_version(
    config: &ServerConfig,
    ch: &msg::ClientHello<'_>,
    attempted_version: u32,
) -> Result<(), HandshakeError> {
    if !ch.versions.as_slice().contains(&attempted_version) {
        return Err(HandshakeError::IllegalParameter(
            "attempted version not offered",
        ));
    }
    if !config.versions.contains(&attempted_version) {
        return Err(HandshakeError::NoCommonParameters);
    }
    if let Some(prev) = ch.previous_version {
        // The client claims a version negotiation moved it off `prev`: if we support a version it
        // prefers over the attempted one, or `prev` itself, that negotiation was forged.
        let preferred = ch
            .versions
            .as_slice()
            .iter()
            .take_while(|&&v| v != attempted_version)
            .any(|v| config.versions.contains(v));
        if preferred || config.versions.contains(&prev) {
            return Err(HandshakeError::Downgrade);
        }
    }
    Ok(())
}

/// Opens and checks an offered ticket; `None` means "do a full handshake" (PROTOCOL.md §13.2).
#[allow(clippy::too_many_arguments)]
fn try_resume(
    provider: &dyn CryptoProvider,
    config: &ServerConfig,
    resumption: &SharedResumption,
    now: UnixTime,
    offer: &msg::PreSharedKey<'_>,
    raw_client_hello: &[u8],
    attempted_version: u32,
    offered_suites: &[u16],
) -> Option<TicketState> {
    let mut store = resumption.lock().ok()?;
    let state = store
        .open(provider, now, offer.identity, offer.obfuscated_ticket_age)
        .ok()?;
    if state.version != attempted_version || !offered_suites.contains(&state.suite.code()) {
        return None;
    }
    if matches!(config.client_auth, ClientAuth::Required(_)) && state.client.is_none() {
        return None;
    }
    let truncated = msg::truncated_client_hello(raw_client_hello)?;
    KeySchedule::new(provider, Some(&state.psk))
        .verify_psk_binder(provider, &provider.sha256(truncated), &offer.binder)
        .ok()?;
    store
        .mark_used(provider, now, offer.identity, &state)
        .ok()?;
    Some(state)
}
