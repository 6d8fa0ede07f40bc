//! The index outbox: activities whose text or links changed since the vector
//! index last saw them. Database triggers fill it in the writing transaction
//! (see the `index_outbox` migration); the ingestion pipeline reads it, updates
//! the index, and acknowledges the rows it handled by their sequence numbers.

use sea_query::{Alias, Expr, Order, Query};

use super::conn::Conn;
use super::records::from_map;
use super::sql::col;
use super::workspace::f;
use crate::error::Result;
use crate::model::{Id, OutboxEntry};
use crate::schema::{FieldDef, FieldType};

const TABLE: &str = "index_outbox";

const FIELDS: &[FieldDef] = &[
    f("seq", FieldType::Int),
    f("workspace_id", FieldType::Int),
    f("activity_id", FieldType::Int),
    f("op", FieldType::Text),
];

/// The oldest pending entries, in queue order; all workspaces when `workspace_id` is `None`.
pub async fn pending(
    mut conn: Conn<'_>,
    workspace_id: Option<Id>,
    limit: u32,
) -> Result<Vec<OutboxEntry>> {
    let mut q = Query::select();
    q.columns(FIELDS.iter().map(|f| Alias::new(f.name)))
        .from(Alias::new(TABLE))
        .order_by(Alias::new("seq"), Order::Asc)
        .limit(u64::from(limit));
    if let Some(ws) = workspace_id {
        q.and_where(col("workspace_id").eq(ws));
    }
    conn.fetch_maps(&q, FIELDS)
        .await?
        .into_iter()
        .map(from_map)
        .collect()
}

/// Removes handled entries by sequence number. Entries queued meanwhile (even
/// for the same activity) have other numbers and stay.
pub async fn ack(mut conn: Conn<'_>, seqs: &[i64]) -> Result<u64> {
    let mut done = 0;
    // Bounded IN lists: SQLite limits bound parameters per statement.
    for part in seqs.chunks(500) {
        let mut q = Query::delete();
        q.from_table(Alias::new(TABLE))
            .and_where(col("seq").is_in(part.iter().copied()));
        done += conn.execute(&q).await?;
    }
    Ok(done)
}

/// Number of pending entries; all workspaces when `workspace_id` is `None`.
pub async fn len(mut conn: Conn<'_>, workspace_id: Option<Id>) -> Result<i64> {
    let mut q = Query::select();
    q.expr(Expr::col(Alias::new("seq")).count())
        .from(Alias::new(TABLE));
    if let Some(ws) = workspace_id {
        q.and_where(col("workspace_id").eq(ws));
    }
    Ok(conn.fetch_int(&q).await?.unwrap_or(0))
}

/// Queues every activity of a workspace (a full rebuild of its index).
pub async fn enqueue_all(mut conn: Conn<'_>, workspace_id: Id) -> Result<u64> {
    let mut select = Query::select();
    select
        .column(Alias::new("workspace_id"))
        .column(Alias::new("id"))
        .expr(Expr::val("upsert"))
        .from(Alias::new("activities"))
        .and_where(col("workspace_id").eq(workspace_id))
        .order_by(Alias::new("id"), Order::Asc);
    let mut q = Query::insert();
    q.into_table(Alias::new(TABLE))
        .columns([
            Alias::new("workspace_id"),
            Alias::new("activity_id"),
            Alias::new("op"),
        ])
        .select_from(select)
        .expect("three columns for three values");
    conn.execute(&q).await
}
