//! merge_contacts: one contact absorbs a duplicate and everything that points at it.

use super::*;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeArgs {
    /// The contact that remains.
    pub survivor_id: Id,
    /// The duplicate, deleted once everything is moved to the survivor.
    pub duplicate_id: Id,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct MergeOutput {
    /// The survivor as it is after the merge.
    pub survivor: RecordMap,
    /// How many records of each kind now point at the survivor instead.
    pub moved: std::collections::BTreeMap<String, u64>,
    /// Fields of the survivor that were empty and were filled from the duplicate.
    pub filled_fields: Vec<String>,
    /// Tags the survivor took over.
    pub tags_added: Vec<String>,
}

pub struct MergeContacts;

impl Tool for MergeContacts {
    type Args = MergeArgs;
    type Output = MergeOutput;

    fn name(&self) -> &'static str {
        "merge_contacts"
    }
    fn description(&self) -> String {
        "Merge a duplicate contact into another (managers and admins only): its activities, tasks, leads and deals move to the survivor, empty fields of the survivor are filled from the duplicate, its tags are added, and the duplicate is deleted. Cannot be undone.".into()
    }
    fn effect(&self) -> Effect {
        Effect::Destructive
    }
    fn example(&self) -> Value {
        json!({"survivor_id": 1, "duplicate_id": 2})
    }
    fn targets(&self, a: &MergeArgs) -> Vec<(RecordType, Id)> {
        vec![
            (RecordType::Contact, a.survivor_id),
            (RecordType::Contact, a.duplicate_id),
        ]
    }
    async fn call(&self, cx: &mut Call, a: MergeArgs) -> Result<MergeOutput> {
        if a.survivor_id == a.duplicate_id {
            return Err(ToolError::invalid(
                "duplicate_id",
                "a contact cannot be merged into itself",
            ));
        }
        let rt = RecordType::Contact;
        let survivor = cx
            .tx
            .get_dyn(&cx.ctx, rt, a.survivor_id)
            .await
            .map_err(|e| ToolError::from(e).with_field("survivor_id"))?;
        let dup = cx
            .tx
            .get_dyn(&cx.ctx, rt, a.duplicate_id)
            .await
            .map_err(|e| ToolError::from(e).with_field("duplicate_id"))?;
        let mut moved = std::collections::BTreeMap::new();
        // Every column that references contacts, from the schema.
        for (def, field) in rt.def().referenced_by() {
            let rows = list_all(cx, def.record, Filter::eq(field.name, a.duplicate_id)).await?;
            for row in &rows {
                cx.tx
                    .update_dyn(
                        &cx.ctx,
                        def.record,
                        id_of(row),
                        json!({ field.name: a.survivor_id }),
                    )
                    .await?;
            }
            *moved.entry(def.table.to_owned()).or_insert(0) += rows.len() as u64;
        }
        // Deals link contacts through a list.
        let mut deals = 0;
        for deal in list_all(cx, RecordType::Deal, Filter::cond("id", Op::Gt, 0)).await? {
            let ids: Vec<Id> = deal
                .get("contact_ids")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_i64).collect())
                .unwrap_or_default();
            if !ids.contains(&a.duplicate_id) {
                continue;
            }
            let mut new: Vec<Id> = ids
                .into_iter()
                .map(|i| {
                    if i == a.duplicate_id {
                        a.survivor_id
                    } else {
                        i
                    }
                })
                .collect();
            new.sort_unstable();
            new.dedup();
            cx.tx
                .update_dyn(
                    &cx.ctx,
                    RecordType::Deal,
                    id_of(&deal),
                    json!({"contact_ids": new}),
                )
                .await?;
            deals += 1;
        }
        moved.insert("deals".into(), deals);
        let tags = cx.store.tags_of(&cx.ctx, rt, a.duplicate_id).await?;
        let mut tags_added = Vec::new();
        for tag in tags {
            if cx.tx.add_tag(&cx.ctx, rt, a.survivor_id, &tag).await? {
                tags_added.push(tag);
            }
        }
        // Fill the survivor's gaps; the duplicate goes first so unique values
        // (the email) can move.
        let mut patch = Map::new();
        for f in rt.def().fields.iter().filter(|f| f.writable) {
            let (have, other) = (&survivor[f.name], &dup[f.name]);
            if f.name == "custom" {
                let mut merged = Map::new();
                if let (Some(h), Some(o)) = (have.as_object(), other.as_object()) {
                    for (k, v) in o {
                        if !h.contains_key(k) {
                            merged.insert(k.clone(), v.clone());
                        }
                    }
                }
                if !merged.is_empty() {
                    patch.insert("custom".into(), Value::Object(merged));
                }
            } else if have.is_null() && !other.is_null() {
                patch.insert(f.name.to_owned(), other.clone());
            }
        }
        cx.tx.delete_dyn(&cx.ctx, rt, a.duplicate_id).await?;
        let filled_fields = patch.keys().cloned().collect();
        let survivor = cx
            .tx
            .update_dyn(&cx.ctx, rt, a.survivor_id, Value::Object(patch))
            .await?;
        Ok(MergeOutput {
            survivor,
            moved,
            filled_fields,
            tags_added,
        })
    }
}
