//! Gradient-boosted trees (forust-ml, a pure-Rust XGBoost-style learner), early
//! stopped on the validation rows. Settings are fixed and modest (shallow trees,
//! small learning rate, L2 on leaves) so the model needs no tuning per table.

use forust_ml::gradientbooster::ContributionsMethod;
use forust_ml::metric::Metric;
use forust_ml::objective::ObjectiveType;
use forust_ml::{GradientBooster, Matrix};
use serde::{Deserialize, Serialize};

use super::prep::Design;
use super::{Error, Result};

const LEARNING_RATE: f32 = 0.05;
const MAX_DEPTH: usize = 4;
const MAX_TREES: usize = 2000;
const PATIENCE: usize = 50;

#[derive(Serialize, Deserialize)]
pub struct Gbdt {
    booster: GradientBooster,
}

/// forust's booster is not `Clone`; a JSON round trip copies it exactly.
impl Clone for Gbdt {
    fn clone(&self) -> Self {
        let json = serde_json::to_string(&self.booster).expect("a booster serialises");
        Gbdt {
            booster: serde_json::from_str(&json).expect("a booster deserialises"),
        }
    }
}

impl std::fmt::Debug for Gbdt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gbdt")
            .field("trees", &self.trees())
            .finish()
    }
}

impl Gbdt {
    pub fn fit(x: &Design, y: &[bool], x_val: &Design, y_val: &[bool], seed: u64) -> Result<Gbdt> {
        let mut booster = GradientBooster::default()
            .set_objective_type(ObjectiveType::LogLoss)
            .set_learning_rate(LEARNING_RATE)
            .set_max_depth(MAX_DEPTH)
            .set_iterations(MAX_TREES)
            .set_l2(1.0)
            .set_min_leaf_weight(5.0)
            .set_seed(seed)
            .set_evaluation_metric(Some(Metric::LogLoss))
            .set_early_stopping_rounds(Some(PATIENCE))
            .set_parallel(true);
        let data = x.column_major();
        let matrix = Matrix::new(&data, x.rows, x.cols);
        let val_data = x_val.column_major();
        let val_matrix = Matrix::new(&val_data, x_val.rows, x_val.cols);
        let target = as_f64(y);
        let val_target = as_f64(y_val);
        let weights = vec![1.0; x.rows];
        let val_weights = vec![1.0; x_val.rows];
        booster
            .fit(
                &matrix,
                &target,
                &weights,
                Some(vec![(val_matrix, &val_target, &val_weights)]),
            )
            .map_err(|e| Error::Train(format!("gradient boosting: {e}")))?;
        Ok(Gbdt { booster })
    }

    pub fn trees(&self) -> usize {
        self.booster.trees.len()
    }

    /// Log-odds per row.
    pub fn logits(&self, x: &Design) -> Result<Vec<f64>> {
        let data = x.column_major();
        Ok(self
            .booster
            .predict(&Matrix::new(&data, x.rows, x.cols), true))
    }

    /// Per row, each design column's contribution to the log-odds followed by
    /// the bias: `rows × (cols + 1)` values.
    pub fn contributions(&self, x: &Design) -> Result<Vec<f64>> {
        let data = x.column_major();
        Ok(self.booster.predict_contributions(
            &Matrix::new(&data, x.rows, x.cols),
            ContributionsMethod::Average,
            true,
        ))
    }
}

fn as_f64(y: &[bool]) -> Vec<f64> {
    y.iter().map(|&v| f64::from(u8::from(v))).collect()
}
