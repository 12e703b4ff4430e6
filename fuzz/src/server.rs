//! The `server_engine` target's world: [`ServerHarness`] drives one seeded server [`Endpoint`]
//! (with an echo application) and checks its invariants after every step; [`ServerInput`] is the
//! structure-aware input (a retry mode, then datagrams and clock steps); [`recording`] is a real
//! client flight, recorded once per process by running real seeded clients against a harness
//! built exactly like the target's.
//!
//! Because every provider is seeded and the harness calls the server in the same order when it
//! replays a recording as when it recorded it, the recorded datagrams authenticate at the
//! fuzzed server: a [`ServerOp::Recorded`] operation (a recorded datagram, possibly from another
//! address, with a few mutations) reaches deep handshake, 1-RTT, resumption and 0-RTT states that
//! byte-level mutation of raw datagrams alone would not get past the AEAD.
//!
//! Set `JSP_FUZZ_DEBUG` to have [`record`] print how far the recorded connections got.
//!
//! Input format (see [`crate::input`]): `mode u8`, then operations, each `tag u8` and:
//! tag % 4 = 0 raw datagram `from u8, len u16, bytes`; 1 recorded datagram
//! `from u8, index u16, count u8, count x (kind u8, pos u16, value u8)`; 2 advance `ms u16`;
//! 3 advance to the server's next timer.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use jsp_proto::time::Instant;
use jsp_proto::{Endpoint, EndpointEvent, Event, RetryPolicy};

use crate::input::{len16, take_bytes, take_u16, take_u8, Writer};
use crate::world::{
    check_datagram, client_addr, ms, ms_until, new_server, retry_policy, server_config,
    Amplification, ClientSide, MAX_BURST, MAX_CONNECTIONS,
};

/// Most operations one input runs.
pub const MAX_OPS: usize = 256;
/// Most mutations on one recorded datagram.
pub const MAX_MUTATIONS: u8 = 4;

/// A change to a recorded datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutation {
    /// Flip bit `bit % 8` of byte `pos % len`.
    FlipBit {
        /// Byte position.
        pos: u16,
        /// Bit number.
        bit: u8,
    },
    /// Set byte `pos % len`.
    SetByte {
        /// Byte position.
        pos: u16,
        /// New value.
        value: u8,
    },
    /// Cut the datagram to `pos % (len + 1)` bytes.
    Truncate {
        /// New length (modulo).
        pos: u16,
    },
    /// Append `n` bytes of `n`.
    Append {
        /// How many (and their value).
        n: u8,
    },
}

impl Mutation {
    fn read(u: &mut Unstructured<'_>) -> Self {
        let kind = take_u8(u);
        let pos = take_u16(u);
        let value = take_u8(u);
        match kind % 4 {
            0 => Mutation::FlipBit { pos, bit: value },
            1 => Mutation::SetByte { pos, value },
            2 => Mutation::Truncate { pos },
            _ => Mutation::Append { n: value },
        }
    }

    fn write(&self, w: &mut Writer) {
        match *self {
            Mutation::FlipBit { pos, bit } => w.u8(0).u16(pos).u8(bit),
            Mutation::SetByte { pos, value } => w.u8(1).u16(pos).u8(value),
            Mutation::Truncate { pos } => w.u8(2).u16(pos).u8(0),
            Mutation::Append { n } => w.u8(3).u16(0).u8(n),
        };
    }

    /// Applies the mutation.
    pub fn apply(&self, d: &mut Vec<u8>) {
        let len = d.len();
        match *self {
            Mutation::FlipBit { pos, bit } => {
                if let Some(b) = d.get_mut(usize::from(pos) % len.max(1)) {
                    *b ^= 1 << (bit % 8);
                }
            }
            Mutation::SetByte { pos, value } => {
                if let Some(b) = d.get_mut(usize::from(pos) % len.max(1)) {
                    *b = value;
                }
            }
            Mutation::Truncate { pos } => d.truncate(usize::from(pos) % (len + 1)),
            Mutation::Append { n } => d.extend(std::iter::repeat_n(n, usize::from(n))),
        }
    }
}

/// One step of a `server_engine` run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerOp {
    /// A datagram from client address `from`.
    Raw {
        /// Address number.
        from: u8,
        /// The datagram.
        bytes: Vec<u8>,
    },
    /// Recorded client datagram `index` (modulo the recording's length), mutated, from client
    /// address `from`.
    Recorded {
        /// Address number.
        from: u8,
        /// Index into [`Recording::datagrams`].
        index: u16,
        /// Mutations applied in order.
        mutations: Vec<Mutation>,
    },
    /// Let `ms` milliseconds pass.
    Advance {
        /// Milliseconds.
        ms: u16,
    },
    /// Jump to the server's next timer.
    AdvanceToTimeout,
}

impl ServerOp {
    fn read(u: &mut Unstructured<'_>) -> Self {
        match take_u8(u) % 4 {
            0 => {
                let from = take_u8(u);
                let len = usize::from(take_u16(u));
                ServerOp::Raw {
                    from,
                    bytes: take_bytes(u, len).to_vec(),
                }
            }
            1 => {
                let from = take_u8(u);
                let index = take_u16(u);
                let n = take_u8(u) % (MAX_MUTATIONS + 1);
                let mutations = (0..n).map(|_| Mutation::read(u)).collect();
                ServerOp::Recorded {
                    from,
                    index,
                    mutations,
                }
            }
            2 => ServerOp::Advance { ms: take_u16(u) },
            _ => ServerOp::AdvanceToTimeout,
        }
    }

    /// Appends the encoding of this operation.
    pub fn write(&self, w: &mut Writer) {
        match self {
            ServerOp::Raw { from, bytes } => {
                w.u8(0).u8(*from).u16(len16(bytes.len())).bytes(bytes);
            }
            ServerOp::Recorded {
                from,
                index,
                mutations,
            } => {
                w.u8(1)
                    .u8(*from)
                    .u16(*index)
                    .u8(u8::try_from(mutations.len()).unwrap_or(MAX_MUTATIONS));
                for m in mutations {
                    m.write(w);
                }
            }
            ServerOp::Advance { ms } => {
                w.u8(2).u16(*ms);
            }
            ServerOp::AdvanceToTimeout => {
                w.u8(3);
            }
        }
    }
}

/// The input of `server_engine`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInput {
    /// Selects the server's Retry policy ([`retry_policy`]).
    pub mode: u8,
    /// The steps.
    pub ops: Vec<ServerOp>,
}

impl<'a> Arbitrary<'a> for ServerInput {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let mode = take_u8(u);
        let mut ops = Vec::new();
        while !u.is_empty() && ops.len() < MAX_OPS {
            ops.push(ServerOp::read(u));
        }
        Ok(ServerInput { mode, ops })
    }

    fn arbitrary_take_rest(mut u: Unstructured<'a>) -> arbitrary::Result<Self> {
        Self::arbitrary(&mut u)
    }
}

impl ServerInput {
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

/// A server endpoint with an echo application (stream data and datagrams are sent back), driven
/// deterministically, with its invariants checked after every step: amplification per address
/// ([`Amplification`]), datagram sizes, the connection cap, and no livelock in `poll_transmit`.
pub struct ServerHarness {
    /// The endpoint.
    pub ep: Endpoint,
    /// The current time.
    pub now: Instant,
    /// What the server sent since [`ServerHarness::take_outputs`] was last called.
    outputs: Vec<(SocketAddr, Vec<u8>)>,
    /// The next timer, read after every step.
    pub next_timeout: Option<Instant>,
    /// Per-address accounting.
    pub amp: Amplification,
    /// Stream data read and not yet echoed: (connection, stream) -> (bytes, FIN read).
    echo: BTreeMap<(usize, u64), (Vec<u8>, bool)>,
    buf: Vec<u8>,
    max_udp: usize,
}

impl ServerHarness {
    /// A fresh server at time zero.
    pub fn new(retry: RetryPolicy) -> Self {
        let max_udp = usize::from(server_config(retry).transport.max_udp_payload_size);
        let mut h = Self {
            ep: new_server(retry),
            now: Instant::ZERO,
            outputs: Vec::new(),
            next_timeout: None,
            amp: Amplification::default(),
            echo: BTreeMap::new(),
            buf: Vec::with_capacity(2048),
            max_udp,
        };
        h.drain();
        h
    }

    /// Delivers a datagram from `from`; `genuine` as in [`Amplification::on_received`].
    pub fn datagram(&mut self, from: SocketAddr, bytes: &[u8], genuine: bool) {
        self.amp.on_received(from, bytes, genuine);
        let mut data = bytes.to_vec();
        self.ep.handle_datagram(self.now, from, &mut data);
        self.drain();
    }

    /// Lets `d` pass and runs due timers.
    pub fn advance(&mut self, d: core::time::Duration) {
        self.now = self.now.saturating_add(d);
        self.on_time();
    }

    /// Jumps to the next timer (if it is in the future) and runs it.
    pub fn advance_to_timeout(&mut self) {
        if let Some(t) = self.next_timeout {
            self.now = self.now.max(t);
        }
        self.on_time();
    }

    fn on_time(&mut self) {
        if self.ep.poll_timeout().is_some_and(|t| t <= self.now) {
            self.ep.handle_timeout(self.now);
        }
        self.drain();
    }

    /// Takes what the server sent.
    pub fn take_outputs(&mut self) -> Vec<(SocketAddr, Vec<u8>)> {
        std::mem::take(&mut self.outputs)
    }

    /// Serves the application, then sends everything the server wants to send, checking it.
    fn drain(&mut self) {
        self.serve_app();
        let mut sent = 0;
        while let Some(t) = self.ep.poll_transmit(self.now, &mut self.buf) {
            check_datagram("server", t.size, self.max_udp);
            self.amp.on_sent(t.destination, t.size);
            if let Some(d) = self.buf.get(..t.size) {
                self.outputs.push((t.destination, d.to_vec()));
            }
            sent += 1;
            assert!(
                sent <= MAX_BURST,
                "server emitted more than {MAX_BURST} datagrams at one instant (livelock)"
            );
        }
        assert!(
            self.ep.connection_count() <= MAX_CONNECTIONS,
            "server holds {} connections, above max_connections {MAX_CONNECTIONS}",
            self.ep.connection_count()
        );
        self.next_timeout = self.ep.poll_timeout();
    }

    /// Echoes stream data (kept until the connection can send it, e.g. 0-RTT data that arrives
    /// before the handshake completes) and datagrams back; releases forgotten handles.
    fn serve_app(&mut self) {
        while let Some(ev) = self.ep.poll_event() {
            if let EndpointEvent::Forgotten(h) = ev {
                self.ep.release_handle(h);
            }
        }
        let handles: Vec<_> = self.ep.handles().collect();
        self.echo
            .retain(|(h, _), _| handles.iter().any(|x| x.0 == *h));
        for h in handles {
            let mut readable = Vec::new();
            let mut datagrams = false;
            while let Some(ev) = self.ep.poll_connection_event(h) {
                match ev {
                    Event::StreamReadable(id) | Event::StreamOpened(id) => readable.push(id),
                    Event::DatagramReceived => datagrams = true,
                    _ => {}
                }
            }
            let pending = self.echo.keys().any(|(c, _)| *c == h.0);
            if readable.is_empty() && !datagrams && !pending {
                continue;
            }
            let Some(conn) = self.ep.connection_mut(h) else {
                continue;
            };
            for id in readable {
                if id.dir() != jsp_proto::Dir::Bi {
                    continue;
                }
                for _ in 0..64 {
                    let Ok((bytes, fin)) = conn.stream_read(id, 4096) else {
                        break;
                    };
                    let done = bytes.is_empty() || fin;
                    if !bytes.is_empty() || fin {
                        let e = self.echo.entry((h.0, id.0)).or_default();
                        e.0.extend_from_slice(&bytes);
                        e.1 |= fin;
                    }
                    if done {
                        break;
                    }
                }
            }
            let mine: Vec<u64> = self
                .echo
                .keys()
                .filter(|(c, _)| *c == h.0)
                .map(|&(_, s)| s)
                .collect();
            for s in mine {
                let Some((data, fin)) = self.echo.get_mut(&(h.0, s)) else {
                    continue;
                };
                match conn.stream_write(jsp_proto::StreamId(s), data, *fin) {
                    Ok(n) => {
                        let all = n >= data.len();
                        data.drain(..n.min(data.len()));
                        if all && (*fin || data.is_empty()) {
                            self.echo.remove(&(h.0, s));
                        }
                    }
                    Err(
                        jsp_proto::StreamApiError::Blocked | jsp_proto::StreamApiError::NotOpen,
                    ) => {}
                    Err(_) => {
                        self.echo.remove(&(h.0, s));
                    }
                }
            }
            while let Some(d) = conn.read_datagram() {
                let _ = conn.send_datagram(&d);
            }
        }
    }
}

/// A recorded real client flight: the operations that replay it at a fresh
/// `ServerHarness::new(RetryPolicy::Never)`, and the client datagrams in the order sent.
#[derive(Debug, Clone, Default)]
pub struct Recording {
    /// The replay (datagrams as [`ServerOp::Raw`]).
    pub ops: Vec<ServerOp>,
    /// Every client datagram.
    pub datagrams: Vec<Vec<u8>>,
    /// Every server datagram to a recorded client (not replayed; for other targets' seeds).
    pub server_datagrams: Vec<Vec<u8>>,
    /// Whether both phases (full handshake, then resumption with 0-RTT) completed.
    pub complete: bool,
}

impl Recording {
    /// The replay with datagrams referenced by index ([`ServerOp::Recorded`]), a compact seed.
    pub fn ops_by_reference(&self) -> Vec<ServerOp> {
        let mut next = 0u16;
        self.ops
            .iter()
            .map(|op| match op {
                ServerOp::Raw { from, .. } => {
                    let r = ServerOp::Recorded {
                        from: *from,
                        index: next,
                        mutations: Vec::new(),
                    };
                    next = next.saturating_add(1);
                    r
                }
                other => other.clone(),
            })
            .collect()
    }
}

/// Runs one client against `server` until its stream was echoed (and, if `want_ticket`, a
/// ticket arrived) or 20 virtual seconds pass, recording the server's inputs.
pub fn run_client(
    server: &mut ServerHarness,
    client: &mut ClientSide,
    n: u8,
    want_ticket: bool,
    rec: &mut Recording,
) -> bool {
    // `n` is the client's address number, recorded with each datagram.
    let deadline = server.now.saturating_add(ms(20_000));
    for _ in 0..10_000 {
        let mut progressed = false;
        while let Some(d) = client.poll_transmit(server.now) {
            rec.ops.push(ServerOp::Raw {
                from: n,
                bytes: d.clone(),
            });
            rec.datagrams.push(d.clone());
            server.datagram(client.addr, &d, true);
            progressed = true;
        }
        for (to, mut d) in server.take_outputs() {
            if to == client.addr {
                rec.server_datagrams.push(d.clone());
                client.handle_datagram(server.now, &mut d);
                progressed = true;
            }
        }
        if progressed {
            continue;
        }
        if client.echo_complete() && (!want_ticket || client.ticket.is_some()) {
            return true;
        }
        let next = [server.next_timeout, client.next_timeout()]
            .into_iter()
            .flatten()
            .min();
        let Some(next) = next else {
            return false;
        };
        let step = ms_until(server.now, next);
        let step16 = u16::try_from(step).unwrap_or(u16::MAX);
        rec.ops.push(ServerOp::Advance { ms: step16 });
        server.advance(ms(u64::from(step16)));
        client.on_time(server.now);
        if server.now > deadline {
            return false;
        }
    }
    false
}

/// Records a full handshake with stream and datagram echo from client 0 (which also receives a
/// session ticket), then a resumed connection with 0-RTT data from client 1.
pub fn record() -> Recording {
    let mut rec = Recording::default();
    let mut server = ServerHarness::new(retry_policy(0));
    let mut first = ClientSide::connect(0, server.now, None);
    let ok1 = run_client(&mut server, &mut first, 0, true, &mut rec);
    let ticket = first.ticket.clone();
    let mut second = ClientSide::connect(1, server.now, ticket.as_ref());
    let ok2 = run_client(&mut server, &mut second, 1, false, &mut rec);
    rec.complete = ok1 && ok2 && ticket.is_some();
    if std::env::var_os("JSP_FUZZ_DEBUG").is_some() {
        eprintln!(
            "record: first {ok1} (connected {}, echo {}), ticket {}, second {ok2} (connected {}, \
             echo {}), {} ops, t = {:?}",
            first.connected,
            first.echo_complete(),
            ticket.is_some(),
            second.connected,
            second.echo_complete(),
            rec.ops.len(),
            server.now
        );
    }
    rec
}

/// The recording, made once per process.
pub fn recording() -> &'static Recording {
    static REC: OnceLock<Recording> = OnceLock::new();
    REC.get_or_init(record)
}

/// Whether replaying the recording at a fresh server makes it send exactly the recorded
/// datagrams: the determinism the `server_engine` seeds rely on.
pub fn replay_matches(rec: &Recording) -> bool {
    let mut server = ServerHarness::new(retry_policy(0));
    let mut sent = Vec::new();
    for op in &rec.ops {
        match op {
            ServerOp::Raw { from, bytes } => server.datagram(client_addr(*from), bytes, true),
            ServerOp::Advance { ms: n } => server.advance(ms(u64::from(*n))),
            _ => {}
        }
        sent.extend(server.take_outputs().into_iter().map(|(_, d)| d));
    }
    sent.get(..rec.server_datagrams.len()) == Some(&rec.server_datagrams[..])
}

/// Runs a `server_engine` input.
pub fn run(input: &ServerInput) {
    let rec = recording();
    let mut server = ServerHarness::new(retry_policy(input.mode));
    for op in &input.ops {
        match op {
            ServerOp::Raw { from, bytes } => server.datagram(client_addr(*from), bytes, false),
            ServerOp::Recorded {
                from,
                index,
                mutations,
            } => {
                if rec.datagrams.is_empty() {
                    continue;
                }
                let i = usize::from(*index) % rec.datagrams.len();
                let mut d = rec.datagrams.get(i).cloned().unwrap_or_default();
                for m in mutations {
                    m.apply(&mut d);
                }
                server.datagram(client_addr(*from), &d, false);
            }
            ServerOp::Advance { ms: n } => server.advance(ms(u64::from(*n))),
            ServerOp::AdvanceToTimeout => server.advance_to_timeout(),
        }
        server.take_outputs();
    }
}
