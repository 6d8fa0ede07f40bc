//! The audit log: who changed what, through which door, with the record before
//! and after. Written in the same transaction as the change it describes.

use sea_query::{Alias, Order, Query};
use serde_json::Value;

use super::conn::Conn;
use super::records::{from_map, now};
use super::sql::{col, value, value_as};
use crate::error::Result;
use crate::model::{AuditEntry, Ctx, Id};
use crate::schema::{FieldDef, FieldType, RecordType, Scalar};

/// An audit entry to write; the workspace, actor, source and session come from
/// the context.
#[derive(Debug, Clone)]
pub struct NewEntry<'a> {
    pub action: &'a str,
    pub record_type: &'a str,
    pub record_id: Option<Id>,
    pub before: Option<&'a Value>,
    pub after: Option<&'a Value>,
}

impl<'a> NewEntry<'a> {
    pub fn change(
        action: &'a str,
        rt: RecordType,
        id: Id,
        before: Option<&'a Value>,
        after: Option<&'a Value>,
    ) -> Self {
        NewEntry {
            action,
            record_type: rt.name(),
            record_id: Some(id),
            before,
            after,
        }
    }
}

/// A column read back as-is (nullable, not writable): for fixed row shapes.
pub(super) const fn f(name: &'static str, ty: FieldType) -> FieldDef {
    FieldDef {
        name,
        ty,
        nullable: true,
        writable: false,
        required: false,
        min: None,
        max: None,
    }
}

pub(super) const FIELDS: &[FieldDef] = &[
    f("id", FieldType::Id),
    f("workspace_id", FieldType::Id),
    f("actor_id", FieldType::Int),
    f("source", FieldType::Text),
    f("session_id", FieldType::Text),
    f("action", FieldType::Text),
    f("record_type", FieldType::Text),
    f("record_id", FieldType::Int),
    f("before", FieldType::Json),
    f("after", FieldType::Json),
    f("at", FieldType::Timestamp),
];

pub async fn write(mut conn: Conn<'_>, ctx: &Ctx, e: NewEntry<'_>) -> Result<Id> {
    let json = |v: Option<&Value>| {
        value_as(
            FieldType::Json,
            &v.map_or(Scalar::Null, |v| Scalar::Json(v.clone())),
        )
    };
    let mut q = Query::insert();
    q.into_table(Alias::new("audit_log"))
        .columns(FIELDS[1..].iter().map(|f| Alias::new(f.name)))
        .values_panic([
            ctx.workspace_id.into(),
            ctx.actor_id.into(),
            ctx.source.as_str().into(),
            ctx.session_id.clone().into(),
            e.action.into(),
            e.record_type.into(),
            e.record_id.into(),
            json(e.before).into(),
            json(e.after).into(),
            value(&Scalar::Timestamp(now())).into(),
        ])
        .returning_col(Alias::new("id"));
    Ok(conn.fetch_int(&q).await?.unwrap_or_default())
}

pub async fn for_record(
    mut conn: Conn<'_>,
    ctx: &Ctx,
    rt: RecordType,
    id: Id,
) -> Result<Vec<AuditEntry>> {
    let mut q = Query::select();
    q.columns(FIELDS.iter().map(|f| Alias::new(f.name)))
        .from(Alias::new("audit_log"))
        .and_where(col("workspace_id").eq(ctx.workspace_id))
        .and_where(col("record_type").eq(rt.name()))
        .and_where(col("record_id").eq(id))
        .order_by(Alias::new("id"), Order::Asc);
    decode(conn.fetch_maps(&q, FIELDS).await?)
}

pub async fn for_actor(
    mut conn: Conn<'_>,
    ctx: &Ctx,
    actor: Id,
    limit: u32,
) -> Result<Vec<AuditEntry>> {
    let mut q = Query::select();
    q.columns(FIELDS.iter().map(|f| Alias::new(f.name)))
        .from(Alias::new("audit_log"))
        .and_where(col("workspace_id").eq(ctx.workspace_id))
        .and_where(col("actor_id").eq(actor))
        .order_by(Alias::new("id"), Order::Desc)
        .limit(u64::from(limit.clamp(1, 1000)));
    decode(conn.fetch_maps(&q, FIELDS).await?)
}

pub(super) fn decode(rows: Vec<serde_json::Map<String, Value>>) -> Result<Vec<AuditEntry>> {
    rows.into_iter()
        .map(|mut r| {
            // SQL NULL and JSON null both mean "no snapshot".
            for k in ["before", "after"] {
                if r.get(k) == Some(&Value::Null) {
                    r.remove(k);
                }
            }
            from_map(r)
        })
        .collect()
}
