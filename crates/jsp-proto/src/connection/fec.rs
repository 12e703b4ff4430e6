//! The connection's side of forward error correction (PROTOCOL.md §19): negotiation, which
//! packets are protected, REPAIR and FEC_RECOVERED frames, processing rebuilt payloads, and the
//! adaptive controller's inputs. The coding itself lives in [`crate::fec`].

use std::collections::HashMap;

use core::time::Duration;

use super::sent_frames::SentStream;
use super::{Connection, StreamId};
use crate::config::FecMode;
use crate::error::ErrorCode;
use crate::fec::controller::{FecController, Policy};
use crate::fec::decoder::{FecDecoder, Recovered, RepairInfo, SourceOutcome};
use crate::fec::encoder::{FecEncoder, Shape};
use crate::fec::{FecError, MAX_GROUP_SYMBOLS};
use crate::handshake::Space;
use crate::time::Instant;
use crate::wire::frame::{Frame, FrameIter, RepairFrame};
use crate::wire::header::PacketType;

/// A protected payload being built: where it starts in the packet buffer, and what it carries.
#[derive(Debug)]
pub(super) struct PendingSource {
    /// Offset in the datagram buffer of the first byte after the FEC_SOURCE frame.
    pub from: usize,
    pub shape: Shape,
    pub streams: smallvec::SmallVec<[SentStream; 2]>,
}

/// Per-connection FEC state.
#[derive(Debug, Default)]
pub(super) struct FecState {
    pub encoder: FecEncoder,
    pub decoder: FecDecoder,
    pub controller: FecController,
    /// The peer's `fec_max_symbols` (0: the peer does not decode FEC).
    pub peer_max: u64,
    /// Payloads rebuilt while a packet's frames were processed, processed right after it.
    pub recovered: Vec<Recovered>,
    /// FEC_RECOVERED reports to send: (group, bitmap).
    pub reports: Vec<(u64, u64)>,
    /// Per-stream overrides of the class default.
    pub overrides: HashMap<StreamId, bool>,
    /// Set by the send path between writing a FEC_SOURCE frame and sealing the packet.
    pub pending: Option<PendingSource>,
}

/// Whether `frame` may follow a FEC_SOURCE frame, or appear in a rebuilt payload (§19.2).
fn protectable(frame: &Frame<'_>) -> bool {
    matches!(
        frame,
        Frame::Padding(_)
            | Frame::Ping
            | Frame::Stream(_)
            | Frame::Datagram(_)
            | Frame::StreamLz4(_)
            | Frame::DatagramLz4(_)
    )
}

impl Connection {
    /// Whether this side takes part in FEC (advertises `fec_max_symbols`).
    pub(super) fn fec_enabled(&self) -> bool {
        self.transport.fec.mode != FecMode::Off
    }

    /// The `fec_max_symbols` value to advertise.
    pub(super) fn fec_local_param(&self) -> u64 {
        if self.fec_enabled() {
            MAX_GROUP_SYMBOLS as u64
        } else {
            0
        }
    }

    /// The group shape to protect the next packet with, or `None` if FEC is off, not negotiated
    /// or (`Auto`) not worth it now.
    pub(super) fn fec_shape(&mut self) -> Option<Shape> {
        if !self.fec_enabled() || self.fec.peer_max < 2 {
            return None;
        }
        let shape = match self.transport.fec.mode {
            FecMode::Off => return None,
            FecMode::Fixed { data, repair } => {
                Shape::new(usize::from(data), usize::from(repair)).ok()?
            }
            FecMode::Auto => {
                let policy = Policy {
                    min_loss: self.transport.fec.min_loss,
                    min_rtt: self.transport.fec.min_rtt,
                };
                let srtt = self.rtt.smoothed();
                self.fec.controller.shape(srtt, &policy)?
            }
        };
        let peer = usize::try_from(self.fec.peer_max).unwrap_or(usize::MAX);
        if shape.k + shape.m <= peer {
            return Some(shape);
        }
        let m = shape.m.min(peer - 1);
        Shape::new(shape.k.min(peer - m), m).ok()
    }

    /// How long a partly filled group may wait: the configured delay, at most an eighth of the
    /// smoothed RTT, at least 1 ms. A real-time message that needs repair in both directions
    /// (1% of echoes at 10% loss: the p99) waits for two flushes, which must stay well inside
    /// half an RTT for its round trip to stay within 1.5 RTT.
    pub(super) fn fec_flush_delay(&self) -> Duration {
        let eighth = (self.rtt.smoothed() / 8).max(Duration::from_millis(1));
        self.transport.fec.flush_delay.min(eighth)
    }

    /// Whether data of stream `id` is FEC-protected when FEC is active.
    pub(super) fn fec_protects_stream(&self, id: StreamId) -> bool {
        if let Some(&on) = self.fec.overrides.get(&id) {
            return on;
        }
        self.streams
            .send_class(id)
            .is_some_and(|c| self.transport.fec.classes.contains(&c))
    }

    /// Chooses FEC protection for one stream, overriding its class's default
    /// (`TransportConfig::fec.classes`); `None` returns to the class default. Protection applies
    /// only while FEC is active (`FecMode::Fixed`, or `FecMode::Auto` on a lossy path) and the
    /// peer supports it.
    pub fn set_stream_fec(&mut self, id: StreamId, protect: Option<bool>) {
        match protect {
            Some(on) => {
                self.fec.overrides.insert(id, on);
            }
            None => {
                self.fec.overrides.remove(&id);
            }
        }
    }

    /// Whether FEC currently protects traffic sent on this connection.
    pub fn fec_active(&self) -> bool {
        self.stats.fec_shape.is_some()
    }

    /// Closes the open group if its flush time has come.
    pub(super) fn fec_on_timer(&mut self, now: Instant) {
        if let Err(e) = self.fec.encoder.flush(now, false) {
            tracing::warn!(side = ?self.side, error = %e, "FEC flush failed");
        }
    }

    /// Records the protected payload of the packet just built (after padding, before sealing).
    pub(super) fn fec_commit_source(&mut self, now: Instant, buf: &[u8]) {
        let Some(p) = self.fec.pending.take() else {
            return;
        };
        let delay = self.fec_flush_delay();
        let payload = buf.get(p.from..).unwrap_or(&[]);
        match self
            .fec
            .encoder
            .add_source(now, p.shape, delay, payload, p.streams)
        {
            Ok(()) => self.stats.fec_source_sent += 1,
            Err(e) => tracing::warn!(side = ?self.side, error = %e, "FEC encode failed"),
        }
    }

    /// Writes the next queued REPAIR frame if it fits below `limit`; returns whether one was
    /// written. One per packet: the repair symbols of a group travel in different datagrams,
    /// so that one lost datagram does not take several of them (small real-time groups would
    /// otherwise put all their repair symbols in one packet).
    pub(super) fn fec_write_repairs(&mut self, buf: &mut Vec<u8>, limit: usize) -> bool {
        let mut wrote = false;
        while let Some(r) = self.fec.encoder.peek_repair() {
            if wrote {
                break;
            }
            let f = RepairFrame {
                group: r.group,
                k: r.k as u64,
                m: r.m as u64,
                index: r.index as u64,
                symbol: &r.symbol,
            };
            let len = crate::wire::frame::repair_frame_len(&f);
            if buf.len() + len > limit {
                // A symbol that cannot fit even an otherwise empty packet is dropped (the path
                // MTU shrank); otherwise it waits for the next packet.
                if len + 64 > self.mtu {
                    self.fec.encoder.drop_repair();
                    continue;
                }
                break;
            }
            crate::wire::frame::encode_repair(buf, &f);
            self.fec.encoder.pop_repair();
            self.stats.fec_repair_sent += 1;
            wrote = true;
        }
        wrote
    }

    /// Writes pending FEC_RECOVERED reports that fit below `limit`.
    pub(super) fn fec_write_reports(&mut self, buf: &mut Vec<u8>, limit: usize) {
        while let Some(&(group, bitmap)) = self.fec.reports.last() {
            if buf.len() + 1 + 8 + 8 > limit {
                break;
            }
            crate::wire::frame::encode_fec_recovered(buf, group, bitmap);
            self.fec.reports.pop();
        }
    }

    fn fec_error(&mut self, now: Instant, e: FecError) {
        match e {
            FecError::Codec(_) => {
                tracing::warn!(side = ?self.side, error = %e, "FEC rebuild failed")
            }
            other => {
                let msg = other.to_string();
                self.protocol_violation(now, ErrorCode::PROTOCOL_ERROR, &msg);
            }
        }
    }

    /// A FEC_SOURCE frame: `rest` is the protected remainder of the payload. Returns whether the
    /// frames after it are new.
    pub(super) fn on_fec_source(
        &mut self,
        now: Instant,
        group: u64,
        index: u64,
        rest: &[u8],
    ) -> SourceOutcome {
        if !self.fec_enabled() {
            self.protocol_violation(now, ErrorCode::PROTOCOL_ERROR, "FEC frame without FEC");
            return SourceOutcome::Duplicate;
        }
        let index = usize::try_from(index).unwrap_or(usize::MAX);
        match self.fec.decoder.on_source(group, index, rest) {
            Ok((outcome, recovered)) => {
                self.fec.recovered.extend(recovered);
                outcome
            }
            Err(e) => {
                self.fec_error(now, e);
                SourceOutcome::Duplicate
            }
        }
    }

    /// A REPAIR frame.
    pub(super) fn on_repair_frame(&mut self, now: Instant, f: RepairFrame<'_>) {
        if !self.fec_enabled() {
            self.protocol_violation(now, ErrorCode::PROTOCOL_ERROR, "FEC frame without FEC");
            return;
        }
        let conv = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        let info = RepairInfo {
            group: f.group,
            k: conv(f.k),
            m: conv(f.m),
            index: conv(f.index),
        };
        match self.fec.decoder.on_repair(info, f.symbol) {
            Ok(recovered) => self.fec.recovered.extend(recovered),
            Err(e) => self.fec_error(now, e),
        }
    }

    /// A FEC_RECOVERED report: the peer has those sources, so their stream data needs no
    /// retransmission. Their packets still count as lost for congestion control (§19.6).
    pub(super) fn on_fec_recovered(&mut self, now: Instant, group: u64, bitmap: u64) {
        if !self.fec_enabled() {
            self.protocol_violation(now, ErrorCode::PROTOCOL_ERROR, "FEC frame without FEC");
            return;
        }
        self.stats.fec_peer_recovered += u64::from(bitmap.count_ones());
        for s in self.fec.encoder.on_recovered(group, bitmap) {
            self.streams.on_ack(s.id, s.range, s.fin);
        }
        self.drain_stream_events();
    }

    /// Processes payloads rebuilt while the last packet was handled, as if their packets had
    /// arrived (without acknowledging those packet numbers), and queues FEC_RECOVERED reports.
    pub(super) fn fec_process_recovered(&mut self, now: Instant) {
        if self.fec.recovered.is_empty() {
            return;
        }
        let list = std::mem::take(&mut self.fec.recovered);
        for r in list {
            self.stats.fec_recovered += 1;
            let bit = 1u64 << r.index;
            match self.fec.reports.iter_mut().find(|(g, _)| *g == r.group) {
                Some((_, bits)) => *bits |= bit,
                None => self.fec.reports.push((r.group, bit)),
            }
            for item in FrameIter::for_packet(&r.payload, PacketType::OneRtt) {
                let frame = match item {
                    Ok(f) if protectable(&f) => f,
                    Ok(_) => {
                        self.protocol_violation(
                            now,
                            ErrorCode::PROTOCOL_ERROR,
                            "frame not allowed in an FEC-protected payload",
                        );
                        return;
                    }
                    Err(e) => {
                        let msg = e.to_string();
                        self.protocol_violation(now, ErrorCode(e.code()), &msg);
                        return;
                    }
                };
                self.on_frame(now, Space::Data, frame);
                if self.is_closing() {
                    return;
                }
            }
        }
        // Bound the report queue (reports are an optimisation: a lost one costs a retransmit).
        if self.fec.reports.len() > 64 {
            let excess = self.fec.reports.len() - 64;
            self.fec.reports.drain(..excess);
        }
    }

    /// Checks a frame after a FEC_SOURCE frame: `Some(true)` process it, `Some(false)` skip it
    /// (a DATAGRAM of a duplicate source), `None` the connection was closed.
    pub(super) fn fec_filter_protected(
        &mut self,
        now: Instant,
        outcome: SourceOutcome,
        frame: &Frame<'_>,
    ) -> Option<bool> {
        if !protectable(frame) {
            self.protocol_violation(
                now,
                ErrorCode::PROTOCOL_ERROR,
                "frame not allowed in an FEC-protected payload",
            );
            return None;
        }
        Some(
            !(outcome == SourceOutcome::Duplicate
                && matches!(frame, Frame::Datagram(_) | Frame::DatagramLz4(_))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_data_frames_are_protectable() {
        assert!(protectable(&Frame::Datagram(b"x")));
        assert!(protectable(&Frame::Padding(3)));
        assert!(!protectable(&Frame::MaxData(1)));
        assert!(!protectable(&Frame::FecSource { group: 0, index: 0 }));
    }
}
