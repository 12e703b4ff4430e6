//! `jsp demo --only fec`: real-time messages through the demo's lossy relay, with FEC off and
//! with FEC on; the FEC run rebuilds lost packets, the run without FEC rebuilds none. Counts
//! only: nothing here depends on timing.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod support;

use support::*;

/// The two cells (FEC off, FEC on) of the table row labelled `label`.
fn row<'a>(out: &'a str, label: &str) -> (&'a str, &'a str) {
    let line = out
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(label))
        .unwrap_or_else(|| panic!("no row {label:?} in:\n{out}"));
    // Cells are numbers or "N / M"; what follows them is a note.
    let cells: Vec<&str> = line
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert!(cells.len() >= 2, "row {label:?}: {line:?}");
    (cells[0], cells[1])
}

fn count(cell: &str) -> u64 {
    cell.parse()
        .unwrap_or_else(|_| panic!("not a count: {cell:?}"))
}

#[test]
fn demo_fec_rebuilds_lost_packets_only_with_fec() {
    let (code, out, err) = run(&["demo", "--only", "fec"], b"");
    assert_eq!(code, Some(0), "stdout:\n{out}\nstderr: {err}");
    assert!(out.lines().any(|l| l.starts_with("fec ")), "{out}");
    assert!(!out.contains("transfer"), "only the FEC step runs:\n{out}");

    let heading = out
        .lines()
        .find(|l| l.contains("FEC off") && l.contains("FEC 10+2"));
    assert!(heading.is_some(), "no column headings:\n{out}");

    let (off, on) = row(&out, "rebuilt by FEC");
    assert_eq!(count(off), 0, "nothing is rebuilt without FEC:\n{out}");
    assert!(count(on) > 0, "FEC rebuilt nothing:\n{out}");

    // The link really dropped packets in both runs.
    let (off, on) = row(&out, "link dropped");
    for cell in [off, on] {
        let (dropped, offered) = cell.split_once(" / ").unwrap();
        assert!(
            count(dropped) > 0 && count(offered) > count(dropped),
            "{out}"
        );
    }

    // The stream is reliable: every message arrives in both runs.
    let (off, on) = row(&out, "delivered");
    assert_eq!((off, on), ("150 / 150", "150 / 150"), "{out}");

    // Repair symbols are sent only with FEC.
    let (off, on) = row(&out, "repair sent");
    assert_eq!(off, "0 / 0", "{out}");
    let (repair, source) = on.split_once(" / ").unwrap();
    assert!(count(repair) > 0 && count(source) > 0, "{out}");
}
