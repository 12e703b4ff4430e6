//! The crypto provider interface: every primitive the engine uses, behind one trait object.
//!
//! The engine never calls a cryptographic library directly. It holds an
//! `Arc<dyn CryptoProvider>` (in the shape of rustls's `CryptoProvider`) and asks it for AEAD and
//! header-protection keys (PROTOCOL.md §5), SHA-256, HMAC and HKDF (§6.1), the X25519-MLKEM768
//! hybrid key exchange (§7.4), Ed25519 (§11) and random bytes. This module owns the traits, the
//! cipher-suite codepoints, the secret containers ([`Secret`], [`SharedSecret`]) and the error type
//! every provider reports. Implementations: [`super::AwsLcProvider`] (the default) and, for tests
//! and the simulator, `super::deterministic::DeterministicProvider`.

use core::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

/// Length of a SHA-256 output, and so of every secret of the key schedule (PROTOCOL.md §6).
pub const HASH_LEN: usize = 32;
/// Length of an AEAD nonce and of a packet-protection IV (PROTOCOL.md §5.1).
pub const NONCE_LEN: usize = 12;
/// Length of an AEAD authentication tag (PROTOCOL.md §5.1).
pub const TAG_LEN: usize = 16;
/// Length of a header-protection key for both suites (PROTOCOL.md §5.1).
pub const HP_KEY_LEN: usize = 32;
/// Length of a header-protection sample (PROTOCOL.md §5.3).
pub const HP_SAMPLE_LEN: usize = 16;
/// Length of a header-protection mask (PROTOCOL.md §5.3).
pub const HP_MASK_LEN: usize = 5;

/// Key-share group `0x0001`, X25519-MLKEM768: the only group of version 1 (PROTOCOL.md §7.2).
pub const GROUP_X25519_MLKEM768: u16 = 0x0001;
/// Length of an ML-KEM-768 encapsulation key (FIPS 203).
pub const MLKEM768_ENCAPSULATION_KEY_LEN: usize = 1184;
/// Length of an ML-KEM-768 ciphertext (FIPS 203).
pub const MLKEM768_CIPHERTEXT_LEN: usize = 1088;
/// Length of an ML-KEM-768 shared secret (FIPS 203).
pub const MLKEM768_SHARED_SECRET_LEN: usize = 32;
/// Length of an X25519 public key and of an X25519 shared secret (RFC 7748).
pub const X25519_LEN: usize = 32;
/// Length of the client's X25519-MLKEM768 share: encapsulation key || X25519 public key
/// (PROTOCOL.md §7.2).
pub const CLIENT_SHARE_LEN: usize = MLKEM768_ENCAPSULATION_KEY_LEN + X25519_LEN;
/// Length of the server's X25519-MLKEM768 share: ML-KEM ciphertext || X25519 public key
/// (PROTOCOL.md §7.3).
pub const SERVER_SHARE_LEN: usize = MLKEM768_CIPHERTEXT_LEN + X25519_LEN;
/// Length of the hybrid shared secret `ss_mlkem || ss_x25519` (PROTOCOL.md §6.2).
pub const SHARED_SECRET_LEN: usize = MLKEM768_SHARED_SECRET_LEN + X25519_LEN;
/// Length of an Ed25519 public key (PROTOCOL.md §11.1).
pub const ED25519_PUBLIC_KEY_LEN: usize = 32;
/// Length of an Ed25519 seed (the private key, RFC 8032).
pub const ED25519_SEED_LEN: usize = 32;
/// Length of an Ed25519 signature.
pub const ED25519_SIGNATURE_LEN: usize = 64;

/// An error reported by a [`CryptoProvider`] or by the key schedule built on it.
///
/// The variants say whose fault it is: [`CryptoError::DecryptFailed`],
/// [`CryptoError::MalformedKeyShare`], [`CryptoError::ZeroSharedSecret`],
/// [`CryptoError::BadSignature`] and [`CryptoError::VerifyFailed`] are caused by the peer's
/// input; the others are API misuse or a local failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// A key or buffer had the wrong length for the algorithm (API misuse).
    #[error("invalid length for {what}: expected {expected} bytes, got {actual}")]
    InvalidLength {
        /// What had the wrong length.
        what: &'static str,
        /// The length the algorithm needs.
        expected: usize,
        /// The length that was passed.
        actual: usize,
    },
    /// An HKDF input was out of range: an HKDF-Expand-Label label or context longer than 255 bytes,
    /// or an output longer than 255 hash lengths (PROTOCOL.md §6.1) (API misuse).
    #[error("HKDF input out of range: {0}")]
    HkdfOutOfRange(&'static str),
    /// AEAD authentication failed: the packet was forged, corrupted or keyed differently
    /// (PROTOCOL.md §5.5: drop it silently).
    #[error("AEAD authentication failed")]
    DecryptFailed,
    /// The peer's key share has the wrong length or an invalid ML-KEM encapsulation key
    /// (PROTOCOL.md §7.4: `ILLEGAL_PARAMETER`).
    #[error("malformed key share: {0}")]
    MalformedKeyShare(&'static str),
    /// The X25519 shared secret was all zeros: the peer sent a low-order point
    /// (PROTOCOL.md §6.2: `ILLEGAL_PARAMETER`).
    #[error("X25519 shared secret is all zeros")]
    ZeroSharedSecret,
    /// An Ed25519 signature did not verify (PROTOCOL.md §7.7, §11.3: `DECRYPT_ERROR`).
    #[error("signature verification failed")]
    BadSignature,
    /// A Finished `verify_data` or a PSK binder did not match (PROTOCOL.md §6.5, §7.8:
    /// `DECRYPT_ERROR`).
    #[error("Finished or binder verification failed")]
    VerifyFailed,
    /// The random number generator failed (local failure).
    #[error("random number generator failure")]
    Rng,
    /// The cryptographic library reported an unexpected failure (local failure).
    #[error("crypto library failure: {0}")]
    Internal(&'static str),
}

/// A TLS-1.3-style cipher suite (PROTOCOL.md §5.1). Both use SHA-256, a 12-byte IV, a 16-byte
/// tag and a 32-byte header-protection key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CipherSuite {
    /// `0x0001`: AES-256-GCM with AES-256-ECB header protection.
    Aes256Gcm,
    /// `0x0002`: ChaCha20-Poly1305 with ChaCha20 header protection.
    ChaCha20Poly1305,
}

impl CipherSuite {
    /// Every suite of version 1, in this implementation's default preference order.
    pub const ALL: [CipherSuite; 2] = [CipherSuite::Aes256Gcm, CipherSuite::ChaCha20Poly1305];

    /// The suite's codepoint on the wire (PROTOCOL.md §5.1).
    pub const fn code(self) -> u16 {
        match self {
            CipherSuite::Aes256Gcm => 0x0001,
            CipherSuite::ChaCha20Poly1305 => 0x0002,
        }
    }

    /// The suite with codepoint `code`, or `None` for an unknown codepoint.
    pub const fn from_code(code: u16) -> Option<CipherSuite> {
        match code {
            0x0001 => Some(CipherSuite::Aes256Gcm),
            0x0002 => Some(CipherSuite::ChaCha20Poly1305),
            _ => None,
        }
    }

    /// AEAD key length `Nk` in bytes (PROTOCOL.md §5.1, §6.3): 32 for both suites.
    pub const fn key_len(self) -> usize {
        match self {
            CipherSuite::Aes256Gcm | CipherSuite::ChaCha20Poly1305 => 32,
        }
    }

    /// Header-protection key length in bytes (PROTOCOL.md §5.1, §6.3): 32 for both suites.
    pub const fn hp_key_len(self) -> usize {
        HP_KEY_LEN
    }
}

/// A 32-byte secret of the key schedule (PROTOCOL.md §6): zeroized on drop, redacted in Debug.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Secret([u8; HASH_LEN]);

impl Secret {
    /// Wraps raw secret bytes (for example a PSK recovered from a ticket).
    pub const fn from_bytes(bytes: [u8; HASH_LEN]) -> Self {
        Secret(bytes)
    }

    /// The secret bytes. Handle with care: never log them.
    pub const fn as_bytes(&self) -> &[u8; HASH_LEN] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The hybrid shared secret `ss_mlkem (32) || ss_x25519 (32)` (PROTOCOL.md §6.2, §7.4):
/// the IKM of the handshake secret. Zeroized on drop, redacted in Debug.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SharedSecret([u8; SHARED_SECRET_LEN]);

impl SharedSecret {
    /// Builds the hybrid secret from its two halves, in the order of PROTOCOL.md §6.2.
    pub fn from_parts(
        ss_mlkem: &[u8; MLKEM768_SHARED_SECRET_LEN],
        ss_x25519: &[u8; X25519_LEN],
    ) -> Self {
        let mut bytes = [0u8; SHARED_SECRET_LEN];
        bytes[..MLKEM768_SHARED_SECRET_LEN].copy_from_slice(ss_mlkem);
        bytes[MLKEM768_SHARED_SECRET_LEN..].copy_from_slice(ss_x25519);
        SharedSecret(bytes)
    }

    /// Wraps 64 raw bytes (test vectors).
    pub const fn from_bytes(bytes: [u8; SHARED_SECRET_LEN]) -> Self {
        SharedSecret(bytes)
    }

    /// `ss_mlkem || ss_x25519`. Handle with care: never log them.
    pub const fn as_bytes(&self) -> &[u8; SHARED_SECRET_LEN] {
        &self.0
    }
}

impl fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedSecret(<redacted>)")
    }
}

/// A raw AEAD key of one suite with explicit 12-byte nonces and a detached 16-byte tag
/// (PROTOCOL.md §5.2). Packet nonces are computed by [`super::PacketKeys`].
pub trait Aead: Send + Sync {
    /// Encrypts `in_out` in place with associated data `aad` and returns the tag.
    fn seal_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<[u8; TAG_LEN], CryptoError>;

    /// Authenticates and decrypts `ciphertext_and_tag` (ciphertext followed by the 16-byte tag)
    /// in place and returns the plaintext length; the plaintext is the prefix of that length.
    /// Fails with [`CryptoError::DecryptFailed`] if authentication fails or the input is shorter
    /// than a tag.
    fn open_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        ciphertext_and_tag: &mut [u8],
    ) -> Result<usize, CryptoError>;
}

/// A header-protection key (PROTOCOL.md §5.3).
pub trait HeaderProtection: Send + Sync {
    /// The 5-byte mask for a 16-byte sample.
    fn mask(&self, sample: &[u8; HP_SAMPLE_LEN]) -> Result<[u8; HP_MASK_LEN], CryptoError>;
}

/// A running SHA-256 over the handshake transcript (PROTOCOL.md §6.1).
pub trait HashContext: Send {
    /// Appends `data` to the hashed input.
    fn update(&mut self, data: &[u8]);
    /// The hash of everything so far; the context stays usable.
    fn current(&self) -> [u8; HASH_LEN];
    /// An independent copy of this context (e.g. to hash a truncated ClientHello for the PSK
    /// binder, PROTOCOL.md §6.5, while the main transcript goes on).
    fn fork(&self) -> Box<dyn HashContext>;
}

/// The client's half of an X25519-MLKEM768 exchange in progress: holds the ML-KEM decapsulation
/// key and the X25519 private key, erased when it is consumed or dropped (PROTOCOL.md §7.4).
pub trait ClientKeyExchange: Send {
    /// Completes the exchange with the server's share (ML-KEM ciphertext || X25519 public key,
    /// PROTOCOL.md §7.3) and returns `ss_mlkem || ss_x25519`.
    ///
    /// Fails with [`CryptoError::MalformedKeyShare`] for a share of the wrong length and with
    /// [`CryptoError::ZeroSharedSecret`] for an all-zero X25519 result. A tampered ML-KEM
    /// ciphertext does not fail here: ML-KEM's implicit rejection yields an unrelated secret, and
    /// the handshake then fails at the server's Finished.
    fn complete(self: Box<Self>, server_share: &[u8]) -> Result<SharedSecret, CryptoError>;
}

/// The server's half of an X25519-MLKEM768 exchange whose share is already computed: holds the
/// ML-KEM shared secret and the X25519 private key, erased when consumed or dropped
/// (PROTOCOL.md §7.4). Completing it is the X25519 agreement, the larger part of the server's
/// key-exchange cost, which the server can thus run after its ServerHello has left.
pub trait ServerKeyExchange: Send {
    /// Completes the exchange and returns `ss_mlkem || ss_x25519`; fails with
    /// [`CryptoError::ZeroSharedSecret`] for an all-zero X25519 result.
    fn complete(self: Box<Self>) -> Result<SharedSecret, CryptoError>;
}

/// A server exchange completed when its share was computed (providers that do not split it).
pub struct CompletedServerKeyExchange(pub SharedSecret);

impl ServerKeyExchange for CompletedServerKeyExchange {
    fn complete(self: Box<Self>) -> Result<SharedSecret, CryptoError> {
        Ok(self.0)
    }
}

/// An Ed25519 signing key (PROTOCOL.md §11.1).
pub trait SigningKey: Send + Sync {
    /// The 32-byte Ed25519 public key.
    fn public_key(&self) -> [u8; ED25519_PUBLIC_KEY_LEN];
    /// Signs `msg` (pure Ed25519, RFC 8032).
    fn sign(&self, msg: &[u8]) -> Result<[u8; ED25519_SIGNATURE_LEN], CryptoError>;
}

/// Every cryptographic primitive the engine uses (PROTOCOL.md §5, §6, §7.4, §11).
///
/// Used as `Arc<dyn CryptoProvider>`. Implementations must be exact: two providers given the
/// same inputs (and, for the key exchange, the same randomness) produce the same bytes.
pub trait CryptoProvider: Send + Sync + fmt::Debug {
    /// A packet-protection AEAD key of `suite` (PROTOCOL.md §5.1); `key` must be
    /// `suite.key_len()` bytes.
    fn aead(&self, suite: CipherSuite, key: &[u8]) -> Result<Box<dyn Aead>, CryptoError>;

    /// A header-protection key of `suite` (PROTOCOL.md §5.3); `hp_key` must be 32 bytes.
    fn header_protection(
        &self,
        suite: CipherSuite,
        hp_key: &[u8],
    ) -> Result<Box<dyn HeaderProtection>, CryptoError>;

    /// A fresh SHA-256 context for a transcript hash (PROTOCOL.md §6.1).
    fn hash(&self) -> Box<dyn HashContext>;

    /// SHA-256 of `data`.
    fn sha256(&self, data: &[u8]) -> [u8; HASH_LEN];

    /// HMAC-SHA256 of `data` under `key`.
    fn hmac_sha256(&self, key: &[u8], data: &[u8]) -> [u8; HASH_LEN];

    /// HKDF-Extract with SHA-256 (RFC 5869 §2.2): `HMAC-SHA256(salt, ikm)`.
    fn hkdf_extract(&self, salt: &[u8], ikm: &[u8]) -> Secret;

    /// HKDF-Expand with SHA-256 (RFC 5869 §2.3) of `prk` and `info`, filling `out`
    /// (at most 255 x 32 bytes).
    fn hkdf_expand(&self, prk: &Secret, info: &[u8], out: &mut [u8]) -> Result<(), CryptoError>;

    /// Starts an X25519-MLKEM768 exchange as the client (PROTOCOL.md §7.4): returns the client
    /// share (ML-KEM-768 encapsulation key (1184) || X25519 public key (32) = 1216 bytes) and the
    /// private state that completes it.
    fn client_key_share(&self) -> Result<(Vec<u8>, Box<dyn ClientKeyExchange>), CryptoError>;

    /// Runs the server side of X25519-MLKEM768 (PROTOCOL.md §7.4): encapsulates to the client's
    /// key and computes X25519 with a fresh key pair. Returns the server share (ML-KEM ciphertext
    /// (1088) || X25519 public key (32) = 1120 bytes) and `ss_mlkem || ss_x25519`.
    ///
    /// Fails with [`CryptoError::MalformedKeyShare`] for a share of the wrong length or an
    /// encapsulation key that fails the FIPS 203 §7.2 modulus check, and with
    /// [`CryptoError::ZeroSharedSecret`] for an all-zero X25519 result.
    fn server_key_exchange(
        &self,
        client_share: &[u8],
    ) -> Result<(Vec<u8>, SharedSecret), CryptoError> {
        let (share, exchange) = self.server_key_share(client_share)?;
        Ok((share, exchange.complete()?))
    }

    /// [`CryptoProvider::server_key_exchange`] in two steps: the server share (encapsulation and
    /// X25519 key generation: what the ServerHello needs) now, the shared secret when the
    /// returned state is completed. The same checks apply; an all-zero X25519 result may be
    /// reported by either step.
    fn server_key_share(
        &self,
        client_share: &[u8],
    ) -> Result<(Vec<u8>, Box<dyn ServerKeyExchange>), CryptoError>;

    /// An Ed25519 signing key from its 32-byte seed (RFC 8032 private key).
    fn signing_key(
        &self,
        ed25519_seed: &[u8; ED25519_SEED_LEN],
    ) -> Result<Box<dyn SigningKey>, CryptoError>;

    /// Verifies an Ed25519 signature; [`CryptoError::BadSignature`] if it does not verify
    /// (including a signature of the wrong length or an invalid public key).
    fn verify_ed25519(
        &self,
        public_key: &[u8; ED25519_PUBLIC_KEY_LEN],
        msg: &[u8],
        sig: &[u8],
    ) -> Result<(), CryptoError>;

    /// Fills `buf` with random bytes (connection IDs, randoms, tokens, key seeds).
    fn fill_random(&self, buf: &mut [u8]) -> Result<(), CryptoError>;
}
