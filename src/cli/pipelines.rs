//! `rapport import …`, `rapport train lead-score|churn|--csv`, `rapport score`,
//! `rapport models registry` and `rapport bench train`: thin adapters over
//! `rapport-pipelines`.

use std::path::{Path, PathBuf};
use std::time::Duration as StdDuration;

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use clap::{Args, Subcommand};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use rapport_crm::RecordType;
use rapport_pipelines::import::{self, csv::CsvOptions};
use rapport_pipelines::registry::jobs::{self, JobOptions, Task};
use rapport_pipelines::score;
use rapport_pipelines::train::{self, Table, TrainOptions, TrainReport};
use serde_json::json;

use super::GlobalArgs;
use super::db::{self, progress_bar};

#[derive(Debug, Subcommand)]
pub enum ImportCmd {
    /// A leadforge bundle (directory with tables/*.parquet) into companies,
    /// contacts, leads, activities and deals; re-importing updates.
    Leadforge(LeadforgeArgs),
    /// A CSV file of one record type, validated row by row.
    Csv(CsvArgs),
}

#[derive(Debug, Args)]
pub struct LeadforgeArgs {
    pub dir: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CsvArgs {
    /// Record type of every row: company, contact, lead, deal, activity, task.
    #[arg(long = "type")]
    pub record_type: String,
    pub file: PathBuf,
    /// Rename a column: `col=field`, or `col=custom.NAME` for a custom attribute.
    #[arg(long = "map", value_parser = parse_map)]
    pub map: Vec<(String, String)>,
    /// Column holding the source's own id: importing again updates those records.
    #[arg(long)]
    pub key: Option<String>,
    /// Import the valid rows even if some are rejected (default: import nothing then).
    #[arg(long)]
    pub skip_invalid: bool,
    #[arg(long)]
    pub json: bool,
}

fn parse_map(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(a, b)| (a.trim().to_owned(), b.trim().to_owned()))
        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
        .ok_or_else(|| format!("expected COLUMN=FIELD, got {s:?}"))
}

#[derive(Debug, Args)]
pub struct TaskArgs {
    /// Retrain only if there is no champion, it is older than --max-age-days, or
    /// the labelled rows changed by more than --min-change.
    #[arg(long)]
    pub if_stale: bool,
    #[arg(long, default_value_t = 30)]
    pub max_age_days: i64,
    #[arg(long, default_value_t = 0.05)]
    pub min_change: f64,
    /// Snapshot instant (RFC 3339); default: the latest activity.
    #[arg(long)]
    pub as_of: Option<DateTime<Utc>>,
    /// Lead-score label window after the snapshot, in days.
    #[arg(long, default_value_t = 90)]
    pub horizon_days: i64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long)]
    pub json: bool,
}

/// `rapport train --csv FILE --target COL`
#[derive(Debug, Args)]
pub struct CsvTrainArgs {
    /// A CSV or Parquet table to train on.
    #[arg(long = "csv", value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// The 0/1, true/false or two-valued column to predict.
    #[arg(long, requires = "csv")]
    pub target: Option<String>,
    /// A separate test table (same columns); default: a stratified 20% of FILE.
    #[arg(long, requires = "csv")]
    pub test: Option<PathBuf>,
    /// Columns to leave out (identifiers, leaks).
    #[arg(long, num_args = 1.., requires = "csv")]
    pub drop: Vec<String>,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long)]
    pub json: bool,
    /// Write the chosen model's probability for every row of the --test table
    /// to this CSV (`row,label,probability`), e.g. for
    /// `scripts/compare-sklearn.py --against FILE`.
    #[arg(long, value_name = "FILE", requires = "test")]
    pub predictions: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ScoreArgs {
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// Only this task (lead-score, churn).
    #[arg(long)]
    pub task: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BenchTrainArgs {
    /// A leadforge bundle (default: the 20,000-lead bundle of scripts/fetch-data).
    #[arg(long)]
    pub bundle: Option<PathBuf>,
}

fn spinner(msg: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("valid template"),
    );
    bar.set_message(msg.to_owned());
    bar.enable_steady_tick(StdDuration::from_millis(120));
    bar
}

fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub async fn import(g: &GlobalArgs, cmd: ImportCmd) -> anyhow::Result<()> {
    let s = db::open(g).await?;
    match cmd {
        ImportCmd::Leadforge(a) => {
            let bars = MultiProgress::new();
            let report = import::leadforge::import_bundle(&s.store, &s.ctx, &a.dir, &bars).await?;
            if a.json {
                return print_json(&report);
            }
            for t in &report.tables {
                println!(
                    "{:>10}: {} created, {} updated, {} unchanged",
                    t.record_type, t.created, t.updated, t.unchanged
                );
            }
            println!(
                "{} leads converted; snapshot {:?}",
                report.converted_leads, report.snapshot
            );
            Ok(())
        }
        ImportCmd::Csv(a) => {
            let rt = RecordType::parse(&a.record_type)?;
            let opts = CsvOptions {
                record_type: rt,
                map: a.map,
                key: a.key,
                skip_invalid: a.skip_invalid,
            };
            let bar = progress_bar("rows");
            let result = import::csv::import_csv(&s.store, &s.ctx, &a.file, &opts, &bar).await;
            bar.finish_and_clear();
            let report = match result {
                Ok(r) => r,
                Err(import::Error::Rejected(r)) => {
                    print_csv_report(&r, a.json)?;
                    anyhow::bail!(
                        "{} of {} rows rejected; nothing was imported (fix them, or pass --skip-invalid)",
                        r.rejected.len(),
                        r.rows
                    );
                }
                Err(e) => return Err(e.into()),
            };
            print_csv_report(&report, a.json)
        }
    }
}

fn print_csv_report(r: &import::ImportReport, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(r);
    }
    println!(
        "{} rows: {} created, {} updated, {} rejected, {} duplicates",
        r.rows,
        r.created,
        r.updated,
        r.rejected.len(),
        r.duplicates.len()
    );
    for x in &r.rejected {
        println!("  row {}: rejected: {}", x.row, x.reason);
    }
    for d in &r.duplicates {
        match (d.same_as_row, d.existing_id) {
            (Some(first), _) => println!(
                "  row {}: duplicate of row {first} ({}), skipped",
                d.row, d.key
            ),
            (_, Some(id)) => println!(
                "  row {}: matches existing record {id} ({}), updated",
                d.row, d.key
            ),
            _ => {}
        }
    }
    Ok(())
}

pub async fn train_task(g: &GlobalArgs, task: Task, a: TaskArgs) -> anyhow::Result<()> {
    let s = db::open(g).await?;
    let opts = JobOptions {
        train: TrainOptions {
            seed: a.seed,
            ..TrainOptions::default()
        },
        as_of: a.as_of,
        horizon: Duration::days(a.horizon_days),
    };
    if a.if_stale {
        let st = jobs::staleness(
            &s.store,
            &s.ctx,
            task,
            &opts,
            Duration::days(a.max_age_days),
            a.min_change,
        )
        .await?;
        if !st.stale {
            println!("{}: up to date ({}); not retrained", task.name(), st.reason);
            return Ok(());
        }
        println!("{}: retraining ({})", task.name(), st.reason);
    }
    let bar = spinner(&format!("training {}", task.name()));
    let outcome = jobs::train_task(&s.store, &s.ctx, task, &opts).await;
    bar.finish_and_clear();
    let outcome = outcome?;
    if a.json {
        return print_json(&outcome);
    }
    println!(
        "{} as of {} ({} train / {} test rows)",
        task.name(),
        outcome.as_of,
        outcome.report.train_rows,
        outcome.report.test_rows
    );
    print_report(&outcome.report);
    println!(
        "registered version {} ({}): {}",
        outcome.version.version, outcome.version.status, outcome.decision.reason
    );
    Ok(())
}

fn print_report(r: &TrainReport) {
    println!(
        "{:<10} {:>9} {:>8} {:>9} {:>8} {:>9}",
        "algorithm", "ROC AUC", "PR AUC", "log loss", "Brier", "seconds"
    );
    for (i, c) in r.candidates.iter().enumerate() {
        println!(
            "{:<10} {:>9.4} {:>8.4} {:>9.4} {:>8.4} {:>9.2}{}",
            c.algorithm.name(),
            c.test.roc_auc,
            c.test.pr_auc,
            c.test.log_loss,
            c.test.brier,
            c.train_seconds,
            if i == r.chosen {
                "  ← chosen (best validation log loss)"
            } else {
                ""
            }
        );
    }
    let c = r.chosen();
    let m = &c.test.confusion;
    println!(
        "threshold {:.3}: TP {} FP {} TN {} FN {}",
        c.test.threshold, m.true_positive, m.false_positive, m.true_negative, m.false_negative
    );
    println!("calibration (predicted → observed):");
    for b in &c.test.calibration {
        println!(
            "  {:.1}–{:.1}: {:>5} rows, {:.3} → {:.3}",
            b.lower, b.upper, b.rows, b.mean_predicted, b.observed_rate
        );
    }
    println!("top features:");
    for f in r.importance.iter().take(8) {
        println!("  {:<32} {:.3}", f.feature, f.contribution);
    }
    for (col, why) in &r.dropped {
        println!("left out {col}: {why}");
    }
}

pub async fn train_csv(a: CsvTrainArgs) -> anyhow::Result<()> {
    let file = a
        .csv
        .context("pass --csv FILE --target COLUMN, or a task: lead-score, churn, sentiment")?;
    let target = a.target.context("--target COLUMN is required with --csv")?;
    let opts = TrainOptions {
        seed: a.seed,
        ..TrainOptions::default()
    };
    let table = Table::read(&file, Some(&target), &a.drop)?;
    let bar = spinner(&format!("training on {}", file.display()));
    let (report, test) = match &a.test {
        Some(test) => {
            let test = Table::read(test, Some(&target), &a.drop)?;
            (train::train(&table, &test, &opts), Some(test))
        }
        None => (train::train_split(&table, &opts), None),
    };
    bar.finish_and_clear();
    let report = report?;
    if let (Some(path), Some(test)) = (&a.predictions, &test) {
        write_predictions(path, test.labels()?, &report.chosen().test_predictions)?;
    }
    if a.json {
        let doc = json!({
            "dataset": file.display().to_string(),
            "train_rows": report.train_rows,
            "test_rows": report.test_rows,
            "chosen": report.chosen().algorithm.name(),
            "results": report.candidates.iter().map(|c| json!({
                "algorithm": c.algorithm.name(),
                "test_roc_auc": round4(c.test.roc_auc),
                "test_pr_auc": round4(c.test.pr_auc),
                "test_log_loss": round4(c.test.log_loss),
                "test_brier": round4(c.test.brier),
                "train_seconds": round4(c.train_seconds),
            })).collect::<Vec<_>>(),
        });
        return print_json(&doc);
    }
    print_report(&report);
    Ok(())
}

fn write_predictions(path: &Path, labels: &[bool], p: &[f64]) -> anyhow::Result<()> {
    let mut out = String::from("row,label,probability\n");
    for (i, (y, p)) in labels.iter().zip(p).enumerate() {
        out.push_str(&format!("{i},{},{p}\n", u8::from(*y)));
    }
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}

fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

pub async fn score(g: &GlobalArgs, a: ScoreArgs) -> anyhow::Result<()> {
    let s = db::open(g).await?;
    let bar = spinner("scoring");
    let report = score::score_all(&s.store, &s.ctx).await;
    bar.finish_and_clear();
    let report = report?;
    if a.json {
        return print_json(&report);
    }
    for t in &report.tasks {
        match (&t.model_version, &t.note) {
            (_, Some(note)) => println!("{}: {note}", t.task),
            (Some(v), None) => println!(
                "{}: scored {} {}s with version {v}",
                t.task, t.scored, t.record_type
            ),
            _ => {}
        }
    }
    Ok(())
}

pub async fn registry(g: &GlobalArgs, a: RegistryArgs) -> anyhow::Result<()> {
    let s = db::open(g).await?;
    let versions = s.store.model_versions(&s.ctx, a.task.as_deref()).await?;
    if a.json {
        return print_json(&versions);
    }
    if versions.is_empty() {
        println!("no models trained yet: run `rapport train lead-score` or `rapport train churn`");
        return Ok(());
    }
    println!(
        "{:<11} {:>3} {:<10} {:<10} {:>8} {:>9}  {:<16} {:<23} decision",
        "task", "v", "algorithm", "status", "ROC AUC", "log loss", "created", "data window"
    );
    let day =
        |t: Option<DateTime<Utc>>| t.map_or("?".to_string(), |t| t.format("%Y-%m-%d").to_string());
    for v in versions {
        let test = &v.metrics["test"];
        println!(
            "{:<11} {:>3} {:<10} {:<10} {:>8.4} {:>9.4}  {:<16} {:<23} {}",
            v.task,
            v.version,
            v.algorithm,
            v.status,
            test["roc_auc"].as_f64().unwrap_or(f64::NAN),
            test["log_loss"].as_f64().unwrap_or(f64::NAN),
            v.created_at.format("%Y-%m-%d %H:%M"),
            format!("{} … {}", day(v.window_start), day(v.window_end)),
            v.decision.unwrap_or_default()
        );
    }
    Ok(())
}

/// `rapport bench train`: see [`rapport_pipelines::features::bench::train`].
pub async fn bench_train(a: BenchTrainArgs) -> anyhow::Result<()> {
    let bundle = a.bundle.unwrap_or_else(default_bundle);
    let doc = rapport_pipelines::features::bench::train(&bundle)
        .await
        .with_context(|| {
            format!(
                "benchmarking on {} (run scripts/fetch-data first)",
                bundle.display()
            )
        })?;
    print_json(&doc)
}

fn default_bundle() -> PathBuf {
    data_dir().join("lf-advanced-20k")
}

/// Where `scripts/fetch-data` puts the data sets: `$RAPPORT_DATA_CACHE`, else
/// `~/.cache/rapport/data`.
pub fn data_dir() -> PathBuf {
    std::env::var_os("RAPPORT_DATA_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map_or_else(|| PathBuf::from("."), PathBuf::from)
                .join(".cache/rapport/data")
        })
}
