//! Contract tests of the plain UDP peer: the in-process echo server returns
//! every datagram, and the client has no streams and no resumption.

use std::future::Future;
use std::time::Duration;

use anyhow::{ensure, Context};
use bytes::Bytes;
use jsp_bench::peers::udp::{UdpClient, UdpServer};
use jsp_bench::peers::{BenchClient, BenchConn, BenchServer, ServeOptions, MAX_BENCH_DATAGRAM};

/// Bound on every wait in these tests.
const LIMIT: Duration = Duration::from_secs(20);

/// How long the burst check waits for each further echo (loss is allowed
/// there).
const ATTEMPT: Duration = Duration::from_secs(2);

/// Awaits `fut` for at most [`LIMIT`].
async fn bounded<T>(what: &str, fut: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::time::timeout(LIMIT, fut)
        .await
        .with_context(|| format!("{what}: timed out"))?
}

/// Sends `data` once and returns the echo. On loopback a lone datagram is
/// not lost, so this does not resend: a datagram dropped by the peer (such
/// as the first one of a fresh socket) fails the test.
async fn datagram_echo<C: BenchConn>(conn: &C, data: Bytes) -> anyhow::Result<Bytes> {
    conn.send_datagram(data)?;
    bounded("datagram echo", conn.recv_datagram()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_contract() -> anyhow::Result<()> {
    ensure!(!<UdpClient as BenchClient>::Conn::STREAMS);
    ensure!(!<UdpClient as BenchClient>::Conn::MULTIPLEXED);
    ensure!(<UdpClient as BenchClient>::Conn::DATAGRAMS);

    let info = bounded(
        "server start",
        UdpServer::start(&ServeOptions {
            workers: 1,
            ..Default::default()
        }),
    )
    .await?;
    ensure!(info.addr.ip().is_loopback());
    ensure!(info.trust.is_empty());
    let client = bounded("client", UdpClient::new(&info)).await?;

    // The first datagram of a fresh connection comes back.
    let first = bounded("connect", client.connect()).await?;
    let back = datagram_echo(&first, Bytes::from_static(b"first")).await?;
    ensure!(back == "first", "first echo differs");
    let second = bounded("connect", client.connect()).await?;
    for len in [1, 100, MAX_BENCH_DATAGRAM] {
        for (which, conn) in [(1u8, &first), (2u8, &second)] {
            let data: Bytes = (0..len).map(|i| (i as u8) ^ which).collect();
            let back = datagram_echo(conn, data.clone()).await?;
            ensure!(
                back == data,
                "connection {which}: echo of {len} bytes differs"
            );
        }
    }

    // Many datagrams in flight: the receive buffer is split, not reused
    // under earlier datagrams.
    let sent: Vec<Bytes> = (0..64u8).map(|i| Bytes::from(vec![i; 200])).collect();
    for data in &sent {
        first.send_datagram(data.clone())?;
    }
    let mut received = Vec::new();
    while received.len() < sent.len() {
        match tokio::time::timeout(ATTEMPT, first.recv_datagram()).await {
            Ok(back) => received.push(back?),
            Err(_) => break, // loss is allowed; check what arrived
        }
    }
    ensure!(!received.is_empty(), "no datagram of the burst came back");
    for back in &received {
        ensure!(sent.contains(back), "an echo of the burst is corrupt");
    }

    ensure!(first.open_bi().await.is_err(), "UDP opened a stream");
    ensure!(bounded("connect_resumed", client.connect_resumed())
        .await?
        .is_none());
    first.close();
    second.close();
    Ok(())
}
