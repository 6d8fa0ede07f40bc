//! Chat with the agent over HTTP. A message (or a decision on a proposal) is
//! answered with server-sent events: the agent's own events as they happen
//! (`text_delta`, `tool_call`, `approval_needed`, `tool_result`, `final`,
//! `error`, each named by its `type`), then one `done` event with the turn's
//! outcome.
//!
//! A turn runs in its own task, not in the request: a client that disconnects
//! stops receiving events, but the turn runs to its end and every step is in
//! the session's log, exactly as if it had stayed. One turn at a time per
//! session (a second one gets 409), so two requests never interleave steps —
//! also when they reach different servers on one database: the session's
//! lease is a row ([`SessionLocks`]).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::{Stream, StreamExt};
use rapport_agent::history::Log;
use rapport_agent::{Agent, AgentEvent, Decision, Events, TurnOutcome};
use rapport_crm::model::{AgentSession, Proposal, ProposalStatus};
use rapport_crm::{Id, Store};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tracing::Instrument;
use utoipa::ToSchema;

use crate::auth::Auth;
use crate::problem::Problem;
use crate::rest::json_body;
use crate::server::AppState;

type ApiResult<T = Response> = Result<T, Problem>;

/// One turn at a time per chat session, across every server on the
/// database: a turn holds the session's lease, a row taken with a
/// conditional upsert ([`Store::take_session_lease`]) that only succeeds when
/// no live lease is there. The turn renews it while it runs and gives it up
/// at its end; if its process dies, the lease expires after `ttl` and the
/// session takes messages again.
pub struct SessionLocks {
    ttl: Duration,
}

impl Default for SessionLocks {
    fn default() -> Self {
        SessionLocks::new(Duration::from_secs(30))
    }
}

impl SessionLocks {
    /// Leases that last `ttl` unless renewed (every third of it).
    pub fn new(ttl: Duration) -> Self {
        SessionLocks {
            ttl: ttl.max(Duration::from_millis(300)),
        }
    }

    /// The session's lease for a new turn, or `None` while another turn, on
    /// this server or another, holds it.
    async fn try_lock(&self, store: &Store, session: Id) -> rapport_crm::Result<Option<Lease>> {
        // Unique to this turn: a process id alone repeats across hosts.
        let holder = format!("{}-{:032x}", std::process::id(), rand::random::<u128>());
        if !store.take_session_lease(session, &holder, self.ttl).await? {
            return Ok(None);
        }
        let renew = tokio::spawn(renew(store.clone(), session, holder.clone(), self.ttl));
        Ok(Some(Lease {
            store: store.clone(),
            session,
            holder,
            renew,
        }))
    }
}

/// Keeps a running turn's lease alive.
async fn renew(store: Store, session: Id, holder: String, ttl: Duration) {
    loop {
        tokio::time::sleep(ttl / 3).await;
        match store.renew_session_lease(session, &holder, ttl).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(session, "the turn lost its session lease (it expired)");
                return;
            }
            Err(e) => tracing::warn!(session, error = %e, "could not renew the session lease"),
        }
    }
}

/// A session's lease, held by a running turn. Dropped without
/// [`Lease::release`] (a panicking turn), it stops being renewed and expires.
struct Lease {
    store: Store,
    session: Id,
    holder: String,
    renew: tokio::task::JoinHandle<()>,
}

impl Lease {
    /// Gives the lease up, so the session takes the next message at once.
    async fn release(self) {
        self.renew.abort();
        if let Err(e) = self
            .store
            .release_session_lease(self.session, &self.holder)
            .await
        {
            tracing::warn!(session = self.session, error = %e, "could not release the session lease; it will expire");
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renew.abort();
    }
}

/// The chat routes: sessions, their history, messages (streamed as
/// server-sent events) and decisions on proposals.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/sessions", post(create_session).get(list_sessions))
        .route("/api/v1/sessions/{id}", get(session_history))
        .route("/api/v1/sessions/{id}/messages", post(send_message))
        .route(
            "/api/v1/sessions/{id}/proposals/{proposal_id}",
            post(decide),
        )
}

fn agent(state: &AppState) -> ApiResult<Arc<Agent>> {
    state.agent.clone().ok_or_else(|| {
        Problem::new(
            StatusCode::CONFLICT,
            "not_available",
            "chat is not set up on this server",
        )
        .with_hint("start `rapport serve` with a language model (--llm)")
    })
}

/// The session if it is the caller's; another user's is reported as missing.
async fn own_session(state: &AppState, auth: &Auth, id: Id) -> ApiResult<AgentSession> {
    let missing = || Problem::not_found(format!("no session with id {id} for this user"));
    let session = state
        .store
        .session(&auth.caller.ctx(), id)
        .await
        .map_err(|e| absent_or(e, missing))?;
    if session.user_id != auth.user.id {
        return Err(missing());
    }
    Ok(session)
}

/// The store reports a missing session or proposal as an invalid id; that is
/// a 404 here. Anything else (the database failing) stays what it is.
fn absent_or(e: rapport_crm::Error, missing: impl FnOnce() -> Problem) -> Problem {
    match e {
        rapport_crm::Error::Invalid { .. } | rapport_crm::Error::NotFound { .. } => missing(),
        other => other.into(),
    }
}

/// The body of `POST /api/v1/sessions`; may be empty.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSession {
    /// A title for listings (default: "API session").
    pub title: Option<String>,
}

/// Opens a chat session for the key's user; 409 when chat is not set up.
#[utoipa::path(post, path = "/api/v1/sessions", tag = "chat", security(("api_key" = [])),
    request_body(content = NewSession, description = "optional title", content_type = "application/json"),
    responses((status = 201, description = "the new session", body = Object),
              (status = 409, description = "chat is not set up on this server", body = Problem, content_type = "application/problem+json")))]
pub async fn create_session(State(state): State<AppState>, auth: Auth, body: Bytes) -> ApiResult {
    let agent = agent(&state)?;
    let new: NewSession = match json_body(&body)? {
        Value::Null => NewSession { title: None },
        v => serde_json::from_value(v).map_err(|e| Problem::bad_request("body", e.to_string()))?,
    };
    let title = new
        .title
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let title = title.unwrap_or("API session");
    if title.chars().count() > 200 {
        return Err(Problem::bad_request(
            "title",
            "a title is at most 200 characters",
        ));
    }
    let session = agent.start_session(&auth.user, title).await?;
    Ok((StatusCode::CREATED, Json(session)).into_response())
}

/// The user's chat sessions, newest first (at most 100).
#[utoipa::path(get, path = "/api/v1/sessions", tag = "chat", security(("api_key" = [])),
    responses((status = 200, description = "the user's sessions, newest first", body = Object)))]
pub async fn list_sessions(State(state): State<AppState>, auth: Auth) -> ApiResult {
    let items = state
        .store
        .sessions_of(&auth.caller.ctx(), auth.user.id, 100)
        .await?;
    Ok(Json(json!({"items": items})).into_response())
}

/// A session with its messages and proposals.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionHistory {
    /// The session itself.
    #[schema(value_type = Object)]
    pub session: AgentSession,
    /// user, assistant and tool messages, oldest first
    #[schema(value_type = Vec<Object>)]
    pub messages: Vec<Value>,
    /// Calls that waited for approval, whatever became of them.
    #[schema(value_type = Vec<Object>)]
    pub proposals: Vec<Proposal>,
}

/// One of the user's sessions with its messages and proposals.
#[utoipa::path(get, path = "/api/v1/sessions/{id}", tag = "chat", security(("api_key" = [])),
    params(("id" = i64, Path, description = "session id")),
    responses((status = 200, description = "the session's history", body = SessionHistory),
              (status = 404, description = "no such session for this user", body = Problem, content_type = "application/problem+json")))]
pub async fn session_history(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Id>,
) -> ApiResult {
    let session = own_session(&state, &auth, id).await?;
    let ctx = auth.caller.ctx();
    let entries = state.store.session_entries(&ctx, id).await?;
    let messages = Log::from_entries(&entries)
        .messages
        .into_iter()
        .map(|m| serde_json::to_value(m).unwrap_or(Value::Null))
        .collect();
    let proposals = state.store.proposals(&ctx, id, None).await?;
    Ok(Json(SessionHistory {
        session,
        messages,
        proposals,
    })
    .into_response())
}

/// The body of `POST /api/v1/sessions/{id}/messages`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMessage {
    /// What the user says.
    pub text: String,
}

/// Sends a user message and streams the turn as server-sent events; one turn
/// at a time per session (409 otherwise).
#[utoipa::path(post, path = "/api/v1/sessions/{id}/messages", tag = "chat", security(("api_key" = [])),
    params(("id" = i64, Path, description = "session id")),
    request_body(content = NewMessage, content_type = "application/json"),
    responses((status = 200, description = "server-sent events: the agent's events, then `done` with the outcome", content_type = "text/event-stream", body = String),
              (status = 404, description = "no such session for this user", body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "a turn is already running in this session, or chat is not set up", body = Problem, content_type = "application/problem+json")))]
pub async fn send_message(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Id>,
    body: Bytes,
) -> ApiResult {
    let agent = agent(&state)?;
    let msg: NewMessage = serde_json::from_value(json_body(&body)?)
        .map_err(|e| Problem::bad_request("text", format!("expected {{\"text\": \"…\"}}: {e}")))?;
    if msg.text.trim().is_empty() {
        return Err(Problem::bad_request("text", "the message is empty"));
    }
    own_session(&state, &auth, id).await?;
    let user = auth.user.clone();
    stream_turn(&state, id, move |events| async move {
        agent.send(id, &user, &msg.text, &events).await
    })
    .await
}

/// The user's answer to a proposal.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// What to do with the proposal.
    pub decision: DecisionKind,
    /// Why it was rejected (reject only).
    pub reason: Option<String>,
    /// The proposed arguments to change (edit only; only those proposed).
    #[schema(value_type = Option<Object>)]
    pub changes: Option<Map<String, Value>>,
}

/// Approve, reject or approve with edits.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DecisionKind {
    /// Run the call as proposed.
    Approve,
    /// Do not run it.
    Reject,
    /// Run it with `changes` applied to the proposed arguments.
    Edit,
}

impl DecisionBody {
    fn decision(self) -> ApiResult<Decision> {
        match (self.decision, self.changes) {
            (DecisionKind::Approve, None) => Ok(Decision::Approve),
            (DecisionKind::Reject, None) => Ok(Decision::Reject {
                reason: self.reason,
            }),
            (DecisionKind::Edit, Some(changes)) if !changes.is_empty() => {
                Ok(Decision::Edit(changes))
            }
            (DecisionKind::Edit, _) => Err(Problem::bad_request(
                "changes",
                "an edit needs `changes`: the proposed arguments to change",
            )),
            (_, Some(_)) => Err(Problem::bad_request(
                "changes",
                "`changes` goes with decision `edit` only",
            )),
        }
    }
}

/// Decides on a pending proposal and streams the rest of the turn as
/// server-sent events.
#[utoipa::path(post, path = "/api/v1/sessions/{id}/proposals/{proposal_id}", tag = "chat", security(("api_key" = [])),
    params(("id" = i64, Path, description = "session id"), ("proposal_id" = i64, Path, description = "proposal id")),
    request_body(content = DecisionBody, content_type = "application/json"),
    responses((status = 200, description = "server-sent events: the call's result and the rest of the turn, then `done`", content_type = "text/event-stream", body = String),
              (status = 404, description = "no such session or proposal", body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "already decided, or a turn is running", body = Problem, content_type = "application/problem+json")))]
pub async fn decide(
    State(state): State<AppState>,
    auth: Auth,
    Path((id, proposal_id)): Path<(Id, Id)>,
    body: Bytes,
) -> ApiResult {
    let agent = agent(&state)?;
    let body: DecisionBody = serde_json::from_value(json_body(&body)?).map_err(|e| {
        Problem::bad_request(
            "decision",
            format!("expected {{\"decision\": \"approve\"|\"reject\"|\"edit\", …}}: {e}"),
        )
    })?;
    let decision = body.decision()?;
    own_session(&state, &auth, id).await?;
    let missing = || Problem::not_found(format!("no proposal {proposal_id} in session {id}"));
    let p = state
        .store
        .proposal(&auth.caller.ctx(), proposal_id)
        .await
        .map_err(|e| absent_or(e, missing))?;
    if p.session_id != id {
        return Err(missing());
    }
    if p.status != ProposalStatus::Pending {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "conflict",
            format!(
                "proposal {proposal_id} was already decided ({})",
                p.status.as_str()
            ),
        ));
    }
    let user = auth.user.clone();
    stream_turn(&state, id, move |events| async move {
        agent
            .decide(id, &user, proposal_id, decision, &events)
            .await
    })
    .await
}

/// Runs a turn in its own task and streams its events, then `done`.
async fn stream_turn<F, Fut>(state: &AppState, session: Id, turn: F) -> ApiResult
where
    F: FnOnce(Events) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = rapport_agent::Result<TurnOutcome>> + Send + 'static,
{
    let lease = state.sessions.try_lock(&state.store, session).await?;
    let lease = lease.ok_or_else(|| {
        Problem::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("a turn is already running in session {session}"),
        )
        .with_hint("wait for its `done` event, then send again")
    })?;
    let (tx, rx) = mpsc::unbounded_channel::<AgentEvent>();
    let (done_tx, done_rx) = oneshot::channel::<Value>();
    // The turn runs on after the response starts: it keeps the request span
    // (and its request id) so what it logs names the request.
    let span = tracing::Span::current();
    tokio::spawn(
        async move {
            let outcome = turn(Events::to(tx)).await;
            let done = match outcome {
                Ok(TurnOutcome::Answer(text)) => json!({"outcome": "answer", "text": text}),
                Ok(TurnOutcome::AwaitingApproval(p)) => {
                    json!({"outcome": "awaiting_approval", "proposal": p})
                }
                Ok(TurnOutcome::Stopped(reason)) => json!({"outcome": "stopped", "reason": reason}),
                Err(e) => {
                    tracing::warn!(session, error = %e, "chat turn failed");
                    json!({"outcome": "error", "problem": Problem::from(e)})
                }
            };
            // Free before `done`: a client may send its next message the
            // moment it reads it.
            lease.release().await;
            // The client may have gone; the turn is stored either way.
            let _ = done_tx.send(done);
        }
        .instrument(span),
    );
    Ok(Sse::new(events(rx, done_rx))
        .keep_alive(KeepAlive::default())
        .into_response())
}

fn events(
    rx: mpsc::UnboundedReceiver<AgentEvent>,
    done: oneshot::Receiver<Value>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    // Guard events are the evals' diagnostics (logged at debug level),
    // not part of the stream's contract.
    let agent = UnboundedReceiverStream::new(rx)
        .filter(|e| std::future::ready(!matches!(e, AgentEvent::Guard { .. })))
        .map(|e| {
            let value = serde_json::to_value(&e).unwrap_or(Value::Null);
            let name = value["type"].as_str().unwrap_or("event").to_owned();
            Ok(Event::default().event(name).data(value.to_string()))
        });
    let done = futures::stream::once(async move {
        let value = done.await.unwrap_or_else(|_| {
            json!({"outcome": "error", "problem": Problem::internal("the turn ended abnormally")})
        });
        Ok(Event::default().event("done").data(value.to_string()))
    });
    agent.chain(done)
}
