//! The faithful real-socket path: two network namespaces joined by a
//! userspace netem.
//!
//! ```text
//!  netns jspb-PID-c                  harness (root netns)               netns jspb-PID-s
//!  client runtime threads            relay: Netem per direction         jsp-bench serve (child)
//!  10.77.0.1 -- jsptun0 <== read/write ==> [queue, loss, delay] <== read/write ==> jsptun0 -- 10.77.0.2
//! ```
//!
//! Each namespace has one TUN device (created from a thread that joined
//! the namespace, so it lives there) with a point-to-point address towards
//! the other side. The kernel in each namespace routes everything for the
//! peer into its TUN; the relay reads each IP packet, lets [`Link`] decide
//! its fate (bottleneck queue and rate, seeded loss, half the RTT of
//! delay) and writes it into the other TUN at its delivery time. UDP (jsp,
//! quinn) and TCP (tcp-tls) cross the same path.
//!
//! The TUN devices are opened without `IFF_VNET_HDR` and never given
//! offloads (`TUNSETOFFLOAD`), so the kernel segments GSO/TSO batches
//! before they reach the relay and every read is one wire-sized packet; the
//! relay counts any packet above the 1500-byte MTU and any IPv4 fragment,
//! and the runner reports them (there are none).
//!
//! The server runs as a child process in its namespace (`ip netns exec`);
//! the client runs on a tokio runtime whose threads all join the client
//! namespace (setns(2)) before running anything, so every socket the
//! client opens lives there. Everything is removed when the [`TunPath`] is
//! dropped (namespaces deleted, TUN devices gone with their descriptors);
//! namespaces left behind by a harness that was killed are removed the
//! next time one starts.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{bail, Context};
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::sched::{setns, CloneFlags};
use tokio::io::unix::AsyncFd;

use super::relay::{Delivery, Dir, Link};
use crate::child::ServerProcess;
use crate::peers::{ImplKind, ServeOptions};

/// The client's address (inside the client namespace).
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// The server's address (inside the server namespace).
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
/// The TUN device's name in each namespace.
pub const TUN_NAME: &str = "jsptun0";
/// The path MTU: Ethernet's 1500-byte IP packets.
pub const MTU: u16 = 1500;
/// Prefix of the namespaces' names: `jspb-PID-c` and `jspb-PID-s`.
const NS_PREFIX: &str = "jspb-";

/// Runs `ip ARGS`, failing with its standard error.
fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running ip {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// A network namespace made by the harness, deleted when dropped.
#[derive(Debug)]
struct Netns {
    name: String,
}

impl Netns {
    fn add(name: String) -> anyhow::Result<Self> {
        ip(&["netns", "add", &name])?;
        Ok(Netns { name })
    }

    /// The namespace's handle for setns(2).
    fn open(&self) -> anyhow::Result<File> {
        let path = Path::new("/run/netns").join(&self.name);
        File::open(&path).with_context(|| format!("opening {}", path.display()))
    }

    /// Runs `ip -n NAME ARGS`.
    fn ip(&self, args: &[&str]) -> anyhow::Result<()> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(err) = ip(&["netns", "del", &self.name]) {
            eprintln!(
                "jsp-bench: removing network namespace {}: {err:#}",
                self.name
            );
        }
    }
}

/// Deletes namespaces of earlier harness runs whose process is gone.
fn remove_stale_namespaces() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(NS_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", &name]);
        }
    }
}

/// Why the TUN path cannot run here, if it cannot: a quick look before
/// anything is created (the creation itself reports anything else).
pub fn unavailable_reason() -> Option<String> {
    if !Path::new("/dev/net/tun").exists() {
        return Some("no /dev/net/tun".into());
    }
    match Command::new("ip")
        .args(["netns", "list"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(status) if status.success() => None,
        Ok(status) => Some(format!("`ip netns list` failed ({status})")),
        Err(err) => Some(format!("no `ip` command: {err}")),
    }
}

/// Creates the TUN device inside `ns` (from a thread that joined it) and
/// returns it non-blocking and close-on-exec (so the server children and
/// `ip` commands do not inherit it).
fn create_tun(ns: &Netns) -> anyhow::Result<tun::Device> {
    let handle = ns.open()?;
    let name = ns.name.clone();
    let device = std::thread::spawn(move || -> anyhow::Result<tun::Device> {
        setns(&handle, CloneFlags::CLONE_NEWNET)
            .with_context(|| format!("joining network namespace {name}"))?;
        let mut config = tun::Configuration::default();
        config
            .tun_name(TUN_NAME)
            .layer(tun::Layer::L3)
            .mtu(MTU)
            .platform_config(|p| {
                // Plain IP packets (IFF_NO_PI), no virtio header, no offloads;
                // the addresses are set with `ip` below.
                p.vnet_hdr(false).ensure_root_privileges(false);
            });
        tun::create(&config).context("creating the TUN device")
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the TUN-creating thread panicked"))??;
    device.set_nonblock().context("TUN non-blocking")?;
    fcntl(device.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
        .context("TUN close-on-exec")?;
    Ok(device)
}

/// Brings up `lo` and the TUN of `ns` with `local` and a point-to-point
/// route to `peer`; no IPv6 on the TUN (no router solicitations on the
/// link).
fn configure(ns: &Netns, local: Ipv4Addr, peer: Ipv4Addr) -> anyhow::Result<()> {
    ns.ip(&["link", "set", "lo", "up"])?;
    let local = local.to_string();
    let peer = format!("{peer}/32");
    ns.ip(&["addr", "add", &local, "peer", &peer, "dev", TUN_NAME])?;
    ns.ip(&["link", "set", TUN_NAME, "mtu", &MTU.to_string(), "up"])?;
    Ok(())
}

/// The path: both namespaces, their TUN devices and the relay between.
pub struct TunPath {
    link: Arc<Link>,
    relay: Option<tokio::runtime::Runtime>,
    deliveries: Vec<JoinHandle<()>>,
    // Dropped last: the namespaces outlive the relay and the servers.
    client_ns: Netns,
    server_ns: Netns,
}

impl TunPath {
    /// Creates the namespaces, the TUN devices and the relay, with `link`
    /// between them (lossless until configured).
    pub fn new(link: Arc<Link>) -> anyhow::Result<Self> {
        remove_stale_namespaces();
        let pid = std::process::id();
        let client_ns = Netns::add(format!("{NS_PREFIX}{pid}-c"))?;
        let server_ns = Netns::add(format!("{NS_PREFIX}{pid}-s"))?;
        let client_tun = create_tun(&client_ns)?;
        let server_tun = create_tun(&server_ns)?;
        configure(&client_ns, CLIENT_IP, SERVER_IP)?;
        configure(&server_ns, SERVER_IP, CLIENT_IP)?;
        let relay = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("jsp-bench-relay")
            .enable_io()
            .build()
            .context("building the relay runtime")?;
        let (client_reader, client_writer) = client_tun.split();
        let (server_reader, server_writer) = server_tun.split();
        let mut deliveries = Vec::new();
        let to_server = deliver_into(&link, Dir::Up, server_writer, &mut deliveries)?;
        let to_client = deliver_into(&link, Dir::Down, client_writer, &mut deliveries)?;
        {
            let _guard = relay.enter();
            let up = register(client_reader).context("registering the client TUN")?;
            let down = register(server_reader).context("registering the server TUN")?;
            relay.spawn(forward(up, link.clone(), Dir::Up, to_server));
            relay.spawn(forward(down, link.clone(), Dir::Down, to_client));
        }
        Ok(TunPath {
            link,
            relay: Some(relay),
            deliveries,
            client_ns,
            server_ns,
        })
    }

    /// The TCP congestion control the kernel uses in the client namespace
    /// (the bulk sender): the machine's default, which tcp-tls gets.
    pub fn tcp_congestion_control(&self) -> Option<String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.client_ns.name])
            .args(["cat", "/proc/sys/net/ipv4/tcp_congestion_control"])
            .stdin(Stdio::null())
            .output()
            .ok()?;
        let cc = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success() && !cc.is_empty()).then_some(cc)
    }

    /// The emulated link.
    pub fn link(&self) -> &Arc<Link> {
        &self.link
    }

    /// Starts `kind`'s server in the server namespace, bound to
    /// [`SERVER_IP`].
    pub fn spawn_server(&self, exe: &Path, kind: ImplKind) -> anyhow::Result<ServerProcess> {
        let opts = ServeOptions {
            bind: IpAddr::V4(SERVER_IP),
            ..ServeOptions::default()
        };
        ServerProcess::spawn_wrapped(
            &["ip", "netns", "exec", &self.server_ns.name],
            exe,
            kind,
            &opts,
        )
    }

    /// A runtime for the clients: each of its threads joins the client
    /// namespace before it runs anything. Run client code in tasks spawned
    /// on it (`block_on` runs its future on the calling thread, which stays
    /// where it was), and check [`ClientRuntime::check`] around them.
    pub fn client_runtime(&self) -> anyhow::Result<ClientRuntime> {
        let handle = Arc::new(self.client_ns.open()?);
        let failed = Arc::new(AtomicBool::new(false));
        let flag = failed.clone();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("jsp-bench-loss-client")
            .enable_all()
            .on_thread_start(move || {
                if setns(handle.as_ref(), CloneFlags::CLONE_NEWNET).is_err() {
                    flag.store(true, Ordering::SeqCst);
                }
            })
            .build()
            .context("building the client runtime")?;
        let client = ClientRuntime { runtime, failed };
        client.check()?;
        Ok(client)
    }
}

impl Drop for TunPath {
    fn drop(&mut self) {
        // Stopping the readers drops the delivery senders, which ends the
        // delivery threads; the TUN descriptors close with them.
        if let Some(relay) = self.relay.take() {
            relay.shutdown_timeout(std::time::Duration::from_secs(1));
        }
        for thread in self.deliveries.drain(..) {
            let _ = thread.join();
        }
        let _ = (&self.client_ns, &self.server_ns);
    }
}

/// The client side's runtime (see [`TunPath::client_runtime`]).
pub struct ClientRuntime {
    /// The runtime.
    pub runtime: tokio::runtime::Runtime,
    failed: Arc<AtomicBool>,
}

impl ClientRuntime {
    /// Set if any of the runtime's threads could not join the namespace
    /// (threads may start later, for blocking work).
    pub fn failed_flag(&self) -> Arc<AtomicBool> {
        self.failed.clone()
    }

    /// Fails if any of the runtime's threads could not join the namespace.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.failed.load(Ordering::SeqCst) {
            bail!("a client thread could not join the client network namespace");
        }
        Ok(())
    }
}

/// Starts the delivery thread writing into one TUN.
fn deliver_into(
    link: &Arc<Link>,
    dir: Dir,
    mut writer: tun::Writer,
    threads: &mut Vec<JoinHandle<()>>,
) -> anyhow::Result<Delivery> {
    let name = match dir {
        Dir::Up => "jsp-bench-to-server",
        Dir::Down => "jsp-bench-to-client",
    };
    let (delivery, thread) = Delivery::spawn(name, link.clone(), dir, move |packet| {
        writer.write(packet).map(|_| ())
    })
    .context("starting a delivery thread")?;
    threads.push(thread);
    Ok(delivery)
}

/// Reads IP packets from one TUN and hands those the link admits to the
/// delivery thread of the other side. Only IPv4 is forwarded (the
/// namespaces speak nothing else; IPv6 neighbour discovery is not the
/// benchmark's traffic).
async fn forward(mut tun: AsyncFd<tun::Reader>, link: Arc<Link>, dir: Dir, to: Delivery) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok(mut ready) = tun.readable_mut().await else {
            return;
        };
        match ready.try_io(|inner| inner.get_mut().read(&mut buf)) {
            Ok(Ok(0)) => return,
            Ok(Ok(n)) => {
                let packet = &buf[..n];
                if packet[0] >> 4 != 4 {
                    continue;
                }
                if is_fragment(packet) {
                    link.count_fragment(dir);
                }
                if let Some(at) = link.admit(dir, n) {
                    to.send(&link, dir, at, packet.to_vec());
                }
            }
            Ok(Err(err)) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Ok(Err(_)) => return,
            // Not ready after all: wait again.
            Err(_) => {}
        }
    }
}

/// Registers a TUN reader with the relay's reactor.
#[allow(
    deprecated,
    reason = "tokio deprecates the safe constructor because AsRawFd alone does not promise the \
              descriptor stays open; a tun::Reader owns its descriptor (closed when the reader \
              drops), so it does for the AsyncFd's whole life; the replacement is `unsafe`, \
              which this crate forbids"
)]
fn register(reader: tun::Reader) -> std::io::Result<AsyncFd<tun::Reader>> {
    AsyncFd::new(reader)
}

/// Whether an IPv4 packet is a fragment (more fragments, or an offset).
fn is_fragment(packet: &[u8]) -> bool {
    packet.len() >= 8 && (u16::from_be_bytes([packet[6], packet[7]]) & 0x3fff) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_are_recognised() {
        let mut header = [0u8; 20];
        header[0] = 0x45;
        header[6] = 0x40; // DF only: not a fragment
        assert!(!is_fragment(&header));
        header[6] = 0x20; // MF
        assert!(is_fragment(&header));
        header[6] = 0x00;
        header[7] = 0x10; // offset
        assert!(is_fragment(&header));
    }
}
