//! The fallback real-socket path where network namespaces or TUN devices
//! are not available: a lossy UDP relay on loopback, one per server. The
//! client talks to the relay's front socket; the relay forwards each
//! datagram the [`Link`] admits from its back socket to the server at its
//! delivery time, and the server's answers back to the client that sent
//! last. It carries UDP only (jsp, quinn), and it emulates a 1500-byte
//! path by dropping UDP payloads above 1472 bytes (as a path that drops
//! what it cannot carry: jsp's path MTU discovery settles at 1452 here as
//! through the TUN path). Wire bytes count 28 bytes of IPv4 and UDP
//! headers per datagram.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;

use super::relay::{Delivery, Dir, Link};

/// Largest UDP payload the relay forwards: a 1500-byte IPv4 packet.
pub const MAX_PAYLOAD: usize = 1472;

/// IPv4 and UDP header bytes added to each datagram's wire size.
pub const HEADER_BYTES: u64 = 28;

/// How often the relay's readers look at the stop flag.
const POLL: Duration = Duration::from_millis(50);

/// One relay in front of one server.
pub struct UdpRelay {
    front: SocketAddr,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl UdpRelay {
    /// Starts a relay on 127.0.0.1 in front of `server`, through `link`.
    pub fn start(link: Arc<Link>, server: SocketAddr) -> anyhow::Result<Self> {
        let bind = |what: &str| {
            let socket = UdpSocket::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
                .with_context(|| format!("binding the relay's {what} socket"))?;
            socket
                .set_read_timeout(Some(POLL))
                .context("relay read timeout")?;
            anyhow::Ok(socket)
        };
        let front = bind("front")?;
        let back = bind("back")?;
        back.connect(server)
            .context("connecting the relay to the server")?;
        let front_addr = front.local_addr().context("relay address")?;
        let client: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();

        let back_tx = back.try_clone().context("cloning the back socket")?;
        let (to_server, thread) =
            Delivery::spawn("jsp-bench-relay-up", link.clone(), Dir::Up, move |d| {
                back_tx.send(d).map(|_| ())
            })?;
        threads.push(thread);
        let front_tx = front.try_clone().context("cloning the front socket")?;
        let peer = client.clone();
        let (to_client, thread) =
            Delivery::spawn("jsp-bench-relay-down", link.clone(), Dir::Down, move |d| {
                let to = *peer.lock().unwrap_or_else(PoisonError::into_inner);
                match to {
                    Some(to) => front_tx.send_to(d, to).map(|_| ()),
                    None => Ok(()),
                }
            })?;
        threads.push(thread);

        let (l, s, c) = (link.clone(), stop.clone(), client);
        threads.push(std::thread::spawn(move || {
            pump(&front, &l, Dir::Up, &s, &to_server, |from| {
                *c.lock().unwrap_or_else(PoisonError::into_inner) = Some(from);
            });
        }));
        let s = stop.clone();
        threads.push(std::thread::spawn(move || {
            pump(&back, &link, Dir::Down, &s, &to_client, |_| {});
        }));
        Ok(UdpRelay {
            front: front_addr,
            stop,
            threads,
        })
    }

    /// Where clients send to reach the server through the relay.
    pub fn addr(&self) -> SocketAddr {
        self.front
    }
}

impl Drop for UdpRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Receives on `socket` until `stop`, handing what `link` admits to `to`.
fn pump(
    socket: &UdpSocket,
    link: &Link,
    dir: Dir,
    stop: &AtomicBool,
    to: &Delivery,
    mut seen: impl FnMut(SocketAddr),
) {
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Ordering::SeqCst) {
        let Ok((n, from)) = socket.recv_from(&mut buf) else {
            // A timeout (look at the flag again) or an ICMP error for an
            // earlier send: neither ends the relay.
            continue;
        };
        seen(from);
        if let Some(at) = link.admit(dir, n) {
            to.send(link, dir, at, buf[..n].to_vec());
        }
    }
}
