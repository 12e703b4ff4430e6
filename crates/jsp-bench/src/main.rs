//! The `jsp-bench` binary: `jsp-bench --quick` (the default), `--full`,
//! `--smoke`; `jsp-bench serve --impl X` is the child-process server the
//! harness starts itself.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use jsp_bench::lossy::{parse_selection, Harness, LossRunner, PathChoice, Selection};
use jsp_bench::machine::Machine;
use jsp_bench::model::{summarize, Report};
use jsp_bench::peers::{ImplKind, ServeOptions};
use jsp_bench::plan::{Mode, Plan};
use jsp_bench::report::{
    is_loss_row, is_sim_row, markdown_table, splice, splice_loss, splice_sim_loss, text_table,
    write_json,
};
use jsp_bench::runner::{Outcome, Runner, Scenario};
use jsp_bench::serve::serve_main;
use jsp_bench::svg::write_charts;

/// Benchmarks JetStreamProto against quinn, TCP + TLS 1.3, plain TCP and
/// plain UDP on loopback, in one run.
#[derive(Parser, Debug)]
#[command(name = "jsp-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Tiny sizes, one run: checks that the harness works (used by CI).
    #[arg(long, conflicts_with_all = ["quick", "full"])]
    smoke: bool,
    /// Medians of 5 runs at moderate sizes, under 3 minutes on 2 cores (default).
    #[arg(long, conflicts_with = "full")]
    quick: bool,
    /// Full sizes (1 GiB bulk, 100,000 idle connections).
    #[arg(long)]
    full: bool,
    /// Repetitions of each measurement (default: 5, or 1 with --smoke).
    #[arg(long)]
    runs: Option<usize>,
    /// Implementations to measure (default: all).
    #[arg(long = "impl", value_enum, value_delimiter = ',')]
    impls: Vec<ImplKind>,
    /// Scenarios to run (default: every scenario of the main plan). The loss
    /// benchmarks are their own group: `loss` (real sockets through a lossy
    /// link), `sim-loss` (the simulator, needs `--features sim`), or single
    /// ones such as `loss-5-20`, `burst-100`, `sim-loss-10-20`.
    #[arg(long = "scenario", value_delimiter = ',', value_parser = parse_selection)]
    scenarios: Vec<Selection>,
    /// The real-socket path of the loss benchmarks: network namespaces
    /// joined by TUN devices (`tun`, needs root), a lossy UDP relay on
    /// loopback (`udp`, UDP peers only), or the first that works (`auto`).
    #[arg(long, value_enum, default_value_t = PathChoice::Auto)]
    loss_path: PathChoice,
    /// Write machine-readable results here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write SVG charts into this directory.
    #[arg(long)]
    charts: Option<PathBuf>,
    /// Replace the results section of this Markdown file (docs/BENCHMARKS.md).
    #[arg(long)]
    update_doc: Option<PathBuf>,
    /// Longest one repetition may take before it counts as failed, in seconds.
    #[arg(long, default_value_t = 300)]
    run_timeout: u64,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run one server (started by the harness itself; prints `READY {json}`).
    Serve {
        /// Which implementation.
        #[arg(long = "impl", value_enum)]
        kind: ImplKind,
        /// Workers for multi-socket servers (0: one per core).
        #[arg(long, default_value_t = 0)]
        workers: usize,
        /// The address to bind (port 0).
        #[arg(long, default_value = "127.0.0.1")]
        bind: IpAddr,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Serve {
            kind,
            workers,
            bind,
        }) => serve_main(kind, ServeOptions { workers, bind }).map(|()| true),
        None => bench(&cli),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("jsp-bench: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the benchmark; `Ok(false)` when some repetition failed.
fn bench(cli: &Cli) -> anyhow::Result<bool> {
    let mode = if cli.smoke {
        Mode::Smoke
    } else if cli.full {
        Mode::Full
    } else {
        Mode::Quick
    };
    let mut plan = Plan::for_mode(mode);
    if let Some(runs) = cli.runs {
        plan.runs = runs.max(1);
        plan.loss.runs = runs.max(1);
    }
    let impls = if cli.impls.is_empty() {
        vec![
            ImplKind::Jsp,
            ImplKind::Quinn,
            ImplKind::TcpTls,
            ImplKind::Tcp,
            ImplKind::Udp,
        ]
    } else {
        cli.impls.clone()
    };
    let mut scenarios: Vec<Scenario> = Vec::new();
    let (mut loss_real, mut loss_sim) = (Vec::new(), Vec::new());
    for selection in &cli.scenarios {
        match selection {
            Selection::Classic(s) if !scenarios.contains(s) => scenarios.push(*s),
            Selection::Classic(_) => {}
            Selection::Loss(Harness::Real, list) => loss_real.extend(list.iter().copied()),
            Selection::Loss(Harness::Sim, list) => loss_sim.extend(list.iter().copied()),
        }
    }
    if cli.scenarios.is_empty() {
        scenarios = Scenario::ALL.to_vec();
    }
    // JSP_BENCH_SERVE_EXE runs the servers through another program, e.g. a script that
    // starts `valgrind --tool=massif jsp-bench "$@"` to profile a server.
    let exe: PathBuf = match std::env::var_os("JSP_BENCH_SERVE_EXE") {
        Some(exe) => exe.into(),
        None => std::env::current_exe().context("finding the jsp-bench executable")?,
    };
    let run_timeout = Duration::from_secs(cli.run_timeout.max(1));
    let machine = Machine::detect();
    let mut outcome = Outcome::default();
    if !scenarios.is_empty() {
        let runner = Runner {
            exe: exe.clone(),
            plan: plan.clone(),
            impls,
            scenarios,
            run_timeout,
        };
        eprintln!(
            "jsp-bench {mode:?}: {} runs each, {} cores ({}), loopback",
            runner.plan.runs, machine.cores, machine.cpu
        );
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("building the client runtime")?;
        outcome = runtime.block_on(runner.run());
        drop(runtime);
    }
    if !loss_real.is_empty() || !loss_sim.is_empty() {
        let loss = LossRunner {
            exe,
            plan: plan.loss.clone(),
            runs: plan.loss.runs,
            impls: cli.impls.clone(),
            real: loss_real,
            sim: loss_sim,
            path: cli.loss_path,
            run_timeout,
        };
        let more = loss.run();
        outcome.samples.extend(more.samples);
        outcome.failures.extend(more.failures);
    }
    let rows = summarize(&outcome.samples);
    println!("{}", text_table(&rows));
    let report = Report {
        machine,
        mode: format!("{mode:?}").to_lowercase(),
        results: rows,
    };
    if let Some(path) = &cli.json {
        write_json(path, &report)?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(dir) = &cli.charts {
        for file in write_charts(dir, &report.results)? {
            eprintln!("wrote {}", dir.join(file).display());
        }
    }
    if let Some(path) = &cli.update_doc {
        let mut doc =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let m = &report.machine;
        let measured = format!(
            "Measured with `jsp-bench --{}` on {} ({} cores, {} MiB, Linux {}), commit {}.",
            report.mode, m.cpu, m.cores, m.memory_mib, m.kernel, m.commit,
        );
        let (loss, main): (Vec<_>, Vec<_>) = report.results.iter().cloned().partition(is_loss_row);
        let (sim, real): (Vec<_>, Vec<_>) = loss.into_iter().partition(is_sim_row);
        if !main.is_empty() {
            doc = splice(&doc, &format!("{measured}\n\n{}", markdown_table(&main)))?;
        }
        if !real.is_empty() {
            doc = splice_loss(&doc, &format!("{measured}\n\n{}", markdown_table(&real)))?;
        }
        if !sim.is_empty() {
            doc = splice_sim_loss(&doc, &format!("{measured}\n\n{}", markdown_table(&sim)))?;
        }
        std::fs::write(path, doc).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("updated {}", path.display());
    }
    for failure in &outcome.failures {
        eprintln!("FAILED: {failure}");
    }
    Ok(outcome.failures.is_empty())
}
