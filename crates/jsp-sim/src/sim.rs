//! The [`Simulator`]: a virtual clock, the nodes bound to their addresses, the links between
//! them, the installed middleboxes, and the event loop that drives it all deterministically.
//!
//! One event is processed per [`Simulator::step`]: a datagram arriving, a node's timer firing, or
//! an injected datagram. After any event that touches a node, the simulator drains the node's
//! `poll_transmit` into the links and reschedules its timer from `poll_timeout`. Nodes touched
//! through [`Simulator::node_mut`] or [`Simulator::wake`] are serviced the same way before the
//! next event.

use core::time::Duration;
use std::collections::BTreeMap;
use std::net::SocketAddr;

use jsp_proto::time::Instant;

use crate::capture::Capture;
use crate::event::{Event, EventQueue};
use crate::link::{Counter, Link, LinkConfig, LinkStats};
use crate::middlebox::{Middlebox, MiddleboxId, MiddleboxSlot, Scope};
use crate::node::{Datagram, Node, NodeId, NodeSlot};

/// How a simulation is set up.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// The seed every random choice derives from.
    pub seed: u64,
    /// The link configuration of every direction not given its own with
    /// [`Simulator::set_link`].
    pub default_link: LinkConfig,
    /// Whether datagrams in flight to a node's old address when it rebinds are still delivered
    /// to it (`true`), or dropped as [`Fate::AddressGone`](crate::Fate::AddressGone) (`false`,
    /// the default, like a NAT that forgot the old mapping).
    pub deliver_after_rebind: bool,
    /// Livelock guard: the simulator panics if more than this many events and transmitted
    /// datagrams happen without virtual time advancing.
    pub max_events_per_instant: u64,
    /// How many datagrams the [`Capture`] keeps; 0 disables capturing.
    pub capture_limit: usize,
}

impl SimConfig {
    /// The default livelock guard.
    pub const DEFAULT_MAX_EVENTS_PER_INSTANT: u64 = 100_000;
    /// The default capture size, in datagrams.
    pub const DEFAULT_CAPTURE_LIMIT: usize = 100_000;

    /// The default configuration with the given seed.
    pub fn with_seed(seed: u64) -> Self {
        SimConfig {
            seed,
            ..SimConfig::default()
        }
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 0,
            default_link: LinkConfig::default(),
            deliver_after_rebind: false,
            max_events_per_instant: Self::DEFAULT_MAX_EVENTS_PER_INSTANT,
            capture_limit: Self::DEFAULT_CAPTURE_LIMIT,
        }
    }
}

/// Why [`Simulator::run_while`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[must_use]
pub enum StopReason {
    /// The predicate returned `false`.
    PredicateFalse,
    /// The time limit was reached with the predicate still `true`; the clock is at the limit.
    Deadline,
    /// Nothing is scheduled, so nothing will ever change; the clock was left where it was.
    Idle,
}

/// Counters for the network as a whole (per-link counters are in [`LinkStats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Datagrams injected by middleboxes or [`Simulator::inject`].
    pub injected: Counter,
    /// Datagrams sent or injected to an address no node was bound to.
    pub unroutable: Counter,
    /// Events processed and datagrams transmitted so far.
    pub events: u64,
}

struct NodeEntry {
    slot: Box<dyn NodeSlot>,
    addr: SocketAddr,
    /// The timeout the node last asked for, which a pending timer event must match.
    timer: Option<Instant>,
    /// Touched outside an event: must be serviced before the next event.
    dirty: bool,
    /// Timers fire on the next multiple of this tick (a real runtime's timer wheel), if set.
    timer_tick: Option<Duration>,
}

struct MiddleboxEntry {
    scope: Scope,
    slot: Box<dyn MiddleboxSlot>,
}

/// A deterministic n-node datagram network on a virtual clock.
///
/// Build it from a [`SimConfig`], add nodes with [`add_node`](Self::add_node), configure links
/// with [`set_link`](Self::set_link), install [`Middlebox`]es, then drive it with
/// [`step`](Self::step), [`run_until`](Self::run_until) or [`run_while`](Self::run_while) and
/// inspect nodes with [`node`](Self::node), counters with [`link_stats`](Self::link_stats) and the
/// wire with [`capture`](Self::capture).
pub struct Simulator {
    config: SimConfig,
    now: Instant,
    nodes: Vec<NodeEntry>,
    by_addr: BTreeMap<SocketAddr, NodeId>,
    links: BTreeMap<(NodeId, NodeId), Link>,
    middleboxes: Vec<Option<MiddleboxEntry>>,
    events: EventQueue,
    capture: Capture,
    stats: SimStats,
    /// Events and transmissions since virtual time last advanced.
    events_this_instant: u64,
}

impl Simulator {
    /// An empty network at time zero.
    pub fn new(config: SimConfig) -> Self {
        Simulator {
            capture: Capture::new(config.capture_limit),
            config,
            now: Instant::ZERO,
            nodes: Vec::new(),
            by_addr: BTreeMap::new(),
            links: BTreeMap::new(),
            middleboxes: Vec::new(),
            events: EventQueue::default(),
            stats: SimStats::default(),
            events_this_instant: 0,
        }
    }

    /// The virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The configuration the simulator was built with (with any later default link applied).
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    // ---- nodes -------------------------------------------------------------------------------

    /// Adds a node bound to `addr`. It is serviced (transmit drained, timer read) before the next
    /// event, so a node may start sending right away.
    ///
    /// # Panics
    ///
    /// If another node is bound to `addr`.
    pub fn add_node<N: Node>(&mut self, addr: SocketAddr, node: N) -> NodeId {
        if let Some(other) = self.by_addr.get(&addr) {
            panic!("jsp-sim: cannot add a node at {addr}: {other} is bound there");
        }
        let id = NodeId(self.nodes.len());
        self.nodes.push(NodeEntry {
            slot: Box::new(node),
            addr,
            timer: None,
            dirty: true,
            timer_tick: None,
        });
        self.by_addr.insert(addr, id);
        id
    }

    /// How many nodes were added; their ids are `0..node_count()` in [`NodeId::index`] terms.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The address `id` is bound to.
    pub fn addr(&self, id: NodeId) -> SocketAddr {
        self.nodes[id.0].addr
    }

    /// The node bound to `addr`, if any.
    pub fn node_at(&self, addr: SocketAddr) -> Option<NodeId> {
        self.by_addr.get(&addr).copied()
    }

    /// The node `id` as its concrete type, or `None` if it is another type.
    pub fn try_node<T: Node>(&self, id: NodeId) -> Option<&T> {
        self.nodes.get(id.0)?.slot.as_any().downcast_ref()
    }

    /// The node `id` as its concrete type.
    ///
    /// # Panics
    ///
    /// If `id` is not a node of this simulator or is not a `T`.
    pub fn node<T: Node>(&self, id: NodeId) -> &T {
        self.try_node(id)
            .unwrap_or_else(|| panic!("jsp-sim: {id} is not a {}", core::any::type_name::<T>()))
    }

    /// Mutable access to node `id` as its concrete type, or `None` if it is another type. The
    /// node is serviced before the next event, as with [`wake`](Self::wake).
    pub fn try_node_mut<T: Node>(&mut self, id: NodeId) -> Option<&mut T> {
        let entry = self.nodes.get_mut(id.0)?;
        entry.dirty = true;
        entry.slot.as_any_mut().downcast_mut()
    }

    /// Mutable access to node `id` as its concrete type. The node is serviced before the next
    /// event, so whatever the caller makes it want to send goes out at the current time.
    ///
    /// # Panics
    ///
    /// If `id` is not a node of this simulator or is not a `T`.
    pub fn node_mut<T: Node>(&mut self, id: NodeId) -> &mut T {
        self.try_node_mut(id)
            .unwrap_or_else(|| panic!("jsp-sim: {id} is not a {}", core::any::type_name::<T>()))
    }

    /// Services node `id` (drains its transmit queue, re-reads its timeout) before the next event.
    pub fn wake(&mut self, id: NodeId) {
        self.nodes[id.0].dirty = true;
    }

    /// Makes node `id`'s timers fire late, on the next multiple of `tick` of virtual time, as a
    /// real runtime's do (tokio's timer wheel has a 1 ms resolution): the protocol must not
    /// depend on waking exactly when it asked. `None` restores exact timers.
    pub fn set_timer_tick(&mut self, id: NodeId, tick: Option<Duration>) {
        self.nodes[id.0].timer_tick = tick.filter(|t| !t.is_zero());
    }

    /// Moves node `id` to `addr` (NAT rebinding, a network change) and returns the old address.
    /// Datagrams it sends from now on carry the new source; datagrams in flight to the old
    /// address are dropped on arrival unless [`SimConfig::deliver_after_rebind`] is set; the old
    /// address is free for another node.
    ///
    /// # Panics
    ///
    /// If another node is bound to `addr`.
    pub fn rebind(&mut self, id: NodeId, addr: SocketAddr) -> SocketAddr {
        match self.by_addr.get(&addr) {
            Some(&other) if other == id => return addr,
            Some(other) => panic!("jsp-sim: cannot rebind {id} to {addr}: {other} is bound there"),
            None => {}
        }
        let old = core::mem::replace(&mut self.nodes[id.0].addr, addr);
        self.by_addr.remove(&old);
        self.by_addr.insert(addr, id);
        tracing::debug!(%id, %old, new = %addr, "rebind");
        old
    }

    // ---- links -------------------------------------------------------------------------------

    /// Configures the direction `from -> to`, overriding the default. Applies to datagrams sent
    /// from now on; the bottleneck queue and loss state carry over.
    pub fn set_link(&mut self, from: NodeId, to: NodeId, config: LinkConfig) {
        self.link_mut(from, to).config = Some(config);
    }

    /// Configures both directions between `a` and `b` alike.
    pub fn set_links(&mut self, a: NodeId, b: NodeId, config: LinkConfig) {
        self.set_link(b, a, config.clone());
        self.set_link(a, b, config);
    }

    /// Changes the configuration of every direction not configured with
    /// [`set_link`](Self::set_link).
    pub fn set_default_link(&mut self, config: LinkConfig) {
        self.config.default_link = config;
    }

    /// The configuration in force on the direction `from -> to`.
    pub fn link_config(&self, from: NodeId, to: NodeId) -> &LinkConfig {
        self.links
            .get(&(from, to))
            .and_then(|link| link.config.as_ref())
            .unwrap_or(&self.config.default_link)
    }

    /// The counters of the direction `from -> to` (all zero if it never carried anything).
    pub fn link_stats(&self, from: NodeId, to: NodeId) -> LinkStats {
        self.links
            .get(&(from, to))
            .map(|link| link.stats)
            .unwrap_or_default()
    }

    /// The counters of every direction that exists, ordered by `(from, to)`.
    pub fn all_link_stats(&self) -> impl Iterator<Item = ((NodeId, NodeId), LinkStats)> + '_ {
        self.links.iter().map(|(&key, link)| (key, link.stats))
    }

    /// Counters for the network as a whole.
    pub fn stats(&self) -> &SimStats {
        &self.stats
    }

    fn link_mut(&mut self, from: NodeId, to: NodeId) -> &mut Link {
        let seed = self.config.seed;
        self.links
            .entry((from, to))
            .or_insert_with(|| Link::new(seed, link_stream(from, to)))
    }

    // ---- middleboxes and injection -----------------------------------------------------------

    /// Installs a middlebox. Middleboxes covering a link see its datagrams in installation order.
    pub fn add_middlebox<M: Middlebox>(&mut self, scope: Scope, middlebox: M) -> MiddleboxId {
        self.middleboxes.push(Some(MiddleboxEntry {
            scope,
            slot: Box::new(middlebox),
        }));
        MiddleboxId(self.middleboxes.len() - 1)
    }

    /// Uninstalls a middlebox; returns whether it was installed.
    pub fn remove_middlebox(&mut self, id: MiddleboxId) -> bool {
        self.middleboxes
            .get_mut(id.0)
            .and_then(Option::take)
            .is_some()
    }

    /// The middlebox `id` as its concrete type, or `None` if removed or of another type.
    pub fn try_middlebox<M: Middlebox>(&self, id: MiddleboxId) -> Option<&M> {
        self.middleboxes
            .get(id.0)?
            .as_ref()?
            .slot
            .as_any()
            .downcast_ref()
    }

    /// The middlebox `id` as its concrete type.
    ///
    /// # Panics
    ///
    /// If it was removed or is not an `M`.
    pub fn middlebox<M: Middlebox>(&self, id: MiddleboxId) -> &M {
        self.try_middlebox(id).unwrap_or_else(|| {
            panic!(
                "jsp-sim: middlebox {} is not a {}",
                id.0,
                core::any::type_name::<M>()
            )
        })
    }

    /// Mutable access to the middlebox `id` as its concrete type.
    ///
    /// # Panics
    ///
    /// If it was removed or is not an `M`.
    pub fn middlebox_mut<M: Middlebox>(&mut self, id: MiddleboxId) -> &mut M {
        self.middleboxes
            .get_mut(id.0)
            .and_then(Option::as_mut)
            .and_then(|entry| entry.slot.as_any_mut().downcast_mut())
            .unwrap_or_else(|| {
                panic!(
                    "jsp-sim: middlebox {} is not a {}",
                    id.0,
                    core::any::type_name::<M>()
                )
            })
    }

    /// Delivers `datagram` to the node bound to its destination at time `at` (now, if earlier),
    /// bypassing links and middleboxes: a forged or replayed packet from an on-path attacker.
    pub fn inject(&mut self, at: Instant, datagram: Datagram) {
        self.events
            .push(at.max(self.now), Event::Inject { datagram });
    }

    /// The wire capture.
    pub fn capture(&self) -> &Capture {
        &self.capture
    }

    /// The wire capture, to clear it.
    pub fn capture_mut(&mut self) -> &mut Capture {
        &mut self.capture
    }
}

/// The random stream of the direction `from -> to`: distinct for every ordered pair.
fn link_stream(from: NodeId, to: NodeId) -> u64 {
    let from = u64::try_from(from.0).unwrap_or(u64::MAX);
    let to = u64::try_from(to.0).unwrap_or(u64::MAX);
    (from << 32) ^ to
}

impl core::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Simulator")
            .field("now", &self.now)
            .field("nodes", &self.by_addr)
            .field("pending_events", &self.events.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

mod drive;
mod path;
#[cfg(test)]
mod tests;
