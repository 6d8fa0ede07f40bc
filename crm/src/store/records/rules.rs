//! Rules particular to one record type, applied before a write.
//!
//! A deal's status is the one rule with several doors: it changes only by
//! closing the deal or moving its stage (`store::deals`), never through a
//! generic create or update — whichever adapter (tool, REST, CLI, web) sent it.

use super::*;
use crate::error::RuleKind;

/// Who writes a deal, which decides what its status may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lifecycle {
    /// A generic create or update: status, close time and (on an open deal)
    /// close reason are refused, and so is a stage that closes or reopens it.
    Generic,
    /// Writing back recorded state (undo, imports): any status, as long as it
    /// agrees with the outcome of the deal's stage.
    Recorded,
    /// `store::deals`: closing and moving, which keep the rule themselves.
    Domain,
}

/// Fields of a deal that only closing it may set.
const CLOSING_FIELDS: [&str; 3] = ["status", "closed_at", "close_reason"];

/// A deal entering a stage, to be written to its history.
pub struct StageMove {
    pub from: Option<Id>,
    pub to: Id,
    pub at: DateTime<Utc>,
    pub seconds_in_previous: Option<i64>,
}

const fn int(name: &'static str, nullable: bool) -> FieldDef {
    FieldDef {
        name,
        ty: FieldType::Int,
        nullable,
        writable: false,
        required: false,
        min: None,
        max: None,
    }
}

pub const HISTORY_FIELDS: &[FieldDef] = &[
    int("id", false),
    int("deal_id", false),
    int("from_stage_id", true),
    int("to_stage_id", false),
    int("changed_by", true),
    FieldDef {
        ty: FieldType::Timestamp,
        ..int("changed_at", false)
    },
    int("seconds_in_previous", true),
];

pub async fn before_write(
    conn: Conn<'_>,
    ctx: &Ctx,
    rt: RecordType,
    values: &mut Values,
    before: Option<&RecordMap>,
    now: DateTime<Utc>,
    lifecycle: Lifecycle,
) -> Result<Option<StageMove>> {
    match rt {
        RecordType::Deal => deal(conn, ctx, values, before, now, lifecycle).await,
        RecordType::Task => {
            status_timestamp(values, before, "status", "done", "completed_at", now);
            Ok(None)
        }
        RecordType::Lead => {
            status_timestamp(values, before, "status", "converted", "converted_at", now);
            Ok(None)
        }
        RecordType::Activity if before.is_none() => {
            values
                .entry("occurred_at")
                .or_insert(Scalar::Timestamp(now));
            Ok(None)
        }
        RecordType::User if before.is_none() => {
            values
                .entry("timezone")
                .or_insert(Scalar::Text("UTC".into()));
            Ok(None)
        }
        RecordType::Pipeline => {
            if values.get("is_default") == Some(&Scalar::Bool(true)) {
                clear_default_pipeline(conn, ctx).await?;
            }
            Ok(None)
        }
        _ => Ok(None),
    }
}

/// Keeps a "reached at" timestamp in step with a status (a task's
/// completed_at, a lead's converted_at) unless the caller set it.
fn status_timestamp(
    values: &mut Values,
    before: Option<&RecordMap>,
    status: &str,
    terminal: &str,
    stamp: &'static str,
    now: DateTime<Utc>,
) {
    let Some(Scalar::Text(s)) = values.get(status) else {
        return;
    };
    let was_terminal = before.and_then(|b| b[status].as_str()) == Some(terminal);
    if values.contains_key(stamp) {
        return;
    }
    if s == terminal && !was_terminal {
        values.insert(stamp, Scalar::Timestamp(now));
    } else if s != terminal && was_terminal {
        values.insert(stamp, Scalar::Null);
    }
}

async fn clear_default_pipeline(mut conn: Conn<'_>, ctx: &Ctx) -> Result<()> {
    let mut q = Query::update();
    q.table(Alias::new("pipelines"))
        .value(Alias::new("is_default"), false)
        .and_where(col("workspace_id").eq(ctx.workspace_id));
    conn.execute(&q).await?;
    Ok(())
}

struct StageRow {
    id: Id,
    pipeline_id: Id,
    name: String,
    probability: f64,
    outcome: String,
}

const STAGE_FIELDS: [&str; 5] = ["id", "pipeline_id", "name", "probability", "outcome"];

async fn stage_where(mut conn: Conn<'_>, ctx: &Ctx, cond: Cond) -> Result<Option<StageRow>> {
    let def = RecordType::Stage.def();
    let fields: Vec<FieldDef> = STAGE_FIELDS
        .iter()
        .map(|n| *def.field(n).expect("stage field"))
        .collect();
    let mut q = Query::select();
    q.columns(STAGE_FIELDS.map(Alias::new))
        .from(Alias::new("stages"))
        .and_where(col("workspace_id").eq(ctx.workspace_id))
        .cond_where(cond)
        .order_by(Alias::new("position"), Order::Asc)
        .order_by(Alias::new("id"), Order::Asc)
        .limit(1);
    let row = conn.fetch_maps(&q, &fields).await?.pop();
    Ok(row.map(|r| StageRow {
        id: r["id"].as_i64().unwrap_or_default(),
        pipeline_id: r["pipeline_id"].as_i64().unwrap_or_default(),
        name: r["name"].as_str().unwrap_or_default().to_owned(),
        probability: r["probability"].as_f64().unwrap_or_default(),
        outcome: r["outcome"].as_str().unwrap_or("open").to_owned(),
    }))
}

async fn default_pipeline(mut conn: Conn<'_>, ctx: &Ctx) -> Result<Id> {
    let mut q = Query::select();
    q.column(Alias::new("id"))
        .from(Alias::new("pipelines"))
        .and_where(col("workspace_id").eq(ctx.workspace_id))
        .order_by(Alias::new("is_default"), Order::Desc)
        .order_by(Alias::new("id"), Order::Asc)
        .limit(1);
    conn.fetch_int(&q).await?.ok_or_else(|| {
        Error::invalid(
            "pipeline_id",
            "this workspace has no pipeline yet; create one first",
        )
    })
}

/// A deal's pipeline, stage, probability, status and close time move together.
async fn deal(
    mut conn: Conn<'_>,
    ctx: &Ctx,
    values: &mut Values,
    before: Option<&RecordMap>,
    now: DateTime<Utc>,
    lifecycle: Lifecycle,
) -> Result<Option<StageMove>> {
    if let Some(Scalar::Text(c)) = values.get("currency") {
        let c = c.to_ascii_uppercase();
        if c.len() != 3 || !c.chars().all(|ch| ch.is_ascii_alphabetic()) {
            return Err(Error::invalid(
                "currency",
                format!("expected a 3-letter ISO 4217 code such as USD, got {c:?}"),
            ));
        }
        values.insert("currency", Scalar::Text(c));
    }
    let given_stage = match values.get("stage_id") {
        Some(Scalar::Int(i)) => Some(*i),
        _ => None,
    };
    let given_pipeline = match values.get("pipeline_id") {
        Some(Scalar::Int(i)) => Some(*i),
        _ => None,
    };
    let before_stage = before.and_then(|b| b["stage_id"].as_i64());
    let before_pipeline = before.and_then(|b| b["pipeline_id"].as_i64());

    let stage = if let Some(stage_id) = given_stage {
        let row = stage_where(
            conn.reborrow(),
            ctx,
            Cond::all().add(col("id").eq(stage_id)),
        )
        .await?
        .ok_or(Error::MissingReference {
            field: "stage_id".into(),
            target: RecordType::Stage,
            id: stage_id,
        })?;
        let pipeline = given_pipeline
            .or(before_pipeline)
            .unwrap_or(row.pipeline_id);
        if row.pipeline_id != pipeline {
            return Err(Error::invalid(
                "stage_id",
                format!(
                    "stage {} ({}) belongs to pipeline {}, not to pipeline {pipeline}",
                    row.id, row.name, row.pipeline_id
                ),
            ));
        }
        Some(row)
    } else if (given_pipeline.is_some() && given_pipeline != before_pipeline) || before.is_none() {
        // A new deal, or a deal moved to another pipeline: its first stage.
        let pipeline = match given_pipeline {
            Some(p) => p,
            None => default_pipeline(conn.reborrow(), ctx).await?,
        };
        let first = stage_where(
            conn.reborrow(),
            ctx,
            Cond::all()
                .add(col("pipeline_id").eq(pipeline))
                .add(col("outcome").eq("open")),
        )
        .await?
        .ok_or_else(|| {
            Error::invalid(
                "pipeline_id",
                format!("pipeline {pipeline} has no open stage (or does not exist)"),
            )
        })?;
        Some(first)
    } else {
        None
    };

    let mut stage_move = None;
    let stage = stage.filter(|s| Some(s.id) != before_stage);
    if let Some(stage) = &stage {
        check_stage_change(stage, before, lifecycle)?;
    }
    if lifecycle == Lifecycle::Recorded {
        check_recorded_status(conn.reborrow(), ctx, values, before, stage.as_ref()).await?;
    }
    if let Some(stage) = stage {
        values.insert("pipeline_id", Scalar::Int(stage.pipeline_id));
        values.insert("stage_id", Scalar::Int(stage.id));
        values.insert("stage_entered_at", Scalar::Timestamp(now));
        values
            .entry("probability")
            .or_insert(Scalar::Float(stage.probability));
        if stage.outcome != "open" {
            values
                .entry("status")
                .or_insert(Scalar::Text(stage.outcome.clone()));
        } else if before.is_some_and(|b| b["status"] != "open") {
            values
                .entry("status")
                .or_insert(Scalar::Text("open".into()));
        }
        let seconds_in_previous = before
            .and_then(|b| b["stage_entered_at"].as_str())
            .and_then(crate::schema::parse_timestamp)
            .map(|t| (now - t).num_seconds());
        stage_move = Some(StageMove {
            from: before_stage,
            to: stage.id,
            at: now,
            seconds_in_previous,
        });
    }
    if before.is_none() {
        values
            .entry("status")
            .or_insert(Scalar::Text("open".into()));
        values
            .entry("currency")
            .or_insert(Scalar::Text("USD".into()));
        values.entry("value").or_insert(Scalar::Float(0.0));
    }
    // A status change (by stage or by hand) opens or closes the deal now,
    // unless the caller gave the close time.
    if let Some(Scalar::Text(status)) = values.get("status").cloned()
        && !values.contains_key("closed_at")
    {
        let closed_at = if status == "open" {
            Scalar::Null
        } else {
            Scalar::Timestamp(now)
        };
        values.insert("closed_at", closed_at);
    }
    Ok(stage_move)
}

/// A generic write may not touch what closing a deal sets. On a new deal the
/// empty values a form or a model sends along ("status": "open", nulls) mean
/// nothing and are dropped; the reason of a deal already closed may be edited.
///
/// Returns the refusal instead of failing at once: the caller reports it only
/// after the checks every write makes (references, unique values), so a call
/// that was wrong anyway keeps its old, more basic error.
pub fn closing_fields_refusal(
    rt: RecordType,
    values: &mut Values,
    before: Option<&RecordMap>,
    lifecycle: Lifecycle,
) -> Option<Error> {
    if rt != RecordType::Deal || lifecycle != Lifecycle::Generic {
        return None;
    }
    refuse_closing_fields(values, before).err()
}

fn refuse_closing_fields(values: &mut Values, before: Option<&RecordMap>) -> Result<()> {
    if before.is_none() {
        values.retain(|name, v| {
            !CLOSING_FIELDS.contains(name)
                || !(matches!(v, Scalar::Null)
                    || matches!(v, Scalar::Text(t) if t.is_empty() || (*name == "status" && t == "open")))
        });
    }
    let closed = before.is_some_and(|b| b["status"] != "open");
    for name in CLOSING_FIELDS {
        if !values.contains_key(name) || (name == "close_reason" && closed) {
            continue;
        }
        return Err(Error::rule(
            RuleKind::Invalid,
            format!("a deal's {name} changes only when the deal is closed or its stage moves"),
        )
        .at(name)
        .hint("use close_deal (outcome won or lost, with a reason) to close a deal, and move_deal_stage to move or reopen it"));
    }
    Ok(())
}

/// A generic write may move a deal between open stages only: closing takes a
/// reason (close_deal), and reopening is a stage move (move_deal_stage).
fn check_stage_change(
    stage: &StageRow,
    before: Option<&RecordMap>,
    lifecycle: Lifecycle,
) -> Result<()> {
    if lifecycle != Lifecycle::Generic {
        return Ok(());
    }
    if stage.outcome != "open" {
        return Err(
            Error::rule(RuleKind::Invalid, format!("{} closes the deal", stage.name))
                .at("stage_id")
                .hint("use close_deal with a reason to win or lose a deal"),
        );
    }
    if let Some(b) = before.filter(|b| b["status"] != "open") {
        return Err(Error::rule(
            RuleKind::Conflict,
            format!(
                "deal {} is {}; moving its stage would reopen it",
                b["id"],
                text_of(b, "status")
            ),
        )
        .at("stage_id")
        .hint("use move_deal_stage to reopen a closed deal"));
    }
    Ok(())
}

/// Recorded state (undo, imports) may set any status that agrees with the
/// stage the deal ends up in.
async fn check_recorded_status(
    conn: Conn<'_>,
    ctx: &Ctx,
    values: &Values,
    before: Option<&RecordMap>,
    new_stage: Option<&StageRow>,
) -> Result<()> {
    let Some(Scalar::Text(status)) = values.get("status") else {
        return Ok(());
    };
    let outcome = match (new_stage, before.and_then(|b| b["stage_id"].as_i64())) {
        (Some(s), _) => s.outcome.clone(),
        (None, Some(id)) => stage_where(conn, ctx, Cond::all().add(col("id").eq(id)))
            .await?
            .map_or_else(|| "open".to_owned(), |s| s.outcome),
        (None, None) => return Ok(()),
    };
    if *status != outcome {
        return Err(Error::rule(
            RuleKind::Invalid,
            format!(
                "status {status:?} disagrees with the deal's stage, whose outcome is {outcome:?}"
            ),
        )
        .at("status"));
    }
    Ok(())
}

/// Imported deals carry their status (demo data, CRM imports); each must agree
/// with the outcome of the stage it is imported into.
pub async fn check_bulk_statuses(mut conn: Conn<'_>, ctx: &Ctx, rows: &[Values]) -> Result<()> {
    let mut outcomes: BTreeMap<Id, String> = BTreeMap::new();
    for (i, row) in rows.iter().enumerate() {
        let (Some(Scalar::Int(stage)), Some(Scalar::Text(status))) =
            (row.get("stage_id"), row.get("status"))
        else {
            continue;
        };
        if !outcomes.contains_key(stage) {
            let found =
                stage_where(conn.reborrow(), ctx, Cond::all().add(col("id").eq(*stage))).await?;
            // A missing stage is the foreign key's to report.
            let Some(found) = found else { continue };
            outcomes.insert(*stage, found.outcome);
        }
        let outcome = &outcomes[stage];
        if status != outcome {
            return Err(Error::rule(
                RuleKind::Invalid,
                format!(
                    "status {status:?} disagrees with stage {stage}, whose outcome is {outcome:?}"
                ),
            )
            .at(format!("rows[{i}].status")));
        }
    }
    Ok(())
}

fn text_of<'a>(r: &'a RecordMap, k: &str) -> &'a str {
    r.get(k).and_then(Value::as_str).unwrap_or_default()
}

pub async fn record_stage_move(
    mut conn: Conn<'_>,
    ctx: &Ctx,
    deal_id: Id,
    m: &StageMove,
) -> Result<()> {
    let mut q = Query::insert();
    q.into_table(Alias::new("deal_stage_history"))
        .columns(
            [
                "workspace_id",
                "deal_id",
                "from_stage_id",
                "to_stage_id",
                "changed_by",
                "changed_at",
                "seconds_in_previous",
            ]
            .map(Alias::new),
        )
        .values_panic([
            ctx.workspace_id.into(),
            deal_id.into(),
            m.from.into(),
            m.to.into(),
            ctx.actor_id.into(),
            value(&Scalar::Timestamp(m.at)).into(),
            m.seconds_in_previous.into(),
        ]);
    conn.execute(&q).await?;
    Ok(())
}
