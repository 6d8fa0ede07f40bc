//! What a write may contain (known, writable, typed, bounded fields) and what
//! it may point at (records of the same workspace, unique values).

use super::*;

/// Longest text kept in a short field (names, subjects, titles) and in a body.
const MAX_TEXT: usize = 4_000;
const MAX_LONG_TEXT: usize = 1_000_000;

/// Checks every given field: known, writable, of the right type and range.
pub(super) fn validate(def: &TableDef, fields: &RecordMap) -> Result<Values> {
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

pub(super) fn writable_names(def: &TableDef) -> String {
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
pub(super) fn take_contact_ids(rt: RecordType, fields: &mut RecordMap) -> Result<Option<Vec<Id>>> {
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

/// Every reference must name a record of the same workspace.
pub(super) async fn check_references(
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

pub(super) async fn check_contacts(mut conn: Conn<'_>, ctx: &Ctx, ids: &[Id]) -> Result<()> {
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

pub(super) async fn check_unique(
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
pub(super) async fn references_to(
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
