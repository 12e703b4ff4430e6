//! The default crypto provider, on aws-lc-rs: every primitive of [`CryptoProvider`].
//!
//! This module owns [`AwsLcProvider`] and the small aws-lc-rs adapters behind it (AEAD, header
//! protection, SHA-256 contexts, the X25519-MLKEM768 client state, Ed25519 keys). It implements no
//! primitive itself: AES-256-GCM and ChaCha20-Poly1305 (PROTOCOL.md §5.2), the QUIC-style header
//! protection masks (§5.3), SHA-256/HMAC/HKDF (§6.1), ML-KEM-768 and X25519 (§7.4) and Ed25519
//! (§11) all come from aws-lc-rs. The X25519 and share-splitting helpers are shared with the
//! deterministic test provider so that both validate peer input identically.

use std::sync::Arc;

use aws_lc_rs::aead::{self, quic};
use aws_lc_rs::{agreement, digest, hkdf, hmac, kem, rand, signature};
use zeroize::Zeroizing;

use super::provider::{
    Aead, CipherSuite, ClientKeyExchange, CryptoError, CryptoProvider, HashContext,
    HeaderProtection, Secret, ServerKeyExchange, SharedSecret, SigningKey, CLIENT_SHARE_LEN,
    ED25519_PUBLIC_KEY_LEN, ED25519_SEED_LEN, ED25519_SIGNATURE_LEN, HASH_LEN, HP_MASK_LEN,
    HP_SAMPLE_LEN, MLKEM768_CIPHERTEXT_LEN, MLKEM768_ENCAPSULATION_KEY_LEN,
    MLKEM768_SHARED_SECRET_LEN, NONCE_LEN, SERVER_SHARE_LEN, TAG_LEN, X25519_LEN,
};

/// The default [`CryptoProvider`]: aws-lc-rs for every primitive, the operating system's RNG
/// (through aws-lc) for randomness.
#[derive(Debug, Default, Clone, Copy)]
pub struct AwsLcProvider;

/// The default provider as the engine holds it.
pub fn default_provider() -> Arc<dyn CryptoProvider> {
    Arc::new(AwsLcProvider)
}

struct AwsLcAead {
    key: aead::LessSafeKey,
}

impl Aead for AwsLcAead {
    fn seal_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<[u8; TAG_LEN], CryptoError> {
        let nonce = aead::Nonce::assume_unique_for_key(*nonce);
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce, aead::Aad::from(aad), in_out)
            .map_err(|_| CryptoError::Internal("AEAD seal"))?;
        <[u8; TAG_LEN]>::try_from(tag.as_ref())
            .map_err(|_| CryptoError::Internal("AEAD tag length"))
    }

    fn open_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        ciphertext_and_tag: &mut [u8],
    ) -> Result<usize, CryptoError> {
        if ciphertext_and_tag.len() < TAG_LEN {
            return Err(CryptoError::DecryptFailed);
        }
        let nonce = aead::Nonce::assume_unique_for_key(*nonce);
        let plaintext = self
            .key
            .open_in_place(nonce, aead::Aad::from(aad), ciphertext_and_tag)
            .map_err(|_| CryptoError::DecryptFailed)?;
        Ok(plaintext.len())
    }
}

struct AwsLcHeaderProtection {
    key: quic::HeaderProtectionKey,
}

impl HeaderProtection for AwsLcHeaderProtection {
    fn mask(&self, sample: &[u8; HP_SAMPLE_LEN]) -> Result<[u8; HP_MASK_LEN], CryptoError> {
        self.key
            .new_mask(sample)
            .map_err(|_| CryptoError::Internal("header protection mask"))
    }
}

struct Sha256Context {
    ctx: digest::Context,
}

impl HashContext for Sha256Context {
    fn update(&mut self, data: &[u8]) {
        self.ctx.update(data);
    }

    fn current(&self) -> [u8; HASH_LEN] {
        digest_to_array(&self.ctx.clone().finish())
    }

    fn fork(&self) -> Box<dyn HashContext> {
        Box::new(Sha256Context {
            ctx: self.ctx.clone(),
        })
    }
}

fn digest_to_array(d: &digest::Digest) -> [u8; HASH_LEN] {
    let mut out = [0u8; HASH_LEN];
    // SHA-256 always yields HASH_LEN bytes; copy defensively without panicking.
    for (o, b) in out.iter_mut().zip(d.as_ref()) {
        *o = *b;
    }
    out
}

/// Output length for aws-lc-rs's HKDF-Expand.
struct OkmLen(usize);

impl hkdf::KeyType for OkmLen {
    fn len(&self) -> usize {
        self.0
    }
}

/// The client's private state for X25519-MLKEM768 with aws-lc-rs keys. Both keys are erased by
/// aws-lc when dropped (PROTOCOL.md §7.4).
struct AwsLcClientKeyExchange {
    mlkem: kem::DecapsulationKey<kem::AlgorithmId>,
    x25519: agreement::PrivateKey,
}

impl ClientKeyExchange for AwsLcClientKeyExchange {
    fn complete(self: Box<Self>, server_share: &[u8]) -> Result<SharedSecret, CryptoError> {
        let (ciphertext, peer_x25519) = split_server_share(server_share)?;
        let ss_mlkem = self
            .mlkem
            .decapsulate(kem::Ciphertext::from(ciphertext))
            .map_err(|_| CryptoError::MalformedKeyShare("ML-KEM ciphertext rejected"))?;
        let ss_mlkem = <&[u8; MLKEM768_SHARED_SECRET_LEN]>::try_from(ss_mlkem.as_ref())
            .map_err(|_| CryptoError::Internal("ML-KEM shared secret length"))?;
        let ss_x25519 = x25519_agree(&self.x25519, peer_x25519)?;
        Ok(SharedSecret::from_parts(ss_mlkem, &ss_x25519))
    }
}

/// The server's pending X25519-MLKEM768 exchange with aws-lc-rs keys: the ML-KEM shared secret
/// (zeroized on drop) and the X25519 private key (erased by aws-lc when dropped).
struct AwsLcServerKeyExchange {
    ss_mlkem: Zeroizing<[u8; MLKEM768_SHARED_SECRET_LEN]>,
    x25519: agreement::PrivateKey,
    peer_x25519: [u8; X25519_LEN],
}

impl ServerKeyExchange for AwsLcServerKeyExchange {
    fn complete(self: Box<Self>) -> Result<SharedSecret, CryptoError> {
        let ss_x25519 = x25519_agree(&self.x25519, &self.peer_x25519)?;
        Ok(SharedSecret::from_parts(&self.ss_mlkem, &ss_x25519))
    }
}

struct Ed25519Signer {
    key_pair: signature::Ed25519KeyPair,
    public_key: [u8; ED25519_PUBLIC_KEY_LEN],
}

impl SigningKey for Ed25519Signer {
    fn public_key(&self) -> [u8; ED25519_PUBLIC_KEY_LEN] {
        self.public_key
    }

    fn sign(&self, msg: &[u8]) -> Result<[u8; ED25519_SIGNATURE_LEN], CryptoError> {
        let sig = self
            .key_pair
            .try_sign(msg)
            .map_err(|_| CryptoError::Internal("Ed25519 sign"))?;
        <[u8; ED25519_SIGNATURE_LEN]>::try_from(sig.as_ref())
            .map_err(|_| CryptoError::Internal("Ed25519 signature length"))
    }
}

/// Splits a client share into (ML-KEM encapsulation key, X25519 public key), checking its length
/// (PROTOCOL.md §7.2).
pub(crate) fn split_client_share(share: &[u8]) -> Result<(&[u8], &[u8]), CryptoError> {
    if share.len() != CLIENT_SHARE_LEN {
        return Err(CryptoError::MalformedKeyShare(
            "client share must be 1216 bytes",
        ));
    }
    Ok(share.split_at(MLKEM768_ENCAPSULATION_KEY_LEN))
}

/// Splits a server share into (ML-KEM ciphertext, X25519 public key), checking its length
/// (PROTOCOL.md §7.3).
pub(crate) fn split_server_share(share: &[u8]) -> Result<(&[u8], &[u8]), CryptoError> {
    if share.len() != SERVER_SHARE_LEN {
        return Err(CryptoError::MalformedKeyShare(
            "server share must be 1120 bytes",
        ));
    }
    Ok(share.split_at(MLKEM768_CIPHERTEXT_LEN))
}

/// The X25519 public key of `private`.
pub(crate) fn x25519_public(
    private: &agreement::PrivateKey,
) -> Result<[u8; X25519_LEN], CryptoError> {
    let public = private
        .compute_public_key()
        .map_err(|_| CryptoError::Internal("X25519 public key"))?;
    <[u8; X25519_LEN]>::try_from(public.as_ref())
        .map_err(|_| CryptoError::Internal("X25519 public key length"))
}

/// X25519 with the peer's public key, rejecting an all-zero result (PROTOCOL.md §6.2).
pub(crate) fn x25519_agree(
    private: &agreement::PrivateKey,
    peer_public: &[u8],
) -> Result<[u8; X25519_LEN], CryptoError> {
    if peer_public.len() != X25519_LEN {
        return Err(CryptoError::MalformedKeyShare(
            "X25519 public key must be 32 bytes",
        ));
    }
    let peer = agreement::UnparsedPublicKey::new(&agreement::X25519, peer_public);
    // Every 32-byte string is a valid X25519 public key, so the only way agreement fails on a
    // well-formed key is a low-order point, i.e. an all-zero result (aws-lc rejects it itself).
    let secret = agreement::agree(private, peer, CryptoError::ZeroSharedSecret, |ss| {
        <[u8; X25519_LEN]>::try_from(ss).map_err(|_| CryptoError::Internal("X25519 output length"))
    })?;
    // Checked here too, without an early exit, in case the library ever stops rejecting it.
    if secret.iter().fold(0u8, |acc, b| acc | b) == 0 {
        return Err(CryptoError::ZeroSharedSecret);
    }
    Ok(secret)
}

impl CryptoProvider for AwsLcProvider {
    fn aead(&self, suite: CipherSuite, key: &[u8]) -> Result<Box<dyn Aead>, CryptoError> {
        if key.len() != suite.key_len() {
            return Err(CryptoError::InvalidLength {
                what: "AEAD key",
                expected: suite.key_len(),
                actual: key.len(),
            });
        }
        let algorithm = match suite {
            CipherSuite::Aes256Gcm => &aead::AES_256_GCM,
            CipherSuite::ChaCha20Poly1305 => &aead::CHACHA20_POLY1305,
        };
        let unbound = aead::UnboundKey::new(algorithm, key)
            .map_err(|_| CryptoError::Internal("AEAD key setup"))?;
        Ok(Box::new(AwsLcAead {
            key: aead::LessSafeKey::new(unbound),
        }))
    }

    fn header_protection(
        &self,
        suite: CipherSuite,
        hp_key: &[u8],
    ) -> Result<Box<dyn HeaderProtection>, CryptoError> {
        if hp_key.len() != suite.hp_key_len() {
            return Err(CryptoError::InvalidLength {
                what: "header protection key",
                expected: suite.hp_key_len(),
                actual: hp_key.len(),
            });
        }
        let algorithm = match suite {
            CipherSuite::Aes256Gcm => &quic::AES_256,
            CipherSuite::ChaCha20Poly1305 => &quic::CHACHA20,
        };
        let key = quic::HeaderProtectionKey::new(algorithm, hp_key)
            .map_err(|_| CryptoError::Internal("header protection key setup"))?;
        Ok(Box::new(AwsLcHeaderProtection { key }))
    }

    fn hash(&self) -> Box<dyn HashContext> {
        Box::new(Sha256Context {
            ctx: digest::Context::new(&digest::SHA256),
        })
    }

    fn sha256(&self, data: &[u8]) -> [u8; HASH_LEN] {
        digest_to_array(&digest::digest(&digest::SHA256, data))
    }

    fn hmac_sha256(&self, key: &[u8], data: &[u8]) -> [u8; HASH_LEN] {
        let key = hmac::Key::new(hmac::HMAC_SHA256, key);
        let tag = hmac::sign(&key, data);
        let mut out = [0u8; HASH_LEN];
        for (o, b) in out.iter_mut().zip(tag.as_ref()) {
            *o = *b;
        }
        out
    }

    fn hkdf_extract(&self, salt: &[u8], ikm: &[u8]) -> Secret {
        // RFC 5869 §2.2: PRK = HMAC-Hash(salt, IKM). aws-lc-rs's hkdf::Prk does not expose its
        // bytes, and the key schedule needs them (secrets are inputs of later stages).
        Secret::from_bytes(self.hmac_sha256(salt, ikm))
    }

    fn hkdf_expand(&self, prk: &Secret, info: &[u8], out: &mut [u8]) -> Result<(), CryptoError> {
        if out.len() > 255 * HASH_LEN {
            return Err(CryptoError::HkdfOutOfRange(
                "HKDF-Expand output longer than 8160 bytes",
            ));
        }
        let prk = hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, prk.as_bytes());
        let info = [info];
        prk.expand(&info, OkmLen(out.len()))
            .and_then(|okm| okm.fill(out))
            .map_err(|_| CryptoError::Internal("HKDF-Expand"))
    }

    fn client_key_share(&self) -> Result<(Vec<u8>, Box<dyn ClientKeyExchange>), CryptoError> {
        let mlkem = kem::DecapsulationKey::generate(&kem::ML_KEM_768)
            .map_err(|_| CryptoError::Internal("ML-KEM-768 key generation"))?;
        let ek = mlkem
            .encapsulation_key()
            .and_then(|ek| ek.key_bytes())
            .map_err(|_| CryptoError::Internal("ML-KEM-768 encapsulation key"))?;
        let x25519 = agreement::PrivateKey::generate(&agreement::X25519)
            .map_err(|_| CryptoError::Internal("X25519 key generation"))?;
        let x_public = x25519_public(&x25519)?;

        let mut share = Vec::with_capacity(CLIENT_SHARE_LEN);
        share.extend_from_slice(ek.as_ref());
        share.extend_from_slice(&x_public);
        if share.len() != CLIENT_SHARE_LEN {
            return Err(CryptoError::Internal("client share length"));
        }
        Ok((share, Box::new(AwsLcClientKeyExchange { mlkem, x25519 })))
    }

    fn server_key_share(
        &self,
        client_share: &[u8],
    ) -> Result<(Vec<u8>, Box<dyn ServerKeyExchange>), CryptoError> {
        let (ek_bytes, peer_x25519) = split_client_share(client_share)?;
        let peer_x25519 = <[u8; X25519_LEN]>::try_from(peer_x25519)
            .map_err(|_| CryptoError::MalformedKeyShare("X25519 public key must be 32 bytes"))?;
        // aws-lc runs the FIPS 203 §7.2 encapsulation-key check (modulus check) on import or
        // encapsulation; either failing means the client sent an invalid key.
        let ek = kem::EncapsulationKey::new(&kem::ML_KEM_768, ek_bytes)
            .map_err(|_| CryptoError::MalformedKeyShare("invalid ML-KEM-768 encapsulation key"))?;
        let (ciphertext, ss_mlkem) = ek
            .encapsulate()
            .map_err(|_| CryptoError::MalformedKeyShare("invalid ML-KEM-768 encapsulation key"))?;
        let ss_mlkem = <[u8; MLKEM768_SHARED_SECRET_LEN]>::try_from(ss_mlkem.as_ref())
            .map_err(|_| CryptoError::Internal("ML-KEM shared secret length"))?;

        let x25519 = agreement::PrivateKey::generate(&agreement::X25519)
            .map_err(|_| CryptoError::Internal("X25519 key generation"))?;
        let x_public = x25519_public(&x25519)?;

        let mut share = Vec::with_capacity(SERVER_SHARE_LEN);
        share.extend_from_slice(ciphertext.as_ref());
        share.extend_from_slice(&x_public);
        if share.len() != SERVER_SHARE_LEN {
            return Err(CryptoError::Internal("server share length"));
        }
        let exchange = AwsLcServerKeyExchange {
            ss_mlkem: Zeroizing::new(ss_mlkem),
            x25519,
            peer_x25519,
        };
        Ok((share, Box::new(exchange)))
    }

    fn signing_key(
        &self,
        ed25519_seed: &[u8; ED25519_SEED_LEN],
    ) -> Result<Box<dyn SigningKey>, CryptoError> {
        let key_pair = signature::Ed25519KeyPair::from_seed_unchecked(ed25519_seed)
            .map_err(|_| CryptoError::Internal("Ed25519 key from seed"))?;
        let public_key = {
            use signature::KeyPair as _;
            <[u8; ED25519_PUBLIC_KEY_LEN]>::try_from(key_pair.public_key().as_ref())
                .map_err(|_| CryptoError::Internal("Ed25519 public key length"))?
        };
        Ok(Box::new(Ed25519Signer {
            key_pair,
            public_key,
        }))
    }

    fn verify_ed25519(
        &self,
        public_key: &[u8; ED25519_PUBLIC_KEY_LEN],
        msg: &[u8],
        sig: &[u8],
    ) -> Result<(), CryptoError> {
        signature::UnparsedPublicKey::new(&signature::ED25519, public_key)
            .verify(msg, sig)
            .map_err(|_| CryptoError::BadSignature)
    }

    fn fill_random(&self, buf: &mut [u8]) -> Result<(), CryptoError> {
        rand::fill(buf).map_err(|_| CryptoError::Rng)
    }
}
