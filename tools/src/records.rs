//! `create_X`, `get_X`, `update_X`, `delete_X` and `list_X` for the record types
//! people work with. One generic implementation per operation, thin over the
//! store's dynamic calls; argument schemas come from the crm's field
//! definitions, so the schema and the store's validation never disagree.

use rapport_crm::model::Role;
use rapport_crm::{Filter, Id, ListQuery, RecordMap, RecordType, Sort};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{Result, ToolError};
use crate::schema;
use crate::tool::{Call, Effect, Tool};

/// The record types that get the five generic tools.
pub const TYPES: [RecordType; 8] = [
    RecordType::Company,
    RecordType::Contact,
    RecordType::Lead,
    RecordType::Deal,
    RecordType::Activity,
    RecordType::Task,
    RecordType::Pipeline,
    RecordType::Stage,
];

fn names(rt: RecordType) -> [&'static str; 5] {
    match rt {
        RecordType::Company => [
            "create_company",
            "get_company",
            "update_company",
            "delete_company",
            "list_companies",
        ],
        RecordType::Contact => [
            "create_contact",
            "get_contact",
            "update_contact",
            "delete_contact",
            "list_contacts",
        ],
        RecordType::Lead => [
            "create_lead",
            "get_lead",
            "update_lead",
            "delete_lead",
            "list_leads",
        ],
        RecordType::Deal => [
            "create_deal",
            "get_deal",
            "update_deal",
            "delete_deal",
            "list_deals",
        ],
        RecordType::Activity => [
            "create_activity",
            "get_activity",
            "update_activity",
            "delete_activity",
            "list_activities",
        ],
        RecordType::Task => [
            "create_task",
            "get_task",
            "update_task",
            "delete_task",
            "list_tasks",
        ],
        RecordType::Pipeline => [
            "create_pipeline",
            "get_pipeline",
            "update_pipeline",
            "delete_pipeline",
            "list_pipelines",
        ],
        RecordType::Stage => [
            "create_stage",
            "get_stage",
            "update_stage",
            "delete_stage",
            "list_stages",
        ],
        other => unreachable!("no record tools for {other}"),
    }
}

/// What a model should know about a record type beyond its fields.
fn notes(rt: RecordType) -> &'static str {
    match rt {
        RecordType::Company => "A company is an account: an organisation you sell to.",
        RecordType::Contact => "A contact is a person, usually at a company (company_id).",
        RecordType::Lead => {
            "A lead is a prospect not yet qualified into a contact and deal; status moves new → working → qualified/unqualified → converted."
        }
        RecordType::Deal => {
            "A deal is an opportunity in a pipeline stage; its probability follows the stage. To change stage prefer move_deal_stage, to win or lose it close_deal."
        }
        RecordType::Activity => {
            "An activity is an email, call, meeting or note. To record an interaction prefer log_activity. Sentiment is filled in by the scoring pipeline, not by callers."
        }
        RecordType::Task => {
            "A task is a to-do with an assignee and an optional due time. See also complete_task, reschedule_task and my_tasks."
        }
        RecordType::Pipeline => {
            "A pipeline is the ordered list of stages deals move through; one is the default. Only managers and admins change pipelines."
        }
        RecordType::Stage => {
            "A stage belongs to a pipeline and has a position, a default win probability (0–1) and an outcome (open, won or lost). Only managers and admins change stages."
        }
        _ => "",
    }
}

/// Who may create and change records of a type: configuration that nobody
/// owns (pipelines, stages) is for managers and admins.
fn write_roles(rt: RecordType) -> &'static [Role] {
    match crate::tool::owner_field(rt) {
        Some(_) => Effect::Write.default_roles(),
        None => &[Role::Manager, Role::Admin],
    }
}

fn required_fields(rt: RecordType) -> String {
    rt.def()
        .fields
        .iter()
        .filter(|f| f.required)
        .map(|f| f.name)
        .collect::<Vec<_>>()
        .join(", ")
}

fn article(rt: RecordType) -> &'static str {
    if rt == RecordType::Activity {
        "an"
    } else {
        "a"
    }
}

pub(crate) fn id_of(record: &RecordMap) -> Id {
    record.get("id").and_then(Value::as_i64).unwrap_or_default()
}

/// The minimal fields of a new record of each type.
fn minimal(rt: RecordType) -> Value {
    match rt {
        RecordType::Company => json!({"name": "Acme Logistics"}),
        RecordType::Contact => json!({"first_name": "Dana", "last_name": "Lee"}),
        RecordType::Lead => json!({"name": "Sam Carter"}),
        RecordType::Deal => json!({"name": "Acme renewal", "value": 12000}),
        RecordType::Activity => json!({"kind": "note", "body": "Asked about the Pro plan."}),
        RecordType::Task => json!({"title": "Follow up with Dana"}),
        RecordType::Pipeline => json!({"name": "Renewals"}),
        RecordType::Stage => {
            json!({"pipeline_id": 1, "name": "Demo", "position": 6, "probability": 0.3})
        }
        _ => json!({}),
    }
}

/// An argument object with only a record id.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdArgs {
    /// The record's id.
    pub id: Id,
}

/// Filter, sort and page through records.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListArgs {
    /// Which records: a condition `{field, op, value}` or an `{and: [...]}` / `{or: [...]}` group.
    pub filter: Option<Filter>,
    /// Order by one field (default: id ascending).
    pub sort: Option<Sort>,
    /// Page size, 1–500 (default 50).
    #[schemars(range(min = 1, max = 500))]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One page of records; pass `next_cursor` back as `cursor` for the next.
// Field docs are schema descriptions; see tools::schema::recorded.
#[allow(missing_docs)]
#[derive(Debug, Serialize, JsonSchema)]
pub struct ListOutput {
    pub items: Vec<RecordMap>,
    pub next_cursor: Option<String>,
}

/// The `create_*` tool of one record type (`create_contact`): creates one record.
pub struct CreateRecord(pub RecordType);
/// The `get_*` tool of one record type: one record by id, with all its fields.
pub struct GetRecord(pub RecordType);
/// The `update_*` tool of one record type: changes only the given fields of one record.
pub struct UpdateRecord(pub RecordType);
/// The `delete_*` tool of one record type: deletes one record (destructive).
pub struct DeleteRecord(pub RecordType);
/// The `list_*` tool of one record type (`list_companies`): filters, sorts and pages.
pub struct ListRecords(pub RecordType);

impl Tool for CreateRecord {
    type Args = RecordMap;
    type Output = RecordMap;

    fn name(&self) -> &'static str {
        names(self.0)[0]
    }
    fn description(&self) -> String {
        let rt = self.0;
        let owner = crate::tool::owner_field(rt)
            .map(|f| format!(" {f} defaults to you."))
            .unwrap_or_default();
        format!(
            "Create {} {rt}. Required: {}. {}{owner} Returns the new {rt} with its id.",
            article(rt),
            required_fields(rt),
            notes(rt)
        )
    }
    fn effect(&self) -> Effect {
        Effect::Write
    }
    fn roles(&self) -> &'static [Role] {
        write_roles(self.0)
    }
    fn input_schema(&self) -> Value {
        schema::create_args(self.0.def())
    }
    fn example(&self) -> Value {
        minimal(self.0)
    }
    async fn call(&self, cx: &mut Call, mut fields: RecordMap) -> Result<RecordMap> {
        cx.ensure_owner_value(self.0, &mut fields, true)?;
        Ok(cx
            .tx
            .create_dyn(&cx.ctx, self.0, Value::Object(fields))
            .await?)
    }
}

impl Tool for GetRecord {
    type Args = IdArgs;
    type Output = RecordMap;

    fn name(&self) -> &'static str {
        names(self.0)[1]
    }
    fn description(&self) -> String {
        format!(
            "Get one {rt} by id, with all its fields. {}",
            notes(self.0),
            rt = self.0
        )
    }
    fn effect(&self) -> Effect {
        Effect::Read
    }
    fn example(&self) -> Value {
        json!({"id": 1})
    }
    async fn call(&self, cx: &mut Call, args: IdArgs) -> Result<RecordMap> {
        Ok(cx.tx.get_dyn(&cx.ctx, self.0, args.id).await?)
    }
}

impl Tool for UpdateRecord {
    type Args = RecordMap;
    type Output = RecordMap;

    fn name(&self) -> &'static str {
        names(self.0)[2]
    }
    fn description(&self) -> String {
        format!(
            "Change fields of {a} {rt}: give its id and only the fields to change (null clears a field; custom attributes merge key by key). Reps may change only their own records. Returns the {rt} as it is now.",
            rt = self.0,
            a = article(self.0)
        )
    }
    fn effect(&self) -> Effect {
        Effect::Write
    }
    fn roles(&self) -> &'static [Role] {
        write_roles(self.0)
    }
    fn input_schema(&self) -> Value {
        schema::update_args(self.0.def())
    }
    fn example(&self) -> Value {
        let mut v = minimal(self.0);
        v["id"] = json!(1);
        v
    }
    fn targets(&self, patch: &RecordMap) -> Vec<(RecordType, Id)> {
        patch
            .get("id")
            .and_then(Value::as_i64)
            .map(|id| vec![(self.0, id)])
            .unwrap_or_default()
    }
    async fn call(&self, cx: &mut Call, mut patch: RecordMap) -> Result<RecordMap> {
        let id = match patch.remove("id") {
            Some(v) => v
                .as_i64()
                .ok_or_else(|| ToolError::invalid("id", "expected an integer id"))?,
            None => return Err(ToolError::invalid("id", "missing field `id`")),
        };
        let before = cx.tx.get_dyn(&cx.ctx, self.0, id).await?;
        cx.ensure_can_change(self.0, &before)?;
        cx.ensure_owner_value(self.0, &mut patch, false)?;
        Ok(cx
            .tx
            .update_dyn(&cx.ctx, self.0, id, Value::Object(patch))
            .await?)
    }
}

impl Tool for DeleteRecord {
    type Args = IdArgs;
    type Output = RecordMap;

    fn name(&self) -> &'static str {
        names(self.0)[3]
    }
    fn description(&self) -> String {
        format!(
            "Delete {a} {rt} for good (managers and admins only). Fails with a conflict while other records still reference it. Returns the {rt} as it was.",
            rt = self.0,
            a = article(self.0)
        )
    }
    fn effect(&self) -> Effect {
        Effect::Destructive
    }
    fn example(&self) -> Value {
        json!({"id": 1})
    }
    fn targets(&self, args: &IdArgs) -> Vec<(RecordType, Id)> {
        vec![(self.0, args.id)]
    }
    async fn call(&self, cx: &mut Call, args: IdArgs) -> Result<RecordMap> {
        Ok(cx.tx.delete_dyn(&cx.ctx, self.0, args.id).await?)
    }
}

impl Tool for ListRecords {
    type Args = ListArgs;
    type Output = ListOutput;

    fn name(&self) -> &'static str {
        names(self.0)[4]
    }
    fn description(&self) -> String {
        let rt = self.0;
        let fields: Vec<&str> = rt.def().fields.iter().map(|f| f.name).collect();
        format!(
            "List {} matching a typed filter, sorted and paged. Filter fields: {}. Operators: eq, ne, lt, lte, gt, gte, in (list), contains (text, case-insensitive), is_null (true/false). Dates are ISO-8601. To find a record by a loose name or email prefer find_records.",
            rt.plural(),
            fields.join(", ")
        )
    }
    fn effect(&self) -> Effect {
        Effect::Read
    }
    fn input_schema(&self) -> Value {
        let mut s = schema::of::<ListArgs>();
        schema::filter::restrict(&mut s, self.0.def());
        s
    }
    fn example(&self) -> Value {
        json!({"filter": {"field": "id", "op": "gt", "value": 0}, "sort": {"field": "id", "direction": "desc"}, "limit": 10})
    }
    async fn call(&self, cx: &mut Call, args: ListArgs) -> Result<ListOutput> {
        let q = ListQuery {
            filter: args.filter,
            sort: args.sort,
            limit: args.limit,
            cursor: args.cursor,
        };
        let page = cx.tx.list_dyn(&cx.ctx, self.0, &q).await?;
        Ok(ListOutput {
            items: page.items,
            next_cursor: page.next_cursor,
        })
    }
}
