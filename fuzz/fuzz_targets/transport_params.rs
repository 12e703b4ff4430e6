//! Fuzz target `transport_params`: transport parameter decoding (PROTOCOL.md §8) as sent by
//! either endpoint (`decode`, `decode_from` with `Sender::Client` and `Sender::Server`).
//!
//! Invariants: `decode_from(Server)` is `decode`; `decode_from(Client)` accepts a subset of it and
//! agrees where it accepts; accepted parameters pass `validate`, and re-encode to bytes that
//! decode (from the same sender) to equal parameters.
#![no_main]

use jsp_proto::wire::transport_params::{Sender, TransportParameters};
use libfuzzer_sys::fuzz_target;

fn round_trip(p: &TransportParameters, sender: Sender) {
    assert_eq!(p.validate(), Ok(()), "decoded parameters do not validate");
    let mut buf = Vec::new();
    p.encode(&mut buf);
    match TransportParameters::decode_from(&buf, sender) {
        Ok(again) => assert_eq!(&again, p, "parameters do not round trip"),
        Err(e) => panic!("re-encoded parameters do not decode from {sender:?}: {e:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let plain = TransportParameters::decode(data);
    let server = TransportParameters::decode_from(data, Sender::Server);
    let client = TransportParameters::decode_from(data, Sender::Client);
    assert_eq!(plain, server, "decode_from(Server) differs from decode");
    if let Ok(c) = &client {
        assert_eq!(
            plain.as_ref().ok(),
            Some(c),
            "client parameters accepted only from a client"
        );
        round_trip(c, Sender::Client);
    }
    if let Ok(p) = &plain {
        let _ = p.validate().map_err(|e| e.code());
        round_trip(p, Sender::Server);
    }
    if let Err(e) = &plain {
        let _ = e.code();
    }
});
