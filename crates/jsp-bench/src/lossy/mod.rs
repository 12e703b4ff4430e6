//! The loss benchmarks: goodput, real-time latency and wire overhead
//! through random and bursty loss at 20 ms and 100 ms RTT.
//!
//! Two harnesses run the same scenarios ([`SCENARIOS`]):
//!
//! - **Real sockets** (`--scenario loss`, or one scenario such as
//!   `loss-5-20`, `burst-100`): jsp, jsp-nofec, quinn and (bulk only)
//!   tcp-tls, every one through the same emulated link. The link is a
//!   userspace netem ([`netem`]) between two network namespaces joined by
//!   TUN devices ([`tun_path`]); where namespaces or TUN devices are not
//!   available, a lossy UDP relay on loopback ([`udp_relay`], UDP peers
//!   only). `--loss-path` picks one.
//! - **Simulator** (`--scenario sim-loss`, or `sim-loss-5-20` ...; needs
//!   `--features sim`): jsp (and jsp-nofec) on jsp-sim with the same link
//!   model, in process and on virtual time: reproducible from the seed
//!   ([`sim`]).
//!
//! Scenario names are `loss-<percent>-<rtt ms>` and `burst-<rtt ms>`
//! (`sim-` in front for the simulator); metrics `goodput_mbps`,
//! `goodput_ratio` (over the same implementation's goodput on the same
//! link without loss, `loss-0-<rtt>`, which every run includes),
//! `wire_bytes_per_useful_byte`, `rt_p50_ms`, `rt_p99_ms`, `rt_p999_ms`,
//! `deadline_miss_ratio` and `rt_wire_bytes_per_useful_byte`.

pub mod netem;
pub mod relay;
#[cfg(feature = "sim")]
pub mod sim;
pub mod tun_path;
pub mod udp_relay;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::Notify;

use self::netem::{LinkSpec, LossSpec};
use self::relay::Link;
use crate::child::ServerProcess;
use crate::model::{median, Sample};
use crate::peers::{ImplKind, ServerInfo};
use crate::plan::LossPlan;
use crate::runner::{with_client, Outcome, Scenario};
use crate::scenarios::loss::{self as measure, RealtimeSpec, WireMeter};
use crate::scenarios::Measure;

/// The deadline a real-time message's echo must meet.
pub const DEADLINE: Duration = Duration::from_millis(150);

/// How long a real-time run waits for echoes after its last send.
pub const RT_GRACE: Duration = Duration::from_secs(2);

/// The burst model: Gilbert-Elliott with every packet lost in the bad
/// state and none in the good one, bursts of 4 packets on average
/// (`p_bad_to_good` = 1/4) and 5% loss overall.
pub const BURST: LossSpec = LossSpec::GilbertElliott {
    p_good_to_bad: 0.05 * 0.25 / 0.95,
    p_bad_to_good: 0.25,
    loss_in_good: 0.0,
    loss_in_bad: 1.0,
};

/// The seed every scenario's loss pattern derives from.
pub const SEED: u64 = 0x4a53_5020_6c6f_7373;

/// One loss scenario: its names and its link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LossScenario {
    /// Name of the real-socket scenario (`loss-5-20`, `burst-20`).
    pub id: &'static str,
    /// Name of the simulator scenario (`sim-loss-5-20`, `sim-burst-20`).
    pub sim_id: &'static str,
    /// Random loss in percent, or `None` for [`BURST`].
    pub percent: Option<u32>,
    /// Round-trip time in milliseconds.
    pub rtt_ms: u64,
}

macro_rules! scenario {
    ($percent:literal, $rtt:literal) => {
        LossScenario {
            id: concat!("loss-", $percent, "-", $rtt),
            sim_id: concat!("sim-loss-", $percent, "-", $rtt),
            percent: Some($percent),
            rtt_ms: $rtt,
        }
    };
    (burst, $rtt:literal) => {
        LossScenario {
            id: concat!("burst-", $rtt),
            sim_id: concat!("sim-burst-", $rtt),
            percent: None,
            rtt_ms: $rtt,
        }
    };
}

/// Every loss scenario, in the order a run measures them (the lossless
/// baselines first).
pub const SCENARIOS: [LossScenario; 12] = [
    scenario!(0, 20),
    scenario!(1, 20),
    scenario!(5, 20),
    scenario!(10, 20),
    scenario!(20, 20),
    scenario!(burst, 20),
    scenario!(0, 100),
    scenario!(1, 100),
    scenario!(5, 100),
    scenario!(10, 100),
    scenario!(20, 100),
    scenario!(burst, 100),
];

impl LossScenario {
    /// The loss in each direction.
    pub fn loss(&self) -> LossSpec {
        match self.percent {
            Some(percent) => LossSpec::Random(f64::from(percent) / 100.0),
            None => BURST,
        }
    }

    /// The round-trip time.
    pub fn rtt(&self) -> Duration {
        Duration::from_millis(self.rtt_ms)
    }

    /// Whether this is a lossless baseline.
    pub fn is_baseline(&self) -> bool {
        self.percent == Some(0)
    }

    /// The lossless scenario on the same link.
    pub fn baseline(&self) -> LossScenario {
        SCENARIOS
            .iter()
            .copied()
            .find(|s| s.is_baseline() && s.rtt_ms == self.rtt_ms)
            .unwrap_or(*self)
    }

    /// The scenario named `id` (real-socket or simulator name).
    pub fn by_id(id: &str) -> Option<LossScenario> {
        SCENARIOS
            .iter()
            .copied()
            .find(|s| s.id == id || s.sim_id == id)
    }

    /// The loss for labels: `5%` or `burst`.
    pub fn loss_label(&self) -> String {
        match self.percent {
            Some(percent) => format!("{percent}%"),
            None => "burst".into(),
        }
    }
}

/// Which harness a loss scenario runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Harness {
    /// Real sockets through the emulated link.
    Real,
    /// The in-process simulator.
    Sim,
}

/// One `--scenario` value: a scenario of the main plan, or loss scenarios.
#[derive(Clone, Debug, PartialEq)]
pub enum Selection {
    /// A scenario of the main plan (`bulk`, `rr64`, ...).
    Classic(Scenario),
    /// Loss scenarios on one harness.
    Loss(Harness, Vec<LossScenario>),
}

/// Parses one `--scenario` value: a main scenario, `loss` (every
/// real-socket loss scenario), `sim-loss` (every simulator one), or one
/// loss scenario by name.
pub fn parse_selection(value: &str) -> Result<Selection, String> {
    match value {
        "loss" => return Ok(Selection::Loss(Harness::Real, SCENARIOS.to_vec())),
        "sim-loss" => return Ok(Selection::Loss(Harness::Sim, SCENARIOS.to_vec())),
        _ => {}
    }
    if let Some(s) = SCENARIOS.iter().find(|s| s.id == value) {
        return Ok(Selection::Loss(Harness::Real, vec![*s]));
    }
    if let Some(s) = SCENARIOS.iter().find(|s| s.sim_id == value) {
        return Ok(Selection::Loss(Harness::Sim, vec![*s]));
    }
    // The scenario's own id (`handshake_rate`, as in the table and the JSON) or clap's
    // kebab-case spelling of it (`handshake-rate`).
    if let Some(s) = Scenario::ALL.iter().find(|s| s.id() == value) {
        return Ok(Selection::Classic(*s));
    }
    <Scenario as clap::ValueEnum>::from_str(value, true)
        .map(Selection::Classic)
        .map_err(|_| {
            let classic: Vec<&str> = Scenario::ALL.iter().map(|s| s.id()).collect();
            format!(
                "unknown scenario {value:?}: one of {}, loss, sim-loss, {} (and sim-<name> of each)",
                classic.join(", "),
                SCENARIOS.map(|s| s.id).join(", ")
            )
        })
}

/// Which real-socket path to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum PathChoice {
    /// Namespaces and TUN devices where available, else the UDP relay.
    #[default]
    Auto,
    /// Network namespaces joined by TUN devices (root, /dev/net/tun, `ip`).
    Tun,
    /// A lossy UDP relay on loopback (UDP peers only).
    Udp,
}

/// The implementations the loss benchmarks measure by default, in column
/// order.
pub const LOSS_IMPLS: [ImplKind; 4] = [
    ImplKind::Jsp,
    ImplKind::JspNofec,
    ImplKind::Quinn,
    ImplKind::TcpTls,
];

/// Also measured when asked for with `--impl`: jsp with path MTU discovery
/// capped at 1452 bytes (no jumbo probes), to tell path-MTU effects from
/// loss recovery.
pub const LOSS_IMPLS_OPTIONAL: [ImplKind; 1] = [ImplKind::Jsp1452];

/// Whether `kind` runs the real-time measurement (tcp-tls is measured for
/// bulk only).
fn has_realtime(kind: ImplKind) -> bool {
    kind != ImplKind::TcpTls
}

/// Everything the loss runner needs.
pub struct LossRunner {
    /// The `jsp-bench` executable (started as `serve`).
    pub exe: PathBuf,
    /// Sizes.
    pub plan: LossPlan,
    /// Repetitions.
    pub runs: usize,
    /// Implementations asked for on the command line (empty: all of
    /// [`LOSS_IMPLS`] that can run).
    pub impls: Vec<ImplKind>,
    /// Real-socket scenarios.
    pub real: Vec<LossScenario>,
    /// Simulator scenarios.
    pub sim: Vec<LossScenario>,
    /// Which real-socket path.
    pub path: PathChoice,
    /// Longest one measurement may take.
    pub run_timeout: Duration,
}

/// Set by SIGINT/SIGTERM while the loss runner runs.
#[derive(Default)]
struct Interrupt {
    flag: AtomicBool,
    notify: Notify,
}

impl Interrupt {
    fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Listens for SIGINT and SIGTERM on `runtime` for as long as it runs.
    fn listen(self: &Arc<Self>, runtime: &tokio::runtime::Runtime) {
        let this = self.clone();
        runtime.spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                return;
            };
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            this.flag.store(true, Ordering::SeqCst);
            this.notify.notify_waiters();
        });
    }

    /// Resolves once interrupted.
    async fn wait(&self) {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if !self.is_set() {
            notified.await;
        }
    }
}

/// Orders scenarios with each RTT's lossless baseline added (if missing)
/// and first.
fn with_baselines(selected: &[LossScenario]) -> Vec<LossScenario> {
    SCENARIOS
        .iter()
        .copied()
        .filter(|s| {
            selected.contains(s)
                || (s.is_baseline() && selected.iter().any(|x| x.rtt_ms == s.rtt_ms))
        })
        .collect()
}

/// A different loss pattern for every scenario and repetition, the same
/// on every run of the harness.
fn seed_for(scenario: &LossScenario, run: usize) -> u64 {
    let index = SCENARIOS.iter().position(|s| s == scenario).unwrap_or(0) as u64;
    SEED ^ (index << 32) ^ run as u64
}

/// Appends a `goodput_ratio` sample after every `goodput_mbps` sample: the
/// goodput over the median goodput of the same implementation on the
/// lossless scenario of the same link (which `baseline_of` names).
pub fn add_goodput_ratios(
    samples: Vec<Sample>,
    baseline_of: impl Fn(&str) -> Option<&'static str>,
) -> Vec<Sample> {
    let baseline = |scenario: &str, implementation: &str| {
        let base = baseline_of(scenario)?;
        let values: Vec<f64> = samples
            .iter()
            .filter(|s| {
                s.scenario == base
                    && s.implementation == implementation
                    && s.metric == "goodput_mbps"
            })
            .map(|s| s.value)
            .collect();
        let m = median(&values);
        (m.is_finite() && m > 0.0).then_some(m)
    };
    let mut out = Vec::with_capacity(samples.len() * 2);
    for sample in &samples {
        out.push(sample.clone());
        if sample.metric == "goodput_mbps" {
            if let Some(base) = baseline(sample.scenario, sample.implementation) {
                out.push(Sample {
                    metric: "goodput_ratio",
                    unit: "",
                    value: sample.value / base,
                    ..sample.clone()
                });
            }
        }
    }
    out
}

/// A running server as the clients reach it.
struct Server {
    kind: ImplKind,
    _process: ServerProcess,
    info: ServerInfo,
    _relay: Option<udp_relay::UdpRelay>,
}

/// The real-socket path in use.
enum Path {
    Tun(tun_path::TunPath),
    Udp(Arc<Link>),
}

impl LossRunner {
    /// Runs the selected loss scenarios, printing progress on standard
    /// error. Builds its own runtimes: call it outside any runtime.
    pub fn run(&self) -> Outcome {
        let mut outcome = Outcome::default();
        if !self.real.is_empty() {
            self.run_real(&mut outcome);
        }
        if !self.sim.is_empty() {
            self.run_sim(&mut outcome);
        }
        outcome
    }

    /// The implementations to measure: those asked for by name, or the loss
    /// set, among those the scenario allows.
    fn kinds(&self, allowed: &[ImplKind]) -> Vec<ImplKind> {
        let asked = !self.impls.is_empty();
        let kinds: Vec<ImplKind> = LOSS_IMPLS_OPTIONAL
            .into_iter()
            .filter(|k| self.impls.contains(k))
            .chain(
                LOSS_IMPLS
                    .into_iter()
                    .filter(|k| !asked || self.impls.contains(k)),
            )
            .filter(|k| allowed.contains(k))
            .collect();
        kinds
    }

    fn open_path(&self) -> anyhow::Result<Path> {
        let tun = || -> anyhow::Result<Path> {
            let link = Link::new(usize::from(tun_path::MTU));
            Ok(Path::Tun(tun_path::TunPath::new(link)?))
        };
        let udp = || Path::Udp(Link::new(udp_relay::MAX_PAYLOAD));
        match self.path {
            PathChoice::Tun => tun(),
            PathChoice::Udp => Ok(udp()),
            PathChoice::Auto => match tun_path::unavailable_reason() {
                None => tun().or_else(|err| {
                    eprintln!("  note: namespaces and TUN devices unusable ({err:#}); using the UDP relay");
                    Ok(udp())
                }),
                Some(why) => {
                    eprintln!("  note: {why}; using the UDP relay on loopback (UDP peers only)");
                    Ok(udp())
                }
            },
        }
    }

    fn run_real(&self, outcome: &mut Outcome) {
        let path = match self.open_path() {
            Ok(path) => path,
            Err(err) => {
                outcome.failures.push(format!("loss path: {err:#}"));
                return;
            }
        };
        let (link, allowed, label): (Arc<Link>, &[ImplKind], String) = match &path {
            Path::Tun(tun) => (
                tun.link().clone(),
                &[
                    ImplKind::Jsp,
                    ImplKind::Jsp1452,
                    ImplKind::JspNofec,
                    ImplKind::Quinn,
                    ImplKind::TcpTls,
                ],
                format!(
                    "namespaces + TUN relay (kernel TCP congestion control: {})",
                    tun.tcp_congestion_control()
                        .unwrap_or_else(|| "unknown".into())
                ),
            ),
            Path::Udp(link) => (
                link.clone(),
                &[
                    ImplKind::Jsp,
                    ImplKind::Jsp1452,
                    ImplKind::JspNofec,
                    ImplKind::Quinn,
                ],
                "UDP relay on loopback (no tcp-tls)".into(),
            ),
        };
        let kinds = self.kinds(allowed);
        let client = match &path {
            Path::Tun(tun) => tun.client_runtime().map(|c| {
                let flag = c.failed_flag();
                (c.runtime, Some(flag))
            }),
            Path::Udp(_) => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .context("building the client runtime")
                .map(|rt| (rt, None)),
        };
        let (runtime, netns_failed) = match client {
            Ok(client) => client,
            Err(err) => {
                outcome
                    .failures
                    .push(format!("loss client runtime: {err:#}"));
                return;
            }
        };
        let interrupt = Arc::new(Interrupt::default());
        interrupt.listen(&runtime);
        let meter: Arc<dyn WireMeter> = match &path {
            Path::Tun(_) => link.clone(),
            Path::Udp(_) => Arc::new(relay::WithHeaders {
                link: link.clone(),
                per_packet: udp_relay::HEADER_BYTES,
            }),
        };
        eprintln!(
            "loss benchmarks, real sockets through {label}: {} Mbit/s each way, queue of one BDP, {} run(s)",
            self.plan.rate_bps / 1_000_000,
            self.runs
        );
        let mut servers = Vec::new();
        for &kind in &kinds {
            let started = match &path {
                Path::Tun(tun) => tun.spawn_server(&self.exe, kind).map(|p| {
                    let info = p.info().clone();
                    (p, info, None)
                }),
                Path::Udp(link) => ServerProcess::spawn(&self.exe, kind, &Default::default())
                    .and_then(|p| {
                        let relay = udp_relay::UdpRelay::start(link.clone(), p.info().addr)?;
                        let info = ServerInfo {
                            addr: relay.addr(),
                            trust: p.info().trust.clone(),
                        };
                        Ok((p, info, Some(relay)))
                    }),
            };
            match started {
                Ok((process, info, relay)) => servers.push(Server {
                    kind,
                    _process: process,
                    info,
                    _relay: relay,
                }),
                Err(err) => outcome
                    .failures
                    .push(format!("loss {}: starting the server: {err:#}", kind.id())),
            }
        }
        let mut samples = Vec::new();
        'scenarios: for scenario in with_baselines(&self.real) {
            for run in 1..=self.runs {
                let spec = LinkSpec::new(scenario.rtt(), self.plan.rate_bps, scenario.loss());
                link.set(&spec, seed_for(&scenario, run));
                let before = link.stats();
                for server in &servers {
                    if interrupt.is_set() {
                        break 'scenarios;
                    }
                    let kind = server.kind;
                    let mut measures = Vec::new();
                    let mut failed = false;
                    let parts: &[Part] = if has_realtime(kind) {
                        &[Part::Bulk, Part::Realtime]
                    } else {
                        &[Part::Bulk]
                    };
                    for &part in parts {
                        let result = runtime.block_on(self.measure(
                            part,
                            scenario.rtt(),
                            kind,
                            server.info.clone(),
                            meter.clone(),
                            interrupt.clone(),
                        ));
                        let result = result.and_then(|m| match &netns_failed {
                            Some(flag) if flag.load(Ordering::SeqCst) => Err(anyhow::anyhow!(
                                "a client thread could not join the client namespace"
                            )),
                            _ => Ok(m),
                        });
                        match result {
                            Ok(m) => measures.extend(m),
                            Err(err) => {
                                failed = true;
                                eprintln!(
                                    "  {:<14} run {run}/{} {:<9} FAILED: {err:#}",
                                    scenario.id,
                                    self.runs,
                                    kind.id()
                                );
                                outcome.failures.push(format!(
                                    "{} {} run {run}: {err:#}",
                                    scenario.id,
                                    kind.id()
                                ));
                            }
                        }
                    }
                    if !failed || !measures.is_empty() {
                        eprintln!(
                            "  {:<14} run {run}/{} {:<9} {}",
                            scenario.id,
                            self.runs,
                            kind.id(),
                            describe(&measures)
                        );
                    }
                    samples.extend(measures.into_iter().map(|m| Sample {
                        scenario: scenario.id,
                        implementation: kind.id(),
                        metric: m.metric,
                        unit: m.unit,
                        value: m.value,
                    }));
                }
                report_link(
                    &link,
                    &before,
                    &scenario,
                    matches!(path, Path::Tun(_)),
                    outcome,
                );
            }
        }
        if interrupt.is_set() {
            outcome.failures.push("interrupted".into());
        }
        drop(servers);
        outcome.samples.extend(add_goodput_ratios(samples, |id| {
            LossScenario::by_id(id).map(|s| s.baseline().id)
        }));
        // The servers are gone; the client runtime, then the path (relay,
        // namespaces) go now.
        runtime.shutdown_timeout(Duration::from_secs(2));
        drop(path);
    }

    /// One measurement on the client runtime, bounded by the run timeout
    /// and abandoned on an interrupt.
    async fn measure(
        &self,
        part: Part,
        rtt: Duration,
        kind: ImplKind,
        info: ServerInfo,
        meter: Arc<dyn WireMeter>,
        interrupt: Arc<Interrupt>,
    ) -> anyhow::Result<Vec<Measure>> {
        let plan = self.plan.clone();
        let warmup = plan.bulk_warmup_for(rtt);
        let rt = RealtimeSpec {
            rate: plan.rt_rate,
            messages: plan.rt_messages,
            deadline: DEADLINE,
            grace: RT_GRACE,
        };
        let work = async move {
            with_client!(kind, C => match part {
                Part::Bulk => {
                    measure::bulk_goodput::<C>(&info, warmup, plan.bulk_window, meter).await
                }
                Part::Realtime => measure::realtime::<C>(&info, rt, meter).await,
            })
        };
        // Spawned, so that it runs on the runtime's threads (in the client
        // namespace), not on the thread calling block_on.
        let task = tokio::spawn(tokio::time::timeout(self.run_timeout, work));
        let abort = task.abort_handle();
        tokio::select! {
            joined = task => joined
                .context("the measurement task failed")?
                .with_context(|| format!("no result within {:?}", self.run_timeout))?,
            () = interrupt.wait() => {
                abort.abort();
                anyhow::bail!("interrupted")
            }
        }
    }

    #[cfg(not(feature = "sim"))]
    fn run_sim(&self, outcome: &mut Outcome) {
        outcome.failures.push(
            "the simulator loss scenarios need jsp-bench built with `--features sim` \
             (cargo run --release -p jsp-bench --features sim -- --scenario sim-loss)"
                .into(),
        );
    }

    #[cfg(feature = "sim")]
    fn run_sim(&self, outcome: &mut Outcome) {
        let kinds = self.kinds(&[ImplKind::Jsp, ImplKind::JspNofec]);
        let interrupt = Arc::new(Interrupt::default());
        // The simulator needs no runtime; one worker listens for signals.
        let listener = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build();
        if let Ok(listener) = &listener {
            interrupt.listen(listener);
        }
        eprintln!(
            "loss benchmarks, simulator (jsp-sim, virtual time): {} Mbit/s each way, queue of one BDP, {} run(s)",
            self.plan.sim_rate_bps / 1_000_000,
            self.runs
        );
        let mut samples = Vec::new();
        'scenarios: for scenario in with_baselines(&self.sim) {
            let spec = sim::SimSpec {
                rtt: scenario.rtt(),
                rate_bps: self.plan.sim_rate_bps,
                loss: scenario.loss(),
                bulk_warmup: self.plan.sim_bulk_warmup_for(scenario.rtt()),
                bulk_window: self.plan.sim_bulk_window,
                rt: RealtimeSpec {
                    rate: self.plan.rt_rate,
                    messages: self.plan.sim_rt_messages,
                    deadline: DEADLINE,
                    grace: RT_GRACE,
                },
            };
            for run in 1..=self.runs {
                for &kind in &kinds {
                    if interrupt.is_set() {
                        outcome.failures.push("interrupted".into());
                        break 'scenarios;
                    }
                    let result = sim_measure(kind, seed_for(&scenario, run), &spec);
                    match result {
                        Ok(measures) => {
                            eprintln!(
                                "  {:<18} run {run}/{} {:<9} {}",
                                scenario.sim_id,
                                self.runs,
                                kind.id(),
                                describe(&measures)
                            );
                            samples.extend(measures.into_iter().map(|m| Sample {
                                scenario: scenario.sim_id,
                                implementation: kind.id(),
                                metric: m.metric,
                                unit: m.unit,
                                value: m.value,
                            }));
                        }
                        Err(err) => {
                            eprintln!(
                                "  {:<18} run {run}/{} {:<9} FAILED: {err:#}",
                                scenario.sim_id,
                                self.runs,
                                kind.id()
                            );
                            outcome.failures.push(format!(
                                "{} {} run {run}: {err:#}",
                                scenario.sim_id,
                                kind.id()
                            ));
                        }
                    }
                }
            }
        }
        outcome.samples.extend(add_goodput_ratios(samples, |id| {
            LossScenario::by_id(id).map(|s| s.baseline().sim_id)
        }));
    }
}

/// Both simulator measurements of one implementation.
#[cfg(feature = "sim")]
fn sim_measure(kind: ImplKind, seed: u64, spec: &sim::SimSpec) -> anyhow::Result<Vec<Measure>> {
    let mut transport = crate::peers::jsp::transport();
    if kind == ImplKind::JspNofec {
        crate::peers::jsp_nofec::disable_fec(&mut transport);
    }
    let mut measures = sim::bulk(seed, spec, &transport)?;
    measures.extend(sim::realtime(seed ^ 0x5254, spec, &transport)?);
    Ok(measures)
}

/// The two measurements of a real-socket run.
#[derive(Clone, Copy, Debug)]
enum Part {
    Bulk,
    Realtime,
}

/// Prints what the link did during one repetition. On the TUN path
/// (`strict`), a packet above the MTU or an IP fragment fails the run:
/// offloads would have been on, or a stack would have fragmented. On the
/// UDP relay, datagrams above 1472 bytes are path MTU probes that the relay
/// drops as a 1500-byte path would.
fn report_link(
    link: &Link,
    before: &[relay::DirStats; 2],
    scenario: &LossScenario,
    strict: bool,
    outcome: &mut Outcome,
) {
    let after = link.stats();
    let mut parts = Vec::new();
    for (i, name) in ["up", "down"].into_iter().enumerate() {
        let (a, b) = (&after[i], &before[i]);
        let offered = a.offered - b.offered;
        let lost = a.lost - b.lost;
        let oversize = a.oversize - b.oversize;
        let fragments = a.fragments - b.fragments;
        parts.push(format!(
            "{name} {offered} pkts, {:.2}% lost, {} queue drops, {oversize} above the MTU",
            100.0 * lost as f64 / offered.max(1) as f64,
            a.queue_dropped - b.queue_dropped
        ));
        if strict && (oversize > 0 || fragments > 0) {
            outcome.failures.push(format!(
                "{}: {oversize} packets above the MTU and {fragments} IP fragments crossed the link ({name})",
                scenario.id
            ));
        }
    }
    eprintln!(
        "  {:<14} link: {}; largest packet {} B",
        scenario.id,
        parts.join("; "),
        after[0].largest.max(after[1].largest)
    );
}

/// A one-line summary of one repetition's measures.
fn describe(measures: &[Measure]) -> String {
    measures
        .iter()
        .map(|m| format!("{}={:.3}", m.metric, m.value))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_names_and_links() {
        assert_eq!(SCENARIOS.len(), 12);
        let s = LossScenario::by_id("loss-5-20").unwrap_or(SCENARIOS[0]);
        assert_eq!(
            (s.percent, s.rtt_ms, s.sim_id),
            (Some(5), 20, "sim-loss-5-20")
        );
        assert_eq!(s.baseline().id, "loss-0-20");
        let b = LossScenario::by_id("sim-burst-100").unwrap_or(SCENARIOS[0]);
        assert_eq!((b.id, b.percent), ("burst-100", None));
        assert_eq!(b.baseline().id, "loss-0-100");
        assert!((b.loss().mean_loss() - 0.05).abs() < 1e-12);
        assert_eq!(s.loss(), LossSpec::Random(0.05));
    }

    #[test]
    fn selections_parse() {
        assert_eq!(
            parse_selection("bulk"),
            Ok(Selection::Classic(Scenario::Bulk))
        );
        assert!(
            matches!(parse_selection("loss"), Ok(Selection::Loss(Harness::Real, v)) if v.len() == 12)
        );
        assert!(
            matches!(parse_selection("sim-loss"), Ok(Selection::Loss(Harness::Sim, v)) if v.len() == 12)
        );
        assert!(matches!(
            parse_selection("burst-20"),
            Ok(Selection::Loss(Harness::Real, v)) if v[0].id == "burst-20"
        ));
        assert!(matches!(
            parse_selection("sim-loss-10-100"),
            Ok(Selection::Loss(Harness::Sim, v)) if v[0].id == "loss-10-100"
        ));
        // Every id the table and the JSON print is accepted back.
        for s in Scenario::ALL {
            assert_eq!(
                parse_selection(s.id()),
                Ok(Selection::Classic(s)),
                "{}",
                s.id()
            );
        }
        assert_eq!(
            parse_selection("handshake-rate"),
            Ok(Selection::Classic(Scenario::HandshakeRate))
        );
        let err = parse_selection("loss-3-20").err().unwrap_or_default();
        assert!(err.contains("loss-5-20"), "{err}");
    }

    #[test]
    fn baselines_are_added_and_first() {
        let picked = [SCENARIOS[9], SCENARIOS[2]]; // loss-10-100, loss-5-20
        let ordered: Vec<&str> = with_baselines(&picked).iter().map(|s| s.id).collect();
        assert_eq!(
            ordered,
            ["loss-0-20", "loss-5-20", "loss-0-100", "loss-10-100"]
        );
    }

    #[test]
    fn goodput_ratios_follow_their_goodput_and_are_one_on_the_baseline() {
        let sample = |scenario, value| Sample {
            scenario,
            implementation: "jsp",
            metric: "goodput_mbps",
            unit: "Mbit/s",
            value,
        };
        let samples = vec![
            sample("loss-0-20", 90.0),
            sample("loss-0-20", 100.0),
            sample("loss-0-20", 80.0),
            sample("loss-5-20", 45.0),
        ];
        let out = add_goodput_ratios(samples, |id| {
            LossScenario::by_id(id).map(|s| s.baseline().id)
        });
        let ratios: Vec<f64> = out
            .iter()
            .filter(|s| s.metric == "goodput_ratio")
            .map(|s| s.value)
            .collect();
        assert_eq!(out.len(), 8);
        assert_eq!(out[1].metric, "goodput_ratio");
        assert_eq!(median(&ratios[..3]), 1.0);
        assert_eq!(ratios[3], 0.5);
    }
}
