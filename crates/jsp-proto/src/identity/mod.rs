//! Identities: Ed25519 keys, fingerprints and the JetStreamProto certificate format.
//!
//! This module owns the long-term keys of PROTOCOL.md §11: an [`Identity`] (an Ed25519 key pair
//! kept as its 32-byte seed, zeroized on drop), its [`PublicKey`], the [`Fingerprint`] that pins it
//! (§11.1, written `SHA256:` + 64 hex digits) and the version-1 [`Certificate`] an authority issues
//! for it (§11.2). It provides the building blocks of peer verification (§11.3, §11.4); the policy
//! (pins, trusted authorities, which alert to send) belongs to the handshake. Every signature and
//! hash goes through the [`CryptoProvider`].

mod certificate;

pub use certificate::{
    Certificate, CertificateError, MalformedCertificate, CERTIFICATE_FORMAT_V1,
    CERTIFICATE_SIGNATURE_CONTEXT, MAX_SUBJECT_LEN, SIGNATURE_ALGORITHM_ED25519,
};

use core::fmt;
use core::str::FromStr;

use zeroize::Zeroizing;

use crate::crypto::provider::{
    CryptoError, CryptoProvider, SigningKey, ED25519_PUBLIC_KEY_LEN, ED25519_SEED_LEN,
    ED25519_SIGNATURE_LEN, HASH_LEN,
};

/// Key algorithm 1, Ed25519: the only key algorithm of version 1 (PROTOCOL.md §11.1).
pub const KEY_ALGORITHM_ED25519: u8 = 1;

/// An Ed25519 public key (PROTOCOL.md §11.1, algorithm 1).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; ED25519_PUBLIC_KEY_LEN]);

impl PublicKey {
    /// Wraps the 32 bytes of an Ed25519 public key. Any 32 bytes are accepted here; a key that is
    /// not a valid curve point simply never verifies a signature.
    pub const fn from_bytes(bytes: [u8; ED25519_PUBLIC_KEY_LEN]) -> Self {
        PublicKey(bytes)
    }

    /// The key bytes.
    pub const fn as_bytes(&self) -> &[u8; ED25519_PUBLIC_KEY_LEN] {
        &self.0
    }

    /// The key's fingerprint, `SHA-256(0x01 || public key)` (PROTOCOL.md §11.1).
    pub fn fingerprint(&self, provider: &dyn CryptoProvider) -> Fingerprint {
        Fingerprint::of(provider, self)
    }

    /// Verifies an Ed25519 signature by this key ([`CryptoError::BadSignature`] otherwise).
    pub fn verify(
        &self,
        provider: &dyn CryptoProvider,
        msg: &[u8],
        signature: &[u8],
    ) -> Result<(), CryptoError> {
        provider.verify_ed25519(&self.0, msg, signature)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PublicKey(")?;
        write_hex(f, &self.0)?;
        f.write_str(")")
    }
}

/// The fingerprint of a public key, `SHA-256(u8 algorithm || public key)` (PROTOCOL.md §11.1).
///
/// Displayed and parsed as `SHA256:` followed by 64 hex digits (lowercase when displayed;
/// parsing also accepts uppercase digits).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; HASH_LEN]);

impl Fingerprint {
    /// The textual prefix of a fingerprint.
    pub const PREFIX: &'static str = "SHA256:";

    /// The fingerprint of an Ed25519 public key (PROTOCOL.md §11.1).
    pub fn of(provider: &dyn CryptoProvider, key: &PublicKey) -> Self {
        let mut input = [0u8; 1 + ED25519_PUBLIC_KEY_LEN];
        input[0] = KEY_ALGORITHM_ED25519;
        input[1..].copy_from_slice(key.as_bytes());
        Fingerprint(provider.sha256(&input))
    }

    /// Wraps 32 raw fingerprint bytes (as carried in a certificate's issuer field).
    pub const fn from_bytes(bytes: [u8; HASH_LEN]) -> Self {
        Fingerprint(bytes)
    }

    /// The raw fingerprint bytes.
    pub const fn as_bytes(&self) -> &[u8; HASH_LEN] {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Self::PREFIX)?;
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a string is not a fingerprint (see [`Fingerprint`]'s `FromStr`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FingerprintParseError {
    /// The string does not start with `SHA256:`.
    #[error("fingerprint must start with \"SHA256:\"")]
    MissingPrefix,
    /// The part after the prefix is not 64 characters long.
    #[error("fingerprint must have 64 hex digits after \"SHA256:\", found {found} characters")]
    WrongLength {
        /// The number of characters after the prefix.
        found: usize,
    },
    /// A character after the prefix is not a hex digit.
    #[error("fingerprint has a non-hex character at position {position} after \"SHA256:\"")]
    InvalidDigit {
        /// Zero-based position of the offending character after the prefix.
        position: usize,
    },
}

impl FromStr for Fingerprint {
    type Err = FingerprintParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s
            .strip_prefix(Self::PREFIX)
            .ok_or(FingerprintParseError::MissingPrefix)?;
        let found = hex.chars().count();
        if found != 2 * HASH_LEN {
            return Err(FingerprintParseError::WrongLength { found });
        }
        // 64 characters that are all ASCII hex digits are exactly 64 bytes.
        let digits = hex.as_bytes();
        let mut out = [0u8; HASH_LEN];
        for (i, byte) in out.iter_mut().enumerate() {
            let hi = hex_value(digits, 2 * i)?;
            let lo = hex_value(digits, 2 * i + 1)?;
            *byte = (hi << 4) | lo;
        }
        Ok(Fingerprint(out))
    }
}

fn hex_value(digits: &[u8], position: usize) -> Result<u8, FingerprintParseError> {
    match digits.get(position) {
        Some(c @ b'0'..=b'9') => Ok(c - b'0'),
        Some(c @ b'a'..=b'f') => Ok(c - b'a' + 10),
        Some(c @ b'A'..=b'F') => Ok(c - b'A' + 10),
        _ => Err(FingerprintParseError::InvalidDigit { position }),
    }
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
}

/// A long-term Ed25519 identity (PROTOCOL.md §11.1): a server's (or authenticated client's) key
/// pair, or a certificate authority's.
///
/// Kept as its 32-byte seed (the RFC 8032 private key), zeroized on drop and never printed.
pub struct Identity {
    seed: Zeroizing<[u8; ED25519_SEED_LEN]>,
    signer: Box<dyn SigningKey>,
    public_key: PublicKey,
    fingerprint: Fingerprint,
}

impl Identity {
    /// A fresh identity from the provider's random number generator.
    pub fn generate(provider: &dyn CryptoProvider) -> Result<Self, CryptoError> {
        let mut seed = Zeroizing::new([0u8; ED25519_SEED_LEN]);
        provider.fill_random(seed.as_mut_slice())?;
        Self::from_seed(provider, &seed)
    }

    /// The identity with this seed (e.g. loaded from a key file).
    pub fn from_seed(
        provider: &dyn CryptoProvider,
        seed: &[u8; ED25519_SEED_LEN],
    ) -> Result<Self, CryptoError> {
        let signer = provider.signing_key(seed)?;
        let public_key = PublicKey::from_bytes(signer.public_key());
        Ok(Identity {
            seed: Zeroizing::new(*seed),
            signer,
            public_key,
            fingerprint: Fingerprint::of(provider, &public_key),
        })
    }

    /// The secret seed, to persist the identity. Handle with care: never log it.
    pub fn seed(&self) -> &[u8; ED25519_SEED_LEN] {
        &self.seed
    }

    /// The public key.
    pub fn public_key(&self) -> PublicKey {
        self.public_key
    }

    /// The fingerprint of the public key (PROTOCOL.md §11.1).
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// Signs `msg` with Ed25519 (used for CertificateVerify, PROTOCOL.md §7.7, and certificates,
    /// §11.2).
    pub fn sign(&self, msg: &[u8]) -> Result<[u8; ED25519_SIGNATURE_LEN], CryptoError> {
        self.signer.sign(msg)
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
