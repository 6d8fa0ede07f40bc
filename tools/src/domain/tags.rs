//! tag / untag any record.

use super::*;

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Taggable {
    Company,
    Contact,
    Lead,
    Deal,
    Activity,
    Task,
}

impl Taggable {
    pub(super) fn record_type(self) -> RecordType {
        match self {
            Taggable::Company => RecordType::Company,
            Taggable::Contact => RecordType::Contact,
            Taggable::Lead => RecordType::Lead,
            Taggable::Deal => RecordType::Deal,
            Taggable::Activity => RecordType::Activity,
            Taggable::Task => RecordType::Task,
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TagArgs {
    pub record_type: Taggable,
    pub id: Id,
    /// A short label such as "vip" or "churn-risk".
    #[schemars(length(min = 1, max = 64))]
    pub tag: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct TagOutput {
    pub record_type: Taggable,
    pub id: Id,
    pub tag: String,
    /// False when the record already had (or did not have) the tag.
    pub changed: bool,
}

pub struct TagTool {
    pub(super) add: bool,
}

impl Tool for TagTool {
    type Args = TagArgs;
    type Output = TagOutput;

    fn name(&self) -> &'static str {
        if self.add { "add_tag" } else { "remove_tag" }
    }
    fn description(&self) -> String {
        if self.add {
            "Add a tag to a company, contact, lead, deal, activity or task. Adding a tag the record has changes nothing.".into()
        } else {
            "Remove a tag from a company, contact, lead, deal, activity or task. Removing a tag the record lacks changes nothing.".into()
        }
    }
    fn effect(&self) -> Effect {
        Effect::Write
    }
    fn example(&self) -> Value {
        json!({"record_type": "contact", "id": 1, "tag": "vip"})
    }
    fn targets(&self, a: &TagArgs) -> Vec<(RecordType, Id)> {
        vec![(a.record_type.record_type(), a.id)]
    }
    async fn call(&self, cx: &mut Call, a: TagArgs) -> Result<TagOutput> {
        let rt = a.record_type.record_type();
        let record = cx
            .tx
            .get_dyn(&cx.ctx, rt, a.id)
            .await
            .map_err(|e| ToolError::from(e).with_field("id"))?;
        cx.ensure_can_change(rt, &record)?;
        let changed = if self.add {
            cx.tx.add_tag(&cx.ctx, rt, a.id, &a.tag).await
        } else {
            cx.tx.remove_tag(&cx.ctx, rt, a.id, &a.tag).await
        }
        .map_err(|e| match ToolError::from(e) {
            err if err.code == ErrorCode::InvalidArgument => err.with_field("tag"),
            err => err,
        })?;
        Ok(TagOutput {
            record_type: a.record_type,
            id: a.id,
            tag: a.tag,
            changed,
        })
    }
}
