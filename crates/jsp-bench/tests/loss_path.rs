//! Harness (b) of the loss benchmarks at a tiny size: real sockets through the emulated link,
//! every implementation through the same path. The TUN path (network namespaces) runs only where
//! the machine allows it (root, /dev/net/tun, `ip netns`) and says why it skipped otherwise; the
//! UDP relay on loopback runs everywhere. Only the presence and sanity of the values is checked,
//! never a speed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed expectation is a test failure

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Runs `jsp-bench --smoke` with `args` and returns the JSON rows.
fn run(args: &[&str]) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("loss.json");
    let out = Command::new(env!("CARGO_BIN_EXE_jsp-bench"))
        .args(["--smoke", "--run-timeout", "120"])
        .args(args)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "jsp-bench {args:?} failed:\n{stderr}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    report["results"].as_array().unwrap().clone()
}

fn median(rows: &[Value], scenario: &str, implementation: &str, metric: &str) -> f64 {
    rows.iter()
        .find(|r| r["scenario"] == scenario && r["impl"] == implementation && r["metric"] == metric)
        .unwrap_or_else(|| panic!("no {scenario}/{metric} for {implementation}"))["median"]
        .as_f64()
        .unwrap()
}

/// Why the TUN path cannot run on this machine, if it cannot.
fn tun_unavailable() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not root".into());
    }
    if !Path::new("/dev/net/tun").exists() {
        return Some("no /dev/net/tun".into());
    }
    match Command::new("ip").args(["netns", "list"]).output() {
        Ok(out) if out.status.success() => None,
        _ => Some("`ip netns` is not usable".into()),
    }
}

#[test]
fn tun_path_carries_every_implementation() {
    if let Some(why) = tun_unavailable() {
        eprintln!("skipped: the TUN path needs root, /dev/net/tun and `ip netns` ({why})");
        return;
    }
    let rows = run(&["--scenario", "loss-20-20", "--loss-path", "tun"]);
    for implementation in ["jsp", "quinn", "tcp-tls"] {
        assert_eq!(
            median(&rows, "loss-0-20", implementation, "goodput_ratio"),
            1.0
        );
        assert!(median(&rows, "loss-0-20", implementation, "goodput_mbps") > 0.0);
        assert!(
            median(
                &rows,
                "loss-0-20",
                implementation,
                "wire_bytes_per_useful_byte"
            ) > 1.0
        );
        // Through 20% loss the connection stayed up (a dropped one fails the run).
        assert!(median(&rows, "loss-20-20", implementation, "goodput_mbps") >= 0.0);
    }
    for implementation in ["jsp", "quinn"] {
        assert!(median(&rows, "loss-0-20", implementation, "rt_p50_ms") >= 20.0);
        let miss = median(&rows, "loss-20-20", implementation, "deadline_miss_ratio");
        assert!((0.0..1.0).contains(&miss), "{implementation}: {miss}");
        assert!(median(&rows, "loss-20-20", implementation, "rt_p99_ms") > 0.0);
    }
    // tcp-tls is measured for bulk only.
    assert!(!rows
        .iter()
        .any(|r| r["impl"] == "tcp-tls" && r["metric"] == "rt_p99_ms"));
}

#[test]
fn udp_relay_carries_the_udp_implementations() {
    let rows = run(&["--scenario", "burst-20", "--loss-path", "udp"]);
    for implementation in ["jsp", "quinn"] {
        assert_eq!(
            median(&rows, "loss-0-20", implementation, "goodput_ratio"),
            1.0
        );
        assert!(median(&rows, "burst-20", implementation, "goodput_mbps") >= 0.0);
        assert!(median(&rows, "burst-20", implementation, "rt_p50_ms") >= 20.0);
        let miss = median(&rows, "burst-20", implementation, "deadline_miss_ratio");
        assert!((0.0..=1.0).contains(&miss));
    }
    assert!(!rows.iter().any(|r| r["impl"] == "tcp-tls"));
}
