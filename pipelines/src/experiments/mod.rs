//! Online A/B experiments without a database: deterministic assignment of
//! units to variants, and the statistics of a report. The crm store keeps
//! experiments, exposures and outcome events; this module only computes.
//!
//! Assignment hashes `experiment:unit` with SHA-256 and maps the first eight
//! bytes to a point in [0, 1); the variants' weights cut that interval. The
//! same unit always lands in the same variant of an experiment, different
//! experiments shuffle independently, and nothing needs to be stored to know
//! a unit's variant.
//!
//! The report compares each variant's conversion rate with the first (the
//! control): the difference with a Wald confidence interval (unpooled standard
//! error) and a two-sided two-proportion z-test (pooled standard error), and
//! warns when a variant has too few units or too few successes or failures for
//! the normal approximation, with the sample size per variant that 80% power
//! would need for the observed rates.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One arm of an experiment and its share of traffic (weights need not sum to 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    pub name: String,
    pub weight: f64,
}

impl Variant {
    pub fn new(name: &str, weight: f64) -> Variant {
        Variant {
            name: name.to_owned(),
            weight,
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SplitError {
    #[error("an experiment needs at least two variants")]
    TooFew,
    #[error("variant {0:?}: weight must be a positive finite number")]
    BadWeight(String),
    #[error("variant {0:?} is named twice")]
    Duplicate(String),
}

/// Checks a traffic split.
pub fn validate(variants: &[Variant]) -> Result<(), SplitError> {
    if variants.len() < 2 {
        return Err(SplitError::TooFew);
    }
    for (i, v) in variants.iter().enumerate() {
        if !(v.weight.is_finite() && v.weight > 0.0) {
            return Err(SplitError::BadWeight(v.name.clone()));
        }
        if variants[..i].iter().any(|w| w.name == v.name) {
            return Err(SplitError::Duplicate(v.name.clone()));
        }
    }
    Ok(())
}

/// The unit's point in [0, 1) for an experiment.
pub fn bucket(experiment: &str, unit: &str) -> f64 {
    let digest = Sha256::digest(format!("{experiment}:{unit}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // The top 53 bits make an exactly representable fraction.
    (u64::from_be_bytes(first) >> 11) as f64 / (1u64 << 53) as f64
}

/// The variant a unit belongs to (the split must be valid).
pub fn assign<'a>(experiment: &str, unit: &str, variants: &'a [Variant]) -> &'a Variant {
    let total: f64 = variants.iter().map(|v| v.weight).sum();
    let point = bucket(experiment, unit) * total;
    let mut edge = 0.0;
    for v in variants {
        edge += v.weight;
        if point < edge {
            return v;
        }
    }
    variants.last().expect("a validated split has variants")
}

/// Counts of one variant: trials (exposures) and successes (exposures with an
/// outcome), and the distinct units behind them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub variant: String,
    pub units: u64,
    pub trials: u64,
    pub successes: u64,
}

/// A variant compared with the control.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub variant: String,
    pub control: String,
    /// Rate of the variant minus rate of the control.
    pub difference: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    pub confidence: f64,
    pub z: f64,
    /// Two-sided p-value of the two-proportion z-test.
    pub p_value: f64,
    pub significant: bool,
    /// Trials per variant that 80% power at this confidence would need to
    /// detect the observed difference (None when the rates are equal).
    pub required_per_variant: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VariantReport {
    #[serde(flatten)]
    pub counts: Counts,
    pub rate: f64,
}

/// A whole report: per-variant rates, comparisons with the control, warnings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub experiment: String,
    pub variants: Vec<VariantReport>,
    pub comparisons: Vec<Comparison>,
    pub warnings: Vec<String>,
}

/// When a report warns that its numbers are too thin.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReportOptions {
    pub confidence: f64,
    /// Fewer distinct units than this in a variant: warn.
    pub min_units: u64,
    /// Fewer successes or failures than this in a variant: the normal
    /// approximation is poor; warn.
    pub min_successes: u64,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            confidence: 0.95,
            min_units: 30,
            min_successes: 10,
        }
    }
}

fn rate(c: &Counts) -> f64 {
    if c.trials == 0 {
        0.0
    } else {
        c.successes as f64 / c.trials as f64
    }
}

/// Compares `b` with the control `a`.
pub fn compare(a: &Counts, b: &Counts, confidence: f64) -> Comparison {
    let (pa, pb) = (rate(a), rate(b));
    let (na, nb) = (a.trials as f64, b.trials as f64);
    let diff = pb - pa;
    let z_crit = normal_quantile(0.5 + confidence / 2.0);
    let (ci_low, ci_high, z, p_value) = if na == 0.0 || nb == 0.0 {
        (f64::NAN, f64::NAN, 0.0, 1.0)
    } else {
        let se = (pa * (1.0 - pa) / na + pb * (1.0 - pb) / nb).sqrt();
        let pooled = (a.successes + b.successes) as f64 / (na + nb);
        let se0 = (pooled * (1.0 - pooled) * (1.0 / na + 1.0 / nb)).sqrt();
        let z = if se0 > 0.0 { diff / se0 } else { 0.0 };
        (
            diff - z_crit * se,
            diff + z_crit * se,
            z,
            2.0 * normal_sf(z.abs()),
        )
    };
    Comparison {
        variant: b.variant.clone(),
        control: a.variant.clone(),
        difference: diff,
        ci_low,
        ci_high,
        confidence,
        z,
        p_value,
        significant: p_value < 1.0 - confidence,
        required_per_variant: required_sample(pa, pb, confidence, 0.8),
    }
}

/// Trials per arm for a two-sided two-proportion test to detect `p1` vs `p2`
/// at `confidence` with `power` (the usual normal-approximation formula).
pub fn required_sample(p1: f64, p2: f64, confidence: f64, power: f64) -> Option<u64> {
    let d = (p1 - p2).abs();
    if d < 1e-12 {
        return None;
    }
    let za = normal_quantile(0.5 + confidence / 2.0);
    let zb = normal_quantile(power);
    let pbar = (p1 + p2) / 2.0;
    let n = (za * (2.0 * pbar * (1.0 - pbar)).sqrt()
        + zb * (p1 * (1.0 - p1) + p2 * (1.0 - p2)).sqrt())
    .powi(2)
        / (d * d);
    Some(n.ceil() as u64)
}

/// The report of an experiment; the first counts are the control.
pub fn report(experiment: &str, counts: &[Counts], opts: &ReportOptions) -> Report {
    let variants: Vec<VariantReport> = counts
        .iter()
        .map(|c| VariantReport {
            counts: c.clone(),
            rate: rate(c),
        })
        .collect();
    let comparisons: Vec<Comparison> = counts
        .iter()
        .skip(1)
        .map(|b| compare(&counts[0], b, opts.confidence))
        .collect();
    let mut warnings = Vec::new();
    for c in counts {
        if c.units < opts.min_units {
            warnings.push(format!(
                "variant {} has {} units (fewer than {}): too few to conclude anything",
                c.variant, c.units, opts.min_units
            ));
        }
        let failures = c.trials - c.successes.min(c.trials);
        if c.successes < opts.min_successes || failures < opts.min_successes {
            warnings.push(format!(
                "variant {} has {} successes and {} failures (fewer than {} of either): the normal approximation is unreliable",
                c.variant, c.successes, failures, opts.min_successes
            ));
        }
    }
    for cmp in &comparisons {
        let have = counts
            .iter()
            .filter(|c| c.variant == cmp.variant || c.variant == cmp.control)
            .map(|c| c.trials)
            .min()
            .unwrap_or(0);
        if let Some(need) = cmp.required_per_variant
            && need > have
        {
            warnings.push(format!(
                "{} vs {}: about {need} trials per variant are needed for 80% power at the observed rates; the smaller arm has {have}",
                cmp.variant, cmp.control
            ));
        }
    }
    Report {
        experiment: experiment.to_owned(),
        variants,
        comparisons,
        warnings,
    }
}

/// P(Z > z) for a standard normal Z.
pub fn normal_sf(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// The complementary error function: the Taylor series of erf below 2.5
/// (cancellation costs at most ~1e-12 there), the continued fraction above
/// (which converges fast there and keeps tiny tail values exact).
pub fn erfc(x: f64) -> f64 {
    if x < 0.0 {
        return 2.0 - erfc(-x);
    }
    if x < 2.5 {
        return 1.0 - erf_series(x);
    }
    erfc_continued_fraction(x)
}

/// erf by its Taylor series.
fn erf_series(x: f64) -> f64 {
    let mut sum = x;
    let mut term = x;
    let x2 = x * x;
    for n in 1..200 {
        term *= -x2 / n as f64;
        let add = term / (2 * n + 1) as f64;
        sum += add;
        if add.abs() < 1e-17 {
            break;
        }
    }
    sum * 2.0 / std::f64::consts::PI.sqrt()
}

/// erfc for x ≥ 2.5 by Lentz's evaluation of its continued fraction.
fn erfc_continued_fraction(x: f64) -> f64 {
    // erfc(x) = exp(-x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + …)))))
    let tiny = 1e-300;
    let mut f = x;
    let mut c = x;
    let mut d = 0.0;
    for n in 1..500 {
        let a = n as f64 / 2.0;
        d = x + a * d;
        d = if d.abs() < tiny { tiny } else { d };
        c = x + a / c;
        c = if c.abs() < tiny { tiny } else { c };
        d = 1.0 / d;
        let delta = c * d;
        f *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    (-x * x).exp() / std::f64::consts::PI.sqrt() / f
}

/// The standard normal quantile (P. J. Acklam's rational approximation, one
/// Newton step on erfc to full precision).
pub fn normal_quantile(p: f64) -> f64 {
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.383_577_518_672_69e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    let low = 0.02425;
    let x = if p < low {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - low {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        let q = (-2.0 * (1.0 - p).ln()).sqrt();
        -(((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    // Halley refinement: e = Φ(x) − p.
    let e = 0.5 * erfc(-x / std::f64::consts::SQRT_2) - p;
    let u = e * (2.0 * std::f64::consts::PI).sqrt() * (x * x / 2.0).exp();
    x - u / (1.0 + x * u / 2.0)
}

#[cfg(test)]
mod tests;
