//! Harness (a) of the loss benchmarks at a tiny size, as CI runs it: the simulator produces
//! every metric, the lossless baseline's goodput ratio is 1.0, a connection stays up through 20%
//! loss with real-time messages still flowing, and a scenario replays exactly from its seed.
//! Virtual time only: nothing here depends on how fast the machine is, and no timing threshold
//! is asserted.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed expectation is a test failure

use std::process::Command;
use std::time::Duration;

use jsp_bench::lossy::sim::{bulk, realtime, SimSpec};
use jsp_bench::lossy::{LossScenario, DEADLINE};
use jsp_bench::scenarios::loss::RealtimeSpec;
use jsp_bench::scenarios::Measure;
use serde_json::Value;

fn spec(id: &str) -> SimSpec {
    let scenario = LossScenario::by_id(id).unwrap();
    SimSpec {
        rtt: scenario.rtt(),
        rate_bps: 10_000_000,
        loss: scenario.loss(),
        bulk_warmup: Duration::from_millis(500),
        bulk_window: Duration::from_millis(500),
        rt: RealtimeSpec {
            rate: 100,
            messages: 50,
            deadline: DEADLINE,
            grace: Duration::from_secs(2),
        },
    }
}

fn transport() -> jsp::TransportConfig {
    jsp::TransportConfig::default()
}

fn value(measures: &[Measure], metric: &str) -> f64 {
    measures
        .iter()
        .find(|m| m.metric == metric)
        .unwrap_or_else(|| panic!("no {metric} in {measures:?}"))
        .value
}

#[test]
fn every_metric_is_produced_and_the_run_replays_from_its_seed() {
    let spec = spec("loss-5-20");
    let first = bulk(7, &spec, &transport()).unwrap();
    assert_eq!(
        first,
        bulk(7, &spec, &transport()).unwrap(),
        "same seed, same numbers"
    );
    assert!(value(&first, "goodput_mbps") > 0.0);
    assert!(value(&first, "wire_bytes_per_useful_byte") > 1.0);
    let rt = realtime(7, &spec, &transport()).unwrap();
    assert_eq!(rt, realtime(7, &spec, &transport()).unwrap());
    for metric in [
        "rt_p50_ms",
        "rt_p99_ms",
        "rt_p999_ms",
        "rt_wire_bytes_per_useful_byte",
    ] {
        assert!(value(&rt, metric) > 0.0, "{metric}");
    }
    let miss = value(&rt, "deadline_miss_ratio");
    assert!((0.0..=1.0).contains(&miss));
    // Every latency is at least the round trip of the link.
    assert!(value(&rt, "rt_p50_ms") >= 20.0);
}

#[test]
fn the_connection_stays_up_through_20_percent_loss_and_messages_keep_flowing() {
    for id in ["loss-20-20", "burst-100"] {
        let spec = spec(id);
        // `bulk` and `realtime` fail if either side's connection closed.
        let goodput = bulk(3, &spec, &transport()).unwrap();
        assert!(value(&goodput, "goodput_mbps") >= 0.0, "{id}");
        let rt = realtime(3, &spec, &transport()).unwrap();
        assert!(
            value(&rt, "deadline_miss_ratio") < 1.0,
            "{id}: no real-time message arrived in time"
        );
    }
}

/// The harness end to end: `--scenario` selection, the `sim-` names, the `goodput_ratio` of the
/// lossless baseline, the JSON shape.
#[test]
fn the_binary_reports_sim_loss_scenarios_with_goodput_ratios() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("loss.json");
    let out = Command::new(env!("CARGO_BIN_EXE_jsp-bench"))
        .args(["--smoke", "--scenario", "sim-loss-20-20", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "jsp-bench failed:\n{stderr}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let rows = report["results"].as_array().unwrap();
    let find = |scenario: &str, metric: &str| {
        rows.iter()
            .find(|r| r["scenario"] == scenario && r["metric"] == metric && r["impl"] == "jsp")
            .unwrap_or_else(|| panic!("no {scenario}/{metric} for jsp in {rows:?}"))["median"]
            .as_f64()
            .unwrap()
    };
    // The baseline was added by itself, and is its own reference.
    assert_eq!(find("sim-loss-0-20", "goodput_ratio"), 1.0);
    let ratio = find("sim-loss-20-20", "goodput_ratio");
    assert!((0.0..=1.5).contains(&ratio), "{ratio}");
    for metric in [
        "goodput_mbps",
        "rt_p50_ms",
        "rt_p99_ms",
        "rt_p999_ms",
        "deadline_miss_ratio",
    ] {
        assert!(find("sim-loss-20-20", metric).is_finite(), "{metric}");
    }
    // jsp and jsp-nofec are both measured.
    for kind in ["jsp", "jsp-nofec"] {
        assert!(
            rows.iter().any(|r| r["impl"] == kind),
            "{kind} missing: {stderr}"
        );
    }
}
