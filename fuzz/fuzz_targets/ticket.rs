//! Fuzz target `ticket`: opening arbitrary bytes as a sealed session ticket (PROTOCOL.md §13.1,
//! §13.2) at a server whose ticket key is fixed (seeded).
//!
//! The server state seals the tickets of `jsp_fuzz::tickets::sealed` first (the seed corpus holds
//! them), so mutations of real tickets are tried. Invariants: opening never panics, at several
//! ages; it succeeds only for a ticket this state sealed, byte for byte (anything else must fail
//! cleanly: AEAD forgery is out of a fuzzer's reach), and then returns the sealed state; a ticket
//! accepted once is refused as a replay the second time.
#![no_main]

use jsp_fuzz::tickets::{self, TicketWorld};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut w = TicketWorld::new();
    for (now, age) in tickets::probes(&w) {
        if let Ok(state) = w.open(now, data, age) {
            let Some(expected) = w.sealed_state(data) else {
                panic!(
                    "a ticket the server never sealed opened ({} bytes)",
                    data.len()
                );
            };
            assert_eq!(state.issued_at, expected.issued_at);
            assert_eq!(state.lifetime, expected.lifetime);
            assert_eq!(state.age_add, expected.age_add);
            assert_eq!(state.max_early_data, expected.max_early_data);
            assert_eq!(state.psk.as_bytes(), expected.psk.as_bytes());
            assert_eq!(state.client, expected.client);
        }
    }
    let (now, age) = tickets::fresh_probe(&w, data);
    if w.accept(now, data, age).is_ok() {
        assert!(
            w.accept(now, data, age).is_err(),
            "a ticket was accepted twice (anti-replay, PROTOCOL.md §13.3)"
        );
    }
});
