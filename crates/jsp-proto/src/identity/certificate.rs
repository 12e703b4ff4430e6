//! The version-1 certificate of PROTOCOL.md §11.2: encoding, decoding, issuing and verifying.
//!
//! This module owns the certificate bytes and the checks that need only the certificate, an
//! authority key, the time and an expected subject (§11.3 (b)). Choosing which authorities to
//! trust, pin matching (§11.3 (a)) and mapping errors to alerts belong to the handshake; each
//! [`CertificateError`] variant documents the alert §11.3 assigns it. Decoding is strict and
//! canonical: every byte string decodes to at most one certificate, which encodes back to the same
//! bytes, and arbitrary input never panics.

use crate::crypto::provider::{CryptoError, CryptoProvider, ED25519_PUBLIC_KEY_LEN};
use crate::crypto::provider::{ED25519_SIGNATURE_LEN, HASH_LEN};
use crate::time::UnixTime;

use super::{Fingerprint, Identity, PublicKey, KEY_ALGORITHM_ED25519};

/// `format = 1`: the only certificate format of version 1 (PROTOCOL.md §11.2).
pub const CERTIFICATE_FORMAT_V1: u8 = 1;
/// Signature algorithm 1, Ed25519 (PROTOCOL.md §11.2).
pub const SIGNATURE_ALGORITHM_ED25519: u8 = 1;
/// The context string that prefixes (with a 0x00 separator) the signed bytes of a certificate
/// (PROTOCOL.md §11.2).
pub const CERTIFICATE_SIGNATURE_CONTEXT: &[u8] = b"JetStreamProto v1 certificate";
/// Longest subject, in bytes of UTF-8 (PROTOCOL.md §11.2).
pub const MAX_SUBJECT_LEN: usize = 255;

/// Bytes of a certificate other than the subject: format, subject length, key algorithm, key,
/// validity, issuer, signature algorithm and signature.
const FIXED_LEN: usize =
    1 + 1 + 1 + ED25519_PUBLIC_KEY_LEN + 8 + 8 + HASH_LEN + 1 + ED25519_SIGNATURE_LEN;

/// Why certificate bytes are malformed (PROTOCOL.md §11.3: `BAD_CERTIFICATE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MalformedCertificate {
    /// The input ended before the certificate did.
    Truncated,
    /// Bytes follow the signature.
    TrailingBytes,
    /// The format byte is not 1.
    UnknownFormat(u8),
    /// The subject is empty (or, when issuing, longer than 255 bytes).
    SubjectLength,
    /// The subject is not UTF-8.
    SubjectNotUtf8,
    /// The key algorithm is not 1 (Ed25519).
    UnknownKeyAlgorithm(u8),
    /// The signature algorithm is not 1 (Ed25519).
    UnknownSignatureAlgorithm(u8),
    /// `not_before` is after `not_after`: the certificate can never be valid.
    InvertedValidity,
}

impl core::fmt::Display for MalformedCertificate {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MalformedCertificate::Truncated => f.write_str("truncated"),
            MalformedCertificate::TrailingBytes => {
                f.write_str("trailing bytes after the signature")
            }
            MalformedCertificate::UnknownFormat(v) => write!(f, "unknown format {v}"),
            MalformedCertificate::SubjectLength => f.write_str("subject must be 1..=255 bytes"),
            MalformedCertificate::SubjectNotUtf8 => f.write_str("subject is not UTF-8"),
            MalformedCertificate::UnknownKeyAlgorithm(v) => write!(f, "unknown key algorithm {v}"),
            MalformedCertificate::UnknownSignatureAlgorithm(v) => {
                write!(f, "unknown signature algorithm {v}")
            }
            MalformedCertificate::InvertedValidity => f.write_str("not_before is after not_after"),
        }
    }
}

/// A certificate failed to decode, issue or verify (PROTOCOL.md §11.2, §11.3).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateError {
    /// The bytes are not a well-formed version-1 certificate (`BAD_CERTIFICATE`).
    #[error("malformed certificate: {0}")]
    Malformed(MalformedCertificate),
    /// The issuer fingerprint does not name the given authority (`UNKNOWN_CA`).
    #[error("certificate issued by an unknown authority")]
    UnknownIssuer,
    /// The authority's signature does not verify (`DECRYPT_ERROR`).
    #[error("certificate signature does not verify")]
    BadSignature,
    /// The current time is after `not_after` (`CERTIFICATE_EXPIRED`).
    #[error("certificate expired")]
    Expired,
    /// The current time is before `not_before` (`CERTIFICATE_EXPIRED`).
    #[error("certificate not yet valid")]
    NotYetValid,
    /// The subject differs from the expected server name (`BAD_CERTIFICATE`).
    #[error("certificate subject does not match the expected name")]
    SubjectMismatch,
    /// Signing failed while issuing (local failure).
    #[error("crypto failure while issuing a certificate: {0}")]
    Crypto(#[from] CryptoError),
}

/// A version-1 certificate (PROTOCOL.md §11.2): an authority's signature binding a subject name
/// to an Ed25519 key for a validity window.
///
/// Only [`Certificate::issue`] and [`Certificate::decode`] build one, so every value is
/// well-formed and [`Certificate::encode`] cannot fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    subject: String,
    public_key: PublicKey,
    not_before: UnixTime,
    not_after: UnixTime,
    issuer: Fingerprint,
    signature: [u8; ED25519_SIGNATURE_LEN],
}

impl Certificate {
    /// Issues a certificate for `subject_key` under `subject`, valid from `not_before` to
    /// `not_after` inclusive, signed by `authority` (PROTOCOL.md §11.2).
    ///
    /// Fails with [`CertificateError::Malformed`] if the subject is empty or longer than 255
    /// bytes or the window is inverted.
    pub fn issue(
        authority: &Identity,
        subject: &str,
        subject_key: &PublicKey,
        not_before: UnixTime,
        not_after: UnixTime,
    ) -> Result<Self, CertificateError> {
        let mut cert = Certificate::from_parts(
            subject.to_owned(),
            *subject_key,
            not_before,
            not_after,
            authority.fingerprint(),
            [0u8; ED25519_SIGNATURE_LEN],
        )?;
        cert.signature = authority.sign(&cert.signed_message())?;
        Ok(cert)
    }

    /// Builds a certificate from its fields, checking everything but the signature.
    fn from_parts(
        subject: String,
        public_key: PublicKey,
        not_before: UnixTime,
        not_after: UnixTime,
        issuer: Fingerprint,
        signature: [u8; ED25519_SIGNATURE_LEN],
    ) -> Result<Self, CertificateError> {
        if subject.is_empty() || subject.len() > MAX_SUBJECT_LEN {
            return Err(CertificateError::Malformed(
                MalformedCertificate::SubjectLength,
            ));
        }
        if not_before > not_after {
            return Err(CertificateError::Malformed(
                MalformedCertificate::InvertedValidity,
            ));
        }
        Ok(Certificate {
            subject,
            public_key,
            not_before,
            not_after,
            issuer,
            signature,
        })
    }

    /// Decodes a certificate (PROTOCOL.md §11.2). Rejects truncated input, trailing bytes, an
    /// empty or non-UTF-8 subject, unknown format or algorithms and an inverted validity window
    /// with [`CertificateError::Malformed`]. Does not verify the signature.
    pub fn decode(bytes: &[u8]) -> Result<Self, CertificateError> {
        let malformed = CertificateError::Malformed;
        let mut r = Reader { rest: bytes };

        let format = r.u8()?;
        if format != CERTIFICATE_FORMAT_V1 {
            return Err(malformed(MalformedCertificate::UnknownFormat(format)));
        }
        let subject_len = usize::from(r.u8()?);
        if subject_len == 0 {
            return Err(malformed(MalformedCertificate::SubjectLength));
        }
        let subject = core::str::from_utf8(r.take(subject_len)?)
            .map_err(|_| malformed(MalformedCertificate::SubjectNotUtf8))?
            .to_owned();
        let key_algorithm = r.u8()?;
        if key_algorithm != KEY_ALGORITHM_ED25519 {
            return Err(malformed(MalformedCertificate::UnknownKeyAlgorithm(
                key_algorithm,
            )));
        }
        let public_key = PublicKey::from_bytes(r.array()?);
        let not_before = UnixTime(u64::from_be_bytes(r.array()?));
        let not_after = UnixTime(u64::from_be_bytes(r.array()?));
        let issuer = Fingerprint::from_bytes(r.array()?);
        let signature_algorithm = r.u8()?;
        if signature_algorithm != SIGNATURE_ALGORITHM_ED25519 {
            return Err(malformed(MalformedCertificate::UnknownSignatureAlgorithm(
                signature_algorithm,
            )));
        }
        let signature = r.array()?;
        if !r.rest.is_empty() {
            return Err(malformed(MalformedCertificate::TrailingBytes));
        }
        Certificate::from_parts(
            subject, public_key, not_before, not_after, issuer, signature,
        )
    }

    /// The certificate's bytes (PROTOCOL.md §11.2).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.to_be_signed();
        out.extend_from_slice(&self.signature);
        out
    }

    /// Length of [`Certificate::encode`]'s output.
    pub fn encoded_len(&self) -> usize {
        FIXED_LEN + self.subject.len()
    }

    /// Every byte before the signature, through the signature algorithm.
    fn to_be_signed(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        out.push(CERTIFICATE_FORMAT_V1);
        // from_parts guarantees 1..=255 bytes; the fallback is unreachable.
        out.push(u8::try_from(self.subject.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(self.subject.as_bytes());
        out.push(KEY_ALGORITHM_ED25519);
        out.extend_from_slice(self.public_key.as_bytes());
        out.extend_from_slice(&self.not_before.0.to_be_bytes());
        out.extend_from_slice(&self.not_after.0.to_be_bytes());
        out.extend_from_slice(self.issuer.as_bytes());
        out.push(SIGNATURE_ALGORITHM_ED25519);
        out
    }

    /// The message the authority signs: `"JetStreamProto v1 certificate" || 0x00 || every byte
    /// of the certificate before the signature` (PROTOCOL.md §11.2).
    pub fn signed_message(&self) -> Vec<u8> {
        let tbs = self.to_be_signed();
        let mut msg = Vec::with_capacity(CERTIFICATE_SIGNATURE_CONTEXT.len() + 1 + tbs.len());
        msg.extend_from_slice(CERTIFICATE_SIGNATURE_CONTEXT);
        msg.push(0x00);
        msg.extend_from_slice(&tbs);
        msg
    }

    /// Verifies the certificate against one authority (PROTOCOL.md §11.3 (b)), in this order:
    /// the issuer fingerprint names `authority` ([`CertificateError::UnknownIssuer`]), the
    /// signature verifies under it ([`CertificateError::BadSignature`]), `now` is within
    /// `not_before..=not_after` ([`CertificateError::NotYetValid`],
    /// [`CertificateError::Expired`]), and, if given, the subject equals `expected_subject`
    /// byte for byte ([`CertificateError::SubjectMismatch`]).
    pub fn verify(
        &self,
        authority: &PublicKey,
        now: UnixTime,
        expected_subject: Option<&str>,
        provider: &dyn CryptoProvider,
    ) -> Result<(), CertificateError> {
        if authority.fingerprint(provider) != self.issuer {
            return Err(CertificateError::UnknownIssuer);
        }
        authority
            .verify(provider, &self.signed_message(), &self.signature)
            .map_err(|_| CertificateError::BadSignature)?;
        if now < self.not_before {
            return Err(CertificateError::NotYetValid);
        }
        if now > self.not_after {
            return Err(CertificateError::Expired);
        }
        match expected_subject {
            Some(expected) if expected != self.subject => Err(CertificateError::SubjectMismatch),
            _ => Ok(()),
        }
    }

    /// The subject name (UTF-8, 1..=255 bytes).
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The certified Ed25519 key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    /// Start of validity, inclusive.
    pub fn not_before(&self) -> UnixTime {
        self.not_before
    }

    /// End of validity, inclusive.
    pub fn not_after(&self) -> UnixTime {
        self.not_after
    }

    /// Fingerprint of the authority that signed the certificate.
    pub fn issuer_fingerprint(&self) -> &Fingerprint {
        &self.issuer
    }

    /// The authority's Ed25519 signature.
    pub fn signature(&self) -> &[u8; ED25519_SIGNATURE_LEN] {
        &self.signature
    }
}

/// A bounds-checked reader over untrusted bytes.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CertificateError> {
        if self.rest.len() < n {
            return Err(CertificateError::Malformed(MalformedCertificate::Truncated));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, CertificateError> {
        Ok(self.array::<1>()?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CertificateError> {
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }
}

#[cfg(test)]
pub(super) fn certificate_from_parts_for_tests(
    subject: String,
    public_key: PublicKey,
    not_before: UnixTime,
    not_after: UnixTime,
    issuer: Fingerprint,
    signature: [u8; ED25519_SIGNATURE_LEN],
) -> Result<Certificate, CertificateError> {
    Certificate::from_parts(
        subject, public_key, not_before, not_after, issuer, signature,
    )
}
