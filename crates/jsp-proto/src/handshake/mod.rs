//! The JetStreamProto handshake (PROTOCOL.md §7): client and server state machines that turn
//! handshake messages into messages to send, keys to install and, at the end, an authenticated
//! session. Packets, retransmission and CRYPTO framing belong to the connection; this module only
//! sees whole messages and the space they arrived in.

pub mod client;
pub mod retry;
pub mod server;
pub mod ticket;
pub mod verifier;

use crate::crypto::{CipherSuite, CryptoError, Secret};
use crate::error::HandshakeError;
pub use verifier::{PeerIdentity, PeerVerified};

/// Packet number spaces (PROTOCOL.md §4.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Space {
    /// Initial packets.
    Initial = 0,
    /// Handshake packets.
    Handshake = 1,
    /// 0-RTT and 1-RTT packets.
    Data = 2,
}

impl Space {
    /// All spaces in send order.
    pub const ALL: [Space; 3] = [Space::Initial, Space::Handshake, Space::Data];
}

/// Keys the handshake hands to the connection.
pub enum KeyChange {
    /// 0-RTT keys (client: send, server: receive), in the suite of the resumed session.
    ZeroRtt {
        /// client_early_traffic.
        secret: Secret,
        /// The suite of the ticket's session.
        suite: CipherSuite,
    },
    /// Handshake-space keys.
    Handshake {
        /// Secret this side sends with.
        send: Secret,
        /// Secret this side receives with.
        recv: Secret,
    },
    /// First-generation 1-RTT keys.
    Application {
        /// Secret this side sends with.
        send: Secret,
        /// Secret this side receives with.
        recv: Secret,
    },
}

/// What the handshake concluded once complete.
#[derive(Debug)]
pub struct Completion {
    /// Proof of peer authentication.
    pub verified: PeerVerified,
    /// Whether the session was resumed from a ticket.
    pub resumed: bool,
    /// Whether the server accepted 0-RTT data.
    pub early_data_accepted: bool,
    /// The resumption master secret (PROTOCOL.md §6.2), for tickets.
    pub resumption_master: Option<Secret>,
}

/// Everything one handshake step produced.
#[derive(Default)]
pub struct Output {
    /// Messages to append to the CRYPTO stream of a space.
    pub messages: Vec<(Space, Vec<u8>)>,
    /// Keys to install, in order.
    pub keys: Vec<KeyChange>,
    /// The peer's transport parameters (raw), once received.
    pub peer_params: Option<Vec<u8>>,
    /// Set when the handshake completed in this step.
    pub complete: Option<Completion>,
}

impl Output {
    fn send(&mut self, space: Space, msg: Vec<u8>) {
        self.messages.push((space, msg));
    }
}

pub(crate) fn crypto_err(e: CryptoError) -> HandshakeError {
    HandshakeError::Crypto(e.to_string())
}

/// Sends Certificate and CertificateVerify for `id` in the Handshake space, updating the
/// transcript (PROTOCOL.md §7.6, §7.7). `is_server` picks the signature context.
pub(crate) fn send_certificate(
    id: &crate::config::CertifiedIdentity,
    is_server: bool,
    transcript: &mut dyn crate::crypto::HashContext,
    out: &mut Output,
) -> Result<(), HandshakeError> {
    use crate::wire::messages as msg;
    let encode_err = |_| HandshakeError::Crypto("message does not encode".into());
    let (kind, data) = match &id.certificate {
        Some(c) => (msg::CertificateKind::Certificate, c.encode()),
        None => {
            let mut d = vec![verifier::ALG_ED25519];
            d.extend_from_slice(id.identity.public_key().as_bytes());
            (msg::CertificateKind::RawPublicKey, d)
        }
    };
    let mut cert = Vec::with_capacity(data.len() + 8);
    msg::CertificateMsg { kind, data: &data }
        .encode(&mut cert)
        .map_err(encode_err)?;
    transcript.update(&cert);
    out.send(Space::Handshake, cert);
    let content = verifier::certificate_verify_content(is_server, &transcript.current());
    let signature = id.identity.sign(&content).map_err(crypto_err)?;
    let mut cv = Vec::with_capacity(72);
    msg::CertificateVerify {
        scheme: msg::SCHEME_ED25519,
        signature: &signature,
    }
    .encode(&mut cv)
    .map_err(encode_err)?;
    transcript.update(&cv);
    out.send(Space::Handshake, cv);
    Ok(())
}

/// The negotiated parameters, available once the Hello messages were exchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// The protocol version.
    pub version: u32,
    /// The cipher suite.
    pub suite: CipherSuite,
    /// The key-exchange group codepoint (PROTOCOL.md §7.2).
    pub group: u16,
}

/// Human-readable name of a key-exchange group.
pub fn group_name(group: u16) -> &'static str {
    match group {
        crate::crypto::provider::GROUP_X25519_MLKEM768 => "X25519-MLKEM768",
        _ => "unknown",
    }
}
