//! The training jobs behind `rapport train lead-score|churn [--if-stale]`:
//! features from the database as of a snapshot, labels from what followed,
//! training, registration (and promotion when earned).

use chrono::{DateTime, Duration, Utc};
use rapport_crm::{Ctx, ModelVersion, Store};
use serde::Serialize;

use super::{Decision, Error, Provenance, Result, fingerprint, register};
use crate::features::{self, Snapshot};
use crate::train::{self, Table, TrainOptions, TrainReport};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Task {
    LeadScore,
    Churn,
}

impl Task {
    pub fn name(self) -> &'static str {
        match self {
            Task::LeadScore => "lead-score",
            Task::Churn => "churn",
        }
    }
}

#[derive(Debug, Clone)]
pub struct JobOptions {
    pub train: TrainOptions,
    /// Snapshot instant; default: the latest activity (capped at now minus the horizon for leads).
    pub as_of: Option<DateTime<Utc>>,
    /// Lead-score label window after the snapshot.
    pub horizon: Duration,
}

impl Default for JobOptions {
    fn default() -> Self {
        JobOptions {
            train: TrainOptions::default(),
            as_of: None,
            horizon: Duration::days(90),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct JobOutcome {
    pub task: &'static str,
    pub as_of: DateTime<Utc>,
    pub fingerprint: String,
    pub report: TrainReport,
    pub version: ModelVersion,
    pub decision: Decision,
}

/// Labelled rows of a task and where the test split comes from.
struct Labelled {
    table: Table,
    /// Per row: whether it belongs to the test split given by the data (a
    /// leadforge bundle's own split); `None` when the data names none.
    test_rows: Option<Vec<bool>>,
    as_of: DateTime<Utc>,
}

fn labelled(snap: &Snapshot, task: Task, opts: &JobOptions) -> Result<Labelled> {
    let latest = features::latest_event(snap).unwrap_or_else(Utc::now);
    match task {
        Task::LeadScore => {
            let as_of = opts
                .as_of
                .unwrap_or_else(|| latest.min(Utc::now() - opts.horizon));
            let (table, _ids, splits) = features::lead_training_table(snap, as_of, opts.horizon)?;
            let given = splits.iter().any(|s| s == "test");
            Ok(Labelled {
                test_rows: given.then(|| splits.iter().map(|s| s == "test").collect()),
                table,
                as_of,
            })
        }
        Task::Churn => {
            let as_of = opts.as_of.unwrap_or(latest);
            let (table, _ids, labels) = features::account_table(snap, as_of)?;
            let keep: Vec<usize> = (0..labels.len()).filter(|&i| labels[i].is_some()).collect();
            if keep.is_empty() {
                return Err(Error::Data(format!(
                    "no account says whether it churned: set the custom attribute `{}` (true/false) on companies, e.g. `rapport import csv --type company FILE --map COL=custom.{}`",
                    features::CHURN_KEY,
                    features::CHURN_KEY
                )));
            }
            let mut table = table.take(&keep);
            table.target = Some(keep.iter().map(|&i| labels[i] == Some(true)).collect());
            Ok(Labelled {
                table,
                test_rows: None,
                as_of,
            })
        }
    }
}

/// Trains a task from the database and registers the result.
pub async fn train_task(
    store: &Store,
    ctx: &Ctx,
    task: Task,
    opts: &JobOptions,
) -> Result<JobOutcome> {
    let snap = features::load(store, ctx).await?;
    let window_start = features::earliest_event(&snap);
    let job = opts.clone();
    // Polars and the learners are CPU-bound (and Polars blocks on its own
    // runtime): off the async threads.
    let (data, print, report, test_rows) = blocking(move || {
        let data = labelled(&snap, task, &job)?;
        if data.table.rows() < 20 {
            return Err(Error::Data(format!(
                "only {} labelled rows for {} as of {}: too few to train",
                data.table.rows(),
                task.name(),
                data.as_of
            )));
        }
        let print = fingerprint(&data.table);
        let (train_rows, test_rows) = split(&data, &job)?;
        let report = train::train(&train_rows, &test_rows, &job.train)?;
        Ok((data.as_of, print, report, test_rows))
    })
    .await?;
    let (version, decision) = register(
        store,
        ctx,
        &report,
        &test_rows,
        Provenance {
            task: task.name().into(),
            window_start: window_start.filter(|start| *start <= data),
            window_end: Some(data),
            fingerprint: print.clone(),
        },
    )
    .await?;
    Ok(JobOutcome {
        task: task.name(),
        as_of: data,
        fingerprint: print,
        report,
        version,
        decision,
    })
}

/// The data's own test split if it names one, else a stratified one.
fn split(data: &Labelled, opts: &JobOptions) -> Result<(Table, Table)> {
    Ok(match &data.test_rows {
        Some(flags) => {
            let test: Vec<usize> = (0..flags.len()).filter(|&i| flags[i]).collect();
            let rest: Vec<usize> = (0..flags.len()).filter(|&i| !flags[i]).collect();
            (data.table.take(&rest), data.table.take(&test))
        }
        None => {
            let y = data.table.labels()?;
            let parts = train::split::stratified(
                y,
                &[1.0 - opts.train.test_fraction, opts.train.test_fraction],
                opts.train.seed,
            );
            (data.table.take(&parts[0]), data.table.take(&parts[1]))
        }
    })
}

/// Runs CPU-bound work on the blocking pool.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Data(format!("a pipeline step panicked: {e}")))?
}

/// Why a retrain is (or is not) due.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Staleness {
    pub stale: bool,
    pub reason: String,
}

/// A task needs retraining when it has no champion, its champion is older
/// than `max_age`, or the labelled rows changed by more than `min_change`
/// (a share of the champion's rows).
pub async fn staleness(
    store: &Store,
    ctx: &Ctx,
    task: Task,
    opts: &JobOptions,
    max_age: Duration,
    min_change: f64,
) -> Result<Staleness> {
    let Some(champion) = store.champion(ctx, task.name()).await? else {
        return Ok(Staleness {
            stale: true,
            reason: "no champion yet".into(),
        });
    };
    let age = Utc::now() - champion.created_at;
    if age > max_age {
        return Ok(Staleness {
            stale: true,
            reason: format!(
                "the champion is {} days old (limit {})",
                age.num_days(),
                max_age.num_days()
            ),
        });
    }
    let snap = features::load(store, ctx).await?;
    let job = opts.clone();
    let data = blocking(move || labelled(&snap, task, &job)).await?;
    if fingerprint(&data.table) == champion.data_fingerprint {
        return Ok(Staleness {
            stale: false,
            reason: "the data has not changed since the champion was trained".into(),
        });
    }
    let m = &champion.metrics;
    let before = m["train_rows"].as_f64().unwrap_or(0.0) + m["test_rows"].as_f64().unwrap_or(0.0);
    let now = data.table.rows() as f64;
    let change = (now - before).abs() / before.max(1.0);
    Ok(if change > min_change {
        Staleness {
            stale: true,
            reason: format!(
                "labelled rows changed by {:.1}% ({before} → {now})",
                change * 100.0
            ),
        }
    } else {
        Staleness {
            stale: false,
            reason: format!(
                "labelled rows changed by only {:.1}% (threshold {:.1}%)",
                change * 100.0,
                min_change * 100.0
            ),
        }
    })
}
