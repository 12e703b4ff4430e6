//! What the numbers were measured on: CPU, cores, memory, kernel, and the
//! versions of the peers, read from the running machine (Linux `/proc`).

use serde::{Deserialize, Serialize};

/// A description of the machine and the software under test.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Machine {
    /// CPU model name, from `/proc/cpuinfo`.
    pub cpu: String,
    /// Cores this process may use.
    pub cores: usize,
    /// Total memory in MiB, from `/proc/meminfo`.
    pub memory_mib: u64,
    /// Kernel release, from `/proc/sys/kernel/osrelease`.
    pub kernel: String,
    /// The git commit of the tree that was measured, if known.
    pub commit: String,
    /// The peers' versions, as pinned in Cargo.lock.
    pub peers: Vec<String>,
}

/// The versions the harness links (kept in step with Cargo.toml; the test
/// below checks them against Cargo.lock).
pub const PEER_VERSIONS: &[&str] = &[
    "quinn 0.11",
    "rustls 0.23 (aws-lc-rs, X25519MLKEM768)",
    "tokio 1",
];

impl Machine {
    /// Reads the machine this process runs on. Missing files give empty
    /// fields, never an error: a description must not stop a benchmark.
    pub fn detect() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|line| {
                line.strip_prefix("model name")
                    .and_then(|rest| rest.split_once(':'))
            })
            .map(|(_, name)| name.trim().to_string())
            .unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_mib = meminfo
            .lines()
            .find_map(|line| line.strip_prefix("MemTotal:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse::<u64>().ok())
            .map_or(0, |kib| kib / 1024);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string();
        let commit = std::process::Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
            .unwrap_or_default();
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_mib,
            kernel,
            commit,
            peers: PEER_VERSIONS.iter().map(|s| s.to_string()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_this_machine() {
        let machine = Machine::detect();
        assert!(machine.cores >= 1);
        if cfg!(target_os = "linux") {
            assert!(!machine.kernel.is_empty());
            assert!(machine.memory_mib > 0);
        }
    }

    #[test]
    fn peer_versions_match_the_lock_file() {
        let lock = include_str!("../../../Cargo.lock");
        for (name, major) in [("quinn", "0.11."), ("rustls", "0.23."), ("tokio", "1.")] {
            let pinned = format!("name = \"{name}\"\nversion = \"{major}");
            assert!(lock.contains(&pinned), "{name} {major}x not in Cargo.lock");
        }
    }
}
