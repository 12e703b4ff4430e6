//! Deterministic network simulator for JetStreamProto.
//!
//! This crate owns the simulated network the protocol's tests and loss benchmarks run on: a
//! virtual clock ([`jsp_proto::time::Instant`]), n sans-IO [`Node`]s bound to simulated socket
//! addresses, a configurable [`LinkConfig`] per direction (delay, jitter, bottleneck bandwidth
//! with a tail-drop queue, random or bursty loss, reordering, duplication, corruption, MTU),
//! man-in-the-middle [`Middlebox`]es, a wire [`Capture`] and per-link [`LinkStats`]. Every random
//! choice derives from [`SimConfig::seed`] and events at equal times run in scheduling order, so
//! a run replays exactly from its seed; [`for_each_seed`] runs a test over many seeds and prints
//! the one that fails. No real clock is read and nothing sleeps.
//!
//! ```
//! use core::time::Duration;
//! use jsp_proto::time::Instant;
//! use jsp_sim::toy::{Echo, Sender};
//! use jsp_sim::{LinkConfig, SimConfig, Simulator};
//!
//! let mut sim = Simulator::new(SimConfig::with_seed(7));
//! let server_addr = "10.0.0.2:4433".parse().unwrap();
//! let client = sim.add_node("10.0.0.1:4433".parse().unwrap(), Sender::new(server_addr, 3, 100));
//! let server = sim.add_node(server_addr, Echo::default());
//! sim.set_links(client, server, LinkConfig::with_delay(Duration::from_millis(20)));
//! sim.run_until(Instant::from_nanos(1_000_000_000));
//! // Three datagrams went out at time zero and came back one round trip later.
//! let echoed = &sim.node::<Sender>(client).received;
//! assert_eq!(echoed.len(), 3);
//! assert!(echoed.iter().all(|(at, _)| *at == Instant::from_nanos(40_000_000)));
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod capture;
pub mod engine;
mod event;
mod link;
mod loss;
mod middlebox;
mod node;
mod seed;
mod sim;
pub mod toy;

pub use capture::{Capture, CaptureRecord, Fate, Origin};
pub use engine::{EndpointNode, Pair};
pub use link::{Counter, LinkConfig, LinkStats};
pub use loss::LossModel;
pub use middlebox::{Injection, Middlebox, MiddleboxId, Recorder, Scope, Verdict};
pub use node::{Datagram, Node, NodeId};
pub use seed::{for_each_seed, seed_from_env, SEED_ENV};
pub use sim::{SimConfig, SimStats, Simulator, StopReason};
