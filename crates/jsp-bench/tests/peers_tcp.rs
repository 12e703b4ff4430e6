//! Contract tests of the TCP peers (TCP + TLS 1.3 and plain TCP): each
//! server runs in-process on 127.0.0.1 and a client checks the sink and
//! echo commands, the one-stream-per-connection rule, the absence of
//! datagrams, TLS 1.3 resumption and the X25519MLKEM768 key exchange.

mod common;

use anyhow::{ensure, Context};
use bytes::Bytes;
use common::{bounded, echo, payload, sink};
use jsp_bench::peers::tcp::{TcpClient, TcpServer, TcpTlsClient, TcpTlsServer};
use jsp_bench::peers::{BenchClient, BenchConn, BenchServer, ServeOptions};
use rustls::{HandshakeKind, NamedGroup};

/// The checks every TCP connection passes: sink, echo on a fresh
/// connection, one stream per connection, no datagrams.
async fn check_contract<C: BenchClient>(client: &C) -> anyhow::Result<()> {
    ensure!(!C::Conn::MULTIPLEXED && C::Conn::STREAMS && !C::Conn::DATAGRAMS);

    let conn = bounded("connect", client.connect()).await?;
    let count = bounded("sink 1 MiB", sink(&conn, 1 << 20)).await?;
    ensure!(count == 1 << 20, "sink counted {count}");
    ensure!(conn.open_bi().await.is_err(), "a second open_bi succeeded");
    ensure!(conn.send_datagram(Bytes::from_static(b"x")).is_err());
    ensure!(
        bounded("recv_datagram", async { Ok(conn.recv_datagram().await) })
            .await?
            .is_err()
    );
    conn.close();

    let conn = bounded("connect", client.connect()).await?;
    let data = payload(1 << 20);
    let back = bounded("echo 1 MiB", echo(&conn, &data)).await?;
    ensure!(back == data, "echo returned {} different bytes", back.len());
    conn.close();

    let conn = bounded("connect", client.connect()).await?;
    let count = bounded("empty sink", sink(&conn, 0)).await?;
    ensure!(count == 0, "empty sink counted {count}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_contract_resumption_and_key_exchange() -> anyhow::Result<()> {
    let info = bounded(
        "server start",
        TcpTlsServer::start(&ServeOptions {
            workers: 1,
            ..Default::default()
        }),
    )
    .await?;
    ensure!(info.addr.ip().is_loopback());
    ensure!(!info.trust.is_empty());
    let client = bounded("client", TcpTlsClient::new(&info)).await?;
    check_contract(&client).await?;

    // A full handshake, whose echo also delivers the session tickets.
    let first = bounded("connect", client.connect()).await?;
    ensure!(first.handshake_kind() == Some(HandshakeKind::Full));
    ensure!(
        first.key_exchange_group() == Some(NamedGroup::X25519MLKEM768),
        "negotiated {:?}",
        first.key_exchange_group()
    );
    ensure!(bounded("echo", echo(&first, b"tickets")).await? == b"tickets");

    // Resumption, twice in a row (the resumed connection leaves tickets too).
    for round in 0..2 {
        let resumed = bounded("connect_resumed", client.connect_resumed())
            .await?
            .context("TLS has resumption")?;
        ensure!(
            resumed.handshake_kind() == Some(HandshakeKind::Resumed),
            "round {round}: handshake {:?}",
            resumed.handshake_kind()
        );
        ensure!(resumed.key_exchange_group() == Some(NamedGroup::X25519MLKEM768));
        ensure!(bounded("echo", echo(&resumed, b"resumed")).await? == b"resumed");
    }

    // `connect` never resumes, even with tickets in the store.
    let full = bounded("connect", client.connect()).await?;
    ensure!(full.handshake_kind() == Some(HandshakeKind::Full));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_contract() -> anyhow::Result<()> {
    let info = bounded(
        "server start",
        TcpServer::start(&ServeOptions {
            workers: 1,
            ..Default::default()
        }),
    )
    .await?;
    ensure!(info.addr.ip().is_loopback());
    ensure!(info.trust.is_empty());
    let client = bounded("client", TcpClient::new(&info)).await?;
    check_contract(&client).await?;
    ensure!(bounded("connect_resumed", client.connect_resumed())
        .await?
        .is_none());
    Ok(())
}
