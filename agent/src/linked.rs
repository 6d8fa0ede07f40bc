//! Records linked to the one a model named by mistake.
//!
//! A small model copies the id a lookup showed into whatever id argument it
//! fills: `reschedule_task {task_id: 6}` where 6 is the deal the user named
//! ("push the Halden whitepaper task"), or `get_activity {id: 9}` where 9 is
//! the contact. The refusal says so; it helps more when it also lists the
//! records of the wanted type that belong to the named one (the deal's tasks,
//! the contact's activities) or that it points at (an activity's deal). The
//! model can then take an id from that list instead of guessing again, and
//! the ids it lists count as shown (see [`crate::known`]). Nothing is
//! guessed here: these are plain foreign-key reads, under the caller's access.

use rapport_crm::schema::FieldType;
use rapport_crm::{Candidate, Ctx, Filter, Id, ListQuery, RecordMap, RecordType, Store};
use serde_json::Value;

use crate::error::Result;

/// Linked records listed at most.
const MAX: u32 = 5;

/// Records of type `wanted` linked to record `id` of type `given`: those whose
/// `<given>_id` is `id` (a deal's tasks), else the one its `<wanted>_id`
/// names (an activity's deal).
pub async fn linked(
    store: &Store,
    ctx: &Ctx,
    wanted: RecordType,
    given: RecordType,
    id: Id,
) -> Result<Vec<Candidate>> {
    // A user owns too much for "their contacts" to be what the model meant.
    if given == RecordType::User {
        return Ok(Vec::new());
    }
    if let Some(key) = reference(wanted, given) {
        let q = ListQuery::filtered(Filter::eq(key, id)).limit(MAX);
        let rows = store.list_dyn(ctx, wanted, &q).await?.items;
        if !rows.is_empty() {
            return Ok(rows.iter().filter_map(|r| candidate(wanted, r)).collect());
        }
    }
    let Some(key) = reference(given, wanted) else {
        return Ok(Vec::new());
    };
    let Ok(row) = store.get_dyn(ctx, given, id).await else {
        return Ok(Vec::new());
    };
    let Some(target) = row.get(key).and_then(Value::as_i64) else {
        return Ok(Vec::new());
    };
    Ok(match store.get_dyn(ctx, wanted, target).await {
        Ok(r) => candidate(wanted, &r).into_iter().collect(),
        Err(_) => Vec::new(),
    })
}

/// The field of `from` that refers to a record of type `to` (`deal_id` of a task).
fn reference(from: RecordType, to: RecordType) -> Option<&'static str> {
    from.def()
        .fields
        .iter()
        .find(|f| matches!(f.ty, FieldType::Ref(t) if t == to))
        .map(|f| f.name)
}

/// A row as a candidate a person (or model) recognises: its title, subject or name.
fn candidate(rt: RecordType, row: &RecordMap) -> Option<Candidate> {
    let text = |k: &str| row.get(k).and_then(Value::as_str).unwrap_or("").trim();
    let label = match rt {
        RecordType::Task => text("title").to_owned(),
        RecordType::Activity => format!("{}: {}", text("kind"), text("subject")),
        RecordType::Contact | RecordType::User => {
            let name = format!("{} {}", text("first_name"), text("last_name"));
            let name = name.trim();
            if name.is_empty() {
                text("name").to_owned()
            } else {
                name.to_owned()
            }
        }
        _ => text("name").to_owned(),
    };
    Some(Candidate {
        record_type: rt,
        id: row.get("id")?.as_i64()?,
        label,
        score: 1.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_follow_the_schema() {
        assert_eq!(
            reference(RecordType::Task, RecordType::Deal),
            Some("deal_id")
        );
        assert_eq!(
            reference(RecordType::Activity, RecordType::Contact),
            Some("contact_id")
        );
        assert_eq!(reference(RecordType::Deal, RecordType::Task), None);
    }
}
