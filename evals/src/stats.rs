//! Statistics for pass rates and paired comparisons, free of any I/O.
//!
//! - [`wilson`]: the Wilson score interval of a proportion (good at small n and
//!   near 0 or 1, where the normal interval fails).
//! - [`pass_hat_k`]: the unbiased estimator of pass^k — the chance that k
//!   trials of a task all pass — from n trials with c passes: C(c,k)/C(n,k).
//! - [`mcnemar_exact`]: the exact McNemar test on paired binary outcomes: a
//!   two-sided binomial test (p = 1/2) on the discordant pairs.
//! - [`paired_bootstrap`]: a percentile bootstrap interval of the mean paired
//!   difference, resampling tasks with a fixed seed (same data, same interval).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// z for a two-sided 95% interval.
const Z95: f64 = 1.959_963_984_540_054;

/// A point estimate with its 95% interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// The point estimate.
    pub value: f64,
    /// Lower end of the 95% interval.
    pub low: f64,
    /// Upper end of the 95% interval.
    pub high: f64,
}

/// The 95% Wilson score interval of `successes` out of `n` (successes may be
/// fractional: a sum of per-task pass rates). `n = 0` gives [0, 1].
pub fn wilson(successes: f64, n: f64) -> Estimate {
    if n <= 0.0 {
        return Estimate {
            value: 0.0,
            low: 0.0,
            high: 1.0,
        };
    }
    let p = successes / n;
    let z2 = Z95 * Z95;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = Z95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denom;
    Estimate {
        value: p,
        low: (centre - half).max(0.0),
        high: (centre + half).min(1.0),
    }
}

/// The unbiased estimate of pass^k from `n` trials with `c` passes:
/// C(c,k)/C(n,k). `None` when there are fewer than `k` trials.
pub fn pass_hat_k(n: usize, c: usize, k: usize) -> Option<f64> {
    if k == 0 || n < k || c > n {
        return None;
    }
    if c < k {
        return Some(0.0);
    }
    // C(c,k)/C(n,k) = Π_{i<k} (c-i)/(n-i): no large factorials.
    Some((0..k).map(|i| (c - i) as f64 / (n - i) as f64).product())
}

/// Two-sided p-value of the exact McNemar test: `b` pairs passed only in arm
/// A, `c` only in arm B. Under no difference each discordant pair is a fair
/// coin; p = min(1, 2·P(X ≤ min(b, c))) for X ~ Binomial(b + c, 1/2).
pub fn mcnemar_exact(b: u64, c: u64) -> f64 {
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    let k = b.min(c);
    // Sum the tail in log space: n can be in the hundreds.
    let ln_half_n = n as f64 * 0.5f64.ln();
    let mut ln_comb = 0.0; // ln C(n, 0)
    let mut tail = 0.0;
    for i in 0..=k {
        if i > 0 {
            ln_comb += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        tail += (ln_comb + ln_half_n).exp();
    }
    (2.0 * tail).min(1.0)
}

/// The paired difference mean(b − a) with a 95% percentile bootstrap interval:
/// `resamples` resamplings of the pairs with replacement, from `seed`.
pub fn paired_bootstrap(a: &[f64], b: &[f64], resamples: usize, seed: u64) -> Estimate {
    assert_eq!(a.len(), b.len(), "paired samples have the same length");
    let n = a.len();
    if n == 0 {
        return Estimate {
            value: 0.0,
            low: 0.0,
            high: 0.0,
        };
    }
    let diffs: Vec<f64> = a.iter().zip(b).map(|(x, y)| y - x).collect();
    let mean = diffs.iter().sum::<f64>() / n as f64;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut means: Vec<f64> = (0..resamples.max(1))
        .map(|_| (0..n).map(|_| diffs[rng.random_range(0..n)]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(|x, y| x.total_cmp(y));
    Estimate {
        value: mean,
        low: percentile(&means, 0.025),
        high: percentile(&means, 0.975),
    }
}

/// Linear interpolation between closest ranks (numpy's default).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    /// Reference values from SciPy 1.17.1:
    /// `scipy.stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method='wilson')`.
    #[test]
    fn wilson_matches_scipy() {
        for (k, n, lo, hi) in [
            (7.0, 10.0, 0.39677814746114526, 0.892208732593699),
            (0.0, 12.0, 0.0, 0.24249400665524085),
            (150.0, 160.0, 0.8887842459710525, 0.9657003332538804),
            (45.0, 100.0, 0.35614537979511984, 0.5475539700255787),
        ] {
            let e = wilson(k, n);
            assert!(close(e.low, lo, 1e-12), "{k}/{n}: {} vs {lo}", e.low);
            assert!(close(e.high, hi, 1e-12), "{k}/{n}: {} vs {hi}", e.high);
            assert!(close(e.value, k / n, 1e-15));
        }
        assert_eq!(wilson(0.0, 0.0).high, 1.0);
    }

    /// Reference values from SciPy 1.17.1:
    /// `scipy.stats.binomtest(min(b, c), b + c, 0.5).pvalue` (two-sided).
    #[test]
    fn mcnemar_matches_scipy_binomtest() {
        for (b, c, p) in [
            (2, 9, 0.0654296875),
            (0, 5, 0.0625),
            (10, 10, 1.0),
            (3, 12, 0.03515625),
            (25, 40, 0.08168153394154003),
            (9, 2, 0.0654296875),
        ] {
            let got = mcnemar_exact(b, c);
            assert!(close(got, p, 1e-12), "b={b} c={c}: {got} vs {p}");
        }
        assert_eq!(mcnemar_exact(0, 0), 1.0);
    }

    /// Reference from SciPy 1.17.1 on the same 20 pairs (d = b − a):
    /// `scipy.stats.bootstrap((d,), np.mean, method='percentile',
    /// n_resamples=200000, random_state=0)` → mean −0.2, CI [−0.45, 0.0].
    /// The resampling streams differ (ChaCha8 vs NumPy), so the bounds are
    /// checked to one step of the discrete distribution (1/20).
    #[test]
    fn paired_bootstrap_agrees_with_scipy_and_is_reproducible() {
        let a = [
            1., 1., 0., 1., 0., 1., 1., 1., 0., 1., 1., 0., 1., 1., 1., 0., 1., 1., 1., 1.,
        ];
        let b = [
            1., 0., 0., 1., 1., 1., 0., 1., 0., 0., 1., 0., 1., 0., 1., 0., 1., 1., 0., 1.,
        ];
        let e = paired_bootstrap(&a, &b, 20_000, 42);
        assert!(close(e.value, -0.2, 1e-12));
        assert!(close(e.low, -0.45, 0.05), "{e:?}");
        assert!(close(e.high, 0.0, 0.05), "{e:?}");
        assert_eq!(e, paired_bootstrap(&a, &b, 20_000, 42));
    }

    /// pass^k = C(c,k)/C(n,k): C(3,2)/C(5,2) = 3/10 (python: math.comb).
    #[test]
    fn pass_hat_k_is_the_unbiased_estimator() {
        assert!(close(pass_hat_k(5, 3, 2).unwrap(), 0.3, 1e-12));
        assert_eq!(pass_hat_k(4, 4, 4), Some(1.0));
        assert_eq!(pass_hat_k(4, 3, 4), Some(0.0));
        assert_eq!(pass_hat_k(5, 2, 3), Some(0.0));
        assert!(close(pass_hat_k(4, 2, 1).unwrap(), 0.5, 1e-12));
        assert_eq!(pass_hat_k(2, 2, 4), None);
    }
}
