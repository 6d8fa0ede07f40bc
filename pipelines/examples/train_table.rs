//! Trains and evaluates every algorithm on a CSV or Parquet table and prints
//! JSON, like `rapport train --csv … --json` but without the CLI's other
//! dependencies (quick to build on its own):
//!
//!     cargo run -p rapport-pipelines --release --example train_table -- \
//!         TRAIN_FILE TARGET [TEST_FILE|-] [DROP_COLUMN …]

use std::path::PathBuf;

use rapport_pipelines::train::{self, Table, TrainOptions};
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [train_file, target, rest @ ..] = args.as_slice() else {
        return Err("usage: train_table TRAIN_FILE TARGET [TEST_FILE|-] [DROP_COLUMN …]".into());
    };
    let (test_file, drop) = match rest.split_first() {
        Some((t, d)) if t != "-" => (Some(PathBuf::from(t)), d.to_vec()),
        Some((_, d)) => (None, d.to_vec()),
        None => (None, vec![]),
    };
    let opts = TrainOptions::default();
    let table = Table::read(&PathBuf::from(train_file), Some(target), &drop)?;
    let report = match test_file {
        Some(t) => train::train(&table, &Table::read(&t, Some(target), &drop)?, &opts)?,
        None => train::train_split(&table, &opts)?,
    };
    let doc = json!({
        "dataset": train_file,
        "train_rows": report.train_rows,
        "test_rows": report.test_rows,
        "chosen": report.chosen().algorithm.name(),
        "results": report.candidates.iter().map(|c| json!({
            "algorithm": c.algorithm.name(),
            "test_roc_auc": (c.test.roc_auc * 1e4).round() / 1e4,
            "test_log_loss": (c.test.log_loss * 1e4).round() / 1e4,
            "train_seconds": (c.train_seconds * 1e3).round() / 1e3,
        })).collect::<Vec<_>>(),
    });
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}
