//! What the two real-socket relays share: the emulated link ([`Link`]: one
//! [`Netem`] per direction, reconfigured between scenarios, and its
//! counters) and the delivery threads that hand each admitted packet to
//! the far side at its delivery time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use super::netem::{LinkSpec, LossSpec, Netem, Verdict};
use crate::latency::now;
use crate::scenarios::loss::WireMeter;

/// A direction of the link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Client to server.
    Up = 0,
    /// Server to client.
    Down = 1,
}

/// Counters of one direction.
#[derive(Debug, Default)]
pub struct DirCounters {
    /// Packets offered to the link.
    pub offered: AtomicU64,
    /// Bytes of those packets (whole IP packets).
    pub offered_bytes: AtomicU64,
    /// Lost by the loss model.
    pub lost: AtomicU64,
    /// Dropped by the full bottleneck queue.
    pub queue_dropped: AtomicU64,
    /// Written to the far side.
    pub delivered: AtomicU64,
    /// Larger than the path MTU (dropped): with offloads off there are none.
    pub oversize: AtomicU64,
    /// IPv4 fragments seen (forwarded): the benchmarked stacks set DF, so none.
    pub fragments: AtomicU64,
    /// Largest packet seen, in bytes.
    pub largest: AtomicU64,
    /// Writes to the far side that failed.
    pub write_errors: AtomicU64,
    /// Bytes of offered packets whose fate is known: delivered (counted
    /// when written), lost or dropped (counted when offered).
    pub resolved_bytes: AtomicU64,
    /// Packets whose fate is known (see `resolved_bytes`).
    pub resolved: AtomicU64,
}

/// A snapshot of [`DirCounters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirStats {
    /// See [`DirCounters::offered`].
    pub offered: u64,
    /// See [`DirCounters::offered_bytes`].
    pub offered_bytes: u64,
    /// See [`DirCounters::lost`].
    pub lost: u64,
    /// See [`DirCounters::queue_dropped`].
    pub queue_dropped: u64,
    /// See [`DirCounters::delivered`].
    pub delivered: u64,
    /// See [`DirCounters::oversize`].
    pub oversize: u64,
    /// See [`DirCounters::fragments`].
    pub fragments: u64,
    /// See [`DirCounters::largest`].
    pub largest: u64,
    /// See [`DirCounters::write_errors`].
    pub write_errors: u64,
}

impl DirCounters {
    fn resolve(&self, len: usize) {
        self.resolved.fetch_add(1, Ordering::Relaxed);
        self.resolved_bytes.fetch_add(len as u64, Ordering::Relaxed);
    }

    fn snapshot(&self) -> DirStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        DirStats {
            offered: get(&self.offered),
            offered_bytes: get(&self.offered_bytes),
            lost: get(&self.lost),
            queue_dropped: get(&self.queue_dropped),
            delivered: get(&self.delivered),
            oversize: get(&self.oversize),
            fragments: get(&self.fragments),
            largest: get(&self.largest),
            write_errors: get(&self.write_errors),
        }
    }
}

/// The emulated link: both directions' state and counters.
#[derive(Debug)]
pub struct Link {
    dirs: [Mutex<Netem>; 2],
    counters: [DirCounters; 2],
    /// Largest packet the path carries (IP packet for the TUN path, UDP
    /// payload for the UDP relay).
    pub mtu: usize,
}

impl Link {
    /// A lossless, unlimited link until [`Link::set`] configures it.
    pub fn new(mtu: usize) -> Arc<Self> {
        let open = || {
            Mutex::new(Netem::new(
                LinkSpec {
                    delay: std::time::Duration::ZERO,
                    rate_bps: 0,
                    queue_bytes: usize::MAX / 2,
                    loss: LossSpec::Random(0.0),
                },
                0,
            ))
        };
        Arc::new(Link {
            dirs: [open(), open()],
            counters: [DirCounters::default(), DirCounters::default()],
            mtu,
        })
    }

    /// Configures both directions alike with fresh state (empty queue,
    /// loss chain in its good state); each direction draws its losses from
    /// its own stream derived from `seed`.
    pub fn set(&self, spec: &LinkSpec, seed: u64) {
        for (i, dir) in self.dirs.iter().enumerate() {
            let stream = seed ^ (0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(i as u64 + 1));
            *dir.lock().unwrap_or_else(PoisonError::into_inner) = Netem::new(spec.clone(), stream);
        }
    }

    /// The one-way delay of the server-to-client direction.
    pub fn down_delay(&self) -> std::time::Duration {
        self.dirs[Dir::Down as usize]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .spec()
            .delay
    }

    /// Decides the fate of a packet of `len` bytes entering direction `dir`
    /// now, counting it. `None` for a packet that is dropped.
    pub fn admit(&self, dir: Dir, len: usize) -> Option<Instant> {
        let counters = &self.counters[dir as usize];
        let bytes = len as u64;
        counters.largest.fetch_max(bytes, Ordering::Relaxed);
        if len > self.mtu {
            counters.oversize.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        counters.offered.fetch_add(1, Ordering::Relaxed);
        counters.offered_bytes.fetch_add(bytes, Ordering::Relaxed);
        let verdict = self.dirs[dir as usize]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .admit(now(), len);
        let dropped = match verdict {
            Verdict::Deliver(at) => return Some(at),
            Verdict::Lost => &counters.lost,
            Verdict::QueueFull => &counters.queue_dropped,
        };
        dropped.fetch_add(1, Ordering::Relaxed);
        counters.resolve(len);
        None
    }

    /// Counts an IPv4 fragment seen in direction `dir`.
    pub fn count_fragment(&self, dir: Dir) {
        self.counters[dir as usize]
            .fragments
            .fetch_add(1, Ordering::Relaxed);
    }

    /// The counters of both directions, client to server first.
    pub fn stats(&self) -> [DirStats; 2] {
        [self.counters[0].snapshot(), self.counters[1].snapshot()]
    }
}

impl WireMeter for Link {
    fn wire_bytes(&self) -> u64 {
        self.counters
            .iter()
            .map(|c| c.resolved_bytes.load(Ordering::Relaxed))
            .sum()
    }

    fn report_delay(&self) -> std::time::Duration {
        self.down_delay()
    }
}

/// A wire meter that adds `per_packet` bytes of headers to every packet
/// the link counted (the UDP relay counts UDP payloads).
pub struct WithHeaders {
    /// The link.
    pub link: Arc<Link>,
    /// Header bytes per packet.
    pub per_packet: u64,
}

impl WireMeter for WithHeaders {
    fn wire_bytes(&self) -> u64 {
        let packets: u64 = self
            .link
            .counters
            .iter()
            .map(|c| c.resolved.load(Ordering::Relaxed))
            .sum();
        self.link.wire_bytes() + packets * self.per_packet
    }

    fn report_delay(&self) -> std::time::Duration {
        self.link.down_delay()
    }
}

/// Most packets waiting in one delivery thread (far above a bandwidth-delay
/// product of the emulated links; a bound, not a queue model: the queue
/// model is the bottleneck in [`Netem`]).
pub const DELIVERY_BACKLOG: usize = 65_536;

/// Packets on their way to one side: a bounded channel into a thread that
/// writes each at its delivery time.
pub struct Delivery {
    tx: mpsc::SyncSender<(Instant, Vec<u8>)>,
}

impl Delivery {
    /// Starts the thread, which writes with `write` until every sender is
    /// dropped; returns the sender and the thread.
    pub fn spawn<W>(
        name: &str,
        link: Arc<Link>,
        dir: Dir,
        mut write: W,
    ) -> std::io::Result<(Self, JoinHandle<()>)>
    where
        W: FnMut(&[u8]) -> std::io::Result<()> + Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel::<(Instant, Vec<u8>)>(DELIVERY_BACKLOG);
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let counters = &link.counters[dir as usize];
                while let Ok((at, packet)) = rx.recv() {
                    let wait = at.saturating_duration_since(now());
                    if !wait.is_zero() {
                        std::thread::sleep(wait);
                    }
                    match write(&packet) {
                        Ok(()) => counters.delivered.fetch_add(1, Ordering::Relaxed),
                        Err(_) => counters.write_errors.fetch_add(1, Ordering::Relaxed),
                    };
                    counters.resolve(packet.len());
                }
            })?;
        Ok((Delivery { tx }, thread))
    }

    /// Queues `packet` for delivery at `at` (dropped, and counted as a
    /// failed write, if the backlog is full).
    pub fn send(&self, link: &Link, dir: Dir, at: Instant, packet: Vec<u8>) {
        let len = packet.len();
        if self.tx.try_send((at, packet)).is_err() {
            let counters = &link.counters[dir as usize];
            counters.write_errors.fetch_add(1, Ordering::Relaxed);
            counters.resolve(len);
        }
    }
}
