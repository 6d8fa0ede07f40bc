//! The two ways a deal's status may change: moving it to another stage of its
//! pipeline, and closing it won or lost with a reason. Generic writes refuse
//! status changes (`records::rules`), so every adapter — tools, REST, the web
//! app, imports — goes through these functions or is refused.

use serde_json::{Value, json};

use super::conn::Conn;
use super::records::{self, Lifecycle, RecordMap};
use crate::error::{Error, Result, RuleKind};
use crate::filter::{Direction, Filter, ListQuery};
use crate::model::{Ctx, Id};
use crate::schema::RecordType;

/// Where to move a deal: a stage of its pipeline, by id or by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageTarget {
    Id(Id),
    /// Matched case-insensitively within the deal's pipeline.
    Name(String),
}

/// How a deal was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Won,
    Lost,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Won => "won",
            Outcome::Lost => "lost",
        }
    }
}

/// A stage, as a deal move reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageLabel {
    pub id: Id,
    pub name: String,
}

/// A deal after a move or a close, with the stages it left and entered.
#[derive(Debug, Clone, PartialEq)]
pub struct DealMoved {
    pub deal: RecordMap,
    pub from: StageLabel,
    pub to: StageLabel,
}

fn text(r: &RecordMap, k: &str) -> String {
    r.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn id_of(r: &RecordMap, k: &str) -> Id {
    r.get(k).and_then(Value::as_i64).unwrap_or_default()
}

async fn stages_of(conn: Conn<'_>, ctx: &Ctx, pipeline_id: Id) -> Result<Vec<RecordMap>> {
    let q = ListQuery::filtered(Filter::eq("pipeline_id", pipeline_id))
        .sorted("position", Direction::Asc)
        .limit(500);
    Ok(records::list(conn, ctx, RecordType::Stage, &q).await?.items)
}

fn label(stages: &[RecordMap], id: Id) -> StageLabel {
    let name = stages
        .iter()
        .find(|s| id_of(s, "id") == id)
        .map(|s| text(s, "name"))
        .unwrap_or_default();
    StageLabel { id, name }
}

/// Moves a deal to another open stage of its pipeline; its probability follows
/// the stage and the move is written to the stage history. A closed deal moved
/// to an open stage is reopened. Closing stages are refused: closing takes a
/// reason ([`close`]).
pub async fn move_stage(
    mut conn: Conn<'_>,
    ctx: &Ctx,
    deal: &RecordMap,
    target: &StageTarget,
) -> Result<DealMoved> {
    let pipeline = id_of(deal, "pipeline_id");
    let stages = stages_of(conn.reborrow(), ctx, pipeline).await?;
    let names = || {
        stages
            .iter()
            .map(|s| text(s, "name"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (field, found) = match target {
        StageTarget::Id(id) => ("stage_id", stages.iter().find(|s| id_of(s, "id") == *id)),
        StageTarget::Name(name) => (
            "stage",
            stages
                .iter()
                .find(|s| text(s, "name").eq_ignore_ascii_case(name.trim())),
        ),
    };
    let Some(stage) = found else {
        let message = match target {
            StageTarget::Id(id) => {
                format!("stage {id} is not a stage of the deal's pipeline {pipeline}")
            }
            StageTarget::Name(name) => format!("the deal's pipeline has no stage {name:?}"),
        };
        return Err(Error::rule(RuleKind::NotFound, message)
            .at(field)
            .hint(format!("stages of this pipeline: {}", names())));
    };
    if text(stage, "outcome") != "open" {
        return Err(Error::rule(
            RuleKind::Invalid,
            format!("{} closes the deal", text(stage, "name")),
        )
        .at(field)
        .hint("use close_deal with a reason to win or lose a deal"));
    }
    let patch = json!({"stage_id": id_of(stage, "id")});
    enter(conn, ctx, deal, &stages, patch).await
}

/// Writes a deal's move into a stage of `stages` (the patch sets `stage_id`
/// and whatever else the move decided) and reports the stages it left and
/// entered.
async fn enter(
    conn: Conn<'_>,
    ctx: &Ctx,
    deal: &RecordMap,
    stages: &[RecordMap],
    patch: Value,
) -> Result<DealMoved> {
    let from = id_of(deal, "stage_id");
    let to = patch["stage_id"].as_i64().unwrap_or_default();
    let deal = records::update_as(
        conn,
        ctx,
        RecordType::Deal,
        id_of(deal, "id"),
        json_map(patch),
        Lifecycle::Domain,
    )
    .await?;
    Ok(DealMoved {
        deal,
        from: label(stages, from),
        to: label(stages, to),
    })
}

/// Closes an open deal won or lost: it moves to its pipeline's won or lost
/// stage, and status, probability, close time and reason follow.
pub async fn close(
    mut conn: Conn<'_>,
    ctx: &Ctx,
    deal: &RecordMap,
    outcome: Outcome,
    reason: &str,
) -> Result<DealMoved> {
    let deal_id = id_of(deal, "id");
    if reason.trim().is_empty() {
        return Err(Error::invalid("reason", "must not be blank"));
    }
    let status = text(deal, "status");
    if status != "open" {
        return Err(Error::rule(
            RuleKind::Conflict,
            format!("deal {deal_id} is already {status}"),
        )
        .at("deal_id"));
    }
    let pipeline = id_of(deal, "pipeline_id");
    let stages = stages_of(conn.reborrow(), ctx, pipeline).await?;
    let want = outcome.as_str();
    let stage = stages
        .iter()
        .find(|s| text(s, "outcome") == want)
        .ok_or_else(|| {
            Error::rule(
                RuleKind::Conflict,
                format!("pipeline {pipeline} has no {want} stage"),
            )
            .hint("an admin must add one to the pipeline")
        })?;
    let patch =
        json!({"stage_id": id_of(stage, "id"), "status": want, "close_reason": reason.trim()});
    enter(conn, ctx, deal, &stages, patch).await
}

fn json_map(v: Value) -> RecordMap {
    match v {
        Value::Object(m) => m,
        _ => RecordMap::new(),
    }
}
