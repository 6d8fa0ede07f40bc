//! Generic create / get / update / delete / list for every record type, driven by
//! the schema definitions, plus the few rules particular to a type (a deal's
//! stage, probability and history; a task's completion time; …).

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
        Some(s) => (def.sortable(&s.field)?, s.direction),
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

/// Longest text kept in a short field (names, subjects, titles) and in a body.
const MAX_TEXT: usize = 4_000;
const MAX_LONG_TEXT: usize = 1_000_000;

/// Checks every given field: known, writable, of the right type and range.
fn validate(def: &TableDef, fields: &RecordMap) -> Result<Values> {
    let mut out = Values::new();
    for (name, raw) in fields {
        let f = def.field(name).ok_or_else(|| {
            Error::invalid(
                name.as_str(),
                format!(
                    "unknown field for {}; writable fields: {}",
                    def.record,
                    writable_names(def)
                ),
            )
        })?;
        if !f.writable {
            return Err(Error::invalid(
                name.as_str(),
                "is maintained by Rapport and cannot be set",
            ));
        }
        let scalar = Scalar::from_json(f, raw)?;
        if f.required && matches!(&scalar, Scalar::Text(t) if t.trim().is_empty()) {
            return Err(Error::invalid(name.as_str(), "must not be blank"));
        }
        if let Scalar::Text(t) = &scalar {
            let limit = if matches!(f.name, "body" | "description") {
                MAX_LONG_TEXT
            } else {
                MAX_TEXT
            };
            if t.len() > limit {
                return Err(Error::invalid(
                    name.as_str(),
                    format!("is {} bytes long; at most {limit} are kept", t.len()),
                ));
            }
        }
        let scalar = match scalar {
            Scalar::Text(t) => Scalar::Text(t.trim().to_owned()),
            other => other,
        };
        out.insert(f.name, scalar);
    }
    Ok(out)
}

fn writable_names(def: &TableDef) -> String {
    let mut names: Vec<&str> = def
        .fields
        .iter()
        .filter(|f| f.writable)
        .map(|f| f.name)
        .collect();
    if def.record == RecordType::Deal {
        names.push("contact_ids");
    }
    names.join(", ")
}

/// A deal's contacts arrive as a list beside the columns.
fn take_contact_ids(rt: RecordType, fields: &mut RecordMap) -> Result<Option<Vec<Id>>> {
    let Some(raw) = fields.remove("contact_ids") else {
        return Ok(None);
    };
    if rt != RecordType::Deal {
        return Err(Error::invalid(
            "contact_ids",
            format!("{rt} records have no contact_ids"),
        ));
    }
    let bad = || {
        Error::invalid(
            "contact_ids",
            "expected a list of contact ids such as [3, 7]",
        )
    };
    let mut ids: Vec<Id> = raw
        .as_array()
        .ok_or_else(bad)?
        .iter()
        .map(|v| v.as_i64().ok_or_else(bad))
        .collect::<Result<_>>()?;
    ids.sort_unstable();
    ids.dedup();
    Ok(Some(ids))
}

pub async fn create(
    mut conn: Conn<'_>,
    ctx: &Ctx,
    rt: RecordType,
    mut fields: RecordMap,
) -> Result<RecordMap> {
    let def = rt.def();
    let contact_ids = take_contact_ids(rt, &mut fields)?;
    let mut values = validate(def, &fields)?;
    let now = now();
    let stage_move = rules::before_write(conn.reborrow(), ctx, rt, &mut values, None, now).await?;
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

pub async fn update(
    mut conn: Conn<'_>,
    ctx: &Ctx,
    rt: RecordType,
    id: Id,
    mut patch: RecordMap,
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
    let stage_move =
        rules::before_write(conn.reborrow(), ctx, rt, &mut values, Some(&before), now).await?;
    values.retain(|name, v| before.get(*name) != Some(&v.to_json()));
    let contacts_change =
        contact_ids.filter(|ids| before.get("contact_ids") != Some(&serde_json::json!(ids)));
    if values.is_empty() && contacts_change.is_none() {
        return Ok(before);
    }
    check_references(conn.reborrow(), ctx, def, &values).await?;
    check_unique(conn.reborrow(), ctx, def, &values, Some(id)).await?;
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

/// Every reference must name a record of the same workspace.
async fn check_references(
    mut conn: Conn<'_>,
    ctx: &Ctx,
    def: &TableDef,
    values: &Values,
) -> Result<()> {
    for f in def.fields {
        let (FieldType::Ref(target), Some(Scalar::Int(id))) = (f.ty, values.get(f.name)) else {
            continue;
        };
        if !exists(conn.reborrow(), ctx, target, *id).await? {
            return Err(Error::MissingReference {
                field: f.name.into(),
                target,
                id: *id,
            });
        }
    }
    Ok(())
}

async fn check_contacts(mut conn: Conn<'_>, ctx: &Ctx, ids: &[Id]) -> Result<()> {
    for id in ids {
        if !exists(conn.reborrow(), ctx, RecordType::Contact, *id).await? {
            return Err(Error::MissingReference {
                field: "contact_ids".into(),
                target: RecordType::Contact,
                id: *id,
            });
        }
    }
    Ok(())
}

pub(crate) async fn exists(mut conn: Conn<'_>, ctx: &Ctx, rt: RecordType, id: Id) -> Result<bool> {
    let mut q = Query::select();
    q.column(Alias::new("id"))
        .from(table(rt.def()))
        .and_where(col("workspace_id").eq(ctx.workspace_id))
        .and_where(col("id").eq(id));
    Ok(conn.fetch_int(&q).await?.is_some())
}

async fn check_unique(
    mut conn: Conn<'_>,
    ctx: &Ctx,
    def: &TableDef,
    values: &Values,
    own_id: Option<Id>,
) -> Result<()> {
    for name in def.unique {
        let Some(Scalar::Text(v)) = values.get(name) else {
            continue;
        };
        let mut q = Query::select();
        q.column(Alias::new("id"))
            .from(table(def))
            .and_where(col("workspace_id").eq(ctx.workspace_id))
            .and_where(col(name).eq(v.clone()));
        if let Some(own) = own_id {
            q.and_where(col("id").ne(own));
        }
        if let Some(existing_id) = conn.fetch_int(&q).await? {
            return Err(Error::Duplicate {
                record: def.record,
                field: (*name).into(),
                value: v.clone(),
                existing_id,
            });
        }
    }
    Ok(())
}

/// Describes what still points at a record ("3 contacts (company_id)").
async fn references_to(
    mut conn: Conn<'_>,
    ctx: &Ctx,
    def: &TableDef,
    id: Id,
) -> Result<Vec<String>> {
    let mut found = Vec::new();
    let mut refs: Vec<(&str, &str, &str)> = def
        .referenced_by()
        .into_iter()
        .map(|(t, f)| (t.table, f.name, t.table))
        .collect();
    match def.record {
        RecordType::Contact => refs.push(("deal_contacts", "contact_id", "deals (as a contact)")),
        RecordType::Stage => {
            refs.push((
                "deal_stage_history",
                "from_stage_id",
                "stage history entries",
            ));
            refs.push(("deal_stage_history", "to_stage_id", "stage history entries"));
        }
        _ => {}
    }
    for (tbl, field, label) in refs {
        let mut q = Query::select();
        q.expr(Expr::col(Alias::new(field)).count())
            .from(Alias::new(tbl))
            .and_where(col("workspace_id").eq(ctx.workspace_id))
            .and_where(col(field).eq(id));
        let n = conn.fetch_int(&q).await?.unwrap_or(0);
        // A self-reference does not block (none exist today, but keep it honest).
        if n > 0 && !(tbl == def.table && field == "id") {
            found.push(format!("{n} {label} ({field})"));
        }
    }
    Ok(found)
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

mod rules {
    //! Rules particular to one record type, applied before a write.

    use super::*;

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
    ) -> Result<Option<StageMove>> {
        match rt {
            RecordType::Deal => deal(conn, ctx, values, before, now).await,
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
        } else if (given_pipeline.is_some() && given_pipeline != before_pipeline)
            || before.is_none()
        {
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
        if let Some(stage) = stage.filter(|s| Some(s.id) != before_stage) {
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
}

/// Fields a bulk import may set although ordinary writes may not: when a record
/// was created, and when a deal entered its stage (imports carry history).
const IMPORT_FIELDS: [&str; 3] = ["created_at", "updated_at", "stage_entered_at"];
/// Rows per INSERT statement: well under both backends' bound-parameter limits.
const BULK_CHUNK: usize = 400;

/// Inserts many records of one type in a few statements, for imports and demo
/// data. Each row is validated like a create (types, ranges, required fields);
/// references are left to the database's foreign keys, which fail the whole
/// transaction on a bad one. One audit entry records the batch. Returns the new
/// ids in row order.
pub async fn bulk_insert(
    mut conn: Conn<'_>,
    ctx: &Ctx,
    rt: RecordType,
    rows: Vec<RecordMap>,
) -> Result<Vec<Id>> {
    let def = rt.def();
    let now = now();
    let mut checked = Vec::with_capacity(rows.len());
    let mut links = Vec::new();
    for (i, mut row) in rows.into_iter().enumerate() {
        let contact_ids = take_contact_ids(rt, &mut row)?;
        let mut system = Values::new();
        for name in IMPORT_FIELDS {
            if let (Some(raw), Some(f)) = (row.remove(name), def.field(name)) {
                let f = FieldDef {
                    writable: true,
                    ..*f
                };
                system.insert(f.name, Scalar::from_json(&f, &raw)?);
            }
        }
        let mut values = validate(def, &row).map_err(|e| at_row(i, e))?;
        if let Some(f) = def
            .fields
            .iter()
            .find(|f| f.required && !values.contains_key(f.name))
        {
            return Err(at_row(
                i,
                Error::invalid(f.name, format!("is required to create a {rt}")),
            ));
        }
        values.insert("workspace_id", Scalar::Int(ctx.workspace_id));
        values.insert(
            "created_at",
            system
                .remove("created_at")
                .unwrap_or(Scalar::Timestamp(now)),
        );
        values.insert(
            "updated_at",
            system
                .remove("updated_at")
                .unwrap_or(Scalar::Timestamp(now)),
        );
        values.extend(system);
        if def.field("custom").is_some() {
            values
                .entry("custom")
                .or_insert(Scalar::Json(Value::Object(Map::new())));
        }
        links.push(contact_ids);
        checked.push(values);
    }
    let mut ids = Vec::with_capacity(checked.len());
    for chunk in checked.chunks(BULK_CHUNK) {
        // One statement needs one column list: the union of the rows' columns.
        let columns: Vec<&'static str> = def
            .fields
            .iter()
            .map(|f| f.name)
            .filter(|n| chunk.iter().any(|v| v.contains_key(n)))
            .collect();
        let mut q = Query::insert();
        q.into_table(table(def))
            .columns(columns.iter().map(|c| Alias::new(*c)));
        for v in chunk {
            q.values_panic(columns.iter().map(|c| {
                let s = v.get(c).cloned().unwrap_or_else(|| column_default(def, c));
                bind(def, c, &s).into()
            }));
        }
        q.returning_col(Alias::new("id"));
        let got = conn.fetch_ints(&q).await?;
        if got.len() != chunk.len() || got.windows(2).any(|w| w[0] >= w[1]) {
            return Err(Error::Internal(
                "bulk insert returned ids out of order".into(),
            ));
        }
        ids.extend(got);
    }
    for (id, contact_ids) in ids.iter().zip(&links) {
        if let Some(c) = contact_ids {
            replace_contacts(conn.reborrow(), ctx, *id, c).await?;
        }
    }
    if let (Some(first), Some(last)) = (ids.first(), ids.last()) {
        let summary = serde_json::json!({"count": ids.len(), "first_id": first, "last_id": last});
        audit::write(
            conn,
            ctx,
            NewEntry {
                action: "bulk_create",
                record_type: rt.name(),
                record_id: None,
                before: None,
                after: Some(&summary),
            },
        )
        .await?;
    }
    Ok(ids)
}

fn at_row(i: usize, e: Error) -> Error {
    match e {
        Error::Invalid { field, message } => Error::invalid(format!("rows[{i}].{field}"), message),
        other => other,
    }
}

/// What a missing column means in a multi-row insert whose other rows set it.
fn column_default(def: &TableDef, column: &str) -> Scalar {
    match (def.record, column) {
        (_, "custom") => Scalar::Json(Value::Object(Map::new())),
        (RecordType::Lead, "status") => Scalar::Text("new".into()),
        (RecordType::Task, "status")
        | (RecordType::Deal, "status")
        | (RecordType::Stage, "outcome") => Scalar::Text("open".into()),
        (RecordType::Task, "priority") => Scalar::Text("normal".into()),
        (RecordType::User, "timezone") => Scalar::Text("UTC".into()),
        (RecordType::Activity, "body") => Scalar::Text(String::new()),
        (RecordType::Pipeline, "is_default") => Scalar::Bool(false),
        _ => Scalar::Null,
    }
}

/// A deal's past stage change, for imports that carry history.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NewStageChange {
    pub deal_id: Id,
    pub from_stage_id: Option<Id>,
    pub to_stage_id: Id,
    pub changed_by: Option<Id>,
    pub changed_at: DateTime<Utc>,
    pub seconds_in_previous: Option<i64>,
}

pub async fn insert_stage_changes(
    mut conn: Conn<'_>,
    ctx: &Ctx,
    changes: &[NewStageChange],
) -> Result<()> {
    for c in changes {
        rules::record_stage_move(
            conn.reborrow(),
            &Ctx {
                actor_id: c.changed_by,
                ..ctx.clone()
            },
            c.deal_id,
            &rules::StageMove {
                from: c.from_stage_id,
                to: c.to_stage_id,
                at: c.changed_at,
                seconds_in_previous: c.seconds_in_previous,
            },
        )
        .await?;
    }
    Ok(())
}
