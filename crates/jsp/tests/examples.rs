//! Runs the example programs (`chat_server`, `chat_client`, `file_transfer`, `bench_client`) as
//! separate processes over real loopback sockets and checks what they print and how they exit.
//!
//! The binaries are the ones cargo puts in `target/<profile>/examples/`, found next to this test
//! executable. `cargo test` (without a target filter) builds them; `cargo test --test examples`
//! does not, so when one is missing or older than the sources, the test builds them with
//! `cargo build -p jsp --examples` (in the same profile) first. Set `JSP_EXAMPLES_NO_BUILD=1` to
//! forbid that and use whatever binaries are there.
//!
//! Every wait is bounded by a deadline, and every child is killed when its handle drops, so a
//! failing test leaves no process behind.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is a test failure

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The example programs this file runs.
const EXAMPLES: [&str; 4] = [
    "chat_server",
    "chat_client",
    "file_transfer",
    "bench_client",
];
/// The longest any single expected event (a line, an exit) may take.
const STEP: Duration = Duration::from_secs(15);
/// The longest building the examples may take.
const BUILD_TIMEOUT: Duration = Duration::from_secs(600);

// ---------------------------------------------------------------------------------------------
// Locating (and if needed building) the example binaries
// ---------------------------------------------------------------------------------------------

/// `target/<profile>`: the parent of the `deps` directory holding this test executable.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    exe.parent()
        .and_then(Path::parent)
        .expect("the test executable lives in target/<profile>/deps")
        .to_path_buf()
}

/// Where cargo puts the example `name` for this profile.
fn default_path(name: &str) -> PathBuf {
    profile_dir()
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

/// The newest modification time of the files the examples are built from.
fn newest_source() -> SystemTime {
    /// Raises `newest` to the modification time of `path` or of any file below it.
    fn walk(path: &Path, newest: &mut SystemTime) {
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        if meta.is_dir() {
            for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
                walk(&entry.path(), newest);
            }
        } else if let Ok(m) = meta.modified() {
            *newest = (*newest).max(m);
        }
    }
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut newest = SystemTime::UNIX_EPOCH;
    for p in [
        crate_dir.join("src"),
        crate_dir.join("examples"),
        crate_dir.join("Cargo.toml"),
        crate_dir.join("../jsp-proto/src"),
        crate_dir.join("../jsp-proto/Cargo.toml"),
        crate_dir.join("../../Cargo.lock"),
    ] {
        walk(&p, &mut newest);
    }
    newest
}

/// Whether every example binary exists and is at least as new as its sources.
fn binaries_fresh(paths: &[PathBuf]) -> bool {
    let newest = newest_source();
    paths.iter().all(|p| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .is_ok_and(|built| built >= newest)
    })
}

/// Builds the examples with cargo in this test's profile; returns the executables cargo
/// reported, by example name.
fn cargo_build_examples() -> Result<Vec<(String, PathBuf)>, String> {
    let profile = profile_dir();
    let mut cmd = std::process::Command::new(env!("CARGO"));
    cmd.args(["build", "-p", "jsp", "--examples", "--message-format=json"]);
    match profile.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => {}
        Some("release") => {
            cmd.arg("--release");
        }
        Some(other) => {
            cmd.args(["--profile", other]);
        }
    }
    let mut child = cmd
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    // Read the JSON messages on a thread so the deadline below holds even if cargo hangs; the
    // output ends when cargo exits.
    let mut stdout = child.stdout.take().ok_or("no cargo stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut text);
        let _ = tx.send(text);
    });
    let Ok(text) = rx.recv_timeout(BUILD_TIMEOUT) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!(
            "cargo build did not finish within {BUILD_TIMEOUT:?}"
        ));
    };
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("cargo build -p jsp --examples failed: {status}"));
    }
    let mut found = Vec::new();
    for line in text.lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let is_example = msg["reason"] == "compiler-artifact"
            && msg["target"]["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "example"));
        if let (true, Some(name), Some(exe)) = (
            is_example,
            msg["target"]["name"].as_str(),
            msg["executable"].as_str(),
        ) {
            found.push((name.to_string(), PathBuf::from(exe)));
        }
    }
    Ok(found)
}

/// The paths of the example binaries, building them first when needed (once per test run).
fn example_paths() -> &'static [PathBuf] {
    /// The outcome of locating (and maybe building) the binaries, shared by all tests.
    static PATHS: OnceLock<Result<Vec<PathBuf>, String>> = OnceLock::new();
    let paths = PATHS.get_or_init(|| {
        let defaults: Vec<PathBuf> = EXAMPLES.iter().map(|n| default_path(n)).collect();
        if std::env::var_os("JSP_EXAMPLES_NO_BUILD").is_some() || binaries_fresh(&defaults) {
            return Ok(defaults);
        }
        let built = cargo_build_examples()?;
        EXAMPLES
            .iter()
            .zip(defaults)
            .map(|(name, default)| {
                let path = built
                    .iter()
                    .find(|(n, _)| n == name)
                    .map_or(default, |(_, p)| p.clone());
                if path.exists() {
                    Ok(path)
                } else {
                    Err(format!("example {name} not found at {}", path.display()))
                }
            })
            .collect()
    });
    match paths {
        Ok(p) => p,
        Err(e) => panic!("the example binaries are not available: {e}"),
    }
}

/// The path of the example `name`.
fn example(name: &str) -> PathBuf {
    let i = EXAMPLES
        .iter()
        .position(|n| *n == name)
        .expect("a known example");
    example_paths()[i].clone()
}

// ---------------------------------------------------------------------------------------------
// Running them
// ---------------------------------------------------------------------------------------------

/// A running example: its stdout as a stream of lines, its stderr collected for failure
/// messages. Killed when dropped.
struct Proc {
    /// Label for messages.
    label: String,
    /// The process.
    child: Child,
    /// Its stdin, until closed.
    stdin: Option<ChildStdin>,
    /// Its stdout, line by line.
    lines: mpsc::UnboundedReceiver<String>,
    /// Stdout lines read so far.
    seen: Vec<String>,
    /// Its stderr so far.
    stderr: Arc<Mutex<String>>,
    /// The task collecting stderr; it ends when the process's stderr closes.
    stderr_reader: Option<tokio::task::JoinHandle<()>>,
}

impl Proc {
    /// Starts example `name` with `args`; `label` names it in failure messages.
    fn spawn(name: &str, label: &str, args: &[&str]) -> Proc {
        let mut child = Command::new(example(name))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let mut stderr_pipe = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut out = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = out.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let collected = stderr.clone();
        let stderr_reader = tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr_pipe.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                collected
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Proc {
            label: label.to_string(),
            stdin: child.stdin.take(),
            child,
            lines,
            seen: Vec::new(),
            stderr,
            stderr_reader: Some(stderr_reader),
        }
    }

    /// What the process printed so far, for failure messages.
    fn context(&self) -> String {
        format!(
            "{} stdout so far: {:#?}\n{} stderr so far:\n{}",
            self.label,
            self.seen,
            self.label,
            self.stderr.lock().unwrap()
        )
    }

    /// Waits (at most [`STEP`]) for a stdout line satisfying `pred` and returns it.
    async fn expect_line(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + STEP;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Ok(None) => panic!(
                    "{} ended its output without printing {what}\n{}",
                    self.label,
                    self.context()
                ),
                Err(_) => panic!(
                    "{} did not print {what} within {STEP:?}\n{}",
                    self.label,
                    self.context()
                ),
            }
        }
    }

    /// Writes one line to the process's stdin.
    async fn send_line(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        let written = stdin.write_all(format!("{text}\n").as_bytes()).await;
        let flushed = stdin.flush().await;
        if let Err(e) = written.and(flushed) {
            panic!("writing to {}: {e}\n{}", self.label, self.context());
        }
    }

    /// Closes stdin (end of input).
    fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits (at most [`STEP`]) for the process to exit, then reads the rest of its stdout and
    /// stderr.
    async fn exit_status(&mut self) -> ExitStatus {
        let status = match tokio::time::timeout(STEP, self.child.wait()).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => panic!("waiting for {}: {e}", self.label),
            Err(_) => panic!(
                "{} did not exit within {STEP:?}\n{}",
                self.label,
                self.context()
            ),
        };
        let deadline = Instant::now() + STEP;
        while let Ok(Some(line)) = tokio::time::timeout_at(deadline, self.lines.recv()).await {
            self.seen.push(line);
        }
        if let Some(reader) = self.stderr_reader.take() {
            let _ = tokio::time::timeout_at(deadline, reader).await;
        }
        status
    }

    /// Waits for the process to exit successfully.
    async fn expect_success(&mut self) {
        let status = self.exit_status().await;
        assert!(
            status.success(),
            "{} exited with {status}\n{}",
            self.label,
            self.context()
        );
    }

    /// Waits for the process to exit with a failure status; returns its stderr.
    async fn expect_failure(&mut self) -> String {
        let status = self.exit_status().await;
        assert!(
            !status.success(),
            "{} should have failed but exited with {status}\n{}",
            self.label,
            self.context()
        );
        self.stderr.lock().unwrap().clone()
    }
}

/// The addresses and fingerprint of a `listening UDP tcp TCP fingerprint FP` line.
struct Listening {
    /// The UDP address.
    udp: String,
    /// The TCP carriage address.
    tcp: String,
    /// The server fingerprint, `SHA256:` and 64 hex digits.
    fingerprint: String,
}

/// Waits for the listening line of `server` and parses it.
async fn listening(server: &mut Proc) -> Listening {
    let line = server
        .expect_line("its listening line", |l| l.starts_with("listening "))
        .await;
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["listening", udp, "tcp", tcp, "fingerprint", fp] => {
            assert!(
                fp.starts_with("SHA256:") && fp.len() == 7 + 64,
                "fingerprint in {line:?}"
            );
            Listening {
                udp: udp.to_string(),
                tcp: tcp.to_string(),
                fingerprint: fp.to_string(),
            }
        }
        _ => panic!("unexpected listening line {line:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Chat
// ---------------------------------------------------------------------------------------------

/// Two chat clients, one over UDP and one over TCP: each line reaches the other with the
/// sender's nick, joins and leaves are announced, and everyone exits 0; a third client asking
/// for a taken nick is refused with a clear message.
#[tokio::test]
async fn chat_relays_lines_between_two_clients_with_the_nick_prefix() {
    let mut server = Proc::spawn("chat_server", "chat_server", &["--exit-after-clients", "2"]);
    let at = listening(&mut server).await;

    let mut alice = Proc::spawn(
        "chat_client",
        "alice",
        &[&at.udp, "--pin", &at.fingerprint, "--nick", "alice"],
    );
    alice
        .expect_line("its welcome", |l| l == "* welcome alice, 1 online")
        .await;
    // Bob comes over the TCP carriage, pinning the bare hex digits.
    let hex = at.fingerprint.trim_start_matches("SHA256:").to_string();
    let mut bob = Proc::spawn(
        "chat_client",
        "bob",
        &[&at.tcp, "--tcp", "--pin", &hex, "--nick", "bob"],
    );
    bob.expect_line("its welcome", |l| l == "* welcome bob, 2 online")
        .await;
    alice
        .expect_line("bob's arrival", |l| l == "* bob joined")
        .await;

    // A third client asking for a nick in use is refused, clearly, and does not count as a
    // client that joined.
    let mut copycat = Proc::spawn(
        "chat_client",
        "copycat",
        &[&at.udp, "--pin", &at.fingerprint, "--nick", "alice"],
    );
    let stderr = copycat.expect_failure().await;
    assert!(
        stderr.contains("refused by the server: nick alice is taken"),
        "{stderr}"
    );

    bob.send_line("hello from bob").await;
    alice
        .expect_line("bob's line", |l| l == "bob: hello from bob")
        .await;
    alice.send_line("hi bob, it's alice").await;
    bob.expect_line("alice's line", |l| l == "alice: hi bob, it's alice")
        .await;

    // Bob leaves at the end of his input: a graceful goodbye, announced to alice.
    bob.close_stdin();
    bob.expect_success().await;
    alice
        .expect_line("bob's departure", |l| l == "* bob left")
        .await;
    alice.close_stdin();
    alice.expect_success().await;
    // Both clients have left: the server shuts down by itself.
    server.expect_success().await;

    assert!(
        !bob.seen.iter().any(|l| l.starts_with("bob: ")),
        "a sender does not get its own lines back: {:?}",
        bob.seen
    );
    assert!(
        !alice.seen.iter().any(|l| l.starts_with("alice: ")),
        "a sender does not get its own lines back: {:?}",
        alice.seen
    );
}

// ---------------------------------------------------------------------------------------------
// File transfer
// ---------------------------------------------------------------------------------------------

/// Writes `len` random bytes to `path` and returns them.
fn random_file(path: &Path, len: usize) -> Vec<u8> {
    use rand::RngCore;
    let mut data = vec![0u8; len];
    rand::thread_rng().fill_bytes(&mut data);
    std::fs::write(path, &data).unwrap();
    data
}

/// Names of the entries of `dir`.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A random 3 MiB file arrives byte-identical and confirmed; a sender pinning another key fails
/// with a clear message.
#[tokio::test]
async fn file_transfer_delivers_an_identical_file_and_refuses_a_wrong_pin() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("random.bin");
    let data = random_file(&source, 3 << 20);
    let inbox = dir.path().join("inbox");
    let inbox_arg = inbox.to_str().unwrap();
    let source_arg = source.to_str().unwrap();

    let mut receiver = Proc::spawn(
        "file_transfer",
        "receiver",
        &["receive", "--out", inbox_arg, "--count", "1"],
    );
    let at = listening(&mut receiver).await;

    // A sender pinning another key refuses the receiver during the handshake.
    let other =
        jsp_proto::identity::Identity::generate(jsp_proto::crypto::default_provider().as_ref())
            .unwrap()
            .fingerprint()
            .to_string();
    let mut impostor_check = Proc::spawn(
        "file_transfer",
        "sender with a wrong pin",
        &["send", source_arg, "--to", &at.udp, "--pin", &other],
    );
    let stderr = impostor_check.expect_failure().await;
    assert!(
        stderr.contains("cannot connect") && stderr.contains("not trusted"),
        "a clear message for the wrong pin: {stderr}"
    );

    let mut sender = Proc::spawn(
        "file_transfer",
        "sender",
        &[
            "send",
            source_arg,
            "--to",
            &at.udp,
            "--pin",
            &at.fingerprint,
        ],
    );
    let confirmed = sender
        .expect_line("the confirmation", |l| l.starts_with("sent random.bin"))
        .await;
    sender.expect_success().await;
    assert!(
        confirmed.contains("(3145728 bytes)") && confirmed.ends_with("verified by the receiver"),
        "{confirmed}"
    );
    receiver
        .expect_line("the stored file", |l| l.starts_with("received "))
        .await;
    receiver.expect_success().await;

    let stored = std::fs::read(inbox.join("random.bin")).unwrap();
    assert!(
        stored == data,
        "stored {} bytes, sent {}",
        stored.len(),
        data.len()
    );
    assert_eq!(entries(&inbox), ["random.bin"], "no leftover partial file");
}

/// Content altered after hashing is refused by the receiver, nothing is kept, and both sides
/// exit non-zero with a clear message.
#[tokio::test]
async fn file_transfer_refuses_a_corrupted_file() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("random.bin");
    random_file(&source, 1 << 20);
    let inbox = dir.path().join("inbox");

    let mut receiver = Proc::spawn(
        "file_transfer",
        "receiver",
        &["receive", "--out", inbox.to_str().unwrap(), "--count", "1"],
    );
    let at = listening(&mut receiver).await;
    // Over the TCP carriage this time.
    let mut sender = Proc::spawn(
        "file_transfer",
        "corrupting sender",
        &[
            "send",
            source.to_str().unwrap(),
            "--to",
            &at.tcp,
            "--tcp",
            "--pin",
            &at.fingerprint,
            "--simulate-corruption",
        ],
    );
    let stderr = sender.expect_failure().await;
    assert!(
        stderr.contains("the receiver refused the file: hash mismatch"),
        "a clear message for the corrupted file: {stderr}"
    );
    receiver
        .expect_line("the refusal", |l| {
            l.starts_with("refused a file: hash mismatch")
        })
        .await;
    let stderr = receiver.expect_failure().await;
    assert!(stderr.contains("some transfers were refused"), "{stderr}");
    assert!(
        entries(&inbox).is_empty(),
        "nothing kept: {:?}",
        entries(&inbox)
    );
}

// ---------------------------------------------------------------------------------------------
// Benchmark
// ---------------------------------------------------------------------------------------------

/// Checks the report of a finished `bench_client`: a throughput above zero and latencies.
fn check_bench_report(bench: &Proc) {
    let throughput = bench
        .seen
        .iter()
        .find(|l| l.starts_with("throughput "))
        .unwrap_or_else(|| panic!("no throughput line\n{}", bench.context()));
    let rate: f64 = throughput
        .split_whitespace()
        .nth(1)
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no number in {throughput:?}"));
    assert!(rate > 0.0 && rate.is_finite(), "{throughput}");
    assert!(throughput.contains("2.00 MiB in"), "{throughput}");
    let latency = bench
        .seen
        .iter()
        .find(|l| l.starts_with("latency "))
        .unwrap_or_else(|| panic!("no latency line\n{}", bench.context()));
    let p50: f64 = latency
        .split_whitespace()
        .nth(2)
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no p50 in {latency:?}"));
    assert!(p50 > 0.0, "{latency}");
    assert!(latency.contains("over 50 round trips"), "{latency}");
}

/// The benchmark with its in-process server reports a positive throughput and latencies.
#[tokio::test]
async fn bench_client_measures_against_its_own_server() {
    let mut bench = Proc::spawn(
        "bench_client",
        "bench_client",
        &["--bytes", "2M", "--pings", "50"],
    );
    bench.expect_success().await;
    check_bench_report(&bench);
}

/// The benchmark against a `--serve` process over the TCP carriage.
#[tokio::test]
async fn bench_client_measures_against_a_separate_server_over_tcp() {
    let mut server = Proc::spawn("bench_client", "bench server", &["--serve"]);
    let at = listening(&mut server).await;
    let mut bench = Proc::spawn(
        "bench_client",
        "bench_client",
        &[
            &at.tcp,
            "--tcp",
            "--pin",
            &at.fingerprint,
            "--bytes",
            "2M",
            "--pings",
            "50",
        ],
    );
    bench.expect_success().await;
    check_bench_report(&bench);
    assert!(
        bench.seen.iter().any(|l| l.contains("over Tcp")),
        "{}",
        bench.context()
    );
    // The server runs until interrupted: dropping it kills it.
}
