//! Driving the simulator: stepping through events, running to a deadline or while a predicate
//! holds, servicing nodes after each event, scheduling their timers, and the livelock guard.

use core::time::Duration;

use jsp_proto::time::Instant;

use super::{Simulator, StopReason};
use crate::event::Event;
use crate::node::NodeId;

impl Simulator {
    /// The time of the next event, after servicing touched nodes and discarding stale timers;
    /// `None` if nothing is scheduled.
    pub fn next_event_time(&mut self) -> Option<Instant> {
        self.service_dirty();
        while let Some((_, event)) = self.events.peek() {
            if !self.is_stale(event) {
                break;
            }
            self.events.pop();
        }
        self.events.peek().map(|(at, _)| at)
    }

    /// How many events are scheduled (stale timers included).
    pub fn pending_events(&self) -> usize {
        self.events.len()
    }

    /// Processes the next event, advancing the clock to it. Returns `false` if nothing is
    /// scheduled.
    ///
    /// # Panics
    ///
    /// On livelock: more than
    /// [`SimConfig::max_events_per_instant`](crate::SimConfig::max_events_per_instant) events
    /// without the clock advancing.
    pub fn step(&mut self) -> bool {
        if self.next_event_time().is_none() {
            return false;
        }
        let Some((at, event)) = self.events.pop() else {
            return false;
        };
        self.advance(at);
        self.count_event();
        match event {
            Event::Deliver {
                link,
                to,
                datagram,
                record,
            } => self.deliver(link, to, datagram, record),
            Event::Timer { node, .. } => {
                self.nodes[node.0].timer = None;
                let now = self.now;
                self.nodes[node.0].slot.node().handle_timeout(now);
                self.service(node);
            }
            Event::Inject { datagram } => self.deliver_injected(datagram),
        }
        true
    }

    /// Processes every event up to and including `deadline`, then sets the clock to `deadline`
    /// (if it is later than now).
    pub fn run_until(&mut self, deadline: Instant) {
        while let Some(at) = self.next_event_time() {
            if at > deadline {
                break;
            }
            self.step();
        }
        self.advance(deadline);
    }

    /// [`run_until`](Self::run_until) `duration` from now.
    pub fn run_for(&mut self, duration: Duration) {
        self.run_until(self.now + duration);
    }

    /// Steps while `predicate` holds, checking it before every event, for at most `max` of
    /// virtual time.
    pub fn run_while(
        &mut self,
        mut predicate: impl FnMut(&mut Self) -> bool,
        max: Duration,
    ) -> StopReason {
        let deadline = self.now + max;
        loop {
            if !predicate(self) {
                return StopReason::PredicateFalse;
            }
            match self.next_event_time() {
                None => return StopReason::Idle,
                Some(at) if at > deadline => {
                    self.advance(deadline);
                    return StopReason::Deadline;
                }
                Some(_) => {
                    self.step();
                }
            }
        }
    }

    fn advance(&mut self, to: Instant) {
        if to > self.now {
            self.now = to;
            self.events_this_instant = 0;
        }
    }

    fn count_event(&mut self) {
        self.stats.events += 1;
        self.events_this_instant += 1;
        if self.events_this_instant > self.config.max_events_per_instant {
            panic!(
                "jsp-sim: livelock: more than {} events at virtual time {} ns without time \
                 advancing (raise SimConfig::max_events_per_instant if this is intended)",
                self.config.max_events_per_instant,
                self.now.as_nanos()
            );
        }
    }

    fn is_stale(&self, event: &Event) -> bool {
        match *event {
            Event::Timer { node, requested } => self.nodes[node.0].timer != Some(requested),
            Event::Deliver { .. } | Event::Inject { .. } => false,
        }
    }

    fn service_dirty(&mut self) {
        for index in 0..self.nodes.len() {
            if self.nodes[index].dirty {
                self.service(NodeId(index));
            }
        }
    }

    /// Drains the node's transmit queue into the network and reschedules its timer.
    pub(super) fn service(&mut self, id: NodeId) {
        let now = self.now;
        self.nodes[id.0].dirty = false;
        while let Some(datagram) = self.nodes[id.0].slot.node().poll_transmit(now) {
            self.count_event();
            self.send(id, datagram);
        }
        let entry = &mut self.nodes[id.0];
        let timeout = entry.slot.node().poll_timeout();
        if timeout != entry.timer {
            entry.timer = timeout;
            if let Some(requested) = timeout {
                let fire = match entry.timer_tick {
                    Some(tick) => {
                        let tick = u64::try_from(tick.as_nanos()).unwrap_or(u64::MAX);
                        Instant::from_nanos(
                            requested.as_nanos().div_ceil(tick).saturating_mul(tick),
                        )
                    }
                    None => requested,
                };
                self.events.push(
                    fire.max(now),
                    Event::Timer {
                        node: id,
                        requested,
                    },
                );
            }
        }
    }
}
