//! The runner: for each scenario it starts one server per implementation
//! (child processes), then repeats the measurement, interleaving the
//! implementations within each repetition so that drift on a noisy machine
//! touches all of them alike, and prints progress as it goes.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::child::ServerProcess;
use crate::model::Sample;
use crate::peers::{ImplKind, ServeOptions, ServerInfo};
use crate::plan::Plan;
use crate::scenarios::{bulk, datagrams, handshake, idle, rr, streams, Measure};

/// The scenarios, with their stable identifiers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// One connection, one stream.
    Bulk,
    /// Eight parallel streams.
    Bulk8,
    /// 64-byte request/response at a fixed rate.
    Rr64,
    /// 1 KiB request/response at a fixed rate.
    Rr1k,
    /// 64-byte request/response, closed loop.
    Rr64Closed,
    /// 1 KiB request/response, closed loop.
    Rr1kClosed,
    /// Full handshake latency.
    Handshake,
    /// Full handshakes per second.
    HandshakeRate,
    /// Resumed (0-RTT) handshake latency.
    Resume,
    /// Idle connections and server memory per connection.
    IdleConns,
    /// Streams opened, used and closed per second.
    Streams,
    /// Unreliable datagrams.
    Datagrams,
    /// One server over every core against a single endpoint.
    Scaling,
}

impl Scenario {
    /// Every scenario, in the order a run measures them.
    pub const ALL: [Scenario; 13] = [
        Scenario::Bulk,
        Scenario::Bulk8,
        Scenario::Rr64,
        Scenario::Rr1k,
        Scenario::Rr64Closed,
        Scenario::Rr1kClosed,
        Scenario::Handshake,
        Scenario::HandshakeRate,
        Scenario::Resume,
        Scenario::IdleConns,
        Scenario::Streams,
        Scenario::Datagrams,
        Scenario::Scaling,
    ];

    /// The stable identifier used in the JSON output.
    pub fn id(self) -> &'static str {
        match self {
            Scenario::Bulk => "bulk",
            Scenario::Bulk8 => "bulk8",
            Scenario::Rr64 => "rr64",
            Scenario::Rr1k => "rr1k",
            Scenario::Rr64Closed => "rr64_closed",
            Scenario::Rr1kClosed => "rr1k_closed",
            Scenario::Handshake => "handshake",
            Scenario::HandshakeRate => "handshake_rate",
            Scenario::Resume => "resume",
            Scenario::IdleConns => "idle_conns",
            Scenario::Streams => "streams",
            Scenario::Datagrams => "datagrams",
            Scenario::Scaling => "scaling",
        }
    }

    /// Whether `kind` takes part in this scenario.
    pub fn applies_to(self, kind: ImplKind) -> bool {
        use ImplKind::*;
        match self {
            Scenario::Bulk | Scenario::Bulk8 => {
                matches!(kind, Jsp | Jsp1452 | Quinn | TcpTls | Tcp)
            }
            Scenario::Rr64
            | Scenario::Rr1k
            | Scenario::Rr64Closed
            | Scenario::Rr1kClosed
            | Scenario::Handshake
            | Scenario::IdleConns => matches!(kind, Jsp | Quinn | TcpTls | Tcp),
            Scenario::HandshakeRate | Scenario::Resume => matches!(kind, Jsp | Quinn | TcpTls),
            Scenario::Streams => matches!(kind, Jsp | Quinn),
            Scenario::Datagrams => matches!(kind, Jsp | Quinn | Udp),
            Scenario::Scaling => matches!(kind, Jsp | JspPool),
        }
    }

    /// Whether every repetition needs a freshly started server (memory).
    fn fresh_server_per_run(self) -> bool {
        self == Scenario::IdleConns
    }
}

/// Runs the scenario bodies with the client type of an implementation
/// (also used by the loss runner, [`crate::lossy`]).
macro_rules! with_client {
    ($kind:expr, $client:ident => $body:expr) => {
        match $kind {
            $crate::peers::ImplKind::Jsp
            | $crate::peers::ImplKind::JspPool
            | $crate::peers::ImplKind::Jsp1452 => {
                type $client = $crate::peers::jsp::JspClient;
                $body
            }
            $crate::peers::ImplKind::JspNofec => {
                type $client = $crate::peers::jsp_nofec::JspNofecClient;
                $body
            }
            $crate::peers::ImplKind::Quinn => {
                type $client = $crate::peers::quinn::QuinnClient;
                $body
            }
            $crate::peers::ImplKind::TcpTls => {
                type $client = $crate::peers::tcp::TcpTlsClient;
                $body
            }
            $crate::peers::ImplKind::Tcp => {
                type $client = $crate::peers::tcp::TcpClient;
                $body
            }
            $crate::peers::ImplKind::Udp => {
                type $client = $crate::peers::udp::UdpClient;
                $body
            }
        }
    };
}
pub(crate) use with_client;

/// What the runner needs to know.
pub struct Runner {
    /// The `jsp-bench` executable, started as `serve` for each server.
    pub exe: PathBuf,
    /// Sizes and repetitions.
    pub plan: Plan,
    /// Implementations to measure.
    pub impls: Vec<ImplKind>,
    /// Scenarios to run.
    pub scenarios: Vec<Scenario>,
    /// Longest one repetition may take before it counts as failed.
    pub run_timeout: Duration,
}

/// The outcome: every sample, and the repetitions that failed.
#[derive(Default)]
pub struct Outcome {
    /// Measured samples.
    pub samples: Vec<Sample>,
    /// One line per failed repetition.
    pub failures: Vec<String>,
}

impl Runner {
    /// Runs everything, printing progress on standard error.
    pub async fn run(&self) -> Outcome {
        let mut outcome = Outcome::default();
        for &scenario in &self.scenarios {
            let kinds: Vec<ImplKind> = self.kinds_for(scenario);
            if kinds.is_empty() {
                continue;
            }
            let mut servers: Vec<Option<ServerProcess>> = Vec::new();
            for &kind in &kinds {
                servers.push(if scenario.fresh_server_per_run() {
                    None
                } else {
                    match self.spawn(kind) {
                        Ok(server) => Some(server),
                        Err(err) => {
                            outcome.failures.push(format!(
                                "{} {}: {err:#}",
                                scenario.id(),
                                kind.id()
                            ));
                            None
                        }
                    }
                });
            }
            for run in 1..=self.plan.runs {
                for (&kind, server) in kinds.iter().zip(&servers) {
                    if server.is_none() && !scenario.fresh_server_per_run() {
                        continue;
                    }
                    let result = match server {
                        Some(server) => self.measure(scenario, kind, server).await,
                        None => match self.spawn(kind) {
                            Ok(fresh) => self.measure(scenario, kind, &fresh).await,
                            Err(err) => Err(err),
                        },
                    };
                    match result {
                        Ok(measures) => {
                            eprintln!(
                                "  {:<14} run {run}/{} {:<8} {}",
                                scenario.id(),
                                self.plan.runs,
                                kind.id(),
                                describe(&measures)
                            );
                            outcome.samples.extend(measures.into_iter().map(|m| Sample {
                                scenario: scenario.id(),
                                implementation: kind.id(),
                                metric: m.metric,
                                unit: m.unit,
                                value: m.value,
                            }));
                        }
                        Err(err) => {
                            eprintln!(
                                "  {:<14} run {run}/{} {:<8} FAILED: {err:#}",
                                scenario.id(),
                                self.plan.runs,
                                kind.id()
                            );
                            outcome.failures.push(format!(
                                "{} {} run {run}: {err:#}",
                                scenario.id(),
                                kind.id()
                            ));
                        }
                    }
                }
            }
        }
        outcome
    }

    fn kinds_for(&self, scenario: Scenario) -> Vec<ImplKind> {
        let mut kinds: Vec<ImplKind> = self
            .impls
            .iter()
            .copied()
            .filter(|&kind| scenario.applies_to(kind))
            .collect();
        // The scaling scenario compares the pool with a single endpoint; the bulk scenarios
        // also show jsp at quinn's packet size.
        let companion = match scenario {
            Scenario::Scaling => Some(ImplKind::JspPool),
            Scenario::Bulk | Scenario::Bulk8 => Some(ImplKind::Jsp1452),
            _ => None,
        };
        if let Some(companion) = companion {
            if let Some(at) = kinds.iter().position(|&k| k == ImplKind::Jsp) {
                if !kinds.contains(&companion) {
                    kinds.insert(at + 1, companion);
                }
            }
        }
        kinds
    }

    fn spawn(&self, kind: ImplKind) -> anyhow::Result<ServerProcess> {
        ServerProcess::spawn(&self.exe, kind, &ServeOptions::default())
    }

    async fn measure(
        &self,
        scenario: Scenario,
        kind: ImplKind,
        server: &ServerProcess,
    ) -> anyhow::Result<Vec<Measure>> {
        let run = self.measure_once(scenario, kind, server);
        tokio::time::timeout(self.run_timeout, run)
            .await
            .with_context(|| format!("no result within {:?}", self.run_timeout))?
    }

    async fn measure_once(
        &self,
        scenario: Scenario,
        kind: ImplKind,
        server: &ServerProcess,
    ) -> anyhow::Result<Vec<Measure>> {
        let plan = &self.plan;
        let info: &ServerInfo = server.info();
        with_client!(kind, C => match scenario {
            Scenario::Bulk => bulk::bulk::<C>(info, plan.bulk_bytes).await,
            Scenario::Bulk8 => bulk::parallel::<C>(info, plan.bulk_bytes, 8).await,
            Scenario::Scaling => bulk::scaling::<C>(info, plan.bulk_bytes, plan.scaling_conns).await,
            Scenario::Rr64 => rr::fixed_rate::<C>(info, 64, plan.rr_rate, plan.rr_rate_messages).await,
            Scenario::Rr1k => rr::fixed_rate::<C>(info, 1024, plan.rr_rate, plan.rr_rate_messages).await,
            Scenario::Rr64Closed => rr::closed_loop::<C>(info, 64, plan.rr_closed_messages).await,
            Scenario::Rr1kClosed => rr::closed_loop::<C>(info, 1024, plan.rr_closed_messages).await,
            Scenario::Handshake => handshake::latency::<C>(info, plan.handshakes).await,
            Scenario::HandshakeRate => {
                handshake::rate::<C>(info, plan.handshake_concurrency, plan.handshake_rate_total).await
            }
            Scenario::Resume => handshake::resume::<C>(info, plan.handshakes)
                .await?
                .context("this implementation has no resumption"),
            Scenario::IdleConns => {
                let count = if matches!(kind, ImplKind::Tcp | ImplKind::TcpTls) {
                    plan.idle_conns_tcp
                } else {
                    plan.idle_conns
                };
                idle::idle_conns::<C>(server, count).await
            }
            Scenario::Streams => streams::streams::<C>(info, plan.streams, plan.stream_concurrency).await,
            Scenario::Datagrams => datagrams::datagrams::<C>(info, plan.datagrams).await,
        })
    }
}

/// A one-line summary of one repetition's measures.
fn describe(measures: &[Measure]) -> String {
    measures
        .iter()
        .map(|m| {
            format!(
                "{}={:.2}{}",
                m.metric,
                m.value,
                if m.unit.is_empty() { "" } else { " " }.to_string() + m.unit
            )
        })
        .collect::<Vec<_>>()
        .join("  ")
}
