//! HyStart++ (RFC 9406): leave slow start when the round trip's minimum RTT rises (a queue is
//! forming) instead of when the queue overflows, through a conservative slow start (growth / 4)
//! that checks the rise was real before congestion avoidance begins.
//!
//! Rounds are delimited by send times: a round ends when an ACK acknowledges a packet sent at or
//! after the last send of the previous round (RFC 9406's `windowEnd`). The sender is paced, so the
//! per-ACK growth limit `L` is infinite (§4.3).

use core::time::Duration;

use crate::time::Instant;

/// RTT samples needed in a round before deciding (`N_RTT_SAMPLE`).
const N_RTT_SAMPLE: u32 = 8;
/// Lower clamp of the RTT increase threshold (`MIN_RTT_THRESH`).
const MIN_RTT_THRESH: Duration = Duration::from_millis(4);
/// Upper clamp of the RTT increase threshold (`MAX_RTT_THRESH`).
const MAX_RTT_THRESH: Duration = Duration::from_millis(16);
/// The threshold is the last round's minimum RTT divided by this (`MIN_RTT_DIVISOR`).
const MIN_RTT_DIVISOR: u32 = 8;
/// Growth divisor in conservative slow start (`CSS_GROWTH_DIVISOR`).
pub(crate) const CSS_GROWTH_DIVISOR: u64 = 4;
/// Rounds of conservative slow start before congestion avoidance (`CSS_ROUNDS`).
const CSS_ROUNDS: u32 = 5;

/// What slow start should do after an ACK.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Grow by the bytes acknowledged (standard slow start).
    SlowStart,
    /// Grow by the bytes acknowledged / [`CSS_GROWTH_DIVISOR`].
    Conservative,
    /// Leave slow start now (set ssthresh to the window).
    Exit,
}

/// HyStart++ state for one slow-start episode.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct HyStart {
    /// Send time of the last packet of the previous round; `None` before the first round.
    window_end: Option<Instant>,
    last_round_min_rtt: Option<Duration>,
    current_round_min_rtt: Option<Duration>,
    rtt_sample_count: u32,
    /// `Some` while in conservative slow start.
    css_baseline_min_rtt: Option<Duration>,
    css_rounds: u32,
}

impl HyStart {
    /// Whether conservative slow start is on.
    pub(crate) fn in_css(&self) -> bool {
        self.css_baseline_min_rtt.is_some()
    }

    /// Processes one ACK in slow start: `largest_acked_sent` is the send time of the newest packet
    /// it acknowledged, `last_sent` the send time of the newest packet sent, `rtt` its RTT sample.
    pub(crate) fn on_ack(
        &mut self,
        largest_acked_sent: Instant,
        last_sent: Instant,
        rtt: Option<Duration>,
    ) -> Verdict {
        if self.window_end.is_none_or(|end| largest_acked_sent >= end) {
            // A new round.
            #[cfg(test)]
            std::println!(
                "round: last={:?} cur={:?} n={} css={:?}",
                self.last_round_min_rtt,
                self.current_round_min_rtt,
                self.rtt_sample_count,
                self.css_baseline_min_rtt
            );
            self.window_end = Some(last_sent);
            self.last_round_min_rtt = self.current_round_min_rtt;
            self.current_round_min_rtt = None;
            self.rtt_sample_count = 0;
            if self.in_css() {
                self.css_rounds += 1;
                if self.css_rounds >= CSS_ROUNDS {
                    return Verdict::Exit;
                }
            }
        }
        if let Some(rtt) = rtt {
            self.current_round_min_rtt =
                Some(self.current_round_min_rtt.map_or(rtt, |m| m.min(rtt)));
            self.rtt_sample_count += 1;
        }
        let enough = self.rtt_sample_count >= N_RTT_SAMPLE;
        match (self.css_baseline_min_rtt, self.current_round_min_rtt) {
            (None, Some(cur)) if enough => {
                if let Some(last) = self.last_round_min_rtt {
                    let thresh = (last / MIN_RTT_DIVISOR).clamp(MIN_RTT_THRESH, MAX_RTT_THRESH);
                    if cur >= last + thresh {
                        self.css_baseline_min_rtt = Some(cur);
                        self.css_rounds = 0;
                    }
                }
            }
            (Some(baseline), Some(cur)) if enough && cur < baseline => {
                // The RTT increase was spurious: resume slow start.
                self.css_baseline_min_rtt = None;
            }
            _ => {}
        }
        if self.in_css() {
            Verdict::Conservative
        } else {
            Verdict::SlowStart
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Instant {
        Instant::from_nanos(v * 1_000_000)
    }

    /// Rounds of 10 ACKs each: flat RTT, then a rise of 20 ms enters CSS, five CSS rounds exit.
    #[test]
    fn rtt_rise_enters_css_then_exits() {
        let mut h = HyStart::default();
        let mut verdicts = Vec::new();
        let mut sent = 0;
        for round in 0..10u64 {
            let rtt = if round < 3 { 100 } else { 120 };
            let end = sent + 10;
            for i in 0..10 {
                // ACK of packet `sent + i`; the newest sent packet is `end + i`.
                verdicts.push(h.on_ack(
                    ms(sent + i),
                    ms(end + i),
                    Some(Duration::from_millis(rtt)),
                ));
            }
            sent = end;
        }
        assert!(verdicts[..30].iter().all(|v| *v == Verdict::SlowStart));
        let first_css = verdicts
            .iter()
            .position(|v| *v == Verdict::Conservative)
            .unwrap();
        assert_eq!(
            first_css,
            30 + N_RTT_SAMPLE as usize - 1,
            "after 8 samples of round 3"
        );
        assert!(verdicts.contains(&Verdict::Exit));
    }

    #[test]
    fn spurious_rise_resumes_slow_start() {
        let mut h = HyStart::default();
        let mut sent = 0;
        let mut last = Verdict::SlowStart;
        for rtt in [100, 100, 130, 90] {
            let end = sent + 10;
            for i in 0..10 {
                last = h.on_ack(ms(sent + i), ms(end + i), Some(Duration::from_millis(rtt)));
            }
            if rtt == 130 {
                assert_eq!(last, Verdict::Conservative);
            }
            sent = end;
        }
        assert_eq!(last, Verdict::SlowStart);
    }
}
