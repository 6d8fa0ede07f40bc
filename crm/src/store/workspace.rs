//! Workspaces (the tenant boundary) and per-workspace counts.

use sea_query::{Alias, Expr, Order, Query};

use super::conn::Conn;
use super::records::{from_map, now};
use super::sql::{col, table, value};
use crate::error::{Error, Result};
use crate::model::{Ctx, Workspace};
use crate::schema::{FieldDef, FieldType, RecordType, Scalar};

/// A read-only, non-null column of a table that is not a record type.
pub(super) const fn f(name: &'static str, ty: FieldType) -> FieldDef {
    FieldDef {
        name,
        ty,
        nullable: false,
        writable: false,
        required: false,
        min: None,
        max: None,
    }
}

const FIELDS: &[FieldDef] = &[
    f("id", FieldType::Id),
    f("name", FieldType::Text),
    f("created_at", FieldType::Timestamp),
];

pub async fn create(mut conn: Conn<'_>, name: &str) -> Result<Workspace> {
    let name = name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(Error::invalid(
            "name",
            "a workspace name is 1 to 100 characters",
        ));
    }
    if by_name(conn.reborrow(), name).await?.is_some() {
        return Err(Error::Conflict(format!(
            "workspace {name:?} already exists"
        )));
    }
    let mut q = Query::insert();
    q.into_table(Alias::new("workspaces"))
        .columns([Alias::new("name"), Alias::new("created_at")])
        .values_panic([name.into(), value(&Scalar::Timestamp(now())).into()])
        .returning_col(Alias::new("id"));
    let id = conn.fetch_int(&q).await?.unwrap_or_default();
    one(conn, Expr::col(Alias::new("id")).eq(id))
        .await?
        .ok_or_else(|| Error::Internal("workspace vanished after insert".into()))
}

pub async fn by_name(conn: Conn<'_>, name: &str) -> Result<Option<Workspace>> {
    one(conn, col("name").eq(name.trim())).await
}

async fn one(mut conn: Conn<'_>, cond: sea_query::SimpleExpr) -> Result<Option<Workspace>> {
    let mut q = Query::select();
    q.columns(FIELDS.iter().map(|f| Alias::new(f.name)))
        .from(Alias::new("workspaces"))
        .and_where(cond);
    conn.fetch_maps(&q, FIELDS)
        .await?
        .pop()
        .map(from_map)
        .transpose()
}

pub async fn all(mut conn: Conn<'_>) -> Result<Vec<Workspace>> {
    let mut q = Query::select();
    q.columns(FIELDS.iter().map(|f| Alias::new(f.name)))
        .from(Alias::new("workspaces"))
        .order_by(Alias::new("id"), Order::Asc);
    conn.fetch_maps(&q, FIELDS)
        .await?
        .into_iter()
        .map(from_map)
        .collect()
}

pub async fn counts(mut conn: Conn<'_>, ctx: &Ctx) -> Result<Vec<(RecordType, i64)>> {
    let mut out = Vec::new();
    for rt in RecordType::ALL {
        let mut q = Query::select();
        q.expr(Expr::col(Alias::new("id")).count())
            .from(table(rt.def()))
            .and_where(col("workspace_id").eq(ctx.workspace_id));
        out.push((rt, conn.fetch_int(&q).await?.unwrap_or(0)));
    }
    Ok(out)
}
