//! Windowed running-maximum filter (Kathleen Nichols' algorithm, as in Linux's `win_minmax`):
//! the maximum of the samples of the last `window` time units, kept in three slots (the best, the
//! second best after it, the third best after that), so it needs no history buffer.

/// One sample: a value at a time (in whatever unit the window is measured: BBR uses rounds).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Sample {
    time: u64,
    value: u64,
}

/// The maximum of the samples seen within the last `window` time units.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct MaxFilter {
    s: [Sample; 3],
}

impl MaxFilter {
    /// The current maximum (0 before any sample).
    pub(crate) fn get(&self) -> u64 {
        self.s[0].value
    }

    /// Forgets everything and starts from `value` at `time`.
    pub(crate) fn reset(&mut self, time: u64, value: u64) {
        self.s = [Sample { time, value }; 3];
    }

    /// Adds `value` at `time` (non-decreasing) with a window of `window` units.
    pub(crate) fn update(&mut self, window: u64, time: u64, value: u64) {
        let new = Sample { time, value };
        if value >= self.s[0].value || time.saturating_sub(self.s[2].time) > window {
            // A new maximum, or nothing left in the window.
            self.reset(time, value);
            return;
        }
        if value >= self.s[1].value {
            self.s[2] = new;
            self.s[1] = new;
        } else if value >= self.s[2].value {
            self.s[2] = new;
        }
        self.subwindow_update(window, new);
    }

    /// Ages the slots: the best expires, or the second and third are refreshed so they stay
    /// spread over the window.
    fn subwindow_update(&mut self, window: u64, new: Sample) {
        let dt = new.time.saturating_sub(self.s[0].time);
        if dt > window {
            self.s[0] = self.s[1];
            self.s[1] = self.s[2];
            self.s[2] = new;
            if new.time.saturating_sub(self.s[0].time) > window {
                self.s[0] = self.s[1];
                self.s[1] = self.s[2];
                self.s[2] = new;
            }
        } else if self.s[1].time == self.s[0].time && dt > window / 4 {
            self.s[2] = new;
            self.s[1] = new;
        } else if self.s[2].time == self.s[1].time && dt > window / 2 {
            self.s[2] = new;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_max_for_the_window_then_expires_it() {
        let mut f = MaxFilter::default();
        f.update(10, 0, 100);
        for t in 1..=10 {
            f.update(10, t, 50 + t);
            assert_eq!(f.get(), 100, "round {t}");
        }
        f.update(10, 11, 40);
        assert!(f.get() < 100, "the 100 sample expired after 10 rounds");
        assert_eq!(f.get(), 60, "the best sample still in the window");
        for t in 12..40 {
            f.update(10, t, 40);
        }
        assert_eq!(f.get(), 40);
        f.update(10, 40, 70);
        assert_eq!(f.get(), 70, "a new maximum takes over at once");
    }
}
