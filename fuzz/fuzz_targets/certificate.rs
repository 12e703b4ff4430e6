//! Fuzz target `certificate`: version-1 certificate decoding and verification (PROTOCOL.md §11.2,
//! §11.3 (b)).
//!
//! Invariants: decoding is canonical (a certificate that decodes re-encodes to exactly the input,
//! whose length `encoded_len` reports); verification against a fixed authority never panics, at
//! any of a few times and with or without an expected subject, and only succeeds within the
//! validity window for a certificate that names that authority as issuer.
#![no_main]

use std::sync::OnceLock;

use jsp_proto::crypto::CryptoProvider;
use jsp_proto::identity::{Certificate, PublicKey};
use jsp_proto::time::UnixTime;
use jsp_sim::engine::{seeded_identity, seeded_provider};
use libfuzzer_sys::fuzz_target;

struct Fixed {
    provider: std::sync::Arc<dyn CryptoProvider>,
    authority: PublicKey,
}

fn fixed() -> &'static Fixed {
    static F: OnceLock<Fixed> = OnceLock::new();
    F.get_or_init(|| {
        let provider = seeded_provider(jsp_fuzz::world::SEED, 20);
        let authority = seeded_identity(provider.as_ref(), 0xca).public_key();
        Fixed {
            provider,
            authority,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(cert) = Certificate::decode(data) else {
        return;
    };
    assert_eq!(cert.encode(), data, "certificate decoding is not canonical");
    assert_eq!(cert.encoded_len(), data.len());
    assert!(!cert.subject().is_empty() && cert.subject().len() <= 255);
    assert!(cert.not_before() <= cert.not_after());
    let _ = cert.signed_message();
    let f = fixed();
    let subject = cert.subject().to_owned();
    for now in [
        cert.not_before(),
        cert.not_after(),
        UnixTime(cert.not_after().0.saturating_add(1)),
        UnixTime(jsp_fuzz::world::UNIX_AT_ZERO),
    ] {
        for expected in [None, Some(subject.as_str()), Some("other.example")] {
            let r = cert.verify(&f.authority, now, expected, f.provider.as_ref());
            if r.is_ok() {
                assert!(cert.not_before() <= now && now <= cert.not_after());
                assert_eq!(
                    *cert.issuer_fingerprint(),
                    f.authority.fingerprint(f.provider.as_ref())
                );
                assert!(expected.is_none_or(|e| e == subject));
            }
        }
    }
});
