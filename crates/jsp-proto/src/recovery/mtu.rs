//! Path MTU discovery: packetization-layer PMTUD as RFC 8899 defines it and RFC 9000 §14.3
//! applies it to QUIC. Probes are ordinary 1-RTT packets, so the result is authenticated and
//! nothing depends on ICMP.
//!
//! The sender starts at the base size (1200 bytes, which every path must carry, PROTOCOL.md §4)
//! and searches upward to the smaller of the local `max_udp_payload_size` and the peer's. When
//! that bound is above the Ethernet plateau ([`ETHERNET_PLATEAU`], 1452), the plateau is probed
//! first (most paths carry it, so data moves at it after one round trip), then the bound itself;
//! if the bound fails the search stops at the plateau. Otherwise the first probe is the bound,
//! and after a failure the search bisects between the largest confirmed size and the largest
//! size not yet known to fail. A probe is one PING + PADDING
//! packet of exactly the probe size; a size fails after [`DEFAULT_MAX_PROBES`] lost probes
//! (RFC 8899 MAX_PROBES) and the upper bound drops below it. The search stops once the bounds are
//! within `search_tolerance` bytes, and starts again after `reprobe_interval` (RFC 8899
//! PMTU_RAISE_TIMER) if the current size is below the maximum.
//!
//! Black holes (a path that stops carrying large packets, e.g. after a route change) are detected
//! in two ways, and either one drops the size back to the base and restarts the search below the
//! size that stopped working:
//!
//! * **suspicious loss bursts**: a burst is a run of consecutively numbered lost packets; it is
//!   suspicious when every packet in it is larger than the base size. `black_hole_bursts` of
//!   them, with no larger-than-base packet sent after the first of them acknowledged, mean large
//!   packets die while small ones get through. Congestion losses do not trigger it on a busy
//!   path, because large packets keep being acknowledged between the bursts;
//! * **consecutive probe timeouts**: if every packet is large, nothing is acknowledged and no loss
//!   is ever declared; `black_hole_ptos` consecutive PTO expiries without an acknowledgement
//!   fall back too (harmless on a dead path: the search restarts once packets flow).
//!
//! Probe losses are not congestion signals (RFC 9000 §14.4): [`MtuDiscovery::on_lost`] says
//! which losses were probes so the caller can leave them out of its congestion response.

use core::time::Duration;

use crate::time::Instant;

/// The datagram size every path must carry (PROTOCOL.md §4; RFC 9000 §14, RFC 8899
/// BASE_PLPMTU for QUIC).
pub const BASE_UDP_PAYLOAD: u16 = 1200;

/// The UDP payload of a 1500-byte Ethernet MTU over IPv6 (1500 - 40 - 8): the size most paths
/// carry. It is probed before a larger upper bound, and if that bound then fails the search
/// stops here (RFC 8899 §5.3.2 allows a search over a table of common sizes).
pub const ETHERNET_PLATEAU: u16 = 1452;

/// Lost probes of one size before the size is declared too large (RFC 8899 MAX_PROBES).
pub const DEFAULT_MAX_PROBES: u8 = 3;

/// Time after a search completes before the next one, when below the maximum (RFC 8899
/// PMTU_RAISE_TIMER).
pub const DEFAULT_REPROBE_INTERVAL: Duration = Duration::from_secs(600);

/// The search stops when the confirmed size is within this many bytes of the smallest size known
/// to fail: the last 20 bytes are worth under 1.5% of a packet, not one more round trip.
pub const DEFAULT_SEARCH_TOLERANCE: u16 = 20;

/// Datagrams a connection sends before its first probe, unless [`SEARCH_DELAY`] passes first.
/// A connection that moves data gets there within a few round trips and a short exchange never
/// does: a connection opened for one request spends no datagram, no acknowledgement and no
/// decryption on sizes it will not use, and nothing competes with its first answers.
pub const SEARCH_AFTER_DATAGRAMS: u64 = 32;

/// Time from handshake confirmation after which the search starts even on a connection that has
/// sent fewer than [`SEARCH_AFTER_DATAGRAMS`] (an idle one, say).
pub const SEARCH_DELAY: Duration = Duration::from_secs(1);

/// Suspicious loss bursts that declare a black hole.
pub const DEFAULT_BLACK_HOLE_BURSTS: u32 = 3;

/// Consecutive probe timeouts without any acknowledgement that declare a black hole.
pub const DEFAULT_BLACK_HOLE_PTOS: u32 = 3;

/// Tuning of [`MtuDiscovery`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MtuConfig {
    /// Lost probes of one size before it is declared too large (0 counts as 1).
    pub max_probes: u8,
    /// Delay from the end of a search to the next one.
    pub reprobe_interval: Duration,
    /// Stop searching once the confirmed size is within this many bytes of the smallest failed
    /// size (0: find the exact size).
    pub search_tolerance: u16,
    /// Suspicious loss bursts that declare a black hole (0 counts as 1).
    pub black_hole_bursts: u32,
    /// Consecutive probe timeouts that declare a black hole (0 counts as 1).
    pub black_hole_ptos: u32,
}

impl Default for MtuConfig {
    fn default() -> Self {
        Self {
            max_probes: DEFAULT_MAX_PROBES,
            reprobe_interval: DEFAULT_REPROBE_INTERVAL,
            search_tolerance: DEFAULT_SEARCH_TOLERANCE,
            black_hole_bursts: DEFAULT_BLACK_HOLE_BURSTS,
            black_hole_ptos: DEFAULT_BLACK_HOLE_PTOS,
        }
    }
}

/// Counters for diagnostics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MtuStats {
    /// Probe packets sent.
    pub probes_sent: u64,
    /// Probe packets acknowledged.
    pub probes_acked: u64,
    /// Probe packets lost.
    pub probes_lost: u64,
    /// Black holes detected (each one a fall back to the base size).
    pub black_holes: u64,
}

/// Where the discovery is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MtuPhase {
    /// The maximum is the base size: nothing to discover.
    Disabled,
    /// Probing.
    Searching,
    /// Done until the re-probe interval passes.
    Complete,
}

#[derive(Clone, Copy, Debug)]
enum Phase {
    Disabled,
    /// `hi`: the largest size not known to fail. `bisect`: false while `hi` itself is untested.
    Searching {
        hi: u16,
        bisect: bool,
    },
    /// `at`: when the search ended (stamped at the first `poll_probe` after it did).
    Complete {
        at: Option<Instant>,
    },
}

#[derive(Clone, Copy, Debug)]
struct Probe {
    pn: u64,
    size: u16,
    /// Sent before a fall back: its fate says nothing about the current search.
    stale: bool,
}

#[derive(Clone, Copy, Debug)]
struct Burst {
    first_pn: u64,
    last_pn: u64,
    /// Every packet in it was larger than the base size.
    suspicious: bool,
}

#[derive(Clone, Debug, Default)]
struct BlackHoleDetector {
    burst: Option<Burst>,
    suspicious_bursts: u32,
    first_suspicious_pn: Option<u64>,
    largest_large_acked: Option<u64>,
    consecutive_ptos: u32,
}

impl BlackHoleDetector {
    /// Ends the current burst; returns the number of suspicious bursts.
    fn finish_burst(&mut self) -> u32 {
        if let Some(b) = self.burst.take() {
            if b.suspicious {
                self.suspicious_bursts = self.suspicious_bursts.saturating_add(1);
                let first = self
                    .first_suspicious_pn
                    .map_or(b.first_pn, |f| f.min(b.first_pn));
                self.first_suspicious_pn = Some(first);
            }
        }
        self.suspicious_bursts
    }

    /// A non-probe packet was lost; returns the number of suspicious bursts.
    fn on_lost(&mut self, pn: u64, large: bool) -> u32 {
        if large && self.largest_large_acked.is_some_and(|a| pn < a) {
            // A later large packet got through: this one is not evidence of a black hole.
            return self.suspicious_bursts;
        }
        match &mut self.burst {
            Some(b) if b.last_pn.checked_add(1) == Some(pn) => {
                b.last_pn = pn;
                b.suspicious &= large;
                self.suspicious_bursts
            }
            _ => {
                let n = self.finish_burst();
                self.burst = Some(Burst {
                    first_pn: pn,
                    last_pn: pn,
                    suspicious: large,
                });
                n
            }
        }
    }

    /// A lost probe: keeps a burst contiguous without judging it.
    fn on_probe_lost(&mut self, pn: u64) {
        if let Some(b) = &mut self.burst {
            if b.last_pn.checked_add(1) == Some(pn) {
                b.last_pn = pn;
            }
        }
    }

    /// A packet was acknowledged; returns the number of suspicious bursts.
    fn on_acked(&mut self, pn: u64, large: bool) -> u32 {
        self.consecutive_ptos = 0;
        if large {
            self.largest_large_acked = Some(self.largest_large_acked.map_or(pn, |a| a.max(pn)));
            if self.first_suspicious_pn.is_some_and(|f| pn > f) {
                self.suspicious_bursts = 0;
                self.first_suspicious_pn = None;
            }
            if self.burst.is_some_and(|b| pn > b.first_pn) {
                self.burst = None;
            }
        }
        if self.burst.is_some_and(|b| pn > b.last_pn) {
            // A later packet got through: the burst is over.
            return self.finish_burst();
        }
        self.suspicious_bursts
    }
}

/// Path MTU discovery for one path (see the module documentation).
#[derive(Clone, Debug)]
pub struct MtuDiscovery {
    config: MtuConfig,
    base: u16,
    /// The local maximum, then the smaller of it and the peer's.
    max: u16,
    current: u16,
    phase: Phase,
    probe: Option<Probe>,
    /// Probes of the current candidate size lost so far.
    failures: u8,
    black_hole: BlackHoleDetector,
    stats: MtuStats,
}

impl MtuDiscovery {
    /// Discovery from `base` (the size to start from and fall back to, at least
    /// [`BASE_UDP_PAYLOAD`]) up to `max` (the local `max_udp_payload_size`), with default
    /// tuning. A `max` at or below `base` disables it.
    pub fn new(base: u16, max: u16) -> Self {
        Self::with_config(base, max, MtuConfig::default())
    }

    /// The same with explicit tuning.
    pub fn with_config(base: u16, max: u16, config: MtuConfig) -> Self {
        let max = max.max(base);
        let mut d = Self {
            config,
            base,
            max,
            current: base,
            phase: Phase::Disabled,
            probe: None,
            failures: 0,
            black_hole: BlackHoleDetector::default(),
            stats: MtuStats::default(),
        };
        d.start_search(max, false);
        d
    }

    /// The datagram size the sender should use now (bytes of UDP payload).
    pub fn current(&self) -> u16 {
        self.current
    }

    /// The base size (start and fall-back).
    pub fn base(&self) -> u16 {
        self.base
    }

    /// The largest size discovery aims for: the smaller of the local and the peer's maximum.
    pub fn max(&self) -> u16 {
        self.max
    }

    /// Where the discovery is.
    pub fn phase(&self) -> MtuPhase {
        match self.phase {
            Phase::Disabled => MtuPhase::Disabled,
            Phase::Searching { .. } => MtuPhase::Searching,
            Phase::Complete { .. } => MtuPhase::Complete,
        }
    }

    /// Counters.
    pub fn stats(&self) -> MtuStats {
        self.stats
    }

    /// Size of a probe to send now, if one is due. Does not record anything: the caller may
    /// decline (no congestion window, say) and ask again later. When it sends the probe it calls
    /// [`Self::on_probe_sent`].
    #[must_use]
    pub fn poll_probe(&mut self, now: Instant) -> Option<u16> {
        if let Phase::Complete { at } = &mut self.phase {
            let done = *at.get_or_insert(now);
            if self.current < self.max && now >= done + self.config.reprobe_interval {
                self.start_search(self.max, false);
            }
        }
        if self.probe.is_some() {
            return None;
        }
        self.candidate()
    }

    /// A probe of `size` bytes went out as packet `pn`. Sizes not above [`Self::current`] are
    /// not probes and are ignored.
    pub fn on_probe_sent(&mut self, pn: u64, size: u16) {
        if size <= self.current {
            return;
        }
        self.probe = Some(Probe {
            pn,
            size,
            stale: false,
        });
        self.stats.probes_sent += 1;
    }

    /// Packet `pn` of `size` bytes (any ack-eliciting 1-RTT packet, probe or not) was
    /// acknowledged.
    pub fn on_acked(&mut self, pn: u64, size: u16) {
        let mut size = size;
        if let Some(p) = self.probe.filter(|p| p.pn == pn) {
            self.probe = None;
            self.stats.probes_acked += 1;
            size = p.size;
            if !p.stale && p.size > self.current && p.size <= self.max {
                if let Phase::Searching { hi, bisect } = self.phase {
                    self.current = p.size;
                    self.failures = 0;
                    // The plateau probe says nothing about the bound: still untested, unless
                    // it already failed.
                    let plateau = p.size == ETHERNET_PLATEAU && p.size < hi;
                    self.phase = Phase::Searching {
                        hi: hi.max(p.size),
                        bisect: bisect || !plateau,
                    };
                    self.check_complete();
                }
            }
        }
        let bursts = self.black_hole.on_acked(pn, size > self.base);
        if bursts >= self.config.black_hole_bursts.max(1) && self.current > self.base {
            self.fall_back();
        }
    }

    /// Packet `pn` of `size` bytes was declared lost. Returns `true` if it was an MTU probe: its
    /// loss is not a congestion signal and its (PING, PADDING) frames need no retransmission.
    #[must_use = "probe losses must be left out of the congestion response"]
    pub fn on_lost(&mut self, pn: u64, size: u16) -> bool {
        if let Some(p) = self.probe.filter(|p| p.pn == pn) {
            self.probe = None;
            self.stats.probes_lost += 1;
            self.black_hole.on_probe_lost(pn);
            if let Phase::Searching { hi, .. } = self.phase {
                if !p.stale && p.size > self.current && p.size <= hi {
                    self.failures = self.failures.saturating_add(1);
                    if self.failures >= self.config.max_probes.max(1) {
                        self.failures = 0;
                        self.phase = Phase::Searching {
                            hi: p.size - 1,
                            bisect: true,
                        };
                        self.check_complete();
                    }
                }
            }
            return true;
        }
        if self.current > self.base {
            let bursts = self.black_hole.on_lost(pn, size > self.base);
            if bursts >= self.config.black_hole_bursts.max(1) {
                self.fall_back();
            }
        }
        false
    }

    /// The probe timeout of the 1-RTT space fired. Acknowledgements ([`Self::on_acked`]) reset
    /// the count.
    pub fn on_pto(&mut self) {
        let d = &mut self.black_hole;
        d.consecutive_ptos = d.consecutive_ptos.saturating_add(1);
        if d.consecutive_ptos >= self.config.black_hole_ptos.max(1) && self.current > self.base {
            self.fall_back();
        }
    }

    /// The peer's `max_udp_payload_size` transport parameter: the search aims no higher.
    pub fn on_peer_max(&mut self, size: u64) {
        let peer = u16::try_from(size).unwrap_or(u16::MAX);
        self.max = self.max.min(peer).max(self.base);
        self.current = self.current.min(self.max);
        match &mut self.phase {
            Phase::Searching { hi, .. } => *hi = (*hi).min(self.max),
            Phase::Complete { .. } | Phase::Disabled => {}
        }
        if self.max <= self.base {
            self.phase = Phase::Disabled;
        }
        self.check_complete();
    }

    /// The path changed (migration): back to the base size and a new search.
    pub fn reset(&mut self) {
        self.current = self.base;
        self.black_hole = BlackHoleDetector::default();
        if let Some(p) = &mut self.probe {
            p.stale = true;
        }
        self.start_search(self.max, false);
    }

    /// Back to the base size: packets of the current size stop getting through.
    fn fall_back(&mut self) {
        let failed = self.current;
        tracing::debug!(failed, base = self.base, "MTU black hole: falling back");
        self.current = self.base;
        self.black_hole = BlackHoleDetector::default();
        if let Some(p) = &mut self.probe {
            p.stale = true;
        }
        self.stats.black_holes += 1;
        self.start_search(failed.saturating_sub(1), true);
    }

    fn start_search(&mut self, hi: u16, bisect: bool) {
        self.failures = 0;
        self.phase = if self.max <= self.base {
            Phase::Disabled
        } else {
            Phase::Searching {
                hi: hi.min(self.max).max(self.current),
                bisect,
            }
        };
        self.check_complete();
    }

    fn check_complete(&mut self) {
        if let Phase::Searching { hi, bisect } = self.phase {
            let narrow =
                u32::from(hi) <= u32::from(self.current) + u32::from(self.config.search_tolerance);
            // A larger size failed and the Ethernet plateau holds: the path is almost surely an
            // Ethernet one, and bisecting towards the failed size would only lose probes.
            let plateau = bisect && self.current == ETHERNET_PLATEAU && self.max > ETHERNET_PLATEAU;
            if narrow || plateau {
                self.phase = Phase::Complete { at: None };
            }
        }
    }

    /// The size to probe next.
    fn candidate(&self) -> Option<u16> {
        let Phase::Searching { hi, bisect } = self.phase else {
            return None;
        };
        if hi <= self.current {
            return None;
        }
        // The size most paths carry comes first: data moves at it while a larger upper bound
        // is tried (and, on most paths, fails).
        if self.current < ETHERNET_PLATEAU && ETHERNET_PLATEAU < hi {
            return Some(ETHERNET_PLATEAU);
        }
        if !bisect {
            return Some(hi);
        }
        let (lo, hi) = (u32::from(self.current), u32::from(hi));
        u16::try_from(lo + (hi - lo).div_ceil(2)).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// A sender over a path that carries datagrams up to `path_mtu` bytes. Each round it sends a
    /// probe if one is due, then `data` full-size packets followed by one small packet; then the
    /// path's verdicts come back (acknowledgements first, then losses, as a connection reports
    /// them).
    struct Sim {
        d: MtuDiscovery,
        now: Instant,
        next_pn: u64,
        path_mtu: u16,
        data: usize,
        large_lost: u64,
        probe_losses_seen: u64,
    }

    impl Sim {
        fn new(d: MtuDiscovery, path_mtu: u16) -> Self {
            Self {
                d,
                now: Instant::ZERO,
                next_pn: 0,
                path_mtu,
                data: 3,
                large_lost: 0,
                probe_losses_seen: 0,
            }
        }

        fn round(&mut self) {
            let mut sent = Vec::new();
            if let Some(size) = self.d.poll_probe(self.now) {
                self.d.on_probe_sent(self.next_pn, size);
                sent.push((self.next_pn, size, true));
                self.next_pn += 1;
            }
            for _ in 0..self.data {
                sent.push((self.next_pn, self.d.current(), false));
                self.next_pn += 1;
            }
            sent.push((self.next_pn, 100, false));
            self.next_pn += 1;
            for &(pn, size, _) in &sent {
                if size <= self.path_mtu {
                    self.d.on_acked(pn, size);
                }
            }
            for &(pn, size, probe) in &sent {
                if size > self.path_mtu {
                    let was_probe = self.d.on_lost(pn, size);
                    assert_eq!(was_probe, probe, "pn {pn}");
                    if probe {
                        self.probe_losses_seen += 1;
                    } else {
                        self.large_lost += 1;
                    }
                }
            }
            self.now += 100 * MS;
        }

        /// Runs until the search completes; returns the number of rounds.
        fn converge(&mut self, max_rounds: usize) -> usize {
            for r in 0..max_rounds {
                if self.d.phase() == MtuPhase::Complete {
                    return r;
                }
                self.round();
            }
            panic!("no convergence in {max_rounds} rounds: {:?}", self.d);
        }
    }

    #[test]
    fn everything_passes_converges_to_max_in_one_probe() {
        let mut sim = Sim::new(MtuDiscovery::new(1200, 1452), u16::MAX);
        assert_eq!(sim.d.current(), 1200);
        assert_eq!(sim.d.phase(), MtuPhase::Searching);
        let rounds = sim.converge(10);
        assert_eq!(sim.d.current(), 1452);
        assert_eq!(rounds, 1);
        assert_eq!(sim.d.stats().probes_sent, 1);
        // At the maximum, no more probes, ever.
        sim.now += Duration::from_secs(3600);
        assert_eq!(sim.d.poll_probe(sim.now), None);
    }

    #[test]
    fn a_jumbo_bound_settles_fast_on_ethernet_and_in_one_probe_on_jumbo_paths() {
        // A 1500-byte Ethernet path: the plateau holds, the jumbo probe fails three times, and
        // the search stops at the plateau instead of bisecting towards the failed size.
        let mut sim = Sim::new(MtuDiscovery::new(1200, 8952), 1452);
        let rounds = sim.converge(20);
        assert_eq!(sim.d.current(), ETHERNET_PLATEAU);
        assert_eq!(sim.d.stats().probes_sent, u64::from(DEFAULT_MAX_PROBES) + 1);
        assert!(rounds <= 5, "{rounds} rounds");
        assert_eq!(sim.large_lost, 0, "only probes were ever too large");
        // A jumbo-frame path (or loopback): two probes, the plateau then the bound.
        let mut sim = Sim::new(MtuDiscovery::new(1200, 8952), 9000);
        assert_eq!(sim.converge(10), 2);
        assert_eq!(sim.d.stats().probes_sent, 2);
        assert_eq!(sim.d.current(), 8952);
        // Below Ethernet, the plateau fails too and the search bisects as before.
        let mut sim = Sim::new(MtuDiscovery::new(1200, 8952), 1400);
        sim.converge(60);
        let mtu = sim.d.current();
        assert!(
            (1400 - DEFAULT_SEARCH_TOLERANCE..=1400).contains(&mtu),
            "{mtu}"
        );
    }

    #[test]
    fn converges_to_a_1400_byte_path() {
        let mut sim = Sim::new(MtuDiscovery::new(1200, 1452), 1400);
        let rounds = sim.converge(40);
        let mtu = sim.d.current();
        assert!(
            (1400 - DEFAULT_SEARCH_TOLERANCE..=1400).contains(&mtu),
            "{mtu}"
        );
        assert!(rounds <= 25, "{rounds} rounds");
        assert_eq!(sim.large_lost, 0, "only probes were ever too large");
        // Exact search.
        let cfg = MtuConfig {
            search_tolerance: 0,
            ..MtuConfig::default()
        };
        let mut sim = Sim::new(MtuDiscovery::with_config(1200, 1452, cfg), 1400);
        sim.converge(60);
        assert_eq!(sim.d.current(), 1400);
        // Every failed size cost exactly max_probes lost probes.
        assert_eq!(sim.probe_losses_seen % u64::from(DEFAULT_MAX_PROBES), 0);
    }

    #[test]
    fn peer_limit_caps_the_search() {
        let mut d = MtuDiscovery::new(1200, 1452);
        d.on_peer_max(1300);
        assert_eq!(d.max(), 1300);
        let mut sim = Sim::new(d, u16::MAX);
        sim.converge(10);
        assert_eq!(sim.d.current(), 1300);
        // A peer limit at the base disables discovery; a huge one changes nothing.
        let mut d = MtuDiscovery::new(1200, 1452);
        d.on_peer_max(u64::MAX);
        assert_eq!(d.max(), 1452);
        d.on_peer_max(1200);
        assert_eq!(d.phase(), MtuPhase::Disabled);
        assert_eq!(d.poll_probe(Instant::ZERO), None);
        assert_eq!(MtuDiscovery::new(1200, 1200).phase(), MtuPhase::Disabled);
    }

    #[test]
    fn reprobes_after_the_interval() {
        let mut sim = Sim::new(MtuDiscovery::new(1200, 1452), 1400);
        sim.converge(40);
        let first = sim.d.current();
        // Nothing until the interval has passed.
        for _ in 0..100 {
            sim.round();
        }
        assert_eq!(sim.d.phase(), MtuPhase::Complete);
        assert!(sim.d.poll_probe(sim.now).is_none());
        // The path grows; the next search finds it.
        sim.path_mtu = 1452;
        sim.now += DEFAULT_REPROBE_INTERVAL;
        assert_eq!(sim.d.poll_probe(sim.now), Some(1452));
        sim.converge(10);
        assert!(sim.d.current() > first);
        assert_eq!(sim.d.current(), 1452);
    }

    #[test]
    fn black_hole_falls_back_and_searches_again() {
        let mut sim = Sim::new(MtuDiscovery::new(1200, 1452), u16::MAX);
        sim.converge(10);
        assert_eq!(sim.d.current(), 1452);
        // The route changes: nothing above 1200 passes any more.
        sim.path_mtu = 1200;
        let mut rounds = 0;
        while sim.d.current() > 1200 {
            sim.round();
            rounds += 1;
            assert!(rounds < 10, "no fall back after {} losses", sim.large_lost);
        }
        // Three bursts of `data` packets each, the fourth ends the third: bounded by
        // (black_hole_bursts + 1) * burst length.
        let bound = u64::from(DEFAULT_BLACK_HOLE_BURSTS + 1) * 3;
        assert!(sim.large_lost <= bound, "{} large losses", sim.large_lost);
        assert_eq!(sim.d.stats().black_holes, 1);
        // The search restarts below the size that failed and settles at the base.
        assert_eq!(sim.d.phase(), MtuPhase::Searching);
        assert!(sim.d.poll_probe(sim.now).is_some_and(|s| s < 1452));
        sim.converge(40);
        assert!(sim.d.current() <= 1200 + DEFAULT_SEARCH_TOLERANCE);
        let lost_after_fallback = sim.large_lost;
        for _ in 0..50 {
            sim.round();
        }
        assert_eq!(
            sim.large_lost, lost_after_fallback,
            "no data lost once settled"
        );
        // The path recovers; the periodic search climbs back to the maximum.
        sim.path_mtu = 1500;
        sim.now += DEFAULT_REPROBE_INTERVAL;
        sim.round(); // the re-search starts at the first poll after the interval
        sim.converge(10);
        assert_eq!(sim.d.current(), 1452);
    }

    #[test]
    fn black_hole_with_only_large_packets_falls_back_on_probe_timeouts() {
        let mut sim = Sim::new(MtuDiscovery::new(1200, 1452), u16::MAX);
        sim.converge(10);
        // Nothing is acknowledged, so nothing is declared lost: only PTOs fire.
        sim.d.on_pto();
        sim.d.on_pto();
        assert_eq!(sim.d.current(), 1452);
        sim.d.on_pto();
        assert_eq!(sim.d.current(), 1200);
        // An acknowledgement between timeouts resets the count.
        let mut d = MtuDiscovery::new(1200, 1452);
        d.on_probe_sent(0, 1452);
        d.on_acked(0, 1452);
        assert_eq!(d.current(), 1452);
        d.on_pto();
        d.on_pto();
        d.on_acked(5, 1452);
        d.on_pto();
        d.on_pto();
        assert_eq!(d.current(), 1452);
    }

    #[test]
    fn congestion_losses_do_not_look_like_a_black_hole() {
        let mut d = MtuDiscovery::new(1200, 1452);
        d.on_probe_sent(0, 1452);
        d.on_acked(0, 1452);
        // A bulk transfer of full-size packets with bursts of tail drops: later large packets
        // are acknowledged between the bursts.
        let mut pn = 1;
        for _ in 0..100 {
            for _ in 0..20 {
                d.on_acked(pn, 1452);
                pn += 1;
            }
            for _ in 0..5 {
                assert!(!d.on_lost(pn, 1452));
                pn += 1;
            }
        }
        assert_eq!(d.current(), 1452);
        // Losses that hit small packets too are not suspicious either.
        for _ in 0..10 {
            d.on_acked(pn + 3, 100);
            assert!(!d.on_lost(pn, 1452));
            assert!(!d.on_lost(pn + 1, 100));
            assert!(!d.on_lost(pn + 2, 1452));
            pn += 4;
        }
        assert_eq!(d.current(), 1452);
        assert_eq!(d.stats().black_holes, 0);
    }

    #[test]
    fn probe_bookkeeping() {
        let mut d = MtuDiscovery::new(1200, 1452);
        let now = Instant::ZERO;
        assert_eq!(d.poll_probe(now), Some(1452));
        // Declining to send leaves it due.
        assert_eq!(d.poll_probe(now), Some(1452));
        d.on_probe_sent(7, 1452);
        assert_eq!(d.poll_probe(now), None, "one probe in flight at a time");
        for attempt in 1..=DEFAULT_MAX_PROBES {
            assert!(d.on_lost(7 + u64::from(attempt) * 10 - 10, 1452));
            if attempt < DEFAULT_MAX_PROBES {
                assert_eq!(d.poll_probe(now), Some(1452), "retry the same size");
                d.on_probe_sent(7 + u64::from(attempt) * 10, 1452);
            }
        }
        // Three losses: the upper bound drops and the search bisects.
        assert_eq!(d.poll_probe(now), Some(1326));
        // Not-a-probe sizes are ignored.
        d.on_probe_sent(100, 1200);
        assert_eq!(d.poll_probe(now), Some(1326));
        // A stale probe (sent before a reset) neither confirms nor refutes anything.
        d.on_probe_sent(101, 1326);
        d.reset();
        d.on_acked(101, 1326);
        assert_eq!(d.current(), 1200);
        assert_eq!(d.poll_probe(now), Some(1452));
    }
}
