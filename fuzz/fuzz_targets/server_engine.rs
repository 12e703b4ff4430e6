//! Fuzz target `server_engine`: one server [`jsp_proto::Endpoint`] fed arbitrary datagrams from
//! a few addresses and arbitrary clock steps (PROTOCOL.md §3, §4, §12, §13).
//!
//! The input ([`jsp_fuzz::server::ServerInput`], decoded through `arbitrary`) mixes raw datagrams
//! with datagrams of a real client flight recorded once per process (full handshake with stream
//! and datagram echo, then a resumed connection with 0-RTT), optionally mutated and sent from
//! another address; because the providers are seeded the recorded packets authenticate at this
//! server when replayed in order. Invariants (checked by [`jsp_fuzz::server::ServerHarness`]):
//! no panic; the server sends only to addresses it heard from and, to each address not yet
//! possibly validated, at most three times what it received from it (§12.1); every datagram is
//! within its max_udp_payload_size; the connection cap holds; `poll_transmit` does not livelock.
#![no_main]

use jsp_fuzz::server::{run, ServerInput};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: ServerInput| {
    run(&input);
});
