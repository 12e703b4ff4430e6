//! Tests of identities, fingerprints and certificates (PROTOCOL.md §11).

use proptest::prelude::*;

use super::certificate::certificate_from_parts_for_tests;
use super::*;
use crate::crypto::deterministic::DeterministicProvider;
use crate::crypto::AwsLcProvider;
use crate::time::UnixTime;

const P: AwsLcProvider = AwsLcProvider;

fn identity(byte: u8) -> Identity {
    Identity::from_seed(&P, &[byte; 32]).unwrap()
}

#[test]
fn fingerprint_is_sha256_of_algorithm_and_key() {
    let id = identity(1);
    let mut input = vec![1u8];
    input.extend_from_slice(id.public_key().as_bytes());
    assert_eq!(id.fingerprint().as_bytes(), &P.sha256(&input));
    assert_eq!(id.public_key().fingerprint(&P), id.fingerprint());
}

#[test]
fn fingerprint_text_round_trip() {
    let fp = Fingerprint::from_bytes(core::array::from_fn(|i| i as u8 * 7));
    let text = fp.to_string();
    assert_eq!(
        text,
        "SHA256:00070e151c232a31383f464d545b626970777e858c939aa1a8afb6bdc4cbd2d9"
    );
    assert_eq!(text.parse::<Fingerprint>(), Ok(fp));
    assert_eq!(text.to_uppercase().parse::<Fingerprint>(), Ok(fp));
    assert_eq!(format!("{fp:?}"), text);
}

#[test]
fn fingerprint_parse_errors() {
    let good = "00070e151c232a31383f464d545b626970777e858c939aa1a8afb6bdc4cbd2d9";
    assert_eq!(
        good.parse::<Fingerprint>(),
        Err(FingerprintParseError::MissingPrefix)
    );
    assert_eq!(
        format!("sha256:{good}").parse::<Fingerprint>(),
        Err(FingerprintParseError::MissingPrefix)
    );
    assert_eq!(
        format!("SHA256:{}", &good[..63]).parse::<Fingerprint>(),
        Err(FingerprintParseError::WrongLength { found: 63 })
    );
    assert_eq!(
        format!("SHA256:{good}0").parse::<Fingerprint>(),
        Err(FingerprintParseError::WrongLength { found: 65 })
    );
    let mut bad = good.to_string();
    bad.replace_range(10..11, "g");
    assert_eq!(
        format!("SHA256:{bad}").parse::<Fingerprint>(),
        Err(FingerprintParseError::InvalidDigit { position: 10 })
    );
    // 64 characters, but one is multi-byte: a digit error, not a panic.
    let mut multibyte = good[..63].to_string();
    multibyte.insert(5, 'é');
    assert_eq!(
        format!("SHA256:{multibyte}").parse::<Fingerprint>(),
        Err(FingerprintParseError::InvalidDigit { position: 5 })
    );
}

#[test]
fn identity_generate_sign_and_redacted_debug() {
    let det = DeterministicProvider::new([1; 32]);
    let a = Identity::generate(&det).unwrap();
    let b = Identity::generate(&det).unwrap();
    assert_ne!(a.public_key(), b.public_key());
    let again = Identity::from_seed(&P, a.seed()).unwrap();
    assert_eq!(again.public_key(), a.public_key());

    let sig = a.sign(b"transcript").unwrap();
    a.public_key().verify(&P, b"transcript", &sig).unwrap();
    assert!(b.public_key().verify(&P, b"transcript", &sig).is_err());

    let debug = format!("{a:?}");
    assert!(debug.contains(&a.fingerprint().to_string()));
    let seed_hex: String = a.seed().iter().map(|b| format!("{b:02x}")).collect();
    assert!(!debug.contains(&seed_hex[..8]));
    let _ = Identity::generate(&P).unwrap();
}

fn issue(ca: &Identity, subject: &str, key: &PublicKey) -> Certificate {
    Certificate::issue(ca, subject, key, UnixTime(1_000), UnixTime(2_000)).unwrap()
}

#[test]
fn certificate_round_trip_and_layout() {
    let ca = identity(1);
    let server = identity(2);
    let cert = issue(&ca, "example.org", &server.public_key());
    let bytes = cert.encode();
    assert_eq!(bytes.len(), cert.encoded_len());
    assert_eq!(bytes.len(), 148 + "example.org".len());
    // §11.2 layout.
    assert_eq!(bytes[0], 1);
    assert_eq!(bytes[1], 11);
    assert_eq!(&bytes[2..13], b"example.org");
    assert_eq!(bytes[13], 1);
    assert_eq!(&bytes[14..46], server.public_key().as_bytes());
    assert_eq!(&bytes[46..54], &1_000u64.to_be_bytes());
    assert_eq!(&bytes[54..62], &2_000u64.to_be_bytes());
    assert_eq!(&bytes[62..94], ca.fingerprint().as_bytes());
    assert_eq!(bytes[94], 1);
    assert_eq!(&bytes[95..], cert.signature());
    // The signature covers the context, a zero byte and every byte before the signature.
    let mut msg = b"JetStreamProto v1 certificate\0".to_vec();
    msg.extend_from_slice(&bytes[..95]);
    assert_eq!(cert.signed_message(), msg);
    ca.public_key().verify(&P, &msg, cert.signature()).unwrap();

    let decoded = Certificate::decode(&bytes).unwrap();
    assert_eq!(decoded, cert);
    assert_eq!(decoded.subject(), "example.org");
    assert_eq!(decoded.public_key(), &server.public_key());
    assert_eq!(decoded.not_before(), UnixTime(1_000));
    assert_eq!(decoded.not_after(), UnixTime(2_000));
    assert_eq!(decoded.issuer_fingerprint(), &ca.fingerprint());
}

#[test]
fn certificate_verify_error_cases() {
    let ca = identity(1);
    let other_ca = identity(3);
    let server = identity(2);
    let cert = issue(&ca, "example.org", &server.public_key());
    let ca_pk = ca.public_key();

    assert_eq!(
        cert.verify(&ca_pk, UnixTime(1_500), Some("example.org"), &P),
        Ok(())
    );
    assert_eq!(cert.verify(&ca_pk, UnixTime(1_500), None, &P), Ok(()));
    // Inclusive bounds.
    assert_eq!(cert.verify(&ca_pk, UnixTime(1_000), None, &P), Ok(()));
    assert_eq!(cert.verify(&ca_pk, UnixTime(2_000), None, &P), Ok(()));
    assert_eq!(
        cert.verify(&ca_pk, UnixTime(999), None, &P),
        Err(CertificateError::NotYetValid)
    );
    assert_eq!(
        cert.verify(&ca_pk, UnixTime(2_001), None, &P),
        Err(CertificateError::Expired)
    );
    assert_eq!(
        cert.verify(&ca_pk, UnixTime(1_500), Some("example.com"), &P),
        Err(CertificateError::SubjectMismatch)
    );
    assert_eq!(
        cert.verify(&other_ca.public_key(), UnixTime(1_500), None, &P),
        Err(CertificateError::UnknownIssuer)
    );

    // Any change to a signed field breaks the signature.
    let bytes = cert.encode();
    for i in [2, 20, 53, 61] {
        let mut tampered = bytes.clone();
        tampered[i] ^= 0x01;
        let decoded = Certificate::decode(&tampered).unwrap();
        assert_eq!(
            decoded.verify(&ca_pk, UnixTime(1_500), None, &P),
            Err(CertificateError::BadSignature),
            "byte {i}"
        );
    }
    let mut tampered = bytes.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    assert_eq!(
        Certificate::decode(&tampered)
            .unwrap()
            .verify(&ca_pk, UnixTime(1_500), None, &P),
        Err(CertificateError::BadSignature)
    );
    // A certificate claiming a CA's fingerprint but signed by someone else.
    let forged = Certificate::issue(
        &other_ca,
        "example.org",
        &server.public_key(),
        UnixTime(0),
        UnixTime(5_000),
    )
    .unwrap();
    let mut forged_bytes = forged.encode();
    forged_bytes[62..94].copy_from_slice(ca.fingerprint().as_bytes());
    assert_eq!(
        Certificate::decode(&forged_bytes)
            .unwrap()
            .verify(&ca_pk, UnixTime(1_500), None, &P),
        Err(CertificateError::BadSignature)
    );
}

#[test]
fn certificate_decode_rejects_malformed() {
    let ca = identity(1);
    let cert = issue(&ca, "example.org", &identity(2).public_key());
    let bytes = cert.encode();
    let malformed = |m| Err(CertificateError::Malformed(m));

    for len in 0..bytes.len() {
        assert_eq!(
            Certificate::decode(&bytes[..len]),
            malformed(MalformedCertificate::Truncated),
            "len {len}"
        );
    }
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert_eq!(
        Certificate::decode(&trailing),
        malformed(MalformedCertificate::TrailingBytes)
    );
    let mut b = bytes.clone();
    b[0] = 2;
    assert_eq!(
        Certificate::decode(&b),
        malformed(MalformedCertificate::UnknownFormat(2))
    );
    let mut b = bytes.clone();
    b[13] = 2;
    assert_eq!(
        Certificate::decode(&b),
        malformed(MalformedCertificate::UnknownKeyAlgorithm(2))
    );
    let mut b = bytes.clone();
    b[94] = 0;
    assert_eq!(
        Certificate::decode(&b),
        malformed(MalformedCertificate::UnknownSignatureAlgorithm(0))
    );
    let mut b = bytes.clone();
    b[2] = 0xff;
    assert_eq!(
        Certificate::decode(&b),
        malformed(MalformedCertificate::SubjectNotUtf8)
    );
    let mut b = bytes.clone();
    b[46..54].copy_from_slice(&3_000u64.to_be_bytes());
    assert_eq!(
        Certificate::decode(&b),
        malformed(MalformedCertificate::InvertedValidity)
    );
    let mut empty_subject = vec![1, 0];
    empty_subject.extend_from_slice(&bytes[13..]);
    assert_eq!(
        Certificate::decode(&empty_subject),
        malformed(MalformedCertificate::SubjectLength)
    );
}

#[test]
fn certificate_issue_rejects_bad_parameters() {
    let ca = identity(1);
    let pk = identity(2).public_key();
    let malformed = |m| Err(CertificateError::Malformed(m));
    assert_eq!(
        Certificate::issue(&ca, "", &pk, UnixTime(0), UnixTime(1)),
        malformed(MalformedCertificate::SubjectLength)
    );
    assert_eq!(
        Certificate::issue(&ca, &"a".repeat(256), &pk, UnixTime(0), UnixTime(1)),
        malformed(MalformedCertificate::SubjectLength)
    );
    let max = Certificate::issue(&ca, &"é".repeat(127), &pk, UnixTime(0), UnixTime(1)).unwrap();
    assert_eq!(max.encoded_len(), 148 + 254);
    assert_eq!(Certificate::decode(&max.encode()), Ok(max));
    assert_eq!(
        Certificate::issue(&ca, "x", &pk, UnixTime(2), UnixTime(1)),
        malformed(MalformedCertificate::InvertedValidity)
    );
    assert!(Certificate::issue(&ca, "x", &pk, UnixTime(1), UnixTime(1)).is_ok());
}

fn arb_certificate() -> impl Strategy<Value = Certificate> {
    (
        "\\PC{1,60}",
        any::<[u8; 32]>(),
        any::<u64>(),
        any::<u64>(),
        any::<[u8; 32]>(),
        proptest::collection::vec(any::<u8>(), 64),
    )
        .prop_filter_map("subject too long", |(subject, pk, a, b, issuer, sig)| {
            certificate_from_parts_for_tests(
                subject,
                PublicKey::from_bytes(pk),
                UnixTime(a.min(b)),
                UnixTime(a.max(b)),
                Fingerprint::from_bytes(issuer),
                sig.try_into().ok()?,
            )
            .ok()
        })
}

proptest! {
    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(cert) = Certificate::decode(&bytes) {
            // Canonical: whatever decodes re-encodes to the same bytes.
            prop_assert_eq!(cert.encode(), bytes);
        }
    }

    #[test]
    fn decode_never_panics_near_valid(
        cert in arb_certificate(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = cert.encode();
        for (i, v) in edits {
            let idx = i.index(bytes.len());
            bytes[idx] = v;
        }
        let len = cut.index(bytes.len() + 1);
        let _ = Certificate::decode(&bytes[..len]);
        if let Ok(c) = Certificate::decode(&bytes) {
            prop_assert_eq!(c.encode(), bytes);
        }
    }

    #[test]
    fn encode_decode_identity(cert in arb_certificate()) {
        let bytes = cert.encode();
        prop_assert_eq!(bytes.len(), cert.encoded_len());
        prop_assert_eq!(Certificate::decode(&bytes), Ok(cert));
    }
}
