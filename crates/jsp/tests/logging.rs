//! Structured logging: every connection gets a span with its peer, connection ID and carriage,
//! and its lifecycle (established, closed) is logged at info level, here as JSON.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is a test failure

use std::io::Write;
use std::sync::{Arc, Mutex};

use jsp::{ClientConfig, Endpoint, ServerConfig, TrustPolicy};
use jsp_proto::crypto::default_provider;
use jsp_proto::identity::Identity;

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

#[tokio::test]
async fn connection_lifecycle_is_logged_as_json_with_a_span_per_connection() {
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let id = Identity::generate(default_provider().as_ref()).unwrap();
    let fp = id.fingerprint();
    let server = Endpoint::server("127.0.0.1:0".parse().unwrap(), ServerConfig::new(id)).unwrap();
    let s = server.clone();
    tokio::spawn(async move {
        while let Some(c) = s.accept().await {
            let _ = c.established().await;
            c.closed().await;
        }
    });
    let client = Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let conn = client
        .connect(
            server.local_addr(),
            Arc::new(ClientConfig::new(TrustPolicy::pinned(fp))),
        )
        .await
        .unwrap();
    conn.abort(jsp::CloseReason::Normal, Some("done"));
    let _ = conn.closed().await;
    drop(conn);

    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is JSON"))
        .collect();
    let established: Vec<_> = lines
        .iter()
        .filter(|v| v["fields"]["message"] == "connection established")
        .collect();
    assert!(!established.is_empty(), "logged: {text}");
    let e = established[0];
    assert_eq!(e["level"], "INFO");
    assert_eq!(e["fields"]["group"], "X25519-MLKEM768");
    let span = &e["span"];
    assert_eq!(span["name"], "conn");
    assert!(span["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(span["cid"].as_str().is_some());
    assert_eq!(span["carriage"], "Udp");
    assert!(lines
        .iter()
        .any(|v| v["fields"]["message"] == "connection closed"));
}
