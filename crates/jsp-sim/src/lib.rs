//! Deterministic network simulator for JetStreamProto.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
