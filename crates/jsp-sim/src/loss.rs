//! Packet loss models: independent random loss and the two-state Gilbert-Elliott model of bursty
//! loss, with the per-link state the burst model needs.
//!
//! Probabilities are plain `f64`s; values at or below 0 never fire, values at or above 1 always
//! fire, and NaN never fires, so no configuration can make the simulator panic.

use rand::Rng;

/// How a link loses datagrams.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum LossModel {
    /// Nothing is lost.
    #[default]
    None,
    /// Each datagram is lost independently with this probability.
    Random(f64),
    /// Gilbert-Elliott: a Markov chain with a good and a bad state, each with its own loss
    /// probability. Before each datagram is sent the chain may change state; the datagram is
    /// then lost with the loss probability of the state it finds. A small `p_bad_to_good` makes
    /// long bursts: the mean stay in the bad state is `1 / p_bad_to_good` datagrams.
    GilbertElliott {
        /// Probability of moving from the good to the bad state, per datagram.
        p_good_to_bad: f64,
        /// Probability of moving from the bad to the good state, per datagram.
        p_bad_to_good: f64,
        /// Loss probability in the good state (often 0).
        loss_in_good: f64,
        /// Loss probability in the bad state (often 1).
        loss_in_bad: f64,
    },
}

impl LossModel {
    /// The long-run fraction of datagrams lost (the stationary loss rate).
    pub fn mean_loss(&self) -> f64 {
        match *self {
            LossModel::None => 0.0,
            LossModel::Random(p) => clamp01(p),
            LossModel::GilbertElliott {
                p_good_to_bad,
                p_bad_to_good,
                loss_in_good,
                loss_in_bad,
            } => {
                let (gb, bg) = (clamp01(p_good_to_bad), clamp01(p_bad_to_good));
                if gb + bg == 0.0 {
                    // The chain never leaves the good state it starts in.
                    return clamp01(loss_in_good);
                }
                (bg * clamp01(loss_in_good) + gb * clamp01(loss_in_bad)) / (gb + bg)
            }
        }
    }
}

fn clamp01(p: f64) -> f64 {
    if p.is_nan() {
        0.0
    } else {
        p.clamp(0.0, 1.0)
    }
}

/// `true` with probability `p`, without panicking on out-of-range or NaN `p`.
pub(crate) fn chance(rng: &mut impl Rng, p: f64) -> bool {
    if p.is_nan() || p <= 0.0 {
        return false;
    }
    if p >= 1.0 {
        return true;
    }
    rng.gen::<f64>() < p
}

/// The state a loss model keeps between datagrams on one link direction.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LossState {
    /// Whether the Gilbert-Elliott chain is in its bad state; it starts good.
    bad: bool,
}

impl LossState {
    /// Decides whether the next datagram is lost, advancing the model's state.
    pub(crate) fn lose(&mut self, model: &LossModel, rng: &mut impl Rng) -> bool {
        match *model {
            LossModel::None => false,
            LossModel::Random(p) => chance(rng, p),
            LossModel::GilbertElliott {
                p_good_to_bad,
                p_bad_to_good,
                loss_in_good,
                loss_in_bad,
            } => {
                let flip = if self.bad {
                    p_bad_to_good
                } else {
                    p_good_to_bad
                };
                if chance(rng, flip) {
                    self.bad = !self.bad;
                }
                chance(rng, if self.bad { loss_in_bad } else { loss_in_good })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn chance_is_total() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert!(!chance(&mut rng, f64::NAN));
        assert!(!chance(&mut rng, -3.0));
        assert!(!chance(&mut rng, 0.0));
        assert!(chance(&mut rng, 1.0));
        assert!(chance(&mut rng, 7.0));
    }

    #[test]
    fn mean_loss_of_gilbert_elliott() {
        let model = LossModel::GilbertElliott {
            p_good_to_bad: 0.01,
            p_bad_to_good: 0.09,
            loss_in_good: 0.0,
            loss_in_bad: 1.0,
        };
        assert!((model.mean_loss() - 0.1).abs() < 1e-12);
        assert_eq!(LossModel::Random(2.0).mean_loss(), 1.0);
        assert_eq!(LossModel::None.mean_loss(), 0.0);
    }

    #[test]
    fn gilbert_elliott_matches_its_mean_and_bursts() {
        let model = LossModel::GilbertElliott {
            p_good_to_bad: 0.01,
            p_bad_to_good: 0.09,
            loss_in_good: 0.0,
            loss_in_bad: 1.0,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut state = LossState::default();
        let outcomes: Vec<bool> = (0..200_000).map(|_| state.lose(&model, &mut rng)).collect();
        let lost = outcomes.iter().filter(|&&l| l).count();
        let rate = lost as f64 / outcomes.len() as f64;
        assert!((rate - 0.1).abs() < 0.02, "loss rate {rate}");
        let bursts = outcomes.windows(2).filter(|w| !w[0] && w[1]).count();
        let mean_burst = lost as f64 / bursts as f64;
        assert!(
            mean_burst > 8.0 && mean_burst < 14.0,
            "mean burst {mean_burst}"
        );
    }
}
