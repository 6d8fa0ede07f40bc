//! `rapport bench train`: imports a leadforge bundle into a scratch SQLite
//! database, builds the lead feature table from it (timed: rows/s), and trains
//! every algorithm on the bundle's own task split (timed per algorithm).

use std::path::Path;
use std::time::Instant;

use chrono::{Duration, Utc};
use indicatif::{MultiProgress, ProgressDrawTarget};
use rapport_crm::{Ctx, Source, Store};
use serde_json::{Value, json};

use crate::import::leadforge::{self, import_bundle};
use crate::registry::jobs::blocking;
use crate::registry::{Error, Result};
use crate::train::{self, Table, TrainOptions};

fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

pub async fn train(bundle: &Path) -> Result<Value> {
    let dir = tempfile::tempdir().map_err(|e| Error::Data(e.to_string()))?;
    let store = Store::connect(&Store::sqlite_url_in(dir.path())).await?;
    let ws = store.create_workspace("bench").await?;
    let ctx = Ctx::new(ws.id, None, Source::Pipeline);

    let t = Instant::now();
    let bars = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let imported = import_bundle(&store, &ctx, bundle, &bars)
        .await
        .map_err(|e| Error::Data(e.to_string()))?;
    let import_seconds = t.elapsed().as_secs_f64();
    let records: usize = imported.tables.iter().map(|x| x.created).sum();

    let t = Instant::now();
    let snap = super::load(&store, &ctx).await?;
    let load_seconds = t.elapsed().as_secs_f64();
    store.close().await;
    let bundle = bundle.to_path_buf();
    blocking(move || {
        let as_of = super::latest_event(&snap).unwrap_or_else(Utc::now);
        let t = Instant::now();
        let (table, _, _) = super::lead_training_table(&snap, as_of, Duration::days(90))?;
        let build_seconds = t.elapsed().as_secs_f64();

        let task = bundle.join("tasks").join(leadforge::TASK);
        let drop = vec!["total_touches_all".to_owned()];
        let train_t = Table::read(&task.join("train.parquet"), Some(leadforge::TASK), &drop)?;
        let test_t = Table::read(&task.join("test.parquet"), Some(leadforge::TASK), &drop)?;
        let report = train::train(&train_t, &test_t, &TrainOptions::default())?;
        Ok(json!({
            "benchmark": "train",
            "bundle": bundle.display().to_string(),
            "import": {"records": records, "seconds": round4(import_seconds),
                       "records_per_sec": (records as f64 / import_seconds).round()},
            "features": {
                "leads": table.rows(),
                "columns": table.columns.len(),
                "load_seconds": round4(load_seconds),
                "build_seconds": round4(build_seconds),
                "rows_per_sec": (table.rows() as f64 / build_seconds).round(),
                "rows_per_sec_including_load": (table.rows() as f64 / (build_seconds + load_seconds)).round(),
            },
            "training": {
                "train_rows": report.train_rows,
                "test_rows": report.test_rows,
                "algorithms": report.candidates.iter().map(|c| json!({
                    "algorithm": c.algorithm.name(),
                    "train_seconds": round4(c.train_seconds),
                    "test_roc_auc": round4(c.test.roc_auc),
                    "test_log_loss": round4(c.test.log_loss),
                })).collect::<Vec<_>>(),
            },
        }))
    })
    .await
}
