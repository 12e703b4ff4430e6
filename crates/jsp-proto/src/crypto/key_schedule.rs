//! The key schedule of PROTOCOL.md §6: HKDF-Expand-Label, Derive-Secret and every secret.
//!
//! This module owns the derivation of secrets, not their use: `HKDF-Expand-Label` with the
//! `"jsp1 "` label prefix (§6.1), the three stages of §6.2 as types that consume each other
//! ([`KeySchedule`] → [`HandshakeKeySchedule`] → [`MasterKeySchedule`], so a later secret cannot
//! be derived without the earlier inputs), Initial secrets (§5.4), key-update secrets (§6.4),
//! Finished and PSK binders with constant-time verification (§6.5) and resumption PSKs (§6.6).
//! Packet keys derived from these secrets live in [`super::packet_key`].
//!
//! Transcript hashes are inputs: the caller keeps a [`super::HashContext`] over the handshake
//! messages and passes `Transcript-Hash(...)` as a `[u8; 32]`. Where §6.2 writes `""` as the
//! Messages argument of Derive-Secret, the context is the hash of no messages, SHA-256 of the empty
//! string (as TLS 1.3, RFC 8446 §7.1), available as [`empty_transcript_hash`].

use aws_lc_rs::constant_time;
use zeroize::Zeroizing;

use super::provider::{CryptoError, CryptoProvider, Secret, SharedSecret, HASH_LEN};

/// Prefix of every HKDF-Expand-Label label (PROTOCOL.md §6.1): ASCII, no terminator.
pub const LABEL_PREFIX: &[u8] = b"jsp1 ";

/// `INITIAL_SALT_V1 = SHA-256("JetStreamProto v1 initial salt")` (PROTOCOL.md §5.4).
pub const INITIAL_SALT_V1: [u8; HASH_LEN] = [
    0x22, 0x2e, 0x70, 0xd4, 0x98, 0x7d, 0x07, 0x41, 0x25, 0xfa, 0xc4, 0x7a, 0x70, 0xb3, 0xef, 0x22,
    0x86, 0x3f, 0xfd, 0x3c, 0xa5, 0x8c, 0xa4, 0x83, 0x81, 0x6a, 0xc8, 0x69, 0xac, 0x7f, 0x9b, 0x1f,
];

/// The input string whose SHA-256 is [`INITIAL_SALT_V1`] (PROTOCOL.md §5.4).
pub const INITIAL_SALT_V1_INPUT: &[u8] = b"JetStreamProto v1 initial salt";

/// Labels of PROTOCOL.md §5.4 and §6, without the `"jsp1 "` prefix.
pub mod labels {
    /// Client Initial secret (§5.4).
    pub const CLIENT_INITIAL: &str = "client in";
    /// Server Initial secret (§5.4).
    pub const SERVER_INITIAL: &str = "server in";
    /// PSK binder key (§6.2).
    pub const RES_BINDER: &str = "res binder";
    /// Client 0-RTT traffic secret (§6.2).
    pub const CLIENT_EARLY_TRAFFIC: &str = "c e traffic";
    /// Salt for the next stage (§6.2).
    pub const DERIVED: &str = "derived";
    /// Client Handshake traffic secret (§6.2).
    pub const CLIENT_HANDSHAKE_TRAFFIC: &str = "c hs traffic";
    /// Server Handshake traffic secret (§6.2).
    pub const SERVER_HANDSHAKE_TRAFFIC: &str = "s hs traffic";
    /// Client 1-RTT traffic secret, generation 0 (§6.2).
    pub const CLIENT_APP_TRAFFIC: &str = "c ap traffic";
    /// Server 1-RTT traffic secret, generation 0 (§6.2).
    pub const SERVER_APP_TRAFFIC: &str = "s ap traffic";
    /// Resumption master secret (§6.2).
    pub const RES_MASTER: &str = "res master";
    /// Packet protection key (§6.3).
    pub const KEY: &str = "key";
    /// Packet protection IV (§6.3).
    pub const IV: &str = "iv";
    /// Header protection key (§6.3).
    pub const HP: &str = "hp";
    /// Next-generation 1-RTT secret (§6.4).
    pub const KEY_UPDATE: &str = "ku";
    /// Finished and binder keys (§6.5).
    pub const FINISHED: &str = "finished";
    /// Resumption PSK (§6.6).
    pub const RESUMPTION: &str = "resumption";
}

/// `HKDF-Expand-Label(secret, label, context, out.len())` into `out` (PROTOCOL.md §6.1):
/// `HkdfLabel = u16(len) || u8(len(L)) || L || u8(len(context)) || context`,
/// `L = "jsp1 " || label`.
///
/// Fails with [`CryptoError::HkdfOutOfRange`] if `L` or `context` is longer than 255 bytes or
/// `out` longer than 255 x 32 bytes.
pub fn hkdf_expand_label_into(
    provider: &dyn CryptoProvider,
    secret: &Secret,
    label: &str,
    context: &[u8],
    out: &mut [u8],
) -> Result<(), CryptoError> {
    let info = hkdf_label(label.as_bytes(), context, out.len())?;
    provider.hkdf_expand(secret, &info, out)
}

/// `HKDF-Expand-Label(secret, label, context, len)` (PROTOCOL.md §6.1), in a buffer wiped on drop.
pub fn hkdf_expand_label(
    provider: &dyn CryptoProvider,
    secret: &Secret,
    label: &str,
    context: &[u8],
    len: usize,
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let mut out = Zeroizing::new(vec![0u8; len]);
    hkdf_expand_label_into(provider, secret, label, context, out.as_mut_slice())?;
    Ok(out)
}

/// `HKDF-Expand-Label(secret, label, context, 32)` as a [`Secret`] (PROTOCOL.md §6.1).
pub fn hkdf_expand_label_secret(
    provider: &dyn CryptoProvider,
    secret: &Secret,
    label: &str,
    context: &[u8],
) -> Result<Secret, CryptoError> {
    let mut out = Zeroizing::new([0u8; HASH_LEN]);
    hkdf_expand_label_into(provider, secret, label, context, out.as_mut_slice())?;
    Ok(Secret::from_bytes(*out))
}

/// `Derive-Secret(secret, label, Messages) = HKDF-Expand-Label(secret, label,
/// Transcript-Hash(Messages), 32)` (PROTOCOL.md §6.1), given the transcript hash.
pub fn derive_secret(
    provider: &dyn CryptoProvider,
    secret: &Secret,
    label: &str,
    transcript_hash: &[u8; HASH_LEN],
) -> Result<Secret, CryptoError> {
    hkdf_expand_label_secret(provider, secret, label, transcript_hash)
}

/// `Transcript-Hash()` of no messages: SHA-256 of the empty string, the context of every
/// `Derive-Secret(., label, "")` of PROTOCOL.md §6.2.
pub fn empty_transcript_hash(provider: &dyn CryptoProvider) -> [u8; HASH_LEN] {
    provider.sha256(&[])
}

/// Encodes the HkdfLabel structure of PROTOCOL.md §6.1.
fn hkdf_label(label: &[u8], context: &[u8], len: usize) -> Result<Vec<u8>, CryptoError> {
    let out_len = u16::try_from(len)
        .ok()
        .filter(|&l| usize::from(l) <= 255 * HASH_LEN)
        .ok_or(CryptoError::HkdfOutOfRange("output longer than 8160 bytes"))?;
    let label_len = u8::try_from(LABEL_PREFIX.len() + label.len())
        .map_err(|_| CryptoError::HkdfOutOfRange("label longer than 250 bytes"))?;
    let context_len = u8::try_from(context.len())
        .map_err(|_| CryptoError::HkdfOutOfRange("context longer than 255 bytes"))?;

    let mut info = Vec::with_capacity(4 + usize::from(label_len) + context.len());
    info.extend_from_slice(&out_len.to_be_bytes());
    info.push(label_len);
    info.extend_from_slice(LABEL_PREFIX);
    info.extend_from_slice(label);
    info.push(context_len);
    info.extend_from_slice(context);
    Ok(info)
}

/// The Initial secrets `(client_initial, server_initial)` for `original_dcid` (PROTOCOL.md §5.4):
/// `HKDF-Extract(INITIAL_SALT_V1, original_dcid)` expanded with `"client in"` / `"server in"`.
pub fn initial_secrets(
    provider: &dyn CryptoProvider,
    original_dcid: &[u8],
) -> Result<(Secret, Secret), CryptoError> {
    let initial_secret = provider.hkdf_extract(&INITIAL_SALT_V1, original_dcid);
    let client = hkdf_expand_label_secret(provider, &initial_secret, labels::CLIENT_INITIAL, &[])?;
    let server = hkdf_expand_label_secret(provider, &initial_secret, labels::SERVER_INITIAL, &[])?;
    Ok((client, server))
}

/// `finished_key = HKDF-Expand-Label(base_key, "finished", "", 32)` (PROTOCOL.md §6.5).
pub fn finished_key(
    provider: &dyn CryptoProvider,
    base_key: &Secret,
) -> Result<Secret, CryptoError> {
    hkdf_expand_label_secret(provider, base_key, labels::FINISHED, &[])
}

/// `verify_data = HMAC-SHA256(finished_key(base_key), transcript_hash)` (PROTOCOL.md §6.5).
/// `base_key` is the sender's handshake traffic secret; `transcript_hash` covers the messages
/// before this Finished.
pub fn finished_verify_data(
    provider: &dyn CryptoProvider,
    base_key: &Secret,
    transcript_hash: &[u8; HASH_LEN],
) -> Result<[u8; HASH_LEN], CryptoError> {
    let key = finished_key(provider, base_key)?;
    Ok(provider.hmac_sha256(key.as_bytes(), transcript_hash))
}

/// Checks a received Finished `verify_data` in constant time (PROTOCOL.md §6.5, §7.8).
/// A mismatch (or a wrong length) is [`CryptoError::VerifyFailed`]: `DECRYPT_ERROR`.
pub fn verify_finished(
    provider: &dyn CryptoProvider,
    base_key: &Secret,
    transcript_hash: &[u8; HASH_LEN],
    received: &[u8],
) -> Result<(), CryptoError> {
    let expected = Zeroizing::new(finished_verify_data(provider, base_key, transcript_hash)?);
    constant_time::verify_slices_are_equal(expected.as_slice(), received)
        .map_err(|_| CryptoError::VerifyFailed)
}

/// The PSK binder `HMAC-SHA256(HKDF-Expand-Label(binder_key, "finished", "", 32),
/// Transcript-Hash(truncated ClientHello))` (PROTOCOL.md §6.5).
pub fn psk_binder(
    provider: &dyn CryptoProvider,
    binder_key: &Secret,
    truncated_client_hello_hash: &[u8; HASH_LEN],
) -> Result<[u8; HASH_LEN], CryptoError> {
    finished_verify_data(provider, binder_key, truncated_client_hello_hash)
}

/// Checks a received PSK binder in constant time (PROTOCOL.md §6.5, §13.2);
/// [`CryptoError::VerifyFailed`] on mismatch.
pub fn verify_psk_binder(
    provider: &dyn CryptoProvider,
    binder_key: &Secret,
    truncated_client_hello_hash: &[u8; HASH_LEN],
    received: &[u8],
) -> Result<(), CryptoError> {
    verify_finished(provider, binder_key, truncated_client_hello_hash, received)
}

/// `app_traffic_{N+1} = HKDF-Expand-Label(app_traffic_N, "ku", "", 32)` (PROTOCOL.md §6.4).
pub fn next_app_traffic_secret(
    provider: &dyn CryptoProvider,
    current: &Secret,
) -> Result<Secret, CryptoError> {
    hkdf_expand_label_secret(provider, current, labels::KEY_UPDATE, &[])
}

/// `psk = HKDF-Expand-Label(resumption_master, "resumption", ticket_nonce, 32)`
/// (PROTOCOL.md §6.6).
pub fn resumption_psk(
    provider: &dyn CryptoProvider,
    resumption_master: &Secret,
    ticket_nonce: &[u8],
) -> Result<Secret, CryptoError> {
    hkdf_expand_label_secret(
        provider,
        resumption_master,
        labels::RESUMPTION,
        ticket_nonce,
    )
}

/// Stage 1 of the key schedule (PROTOCOL.md §6.2): the early secret, from the PSK or zeros.
///
/// Consumed by [`KeySchedule::into_handshake`] once the hybrid shared secret is known.
pub struct KeySchedule {
    early_secret: Secret,
}

impl KeySchedule {
    /// `early_secret = HKDF-Extract(salt = 32 zero bytes, IKM = psk or 32 zero bytes)`.
    pub fn new(provider: &dyn CryptoProvider, psk: Option<&Secret>) -> Self {
        let zeros = [0u8; HASH_LEN];
        let ikm = psk.map_or(&zeros, Secret::as_bytes);
        KeySchedule {
            early_secret: provider.hkdf_extract(&zeros, ikm),
        }
    }

    /// The early secret itself (test vectors and key logging only).
    pub fn early_secret(&self) -> &Secret {
        &self.early_secret
    }

    /// `binder_key = Derive-Secret(early_secret, "res binder", "")`.
    pub fn binder_key(&self, provider: &dyn CryptoProvider) -> Result<Secret, CryptoError> {
        let empty = empty_transcript_hash(provider);
        derive_secret(provider, &self.early_secret, labels::RES_BINDER, &empty)
    }

    /// The PSK binder over `Transcript-Hash(truncated ClientHello)` (PROTOCOL.md §6.5).
    pub fn psk_binder(
        &self,
        provider: &dyn CryptoProvider,
        truncated_client_hello_hash: &[u8; HASH_LEN],
    ) -> Result<[u8; HASH_LEN], CryptoError> {
        psk_binder(
            provider,
            &self.binder_key(provider)?,
            truncated_client_hello_hash,
        )
    }

    /// Checks a received PSK binder in constant time (PROTOCOL.md §6.5, §13.2).
    pub fn verify_psk_binder(
        &self,
        provider: &dyn CryptoProvider,
        truncated_client_hello_hash: &[u8; HASH_LEN],
        received: &[u8],
    ) -> Result<(), CryptoError> {
        verify_psk_binder(
            provider,
            &self.binder_key(provider)?,
            truncated_client_hello_hash,
            received,
        )
    }

    /// `client_early_traffic = Derive-Secret(early_secret, "c e traffic", ClientHello)`:
    /// the 0-RTT secret (PROTOCOL.md §6.2, §13.4).
    pub fn client_early_traffic(
        &self,
        provider: &dyn CryptoProvider,
        client_hello_hash: &[u8; HASH_LEN],
    ) -> Result<Secret, CryptoError> {
        derive_secret(
            provider,
            &self.early_secret,
            labels::CLIENT_EARLY_TRAFFIC,
            client_hello_hash,
        )
    }

    /// `handshake_secret = HKDF-Extract(salt = Derive-Secret(early_secret, "derived", ""),
    /// IKM = ss_mlkem || ss_x25519)`.
    pub fn into_handshake(
        self,
        provider: &dyn CryptoProvider,
        shared_secret: &SharedSecret,
    ) -> Result<HandshakeKeySchedule, CryptoError> {
        let empty = empty_transcript_hash(provider);
        let salt = derive_secret(provider, &self.early_secret, labels::DERIVED, &empty)?;
        Ok(HandshakeKeySchedule {
            handshake_secret: provider.hkdf_extract(salt.as_bytes(), shared_secret.as_bytes()),
        })
    }
}

/// Stage 2 of the key schedule (PROTOCOL.md §6.2): the handshake secret.
pub struct HandshakeKeySchedule {
    handshake_secret: Secret,
}

impl HandshakeKeySchedule {
    /// The handshake secret itself (test vectors and key logging only).
    pub fn handshake_secret(&self) -> &Secret {
        &self.handshake_secret
    }

    /// `client_handshake_traffic = Derive-Secret(handshake_secret, "c hs traffic", CH..SH)`.
    pub fn client_handshake_traffic(
        &self,
        provider: &dyn CryptoProvider,
        ch_to_sh_hash: &[u8; HASH_LEN],
    ) -> Result<Secret, CryptoError> {
        derive_secret(
            provider,
            &self.handshake_secret,
            labels::CLIENT_HANDSHAKE_TRAFFIC,
            ch_to_sh_hash,
        )
    }

    /// `server_handshake_traffic = Derive-Secret(handshake_secret, "s hs traffic", CH..SH)`.
    pub fn server_handshake_traffic(
        &self,
        provider: &dyn CryptoProvider,
        ch_to_sh_hash: &[u8; HASH_LEN],
    ) -> Result<Secret, CryptoError> {
        derive_secret(
            provider,
            &self.handshake_secret,
            labels::SERVER_HANDSHAKE_TRAFFIC,
            ch_to_sh_hash,
        )
    }

    /// `master_secret = HKDF-Extract(salt = Derive-Secret(handshake_secret, "derived", ""),
    /// IKM = 32 zero bytes)`.
    pub fn into_master(
        self,
        provider: &dyn CryptoProvider,
    ) -> Result<MasterKeySchedule, CryptoError> {
        let empty = empty_transcript_hash(provider);
        let salt = derive_secret(provider, &self.handshake_secret, labels::DERIVED, &empty)?;
        Ok(MasterKeySchedule {
            master_secret: provider.hkdf_extract(salt.as_bytes(), &[0u8; HASH_LEN]),
        })
    }
}

/// Stage 3 of the key schedule (PROTOCOL.md §6.2): the master secret.
pub struct MasterKeySchedule {
    master_secret: Secret,
}

impl MasterKeySchedule {
    /// The master secret itself (test vectors and key logging only).
    pub fn master_secret(&self) -> &Secret {
        &self.master_secret
    }

    /// `client_app_traffic_0 = Derive-Secret(master_secret, "c ap traffic", CH..server Finished)`.
    pub fn client_app_traffic(
        &self,
        provider: &dyn CryptoProvider,
        ch_to_server_finished_hash: &[u8; HASH_LEN],
    ) -> Result<Secret, CryptoError> {
        derive_secret(
            provider,
            &self.master_secret,
            labels::CLIENT_APP_TRAFFIC,
            ch_to_server_finished_hash,
        )
    }

    /// `server_app_traffic_0 = Derive-Secret(master_secret, "s ap traffic", CH..server Finished)`.
    pub fn server_app_traffic(
        &self,
        provider: &dyn CryptoProvider,
        ch_to_server_finished_hash: &[u8; HASH_LEN],
    ) -> Result<Secret, CryptoError> {
        derive_secret(
            provider,
            &self.master_secret,
            labels::SERVER_APP_TRAFFIC,
            ch_to_server_finished_hash,
        )
    }

    /// `resumption_master = Derive-Secret(master_secret, "res master", CH..client Finished)`.
    pub fn resumption_master(
        &self,
        provider: &dyn CryptoProvider,
        ch_to_client_finished_hash: &[u8; HASH_LEN],
    ) -> Result<Secret, CryptoError> {
        derive_secret(
            provider,
            &self.master_secret,
            labels::RES_MASTER,
            ch_to_client_finished_hash,
        )
    }
}

impl core::fmt::Debug for KeySchedule {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("KeySchedule(<redacted>)")
    }
}

impl core::fmt::Debug for HandshakeKeySchedule {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("HandshakeKeySchedule(<redacted>)")
    }
}

impl core::fmt::Debug for MasterKeySchedule {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("MasterKeySchedule(<redacted>)")
    }
}
