//! The palette's actions as small forms: a new contact, a new deal, a new
//! task, a call logged with a contact. References are typed as names ("Acme",
//! "Dana Lee") and resolved with `find_records` expecting one record, as the
//! agent resolves them; the record is created by the same tool the API uses
//! (`create_contact`, `create_deal`, `create_task`, `log_activity`). A
//! refused or ambiguous entry shows the form again with what was typed and
//! the tool's message; nothing is half-written (one tool call, one
//! transaction).

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use rapport_crm::Id;
use serde::Serialize;
use serde_json::{Value, json};

use crate::WebState;
use crate::auth::Signed;
use crate::error::WebError;
use crate::render::Page;

/// What a form creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum What {
    Contact,
    Deal,
    Task,
    Call,
}

impl What {
    fn parse(s: &str) -> Option<What> {
        Some(match s {
            "contact" => What::Contact,
            "deal" => What::Deal,
            "task" => What::Task,
            "call" => What::Call,
            _ => return None,
        })
    }

    fn title(self) -> &'static str {
        match self {
            What::Contact => "New contact",
            What::Deal => "New deal",
            What::Task => "New task",
            What::Call => "Log a call",
        }
    }

    fn path(self) -> &'static str {
        match self {
            What::Contact => "contact",
            What::Deal => "deal",
            What::Task => "task",
            What::Call => "call",
        }
    }

    /// The form's inputs: name, label, type, required, hint.
    fn inputs(self) -> &'static [(&'static str, &'static str, &'static str, bool, &'static str)] {
        match self {
            What::Contact => &[
                ("first_name", "First name", "text", true, ""),
                ("last_name", "Last name", "text", false, ""),
                ("email", "Email", "email", false, ""),
                ("title", "Job title", "text", false, ""),
                ("company", "Company", "text", false, "a company's name"),
            ],
            What::Deal => &[
                ("name", "Name", "text", true, ""),
                ("value", "Value", "number", false, ""),
                (
                    "expected_close_date",
                    "Expected close date",
                    "date",
                    false,
                    "",
                ),
                ("company", "Company", "text", false, "a company's name"),
            ],
            What::Task => &[
                ("title", "Task", "text", true, ""),
                ("due", "Due", "date", false, ""),
                (
                    "about",
                    "About",
                    "text",
                    false,
                    "a contact, company or deal, by name",
                ),
            ],
            What::Call => &[
                ("with", "With", "text", true, "the contact's name or email"),
                ("subject", "Subject", "text", false, ""),
                ("body", "What was said", "textarea", true, ""),
            ],
        }
    }
}

#[derive(Serialize)]
struct InputView {
    name: &'static str,
    label: &'static str,
    ty: &'static str,
    required: bool,
    hint: &'static str,
    value: String,
}

fn what_of(s: &str) -> Result<What, WebError> {
    What::parse(s).ok_or_else(|| WebError::NotFound(format!("nothing to create called {s:?}")))
}

fn refuse_viewers(who: &Signed) -> Result<(), WebError> {
    if who.can_write() {
        Ok(())
    } else {
        Err(WebError::Tool(rapport_tools::ToolError::denied(
            "viewers cannot create records",
        )))
    }
}

fn render(
    state: &WebState,
    who: &Signed,
    what: What,
    form: &[(String, String)],
    error: Option<&str>,
    status: StatusCode,
) -> Result<Response, WebError> {
    let inputs: Vec<InputView> = what
        .inputs()
        .iter()
        .map(|&(name, label, ty, required, hint)| InputView {
            name,
            label,
            ty,
            required,
            hint,
            value: get(form, name).unwrap_or_default().to_owned(),
        })
        .collect();
    let mut page = Page::new(what.title(), who, "new");
    page.insert("heading", what.title())
        .insert("what", what.path())
        .insert("inputs", &inputs)
        .insert("error", &error);
    Ok((status, page.render(state, "new.html")?).into_response())
}

/// `GET /new/{what}`.
pub async fn page(
    State(state): State<WebState>,
    who: Signed,
    Path(what): Path<String>,
) -> Result<Response, WebError> {
    let what = what_of(&what)?;
    refuse_viewers(&who)?;
    render(&state, &who, what, &[], None, StatusCode::OK)
}

fn get<'a>(form: &'a [(String, String)], k: &str) -> Option<&'a str> {
    form.iter()
        .find(|(key, _)| key == k)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// `POST /new/{what}`: resolves the names, calls the tool, and goes to the
/// new record (a logged call: the contact's page).
pub async fn create(
    State(state): State<WebState>,
    who: Signed,
    Path(what): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let what = what_of(&what)?;
    refuse_viewers(&who)?;
    match run(&state, &who, what, &form).await {
        Ok(to) => {
            if who.htmx {
                let mut res = StatusCode::NO_CONTENT.into_response();
                if let Ok(v) = axum::http::HeaderValue::from_str(&to) {
                    res.headers_mut().insert("HX-Redirect", v);
                }
                Ok(res)
            } else {
                Ok(Redirect::to(&to).into_response())
            }
        }
        // A plain form shows itself again with the message; htmx gets the
        // usual toast.
        Err(e) if !who.htmx && !matches!(e, WebError::Render(_)) => {
            let status = e.status();
            render(&state, &who, what, &form, Some(&e.message()), status)
        }
        Err(e) => Err(e),
    }
}

/// One record of these types that `name` refers to.
async fn resolve(
    state: &WebState,
    who: &Signed,
    field: &str,
    name: &str,
    types: &[&str],
) -> Result<(String, Id), WebError> {
    let found = state
        .registry
        .call(
            &state.store,
            &who.caller,
            "find_records",
            json!({"query": name, "types": types, "expect_one": true}),
        )
        .await
        .map_err(|e| WebError::Tool(e.with_field(field)))?;
    let best = found
        .pointer("/candidates/0")
        .ok_or_else(|| WebError::BadRequest(format!("{field}: nothing matches {name:?}")))?;
    Ok((
        best.get("record_type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        best.get("id").and_then(Value::as_i64).unwrap_or_default(),
    ))
}

async fn run(
    state: &WebState,
    who: &Signed,
    what: What,
    form: &[(String, String)],
) -> Result<String, WebError> {
    let mut args = serde_json::Map::new();
    let put = |args: &mut serde_json::Map<String, Value>, k: &str, v: Option<&str>| {
        if let Some(v) = v {
            args.insert(k.to_owned(), json!(v));
        }
    };
    let call = |tool: &'static str, args: serde_json::Map<String, Value>| async move {
        state
            .registry
            .call(&state.store, &who.caller, tool, Value::Object(args))
            .await
            .map_err(WebError::from)
    };
    match what {
        What::Contact => {
            for k in ["first_name", "last_name", "email", "title"] {
                put(&mut args, k, get(form, k));
            }
            if let Some(c) = get(form, "company") {
                let (_, id) = resolve(state, who, "company", c, &["company"]).await?;
                args.insert("company_id".into(), json!(id));
            }
            let made = call("create_contact", args).await?;
            Ok(format!("/contacts/{}?done=saved", id_of(&made)))
        }
        What::Deal => {
            put(&mut args, "name", get(form, "name"));
            if let Some(v) = get(form, "value") {
                let x: f64 = v.replace(',', "").parse().map_err(|_| {
                    WebError::BadRequest(format!("value: expected a number, got {v:?}"))
                })?;
                args.insert("value".into(), json!(x));
            }
            put(
                &mut args,
                "expected_close_date",
                get(form, "expected_close_date"),
            );
            if let Some(c) = get(form, "company") {
                let (_, id) = resolve(state, who, "company", c, &["company"]).await?;
                args.insert("company_id".into(), json!(id));
            }
            let made = call("create_deal", args).await?;
            Ok(format!("/deals/{}?done=saved", id_of(&made)))
        }
        What::Task => {
            put(&mut args, "title", get(form, "title"));
            args.insert("assignee_id".into(), json!(who.user.id));
            if let Some(due) = get(form, "due") {
                // A date input: due at the end of that day's working hours, UTC.
                args.insert("due_at".into(), json!(format!("{due}T17:00:00Z")));
            }
            if let Some(about) = get(form, "about") {
                let (rt, id) =
                    resolve(state, who, "about", about, &["contact", "company", "deal"]).await?;
                args.insert(format!("{rt}_id"), json!(id));
            }
            let made = call("create_task", args).await?;
            Ok(format!("/tasks/{}?done=saved", id_of(&made)))
        }
        What::Call => {
            let with = get(form, "with")
                .ok_or_else(|| WebError::BadRequest("with: name the contact".into()))?;
            let (_, contact) = resolve(state, who, "with", with, &["contact"]).await?;
            args.insert("kind".into(), json!("call"));
            args.insert("contact_id".into(), json!(contact));
            put(&mut args, "subject", get(form, "subject"));
            put(&mut args, "body", get(form, "body"));
            call("log_activity", args).await?;
            Ok(format!("/contacts/{contact}?done=logged"))
        }
    }
}

fn id_of(v: &Value) -> Id {
    v.get("id").and_then(Value::as_i64).unwrap_or_default()
}
