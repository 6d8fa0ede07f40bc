//! Domain operations beyond plain records: loose references, logging an
//! interaction, moving and closing deals, task routines, tags, users and the
//! pipeline summary. Each is a thin composition of store calls inside the
//! call's transaction.

use chrono::{DateTime, Utc};
use rapport_crm::filter::Direction as SortDir;
use rapport_crm::{Candidate, Filter, Id, ListQuery, LookupQuery, Op, RecordMap, RecordType};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::error::{ErrorCode, Result, ToolError};
use crate::records::id_of;
use crate::registry::Registry;
use crate::tool::{Call, Effect, Tool};
use rapport_crm::model::Role;

pub fn register(r: &mut Registry) {
    r.register(FindRecords);
    r.register(LogActivity);
    r.register(MoveDealStage);
    r.register(CloseDeal);
    r.register(CompleteTask);
    r.register(RescheduleTask);
    r.register(MyTasks);
    r.register(TagTool { add: true });
    r.register(TagTool { add: false });
    r.register(ListUsers);
    r.register(PipelineSummary);
    r.register(ReassignOwner);
    r.register(Timeline);
    r.register(Forecast);
    r.register(MergeContacts);
}

/// Every record of a listing, page by page.
async fn list_all(cx: &mut Call, rt: RecordType, filter: Filter) -> Result<Vec<RecordMap>> {
    let mut q = ListQuery::filtered(filter).limit(500);
    let mut out = Vec::new();
    loop {
        let page = cx.tx.list_dyn(&cx.ctx, rt, &q).await?;
        out.extend(page.items);
        match page.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => return Ok(out),
        }
    }
}

fn text(r: &RecordMap, k: &str) -> String {
    r.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

// ------------------------------------------------------------- find_records

/// Record types a loose reference can name.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Findable {
    Contact,
    Company,
    Lead,
    Deal,
    User,
}

impl Findable {
    fn record_type(self) -> RecordType {
        match self {
            Findable::Contact => RecordType::Contact,
            Findable::Company => RecordType::Company,
            Findable::Lead => RecordType::Lead,
            Findable::Deal => RecordType::Deal,
            Findable::User => RecordType::User,
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FindArgs {
    /// A name, an email, or "NAME at COMPANY" (e.g. "Dana at Acme").
    #[schemars(length(min = 1, max = 200))]
    pub query: String,
    /// Only these record types (default: contacts, companies, leads, deals, users).
    pub types: Option<Vec<Findable>>,
    /// At most this many candidates (default 10).
    #[schemars(range(min = 1, max = 50))]
    pub limit: Option<u32>,
    /// The request needs exactly one record: fail with `ambiguous` and the
    /// candidates when several match about equally well, `not_found` when none do.
    pub expect_one: Option<bool>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Found {
    pub record_type: String,
    pub id: Id,
    /// What a person recognises it by.
    pub label: String,
    /// How well it matches, 0–1.
    pub score: f64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct FindOutput {
    /// Best first.
    pub candidates: Vec<Found>,
}

/// Candidates this close to the best one are too close to choose between.
const AMBIGUITY_MARGIN: f64 = 0.05;

pub struct FindRecords;

impl Tool for FindRecords {
    type Args = FindArgs;
    type Output = FindOutput;

    fn name(&self) -> &'static str {
        "find_records"
    }
    fn description(&self) -> String {
        "Find records by a loose reference: a name, an email or \"NAME at COMPANY\". Returns ranked candidates with ids. Set expect_one when the request is about a single record: several close matches then fail with code ambiguous and the candidates, so ask the user which one instead of guessing.".into()
    }
    fn effect(&self) -> Effect {
        Effect::Read
    }
    fn example(&self) -> Value {
        json!({"query": "Dana at Acme", "types": ["contact"], "expect_one": true})
    }
    async fn call(&self, cx: &mut Call, args: FindArgs) -> Result<FindOutput> {
        let query = LookupQuery {
            text: args.query.clone(),
            types: args
                .types
                .unwrap_or_default()
                .into_iter()
                .map(Findable::record_type)
                .collect(),
            limit: Some(args.limit.unwrap_or(10) as usize),
        };
        let found: Vec<Candidate> =
            cx.store
                .lookup(&cx.ctx, &query)
                .await
                .map_err(|e| match ToolError::from(e) {
                    err if err.field.as_deref() == Some("text") => err.with_field("query"),
                    err => err,
                })?;
        if args.expect_one == Some(true) {
            let Some(best) = found.first() else {
                return Err(
                    ToolError::not_found(format!("nothing matches {:?}", args.query))
                        .with_field("query")
                        .with_hint("check the spelling, or ask the user for an email or company"),
                );
            };
            let close: Vec<Candidate> = found
                .iter()
                .filter(|c| best.score - c.score <= AMBIGUITY_MARGIN)
                .cloned()
                .collect();
            if close.len() > 1 {
                return Err(ToolError::ambiguous(&args.query, close).with_field("query"));
            }
        }
        Ok(FindOutput {
            candidates: found
                .into_iter()
                .map(|c| Found {
                    record_type: c.record_type.name().to_owned(),
                    id: c.id,
                    label: c.label,
                    score: c.score,
                })
                .collect(),
        })
    }
}

// ------------------------------------------------------------- log_activity

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActivityKind {
    Call,
    Email,
    Meeting,
    Note,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Inbound,
    Outbound,
    Internal,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    Normal,
    High,
    Urgent,
}

/// A follow-up task created with the activity.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FollowUp {
    pub title: String,
    /// ISO-8601 timestamp; the caller resolves "next Tuesday".
    pub due_at: Option<DateTime<Utc>>,
    pub priority: Option<Priority>,
    /// Who does it (default: you; only managers and admins assign to others).
    pub assignee_id: Option<Id>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogActivityArgs {
    pub kind: ActivityKind,
    /// What was said or written, in full.
    #[schemars(length(min = 1))]
    pub body: String,
    pub subject: Option<String>,
    pub direction: Option<Direction>,
    /// When it happened, ISO-8601 (default: now).
    pub occurred_at: Option<DateTime<Utc>>,
    #[schemars(range(min = 0))]
    pub duration_seconds: Option<i64>,
    /// How it ended, e.g. "connected", "left voicemail".
    pub outcome: Option<String>,
    pub contact_id: Option<Id>,
    /// Default: the contact's company.
    pub company_id: Option<Id>,
    pub deal_id: Option<Id>,
    pub lead_id: Option<Id>,
    pub follow_up: Option<FollowUp>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct LogActivityOutput {
    pub activity: RecordMap,
    pub follow_up_task: Option<RecordMap>,
}

fn put<T: Serialize>(m: &mut Map<String, Value>, k: &str, v: Option<T>) {
    if let Some(v) = v {
        m.insert(k.to_owned(), json!(v));
    }
}

pub struct LogActivity;

impl Tool for LogActivity {
    type Args = LogActivityArgs;
    type Output = LogActivityOutput;

    fn name(&self) -> &'static str {
        "log_activity"
    }
    fn description(&self) -> String {
        "Log a call, email, meeting or note, linked to a contact, company, deal and/or lead, optionally with a follow-up task, all in one step. The company defaults to the contact's company. Sentiment is not set here: the scoring pipeline fills it in after the activity is written. Returns the activity and the task.".into()
    }
    fn effect(&self) -> Effect {
        Effect::Write
    }
    fn example(&self) -> Value {
        json!({"kind": "call", "body": "Likes the Pro plan, worried about price."})
    }
    async fn call(&self, cx: &mut Call, a: LogActivityArgs) -> Result<LogActivityOutput> {
        let mut company_id = a.company_id;
        if let (Some(contact), None) = (a.contact_id, company_id) {
            let c = cx
                .tx
                .get_dyn(&cx.ctx, RecordType::Contact, contact)
                .await
                .map_err(|e| ToolError::from(e).with_field("contact_id"))?;
            company_id = c.get("company_id").and_then(Value::as_i64);
        }
        let mut f = Map::new();
        f.insert("kind".into(), json!(a.kind));
        f.insert("body".into(), json!(a.body));
        f.insert("owner_id".into(), json!(cx.caller.user_id));
        put(&mut f, "subject", a.subject);
        put(&mut f, "direction", a.direction);
        put(&mut f, "occurred_at", a.occurred_at);
        put(&mut f, "duration_seconds", a.duration_seconds);
        put(&mut f, "outcome", a.outcome);
        put(&mut f, "contact_id", a.contact_id);
        put(&mut f, "company_id", company_id);
        put(&mut f, "deal_id", a.deal_id);
        put(&mut f, "lead_id", a.lead_id);
        let activity = cx
            .tx
            .create_dyn(&cx.ctx, RecordType::Activity, Value::Object(f))
            .await?;
        let follow_up_task = match a.follow_up {
            None => None,
            Some(fu) => {
                let mut t = Map::new();
                t.insert("title".into(), json!(fu.title));
                put(&mut t, "due_at", fu.due_at);
                put(&mut t, "priority", fu.priority);
                put(&mut t, "assignee_id", fu.assignee_id);
                put(&mut t, "contact_id", a.contact_id);
                put(&mut t, "company_id", company_id);
                put(&mut t, "deal_id", a.deal_id);
                put(&mut t, "lead_id", a.lead_id);
                cx.ensure_owner_value(RecordType::Task, &mut t, true)
                    .map_err(|e| e.with_field("follow_up.assignee_id"))?;
                let task = cx
                    .tx
                    .create_dyn(&cx.ctx, RecordType::Task, Value::Object(t))
                    .await
                    .map_err(|e| {
                        let e = ToolError::from(e);
                        let field = e.field.as_ref().map(|f| format!("follow_up.{f}"));
                        ToolError { field, ..e }
                    })?;
                Some(task)
            }
        };
        Ok(LogActivityOutput {
            activity,
            follow_up_task,
        })
    }
}

// ------------------------------------------------------------- deals

#[derive(Debug, Serialize, JsonSchema)]
pub struct StageRef {
    pub id: Id,
    pub name: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DealMove {
    pub deal: RecordMap,
    pub from_stage: StageRef,
    pub to_stage: StageRef,
}

async fn stages_of(cx: &mut Call, pipeline_id: Id) -> Result<Vec<RecordMap>> {
    let q = ListQuery::filtered(Filter::eq("pipeline_id", pipeline_id))
        .sorted("position", SortDir::Asc)
        .limit(500);
    Ok(cx.tx.list_dyn(&cx.ctx, RecordType::Stage, &q).await?.items)
}

fn stage_ref(stages: &[RecordMap], id: Id) -> StageRef {
    let name = stages
        .iter()
        .find(|s| id_of(s) == id)
        .map(|s| text(s, "name"))
        .unwrap_or_default();
    StageRef { id, name }
}

async fn deal_for_change(cx: &mut Call, deal_id: Id) -> Result<RecordMap> {
    let deal = cx
        .tx
        .get_dyn(&cx.ctx, RecordType::Deal, deal_id)
        .await
        .map_err(|e| ToolError::from(e).with_field("deal_id"))?;
    cx.ensure_can_change(RecordType::Deal, &deal)?;
    Ok(deal)
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveArgs {
    pub deal_id: Id,
    /// The target stage's id; give this or `stage`.
    pub stage_id: Option<Id>,
    /// The target stage's name within the deal's pipeline (case-insensitive), e.g. "Proposal".
    pub stage: Option<String>,
}

pub struct MoveDealStage;

impl Tool for MoveDealStage {
    type Args = MoveArgs;
    type Output = DealMove;

    fn name(&self) -> &'static str {
        "move_deal_stage"
    }
    fn description(&self) -> String {
        "Move a deal to another open stage of its pipeline, by stage id or name. The stage history is recorded and the probability follows the new stage. To win or lose a deal use close_deal.".into()
    }
    fn effect(&self) -> Effect {
        Effect::Write
    }
    fn example(&self) -> Value {
        json!({"deal_id": 1, "stage": "Proposal"})
    }
    fn targets(&self, a: &MoveArgs) -> Vec<(RecordType, Id)> {
        vec![(RecordType::Deal, a.deal_id)]
    }
    async fn call(&self, cx: &mut Call, a: MoveArgs) -> Result<DealMove> {
        let deal = deal_for_change(cx, a.deal_id).await?;
        let pipeline = deal
            .get("pipeline_id")
            .and_then(Value::as_i64)
            .unwrap_or_default();
        let stages = stages_of(cx, pipeline).await?;
        let names = || {
            stages
                .iter()
                .map(|s| text(s, "name"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let target = match (a.stage_id, a.stage.as_deref()) {
            (Some(id), None) => stages.iter().find(|s| id_of(s) == id).ok_or_else(|| {
                ToolError::not_found(format!(
                    "stage {id} is not a stage of the deal's pipeline {pipeline}"
                ))
                .with_field("stage_id")
                .with_hint(format!("stages of this pipeline: {}", names()))
            })?,
            (None, Some(name)) => stages
                .iter()
                .find(|s| text(s, "name").eq_ignore_ascii_case(name.trim()))
                .ok_or_else(|| {
                    ToolError::not_found(format!("the deal's pipeline has no stage {name:?}"))
                        .with_field("stage")
                        .with_hint(format!("stages of this pipeline: {}", names()))
                })?,
            _ => {
                return Err(ToolError::invalid(
                    "stage",
                    "give exactly one of stage_id and stage",
                ));
            }
        };
        if text(target, "outcome") != "open" {
            return Err(ToolError::invalid(
                if a.stage_id.is_some() {
                    "stage_id"
                } else {
                    "stage"
                },
                format!("{} closes the deal", text(target, "name")),
            )
            .with_hint("use close_deal with a reason to win or lose a deal"));
        }
        let from = deal
            .get("stage_id")
            .and_then(Value::as_i64)
            .unwrap_or_default();
        let to = id_of(target);
        let (from_stage, to_stage) = (stage_ref(&stages, from), stage_ref(&stages, to));
        let deal = cx
            .tx
            .update_dyn(
                &cx.ctx,
                RecordType::Deal,
                a.deal_id,
                json!({"stage_id": to}),
            )
            .await?;
        Ok(DealMove {
            deal,
            from_stage,
            to_stage,
        })
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Won,
    Lost,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseArgs {
    pub deal_id: Id,
    pub outcome: Outcome,
    /// Why it was won or lost, in the customer's terms where possible.
    #[schemars(length(min = 1))]
    pub reason: String,
}

pub struct CloseDeal;

impl Tool for CloseDeal {
    type Args = CloseArgs;
    type Output = DealMove;

    fn name(&self) -> &'static str {
        "close_deal"
    }
    fn description(&self) -> String {
        "Mark an open deal won or lost, with the reason. It moves to its pipeline's won or lost stage; status, probability and close time follow.".into()
    }
    fn effect(&self) -> Effect {
        Effect::Write
    }
    fn example(&self) -> Value {
        json!({"deal_id": 1, "outcome": "lost", "reason": "Chose a cheaper competitor."})
    }
    fn targets(&self, a: &CloseArgs) -> Vec<(RecordType, Id)> {
        vec![(RecordType::Deal, a.deal_id)]
    }
    async fn call(&self, cx: &mut Call, a: CloseArgs) -> Result<DealMove> {
        if a.reason.trim().is_empty() {
            return Err(ToolError::invalid("reason", "must not be blank"));
        }
        let deal = deal_for_change(cx, a.deal_id).await?;
        if text(&deal, "status") != "open" {
            return Err(ToolError::new(
                ErrorCode::Conflict,
                format!("deal {} is already {}", a.deal_id, text(&deal, "status")),
            )
            .with_field("deal_id"));
        }
        let pipeline = deal
            .get("pipeline_id")
            .and_then(Value::as_i64)
            .unwrap_or_default();
        let stages = stages_of(cx, pipeline).await?;
        let want = match a.outcome {
            Outcome::Won => "won",
            Outcome::Lost => "lost",
        };
        let target = stages
            .iter()
            .find(|s| text(s, "outcome") == want)
            .ok_or_else(|| {
                ToolError::new(
                    ErrorCode::Conflict,
                    format!("pipeline {pipeline} has no {want} stage"),
                )
                .with_hint("an admin must add one to the pipeline")
            })?;
        let from = deal
            .get("stage_id")
            .and_then(Value::as_i64)
            .unwrap_or_default();
        let to = id_of(target);
        let (from_stage, to_stage) = (stage_ref(&stages, from), stage_ref(&stages, to));
        let deal = cx
            .tx
            .update_dyn(
                &cx.ctx,
                RecordType::Deal,
                a.deal_id,
                json!({"stage_id": to, "status": want, "close_reason": a.reason.trim()}),
            )
            .await?;
        Ok(DealMove {
            deal,
            from_stage,
            to_stage,
        })
    }
}

// ------------------------------------------------------------- tasks

async fn task_for_change(cx: &mut Call, task_id: Id) -> Result<RecordMap> {
    let task = cx
        .tx
        .get_dyn(&cx.ctx, RecordType::Task, task_id)
        .await
        .map_err(|e| ToolError::from(e).with_field("task_id"))?;
    cx.ensure_can_change(RecordType::Task, &task)?;
    Ok(task)
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskIdArgs {
    pub task_id: Id,
}

pub struct CompleteTask;

impl Tool for CompleteTask {
    type Args = TaskIdArgs;
    type Output = RecordMap;

    fn name(&self) -> &'static str {
        "complete_task"
    }
    fn description(&self) -> String {
        "Mark a task done (completed_at is set now). Completing a done task changes nothing. Returns the task.".into()
    }
    fn effect(&self) -> Effect {
        Effect::Write
    }
    fn example(&self) -> Value {
        json!({"task_id": 1})
    }
    fn targets(&self, a: &TaskIdArgs) -> Vec<(RecordType, Id)> {
        vec![(RecordType::Task, a.task_id)]
    }
    async fn call(&self, cx: &mut Call, a: TaskIdArgs) -> Result<RecordMap> {
        task_for_change(cx, a.task_id).await?;
        Ok(cx
            .tx
            .update_dyn(
                &cx.ctx,
                RecordType::Task,
                a.task_id,
                json!({"status": "done"}),
            )
            .await?)
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RescheduleArgs {
    pub task_id: Id,
    /// The new due time, ISO-8601 (e.g. 2026-11-24T09:00:00Z); the caller resolves "next Tuesday".
    pub due_at: DateTime<Utc>,
}

pub struct RescheduleTask;

impl Tool for RescheduleTask {
    type Args = RescheduleArgs;
    type Output = RecordMap;

    fn name(&self) -> &'static str {
        "reschedule_task"
    }
    fn description(&self) -> String {
        "Change when an open task is due. Returns the task.".into()
    }
    fn effect(&self) -> Effect {
        Effect::Write
    }
    fn example(&self) -> Value {
        json!({"task_id": 1, "due_at": "2026-11-24T09:00:00Z"})
    }
    fn targets(&self, a: &RescheduleArgs) -> Vec<(RecordType, Id)> {
        vec![(RecordType::Task, a.task_id)]
    }
    async fn call(&self, cx: &mut Call, a: RescheduleArgs) -> Result<RecordMap> {
        let task = task_for_change(cx, a.task_id).await?;
        if text(&task, "status") != "open" {
            return Err(ToolError::new(
                ErrorCode::Conflict,
                format!("task {} is {}, not open", a.task_id, text(&task, "status")),
            )
            .with_field("task_id"));
        }
        Ok(cx
            .tx
            .update_dyn(
                &cx.ctx,
                RecordType::Task,
                a.task_id,
                json!({"due_at": a.due_at}),
            )
            .await?)
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MyTasksArgs {
    /// The current time, ISO-8601: tasks due before it are overdue.
    pub now: DateTime<Utc>,
    /// Whose tasks (default: yours); find ids with list_users.
    pub user_id: Option<Id>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct MyTasksOutput {
    /// Open tasks due before `now`, oldest first.
    pub overdue: Vec<RecordMap>,
    /// Other open tasks, soonest first, then those without a due time.
    pub open: Vec<RecordMap>,
}

pub struct MyTasks;

impl Tool for MyTasks {
    type Args = MyTasksArgs;
    type Output = MyTasksOutput;

    fn name(&self) -> &'static str {
        "my_tasks"
    }
    fn description(&self) -> String {
        "Open tasks of a user (default: you), split into overdue (due before now) and upcoming. Pass the current time as now.".into()
    }
    fn effect(&self) -> Effect {
        Effect::Read
    }
    fn example(&self) -> Value {
        json!({"now": "2026-11-21T09:00:00Z"})
    }
    async fn call(&self, cx: &mut Call, a: MyTasksArgs) -> Result<MyTasksOutput> {
        let me = match a.user_id {
            None => cx.caller.user_id,
            Some(u) => {
                cx.tx
                    .get_dyn(&cx.ctx, RecordType::User, u)
                    .await
                    .map_err(|e| ToolError::from(e).with_field("user_id"))?;
                u
            }
        };
        let mut tasks = list_all(
            cx,
            RecordType::Task,
            Filter::and(vec![
                Filter::eq("assignee_id", me),
                Filter::eq("status", "open"),
            ]),
        )
        .await?;
        let due = |t: &RecordMap| {
            t.get("due_at")
                .and_then(Value::as_str)
                .and_then(rapport_crm::schema::parse_timestamp)
        };
        tasks.sort_by_key(|t| (due(t).is_none(), due(t), id_of(t)));
        let (overdue, open) = tasks
            .into_iter()
            .partition(|t| due(t).is_some_and(|d| d < a.now));
        Ok(MyTasksOutput { overdue, open })
    }
}

// ------------------------------------------------------------- tags

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
    fn record_type(self) -> RecordType {
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
    add: bool,
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

// ------------------------------------------------------------- users

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoleArg {
    Viewer,
    Rep,
    Manager,
    Admin,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListUsersArgs {
    /// Only users with this role.
    pub role: Option<RoleArg>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct UserOut {
    pub id: Id,
    pub name: String,
    pub email: String,
    pub role: String,
    pub timezone: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ListUsersOutput {
    pub users: Vec<UserOut>,
}

pub struct ListUsers;

impl Tool for ListUsers {
    type Args = ListUsersArgs;
    type Output = ListUsersOutput;

    fn name(&self) -> &'static str {
        "list_users"
    }
    fn description(&self) -> String {
        "List the workspace's users (id, name, email, role, time zone); use it to find the id of an owner or assignee. Read-only.".into()
    }
    fn effect(&self) -> Effect {
        Effect::Read
    }
    fn example(&self) -> Value {
        json!({"role": "rep"})
    }
    async fn call(&self, cx: &mut Call, a: ListUsersArgs) -> Result<ListUsersOutput> {
        let filter = match a.role {
            Some(r) => Filter::eq("role", json!(r)),
            None => Filter::cond("id", Op::Gt, 0),
        };
        let users = list_all(cx, RecordType::User, filter).await?;
        Ok(ListUsersOutput {
            users: users
                .iter()
                .map(|u| UserOut {
                    id: id_of(u),
                    name: text(u, "name"),
                    email: text(u, "email"),
                    role: text(u, "role"),
                    timezone: text(u, "timezone"),
                })
                .collect(),
        })
    }
}

// ------------------------------------------------------------- pipeline_summary

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SummaryArgs {
    /// The pipeline (default: the workspace's default pipeline).
    pub pipeline_id: Option<Id>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct StageSummary {
    pub stage_id: Id,
    pub name: String,
    pub outcome: String,
    pub deals: u64,
    /// Sum of deal values (currencies are not converted).
    pub total_value: f64,
    /// Sum of value × probability.
    pub weighted_value: f64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SummaryOutput {
    pub pipeline_id: Id,
    pub pipeline: String,
    /// In pipeline order.
    pub stages: Vec<StageSummary>,
    /// Open deals only.
    pub open_deals: u64,
    pub open_value: f64,
    pub open_weighted_value: f64,
}

pub struct PipelineSummary;

impl Tool for PipelineSummary {
    type Args = SummaryArgs;
    type Output = SummaryOutput;

    fn name(&self) -> &'static str {
        "pipeline_summary"
    }
    fn description(&self) -> String {
        "Summarise a pipeline: per stage the number of deals, their total value and their probability-weighted value, plus open totals. Values are summed as stored, without currency conversion.".into()
    }
    fn effect(&self) -> Effect {
        Effect::Read
    }
    fn example(&self) -> Value {
        json!({})
    }
    async fn call(&self, cx: &mut Call, a: SummaryArgs) -> Result<SummaryOutput> {
        let pipeline = match a.pipeline_id {
            Some(id) => cx
                .tx
                .get_dyn(&cx.ctx, RecordType::Pipeline, id)
                .await
                .map_err(|e| ToolError::from(e).with_field("pipeline_id"))?,
            None => {
                let q = ListQuery::default().sorted("id", SortDir::Asc).limit(500);
                let all = cx
                    .tx
                    .list_dyn(&cx.ctx, RecordType::Pipeline, &q)
                    .await?
                    .items;
                all.iter()
                    .find(|p| p.get("is_default") == Some(&Value::Bool(true)))
                    .or(all.first())
                    .cloned()
                    .ok_or_else(|| ToolError::not_found("this workspace has no pipeline"))?
            }
        };
        let pid = id_of(&pipeline);
        let stages = stages_of(cx, pid).await?;
        let deals = list_all(cx, RecordType::Deal, Filter::eq("pipeline_id", pid)).await?;
        let num = |d: &RecordMap, k: &str| d.get(k).and_then(Value::as_f64).unwrap_or(0.0);
        let mut out = SummaryOutput {
            pipeline_id: pid,
            pipeline: text(&pipeline, "name"),
            stages: Vec::new(),
            open_deals: 0,
            open_value: 0.0,
            open_weighted_value: 0.0,
        };
        for s in &stages {
            let sid = id_of(s);
            let mut st = StageSummary {
                stage_id: sid,
                name: text(s, "name"),
                outcome: text(s, "outcome"),
                deals: 0,
                total_value: 0.0,
                weighted_value: 0.0,
            };
            for d in deals
                .iter()
                .filter(|d| d.get("stage_id").and_then(Value::as_i64) == Some(sid))
            {
                let (v, w) = (num(d, "value"), num(d, "value") * num(d, "probability"));
                st.deals += 1;
                st.total_value += v;
                st.weighted_value += w;
                if text(d, "status") == "open" {
                    out.open_deals += 1;
                    out.open_value += v;
                    out.open_weighted_value += w;
                }
            }
            out.stages.push(st);
        }
        Ok(out)
    }
}

// ------------------------------------------------------------- reassign_owner

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReassignArgs {
    pub record_type: Taggable,
    pub id: Id,
    /// The user who takes the record over (the assignee, for a task).
    pub owner_id: Id,
}

pub struct ReassignOwner;

impl Tool for ReassignOwner {
    type Args = ReassignArgs;
    type Output = RecordMap;

    fn name(&self) -> &'static str {
        "reassign_owner"
    }
    fn description(&self) -> String {
        "Give a company, contact, lead, deal, activity or task to another user (a task's assignee). Managers and admins only; find user ids with list_users. Returns the record.".into()
    }
    fn effect(&self) -> Effect {
        Effect::Write
    }
    fn roles(&self) -> &'static [Role] {
        &[Role::Manager, Role::Admin]
    }
    fn example(&self) -> Value {
        json!({"record_type": "deal", "id": 1, "owner_id": 2})
    }
    fn targets(&self, a: &ReassignArgs) -> Vec<(RecordType, Id)> {
        vec![(a.record_type.record_type(), a.id)]
    }
    async fn call(&self, cx: &mut Call, a: ReassignArgs) -> Result<RecordMap> {
        let rt = a.record_type.record_type();
        let field = crate::tool::owner_field(rt).unwrap_or("owner_id");
        cx.tx
            .get_dyn(&cx.ctx, rt, a.id)
            .await
            .map_err(|e| ToolError::from(e).with_field("id"))?;
        cx.tx
            .get_dyn(&cx.ctx, RecordType::User, a.owner_id)
            .await
            .map_err(|e| ToolError::from(e).with_field("owner_id"))?;
        Ok(cx
            .tx
            .update_dyn(&cx.ctx, rt, a.id, json!({ field: a.owner_id }))
            .await?)
    }
}

// ------------------------------------------------------------- timeline

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TimelineOf {
    Company,
    Contact,
    Lead,
    Deal,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimelineArgs {
    pub record_type: TimelineOf,
    pub id: Id,
    /// At most this many events, the latest kept (default 100).
    #[schemars(range(min = 1, max = 500))]
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Event {
    /// ISO-8601: when the activity happened, the stage was entered, or the task
    /// was completed (else when it is due, else when it was created).
    pub at: String,
    /// activity, task or stage_change.
    pub kind: String,
    pub id: Id,
    /// One line: "call: Pricing", "task (open): Send pricing", "stage: Proposal".
    pub summary: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct TimelineOutput {
    /// Oldest first.
    pub events: Vec<Event>,
    /// Whether older events were left out.
    pub truncated: bool,
}

pub struct Timeline;

impl Tool for Timeline {
    type Args = TimelineArgs;
    type Output = TimelineOutput;

    fn name(&self) -> &'static str {
        "timeline"
    }
    fn description(&self) -> String {
        "The history of a company, contact, lead or deal in time order: its activities, tasks and (for a deal) stage changes, each as a one-line event with its id. Fetch details with get_activity or get_task.".into()
    }
    fn effect(&self) -> Effect {
        Effect::Read
    }
    fn example(&self) -> Value {
        json!({"record_type": "deal", "id": 1})
    }
    async fn call(&self, cx: &mut Call, a: TimelineArgs) -> Result<TimelineOutput> {
        let (rt, link) = match a.record_type {
            TimelineOf::Company => (RecordType::Company, "company_id"),
            TimelineOf::Contact => (RecordType::Contact, "contact_id"),
            TimelineOf::Lead => (RecordType::Lead, "lead_id"),
            TimelineOf::Deal => (RecordType::Deal, "deal_id"),
        };
        cx.tx
            .get_dyn(&cx.ctx, rt, a.id)
            .await
            .map_err(|e| ToolError::from(e).with_field("id"))?;
        let mut events = Vec::new();
        for act in list_all(cx, RecordType::Activity, Filter::eq(link, a.id)).await? {
            let title = act
                .get("subject")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| text(&act, "body").chars().take(80).collect());
            events.push(Event {
                at: text(&act, "occurred_at"),
                kind: "activity".into(),
                id: id_of(&act),
                summary: format!("{}: {title}", text(&act, "kind")),
            });
        }
        for task in list_all(cx, RecordType::Task, Filter::eq(link, a.id)).await? {
            let at = ["completed_at", "due_at", "created_at"]
                .iter()
                .find_map(|k| task.get(*k).and_then(Value::as_str))
                .unwrap_or_default()
                .to_owned();
            events.push(Event {
                at,
                kind: "task".into(),
                id: id_of(&task),
                summary: format!("task ({}): {}", text(&task, "status"), text(&task, "title")),
            });
        }
        if rt == RecordType::Deal {
            let deal = cx.tx.get_dyn(&cx.ctx, rt, a.id).await?;
            let pipeline = deal
                .get("pipeline_id")
                .and_then(Value::as_i64)
                .unwrap_or_default();
            let stages = stages_of(cx, pipeline).await?;
            for ch in cx.store.stage_history(&cx.ctx, a.id).await? {
                events.push(Event {
                    at: rapport_crm::schema::format_timestamp(&ch.changed_at),
                    kind: "stage_change".into(),
                    id: ch.id,
                    summary: format!("stage: {}", stage_ref(&stages, ch.to_stage_id).name),
                });
            }
        }
        let instant = |e: &Event| rapport_crm::schema::parse_timestamp(&e.at);
        events.sort_by(|x, y| instant(x).cmp(&instant(y)).then(x.id.cmp(&y.id)));
        let limit = a.limit.unwrap_or(100).clamp(1, 500) as usize;
        let truncated = events.len() > limit;
        if truncated {
            events.drain(..events.len() - limit);
        }
        Ok(TimelineOutput { events, truncated })
    }
}

// ------------------------------------------------------------- forecast

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForecastArgs {
    /// Only deals of this pipeline (default: every pipeline).
    pub pipeline_id: Option<Id>,
    /// Only deals of this owner.
    pub owner_id: Option<Id>,
}

#[derive(Debug, Default, Serialize, JsonSchema)]
pub struct Bucket {
    pub deals: u64,
    pub total_value: f64,
    /// Sum of value × probability.
    pub weighted_value: f64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Month {
    /// YYYY-MM of the expected close date.
    pub month: String,
    #[serde(flatten)]
    pub bucket: Bucket,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ForecastOutput {
    /// Open deals by expected close month, in order.
    pub months: Vec<Month>,
    /// Open deals without an expected close date.
    pub unscheduled: Bucket,
}

pub struct Forecast;

impl Tool for Forecast {
    type Args = ForecastArgs;
    type Output = ForecastOutput;

    fn name(&self) -> &'static str {
        "forecast"
    }
    fn description(&self) -> String {
        "Forecast open deals by expected close month: per month the number of deals, their total value and their probability-weighted value; deals without a date are reported apart. Values are summed as stored, without currency conversion.".into()
    }
    fn effect(&self) -> Effect {
        Effect::Read
    }
    fn example(&self) -> Value {
        json!({})
    }
    async fn call(&self, cx: &mut Call, a: ForecastArgs) -> Result<ForecastOutput> {
        let mut parts = vec![Filter::eq("status", "open")];
        if let Some(p) = a.pipeline_id {
            cx.tx
                .get_dyn(&cx.ctx, RecordType::Pipeline, p)
                .await
                .map_err(|e| ToolError::from(e).with_field("pipeline_id"))?;
            parts.push(Filter::eq("pipeline_id", p));
        }
        if let Some(o) = a.owner_id {
            cx.tx
                .get_dyn(&cx.ctx, RecordType::User, o)
                .await
                .map_err(|e| ToolError::from(e).with_field("owner_id"))?;
            parts.push(Filter::eq("owner_id", o));
        }
        let deals = list_all(cx, RecordType::Deal, Filter::and(parts)).await?;
        let mut months: std::collections::BTreeMap<String, Bucket> = Default::default();
        let mut unscheduled = Bucket::default();
        for d in &deals {
            let v = d.get("value").and_then(Value::as_f64).unwrap_or(0.0);
            let p = d.get("probability").and_then(Value::as_f64).unwrap_or(0.0);
            let b = match d.get("expected_close_date").and_then(Value::as_str) {
                Some(date) if date.len() >= 7 => months.entry(date[..7].to_owned()).or_default(),
                _ => &mut unscheduled,
            };
            b.deals += 1;
            b.total_value += v;
            b.weighted_value += v * p;
        }
        Ok(ForecastOutput {
            months: months
                .into_iter()
                .map(|(month, bucket)| Month { month, bucket })
                .collect(),
            unscheduled,
        })
    }
}

// ------------------------------------------------------------- merge_contacts

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
