//! What next-best actions and online experiments keep in the database: a rep's
//! feedback on suggested actions (and the outcome linked to it later), the
//! experiments with their variants, who saw what under which variant
//! (exposures) and what came of it (events). Also the bulk reads the
//! suggestion engine needs (every score of a task, every stage change).

use chrono::{DateTime, Utc};
use sea_query::{Alias, Expr, OnConflict, Order, Query};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::audit::f;
use super::conn::Conn;
use super::records::{RecordMap, now};
use super::sql::col;
use super::{Pool, Store, Tx};
use crate::error::{Error, Result};
use crate::model::{Ctx, Id, StageChange};
use crate::schema::{FieldDef, FieldType};

/// What a rep did with a suggested action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedbackStatus {
    Done,
    Dismissed,
    Snoozed,
}

impl FeedbackStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FeedbackStatus::Done => "done",
            FeedbackStatus::Dismissed => "dismissed",
            FeedbackStatus::Snoozed => "snoozed",
        }
    }
}

/// One piece of feedback on an action, with the outcome linked later.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feedback {
    pub id: Id,
    pub user_id: Id,
    /// `rule:record_type:record_id`, stable across runs.
    pub action_key: String,
    pub rule: String,
    pub record_type: String,
    pub record_id: Id,
    pub status: FeedbackStatus,
    pub reason: Option<String>,
    pub snoozed_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// What happened to the record afterwards (advanced, converted, renewed…).
    pub outcome: Option<String>,
    pub outcome_at: Option<DateTime<Utc>>,
}

/// Feedback to record (id and time are the store's).
#[derive(Debug, Clone, PartialEq)]
pub struct NewFeedback {
    pub user_id: Id,
    pub action_key: String,
    pub rule: String,
    pub record_type: String,
    pub record_id: Id,
    pub status: FeedbackStatus,
    pub reason: Option<String>,
    pub snoozed_until: Option<DateTime<Utc>>,
}

/// An experiment as stored: variants are `[{"name", "weight"}]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredExperiment {
    pub name: String,
    /// What is randomised: rep, account, lead.
    pub unit_type: String,
    pub variants: Value,
    pub created_at: DateTime<Utc>,
}

/// A unit saw an item under a variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exposure {
    pub experiment: String,
    pub unit: String,
    pub item: String,
    pub variant: String,
    pub at: DateTime<Utc>,
}

/// An outcome of an exposed item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentEvent {
    pub experiment: String,
    pub unit: String,
    pub item: String,
    pub event: String,
    pub at: DateTime<Utc>,
}

const FEEDBACK_FIELDS: &[FieldDef] = &[
    f("id", FieldType::Id),
    f("user_id", FieldType::Int),
    f("action_key", FieldType::Text),
    f("rule", FieldType::Text),
    f("record_type", FieldType::Text),
    f("record_id", FieldType::Int),
    f("status", FieldType::Text),
    f("reason", FieldType::Text),
    f("snoozed_until", FieldType::Timestamp),
    f("created_at", FieldType::Timestamp),
    f("outcome", FieldType::Text),
    f("outcome_at", FieldType::Timestamp),
];

const EXPERIMENT_FIELDS: &[FieldDef] = &[
    f("name", FieldType::Text),
    f("unit_type", FieldType::Text),
    f("variants", FieldType::Json),
    f("created_at", FieldType::Timestamp),
];

const EXPOSURE_FIELDS: &[FieldDef] = &[
    f("experiment", FieldType::Text),
    f("unit", FieldType::Text),
    f("item", FieldType::Text),
    f("variant", FieldType::Text),
    f("at", FieldType::Timestamp),
];

const EVENT_FIELDS: &[FieldDef] = &[
    f("experiment", FieldType::Text),
    f("unit", FieldType::Text),
    f("item", FieldType::Text),
    f("event", FieldType::Text),
    f("at", FieldType::Timestamp),
];

const HISTORY_FIELDS: &[FieldDef] = &[
    f("id", FieldType::Id),
    f("deal_id", FieldType::Int),
    f("from_stage_id", FieldType::Int),
    f("to_stage_id", FieldType::Int),
    f("changed_by", FieldType::Int),
    f("changed_at", FieldType::Timestamp),
    f("seconds_in_previous", FieldType::Int),
];

fn decode<T: serde::de::DeserializeOwned>(row: RecordMap) -> Result<T> {
    serde_json::from_value(Value::Object(row)).map_err(|e| {
        Error::Internal(format!(
            "a stored next-best-action row does not decode: {e}"
        ))
    })
}

fn select(table: &str, fields: &[FieldDef], ctx: &Ctx) -> sea_query::SelectStatement {
    let mut q = Query::select();
    q.columns(fields.iter().map(|fd| Alias::new(fd.name)))
        .from(Alias::new(table))
        .and_where(col("workspace_id").eq(ctx.workspace_id));
    q
}

fn ts(t: Option<DateTime<Utc>>) -> sea_query::SimpleExpr {
    sea_query::Value::ChronoDateTimeUtc(t.map(Box::new)).into()
}

fn text(s: Option<&str>) -> sea_query::SimpleExpr {
    sea_query::Value::String(s.map(|s| Box::new(s.to_owned()))).into()
}

async fn fetch<T: serde::de::DeserializeOwned>(
    mut c: Conn<'_>,
    q: &sea_query::SelectStatement,
    fields: &[FieldDef],
) -> Result<Vec<T>> {
    c.fetch_maps(q, fields)
        .await?
        .into_iter()
        .map(decode)
        .collect()
}

impl Store {
    /// Every feedback row of a user (or of everyone), oldest first.
    pub async fn nba_feedback(&self, ctx: &Ctx, user_id: Option<Id>) -> Result<Vec<Feedback>> {
        let mut q = select("nba_feedback", FEEDBACK_FIELDS, ctx);
        if let Some(u) = user_id {
            q.and_where(col("user_id").eq(u));
        }
        q.order_by(Alias::new("id"), Order::Asc);
        with_pooled!(self, |c| fetch(c, &q, FEEDBACK_FIELDS).await)
    }

    /// `done` feedback whose outcome is not linked yet, oldest first.
    pub async fn nba_feedback_awaiting_outcome(&self, ctx: &Ctx) -> Result<Vec<Feedback>> {
        let mut q = select("nba_feedback", FEEDBACK_FIELDS, ctx);
        q.and_where(col("status").eq("done"))
            .and_where(Expr::col(Alias::new("outcome")).is_null())
            .order_by(Alias::new("id"), Order::Asc);
        with_pooled!(self, |c| fetch(c, &q, FEEDBACK_FIELDS).await)
    }

    /// Every score of a task: (record type, record id) → score.
    pub async fn scores_of_task(&self, ctx: &Ctx, task: &str) -> Result<Vec<(String, Id, f64)>> {
        const FIELDS: &[FieldDef] = &[
            f("record_type", FieldType::Text),
            f("record_id", FieldType::Int),
            f("score", FieldType::Float),
        ];
        let mut q = select("scores", FIELDS, ctx);
        q.and_where(col("task").eq(task));
        let rows = with_pooled!(self, |c| {
            let mut c = c;
            c.fetch_maps(&q, FIELDS).await?
        });
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                Some((
                    r["record_type"].as_str()?.to_owned(),
                    r["record_id"].as_i64()?,
                    r["score"].as_f64()?,
                ))
            })
            .collect())
    }

    /// Every stage change of every deal of the workspace, oldest first (the
    /// typical time deals spend in each stage is computed from it).
    pub async fn all_stage_changes(&self, ctx: &Ctx) -> Result<Vec<StageChange>> {
        let mut q = select("deal_stage_history", HISTORY_FIELDS, ctx);
        q.order_by(Alias::new("id"), Order::Asc);
        with_pooled!(self, |c| fetch(c, &q, HISTORY_FIELDS).await)
    }

    pub async fn experiment(&self, ctx: &Ctx, name: &str) -> Result<Option<StoredExperiment>> {
        let mut q = select("experiments", EXPERIMENT_FIELDS, ctx);
        q.and_where(col("name").eq(name));
        with_pooled!(self, |c| Ok(fetch(c, &q, EXPERIMENT_FIELDS).await?.pop()))
    }

    pub async fn experiments(&self, ctx: &Ctx) -> Result<Vec<StoredExperiment>> {
        let mut q = select("experiments", EXPERIMENT_FIELDS, ctx);
        q.order_by(Alias::new("name"), Order::Asc);
        with_pooled!(self, |c| fetch(c, &q, EXPERIMENT_FIELDS).await)
    }

    /// An experiment's exposures, in time order.
    pub async fn exposures(&self, ctx: &Ctx, experiment: &str) -> Result<Vec<Exposure>> {
        let mut q = select("experiment_exposures", EXPOSURE_FIELDS, ctx);
        q.and_where(col("experiment").eq(experiment))
            .order_by(Alias::new("at"), Order::Asc);
        with_pooled!(self, |c| fetch(c, &q, EXPOSURE_FIELDS).await)
    }

    /// An experiment's outcome events, in time order.
    pub async fn experiment_events(
        &self,
        ctx: &Ctx,
        experiment: &str,
    ) -> Result<Vec<ExperimentEvent>> {
        let mut q = select("experiment_events", EVENT_FIELDS, ctx);
        q.and_where(col("experiment").eq(experiment))
            .order_by(Alias::new("at"), Order::Asc);
        with_pooled!(self, |c| fetch(c, &q, EVENT_FIELDS).await)
    }
}

impl Tx {
    /// Records a rep's feedback on an action; returns the stored row.
    pub async fn add_nba_feedback(&mut self, ctx: &Ctx, fb: &NewFeedback) -> Result<Feedback> {
        if fb.status == FeedbackStatus::Snoozed && fb.snoozed_until.is_none() {
            return Err(Error::invalid("until", "a snooze needs the time it ends"));
        }
        if fb.action_key.trim().is_empty() {
            return Err(Error::invalid("action_key", "must not be empty"));
        }
        let created = now();
        let mut ins = Query::insert();
        ins.into_table(Alias::new("nba_feedback"))
            .columns(
                [
                    "workspace_id",
                    "user_id",
                    "action_key",
                    "rule",
                    "record_type",
                    "record_id",
                    "status",
                    "reason",
                    "snoozed_until",
                    "created_at",
                ]
                .map(Alias::new),
            )
            .values_panic([
                ctx.workspace_id.into(),
                fb.user_id.into(),
                fb.action_key.as_str().into(),
                fb.rule.as_str().into(),
                fb.record_type.as_str().into(),
                fb.record_id.into(),
                fb.status.as_str().into(),
                text(fb.reason.as_deref()),
                ts(fb.snoozed_until),
                ts(Some(created)),
            ]);
        self.conn().execute(&ins).await?;
        let mut q = select("nba_feedback", FEEDBACK_FIELDS, ctx);
        q.and_where(col("user_id").eq(fb.user_id))
            .and_where(col("action_key").eq(fb.action_key.as_str()))
            .order_by(Alias::new("id"), Order::Desc)
            .limit(1);
        fetch::<Feedback>(self.conn(), &q, FEEDBACK_FIELDS)
            .await?
            .pop()
            .ok_or_else(|| Error::Internal("the new feedback row vanished".into()))
    }

    /// Links an outcome to a feedback row (once: a linked row is left alone).
    pub async fn set_nba_outcome(
        &mut self,
        ctx: &Ctx,
        feedback_id: Id,
        outcome: &str,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        let mut u = Query::update();
        u.table(Alias::new("nba_feedback"))
            .value(Alias::new("outcome"), outcome)
            .value(Alias::new("outcome_at"), ts(Some(at)))
            .and_where(col("workspace_id").eq(ctx.workspace_id))
            .and_where(col("id").eq(feedback_id))
            .and_where(Expr::col(Alias::new("outcome")).is_null());
        Ok(self.conn().execute(&u).await? == 1)
    }

    /// Creates an experiment if it does not exist; returns it as stored (an
    /// existing experiment keeps its variants: changing a running split would
    /// move units between variants).
    pub async fn ensure_experiment(
        &mut self,
        ctx: &Ctx,
        name: &str,
        unit_type: &str,
        variants: &Value,
    ) -> Result<StoredExperiment> {
        let mut ins = Query::insert();
        ins.into_table(Alias::new("experiments"))
            .columns(
                [
                    "workspace_id",
                    "name",
                    "unit_type",
                    "variants",
                    "created_at",
                ]
                .map(Alias::new),
            )
            .values_panic([
                ctx.workspace_id.into(),
                name.into(),
                unit_type.into(),
                sea_query::Value::Json(Some(Box::new(variants.clone()))).into(),
                ts(Some(now())),
            ])
            .on_conflict(
                OnConflict::columns(["workspace_id", "name"].map(Alias::new))
                    .do_nothing()
                    .to_owned(),
            );
        self.conn().execute(&ins).await?;
        let mut q = select("experiments", EXPERIMENT_FIELDS, ctx);
        q.and_where(col("name").eq(name));
        fetch::<StoredExperiment>(self.conn(), &q, EXPERIMENT_FIELDS)
            .await?
            .pop()
            .ok_or_else(|| Error::Internal("the experiment vanished".into()))
    }

    /// Records exposures; a (unit, item) pair already exposed keeps its first
    /// exposure. Returns how many were new.
    pub async fn add_exposures(&mut self, ctx: &Ctx, exposures: &[Exposure]) -> Result<u64> {
        let mut n = 0;
        for chunk in exposures.chunks(200) {
            let mut q = Query::insert();
            q.into_table(Alias::new("experiment_exposures")).columns(
                [
                    "workspace_id",
                    "experiment",
                    "unit",
                    "item",
                    "variant",
                    "at",
                ]
                .map(Alias::new),
            );
            for e in chunk {
                q.values_panic([
                    ctx.workspace_id.into(),
                    e.experiment.as_str().into(),
                    e.unit.as_str().into(),
                    e.item.as_str().into(),
                    e.variant.as_str().into(),
                    ts(Some(e.at)),
                ]);
            }
            q.on_conflict(
                OnConflict::columns(["workspace_id", "experiment", "unit", "item"].map(Alias::new))
                    .do_nothing()
                    .to_owned(),
            );
            n += self.conn().execute(&q).await?;
        }
        Ok(n)
    }

    /// Records an outcome event of an exposed item (once per event name).
    /// Returns whether it was new. An item never exposed is refused.
    pub async fn add_experiment_event(&mut self, ctx: &Ctx, e: &ExperimentEvent) -> Result<bool> {
        let mut q = Query::insert();
        q.into_table(Alias::new("experiment_events"))
            .columns(["workspace_id", "experiment", "unit", "item", "event", "at"].map(Alias::new))
            .values_panic([
                ctx.workspace_id.into(),
                e.experiment.as_str().into(),
                e.unit.as_str().into(),
                e.item.as_str().into(),
                e.event.as_str().into(),
                ts(Some(e.at)),
            ])
            .on_conflict(
                OnConflict::columns(
                    ["workspace_id", "experiment", "unit", "item", "event"].map(Alias::new),
                )
                .do_nothing()
                .to_owned(),
            );
        Ok(self.conn().execute(&q).await? == 1)
    }
}
