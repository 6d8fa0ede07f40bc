//! Domain types: the records of a CRM as plain data. No I/O happens here; the
//! store turns rows into these types through serde, field names matching the
//! columns in [`crate::schema`].

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::schema::RecordType;

pub type Id = i64;
/// HubSpot-style custom properties: any JSON object per record.
pub type Custom = BTreeMap<String, Value>;

/// Who is acting, for whom, and through which door. Every store call takes one;
/// the workspace in it is part of every query, so nothing crosses workspaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ctx {
    pub workspace_id: Id,
    /// The acting user; `None` only for system jobs (seeding, migrations).
    pub actor_id: Option<Id>,
    pub source: Source,
    /// The agent session this action belongs to, if any.
    pub session_id: Option<String>,
}

impl Ctx {
    pub fn new(workspace_id: Id, actor_id: Option<Id>, source: Source) -> Self {
        Ctx {
            workspace_id,
            actor_id,
            source,
            session_id: None,
        }
    }

    pub fn with_session(mut self, session_id: impl Into<String>) -> Self {
        self.session_id = Some(session_id.into());
        self
    }
}

/// Where a write came from, as recorded in the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Cli,
    Api,
    Agent,
    Pipeline,
    Mcp,
    /// The web app (browser sessions).
    Web,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Cli => "cli",
            Source::Api => "api",
            Source::Agent => "agent",
            Source::Pipeline => "pipeline",
            Source::Mcp => "mcp",
            Source::Web => "web",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Rep,
    Manager,
    Admin,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workspace {
    pub id: Id,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: Id,
    pub workspace_id: Id,
    pub name: String,
    pub email: String,
    pub role: Role,
    /// IANA time zone name, e.g. `Europe/Berlin`.
    pub timezone: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Company {
    pub id: Id,
    pub workspace_id: Id,
    pub name: String,
    pub domain: Option<String>,
    pub industry: Option<String>,
    pub employees: Option<i64>,
    pub annual_revenue: Option<f64>,
    pub country: Option<String>,
    pub city: Option<String>,
    pub owner_id: Option<Id>,
    pub custom: Custom,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    pub id: Id,
    pub workspace_id: Id,
    pub first_name: String,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub title: Option<String>,
    pub company_id: Option<Id>,
    pub owner_id: Option<Id>,
    pub custom: Custom,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Contact {
    pub fn full_name(&self) -> String {
        match &self.last_name {
            Some(last) => format!("{} {last}", self.first_name),
            None => self.first_name.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeadStatus {
    New,
    Working,
    Qualified,
    Unqualified,
    Converted,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lead {
    pub id: Id,
    pub workspace_id: Id,
    pub name: String,
    pub email: Option<String>,
    pub company_name: Option<String>,
    pub title: Option<String>,
    /// Where the lead came from: web, referral, event, outbound, partner, import…
    pub source: Option<String>,
    pub status: LeadStatus,
    pub owner_id: Option<Id>,
    pub company_id: Option<Id>,
    pub contact_id: Option<Id>,
    pub converted_at: Option<DateTime<Utc>>,
    pub custom: Custom,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pipeline {
    pub id: Id,
    pub workspace_id: Id,
    pub name: String,
    pub is_default: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What reaching a stage means for a deal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageOutcome {
    Open,
    Won,
    Lost,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    pub id: Id,
    pub workspace_id: Id,
    pub pipeline_id: Id,
    pub name: String,
    /// Order within the pipeline, from 0.
    pub position: i64,
    /// Default win probability of a deal in this stage, 0–1.
    pub probability: f64,
    pub outcome: StageOutcome,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DealStatus {
    Open,
    Won,
    Lost,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deal {
    pub id: Id,
    pub workspace_id: Id,
    pub name: String,
    pub pipeline_id: Id,
    pub stage_id: Id,
    pub value: f64,
    /// ISO 4217 code, e.g. `USD`.
    pub currency: String,
    /// Win probability 0–1; follows the stage's default unless set explicitly.
    pub probability: f64,
    pub expected_close_date: Option<NaiveDate>,
    pub status: DealStatus,
    /// Why it was won or lost.
    pub close_reason: Option<String>,
    pub closed_at: Option<DateTime<Utc>>,
    pub company_id: Option<Id>,
    pub lead_id: Option<Id>,
    pub owner_id: Option<Id>,
    pub stage_entered_at: DateTime<Utc>,
    /// The deal's contacts (stored in a link table).
    #[serde(default)]
    pub contact_ids: Vec<Id>,
    pub custom: Custom,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One move of a deal between stages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageChange {
    pub id: Id,
    pub deal_id: Id,
    pub from_stage_id: Option<Id>,
    pub to_stage_id: Id,
    pub changed_by: Option<Id>,
    pub changed_at: DateTime<Utc>,
    /// Seconds the deal spent in the stage it left (none for the first entry).
    pub seconds_in_previous: Option<i64>,
}

/// What kind of interaction an activity records. The one list of kinds: the
/// schema's column check and the tools' arguments are built from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivityKind {
    Email,
    Call,
    Meeting,
    Note,
}

names_schema!(ActivityKind);

impl ActivityKind {
    /// Every kind, in the schema's order.
    pub const ALL: [ActivityKind; 4] = [
        ActivityKind::Email,
        ActivityKind::Call,
        ActivityKind::Meeting,
        ActivityKind::Note,
    ];

    /// The stored name (`meeting`).
    pub const fn as_str(self) -> &'static str {
        match self {
            ActivityKind::Email => "email",
            ActivityKind::Call => "call",
            ActivityKind::Meeting => "meeting",
            ActivityKind::Note => "note",
        }
    }
}

/// Who an interaction went from and to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Inbound,
    Outbound,
    Internal,
}

names_schema!(Direction);

impl Direction {
    /// Every direction, in the schema's order.
    pub const ALL: [Direction; 3] = [Direction::Inbound, Direction::Outbound, Direction::Internal];

    /// The stored name (`inbound`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
            Direction::Internal => "internal",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    pub id: Id,
    pub workspace_id: Id,
    pub kind: ActivityKind,
    pub direction: Option<Direction>,
    pub subject: Option<String>,
    pub body: String,
    pub occurred_at: DateTime<Utc>,
    pub duration_seconds: Option<i64>,
    pub outcome: Option<String>,
    /// −1 (negative) … 1 (positive); empty until scored.
    pub sentiment: Option<f64>,
    pub contact_id: Option<Id>,
    pub company_id: Option<Id>,
    pub deal_id: Option<Id>,
    pub lead_id: Option<Id>,
    pub owner_id: Option<Id>,
    pub custom: Custom,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Open,
    Done,
    Cancelled,
}

/// How urgent a task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    Normal,
    High,
    Urgent,
}

names_schema!(Priority);

impl Priority {
    /// Every priority, lowest first.
    pub const ALL: [Priority; 4] = [
        Priority::Low,
        Priority::Normal,
        Priority::High,
        Priority::Urgent,
    ];

    /// The stored name (`urgent`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: Id,
    pub workspace_id: Id,
    pub title: String,
    pub description: Option<String>,
    pub due_at: Option<DateTime<Utc>>,
    pub priority: Priority,
    pub status: TaskStatus,
    pub assignee_id: Option<Id>,
    pub completed_at: Option<DateTime<Utc>>,
    pub contact_id: Option<Id>,
    pub company_id: Option<Id>,
    pub deal_id: Option<Id>,
    pub lead_id: Option<Id>,
    pub custom: Custom,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What the index outbox says changed: an activity to (re)index or remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxOp {
    Upsert,
    Delete,
}

/// One pending entry of the index outbox (see the `index_outbox` migration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// Queue order; acknowledging by `seq` leaves later changes queued.
    pub seq: i64,
    pub workspace_id: Id,
    pub activity_id: Id,
    pub op: OutboxOp,
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: Id,
    pub workspace_id: Id,
    pub actor_id: Option<Id>,
    pub source: String,
    pub session_id: Option<String>,
    /// create, update, delete, tag, untag, …
    pub action: String,
    pub record_type: String,
    pub record_id: Option<Id>,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub at: DateTime<Utc>,
}

/// A typed record the store can read and write generically.
pub trait Record: Serialize + serde::de::DeserializeOwned + Send + Unpin + 'static {
    const TYPE: RecordType;
}

macro_rules! record {
    ($($t:ty => $rt:ident),* $(,)?) => {
        $(impl Record for $t { const TYPE: RecordType = RecordType::$rt; })*
    };
}

record!(
    User => User,
    Company => Company,
    Contact => Contact,
    Lead => Lead,
    Pipeline => Pipeline,
    Stage => Stage,
    Deal => Deal,
    Activity => Activity,
    Task => Task,
);

/// A conversation with the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentSession {
    pub id: Id,
    pub workspace_id: Id,
    pub user_id: Id,
    pub title: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One entry of a session's log (a message, a tool result, a turn's figures);
/// the body's shape belongs to the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionEntry {
    pub id: Id,
    pub session_id: Id,
    pub kind: String,
    pub body: Value,
    pub at: DateTime<Utc>,
}

/// Where a proposed tool call stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProposalStatus {
    /// Waits for the user.
    Pending,
    /// Approved (possibly edited) and run.
    Applied,
    Rejected,
    /// Approved, but a record it would change had changed since: nothing written.
    Conflict,
    /// Approved, and the tool returned an error: nothing written.
    Failed,
}

impl ProposalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ProposalStatus::Pending => "pending",
            ProposalStatus::Applied => "applied",
            ProposalStatus::Rejected => "rejected",
            ProposalStatus::Conflict => "conflict",
            ProposalStatus::Failed => "failed",
        }
    }
}

/// A tool call that waits for a person's approval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    pub id: Id,
    pub session_id: Id,
    /// The model's id for the call, answered by the tool result message.
    pub call_id: String,
    pub tool: String,
    pub args: Value,
    /// The records the call would change, as they were when it was proposed.
    pub snapshot: Value,
    pub reason: String,
    pub status: ProposalStatus,
    pub result: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
}
