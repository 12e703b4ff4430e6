//! Fuzz target `client_server_pair`: a real client and a real server (seeded providers) with the
//! network under the fuzzer's control: which in-flight datagrams are delivered, dropped,
//! duplicated, reordered or bit-flipped, when time advances, plus key updates, closes, migration
//! and NAT rebinding, optionally on a resumed (0-RTT) connection or behind Retry.
//!
//! The input is [`jsp_fuzz::pair::PairInput`], decoded through `arbitrary`. Invariants (see
//! [`jsp_fuzz::pair`]): no panic; the server's amplification limit per address before it could
//! have validated it (PROTOCOL.md §12.1); datagram sizes; no `poll_transmit` livelock; and the
//! stream the client writes comes back from the server's echo uncorrupted, in order and no
//! longer than written, whatever the network did to the packets.
#![no_main]

use jsp_fuzz::pair::{run, PairInput};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: PairInput| {
    run(&input);
});
