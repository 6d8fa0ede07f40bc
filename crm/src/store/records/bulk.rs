//! Many records of one type in a few statements (imports, demo data), and the
//! stage history such imports carry.

use super::*;

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
    if rt == RecordType::Deal {
        rules::check_bulk_statuses(conn.reborrow(), ctx, &checked).await?;
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
