//! What the batch pipelines keep in the database: the source ids of imported
//! records, the registry of trained model versions, the scores written back,
//! and whole-table reads for feature building.

use chrono::{DateTime, Utc};
use sea_query::{Alias, Expr, OnConflict, Order, Query};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::audit::f;
use super::conn::Conn;
use super::records::{RecordMap, now};
use super::sql::{col, table};
use super::{Pool, Store, Tx};
use crate::error::{Error, Result};
use crate::model::{Ctx, Id};
use crate::schema::{FieldDef, FieldType, RecordType};

/// A trained model version as the registry keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelVersion {
    pub id: Id,
    pub task: String,
    pub version: i64,
    pub algorithm: String,
    pub features: Value,
    pub window_start: Option<DateTime<Utc>>,
    pub window_end: Option<DateTime<Utc>>,
    pub data_fingerprint: String,
    pub metrics: Value,
    /// The model as JSON; left empty by listings that do not need it.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub artifact: String,
    /// champion, challenger or retired.
    pub status: String,
    /// Why it was promoted or kept as a challenger.
    pub decision: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A model version to register (id, version number and time are the store's).
#[derive(Debug, Clone)]
pub struct NewModelVersion {
    pub task: String,
    pub algorithm: String,
    pub features: Value,
    pub window_start: Option<DateTime<Utc>>,
    pub window_end: Option<DateTime<Utc>>,
    pub data_fingerprint: String,
    pub metrics: Value,
    pub artifact: String,
    pub status: String,
    pub decision: Option<String>,
}

/// A record's score for a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Score {
    pub record_type: String,
    pub record_id: Id,
    pub task: String,
    pub score: f64,
    /// The features that moved the score most: `[{"feature", "contribution"}]`.
    pub reasons: Value,
    pub model_version: i64,
    pub scored_at: DateTime<Utc>,
}

const VERSION_FIELDS: &[FieldDef] = &[
    f("id", FieldType::Id),
    f("task", FieldType::Text),
    f("version", FieldType::Int),
    f("algorithm", FieldType::Text),
    f("features", FieldType::Json),
    f("window_start", FieldType::Timestamp),
    f("window_end", FieldType::Timestamp),
    f("data_fingerprint", FieldType::Text),
    f("metrics", FieldType::Json),
    f("artifact", FieldType::Text),
    f("status", FieldType::Text),
    f("decision", FieldType::Text),
    f("created_at", FieldType::Timestamp),
];

const SCORE_FIELDS: &[FieldDef] = &[
    f("record_type", FieldType::Text),
    f("record_id", FieldType::Int),
    f("task", FieldType::Text),
    f("score", FieldType::Float),
    f("reasons", FieldType::Json),
    f("model_version", FieldType::Int),
    f("scored_at", FieldType::Timestamp),
];

const SOURCE_FIELDS: &[FieldDef] = &[
    f("external_id", FieldType::Text),
    f("record_id", FieldType::Int),
];

fn decode<T: serde::de::DeserializeOwned>(row: RecordMap) -> Result<T> {
    serde_json::from_value(Value::Object(row))
        .map_err(|e| Error::Internal(format!("a stored pipeline row does not decode: {e}")))
}

fn version_select(ctx: &Ctx, with_artifact: bool) -> sea_query::SelectStatement {
    let mut q = Query::select();
    for fd in VERSION_FIELDS {
        if fd.name == "artifact" && !with_artifact {
            q.expr_as(Expr::val(""), Alias::new("artifact"));
        } else {
            q.column(Alias::new(fd.name));
        }
    }
    q.from(Alias::new("model_versions"))
        .and_where(col("workspace_id").eq(ctx.workspace_id));
    q
}

fn decode_version(mut row: RecordMap) -> Result<ModelVersion> {
    // The artifact is JSON text, not a structure to parse here.
    let artifact = row.remove("artifact");
    let mut v: ModelVersion = decode(row)?;
    v.artifact = artifact
        .and_then(|a| a.as_str().map(str::to_owned))
        .unwrap_or_default();
    Ok(v)
}

async fn versions(mut c: Conn<'_>, ctx: &Ctx, task: Option<&str>) -> Result<Vec<ModelVersion>> {
    let mut q = version_select(ctx, false);
    if let Some(t) = task {
        q.and_where(col("task").eq(t));
    }
    q.order_by(Alias::new("task"), Order::Asc)
        .order_by(Alias::new("version"), Order::Asc);
    c.fetch_maps(&q, VERSION_FIELDS)
        .await?
        .into_iter()
        .map(decode_version)
        .collect()
}

async fn champion(mut c: Conn<'_>, ctx: &Ctx, task: &str) -> Result<Option<ModelVersion>> {
    let mut q = version_select(ctx, true);
    q.and_where(col("task").eq(task))
        .and_where(col("status").eq("champion"));
    c.fetch_maps(&q, VERSION_FIELDS)
        .await?
        .pop()
        .map(decode_version)
        .transpose()
}

impl Store {
    /// The registry's versions (all tasks, or one), oldest first, without artifacts.
    pub async fn model_versions(&self, ctx: &Ctx, task: Option<&str>) -> Result<Vec<ModelVersion>> {
        with_pooled!(self, |c| versions(c, ctx, task).await)
    }

    /// The current champion of a task, artifact included.
    pub async fn champion(&self, ctx: &Ctx, task: &str) -> Result<Option<ModelVersion>> {
        with_pooled!(self, |c| champion(c, ctx, task).await)
    }

    /// A record's latest score for a task.
    pub async fn score_of(
        &self,
        ctx: &Ctx,
        task: &str,
        rt: RecordType,
        id: Id,
    ) -> Result<Option<Score>> {
        let mut q = Query::select();
        q.columns(SCORE_FIELDS.iter().map(|fd| Alias::new(fd.name)))
            .from(Alias::new("scores"))
            .and_where(col("workspace_id").eq(ctx.workspace_id))
            .and_where(col("task").eq(task))
            .and_where(col("record_type").eq(rt.name()))
            .and_where(col("record_id").eq(id));
        with_pooled!(self, |c| {
            let mut c = c;
            c.fetch_maps(&q, SCORE_FIELDS)
                .await?
                .pop()
                .map(decode::<Score>)
                .transpose()
        })
    }

    /// Every row of a record type in the workspace, as JSON objects (feature
    /// building reads whole tables; listings page instead).
    pub async fn all_rows(&self, ctx: &Ctx, rt: RecordType) -> Result<Vec<RecordMap>> {
        let def = rt.def();
        let mut q = Query::select();
        q.columns(def.columns().map(Alias::new))
            .from(table(def))
            .and_where(col("workspace_id").eq(ctx.workspace_id))
            .order_by(Alias::new("id"), Order::Asc);
        with_pooled!(self, |c| {
            let mut c = c;
            c.fetch_maps(&q, def.fields).await
        })
    }

    /// External id → record id of everything imported from `source` as `rt`.
    pub async fn source_ids(
        &self,
        ctx: &Ctx,
        source: &str,
        rt: RecordType,
    ) -> Result<std::collections::HashMap<String, Id>> {
        let mut q = Query::select();
        q.columns([Alias::new("external_id"), Alias::new("record_id")])
            .from(Alias::new("source_ids"))
            .and_where(col("workspace_id").eq(ctx.workspace_id))
            .and_where(col("source").eq(source))
            .and_where(col("record_type").eq(rt.name()));
        let rows = with_pooled!(self, |c| {
            let mut c = c;
            c.fetch_maps(&q, SOURCE_FIELDS).await?
        });
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                Some((
                    r["external_id"].as_str()?.to_owned(),
                    r["record_id"].as_i64()?,
                ))
            })
            .collect())
    }
}

impl Tx {
    /// Remembers where imported records came from.
    pub async fn add_source_ids(
        &mut self,
        ctx: &Ctx,
        source: &str,
        rt: RecordType,
        pairs: &[(String, Id)],
    ) -> Result<()> {
        for chunk in pairs.chunks(500) {
            let mut q = Query::insert();
            q.into_table(Alias::new("source_ids")).columns([
                Alias::new("workspace_id"),
                Alias::new("source"),
                Alias::new("record_type"),
                Alias::new("external_id"),
                Alias::new("record_id"),
            ]);
            for (ext, id) in chunk {
                q.values_panic([
                    ctx.workspace_id.into(),
                    source.into(),
                    rt.name().into(),
                    ext.as_str().into(),
                    (*id).into(),
                ]);
            }
            q.on_conflict(
                OnConflict::columns([
                    Alias::new("workspace_id"),
                    Alias::new("source"),
                    Alias::new("record_type"),
                    Alias::new("external_id"),
                ])
                .update_column(Alias::new("record_id"))
                .to_owned(),
            );
            self.conn().execute(&q).await?;
        }
        Ok(())
    }

    /// Registers a version with the next number for its task. A champion
    /// replaces the previous one, which becomes retired.
    pub async fn add_model_version(
        &mut self,
        ctx: &Ctx,
        v: NewModelVersion,
    ) -> Result<ModelVersion> {
        if !["champion", "challenger"].contains(&v.status.as_str()) {
            return Err(Error::invalid("status", "expected champion or challenger"));
        }
        let mut q = Query::select();
        // COALESCE: MAX over no rows is NULL, which PostgreSQL will not decode as an integer.
        q.expr(sea_query::Func::coalesce([
            Expr::col(Alias::new("version")).max(),
            Expr::val(0i64).into(),
        ]))
        .from(Alias::new("model_versions"))
        .and_where(col("workspace_id").eq(ctx.workspace_id))
        .and_where(col("task").eq(v.task.as_str()));
        let next = self.conn().fetch_int(&q).await?.unwrap_or(0) + 1;
        if v.status == "champion" {
            let mut u = Query::update();
            u.table(Alias::new("model_versions"))
                .value(Alias::new("status"), "retired")
                .and_where(col("workspace_id").eq(ctx.workspace_id))
                .and_where(col("task").eq(v.task.as_str()))
                .and_where(col("status").eq("champion"));
            self.conn().execute(&u).await?;
        }
        let created = now();
        let mut ins = Query::insert();
        ins.into_table(Alias::new("model_versions"))
            .columns(
                [
                    "workspace_id",
                    "task",
                    "version",
                    "algorithm",
                    "features",
                    "window_start",
                    "window_end",
                    "data_fingerprint",
                    "metrics",
                    "artifact",
                    "status",
                    "decision",
                    "created_at",
                ]
                .map(Alias::new),
            )
            .values_panic([
                ctx.workspace_id.into(),
                v.task.as_str().into(),
                next.into(),
                v.algorithm.as_str().into(),
                sea_query::Value::Json(Some(Box::new(v.features.clone()))).into(),
                sea_query::Value::ChronoDateTimeUtc(v.window_start.map(Box::new)).into(),
                sea_query::Value::ChronoDateTimeUtc(v.window_end.map(Box::new)).into(),
                v.data_fingerprint.as_str().into(),
                sea_query::Value::Json(Some(Box::new(v.metrics.clone()))).into(),
                v.artifact.as_str().into(),
                v.status.as_str().into(),
                sea_query::Value::String(v.decision.clone().map(Box::new)).into(),
                sea_query::Value::ChronoDateTimeUtc(Some(Box::new(created))).into(),
            ]);
        self.conn().execute(&ins).await?;
        let mut q = version_select(ctx, false);
        q.and_where(col("task").eq(v.task.as_str()))
            .and_where(col("version").eq(next));
        self.conn()
            .fetch_maps(&q, VERSION_FIELDS)
            .await?
            .pop()
            .map(decode_version)
            .transpose()?
            .ok_or_else(|| Error::Internal("the new model version vanished".into()))
    }

    /// Writes scores, replacing earlier ones of the same record and task.
    pub async fn put_scores(&mut self, ctx: &Ctx, scores: &[Score]) -> Result<()> {
        for chunk in scores.chunks(500) {
            let mut q = Query::insert();
            q.into_table(Alias::new("scores")).columns(
                [
                    "workspace_id",
                    "record_type",
                    "record_id",
                    "task",
                    "score",
                    "reasons",
                    "model_version",
                    "scored_at",
                ]
                .map(Alias::new),
            );
            for s in chunk {
                q.values_panic([
                    ctx.workspace_id.into(),
                    s.record_type.as_str().into(),
                    s.record_id.into(),
                    s.task.as_str().into(),
                    s.score.into(),
                    sea_query::Value::Json(Some(Box::new(s.reasons.clone()))).into(),
                    s.model_version.into(),
                    sea_query::Value::ChronoDateTimeUtc(Some(Box::new(s.scored_at))).into(),
                ]);
            }
            q.on_conflict(
                OnConflict::columns(
                    ["workspace_id", "task", "record_type", "record_id"].map(Alias::new),
                )
                .update_columns(["score", "reasons", "model_version", "scored_at"].map(Alias::new))
                .to_owned(),
            );
            self.conn().execute(&q).await?;
        }
        Ok(())
    }
}
