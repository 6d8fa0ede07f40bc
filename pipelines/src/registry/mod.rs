//! The model registry: every trained model becomes a version (algorithm,
//! features, training window, data fingerprint, metrics, artifact) in the crm
//! database. One champion per task; a new version replaces it only when it beats
//! the champion on the *same* test rows by a margin a paired bootstrap
//! confidence interval supports. Otherwise it stays a challenger, with the
//! reason recorded.

use chrono::{DateTime, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rapport_crm::{Ctx, ModelVersion, NewModelVersion, Store};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::train::{self, Model, Table, TrainReport, metrics};

pub mod jobs;

/// Errors of the database-facing jobs (registry, features, scoring).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Crm(#[from] rapport_crm::Error),
    #[error(transparent)]
    Train(#[from] train::Error),
    #[error("{0}")]
    Data(String),
    #[error("no {task} model trained yet: run `rapport train {task}`")]
    NoModel { task: String },
}

pub type Result<T> = std::result::Result<T, Error>;

/// Bootstrap resamples of the test rows.
const RESAMPLES: usize = 500;

/// Why a version was or was not promoted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub promoted: bool,
    pub reason: String,
    /// Test ROC AUC of the new model minus the champion's, and its 95% interval.
    pub auc_gain: Option<f64>,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
}

/// Compares a new model with the champion on the same labelled rows.
pub fn compare(new: &Model, champion: Option<&Model>, test: &Table, seed: u64) -> Result<Decision> {
    let Some(champion) = champion else {
        return Ok(Decision {
            promoted: true,
            reason: "first model for this task".into(),
            auc_gain: None,
            ci_low: None,
            ci_high: None,
        });
    };
    let y = test.labels()?;
    let p_new = new.predict(test)?;
    let p_old = match champion.predict(test) {
        Ok(p) => p,
        Err(e) => {
            return Ok(Decision {
                promoted: true,
                reason: format!("the champion cannot score the current features ({e})"),
                auc_gain: None,
                ci_low: None,
                ci_high: None,
            });
        }
    };
    let gain = metrics::roc_auc(&p_new, y) - metrics::roc_auc(&p_old, y);
    let (low, high) = bootstrap_gain(&p_new, &p_old, y, seed);
    let promoted = low > 0.0;
    let reason = if promoted {
        format!("beats the champion: ROC AUC +{gain:.4} (95% CI {low:+.4} … {high:+.4})")
    } else {
        format!(
            "kept as challenger: ROC AUC gain {gain:+.4} is not supported (95% CI {low:+.4} … {high:+.4} includes 0)"
        )
    };
    Ok(Decision {
        promoted,
        reason,
        auc_gain: Some(gain),
        ci_low: Some(low),
        ci_high: Some(high),
    })
}

/// 2.5th and 97.5th percentiles of the paired AUC difference over resamples.
fn bootstrap_gain(p_new: &[f64], p_old: &[f64], y: &[bool], seed: u64) -> (f64, f64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = y.len();
    let mut gains = Vec::with_capacity(RESAMPLES);
    let (mut a, mut b, mut t) = (vec![0.0; n], vec![0.0; n], vec![false; n]);
    for _ in 0..RESAMPLES {
        for i in 0..n {
            let k = rng.random_range(0..n);
            a[i] = p_new[k];
            b[i] = p_old[k];
            t[i] = y[k];
        }
        let g = metrics::roc_auc(&a, &t) - metrics::roc_auc(&b, &t);
        if g.is_finite() {
            gains.push(g);
        }
    }
    gains.sort_by(f64::total_cmp);
    if gains.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let at = |q: f64| gains[((gains.len() - 1) as f64 * q).round() as usize];
    (at(0.025), at(0.975))
}

/// A content hash of a training table: equal data, equal fingerprint.
pub fn fingerprint(table: &Table) -> String {
    let mut h = Sha256::new();
    for c in &table.columns {
        h.update(c.name.as_bytes());
        match &c.data {
            train::ColumnData::Numeric(v) => {
                for x in v {
                    h.update(x.map_or([0xff; 8], f64::to_le_bytes));
                }
            }
            train::ColumnData::Categorical(v) => {
                for x in v {
                    h.update(x.as_deref().unwrap_or("\u{0}").as_bytes());
                    h.update([0]);
                }
            }
        }
    }
    if let Some(t) = &table.target {
        h.update(t.iter().map(|&b| u8::from(b)).collect::<Vec<_>>());
    }
    hex::encode(&h.finalize()[..16])
}

/// What is registered besides the model.
pub struct Provenance {
    pub task: String,
    pub window_start: Option<DateTime<Utc>>,
    pub window_end: Option<DateTime<Utc>>,
    pub fingerprint: String,
}

/// Registers the report's chosen model, promoting it if it beats the champion
/// on `test`. Returns the new version and the decision.
pub async fn register(
    store: &Store,
    ctx: &Ctx,
    report: &TrainReport,
    test: &Table,
    prov: Provenance,
) -> Result<(ModelVersion, Decision)> {
    let chosen = report.chosen();
    let champion = match store.champion(ctx, &prov.task).await? {
        Some(v) => Some(Model::from_json(v.artifact.as_bytes())?),
        None => None,
    };
    let decision = compare(&chosen.model, champion.as_ref(), test, 7)?;
    let metrics = json!({
        "test": chosen.test,
        "validation_log_loss": chosen.validation_log_loss,
        "train_seconds": chosen.train_seconds,
        "train_rows": report.train_rows,
        "test_rows": report.test_rows,
        "importance": report.importance.iter().take(15).collect::<Vec<_>>(),
        "candidates": report.candidates.iter().map(|c| json!({
            "algorithm": c.algorithm.name(),
            "test_roc_auc": c.test.roc_auc,
            "test_log_loss": c.test.log_loss,
            "validation_log_loss": c.validation_log_loss,
        })).collect::<Vec<_>>(),
        "decision": decision,
    });
    let artifact = String::from_utf8(chosen.model.to_json()?)
        .map_err(|e| Error::Data(format!("artifact is not text: {e}")))?;
    let mut tx = store.begin().await?;
    let version = tx
        .add_model_version(
            ctx,
            NewModelVersion {
                task: prov.task.clone(),
                algorithm: chosen.algorithm.name().into(),
                features: json!(report.features),
                window_start: prov.window_start,
                window_end: prov.window_end,
                data_fingerprint: prov.fingerprint,
                metrics,
                artifact,
                status: if decision.promoted {
                    "champion"
                } else {
                    "challenger"
                }
                .into(),
                decision: Some(decision.reason.clone()),
            },
        )
        .await?;
    tx.commit().await?;
    Ok((version, decision))
}

/// Loads the champion model of a task.
pub async fn champion_model(store: &Store, ctx: &Ctx, task: &str) -> Result<(ModelVersion, Model)> {
    let v = store
        .champion(ctx, task)
        .await?
        .ok_or_else(|| Error::NoModel { task: task.into() })?;
    let m = Model::from_json(v.artifact.as_bytes())?;
    Ok((v, m))
}
