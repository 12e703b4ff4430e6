//! The library half of the `jsp` command-line tool.
//!
//! The binary (`src/main.rs`) parses the command line and prints; what other tools and later
//! subcommands (`jsp serve`) need to share lives here. Today that is [`keyfile`]: reading and
//! writing the `identity.key` / `identity.pub` files of a server identity.

pub mod keyfile;
