//! Shared harness of the JetStreamProto fuzz targets: the byte-level input format of the
//! structure-aware targets ([`input`]), the fixed world they run in (seeded providers, configs and
//! addresses, [`world`]), the server-side driver with its amplification accounting and the
//! recorded real client flight ([`server`]), and the two-endpoint driver of `client_server_pair`
//! ([`pair`]).
//!
//! Everything here is deterministic: the same input replays the same run byte for byte, which is
//! what lets a recorded client flight authenticate at a freshly built server and lets libFuzzer
//! mutate close to valid packets. Panics in this crate are invariant violations the targets exist
//! to find; nothing derived from fuzz input is unwrapped.

pub mod input;
pub mod pair;
pub mod server;
pub mod tickets;
pub mod world;
