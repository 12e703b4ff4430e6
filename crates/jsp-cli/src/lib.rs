//! The library half of the `jsp` command-line tool.
//!
//! The binary (`src/main.rs`) parses the command line and prints; the work lives here, one job
//! per module:
//!
//! | module | job |
//! |---|---|
//! | [`keyfile`] | the `identity.key` / `identity.pub` files |
//! | [`client`] | connecting with a pinned key over UDP, TCP or WebSocket, and closing |
//! | [`interactive`] | `jsp connect`: standard input to a stream, replies to standard output |
//! | [`protocol`] | how the server tells the application protocols on its streams apart |
//! | [`transfer`] | the resumable, verified file transfer of `jsp send` and `serve --files` |
//! | [`bench`] | the throughput and latency protocol of `jsp bench` |
//! | [`serve`] | what `jsp serve` does with connections: echo, files, bench |
//! | [`server_config`] | `jsp serve`'s flags over its TOML config file |
//! | [`listen`] | starting the server ([`jsp::Server`]) and explaining bind failures |
//! | [`demo`] | `jsp demo` |
//! | [`progress`], [`units`], [`clock`], [`logging`], [`error`] | progress bars, sizes and rates, the stopwatch, logs, error messages |

pub mod bench;
pub mod client;
pub mod clock;
pub mod demo;
pub mod error;
pub mod interactive;
pub mod keyfile;
pub mod listen;
pub mod logging;
pub mod progress;
pub mod protocol;
pub mod serve;
pub mod server_config;
pub mod transfer;
pub mod units;

pub use error::CliError;
