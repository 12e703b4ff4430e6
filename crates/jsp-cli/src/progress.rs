//! Progress of a long transfer on standard error: a bar with bytes, rate and ETA when standard
//! error is a terminal, otherwise plain lines that read well in logs: at each tenth of a known
//! total (every second for an unknown one), and never more than one a second, so a short
//! transfer prints none.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::clock::Stopwatch;
use crate::units::{fmt_bytes, fmt_duration, fmt_rate};

/// Plain lines come at most this often.
const LINE_INTERVAL: Duration = Duration::from_secs(1);

/// The bar for a known total.
const BAR_TEMPLATE: &str =
    "{msg} [{bar:30}] {decimal_bytes}/{decimal_total_bytes} {decimal_bytes_per_sec} ETA {eta}";
/// The spinner for an unknown total.
const SPINNER_TEMPLATE: &str = "{msg} {spinner} {decimal_bytes} {decimal_bytes_per_sec} {elapsed}";

/// Where progress goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// A bar on a terminal, plain lines otherwise.
    Auto,
    /// A bar on a terminal, nothing otherwise.
    TerminalOnly,
    /// Nothing.
    Hidden,
}

enum Output {
    Bar(ProgressBar),
    Lines,
    Hidden,
}

/// The progress of one transfer.
pub struct Progress {
    output: Output,
    label: String,
    total: Option<u64>,
    start: u64,
    position: u64,
    clock: Stopwatch,
    /// Plain mode: the last tenth reported (known total) or the time of the last line.
    last_tenth: u64,
    last_line: Duration,
}

impl Progress {
    /// Progress of `label` towards `total` bytes (if known), starting at `start` (a resumed
    /// transfer); rates count only what moves from now on.
    pub fn new(label: &str, total: Option<u64>, start: u64, mode: ProgressMode) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let output = match (mode, terminal) {
            (ProgressMode::Hidden, _) => Output::Hidden,
            (_, true) => {
                let bar = match total {
                    Some(t) => ProgressBar::with_draw_target(Some(t), ProgressDrawTarget::stderr()),
                    None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
                };
                let template = if total.is_some() {
                    BAR_TEMPLATE
                } else {
                    SPINNER_TEMPLATE
                };
                if let Ok(style) = ProgressStyle::with_template(template) {
                    bar.set_style(style.progress_chars("=> "));
                }
                bar.set_message(label.to_owned());
                bar.set_position(start);
                bar.reset_eta();
                Output::Bar(bar)
            }
            (ProgressMode::Auto, false) => Output::Lines,
            (ProgressMode::TerminalOnly, false) => Output::Hidden,
        };
        let last_tenth = match total {
            Some(t) if t > 0 => start.saturating_mul(10) / t,
            _ => 0,
        };
        Self {
            output,
            label: label.to_owned(),
            total,
            start,
            position: start,
            clock: Stopwatch::start(),
            last_tenth,
            last_line: Duration::ZERO,
        }
    }

    /// Nothing shown.
    pub fn hidden() -> Self {
        Self::new("", None, 0, ProgressMode::Hidden)
    }

    /// The transfer reached `position` bytes.
    pub fn set(&mut self, position: u64) {
        self.position = position;
        match &self.output {
            Output::Bar(bar) => bar.set_position(position),
            Output::Hidden => {}
            Output::Lines => {
                let now = self.clock.elapsed();
                if now.saturating_sub(self.last_line) < LINE_INTERVAL {
                    return;
                }
                match self.total {
                    Some(total) if total > 0 => {
                        let tenth = position.saturating_mul(10) / total;
                        if tenth > self.last_tenth && position < total {
                            self.last_tenth = tenth;
                            self.last_line = now;
                            self.line();
                        }
                    }
                    _ => {
                        self.last_line = now;
                        self.line();
                    }
                }
            }
        }
    }

    /// Prints a message without garbling the bar.
    pub fn println(&self, message: &str) {
        match &self.output {
            Output::Bar(bar) => bar.suspend(|| eprintln!("{message}")),
            _ => eprintln!("{message}"),
        }
    }

    /// Removes the bar (plain mode prints nothing more: the caller reports the result).
    pub fn finish(&mut self) {
        if let Output::Bar(bar) = &self.output {
            bar.finish_and_clear();
        }
        self.output = Output::Hidden;
    }

    fn line(&self) {
        let elapsed = self.clock.elapsed();
        let moved = self.position.saturating_sub(self.start);
        let mut text = format!("{}: {}", self.label, fmt_bytes(self.position));
        if let Some(total) = self.total {
            let percent = self
                .position
                .saturating_mul(100)
                .checked_div(total)
                .unwrap_or(100);
            text.push_str(&format!(" of {} ({percent}%)", fmt_bytes(total)));
        }
        text.push_str(&format!(", {}", fmt_rate(moved, elapsed)));
        if let Some(total) = self.total {
            let secs = elapsed.as_secs_f64();
            if moved > 0 && secs > 0.0 {
                let left = total.saturating_sub(self.position) as f64 / (moved as f64 / secs);
                text.push_str(&format!(
                    ", ETA {}",
                    fmt_duration(Duration::try_from_secs_f64(left).unwrap_or(Duration::MAX))
                ));
            }
        }
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{text}");
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_are_valid() {
        assert!(ProgressStyle::with_template(BAR_TEMPLATE).is_ok());
        assert!(ProgressStyle::with_template(SPINNER_TEMPLATE).is_ok());
    }

    #[test]
    fn hidden_progress_accepts_updates() {
        let mut p = Progress::new("x", Some(100), 10, ProgressMode::Hidden);
        p.set(50);
        p.set(100);
        p.finish();
    }
}
