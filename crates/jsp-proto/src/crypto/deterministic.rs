//! A seeded crypto provider for tests, the simulator and test-vector generation.
//!
//! [`DeterministicProvider`] implements the same algorithms as [`super::AwsLcProvider`] and
//! produces the same bytes from the same randomness, but draws every random value from a
//! ChaCha20 RNG seeded by the caller, so a whole handshake replays byte for byte (PROTOCOL.md §18:
//! `handshake.json` is generated with it). It is compiled only for this crate's tests or with the
//! `deterministic-provider` cargo feature, and MUST NOT be used in production: its "random" keys
//! are as secret as its seed.
//!
//! Randomness is consumed in a fixed, documented order so that other implementations can replay
//! the same transcripts: [`CryptoProvider::client_key_share`] draws ML-KEM `d` (32 bytes), then
//! `z` (32), then the X25519 private key (32); [`CryptoProvider::server_key_exchange`] draws the
//! ML-KEM encapsulation randomness `m` (32), then the X25519 private key (32);
//! [`CryptoProvider::fill_random`] draws the requested bytes. The stream is the plain ChaCha20
//! keystream of RFC 8439 with the seed as key, a zero nonce and the block counter starting at 0,
//! consumed in 4-byte words: a draw of `n` bytes takes the next `n` bytes of the stream and then
//! skips to the next multiple of 4 (a 1-byte draw advances it by 4). aws-lc-rs cannot take
//! external randomness for ML-KEM (FIPS 203 `ML-KEM.KeyGen_internal(d, z)` and
//! `ML-KEM.Encaps_internal(ek, m)`), so this provider uses the RustCrypto `ml-kem` crate for
//! ML-KEM-768 only; tests check that it interoperates with aws-lc-rs in both directions.
//! Everything else (X25519 from fixed private bytes, AEAD, hashing, Ed25519) is aws-lc-rs.

use core::fmt;
use std::sync::{Mutex, PoisonError};

use aws_lc_rs::agreement;
use ml_kem::kem::Decapsulate as _;
use ml_kem::{EncapsulateDeterministic as _, EncodedSizeUser as _, KemCore, MlKem768, B32};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use zeroize::{Zeroize, Zeroizing};

use super::aws_lc::{
    split_client_share, split_server_share, x25519_agree, x25519_public, AwsLcProvider,
};
use super::provider::{
    Aead, CipherSuite, ClientKeyExchange, CompletedServerKeyExchange, CryptoError, CryptoProvider,
    HashContext, HeaderProtection, Secret, ServerKeyExchange, SharedSecret, SigningKey,
    CLIENT_SHARE_LEN, ED25519_PUBLIC_KEY_LEN, ED25519_SEED_LEN, HASH_LEN,
    MLKEM768_SHARED_SECRET_LEN, SERVER_SHARE_LEN,
};

type MlKemDecapsulationKey = <MlKem768 as KemCore>::DecapsulationKey;
type MlKemEncapsulationKey = <MlKem768 as KemCore>::EncapsulationKey;

/// A [`CryptoProvider`] whose randomness comes from a seeded ChaCha20 RNG (tests and simulation
/// only; see the module documentation for the order in which randomness is drawn).
pub struct DeterministicProvider {
    rng: Mutex<ChaCha20Rng>,
    inner: AwsLcProvider,
}

impl DeterministicProvider {
    /// A provider whose every random byte derives from `seed`.
    pub fn new(seed: [u8; 32]) -> Self {
        DeterministicProvider {
            rng: Mutex::new(ChaCha20Rng::from_seed(seed)),
            inner: AwsLcProvider,
        }
    }

    fn draw(&self, buf: &mut [u8]) {
        // A panic while holding the lock cannot leave the RNG half-updated in a way that matters
        // for a test RNG, so a poisoned lock is simply taken over.
        let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
        rng.fill_bytes(buf);
    }

    fn draw32(&self) -> Zeroizing<[u8; 32]> {
        let mut out = Zeroizing::new([0u8; 32]);
        self.draw(out.as_mut_slice());
        out
    }

    fn x25519_key(&self) -> Result<agreement::PrivateKey, CryptoError> {
        let private = self.draw32();
        agreement::PrivateKey::from_private_key(&agreement::X25519, private.as_slice())
            .map_err(|_| CryptoError::Internal("X25519 key from bytes"))
    }
}

impl fmt::Debug for DeterministicProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeterministicProvider")
            .finish_non_exhaustive()
    }
}

/// Client state of a deterministic X25519-MLKEM768 exchange; the `ml-kem` decapsulation key
/// zeroizes itself on drop (its `zeroize` feature), aws-lc erases the X25519 key.
struct DeterministicClientKeyExchange {
    mlkem: MlKemDecapsulationKey,
    x25519: agreement::PrivateKey,
}

impl ClientKeyExchange for DeterministicClientKeyExchange {
    fn complete(self: Box<Self>, server_share: &[u8]) -> Result<SharedSecret, CryptoError> {
        let (ciphertext, peer_x25519) = split_server_share(server_share)?;
        let ciphertext = ml_kem::Ciphertext::<MlKem768>::try_from(ciphertext)
            .map_err(|_| CryptoError::MalformedKeyShare("ML-KEM ciphertext length"))?;
        let mut ss = self
            .mlkem
            .decapsulate(&ciphertext)
            .map_err(|()| CryptoError::Internal("ML-KEM decapsulation"))?;
        let ss_mlkem = copy_shared_key(&mut ss)?;
        let ss_x25519 = x25519_agree(&self.x25519, peer_x25519)?;
        Ok(SharedSecret::from_parts(&ss_mlkem, &ss_x25519))
    }
}

/// Copies an `ml-kem` shared key out and wipes the original.
fn copy_shared_key(
    ss: &mut ml_kem::SharedKey<MlKem768>,
) -> Result<Zeroizing<[u8; MLKEM768_SHARED_SECRET_LEN]>, CryptoError> {
    let out = <[u8; MLKEM768_SHARED_SECRET_LEN]>::try_from(ss.as_slice())
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::Internal("ML-KEM shared secret length"));
    ss.as_mut_slice().zeroize();
    out
}

impl CryptoProvider for DeterministicProvider {
    fn aead(&self, suite: CipherSuite, key: &[u8]) -> Result<Box<dyn Aead>, CryptoError> {
        self.inner.aead(suite, key)
    }

    fn header_protection(
        &self,
        suite: CipherSuite,
        hp_key: &[u8],
    ) -> Result<Box<dyn HeaderProtection>, CryptoError> {
        self.inner.header_protection(suite, hp_key)
    }

    fn hash(&self) -> Box<dyn HashContext> {
        self.inner.hash()
    }

    fn sha256(&self, data: &[u8]) -> [u8; HASH_LEN] {
        self.inner.sha256(data)
    }

    fn hmac_sha256(&self, key: &[u8], data: &[u8]) -> [u8; HASH_LEN] {
        self.inner.hmac_sha256(key, data)
    }

    fn hkdf_extract(&self, salt: &[u8], ikm: &[u8]) -> Secret {
        self.inner.hkdf_extract(salt, ikm)
    }

    fn hkdf_expand(&self, prk: &Secret, info: &[u8], out: &mut [u8]) -> Result<(), CryptoError> {
        self.inner.hkdf_expand(prk, info, out)
    }

    fn client_key_share(&self) -> Result<(Vec<u8>, Box<dyn ClientKeyExchange>), CryptoError> {
        let d = self.draw32();
        let z = self.draw32();
        let (mlkem, ek) = MlKem768::generate_deterministic(&B32::from(*d), &B32::from(*z));
        let x25519 = self.x25519_key()?;
        let x_public = x25519_public(&x25519)?;

        let mut share = Vec::with_capacity(CLIENT_SHARE_LEN);
        share.extend_from_slice(ek.as_bytes().as_slice());
        share.extend_from_slice(&x_public);
        if share.len() != CLIENT_SHARE_LEN {
            return Err(CryptoError::Internal("client share length"));
        }
        Ok((
            share,
            Box::new(DeterministicClientKeyExchange { mlkem, x25519 }),
        ))
    }

    /// Computes the whole exchange at once (the draws stay in the order the vectors record).
    fn server_key_share(
        &self,
        client_share: &[u8],
    ) -> Result<(Vec<u8>, Box<dyn ServerKeyExchange>), CryptoError> {
        let (ek_bytes, peer_x25519) = split_client_share(client_share)?;
        let encoded = ml_kem::Encoded::<MlKemEncapsulationKey>::try_from(ek_bytes)
            .map_err(|_| CryptoError::MalformedKeyShare("ML-KEM encapsulation key length"))?;
        let ek = MlKemEncapsulationKey::from_bytes(&encoded);
        // FIPS 203 §7.2 modulus check: `ml-kem` reduces every coefficient mod q on decoding, so
        // the key is valid iff it re-encodes to the same bytes.
        if ek.as_bytes().as_slice() != ek_bytes {
            return Err(CryptoError::MalformedKeyShare(
                "invalid ML-KEM-768 encapsulation key",
            ));
        }
        let m = self.draw32();
        let (ciphertext, mut ss) = ek
            .encapsulate_deterministic(&B32::from(*m))
            .map_err(|()| CryptoError::Internal("ML-KEM encapsulation"))?;
        let ss_mlkem = copy_shared_key(&mut ss)?;

        let x25519 = self.x25519_key()?;
        let x_public = x25519_public(&x25519)?;
        let ss_x25519 = x25519_agree(&x25519, peer_x25519)?;

        let mut share = Vec::with_capacity(SERVER_SHARE_LEN);
        share.extend_from_slice(ciphertext.as_slice());
        share.extend_from_slice(&x_public);
        if share.len() != SERVER_SHARE_LEN {
            return Err(CryptoError::Internal("server share length"));
        }
        let secret = SharedSecret::from_parts(&ss_mlkem, &ss_x25519);
        Ok((share, Box::new(CompletedServerKeyExchange(secret))))
    }

    fn signing_key(
        &self,
        ed25519_seed: &[u8; ED25519_SEED_LEN],
    ) -> Result<Box<dyn SigningKey>, CryptoError> {
        self.inner.signing_key(ed25519_seed)
    }

    fn verify_ed25519(
        &self,
        public_key: &[u8; ED25519_PUBLIC_KEY_LEN],
        msg: &[u8],
        sig: &[u8],
    ) -> Result<(), CryptoError> {
        self.inner.verify_ed25519(public_key, msg, sig)
    }

    fn fill_random(&self, buf: &mut [u8]) -> Result<(), CryptoError> {
        self.draw(buf);
        Ok(())
    }
}
