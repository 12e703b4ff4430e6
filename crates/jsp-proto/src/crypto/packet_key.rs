//! Packet protection keys: AEAD key + IV and header-protection key per traffic secret.
//!
//! This module owns the step from a traffic secret to usable keys (PROTOCOL.md §6.3: `"key"`,
//! `"iv"`, `"hp"`), the per-packet nonce (§5.2: `iv XOR (0^4 || u64(pn))`), key update (§6.4: a
//! new key and IV from the `"ku"` secret, the same header-protection key) and the Initial keys
//! (§5.4, always AES-256-GCM). Applying header protection to packet bytes (sampling, masking the
//! first byte and the packet number) belongs to the packet codec; it calls [`HeaderKey::mask`].

use core::fmt;
use std::sync::Arc;

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::key_schedule::{
    hkdf_expand_label_into, initial_secrets, labels, next_app_traffic_secret,
};
use super::provider::{
    Aead, CipherSuite, CryptoError, CryptoProvider, HeaderProtection, Secret, HP_KEY_LEN,
    HP_MASK_LEN, HP_SAMPLE_LEN, NONCE_LEN, TAG_LEN,
};

/// The raw key material derived from one traffic secret (PROTOCOL.md §6.3): for test vectors and
/// key logging. Zeroized on drop, redacted in Debug.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct PacketKeyMaterial {
    /// `HKDF-Expand-Label(S, "key", "", Nk)`.
    pub key: Vec<u8>,
    /// `HKDF-Expand-Label(S, "iv", "", 12)`.
    pub iv: [u8; NONCE_LEN],
    /// `HKDF-Expand-Label(S, "hp", "", 32)`.
    pub hp: [u8; HP_KEY_LEN],
}

impl PacketKeyMaterial {
    /// Derives key, IV and header-protection key of `suite` from `secret` (PROTOCOL.md §6.3).
    pub fn derive(
        provider: &dyn CryptoProvider,
        suite: CipherSuite,
        secret: &Secret,
    ) -> Result<Self, CryptoError> {
        let mut material = PacketKeyMaterial {
            key: vec![0u8; suite.key_len()],
            iv: [0u8; NONCE_LEN],
            hp: [0u8; HP_KEY_LEN],
        };
        hkdf_expand_label_into(provider, secret, labels::KEY, &[], &mut material.key)?;
        hkdf_expand_label_into(provider, secret, labels::IV, &[], &mut material.iv)?;
        hkdf_expand_label_into(provider, secret, labels::HP, &[], &mut material.hp)?;
        Ok(material)
    }
}

impl fmt::Debug for PacketKeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PacketKeyMaterial(<redacted>)")
    }
}

/// Payload protection for one direction and key generation: an AEAD key and its IV
/// (PROTOCOL.md §5.2, §6.3).
pub struct PacketKeys {
    suite: CipherSuite,
    aead: Box<dyn Aead>,
    iv: Zeroizing<[u8; NONCE_LEN]>,
}

impl PacketKeys {
    /// Derives `key` and `iv` of `suite` from a traffic secret (PROTOCOL.md §6.3).
    pub fn new(
        provider: &dyn CryptoProvider,
        suite: CipherSuite,
        secret: &Secret,
    ) -> Result<Self, CryptoError> {
        let mut key = Zeroizing::new(vec![0u8; suite.key_len()]);
        let mut iv = Zeroizing::new([0u8; NONCE_LEN]);
        hkdf_expand_label_into(provider, secret, labels::KEY, &[], &mut key)?;
        hkdf_expand_label_into(provider, secret, labels::IV, &[], iv.as_mut_slice())?;
        Self::from_key_iv(provider, suite, &key, &iv)
    }

    /// Builds keys from raw bytes (test vectors; Retry and ticket keys use the provider directly).
    pub fn from_key_iv(
        provider: &dyn CryptoProvider,
        suite: CipherSuite,
        key: &[u8],
        iv: &[u8; NONCE_LEN],
    ) -> Result<Self, CryptoError> {
        Ok(PacketKeys {
            suite,
            aead: provider.aead(suite, key)?,
            iv: Zeroizing::new(*iv),
        })
    }

    /// The suite these keys belong to.
    pub fn suite(&self) -> CipherSuite {
        self.suite
    }

    /// The nonce of packet number `pn`: `iv XOR (0x00000000 || u64(pn))` (PROTOCOL.md §5.2).
    pub fn nonce(&self, pn: u64) -> [u8; NONCE_LEN] {
        let mut nonce = *self.iv;
        for (n, p) in nonce[NONCE_LEN - 8..].iter_mut().zip(pn.to_be_bytes()) {
            *n ^= p;
        }
        nonce
    }

    /// Encrypts `payload` in place for packet number `pn`; `header` is the associated data (the
    /// header through the packet number, unprotected, PROTOCOL.md §5.2). Returns the tag, which
    /// the caller appends.
    pub fn seal(
        &self,
        pn: u64,
        header: &[u8],
        payload: &mut [u8],
    ) -> Result<[u8; TAG_LEN], CryptoError> {
        self.aead.seal_in_place(&self.nonce(pn), header, payload)
    }

    /// Authenticates and decrypts `payload_and_tag` in place for packet number `pn` and returns
    /// the plaintext length ([`CryptoError::DecryptFailed`] if it does not authenticate: drop the
    /// packet silently, PROTOCOL.md §5.5).
    pub fn open(
        &self,
        pn: u64,
        header: &[u8],
        payload_and_tag: &mut [u8],
    ) -> Result<usize, CryptoError> {
        self.aead
            .open_in_place(&self.nonce(pn), header, payload_and_tag)
    }
}

impl fmt::Debug for PacketKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PacketKeys")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

/// Header protection for one direction (PROTOCOL.md §5.3). Cheap to clone: a key update keeps it
/// (§6.4).
#[derive(Clone)]
pub struct HeaderKey {
    suite: CipherSuite,
    hp: Arc<dyn HeaderProtection>,
}

impl HeaderKey {
    /// Derives the `"hp"` key of `suite` from a traffic secret (PROTOCOL.md §6.3).
    pub fn new(
        provider: &dyn CryptoProvider,
        suite: CipherSuite,
        secret: &Secret,
    ) -> Result<Self, CryptoError> {
        let mut hp = Zeroizing::new([0u8; HP_KEY_LEN]);
        hkdf_expand_label_into(provider, secret, labels::HP, &[], hp.as_mut_slice())?;
        Self::from_key(provider, suite, hp.as_slice())
    }

    /// Builds a header-protection key from raw bytes.
    pub fn from_key(
        provider: &dyn CryptoProvider,
        suite: CipherSuite,
        hp_key: &[u8],
    ) -> Result<Self, CryptoError> {
        Ok(HeaderKey {
            suite,
            hp: Arc::from(provider.header_protection(suite, hp_key)?),
        })
    }

    /// The suite this key belongs to.
    pub fn suite(&self) -> CipherSuite {
        self.suite
    }

    /// The 5-byte mask for a 16-byte sample (PROTOCOL.md §5.3).
    pub fn mask(&self, sample: &[u8; HP_SAMPLE_LEN]) -> Result<[u8; HP_MASK_LEN], CryptoError> {
        self.hp.mask(sample)
    }
}

impl fmt::Debug for HeaderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeaderKey")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

/// Everything needed to protect (or unprotect) the packets of one direction with one traffic
/// secret (PROTOCOL.md §6.3).
#[derive(Debug)]
pub struct DirectionalKeys {
    /// Payload protection.
    pub packet: PacketKeys,
    /// Header protection.
    pub header: HeaderKey,
}

impl DirectionalKeys {
    /// Derives packet and header keys of `suite` from a traffic secret (PROTOCOL.md §6.3).
    pub fn new(
        provider: &dyn CryptoProvider,
        suite: CipherSuite,
        secret: &Secret,
    ) -> Result<Self, CryptoError> {
        Ok(DirectionalKeys {
            packet: PacketKeys::new(provider, suite, secret)?,
            header: HeaderKey::new(provider, suite, secret)?,
        })
    }

    /// The keys of the next 1-RTT key phase (PROTOCOL.md §6.4, §9): `current_secret` is the
    /// traffic secret these keys were derived from. Returns the next secret (keep it for the update
    /// after this one) and keys with a new key and IV and the same header-protection key.
    pub fn next_generation(
        &self,
        provider: &dyn CryptoProvider,
        current_secret: &Secret,
    ) -> Result<(Secret, DirectionalKeys), CryptoError> {
        let (next_secret, packet) = next_generation(provider, self.packet.suite(), current_secret)?;
        Ok((
            next_secret,
            DirectionalKeys {
                packet,
                header: self.header.clone(),
            },
        ))
    }
}

/// Key update (PROTOCOL.md §6.4): `app_traffic_{N+1} = HKDF-Expand-Label(app_traffic_N, "ku",
/// "", 32)` and the packet keys derived from it. The header-protection key does not change.
pub fn next_generation(
    provider: &dyn CryptoProvider,
    suite: CipherSuite,
    current_secret: &Secret,
) -> Result<(Secret, PacketKeys), CryptoError> {
    let next_secret = next_app_traffic_secret(provider, current_secret)?;
    let packet = PacketKeys::new(provider, suite, &next_secret)?;
    Ok((next_secret, packet))
}

/// Initial packet keys for `original_dcid` (PROTOCOL.md §5.4), always AES-256-GCM:
/// `(send, receive)` for this endpoint. A client sends with `client_initial` and receives with
/// `server_initial`; a server the reverse.
pub fn initial_keys(
    provider: &dyn CryptoProvider,
    original_dcid: &[u8],
    is_client: bool,
) -> Result<(DirectionalKeys, DirectionalKeys), CryptoError> {
    let (client, server) = initial_secrets(provider, original_dcid)?;
    let suite = CipherSuite::Aes256Gcm;
    let client_keys = DirectionalKeys::new(provider, suite, &client)?;
    let server_keys = DirectionalKeys::new(provider, suite, &server)?;
    Ok(if is_client {
        (client_keys, server_keys)
    } else {
        (server_keys, client_keys)
    })
}
