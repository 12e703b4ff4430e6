//! What the simulator drives: the [`Node`] trait, the [`Datagram`] it exchanges and the
//! [`NodeId`] that names a node.
//!
//! A node is a sans-IO state machine (a protocol endpoint behind an adapter, or a toy node in a
//! test). The simulator feeds it datagrams and timeouts at virtual times and drains what it wants
//! to send. The private `NodeSlot` trait gives the simulator typed access to stored nodes without
//! requiring trait-object upcasting.

use core::any::Any;
use core::fmt;
use std::net::SocketAddr;

use jsp_proto::time::Instant;

/// One UDP datagram on the simulated network.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Datagram {
    /// Source address. For datagrams a node sends, the simulator overwrites it with the node's
    /// bound address; middleboxes and [`Simulator::inject`](crate::Simulator::inject) may spoof it.
    pub src: SocketAddr,
    /// Destination address: the bound address of the node it is for.
    pub dst: SocketAddr,
    /// The UDP payload.
    pub payload: Vec<u8>,
}

impl Datagram {
    /// Builds a datagram.
    pub fn new(src: SocketAddr, dst: SocketAddr, payload: Vec<u8>) -> Self {
        Datagram { src, dst, payload }
    }
}

/// A participant in the simulation, driven the same way a real driver drives a sans-IO engine.
///
/// After every event that touches a node (a delivery, a timeout, or mutable access through
/// [`Simulator::node_mut`](crate::Simulator::node_mut)), the simulator calls
/// [`poll_transmit`](Node::poll_transmit) until it returns `None` and then reads
/// [`poll_timeout`](Node::poll_timeout) once.
pub trait Node: Any {
    /// A datagram arrived for this node's address.
    fn handle_datagram(&mut self, now: Instant, datagram: Datagram);

    /// The next datagram this node wants to send, or `None` when it has nothing more for now.
    ///
    /// `src` may be left as anything: the simulator overwrites it with the node's bound address.
    fn poll_transmit(&mut self, now: Instant) -> Option<Datagram>;

    /// When the node next wants [`handle_timeout`](Node::handle_timeout) to be called, if ever.
    fn poll_timeout(&mut self) -> Option<Instant>;

    /// The time returned by the last [`poll_timeout`](Node::poll_timeout) has been reached; `now`
    /// is never earlier than it.
    fn handle_timeout(&mut self, now: Instant);
}

/// Names a node in one [`Simulator`](crate::Simulator): the order in which nodes were added,
/// starting at zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub(crate) usize);

impl NodeId {
    /// The node's position in the order nodes were added (0 for the first).
    pub fn index(self) -> usize {
        self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node{}", self.0)
    }
}

/// A stored node: the [`Node`] interface plus `Any` views for typed access.
pub(crate) trait NodeSlot {
    fn node(&mut self) -> &mut dyn Node;
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<N: Node> NodeSlot for N {
    fn node(&mut self) -> &mut dyn Node {
        self
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}
