//! Secret hygiene (docs/SECURITY.md): the engine's logs, at the most verbose level, never contain
//! secret material. The deterministic handshake of docs/test-vectors/handshake.json runs again
//! with a TRACE subscriber capturing everything the engine logs; every secret the vectors list
//! (ephemeral private keys, shared secrets, every traffic secret, packet and header-protection
//! key and IV, the identity seed) is then searched for in the log, as hex and as the
//! `[1, 2, 3, ...]` form `Debug` gives a byte array.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod vectors_support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use vectors_support::*;

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every string under a key that names secret material, with its path.
fn secrets(v: &Value, path: &str, out: &mut Vec<(String, Vec<u8>)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                secrets(x, &format!("{path}.{k}"), out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                secrets(x, &format!("{path}[{i}]"), out);
            }
        }
        Value::String(s) => {
            let last = path.rsplit('.').next().unwrap_or("");
            let secret_field = [
                "secret", "key", "iv", "hp", "private", "ss_", "mlkem_d", "mlkem_z", "mlkem_m",
            ]
            .iter()
            .any(|w| last.contains(w))
                && !last.contains("public")
                && !last.contains("encapsulation");
            let in_secrets = path.starts_with(".secrets");
            if (secret_field || in_secrets)
                && s.len() >= 32
                && s.bytes().all(|b| b.is_ascii_hexdigit())
            {
                out.push((path.to_string(), unhex(s)));
            }
        }
        _ => {}
    }
}

fn debug_form(bytes: &[u8]) -> String {
    // The first 8 bytes as `Debug` prints a byte slice: enough to be unique.
    format!("{:?}", &bytes[..8.min(bytes.len())])
        .trim_end_matches(']')
        .to_string()
}

#[test]
fn trace_logs_of_a_whole_handshake_contain_no_secret() {
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let mut debug = String::new();
    tracing::subscriber::with_default(subscriber, || {
        let mut h = Harness::new(
            Arc::new(RecordingProvider::new(client_seed()).0),
            Arc::new(RecordingProvider::new(server_seed()).0),
        );
        h.run();
        assert!(
            h.app_done(),
            "the handshake and its application data completed"
        );
        // What an application might log: the endpoints and connections with `{:#?}`.
        debug = format!("{:#?}\n{:#?}\n", h.client, h.server);
        if let Some(c) = h.client.connection(h.client_conn) {
            debug.push_str(&format!(
                "{c:#?}\n{:#?}\n{:#?}\n",
                c.stats(),
                c.handshake_summary()
            ));
        }
        if let Some(c) = h.server_conn.and_then(|s| h.server.connection(s)) {
            debug.push_str(&format!("{c:#?}\n{:#?}\n", c.handshake_summary()));
        }
    });
    let log = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(
        log.contains("handshake complete"),
        "the engine logged the handshake:\n{log}"
    );
    let log = format!("{log}{debug}");
    let doc = load("handshake.json");
    let mut found = Vec::new();
    secrets(&doc, "", &mut found);
    found.push(("identity_seed".into(), identity_seed().to_vec()));
    assert!(
        found.len() > 20,
        "the vectors list the secrets ({})",
        found.len()
    );
    let lower = log.to_ascii_lowercase();
    for (path, bytes) in &found {
        let hex = hx(&bytes[..16.min(bytes.len())]);
        assert!(!lower.contains(&hex), "{path} appears in the log as hex");
        let debug = debug_form(bytes);
        assert!(
            !log.contains(&debug),
            "{path} appears in the log as {debug}"
        );
    }
}
