//! log_activity: an interaction with its links, and an optional follow-up task.

use super::*;

use rapport_crm::model::{ActivityKind, Direction, Priority};

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
    #[schemars(with = "crate::schema::recorded::LoggedKind")]
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

pub(super) fn put<T: Serialize>(m: &mut Map<String, Value>, k: &str, v: Option<T>) {
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
