//! Seeds for reproducible runs: reading a replay seed from `JSP_SIM_SEED`, and running a test
//! body over many seeds while naming the one that failed.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

/// The environment variable that pins the seed, to replay a failure.
pub const SEED_ENV: &str = "JSP_SIM_SEED";

/// The seed from `JSP_SIM_SEED` if it is set, `default` otherwise.
///
/// # Panics
///
/// If `JSP_SIM_SEED` is set but is not a decimal `u64`: silently replaying the wrong seed would
/// be worse.
pub fn seed_from_env(default: u64) -> u64 {
    let value = std::env::var(SEED_ENV).ok();
    parse_seed(value.as_deref()).unwrap_or(default)
}

/// Runs `f` once per seed in `0..count`, or only for the seed in `JSP_SIM_SEED` when it is set.
/// If `f` panics, prints `jsp-sim: failing seed N (replay with JSP_SIM_SEED=N)` to stderr and
/// resumes the panic.
pub fn for_each_seed(count: u64, mut f: impl FnMut(u64)) {
    match parse_seed(std::env::var(SEED_ENV).ok().as_deref()) {
        Some(seed) => run_seed(seed, &mut f),
        None => (0..count).for_each(|seed| run_seed(seed, &mut f)),
    }
}

fn run_seed(seed: u64, f: &mut impl FnMut(u64)) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| f(seed))) {
        eprintln!("jsp-sim: failing seed {seed} (replay with {SEED_ENV}={seed})");
        resume_unwind(panic);
    }
}

fn parse_seed(value: Option<&str>) -> Option<u64> {
    let value = value?.trim();
    if value.is_empty() {
        return None;
    }
    match value.parse() {
        Ok(seed) => Some(seed),
        Err(_) => panic!("{SEED_ENV}={value:?} is not a decimal u64 seed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[test]
    fn parses_seeds() {
        assert_eq!(parse_seed(None), None);
        assert_eq!(parse_seed(Some("")), None);
        assert_eq!(parse_seed(Some(" 42 ")), Some(42));
    }

    #[test]
    #[should_panic(expected = "not a decimal u64 seed")]
    fn rejects_garbage() {
        parse_seed(Some("forty-two"));
    }

    #[test]
    fn runs_every_seed_and_resumes_the_failing_panic() {
        // Reads JSP_SIM_SEED, so only meaningful when it is unset (as in a normal test run).
        if std::env::var(SEED_ENV).is_ok() {
            return;
        }
        let seen = RefCell::new(Vec::new());
        for_each_seed(4, |seed| seen.borrow_mut().push(seed));
        assert_eq!(*seen.borrow(), [0, 1, 2, 3]);

        let result = catch_unwind(AssertUnwindSafe(|| {
            for_each_seed(10, |seed| assert!(seed < 3, "boom at {seed}"));
        }));
        let payload = result.expect_err("seed 3 must fail");
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert_eq!(message, "boom at 3");
    }
}
