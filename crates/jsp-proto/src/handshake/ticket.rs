//! Session tickets and 0-RTT anti-replay (PROTOCOL.md §13).
//!
//! The server seals its resumption state into an opaque ticket with a rotating AES-256-GCM key and
//! remembers every ticket it accepted until that ticket expires, in a bounded store, so each
//! ticket resumes at most one session. The client keeps the ticket with the secret it needs to
//! use it ([`SessionTicket`]).

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use zeroize::Zeroizing;

use crate::crypto::{Aead, CipherSuite, CryptoError, CryptoProvider, Secret};
use crate::handshake::PeerIdentity;
use crate::identity::Fingerprint;
use crate::time::UnixTime;

/// A ticket the client stores to resume a session later (PROTOCOL.md §13.2). Holds a secret:
/// keep it as private as a password; it is zeroized on drop and never printed.
#[derive(Clone)]
pub struct SessionTicket {
    /// The opaque ticket bytes.
    pub ticket: Vec<u8>,
    /// The resumption PSK (secret).
    pub(crate) psk: Secret,
    /// Version and suite of the original session.
    pub version: u32,
    /// Suite of the original session.
    pub suite: CipherSuite,
    /// When the client received it.
    pub received_at: UnixTime,
    /// Lifetime in seconds.
    pub lifetime: u32,
    /// Added to the ticket age to obfuscate it.
    pub age_add: u32,
    /// 0-RTT bytes the server allows (0 = no 0-RTT).
    pub max_early_data: u32,
    /// The server that issued it (its authenticated identity).
    pub server: Option<PeerIdentity>,
    /// The server's transport limits, remembered for 0-RTT (PROTOCOL.md §13.4).
    pub(crate) remembered_params: Vec<u8>,
}

impl core::fmt::Debug for SessionTicket {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SessionTicket")
            .field("len", &self.ticket.len())
            .field("suite", &self.suite)
            .field("received_at", &self.received_at)
            .field("lifetime", &self.lifetime)
            .field("max_early_data", &self.max_early_data)
            .finish_non_exhaustive()
    }
}

impl PartialEq for SessionTicket {
    fn eq(&self, other: &Self) -> bool {
        self.ticket == other.ticket
    }
}

impl Eq for SessionTicket {}

impl SessionTicket {
    /// Whether the ticket is still within its lifetime at `now`.
    pub fn is_valid_at(&self, now: UnixTime) -> bool {
        now.0 >= self.received_at.0 && now.0 - self.received_at.0 < u64::from(self.lifetime)
    }
}

/// What a ticket carries for the server (sealed inside it).
#[derive(Debug, Clone)]
pub struct TicketState {
    /// The resumption PSK.
    pub psk: Secret,
    /// Version of the original session.
    pub version: u32,
    /// Suite of the original session.
    pub suite: CipherSuite,
    /// Issue time.
    pub issued_at: UnixTime,
    /// Lifetime in seconds.
    pub lifetime: u32,
    /// The age obfuscator.
    pub age_add: u32,
    /// 0-RTT allowance.
    pub max_early_data: u32,
    /// The client's authenticated identity in the original session.
    pub client: Option<Fingerprint>,
}

const STATE_LEN_MIN: usize = 32 + 4 + 2 + 8 + 4 + 4 + 4 + 1;

impl TicketState {
    fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut v = Zeroizing::new(Vec::with_capacity(STATE_LEN_MIN + 32));
        v.extend_from_slice(self.psk.as_bytes());
        v.extend_from_slice(&self.version.to_be_bytes());
        v.extend_from_slice(&self.suite.code().to_be_bytes());
        v.extend_from_slice(&self.issued_at.0.to_be_bytes());
        v.extend_from_slice(&self.lifetime.to_be_bytes());
        v.extend_from_slice(&self.age_add.to_be_bytes());
        v.extend_from_slice(&self.max_early_data.to_be_bytes());
        match &self.client {
            Some(fp) => {
                v.push(1);
                v.extend_from_slice(fp.as_bytes());
            }
            None => v.push(0),
        }
        v
    }

    fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < STATE_LEN_MIN {
            return None;
        }
        let psk = Secret::from_bytes(b[0..32].try_into().ok()?);
        let u32_at = |i: usize| -> Option<u32> {
            Some(u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?))
        };
        let version = u32_at(32)?;
        let suite = CipherSuite::from_code(u16::from_be_bytes(b.get(36..38)?.try_into().ok()?))?;
        let issued_at = UnixTime(u64::from_be_bytes(b.get(38..46)?.try_into().ok()?));
        let lifetime = u32_at(46)?;
        let age_add = u32_at(50)?;
        let max_early_data = u32_at(54)?;
        let client = match b.get(58)? {
            0 if b.len() == 59 => None,
            1 if b.len() == 59 + 32 => Some(Fingerprint::from_bytes(b[59..91].try_into().ok()?)),
            _ => return None,
        };
        Some(Self {
            psk,
            version,
            suite,
            issued_at,
            lifetime,
            age_add,
            max_early_data,
            client,
        })
    }
}

struct TicketKey {
    id: u32,
    aead: Box<dyn Aead>,
    created: UnixTime,
}

/// Rotating ticket-sealing keys plus the anti-replay store, shared by every connection (and every
/// endpoint) of a server.
pub struct ResumptionState {
    current: Option<TicketKey>,
    previous: Option<TicketKey>,
    next_id: u32,
    rotation_secs: u64,
    lifetime_secs: u64,
    seen: HashSet<[u8; 32]>,
    seen_order: VecDeque<([u8; 32], u64)>,
    capacity: usize,
}

impl core::fmt::Debug for ResumptionState {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ResumptionState")
            .field("remembered", &self.seen.len())
            .finish_non_exhaustive()
    }
}

/// Why a ticket was not accepted (the handshake then falls back to a full handshake).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketRejection {
    /// Not sealed by a key we hold (forged, or its key rotated out).
    UnknownKey,
    /// Past its lifetime, or its reported age is inconsistent.
    Stale,
    /// Already used once (PROTOCOL.md §13.3).
    Replayed,
    /// The anti-replay store is full (fail closed).
    StoreFull,
}

/// Allowed difference between the client's reported ticket age and ours, in milliseconds.
pub const MAX_AGE_SKEW_MS: u64 = 10_000;

impl ResumptionState {
    /// Empty state; keys are created on first use.
    pub fn new(rotation_secs: u64, lifetime_secs: u64, capacity: usize) -> Self {
        Self {
            current: None,
            previous: None,
            next_id: 1,
            rotation_secs: rotation_secs.max(1),
            lifetime_secs,
            seen: HashSet::new(),
            seen_order: VecDeque::new(),
            capacity,
        }
    }

    fn rotate_if_due(
        &mut self,
        provider: &dyn CryptoProvider,
        now: UnixTime,
    ) -> Result<(), CryptoError> {
        let due = self
            .current
            .as_ref()
            .is_none_or(|k| now.0.saturating_sub(k.created.0) >= self.rotation_secs);
        if due {
            let mut key = Zeroizing::new([0u8; 32]);
            provider.fill_random(key.as_mut_slice())?;
            let new = TicketKey {
                id: self.next_id,
                aead: provider.aead(CipherSuite::Aes256Gcm, key.as_slice())?,
                created: now,
            };
            self.next_id = self.next_id.wrapping_add(1);
            self.previous = self.current.replace(new);
        }
        // The previous key stays for one ticket lifetime after it stopped issuing.
        let drop_prev = self.previous.as_ref().is_some_and(|_| {
            self.current
                .as_ref()
                .is_some_and(|c| now.0.saturating_sub(c.created.0) > self.lifetime_secs)
        });
        if drop_prev {
            self.previous = None;
        }
        Ok(())
    }

    /// Seals `state` into a ticket (PROTOCOL.md §13.1).
    pub fn seal(
        &mut self,
        provider: &dyn CryptoProvider,
        now: UnixTime,
        state: &TicketState,
    ) -> Result<Vec<u8>, CryptoError> {
        self.rotate_if_due(provider, now)?;
        let key = self
            .current
            .as_ref()
            .ok_or(CryptoError::Internal("no ticket key"))?;
        let mut nonce = [0u8; 12];
        provider.fill_random(&mut nonce)?;
        let id = key.id.to_be_bytes();
        let mut out = Vec::with_capacity(4 + 12 + STATE_LEN_MIN + 48);
        out.extend_from_slice(&id);
        out.extend_from_slice(&nonce);
        let start = out.len();
        out.extend_from_slice(&state.encode());
        let tag = key.aead.seal_in_place(&nonce, &id, &mut out[start..])?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Opens a ticket and checks its age (PROTOCOL.md §13.2). Does not record it: call
    /// [`ResumptionState::mark_used`] once the binder verified, so that nobody without the PSK can
    /// burn a ticket they saw on the wire.
    pub fn open(
        &mut self,
        provider: &dyn CryptoProvider,
        now: UnixTime,
        ticket: &[u8],
        obfuscated_age: u32,
    ) -> Result<TicketState, TicketRejection> {
        let _ = self.rotate_if_due(provider, now);
        if ticket.len() < 4 + 12 + 16 {
            return Err(TicketRejection::UnknownKey);
        }
        let id_bytes: [u8; 4] = ticket[..4]
            .try_into()
            .map_err(|_| TicketRejection::UnknownKey)?;
        let id = u32::from_be_bytes(id_bytes);
        let key = [self.current.as_ref(), self.previous.as_ref()]
            .into_iter()
            .flatten()
            .find(|k| k.id == id)
            .ok_or(TicketRejection::UnknownKey)?;
        let nonce: [u8; 12] = ticket[4..16]
            .try_into()
            .map_err(|_| TicketRejection::UnknownKey)?;
        let mut body = Zeroizing::new(ticket[16..].to_vec());
        let n = key
            .aead
            .open_in_place(&nonce, &id_bytes, &mut body)
            .map_err(|_| TicketRejection::UnknownKey)?;
        let state = TicketState::decode(&body[..n]).ok_or(TicketRejection::UnknownKey)?;
        let age_secs = now
            .0
            .checked_sub(state.issued_at.0)
            .ok_or(TicketRejection::Stale)?;
        if age_secs >= u64::from(state.lifetime) {
            return Err(TicketRejection::Stale);
        }
        let client_age_ms = u64::from(obfuscated_age.wrapping_sub(state.age_add));
        if client_age_ms.abs_diff(age_secs * 1000) > MAX_AGE_SKEW_MS + 1000 {
            return Err(TicketRejection::Stale);
        }
        Ok(state)
    }

    /// Records that `ticket` (issued with `state`) was used; refuses a second use and, when the
    /// store is full, every ticket it cannot record (PROTOCOL.md §13.3).
    pub fn mark_used(
        &mut self,
        provider: &dyn CryptoProvider,
        now: UnixTime,
        ticket: &[u8],
        state: &TicketState,
    ) -> Result<(), TicketRejection> {
        let h = provider.sha256(ticket);
        while let Some((old, exp)) = self.seen_order.front().copied() {
            if exp > now.0 {
                break;
            }
            self.seen_order.pop_front();
            self.seen.remove(&old);
        }
        if self.seen.contains(&h) {
            return Err(TicketRejection::Replayed);
        }
        if self.seen.len() >= self.capacity {
            return Err(TicketRejection::StoreFull);
        }
        self.seen.insert(h);
        self.seen_order
            .push_back((h, state.issued_at.0 + u64::from(state.lifetime)));
        Ok(())
    }

    /// [`ResumptionState::open`] then [`ResumptionState::mark_used`].
    pub fn accept(
        &mut self,
        provider: &dyn CryptoProvider,
        now: UnixTime,
        ticket: &[u8],
        obfuscated_age: u32,
    ) -> Result<TicketState, TicketRejection> {
        let state = self.open(provider, now, ticket, obfuscated_age)?;
        self.mark_used(provider, now, ticket, &state)?;
        Ok(state)
    }

    /// Tickets currently remembered by the anti-replay store.
    pub fn remembered(&self) -> usize {
        self.seen.len()
    }
}

/// Shared, lockable resumption state.
pub type SharedResumption = std::sync::Arc<Mutex<ResumptionState>>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::default_provider;

    fn state(now: u64) -> TicketState {
        TicketState {
            psk: Secret::from_bytes([7; 32]),
            version: crate::VERSION_1,
            suite: CipherSuite::ChaCha20Poly1305,
            issued_at: UnixTime(now),
            lifetime: 100,
            age_add: 12345,
            max_early_data: 1000,
            client: None,
        }
    }

    #[test]
    fn ticket_is_accepted_once_then_replay_is_refused() {
        let p = default_provider();
        let mut r = ResumptionState::new(3600, 100, 10);
        let t = r.seal(p.as_ref(), UnixTime(1000), &state(1000)).unwrap();
        let s = r
            .accept(p.as_ref(), UnixTime(1005), &t, 5000 + 12345)
            .unwrap();
        assert_eq!(s.psk.as_bytes(), &[7; 32]);
        assert_eq!(s.suite, CipherSuite::ChaCha20Poly1305);
        assert_eq!(
            r.accept(p.as_ref(), UnixTime(1006), &t, 6000 + 12345)
                .unwrap_err(),
            TicketRejection::Replayed
        );
    }

    #[test]
    fn stale_forged_and_full_are_refused() {
        let p = default_provider();
        let mut r = ResumptionState::new(3600, 100, 1);
        let t1 = r.seal(p.as_ref(), UnixTime(1000), &state(1000)).unwrap();
        let t2 = r.seal(p.as_ref(), UnixTime(1000), &state(1000)).unwrap();
        assert_eq!(
            r.accept(p.as_ref(), UnixTime(1200), &t1, 12345)
                .unwrap_err(),
            TicketRejection::Stale
        );
        let mut forged = t2.clone();
        forged[20] ^= 1;
        assert_eq!(
            r.accept(p.as_ref(), UnixTime(1001), &forged, 1000 + 12345)
                .unwrap_err(),
            TicketRejection::UnknownKey
        );
        r.accept(p.as_ref(), UnixTime(1001), &t2, 1000 + 12345)
            .unwrap();
        let t3 = r.seal(p.as_ref(), UnixTime(1001), &state(1001)).unwrap();
        assert_eq!(
            r.accept(p.as_ref(), UnixTime(1002), &t3, 1000 + 12345)
                .unwrap_err(),
            TicketRejection::StoreFull
        );
        // Once the remembered ticket expires, room is made again.
        let t4 = r.seal(p.as_ref(), UnixTime(1150), &state(1150)).unwrap();
        r.accept(p.as_ref(), UnixTime(1150), &t4, 12345).unwrap();
    }

    #[test]
    fn rotated_keys_still_open_recent_tickets() {
        let p = default_provider();
        let mut r = ResumptionState::new(10, 100, 10);
        let t = r.seal(p.as_ref(), UnixTime(1000), &state(1000)).unwrap();
        let _ = r.seal(p.as_ref(), UnixTime(1020), &state(1020)).unwrap(); // rotates
        r.accept(p.as_ref(), UnixTime(1021), &t, 21_000 + 12345)
            .unwrap();
    }
}
