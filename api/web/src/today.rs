//! Today, the page a rep lands on after sign-in: their ranked next-best
//! actions (each with its one-line reason, a link to the record, and done,
//! dismiss with a reason, snooze until a date), their overdue and upcoming
//! tasks (complete and reschedule in place), their deals at risk (stalled,
//! or past the expected close date) and their accounts at churn risk.
//!
//! The actions come from the `next_best_actions` tool and the feedback goes
//! to `nba_feedback`, through the registry as the signed-in user: the same
//! path as the chat and `rapport nba`, so each view writes its exposures and
//! each click its feedback, and the ranking experiment keeps counting what
//! the web shows. Task changes are `complete_task` and `reschedule_task`.
//! The other sections are reads of the store (no audit entry per view).

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use rapport_crm::filter::Direction;
use rapport_crm::{Filter, Id, ListQuery, RecordMap, RecordType};
use rapport_tools::ErrorCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::WebState;
use crate::auth::Signed;
use crate::error::WebError;
use crate::meta::{self, Labels};
use crate::render::{Page, money, oob_toast, when};

/// Actions asked of the engine.
pub const ACTIONS: u32 = 10;
/// A deal is stalled after this many days in its stage. The NBA engine's
/// own rule compares with each stage's typical duration (1.5 × 14 days when
/// history is short); the page uses that default so it needs no model.
pub const STALL_DAYS: i64 = 21;
/// Upcoming tasks: due within this many days.
pub const UPCOMING_DAYS: i64 = 14;
/// An account is at risk from this churn score on (the NBA engine's default).
pub const CHURN_THRESHOLD: f64 = 0.5;
/// Rows per section.
const SECTION_ROWS: usize = 20;

/// Reasons a dismissal can give (stored as the feedback's reason).
pub const DISMISS_REASONS: &[&str] = &[
    "not relevant",
    "already handled",
    "wrong timing",
    "not my account",
];

#[derive(Debug, Deserialize)]
pub struct TodayParams {
    pub done: Option<String>,
}

#[derive(Serialize)]
struct ActionView {
    /// An HTML id made from the action key.
    dom_id: String,
    key: String,
    rank: i64,
    label: String,
    reason: String,
    rule: String,
    href: Option<String>,
}

#[derive(Serialize)]
struct TaskView {
    id: Id,
    title: String,
    due: String,
    due_date: String,
    overdue: bool,
    about: Option<String>,
    about_href: Option<String>,
}

#[derive(Serialize)]
struct RiskView {
    id: Id,
    name: String,
    href: String,
    detail: String,
    value: String,
}

/// `GET /`: Today is where a signed-in person starts.
pub async fn home(_who: Signed) -> Redirect {
    Redirect::to("/today")
}

/// `GET /today`.
pub async fn page(
    State(state): State<WebState>,
    who: Signed,
    Query(params): Query<TodayParams>,
) -> Result<Response, WebError> {
    let now = state.registry.services().now();
    let mut page = Page::new("Today", &who, "today");
    insert_actions(&state, &who, &mut page).await?;
    insert_tasks(&state, &who, now, &mut page).await?;
    insert_deals_at_risk(&state, &who, now, &mut page).await?;
    insert_churn(&state, &who, &mut page).await?;
    let today = now.date_naive();
    page.insert("today", &today.format("%A, %-d %B %Y").to_string())
        .insert("min_date", &(today + Duration::days(1)).to_string())
        .insert("dismiss_reasons", DISMISS_REASONS)
        .insert("stall_days", &STALL_DAYS)
        .insert("notice", &notice(params.done.as_deref()));
    Ok(page.render(&state, "today.html")?.into_response())
}

fn notice(done: Option<&str>) -> Option<&'static str> {
    match done? {
        "done" => Some("Marked done."),
        "dismissed" => Some("Dismissed."),
        "snoozed" => Some("Snoozed."),
        "completed" => Some("Task completed."),
        "rescheduled" => Some("Task rescheduled."),
        _ => None,
    }
}

/// An action key (`overdue_task:task:12`) as an HTML id.
fn dom_id(key: &str) -> String {
    let mut s = String::from("nba-");
    s.extend(
        key.chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }),
    );
    s
}

async fn insert_actions(state: &WebState, who: &Signed, page: &mut Page) -> Result<(), WebError> {
    let out = state
        .registry
        .call(
            &state.store,
            &who.caller,
            "next_best_actions",
            json!({"limit": ACTIONS}),
        )
        .await;
    let out = match out {
        Ok(v) => v,
        Err(e) if e.code == ErrorCode::NotAvailable => {
            page.insert("actions", &Vec::<ActionView>::new())
                .insert("actions_unavailable", &true);
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let actions: Vec<ActionView> = out
        .get("actions")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(action_view).collect())
        .unwrap_or_default();
    page.insert("actions", &actions)
        .insert("actions_unavailable", &false)
        .insert(
            "hidden_by_feedback",
            &out.get("hidden_by_feedback")
                .and_then(Value::as_i64)
                .unwrap_or(0),
        );
    Ok(())
}

fn action_view(a: &Value) -> Option<ActionView> {
    let s = |k: &str| a.get(k).and_then(Value::as_str).unwrap_or_default();
    let key = s("action_key").to_owned();
    if key.is_empty() {
        return None;
    }
    let href = RecordType::parse(s("record_type"))
        .ok()
        .zip(a.get("record_id").and_then(Value::as_i64))
        .and_then(|(rt, id)| meta::href(rt, id));
    Some(ActionView {
        dom_id: dom_id(&key),
        rank: a.get("rank").and_then(Value::as_i64).unwrap_or_default(),
        label: s("label").to_owned(),
        reason: s("reason").to_owned(),
        rule: s("rule").replace('_', " "),
        href,
        key,
    })
}

/// The signed-in person's open tasks, split into overdue and upcoming.
async fn insert_tasks(
    state: &WebState,
    who: &Signed,
    now: DateTime<Utc>,
    page: &mut Page,
) -> Result<(), WebError> {
    let (overdue, upcoming) = tasks(state, who, now).await?;
    page.insert("overdue", &overdue)
        .insert("upcoming", &upcoming)
        .insert("upcoming_days", &UPCOMING_DAYS);
    Ok(())
}

async fn tasks(
    state: &WebState,
    who: &Signed,
    now: DateTime<Utc>,
) -> Result<(Vec<TaskView>, Vec<TaskView>), WebError> {
    let ctx = who.ctx();
    let q = ListQuery::filtered(Filter::and(vec![
        Filter::eq("assignee_id", who.user.id),
        Filter::eq("status", "open"),
    ]))
    .sorted("due_at", Direction::Asc)
    .limit(200);
    let rows = state
        .store
        .list_dyn(&ctx, RecordType::Task, &q)
        .await?
        .items;
    let due = |t: &RecordMap| {
        t.get("due_at")
            .and_then(Value::as_str)
            .and_then(rapport_crm::schema::parse_timestamp)
    };
    let horizon = now + Duration::days(UPCOMING_DAYS);
    let (mut overdue, mut upcoming): (Vec<RecordMap>, Vec<RecordMap>) = (Vec::new(), Vec::new());
    for t in rows {
        match due(&t) {
            Some(d) if d < now => overdue.push(t),
            Some(d) if d <= horizon => upcoming.push(t),
            _ => {}
        }
    }
    overdue.truncate(SECTION_ROWS);
    upcoming.truncate(SECTION_ROWS);
    let fields: Vec<&rapport_crm::schema::FieldDef> = ["deal_id", "contact_id", "company_id"]
        .iter()
        .filter_map(|f| RecordType::Task.def().field(f))
        .collect();
    let all: Vec<RecordMap> = overdue.iter().chain(&upcoming).cloned().collect();
    let labels = Labels::load(&state.store, &ctx, &all, &fields).await?;
    let view = |t: &RecordMap, is_overdue: bool| {
        let about = [
            ("deal_id", RecordType::Deal),
            ("contact_id", RecordType::Contact),
            ("company_id", RecordType::Company),
        ]
        .iter()
        .find_map(|(f, rt)| {
            let id = t.get(*f).and_then(Value::as_i64)?;
            Some((labels.get(*rt, id)?.to_owned(), meta::href(*rt, id)))
        });
        let d = due(t);
        TaskView {
            id: t.get("id").and_then(Value::as_i64).unwrap_or_default(),
            title: meta::label(RecordType::Task, t),
            due: d
                .map(|d| when(&rapport_crm::schema::format_timestamp(&d)))
                .unwrap_or_default(),
            due_date: d.map(|d| d.date_naive().to_string()).unwrap_or_default(),
            overdue: is_overdue,
            about_href: about.as_ref().and_then(|a| a.1.clone()),
            about: about.map(|a| a.0),
        }
    };
    Ok((
        overdue.iter().map(|t| view(t, true)).collect(),
        upcoming.iter().map(|t| view(t, false)).collect(),
    ))
}

/// Open deals of the signed-in person whose expected close date has passed
/// or that have sat in their stage for [`STALL_DAYS`] or more.
async fn insert_deals_at_risk(
    state: &WebState,
    who: &Signed,
    now: DateTime<Utc>,
    page: &mut Page,
) -> Result<(), WebError> {
    let ctx = who.ctx();
    let q = ListQuery::filtered(Filter::and(vec![
        Filter::eq("owner_id", who.user.id),
        Filter::eq("status", "open"),
    ]))
    .sorted("value", Direction::Desc)
    .limit(rapport_crm::filter::MAX_LIMIT);
    let deals = state
        .store
        .list_dyn(&ctx, RecordType::Deal, &q)
        .await?
        .items;
    let today = now.date_naive();
    let mut out = Vec::new();
    for d in &deals {
        let Some(detail) = deal_risk(d, today, now) else {
            continue;
        };
        let id = d.get("id").and_then(Value::as_i64).unwrap_or_default();
        out.push(RiskView {
            id,
            name: meta::label(RecordType::Deal, d),
            href: format!("/deals/{id}"),
            detail,
            value: money(d.get("value").and_then(Value::as_f64).unwrap_or_default()),
        });
        if out.len() == SECTION_ROWS {
            break;
        }
    }
    page.insert("deals_at_risk", &out);
    Ok(())
}

/// Why a deal is at risk, if it is.
fn deal_risk(d: &RecordMap, today: NaiveDate, now: DateTime<Utc>) -> Option<String> {
    let close = d
        .get("expected_close_date")
        .and_then(Value::as_str)
        .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok());
    let in_stage = d
        .get("stage_entered_at")
        .and_then(Value::as_str)
        .and_then(rapport_crm::schema::parse_timestamp)
        .map(|t| (now - t).num_days());
    let mut why = Vec::new();
    if let Some(c) = close.filter(|c| *c < today) {
        let days = (today - c).num_days();
        why.push(format!(
            "expected to close {c}, {days} day{} ago",
            plural(days)
        ));
    }
    if let Some(days) = in_stage.filter(|d| *d >= STALL_DAYS) {
        why.push(format!("no stage change for {days} days"));
    }
    if why.is_empty() {
        return None;
    }
    let mut s = why.join("; ");
    if let Some(first) = s.get(0..1) {
        let upper = first.to_uppercase();
        s.replace_range(0..1, &upper);
    }
    Some(s)
}

fn plural(n: i64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The signed-in person's accounts whose churn score is at or above the
/// threshold, highest first; or why there are none.
async fn insert_churn(state: &WebState, who: &Signed, page: &mut Page) -> Result<(), WebError> {
    let ctx = who.ctx();
    let scores = state.store.scores_of_task(&ctx, "churn").await?;
    let scored = scores.iter().any(|(rt, _, _)| rt == "company");
    let mut risky: Vec<(Id, f64)> = scores
        .into_iter()
        .filter(|(rt, _, s)| rt == "company" && *s >= CHURN_THRESHOLD)
        .map(|(_, id, s)| (id, s))
        .collect();
    risky.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut out = Vec::new();
    for chunk in risky.chunks(200) {
        let ids: Vec<Id> = chunk.iter().map(|(id, _)| *id).collect();
        let q = ListQuery::filtered(Filter::and(vec![
            Filter::cond("id", rapport_crm::Op::In, json!(ids)),
            Filter::eq("owner_id", who.user.id),
        ]))
        .limit(200);
        let mine = state
            .store
            .list_dyn(&ctx, RecordType::Company, &q)
            .await?
            .items;
        for (id, score) in chunk {
            if let Some(c) = mine
                .iter()
                .find(|c| c.get("id").and_then(Value::as_i64) == Some(*id))
            {
                out.push(RiskView {
                    id: *id,
                    name: meta::label(RecordType::Company, c),
                    href: format!("/companies/{id}"),
                    detail: format!("churn risk {:.0}%", score * 100.0),
                    value: String::new(),
                });
            }
        }
        if out.len() >= SECTION_ROWS {
            out.truncate(SECTION_ROWS);
            break;
        }
    }
    page.insert("churn_scored", &scored)
        .insert("accounts_at_risk", &out)
        .insert(
            "churn_threshold",
            &format!("{:.0}%", CHURN_THRESHOLD * 100.0),
        );
    Ok(())
}

fn form_get<'a>(form: &'a [(String, String)], k: &str) -> Option<&'a str> {
    form.iter()
        .find(|(key, _)| key == k)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// A date input's value as the start of that day (UTC), after today.
fn future_date(raw: Option<&str>, field: &str, now: DateTime<Utc>) -> Result<NaiveDate, WebError> {
    let raw = raw.ok_or_else(|| WebError::BadRequest(format!("{field}: choose a date")))?;
    let d = NaiveDate::parse_from_str(raw, "%Y-%m-%d").map_err(|_| {
        WebError::BadRequest(format!("{field}: expected a date such as 2026-12-31"))
    })?;
    if d <= now.date_naive() {
        return Err(WebError::BadRequest(format!(
            "{field}: choose a day after today"
        )));
    }
    Ok(d)
}

/// `POST /today/actions` (`action_key`, `status` done|dismissed|snoozed,
/// `reason` for a dismissal, `until` a date for a snooze): `nba_feedback`.
/// htmx gets nothing in place of the action (it leaves the list) and a
/// toast; a plain form is redirected to Today.
pub async fn feedback(
    State(state): State<WebState>,
    who: Signed,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let key = form_get(&form, "action_key")
        .ok_or_else(|| WebError::BadRequest("which action? (action_key is missing)".into()))?;
    let status = form_get(&form, "status").unwrap_or_default();
    let mut args = json!({"action_key": key, "status": status});
    let (done, toast) = match status {
        "done" => ("done", "Marked done.".to_owned()),
        "dismissed" => {
            let reason = form_get(&form, "reason")
                .ok_or_else(|| WebError::BadRequest("reason: say why you dismiss it".into()))?;
            args["reason"] = json!(reason);
            ("dismissed", format!("Dismissed ({reason})."))
        }
        "snoozed" => {
            let now = state.registry.services().now();
            let until = future_date(form_get(&form, "until"), "until", now)?;
            args["until"] = json!(format!("{until}T00:00:00Z"));
            ("snoozed", format!("Snoozed until {until}."))
        }
        other => {
            return Err(WebError::BadRequest(format!(
                "status: expected done, dismissed or snoozed, got {other:?}"
            )));
        }
    };
    state
        .registry
        .call(&state.store, &who.caller, "nba_feedback", args)
        .await?;
    if !who.htmx {
        return Ok(Redirect::to(&format!("/today?done={done}")).into_response());
    }
    Ok(Html(oob_toast(&toast)).into_response())
}

/// The tasks section alone, after a change, with a toast.
async fn tasks_fragment(state: &WebState, who: &Signed, toast: &str) -> Result<Response, WebError> {
    let now = state.registry.services().now();
    let mut page = Page::new("Today", who, "today");
    insert_tasks(state, who, now, &mut page).await?;
    page.insert(
        "min_date",
        &(now.date_naive() + Duration::days(1)).to_string(),
    );
    let mut html = page.render(state, "_today_tasks.html")?.0;
    html.push_str(&oob_toast(toast));
    Ok(Html(html).into_response())
}

/// `POST /today/tasks/{id}/complete`: `complete_task`.
pub async fn complete_task(
    State(state): State<WebState>,
    who: Signed,
    Path(id): Path<Id>,
) -> Result<Response, WebError> {
    let task = state
        .registry
        .call(
            &state.store,
            &who.caller,
            "complete_task",
            json!({"task_id": id}),
        )
        .await?;
    if !who.htmx {
        return Ok(Redirect::to("/today?done=completed").into_response());
    }
    let title = task.get("title").and_then(Value::as_str).unwrap_or("Task");
    tasks_fragment(&state, &who, &format!("Completed: {title}.")).await
}

/// `POST /today/tasks/{id}/reschedule` (`due`, a date): `reschedule_task`,
/// due at the end of that day's working hours (UTC), as the record page's
/// "Add a task" does.
pub async fn reschedule_task(
    State(state): State<WebState>,
    who: Signed,
    Path(id): Path<Id>,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let now = state.registry.services().now();
    let due = future_date(form_get(&form, "due"), "due", now)?;
    let task = state
        .registry
        .call(
            &state.store,
            &who.caller,
            "reschedule_task",
            json!({"task_id": id, "due_at": format!("{due}T17:00:00Z")}),
        )
        .await?;
    if !who.htmx {
        return Ok(Redirect::to("/today?done=rescheduled").into_response());
    }
    let title = task.get("title").and_then(Value::as_str).unwrap_or("Task");
    tasks_fragment(&state, &who, &format!("{title}: now due {due}.")).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_keys_become_html_ids() {
        assert_eq!(dom_id("overdue_task:task:12"), "nba-overdue-task-task-12");
    }

    #[test]
    fn deals_past_their_close_date_or_stalled_are_at_risk() {
        let now = rapport_crm::schema::parse_timestamp("2026-12-07T10:00:00Z").unwrap();
        let today = now.date_naive();
        let deal = |close: &str, entered: &str| -> RecordMap {
            serde_json::from_value(
                json!({"expected_close_date": close, "stage_entered_at": entered}),
            )
            .unwrap()
        };
        assert_eq!(
            deal_risk(&deal("2026-12-06", "2026-12-01T00:00:00Z"), today, now).as_deref(),
            Some("Expected to close 2026-12-06, 1 day ago")
        );
        assert_eq!(
            deal_risk(&deal("2027-01-01", "2026-11-01T00:00:00Z"), today, now).as_deref(),
            Some("No stage change for 36 days")
        );
        assert_eq!(
            deal_risk(&deal("2027-01-01", "2026-12-01T00:00:00Z"), today, now),
            None
        );
    }

    #[test]
    fn snoozes_and_reschedules_need_a_later_day() {
        let now = rapport_crm::schema::parse_timestamp("2026-12-07T10:00:00Z").unwrap();
        assert!(future_date(Some("2026-12-08"), "until", now).is_ok());
        assert!(future_date(Some("2026-12-07"), "until", now).is_err());
        assert!(future_date(Some("soon"), "until", now).is_err());
        assert!(future_date(None, "until", now).is_err());
    }
}
