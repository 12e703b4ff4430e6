//! jsp-bench: measures JetStreamProto beside quinn, TCP + TLS 1.3, plain TCP
//! and plain UDP on the same machine, in the same run, and reports medians,
//! ranges and ratios (see docs/BENCHMARKS.md).
//!
//! Servers run in child processes ([`child`]); the scenarios
//! ([`scenarios`]) are written once against the [`peers`] interface and
//! driven by the [`runner`]; [`report`] and [`svg`] present the results.

pub mod child;
pub mod latency;
pub mod lossy;
pub mod machine;
pub mod model;
pub mod peers;
pub mod plan;
pub mod report;
pub mod runner;
pub mod scenarios;
pub mod serve;
pub mod svg;
