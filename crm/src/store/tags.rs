//! Tags on any record. A tag names its record by type and id; the store checks
//! the record exists in the workspace and removes its tags when it is deleted.

use sea_query::{Alias, OnConflict, Order, Query};
use serde_json::json;

use super::audit::{self, NewEntry};
use super::conn::Conn;
use super::records::{exists, now};
use super::sql::{col, value};
use crate::error::{Error, Result};
use crate::model::{Ctx, Id};
use crate::schema::{FieldDef, FieldType, RecordType, Scalar};

const MAX_TAG: usize = 64;

fn normalise(tag: &str) -> Result<String> {
    let tag = tag.trim();
    if tag.is_empty() || tag.chars().count() > MAX_TAG || tag.chars().any(char::is_control) {
        return Err(Error::invalid(
            "tag",
            format!("a tag is 1 to {MAX_TAG} printable characters, got {tag:?}"),
        ));
    }
    Ok(tag.to_lowercase())
}

async fn require(mut conn: Conn<'_>, ctx: &Ctx, rt: RecordType, id: Id) -> Result<()> {
    if !rt.taggable() {
        return Err(Error::invalid(
            "record_type",
            format!("{rt} records cannot be tagged"),
        ));
    }
    if !exists(conn.reborrow(), ctx, rt, id).await? {
        return Err(Error::NotFound { record: rt, id });
    }
    Ok(())
}

/// Adds a tag; returns false when the record already had it.
pub async fn add(mut conn: Conn<'_>, ctx: &Ctx, rt: RecordType, id: Id, tag: &str) -> Result<bool> {
    let tag = normalise(tag)?;
    require(conn.reborrow(), ctx, rt, id).await?;
    let mut q = Query::insert();
    q.into_table(Alias::new("tags"))
        .columns(
            [
                "workspace_id",
                "record_type",
                "record_id",
                "tag",
                "created_at",
            ]
            .map(Alias::new),
        )
        .values_panic([
            ctx.workspace_id.into(),
            rt.name().into(),
            id.into(),
            tag.clone().into(),
            value(&Scalar::Timestamp(now())).into(),
        ])
        .on_conflict(
            OnConflict::columns(
                ["workspace_id", "record_type", "record_id", "tag"].map(Alias::new),
            )
            .do_nothing()
            .to_owned(),
        );
    let added = conn.execute(&q).await? > 0;
    if added {
        let after = json!({ "tag": tag });
        audit::write(
            conn,
            ctx,
            NewEntry::change("tag", rt, id, None, Some(&after)),
        )
        .await?;
    }
    Ok(added)
}

/// Removes a tag; returns false when the record did not have it.
pub async fn remove(
    mut conn: Conn<'_>,
    ctx: &Ctx,
    rt: RecordType,
    id: Id,
    tag: &str,
) -> Result<bool> {
    let tag = normalise(tag)?;
    require(conn.reborrow(), ctx, rt, id).await?;
    let mut q = Query::delete();
    q.from_table(Alias::new("tags"))
        .and_where(col("workspace_id").eq(ctx.workspace_id))
        .and_where(col("record_type").eq(rt.name()))
        .and_where(col("record_id").eq(id))
        .and_where(col("tag").eq(tag.clone()));
    let removed = conn.execute(&q).await? > 0;
    if removed {
        let before = json!({ "tag": tag });
        audit::write(
            conn,
            ctx,
            NewEntry::change("untag", rt, id, Some(&before), None),
        )
        .await?;
    }
    Ok(removed)
}

pub async fn remove_all(mut conn: Conn<'_>, ctx: &Ctx, rt: RecordType, id: Id) -> Result<()> {
    let mut q = Query::delete();
    q.from_table(Alias::new("tags"))
        .and_where(col("workspace_id").eq(ctx.workspace_id))
        .and_where(col("record_type").eq(rt.name()))
        .and_where(col("record_id").eq(id));
    conn.execute(&q).await?;
    Ok(())
}

const TAG_FIELD: &[FieldDef] = &[FieldDef {
    name: "tag",
    ty: FieldType::Text,
    nullable: false,
    writable: false,
    required: false,
    min: None,
    max: None,
}];

pub async fn of(mut conn: Conn<'_>, ctx: &Ctx, rt: RecordType, id: Id) -> Result<Vec<String>> {
    require(conn.reborrow(), ctx, rt, id).await?;
    let mut q = Query::select();
    q.column(Alias::new("tag"))
        .from(Alias::new("tags"))
        .and_where(col("workspace_id").eq(ctx.workspace_id))
        .and_where(col("record_type").eq(rt.name()))
        .and_where(col("record_id").eq(id))
        .order_by(Alias::new("tag"), Order::Asc);
    Ok(conn
        .fetch_maps(&q, TAG_FIELD)
        .await?
        .into_iter()
        .filter_map(|r| r["tag"].as_str().map(str::to_owned))
        .collect())
}

pub async fn tagged(mut conn: Conn<'_>, ctx: &Ctx, rt: RecordType, tag: &str) -> Result<Vec<Id>> {
    let tag = normalise(tag)?;
    let mut q = Query::select();
    q.column(Alias::new("record_id"))
        .from(Alias::new("tags"))
        .and_where(col("workspace_id").eq(ctx.workspace_id))
        .and_where(col("record_type").eq(rt.name()))
        .and_where(col("tag").eq(tag))
        .order_by(Alias::new("record_id"), Order::Asc);
    conn.fetch_ints(&q).await
}
