//! Packet assembly: chooses what each space has to send (ACKs, CRYPTO data, probes, control
//! frames, stream data, datagrams, CONNECTION_CLOSE), coalesces packets into one datagram within
//! the path MTU, the congestion window and the amplification limit, then seals and applies header
//! protection (PROTOCOL.md §4, §5).

use core::net::SocketAddr;

use super::sent_frames::SentFrames;
use super::{Connection, State, MIN_INITIAL_DATAGRAM};
use crate::crypto::provider::TAG_LEN;
use crate::crypto::DirectionalKeys;
use crate::handshake::Space;
use crate::recovery::sent::SentPacket;
use crate::time::Instant;
use crate::wire::frame;
use crate::wire::header::{self, LongHeaderType};
use crate::wire::packet_number;
use crate::Side;

/// A datagram to send: the bytes are in the buffer passed to `poll_transmit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send it.
    pub destination: SocketAddr,
    /// Its size in bytes.
    pub size: usize,
    /// Whether it is a path MTU probe, larger than the MTU known to work: a driver sends it in
    /// a send call of its own, so that if the host refuses it (EMSGSIZE) no other datagram
    /// is lost with it.
    pub mtu_probe: bool,
}

/// The smallest payload worth building a packet for.
const MIN_PACKET_ROOM: usize = 32;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Level {
    Initial,
    Handshake,
    ZeroRtt,
    OneRtt,
}

impl Level {
    fn space(self) -> Space {
        match self {
            Level::Initial => Space::Initial,
            Level::Handshake => Space::Handshake,
            Level::ZeroRtt | Level::OneRtt => Space::Data,
        }
    }
}

impl Connection {
    /// Writes the next datagram to send into `buf` (cleared first) and says where it goes.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        buf.clear();
        if matches!(self.state, State::Closed | State::Draining { .. }) {
            return None;
        }
        self.now_hint = self.now_hint.max(now);
        self.streams.expire(now);
        self.pacing_deadline = None;
        self.sync_mtu();
        // A path MTU probe goes after what the connection has ready to send (an answer, a
        // request, acknowledgements), unless it has waited a smoothed RTT already: a sender that
        // always has data still probes.
        let probe_overdue = self
            .probe_waiting_since
            .is_some_and(|since| now >= since + self.rtt.smoothed());
        if probe_overdue {
            if let Some(t) = self.try_mtu_probe(now, buf) {
                return Some(t);
            }
        }
        self.maybe_update_keys(now);
        self.fec_on_timer(now);
        let budget = self.amplification_budget();
        let mut max = self.mtu.min(usize::try_from(budget).unwrap_or(usize::MAX));
        if max < MIN_PACKET_ROOM {
            return None;
        }
        // A client's ack-eliciting Initial fills its datagram with padding (PROTOCOL.md §4);
        // an acknowledgement-only Initial is not padded and leaves room for the rest.
        let mut padded_initial = false;
        let mut ack_eliciting_sent = false;
        for level in [
            Level::Initial,
            Level::Handshake,
            Level::ZeroRtt,
            Level::OneRtt,
        ] {
            let room = max.saturating_sub(buf.len());
            if room < MIN_PACKET_ROOM {
                break;
            }
            if self.side == Side::Client && padded_initial && level == Level::OneRtt {
                break; // keep 1-RTT out of padded Initial datagrams
            }
            let pad_to = if self.side == Side::Client && level == Level::Initial {
                Some(MIN_INITIAL_DATAGRAM)
            } else {
                None
            };
            match self.write_packet(now, level, buf, max, pad_to) {
                Some(eliciting) => {
                    ack_eliciting_sent |= eliciting;
                    if level == Level::Initial && eliciting {
                        padded_initial = true;
                    }
                }
                None => continue,
            }
            if level == Level::Handshake && self.side == Side::Client {
                // PROTOCOL.md §7.9: the client drops Initial keys once it sends Handshake.
                self.discard_space(Space::Initial);
            }
            max = max.min(self.mtu);
        }
        if buf.is_empty() {
            // Held back by the pacer is not out of data: the window is in use (RFC 9002 §7.8).
            if self.pacing_deadline.is_none() {
                self.note_app_limited();
            }
            return self.try_mtu_probe(now, buf);
        }
        if self.probe_waiting_since.is_none() && self.mtu_probe_allowed() {
            // Note when a due probe started waiting behind this datagram.
            if self.mtud.poll_probe(now).is_some() {
                self.probe_waiting_since = Some(now);
            }
        }
        let _ = ack_eliciting_sent;
        if !self.address_validated {
            self.unvalidated_sent += buf.len() as u64;
        }
        self.stats.datagrams_sent += 1;
        self.stats.bytes_sent += buf.len() as u64;
        if matches!(self.state, State::Closing { .. }) {
            self.close_pending = false;
        }
        Some(Transmit {
            destination: self.remote,
            size: buf.len(),
            mtu_probe: false,
        })
    }

    /// Adopts the size path MTU discovery settled on.
    fn sync_mtu(&mut self) {
        let current = usize::from(self.mtud.current());
        if current != self.mtu {
            self.mtu = current;
            self.cc.set_max_datagram_size(current as u64);
            self.pacer.set_max_datagram_size(current as u64);
        }
    }

    /// Sends a path MTU probe (a lone 1-RTT packet of PING + PADDING) if one is due.
    fn try_mtu_probe(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        if !self.mtu_probe_allowed() {
            return None;
        }
        let room = self.cc.window().saturating_sub(self.bytes_in_flight());
        let Some(size) = self.mtud.poll_probe(now) else {
            self.probe_waiting_since = None;
            return None;
        };
        if room < u64::from(size) {
            return None;
        }
        let pn = self.spaces[Space::Data as usize].next_pn;
        self.building_probe = true;
        let built = self.write_packet(
            now,
            Level::OneRtt,
            buf,
            usize::from(size),
            Some(usize::from(size)),
        );
        self.building_probe = false;
        built?;
        self.mtud.on_probe_sent(pn, buf.len() as u16);
        self.probe_waiting_since = None;
        self.stats.datagrams_sent += 1;
        self.stats.bytes_sent += buf.len() as u64;
        Some(Transmit {
            destination: self.remote,
            size: buf.len(),
            mtu_probe: true,
        })
    }

    /// Whether the connection may send a path MTU probe at all (not whether one is due).
    fn mtu_probe_allowed(&mut self) -> bool {
        if !self.mtu_search_started
            && self.handshake_confirmed
            && self.stats.datagrams_sent >= crate::recovery::mtu::SEARCH_AFTER_DATAGRAMS
        {
            self.start_mtu_search();
        }
        // Never probe an unvalidated path: a probe is far larger than the 3x budget allows
        // (PROTOCOL.md §12.1, §15.4). The server's answer to the client's Finished
        // (HANDSHAKE_DONE, a session ticket) leaves before the first probe: the client's first
        // exchange waits on it.
        self.mtu_search_started
            && self.handshake_confirmed
            && !self.handshake_done_pending
            && self.address_validated
            && self.state == State::Established
            && self.app.is_some()
    }

    /// Tells the rate estimator the sender ran out of data (not out of window). During the
    /// handshake too: flights that wait on the handshake measure it, not the path, and must not
    /// count as rounds without bandwidth growth (they once ended BBR's startup on a lossy path).
    fn note_app_limited(&mut self) {
        let in_flight = self.bytes_in_flight();
        if self.cc.window() >= in_flight + self.mtu as u64 {
            self.rate.on_app_limited(in_flight);
        }
    }

    fn maybe_update_keys(&mut self, now: Instant) {
        if !self.handshake_confirmed {
            return;
        }
        let (packets, age) = (
            self.transport.key_update_packets,
            self.transport.key_update_interval,
        );
        let provider = self.provider.clone();
        let Some(app) = self.app.as_mut() else {
            return;
        };
        let due = self.key_update_requested || app.update_due(now, packets, age);
        // PROTOCOL.md §9: three PTOs after the current phase was confirmed.
        let wait = (self.rtt.pto_base() + self.transport.max_ack_delay) * 3;
        if due && app.may_initiate(now, wait) && app.initiate(provider.as_ref(), now).is_ok() {
            self.key_update_requested = false;
            self.stats.key_updates += 1;
            let generation = app.generation();
            tracing::debug!(side = ?self.side, generation, "key update initiated");
            self.events
                .push_back(super::Event::KeyUpdated { generation });
        }
    }

    /// Whether `level` has keys now.
    fn level_ready(&self, level: Level) -> bool {
        match level {
            Level::Initial | Level::Handshake => {
                let s = &self.spaces[level.space() as usize];
                !s.discarded && s.keys.is_some()
            }
            Level::ZeroRtt => {
                self.side == Side::Client
                    && self.app.is_none()
                    && self.zero_rtt.is_some()
                    && self.zero_rtt_budget > 0
            }
            Level::OneRtt => {
                // The client sends 1-RTT only once complete; the server as soon as it has keys.
                self.app.is_some() && (self.side == Side::Server || self.state != State::Handshake)
            }
        }
    }

    /// Builds one packet of `level` at the end of `buf` (not beyond `max` bytes in total).
    /// Returns whether it is ack-eliciting, or `None` if nothing was built.
    fn write_packet(
        &mut self,
        now: Instant,
        level: Level,
        buf: &mut Vec<u8>,
        max: usize,
        pad_to: Option<usize>,
    ) -> Option<bool> {
        if !self.level_ready(level) {
            return None;
        }
        let space = level.space();
        let closing = matches!(self.state, State::Closing { .. });
        if closing && !self.close_pending {
            return None;
        }
        let si = space as usize;
        let ack_due = self.ack_due(space, now);
        let in_flight = self.bytes_in_flight();
        let cwnd_room = self.cc.window().saturating_sub(in_flight);
        let probing = self.spaces[si].probes > 0 || self.building_probe;
        let mut can_elicit = probing || cwnd_room >= MIN_PACKET_ROOM as u64 || closing;
        let wants_to_elicit = !closing && can_elicit && self.has_eliciting(level);
        // The pacer holds back only a packet that has something to carry: a deadline set with
        // nothing to send would read as "pacing-limited" and wake the driver for nothing.
        if wants_to_elicit && !probing && level == Level::OneRtt {
            self.pacer.update(
                now,
                self.cc.pacing_rate(),
                self.cc.window(),
                self.rtt.smoothed(),
            );
            if let Some(t) = self.pacer.delay_until(now, self.mtu as u64) {
                can_elicit = false;
                self.pacing_deadline = Some(t);
            }
        }
        let has_data = wants_to_elicit && can_elicit;
        let fec_reports = level == Level::OneRtt && !closing && !self.fec.reports.is_empty();
        // A path MTU probe is its own reason to send: PING and padding.
        if !(ack_due || has_data || closing || fec_reports || self.building_probe) {
            return None;
        }

        let start = buf.len();
        let pn = self.spaces[si].next_pn;
        let largest_acked = self.spaces[si].loss.largest_acked();
        let pn_len = packet_number::encode_len(pn, largest_acked);
        let layout = match level {
            Level::OneRtt => {
                let phase = self.app.as_ref().is_some_and(|a| a.send_phase());
                header::encode_short_header(buf, &self.remote_cid, phase, pn, pn_len)
            }
            other => {
                let ty = match other {
                    Level::Initial => LongHeaderType::Initial {
                        token: &self.retry_token,
                    },
                    Level::ZeroRtt => LongHeaderType::ZeroRtt,
                    _ => LongHeaderType::Handshake,
                };
                header::encode_long_header(
                    buf,
                    ty,
                    self.version,
                    &self.remote_cid,
                    &self.local_cid,
                    pn,
                    pn_len,
                )
            }
        };
        let payload_start = buf.len();
        let limit = max.saturating_sub(TAG_LEN);
        // The smallest packet (header, the 4 bytes header protection samples, tag) must fit
        // `max`: it may be an amplification budget (PROTOCOL.md §12.1), not only the MTU.
        if payload_start + 4 > limit {
            buf.truncate(start);
            return None;
        }
        let mut sent = SentFrames {
            zero_rtt: level == Level::ZeroRtt,
            ..SentFrames::default()
        };
        let mut eliciting = false;

        if closing {
            if let Some(cf) = &self.close_frame {
                // Application closes travel as CONNECTION_CLOSE before 1-RTT (no app data there).
                if cf.application && level == Level::OneRtt {
                    frame::encode_application_close(buf, cf.code, &cf.reason);
                } else if cf.application {
                    // Before 1-RTT an application close is sent as a plain close (RFC 9000 §10.2.3
                    // does the same): the application code is not revealed to an unauthenticated
                    // observer.
                    frame::encode_connection_close(
                        buf,
                        crate::error::ErrorCode::NO_ERROR.0,
                        0,
                        b"",
                    );
                } else {
                    frame::encode_connection_close(buf, cf.code, cf.frame_type, &cf.reason);
                }
                if buf.len() > limit {
                    // The reason does not fit the room left (or the amplification budget):
                    // send the close without it.
                    buf.truncate(payload_start);
                    let (code, frame_type) = if cf.application && level != Level::OneRtt {
                        (crate::error::ErrorCode::NO_ERROR.0, 0)
                    } else {
                        (cf.code, cf.frame_type)
                    };
                    if cf.application && level == Level::OneRtt {
                        frame::encode_application_close(buf, code, b"");
                    } else {
                        frame::encode_connection_close(buf, code, frame_type, b"");
                    }
                    if buf.len() > limit {
                        buf.truncate(start);
                        return None;
                    }
                }
            }
        } else {
            // ACK first.
            if level != Level::ZeroRtt
                && !self.spaces[si].received.is_empty()
                && (ack_due || self.spaces[si].received.ack_has_news)
            {
                let exponent = 3u32;
                let delay = self.spaces[si].received.ack_pending_since.map_or(0, |t| {
                    now.saturating_duration_since(t).as_micros() as u64 >> exponent
                });
                let r = &self.spaces[si].received;
                if let Some(largest) = r.largest() {
                    let fits = frame::ack_frame_len(delay, r.ack_ranges())
                        .is_ok_and(|n| n <= limit.saturating_sub(buf.len()));
                    if fits && frame::encode_ack(buf, delay, r.ack_ranges()).is_ok() {
                        sent.ack_largest = Some(largest);
                        self.spaces[si].received.on_ack_sent();
                    }
                }
            }
            if fec_reports {
                self.fec_write_reports(buf, limit);
            }
            if self.building_probe && buf.len() < limit {
                frame::encode_ping(buf);
                sent.ping = true;
                eliciting = true;
            } else if can_elicit {
                eliciting |= self.write_eliciting(level, buf, limit, &mut sent);
            }
            if self.spaces[si].probes > 0 {
                self.spaces[si].probes -= 1;
                if !eliciting && buf.len() < limit {
                    frame::encode_ping(buf);
                    sent.ping = true;
                    eliciting = true;
                }
            }
        }
        if buf.len() == payload_start {
            self.fec.pending = None;
            buf.truncate(start);
            return None;
        }
        // Header protection needs pn_len + payload >= 4 (PROTOCOL.md §5.2); Initial padding.
        let min_payload = 4usize.saturating_sub(layout.pn_len);
        let mut target = payload_start + min_payload;
        if let Some(p) = pad_to {
            if eliciting {
                target = target.max(p.saturating_sub(TAG_LEN));
            }
        }
        if buf.len() < target {
            buf.resize(target.min(limit.max(payload_start + min_payload)), 0);
        }
        let end_with_tag = buf.len() + TAG_LEN;
        if layout.patch_length(buf, end_with_tag).is_err() {
            self.fec.pending = None;
            buf.truncate(start);
            return None;
        }
        // The protected payload is final now (padding included): it becomes a source symbol.
        self.fec_commit_source(now, buf);
        if !self.seal_packet(level, buf, start, layout.pn_offset, layout.pn_len, pn) {
            buf.truncate(start);
            return None;
        }
        let size = buf.len() - start;
        if level == Level::ZeroRtt {
            self.zero_rtt_budget = self.zero_rtt_budget.saturating_sub(size as u64);
        }
        self.spaces[si].next_pn += 1;
        self.stats.packets_sent += 1;
        if level == Level::OneRtt {
            if let Some(app) = self.app.as_mut() {
                app.on_sent(pn);
            }
        }
        let before = self.bytes_in_flight();
        let rate = if eliciting {
            self.rate.on_packet_sent(now, before)
        } else {
            Default::default()
        };
        self.spaces[si].loss.on_sent(
            pn,
            SentPacket {
                time_sent: now,
                size: u16::try_from(size).unwrap_or(u16::MAX),
                ack_eliciting: eliciting,
                in_flight: eliciting,
                frames: sent,
                rate,
            },
        );
        if eliciting {
            self.pacer.on_sent(now, size as u64);
            self.cc
                .on_packet_sent(&crate::recovery::congestion::SentEvent {
                    now,
                    bytes: size as u64,
                    bytes_in_flight: before + size as u64,
                    app_limited: rate.is_app_limited,
                });
            self.last_eliciting_sent = now;
        }
        Some(eliciting)
    }

    fn bytes_in_flight(&self) -> u64 {
        self.spaces.iter().map(|s| s.loss.bytes_in_flight()).sum()
    }

    fn ack_due(&self, space: Space, now: Instant) -> bool {
        let r = &self.spaces[space as usize].received;
        if r.unacked_eliciting == 0 {
            return false;
        }
        if space != Space::Data || r.ack_immediately {
            return true;
        }
        if r.unacked_eliciting >= self.transport.ack_eliciting_threshold {
            return true;
        }
        r.ack_pending_since
            .is_some_and(|t| now >= t + self.transport.max_ack_delay)
    }

    fn has_eliciting(&self, level: Level) -> bool {
        let s = &self.spaces[level.space() as usize];
        if s.crypto_send.has_pending() && level != Level::ZeroRtt {
            return true;
        }
        if s.probes > 0 {
            return true;
        }
        match level {
            Level::OneRtt => {
                self.handshake_done_pending
                    || self.ping_pending
                    || self.streams.has_pending()
                    || !self.datagrams_out.is_empty()
                    || self.streams.has_pending_control()
                    || !self.cids.new_cid_pending.is_empty()
                    || !self.cids.retire_pending.is_empty()
                    || self.path.challenge_pending
                    || !self.path.responses.is_empty()
                    || self.fec.encoder.has_repairs()
            }
            Level::ZeroRtt => self.streams.has_pending() || !self.datagrams_out.is_empty(),
            _ => false,
        }
    }

    /// Writes ack-eliciting frames; returns whether any was written.
    fn write_eliciting(
        &mut self,
        level: Level,
        buf: &mut Vec<u8>,
        limit: usize,
        sent: &mut SentFrames,
    ) -> bool {
        let start = buf.len();
        let si = level.space() as usize;
        // CRYPTO.
        if level != Level::ZeroRtt {
            let room = limit.saturating_sub(buf.len());
            let overhead = 1 + 8 + 4;
            if room > overhead {
                if let Some((offset, data)) =
                    self.spaces[si].crypto_send.next_chunk(room - overhead)
                {
                    frame::encode_crypto(buf, offset, data);
                    sent.crypto = Some(offset..offset + data.len() as u64);
                }
            }
        }
        if level == Level::OneRtt {
            if self.handshake_done_pending && buf.len() < limit {
                frame::encode_handshake_done(buf);
                sent.handshake_done = true;
                self.handshake_done_pending = false;
            }
            if self.ping_pending && buf.len() < limit {
                frame::encode_ping(buf);
                sent.ping = true;
                self.ping_pending = false;
            }
            if self.streams.pending_max_data && buf.len() + 9 <= limit {
                frame::encode_max_data(buf, self.streams.local_max_data());
                sent.max_data = true;
                self.streams.pending_max_data = false;
            }
            while let Some(id) = self.streams.pending_max_stream_data.pop() {
                if buf.len() + 17 > limit {
                    self.streams.pending_max_stream_data.push(id);
                    break;
                }
                if let Some(max) = self.streams.recv_max_data(id) {
                    frame::encode_max_stream_data(buf, id.0, max);
                    sent.max_stream_data.push(id);
                }
            }
            if self.path.challenge_pending && buf.len() + 9 <= limit {
                if let Some((data, _)) = self.path.challenge {
                    frame::encode_path_challenge(buf, &data);
                    sent.path_challenge = true;
                }
                self.path.challenge_pending = false;
            }
            while let Some(data) = self.path.responses.front().copied() {
                if buf.len() + 9 > limit {
                    break;
                }
                frame::encode_path_response(buf, &data);
                self.path.responses.pop_front();
            }
            while let Some(c) = self.cids.new_cid_pending.pop() {
                if buf.len() + 45 > limit {
                    self.cids.new_cid_pending.push(c);
                    break;
                }
                frame::encode_new_connection_id(
                    buf,
                    &frame::NewConnectionId {
                        sequence: c.sequence,
                        retire_prior_to: 0,
                        cid: c.cid,
                        reset_token: c.reset_token,
                    },
                );
                sent.new_cids.push(c.sequence);
            }
            while let Some(seq) = self.cids.retire_pending.pop() {
                if buf.len() + 9 > limit {
                    self.cids.retire_pending.push(seq);
                    break;
                }
                frame::encode_retire_connection_id(buf, seq);
                sent.retires.push(seq);
            }
            while let Some(id) = self.streams.pending_resets.pop() {
                if buf.len() + 25 > limit {
                    self.streams.pending_resets.push(id);
                    break;
                }
                if let Some((code, final_size)) = self.streams.reset_frame(id) {
                    frame::encode_reset_stream(buf, id.0, code, final_size);
                    sent.resets.push(id);
                }
            }
            while let Some((id, code)) = self.streams.pending_stop_sending.pop() {
                if buf.len() + 17 > limit {
                    self.streams.pending_stop_sending.push((id, code));
                    break;
                }
                frame::encode_stop_sending(buf, id.0, code);
                sent.stop_sending.push((id, code));
            }
            while let Some((id, range)) = self.streams.pending_skips.pop() {
                if buf.len() + 25 > limit {
                    self.streams.pending_skips.push((id, range));
                    break;
                }
                frame::encode_stream_skip(buf, id.0, range.start, range.end);
                sent.skips.push((id, range));
            }
            for (i, dir) in [super::Dir::Bi, super::Dir::Uni].into_iter().enumerate() {
                if self.streams.pending_max_streams[i] && buf.len() + 9 <= limit {
                    let wire_dir = match dir {
                        super::Dir::Bi => frame::Dir::Bi,
                        super::Dir::Uni => frame::Dir::Uni,
                    };
                    frame::encode_max_streams(buf, wire_dir, self.streams.local_max_streams(dir));
                    sent.max_streams[i] = true;
                    self.streams.pending_max_streams[i] = false;
                }
            }
        }
        // FEC (PROTOCOL.md §19.5): repair symbols go before new data; when protection is
        // active, room is kept for a FEC_SOURCE frame in front of the data frames.
        let mut fec = None;
        if level == Level::OneRtt {
            self.fec_write_repairs(buf, limit);
            let shape = self.fec_shape();
            self.stats.fec_shape = shape.map(|s| (s.k as u8, s.m as u8));
            if let Some(shape) = shape {
                let (group, index) = self.fec.encoder.next_slot();
                let tag_len = frame::fec_source_len(group, index as u64);
                fec = Some((shape, group, index, tag_len, buf.len()));
            }
        }
        let data_limit = fec.map_or(limit, |f| limit.saturating_sub(f.3));
        let mut protect = false;
        if matches!(level, Level::OneRtt | Level::ZeroRtt) {
            // Datagrams (never retransmitted), then stream data; compressed where it pays.
            let limit = data_limit;
            let streams_before = sent.streams.len();
            if self.write_datagram_frames(buf, limit) {
                protect |= self.transport.fec.datagrams;
            }
            self.write_stream_frames(buf, limit, sent);
            if fec.is_some() {
                for i in streams_before..sent.streams.len() {
                    let id = sent.streams[i].id;
                    protect |= self.fec_protects_stream(id);
                }
            }
        }
        if let (true, Some((shape, group, index, tag_len, data_start))) = (protect, fec) {
            // Everything after the FEC_SOURCE frame is the protected payload (§19.2).
            let mut tag = Vec::with_capacity(tag_len);
            frame::encode_fec_source(&mut tag, group, index as u64);
            buf.splice(data_start..data_start, tag);
            self.fec.pending = Some(super::fec::PendingSource {
                from: data_start + tag_len,
                shape,
                streams: sent.streams.clone(),
            });
        }
        buf.len() > start
    }

    /// Seals the packet at `buf[start..]` in place and applies header protection.
    fn seal_packet(
        &mut self,
        level: Level,
        buf: &mut Vec<u8>,
        start: usize,
        pn_offset: usize,
        pn_len: usize,
        pn: u64,
    ) -> bool {
        let keys: &DirectionalKeys = match level {
            Level::Initial | Level::Handshake => match &self.spaces[level.space() as usize].keys {
                Some((send, _)) => send,
                None => return false,
            },
            Level::ZeroRtt => match &self.zero_rtt {
                Some(k) => k,
                None => return false,
            },
            Level::OneRtt => match &self.app {
                Some(a) => &a.send,
                None => return false,
            },
        };
        let payload_offset = pn_offset + pn_len;
        let (head, payload) = buf.split_at_mut(payload_offset);
        let Ok(tag) = keys.packet.seal(pn, &head[start..], payload) else {
            return false;
        };
        buf.extend_from_slice(&tag);
        // Header protection (PROTOCOL.md §5.3).
        let sample_at = pn_offset + 4;
        let Some(sample) = buf
            .get(sample_at..sample_at + 16)
            .and_then(|s| <[u8; 16]>::try_from(s).ok())
        else {
            return false;
        };
        let Ok(mask) = keys.header.mask(&sample) else {
            return false;
        };
        let first_mask = if level == Level::OneRtt {
            header::SHORT_HP_MASK
        } else {
            header::LONG_HP_MASK
        };
        buf[start] ^= mask[0] & first_mask;
        for i in 0..pn_len {
            buf[pn_offset + i] ^= mask[1 + i];
        }
        true
    }
}
