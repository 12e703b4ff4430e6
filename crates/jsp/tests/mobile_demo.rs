//! Runs the `mobile_demo` example (see its header) and checks what it promises: the session is
//! resumed after the network change, lost messages are resent, and every message arrives.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is a test failure

use std::path::PathBuf;
use std::process::Command;

/// The example binary cargo built next to this test (`target/<profile>/examples/`), built on
/// demand when the test runs alone.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let path = profile_dir.join("examples").join(name);
    if !path.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "jsp", "--example", name])
            .status()
            .unwrap();
        assert!(status.success(), "building example {name}");
    }
    path
}

#[tokio::test]
async fn mobile_demo_reconnects_across_a_network_change_without_losing_messages() {
    let child = tokio::process::Command::new(example("mobile_demo"))
        .args(["--messages", "30"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // The demo bounds each of its steps itself; this bounds the whole run.
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        child.wait_with_output(),
    )
    .await
    .expect("mobile_demo finished in time")
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {}\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("heartbeat every 25s"), "{stdout}");
    assert!(stdout.contains("resumed=true"), "{stdout}");
    assert!(stdout.contains("delivered 30/30 messages"), "{stdout}");
}
