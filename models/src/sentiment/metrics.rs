//! Classification metrics: accuracy, per-class precision/recall/F1, macro-F1.

use serde::{Deserialize, Serialize};

use super::SentimentLabel;

/// Metrics of predictions against truth on one split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Examples scored.
    pub n: usize,
    /// Fraction predicted right, 0–1.
    pub accuracy: f64,
    /// Unweighted mean of the three classes' F1.
    pub macro_f1: f64,
    /// Per class, in the order negative, neutral, positive.
    pub precision: [f64; 3],
    /// Per class, same order.
    pub recall: [f64; 3],
    /// Per class, same order.
    pub f1: [f64; 3],
    /// `confusion[truth][predicted]`.
    pub confusion: [[usize; 3]; 3],
}

impl Metrics {
    /// The metrics of `predicted` against `truth`; they must have one label per
    /// example each (panics otherwise). A class never predicted has precision 0.
    pub fn compute(truth: &[SentimentLabel], predicted: &[SentimentLabel]) -> Metrics {
        assert_eq!(truth.len(), predicted.len(), "one prediction per example");
        let mut confusion = [[0usize; 3]; 3];
        for (t, p) in truth.iter().zip(predicted) {
            confusion[t.index()][p.index()] += 1;
        }
        let n = truth.len();
        let correct: usize = (0..3).map(|c| confusion[c][c]).sum();
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let mut precision = [0.0; 3];
        let mut recall = [0.0; 3];
        let mut f1 = [0.0; 3];
        for c in 0..3 {
            let tp = confusion[c][c];
            let predicted_c: usize = (0..3).map(|t| confusion[t][c]).sum();
            let actual_c: usize = confusion[c].iter().sum();
            precision[c] = ratio(tp, predicted_c);
            recall[c] = ratio(tp, actual_c);
            f1[c] = if precision[c] + recall[c] == 0.0 {
                0.0
            } else {
                2.0 * precision[c] * recall[c] / (precision[c] + recall[c])
            };
        }
        Metrics {
            n,
            accuracy: ratio(correct, n),
            macro_f1: f1.iter().sum::<f64>() / 3.0,
            precision,
            recall,
            f1,
            confusion,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SentimentLabel::*;

    #[test]
    fn perfect_and_majority() {
        let truth = [Negative, Neutral, Positive, Negative];
        let m = Metrics::compute(&truth, &truth);
        assert_eq!(m.accuracy, 1.0);
        assert_eq!(m.macro_f1, 1.0);
        let m = Metrics::compute(&truth, &[Negative; 4]);
        assert_eq!(m.accuracy, 0.5);
        // negative: p = 0.5, r = 1 → f1 = 2/3; others 0.
        assert!((m.macro_f1 - (2.0 / 3.0) / 3.0).abs() < 1e-12);
    }
}
