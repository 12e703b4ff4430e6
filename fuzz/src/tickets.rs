//! The `ticket` target's world: a server ticket store ([`ResumptionState`]) with a seeded, hence
//! fixed, ticket key, and the real tickets it seals first, which the seed corpus also holds.

use std::sync::Arc;

use jsp_proto::crypto::{CipherSuite, CryptoProvider, Secret};
use jsp_proto::handshake::ticket::{ResumptionState, TicketRejection, TicketState};
use jsp_proto::identity::Fingerprint;
use jsp_proto::time::UnixTime;
use jsp_sim::engine::seeded_provider;

use crate::world::{SEED, UNIX_AT_ZERO};

/// Ticket key rotation of the store (seconds).
pub const ROTATION_SECS: u64 = 3600;
/// Ticket lifetime bound of the store (seconds).
pub const LIFETIME_SECS: u64 = 24 * 3600;

/// The states sealed into the sample tickets.
pub fn sample_states() -> Vec<TicketState> {
    let base = TicketState {
        psk: Secret::from_bytes([0x11; 32]),
        version: jsp_proto::VERSION_1,
        suite: CipherSuite::Aes256Gcm,
        issued_at: UnixTime(UNIX_AT_ZERO),
        lifetime: 7200,
        age_add: 0x0102_0304,
        max_early_data: 0,
        client: None,
    };
    let mut with_client = base.clone();
    with_client.psk = Secret::from_bytes([0x22; 32]);
    with_client.suite = CipherSuite::ChaCha20Poly1305;
    with_client.client = Some(Fingerprint::from_bytes([0x33; 32]));
    with_client.max_early_data = 64 * 1024;
    with_client.age_add = 0xffff_fff0;
    let mut short = base.clone();
    short.psk = Secret::from_bytes([0x44; 32]);
    short.lifetime = 1;
    vec![base, with_client, short]
}

/// A ticket store with its key fixed by the seed and the sample tickets sealed.
pub struct TicketWorld {
    provider: Arc<dyn CryptoProvider>,
    state: ResumptionState,
    sealed: Vec<(Vec<u8>, TicketState)>,
}

impl Default for TicketWorld {
    fn default() -> Self {
        Self::new()
    }
}

impl TicketWorld {
    /// The store, after sealing [`sample_states`] at `UNIX_AT_ZERO`.
    pub fn new() -> Self {
        let provider = seeded_provider(SEED, 30);
        let mut state = ResumptionState::new(ROTATION_SECS, LIFETIME_SECS, 64);
        let mut sealed = Vec::new();
        for s in sample_states() {
            match state.seal(provider.as_ref(), UnixTime(UNIX_AT_ZERO), &s) {
                Ok(t) => sealed.push((t, s)),
                Err(e) => panic!("setup: seal: {e}"),
            }
        }
        Self {
            provider,
            state,
            sealed,
        }
    }

    /// The sealed sample tickets with their states.
    pub fn sealed(&self) -> &[(Vec<u8>, TicketState)] {
        &self.sealed
    }

    /// The state sealed into `ticket`, if it is one of the samples byte for byte.
    pub fn sealed_state(&self, ticket: &[u8]) -> Option<&TicketState> {
        self.sealed
            .iter()
            .find(|(t, _)| t.as_slice() == ticket)
            .map(|(_, s)| s)
    }

    /// [`ResumptionState::open`].
    pub fn open(
        &mut self,
        now: UnixTime,
        ticket: &[u8],
        age: u32,
    ) -> Result<TicketState, TicketRejection> {
        self.state.open(self.provider.as_ref(), now, ticket, age)
    }

    /// [`ResumptionState::accept`].
    pub fn accept(
        &mut self,
        now: UnixTime,
        ticket: &[u8],
        age: u32,
    ) -> Result<TicketState, TicketRejection> {
        self.state.accept(self.provider.as_ref(), now, ticket, age)
    }
}

/// The (time, obfuscated age) pairs every input is opened with: consistent ages for each sample,
/// a zero and a maximal age, before issue, within and past the lifetimes, and past key rotation.
pub fn probes(w: &TicketWorld) -> Vec<(UnixTime, u32)> {
    let mut out = vec![
        (UnixTime(UNIX_AT_ZERO), 0),
        (UnixTime(UNIX_AT_ZERO.saturating_sub(5)), u32::MAX),
        (UnixTime(u64::MAX), 0),
    ];
    for (_, s) in w.sealed() {
        for secs in [0u64, 3, 7199, 7200, ROTATION_SECS + 1] {
            let age_ms = u32::try_from(secs * 1000).unwrap_or(u32::MAX);
            out.push((
                UnixTime(UNIX_AT_ZERO + secs),
                s.age_add.wrapping_add(age_ms),
            ));
        }
    }
    out
}

/// A time and age at which `ticket`, if it is a sample, is fresh.
pub fn fresh_probe(w: &TicketWorld, ticket: &[u8]) -> (UnixTime, u32) {
    let age_add = w.sealed_state(ticket).map_or(0, |s| s.age_add);
    (UnixTime(UNIX_AT_ZERO), age_add)
}
