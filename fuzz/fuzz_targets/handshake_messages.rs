//! Fuzz target `handshake_messages`: the handshake message codec (PROTOCOL.md §7, §13.1) —
//! `peek_header`, the [`MessageReader`] that splits a crypto stream, `Message::decode`,
//! `RawMessage::parse` and every per-type body decoder through `Message::decode_body`.
//!
//! Invariants: the reader yields consecutive complete messages and reports what it consumed;
//! a message that decodes re-encodes (the encoders accept everything the decoders accept) to
//! bytes that decode to the same message, which also parse through the reader; a ClientHello
//! offering a PSK puts the binder in its last 32 bytes, as its layout says.
#![no_main]

use jsp_proto::wire::messages::{
    self, ClientHello, Message, MessageReader, MessageType, BINDER_LEN, HEADER_LEN,
};
use libfuzzer_sys::fuzz_target;

const TYPES: [MessageType; 8] = [
    MessageType::ClientHello,
    MessageType::ServerHello,
    MessageType::NewSessionTicket,
    MessageType::EncryptedExtensions,
    MessageType::Certificate,
    MessageType::CertificateRequest,
    MessageType::CertificateVerify,
    MessageType::Finished,
];

fn round_trip(m: &Message<'_>) {
    let mut buf = Vec::new();
    if let Err(e) = m.encode(&mut buf) {
        panic!("decoded {:?} does not re-encode: {e:?}", m.ty());
    }
    match Message::decode(&buf) {
        Ok(again) => assert_eq!(&again, m, "message does not round trip"),
        Err(e) => panic!("re-encoded {:?} does not decode: {e:?}", m.ty()),
    }
    let mut reader = MessageReader::new(&buf);
    match reader.next() {
        Some(Ok(raw)) => {
            assert_eq!(raw.ty, m.ty());
            assert_eq!(raw.raw, &buf[..]);
            assert_eq!(raw.parse().as_ref(), Ok(m));
        }
        other => panic!("re-encoded message does not read back: {other:?}"),
    }
    assert!(reader.next().is_none());
    assert_eq!(reader.consumed(), buf.len());
    if let Message::ClientHello(ch) = m {
        check_client_hello_layout(ch);
    }
}

fn check_client_hello_layout(ch: &ClientHello<'_>) {
    let mut buf = vec![0xee; 3];
    let Ok(layout) = ch.encode(&mut buf) else {
        panic!("ClientHello re-encode failed");
    };
    assert_eq!(layout.message, 3..buf.len(), "ClientHello layout range");
    match (ch.pre_shared_key, layout.binder_offset) {
        (Some(psk), Some(at)) => {
            assert_eq!(
                at + BINDER_LEN,
                buf.len(),
                "binder is not the last 32 bytes"
            );
            assert_eq!(buf[at..], psk.binder);
            let Some(truncated) = layout.truncated(&buf) else {
                panic!("no truncated ClientHello despite a PSK");
            };
            assert_eq!(
                Some(truncated),
                messages::truncated_client_hello(&buf[3..]),
                "truncated ClientHello disagrees"
            );
            let mut patched = buf.clone();
            if layout
                .patch_binder(&mut patched, &[0x5a; BINDER_LEN])
                .is_err()
            {
                panic!("patch_binder failed");
            }
            assert_eq!(patched[..at], buf[..at]);
        }
        (None, None) => {}
        (psk, at) => panic!("PSK {psk:?} but binder offset {at:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    // The stream reader over the whole input.
    let mut reader = MessageReader::new(data);
    let mut offset = 0;
    while let Some(item) = reader.next() {
        let Ok(raw) = item else {
            assert!(reader.next().is_none(), "reader continued after an error");
            break;
        };
        assert_eq!(
            raw.raw.as_ptr(),
            data[offset..].as_ptr(),
            "messages not consecutive"
        );
        assert_eq!(raw.raw.len(), raw.body.len() + HEADER_LEN);
        offset += raw.raw.len();
        assert_eq!(reader.consumed(), offset);
        if let Ok(m) = raw.parse() {
            assert_eq!(Message::decode(raw.raw).as_ref(), Ok(&m));
            round_trip(&m);
        }
    }
    // The whole input as one message.
    match messages::peek_header(data) {
        Ok(Some((_, total))) => assert!(total <= messages::MAX_MESSAGE_LEN),
        Ok(None) => assert!(data.len() < HEADER_LEN),
        Err(_) => {}
    }
    if let Ok(m) = Message::decode(data) {
        round_trip(&m);
    }
    // The whole input as the body of each type.
    for ty in TYPES {
        if let Ok(m) = Message::decode_body(ty, data) {
            assert_eq!(m.ty(), ty);
            round_trip(&m);
        }
    }
    let _ = messages::truncated_client_hello(data);
});
