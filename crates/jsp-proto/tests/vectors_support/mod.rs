//! Code shared by the test-vector tests of PROTOCOL.md §18 (`tests/vectors_*.rs`): hex and JSON
//! helpers, a crypto provider that records what the seeded provider draws, the deterministic
//! two-endpoint driver behind `handshake.json`, and a packet opener written against the public
//! crypto and codec APIs only (not the engine's receive path).
//!
//! Each test crate uses a different part of this module.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use core::time::Duration;

use jsp_proto::crypto::deterministic::DeterministicProvider;
use jsp_proto::crypto::provider::{
    Aead, ClientKeyExchange, CompletedServerKeyExchange, HashContext, HeaderProtection,
    ServerKeyExchange, SharedSecret, SigningKey, ED25519_PUBLIC_KEY_LEN, ED25519_SEED_LEN,
    HASH_LEN, HP_SAMPLE_LEN,
};
use jsp_proto::crypto::{CipherSuite, CryptoError, CryptoProvider, HeaderKey, PacketKeys, Secret};
use jsp_proto::identity::{Fingerprint, Identity};
use jsp_proto::time::Instant;
use jsp_proto::wire::frame::Frame;
use jsp_proto::wire::header::{self, PacketType, PartialDecode};
use jsp_proto::wire::messages::{CertificateKind, Message};
use jsp_proto::wire::packet_number;
use jsp_proto::wire::transport_params::TransportParameters;
use jsp_proto::{
    ClientConfig, ConnectionHandle, Dir, Endpoint, EndpointConfig, EndpointEvent, Event,
    ServerConfig, StreamId, TrustPolicy,
};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// Files, hex, JSON

/// The environment variable that makes the `regenerate_*` tests write the files.
pub const REGEN_ENV: &str = "JSP_REGEN_VECTORS";

/// The command that regenerates every vector file (README.md of docs/test-vectors).
pub const REGEN_COMMAND: &str =
    "JSP_REGEN_VECTORS=1 cargo test -p jsp-proto -- --ignored regenerate_";

/// `docs/test-vectors/<name>`.
pub fn vectors_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/test-vectors")
        .join(name)
}

/// Loads `docs/test-vectors/<name>`.
pub fn load(name: &str) -> Value {
    let path = vectors_path(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (regenerate with `{REGEN_COMMAND}`)",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Writes `value` to `docs/test-vectors/<name>` if `JSP_REGEN_VECTORS=1`, else says how to.
pub fn regenerate(name: &str, value: &Value) {
    let path = vectors_path(name);
    let text = serde_json::to_string_pretty(value).expect("JSON") + "\n";
    if std::env::var(REGEN_ENV).as_deref() == Ok("1") {
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        eprintln!("wrote {}", path.display());
    } else {
        eprintln!("set {REGEN_ENV}=1 to write {}", path.display());
    }
}

/// Asserts that the committed file equals what the code computes now, listing the differences.
pub fn assert_file_matches(name: &str, computed: &Value) {
    let file = load(name);
    let mut differences = Vec::new();
    diff("$", &file, computed, &mut differences);
    assert!(
        differences.is_empty(),
        "{name} drifted from the code ({} differences; regenerate with `{REGEN_COMMAND}` only if \
         the change is intended, and mention it in the spec):\n{}",
        differences.len(),
        differences
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Paths at which two JSON values differ.
pub fn diff(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                match (x.get(k), y.get(k)) {
                    (Some(va), Some(vb)) => diff(&format!("{path}.{k}"), va, vb, out),
                    _ => out.push(format!("{path}.{k}: present on one side only")),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                diff(&format!("{path}[{i}]"), va, vb, out);
            }
        }
        (Value::Array(x), Value::Array(y)) => out.push(format!(
            "{path}: file has {} entries, code {}",
            x.len(),
            y.len()
        )),
        _ if a != b => {
            let short = |v: &Value| {
                let s = v.to_string();
                if s.len() > 120 {
                    format!("{}...", &s[..120])
                } else {
                    s
                }
            };
            out.push(format!("{path}: file {} != code {}", short(a), short(b)));
        }
        _ => {}
    }
}

/// Lowercase hex.
pub fn hx(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// Lowercase hex as a JSON string.
pub fn jhx(bytes: &[u8]) -> Value {
    Value::String(hex::encode(bytes))
}

/// Decodes a hex string (panics on malformed input: the vector file is broken).
pub fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap_or_else(|e| panic!("bad hex {s:?}: {e}"))
}

/// `v[key]` as a string.
pub fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is not a string in {}", abbreviate(v)))
}

/// `v[key]` as hex-decoded bytes.
pub fn b(v: &Value, key: &str) -> Vec<u8> {
    unhex(s(v, key))
}

/// `v[key]` as a u64.
pub fn u(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not an integer in {}", abbreviate(v)))
}

/// `v[key]` as an array.
pub fn arr<'a>(v: &'a Value, key: &str) -> &'a Vec<Value> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} is not an array in {}", abbreviate(v)))
}

fn abbreviate(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 200 {
        format!("{}...", &s[..200])
    } else {
        s
    }
}

/// A 32-byte array from a slice (panics on a wrong length).
pub fn a32(bytes: &[u8]) -> [u8; 32] {
    <[u8; 32]>::try_from(bytes).unwrap_or_else(|_| panic!("expected 32 bytes, got {}", bytes.len()))
}

/// The suite with this name as used in the vector files.
pub fn suite_name(suite: CipherSuite) -> &'static str {
    match suite {
        CipherSuite::Aes256Gcm => "AES-256-GCM",
        CipherSuite::ChaCha20Poly1305 => "ChaCha20-Poly1305",
    }
}

/// The suite named `name` in a vector file.
pub fn suite_from_name(name: &str) -> CipherSuite {
    CipherSuite::ALL
        .into_iter()
        .find(|s| suite_name(*s) == name)
        .unwrap_or_else(|| panic!("unknown suite {name}"))
}

// ---------------------------------------------------------------------------------------------
// A provider that records the deterministic provider's draws

/// One use of the seeded RNG, in order. `keystream_offset` is the byte offset in the ChaCha20
/// keystream (key = seed, nonce 0, block counter from 0) where the draw starts.
#[derive(Clone, Debug)]
pub enum Draw {
    /// `fill_random(len)`.
    Fill {
        /// Byte offset in the keystream.
        keystream_offset: u64,
        /// The bytes returned.
        bytes: Vec<u8>,
    },
    /// `client_key_share()`: ML-KEM-768 `d`, `z`, then the X25519 private key.
    ClientKeyShare {
        /// Byte offset in the keystream.
        keystream_offset: u64,
        /// FIPS 203 `d`.
        d: [u8; 32],
        /// FIPS 203 `z`.
        z: [u8; 32],
        /// X25519 private key (RFC 7748 scalar before clamping).
        x25519_private: [u8; 32],
        /// The share returned: encapsulation key || X25519 public key.
        share: Vec<u8>,
    },
    /// `server_key_exchange()`: ML-KEM-768 `m`, then the X25519 private key.
    ServerKeyExchange {
        /// Byte offset in the keystream.
        keystream_offset: u64,
        /// FIPS 203 `m`.
        m: [u8; 32],
        /// X25519 private key.
        x25519_private: [u8; 32],
        /// The share returned: ML-KEM ciphertext || X25519 public key.
        share: Vec<u8>,
        /// `ss_mlkem || ss_x25519`.
        shared_secret: [u8; 64],
    },
    /// The client's `ClientKeyExchange::complete` (no randomness; recorded for the secret).
    ClientComplete {
        /// `ss_mlkem || ss_x25519`.
        shared_secret: [u8; 64],
    },
}

/// What a [`RecordingProvider`] saw.
pub type DrawLog = Arc<Mutex<Vec<Draw>>>;

/// A [`CryptoProvider`] that delegates everything to a [`DeterministicProvider`] and records what
/// it draws. The bytes it produces are exactly the inner provider's; a shadow ChaCha20 RNG with
/// the same seed, advanced in the documented order (crypto/deterministic.rs), recovers the values
/// the inner provider draws internally (ML-KEM `d`, `z`, `m`, X25519 private keys).
pub struct RecordingProvider {
    inner: DeterministicProvider,
    shadow: Mutex<ChaCha20Rng>,
    log: DrawLog,
}

impl RecordingProvider {
    /// A recording provider for `seed`, and its log.
    pub fn new(seed: [u8; 32]) -> (Self, DrawLog) {
        let log = DrawLog::default();
        (
            RecordingProvider {
                inner: DeterministicProvider::new(seed),
                shadow: Mutex::new(ChaCha20Rng::from_seed(seed)),
                log: log.clone(),
            },
            log,
        )
    }

    /// Draws `N` bytes from the shadow RNG, with the keystream offset before the draw.
    fn shadow<const N: usize>(&self) -> (u64, [u8; N]) {
        let mut rng = self.shadow.lock().unwrap_or_else(PoisonError::into_inner);
        let offset = u64::try_from(rng.get_word_pos() * 4).expect("offset");
        let mut out = [0u8; N];
        rng.fill_bytes(&mut out);
        (offset, out)
    }

    fn record(&self, draw: Draw) {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(draw);
    }
}

impl core::fmt::Debug for RecordingProvider {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("RecordingProvider")
    }
}

struct RecordingKeyExchange {
    inner: Box<dyn ClientKeyExchange>,
    log: DrawLog,
}

impl ClientKeyExchange for RecordingKeyExchange {
    fn complete(self: Box<Self>, server_share: &[u8]) -> Result<SharedSecret, CryptoError> {
        let RecordingKeyExchange { inner, log } = *self;
        let ss = inner.complete(server_share)?;
        log.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Draw::ClientComplete {
                shared_secret: *ss.as_bytes(),
            });
        Ok(ss)
    }
}

impl CryptoProvider for RecordingProvider {
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
        let (keystream_offset, d) = self.shadow::<32>();
        let (_, z) = self.shadow::<32>();
        let (_, x25519_private) = self.shadow::<32>();
        let (share, kx) = self.inner.client_key_share()?;
        self.record(Draw::ClientKeyShare {
            keystream_offset,
            d,
            z,
            x25519_private,
            share: share.clone(),
        });
        let kx = RecordingKeyExchange {
            inner: kx,
            log: self.log.clone(),
        };
        Ok((share, Box::new(kx)))
    }

    /// Runs the whole exchange at once (the deterministic provider does too), recording it as
    /// the `server_key_exchange` draw.
    fn server_key_share(
        &self,
        client_share: &[u8],
    ) -> Result<(Vec<u8>, Box<dyn ServerKeyExchange>), CryptoError> {
        let (keystream_offset, m) = self.shadow::<32>();
        let (_, x25519_private) = self.shadow::<32>();
        let (share, ss) = self.inner.server_key_exchange(client_share)?;
        self.record(Draw::ServerKeyExchange {
            keystream_offset,
            m,
            x25519_private,
            share: share.clone(),
            shared_secret: *ss.as_bytes(),
        });
        Ok((share, Box::new(CompletedServerKeyExchange(ss))))
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
        self.inner.fill_random(buf)?;
        let mut rng = self.shadow.lock().unwrap_or_else(PoisonError::into_inner);
        let keystream_offset = u64::try_from(rng.get_word_pos() * 4).expect("offset");
        let mut expected = vec![0u8; buf.len()];
        rng.fill_bytes(&mut expected);
        drop(rng);
        assert_eq!(
            expected, buf,
            "shadow RNG out of step with the deterministic provider: the documented draw order \
             (crypto/deterministic.rs) no longer holds"
        );
        self.record(Draw::Fill {
            keystream_offset,
            bytes: buf.to_vec(),
        });
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The deterministic scenario of handshake.json

/// Client address of the scenario (TEST-NET-1, RFC 5737).
pub const CLIENT_ADDR: &str = "192.0.2.1:50000";
/// Server address of the scenario.
pub const SERVER_ADDR: &str = "192.0.2.2:4433";
/// One-way delay of the simulated link, both directions.
pub const ONE_WAY_DELAY: Duration = Duration::from_millis(10);
/// Wall-clock time (Unix seconds) at engine time zero, for both endpoints.
pub const UNIX_AT_ZERO: u64 = 1_800_000_000;
/// The server_name the client sends.
pub const SERVER_NAME: &str = "vectors.jetstreamproto.test";
/// What the client sends on stream 0 once connected (with FIN).
pub const CLIENT_MESSAGE: &[u8] = b"ping from the JetStreamProto test-vector client";
/// What the server answers on the same stream (with FIN).
pub const SERVER_MESSAGE: &[u8] = b"pong from the JetStreamProto test-vector server";
/// The run ends once the application exchange is done, nothing is in flight and no timer is due
/// within this long.
pub const QUIET: Duration = Duration::from_secs(1);

/// Seed of the client's deterministic provider: bytes 0x00..=0x1f.
pub fn client_seed() -> [u8; 32] {
    core::array::from_fn(|i| u8::try_from(i).expect("i < 32"))
}

/// Seed of the server's deterministic provider: bytes 0x20..=0x3f.
pub fn server_seed() -> [u8; 32] {
    core::array::from_fn(|i| 0x20 + u8::try_from(i).expect("i < 32"))
}

/// Ed25519 seed (RFC 8032 private key) of the server identity: bytes 0x40..=0x5f.
pub fn identity_seed() -> [u8; 32] {
    core::array::from_fn(|i| 0x40 + u8::try_from(i).expect("i < 32"))
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

/// The scenario's server endpoint (identity from [`identity_seed`], default settings) and the
/// fingerprint a client pins.
pub fn scenario_server(provider: Arc<dyn CryptoProvider>) -> (Endpoint, Fingerprint) {
    let identity = Identity::from_seed(provider.as_ref(), &identity_seed()).expect("identity");
    let fingerprint = identity.fingerprint();
    let server = Endpoint::new(
        EndpointConfig::default(),
        provider,
        Some(ServerConfig::new(identity)),
        UNIX_AT_ZERO,
    )
    .expect("server endpoint");
    (server, fingerprint)
}

/// The client address as a `SocketAddr`.
pub fn client_addr() -> SocketAddr {
    addr(CLIENT_ADDR)
}

/// One datagram on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Datagram {
    /// Position in the run, from 0.
    pub index: usize,
    /// Sent by the client (else by the server).
    pub from_client: bool,
    /// Engine time at which the sender produced it (`poll_transmit`).
    pub sent_at: Instant,
    /// Engine time at which the receiver got it (`handle_datagram`): `sent_at` + 10 ms.
    pub received_at: Instant,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// What the run does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Deliver datagram `index` of the log.
    Arrival(usize),
    /// Fire the endpoints' timers at this time.
    Timer(Instant),
    /// The scenario is over.
    Done,
}

/// Two endpoints joined by a perfect link with a fixed one-way delay, driven in virtual time, with
/// a small application on top: once connected the client sends [`CLIENT_MESSAGE`] on a new
/// bidirectional stream, the server answers [`SERVER_MESSAGE`] on it. Every decision is a pure
/// function of the seeds, so the datagrams replay byte for byte.
///
/// Event order: the earliest of (next arrival, earliest endpoint timer) runs first, timers before
/// arrivals at the same instant; after each event both endpoints' application events are handled
/// (client first) and both are drained of datagrams (client first).
pub struct Harness {
    /// The client endpoint.
    pub client: Endpoint,
    /// The server endpoint.
    pub server: Endpoint,
    /// The client's connection.
    pub client_conn: ConnectionHandle,
    /// The server's connection, once accepted.
    pub server_conn: Option<ConnectionHandle>,
    /// Current engine time.
    pub now: Instant,
    /// Every datagram sent so far.
    pub log: Vec<Datagram>,
    in_flight: VecDeque<usize>,
    stream: Option<StreamId>,
    server_request: Vec<u8>,
    server_replied: bool,
    client_reply: Vec<u8>,
    client_done: bool,
    steps: usize,
}

impl Harness {
    /// Builds both endpoints from their providers and starts the client's connection at time 0.
    pub fn new(
        client_provider: Arc<dyn CryptoProvider>,
        server_provider: Arc<dyn CryptoProvider>,
    ) -> Self {
        let (server, fingerprint) = scenario_server(server_provider);
        let mut client_config = ClientConfig::new(TrustPolicy::pinned(fingerprint));
        client_config.server_name = Some(SERVER_NAME.to_string());
        let mut client = Endpoint::new(
            EndpointConfig::default(),
            client_provider,
            None,
            UNIX_AT_ZERO,
        )
        .expect("client endpoint");
        let client_conn = client
            .connect(Instant::ZERO, Arc::new(client_config), addr(SERVER_ADDR))
            .expect("connect");
        let mut h = Harness {
            client,
            server,
            client_conn,
            server_conn: None,
            now: Instant::ZERO,
            log: Vec::new(),
            in_flight: VecDeque::new(),
            stream: None,
            server_request: Vec::new(),
            server_replied: false,
            client_reply: Vec::new(),
            client_done: false,
            steps: 0,
        };
        h.after_event();
        h
    }

    /// The scenario with plain [`DeterministicProvider`]s, as an implementation would replay it.
    pub fn deterministic() -> Self {
        Harness::new(
            Arc::new(DeterministicProvider::new(client_seed())),
            Arc::new(DeterministicProvider::new(server_seed())),
        )
    }

    /// Whether the client has read the server's whole answer.
    pub fn client_done(&self) -> bool {
        self.client_done
    }

    /// Whether the application exchange completed.
    pub fn app_done(&self) -> bool {
        self.client_done && self.server_replied
    }

    /// What happens next.
    pub fn next(&mut self) -> Next {
        let arrival = self
            .in_flight
            .front()
            .map(|&i| (self.log[i].received_at, i));
        let timer = [self.client.poll_timeout(), self.server.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        if arrival.is_none() && self.app_done() && timer.is_none_or(|t| t >= self.now + QUIET) {
            return Next::Done;
        }
        match (arrival, timer) {
            (Some((at, _)), Some(t)) if t <= at => Next::Timer(t),
            (Some((_, i)), _) => Next::Arrival(i),
            (None, Some(t)) => Next::Timer(t),
            (None, None) => Next::Done,
        }
    }

    /// Runs the next event. Returns false once the scenario is over.
    pub fn step(&mut self) -> bool {
        self.steps += 1;
        assert!(self.steps < 10_000, "scenario does not terminate");
        match self.next() {
            Next::Done => return false,
            Next::Timer(t) => {
                self.now = self.now.max(t);
                self.client.handle_timeout(self.now);
                self.server.handle_timeout(self.now);
            }
            Next::Arrival(i) => {
                self.in_flight.pop_front();
                let d = &self.log[i];
                self.now = d.received_at;
                let mut bytes = d.bytes.clone();
                if d.from_client {
                    self.server
                        .handle_datagram(self.now, addr(CLIENT_ADDR), &mut bytes);
                } else {
                    self.client
                        .handle_datagram(self.now, addr(SERVER_ADDR), &mut bytes);
                }
            }
        }
        assert!(
            self.now < Instant::ZERO + Duration::from_secs(5),
            "scenario stalled: application exchange not done after 5 s"
        );
        self.after_event();
        true
    }

    /// Runs the scenario to its end.
    pub fn run(&mut self) {
        while self.step() {}
    }

    /// Hands `bytes` to the client (`to_server == false`) or the server at the current time, as
    /// if from the peer's address, outside the log, and returns what the receiver sends right
    /// after (which should be nothing for every input that must be dropped).
    pub fn inject(&mut self, to_server: bool, at: Instant, bytes: &[u8]) -> Vec<Vec<u8>> {
        self.now = self.now.max(at);
        let mut copy = bytes.to_vec();
        let (ep, from) = if to_server {
            (&mut self.server, addr(CLIENT_ADDR))
        } else {
            (&mut self.client, addr(SERVER_ADDR))
        };
        ep.handle_datagram(self.now, from, &mut copy);
        let mut out = Vec::new();
        let mut buf = Vec::with_capacity(2048);
        while let Some(t) = ep.poll_transmit(self.now, &mut buf) {
            out.push(buf[..t.size].to_vec());
        }
        out
    }

    /// Connection counters of the receiver side.
    pub fn stats(&self, server: bool) -> jsp_proto::ConnectionStats {
        let c = if server {
            self.server_conn
                .and_then(|h| self.server.connection(h))
                .expect("server connection")
        } else {
            self.client
                .connection(self.client_conn)
                .expect("client connection")
        };
        c.stats()
    }

    fn after_event(&mut self) {
        while let Some(ev) = self.server.poll_event() {
            match ev {
                EndpointEvent::NewConnection(h) => {
                    assert!(self.server_conn.is_none(), "second connection");
                    self.server_conn = Some(h);
                }
                EndpointEvent::Forgotten(h) => self.server.release_handle(h),
            }
        }
        self.client_app();
        self.server_app();
        self.drain(true);
        self.drain(false);
    }

    fn client_app(&mut self) {
        let Some(c) = self.client.connection_mut(self.client_conn) else {
            return;
        };
        while let Some(ev) = c.poll_event() {
            match ev {
                Event::Connected(_) => {
                    let id = c.open_stream(Dir::Bi).expect("open stream");
                    let n = c.stream_write(id, CLIENT_MESSAGE, true).expect("write");
                    assert_eq!(n, CLIENT_MESSAGE.len());
                    self.stream = Some(id);
                }
                Event::StreamReadable(id) => {
                    let (data, fin) = c.stream_read(id, usize::MAX).expect("read");
                    self.client_reply.extend_from_slice(&data);
                    if fin {
                        assert_eq!(self.client_reply, SERVER_MESSAGE);
                        self.client_done = true;
                    }
                }
                Event::Closed(e) => panic!("client connection closed: {e}"),
                _ => {}
            }
        }
    }

    fn server_app(&mut self) {
        let Some(c) = self.server_conn.and_then(|h| self.server.connection_mut(h)) else {
            return;
        };
        while let Some(ev) = c.poll_event() {
            match ev {
                Event::StreamReadable(id) => {
                    let (data, fin) = c.stream_read(id, usize::MAX).expect("read");
                    self.server_request.extend_from_slice(&data);
                    if fin && !self.server_replied {
                        assert_eq!(self.server_request, CLIENT_MESSAGE);
                        let n = c.stream_write(id, SERVER_MESSAGE, true).expect("write");
                        assert_eq!(n, SERVER_MESSAGE.len());
                        self.server_replied = true;
                    }
                }
                Event::Closed(e) => panic!("server connection closed: {e}"),
                _ => {}
            }
        }
    }

    fn drain(&mut self, client: bool) {
        let mut buf = Vec::with_capacity(2048);
        loop {
            let ep = if client {
                &mut self.client
            } else {
                &mut self.server
            };
            let Some(t) = ep.poll_transmit(self.now, &mut buf) else {
                break;
            };
            let index = self.log.len();
            self.log.push(Datagram {
                index,
                from_client: client,
                sent_at: self.now,
                received_at: self.now + ONE_WAY_DELAY,
                bytes: buf[..t.size].to_vec(),
            });
            self.in_flight.push_back(index);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Opening packets with the public crypto and codec APIs

/// Raw packet protection keys of one direction (PROTOCOL.md §6.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawKeys {
    /// The suite.
    pub suite: CipherSuite,
    /// AEAD key.
    pub key: Vec<u8>,
    /// AEAD IV.
    pub iv: [u8; 12],
    /// Header-protection key.
    pub hp: [u8; 32],
}

/// A packet with header protection and AEAD removed.
#[derive(Clone, Debug)]
pub struct OpenedPacket {
    /// Packet type.
    pub ty: PacketType,
    /// Length of the whole packet in the datagram (header, payload, tag).
    pub len: usize,
    /// Offset of the Packet Number field.
    pub pn_offset: usize,
    /// Packet number length.
    pub pn_len: usize,
    /// The truncated packet number as on the wire (after removing protection).
    pub truncated_pn: u32,
    /// The full packet number.
    pub pn: u64,
    /// The header with protection removed (the AEAD associated data).
    pub header: Vec<u8>,
    /// The header-protection sample.
    pub sample: [u8; HP_SAMPLE_LEN],
    /// The 5-byte mask.
    pub mask: [u8; 5],
    /// The AEAD nonce.
    pub nonce: [u8; 12],
    /// The decrypted payload.
    pub plaintext: Vec<u8>,
    /// The protected packet as on the wire.
    pub protected: Vec<u8>,
}

/// Parses the header of the packet at the front of `rest` (`local_cid_len` for short headers).
pub fn peek_packet(rest: &[u8], local_cid_len: usize) -> (PacketType, usize) {
    match header::decode(rest, local_cid_len) {
        Ok((PartialDecode::Protected(h), _)) => (h.ty, h.len),
        other => panic!("not a protected packet: {other:?}"),
    }
}

/// Removes header protection and decrypts the packet at the front of `rest` with `keys`,
/// recovering the packet number against `largest` (the largest received in its space).
pub fn open_packet(
    provider: &dyn CryptoProvider,
    rest: &[u8],
    local_cid_len: usize,
    keys: &RawKeys,
    largest: Option<u64>,
) -> Result<OpenedPacket, String> {
    let h = match header::decode(rest, local_cid_len) {
        Ok((PartialDecode::Protected(h), _)) => h,
        other => return Err(format!("not a protected packet: {other:?}")),
    };
    let mut packet = rest[..h.len].to_vec();
    let protected = packet.clone();
    let sample_range = h.sample_range().ok_or("too short to sample")?;
    let sample =
        <[u8; HP_SAMPLE_LEN]>::try_from(&packet[sample_range]).map_err(|e| e.to_string())?;
    let hp = HeaderKey::from_key(provider, keys.suite, &keys.hp).map_err(|e| e.to_string())?;
    let mask = hp.mask(&sample).map_err(|e| e.to_string())?;
    packet[0] ^= mask[0] & h.first_byte_mask();
    let pn_len = header::pn_len_from_first_byte(packet[0]);
    let mut truncated_pn = 0u32;
    for i in 0..pn_len {
        packet[h.pn_offset + i] ^= mask[1 + i];
        truncated_pn = (truncated_pn << 8) | u32::from(packet[h.pn_offset + i]);
    }
    let pn = packet_number::decode(truncated_pn, pn_len, largest);
    let payload_offset = h.pn_offset + pn_len;
    let aead = PacketKeys::from_key_iv(provider, keys.suite, &keys.key, &keys.iv)
        .map_err(|e| e.to_string())?;
    let nonce = aead.nonce(pn);
    let (head, body) = packet.split_at_mut(payload_offset);
    let n = aead
        .open(pn, head, body)
        .map_err(|e| format!("AEAD: {e}"))?;
    Ok(OpenedPacket {
        ty: h.ty,
        len: h.len,
        pn_offset: h.pn_offset,
        pn_len,
        truncated_pn,
        pn,
        header: head.to_vec(),
        sample,
        mask,
        nonce,
        plaintext: body[..n].to_vec(),
        protected,
    })
}

/// Seals `plaintext` under `header` (unprotected, Length already filled in, the packet number
/// field at `pn_offset..pn_offset + pn_len`) and applies header protection (PROTOCOL.md §5.2,
/// §5.3): the inverse of [`open_packet`].
pub fn protect_packet(
    provider: &dyn CryptoProvider,
    keys: &RawKeys,
    header: &[u8],
    pn_offset: usize,
    pn_len: usize,
    pn: u64,
    plaintext: &[u8],
) -> Vec<u8> {
    let aead = PacketKeys::from_key_iv(provider, keys.suite, &keys.key, &keys.iv).expect("keys");
    let mut payload = plaintext.to_vec();
    let tag = aead.seal(pn, header, &mut payload).expect("seal");
    let mut packet = header.to_vec();
    packet.extend_from_slice(&payload);
    packet.extend_from_slice(&tag);
    let sample = <[u8; HP_SAMPLE_LEN]>::try_from(&packet[pn_offset + 4..pn_offset + 20])
        .expect("long enough to sample");
    let mask = HeaderKey::from_key(provider, keys.suite, &keys.hp)
        .expect("hp key")
        .mask(&sample)
        .expect("mask");
    let first_mask = if packet[0] & 0x80 != 0 {
        header::LONG_HP_MASK
    } else {
        header::SHORT_HP_MASK
    };
    packet[0] ^= mask[0] & first_mask;
    for i in 0..pn_len {
        packet[pn_offset + i] ^= mask[1 + i];
    }
    packet
}

/// Name of a packet type in the vector files.
pub fn packet_type_name(ty: PacketType) -> &'static str {
    match ty {
        PacketType::Initial => "Initial",
        PacketType::ZeroRtt => "0-RTT",
        PacketType::Handshake => "Handshake",
        PacketType::OneRtt => "1-RTT",
    }
}

// ---------------------------------------------------------------------------------------------
// Readable summaries

/// A one-line summary of a frame.
pub fn frame_summary(f: &Frame<'_>) -> String {
    match f {
        Frame::Padding(n) => format!("PADDING x{n}"),
        Frame::Ping => "PING".to_string(),
        Frame::Ack(a) => {
            let ranges: Vec<String> = a
                .iter()
                .map(|r| format!("{}..={}", r.start, r.end - 1))
                .collect();
            format!(
                "ACK largest={} ack_delay={} ranges=[{}]",
                a.largest(),
                a.ack_delay(),
                ranges.join(", ")
            )
        }
        Frame::Crypto { offset, data } => format!("CRYPTO offset={offset} len={}", data.len()),
        Frame::Stream(s) => format!(
            "STREAM id={} offset={} len={}{} data={:?}",
            s.stream_id,
            s.offset,
            s.data.len(),
            if s.fin { " FIN" } else { "" },
            String::from_utf8_lossy(s.data)
        ),
        Frame::MaxData(m) => format!("MAX_DATA {m}"),
        Frame::MaxStreamData { stream_id, maximum } => {
            format!("MAX_STREAM_DATA id={stream_id} maximum={maximum}")
        }
        Frame::MaxStreams { dir, maximum } => format!("MAX_STREAMS {dir:?} {maximum}"),
        Frame::HandshakeDone => "HANDSHAKE_DONE".to_string(),
        Frame::ResetStream {
            stream_id,
            error_code,
            final_size,
        } => format!(
            "RESET_STREAM id={stream_id} error_code={error_code:#x} final_size={final_size}"
        ),
        Frame::StopSending {
            stream_id,
            error_code,
        } => format!("STOP_SENDING id={stream_id} error_code={error_code:#x}"),
        Frame::DataBlocked(l) => format!("DATA_BLOCKED {l}"),
        Frame::StreamDataBlocked { stream_id, limit } => {
            format!("STREAM_DATA_BLOCKED id={stream_id} limit={limit}")
        }
        Frame::StreamsBlocked { dir, limit } => format!("STREAMS_BLOCKED {dir:?} {limit}"),
        Frame::NewConnectionId(n) => format!(
            "NEW_CONNECTION_ID sequence={} retire_prior_to={} cid={} reset_token={}",
            n.sequence,
            n.retire_prior_to,
            hx(&n.cid),
            hx(&n.reset_token)
        ),
        Frame::RetireConnectionId { sequence } => format!("RETIRE_CONNECTION_ID {sequence}"),
        Frame::PathChallenge(d) => format!("PATH_CHALLENGE {}", hx(d)),
        Frame::PathResponse(d) => format!("PATH_RESPONSE {}", hx(d)),
        Frame::ConnectionClose {
            error_code,
            frame_type,
            reason,
        } => format!(
            "CONNECTION_CLOSE error_code={error_code:#x} frame_type={frame_type:#x} reason={:?}",
            String::from_utf8_lossy(reason)
        ),
        Frame::ApplicationClose { error_code, reason } => format!(
            "APPLICATION_CLOSE error_code={error_code:#x} reason={:?}",
            String::from_utf8_lossy(reason)
        ),
        Frame::Datagram(d) => format!("DATAGRAM len={}", d.len()),
        other => format!("{other:?}"),
    }
}

fn params_summary(raw: &[u8]) -> String {
    match TransportParameters::decode(raw) {
        Ok(p) => format!("{p:?}"),
        Err(e) => format!("undecodable: {e}"),
    }
}

/// Name of a handshake message type (PROTOCOL.md §7.1).
pub fn message_name(raw: &[u8]) -> String {
    match Message::decode(raw) {
        Ok(m) => format!("{:?}", m.ty()),
        Err(e) => format!("undecodable ({e})"),
    }
}

/// A one-line summary of a handshake message (header included).
pub fn message_summary(raw: &[u8]) -> String {
    let m = match Message::decode(raw) {
        Ok(m) => m,
        Err(e) => return format!("undecodable: {e}"),
    };
    match m {
        Message::ClientHello(ch) => format!(
            "ClientHello random={} versions={:08x?} cipher_suites={:04x?} key_share=(group {:#06x}, \
             {} bytes) server_name={:?} early_data={} pre_shared_key={} previous_version={:?} \
             transport_parameters={}",
            hx(&ch.random),
            ch.versions.as_slice(),
            ch.cipher_suites.as_slice(),
            ch.key_share.group,
            ch.key_share.share.len(),
            ch.server_name,
            ch.early_data,
            ch.pre_shared_key.is_some(),
            ch.previous_version,
            params_summary(ch.transport_parameters)
        ),
        Message::ServerHello(sh) => format!(
            "ServerHello random={} version={:08x} cipher_suite={:04x} key_share=(group {:#06x}, {} \
             bytes) psk_accepted={}",
            hx(&sh.random),
            sh.version,
            sh.cipher_suite,
            sh.key_share.group,
            sh.key_share.share.len(),
            sh.psk_accepted
        ),
        Message::EncryptedExtensions(ee) => format!(
            "EncryptedExtensions early_data={} transport_parameters={}",
            ee.early_data,
            params_summary(ee.transport_parameters)
        ),
        Message::Certificate(c) => format!(
            "Certificate kind={} data={}",
            match c.kind {
                CertificateKind::RawPublicKey => "0 (raw public key)",
                CertificateKind::Certificate => "1 (certificate)",
            },
            hx(c.data)
        ),
        Message::CertificateRequest(r) => format!("CertificateRequest flags={}", r.flags),
        Message::CertificateVerify(cv) => format!(
            "CertificateVerify scheme={:#06x} signature={}",
            cv.scheme,
            hx(cv.signature)
        ),
        Message::Finished(f) => format!("Finished verify_data={}", hx(&f.verify_data)),
        Message::NewSessionTicket(t) => format!(
            "NewSessionTicket lifetime={} age_add={} nonce={} ticket={} max_early_data={:?}",
            t.lifetime,
            t.age_add,
            hx(t.nonce),
            hx(t.ticket),
            t.max_early_data
        ),
    }
}
