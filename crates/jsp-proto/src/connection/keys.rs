//! 1-RTT key phases (PROTOCOL.md §9): the current send and receive keys, the previous receive keys
//! kept for reordered packets, the next receive keys tried when the peer flips the Key Phase bit,
//! and the bookkeeping that decides when this side may initiate a key update.

use core::time::Duration;

use crate::crypto::{
    packet_key, CipherSuite, CryptoError, CryptoProvider, DirectionalKeys, HeaderKey, PacketKeys,
    Secret,
};
use crate::time::Instant;

/// 1-RTT keys of a connection. Generations count key updates; the Key Phase bit is the low bit of
/// the generation. Send and receive generations differ by at most one, and only while an update
/// this side initiated waits for the peer to follow.
#[derive(Debug)]
pub struct AppKeys {
    suite: CipherSuite,
    send_secret: Secret,
    recv_secret: Secret,
    /// Keys we send with.
    pub send: DirectionalKeys,
    /// Keys we receive with in the current phase.
    pub recv: DirectionalKeys,
    send_generation: u64,
    recv_generation: u64,
    prev_recv: Option<(PacketKeys, Instant)>,
    next_recv: Option<(Secret, PacketKeys)>,
    first_recv_in_phase: Option<u64>,
    first_sent_in_phase: Option<u64>,
    /// When the peer first acknowledged a packet sent in the current send phase: the update
    /// that started the phase is confirmed.
    phase_acked_at: Option<Instant>,
    /// Packets sent with the current send keys.
    sent_in_phase: u64,
    /// When the current send phase started.
    phase_started: Instant,
}

/// Which keys opened a received 1-RTT packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecvPhase {
    /// The current receive keys.
    Current,
    /// The previous phase's keys (a reordered packet).
    Previous,
    /// The next phase's keys: the peer updated (or answered our update).
    Next,
}

impl AppKeys {
    /// Builds first-generation keys from the handshake's secrets.
    pub fn new(
        provider: &dyn CryptoProvider,
        suite: CipherSuite,
        send_secret: Secret,
        recv_secret: Secret,
        now: Instant,
    ) -> Result<Self, CryptoError> {
        Ok(Self {
            suite,
            send: DirectionalKeys::new(provider, suite, &send_secret)?,
            recv: DirectionalKeys::new(provider, suite, &recv_secret)?,
            send_secret,
            recv_secret,
            send_generation: 0,
            recv_generation: 0,
            prev_recv: None,
            next_recv: None,
            first_recv_in_phase: None,
            first_sent_in_phase: None,
            phase_acked_at: None,
            sent_in_phase: 0,
            phase_started: now,
        })
    }

    /// The Key Phase bit to send.
    pub fn send_phase(&self) -> bool {
        self.send_generation % 2 == 1
    }

    /// How many key updates happened (send side).
    pub fn generation(&self) -> u64 {
        self.send_generation
    }

    /// The header-protection key for received packets (the same in every phase).
    pub fn recv_header(&self) -> &HeaderKey {
        &self.recv.header
    }

    /// Which phase a received packet with Key Phase `bit` and number `pn` belongs to.
    pub fn classify(&self, bit: bool, pn: u64) -> RecvPhase {
        if bit == (self.recv_generation % 2 == 1) {
            RecvPhase::Current
        } else if self.prev_recv.is_some() && self.first_recv_in_phase.is_some_and(|f| pn < f) {
            RecvPhase::Previous
        } else {
            RecvPhase::Next
        }
    }

    /// The packet keys for `phase`, deriving the next generation on demand.
    pub fn recv_keys(
        &mut self,
        provider: &dyn CryptoProvider,
        phase: RecvPhase,
    ) -> Result<&PacketKeys, CryptoError> {
        match phase {
            RecvPhase::Current => Ok(&self.recv.packet),
            RecvPhase::Previous => match &self.prev_recv {
                Some((k, _)) => Ok(k),
                None => Err(CryptoError::VerifyFailed),
            },
            RecvPhase::Next => {
                if self.next_recv.is_none() {
                    self.next_recv = Some(packet_key::next_generation(
                        provider,
                        self.suite,
                        &self.recv_secret,
                    )?);
                }
                match &self.next_recv {
                    Some((_, k)) => Ok(k),
                    None => Err(CryptoError::VerifyFailed),
                }
            }
        }
    }

    /// Records that packet `pn` authenticated under `phase`. Returns true if this switched the
    /// receive keys (the peer updated).
    pub fn on_authenticated(
        &mut self,
        provider: &dyn CryptoProvider,
        phase: RecvPhase,
        pn: u64,
        now: Instant,
        keep_previous_for: Duration,
    ) -> Result<bool, CryptoError> {
        match phase {
            RecvPhase::Current => {
                if self.first_recv_in_phase.is_none_or(|f| pn < f) {
                    self.first_recv_in_phase = Some(pn);
                }
                Ok(false)
            }
            RecvPhase::Previous => Ok(false),
            RecvPhase::Next => {
                let Some((secret, keys)) = self.next_recv.take() else {
                    return Ok(false);
                };
                let old = std::mem::replace(&mut self.recv.packet, keys);
                self.recv_secret = secret;
                self.prev_recv = Some((old, now + keep_previous_for));
                self.first_recv_in_phase = Some(pn);
                self.recv_generation += 1;
                if self.send_generation < self.recv_generation {
                    // The peer initiated: follow it (PROTOCOL.md §9).
                    self.rotate_send(provider, now)?;
                }
                Ok(true)
            }
        }
    }

    /// Records a packet sent with the current keys.
    pub fn on_sent(&mut self, pn: u64) {
        self.sent_in_phase += 1;
        if self.first_sent_in_phase.is_none() {
            self.first_sent_in_phase = Some(pn);
        }
    }

    /// Records that the peer acknowledged packet `pn` at `now`.
    pub fn on_acked(&mut self, pn: u64, now: Instant) {
        if self.phase_acked_at.is_none() && self.first_sent_in_phase.is_some_and(|f| pn >= f) {
            self.phase_acked_at = Some(now);
        }
    }

    /// Whether this side may start a key update at `now` (PROTOCOL.md §9): the current phase
    /// is confirmed (the peer acknowledged a packet sent in it) and `wait` (three PTOs) has
    /// passed since, so the peer has dropped the keys two phases back and can still read the
    /// reordered packets of the phase before this one.
    pub fn may_initiate(&self, now: Instant, wait: Duration) -> bool {
        self.send_generation == self.recv_generation
            && self
                .phase_acked_at
                .is_some_and(|t| now >= t.saturating_add(wait))
    }

    /// Whether the automatic-update thresholds were reached.
    pub fn update_due(&self, now: Instant, max_packets: u64, max_age: Duration) -> bool {
        self.sent_in_phase >= max_packets
            || now.saturating_duration_since(self.phase_started) >= max_age
    }

    /// When [`Self::may_initiate`] turns true, if the current phase is confirmed.
    pub fn update_allowed_at(&self, wait: Duration) -> Option<Instant> {
        self.phase_acked_at.map(|t| t.saturating_add(wait))
    }

    /// Starts a key update: the next packets go out under the next generation.
    pub fn initiate(
        &mut self,
        provider: &dyn CryptoProvider,
        now: Instant,
    ) -> Result<(), CryptoError> {
        self.rotate_send(provider, now)
    }

    fn rotate_send(
        &mut self,
        provider: &dyn CryptoProvider,
        now: Instant,
    ) -> Result<(), CryptoError> {
        let (secret, keys) = self.send.next_generation(provider, &self.send_secret)?;
        self.send = keys;
        self.send_secret = secret;
        self.send_generation += 1;
        self.first_sent_in_phase = None;
        self.phase_acked_at = None;
        self.sent_in_phase = 0;
        self.phase_started = now;
        Ok(())
    }

    /// When the previous receive keys are due to be discarded.
    pub fn discard_deadline(&self) -> Option<Instant> {
        self.prev_recv.as_ref().map(|(_, t)| *t)
    }

    /// Discards the previous receive keys once their grace period ended.
    pub fn on_timeout(&mut self, now: Instant) {
        if self.prev_recv.as_ref().is_some_and(|(_, t)| now >= *t) {
            self.prev_recv = None;
        }
    }
}
