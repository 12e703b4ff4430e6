//! Connection IDs and paths (PROTOCOL.md §3, §15.2): the spare connection IDs each side issues to
//! the other (NEW_CONNECTION_ID / RETIRE_CONNECTION_ID, with stateless reset tokens), the peer's
//! reset tokens, and validation of a new peer address with PATH_CHALLENGE / PATH_RESPONSE.

use core::net::SocketAddr;
use std::collections::{BTreeMap, VecDeque};

use crate::error::ErrorCode;
use crate::time::Instant;
use crate::wire::header::ConnectionId;

/// Spare CIDs we keep issued to the peer (bounded by its `active_connection_id_limit`).
pub const MAX_ISSUED_CIDS: u64 = 4;
/// Most PATH_RESPONSE frames queued (a flood of challenges cannot grow memory).
pub const MAX_PENDING_RESPONSES: usize = 4;

/// A NEW_CONNECTION_ID frame to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IssuedCid {
    /// Sequence number.
    pub sequence: u64,
    /// The CID.
    pub cid: ConnectionId,
    /// Its stateless reset token.
    pub reset_token: [u8; 16],
}

/// What a connection asks of its endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointRequest {
    /// Mint this many new CIDs (route them here) and hand them to `Connection::add_local_cid`.
    MintCids(u64),
    /// Stop routing this CID to the connection.
    RetireCid(ConnectionId),
    /// A datagram ending with this token is a stateless reset of the connection.
    RegisterResetToken([u8; 16]),
}

/// CID bookkeeping for both directions.
#[derive(Debug, Default)]
pub struct CidState {
    /// CIDs the peer issued us: sequence -> (cid, reset token).
    remote: BTreeMap<u64, (ConnectionId, Option<[u8; 16]>)>,
    active_remote_seq: u64,
    remote_retire_prior_to: u64,
    /// RETIRE_CONNECTION_ID frames to send.
    pub retire_pending: Vec<u64>,
    /// CIDs we issued: sequence -> cid.
    local: BTreeMap<u64, ConnectionId>,
    next_local_seq: u64,
    /// NEW_CONNECTION_ID frames to send.
    pub new_cid_pending: Vec<IssuedCid>,
    /// Issued CIDs kept for retransmission of their frame.
    issued: BTreeMap<u64, IssuedCid>,
    /// Requests for the endpoint.
    pub requests: VecDeque<EndpointRequest>,
    /// Our `active_connection_id_limit`.
    local_limit: u64,
}

impl CidState {
    /// State for a connection whose first CIDs are `local` (ours, sequence 0) and `remote`
    /// (the peer's, sequence 0, with its reset token if known).
    pub fn new(local: ConnectionId, remote: ConnectionId, local_limit: u64) -> Self {
        let mut s = Self {
            local_limit,
            next_local_seq: 1,
            ..Self::default()
        };
        s.local.insert(0, local);
        s.remote.insert(0, (remote, None));
        s
    }

    /// The CID to put in outgoing packets.
    pub fn active_remote(&self) -> Option<ConnectionId> {
        self.remote.get(&self.active_remote_seq).map(|(c, _)| *c)
    }

    /// Replaces the peer's sequence-0 CID (the client learns the server's from its first
    /// Initial, or after Retry).
    pub fn set_initial_remote(&mut self, cid: ConnectionId) {
        self.remote.insert(0, (cid, None));
    }

    /// Records the reset token of the peer's sequence-0 CID (server transport parameter).
    pub fn set_initial_remote_token(&mut self, token: [u8; 16]) {
        if let Some(e) = self.remote.get_mut(&0) {
            e.1 = Some(token);
            self.requests
                .push_back(EndpointRequest::RegisterResetToken(token));
        }
    }

    /// Whether `tail` (the last 16 bytes of a datagram) is one of the peer's reset tokens.
    pub fn is_reset_token(&self, tail: &[u8]) -> bool {
        self.remote
            .values()
            .filter_map(|(_, t)| t.as_ref())
            .any(|t| constant_time_eq(t, tail))
    }

    /// After the handshake: ask the endpoint for spare CIDs, up to the peer's limit.
    pub fn request_spares(&mut self, peer_limit: u64) {
        let want = peer_limit
            .min(MAX_ISSUED_CIDS)
            .saturating_sub(self.local.len() as u64);
        if want > 0 {
            self.requests.push_back(EndpointRequest::MintCids(want));
        }
    }

    /// The endpoint minted `cid` with `reset_token` for us: announce it.
    pub fn add_local(&mut self, cid: ConnectionId, reset_token: [u8; 16]) {
        let sequence = self.next_local_seq;
        self.next_local_seq += 1;
        self.local.insert(sequence, cid);
        let issued = IssuedCid {
            sequence,
            cid,
            reset_token,
        };
        self.issued.insert(sequence, issued);
        self.new_cid_pending.push(issued);
    }

    /// A NEW_CONNECTION_ID frame we sent was lost.
    pub fn on_new_cid_lost(&mut self, sequence: u64) {
        if let Some(i) = self.issued.get(&sequence) {
            self.new_cid_pending.push(*i);
        }
    }

    /// A NEW_CONNECTION_ID frame from the peer.
    pub fn on_new_cid(
        &mut self,
        sequence: u64,
        retire_prior_to: u64,
        cid: ConnectionId,
        token: [u8; 16],
    ) -> Result<(), (ErrorCode, &'static str)> {
        if let Some((existing, _)) = self.remote.get(&sequence) {
            if *existing != cid {
                return Err((ErrorCode::PROTOCOL_ERROR, "sequence reused for another CID"));
            }
            return Ok(());
        }
        if sequence < self.remote_retire_prior_to {
            // Already retired: retire it again immediately.
            self.retire_pending.push(sequence);
            return Ok(());
        }
        self.remote.insert(sequence, (cid, Some(token)));
        self.requests
            .push_back(EndpointRequest::RegisterResetToken(token));
        if retire_prior_to > self.remote_retire_prior_to {
            self.remote_retire_prior_to = retire_prior_to;
            let old: Vec<u64> = self
                .remote
                .range(..retire_prior_to)
                .map(|(s, _)| *s)
                .collect();
            for s in old {
                self.remote.remove(&s);
                self.retire_pending.push(s);
            }
            if self.active_remote_seq < retire_prior_to {
                if let Some((&s, _)) = self.remote.iter().next() {
                    self.active_remote_seq = s;
                }
            }
        }
        if self.remote.len() as u64 > self.local_limit {
            return Err((
                ErrorCode::CONNECTION_ID_LIMIT_ERROR,
                "too many connection IDs",
            ));
        }
        Ok(())
    }

    /// A RETIRE_CONNECTION_ID from the peer: forget that CID of ours and mint a replacement.
    pub fn on_retire(&mut self, sequence: u64) -> Result<(), (ErrorCode, &'static str)> {
        if sequence >= self.next_local_seq {
            return Err((ErrorCode::PROTOCOL_ERROR, "retired a CID never issued"));
        }
        if let Some(cid) = self.local.remove(&sequence) {
            self.issued.remove(&sequence);
            self.requests.push_back(EndpointRequest::RetireCid(cid));
            self.requests.push_back(EndpointRequest::MintCids(1));
        }
        Ok(())
    }

    /// Switches to an unused peer CID (voluntary migration: the new path is not linkable to the
    /// old one). Returns false if no spare is available.
    pub fn rotate_remote(&mut self) -> bool {
        let next = self
            .remote
            .range(self.active_remote_seq + 1..)
            .next()
            .map(|(s, _)| *s);
        let Some(next) = next else {
            return false;
        };
        let old = self.active_remote_seq;
        self.remote.remove(&old);
        self.retire_pending.push(old);
        self.active_remote_seq = next;
        true
    }

    /// Number of spare peer CIDs.
    pub fn spare_remote(&self) -> usize {
        self.remote.len().saturating_sub(1)
    }
}

/// Compares without an early exit (reset tokens are secrets).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Validation state of the current peer address.
#[derive(Debug, Default)]
pub struct PathState {
    /// Outstanding PATH_CHALLENGE data and when validation gives up.
    pub challenge: Option<([u8; 8], Instant)>,
    /// Whether the challenge frame still has to be sent.
    pub challenge_pending: bool,
    /// PATH_RESPONSE frames to send.
    pub responses: VecDeque<[u8; 8]>,
    /// The address we used before a migration, to fall back to if validation fails.
    pub previous: Option<SocketAddr>,
}

impl PathState {
    /// Queues a PATH_RESPONSE (bounded).
    pub fn on_challenge(&mut self, data: [u8; 8]) {
        if self.responses.len() >= MAX_PENDING_RESPONSES {
            self.responses.pop_front();
        }
        self.responses.push_back(data);
    }

    /// A PATH_RESPONSE arrived: true if it validates the current path.
    pub fn on_response(&mut self, data: [u8; 8]) -> bool {
        if self.challenge.is_some_and(|(c, _)| c == data) {
            self.challenge = None;
            self.challenge_pending = false;
            self.previous = None;
            return true;
        }
        false
    }
}
