//! The harness end to end in its smoke mode (what CI runs): every scenario produces a value for
//! every implementation it applies to, the JSON document has the stable shape scripts read, and
//! the charts and the Markdown section are written. Nothing here checks a speed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed expectation is a test failure

use std::process::Command;

use serde_json::Value;

/// (scenario, metric, implementations) the smoke run must report.
const EXPECTED: &[(&str, &str, &[&str])] = &[
    (
        "bulk",
        "throughput_gbps",
        &["jsp", "jsp-1452", "quinn", "tcp-tls", "tcp"],
    ),
    (
        "bulk8",
        "throughput_gbps",
        &["jsp", "quinn", "tcp-tls", "tcp"],
    ),
    ("rr64", "p99_us", &["jsp", "quinn", "tcp-tls", "tcp"]),
    ("rr1k", "p999_us", &["jsp", "quinn", "tcp-tls", "tcp"]),
    ("rr64_closed", "p50_us", &["jsp", "quinn", "tcp-tls", "tcp"]),
    ("handshake", "p50_us", &["jsp", "quinn", "tcp-tls", "tcp"]),
    ("handshake_rate", "per_sec", &["jsp", "quinn", "tcp-tls"]),
    ("resume", "p50_us", &["jsp", "quinn", "tcp-tls"]),
    (
        "idle_conns",
        "bytes_per_conn",
        &["jsp", "quinn", "tcp-tls", "tcp"],
    ),
    ("streams", "per_sec", &["jsp", "quinn"]),
    ("datagrams", "per_sec", &["jsp", "quinn", "udp"]),
    ("scaling", "throughput_gbps", &["jsp", "jsp-pool"]),
];

#[test]
fn the_smoke_run_reports_every_scenario_for_every_implementation() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("results.json");
    let charts = dir.path().join("charts");
    let doc = dir.path().join("BENCHMARKS.md");
    std::fs::write(
        &doc,
        "# B\n<!-- results:begin (written by jsp-bench --update-doc) -->\nold\n<!-- results:end -->\ntail\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_jsp-bench"))
        .args(["--smoke", "--run-timeout", "120", "--json"])
        .arg(&json)
        .arg("--charts")
        .arg(&charts)
        .arg("--update-doc")
        .arg(&doc)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "jsp-bench --smoke failed:\n{stderr}");

    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["mode"], "smoke");
    assert!(report["machine"]["cores"].as_u64().unwrap() >= 1);
    let rows = report["results"].as_array().unwrap();
    for row in rows {
        for key in ["scenario", "impl", "metric", "unit"] {
            assert!(row[key].is_string(), "{key} in {row}");
        }
        for key in ["median", "min", "max"] {
            assert!(
                row[key].as_f64().is_some_and(f64::is_finite),
                "{key} in {row}"
            );
        }
        assert_eq!(row["runs"], 1);
    }
    for (scenario, metric, impls) in EXPECTED {
        for implementation in *impls {
            let found = rows.iter().find(|r| {
                r["scenario"] == *scenario && r["metric"] == *metric && r["impl"] == *implementation
            });
            let row =
                found.unwrap_or_else(|| panic!("no {scenario}/{metric} for {implementation}"));
            let median = row["median"].as_f64().unwrap();
            assert!(
                median > 0.0,
                "{scenario}/{metric}/{implementation} = {median}"
            );
        }
    }

    // The table went to standard output, with the jsp/quinn ratio.
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("jsp/quinn"), "{table}");
    for chart in [
        "throughput.svg",
        "latency.svg",
        "handshake.svg",
        "memory.svg",
    ] {
        let svg = std::fs::read_to_string(charts.join(chart)).unwrap();
        assert!(svg.starts_with("<svg"), "{chart}");
    }
    let doc = std::fs::read_to_string(&doc).unwrap();
    assert!(doc.contains("| bulk | throughput_gbps [Gbit/s] |"), "{doc}");
    assert!(!doc.contains("old") && doc.ends_with("tail\n"), "{doc}");
}
