//! The path of a datagram: from a node's `poll_transmit` through the middleboxes and the link
//! to a delivery event, and from a delivery or injection event into the destination node, with
//! its capture record and counters kept up to date on the way.

use super::Simulator;
use crate::capture::{CaptureRecord, Fate, Origin};
use crate::event::Event;
use crate::link::Transit;
use crate::middlebox::Verdict;
use crate::node::{Datagram, NodeId};

/// An ordered `(from, to)` pair of nodes: one link direction.
type LinkKey = (NodeId, NodeId);

impl Simulator {
    /// Node `from` sent `datagram`: stamp its source, run the middleboxes, then the link.
    pub(super) fn send(&mut self, from: NodeId, mut datagram: Datagram) {
        datagram.src = self.nodes[from.0].addr;
        let len = datagram.payload.len();
        let Some(link_to) = self.node_at(datagram.dst) else {
            self.stats.unroutable.add(len);
            self.record(Origin::Node(from), &datagram, Fate::NoRoute);
            return;
        };
        let link = (from, link_to);
        self.link_mut(from, link_to).stats.sent.add(len);
        let (verdict, rewritten) = self.run_middleboxes(link, &mut datagram);
        let record = self.record(Origin::Node(from), &datagram, Fate::InFlight);
        if let Some(r) = self.capture.get_mut(record) {
            r.rewritten = rewritten;
        }
        let len = datagram.payload.len();
        if verdict == Verdict::Drop {
            self.link_mut(from, link_to)
                .stats
                .middlebox_dropped
                .add(len);
            self.set_fate(record, Fate::MiddleboxDropped);
            return;
        }
        // A middlebox may have redirected it; the link it entered stays the same.
        let Some(to) = self.node_at(datagram.dst) else {
            self.link_mut(from, link_to).stats.unbound.add(len);
            self.set_fate(record, Fate::NoRoute);
            return;
        };
        self.transmit(link, to, datagram, record);
    }

    /// Puts `datagram` on `link` and schedules its arrival (and its copy's) at node `to`.
    fn transmit(
        &mut self,
        link: LinkKey,
        to: NodeId,
        mut datagram: Datagram,
        record: Option<usize>,
    ) {
        let config = self.link_config(link.0, link.1).clone();
        let now = self.now;
        let transit = self
            .link_mut(link.0, link.1)
            .transmit(&config, now, &mut datagram.payload);
        let (at, corrupted, duplicated) = match transit {
            Transit::Dropped(fate) => return self.set_fate(record, fate),
            Transit::Arrives {
                at,
                corrupted,
                duplicated,
            } => (at, corrupted, duplicated),
        };
        let mut copy_record = None;
        if let (Some(index), Some(r)) = (record, self.capture.get_mut(record)) {
            r.corrupted = corrupted;
            r.duplicated = duplicated;
            if duplicated {
                let copy = CaptureRecord {
                    origin: Origin::Duplicate(index),
                    duplicated: false,
                    ..r.clone()
                };
                copy_record = self.capture.push(copy);
            }
        } else if duplicated {
            self.capture.skip();
        }
        let copy = duplicated.then(|| datagram.clone());
        self.events.push(
            at,
            Event::Deliver {
                link,
                to,
                datagram,
                record,
            },
        );
        if let Some(datagram) = copy {
            self.events.push(
                at,
                Event::Deliver {
                    link,
                    to,
                    datagram,
                    record: copy_record,
                },
            );
        }
    }

    /// Runs the middleboxes covering `link` over `datagram`, in installation order, and
    /// schedules their injections. Returns the verdict and whether the datagram was changed.
    fn run_middleboxes(&mut self, link: LinkKey, datagram: &mut Datagram) -> (Verdict, bool) {
        let now = self.now;
        let limit = self.config.max_events_per_instant;
        let mut injections = Vec::new();
        let mut verdict = Verdict::Forward;
        let mut original = None;
        for entry in self.middleboxes.iter_mut().flatten() {
            if !entry.scope.covers(link.0, link.1) {
                continue;
            }
            original.get_or_insert_with(|| datagram.clone());
            let middlebox = entry.slot.middlebox();
            verdict = middlebox.on_datagram(now, datagram);
            while let Some(injection) = middlebox.poll_inject(now) {
                injections.push(injection);
                if u64::try_from(injections.len()).unwrap_or(u64::MAX) > limit {
                    panic!(
                        "jsp-sim: livelock: a middlebox injected over {limit} datagrams at once"
                    );
                }
            }
            if verdict == Verdict::Drop {
                break;
            }
        }
        for injection in injections {
            self.inject(injection.at, injection.datagram);
        }
        (
            verdict,
            original.is_some_and(|original| original != *datagram),
        )
    }

    /// A datagram reached the end of `link`: hand it to `to` if it still has the address.
    pub(super) fn deliver(
        &mut self,
        link: LinkKey,
        to: NodeId,
        datagram: Datagram,
        record: Option<usize>,
    ) {
        let len = datagram.payload.len();
        let bound = self.nodes[to.0].addr == datagram.dst;
        if !bound && !self.config.deliver_after_rebind {
            self.link_mut(link.0, link.1).stats.unbound.add(len);
            self.set_fate(record, Fate::AddressGone);
            return;
        }
        self.link_mut(link.0, link.1).stats.delivered.add(len);
        self.set_fate(record, Fate::Delivered(self.now));
        self.hand_to(to, datagram);
    }

    /// An injected datagram is due: hand it to whichever node has its destination address.
    pub(super) fn deliver_injected(&mut self, datagram: Datagram) {
        let len = datagram.payload.len();
        self.stats.injected.add(len);
        let record = self.record(Origin::Injected, &datagram, Fate::InFlight);
        match self.node_at(datagram.dst) {
            Some(to) => {
                self.set_fate(record, Fate::Delivered(self.now));
                self.hand_to(to, datagram);
            }
            None => {
                self.stats.unroutable.add(len);
                self.set_fate(record, Fate::NoRoute);
            }
        }
    }

    fn hand_to(&mut self, to: NodeId, datagram: Datagram) {
        let now = self.now;
        tracing::trace!(%to, src = %datagram.src, len = datagram.payload.len(), "deliver");
        self.nodes[to.0].slot.node().handle_datagram(now, datagram);
        self.service(to);
    }

    fn record(&mut self, origin: Origin, datagram: &Datagram, fate: Fate) -> Option<usize> {
        self.capture.push(CaptureRecord {
            time: self.now,
            origin,
            src: datagram.src,
            dst: datagram.dst,
            payload: datagram.payload.clone(),
            fate,
            rewritten: false,
            corrupted: false,
            duplicated: false,
        })
    }

    fn set_fate(&mut self, record: Option<usize>, fate: Fate) {
        if let Some(record) = self.capture.get_mut(record) {
            record.fate = fate;
        }
    }
}
