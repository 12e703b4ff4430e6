//! Presenting results: the terminal table (medians with min-max and the
//! JetStreamProto / quinn ratio), the same table as Markdown for
//! docs/BENCHMARKS.md, and the `--json` document.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;

use crate::model::{better, Better, Report, ResultRow};

/// Implementations in column order.
const COLUMNS: [&str; 8] = [
    "jsp",
    "jsp-1452",
    "jsp-pool",
    "jsp-nofec",
    "quinn",
    "tcp-tls",
    "tcp",
    "udp",
];

/// Whether a row belongs to the loss benchmarks (their own sections of the
/// document: real sockets, and the simulator's `sim-` rows).
pub fn is_loss_row(row: &ResultRow) -> bool {
    crate::lossy::LossScenario::by_id(&row.scenario).is_some()
}

/// Whether a loss row comes from the simulator.
pub fn is_sim_row(row: &ResultRow) -> bool {
    is_loss_row(row) && row.scenario.starts_with("sim-")
}

/// The ratio a row reports: JetStreamProto over quinn, or for `scaling`
/// the pool over a single endpoint.
pub fn ratio(rows: &[ResultRow], scenario: &str, metric: &str) -> Option<(&'static str, f64)> {
    let find = |implementation: &str| {
        rows.iter()
            .find(|r| {
                r.scenario == scenario && r.metric == metric && r.implementation == implementation
            })
            .map(|r| r.median)
    };
    let (label, ours, theirs) = if scenario == "scaling" {
        ("pool/single", find("jsp-pool")?, find("jsp")?)
    } else {
        ("jsp/quinn", find("jsp")?, find("quinn")?)
    };
    (theirs != 0.0).then_some((label, ours / theirs))
}

/// Distinct (scenario, metric, unit) triples in first-seen order.
fn lines(rows: &[ResultRow]) -> Vec<(&str, &str, &str)> {
    let mut seen: Vec<(&str, &str, &str)> = Vec::new();
    for row in rows {
        let key = (
            row.scenario.as_str(),
            row.metric.as_str(),
            row.unit.as_str(),
        );
        if !seen.contains(&key) {
            seen.push(key);
        }
    }
    seen
}

fn columns(rows: &[ResultRow]) -> Vec<&'static str> {
    COLUMNS
        .into_iter()
        .filter(|c| rows.iter().any(|r| r.implementation == *c))
        .collect()
}

/// Formats a value with about three significant digits.
pub fn number(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude >= 1000.0 {
        format!("{value:.0}")
    } else if magnitude >= 100.0 {
        format!("{value:.1}")
    } else if magnitude >= 1.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    }
}

fn cell(row: &ResultRow) -> String {
    if row.runs > 1 {
        format!(
            "{} ({}-{})",
            number(row.median),
            number(row.min),
            number(row.max)
        )
    } else {
        number(row.median)
    }
}

fn ratio_cell(rows: &[ResultRow], scenario: &str, metric: &str) -> String {
    match ratio(rows, scenario, metric) {
        Some((label, value)) => {
            let direction = match better(metric) {
                Better::Higher => "higher is better",
                Better::Lower => "lower is better",
            };
            let same_packets = median_of(rows, scenario, metric, "jsp-1452")
                .zip(median_of(rows, scenario, metric, "quinn"))
                .filter(|(_, quinn)| *quinn != 0.0)
                .map(|(ours, quinn)| format!(", {:.2}x jsp-1452/quinn", ours / quinn))
                .unwrap_or_default();
            format!("{value:.2}x {label}{same_packets} ({direction})")
        }
        None => String::new(),
    }
}

/// The median of one (scenario, metric, implementation), if measured.
fn median_of(
    rows: &[ResultRow],
    scenario: &str,
    metric: &str,
    implementation: &str,
) -> Option<f64> {
    rows.iter()
        .find(|r| {
            r.scenario == scenario && r.metric == metric && r.implementation == implementation
        })
        .map(|r| r.median)
}

fn table_cells(rows: &[ResultRow]) -> (Vec<String>, Vec<Vec<String>>) {
    let cols = columns(rows);
    let mut header = vec!["scenario".to_string(), "metric".to_string()];
    header.extend(cols.iter().map(|c| c.to_string()));
    header.push("ratio".to_string());
    let mut body = Vec::new();
    for (scenario, metric, unit) in lines(rows) {
        let mut line = vec![scenario.to_string(), format!("{metric} [{unit}]")];
        for col in &cols {
            line.push(
                rows.iter()
                    .find(|r| {
                        r.scenario == scenario && r.metric == metric && r.implementation == *col
                    })
                    .map(cell)
                    .unwrap_or_else(|| "-".to_string()),
            );
        }
        line.push(ratio_cell(rows, scenario, metric));
        body.push(line);
    }
    (header, body)
}

/// The results as an aligned plain-text table.
pub fn text_table(rows: &[ResultRow]) -> String {
    let (header, body) = table_cells(rows);
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for line in &body {
        for (width, value) in widths.iter_mut().zip(line) {
            *width = (*width).max(value.chars().count());
        }
    }
    let mut out = String::new();
    for line in std::iter::once(&header).chain(body.iter()) {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .map(|(value, width)| format!("{value:<width$}"))
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    out
}

/// The results as a Markdown table.
pub fn markdown_table(rows: &[ResultRow]) -> String {
    let (header, body) = table_cells(rows);
    let mut out = String::new();
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
    for line in body {
        let _ = writeln!(out, "| {} |", line.join(" | "));
    }
    out
}

/// Writes the `--json` document.
pub fn write_json(path: &Path, report: &Report) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(report)?;
    std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))
}

/// The marker lines between which `--update-doc` writes the results.
pub const DOC_BEGIN: &str = "<!-- results:begin (written by jsp-bench --update-doc) -->";
/// See [`DOC_BEGIN`].
pub const DOC_END: &str = "<!-- results:end -->";

/// The marker lines between which `--update-doc` writes the loss results.
pub const LOSS_DOC_BEGIN: &str = "<!-- loss-results:begin (written by jsp-bench --update-doc) -->";
/// See [`LOSS_DOC_BEGIN`].
pub const LOSS_DOC_END: &str = "<!-- loss-results:end -->";

/// Replaces the text between [`DOC_BEGIN`] and [`DOC_END`] in `doc` with
/// `section`.
pub fn splice(doc: &str, section: &str) -> anyhow::Result<String> {
    splice_between(doc, DOC_BEGIN, DOC_END, section)
}

/// The marker lines between which `--update-doc` writes the simulator's
/// loss results.
pub const SIM_LOSS_DOC_BEGIN: &str =
    "<!-- sim-loss-results:begin (written by jsp-bench --update-doc) -->";
/// See [`SIM_LOSS_DOC_BEGIN`].
pub const SIM_LOSS_DOC_END: &str = "<!-- sim-loss-results:end -->";

/// Replaces the text between [`LOSS_DOC_BEGIN`] and [`LOSS_DOC_END`] in
/// `doc` with `section`.
pub fn splice_loss(doc: &str, section: &str) -> anyhow::Result<String> {
    splice_between(doc, LOSS_DOC_BEGIN, LOSS_DOC_END, section)
}

/// Replaces the text between [`SIM_LOSS_DOC_BEGIN`] and
/// [`SIM_LOSS_DOC_END`] in `doc` with `section`.
pub fn splice_sim_loss(doc: &str, section: &str) -> anyhow::Result<String> {
    splice_between(doc, SIM_LOSS_DOC_BEGIN, SIM_LOSS_DOC_END, section)
}

fn splice_between(
    doc: &str,
    begin_marker: &str,
    end_marker: &str,
    section: &str,
) -> anyhow::Result<String> {
    let begin = doc
        .find(begin_marker)
        .with_context(|| format!("the document has no {begin_marker} marker"))?;
    let end = doc
        .find(end_marker)
        .with_context(|| format!("the document has no {end_marker} marker"))?;
    anyhow::ensure!(begin < end, "the results markers are out of order");
    let head = &doc[..begin + begin_marker.len()];
    Ok(format!("{head}\n{section}{}", &doc[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(scenario: &str, implementation: &str, metric: &str, median: f64) -> ResultRow {
        ResultRow {
            scenario: scenario.into(),
            implementation: implementation.into(),
            metric: metric.into(),
            unit: "u".into(),
            median,
            min: median - 1.0,
            max: median + 1.0,
            runs: 5,
        }
    }

    #[test]
    fn ratios_are_ours_over_theirs() {
        let rows = [
            row("bulk", "jsp", "throughput_gbps", 6.0),
            row("bulk", "quinn", "throughput_gbps", 4.0),
            row("scaling", "jsp", "throughput_gbps", 4.0),
            row("scaling", "jsp-pool", "throughput_gbps", 5.0),
        ];
        assert_eq!(
            ratio(&rows, "bulk", "throughput_gbps"),
            Some(("jsp/quinn", 1.5))
        );
        assert_eq!(
            ratio(&rows, "scaling", "throughput_gbps"),
            Some(("pool/single", 1.25))
        );
        assert_eq!(ratio(&rows, "handshake", "p50_us"), None);
    }

    #[test]
    fn tables_have_one_line_per_metric_and_a_column_per_impl() {
        let rows = [
            row("bulk", "jsp", "throughput_gbps", 6.0),
            row("bulk", "quinn", "throughput_gbps", 4.0),
            row("rr64", "jsp", "p50_us", 50.0),
        ];
        let text = text_table(&rows);
        assert_eq!(text.lines().count(), 3);
        assert!(text
            .lines()
            .next()
            .is_some_and(|h| h.contains("jsp") && h.contains("quinn")));
        assert!(text.contains("6.00 (5.00-7.00)"));
        assert!(text.contains("1.50x jsp/quinn (higher is better)"));
        let markdown = markdown_table(&rows);
        assert_eq!(markdown.lines().count(), 4);
    }

    #[test]
    fn splice_replaces_only_between_markers() {
        let doc = format!("intro\n{DOC_BEGIN}\nold\n{DOC_END}\noutro\n");
        let updated = splice(&doc, "new\n").unwrap_or_default();
        assert_eq!(
            updated,
            format!("intro\n{DOC_BEGIN}\nnew\n{DOC_END}\noutro\n")
        );
        assert!(splice("no markers", "x").is_err());
    }
}
