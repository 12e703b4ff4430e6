//! Charts for docs/BENCHMARKS.md: grouped bar charts written as plain SVG
//! (no fonts or native libraries needed), one colour per implementation,
//! with a linear or logarithmic value axis.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;

use crate::model::ResultRow;
use crate::report::number;

/// One cluster of bars: a label and one value per implementation.
pub struct Group {
    /// Label under the cluster.
    pub label: String,
    /// (implementation, value) pairs.
    pub bars: Vec<(String, f64)>,
}

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 360.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 70.0;

fn colour(implementation: &str) -> &'static str {
    match implementation {
        "jsp" => "#1f77b4",
        "jsp-pool" => "#17becf",
        "jsp-1452" => "#aec7e8",
        "jsp-nofec" => "#9edae5",
        "quinn" => "#ff7f0e",
        "tcp-tls" => "#2ca02c",
        "tcp" => "#7f7f7f",
        "udp" => "#bcbd22",
        _ => "#9467bd",
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Renders a grouped bar chart. With `log`, the axis is logarithmic
/// (values must be positive; others are drawn as empty).
pub fn bar_chart(title: &str, axis_label: &str, groups: &[Group], log: bool) -> String {
    let values: Vec<f64> = groups
        .iter()
        .flat_map(|g| g.bars.iter().map(|b| b.1))
        .filter(|v| v.is_finite() && *v > 0.0)
        .collect();
    let max = values.iter().copied().fold(0.0_f64, f64::max).max(1e-9);
    let min = values
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min)
        .min(max);
    let (lo, hi) = if log {
        (
            min.log10().floor(),
            max.log10().ceil().max(min.log10().floor() + 1.0),
        )
    } else {
        (0.0, max * 1.1)
    };
    // Wide enough for every cluster's label (the loss charts have twelve).
    let width = WIDTH.max(LEFT + RIGHT + 80.0 * groups.len() as f64);
    let plot_h = HEIGHT - TOP - BOTTOM;
    let scale = |v: f64| -> f64 {
        let t = if log {
            (v.max(1e-12).log10() - lo) / (hi - lo)
        } else {
            v / hi
        };
        plot_h * t.clamp(0.0, 1.0)
    };
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="22" font-size="15" text-anchor="middle">{}</text>"#,
        width / 2.0,
        escape(title)
    );
    // Axis and grid.
    let ticks: Vec<f64> = if log {
        (lo as i32..=hi as i32).map(|e| 10f64.powi(e)).collect()
    } else {
        (0..=5).map(|i| hi * f64::from(i) / 5.0).collect()
    };
    for tick in ticks {
        let y = TOP + plot_h - scale(tick);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            width - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            number(tick)
        );
    }
    let _ = writeln!(
        svg,
        r#"<text transform="translate(16,{:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        TOP + plot_h / 2.0,
        escape(axis_label)
    );
    // Bars.
    let group_w = (width - LEFT - RIGHT) / groups.len().max(1) as f64;
    for (g, group) in groups.iter().enumerate() {
        let n = group.bars.len().max(1) as f64;
        let bar_w = (group_w * 0.8 / n).min(48.0);
        let x0 = LEFT + g as f64 * group_w + (group_w - bar_w * n) / 2.0;
        for (b, (implementation, value)) in group.bars.iter().enumerate() {
            let h = if value.is_finite() && *value > 0.0 {
                scale(*value)
            } else {
                0.0
            };
            let x = x0 + b as f64 * bar_w;
            let y = TOP + plot_h - h;
            let _ = writeln!(
                svg,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{h:.1}" fill="{}"><title>{} {}</title></rect>"#,
                bar_w - 2.0,
                colour(implementation),
                escape(implementation),
                number(*value)
            );
            let _ = writeln!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" font-size="9" text-anchor="middle">{}</text>"#,
                x + bar_w / 2.0 - 1.0,
                y - 3.0,
                number(*value)
            );
        }
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            LEFT + g as f64 * group_w + group_w / 2.0,
            TOP + plot_h + 18.0,
            escape(&group.label)
        );
    }
    // Legend.
    let mut seen: Vec<&str> = Vec::new();
    for group in groups {
        for (implementation, _) in &group.bars {
            if !seen.contains(&implementation.as_str()) {
                seen.push(implementation);
            }
        }
    }
    for (i, implementation) in seen.iter().enumerate() {
        let x = LEFT + i as f64 * 95.0;
        let y = HEIGHT - 22.0;
        let _ = writeln!(
            svg,
            r#"<rect x="{x:.1}" y="{:.1}" width="12" height="12" fill="{}"/><text x="{:.1}" y="{y:.1}">{}</text>"#,
            y - 10.0,
            colour(implementation),
            x + 16.0,
            escape(implementation)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// Groups for the given (scenario, metric, label) selections.
fn groups(rows: &[ResultRow], selections: &[(&str, &str, &str)]) -> Vec<Group> {
    selections
        .iter()
        .filter_map(|(scenario, metric, label)| {
            let bars: Vec<(String, f64)> = rows
                .iter()
                .filter(|r| r.scenario == *scenario && r.metric == *metric)
                .map(|r| (r.implementation.clone(), r.median))
                .collect();
            (!bars.is_empty()).then(|| Group {
                label: label.to_string(),
                bars,
            })
        })
        .collect()
}

/// Groups for one metric over the loss scenarios (real-socket names, or
/// the simulator's with `sim`), labelled by loss and RTT, in scenario order.
fn loss_groups(rows: &[ResultRow], metric: &str, sim: bool) -> Vec<Group> {
    let labels: Vec<(&str, String)> = crate::lossy::SCENARIOS
        .iter()
        .map(|s| {
            let id = if sim { s.sim_id } else { s.id };
            (id, format!("{} {}ms", s.loss_label(), s.rtt_ms))
        })
        .collect();
    let selections: Vec<(&str, &str, &str)> = labels
        .iter()
        .map(|(id, label)| (*id, metric, label.as_str()))
        .collect();
    groups(rows, &selections)
}

/// Writes throughput.svg, latency.svg, handshake.svg and memory.svg, and
/// for the loss benchmarks loss_goodput.svg and loss_rt_p99.svg (and
/// sim_loss_goodput.svg, sim_loss_rt_p99.svg), into `dir`, each only if
/// its data was measured; returns the file names written.
pub fn write_charts(dir: &Path, rows: &[ResultRow]) -> anyhow::Result<Vec<String>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let charts = [
        (
            "throughput.svg",
            "Bulk throughput, one connection (median)",
            "Gbit/s",
            false,
            groups(
                rows,
                &[
                    ("bulk", "throughput_gbps", "1 stream"),
                    ("bulk8", "throughput_gbps", "8 streams"),
                    ("scaling", "throughput_gbps", "several connections"),
                ],
            ),
        ),
        (
            "latency.svg",
            "Request/response latency at a fixed rate (median of runs, log scale)",
            "microseconds",
            true,
            groups(
                rows,
                &[
                    ("rr64", "p50_us", "64 B p50"),
                    ("rr64", "p99_us", "64 B p99"),
                    ("rr64", "p999_us", "64 B p99.9"),
                    ("rr1k", "p50_us", "1 KiB p50"),
                    ("rr1k", "p99_us", "1 KiB p99"),
                    ("rr1k", "p999_us", "1 KiB p99.9"),
                ],
            ),
        ),
        (
            "handshake.svg",
            "Connect to first byte echoed (median)",
            "microseconds",
            false,
            groups(
                rows,
                &[
                    ("handshake", "p50_us", "full p50"),
                    ("resume", "p50_us", "resumed p50"),
                ],
            ),
        ),
        (
            "memory.svg",
            "Server memory per idle connection (RSS delta / N)",
            "bytes",
            false,
            groups(rows, &[("idle_conns", "bytes_per_conn", "per connection")]),
        ),
        (
            "loss_goodput.svg",
            "Bulk goodput under loss / lossless goodput on the same link (median)",
            "goodput ratio",
            false,
            loss_groups(rows, "goodput_ratio", false),
        ),
        (
            "loss_rt_p99.svg",
            "100-byte messages at a fixed rate under loss: p99 round trip (log scale)",
            "milliseconds",
            true,
            loss_groups(rows, "rt_p99_ms", false),
        ),
        (
            "sim_loss_goodput.svg",
            "Simulator: goodput under loss / lossless goodput (median)",
            "goodput ratio",
            false,
            loss_groups(rows, "goodput_ratio", true),
        ),
        (
            "sim_loss_rt_p99.svg",
            "Simulator: p99 round trip of 100-byte messages under loss (log scale)",
            "milliseconds",
            true,
            loss_groups(rows, "rt_p99_ms", true),
        ),
    ];
    let mut written = Vec::new();
    for (file, title, axis, log, groups) in charts {
        if groups.is_empty() {
            continue;
        }
        let path = dir.join(file);
        std::fs::write(&path, bar_chart(title, axis, &groups, log))
            .with_context(|| format!("writing {}", path.display()))?;
        written.push(file.to_string());
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_has_a_bar_per_value_and_a_legend_entry_per_impl() {
        let groups = vec![
            Group {
                label: "a".into(),
                bars: vec![("jsp".into(), 2.0), ("quinn".into(), 1.0)],
            },
            Group {
                label: "b".into(),
                bars: vec![("jsp".into(), 4.0), ("quinn".into(), 3.0)],
            },
        ];
        for log in [false, true] {
            let svg = bar_chart("t <1>", "y", &groups, log);
            assert!(svg.starts_with("<svg"));
            assert!(svg.trim_end().ends_with("</svg>"));
            assert_eq!(svg.matches("<title>").count(), 4);
            assert!(svg.contains("t &lt;1&gt;"));
            assert!(svg.contains(">jsp</text>") && svg.contains(">quinn</text>"));
        }
    }
}
