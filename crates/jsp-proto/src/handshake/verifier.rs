//! Peer authentication (PROTOCOL.md §11.3, §11.4): decides whether a presented key or certificate
//! is trusted, and returns a proof value that only this module can create, so the handshake
//! cannot reach its established state without having checked the peer.

use crate::config::TrustPolicy;
use crate::crypto::CryptoProvider;
use crate::error::HandshakeError;
use crate::identity::{Certificate, CertificateError, Fingerprint, PublicKey};
use crate::time::UnixTime;

/// Certificate kinds in the Certificate message (PROTOCOL.md §7.6).
pub const KIND_RAW_KEY: u8 = 0;
/// A certificate (PROTOCOL.md §11.2).
pub const KIND_CERTIFICATE: u8 = 1;
/// Ed25519, the only key algorithm of version 1.
pub const ALG_ED25519: u8 = 1;

/// A key the peer presented and that the trust policy accepted. Only [`verify_presented`] makes
/// one; the handshake needs it to check CertificateVerify.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    key: PublicKey,
    subject: Option<String>,
}

impl TrustedKey {
    /// The trusted public key.
    pub fn key(&self) -> &PublicKey {
        &self.key
    }
    /// The certificate subject, when the peer presented a certificate.
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }
}

/// Proof that the peer's CertificateVerify was checked under a trusted key (or that a PSK
/// authenticated it). The established state can only be built from one.
#[derive(Debug, Clone)]
pub struct PeerVerified {
    /// The peer's authenticated identity; `None` for an anonymous client or a resumed session
    /// whose original identity is unknown.
    pub identity: Option<PeerIdentity>,
}

/// The identity of an authenticated peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// Fingerprint of the peer's key.
    pub fingerprint: Fingerprint,
    /// Certificate subject, if it presented a certificate.
    pub subject: Option<String>,
}

impl PeerVerified {
    pub(crate) fn from_signature(provider: &dyn CryptoProvider, key: &TrustedKey) -> Self {
        Self {
            identity: Some(PeerIdentity {
                fingerprint: key.key.fingerprint(provider),
                subject: key.subject.clone(),
            }),
        }
    }

    pub(crate) fn from_psk(identity: Option<PeerIdentity>) -> Self {
        Self { identity }
    }

    pub(crate) fn anonymous() -> Self {
        Self { identity: None }
    }
}

/// Checks a Certificate message body (`kind`, `data`) against `policy`.
pub fn verify_presented(
    provider: &dyn CryptoProvider,
    policy: &TrustPolicy,
    kind: u8,
    data: &[u8],
    now: UnixTime,
    expected_subject: Option<&str>,
) -> Result<TrustedKey, HandshakeError> {
    match kind {
        KIND_RAW_KEY => {
            let [alg, rest @ ..] = data else {
                return Err(HandshakeError::BadCertificate);
            };
            if *alg != ALG_ED25519 {
                return Err(HandshakeError::BadCertificate);
            }
            let bytes: [u8; 32] = rest
                .try_into()
                .map_err(|_| HandshakeError::BadCertificate)?;
            let key = PublicKey::from_bytes(bytes);
            let fp = key.fingerprint(provider);
            if policy.pinned.contains(&fp) {
                Ok(TrustedKey { key, subject: None })
            } else {
                Err(HandshakeError::UntrustedPeer {
                    fingerprint: fp.to_string(),
                })
            }
        }
        KIND_CERTIFICATE => {
            let cert = Certificate::decode(data).map_err(|_| HandshakeError::BadCertificate)?;
            let key = *cert.public_key();
            if policy.pinned.contains(&key.fingerprint(provider)) {
                return Ok(TrustedKey {
                    subject: Some(cert.subject().to_string()),
                    key,
                });
            }
            let issuer = policy
                .authorities
                .iter()
                .find(|a| a.fingerprint(provider) == *cert.issuer_fingerprint())
                .ok_or_else(|| HandshakeError::UntrustedPeer {
                    fingerprint: key.fingerprint(provider).to_string(),
                })?;
            cert.verify(issuer, now, expected_subject, provider)
                .map_err(|e| match e {
                    CertificateError::Expired | CertificateError::NotYetValid => {
                        HandshakeError::CertificateExpired
                    }
                    CertificateError::SubjectMismatch => HandshakeError::SubjectMismatch,
                    CertificateError::BadSignature => HandshakeError::BadSignature,
                    CertificateError::UnknownIssuer => HandshakeError::UntrustedPeer {
                        fingerprint: key.fingerprint(provider).to_string(),
                    },
                    _ => HandshakeError::BadCertificate,
                })?;
            Ok(TrustedKey {
                subject: Some(cert.subject().to_string()),
                key,
            })
        }
        _ => Err(HandshakeError::BadCertificate),
    }
}

/// The signed content of CertificateVerify (PROTOCOL.md §7.7).
pub fn certificate_verify_content(is_server: bool, transcript_hash: &[u8; 32]) -> Vec<u8> {
    let context: &[u8] = if is_server {
        b"JetStreamProto v1, server CertificateVerify"
    } else {
        b"JetStreamProto v1, client CertificateVerify"
    };
    let mut v = Vec::with_capacity(64 + context.len() + 1 + 32);
    v.extend_from_slice(&[0x20; 64]);
    v.extend_from_slice(context);
    v.push(0);
    v.extend_from_slice(transcript_hash);
    v
}
