//! Server scaling benchmark: aggregate upload throughput of many clients to one server, first a
//! single endpoint (one socket, one driver task), then a [`ServerPool`] with one worker per core
//! (SO_REUSEPORT sockets, one engine and driver each), in the same run on loopback. Prints both
//! rates and their ratio. The clients run on the same machine and compete for the same cores,
//! so the ratio is a lower bound of what the pool gains on a server with its own cores.
//!
//! Run: `cargo run --release -p jsp --example server_scaling [-- --clients N --mib M --workers W]`

use std::sync::Arc;
use std::time::Duration;

use jsp::{ClientConfig, Connection, Endpoint, ServerConfig, ServerPool, TrustPolicy};
use jsp_proto::crypto::default_provider;
use jsp_proto::identity::Identity;
use tokio::io::AsyncWriteExt;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Longest a run may take before the benchmark gives up.
const RUN_LIMIT: Duration = Duration::from_secs(300);

struct Args {
    clients: usize,
    mib: usize,
    workers: usize,
}

fn parse() -> Result<Args, BoxError> {
    let mut a = Args {
        clients: 8,
        mib: 64,
        workers: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut num = || -> Result<usize, BoxError> {
            let v = it.next().ok_or(format!("{k} needs a number"))?;
            Ok(v.parse().map_err(|_| format!("{k}: not a number: {v}"))?)
        };
        match k.as_str() {
            "--clients" => a.clients = num()?.clamp(1, 1024),
            "--mib" => a.mib = num()?.clamp(1, 4096),
            "--workers" => a.workers = num()?,
            "-h" | "--help" => {
                println!("usage: server_scaling [--clients N] [--mib M per client] [--workers W]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(a)
}

/// Reads and discards every stream of `conn`.
fn sink(conn: Connection) {
    tokio::spawn(async move {
        while let Ok(mut recv) = conn.accept_uni().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = tokio::io::AsyncReadExt::read(&mut recv, &mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            });
        }
    });
}

/// Uploads `mib` MiB from each of `clients` client endpoints to `addr`; returns the aggregate
/// rate in Mbit/s, counted when the server acknowledged every byte.
async fn run(
    addr: std::net::SocketAddr,
    cfg: Arc<ClientConfig>,
    clients: usize,
    mib: usize,
) -> Result<f64, BoxError> {
    let mut conns = Vec::new();
    for _ in 0..clients {
        let ep = Endpoint::client("127.0.0.1:0".parse()?)?;
        let c = ep.connect(addr, cfg.clone()).await?;
        conns.push((ep, c));
    }
    let chunk = vec![0x5au8; 256 * 1024];
    #[allow(clippy::disallowed_methods, reason = "a benchmark measures wall time")]
    let start = std::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (_, c) in &conns {
        let c = c.clone();
        let chunk = chunk.clone();
        tasks.spawn(async move {
            let mut s = c.open_uni().await?;
            for _ in 0..mib * 4 {
                s.write_all(&chunk).await?;
            }
            s.acknowledged().await?;
            Ok::<(), BoxError>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    let secs = start.elapsed().as_secs_f64();
    let bits = (clients * mib * 1024 * 1024 * 8) as f64;
    Ok(bits / secs / 1e6)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), BoxError> {
    let args = parse()?;
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let workers = if args.workers == 0 {
        cores
    } else {
        args.workers
    };
    let id = Identity::generate(default_provider().as_ref())?;
    let cfg = Arc::new(ClientConfig::new(TrustPolicy::pinned(id.fingerprint())));
    let server_cfg = ServerConfig::new(id);
    println!(
        "{} clients x {} MiB upload, {cores} cores, pool of {workers} workers",
        args.clients, args.mib
    );

    let single = Endpoint::server("127.0.0.1:0".parse()?, server_cfg.clone())?;
    let acc = single.clone();
    tokio::spawn(async move {
        while let Some(c) = acc.accept().await {
            sink(c);
        }
    });
    let one = tokio::time::timeout(
        RUN_LIMIT,
        run(single.local_addr(), cfg.clone(), args.clients, args.mib),
    )
    .await
    .map_err(|_| "single-endpoint run timed out")??;
    println!("single endpoint: {one:.0} Mbit/s");
    single.shutdown().await;

    let pool = Arc::new(ServerPool::bind(
        "127.0.0.1:0".parse()?,
        server_cfg,
        workers,
    )?);
    let acc = pool.clone();
    tokio::spawn(async move {
        while let Some(c) = acc.accept().await {
            sink(c);
        }
    });
    let many = tokio::time::timeout(
        RUN_LIMIT,
        run(pool.local_addr(), cfg, args.clients, args.mib),
    )
    .await
    .map_err(|_| "pool run timed out")??;
    let spread: Vec<usize> = pool
        .workers()
        .iter()
        .map(Endpoint::connection_count)
        .collect();
    println!("server pool:     {many:.0} Mbit/s (connections per worker {spread:?})");
    println!("ratio pool/single: {:.2}", many / one);
    pool.shutdown().await;
    Ok(())
}
