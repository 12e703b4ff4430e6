//! The file-transfer protocol against `jsp serve`'s server side, in one process on loopback:
//! hostile offers are refused, a stream that ends early leaves a partial file that the next
//! transfer resumes, and a wrong hash stores nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jsp::{ClientConfig, Connection, Endpoint, Server, ServerSettings, TrustPolicy};
use jsp_cli::progress::ProgressMode;
use jsp_cli::serve::{accept_loop, Behaviour};
use jsp_cli::transfer::{self, Offer, Receiver, SendOptions};
use jsp_proto::crypto::default_provider;
use jsp_proto::identity::Identity;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PATIENCE: Duration = Duration::from_secs(30);

/// A server receiving into `dir`, and a client connected to it.
async fn setup(dir: &Path) -> (Arc<Server>, Endpoint, Connection) {
    let id = Identity::generate(default_provider().as_ref()).unwrap();
    let fp = id.fingerprint();
    let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let settings = ServerSettings::builder(id)
        .listen_udp(loopback)
        .workers(1)
        .build()
        .unwrap();
    let server = Arc::new(Server::start(settings).await.unwrap());
    let server_addr = server.local_addr().unwrap();
    let behaviour = Arc::new(Behaviour {
        echo: false,
        files: Some(Receiver::new(dir).unwrap()),
    });
    tokio::spawn(accept_loop(server.clone(), behaviour));
    let client = Endpoint::client(loopback).unwrap();
    let config = Arc::new(ClientConfig::new(TrustPolicy::pinned(fp)));
    let conn = tokio::time::timeout(PATIENCE, client.connect(server_addr, config))
        .await
        .unwrap()
        .unwrap();
    (server, client, conn)
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    d.as_ref().try_into().unwrap()
}

/// Sends `offer`, then (if the server is ready) `data` from the offset it names, and returns
/// every byte the server answered.
async fn raw_transfer(conn: &Connection, offer: &Offer, data: &[u8]) -> Vec<u8> {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(&offer.encode()).await.unwrap();
    let kind = recv.read_u8().await.unwrap();
    let mut reply = vec![kind];
    if kind == b'R' {
        let offset = recv.read_u64().await.unwrap();
        reply.extend_from_slice(&offset.to_be_bytes());
        send.write_u64(offset).await.unwrap();
        let from = usize::try_from(offset).unwrap().min(data.len());
        send.write_all(&data[from..]).await.unwrap();
    }
    send.finish().unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(PATIENCE, recv.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    reply.extend_from_slice(&rest);
    reply
}

fn text(reply: &[u8]) -> String {
    String::from_utf8_lossy(reply).into_owned()
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn hostile_names_are_refused_and_nothing_is_written_outside() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("inbox");
    let (_server, _client, conn) = setup(&inbox).await;
    for name in [
        "../escape.txt",
        "/etc/passwd",
        "..",
        "a/../../b",
        ".partial-spoof",
    ] {
        let offer = Offer {
            name: name.to_owned(),
            size: 3,
            sha256: sha256(b"abc"),
        };
        let reply = raw_transfer(&conn, &offer, b"abc").await;
        assert_eq!(reply.first(), Some(&b'E'), "{name}: {}", text(&reply));
        assert!(text(&reply).contains("is not allowed"), "{name}");
    }
    assert!(names(&inbox).is_empty());
    assert_eq!(names(tmp.path()), ["inbox"]);
}

#[tokio::test]
async fn a_short_stream_leaves_a_partial_file_that_the_next_transfer_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("inbox");
    let (_server, _client, conn) = setup(&inbox).await;
    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i * 7 % 253) as u8).collect();
    let offer = Offer {
        name: "movie.bin".into(),
        size: data.len() as u64,
        sha256: sha256(&data),
    };

    // Only the first 1.5 MB, then the stream ends.
    let reply = raw_transfer(&conn, &offer, &data[..1_500_000]).await;
    assert_eq!(&reply[..9], &[b'R', 0, 0, 0, 0, 0, 0, 0, 0]);
    let reply = text(&reply);
    assert!(
        reply.contains("the stream ended after 1500000 of 2000000 bytes; the partial file is kept"),
        "{reply}"
    );
    let partial = transfer::partial_name("movie.bin", &offer.sha256);
    assert_eq!(names(&inbox), [partial]);

    // The library's sender resumes from there.
    let file = tmp.path().join("movie.bin");
    std::fs::write(&file, &data).unwrap();
    let opts = SendOptions {
        name: "movie.bin".into(),
        progress: ProgressMode::Hidden,
        stall_after: None,
    };
    let report = transfer::send_file(&conn, &file, &opts).await.unwrap();
    assert_eq!(report.resumed_from, 1_500_000);
    assert_eq!(report.sent, 500_000);
    assert_eq!(report.sha256, offer.sha256);
    assert!(std::fs::read(inbox.join("movie.bin")).unwrap() == data);
    assert_eq!(names(&inbox), ["movie.bin"]);
}

#[tokio::test]
async fn a_wrong_hash_stores_nothing_and_deletes_the_partial_file() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("inbox");
    let (_server, _client, conn) = setup(&inbox).await;
    let offer = Offer {
        name: "x.txt".into(),
        size: 5,
        sha256: sha256(b"hello"),
    };
    let reply = text(&raw_transfer(&conn, &offer, b"jello").await);
    assert!(reply.contains("does not match"), "{reply}");
    assert!(names(&inbox).is_empty());

    // More data than announced is refused too.
    let reply = text(&raw_transfer(&conn, &offer, b"hello, and more").await);
    assert!(
        reply.contains("more data than the announced 5 bytes"),
        "{reply}"
    );
    assert!(names(&inbox).is_empty());

    // And the right data goes through.
    let reply = raw_transfer(&conn, &offer, b"hello").await;
    assert_eq!(
        reply.last_chunk::<9>(),
        Some(&[b'O', 0, 0, 0, 0, 0, 0, 0, 5])
    );
    assert_eq!(std::fs::read(inbox.join("x.txt")).unwrap(), b"hello");
}
