//! Metrics of a binary classifier's probabilities against 0/1 labels: ROC AUC,
//! PR AUC (average precision), log loss, Brier score, a calibration table and
//! the confusion matrix at a threshold. Pure functions, no I/O.

use serde::{Deserialize, Serialize};

/// Probabilities are clipped this far from 0 and 1 before taking logs.
const EPS: f64 = 1e-15;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub rows: usize,
    pub positives: usize,
    pub roc_auc: f64,
    pub pr_auc: f64,
    pub log_loss: f64,
    pub brier: f64,
    pub threshold: f64,
    pub confusion: Confusion,
    pub calibration: Vec<CalibrationBin>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confusion {
    pub true_positive: usize,
    pub false_positive: usize,
    pub true_negative: usize,
    pub false_negative: usize,
}

/// One decile of predicted probability: how many rows, their mean prediction
/// and the share of them that were positive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationBin {
    pub lower: f64,
    pub upper: f64,
    pub rows: usize,
    pub mean_predicted: f64,
    pub observed_rate: f64,
}

impl Metrics {
    pub fn compute(p: &[f64], y: &[bool], threshold: f64) -> Metrics {
        Metrics {
            rows: y.len(),
            positives: y.iter().filter(|&&v| v).count(),
            roc_auc: roc_auc(p, y),
            pr_auc: pr_auc(p, y),
            log_loss: log_loss(p, y),
            brier: brier(p, y),
            threshold,
            confusion: confusion(p, y, threshold),
            calibration: calibration(p, y, 10),
        }
    }
}

/// Area under the ROC curve by the rank statistic (ties count one half).
pub fn roc_auc(p: &[f64], y: &[bool]) -> f64 {
    let order = sorted_indices(p);
    let (mut rank_sum, mut i) = (0.0, 0);
    // Average ranks over tied scores.
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && p[order[j + 1]] == p[order[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += order[i..=j].iter().filter(|&&k| y[k]).count() as f64 * avg_rank;
        i = j + 1;
    }
    let pos = y.iter().filter(|&&v| v).count() as f64;
    let neg = y.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return f64::NAN;
    }
    (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

/// Average precision: the mean of precision at each positive, by descending score.
pub fn pr_auc(p: &[f64], y: &[bool]) -> f64 {
    let mut order = sorted_indices(p);
    order.reverse();
    let pos = y.iter().filter(|&&v| v).count();
    if pos == 0 {
        return f64::NAN;
    }
    let (mut tp, mut sum) = (0usize, 0.0);
    for (rank, &k) in order.iter().enumerate() {
        if y[k] {
            tp += 1;
            sum += tp as f64 / (rank + 1) as f64;
        }
    }
    sum / pos as f64
}

pub fn log_loss(p: &[f64], y: &[bool]) -> f64 {
    let total: f64 = p
        .iter()
        .zip(y)
        .map(|(&q, &t)| {
            let q = q.clamp(EPS, 1.0 - EPS);
            if t { -q.ln() } else { -(1.0 - q).ln() }
        })
        .sum();
    total / p.len().max(1) as f64
}

pub fn brier(p: &[f64], y: &[bool]) -> f64 {
    let total: f64 = p
        .iter()
        .zip(y)
        .map(|(&q, &t)| (q - f64::from(u8::from(t))).powi(2))
        .sum();
    total / p.len().max(1) as f64
}

pub fn confusion(p: &[f64], y: &[bool], threshold: f64) -> Confusion {
    let mut c = Confusion {
        true_positive: 0,
        false_positive: 0,
        true_negative: 0,
        false_negative: 0,
    };
    for (&q, &t) in p.iter().zip(y) {
        match (q >= threshold, t) {
            (true, true) => c.true_positive += 1,
            (true, false) => c.false_positive += 1,
            (false, false) => c.true_negative += 1,
            (false, true) => c.false_negative += 1,
        }
    }
    c
}

pub fn calibration(p: &[f64], y: &[bool], bins: usize) -> Vec<CalibrationBin> {
    (0..bins)
        .filter_map(|b| {
            let lower = b as f64 / bins as f64;
            let upper = (b + 1) as f64 / bins as f64;
            let members: Vec<usize> = (0..p.len())
                .filter(|&i| p[i] >= lower && (p[i] < upper || (b + 1 == bins && p[i] <= upper)))
                .collect();
            (!members.is_empty()).then(|| CalibrationBin {
                lower,
                upper,
                rows: members.len(),
                mean_predicted: members.iter().map(|&i| p[i]).sum::<f64>() / members.len() as f64,
                observed_rate: members.iter().filter(|&&i| y[i]).count() as f64
                    / members.len() as f64,
            })
        })
        .collect()
}

/// The threshold with the best F1 on these rows: with imbalanced classes 0.5
/// would flag almost nothing, so the operating point is chosen on validation data.
pub fn best_f1_threshold(p: &[f64], y: &[bool]) -> f64 {
    let mut order = sorted_indices(p);
    order.reverse();
    let pos = y.iter().filter(|&&v| v).count() as f64;
    let (mut tp, mut best, mut best_t) = (0.0, -1.0, 0.5);
    for (rank, &k) in order.iter().enumerate() {
        if y[k] {
            tp += 1.0;
        }
        let predicted = (rank + 1) as f64;
        let f1 = 2.0 * tp / (predicted + pos);
        // Only cut between distinct scores.
        let next_differs = order.get(rank + 1).is_none_or(|&n| p[n] != p[k]);
        if next_differs && f1 > best {
            best = f1;
            best_t = p[k];
        }
    }
    best_t
}

fn sorted_indices(p: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_of_perfect_random_and_inverted_rankings() {
        let y = [false, false, true, true];
        assert_eq!(roc_auc(&[0.1, 0.2, 0.8, 0.9], &y), 1.0);
        assert_eq!(roc_auc(&[0.9, 0.8, 0.2, 0.1], &y), 0.0);
        assert_eq!(roc_auc(&[0.5, 0.5, 0.5, 0.5], &y), 0.5);
    }

    #[test]
    fn log_loss_and_brier_match_hand_computation() {
        let p = [0.8, 0.3];
        let y = [true, false];
        let expected = -(0.8f64.ln() + 0.7f64.ln()) / 2.0;
        assert!((log_loss(&p, &y) - expected).abs() < 1e-12);
        assert!((brier(&p, &y) - (0.04 + 0.09) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn average_precision_of_a_known_ranking() {
        // Ranked: pos (1/1), neg, pos (2/3) → (1 + 2/3) / 2.
        let ap = pr_auc(&[0.9, 0.8, 0.7], &[true, false, true]);
        assert!((ap - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn f1_threshold_separates_clean_classes() {
        let t = best_f1_threshold(&[0.1, 0.2, 0.7, 0.9], &[false, false, true, true]);
        assert_eq!(t, 0.7);
        let c = confusion(&[0.1, 0.2, 0.7, 0.9], &[false, false, true, true], t);
        assert_eq!((c.true_positive, c.false_positive), (2, 0));
    }
}
