//! Agent conversations at rest: sessions, their append-only log of entries and
//! the proposals that wait for a person's approval. The crate stores the
//! entries as opaque JSON; what a message or a proposal means belongs to
//! `rapport-agent`.

use sea_query::{Alias, Order, Query};
use serde_json::{Map, Value};

use super::audit::{self, f};
use super::conn::Conn;
use super::records::{from_map, now};
use super::sql::{col, value, value_as};
use crate::error::{Error, Result};
use crate::model::{AgentSession, AuditEntry, Ctx, Id, Proposal, ProposalStatus, SessionEntry};
use crate::schema::{FieldDef, FieldType, Scalar};

const SESSION: &[FieldDef] = &[
    f("id", FieldType::Id),
    f("workspace_id", FieldType::Id),
    f("user_id", FieldType::Int),
    f("title", FieldType::Text),
    f("created_at", FieldType::Timestamp),
    f("updated_at", FieldType::Timestamp),
];

const ENTRY: &[FieldDef] = &[
    f("id", FieldType::Id),
    f("session_id", FieldType::Int),
    f("kind", FieldType::Text),
    f("body", FieldType::Json),
    f("at", FieldType::Timestamp),
];

const PROPOSAL: &[FieldDef] = &[
    f("id", FieldType::Id),
    f("session_id", FieldType::Int),
    f("call_id", FieldType::Text),
    f("tool", FieldType::Text),
    f("args", FieldType::Json),
    f("snapshot", FieldType::Json),
    f("reason", FieldType::Text),
    f("status", FieldType::Text),
    f("result", FieldType::Json),
    f("created_at", FieldType::Timestamp),
    f("decided_at", FieldType::Timestamp),
];

fn json(v: &Value) -> sea_query::Value {
    value_as(FieldType::Json, &Scalar::Json(v.clone()))
}

fn ts_now() -> sea_query::Value {
    value(&Scalar::Timestamp(now()))
}

fn missing(what: &str, id: Id) -> Error {
    Error::invalid(
        format!("{what}_id"),
        format!("no {what} with id {id} in this workspace"),
    )
}

fn select(table: &str, fields: &[FieldDef], ctx: &Ctx) -> sea_query::SelectStatement {
    let mut q = Query::select();
    q.columns(fields.iter().map(|f| Alias::new(f.name)))
        .from(Alias::new(table))
        .and_where(col("workspace_id").eq(ctx.workspace_id));
    q
}

/// The id an `INSERT … RETURNING id` produced.
async fn inserted_id(mut conn: Conn<'_>, q: &sea_query::InsertStatement) -> Result<Id> {
    conn.fetch_int(q)
        .await?
        .ok_or_else(|| Error::Internal("insert returned no id".into()))
}

/// One row of `table` in the workspace, or an error naming `what`.
async fn by_id<T: serde::de::DeserializeOwned>(
    mut conn: Conn<'_>,
    ctx: &Ctx,
    table: &str,
    fields: &[FieldDef],
    what: &str,
    id: Id,
) -> Result<T> {
    let mut q = select(table, fields, ctx);
    q.and_where(col("id").eq(id));
    decode(conn.fetch_maps(&q, fields).await?)?
        .into_iter()
        .next()
        .ok_or_else(|| missing(what, id))
}

fn decode<T: serde::de::DeserializeOwned>(rows: Vec<Map<String, Value>>) -> Result<Vec<T>> {
    rows.into_iter().map(from_map).collect()
}

pub async fn create(
    mut conn: Conn<'_>,
    ctx: &Ctx,
    user_id: Id,
    title: &str,
) -> Result<AgentSession> {
    let mut q = Query::insert();
    q.into_table(Alias::new("agent_sessions"))
        .columns(SESSION[1..].iter().map(|f| Alias::new(f.name)))
        .values_panic([
            ctx.workspace_id.into(),
            user_id.into(),
            title.into(),
            ts_now().into(),
            ts_now().into(),
        ])
        .returning_col(Alias::new("id"));
    let id = inserted_id(conn.reborrow(), &q).await?;
    get(conn, ctx, id).await
}

pub async fn get(conn: Conn<'_>, ctx: &Ctx, id: Id) -> Result<AgentSession> {
    by_id(conn, ctx, "agent_sessions", SESSION, "session", id).await
}

pub async fn of_user(
    mut conn: Conn<'_>,
    ctx: &Ctx,
    user_id: Id,
    limit: u32,
) -> Result<Vec<AgentSession>> {
    let mut q = select("agent_sessions", SESSION, ctx);
    q.and_where(col("user_id").eq(user_id))
        .order_by(Alias::new("id"), Order::Desc)
        .limit(u64::from(limit.clamp(1, 1000)));
    decode(conn.fetch_maps(&q, SESSION).await?)
}

pub async fn append(
    mut conn: Conn<'_>,
    ctx: &Ctx,
    session_id: Id,
    kind: &str,
    body: &Value,
) -> Result<Id> {
    let mut touch = Query::update();
    touch
        .table(Alias::new("agent_sessions"))
        .value(Alias::new("updated_at"), ts_now())
        .and_where(col("workspace_id").eq(ctx.workspace_id))
        .and_where(col("id").eq(session_id));
    if conn.execute(&touch).await? == 0 {
        return Err(missing("session", session_id));
    }
    let mut q = Query::insert();
    q.into_table(Alias::new("agent_entries"))
        .columns(["workspace_id", "session_id", "kind", "body", "at"].map(Alias::new))
        .values_panic([
            ctx.workspace_id.into(),
            session_id.into(),
            kind.into(),
            json(body).into(),
            ts_now().into(),
        ])
        .returning_col(Alias::new("id"));
    Ok(conn.fetch_int(&q).await?.unwrap_or_default())
}

pub async fn entries(mut conn: Conn<'_>, ctx: &Ctx, session_id: Id) -> Result<Vec<SessionEntry>> {
    let mut q = select("agent_entries", ENTRY, ctx);
    q.and_where(col("session_id").eq(session_id))
        .order_by(Alias::new("id"), Order::Asc);
    decode(conn.fetch_maps(&q, ENTRY).await?)
}

/// A proposal to insert: a tool call that waits for approval.
#[derive(Debug, Clone)]
pub struct NewProposal<'a> {
    pub session_id: Id,
    pub call_id: &'a str,
    pub tool: &'a str,
    pub args: &'a Value,
    /// The records the call would change, as they were when it was proposed.
    pub snapshot: &'a Value,
    /// Why it waits (policy, destructive tool, untrusted text in the turn).
    pub reason: &'a str,
}

pub async fn propose(mut conn: Conn<'_>, ctx: &Ctx, p: NewProposal<'_>) -> Result<Proposal> {
    let mut q = Query::insert();
    q.into_table(Alias::new("agent_proposals"))
        .columns(
            [
                "workspace_id",
                "session_id",
                "call_id",
                "tool",
                "args",
                "snapshot",
                "reason",
                "status",
                "created_at",
            ]
            .map(Alias::new),
        )
        .values_panic([
            ctx.workspace_id.into(),
            p.session_id.into(),
            p.call_id.into(),
            p.tool.into(),
            json(p.args).into(),
            json(p.snapshot).into(),
            p.reason.into(),
            ProposalStatus::Pending.as_str().into(),
            ts_now().into(),
        ])
        .returning_col(Alias::new("id"));
    let id = inserted_id(conn.reborrow(), &q).await?;
    proposal(conn, ctx, id).await
}

pub async fn proposal(conn: Conn<'_>, ctx: &Ctx, id: Id) -> Result<Proposal> {
    by_id(conn, ctx, "agent_proposals", PROPOSAL, "proposal", id).await
}

pub async fn proposals(
    mut conn: Conn<'_>,
    ctx: &Ctx,
    session_id: Id,
    status: Option<ProposalStatus>,
) -> Result<Vec<Proposal>> {
    let mut q = select("agent_proposals", PROPOSAL, ctx);
    q.and_where(col("session_id").eq(session_id));
    if let Some(s) = status {
        q.and_where(col("status").eq(s.as_str()));
    }
    q.order_by(Alias::new("id"), Order::Asc);
    decode(conn.fetch_maps(&q, PROPOSAL).await?)
}

/// Moves a pending proposal to its final status. Fails with a conflict when it
/// was decided already (two people answering at once, or a replayed request).
pub async fn decide(
    mut conn: Conn<'_>,
    ctx: &Ctx,
    id: Id,
    status: ProposalStatus,
    args: &Value,
    result: &Value,
) -> Result<()> {
    let mut q = Query::update();
    q.table(Alias::new("agent_proposals"))
        .value(Alias::new("status"), status.as_str())
        .value(Alias::new("args"), json(args))
        .value(Alias::new("result"), json(result))
        .value(Alias::new("decided_at"), ts_now())
        .and_where(col("workspace_id").eq(ctx.workspace_id))
        .and_where(col("id").eq(id))
        .and_where(col("status").eq(ProposalStatus::Pending.as_str()));
    match conn.execute(&q).await? {
        1 => Ok(()),
        _ => Err(Error::Conflict(format!(
            "proposal {id} is not pending any more (it was decided already)"
        ))),
    }
}

/// The audit entries written in a session, oldest first.
pub async fn audit_of(mut conn: Conn<'_>, ctx: &Ctx, session: &str) -> Result<Vec<AuditEntry>> {
    let mut q = select("audit_log", audit::FIELDS, ctx);
    q.and_where(col("session_id").eq(session))
        .order_by(Alias::new("id"), Order::Asc);
    audit::decode(conn.fetch_maps(&q, audit::FIELDS).await?)
}
