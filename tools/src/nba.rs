//! Next-best actions as tools: `next_best_actions` (read) ranks what a rep
//! should do now, each action with a one-line reason built from its numbers,
//! and `nba_feedback` (write) records that the rep did, dismissed or snoozed
//! one. Both act for the caller; only managers and admins may look at another
//! rep's list. The engine is a service ([`ActionEngine`](crate::services::ActionEngine),
//! implemented in `rapport-pipelines`).

use chrono::{DateTime, Utc};
use rapport_crm::model::User;
use rapport_crm::{FeedbackStatus, Id};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{ErrorCode, Result, ToolError};
use crate::registry::Registry;
use crate::services::{ActionEngine, ActionFeedback};
use crate::tool::{Call, Effect, Tool};

pub fn register(r: &mut Registry) {
    r.register(NextBestActions);
    r.register(NbaFeedback);
}

/// The engine, or an error saying how to get one.
fn engine(cx: &Call) -> Result<std::sync::Arc<dyn ActionEngine>> {
    cx.services.actions.clone().ok_or_else(|| {
        ToolError::new(
            ErrorCode::NotAvailable,
            "next-best actions are not set up in this process",
        )
        .with_hint("answer from records (my_tasks, list_deals) instead")
    })
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NbaArgs {
    /// The rep whose list to show (a user id); default: you. Only managers and
    /// admins may ask for someone else's.
    #[serde(default)]
    pub rep_id: Option<Id>,
    /// How many actions, 1–50; default 10.
    #[serde(default)]
    pub limit: Option<u32>,
}

/// One ranked action.
// Field docs are schema descriptions; see tools::schema::recorded.
#[allow(missing_docs)]
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ActionOut {
    pub rank: usize,
    /// Give this to `nba_feedback`.
    pub action_key: String,
    /// follow_up_lead, revive_stalled_deal, close_date_passed, overdue_task,
    /// unanswered_inbound, account_at_risk, meeting_without_notes, onboard_won_deal.
    pub rule: String,
    pub record_type: String,
    pub record_id: Id,
    pub label: String,
    /// One line built from the numbers below; say it in your words, but add no facts.
    pub reason: String,
    pub priority: f64,
    /// Chance that acting moves the record forward, 0–1.
    pub probability: f64,
    pub probability_source: String,
    pub value: f64,
    pub urgency: f64,
}

// Field docs are schema descriptions; see tools::schema::recorded.
#[allow(missing_docs)]
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct NbaOutput {
    pub rep_id: Id,
    pub rep: String,
    pub generated_at: DateTime<Utc>,
    /// expected_value or urgency.
    pub strategy: String,
    pub experiment: Option<String>,
    pub candidates: usize,
    pub hidden_by_feedback: usize,
    pub lead_score_model: bool,
    pub churn_model: bool,
    pub actions: Vec<ActionOut>,
}

pub struct NextBestActions;

impl Tool for NextBestActions {
    type Args = NbaArgs;
    type Output = NbaOutput;

    fn name(&self) -> &'static str {
        "next_best_actions"
    }
    fn description(&self) -> String {
        "A rep's next-best actions, ranked, each with a one-line reason built from its numbers (score, days since last touch, value, sentiment). Use it for \"what should I do today?\"; record what the rep did with nba_feedback.".into()
    }
    fn effect(&self) -> Effect {
        Effect::Read
    }
    fn example(&self) -> Value {
        json!({"limit": 5})
    }
    fn available(&self, services: &crate::Services) -> bool {
        services.has_actions()
    }
    async fn call(&self, cx: &mut Call, a: NbaArgs) -> Result<NbaOutput> {
        let limit = a.limit.unwrap_or(10);
        if !(1..=50).contains(&limit) {
            return Err(ToolError::invalid(
                "limit",
                format!("{limit} is not between 1 and 50"),
            ));
        }
        let rep = a.rep_id.unwrap_or(cx.caller.user_id);
        if rep != cx.caller.user_id && !cx.caller.manages() {
            return Err(ToolError::denied(format!(
                "reps see their own next-best actions only; user {rep} is someone else"
            ))
            .with_field("rep_id")
            .with_hint("leave rep_id out to see yours, or ask a manager"));
        }
        cx.tx
            .get::<User>(&cx.ctx, rep)
            .await
            .map_err(|e| ToolError::from(e).with_field("rep_id"))?;
        let engine = engine(cx)?;
        let now = cx.services.now();
        engine
            .rank(&cx.store, &mut cx.tx, &cx.ctx, rep, limit as usize, now)
            .await
    }
}

/// What the rep did with an action.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FeedbackKind {
    Done,
    Dismissed,
    Snoozed,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackArgs {
    /// The action_key from next_best_actions, e.g. `overdue_task:task:12`.
    pub action_key: String,
    pub status: FeedbackKind,
    /// Why it was dismissed (dismissals only).
    #[serde(default)]
    pub reason: Option<String>,
    /// When a snooze ends (RFC 3339; snoozes only).
    #[serde(default)]
    pub until: Option<DateTime<Utc>>,
}

// Field docs are schema descriptions; see tools::schema::recorded.
#[allow(missing_docs)]
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct FeedbackOutput {
    pub id: Id,
    pub action_key: String,
    pub status: String,
    pub reason: Option<String>,
    pub snoozed_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

pub struct NbaFeedback;

impl Tool for NbaFeedback {
    type Args = FeedbackArgs;
    type Output = FeedbackOutput;

    fn name(&self) -> &'static str {
        "nba_feedback"
    }
    fn description(&self) -> String {
        "Record what you did with a next-best action: done, dismissed (with an optional reason) or snoozed until a time. Done and dismissed actions leave your list for a while, snoozed ones until the time given.".into()
    }
    fn effect(&self) -> Effect {
        Effect::Write
    }
    fn example(&self) -> Value {
        json!({"action_key": "overdue_task:task:1", "status": "done"})
    }
    fn available(&self, services: &crate::Services) -> bool {
        services.has_actions()
    }
    async fn call(&self, cx: &mut Call, a: FeedbackArgs) -> Result<FeedbackOutput> {
        let engine = engine(cx)?;
        let feedback = ActionFeedback {
            action_key: a.action_key,
            status: match a.status {
                FeedbackKind::Done => FeedbackStatus::Done,
                FeedbackKind::Dismissed => FeedbackStatus::Dismissed,
                FeedbackKind::Snoozed => FeedbackStatus::Snoozed,
            },
            reason: a.reason.filter(|r| !r.trim().is_empty()),
            until: a.until,
        };
        let now = cx.services.now();
        engine
            .feedback(&mut cx.tx, &cx.ctx, cx.caller.user_id, feedback, now)
            .await
    }
}
