//! A record's page, the 360° view: its fields (each editable in place), its
//! tags, the records related to it, its score with the reasons where a model
//! is trained, the sentiment of recent interactions, and one timeline of
//! activities, tasks, stage changes and audit entries, newest first, paged.
//! Quick actions log a call or note, add a task, or tag it.
//!
//! Every change is a tool call as the signed-in user (`update_company`,
//! `log_activity`, `create_task`, `add_tag`), so it is permission-checked,
//! runs in one transaction and is audited with source `web`.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Redirect, Response};
use rapport_crm::filter::Direction;
use rapport_crm::model::AuditEntry;
use rapport_crm::schema::{FieldDef, FieldType};
use rapport_crm::{Filter, Id, ListQuery, Op, RecordMap, RecordType};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::WebState;
use crate::auth::Signed;
use crate::error::WebError;
use crate::meta::{self, Kind, Labels};
use crate::render::{Page, oob_toast};

/// Timeline entries per page.
pub const TIMELINE_PAGE: usize = 20;

#[derive(Debug, Deserialize)]
pub struct PageParams {
    /// A field to show in edit mode (the no-JavaScript path of inline edit).
    pub edit: Option<String>,
    /// Timeline page, from 0.
    pub tpage: Option<usize>,
    pub done: Option<String>,
}

#[derive(Serialize)]
struct Choice {
    value: String,
    label: String,
    selected: bool,
}

/// One field as the page shows it.
#[derive(Serialize)]
pub struct FieldView {
    name: String,
    label: String,
    text: String,
    href: Option<String>,
    editable: bool,
    editing: bool,
    input_type: &'static str,
    input_value: String,
    long: bool,
    options: Vec<Choice>,
    step: &'static str,
}

#[derive(Serialize)]
struct Related {
    title: String,
    count: i64,
    items: Vec<RelatedItem>,
    more_href: Option<String>,
}

#[derive(Serialize)]
struct RelatedItem {
    label: String,
    href: String,
    detail: String,
}

#[derive(Serialize)]
struct TimelineEntry {
    at: String,
    sort_key: String,
    icon: &'static str,
    title: String,
    detail: String,
    href: Option<String>,
    source: Option<String>,
}

#[derive(Serialize)]
struct Reason {
    feature: String,
    direction: &'static str,
}

async fn load(state: &WebState, who: &Signed, kind: Kind, id: Id) -> Result<RecordMap, WebError> {
    state
        .store
        .get_dyn(&who.ctx(), kind.rt(), id)
        .await
        .map_err(|e| match e {
            rapport_crm::Error::NotFound { .. } => {
                WebError::NotFound(format!("there is no {} {id} here", kind.rt().name()))
            }
            other => other.into(),
        })
}

/// Options for a field that refers to users, stages or an enum.
async fn options_for(
    state: &WebState,
    who: &Signed,
    f: &FieldDef,
    record: &RecordMap,
    current: &Value,
) -> Result<Vec<Choice>, WebError> {
    let mut out = Vec::new();
    let cur = match current {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => String::new(),
    };
    match f.ty {
        FieldType::Enum(values) => {
            if f.nullable {
                out.push(Choice {
                    value: String::new(),
                    label: "—".into(),
                    selected: cur.is_empty(),
                });
            }
            for v in values {
                out.push(Choice {
                    value: (*v).into(),
                    label: (*v).into(),
                    selected: cur == *v,
                });
            }
        }
        FieldType::Ref(RecordType::User) => {
            out.push(Choice {
                value: String::new(),
                label: "—".into(),
                selected: cur.is_empty(),
            });
            for u in crate::tables::workspace_users(state, who).await? {
                let v = u.id.to_string();
                out.push(Choice {
                    selected: v == cur,
                    value: v,
                    label: u.name,
                });
            }
        }
        FieldType::Ref(RecordType::Stage) => {
            let pipeline = record
                .get("pipeline_id")
                .and_then(Value::as_i64)
                .unwrap_or_default();
            let q = ListQuery::filtered(Filter::eq("pipeline_id", pipeline))
                .sorted("position", Direction::Asc)
                .limit(100);
            for s in state
                .store
                .list_dyn(&who.ctx(), RecordType::Stage, &q)
                .await?
                .items
            {
                let v = s
                    .get("id")
                    .and_then(Value::as_i64)
                    .unwrap_or_default()
                    .to_string();
                let label = meta::label(RecordType::Stage, &s);
                out.push(Choice {
                    selected: v == cur,
                    value: v,
                    label,
                });
            }
        }
        _ => {}
    }
    Ok(out)
}

/// Whether the page offers an edit control for this field.
fn editable(who: &Signed, f: &FieldDef) -> bool {
    who.can_write()
        && f.writable
        && !matches!(f.ty, FieldType::Json | FieldType::Ref(RecordType::Pipeline))
}

async fn field_view(
    state: &WebState,
    who: &Signed,
    record: &RecordMap,
    f: &FieldDef,
    labels: &Labels,
    editing: bool,
) -> Result<FieldView, WebError> {
    let v = record.get(f.name).unwrap_or(&Value::Null);
    let options = if editing {
        options_for(state, who, f, record, v).await?
    } else {
        Vec::new()
    };
    Ok(FieldView {
        name: f.name.to_owned(),
        label: meta::field_label(f.name),
        text: meta::display(f, v, labels),
        href: match f.ty {
            FieldType::Ref(rt) => v.as_i64().and_then(|id| meta::href(rt, id)),
            _ => None,
        },
        editable: editable(who, f),
        editing: editing && editable(who, f),
        input_type: meta::input_type(f),
        input_value: meta::input_value(f, v),
        long: matches!(f.name, "body" | "description"),
        options,
        step: if f.ty == FieldType::Float { "any" } else { "1" },
    })
}

/// `GET /{kind}/{id}`.
pub async fn page(
    State(state): State<WebState>,
    who: Signed,
    kind: Kind,
    Path(id): Path<Id>,
    Query(params): Query<PageParams>,
) -> Result<Response, WebError> {
    let ctx = who.ctx();
    let rt = kind.rt();
    let record = load(&state, &who, kind, id).await?;
    let fields = meta::record_fields(kind);
    let labels = Labels::load(&state.store, &ctx, std::slice::from_ref(&record), &fields).await?;
    let mut views = Vec::with_capacity(fields.len());
    for f in &fields {
        let editing = params.edit.as_deref() == Some(f.name);
        views.push(field_view(&state, &who, &record, f, &labels, editing).await?);
    }
    let tags = state.store.tags_of(&ctx, rt, id).await?;
    // Custom attributes, read-only here: any JSON value, shown as text.
    let custom: Vec<(String, String)> = record
        .get("custom")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let text = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), text)
                })
                .collect()
        })
        .unwrap_or_default();
    let related = related(&state, &who, kind, id, &record).await?;
    let tpage = params.tpage.unwrap_or(0);
    let (timeline, more) = timeline_entries(&state, &who, kind, id, tpage).await?;
    let title = meta::label(rt, &record);
    let mut page = Page::new(&title, &who, kind.path());
    page.insert("kind", kind.path())
        .insert("kind_label", kind.label())
        .insert("plural_label", kind.plural_label())
        .insert("id", &id)
        .insert("record_title", &title)
        .insert("fields", &views)
        .insert("tags", &tags)
        .insert("custom", &custom)
        .insert("related", &related)
        .insert("timeline", &timeline)
        .insert(
            "timeline_next",
            &more.then(|| format!("/{}/{id}?tpage={}#timeline", kind.path(), tpage + 1)),
        )
        .insert(
            "timeline_prev",
            &(tpage > 0).then(|| format!("/{}/{id}?tpage={}#timeline", kind.path(), tpage - 1)),
        )
        .insert("has_timeline", &kind.link_field().is_some())
        .insert("notice", &notice(params.done.as_deref()));
    insert_insights(&state, &who, kind, id, &mut page).await?;
    Ok(page.render(&state, "record.html")?.into_response())
}

fn notice(done: Option<&str>) -> Option<&'static str> {
    match done? {
        "saved" => Some("Saved."),
        "logged" => Some("Logged."),
        "task" => Some("Task added."),
        "tagged" => Some("Tagged."),
        _ => None,
    }
}

/// Score (lead score or churn risk) with its top reasons, and the average
/// sentiment of the last interactions.
async fn insert_insights(
    state: &WebState,
    who: &Signed,
    kind: Kind,
    id: Id,
    page: &mut Page,
) -> Result<(), WebError> {
    let ctx = who.ctx();
    let task = match kind {
        Kind::Lead => Some(("lead_score", "Lead score")),
        Kind::Company => Some(("churn", "Churn risk")),
        _ => None,
    };
    if let Some((task, label)) = task
        && let Some(score) = state.store.score_of(&ctx, task, kind.rt(), id).await?
    {
        let mut reasons: Vec<(String, f64)> = score
            .reasons
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| {
                        Some((
                            r.get("feature")?.as_str()?.to_owned(),
                            r.get("contribution")?.as_f64()?,
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        reasons.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
        let reasons: Vec<Reason> = reasons
            .into_iter()
            .take(3)
            .map(|(feature, c)| Reason {
                feature: feature.replace('_', " "),
                direction: if c >= 0.0 { "raises" } else { "lowers" },
            })
            .collect();
        page.insert("score_label", label)
            .insert("score", &format!("{:.0}%", score.score * 100.0))
            .insert("score_reasons", &reasons);
    }
    if let Some(link) = kind.link_field() {
        let q = ListQuery::filtered(Filter::and(vec![
            Filter::eq(link, id),
            Filter::cond("sentiment", Op::IsNull, false),
        ]))
        .sorted("occurred_at", Direction::Desc)
        .limit(10);
        let recent = state
            .store
            .list_dyn(&ctx, RecordType::Activity, &q)
            .await?
            .items;
        let scores: Vec<f64> = recent
            .iter()
            .filter_map(|a| a.get("sentiment")?.as_f64())
            .collect();
        if !scores.is_empty() {
            let mean = scores.iter().sum::<f64>() / scores.len() as f64;
            let word = if mean > 0.2 {
                "positive"
            } else if mean < -0.2 {
                "negative"
            } else {
                "neutral"
            };
            page.insert(
                "sentiment",
                &format!("{word} ({mean:+.2}, last {} interactions)", scores.len()),
            );
        }
    }
    Ok(())
}

async fn related(
    state: &WebState,
    who: &Signed,
    kind: Kind,
    id: Id,
    record: &RecordMap,
) -> Result<Vec<Related>, WebError> {
    let ctx = who.ctx();
    let mut out = Vec::new();
    let section = |title: &str, rt: RecordType, link: &'static str, value: Value| {
        let title = title.to_owned();
        let store = state.store.clone();
        let ctx = ctx.clone();
        async move {
            let filter = if link == "id" {
                Filter::cond("id", Op::In, value.clone())
            } else {
                Filter::eq(link, value.clone())
            };
            let q = ListQuery::filtered(filter.clone()).limit(10);
            let page = store.list_dyn(&ctx, rt, &q).await?;
            let count = store.count_dyn(&ctx, rt, Some(&filter)).await?;
            let k = Kind::of(rt).expect("related kinds have pages");
            let items: Vec<RelatedItem> = page
                .items
                .iter()
                .map(|r| {
                    let rid = r.get("id").and_then(Value::as_i64).unwrap_or_default();
                    let text = |f: &str| {
                        r.get(f)
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned()
                    };
                    let detail = match rt {
                        RecordType::Deal => crate::render::money(
                            r.get("value").and_then(Value::as_f64).unwrap_or_default(),
                        ),
                        RecordType::Contact => text("title"),
                        RecordType::Lead => text("status"),
                        _ => String::new(),
                    };
                    RelatedItem {
                        label: meta::label(rt, r),
                        href: format!("/{}/{rid}", k.path()),
                        detail,
                    }
                })
                .collect();
            // The whole list is the table, filtered by the link.
            let more_href = (count > items.len() as i64 && link != "id")
                .then(|| format!("/{}?f={link}&op=eq&v={value}", k.path()));
            Ok::<_, WebError>(Related {
                title,
                count,
                items,
                more_href,
            })
        }
    };
    match kind {
        Kind::Company => {
            out.push(section("Contacts", RecordType::Contact, "company_id", json!(id)).await?);
            out.push(section("Deals", RecordType::Deal, "company_id", json!(id)).await?);
            out.push(section("Leads", RecordType::Lead, "company_id", json!(id)).await?);
        }
        Kind::Contact => {
            out.push(section("Leads", RecordType::Lead, "contact_id", json!(id)).await?);
        }
        Kind::Deal => {
            let contacts = record.get("contact_ids").cloned().unwrap_or(Value::Null);
            if contacts.as_array().is_some_and(|a| !a.is_empty()) {
                out.push(section("Contacts", RecordType::Contact, "id", contacts).await?);
            }
        }
        _ => {}
    }
    Ok(out)
}

/// The newest entries of a record's timeline: activities and tasks linked to
/// it, a deal's stage changes, and the audit entries about the record
/// itself. Returns one page and whether an older one exists.
async fn timeline_entries(
    state: &WebState,
    who: &Signed,
    kind: Kind,
    id: Id,
    tpage: usize,
) -> Result<(Vec<TimelineEntry>, bool), WebError> {
    let ctx = who.ctx();
    // Each source contributes at most what the requested page could show.
    let want = (tpage + 1) * TIMELINE_PAGE + 1;
    let limit = want.min(500) as u32;
    let mut entries = Vec::new();
    if let Some(link) = kind.link_field() {
        let q = ListQuery::filtered(Filter::eq(link, id))
            .sorted("occurred_at", Direction::Desc)
            .limit(limit);
        for a in state
            .store
            .list_dyn(&ctx, RecordType::Activity, &q)
            .await?
            .items
        {
            let aid = a.get("id").and_then(Value::as_i64).unwrap_or_default();
            let at = a
                .get("occurred_at")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let kind_name = a
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or("activity")
                .to_owned();
            let body: String = a
                .get("body")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .chars()
                .take(280)
                .collect();
            entries.push(TimelineEntry {
                at: crate::render::when(&at),
                sort_key: at,
                icon: match kind_name.as_str() {
                    "call" => "call",
                    "email" => "email",
                    "meeting" => "meeting",
                    _ => "note",
                },
                title: a
                    .get("subject")
                    .and_then(Value::as_str)
                    .map(|s| format!("{kind_name}: {s}"))
                    .unwrap_or(kind_name),
                detail: body,
                href: Some(format!("/activities/{aid}")),
                source: None,
            });
        }
        let q = ListQuery::filtered(Filter::eq(link, id))
            .sorted("created_at", Direction::Desc)
            .limit(limit);
        for t in state
            .store
            .list_dyn(&ctx, RecordType::Task, &q)
            .await?
            .items
        {
            let tid = t.get("id").and_then(Value::as_i64).unwrap_or_default();
            let at = ["completed_at", "created_at"]
                .iter()
                .find_map(|k| t.get(*k).and_then(Value::as_str))
                .unwrap_or_default()
                .to_owned();
            let status = t.get("status").and_then(Value::as_str).unwrap_or_default();
            let due = t
                .get("due_at")
                .and_then(Value::as_str)
                .map(|d| format!("due {}", crate::render::when(d)))
                .unwrap_or_default();
            entries.push(TimelineEntry {
                at: crate::render::when(&at),
                sort_key: at,
                icon: "task",
                title: format!(
                    "task ({status}): {}",
                    t.get("title").and_then(Value::as_str).unwrap_or_default()
                ),
                detail: due,
                href: Some(format!("/tasks/{tid}")),
                source: None,
            });
        }
    }
    if kind == Kind::Deal {
        let history = state.store.stage_history(&ctx, id).await?;
        let ids: Vec<Id> = history
            .iter()
            .map(|c| c.to_stage_id)
            .chain(history.iter().filter_map(|c| c.from_stage_id))
            .collect();
        let mut labels = Labels::default();
        labels
            .add(&state.store, &ctx, RecordType::Stage, ids)
            .await?;
        for ch in history {
            let at = rapport_crm::schema::format_timestamp(&ch.changed_at);
            let to = labels
                .get(RecordType::Stage, ch.to_stage_id)
                .unwrap_or("?")
                .to_owned();
            let title = match ch
                .from_stage_id
                .and_then(|f| labels.get(RecordType::Stage, f))
            {
                Some(from) => format!("moved from {from} to {to}"),
                None => format!("entered {to}"),
            };
            entries.push(TimelineEntry {
                at: crate::render::when(&at),
                sort_key: at,
                icon: "stage",
                title,
                detail: String::new(),
                href: None,
                source: None,
            });
        }
    }
    let audit = state.store.history(&ctx, kind.rt(), id).await?;
    let actors: Vec<Id> = audit.iter().filter_map(|e| e.actor_id).collect();
    let mut names = Labels::default();
    names
        .add(&state.store, &ctx, RecordType::User, actors)
        .await?;
    for e in audit.iter().rev().take(want) {
        let at = rapport_crm::schema::format_timestamp(&e.at);
        let who_did = e
            .actor_id
            .and_then(|a| names.get(RecordType::User, a))
            .unwrap_or("system")
            .to_owned();
        entries.push(TimelineEntry {
            at: crate::render::when(&at),
            sort_key: at,
            icon: "audit",
            title: format!("{who_did} {}", audit_summary(e)),
            detail: changed_fields(e),
            href: None,
            source: Some(e.source.clone()),
        });
    }
    // Newest first; ISO timestamps of one format sort as text.
    entries.sort_by(|a, b| b.sort_key.cmp(&a.sort_key));
    let start = tpage * TIMELINE_PAGE;
    let more = entries.len() > start + TIMELINE_PAGE;
    let page = entries
        .into_iter()
        .skip(start)
        .take(TIMELINE_PAGE)
        .collect();
    Ok((page, more))
}

fn audit_summary(e: &AuditEntry) -> String {
    match e.action.as_str() {
        "create" => "created it".into(),
        "update" => "changed it".into(),
        "delete" => "deleted it".into(),
        "tag" => "tagged it".into(),
        "untag" => "removed a tag".into(),
        other => other.replace('_', " "),
    }
}

/// "name: Acme → Acme GmbH; value: 100 → 200" from an update's snapshots.
fn changed_fields(e: &AuditEntry) -> String {
    let (Some(Value::Object(before)), Some(Value::Object(after))) = (&e.before, &e.after) else {
        return match (&e.after, e.action.as_str()) {
            (Some(Value::Object(a)), "tag" | "untag") => a
                .get("tag")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            _ => String::new(),
        };
    };
    let show = |v: Option<&Value>| match v {
        None | Some(Value::Null) => "—".to_owned(),
        Some(Value::String(s)) => s.chars().take(60).collect(),
        Some(other) => other.to_string(),
    };
    after
        .iter()
        .filter(|(k, v)| {
            !matches!(k.as_str(), "updated_at" | "created_at") && before.get(k.as_str()) != Some(*v)
        })
        .map(|(k, v)| {
            format!(
                "{}: {} → {}",
                meta::field_label(k),
                show(before.get(k.as_str())),
                show(Some(v))
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// `GET /{kind}/{id}/timeline?tpage=N`: the timeline section alone (htmx
/// refreshes it after an edit).
pub async fn timeline(
    State(state): State<WebState>,
    who: Signed,
    kind: Kind,
    Path(id): Path<Id>,
    Query(params): Query<PageParams>,
) -> Result<Response, WebError> {
    load(&state, &who, kind, id).await?;
    let tpage = params.tpage.unwrap_or(0);
    let (timeline, more) = timeline_entries(&state, &who, kind, id, tpage).await?;
    let mut page = Page::new("Timeline", &who, kind.path());
    page.insert("kind", kind.path())
        .insert("id", &id)
        .insert("timeline", &timeline)
        .insert(
            "timeline_next",
            &more.then(|| format!("/{}/{id}?tpage={}#timeline", kind.path(), tpage + 1)),
        )
        .insert(
            "timeline_prev",
            &(tpage > 0).then(|| format!("/{}/{id}?tpage={}#timeline", kind.path(), tpage - 1)),
        );
    Ok(page.render(&state, "_timeline.html")?.into_response())
}

#[derive(Debug, Deserialize)]
pub struct EditorParams {
    /// `view` answers the field in view mode (cancel).
    pub mode: Option<String>,
    /// `cell`: a table cell (`<td>`) instead of a record page's row.
    #[serde(rename = "in")]
    pub place: Option<String>,
}

/// Where an inline editor lives: a record page's field row or a table cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Row,
    Cell,
}

impl Place {
    fn of(s: Option<&str>) -> Place {
        if s == Some("cell") {
            Place::Cell
        } else {
            Place::Row
        }
    }

    fn template(self) -> &'static str {
        match self {
            Place::Row => "_field.html",
            Place::Cell => "_cell.html",
        }
    }
}

/// `GET /{kind}/{id}/fields/{field}`: one field, in edit mode (or view mode
/// with `?mode=view`), for htmx to swap in place.
pub async fn field_editor(
    State(state): State<WebState>,
    who: Signed,
    kind: Kind,
    Path((id, field)): Path<(Id, String)>,
    Query(params): Query<EditorParams>,
) -> Result<Response, WebError> {
    let record = load(&state, &who, kind, id).await?;
    let f = kind
        .rt()
        .def()
        .field(&field)
        .ok_or_else(|| WebError::NotFound(format!("no field {field:?}")))?;
    let editing = params.mode.as_deref() != Some("view");
    if editing && !editable(&who, f) {
        return Err(WebError::Tool(rapport_tools::ToolError::denied(format!(
            "you cannot edit {field} here"
        ))));
    }
    let place = Place::of(params.place.as_deref());
    let html = render_field(&state, &who, kind, id, &record, f, editing, place, None).await?;
    Ok(axum::response::Html(html).into_response())
}

#[allow(clippy::too_many_arguments)]
async fn render_field(
    state: &WebState,
    who: &Signed,
    kind: Kind,
    id: Id,
    record: &RecordMap,
    f: &FieldDef,
    editing: bool,
    place: Place,
    toast: Option<&str>,
) -> Result<String, WebError> {
    let labels = Labels::load(&state.store, &who.ctx(), std::slice::from_ref(record), &[f]).await?;
    let view = field_view(state, who, record, f, &labels, editing).await?;
    let mut page = Page::new("", who, kind.path());
    page.insert("kind", kind.path())
        .insert("id", &id)
        .insert("f", &view)
        .insert("row_label", &meta::label(kind.rt(), record));
    let mut html = page.render(state, place.template())?.0;
    if let Some(t) = toast {
        html.push_str(&oob_toast(t));
    }
    Ok(html)
}

/// `POST /{kind}/{id}/fields` (`field`, `value`): changes one field through
/// `update_KIND`. htmx gets the field back in view mode and a toast, and the
/// timeline is told to refresh; a plain form is redirected to the page.
pub async fn update_field(
    State(state): State<WebState>,
    who: Signed,
    kind: Kind,
    Path(id): Path<Id>,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let get = |k: &str| {
        form.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let field = get("field").unwrap_or_default();
    let f = kind
        .rt()
        .def()
        .field(field)
        .filter(|f| f.writable)
        .ok_or_else(|| WebError::BadRequest(format!("{field:?} is not a field you can change")))?;
    let value = meta::parse_input(f, get("value").unwrap_or_default())?;
    let mut args = serde_json::Map::new();
    args.insert("id".into(), json!(id));
    args.insert(f.name.into(), value);
    let tool = format!("update_{}", kind.rt().name());
    let updated = state
        .registry
        .call(&state.store, &who.caller, &tool, Value::Object(args))
        .await?;
    if !who.htmx {
        return Ok(Redirect::to(&format!("/{}/{id}?done=saved", kind.path())).into_response());
    }
    let record = match updated {
        Value::Object(m) => m,
        _ => load(&state, &who, kind, id).await?,
    };
    let place = Place::of(get("in"));
    let mut html = render_field(
        &state,
        &who,
        kind,
        id,
        &record,
        f,
        false,
        place,
        Some("Saved."),
    )
    .await?;
    // On a record page the change is on the timeline now: send it along.
    if place == Place::Row {
        let (timeline, more) = timeline_entries(&state, &who, kind, id, 0).await?;
        let mut page = Page::new("Timeline", &who, kind.path());
        page.insert("kind", kind.path())
            .insert("id", &id)
            .insert("timeline", &timeline)
            .insert(
                "timeline_next",
                &more.then(|| format!("/{}/{id}?tpage=1#timeline", kind.path())),
            )
            .insert("oob", &true);
        html.push_str(&page.render(&state, "_timeline.html")?.0);
    }
    Ok(axum::response::Html(html).into_response())
}

fn form_get<'a>(form: &'a [(String, String)], k: &str) -> Option<&'a str> {
    form.iter()
        .find(|(key, _)| key == k)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// Where a quick action goes next: the page again, which shows the new
/// timeline entry, tag or task and a notice. htmx is told to navigate there.
fn after_action(who: &Signed, kind: Kind, id: Id, done: &str) -> Response {
    let to = format!("/{}/{id}?done={done}", kind.path());
    if who.htmx {
        let mut res = axum::http::StatusCode::NO_CONTENT.into_response();
        if let Ok(v) = HeaderValue::from_str(&to) {
            res.headers_mut().insert("HX-Redirect", v);
        }
        return res;
    }
    Redirect::to(&to).into_response()
}

/// `POST /{kind}/{id}/activities` (`kind` call|note|email|meeting, `subject`,
/// `body`): `log_activity` linked to this record.
pub async fn log_activity(
    State(state): State<WebState>,
    who: Signed,
    kind: Kind,
    Path(id): Path<Id>,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let link = kind.link_field().ok_or_else(|| {
        WebError::BadRequest(format!(
            "activities are not logged on a {}",
            kind.rt().name()
        ))
    })?;
    let body = form_get(&form, "body")
        .ok_or_else(|| WebError::BadRequest("write what was said before logging it".into()))?;
    let mut args = json!({
        "kind": form_get(&form, "activity_kind").unwrap_or("note"),
        "body": body,
    });
    args[link] = json!(id);
    if let Some(s) = form_get(&form, "subject") {
        args["subject"] = json!(s);
    }
    if kind == Kind::Contact || kind == Kind::Deal {
        // Keep the company on the activity, as the agent does.
        let r = load(&state, &who, kind, id).await?;
        if let Some(c) = r.get("company_id").filter(|v| !v.is_null()) {
            args["company_id"] = c.clone();
        }
    }
    state
        .registry
        .call(&state.store, &who.caller, "log_activity", args)
        .await?;
    Ok(after_action(&who, kind, id, "logged"))
}

/// `POST /{kind}/{id}/tasks` (`title`, `due`): `create_task` linked here,
/// assigned to the signed-in user.
pub async fn add_task(
    State(state): State<WebState>,
    who: Signed,
    kind: Kind,
    Path(id): Path<Id>,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let link = kind.link_field().ok_or_else(|| {
        WebError::BadRequest(format!("tasks are not added to a {}", kind.rt().name()))
    })?;
    let mut args = json!({
        "title": form_get(&form, "title").unwrap_or_default(),
        "assignee_id": who.user.id,
    });
    args[link] = json!(id);
    if let Some(due) = form_get(&form, "due") {
        // A date input: due at the end of that day's working hours, UTC.
        args["due_at"] = json!(if due.len() == 10 {
            format!("{due}T17:00:00Z")
        } else {
            due.to_owned()
        });
    }
    state
        .registry
        .call(&state.store, &who.caller, "create_task", args)
        .await?;
    Ok(after_action(&who, kind, id, "task"))
}

/// `POST /{kind}/{id}/tags` (`tag`): `add_tag`.
pub async fn tag(
    State(state): State<WebState>,
    who: Signed,
    kind: Kind,
    Path(id): Path<Id>,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let tag = form_get(&form, "tag").ok_or_else(|| WebError::BadRequest("type a tag".into()))?;
    state
        .registry
        .call(
            &state.store,
            &who.caller,
            "add_tag",
            json!({"record_type": kind.rt().name(), "id": id, "tag": tag}),
        )
        .await?;
    Ok(after_action(&who, kind, id, "tagged"))
}
