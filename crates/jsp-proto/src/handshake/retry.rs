//! Stateless Retry (PROTOCOL.md §12.2): address-validation tokens sealed with a server key and
//! bound to the client's address, and the Retry Integrity Tag that protects Retry packets against
//! off-path corruption.

use core::net::SocketAddr;

use crate::crypto::{Aead, CipherSuite, CryptoError, CryptoProvider};
use crate::time::Instant;
use crate::wire::header::ConnectionId;

/// `SHA-256("JetStreamProto v1 retry integrity key")`.
pub const RETRY_INTEGRITY_KEY: [u8; 32] = [
    0xa8, 0x1e, 0xfd, 0x6e, 0x5b, 0x44, 0x35, 0xe0, 0x12, 0x82, 0x64, 0x8d, 0xee, 0x93, 0x06, 0x5b,
    0xb5, 0x37, 0x61, 0x69, 0x05, 0x38, 0x54, 0x2a, 0x02, 0xf0, 0x84, 0x7f, 0x00, 0xb6, 0x75, 0x71,
];
/// First 12 bytes of `SHA-256("JetStreamProto v1 retry integrity nonce")`.
pub const RETRY_INTEGRITY_NONCE: [u8; 12] = [
    0x14, 0x4c, 0x79, 0x58, 0x3e, 0xbd, 0x1d, 0xbc, 0x27, 0x91, 0x72, 0x1c,
];

/// Computes the Retry Integrity Tag over `u8 len || original_dcid || retry packet without tag`.
pub fn integrity_tag(
    provider: &dyn CryptoProvider,
    original_dcid: &ConnectionId,
    without_tag: &[u8],
) -> Result<[u8; 16], CryptoError> {
    let aead = provider.aead(CipherSuite::Aes256Gcm, &RETRY_INTEGRITY_KEY)?;
    let mut aad = Vec::with_capacity(1 + original_dcid.len() + without_tag.len());
    crate::wire::header::retry_pseudo_packet(&mut aad, original_dcid, without_tag);
    aead.seal_in_place(&RETRY_INTEGRITY_NONCE, &aad, &mut [])
}

/// Checks a received Retry Integrity Tag (constant-time comparison inside the AEAD).
pub fn verify_integrity_tag(
    provider: &dyn CryptoProvider,
    original_dcid: &ConnectionId,
    without_tag: &[u8],
    tag: &[u8; 16],
) -> bool {
    let Ok(aead) = provider.aead(CipherSuite::Aes256Gcm, &RETRY_INTEGRITY_KEY) else {
        return false;
    };
    let mut aad = Vec::with_capacity(1 + original_dcid.len() + without_tag.len());
    crate::wire::header::retry_pseudo_packet(&mut aad, original_dcid, without_tag);
    let mut buf = *tag;
    aead.open_in_place(&RETRY_INTEGRITY_NONCE, &aad, &mut buf)
        .is_ok()
}

/// What a valid token proves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidatedToken {
    /// The DCID of the client's very first Initial.
    pub original_dcid: ConnectionId,
    /// The SCID of our Retry (the DCID the client now uses).
    pub retry_scid: ConnectionId,
}

/// Seals and opens Retry tokens with a per-endpoint random key (PROTOCOL.md §12.2).
pub struct RetryTokenKey {
    aead: Box<dyn Aead>,
    key_id: u8,
}

impl core::fmt::Debug for RetryTokenKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RetryTokenKey").finish_non_exhaustive()
    }
}

fn address_aad(addr: &SocketAddr) -> Vec<u8> {
    let mut v = Vec::with_capacity(19);
    match addr {
        SocketAddr::V4(a) => {
            v.push(4);
            v.extend_from_slice(&a.ip().octets());
        }
        SocketAddr::V6(a) => {
            v.push(6);
            v.extend_from_slice(&a.ip().octets());
        }
    }
    v.extend_from_slice(&addr.port().to_be_bytes());
    v
}

impl RetryTokenKey {
    /// A fresh random key.
    pub fn generate(provider: &dyn CryptoProvider) -> Result<Self, CryptoError> {
        let mut key = zeroize::Zeroizing::new([0u8; 32]);
        provider.fill_random(key.as_mut_slice())?;
        Ok(Self {
            aead: provider.aead(CipherSuite::Aes256Gcm, key.as_slice())?,
            key_id: 0,
        })
    }

    /// Seals a token for `addr`, issued at `now` (engine time, milliseconds on the wire).
    pub fn seal(
        &self,
        provider: &dyn CryptoProvider,
        addr: &SocketAddr,
        now: Instant,
        original_dcid: &ConnectionId,
        retry_scid: &ConnectionId,
    ) -> Result<Vec<u8>, CryptoError> {
        let mut nonce = [0u8; 12];
        provider.fill_random(&mut nonce)?;
        let mut token = Vec::with_capacity(1 + 12 + 8 + 42 + 16);
        token.push(self.key_id);
        token.extend_from_slice(&nonce);
        let body_start = token.len();
        token.extend_from_slice(&(now.as_nanos() / 1_000_000).to_be_bytes());
        original_dcid.encode_with_len(&mut token);
        retry_scid.encode_with_len(&mut token);
        let tag = self
            .aead
            .seal_in_place(&nonce, &address_aad(addr), &mut token[body_start..])?;
        token.extend_from_slice(&tag);
        Ok(token)
    }

    /// Opens a token from `addr`: `None` if forged, from another address, or older than
    /// `lifetime`.
    pub fn open(
        &self,
        token: &[u8],
        addr: &SocketAddr,
        now: Instant,
        lifetime: core::time::Duration,
    ) -> Option<ValidatedToken> {
        if token.len() < 1 + 12 + 8 + 2 + 16 || token[0] != self.key_id {
            return None;
        }
        let nonce: [u8; 12] = token[1..13].try_into().ok()?;
        let mut body = token[13..].to_vec();
        let n = self
            .aead
            .open_in_place(&nonce, &address_aad(addr), &mut body)
            .ok()?;
        let body = &body[..n];
        let issued_ms = u64::from_be_bytes(body.get(..8)?.try_into().ok()?);
        let now_ms = now.as_nanos() / 1_000_000;
        let max_ms = u64::try_from(lifetime.as_millis()).unwrap_or(u64::MAX);
        if issued_ms > now_ms || now_ms - issued_ms > max_ms {
            return None;
        }
        let mut rest = &body[8..];
        let mut take_cid = || -> Option<ConnectionId> {
            let (&len, tail) = rest.split_first()?;
            let len = usize::from(len);
            let cid = ConnectionId::from_slice(tail.get(..len)?).ok()?;
            rest = &tail[len..];
            Some(cid)
        };
        let original_dcid = take_cid()?;
        let retry_scid = take_cid()?;
        Some(ValidatedToken {
            original_dcid,
            retry_scid,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::default_provider;
    use core::time::Duration;

    #[test]
    fn constants_match_the_spec_derivation() {
        let p = default_provider();
        assert_eq!(
            p.sha256(b"JetStreamProto v1 retry integrity key"),
            RETRY_INTEGRITY_KEY
        );
        assert_eq!(
            p.sha256(b"JetStreamProto v1 retry integrity nonce")[..12],
            RETRY_INTEGRITY_NONCE
        );
    }

    #[test]
    fn token_is_bound_to_address_and_lifetime() {
        let p = default_provider();
        let key = RetryTokenKey::generate(p.as_ref()).unwrap();
        let a: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:5000".parse().unwrap();
        let odcid = ConnectionId::from_slice(&[1; 8]).unwrap();
        let rscid = ConnectionId::from_slice(&[2; 8]).unwrap();
        let t0 = Instant::from_nanos(5_000_000_000);
        let tok = key.seal(p.as_ref(), &a, t0, &odcid, &rscid).unwrap();
        let life = Duration::from_secs(10);
        let v = key
            .open(&tok, &a, t0 + Duration::from_secs(1), life)
            .unwrap();
        assert_eq!(v.original_dcid, odcid);
        assert_eq!(v.retry_scid, rscid);
        assert!(key.open(&tok, &b, t0, life).is_none(), "other address");
        assert!(
            key.open(&tok, &a, t0 + Duration::from_secs(11), life)
                .is_none(),
            "expired"
        );
        let mut bad = tok.clone();
        bad[20] ^= 1;
        assert!(key.open(&bad, &a, t0, life).is_none(), "tampered");
    }

    #[test]
    fn integrity_tag_round_trip() {
        let p = default_provider();
        let odcid = ConnectionId::from_slice(&[9; 8]).unwrap();
        let tag = integrity_tag(p.as_ref(), &odcid, b"retry packet").unwrap();
        assert!(verify_integrity_tag(
            p.as_ref(),
            &odcid,
            b"retry packet",
            &tag
        ));
        assert!(!verify_integrity_tag(
            p.as_ref(),
            &odcid,
            b"retry packeT",
            &tag
        ));
    }
}
