//! Man-in-the-middle hooks: the [`Middlebox`] trait, where one is installed ([`Scope`]), and a
//! ready-made [`Recorder`] for replay attacks.
//!
//! A middlebox sees every datagram entering a link it is installed on, before the link's MTU
//! check, queue and loss. It may rewrite the datagram in place, drop it, keep a copy, and inject
//! datagrams of its own (delivered straight to the node bound to their destination, bypassing
//! links and middleboxes). Any `FnMut(Instant, &mut Datagram) -> Verdict` closure is a middlebox.

use jsp_proto::time::Instant;

use crate::node::{Datagram, NodeId};

/// What a middlebox decides for a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[must_use]
pub enum Verdict {
    /// Let it continue into the link (possibly rewritten).
    Forward,
    /// Drop it; later middleboxes do not see it.
    Drop,
}

/// A datagram a middlebox wants delivered at a given time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Injection {
    /// When to deliver it (the current time if earlier).
    pub at: Instant,
    /// The datagram, with whatever source address the attacker chooses.
    pub datagram: Datagram,
}

/// An on-path element that can observe, rewrite, drop and inject datagrams.
pub trait Middlebox: 'static {
    /// A datagram is entering a link this middlebox is installed on. `datagram` may be modified
    /// in place; changing `dst` re-routes it to the node bound to the new address.
    fn on_datagram(&mut self, now: Instant, datagram: &mut Datagram) -> Verdict;

    /// Datagrams to inject, polled until `None` after every call to
    /// [`on_datagram`](Middlebox::on_datagram). The default injects nothing.
    fn poll_inject(&mut self, now: Instant) -> Option<Injection> {
        let _ = now;
        None
    }
}

impl<F> Middlebox for F
where
    F: FnMut(Instant, &mut Datagram) -> Verdict + 'static,
{
    fn on_datagram(&mut self, now: Instant, datagram: &mut Datagram) -> Verdict {
        self(now, datagram)
    }
}

/// Where a middlebox is installed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// On every link direction.
    Global,
    /// On the direction from the first node to the second.
    Link(NodeId, NodeId),
}

impl Scope {
    pub(crate) fn covers(self, from: NodeId, to: NodeId) -> bool {
        match self {
            Scope::Global => true,
            Scope::Link(a, b) => a == from && b == to,
        }
    }
}

/// Names an installed middlebox in one [`Simulator`](crate::Simulator).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MiddleboxId(pub(crate) usize);

/// A middlebox that forwards everything and keeps a copy of each datagram with the time it saw
/// it: the first half of a replay attack (the second is
/// [`Simulator::inject`](crate::Simulator::inject)).
#[derive(Clone, Debug, Default)]
pub struct Recorder {
    /// Every datagram seen, oldest first.
    pub seen: Vec<(Instant, Datagram)>,
}

impl Middlebox for Recorder {
    fn on_datagram(&mut self, now: Instant, datagram: &mut Datagram) -> Verdict {
        self.seen.push((now, datagram.clone()));
        Verdict::Forward
    }
}

/// A stored middlebox: the [`Middlebox`] interface plus `Any` views for typed access.
pub(crate) trait MiddleboxSlot {
    fn middlebox(&mut self) -> &mut dyn Middlebox;
    fn as_any(&self) -> &dyn core::any::Any;
    fn as_any_mut(&mut self) -> &mut dyn core::any::Any;
}

impl<M: Middlebox> MiddleboxSlot for M {
    fn middlebox(&mut self) -> &mut dyn Middlebox {
        self
    }
    fn as_any(&self) -> &dyn core::any::Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn core::any::Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_covers_its_direction_only() {
        let (a, b) = (NodeId(0), NodeId(1));
        assert!(Scope::Global.covers(a, b));
        assert!(Scope::Link(a, b).covers(a, b));
        assert!(!Scope::Link(a, b).covers(b, a));
    }
}
