//! L2-regularised logistic regression, fitted with Linfa (L-BFGS). Only the
//! weights are kept: scoring and explanations are a dot product, so an artifact
//! needs no Linfa types to load.

use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2, ShapeBuilder};
use serde::{Deserialize, Serialize};

use super::prep::Design;
use super::{Error, Result};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Logistic {
    pub weights: Vec<f64>,
    pub intercept: f64,
    /// The L2 penalty it was fitted with.
    pub alpha: f64,
}

/// Penalties tried; the one with the best validation log loss wins.
pub const ALPHAS: [f64; 5] = [0.3, 1.0, 3.0, 10.0, 30.0];

impl Logistic {
    pub fn fit(x: &Design, y: &[bool], alpha: f64) -> Result<Logistic> {
        // Column-major: Linfa's gradient is `xᵀ · r`, and ndarray (without
        // BLAS) multiplies a matrix by a vector row by row. Over a row-major
        // `x` those rows of `xᵀ` are strided and take ndarray's element-wise
        // path, which was most of the 142 s this took on 14,000 rows.
        let records = Array2::from_shape_vec((x.rows, x.cols).f(), x.column_major())
            .map_err(|e| Error::Train(e.to_string()))?;
        let targets = Array1::from_vec(y.to_vec());
        let dataset = Dataset::new(records, targets);
        let model = LogisticRegression::default()
            .alpha(alpha)
            .max_iterations(300)
            // Linfa's loss is a sum over rows: a tolerance per row keeps large
            // tables from iterating long past any change in the predictions.
            .gradient_tolerance(1e-5 * x.rows as f64)
            .fit(&dataset)
            .map_err(|e| Error::Train(format!("logistic regression: {e}")))?;
        // Linfa models the probability of the *more frequent* class; flip the
        // signs when that is `false`, so the weights always score `true`.
        let sign = if model.labels().pos.class { 1.0 } else { -1.0 };
        Ok(Logistic {
            weights: model.params().iter().map(|w| sign * w).collect(),
            intercept: sign * model.intercept(),
            alpha,
        })
    }

    pub fn logit(&self, row: &[f64]) -> f64 {
        self.intercept
            + row
                .iter()
                .zip(&self.weights)
                .map(|(x, w)| x * w)
                .sum::<f64>()
    }

    pub fn logits(&self, x: &Design) -> Vec<f64> {
        (0..x.rows).map(|i| self.logit(x.row(i))).collect()
    }

    /// Each design column's share of a row's logit (inputs are standardised, so
    /// zero means "an average value").
    pub fn contributions(&self, row: &[f64]) -> Vec<f64> {
        row.iter().zip(&self.weights).map(|(x, w)| x * w).collect()
    }
}
