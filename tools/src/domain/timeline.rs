//! One record's timeline: activities, tasks, stage changes and audit entries, newest first.

use super::*;

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
