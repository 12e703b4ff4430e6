//! Servers run in child processes: [`ServerProcess::spawn`] starts
//! `jsp-bench serve --impl X`, reads the `READY {json}` line it prints, and
//! kills it when dropped. A separate process keeps the server's CPU and
//! memory apart from the client's, so memory per connection is the server's
//! RSS alone. The child's side is [`crate::serve`].

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};

use crate::peers::{ImplKind, ServeOptions, ServerInfo};

/// The line prefix a child prints once its server accepts connections.
pub const READY_PREFIX: &str = "READY ";

/// How long a child may take to print its `READY` line.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How often and how long a child is given to exit by itself before it is killed.
const EXIT_POLL: Duration = Duration::from_millis(20);
/// See [`EXIT_POLL`]: 5 s in all.
const EXIT_GRACE_POLLS: u32 = 250;

/// A server running in a child process.
pub struct ServerProcess {
    child: Child,
    info: ServerInfo,
}

impl ServerProcess {
    /// Starts `exe serve --impl kind --workers N --bind IP` and waits for
    /// its `READY` line.
    pub fn spawn(exe: &Path, kind: ImplKind, opts: &ServeOptions) -> anyhow::Result<Self> {
        Self::spawn_wrapped(&[], exe, kind, opts)
    }

    /// [`ServerProcess::spawn`] through a launcher: `wrapper` is the
    /// program and arguments put before `exe` (the loss benchmarks start
    /// servers with `ip netns exec NAMESPACE`).
    pub fn spawn_wrapped(
        wrapper: &[&str],
        exe: &Path,
        kind: ImplKind,
        opts: &ServeOptions,
    ) -> anyhow::Result<Self> {
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(exe);
                command
            }
            None => Command::new(exe),
        };
        let mut child = command
            .args([
                "serve",
                "--impl",
                kind.id(),
                "--workers",
                &opts.workers.to_string(),
                "--bind",
                &opts.bind.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting the {} server ({})", kind.id(), exe.display()))?;
        let stdout = child.stdout.take().context("child stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let result = BufReader::new(stdout).read_line(&mut line).map(|_| line);
            let _ = tx.send(result);
        });
        let line = match rx.recv_timeout(READY_TIMEOUT) {
            Ok(Ok(line)) => line,
            Ok(Err(err)) => {
                let _ = child.kill();
                return Err(err).context("reading the server's READY line");
            }
            Err(_) => {
                let _ = child.kill();
                bail!(
                    "the {} server printed nothing within {READY_TIMEOUT:?}",
                    kind.id()
                );
            }
        };
        let Some(json) = line.trim().strip_prefix(READY_PREFIX) else {
            let _ = child.kill();
            bail!("the {} server did not start: {:?}", kind.id(), line.trim());
        };
        let info: ServerInfo = serde_json::from_str(json).context("parsing the READY line")?;
        Ok(ServerProcess { child, info })
    }

    /// Where the server listens and how to trust it.
    pub fn info(&self) -> &ServerInfo {
        &self.info
    }

    /// The server's resident set size in bytes, from `/proc/PID/status`.
    pub fn rss_bytes(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .context("reading the server's /proc status")?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse::<u64>().ok())
            .map(|kib| kib * 1024)
            .ok_or_else(|| anyhow!("no VmRSS in /proc/{}/status", self.child.id()))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // Closing stdin asks the child to exit (a profiler wrapping it then writes its
        // report); kill makes sure it does, after a short grace period.
        drop(self.child.stdin.take());
        for _ in 0..EXIT_GRACE_POLLS {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(EXIT_POLL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
