//! The `client_server_pair` target's world: a real seeded client and a real seeded server
//! ([`ServerHarness`]) with the network in the fuzzer's hands. Datagrams in flight wait in one
//! queue per direction; the input chooses which to deliver (any index, so reordering is free),
//! drop, duplicate or bit-flip, when time passes, and a few application actions (key updates,
//! closes, client migration and NAT rebinding). Unless the input turns it off, a settle phase then
//! delivers everything in order and runs the timers, so short inputs still reach 1-RTT.
//!
//! Invariants checked (everything else is "no panic"): the server's per-address amplification
//! limit and datagram bounds ([`ServerHarness`]), the client's datagram bounds and echo integrity
//! ([`ClientSide`]), and no livelock in either `poll_transmit`.
//!
//! Input format (see [`crate::input`]): `mode u8` (bits 0-3: Retry policy, [`retry_policy`];
//! bit 4: resume a session from a ticket of a clean first connection, with 0-RTT; bit 5: no settle
//! phase), then operations, each `tag u8` and: tag % 8 = 0 deliver, 1 drop, 2 duplicate
//! (`sel u8`: bit 0 toward the server, the rest the queue index); 3 flip (`sel u8, pos u16, bit
//! u8`); 4 advance `ms u16`; 5 advance to the next timer; 6 application action `action u8`;
//! 7 deliver everything queued, in order.

use std::collections::VecDeque;
use std::net::SocketAddr;

use arbitrary::{Arbitrary, Unstructured};
use jsp_proto::CloseReason;

use crate::input::{take_u16, take_u8, Writer};
use crate::server::{run_client, Recording, ServerHarness};
use crate::world::{client_addr, ms, retry_policy, ClientSide, MAX_BURST, PEERS};

/// Most operations one input runs.
pub const MAX_OPS: usize = 512;
/// Most datagrams waiting in one direction; the oldest is lost beyond.
pub const MAX_QUEUE: usize = 256;
/// Rounds of the settle phase.
pub const SETTLE_ROUNDS: usize = 400;
/// Virtual time after which the settle phase stops (ms).
pub const SETTLE_LIMIT_MS: u64 = 120_000;

/// `mode` bit: resume from a ticket.
pub const MODE_RESUME: u8 = 0x10;
/// `mode` bit: skip the settle phase.
pub const MODE_NO_SETTLE: u8 = 0x20;

/// An application action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppAction {
    /// The client requests a key update.
    ClientKeyUpdate,
    /// The server's connections request a key update.
    ServerKeyUpdate,
    /// The client closes gracefully.
    ClientClose,
    /// The server closes its connections gracefully.
    ServerClose,
    /// The client switches to a spare connection ID and pings.
    ClientMigrate,
    /// The client's datagrams now come from its other address (NAT rebinding).
    ClientRebind,
    /// The client sends another datagram.
    ClientDatagram,
    /// The client aborts at once.
    ClientAbort,
}

impl AppAction {
    fn from_byte(b: u8) -> Self {
        match b % 8 {
            0 => AppAction::ClientKeyUpdate,
            1 => AppAction::ServerKeyUpdate,
            2 => AppAction::ClientClose,
            3 => AppAction::ServerClose,
            4 => AppAction::ClientMigrate,
            5 => AppAction::ClientRebind,
            6 => AppAction::ClientDatagram,
            _ => AppAction::ClientAbort,
        }
    }

    fn to_byte(self) -> u8 {
        match self {
            AppAction::ClientKeyUpdate => 0,
            AppAction::ServerKeyUpdate => 1,
            AppAction::ClientClose => 2,
            AppAction::ServerClose => 3,
            AppAction::ClientMigrate => 4,
            AppAction::ClientRebind => 5,
            AppAction::ClientDatagram => 6,
            AppAction::ClientAbort => 7,
        }
    }
}

/// One step of a `client_server_pair` run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairOp {
    /// Deliver queued datagram `idx` (modulo the queue length).
    Deliver {
        /// Toward the server (else toward the client).
        to_server: bool,
        /// Queue index.
        idx: u8,
    },
    /// Lose queued datagram `idx`.
    Drop {
        /// Direction.
        to_server: bool,
        /// Queue index.
        idx: u8,
    },
    /// Deliver a copy of queued datagram `idx`, keeping it queued.
    Duplicate {
        /// Direction.
        to_server: bool,
        /// Queue index.
        idx: u8,
    },
    /// Flip one bit of queued datagram `idx`.
    Flip {
        /// Direction.
        to_server: bool,
        /// Queue index.
        idx: u8,
        /// Byte position (modulo the length).
        pos: u16,
        /// Bit number (modulo 8).
        bit: u8,
    },
    /// Let `ms` milliseconds pass.
    Advance {
        /// Milliseconds.
        ms: u16,
    },
    /// Jump to the earliest timer of either side.
    AdvanceToTimeout,
    /// An application action.
    App(AppAction),
    /// Deliver everything queued, both directions, in order.
    Flush,
}

fn sel_byte(to_server: bool, idx: u8) -> u8 {
    (idx << 1) | u8::from(to_server)
}

impl PairOp {
    fn read(u: &mut Unstructured<'_>) -> Self {
        let tag = take_u8(u) % 8;
        let sel = |u: &mut Unstructured<'_>| {
            let s = take_u8(u);
            (s & 1 == 1, s >> 1)
        };
        match tag {
            0 => {
                let (to_server, idx) = sel(u);
                PairOp::Deliver { to_server, idx }
            }
            1 => {
                let (to_server, idx) = sel(u);
                PairOp::Drop { to_server, idx }
            }
            2 => {
                let (to_server, idx) = sel(u);
                PairOp::Duplicate { to_server, idx }
            }
            3 => {
                let (to_server, idx) = sel(u);
                let pos = take_u16(u);
                let bit = take_u8(u);
                PairOp::Flip {
                    to_server,
                    idx,
                    pos,
                    bit,
                }
            }
            4 => PairOp::Advance { ms: take_u16(u) },
            5 => PairOp::AdvanceToTimeout,
            6 => PairOp::App(AppAction::from_byte(take_u8(u))),
            _ => PairOp::Flush,
        }
    }

    /// Appends the encoding of this operation.
    pub fn write(&self, w: &mut Writer) {
        match *self {
            PairOp::Deliver { to_server, idx } => w.u8(0).u8(sel_byte(to_server, idx)),
            PairOp::Drop { to_server, idx } => w.u8(1).u8(sel_byte(to_server, idx)),
            PairOp::Duplicate { to_server, idx } => w.u8(2).u8(sel_byte(to_server, idx)),
            PairOp::Flip {
                to_server,
                idx,
                pos,
                bit,
            } => w.u8(3).u8(sel_byte(to_server, idx)).u16(pos).u8(bit),
            PairOp::Advance { ms } => w.u8(4).u16(ms),
            PairOp::AdvanceToTimeout => w.u8(5),
            PairOp::App(a) => w.u8(6).u8(a.to_byte()),
            PairOp::Flush => w.u8(7),
        };
    }
}

/// The input of `client_server_pair`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairInput {
    /// Server Retry policy, resumption and settle flags.
    pub mode: u8,
    /// The steps.
    pub ops: Vec<PairOp>,
}

impl<'a> Arbitrary<'a> for PairInput {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let mode = take_u8(u);
        let mut ops = Vec::new();
        while !u.is_empty() && ops.len() < MAX_OPS {
            ops.push(PairOp::read(u));
        }
        Ok(PairInput { mode, ops })
    }

    fn arbitrary_take_rest(mut u: Unstructured<'a>) -> arbitrary::Result<Self> {
        Self::arbitrary(&mut u)
    }
}

impl PairInput {
    /// The byte encoding that decodes to this input.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(self.mode);
        for op in &self.ops {
            op.write(&mut w);
        }
        w.finish()
    }
}

/// A datagram in flight.
#[derive(Debug, Clone)]
struct InFlight {
    bytes: Vec<u8>,
    /// Unmodified since the sender emitted it.
    genuine: bool,
}

/// The running pair.
struct World {
    server: ServerHarness,
    client: ClientSide,
    /// The two addresses the client may appear at (NAT rebinding switches between them).
    client_addrs: [SocketAddr; 2],
    /// Which of `client_addrs` the client's datagrams come from now.
    rebound: bool,
    c2s: VecDeque<InFlight>,
    s2c: VecDeque<InFlight>,
}

fn push_bounded(q: &mut VecDeque<InFlight>, d: InFlight) {
    if q.len() >= MAX_QUEUE {
        q.pop_front();
    }
    q.push_back(d);
}

impl World {
    /// Moves what both sides want to send into the queues.
    fn pump(&mut self) {
        let now = self.server.now;
        let mut n = 0;
        while let Some(d) = self.client.poll_transmit(now) {
            push_bounded(
                &mut self.c2s,
                InFlight {
                    bytes: d,
                    genuine: true,
                },
            );
            n += 1;
            assert!(
                n <= MAX_BURST,
                "client emitted more than {MAX_BURST} datagrams at one instant (livelock)"
            );
        }
        for (to, d) in self.server.take_outputs() {
            if self.client_addrs.contains(&to) {
                push_bounded(
                    &mut self.s2c,
                    InFlight {
                        bytes: d,
                        genuine: true,
                    },
                );
            }
        }
    }

    fn queue(&mut self, to_server: bool) -> &mut VecDeque<InFlight> {
        if to_server {
            &mut self.c2s
        } else {
            &mut self.s2c
        }
    }

    fn take(&mut self, to_server: bool, idx: u8) -> Option<InFlight> {
        let q = self.queue(to_server);
        if q.is_empty() {
            return None;
        }
        let i = usize::from(idx) % q.len();
        q.remove(i)
    }

    fn peek(&mut self, to_server: bool, idx: u8) -> Option<&mut InFlight> {
        let q = self.queue(to_server);
        if q.is_empty() {
            return None;
        }
        let i = usize::from(idx) % q.len();
        q.get_mut(i)
    }

    fn deliver(&mut self, to_server: bool, d: InFlight) {
        if to_server {
            let from = self.client_addrs[usize::from(self.rebound)];
            self.server.datagram(from, &d.bytes, d.genuine);
        } else {
            let mut bytes = d.bytes;
            self.client.handle_datagram(self.server.now, &mut bytes);
        }
    }

    fn advance(&mut self, d: core::time::Duration) {
        self.server.advance(d);
        self.client.on_time(self.server.now);
    }

    fn advance_to_timeout(&mut self) {
        let next = [self.server.next_timeout, self.client.next_timeout()]
            .into_iter()
            .flatten()
            .min();
        if let Some(t) = next {
            if t > self.server.now {
                self.server.now = t;
            }
        }
        self.server.advance(core::time::Duration::ZERO);
        self.client.on_time(self.server.now);
    }

    fn flush(&mut self) {
        while let Some(d) = self.c2s.pop_front() {
            self.deliver(true, d);
        }
        while let Some(d) = self.s2c.pop_front() {
            self.deliver(false, d);
        }
    }

    fn app(&mut self, a: AppAction) {
        let now = self.server.now;
        match a {
            AppAction::ClientKeyUpdate => {
                if let Some(c) = self.client.ep.connection_mut(self.client.handle) {
                    c.request_key_update();
                }
            }
            AppAction::ServerKeyUpdate | AppAction::ServerClose => {
                let handles: Vec<_> = self.server.ep.handles().collect();
                for h in handles {
                    if let Some(c) = self.server.ep.connection_mut(h) {
                        if a == AppAction::ServerKeyUpdate {
                            c.request_key_update();
                        } else {
                            c.close(now, CloseReason::Normal, Some("fuzz"));
                        }
                    }
                }
                // Run the server's send path now, as a driver would after an API call.
                self.server.advance(core::time::Duration::ZERO);
            }
            AppAction::ClientClose | AppAction::ClientAbort => {
                if let Some(c) = self.client.ep.connection_mut(self.client.handle) {
                    if a == AppAction::ClientClose {
                        c.close(now, CloseReason::Normal, Some("fuzz"));
                    } else {
                        c.abort(now, CloseReason::Application(7), None);
                    }
                }
            }
            AppAction::ClientMigrate => {
                if let Some(c) = self.client.ep.connection_mut(self.client.handle) {
                    let _ = c.migrate();
                }
            }
            AppAction::ClientRebind => self.rebound = !self.rebound,
            AppAction::ClientDatagram => {
                if let Some(c) = self.client.ep.connection_mut(self.client.handle) {
                    let _ = c.send_datagram(crate::world::CLIENT_DATAGRAM);
                }
            }
        }
    }

    fn apply(&mut self, op: PairOp) {
        match op {
            PairOp::Deliver { to_server, idx } => {
                if let Some(d) = self.take(to_server, idx) {
                    self.deliver(to_server, d);
                }
            }
            PairOp::Drop { to_server, idx } => {
                let _ = self.take(to_server, idx);
            }
            PairOp::Duplicate { to_server, idx } => {
                if let Some(d) = self.peek(to_server, idx).map(|d| d.clone()) {
                    self.deliver(to_server, d);
                }
            }
            PairOp::Flip {
                to_server,
                idx,
                pos,
                bit,
            } => {
                if let Some(d) = self.peek(to_server, idx) {
                    let len = d.bytes.len().max(1);
                    if let Some(b) = d.bytes.get_mut(usize::from(pos) % len) {
                        *b ^= 1 << (bit % 8);
                        d.genuine = false;
                    }
                }
            }
            PairOp::Advance { ms: n } => self.advance(ms(u64::from(n))),
            PairOp::AdvanceToTimeout => self.advance_to_timeout(),
            PairOp::App(a) => self.app(a),
            PairOp::Flush => self.flush(),
        }
        self.pump();
    }

    fn settle(&mut self) {
        let limit = ms(SETTLE_LIMIT_MS);
        for _ in 0..SETTLE_ROUNDS {
            if !self.c2s.is_empty() || !self.s2c.is_empty() {
                self.flush();
                self.pump();
                continue;
            }
            let since_zero = self
                .server
                .now
                .saturating_duration_since(jsp_proto::time::Instant::ZERO);
            if since_zero > limit {
                return;
            }
            let next = [self.server.next_timeout, self.client.next_timeout()]
                .into_iter()
                .flatten()
                .min();
            if next.is_none() {
                return;
            }
            self.advance_to_timeout();
            self.pump();
        }
    }
}

/// Runs a `client_server_pair` input.
pub fn run(input: &PairInput) {
    let mut server = ServerHarness::new(retry_policy(input.mode & 0x0f));
    let mut n = 0u8;
    let mut ticket = None;
    if input.mode & MODE_RESUME != 0 {
        let mut first = ClientSide::connect(0, server.now, None);
        let mut scratch = Recording::default();
        let _ = run_client(&mut server, &mut first, 0, true, &mut scratch);
        ticket = first.ticket.clone();
        n = 1;
    }
    let client = ClientSide::connect(n, server.now, ticket.as_ref());
    let client_addrs = [client_addr(n), client_addr(n + PEERS / 2)];
    let mut world = World {
        server,
        client,
        client_addrs,
        rebound: false,
        c2s: VecDeque::new(),
        s2c: VecDeque::new(),
    };
    world.pump();
    for op in &input.ops {
        world.apply(*op);
    }
    if input.mode & MODE_NO_SETTLE == 0 {
        world.settle();
    }
}
