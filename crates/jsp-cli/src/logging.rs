//! Structured logs on standard error with `tracing-subscriber`: human-readable or JSON lines,
//! filtered by `RUST_LOG` (default: the command's level).

use tracing_subscriber::EnvFilter;

use crate::error::CliError;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    Human,
    /// One JSON object per line (for log collectors).
    Json,
}

/// Installs the global subscriber. `default_filter` applies when `RUST_LOG` is unset.
pub fn init(format: LogFormat, default_filter: &str) -> Result<(), CliError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.is_empty() => EnvFilter::try_new(&spec).map_err(|e| {
            CliError::new(format!("RUST_LOG={spec:?} is not a valid log filter: {e}"))
                .hint("use e.g. RUST_LOG=info or RUST_LOG=jsp=debug,warn")
        })?,
        _ => EnvFilter::new(default_filter),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Human => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    // A second initialisation (tests in one process) keeps the first subscriber.
    let _ = installed;
    Ok(())
}
