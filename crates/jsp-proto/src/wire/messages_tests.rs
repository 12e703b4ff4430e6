//! Tests of the handshake message codec: pinned layouts, every rejection rule, and property tests.

use super::*;
use proptest::prelude::*;

fn hello<'a>(share: &'a [u8], tp: &'a [u8]) -> ClientHello<'a> {
    ClientHello {
        random: [0x11; 32],
        versions: ShortList::from_slice(&[0x4A53_5001]).unwrap(),
        cipher_suites: ShortList::from_slice(&[1, 2]).unwrap(),
        key_share: KeyShare {
            group: GROUP_X25519_MLKEM768,
            share,
        },
        server_name: None,
        transport_parameters: tp,
        early_data: false,
        pre_shared_key: None,
        previous_version: None,
    }
}

fn encode_msg(m: &Message<'_>) -> Vec<u8> {
    let mut buf = Vec::new();
    m.encode(&mut buf).unwrap();
    buf
}

/// A ClientHello body with the given extension block (after the fixed fields).
fn hello_body_with_exts(exts: &[(u16, &[u8])]) -> Vec<u8> {
    let mut body = vec![0x11; 32];
    body.extend_from_slice(&[1, 0x4a, 0x53, 0x50, 0x01, 1, 0, 1]);
    body.extend_from_slice(&[0, 1, 0, 2, 0xaa, 0xbb]);
    let mut block = Vec::new();
    for (ty, data) in exts {
        block.extend_from_slice(&ty.to_be_bytes());
        block.extend_from_slice(&u16::try_from(data.len()).unwrap().to_be_bytes());
        block.extend_from_slice(data);
    }
    body.extend_from_slice(&u16::try_from(block.len()).unwrap().to_be_bytes());
    body.extend_from_slice(&block);
    body
}

fn psk_data() -> Vec<u8> {
    let mut d = vec![0, 3, 7, 7, 7, 0, 0, 0, 9];
    d.extend_from_slice(&[0xbb; 32]);
    d
}

#[test]
fn client_hello_pinned_bytes() {
    let mut buf = Vec::new();
    let layout = hello(&[0xaa, 0xbb], &[0x01, 0x01, 0x00])
        .encode(&mut buf)
        .unwrap();
    let mut expected = vec![1, 0, 0, 57];
    expected.extend_from_slice(&[0x11; 32]);
    expected.extend_from_slice(&[1, 0x4a, 0x53, 0x50, 0x01]); // versions
    expected.extend_from_slice(&[2, 0, 1, 0, 2]); // suites
    expected.extend_from_slice(&[0, 1, 0, 2, 0xaa, 0xbb]); // key share
    expected.extend_from_slice(&[0, 7, 0, 1, 0, 3, 0x01, 0x01, 0x00]); // extensions
    assert_eq!(buf, expected);
    assert_eq!(layout.message, 0..buf.len());
    assert_eq!(layout.binder_offset, None);
    assert_eq!(layout.truncated(&buf), None);
    let Message::ClientHello(ch) = Message::decode(&buf).unwrap() else {
        panic!()
    };
    assert_eq!(ch, hello(&[0xaa, 0xbb], &[0x01, 0x01, 0x00]));
    assert_eq!(&*ch.versions, &[0x4A53_5001]);
}

#[test]
fn client_hello_binder_placeholder_and_patch() {
    let mut ch = hello(&[0xaa; 8], b"tp");
    ch.server_name = Some("example.com");
    ch.early_data = true;
    ch.previous_version = Some(0x1a2a3a4a);
    ch.pre_shared_key = Some(PreSharedKey {
        identity: b"ticket",
        obfuscated_ticket_age: 1234,
        binder: [0; 32],
    });
    let mut buf = vec![0xff; 5]; // something before, to exercise absolute offsets
    let layout = ch.encode(&mut buf).unwrap();
    assert_eq!(layout.message, 5..buf.len());
    assert_eq!(layout.binder_offset, Some(buf.len() - 32));
    let truncated = layout.truncated(&buf).unwrap().to_vec();
    assert_eq!(truncated.len(), buf.len() - 5 - 32);
    layout.patch_binder(&mut buf, &[0x42; 32]).unwrap();
    let raw = &buf[5..];
    assert_eq!(truncated_client_hello(raw), Some(&truncated[..]));
    assert_eq!(&raw[raw.len() - 32..], &[0x42; 32]);
    let Message::ClientHello(got) = Message::decode(raw).unwrap() else {
        panic!()
    };
    let psk = got.pre_shared_key.unwrap();
    assert_eq!(psk.binder, [0x42; 32]);
    assert_eq!(psk.identity, b"ticket");
    assert_eq!(psk.obfuscated_ticket_age, 1234);
    assert_eq!(got.server_name, Some("example.com"));
    assert!(got.early_data);
    assert_eq!(got.previous_version, Some(0x1a2a3a4a));
}

#[test]
fn client_hello_rejections() {
    use MessageError::*;
    let psk = psk_data();
    let tp: (u16, &[u8]) = (ext::TRANSPORT_PARAMETERS, b"tp");
    let ok = hello_body_with_exts(&[tp]);
    assert!(ClientHello::decode(&ok).is_ok());

    // Counts 0 and 17.
    let mut b = ok.clone();
    b[32] = 0;
    assert!(matches!(ClientHello::decode(&b), Err(Decode(_))));
    let mut b = ok[..32].to_vec();
    b.push(17);
    b.extend_from_slice(&[0; 68]);
    b.extend_from_slice(&ok[37..]);
    assert!(matches!(ClientHello::decode(&b), Err(Decode(_))));
    let mut b = ok.clone();
    b[37] = 0; // suite count
    assert!(matches!(ClientHello::decode(&b), Err(Decode(_))));

    // Duplicates, known and unknown.
    let b = hello_body_with_exts(&[tp, tp]);
    assert_eq!(ClientHello::decode(&b), Err(DuplicateExtension(1)));
    let b = hello_body_with_exts(&[(0x7777, b""), tp, (0x7777, b"x")]);
    assert_eq!(ClientHello::decode(&b), Err(DuplicateExtension(0x7777)));
    // Unknown extensions are ignored.
    let b = hello_body_with_exts(&[(0xffff, b"grease"), tp]);
    assert!(ClientHello::decode(&b).is_ok());

    // pre_shared_key must be last.
    let b = hello_body_with_exts(&[(ext::PRE_SHARED_KEY, &psk), tp]);
    assert_eq!(ClientHello::decode(&b), Err(PskNotLast));
    let b = hello_body_with_exts(&[tp, (ext::PRE_SHARED_KEY, &psk), (0xffff, b"")]);
    assert_eq!(ClientHello::decode(&b), Err(PskNotLast));
    let b = hello_body_with_exts(&[tp, (ext::PRE_SHARED_KEY, &psk)]);
    assert!(ClientHello::decode(&b).unwrap().pre_shared_key.is_some());
    // A PSK with trailing bytes or an empty identity.
    let mut long_psk = psk.clone();
    long_psk.push(0);
    let b = hello_body_with_exts(&[tp, (ext::PRE_SHARED_KEY, &long_psk)]);
    assert!(matches!(ClientHello::decode(&b), Err(Decode(_))));
    let mut empty_id = vec![0, 0, 0, 0, 0, 9];
    empty_id.extend_from_slice(&[0; 32]);
    let b = hello_body_with_exts(&[tp, (ext::PRE_SHARED_KEY, &empty_id)]);
    assert!(matches!(ClientHello::decode(&b), Err(Decode(_))));

    // early_data without pre_shared_key, or with data.
    let b = hello_body_with_exts(&[tp, (ext::EARLY_DATA, b"")]);
    assert_eq!(ClientHello::decode(&b), Err(EarlyDataWithoutPsk));
    let b = hello_body_with_exts(&[tp, (ext::EARLY_DATA, b"x"), (ext::PRE_SHARED_KEY, &psk)]);
    assert!(matches!(ClientHello::decode(&b), Err(Decode(_))));
    let b = hello_body_with_exts(&[tp, (ext::EARLY_DATA, b""), (ext::PRE_SHARED_KEY, &psk)]);
    assert!(ClientHello::decode(&b).unwrap().early_data);

    // transport_parameters is required.
    let b = hello_body_with_exts(&[]);
    assert!(matches!(ClientHello::decode(&b), Err(Decode(_))));

    // server_name: empty, too long, not UTF-8.
    for name in [&b""[..], &[b'a'; 256][..], &[0xff, 0xfe][..]] {
        let b = hello_body_with_exts(&[tp, (ext::SERVER_NAME, name)]);
        assert!(
            matches!(ClientHello::decode(&b), Err(Decode(_))),
            "{name:?}"
        );
    }
    // previous_version must be exactly 4 bytes.
    let b = hello_body_with_exts(&[tp, (ext::PREVIOUS_VERSION, &[0, 0, 1])]);
    assert!(matches!(ClientHello::decode(&b), Err(Decode(_))));

    // Trailing bytes after the extensions.
    let mut b = ok.clone();
    b.push(0);
    assert_eq!(
        ClientHello::decode(&b),
        Err(Decode("message: trailing bytes"))
    );
    // Truncation anywhere.
    for n in 0..ok.len() {
        assert!(ClientHello::decode(&ok[..n]).is_err(), "{n}");
    }

    // A key share above the cap.
    let big = vec![0; MAX_KEY_SHARE_LEN + 1];
    let mut buf = Vec::new();
    let mut ch = hello(&big, b"tp");
    assert!(ch.encode(&mut buf).is_err());
    assert!(buf.is_empty());
    let mut b = vec![0x11; 32];
    b.extend_from_slice(&[1, 0, 0, 0, 1, 1, 0, 1, 0, 1, 0x10, 0x01]);
    b.extend_from_slice(&big);
    b.extend_from_slice(&[0, 0]);
    assert_eq!(
        ClientHello::decode(&b),
        Err(IllegalParameter("key share length"))
    );

    // Encoder rejections leave the buffer unchanged.
    ch.key_share.share = b"s";
    ch.early_data = true;
    assert!(ch.encode(&mut buf).is_err());
    ch.early_data = false;
    ch.versions = ShortList::new();
    assert!(ch.encode(&mut buf).is_err());
    ch.versions = ShortList::from_slice(&[1]).unwrap();
    ch.server_name = Some("");
    assert!(ch.encode(&mut buf).is_err());
    assert!(buf.is_empty());
    assert!(ShortList::from_slice(&[0u16; 17]).is_err());
}

#[test]
fn server_hello() {
    let sh = ServerHello {
        random: [2; 32],
        version: 0x4A53_5001,
        cipher_suite: 2,
        key_share: KeyShare {
            group: GROUP_X25519_MLKEM768,
            share: &[9, 9],
        },
        psk_accepted: true,
    };
    let buf = encode_msg(&Message::ServerHello(sh));
    let mut expected = vec![2, 0, 0, 50];
    expected.extend_from_slice(&[2; 32]);
    expected.extend_from_slice(&[0x4a, 0x53, 0x50, 0x01, 0, 2, 0, 1, 0, 2, 9, 9]);
    expected.extend_from_slice(&[0, 4, 0, 3, 0, 0]);
    assert_eq!(buf, expected);
    assert_eq!(Message::decode(&buf), Ok(Message::ServerHello(sh)));
    // pre_shared_key with data, and a ClientHello-only extension.
    let mut bad = buf.clone();
    let n = bad.len();
    bad[n - 4..].copy_from_slice(&[0, 3, 0, 1]);
    bad.push(0);
    bad[3] += 1;
    bad[n - 5] += 1;
    assert!(matches!(
        Message::decode(&bad),
        Err(MessageError::Decode(_))
    ));
    let mut bad = buf.clone();
    bad[n - 3] = 1; // transport_parameters
    assert_eq!(
        Message::decode(&bad),
        Err(MessageError::UnexpectedExtension(1))
    );
}

#[test]
fn encrypted_extensions() {
    let ee = EncryptedExtensions {
        transport_parameters: &[1, 2, 3],
        early_data: true,
    };
    let buf = encode_msg(&Message::EncryptedExtensions(ee));
    assert_eq!(buf, [8, 0, 0, 13, 0, 11, 0, 1, 0, 3, 1, 2, 3, 0, 2, 0, 0]);
    assert_eq!(Message::decode(&buf), Ok(Message::EncryptedExtensions(ee)));
    assert!(matches!(
        EncryptedExtensions::decode(&[0, 0]),
        Err(MessageError::Decode(_))
    ));
    assert_eq!(
        EncryptedExtensions::decode(&[0, 8, 0, 1, 0, 0, 0, 3, 0, 0]),
        Err(MessageError::UnexpectedExtension(3))
    );
}

#[test]
fn certificate_messages() {
    let none = encode_msg(&Message::Certificate(CertificateMsg::NONE));
    assert_eq!(none, [11, 0, 0, 3, 0, 0, 0]);
    let Message::Certificate(c) = Message::decode(&none).unwrap() else {
        panic!()
    };
    assert!(c.is_none());
    let rpk = CertificateMsg {
        kind: CertificateKind::RawPublicKey,
        data: &[1; 33],
    };
    let buf = encode_msg(&Message::Certificate(rpk));
    assert_eq!(&buf[..7], &[11, 0, 0, 36, 0, 0, 33]);
    assert_eq!(Message::decode(&buf), Ok(Message::Certificate(rpk)));
    assert!(matches!(
        CertificateMsg::decode(&[2, 0, 0]),
        Err(MessageError::Decode(_))
    ));
    assert!(matches!(
        CertificateMsg::decode(&[1, 0, 0]),
        Err(MessageError::Decode(_))
    ));
    let empty_cert = CertificateMsg {
        kind: CertificateKind::Certificate,
        data: &[],
    };
    assert!(empty_cert.encode(&mut Vec::new()).is_err());

    let mut buf = Vec::new();
    CertificateRequest::default().encode(&mut buf);
    assert_eq!(buf, [13, 0, 0, 1, 0]);
    assert_eq!(
        Message::decode(&buf),
        Ok(Message::CertificateRequest(CertificateRequest { flags: 0 }))
    );
    assert!(CertificateRequest::decode(&[0, 0]).is_err());
    assert!(CertificateRequest::decode(&[]).is_err());

    let cv = CertificateVerify {
        scheme: SCHEME_ED25519,
        signature: &[5; 64],
    };
    let buf = encode_msg(&Message::CertificateVerify(cv));
    assert_eq!(&buf[..8], &[15, 0, 0, 68, 0x08, 0x07, 0, 64]);
    assert_eq!(Message::decode(&buf), Ok(Message::CertificateVerify(cv)));

    let fin = Finished {
        verify_data: [7; 32],
    };
    let mut buf = Vec::new();
    fin.encode(&mut buf);
    assert_eq!(&buf[..4], &[20, 0, 0, 32]);
    assert_eq!(Message::decode(&buf), Ok(Message::Finished(fin)));
    assert!(Finished::decode(&[0; 31]).is_err());
    assert!(Finished::decode(&[0; 33]).is_err());
}

#[test]
fn new_session_ticket() {
    let nst = NewSessionTicket {
        lifetime: MAX_TICKET_LIFETIME,
        age_add: 0xdead_beef,
        nonce: &[1, 2],
        ticket: &[3; 5],
        max_early_data: Some(16384),
    };
    let buf = encode_msg(&Message::NewSessionTicket(nst));
    let mut expected = vec![4, 0, 0, 28, 0x00, 0x09, 0x3a, 0x80, 0xde, 0xad, 0xbe, 0xef];
    expected.extend_from_slice(&[2, 1, 2, 0, 5, 3, 3, 3, 3, 3]);
    expected.extend_from_slice(&[0, 8, 0, 2, 0, 4, 0, 0, 0x40, 0x00]);
    assert_eq!(buf, expected);
    assert_eq!(Message::decode(&buf), Ok(Message::NewSessionTicket(nst)));
    let mut bad = buf.clone();
    bad[7] = 0x81; // lifetime 7 days + 1 s
    assert_eq!(
        Message::decode(&bad),
        Err(MessageError::IllegalParameter("ticket lifetime"))
    );
    assert!(NewSessionTicket {
        lifetime: MAX_TICKET_LIFETIME + 1,
        ..nst
    }
    .encode(&mut Vec::new())
    .is_err());
    assert!(NewSessionTicket { ticket: &[], ..nst }
        .encode(&mut Vec::new())
        .is_err());
    assert!(matches!(
        NewSessionTicket::decode(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        Err(MessageError::Decode(_))
    ));
}

#[test]
fn message_reader_splits_and_limits() {
    let mut stream = Vec::new();
    Finished {
        verify_data: [1; 32],
    }
    .encode(&mut stream);
    CertificateRequest::default().encode(&mut stream);
    let complete = stream.len();
    stream.extend_from_slice(&[20, 0, 0, 32, 1, 2]); // incomplete Finished
    let mut reader = MessageReader::new(&stream);
    let first = reader.next().unwrap().unwrap();
    assert_eq!(first.ty, MessageType::Finished);
    assert_eq!(first.raw.len(), 36);
    assert_eq!(first.body.len(), 32);
    assert!(matches!(first.parse(), Ok(Message::Finished(_))));
    let second = reader.next().unwrap().unwrap();
    assert_eq!(second.ty, MessageType::CertificateRequest);
    assert_eq!(reader.next(), None);
    assert_eq!(reader.consumed(), complete);
    // Fewer than 4 bytes: nothing yet.
    assert_eq!(MessageReader::new(&[20, 0, 0]).next(), None);
    assert_eq!(peek_header(&[20, 0]), Ok(None));

    // Unknown type and oversized length fail as soon as the header is there.
    let mut reader = MessageReader::new(&[3, 0, 0, 1]);
    assert_eq!(reader.next(), Some(Err(MessageError::UnexpectedMessage(3))));
    assert_eq!(reader.next(), None);
    let too_big = MAX_MESSAGE_LEN - HEADER_LEN + 1;
    let header = [11, 0, (too_big >> 8) as u8, too_big as u8];
    assert_eq!(
        MessageReader::new(&header).next(),
        Some(Err(MessageError::TooLarge(MAX_MESSAGE_LEN + 1)))
    );
    let max = MAX_MESSAGE_LEN - HEADER_LEN;
    assert_eq!(
        peek_header(&[11, 0, (max >> 8) as u8, max as u8]),
        Ok(Some((MessageType::Certificate, MAX_MESSAGE_LEN)))
    );

    // Message::decode wants exactly one message.
    let mut two = stream[..complete].to_vec();
    assert!(matches!(
        Message::decode(&two),
        Err(MessageError::Decode(_))
    ));
    two.truncate(35);
    assert!(matches!(
        Message::decode(&two),
        Err(MessageError::Decode(_))
    ));
}

#[test]
fn oversized_messages_are_not_encoded() {
    let data = vec![0; MAX_MESSAGE_LEN];
    let cert = CertificateMsg {
        kind: CertificateKind::Certificate,
        data: &data[..MAX_MESSAGE_LEN - 7],
    };
    let mut buf = Vec::new();
    cert.encode(&mut buf).unwrap();
    assert_eq!(buf.len(), MAX_MESSAGE_LEN);
    let cert = CertificateMsg {
        kind: CertificateKind::Certificate,
        data: &data[..MAX_MESSAGE_LEN - 6],
    };
    let mut buf = vec![1];
    assert!(matches!(
        cert.encode(&mut buf),
        Err(EncodeError::TooLong { .. })
    ));
    assert_eq!(buf, [1]);
}

#[test]
fn error_codes() {
    assert_eq!(MessageError::UnexpectedMessage(3).code(), 0x100 + 10);
    assert_eq!(MessageError::Decode("x").code(), 0x100 + 50);
    assert_eq!(MessageError::DuplicateExtension(1).code(), 0x100 + 47);
    assert_eq!(MessageError::PskNotLast.alert(), Some(47));
    assert_eq!(MessageError::TooLarge(20000).alert(), None);
    assert_eq!(MessageError::TooLarge(20000).code(), 0x0d);
}

// ---------------------------------------------------------------------------------------------
// Property tests

#[derive(Clone, Debug)]
struct HelloSpec {
    random: [u8; 32],
    versions: Vec<u32>,
    suites: Vec<u16>,
    group: u16,
    share: Vec<u8>,
    server_name: Option<String>,
    tp: Vec<u8>,
    psk: Option<(Vec<u8>, u32, [u8; 32], bool)>,
    previous_version: Option<u32>,
}

impl HelloSpec {
    fn hello(&self) -> ClientHello<'_> {
        ClientHello {
            random: self.random,
            versions: ShortList::from_slice(&self.versions).unwrap(),
            cipher_suites: ShortList::from_slice(&self.suites).unwrap(),
            key_share: KeyShare {
                group: self.group,
                share: &self.share,
            },
            server_name: self.server_name.as_deref(),
            transport_parameters: &self.tp,
            early_data: self.psk.as_ref().is_some_and(|p| p.3),
            pre_shared_key: self.psk.as_ref().map(|(id, age, binder, _)| PreSharedKey {
                identity: id,
                obfuscated_ticket_age: *age,
                binder: *binder,
            }),
            previous_version: self.previous_version,
        }
    }
}

fn hello_spec() -> impl Strategy<Value = HelloSpec> {
    (
        any::<[u8; 32]>(),
        proptest::collection::vec(any::<u32>(), 1..=16),
        proptest::collection::vec(any::<u16>(), 1..=16),
        any::<u16>(),
        proptest::collection::vec(any::<u8>(), 0..1300),
        proptest::option::of("[a-z0-9.é-]{1,60}"),
        proptest::collection::vec(any::<u8>(), 0..200),
        proptest::option::of((
            proptest::collection::vec(any::<u8>(), 1..300),
            any::<u32>(),
            any::<[u8; 32]>(),
            any::<bool>(),
        )),
        proptest::option::of(any::<u32>()),
    )
        .prop_map(
            |(random, versions, suites, group, share, server_name, tp, psk, previous_version)| {
                HelloSpec {
                    random,
                    versions,
                    suites,
                    group,
                    share,
                    server_name,
                    tp,
                    psk,
                    previous_version,
                }
            },
        )
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

proptest! {
    #[test]
    fn client_hello_roundtrip(spec in hello_spec()) {
        let ch = spec.hello();
        let mut buf = Vec::new();
        let layout = ch.encode(&mut buf).unwrap();
        prop_assert_eq!(layout.message.clone(), 0..buf.len());
        let mut reader = MessageReader::new(&buf);
        let raw = reader.next().unwrap().unwrap();
        prop_assert_eq!(raw.raw, &buf[..]);
        prop_assert_eq!(raw.parse(), Ok(Message::ClientHello(ch)));
        if ch.pre_shared_key.is_some() {
            prop_assert_eq!(layout.truncated(&buf), truncated_client_hello(&buf));
        }
    }

    #[test]
    fn other_messages_roundtrip(
        random in any::<[u8; 32]>(),
        a in any::<u32>(),
        b in any::<u16>(),
        share in bytes(1200),
        data in bytes(2000),
        nonce in bytes(256),
        ticket in proptest::collection::vec(any::<u8>(), 1..500),
        flag in any::<bool>(),
        opt in proptest::option::of(any::<u32>()),
        verify_data in any::<[u8; 32]>(),
    ) {
        let messages = [
            Message::ServerHello(ServerHello {
                random,
                version: a,
                cipher_suite: b,
                key_share: KeyShare { group: b, share: &share },
                psk_accepted: flag,
            }),
            Message::EncryptedExtensions(EncryptedExtensions {
                transport_parameters: &data,
                early_data: flag,
            }),
            Message::CertificateRequest(CertificateRequest { flags: random[0] }),
            Message::Certificate(CertificateMsg {
                kind: if flag && !data.is_empty() {
                    CertificateKind::Certificate
                } else {
                    CertificateKind::RawPublicKey
                },
                data: &data,
            }),
            Message::CertificateVerify(CertificateVerify { scheme: b, signature: &data }),
            Message::Finished(Finished { verify_data }),
            Message::NewSessionTicket(NewSessionTicket {
                lifetime: a % (MAX_TICKET_LIFETIME + 1),
                age_add: a,
                nonce: &nonce[..nonce.len().min(255)],
                ticket: &ticket,
                max_early_data: opt,
            }),
        ];
        let mut stream = Vec::new();
        for m in &messages {
            m.encode(&mut stream).unwrap();
        }
        let decoded: Vec<_> = MessageReader::new(&stream)
            .map(|raw| raw.and_then(|r| r.parse()))
            .collect();
        prop_assert_eq!(decoded.len(), messages.len());
        for (got, want) in decoded.into_iter().zip(messages) {
            prop_assert_eq!(got, Ok(want));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        for code in [1u8, 2, 4, 8, 11, 13, 15, 20] {
            let ty = MessageType::try_from(code).unwrap();
            if let Ok(m) = Message::decode_body(ty, &bytes) {
                // Whatever decodes re-encodes and decodes to the same value.
                let mut again = Vec::new();
                m.encode(&mut again).unwrap();
                prop_assert_eq!(Message::decode(&again), Ok(m));
            }
        }
        let _ = Message::decode(&bytes);
        let mut reader = MessageReader::new(&bytes);
        for raw in reader.by_ref().flatten() {
            let _ = raw.parse();
        }
        prop_assert!(reader.consumed() <= bytes.len());
    }

    #[test]
    fn arbitrary_client_hello_bodies_never_panic(
        fixed in proptest::collection::vec(any::<u8>(), 0..60),
        exts in proptest::collection::vec(
            (prop_oneof![0u16..6, any::<u16>()], bytes(50)),
            0..8,
        ),
    ) {
        // Mostly well-formed prefixes with random extension lists, to reach the extension rules.
        let ext_refs: Vec<(u16, &[u8])> = exts.iter().map(|(t, d)| (*t, &d[..])).collect();
        let mut body = hello_body_with_exts(&ext_refs);
        if let Ok(ch) = ClientHello::decode(&body) {
            prop_assert!(!ch.early_data || ch.pre_shared_key.is_some());
            let mut again = Vec::new();
            ch.encode(&mut again).unwrap();
            prop_assert_eq!(Message::decode(&again), Ok(Message::ClientHello(ch)));
        }
        body.extend_from_slice(&fixed);
        let _ = ClientHello::decode(&body);
    }
}
