//! Task routines: complete, reschedule, my open tasks.

use super::*;

pub(super) async fn task_for_change(cx: &mut Call, task_id: Id) -> Result<RecordMap> {
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
