//! `rapport score`: the champion of each task scores every open lead and every
//! active (not churned) account as of the latest data, and the scores with
//! their top reasons are written to the `scores` table in one transaction per
//! task. The `lead_score` and `churn_risk` tools read them from there.

use chrono::{DateTime, Utc};
use rapport_crm::{Ctx, RecordType, Score, Store};
use serde::Serialize;
use serde_json::json;

use crate::features::{self, Snapshot};
use crate::registry::jobs::{Task, blocking};
use crate::registry::{Error, Result, champion_model};
use crate::train::Table;

/// Reasons kept per scored record.
pub const TOP_REASONS: usize = 3;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskScores {
    pub task: &'static str,
    pub record_type: &'static str,
    /// None when the task has no champion yet.
    pub model_version: Option<i64>,
    pub scored: usize,
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoreReport {
    pub as_of: DateTime<Utc>,
    pub tasks: Vec<TaskScores>,
}

/// Scores every task that has a champion.
pub async fn score_all(store: &Store, ctx: &Ctx) -> Result<ScoreReport> {
    let snap = features::load(store, ctx).await?;
    let as_of = features::latest_event(&snap).unwrap_or_else(Utc::now);
    let mut tasks = Vec::new();
    for task in [Task::LeadScore, Task::Churn] {
        tasks.push(score_task(store, ctx, &snap, task, as_of).await?);
    }
    Ok(ScoreReport { as_of, tasks })
}

async fn score_task(
    store: &Store,
    ctx: &Ctx,
    snap: &Snapshot,
    task: Task,
    as_of: DateTime<Utc>,
) -> Result<TaskScores> {
    let record_type = match task {
        Task::LeadScore => RecordType::Lead,
        Task::Churn => RecordType::Company,
    };
    let mut out = TaskScores {
        task: task.name(),
        record_type: record_type.name(),
        model_version: None,
        scored: 0,
        note: None,
    };
    let (version, model) = match champion_model(store, ctx, task.name()).await {
        Ok(found) => found,
        Err(Error::NoModel { .. }) => {
            out.note = Some(format!("no model yet: run `rapport train {}`", task.name()));
            return Ok(out);
        }
        Err(e) => return Err(e),
    };
    let snap = snap.clone();
    let (ids, p, reasons) = blocking(move || {
        let (table, ids) = population(&snap, task, as_of)?;
        if ids.is_empty() {
            return Ok((ids, vec![], vec![]));
        }
        let p = model.predict(&table)?;
        let reasons = model.explain(&table, TOP_REASONS)?;
        Ok((ids, p, reasons))
    })
    .await?;
    if ids.is_empty() {
        out.model_version = Some(version.version);
        out.note = Some("nothing to score".into());
        return Ok(out);
    }
    let scored_at = Utc::now();
    let scores: Vec<Score> = ids
        .iter()
        .zip(p)
        .zip(reasons)
        .map(|((&id, score), why)| Score {
            record_type: record_type.name().into(),
            record_id: id,
            task: task.name().into(),
            score,
            reasons: json!(why),
            model_version: version.version,
            scored_at,
        })
        .collect();
    let mut tx = store.begin().await?;
    tx.put_scores(ctx, &scores).await?;
    tx.commit().await?;
    out.model_version = Some(version.version);
    out.scored = scores.len();
    Ok(out)
}

/// Open leads (not converted or unqualified) or active accounts (not churned).
fn population(snap: &Snapshot, task: Task, as_of: DateTime<Utc>) -> Result<(Table, Vec<i64>)> {
    match task {
        Task::LeadScore => {
            let (table, ids) = features::lead_scoring_table(snap, as_of)?;
            Ok((table, ids))
        }
        Task::Churn => {
            let (table, ids, labels) = features::account_table(snap, as_of)?;
            let keep: Vec<usize> = (0..ids.len())
                .filter(|&i| labels[i] != Some(true))
                .collect();
            Ok((table.take(&keep), keep.iter().map(|&i| ids[i]).collect()))
        }
    }
}
