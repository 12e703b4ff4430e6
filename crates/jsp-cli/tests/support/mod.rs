//! Running the `jsp` binary in tests: child processes killed when the test ends, their output
//! read line by line on threads and waited for with a time bound (never a sleep).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // test code

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

/// Bound on waiting for anything a child process does.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub fn jsp_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jsp"));
    cmd.env_remove("RUST_LOG");
    cmd
}

pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("jsp-cli-net")
        .tempdir()
        .unwrap()
}

/// Writes a key pair into `dir/keys` and returns the identity.key path and the fingerprint.
pub fn keygen(dir: &Path) -> (PathBuf, String) {
    let keys = dir.join("keys");
    let out = jsp_command()
        .args(["keygen", "--out"])
        .arg(&keys)
        .output()
        .unwrap();
    assert!(out.status.success());
    let fp = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_owned();
    (keys.join("identity.key"), fp)
}

/// Lines of one output stream of a child, as they come.
pub struct Lines {
    rx: Receiver<String>,
    /// Every line received so far.
    pub seen: Vec<String>,
}

impl Lines {
    fn spawn(stream: impl Read + Send + 'static) -> Self {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Self {
            rx,
            seen: Vec::new(),
        }
    }

    /// Waits for a line satisfying `pred` and returns it; panics after [`PATIENCE`] or at end
    /// of output.
    pub fn wait_for(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        loop {
            match self.rx.recv_timeout(PATIENCE) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no line {what} within {PATIENCE:?}; seen: {:#?}", self.seen)
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("output ended without a line {what}; seen: {:#?}", self.seen)
                }
            }
        }
    }

    /// Everything until the end of output (bounded by [`PATIENCE`]).
    pub fn rest(&mut self) -> Vec<String> {
        loop {
            match self.rx.recv_timeout(PATIENCE) {
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Disconnected) => return self.seen.clone(),
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "output did not end within {PATIENCE:?}; seen: {:#?}",
                        self.seen
                    )
                }
            }
        }
    }
}

/// A running child process, killed when dropped.
pub struct Proc {
    pid: u32,
    exit: Receiver<ExitStatus>,
    exited: Option<ExitStatus>,
    /// Standard input, when kept open.
    pub stdin: Option<ChildStdin>,
    pub stdout: Lines,
    pub stderr: Lines,
}

impl Proc {
    /// Spawns `cmd` with piped output and standard input from `stdin` (closed after writing).
    pub fn spawn(mut cmd: Command, stdin: Option<Vec<u8>>) -> Self {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child: Child = cmd.spawn().unwrap();
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            std::thread::spawn(move || {
                let _ = pipe.write_all(&input);
            });
        }
        let stdout = Lines::spawn(child.stdout.take().unwrap());
        let stderr = Lines::spawn(child.stderr.take().unwrap());
        let pid = child.id();
        let (tx, exit) = mpsc::channel();
        std::thread::spawn(move || {
            if let Ok(status) = child.wait() {
                let _ = tx.send(status);
            }
        });
        Self {
            pid,
            exit,
            exited: None,
            stdin: None,
            stdout,
            stderr,
        }
    }

    /// Spawns `cmd` with piped output and standard input kept open, starting with `input`.
    pub fn spawn_interactive(mut cmd: Command, input: &[u8]) -> Self {
        cmd.stdin(Stdio::piped());
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child: Child = cmd.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input).unwrap();
        stdin.flush().unwrap();
        let stdout = Lines::spawn(child.stdout.take().unwrap());
        let stderr = Lines::spawn(child.stderr.take().unwrap());
        let pid = child.id();
        let (tx, exit) = mpsc::channel();
        std::thread::spawn(move || {
            if let Ok(status) = child.wait() {
                let _ = tx.send(status);
            }
        });
        Self {
            pid,
            exit,
            exited: None,
            stdin: Some(stdin),
            stdout,
            stderr,
        }
    }

    /// Waits for the exit (bounded by [`PATIENCE`]).
    pub fn wait(&mut self) -> ExitStatus {
        if let Some(s) = self.exited {
            return s;
        }
        let status = self
            .exit
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|_| panic!("the process did not exit within {PATIENCE:?}"));
        self.exited = Some(status);
        status
    }

    /// Sends a signal (`TERM`, `KILL`, `INT`).
    pub fn signal(&self, name: &str) {
        let _ = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid.to_string())
            .status();
    }

    /// Kills the process and waits for it.
    pub fn kill(&mut self) {
        if self.exited.is_none() {
            self.signal("KILL");
            let _ = self.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.exited.is_none() && self.exit.try_recv().is_err() {
            self.signal("KILL");
            let _ = self.exit.recv_timeout(PATIENCE);
        }
    }
}

/// A `jsp serve` on loopback with the addresses it printed.
pub struct Server {
    pub proc: Proc,
    pub fingerprint: String,
    pub udp: String,
    pub tcp: String,
    pub ws: Option<String>,
}

impl Server {
    /// Starts `jsp serve --listen 127.0.0.1:0 --identity KEY EXTRA...` and waits until it is
    /// ready.
    pub fn start(key: &Path, extra: &[&str]) -> Self {
        let mut cmd = jsp_command();
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--identity"])
            .arg(key)
            .args(extra);
        Self::start_command(cmd)
    }

    /// Starts a prepared `jsp serve` command and waits until it is ready.
    pub fn start_command(cmd: Command) -> Self {
        let mut proc = Proc::spawn(cmd, None);
        let mut fingerprint = None;
        let mut udp = None;
        let mut tcp = None;
        let mut ws = None;
        loop {
            let line = proc.stdout.wait_for("from serve", |_| true);
            if let Some(fp) = line.strip_prefix("fingerprint: ") {
                fingerprint = Some(fp.to_owned());
            } else if let Some(a) = line.strip_prefix("listening: udp ") {
                udp.get_or_insert(a.to_owned());
            } else if let Some(a) = line.strip_prefix("listening: tcp ") {
                tcp.get_or_insert(a.to_owned());
            } else if let Some(a) = line.strip_prefix("listening: ws ") {
                ws.get_or_insert(a.to_owned());
            } else if line.starts_with("connect with: ") {
                break;
            }
        }
        Self {
            proc,
            fingerprint: fingerprint.expect("a fingerprint line"),
            udp: udp.expect("a UDP address"),
            tcp: tcp.unwrap_or_default(),
            ws,
        }
    }
}

/// Runs `jsp ARGS` to completion with `stdin`; returns the exit code, stdout and stderr.
pub fn run(args: &[&str], stdin: &[u8]) -> (Option<i32>, String, String) {
    let mut cmd = jsp_command();
    cmd.args(args);
    let mut proc = Proc::spawn(cmd, Some(stdin.to_vec()));
    let status = proc.wait();
    let out = proc.stdout.rest().join("\n");
    let err = proc.stderr.rest().join("\n");
    (status.code(), out, err)
}

/// `len` bytes that do not repeat in any short period.
pub fn test_data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

/// The one `error: ` line of a failed command (exit code 1).
pub fn single_error(code: Option<i32>, stderr: &str) -> String {
    assert_eq!(code, Some(1), "stderr: {stderr}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("connected to "))
        .collect();
    assert_eq!(lines.len(), 1, "stderr: {stderr}");
    assert!(lines[0].starts_with("error: "), "stderr: {stderr}");
    lines[0].to_owned()
}
