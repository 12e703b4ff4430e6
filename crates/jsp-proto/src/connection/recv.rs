//! Receive path: splits a datagram into packets, removes header protection, decrypts, rejects
//! duplicates and replays, and processes frames (PROTOCOL.md §4, §5, §10). Anything that fails
//! to parse or authenticate is dropped silently and counted (§5.5); a frame that authenticates
//! but breaks the rules closes the connection with the matching error code.

use core::net::SocketAddr;

use super::streams::StreamId;
use super::{Connection, Event, State};
use crate::crypto::provider::TAG_LEN;
use crate::error::{ConnectionError, ErrorCode};
use crate::handshake::Space;
use crate::time::Instant;
use crate::wire::frame::{Dir as WireDir, Frame, FrameIter};
use crate::wire::header::{self, PacketType, PartialDecode};
use crate::wire::packet_number;
use crate::Side;

/// Most 1-RTT packets a server holds while waiting for the client's Finished.
const MAX_HELD_ONE_RTT: usize = 16;
/// Most bytes of such packets it holds.
const MAX_HELD_ONE_RTT_BYTES: usize = 32 * 1024;

/// Outcome of processing one packet, for the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PacketOutcome {
    Processed,
    Dropped,
}

impl Connection {
    /// Handles one UDP datagram from `remote`. `data` is decrypted in place.
    pub fn handle_datagram(&mut self, now: Instant, remote: SocketAddr, data: &mut [u8]) {
        if self.state == State::Closed {
            return;
        }
        self.now_hint = self.now_hint.max(now);
        self.stats.datagrams_received += 1;
        self.stats.bytes_received += data.len() as u64;
        // PROTOCOL.md §12.1: the amplification budget counts bytes from the address being
        // validated only; a datagram from another address earns nothing there.
        let credited = remote == self.remote;
        if !self.address_validated && credited {
            self.unvalidated_received += data.len() as u64;
        }
        if remote != self.remote && self.side == Side::Client {
            // Clients only talk to the address they connected to.
            self.stats.dropped_undecodable += 1;
            return;
        }
        self.handle_packets(now, remote, data, credited);
    }

    /// The packets of one datagram from `remote`, whose bytes were (`credited`) or were not
    /// counted in the current path's amplification budget.
    fn handle_packets(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        data: &mut [u8],
        mut credited: bool,
    ) {
        let cid_len = self.local_cid.len();
        let mut offset = 0;
        while offset < data.len() {
            let rest = &data[offset..];
            let (len, ty) = match header::decode(rest, cid_len) {
                Ok((PartialDecode::Protected(h), _)) => (h.len, Some(h)),
                Ok((PartialDecode::VersionNegotiation(vn), _)) => {
                    self.on_version_negotiation(
                        now,
                        vn.contains(self.version),
                        vn.versions().collect(),
                        vn.dcid,
                        vn.scid,
                    );
                    return;
                }
                Ok((PartialDecode::Retry(r), _)) => {
                    let owned = (
                        r.scid,
                        r.token.to_vec(),
                        r.integrity_tag,
                        r.without_tag.to_vec(),
                        r.dcid,
                    );
                    self.on_retry(now, owned);
                    return;
                }
                Ok((PartialDecode::UnsupportedVersion { .. }, _)) | Err(_) => {
                    if offset == 0 {
                        self.stats.dropped_undecodable += 1;
                    }
                    return;
                }
            };
            let Some(h) = ty else { return };
            let hdr_ty = h.ty;
            let hdr_pn_offset = h.pn_offset;
            let hdr_dcid = h.dcid;
            let hdr_scid = h.scid;
            let end = offset + len;
            let packet = &mut data[offset..end];
            let hdr = PacketHeaderInfo {
                ty: hdr_ty,
                pn_offset: hdr_pn_offset,
                // The endpoint routed by DCID; a client checks that it is its own.
                dcid_ok: self.side == Side::Server || hdr_dcid == self.local_cid,
                scid: hdr_scid,
            };
            let short = hdr.ty == PacketType::OneRtt;
            if short && self.side == Side::Server && self.state == State::Handshake {
                // PROTOCOL.md §7.9: a server acts on no 1-RTT packet before the client's
                // Finished; one that overtook it waits (a short header ends the datagram).
                self.hold_one_rtt(remote, credited, packet);
                return;
            }
            let was_handshaking = self.state == State::Handshake;
            let outcome = self.handle_packet(now, remote, packet, hdr);
            if was_handshaking && self.state == State::Established {
                self.release_held_one_rtt(now);
            }
            if !credited && remote == self.remote {
                // The packet moved the connection to `remote` (§15.2): this datagram is the
                // first of the new path's amplification budget.
                credited = true;
                if !self.address_validated {
                    self.unvalidated_received += data.len() as u64;
                }
            }
            if outcome == PacketOutcome::Dropped && short && self.is_stateless_reset(data) {
                // PROTOCOL.md §15.3: the peer lost its state; end at once, silently.
                self.set_error(ConnectionError::Reset);
                self.state = State::Closed;
                return;
            }
            offset = end;
            if self.state == State::Closed {
                return;
            }
        }
    }

    /// Keeps a 1-RTT packet that arrived before the handshake completed (at most
    /// [`MAX_HELD_ONE_RTT`] packets of [`MAX_HELD_ONE_RTT_BYTES`] in all; beyond that they are
    /// dropped, and the client sends their data again).
    fn hold_one_rtt(&mut self, remote: SocketAddr, credited: bool, packet: &[u8]) {
        let held: usize = self.held_one_rtt.iter().map(|(_, _, p)| p.len()).sum();
        if self.held_one_rtt.len() >= MAX_HELD_ONE_RTT
            || held + packet.len() > MAX_HELD_ONE_RTT_BYTES
        {
            self.stats.dropped_undecodable += 1;
            return;
        }
        self.held_one_rtt.push((remote, credited, packet.to_vec()));
    }

    /// Processes the 1-RTT packets held while the handshake ran, in arrival order. Their
    /// datagrams were counted when they arrived (statistics, amplification budget): not again.
    fn release_held_one_rtt(&mut self, now: Instant) {
        for (remote, credited, mut packet) in std::mem::take(&mut self.held_one_rtt) {
            self.handle_packets(now, remote, &mut packet, credited);
            if self.state == State::Closed {
                return;
            }
        }
    }

    /// Whether `datagram` ends with one of the peer's stateless reset tokens.
    fn is_stateless_reset(&self, datagram: &[u8]) -> bool {
        datagram.len() >= crate::endpoint::MIN_STATELESS_RESET
            && self.cids.is_reset_token(&datagram[datagram.len() - 16..])
    }

    fn handle_packet(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        packet: &mut [u8],
        h: PacketHeaderInfo,
    ) -> PacketOutcome {
        if !h.dcid_ok {
            self.stats.dropped_undecodable += 1;
            return PacketOutcome::Dropped;
        }
        let space = match h.ty {
            PacketType::Initial => Space::Initial,
            PacketType::Handshake => Space::Handshake,
            PacketType::ZeroRtt | PacketType::OneRtt => Space::Data,
        };
        // Header protection (PROTOCOL.md §5.3).
        let hp = match h.ty {
            PacketType::Initial | PacketType::Handshake => self.spaces[space as usize]
                .keys
                .as_ref()
                .map(|(_, r)| &r.header),
            PacketType::ZeroRtt => {
                if self.side == Side::Client {
                    None
                } else {
                    self.zero_rtt.as_ref().map(|k| &k.header)
                }
            }
            PacketType::OneRtt => self.app.as_ref().map(|a| a.recv_header()),
        };
        let Some(hp) = hp else {
            self.stats.dropped_undecodable += 1;
            return PacketOutcome::Dropped;
        };
        let sample_at = h.pn_offset + 4;
        let Some(sample) = packet
            .get(sample_at..sample_at + 16)
            .and_then(|s| <[u8; 16]>::try_from(s).ok())
        else {
            self.stats.dropped_undecodable += 1;
            return PacketOutcome::Dropped;
        };
        let Ok(mask) = hp.mask(&sample) else {
            self.stats.dropped_undecodable += 1;
            return PacketOutcome::Dropped;
        };
        let first_mask = if h.ty == PacketType::OneRtt {
            header::SHORT_HP_MASK
        } else {
            header::LONG_HP_MASK
        };
        packet[0] ^= mask[0] & first_mask;
        let pn_len = header::pn_len_from_first_byte(packet[0]);
        if packet.len() < h.pn_offset + pn_len + TAG_LEN {
            self.stats.dropped_undecodable += 1;
            return PacketOutcome::Dropped;
        }
        let mut truncated: u32 = 0;
        for i in 0..pn_len {
            packet[h.pn_offset + i] ^= mask[1 + i];
            truncated = (truncated << 8) | u32::from(packet[h.pn_offset + i]);
        }
        let largest = self.spaces[space as usize].received.largest();
        let pn = packet_number::decode(truncated, pn_len, largest);
        let key_phase = packet[0] & header::KEY_PHASE_BIT != 0;
        let reserved_ok = header::reserved_bits_clear(packet[0]);

        // Decrypt (PROTOCOL.md §5.2).
        let payload_offset = h.pn_offset + pn_len;
        let (head, body) = packet.split_at_mut(payload_offset);
        let provider = self.provider.clone();
        let mut phase_used = None;
        let opened = match h.ty {
            PacketType::Initial | PacketType::Handshake => self.spaces[space as usize]
                .keys
                .as_ref()
                .map(|(_, r)| r.packet.open(pn, head, body)),
            PacketType::ZeroRtt => self
                .zero_rtt
                .as_ref()
                .map(|k| k.packet.open(pn, head, body)),
            PacketType::OneRtt => match self.app.as_mut() {
                Some(app) => {
                    let phase = app.classify(key_phase, pn);
                    phase_used = Some(phase);
                    Some(
                        app.recv_keys(provider.as_ref(), phase)
                            .and_then(|k| k.open(pn, head, body)),
                    )
                }
                None => None,
            },
        };
        let plain_len = match opened {
            Some(Ok(n)) => n,
            Some(Err(_)) => {
                self.stats.dropped_auth += 1;
                if h.ty == PacketType::Handshake && self.state == State::Handshake {
                    self.handshake_auth_failures += 1;
                }
                return PacketOutcome::Dropped;
            }
            None => {
                self.stats.dropped_undecodable += 1;
                return PacketOutcome::Dropped;
            }
        };
        // Duplicate / replay (PROTOCOL.md §5.6).
        if self.spaces[space as usize].received.is_duplicate(pn) {
            self.stats.dropped_duplicate += 1;
            return PacketOutcome::Dropped;
        }
        if !reserved_ok {
            self.protocol_violation(now, ErrorCode::PROTOCOL_ERROR, "reserved bits set");
            return PacketOutcome::Dropped;
        }
        if let (Some(phase), Some(app)) = (phase_used, self.app.as_mut()) {
            let keep = self.rtt.pto_base() * 3;
            let generation_before = app.generation();
            match app.on_authenticated(provider.as_ref(), phase, pn, now, keep) {
                // Announce an update once per side: when our send keys rotate (here if the peer
                // initiated; in the send path if we did).
                Ok(true) if app.generation() != generation_before => {
                    self.stats.key_updates += 1;
                    let generation = app.generation();
                    self.events.push_back(Event::KeyUpdated { generation });
                }
                Ok(_) => {}
                Err(_) => {
                    self.stats.dropped_auth += 1;
                    return PacketOutcome::Dropped;
                }
            }
        }
        // The packet is authentic.
        self.stats.packets_received += 1;
        if self.side == Side::Server
            && h.ty == PacketType::OneRtt
            && remote != self.remote
            && largest.is_none_or(|l| pn > l)
            && self.state == State::Established
        {
            self.on_peer_address_change(now, remote);
        }
        self.last_activity = now;
        if self.side == Side::Client && h.ty == PacketType::Initial && !self.received_any {
            // Switch to the server's chosen CID (PROTOCOL.md §3).
            self.remote_cid = h.scid;
            self.cids.set_initial_remote(h.scid);
        }
        self.received_any = true;
        if self.side == Side::Server && h.ty == PacketType::Handshake && remote == self.remote {
            // PROTOCOL.md §12.1: a Handshake packet validates the address it came from;
            // §7.9 Initial keys go.
            self.address_validated = true;
            self.discard_space(Space::Initial);
        }
        if matches!(self.state, State::Closing { .. }) {
            self.close_pending = true;
            return PacketOutcome::Processed;
        }
        let payload = &body[..plain_len];
        if h.ty == PacketType::ZeroRtt && !self.on_early_packet(now, payload.len()) {
            return PacketOutcome::Dropped;
        }
        self.in_early_packet = h.ty == PacketType::ZeroRtt;
        let eliciting = self.process_frames(now, space, h.ty, payload);
        self.in_early_packet = false;
        if self.spaces[space as usize].discarded {
            return PacketOutcome::Processed;
        }
        let handshake_space = space != Space::Data;
        let r = &mut self.spaces[space as usize].received;
        r.insert(pn, now, eliciting);
        if handshake_space && eliciting {
            r.ack_immediately = true;
        }
        // Payloads FEC rebuilt while this packet was processed (PROTOCOL.md §19.6).
        self.fec_process_recovered(now);
        PacketOutcome::Processed
    }

    /// Processes the frames of an authenticated packet; returns whether it was ack-eliciting.
    fn process_frames(
        &mut self,
        now: Instant,
        space: Space,
        ty: PacketType,
        payload: &[u8],
    ) -> bool {
        let mut eliciting = false;
        let mut any = false;
        // Set after a FEC_SOURCE frame: the rest of the payload is protected (PROTOCOL.md §19.2).
        let mut protected: Option<crate::fec::decoder::SourceOutcome> = None;
        let mut frames = FrameIter::for_packet(payload, ty);
        while let Some(item) = frames.next() {
            any = true;
            let frame = match item {
                Ok(f) => f,
                Err(e) => {
                    let msg = e.to_string();
                    self.protocol_violation(now, ErrorCode(e.code()), &msg);
                    return eliciting;
                }
            };
            eliciting |= frame.is_ack_eliciting();
            if let Some(outcome) = protected {
                match self.fec_filter_protected(now, outcome, &frame) {
                    Some(true) => {}
                    Some(false) => continue,
                    None => return eliciting,
                }
            }
            if let Frame::FecSource { group, index } = frame {
                protected = Some(self.on_fec_source(now, group, index, frames.remaining()));
                if self.is_closing() {
                    return eliciting;
                }
                continue;
            }
            self.on_frame(now, space, frame);
            if self.is_closing() {
                return eliciting;
            }
        }
        if !any {
            self.protocol_violation(now, ErrorCode::PROTOCOL_ERROR, "packet without frames");
        }
        eliciting
    }

    pub(super) fn on_frame(&mut self, now: Instant, space: Space, frame: Frame<'_>) {
        match frame {
            Frame::Padding(_) | Frame::Ping => {}
            Frame::Ack(ack) => self.on_ack_frame(now, space, ack.iter(), ack.ack_delay()),
            Frame::Crypto { offset, data } => {
                if let Err(e) = self.spaces[space as usize].crypto_recv.insert(offset, data) {
                    let _ = e;
                    self.protocol_violation(
                        now,
                        ErrorCode::CRYPTO_BUFFER_EXCEEDED,
                        "too much handshake data",
                    );
                    return;
                }
                loop {
                    match self.spaces[space as usize].crypto_recv.next_message() {
                        Ok(Some(msg)) => {
                            self.on_handshake_message(space, &msg, now);
                            if self.is_closing() {
                                return;
                            }
                        }
                        Ok(None) => break,
                        Err(_) => {
                            self.protocol_violation(
                                now,
                                ErrorCode::CRYPTO_BUFFER_EXCEEDED,
                                "handshake message too long",
                            );
                            return;
                        }
                    }
                }
            }
            Frame::Stream(sf) => {
                self.on_stream_data(now, StreamId(sf.stream_id), sf.offset, sf.data, sf.fin);
            }
            Frame::StreamLz4(f) => self.on_compressed_stream_frame(now, f),
            Frame::DatagramLz4(d) => self.on_compressed_datagram_frame(now, d),
            Frame::ResetStream {
                stream_id,
                error_code,
                final_size,
            } => {
                let r =
                    self.streams
                        .on_reset_frame(StreamId(stream_id), error_code, final_size, now);
                if let Err(e) = r {
                    self.protocol_violation(now, e.code, e.reason);
                    return;
                }
                self.drain_stream_events();
            }
            Frame::StopSending {
                stream_id,
                error_code,
            } => {
                if let Err(e) = self
                    .streams
                    .on_stop_sending(StreamId(stream_id), error_code)
                {
                    self.protocol_violation(now, e.code, e.reason);
                    return;
                }
                self.drain_stream_events();
            }
            Frame::StreamSkip {
                stream_id,
                start,
                end,
            } => {
                if let Err(e) = self
                    .streams
                    .on_skip_frame(StreamId(stream_id), start..end, now)
                {
                    self.protocol_violation(now, e.code, e.reason);
                    return;
                }
                self.drain_stream_events();
            }
            Frame::MaxData(max) => self.streams.on_max_data(max),
            Frame::MaxStreamData { stream_id, maximum } => {
                if let Err(e) = self
                    .streams
                    .on_max_stream_data(StreamId(stream_id), maximum)
                {
                    self.protocol_violation(now, e.code, e.reason);
                }
            }
            Frame::MaxStreams { dir, maximum } => self.streams.on_max_streams(
                match dir {
                    WireDir::Bi => super::Dir::Bi,
                    WireDir::Uni => super::Dir::Uni,
                },
                maximum,
            ),
            Frame::Datagram(data) => self.on_datagram_data(now, data),
            Frame::ConnectionClose {
                error_code, reason, ..
            } => {
                let code = ErrorCode(error_code);
                let message = String::from_utf8_lossy(reason).into_owned();
                self.enter_draining(
                    now,
                    ConnectionError::PeerClosed {
                        reason: code.close_reason(),
                        code,
                        message,
                    },
                );
            }
            Frame::ApplicationClose {
                error_code: code,
                reason,
            } => {
                let message = String::from_utf8_lossy(reason).into_owned();
                self.enter_draining(
                    now,
                    ConnectionError::PeerClosed {
                        reason: crate::error::CloseReason::Application(code),
                        code: ErrorCode(code),
                        message,
                    },
                );
            }
            Frame::HandshakeDone => {
                if self.side == Side::Server {
                    self.protocol_violation(
                        now,
                        ErrorCode::PROTOCOL_ERROR,
                        "HANDSHAKE_DONE from a client",
                    );
                    return;
                }
                if !self.handshake_confirmed {
                    self.confirm_handshake(now);
                }
            }
            Frame::NewConnectionId(f) => {
                if let Err((code, msg)) =
                    self.cids
                        .on_new_cid(f.sequence, f.retire_prior_to, f.cid, f.reset_token)
                {
                    self.protocol_violation(now, code, msg);
                    return;
                }
                if let Some(cid) = self.cids.active_remote() {
                    self.remote_cid = cid;
                }
            }
            Frame::RetireConnectionId { sequence } => {
                if let Err((code, msg)) = self.cids.on_retire(sequence) {
                    self.protocol_violation(now, code, msg);
                }
            }
            Frame::PathChallenge(data) => self.path.on_challenge(data),
            Frame::PathResponse(data) => {
                if self.path.on_response(data) {
                    self.address_validated = true;
                }
            }
            Frame::Repair(f) => self.on_repair_frame(now, f),
            Frame::FecRecovered { group, bitmap } => self.on_fec_recovered(now, group, bitmap),
            // Handled by `process_frames` (it needs the rest of the payload).
            Frame::FecSource { .. } => {}
            // Blocked signals are informational; PADDING and PING need nothing.
            Frame::DataBlocked(_)
            | Frame::StreamDataBlocked { .. }
            | Frame::StreamsBlocked { .. } => {}
        }
    }

    /// Accounts a 0-RTT packet on the server (PROTOCOL.md §13.4); false if it must be refused.
    fn on_early_packet(&mut self, now: Instant, len: usize) -> bool {
        let max = self
            .server_ctx
            .as_ref()
            .map_or(0, |c| u64::from(c.config.max_early_data));
        if self.early_bytes_received == 0 {
            self.events.push_back(Event::EarlyDataAccepted);
        }
        self.early_bytes_received += len as u64;
        // Allow for framing overhead on top of the data allowance.
        if self.early_bytes_received > max + max / 4 + 4096 {
            self.protocol_violation(now, ErrorCode::PROTOCOL_ERROR, "too much 0-RTT data");
            return false;
        }
        true
    }

    fn on_ack_frame(
        &mut self,
        now: Instant,
        space: Space,
        ranges: impl Iterator<Item = std::ops::Range<u64>>,
        ack_delay_raw: u64,
    ) {
        let si = space as usize;
        let mut acked = Vec::new();
        let summary = self.spaces[si]
            .loss
            .on_ack(ranges, |pn, p| acked.push((pn, p)));
        let Some(largest) = summary.largest_newly_acked else {
            return;
        };
        if largest >= self.spaces[si].next_pn {
            self.protocol_violation(now, ErrorCode::PROTOCOL_ERROR, "ACK of an unsent packet");
            return;
        }
        let mut rtt_updated = false;
        if summary.any_eliciting_acked {
            if let Some(sent) = summary.largest_acked_time_sent {
                rtt_updated = true;
                let delay = core::time::Duration::from_micros(ack_delay_raw.saturating_mul(8))
                    .min(self.transport.max_ack_delay);
                let delay = if space == Space::Data {
                    delay
                } else {
                    core::time::Duration::ZERO
                };
                self.rtt.update(now.saturating_duration_since(sent), delay);
            }
        }
        let mut bytes_acked = 0u64;
        let mut largest_acked_sent: Option<Instant> = None;
        if space == Space::Data {
            let n = acked.iter().filter(|(_, p)| p.ack_eliciting).count();
            self.fec
                .controller
                .on_acked(u32::try_from(n).unwrap_or(u32::MAX));
        }
        for (pn, p) in acked {
            if p.in_flight {
                self.rate.on_packet_acked(now, &p.rate, u64::from(p.size));
                bytes_acked += u64::from(p.size);
                largest_acked_sent =
                    Some(largest_acked_sent.map_or(p.time_sent, |t| t.max(p.time_sent)));
            }
            if space == Space::Data {
                self.mtud.on_acked(pn, p.size);
            }
            let f = p.frames;
            if let Some(r) = f.crypto {
                self.spaces[si].crypto_send.on_ack(r);
            }
            for s in f.streams {
                self.streams.on_ack(s.id, s.range, s.fin);
            }
            for id in f.resets {
                self.streams.on_reset_acked(id);
            }
            if let Some(l) = f.ack_largest {
                self.spaces[si].received.on_ack_acked(l);
            }
            if space == Space::Data {
                if let Some(app) = self.app.as_mut() {
                    app.on_acked(pn, now);
                }
            }
        }
        if let (true, Some(largest_sent)) = (bytes_acked > 0, largest_acked_sent) {
            let min_rtt = if self.rtt.has_sample() {
                self.rtt.min()
            } else {
                core::time::Duration::ZERO
            };
            let rate = self.rate.generate_rate_sample(min_rtt);
            let ev = crate::recovery::congestion::AckEvent {
                now,
                bytes_acked,
                largest_acked_sent: largest_sent,
                rtt: &self.rtt,
                rtt_updated,
                rate,
                bytes_in_flight: self.spaces.iter().map(|s| s.loss.bytes_in_flight()).sum(),
            };
            self.cc.on_packets_acked(&ev);
        }
        self.pto_count = 0;
        self.detect_lost(space, now);
        self.maybe_finish(now);
    }

    fn on_version_negotiation(
        &mut self,
        now: Instant,
        lists_ours: bool,
        versions: Vec<u32>,
        dcid: crate::wire::header::ConnectionId,
        scid: crate::wire::header::ConnectionId,
    ) {
        // PROTOCOL.md §4.5: only a client, only before anything else arrived, only if it echoes
        // our CIDs and does not list the version we attempted.
        if self.side != Side::Client || self.received_any || lists_ours {
            return;
        }
        if dcid != self.local_cid || scid != self.original_dcid {
            return;
        }
        self.stats.packets_received += 1;
        self.set_error(ConnectionError::UnsupportedVersion { offered: versions });
        self.state = State::Closed;
        let _ = now;
    }

    fn on_retry(
        &mut self,
        _now: Instant,
        retry: (
            crate::wire::header::ConnectionId,
            Vec<u8>,
            [u8; 16],
            Vec<u8>,
            crate::wire::header::ConnectionId,
        ),
    ) {
        let (scid, token, tag, without_tag, dcid) = retry;
        // PROTOCOL.md §12.2: one Retry, before anything else, with a valid tag.
        if self.side != Side::Client || self.received_any || self.retry_scid.is_some() {
            return;
        }
        if dcid != self.local_cid || token.is_empty() {
            return;
        }
        if !crate::handshake::retry::verify_integrity_tag(
            self.provider.as_ref(),
            &self.original_dcid,
            &without_tag,
            &tag,
        ) {
            self.stats.dropped_auth += 1;
            return;
        }
        let Ok((send, recv)) =
            crate::crypto::initial_keys(self.provider.as_ref(), scid.as_slice(), true)
        else {
            return;
        };
        self.retry_scid = Some(scid);
        self.remote_cid = scid;
        self.cids.set_initial_remote(scid);
        self.retry_token = token;
        let sp = &mut self.spaces[Space::Initial as usize];
        sp.keys = Some((send, recv));
        // Everything sent so far is gone: resend the first flight under the new keys.
        let mut lost = Vec::new();
        sp.loss.drain_all(|_, p| lost.push(p.frames));
        for f in lost {
            self.on_frames_lost(Space::Initial, f);
        }
        self.pto_count = 0;
    }
}

/// What the receive path needs from a parsed header.
#[derive(Clone, Copy)]
struct PacketHeaderInfo {
    ty: PacketType,
    pn_offset: usize,
    dcid_ok: bool,
    scid: crate::wire::header::ConnectionId,
}
