//! Training and evaluation of binary classifiers on a [`Table`].
//!
//! The training rows are cut (stratified) into folds. Gradient boosting is
//! cross-fitted over all of them (one early-stopped booster per fold, see
//! [`gbdt`]); the first fold is also the validation part for the rest: there
//! logistic regression picks its L2 penalty, a blend of the two picks its
//! weight (on the boosters' out-of-fold log-odds), and the decision threshold
//! is chosen (best F1, since with rare positives 0.5 flags almost nothing). Each candidate is then measured once on the held-out test rows;
//! the one with the best *validation* log loss is the chosen model, so the test
//! rows never influence a choice.

pub mod gbdt;
pub mod logistic;
pub mod metrics;
pub mod prep;
pub mod split;
pub mod table;

use std::time::Instant;

use serde::{Deserialize, Serialize};

pub use metrics::Metrics;
pub use prep::Prep;
pub use table::{Column, ColumnData, Table};

use gbdt::Gbdt;
use logistic::Logistic;
use prep::Design;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Data(String),
    #[error("training failed: {0}")]
    Train(String),
    #[error("cannot read {0}: {1}")]
    Io(String, #[source] std::io::Error),
    #[error("model artifact does not decode: {0}")]
    Artifact(String),
}

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// Linfa logistic regression (L2, one-hot + standardised inputs).
    Logistic,
    /// Gradient-boosted trees (forust-ml), cross-fitted: one early-stopped booster per fold, averaged.
    Gbdt,
    /// Logistic regression and boosted trees averaged in log-odds.
    Blend,
}

impl Algorithm {
    pub const ALL: [Algorithm; 3] = [Algorithm::Logistic, Algorithm::Gbdt, Algorithm::Blend];

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Logistic => "logistic",
            Algorithm::Gbdt => "gbdt",
            Algorithm::Blend => "blend",
        }
    }
}

#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub seed: u64,
    /// Folds the training rows are cut into (at least 2); the first is the
    /// validation part.
    pub folds: usize,
    /// Share held out for testing when no separate test table is given.
    pub test_fraction: f64,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            seed: 42,
            folds: 5,
            test_fraction: 0.2,
        }
    }
}

/// A trained model: its preprocessing and parameters. Serialises to JSON (the
/// registry's artifact).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Model {
    pub algorithm: Algorithm,
    pub prep: Prep,
    pub logistic: Option<Logistic>,
    pub gbdt: Option<Gbdt>,
    /// Weight of the logistic model's log-odds in a blend.
    pub blend_weight: f64,
    pub threshold: f64,
}

/// One feature's share of a prediction (log-odds; positive raises the score).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    pub feature: String,
    pub contribution: f64,
}

impl Model {
    pub fn predict(&self, table: &Table) -> Result<Vec<f64>> {
        let x = self.prep.transform(table)?;
        Ok(self.logits(&x)?.into_iter().map(sigmoid).collect())
    }

    fn logits(&self, x: &Design) -> Result<Vec<f64>> {
        let lr = self.logistic.as_ref().map(|m| m.logits(x));
        let gb = self.gbdt.as_ref().map(|m| m.logits(x)).transpose()?;
        match (self.algorithm, lr, gb) {
            (Algorithm::Logistic, Some(l), _) => Ok(l),
            (Algorithm::Gbdt, _, Some(g)) => Ok(g),
            (Algorithm::Blend, Some(l), Some(g)) => Ok(blend(&l, &g, self.blend_weight)),
            _ => Err(Error::Artifact("the model lacks its parameters".into())),
        }
    }

    /// Per row, the `top` source columns that moved its score most, largest
    /// magnitude first.
    pub fn explain(&self, table: &Table, top: usize) -> Result<Vec<Vec<Reason>>> {
        let x = self.prep.transform(table)?;
        let w = match self.algorithm {
            Algorithm::Logistic => 1.0,
            Algorithm::Gbdt => 0.0,
            Algorithm::Blend => self.blend_weight,
        };
        let tree = match &self.gbdt {
            Some(g) if w < 1.0 => Some(g.contributions(&x)?),
            _ => None,
        };
        let names = self.prep.feature_names();
        Ok((0..x.rows)
            .map(|i| {
                let mut by_source = vec![0.0; names.len()];
                if let Some(lr) = self.logistic.as_ref().filter(|_| w > 0.0) {
                    for (j, c) in lr.contributions(x.row(i)).into_iter().enumerate() {
                        by_source[x.source[j]] += w * c;
                    }
                }
                if let Some(t) = &tree {
                    for j in 0..x.cols {
                        by_source[x.source[j]] += (1.0 - w) * t[i * (x.cols + 1) + j];
                    }
                }
                top_reasons(&names, &by_source, top)
            })
            .collect())
    }

    /// Global importance per source column, normalised to sum to 1: mean
    /// absolute contribution over the given rows.
    pub fn importance(&self, table: &Table) -> Result<Vec<Reason>> {
        let all = self.explain(table, usize::MAX)?;
        let names = self.prep.feature_names();
        let mut total = vec![0.0; names.len()];
        for row in &all {
            for r in row {
                if let Some(k) = names.iter().position(|n| *n == r.feature) {
                    total[k] += r.contribution.abs();
                }
            }
        }
        let sum: f64 = total.iter().sum::<f64>().max(f64::MIN_POSITIVE);
        let normalised: Vec<f64> = total.iter().map(|t| t / sum).collect();
        Ok(top_reasons(&names, &normalised, usize::MAX))
    }

    pub fn to_json(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(|e| Error::Artifact(e.to_string()))
    }

    pub fn from_json(bytes: &[u8]) -> Result<Model> {
        serde_json::from_slice(bytes).map_err(|e| Error::Artifact(e.to_string()))
    }
}

fn top_reasons(names: &[String], values: &[f64], top: usize) -> Vec<Reason> {
    let mut r: Vec<Reason> = names
        .iter()
        .zip(values)
        .filter(|(_, v)| **v != 0.0)
        .map(|(n, v)| Reason {
            feature: n.clone(),
            contribution: *v,
        })
        .collect();
    r.sort_by(|a, b| b.contribution.abs().total_cmp(&a.contribution.abs()));
    r.truncate(top);
    r
}

pub fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

fn blend(l: &[f64], g: &[f64], w: f64) -> Vec<f64> {
    l.iter()
        .zip(g)
        .map(|(a, b)| w * a + (1.0 - w) * b)
        .collect()
}

/// One algorithm's result.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    pub algorithm: Algorithm,
    pub validation_log_loss: f64,
    pub test: Metrics,
    pub train_seconds: f64,
    #[serde(skip)]
    pub model: Model,
    /// Its probability for each test row, in the test table's order.
    #[serde(skip)]
    pub test_predictions: Vec<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    pub train_rows: usize,
    pub test_rows: usize,
    pub features: Vec<String>,
    pub dropped: Vec<(String, String)>,
    pub candidates: Vec<Candidate>,
    /// Index into `candidates` of the model to use (best validation log loss).
    pub chosen: usize,
    /// Global importance of the chosen model on the test rows.
    pub importance: Vec<Reason>,
}

impl TrainReport {
    pub fn chosen(&self) -> &Candidate {
        &self.candidates[self.chosen]
    }
}

/// Splits `table` into train and test (stratified) and trains on it.
pub fn train_split(table: &Table, opts: &TrainOptions) -> Result<TrainReport> {
    let y = table.labels()?;
    let parts = split::stratified(
        y,
        &[1.0 - opts.test_fraction, opts.test_fraction],
        opts.seed,
    );
    train(&table.take(&parts[0]), &table.take(&parts[1]), opts)
}

/// Trains every algorithm on `train_rows` and measures each on `test_rows`.
pub fn train(train_rows: &Table, test_rows: &Table, opts: &TrainOptions) -> Result<TrainReport> {
    let y_all = train_rows.labels()?;
    let y_test = test_rows.labels()?;
    check_classes(y_all, "training")?;
    check_classes(y_test, "test")?;
    let start = Instant::now();
    let prep = Prep::fit(train_rows)?;
    let x_all = prep.transform(train_rows)?;
    let x_test = prep.transform(test_rows)?;
    if opts.folds < 2 {
        return Err(Error::Data(format!(
            "folds must be at least 2, not {}",
            opts.folds
        )));
    }
    let folds = split::stratified(y_all, &vec![1.0 / opts.folds as f64; opts.folds], opts.seed);
    let val_idx = &folds[0];
    let mut fit_idx: Vec<usize> = folds[1..].concat();
    fit_idx.sort_unstable();
    let x_fit = rows_of(&x_all, &fit_idx);
    let x_val = rows_of(&x_all, val_idx);
    let y_fit: Vec<bool> = fit_idx.iter().map(|&i| y_all[i]).collect();
    let y_val: Vec<bool> = val_idx.iter().map(|&i| y_all[i]).collect();
    check_classes(&y_val, "validation")?;
    let prep_seconds = start.elapsed().as_secs_f64();

    // Logistic regression: penalty chosen on validation, then refitted on all rows.
    let t = Instant::now();
    let (alpha, lr_val_logits) = choose_alpha(&x_fit, &y_fit, &x_val, &y_val)?;
    let lr = Logistic::fit(&x_all, y_all, alpha)?;
    let lr_seconds = prep_seconds + t.elapsed().as_secs_f64();
    tracing::info!(alpha, seconds = lr_seconds, "logistic regression trained");

    let t = Instant::now();
    let (gb, gb_oof) = Gbdt::fit_cross(&x_all, y_all, &folds, opts.seed)?;
    let gb_val_logits: Vec<f64> = val_idx.iter().map(|&i| gb_oof[i]).collect();
    let gb_seconds = prep_seconds + t.elapsed().as_secs_f64();
    tracing::info!(
        trees = gb.trees(),
        seconds = gb_seconds,
        "boosted trees trained"
    );

    let (w, blend_val) = choose_blend(&lr_val_logits, &gb_val_logits, &y_val);

    let candidates = vec![
        candidate(
            Algorithm::Logistic,
            &prep,
            Some(lr.clone()),
            None,
            1.0,
            &lr_val_logits,
            &y_val,
            &x_test,
            y_test,
            lr_seconds,
        )?,
        candidate(
            Algorithm::Gbdt,
            &prep,
            None,
            Some(gb.clone()),
            0.0,
            &gb_val_logits,
            &y_val,
            &x_test,
            y_test,
            gb_seconds,
        )?,
        candidate(
            Algorithm::Blend,
            &prep,
            Some(lr),
            Some(gb),
            w,
            &blend_val,
            &y_val,
            &x_test,
            y_test,
            lr_seconds + gb_seconds - prep_seconds,
        )?,
    ];
    let chosen = (0..candidates.len())
        .min_by(|&a, &b| {
            candidates[a]
                .validation_log_loss
                .total_cmp(&candidates[b].validation_log_loss)
        })
        .unwrap_or(0);
    let importance = candidates[chosen].model.importance(test_rows)?;
    Ok(TrainReport {
        train_rows: train_rows.rows(),
        test_rows: test_rows.rows(),
        features: prep.feature_names(),
        dropped: prep.dropped.clone(),
        candidates,
        chosen,
        importance,
    })
}

#[allow(clippy::too_many_arguments)]
fn candidate(
    algorithm: Algorithm,
    prep: &Prep,
    logistic: Option<Logistic>,
    gbdt: Option<Gbdt>,
    blend_weight: f64,
    val_logits: &[f64],
    y_val: &[bool],
    x_test: &Design,
    y_test: &[bool],
    train_seconds: f64,
) -> Result<Candidate> {
    let p_val: Vec<f64> = val_logits.iter().copied().map(sigmoid).collect();
    let model = Model {
        algorithm,
        prep: prep.clone(),
        logistic,
        gbdt,
        blend_weight,
        threshold: metrics::best_f1_threshold(&p_val, y_val),
    };
    let p_test: Vec<f64> = model.logits(x_test)?.into_iter().map(sigmoid).collect();
    Ok(Candidate {
        algorithm,
        validation_log_loss: metrics::log_loss(&p_val, y_val),
        test: Metrics::compute(&p_test, y_test, model.threshold),
        train_seconds,
        model,
        test_predictions: p_test,
    })
}

fn choose_alpha(
    x_fit: &Design,
    y_fit: &[bool],
    x_val: &Design,
    y_val: &[bool],
) -> Result<(f64, Vec<f64>)> {
    let mut best: Option<(f64, f64, Vec<f64>)> = None;
    for alpha in logistic::ALPHAS {
        let m = Logistic::fit(x_fit, y_fit, alpha)?;
        let logits = m.logits(x_val);
        let p: Vec<f64> = logits.iter().copied().map(sigmoid).collect();
        let loss = metrics::log_loss(&p, y_val);
        if best.as_ref().is_none_or(|b| loss < b.1) {
            best = Some((alpha, loss, logits));
        }
    }
    let (alpha, _, logits) = best.expect("at least one penalty");
    Ok((alpha, logits))
}

fn choose_blend(lr: &[f64], gb: &[f64], y: &[bool]) -> (f64, Vec<f64>) {
    [0.25, 0.5, 0.75]
        .into_iter()
        .map(|w| {
            let z = blend(lr, gb, w);
            let p: Vec<f64> = z.iter().copied().map(sigmoid).collect();
            (w, metrics::log_loss(&p, y), z)
        })
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(w, _, z)| (w, z))
        .expect("three weights")
}

pub(crate) fn rows_of(x: &Design, idx: &[usize]) -> Design {
    let mut data = Vec::with_capacity(idx.len() * x.cols);
    for &i in idx {
        data.extend_from_slice(x.row(i));
    }
    Design {
        rows: idx.len(),
        cols: x.cols,
        data,
        names: x.names.clone(),
        source: x.source.clone(),
    }
}

fn check_classes(y: &[bool], part: &str) -> Result<()> {
    let pos = y.iter().filter(|&&v| v).count();
    if pos == 0 || pos == y.len() {
        return Err(Error::Data(format!(
            "the {part} rows hold only one class ({pos} positive of {}): need both",
            y.len()
        )));
    }
    Ok(())
}
