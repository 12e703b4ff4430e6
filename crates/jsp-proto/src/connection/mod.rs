//! One JetStreamProto connection as a sans-IO state machine.
//!
//! A [`Connection`] owns its packet number spaces, keys, handshake, streams, loss recovery and
//! timers. It is driven by its [`Endpoint`](crate::endpoint::Endpoint), which routes datagrams to
//! it; the application uses the stream, datagram and close methods. Nothing here reads a clock or
//! touches a socket: `now` is always an argument.
//!
//! Calling order for a driver (through the endpoint): feed datagrams with `handle_datagram`,
//! call `handle_timeout` when `poll_timeout` passes, then drain `poll_transmit` and `poll_event`.

mod compressed;
pub mod crypto_stream;
mod fec;
pub mod keys;
pub mod paths;
mod recv;
mod send;
pub use send::Transmit;
pub mod scheduler;
pub mod sent_frames;
pub mod streams;

use core::net::SocketAddr;
use std::collections::VecDeque;
use std::sync::Arc;

use core::time::Duration;

use crate::config::{ClientConfig, ServerConfig, TransportConfig};
use crate::crypto::{CipherSuite, CryptoProvider, DirectionalKeys};
use crate::error::{CloseReason, ConnectionError, ErrorCode, HandshakeError};
use crate::handshake::client::ClientHandshake;
use crate::handshake::server::ServerHandshake;
use crate::handshake::ticket::{SessionTicket, SharedResumption, TicketState};
use crate::handshake::{self, KeyChange, Negotiated, Output, PeerIdentity, Space};
use crate::recovery::congestion::{CongestionController, LossEvent};
use crate::recovery::mtu::MtuDiscovery;
use crate::recovery::pacer::Pacer;
use crate::recovery::rate::DeliveryRateEstimator;
use crate::recovery::sent::LossDetection;
use crate::recovery::{ReceivedPackets, RttEstimator};
use crate::time::{Instant, UnixTime};
use crate::wire::header::ConnectionId;
use crate::wire::transport_params::{Sender as ParamSender, TransportParameters};
use crate::Side;

use crypto_stream::{CryptoRecv, CryptoSend};
use keys::AppKeys;
pub use paths::EndpointRequest;
use paths::{CidState, PathState};
pub use scheduler::{QosClass, StreamPriority};
use sent_frames::SentFrames;
use streams::{BufferLimits, StreamEvent, StreamLimits, Streams};
pub use streams::{Dir, StreamApiError, StreamId};

/// Amplification factor before address validation (PROTOCOL.md §12.1).
pub const AMPLIFICATION_FACTOR: u64 = 3;
/// Minimum size of a datagram carrying a client Initial (PROTOCOL.md §4).
pub const MIN_INITIAL_DATAGRAM: usize = 1200;
/// Cap on queued received datagrams not yet read by the application.
pub const MAX_QUEUED_DATAGRAMS: usize = 1024;
/// Longest reason phrase sent or kept from CONNECTION_CLOSE (PROTOCOL.md §10).
pub const MAX_REASON_LEN: usize = 1024;

/// Something the application should know about.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The handshake completed: the peer is authenticated.
    Connected(HandshakeSummary),
    /// The peer opened a stream.
    StreamOpened(StreamId),
    /// A stream has data (or its end) to read.
    StreamReadable(StreamId),
    /// The peer reset a stream: it ends without its remaining data.
    StreamReset {
        /// The stream.
        id: StreamId,
        /// The peer's application error code.
        code: u64,
    },
    /// The peer asked us to stop sending on a stream; our side was reset with its code.
    StreamStopped {
        /// The stream.
        id: StreamId,
        /// The peer's application error code.
        code: u64,
    },
    /// The peer abandoned part of a partially reliable stream (its deadline passed): those
    /// offsets will never be delivered; reading continues after them.
    StreamSkipped {
        /// The stream.
        id: StreamId,
        /// The abandoned offsets.
        range: core::ops::Range<u64>,
    },
    /// Everything the application wrote on one of our send streams, and its end, was
    /// acknowledged by the peer: the data reached the peer's stack (bytes abandoned by a
    /// partial-reliability deadline count as done).
    StreamAcknowledged(StreamId),
    /// A datagram arrived; read it with [`Connection::read_datagram`].
    DatagramReceived,
    /// The 1-RTT keys were updated (generation counts updates).
    KeyUpdated {
        /// Number of updates so far.
        generation: u64,
    },
    /// The server issued a session ticket (client side): keep it to resume later with
    /// [`Endpoint::connect_resuming`](crate::endpoint::Endpoint::connect_resuming).
    SessionTicket(Box<SessionTicket>),
    /// The server refused our 0-RTT data (client side); it is being resent as 1-RTT data, nothing
    /// is lost.
    ZeroRttRejected,
    /// The client sent 0-RTT data and the server accepted it (server side). Data that arrived in
    /// 0-RTT packets may be a replay by an attacker: see [`Connection::received_early_data`].
    EarlyDataAccepted,
    /// The connection ended. No further events follow.
    Closed(ConnectionError),
}

/// What the handshake negotiated, for the application and for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeSummary {
    /// Protocol version.
    pub version: u32,
    /// Cipher suite.
    pub suite: CipherSuite,
    /// Key-exchange group name (e.g. "X25519-MLKEM768").
    pub group: &'static str,
    /// The peer's authenticated identity (the server's, for a client; the client's, if it
    /// authenticated, for a server).
    pub peer: Option<PeerIdentity>,
    /// Whether the session was resumed from a ticket.
    pub resumed: bool,
}

/// Counters a user or benchmark reads with [`Connection::stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionStats {
    /// Datagrams sent.
    pub datagrams_sent: u64,
    /// Bytes sent in datagrams.
    pub bytes_sent: u64,
    /// Datagrams received.
    pub datagrams_received: u64,
    /// Bytes received in datagrams.
    pub bytes_received: u64,
    /// Packets sent.
    pub packets_sent: u64,
    /// Packets received and processed.
    pub packets_received: u64,
    /// Packets declared lost.
    pub packets_lost: u64,
    /// Packets dropped because they did not authenticate (tampered, corrupted, wrong keys).
    pub dropped_auth: u64,
    /// Packets dropped as duplicates or replays.
    pub dropped_duplicate: u64,
    /// Packets dropped because they could not be parsed or no keys were available.
    pub dropped_undecodable: u64,
    /// Key updates performed.
    pub key_updates: u64,
    /// Queued datagrams dropped in favour of newer ones.
    pub datagrams_dropped: u64,
    /// Current path MTU (UDP payload bytes).
    pub mtu: usize,
    /// Bytes sent and neither acknowledged nor declared lost.
    pub bytes_in_flight: u64,
    /// Congestion controller name ("cubic", "bbr", "newreno").
    pub congestion: &'static str,
    /// Smoothed RTT.
    pub rtt: Duration,
    /// Congestion window in bytes.
    pub cwnd: u64,
    /// What the congestion controller is doing (slow start, avoidance, recovery, a BBR phase).
    pub congestion_phase: Option<crate::recovery::congestion::Phase>,
    /// The slow-start threshold in bytes, once one was set (a loss or a slow-start exit).
    pub ssthresh: Option<u64>,
    /// The congestion controller's pacing rate in bytes per second, if it sets one (BBR).
    pub pacing_rate: Option<u64>,
    /// The congestion controller's bottleneck bandwidth estimate in bytes per second (BBR).
    pub bandwidth: Option<u64>,
    /// Frames the sender tried to compress (PROTOCOL.md §14.5); `Auto` mode keeps this low on
    /// incompressible data.
    pub compression_attempts: u64,
    /// STREAM_LZ4 and DATAGRAM_LZ4 frames sent (the attempts that paid).
    pub compressed_frames_sent: u64,
    /// Bytes those frames saved: uncompressed minus compressed sizes.
    pub compression_saved_bytes: u64,
    /// Compressed frames received and decompressed.
    pub compressed_frames_received: u64,
    /// FEC: packets sent with a protected payload (FEC_SOURCE) (PROTOCOL.md §19).
    pub fec_source_sent: u64,
    /// FEC: repair symbols sent (REPAIR frames).
    pub fec_repair_sent: u64,
    /// FEC: lost payloads this side rebuilt from repair symbols (delivered without waiting for
    /// a retransmission; their packets still count as lost at the sender).
    pub fec_recovered: u64,
    /// FEC: sources the peer reported rebuilt (FEC_RECOVERED), whose stream data was then not
    /// retransmitted.
    pub fec_peer_recovered: u64,
    /// FEC: the group shape (source, repair) protecting traffic now, `None` when off.
    pub fec_shape: Option<(u8, u8)>,
    /// Times a stream had new data to send but no flow-control credit left (its own or the
    /// connection's): the peer's receive window, not the network, held the sender back.
    pub flow_control_blocked: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Handshake,
    Established,
    /// We sent CONNECTION_CLOSE; we answer further packets with it until `until`.
    Closing {
        until: Instant,
    },
    /// The peer closed; we stay silent until `until`.
    Draining {
        until: Instant,
    },
    Closed,
}

/// A pending CONNECTION_CLOSE / APPLICATION_CLOSE to send.
#[derive(Debug, Clone)]
struct CloseFrame {
    code: u64,
    application: bool,
    frame_type: u64,
    reason: Vec<u8>,
}

/// Per-space state.
#[derive(Debug, Default)]
struct PacketSpace {
    /// (send, receive) keys for Initial and Handshake; Data uses [`Connection::app`].
    keys: Option<(DirectionalKeys, DirectionalKeys)>,
    crypto_send: CryptoSend,
    crypto_recv: CryptoRecv,
    received: ReceivedPackets,
    loss: LossDetection<SentFrames>,
    next_pn: u64,
    discarded: bool,
    /// Probe packets to send after a PTO.
    probes: u32,
}

enum HandshakeRole {
    Client(Box<ClientHandshake>),
    Server(Option<Box<ServerHandshake>>),
    Done,
}

/// Server-side context a connection needs to accept a ClientHello.
#[derive(Clone)]
pub(crate) struct ServerContext {
    pub config: Arc<ServerConfig>,
    pub resumption: SharedResumption,
}

/// A JetStreamProto connection.
pub struct Connection {
    side: Side,
    provider: Arc<dyn CryptoProvider>,
    transport: TransportConfig,
    version: u32,
    state: State,
    role: HandshakeRole,
    server_ctx: Option<ServerContext>,
    spaces: [PacketSpace; 3],
    app: Option<AppKeys>,
    zero_rtt: Option<DirectionalKeys>,
    negotiated: Option<Negotiated>,
    local_cid: ConnectionId,
    remote_cid: ConnectionId,
    original_dcid: ConnectionId,
    retry_scid: Option<ConnectionId>,
    retry_token: Vec<u8>,
    received_any: bool,
    remote: SocketAddr,
    address_validated: bool,
    unvalidated_received: u64,
    unvalidated_sent: u64,
    rtt: RttEstimator,
    pto_count: u32,
    cc: Box<dyn CongestionController>,
    rate: DeliveryRateEstimator,
    pacer: Pacer,
    /// When the pacer allows the next packet, if it is holding data back.
    pacing_deadline: Option<Instant>,
    mtud: MtuDiscovery,
    /// Set while a path MTU probe (PING + PADDING) is being built.
    building_probe: bool,
    /// Since when a path MTU probe has been due but other packets went first (`None`: no probe
    /// waiting). A probe that waited a smoothed RTT goes ahead of them.
    probe_waiting_since: Option<Instant>,
    /// When path MTU discovery starts at the latest (set on handshake confirmation; `None`
    /// before it and once the search has started: see [`crate::recovery::mtu::SEARCH_DELAY`]).
    mtu_search_at: Option<Instant>,
    /// Server: when to produce the rest of the first flight, whose ServerHello is out
    /// ([`ServerHandshake::answer`]); just after the ClientHello was handled, so that the
    /// ServerHello leaves in a datagram of its own first and the client starts its key exchange
    /// while the server completes its own and signs.
    answer_due: Option<Instant>,
    /// Server: send the ServerHello ahead of the rest of the first flight (set by the endpoint
    /// when no other handshake is in progress: under a load of handshakes, one datagram per
    /// flight costs less).
    split_first_flight: bool,
    /// Path MTU discovery may send probes (the connection sent enough datagrams, or the delay
    /// passed).
    mtu_search_started: bool,
    streams: Streams,
    datagrams_in: VecDeque<Vec<u8>>,
    datagrams_out: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
    idle_timeout: Option<Duration>,
    last_activity: Instant,
    /// Connection IDs of both sides.
    cids: CidState,
    /// Validation of the peer's address after a migration.
    path: PathState,
    /// Our stateless reset token (server: for the handshake CID, sent as a transport parameter).
    reset_token: Option<[u8; 16]>,
    /// The latest time the driver gave us (for application calls that take no `now`).
    now_hint: Instant,
    /// When we last sent an ack-eliciting packet (heartbeats).
    last_eliciting_sent: Instant,
    /// Set by a graceful close: stop accepting writes, flush, then send the close frame.
    finishing: Option<(CloseReason, Option<String>)>,
    handshake_deadline: Instant,
    handshake_confirmed: bool,
    handshake_done_pending: bool,
    ping_pending: bool,
    close_frame: Option<CloseFrame>,
    close_pending: bool,
    peer_params: Option<TransportParameters>,
    peer_max_datagram: u64,
    summary: Option<HandshakeSummary>,
    stats: ConnectionStats,
    /// Compression scratch (PROTOCOL.md §14.5), reused: a chunk's plain bytes, its LZ4 block,
    /// and decompressed bytes received.
    lz4: compressed::Scratch,
    /// Compression state of the datagrams we send.
    datagram_lz4: crate::compression::Adaptive,
    mtu: usize,
    unix_now: UnixTime,
    created_at: Instant,
    /// The error the connection ended with (kept for inspection after `Closed`).
    error: Option<ConnectionError>,
    key_update_requested: bool,
    /// Handshake packets that failed authentication while the handshake ran.
    handshake_auth_failures: u64,
    /// Client: the resumption master secret, for tickets received later.
    resumption_master: Option<crate::crypto::Secret>,
    /// Client: 0-RTT bytes still allowed by the ticket.
    zero_rtt_budget: u64,
    /// Server: 0-RTT payload bytes received (bounded by `max_early_data`).
    early_bytes_received: u64,
    /// Server: streams that received data in 0-RTT packets.
    early_streams: std::collections::HashSet<StreamId>,
    /// Set while the frames of a 0-RTT packet are processed.
    in_early_packet: bool,
    /// Server: 1-RTT packets that arrived before the client's Finished, still protected, with
    /// the address they came from and whether their datagram earned amplification budget;
    /// processed once the handshake completes (PROTOCOL.md §7.9).
    held_one_rtt: Vec<(SocketAddr, bool, Vec<u8>)>,
    /// Forward error correction (PROTOCOL.md §19).
    fec: fec::FecState,
}

impl core::fmt::Debug for Connection {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Connection")
            .field("side", &self.side)
            .field("state", &self.state)
            .field("local_cid", &self.local_cid)
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

fn local_limits(t: &TransportConfig) -> StreamLimits {
    StreamLimits {
        max_data: t.initial_max_data,
        stream_data_bidi_local: t.initial_max_stream_data,
        stream_data_bidi_remote: t.initial_max_stream_data,
        stream_data_uni: t.initial_max_stream_data,
        max_streams_bidi: t.max_streams,
        max_streams_uni: t.max_streams,
    }
}

impl Connection {
    #[allow(clippy::too_many_arguments)]
    fn new(
        side: Side,
        provider: Arc<dyn CryptoProvider>,
        transport: TransportConfig,
        version: u32,
        local_cid: ConnectionId,
        remote_cid: ConnectionId,
        original_dcid: ConnectionId,
        remote: SocketAddr,
        now: Instant,
        unix_now: UnixTime,
    ) -> Result<Self, ConnectionError> {
        let (send, recv) = crate::crypto::initial_keys(
            provider.as_ref(),
            original_dcid.as_slice(),
            side == Side::Client,
        )
        .map_err(|e| ConnectionError::Handshake(handshake::crypto_err(e)))?;
        let mut spaces: [PacketSpace; 3] = Default::default();
        spaces[0].keys = Some((send, recv));
        let mtu = usize::from(transport.initial_mtu);
        let streams = Streams::new(
            side,
            local_limits(&transport),
            BufferLimits {
                scheduler: transport.scheduler.clone(),
                max_stream_window: transport.max_stream_window,
                max_connection_window: transport.max_connection_window,
                send_buffer: transport.send_buffer,
            },
        );
        Ok(Self {
            side,
            cc: transport.congestion_control.build(mtu as u64, now),
            rate: DeliveryRateEstimator::new(),
            pacer: Pacer::new(mtu as u64),
            pacing_deadline: None,
            mtud: MtuDiscovery::new(transport.initial_mtu, transport.max_udp_payload_size),
            building_probe: false,
            probe_waiting_since: None,
            mtu_search_at: None,
            answer_due: None,
            split_first_flight: false,
            mtu_search_started: false,
            rtt: RttEstimator::new(transport.initial_rtt),
            handshake_deadline: now + transport.handshake_timeout,
            transport,
            provider,
            version,
            state: State::Handshake,
            role: HandshakeRole::Done,
            server_ctx: None,
            spaces,
            app: None,
            zero_rtt: None,
            negotiated: None,
            local_cid,
            remote_cid,
            original_dcid,
            retry_scid: None,
            retry_token: Vec::new(),
            received_any: false,
            remote,
            address_validated: side == Side::Client,
            unvalidated_received: 0,
            unvalidated_sent: 0,
            pto_count: 0,
            streams,
            datagrams_in: VecDeque::new(),
            datagrams_out: VecDeque::new(),
            events: VecDeque::new(),
            idle_timeout: None,
            last_activity: now,
            last_eliciting_sent: now,
            now_hint: now,
            cids: CidState::new(local_cid, remote_cid, 4),
            path: PathState::default(),
            reset_token: None,
            finishing: None,
            handshake_confirmed: false,
            handshake_done_pending: false,
            ping_pending: false,
            close_frame: None,
            close_pending: false,
            peer_params: None,
            peer_max_datagram: 0,
            summary: None,
            stats: ConnectionStats::default(),
            lz4: compressed::Scratch::default(),
            datagram_lz4: crate::compression::Adaptive::default(),
            mtu,
            unix_now,
            created_at: now,
            error: None,
            key_update_requested: false,
            handshake_auth_failures: 0,
            resumption_master: None,
            zero_rtt_budget: 0,
            early_bytes_received: 0,
            early_streams: std::collections::HashSet::new(),
            in_early_packet: false,
            held_one_rtt: Vec::new(),
            fec: fec::FecState::default(),
        })
    }

    /// Creates a client connection and its first flight (with `key_share` if one was prepared);
    /// `ticket` resumes a session (and sends 0-RTT data if the ticket and the config allow).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn connect(
        provider: Arc<dyn CryptoProvider>,
        config: Arc<ClientConfig>,
        local_cid: ConnectionId,
        original_dcid: ConnectionId,
        remote: SocketAddr,
        now: Instant,
        unix_now: UnixTime,
        ticket: Option<&SessionTicket>,
        key_share: Option<crate::handshake::client::PreparedKeyShare>,
    ) -> Result<Self, ConnectionError> {
        config
            .validate()
            .map_err(|e| ConnectionError::Handshake(HandshakeError::Crypto(e.to_string())))?;
        let version = config.versions[0];
        let mut conn = Self::new(
            Side::Client,
            provider.clone(),
            config.transport.clone(),
            version,
            local_cid,
            original_dcid,
            original_dcid,
            remote,
            now,
            unix_now,
        )?;
        let mut params = Vec::with_capacity(128);
        conn.local_transport_params().encode(&mut params);
        let mut out = Output::default();
        let hs = ClientHandshake::start(
            provider, config, params, unix_now, version, None, ticket, key_share, &mut out,
        )?;
        conn.role = HandshakeRole::Client(Box::new(hs));
        conn.apply_output(out, now)?;
        if let (Some(t), true) = (ticket, conn.zero_rtt.is_some()) {
            // 0-RTT uses the limits the server had in the original session (PROTOCOL.md §13.4).
            if let Ok(p) =
                TransportParameters::decode_from(&t.remembered_params, ParamSender::Server)
            {
                conn.apply_peer_limits(&p);
            }
            conn.zero_rtt_budget = u64::from(t.max_early_data);
        }
        Ok(conn)
    }

    /// Creates a server connection for a client's first Initial packet.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn accept(
        provider: Arc<dyn CryptoProvider>,
        ctx: ServerContext,
        version: u32,
        local_cid: ConnectionId,
        client_scid: ConnectionId,
        original_dcid: ConnectionId,
        retry_scid: Option<ConnectionId>,
        remote: SocketAddr,
        now: Instant,
        unix_now: UnixTime,
        reset_token: [u8; 16],
    ) -> Result<Self, ConnectionError> {
        // After a Retry, Initial keys derive from the DCID the client used (the Retry's SCID).
        let keys_dcid = retry_scid.unwrap_or(original_dcid);
        let mut conn = Self::new(
            Side::Server,
            provider,
            ctx.config.transport.clone(),
            version,
            local_cid,
            client_scid,
            keys_dcid,
            remote,
            now,
            unix_now,
        )?;
        conn.original_dcid = original_dcid;
        conn.retry_scid = retry_scid;
        conn.reset_token = Some(reset_token);
        conn.address_validated = retry_scid.is_some();
        conn.role = HandshakeRole::Server(None);
        conn.server_ctx = Some(ctx);
        Ok(conn)
    }

    /// Transport parameters this side sends (PROTOCOL.md §8).
    fn local_transport_params(&self) -> TransportParameters {
        let t = &self.transport;
        let mut p = TransportParameters {
            max_idle_timeout: u64::try_from(t.idle_timeout.as_millis()).unwrap_or(u64::MAX),
            max_udp_payload_size: u64::from(t.max_udp_payload_size),
            initial_max_data: t.initial_max_data,
            initial_max_stream_data_bidi_local: t.initial_max_stream_data,
            initial_max_stream_data_bidi_remote: t.initial_max_stream_data,
            initial_max_stream_data_uni: t.initial_max_stream_data,
            initial_max_streams_bidi: t.max_streams,
            initial_max_streams_uni: t.max_streams,
            max_ack_delay: u64::try_from(t.max_ack_delay.as_millis()).unwrap_or(25),
            max_datagram_frame_size: u64::from(t.max_datagram_frame_size),
            initial_source_connection_id: Some(self.local_cid),
            // We always decompress (PROTOCOL.md §14.5); `compression.mode` is about sending.
            compression: crate::wire::transport_params::COMPRESSION_LZ4,
            compression_dictionaries: t.compression.advertised_ids(),
            fec_max_symbols: self.fec_local_param(),
            ..TransportParameters::default()
        };
        if self.side == Side::Server {
            p.original_destination_connection_id = Some(self.original_dcid);
            p.retry_source_connection_id = self.retry_scid;
            p.stateless_reset_token = self.reset_token;
        }
        p
    }

    /// Which side this is.
    pub fn side(&self) -> Side {
        self.side
    }

    /// The connection ID the peer uses to reach us.
    pub fn local_cid(&self) -> ConnectionId {
        self.local_cid
    }

    /// The peer's current address.
    pub fn remote_address(&self) -> SocketAddr {
        self.remote
    }

    /// Whether the handshake completed and the connection is open.
    pub fn is_established(&self) -> bool {
        self.state == State::Established
    }

    /// Whether the handshake is still running.
    pub fn is_handshaking(&self) -> bool {
        self.state == State::Handshake
    }

    /// Whether the connection has fully ended (no more timers or packets).
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Whether the connection is closing or draining (or closed).
    pub fn is_closing(&self) -> bool {
        matches!(
            self.state,
            State::Closing { .. } | State::Draining { .. } | State::Closed
        )
    }

    /// The error the connection ended with, if it ended.
    pub fn error(&self) -> Option<&ConnectionError> {
        self.error.as_ref()
    }

    /// What the handshake negotiated, once complete.
    pub fn handshake_summary(&self) -> Option<&HandshakeSummary> {
        self.summary.as_ref()
    }

    /// Counters.
    pub fn stats(&self) -> ConnectionStats {
        let mut s = self.stats.clone();
        s.rtt = self.rtt.smoothed();
        s.cwnd = self.cc.window();
        s.bytes_in_flight = self.spaces.iter().map(|x| x.loss.bytes_in_flight()).sum();
        s.mtu = self.mtu;
        s.congestion = self.cc.name();
        let cc = self.cc.state();
        s.congestion_phase = Some(cc.phase);
        s.ssthresh = cc.ssthresh;
        s.pacing_rate = cc.pacing_rate;
        s.bandwidth = cc.bandwidth;
        s.flow_control_blocked = self.streams.flow_control_blocked();
        s
    }

    /// The next application event.
    pub fn poll_event(&mut self) -> Option<Event> {
        if self.events.is_empty() {
            // Acknowledgements complete streams without passing through frame handling.
            self.drain_stream_events();
        }
        self.events.pop_front()
    }

    /// Whether events wait to be read.
    pub fn has_pending_events(&self) -> bool {
        !self.events.is_empty() || self.streams.has_events()
    }

    // ---- application API: streams, datagrams, close, key update ----

    fn check_open(&self) -> Result<(), StreamApiError> {
        if self.finishing.is_some() {
            return Err(StreamApiError::NotOpen);
        }
        match self.state {
            State::Established => Ok(()),
            // A resuming client may write 0-RTT data before the handshake completes.
            State::Handshake if self.side == Side::Client && self.zero_rtt.is_some() => Ok(()),
            _ => Err(StreamApiError::NotOpen),
        }
    }

    /// Whether any data of stream `id` arrived in 0-RTT packets (server side): such data may be
    /// a replay (PROTOCOL.md §13.4); act on it only if the request is idempotent.
    pub fn received_early_data(&self, id: StreamId) -> bool {
        self.early_streams.contains(&id)
    }

    /// Whether 0-RTT data can be sent now (client resuming with an early-data ticket).
    pub fn can_send_early_data(&self) -> bool {
        self.state == State::Handshake && self.zero_rtt.is_some() && self.zero_rtt_budget > 0
    }

    /// Opens a stream with the default priority (QoS class `Bulk`).
    pub fn open_stream(&mut self, dir: Dir) -> Result<StreamId, StreamApiError> {
        self.check_open()?;
        self.streams.open(dir, self.now_hint)
    }

    /// Opens a stream with a QoS class, numeric priority and weight: `System` before `Chat`
    /// before `Media` before `Bulk` strictly, higher priority first within a class, bandwidth
    /// shared by weight among equals (PROTOCOL.md §14.4).
    pub fn open_stream_with(
        &mut self,
        dir: Dir,
        priority: StreamPriority,
    ) -> Result<StreamId, StreamApiError> {
        self.check_open()?;
        self.streams.open_with(dir, priority, self.now_hint)
    }

    /// Changes a stream's scheduling priority.
    pub fn set_stream_priority(
        &mut self,
        id: StreamId,
        priority: StreamPriority,
    ) -> Result<(), StreamApiError> {
        self.streams.set_priority(id, priority)
    }

    /// Queues data on a stream (`fin` ends the stream after it).
    pub fn stream_write(
        &mut self,
        id: StreamId,
        data: &[u8],
        fin: bool,
    ) -> Result<usize, StreamApiError> {
        self.check_open()?;
        self.streams.write(id, data, fin, None)
    }

    /// Queues one partially reliable message on a stream (PROTOCOL.md §14.2): if it is not
    /// acknowledged within `ttl` the sender abandons it and the receiver skips it (and is told).
    /// The message is accepted whole or not at all ([`StreamApiError::Blocked`]).
    pub fn stream_send_message(
        &mut self,
        id: StreamId,
        data: &[u8],
        ttl: Duration,
    ) -> Result<(), StreamApiError> {
        self.check_open()?;
        let deadline = self.now_hint + ttl;
        self.streams
            .write(id, data, false, Some(deadline))
            .map(|_| ())
    }

    /// Resets our sending side of a stream with an application error code (RESET_STREAM).
    pub fn reset_stream(&mut self, id: StreamId, code: u64) -> Result<(), StreamApiError> {
        self.streams.reset(id, code)
    }

    /// Asks the peer to stop sending on a stream (STOP_SENDING).
    pub fn stop_sending(&mut self, id: StreamId, code: u64) -> Result<(), StreamApiError> {
        self.streams.stop_sending(id, code)
    }

    /// Reads up to `max` bytes from a stream: `(bytes, fin)`.
    pub fn stream_read(
        &mut self,
        id: StreamId,
        max: usize,
    ) -> Result<(Vec<u8>, bool), StreamApiError> {
        let srtt = self.rtt.smoothed();
        let r = self.streams.read(id, max, self.now_hint, srtt);
        self.drain_stream_events();
        r
    }

    /// [`Connection::stream_read`] into `buf`, without allocating: `(bytes written, fin)`.
    pub fn stream_read_into(
        &mut self,
        id: StreamId,
        buf: &mut [u8],
    ) -> Result<(usize, bool), StreamApiError> {
        let srtt = self.rtt.smoothed();
        let r = self.streams.read_into(id, buf, self.now_hint, srtt);
        self.drain_stream_events();
        r
    }

    /// Streams with state still held (either half open or unacknowledged).
    pub fn live_streams(&self) -> usize {
        self.streams.live()
    }

    /// Bytes written to streams and not yet acknowledged by the peer.
    pub fn unacked_stream_bytes(&self) -> u64 {
        self.streams.buffered_send_bytes()
    }

    /// Queues an unreliable datagram (never retransmitted, delivered at most once). Fails if the
    /// peer does not accept datagrams, it does not fit one packet on the current path, or the
    /// send queue is full ([`DatagramError::QueueFull`]).
    pub fn send_datagram(&mut self, data: &[u8]) -> Result<(), DatagramError> {
        self.queue_datagram(data, false)
    }

    /// Like [`Connection::send_datagram`], but when the queue is full the oldest queued datagram
    /// is dropped instead: for real-time data, late is worse than lost.
    pub fn send_datagram_drop_oldest(&mut self, data: &[u8]) -> Result<(), DatagramError> {
        self.queue_datagram(data, true)
    }

    /// Datagrams dropped from the send queue because newer ones replaced them.
    pub fn datagrams_dropped(&self) -> u64 {
        self.stats.datagrams_dropped
    }

    fn queue_datagram(&mut self, data: &[u8], drop_oldest: bool) -> Result<(), DatagramError> {
        if self.state != State::Established {
            return Err(DatagramError::NotOpen);
        }
        if self.peer_max_datagram == 0 {
            return Err(DatagramError::UnsupportedByPeer);
        }
        let max = self.max_datagram_size();
        if data.len() > max {
            return Err(DatagramError::TooLarge { max });
        }
        if self.datagrams_out.len() >= self.transport.datagram_send_queue.max(1) {
            if !drop_oldest {
                return Err(DatagramError::QueueFull);
            }
            self.datagrams_out.pop_front();
            self.stats.datagrams_dropped += 1;
        }
        self.datagrams_out.push_back(data.to_vec());
        Ok(())
    }

    /// Largest datagram payload that fits one packet on the current path.
    pub fn max_datagram_size(&self) -> usize {
        // short header (1 + cid + 4 pn) + frame header (1 + 2 len) + tag
        let overhead = 1 + self.remote_cid.len() + 4 + 3 + crate::crypto::provider::TAG_LEN;
        let path = self.mtu.saturating_sub(overhead);
        path.min(usize::try_from(self.peer_max_datagram).unwrap_or(usize::MAX))
    }

    /// Takes the next received datagram.
    pub fn read_datagram(&mut self) -> Option<Vec<u8>> {
        self.datagrams_in.pop_front()
    }

    /// Requests a key update (PROTOCOL.md §9); it starts as soon as the rules allow.
    pub fn request_key_update(&mut self) {
        self.key_update_requested = true;
    }

    /// The current 1-RTT key generation (number of key updates).
    pub fn key_generation(&self) -> u64 {
        self.app.as_ref().map_or(0, AppKeys::generation)
    }

    /// Changes how often this side sends a heartbeat PING on an otherwise quiet connection
    /// (PROTOCOL.md §15.1), for example a phone saving battery; zero disables heartbeats. The
    /// peer counts as gone after `heartbeat_timeout_count` intervals without a packet, so a longer
    /// interval also detects a dead peer later. Keep it below the idle timeout, or the connection
    /// ends idle between heartbeats.
    pub fn set_heartbeat_interval(&mut self, interval: Duration) {
        self.transport.heartbeat_interval = interval;
    }

    /// The current heartbeat interval (zero: disabled).
    pub fn heartbeat_interval(&self) -> Duration {
        self.transport.heartbeat_interval
    }

    /// Closes the connection gracefully with `reason` and an optional message: no new data is
    /// accepted, every byte already written to a stream is delivered and acknowledged, then the
    /// close frame is sent (PROTOCOL.md §15.1). If the peer vanishes meanwhile, the idle or
    /// heartbeat timeout ends the connection. Use [`Connection::abort`] to close at once.
    pub fn close(&mut self, now: Instant, reason: CloseReason, message: Option<&str>) {
        if self.is_closing() || self.finishing.is_some() {
            return;
        }
        if self.state == State::Established && self.streams.buffered_send_bytes() > 0 {
            self.finishing = Some((reason, message.map(str::to_string)));
            return;
        }
        self.abort(now, reason, message);
    }

    /// Whether a graceful close is waiting for written data to be acknowledged.
    pub fn is_finishing(&self) -> bool {
        self.finishing.is_some()
    }

    /// Completes a graceful close once all written data is acknowledged.
    fn maybe_finish(&mut self, now: Instant) {
        if self.finishing.is_some() && self.streams.buffered_send_bytes() == 0 {
            if let Some((reason, message)) = self.finishing.take() {
                self.abort(now, reason, message.as_deref());
            }
        }
    }

    /// Closes the connection at once with `reason` and an optional message; data not yet
    /// delivered is abandoned.
    pub fn abort(&mut self, now: Instant, reason: CloseReason, message: Option<&str>) {
        if self.is_closing() {
            return;
        }
        self.finishing = None;
        let reason_bytes = message
            .map(|m| truncate_utf8(m, MAX_REASON_LEN).as_bytes().to_vec())
            .unwrap_or_default();
        let frame = match reason.transport_code() {
            Some(code) => CloseFrame {
                code: code.0,
                application: false,
                frame_type: 0,
                reason: reason_bytes,
            },
            None => CloseFrame {
                code: match reason {
                    CloseReason::Application(c) => c,
                    _ => 0,
                },
                application: true,
                frame_type: 0,
                reason: reason_bytes,
            },
        };
        self.enter_closing(now, frame, ConnectionError::LocallyClosed { reason });
    }

    /// Closes because the peer broke the protocol.
    fn fail(&mut self, now: Instant, code: ErrorCode, message: &str, error: ConnectionError) {
        if self.is_closing() {
            return;
        }
        let frame = CloseFrame {
            code: code.0,
            application: false,
            frame_type: 0,
            reason: truncate_utf8(message, MAX_REASON_LEN).as_bytes().to_vec(),
        };
        self.enter_closing(now, frame, error);
    }

    fn protocol_violation(&mut self, now: Instant, code: ErrorCode, message: &str) {
        let err = ConnectionError::ProtocolViolation {
            code,
            message: message.to_string(),
        };
        self.fail(now, code, message, err);
    }

    fn handshake_failed(&mut self, now: Instant, e: HandshakeError) {
        let code = ErrorCode::handshake(e.alert());
        let msg = e.to_string();
        self.fail(now, code, &msg, ConnectionError::Handshake(e));
    }

    fn enter_closing(&mut self, now: Instant, frame: CloseFrame, error: ConnectionError) {
        self.close_frame = Some(frame);
        self.close_pending = true;
        let until = now + self.pto_duration() * 3;
        self.state = State::Closing { until };
        self.set_error(error);
    }

    fn enter_draining(&mut self, now: Instant, error: ConnectionError) {
        if matches!(self.state, State::Draining { .. } | State::Closed) {
            return;
        }
        let until = now + self.pto_duration() * 3;
        self.state = State::Draining { until };
        self.close_pending = false;
        self.set_error(error);
    }

    fn set_error(&mut self, error: ConnectionError) {
        if self.error.is_none() {
            tracing::debug!(side = ?self.side, cid = ?self.local_cid, %error, "connection closing");
            self.error = Some(error.clone());
            self.events.push_back(Event::Closed(error));
        }
    }

    // ---- handshake glue ----

    fn apply_output(&mut self, out: Output, now: Instant) -> Result<(), ConnectionError> {
        for (space, msg) in out.messages {
            self.spaces[space as usize].crypto_send.write(&msg);
        }
        let suite = self.current_suite();
        for change in out.keys {
            let p = self.provider.as_ref();
            let map = |e| ConnectionError::Handshake(handshake::crypto_err(e));
            match change {
                KeyChange::Handshake { send, recv } => {
                    let suite = suite.ok_or(ConnectionError::Handshake(HandshakeError::Crypto(
                        "suite unknown".into(),
                    )))?;
                    let s = DirectionalKeys::new(p, suite, &send).map_err(map)?;
                    let r = DirectionalKeys::new(p, suite, &recv).map_err(map)?;
                    self.spaces[Space::Handshake as usize].keys = Some((s, r));
                }
                KeyChange::Application { send, recv } => {
                    let suite = suite.ok_or(ConnectionError::Handshake(HandshakeError::Crypto(
                        "suite unknown".into(),
                    )))?;
                    self.app = Some(AppKeys::new(p, suite, send, recv, now).map_err(map)?);
                }
                KeyChange::ZeroRtt { secret, suite } => {
                    self.zero_rtt = Some(DirectionalKeys::new(p, suite, &secret).map_err(map)?);
                }
            }
        }
        if let Some(raw) = out.peer_params {
            self.on_peer_params(&raw)?;
        }
        if let Some(done) = out.complete {
            self.on_handshake_complete(done, now);
        }
        Ok(())
    }

    fn current_suite(&self) -> Option<CipherSuite> {
        match &self.role {
            HandshakeRole::Client(hs) => hs.negotiated().map(|n| n.suite),
            HandshakeRole::Server(Some(hs)) => Some(hs.suite()),
            _ => self.negotiated.map(|n| n.suite),
        }
    }

    fn on_peer_params(&mut self, raw: &[u8]) -> Result<(), ConnectionError> {
        let bad = |m: &str| ConnectionError::ProtocolViolation {
            code: ErrorCode::TRANSPORT_PARAMETER_ERROR,
            message: m.to_string(),
        };
        let sender = match self.side {
            Side::Client => ParamSender::Server,
            Side::Server => ParamSender::Client,
        };
        let p = TransportParameters::decode_from(raw, sender).map_err(|_| bad("malformed"))?;
        if p.initial_source_connection_id != Some(self.remote_cid) && self.side == Side::Server {
            return Err(bad("initial_source_connection_id mismatch"));
        }
        if self.side == Side::Client {
            // PROTOCOL.md §8: authenticate the CIDs and the Retry exchange.
            if p.original_destination_connection_id != Some(self.original_dcid) {
                return Err(bad("original_destination_connection_id mismatch"));
            }
            if p.retry_source_connection_id != self.retry_scid {
                return Err(bad("retry_source_connection_id mismatch"));
            }
            if p.initial_source_connection_id != Some(self.remote_cid) {
                return Err(bad("initial_source_connection_id mismatch"));
            }
        }
        self.apply_peer_limits(&p);
        if let Some(token) = p.stateless_reset_token {
            self.cids.set_initial_remote_token(token);
        }
        self.mtud.on_peer_max(p.max_udp_payload_size);
        // PROTOCOL.md §19.1: FEC frames flow only if both sides advertise fec_max_symbols.
        self.fec.peer_max = if self.fec_enabled() {
            p.fec_max_symbols
        } else {
            0
        };
        let local = self.transport.idle_timeout;
        let peer = Duration::from_millis(p.max_idle_timeout);
        self.idle_timeout = match (local.is_zero(), peer.is_zero()) {
            (true, true) => None,
            (true, false) => Some(peer),
            (false, true) => Some(local),
            (false, false) => Some(local.min(peer)),
        };
        self.peer_params = Some(p);
        Ok(())
    }

    fn apply_peer_limits(&mut self, p: &TransportParameters) {
        self.streams.set_peer_limits(StreamLimits {
            max_data: p.initial_max_data,
            stream_data_bidi_local: p.initial_max_stream_data_bidi_local,
            stream_data_bidi_remote: p.initial_max_stream_data_bidi_remote,
            stream_data_uni: p.initial_max_stream_data_uni,
            max_streams_bidi: p.initial_max_streams_bidi,
            max_streams_uni: p.initial_max_streams_uni,
        });
        self.peer_max_datagram = p.max_datagram_frame_size;
    }

    fn on_handshake_complete(&mut self, done: handshake::Completion, now: Instant) {
        let negotiated = match &self.role {
            HandshakeRole::Client(hs) => hs.negotiated(),
            HandshakeRole::Server(Some(hs)) => Some(hs.negotiated()),
            _ => None,
        };
        self.negotiated = negotiated;
        let Some(n) = negotiated else {
            return;
        };
        let summary = HandshakeSummary {
            version: n.version,
            suite: n.suite,
            group: handshake::group_name(n.group),
            peer: done.verified.identity.clone(),
            resumed: done.resumed,
        };
        tracing::info!(side = ?self.side, cid = ?self.local_cid, suite = ?n.suite, group = summary.group, "handshake complete");
        self.summary = Some(summary.clone());
        self.state = State::Established;
        self.role = HandshakeRole::Done;
        self.events.push_back(Event::Connected(summary));
        let peer_limit = self
            .peer_params
            .as_ref()
            .map_or(2, |p| p.active_connection_id_limit);
        self.cids.request_spares(peer_limit);
        if self.side == Side::Client {
            let used_0rtt = self.zero_rtt.take().is_some();
            if used_0rtt && !done.early_data_accepted {
                // PROTOCOL.md §13.4: resend everything sent as 0-RTT in 1-RTT packets.
                let mut lost = Vec::new();
                self.spaces[Space::Data as usize]
                    .loss
                    .drain_where(|p| p.frames.zero_rtt, |_, p| lost.push(p.frames));
                for f in lost {
                    self.on_frames_lost(Space::Data, f);
                }
                self.events.push_back(Event::ZeroRttRejected);
            }
            self.resumption_master = done.resumption_master;
        } else {
            self.zero_rtt = None;
            // The server's handshake is confirmed on completion (PROTOCOL.md §7.9).
            self.handshake_done_pending = true;
            self.confirm_handshake(now);
            if let Some(rm) = done.resumption_master {
                self.issue_tickets(&rm, &done.verified);
            }
        }
    }

    /// Sends NewSessionTicket messages (PROTOCOL.md §13.1).
    fn issue_tickets(
        &mut self,
        resumption_master: &crate::crypto::Secret,
        verified: &handshake::PeerVerified,
    ) {
        let Some(ctx) = self.server_ctx.clone() else {
            return;
        };
        let Some(suite) = self.negotiated.map(|n| n.suite) else {
            return;
        };
        let cfg = &ctx.config;
        let lifetime = u32::try_from(cfg.ticket_lifetime.as_secs()).unwrap_or(u32::MAX);
        for i in 0..cfg.tickets_per_connection {
            let nonce = [i];
            let p = self.provider.as_ref();
            let Ok(psk) = crate::crypto::key_schedule::resumption_psk(p, resumption_master, &nonce)
            else {
                return;
            };
            let mut age_add = [0u8; 4];
            if p.fill_random(&mut age_add).is_err() {
                return;
            }
            let age_add = u32::from_be_bytes(age_add);
            let state = TicketState {
                psk,
                version: self.version,
                suite,
                issued_at: self.unix_now,
                lifetime,
                age_add,
                max_early_data: cfg.max_early_data,
                client: verified.identity.as_ref().map(|i| i.fingerprint),
            };
            let sealed = match ctx.resumption.lock() {
                Ok(mut r) => r.seal(p, self.unix_now, &state),
                Err(_) => return,
            };
            let Ok(ticket) = sealed else {
                return;
            };
            let mut msg_bytes = Vec::with_capacity(ticket.len() + 32);
            let nst = crate::wire::messages::NewSessionTicket {
                lifetime,
                age_add,
                nonce: &nonce,
                ticket: &ticket,
                max_early_data: (cfg.max_early_data > 0).then_some(cfg.max_early_data),
            };
            if nst.encode(&mut msg_bytes).is_ok() {
                self.spaces[Space::Data as usize]
                    .crypto_send
                    .write(&msg_bytes);
            }
        }
    }

    /// Client: turns a NewSessionTicket into a [`SessionTicket`] event.
    fn on_new_session_ticket(&mut self, raw: &[u8], now: Instant) {
        use crate::wire::messages::Message;
        let Ok(Message::NewSessionTicket(nst)) = Message::decode(raw) else {
            self.protocol_violation(
                now,
                ErrorCode::handshake(crate::error::HandshakeAlert::UnexpectedMessage),
                "unexpected post-handshake message",
            );
            return;
        };
        if self.side != Side::Client {
            self.protocol_violation(now, ErrorCode::PROTOCOL_ERROR, "ticket sent by a client");
            return;
        }
        let (Some(rm), Some(n)) = (self.resumption_master.as_ref(), self.negotiated) else {
            return;
        };
        let Ok(psk) =
            crate::crypto::key_schedule::resumption_psk(self.provider.as_ref(), rm, nst.nonce)
        else {
            return;
        };
        let mut remembered = Vec::new();
        if let Some(p) = &self.peer_params {
            p.encode(&mut remembered);
        }
        let ticket = SessionTicket {
            ticket: nst.ticket.to_vec(),
            psk,
            version: n.version,
            suite: n.suite,
            received_at: self.unix_now_at(now),
            lifetime: nst.lifetime,
            age_add: nst.age_add,
            max_early_data: nst.max_early_data.unwrap_or(0),
            server: self.summary.as_ref().and_then(|s| s.peer.clone()),
            remembered_params: remembered,
        };
        self.events
            .push_back(Event::SessionTicket(Box::new(ticket)));
    }

    fn unix_now_at(&self, now: Instant) -> UnixTime {
        let elapsed = now.saturating_duration_since(self.created_at).as_secs();
        UnixTime(self.unix_now.0 + elapsed)
    }

    /// Lets path MTU discovery send probes from now on (PROTOCOL.md §15.4).
    fn start_mtu_search(&mut self) {
        self.mtu_search_started = true;
        self.mtu_search_at = None;
    }

    fn confirm_handshake(&mut self, now: Instant) {
        self.handshake_confirmed = true;
        self.mtu_search_at = Some(now + crate::recovery::mtu::SEARCH_DELAY);
        self.discard_space(Space::Handshake);
    }

    fn discard_space(&mut self, space: Space) {
        let s = &mut self.spaces[space as usize];
        if s.discarded {
            return;
        }
        s.discarded = true;
        s.keys = None;
        s.loss = LossDetection::default();
        s.crypto_send = CryptoSend::default();
        s.crypto_recv = CryptoRecv::default();
        s.received = ReceivedPackets::default();
        s.probes = 0;
        self.pto_count = 0;
    }

    /// Feeds a complete handshake message to the state machine.
    fn on_handshake_message(&mut self, space: Space, msg: &[u8], now: Instant) {
        let mut out = Output::default();
        let result = match &mut self.role {
            HandshakeRole::Client(hs) => hs.handle(space, msg, &mut out),
            HandshakeRole::Server(Some(hs)) => hs.handle(space, msg, &mut out),
            HandshakeRole::Server(None) => {
                let mut accepted = self.accept_client_hello(space, msg, &mut out);
                let split = self.split_first_flight;
                if let (Ok(()), HandshakeRole::Server(Some(hs))) = (&accepted, &mut self.role) {
                    if hs.is_answering() {
                        if split {
                            // One nanosecond later: a driver sends what is ready (the
                            // ServerHello) before it handles timers due after the time it
                            // handled this datagram at.
                            self.answer_due = Some(now + Duration::from_nanos(1));
                        } else {
                            accepted = hs.answer(&mut out);
                        }
                    }
                }
                accepted
            }
            HandshakeRole::Done => {
                if space == Space::Data {
                    self.on_new_session_ticket(msg, now);
                    return;
                }
                Ok(())
            }
        };
        self.apply_handshake_result(result, out, now);
    }

    /// Server: whether to send the ServerHello ahead of the rest of the first flight (see
    /// `split_first_flight`).
    pub(crate) fn set_split_first_flight(&mut self, split: bool) {
        self.split_first_flight = split;
    }

    /// Applies what a handshake step produced, or fails the connection with its error.
    fn apply_handshake_result(
        &mut self,
        result: Result<(), HandshakeError>,
        out: Output,
        now: Instant,
    ) {
        match result {
            Ok(()) => {
                if let Err(e) = self.apply_output(out, now) {
                    match e {
                        ConnectionError::ProtocolViolation { code, message } => {
                            self.protocol_violation(now, code, &message)
                        }
                        ConnectionError::Handshake(h) => self.handshake_failed(now, h),
                        other => self.fail(now, ErrorCode::INTERNAL_ERROR, "", other),
                    }
                }
            }
            Err(e) => self.handshake_failed(now, e),
        }
    }

    /// Server: produces the rest of the first flight once it is due (see `answer_due`).
    fn answer_if_due(&mut self, now: Instant) {
        if self.answer_due.is_none_or(|t| t > now) {
            return;
        }
        self.answer_due = None;
        if self.state != State::Handshake {
            // Closed while the ServerHello travelled: nothing more to send.
            return;
        }
        let mut out = Output::default();
        let result = match &mut self.role {
            HandshakeRole::Server(Some(hs)) => hs.answer(&mut out),
            _ => Ok(()),
        };
        self.apply_handshake_result(result, out, now);
    }

    fn accept_client_hello(
        &mut self,
        space: Space,
        msg: &[u8],
        out: &mut Output,
    ) -> Result<(), HandshakeError> {
        if space != Space::Initial {
            return Err(HandshakeError::UnexpectedMessage("expected ClientHello"));
        }
        let Some(ctx) = self.server_ctx.clone() else {
            return Err(HandshakeError::Crypto("no server context".into()));
        };
        let mut params = Vec::with_capacity(128);
        self.local_transport_params().encode(&mut params);
        let accepted = ServerHandshake::accept(
            self.provider.clone(),
            ctx.config.clone(),
            msg,
            self.version,
            params,
            Some(&ctx.resumption),
            self.unix_now,
            out,
        )?;
        out.peer_params = Some(accepted.client_params);
        self.role = HandshakeRole::Server(Some(Box::new(accepted.handshake)));
        Ok(())
    }

    // ---- timers ----

    /// (when to send the next heartbeat PING, when the peer counts as gone), if enabled.
    fn heartbeat_deadlines(&self) -> Option<(Instant, Instant)> {
        let interval = self.transport.heartbeat_interval;
        if interval.is_zero() || self.state != State::Established {
            return None;
        }
        let ping_at = self.last_eliciting_sent + interval;
        let dead_at = self.last_activity + interval * self.transport.heartbeat_timeout_count;
        Some((ping_at, dead_at))
    }

    fn pto_duration(&self) -> Duration {
        let ack_delay = if self.handshake_confirmed {
            self.transport.max_ack_delay
        } else {
            Duration::ZERO
        };
        let base = if self.rtt.has_sample() {
            self.rtt.pto_base()
        } else {
            self.transport.initial_rtt * 3
        };
        base + ack_delay
    }

    fn loss_timer(&self) -> Option<(Instant, Option<Space>)> {
        // Earliest time-threshold loss first.
        let mut earliest: Option<(Instant, Option<Space>)> = None;
        for space in Space::ALL {
            if let Some(t) = self.spaces[space as usize].loss.loss_time() {
                if earliest.is_none_or(|(e, _)| t < e) {
                    earliest = Some((t, Some(space)));
                }
            }
        }
        if earliest.is_some() {
            return earliest;
        }
        if self.side == Side::Server && !self.address_validated && self.amplification_budget() == 0
        {
            return None;
        }
        let pto = self.pto_duration() * (1u32 << self.pto_count.min(16));
        let mut best: Option<(Instant, Option<Space>)> = None;
        for space in Space::ALL {
            let s = &self.spaces[space as usize];
            if s.discarded || s.loss.ack_eliciting_in_flight() == 0 {
                continue;
            }
            // RFC 9002 §6.2.1: no probe timeout for application data before the handshake is
            // confirmed. Until then a probe must carry the handshake forward (the client's
            // Finished, in the Handshake space): a 1-RTT PING cannot, and the server would time
            // the handshake out while the client probed with PINGs.
            if space == Space::Data && !self.handshake_confirmed {
                continue;
            }
            if let Some(t) = s.loss.last_ack_eliciting_sent() {
                let at = t + pto;
                if best.is_none_or(|(b, _)| at < b) {
                    best = Some((at, Some(space)));
                }
            }
        }
        if best.is_none() && self.side == Side::Client && !self.handshake_confirmed {
            // Anti-deadlock: keep probing until the handshake is confirmed.
            let space = if self.spaces[Space::Handshake as usize].keys.is_some() {
                Space::Handshake
            } else {
                Space::Initial
            };
            return Some((self.last_activity + pto, Some(space)));
        }
        best
    }

    /// When the connection next needs [`Connection::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut consider = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        match self.state {
            State::Closed => return None,
            State::Closing { until } | State::Draining { until } => return Some(until),
            State::Handshake => consider(Some(self.handshake_deadline)),
            State::Established => {
                if let Some((ping_at, dead_at)) = self.heartbeat_deadlines() {
                    consider(Some(ping_at));
                    consider(Some(dead_at));
                }
            }
        }
        consider(self.loss_timer().map(|(t, _)| t));
        if let Some(idle) = self.idle_timeout {
            consider(Some(self.last_activity + idle));
        }
        let data = &self.spaces[Space::Data as usize].received;
        if let Some(since) = data.ack_pending_since {
            consider(Some(since + self.transport.max_ack_delay));
        }
        consider(self.app.as_ref().and_then(AppKeys::discard_deadline));
        if self.key_update_requested {
            // A requested update waits for three PTOs after the last one was confirmed (§9).
            let wait = (self.rtt.pto_base() + self.transport.max_ack_delay) * 3;
            consider(self.app.as_ref().and_then(|a| a.update_allowed_at(wait)));
        }
        consider(self.streams.next_deadline());
        // Set only when a packet with something to carry waits for the pacer (stream data,
        // a retransmission, a datagram, a repair symbol, a control frame).
        consider(self.pacing_deadline);
        if self.state == State::Established {
            consider(self.fec.encoder.flush_deadline());
        }
        consider(self.path.challenge.map(|(_, d)| d));
        consider(self.answer_due);
        if self.state == State::Established {
            // Cleared once the search starts, so it never stays in the past.
            consider(self.mtu_search_at);
        }
        t
    }

    /// Handles expired timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now_hint = self.now_hint.max(now);
        self.answer_if_due(now);
        self.streams.expire(now);
        self.on_path_timeout(now);
        match self.state {
            State::Closed => return,
            State::Closing { until } | State::Draining { until } => {
                if now >= until {
                    self.state = State::Closed;
                }
                return;
            }
            State::Handshake if now >= self.handshake_deadline => {
                // Handshake packets that failed authentication mean the two sides derived
                // different keys: the hello messages were tampered with on the path.
                let error = if self.handshake_auth_failures > 0 {
                    ConnectionError::Handshake(HandshakeError::TamperingDetected)
                } else {
                    ConnectionError::TimedOut
                };
                self.fail(now, ErrorCode::TIMEOUT, "handshake timeout", error);
                return;
            }
            _ => {}
        }
        if self.mtu_search_at.is_some_and(|at| now >= at) {
            self.start_mtu_search();
        }
        if let Some(idle) = self.idle_timeout {
            if now >= self.last_activity + idle {
                self.set_error(ConnectionError::TimedOut);
                self.state = State::Closed;
                return;
            }
        }
        if let Some((ping_at, dead_at)) = self.heartbeat_deadlines() {
            if now >= dead_at {
                // PROTOCOL.md §15.1: the peer missed `heartbeat_timeout_count` intervals.
                self.fail(
                    now,
                    ErrorCode::TIMEOUT,
                    "heartbeat timeout",
                    ConnectionError::TimedOut,
                );
                return;
            }
            if now >= ping_at {
                self.ping_pending = true;
                self.last_eliciting_sent = now;
            }
        }
        if let Some(app) = self.app.as_mut() {
            app.on_timeout(now);
        }
        self.fec_on_timer(now);
        if let Some((at, space)) = self.loss_timer() {
            if now >= at {
                self.on_loss_timer(now, space);
            }
        }
    }

    fn on_loss_timer(&mut self, now: Instant, space: Option<Space>) {
        // Time-threshold loss?
        for s in Space::ALL {
            if self.spaces[s as usize]
                .loss
                .loss_time()
                .is_some_and(|t| now >= t)
            {
                self.detect_lost(s, now);
                return;
            }
        }
        // Probe timeout.
        self.pto_count += 1;
        if self.handshake_confirmed {
            self.mtud.on_pto();
        }
        let space = space.unwrap_or(Space::Initial);
        let sp = &mut self.spaces[space as usize];
        sp.probes = 2;
        sp.crypto_send.requeue_unacked();
        tracing::trace!(side = ?self.side, ?space, pto_count = self.pto_count, "probe timeout");
    }

    fn detect_lost(&mut self, space: Space, now: Instant) {
        let mut lost = Vec::new();
        let mut largest_lost_sent: Option<Instant> = None;
        let mut earliest_lost_sent: Option<Instant> = None;
        let (mut lost_bytes, mut lost_packets) = (0u64, 0u64);
        let (mut min_pn, mut max_pn, mut count) = (u64::MAX, 0u64, 0u64);
        let sp = &mut self.spaces[space as usize];
        let mtud = &mut self.mtud;
        let fec_controller = &mut self.fec.controller;
        sp.loss.detect_lost(now, &self.rtt, |pn, p| {
            min_pn = min_pn.min(pn);
            max_pn = max_pn.max(pn);
            count += 1;
            // A lost MTU probe says the path is smaller, not that it is congested.
            let probe = space == Space::Data && mtud.on_lost(pn, p.size);
            if p.in_flight && !probe && space == Space::Data {
                // The adaptive FEC policy measures raw loss (PROTOCOL.md §19.7).
                fec_controller.on_lost(pn);
            }
            if p.in_flight && !probe {
                largest_lost_sent =
                    Some(largest_lost_sent.map_or(p.time_sent, |t| t.max(p.time_sent)));
                earliest_lost_sent =
                    Some(earliest_lost_sent.map_or(p.time_sent, |t| t.min(p.time_sent)));
                lost_bytes += u64::from(p.size);
                lost_packets += 1;
            }
            lost.push(p.frames);
        });
        if lost.is_empty() {
            return;
        }
        self.stats.packets_lost += lost.len() as u64;
        for frames in lost {
            self.on_frames_lost(space, frames);
        }
        if let (Some(largest), Some(earliest)) = (largest_lost_sent, earliest_lost_sent) {
            // RFC 9002 §7.6: persistent congestion when every packet over more than 3 PTOs
            // (without backoff) was lost: the lost run is contiguous (nothing in between was
            // acknowledged) and spans that long.
            let pc = (self.rtt.pto_base() + self.transport.max_ack_delay) * 3;
            let contiguous = max_pn - min_pn + 1 == count;
            let persistent = self.rtt.has_sample() && contiguous && largest - earliest > pc;
            let ev = LossEvent {
                now,
                largest_lost_sent: largest,
                lost_bytes,
                lost_packets,
                persistent,
                bytes_in_flight: self.spaces.iter().map(|s| s.loss.bytes_in_flight()).sum(),
            };
            self.cc.on_packets_lost(&ev);
        }
    }

    /// The next request for the endpoint (mint or retire connection IDs).
    pub fn poll_endpoint_request(&mut self) -> Option<EndpointRequest> {
        self.cids.requests.pop_front()
    }

    /// The endpoint minted `cid` (now routed here) with its reset token: announce it to the peer.
    pub fn add_local_cid(&mut self, cid: ConnectionId, reset_token: [u8; 16]) {
        self.cids.add_local(cid, reset_token);
    }

    /// The driver's local address changed (Wi-Fi to cellular): switch to a fresh connection ID so
    /// the new path cannot be linked to the old one, and send a PING so the peer learns the new
    /// address (it validates it before sending much to it). Returns false if no spare CID was
    /// available (the old one is kept).
    pub fn migrate(&mut self) -> bool {
        let rotated = self.cids.rotate_remote();
        if let Some(cid) = self.cids.active_remote() {
            self.remote_cid = cid;
        }
        self.ping_pending = true;
        rotated
    }

    /// The endpoint matched a datagram to one of the peer's reset tokens: the peer lost its
    /// state (PROTOCOL.md §15.3). The connection ends at once, silently.
    pub fn on_stateless_reset(&mut self) {
        if self.state != State::Closed {
            self.set_error(ConnectionError::Reset);
            self.state = State::Closed;
        }
    }

    /// Fault injection for tests: from now on, send stream data beyond the peer's flow-control
    /// credit (a misbehaving peer). Only with the `fault-injection` feature.
    #[cfg(feature = "fault-injection")]
    pub fn fault_ignore_flow_control(&mut self) {
        self.streams.ignore_peer_credit = true;
    }

    /// Spare connection IDs the peer gave us (for migrations).
    pub fn spare_remote_cids(&self) -> usize {
        self.cids.spare_remote()
    }

    /// The peer's address changed (NAT rebinding or migration): validate the new path before
    /// trusting it (PROTOCOL.md §15.2).
    fn on_peer_address_change(&mut self, now: Instant, new: SocketAddr) {
        let ip_changed = new.ip() != self.remote.ip();
        if self.address_validated {
            // Only a validated address is worth returning to: after A -> B -> C with B never
            // validated, a failed validation of C goes back to A, not to B.
            self.path.previous = Some(self.remote);
        }
        self.remote = new;
        self.address_validated = false;
        self.unvalidated_received = 0;
        self.unvalidated_sent = 0;
        self.start_path_challenge(now);
        if ip_changed {
            // A different network: the old path's RTT, capacity and MTU say nothing about it.
            self.rtt = RttEstimator::new(self.transport.initial_rtt);
            self.mtud.reset();
            self.mtu = usize::from(self.mtud.current());
            self.cc = self
                .transport
                .congestion_control
                .build(self.mtu as u64, now);
            self.pacer = Pacer::new(self.mtu as u64);
            self.rate = DeliveryRateEstimator::new();
        }
        tracing::debug!(side = ?self.side, cid = ?self.local_cid, %new, "peer address changed, validating path");
    }

    fn on_path_timeout(&mut self, now: Instant) {
        if let Some((_, deadline)) = self.path.challenge {
            if now >= deadline {
                self.path.challenge = None;
                self.path.challenge_pending = false;
                match self.path.previous.take() {
                    // Validation failed: go back to the address that worked.
                    Some(prev) => {
                        self.remote = prev;
                        self.address_validated = true;
                    }
                    // No validated address to return to: stay under the amplification limit
                    // (PROTOCOL.md §12.1) and challenge again.
                    None => self.start_path_challenge(now),
                }
            }
        }
    }

    /// Sends a fresh PATH_CHALLENGE to the current (unvalidated) address.
    fn start_path_challenge(&mut self, now: Instant) {
        let mut data = [0u8; 8];
        if self.provider.fill_random(&mut data).is_err() {
            return;
        }
        let deadline = now + (self.pto_duration() * 3).max(Duration::from_secs(1));
        self.path.challenge = Some((data, deadline));
        self.path.challenge_pending = true;
    }

    /// Moves stream events to the connection's event queue.
    fn drain_stream_events(&mut self) {
        while let Some(ev) = self.streams.poll_event() {
            if let StreamEvent::Readable(id) = ev {
                // One pending notification per stream is enough.
                if self.events.contains(&Event::StreamReadable(id)) {
                    continue;
                }
            }
            self.events.push_back(match ev {
                StreamEvent::Opened(id) => Event::StreamOpened(id),
                StreamEvent::Readable(id) => Event::StreamReadable(id),
                StreamEvent::Reset { id, code } => Event::StreamReset { id, code },
                StreamEvent::Stopped { id, code } => Event::StreamStopped { id, code },
                StreamEvent::Skipped { id, range } => Event::StreamSkipped { id, range },
                StreamEvent::Acknowledged(id) => Event::StreamAcknowledged(id),
            });
        }
    }

    fn on_frames_lost(&mut self, space: Space, f: SentFrames) {
        for seq in f.new_cids {
            self.cids.on_new_cid_lost(seq);
        }
        self.cids.retire_pending.extend(f.retires);
        if f.path_challenge && self.path.challenge.is_some() {
            self.path.challenge_pending = true;
        }
        for id in f.resets {
            self.streams.pending_resets.push(id);
        }
        for s in f.stop_sending {
            self.streams.pending_stop_sending.push(s);
        }
        for (id, range) in f.skips {
            self.streams.on_skip_lost(id, range);
        }
        if let Some(r) = f.crypto {
            self.spaces[space as usize].crypto_send.on_lost(r);
        }
        for s in f.streams {
            self.streams.on_lost(s.id, s.range, s.fin);
        }
        if f.handshake_done {
            self.handshake_done_pending = true;
        }
        if f.max_data {
            self.streams.pending_max_data = true;
        }
        for id in f.max_stream_data {
            self.streams.pending_max_stream_data.push(id);
        }
        for (i, b) in f.max_streams.iter().enumerate() {
            if *b {
                self.streams.pending_max_streams[i] = true;
            }
        }
    }

    fn amplification_budget(&self) -> u64 {
        if self.address_validated {
            return u64::MAX;
        }
        (self.unvalidated_received * AMPLIFICATION_FACTOR).saturating_sub(self.unvalidated_sent)
    }
}

/// Errors from [`Connection::send_datagram`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DatagramError {
    /// The connection is not established.
    #[error("the connection is not open")]
    NotOpen,
    /// The peer does not accept datagrams (max_datagram_frame_size = 0).
    #[error("the peer does not accept datagrams")]
    UnsupportedByPeer,
    /// The send queue is full (see `TransportConfig::datagram_send_queue`).
    #[error("the datagram send queue is full")]
    QueueFull,
    /// The datagram does not fit one packet on the current path.
    #[error("datagram too large: at most {max} bytes fit")]
    TooLarge {
        /// The current limit.
        max: usize,
    },
}

fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
