//! The results model: one [`Sample`] per measured run, grouped and reduced
//! to a [`ResultRow`] (median, min, max over the runs), and the [`Report`]
//! that `--json` writes. The field names and the scenario / metric
//! identifiers are stable: scripts read them.

use serde::{Deserialize, Serialize};

use crate::machine::Machine;

/// One value measured in one run of one scenario for one implementation.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Scenario identifier (`bulk`, `rr64`, ...).
    pub scenario: &'static str,
    /// Implementation identifier (`jsp`, `quinn`, ...).
    pub implementation: &'static str,
    /// Metric identifier (`throughput_gbps`, `p50_us`, ...).
    pub metric: &'static str,
    /// Unit shown in the table (`Gbit/s`, `us`, ...).
    pub unit: &'static str,
    /// The measured value.
    pub value: f64,
}

/// Whether a larger or a smaller value of a metric is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    /// Throughputs and rates.
    Higher,
    /// Latencies, memory, losses.
    Lower,
}

/// Which direction is better for a metric identifier.
pub fn better(metric: &str) -> Better {
    if metric.ends_with("_gbps")
        || metric.ends_with("per_sec")
        || metric == "resumed_ratio"
        || metric.starts_with("goodput")
    {
        Better::Higher
    } else {
        Better::Lower
    }
}

/// Runs of one (scenario, implementation, metric) reduced to a summary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResultRow {
    /// Scenario identifier.
    pub scenario: String,
    /// Implementation identifier.
    #[serde(rename = "impl")]
    pub implementation: String,
    /// Metric identifier.
    pub metric: String,
    /// Unit.
    pub unit: String,
    /// Median over the runs (the mean of the middle two for an even count).
    pub median: f64,
    /// Smallest run.
    pub min: f64,
    /// Largest run.
    pub max: f64,
    /// Number of runs.
    pub runs: usize,
}

/// The whole `--json` document.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    /// What the numbers were measured on.
    pub machine: Machine,
    /// `smoke`, `quick` or `full`.
    pub mode: String,
    /// One row per (scenario, implementation, metric), in measurement order.
    pub results: Vec<ResultRow>,
}

/// The median of `values` (`NaN` for none).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted: Vec<f64> = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => sorted[n / 2],
        _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// Groups samples by (scenario, implementation, metric), keeping the order
/// in which each group first appeared, and reduces each group to a row.
pub fn summarize(samples: &[Sample]) -> Vec<ResultRow> {
    let mut groups: Vec<(&Sample, Vec<f64>)> = Vec::new();
    for sample in samples {
        let key = |s: &Sample| (s.scenario, s.implementation, s.metric);
        match groups
            .iter_mut()
            .find(|(first, _)| key(first) == key(sample))
        {
            Some((_, values)) => values.push(sample.value),
            None => groups.push((sample, vec![sample.value])),
        }
    }
    groups
        .into_iter()
        .map(|(first, values)| ResultRow {
            scenario: first.scenario.to_string(),
            implementation: first.implementation.to_string(),
            metric: first.metric.to_string(),
            unit: first.unit.to_string(),
            median: median(&values),
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            runs: values.len(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(implementation: &'static str, value: f64) -> Sample {
        Sample {
            scenario: "bulk",
            implementation,
            metric: "throughput_gbps",
            unit: "Gbit/s",
            value,
        }
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn summarize_groups_runs_and_keeps_first_seen_order() {
        let samples = [
            sample("jsp", 5.0),
            sample("quinn", 3.0),
            sample("jsp", 7.0),
            sample("quinn", 4.0),
            sample("jsp", 6.0),
        ];
        let rows = summarize(&samples);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].implementation, "jsp");
        assert_eq!(
            (rows[0].median, rows[0].min, rows[0].max, rows[0].runs),
            (6.0, 5.0, 7.0, 3)
        );
        assert_eq!(rows[1].implementation, "quinn");
        assert_eq!((rows[1].median, rows[1].runs), (3.5, 2));
    }

    #[test]
    fn direction_of_metrics() {
        assert_eq!(better("throughput_gbps"), Better::Higher);
        assert_eq!(better("per_sec"), Better::Higher);
        assert_eq!(better("p99_us"), Better::Lower);
        assert_eq!(better("bytes_per_conn"), Better::Lower);
        assert_eq!(better("goodput_ratio"), Better::Higher);
        assert_eq!(better("goodput_mbps"), Better::Higher);
        assert_eq!(better("deadline_miss_ratio"), Better::Lower);
        assert_eq!(better("wire_bytes_per_useful_byte"), Better::Lower);
    }
}
