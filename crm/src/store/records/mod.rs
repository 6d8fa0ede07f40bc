//! Generic create / get / update / delete / list for every record type, driven by
//! the schema definitions. Beside it: `validate` (what a write may contain and
//! what it may point at), `rules` (what is particular to one record type: a
//! deal's stage, status and history; a task's completion time; …) and `bulk`
//! (many rows in a few statements, for imports and demo data).

mod bulk;
mod rules;
mod validate;

pub use bulk::{NewStageChange, bulk_insert, insert_stage_changes};
pub(crate) use rules::Lifecycle;
pub(crate) use validate::exists;
use validate::{
    check_contacts, check_references, check_unique, references_to, take_contact_ids, validate,
};

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_query::{Alias, Cond, Expr, Order, Query};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::audit::{self, NewEntry};
use super::conn::Conn;
use super::sql::{self, col, table, value};
use super::tags;
use crate::error::{Error, Result};
use crate::filter::{self, Direction, ListQuery};
use crate::model::{Ctx, Id, StageChange};
use crate::schema::{FieldDef, FieldType, RecordType, Scalar, TableDef, truncate_micros};

/// A record as a JSON object, keyed by field name.
pub type RecordMap = Map<String, Value>;

/// One page of a listing; pass `next_cursor` back to get the next one.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl Page<RecordMap> {
    pub fn typed<R: DeserializeOwned>(self) -> Result<Page<R>> {
        Ok(Page {
            items: self
                .items
                .into_iter()
                .map(from_map)
                .collect::<Result<_>>()?,
            next_cursor: self.next_cursor,
        })
    }
}

pub fn from_map<R: DeserializeOwned>(map: RecordMap) -> Result<R> {
    serde_json::from_value(Value::Object(map))
        .map_err(|e| Error::Internal(format!("a stored record does not decode: {e}")))
}

pub(crate) fn now() -> DateTime<Utc> {
    truncate_micros(Utc::now())
}

fn bind(def: &TableDef, column: &str, v: &Scalar) -> sea_query::Value {
    let ty = def.field(column).map_or(FieldType::Text, |f| f.ty);
    sql::value_as(ty, v)
}

/// Validated column values of a write, by column name.
type Values = BTreeMap<&'static str, Scalar>;

fn select_from(def: &TableDef, ctx: &Ctx) -> sea_query::SelectStatement {
    let mut q = Query::select();
    q.columns(def.columns().map(Alias::new))
        .from(table(def))
        .and_where(col("workspace_id").eq(ctx.workspace_id));
    q
}

async fn find(mut conn: Conn<'_>, ctx: &Ctx, rt: RecordType, id: Id) -> Result<Option<RecordMap>> {
    let def = rt.def();
    let mut q = select_from(def, ctx);
    q.and_where(col("id").eq(id));
    let mut rows = conn.fetch_maps(&q, def.fields).await?;
    attach_extras(conn, ctx, rt, &mut rows).await?;
    Ok(rows.pop())
}

pub async fn get(conn: Conn<'_>, ctx: &Ctx, rt: RecordType, id: Id) -> Result<RecordMap> {
    find(conn, ctx, rt, id)
        .await?
        .ok_or(Error::NotFound { record: rt, id })
}

pub async fn list(
    mut conn: Conn<'_>,
    ctx: &Ctx,
    rt: RecordType,
    query: &ListQuery,
) -> Result<Page<RecordMap>> {
    let def = rt.def();
    let size = query.page_size()?;
    let (sort_field, dir) = match &query.sort {
        Some(s) => (def.sortable(&s.field)?, s.direction.unwrap_or_default()),
        None => (
            def.field("id").expect("every table has an id"),
            Direction::Asc,
        ),
    };
    let mut cond = Cond::all();
    if let Some(f) = &query.filter {
        cond = cond.add(sql::condition(&filter::check(def, f)?, conn.backend()));
    }
    if let Some(cursor) = &query.cursor {
        cond = cond.add(sql::after_cursor(cursor, sort_field, dir)?);
    }
    let mut q = select_from(def, ctx);
    q.cond_where(cond).limit(u64::from(size) + 1);
    sql::apply_order(&mut q, sort_field, dir);
    let mut rows = conn.fetch_maps(&q, def.fields).await?;
    let next_cursor = if rows.len() > size as usize {
        rows.truncate(size as usize);
        rows.last()
            .map(|last| sql::encode_cursor(sort_field, dir, last))
    } else {
        None
    };
    attach_extras(conn, ctx, rt, &mut rows).await?;
    Ok(Page {
        items: rows,
        next_cursor,
    })
}

/// Fields kept outside the record's own table (a deal's contacts).
async fn attach_extras(
    mut conn: Conn<'_>,
    ctx: &Ctx,
    rt: RecordType,
    rows: &mut [RecordMap],
) -> Result<()> {
    if rt != RecordType::Deal || rows.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = rows.iter().filter_map(|r| r["id"].as_i64()).collect();
    let mut q = Query::select();
    q.columns([Alias::new("deal_id"), Alias::new("contact_id")])
        .from(Alias::new("deal_contacts"))
        .and_where(col("workspace_id").eq(ctx.workspace_id))
        .and_where(col("deal_id").is_in(ids))
        .order_by(Alias::new("contact_id"), Order::Asc);
    let links = conn.fetch_maps(&q, LINK_FIELDS).await?;
    for row in rows.iter_mut() {
        let id = row["id"].as_i64();
        let contacts: Vec<Value> = links
            .iter()
            .filter(|l| l["deal_id"].as_i64() == id)
            .map(|l| l["contact_id"].clone())
            .collect();
        row.insert("contact_ids".into(), Value::Array(contacts));
    }
    Ok(())
}

const LINK_FIELDS: &[FieldDef] = &[
    FieldDef {
        name: "deal_id",
        ty: FieldType::Int,
        nullable: false,
        writable: false,
        required: false,
        min: None,
        max: None,
    },
    FieldDef {
        name: "contact_id",
        ty: FieldType::Int,
        nullable: false,
        writable: false,
        required: false,
        min: None,
        max: None,
    },
];

/// Creates a record through the generic path (tools, REST, CLI, web).
pub async fn create(
    conn: Conn<'_>,
    ctx: &Ctx,
    rt: RecordType,
    fields: RecordMap,
) -> Result<RecordMap> {
    create_as(conn, ctx, rt, fields, Lifecycle::Generic).await
}

pub(crate) async fn create_as(
    mut conn: Conn<'_>,
    ctx: &Ctx,
    rt: RecordType,
    mut fields: RecordMap,
    lifecycle: Lifecycle,
) -> Result<RecordMap> {
    let def = rt.def();
    let contact_ids = take_contact_ids(rt, &mut fields)?;
    let mut values = validate(def, &fields)?;
    let now = now();
    let refused = rules::closing_fields_refusal(rt, &mut values, None, lifecycle);
    let stage_move =
        rules::before_write(conn.reborrow(), ctx, rt, &mut values, None, now, lifecycle).await?;
    for f in def.fields.iter().filter(|f| f.required) {
        if !values.contains_key(f.name) {
            return Err(Error::invalid(
                f.name,
                format!("is required to create a {rt}; expected {}", f.ty.expected()),
            ));
        }
    }
    check_references(conn.reborrow(), ctx, def, &values).await?;
    check_unique(conn.reborrow(), ctx, def, &values, None).await?;
    if let Some(ids) = &contact_ids {
        check_contacts(conn.reborrow(), ctx, ids).await?;
    }
    if let Some(e) = refused {
        return Err(e);
    }
    values.insert("workspace_id", Scalar::Int(ctx.workspace_id));
    values.insert("created_at", Scalar::Timestamp(now));
    values.insert("updated_at", Scalar::Timestamp(now));
    if def.field("custom").is_some() {
        values
            .entry("custom")
            .or_insert(Scalar::Json(Value::Object(Map::new())));
    }
    let mut q = Query::insert();
    q.into_table(table(def))
        .columns(values.keys().map(|k| Alias::new(*k)))
        .values_panic(values.iter().map(|(k, v)| bind(def, k, v).into()))
        .returning_col(Alias::new("id"));
    let id = conn
        .fetch_int(&q)
        .await?
        .ok_or_else(|| Error::Internal("insert returned no id".into()))?;
    if let Some(m) = stage_move {
        rules::record_stage_move(conn.reborrow(), ctx, id, &m).await?;
    }
    if let Some(ids) = &contact_ids {
        replace_contacts(conn.reborrow(), ctx, id, ids).await?;
    }
    let after = get(conn.reborrow(), ctx, rt, id).await?;
    audit::write(
        conn,
        ctx,
        NewEntry::change("create", rt, id, None, Some(&Value::Object(after.clone()))),
    )
    .await?;
    Ok(after)
}

/// Changes the given fields through the generic path (tools, REST, CLI, web).
pub async fn update(
    conn: Conn<'_>,
    ctx: &Ctx,
    rt: RecordType,
    id: Id,
    patch: RecordMap,
) -> Result<RecordMap> {
    update_as(conn, ctx, rt, id, patch, Lifecycle::Generic).await
}

pub(crate) async fn update_as(
    mut conn: Conn<'_>,
    ctx: &Ctx,
    rt: RecordType,
    id: Id,
    mut patch: RecordMap,
    lifecycle: Lifecycle,
) -> Result<RecordMap> {
    let def = rt.def();
    let before = get(conn.reborrow(), ctx, rt, id).await?;
    let contact_ids = take_contact_ids(rt, &mut patch)?;
    let mut values = validate(def, &patch)?;
    let now = now();
    if let Some(Scalar::Json(Value::Object(changes))) = values.get("custom") {
        values.insert(
            "custom",
            Scalar::Json(merge_custom(&before["custom"], changes)),
        );
    }
    // Only what really changes is written (and audited).
    values.retain(|name, v| before.get(*name) != Some(&v.to_json()));
    let refused = rules::closing_fields_refusal(rt, &mut values, Some(&before), lifecycle);
    let stage_move = rules::before_write(
        conn.reborrow(),
        ctx,
        rt,
        &mut values,
        Some(&before),
        now,
        lifecycle,
    )
    .await?;
    values.retain(|name, v| before.get(*name) != Some(&v.to_json()));
    let contacts_change =
        contact_ids.filter(|ids| before.get("contact_ids") != Some(&serde_json::json!(ids)));
    if values.is_empty() && contacts_change.is_none() {
        return Ok(before);
    }
    check_references(conn.reborrow(), ctx, def, &values).await?;
    check_unique(conn.reborrow(), ctx, def, &values, Some(id)).await?;
    if let Some(e) = refused {
        return Err(e);
    }
    if let Some(ids) = &contacts_change {
        check_contacts(conn.reborrow(), ctx, ids).await?;
        replace_contacts(conn.reborrow(), ctx, id, ids).await?;
    }
    values.insert("updated_at", Scalar::Timestamp(now));
    let mut q = Query::update();
    q.table(table(def))
        .values(
            values
                .iter()
                .map(|(k, v)| (Alias::new(*k), bind(def, k, v).into())),
        )
        .and_where(col("workspace_id").eq(ctx.workspace_id))
        .and_where(col("id").eq(id));
    conn.execute(&q).await?;
    if let Some(m) = stage_move {
        rules::record_stage_move(conn.reborrow(), ctx, id, &m).await?;
    }
    let after = get(conn.reborrow(), ctx, rt, id).await?;
    audit::write(
        conn,
        ctx,
        NewEntry::change(
            "update",
            rt,
            id,
            Some(&Value::Object(before)),
            Some(&Value::Object(after.clone())),
        ),
    )
    .await?;
    Ok(after)
}

pub async fn delete(mut conn: Conn<'_>, ctx: &Ctx, rt: RecordType, id: Id) -> Result<RecordMap> {
    let def = rt.def();
    let before = get(conn.reborrow(), ctx, rt, id).await?;
    let blockers = references_to(conn.reborrow(), ctx, def, id).await?;
    if !blockers.is_empty() {
        return Err(Error::Conflict(format!(
            "{rt} {id} is still referenced by {}; reassign or delete those first",
            blockers.join(", ")
        )));
    }
    tags::remove_all(conn.reborrow(), ctx, rt, id).await?;
    let mut q = Query::delete();
    q.from_table(table(def))
        .and_where(col("workspace_id").eq(ctx.workspace_id))
        .and_where(col("id").eq(id));
    conn.execute(&q).await?;
    audit::write(
        conn,
        ctx,
        NewEntry::change("delete", rt, id, Some(&Value::Object(before.clone())), None),
    )
    .await?;
    Ok(before)
}

/// `custom` updates merge key by key; a null removes the key.
fn merge_custom(before: &Value, changes: &Map<String, Value>) -> Value {
    let mut merged = before.as_object().cloned().unwrap_or_default();
    for (k, v) in changes {
        if v.is_null() {
            merged.remove(k);
        } else {
            merged.insert(k.clone(), v.clone());
        }
    }
    Value::Object(merged)
}

async fn replace_contacts(mut conn: Conn<'_>, ctx: &Ctx, deal_id: Id, ids: &[Id]) -> Result<()> {
    let mut del = Query::delete();
    del.from_table(Alias::new("deal_contacts"))
        .and_where(col("workspace_id").eq(ctx.workspace_id))
        .and_where(col("deal_id").eq(deal_id));
    conn.execute(&del).await?;
    if ids.is_empty() {
        return Ok(());
    }
    let mut ins = Query::insert();
    ins.into_table(Alias::new("deal_contacts")).columns([
        Alias::new("workspace_id"),
        Alias::new("deal_id"),
        Alias::new("contact_id"),
    ]);
    for c in ids {
        ins.values_panic([ctx.workspace_id.into(), deal_id.into(), (*c).into()]);
    }
    conn.execute(&ins).await?;
    Ok(())
}

pub async fn stage_history(mut conn: Conn<'_>, ctx: &Ctx, deal_id: Id) -> Result<Vec<StageChange>> {
    if !exists(conn.reborrow(), ctx, RecordType::Deal, deal_id).await? {
        return Err(Error::NotFound {
            record: RecordType::Deal,
            id: deal_id,
        });
    }
    let mut q = Query::select();
    q.columns(rules::HISTORY_FIELDS.iter().map(|f| Alias::new(f.name)))
        .from(Alias::new("deal_stage_history"))
        .and_where(col("workspace_id").eq(ctx.workspace_id))
        .and_where(col("deal_id").eq(deal_id))
        .order_by(Alias::new("id"), Order::Asc);
    conn.fetch_maps(&q, rules::HISTORY_FIELDS)
        .await?
        .into_iter()
        .map(from_map)
        .collect()
}
