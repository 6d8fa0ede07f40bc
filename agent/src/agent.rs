//! The loop: a user message → the model → tool calls → checks → policy →
//! execution → results back to the model → … → an answer.
//!
//! Everything the loop knows lives in the session's log in the database, so a
//! turn that stops for an approval resumes from there, in this process or
//! another one. Each step is written in its own transaction; an approved call
//! and the proposal's new status are written in one.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, NaiveDate, Utc};
use rapport_crm::model::{AgentSession, Proposal, ProposalStatus, Role, User};
use rapport_crm::{Ctx, Id, NewAuditEntry, NewProposal, RecordType, Source, Store};
use rapport_models::llm::{ChatMessage, Role as MsgRole, ToolCall, ToolChoice, ToolSpec};
use rapport_tools::{AgentInfo, Caller, ErrorCode, Registry, Snapshot, ToolError};
use serde_json::{Map, Value, json};
use tracing::{debug, info, warn};

use crate::backend::{LlmBackend, LlmReply, LlmRequest, RawCall};
use crate::confirm;
use crate::dates;
use crate::error::{AgentError, Result};
use crate::events::{AgentEvent, Events};
use crate::guards::{Guard, Guards};
use crate::history::{self, Log, ModelCall, kind};
use crate::known::{Known, KnownIds};
use crate::linked;
use crate::listing;
use crate::mentions::{self, Ambiguous, Mentions};
use crate::pipeline::ExampleIndex;
use crate::policy::{Policy, approval_reason};
use crate::prompt::{Prompt, PromptVars};
use crate::select::{self, Selection};

/// The tool whose results the answer cites (`[activity ID]`).
const CITING_TOOL: &str = "search_interactions";

mod pipeline_turn;

/// Knobs of the loop.
#[derive(Clone)]
pub struct AgentConfig {
    /// Which calls wait for the user's approval.
    pub policy: Policy,
    /// Most model calls per user message.
    pub max_steps: usize,
    /// Most tokens (uncached prompt plus completion) per user message.
    pub token_budget: u64,
    /// Characters of earlier turns kept in the prompt.
    pub history_chars: usize,
    /// Characters of one tool result shown to the model.
    pub result_chars: usize,
    /// Which tools each request is offered.
    pub selection: Selection,
    /// Short tool descriptions and schemas without titles (small models).
    pub compact_tools: bool,
    /// Most tokens per model reply.
    pub max_tokens: Option<u32>,
    /// A fixed "now" for evals and tests; the clock otherwise.
    pub now: Option<DateTime<Utc>>,
    /// Answer a request for one action that one write did from the write's
    /// result, without asking the model again (see [`crate::confirm`]).
    /// Saves a small model a request; a large one words the answer better.
    pub confirm_writes: bool,
    /// Which guards act ([`crate::guards`]): all, unless a profile
    /// switched some off to measure them.
    pub guards: Guards,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            policy: Policy::default(),
            max_steps: 8,
            token_budget: 60_000,
            history_chars: 12_000,
            result_chars: 6_000,
            selection: Selection::All,
            compact_tools: false,
            max_tokens: Some(512),
            now: None,
            confirm_writes: false,
            guards: Guards::all(),
        }
    }
}

impl AgentConfig {
    /// Settings for a small local model: few tools, short history and results.
    pub fn small_model(selection: Selection) -> Self {
        AgentConfig {
            history_chars: 4_000,
            result_chars: 2_500,
            selection,
            compact_tools: true,
            max_tokens: Some(320),
            confirm_writes: true,
            ..AgentConfig::default()
        }
    }
}

/// How a turn ended.
#[derive(Debug, Clone, PartialEq)]
pub enum TurnOutcome {
    /// The model answered.
    Answer(String),
    /// A call waits for the user's decision.
    AwaitingApproval(Box<Proposal>),
    /// A guard stopped the turn (step limit, token budget, repeated failing call).
    Stopped(String),
}

/// The user's answer to a proposal.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Run the call as proposed.
    Approve,
    /// Do not run it; the model is told, with the reason if given.
    Reject {
        /// Why, in the user's words; passed on to the model.
        reason: Option<String>,
    },
    /// Approve with some of the proposed arguments changed (only those).
    Edit(Map<String, Value>),
}

/// The conversation loop over one store, tool registry and model backend.
/// Sessions live in the store, so one agent serves many users and sessions.
pub struct Agent {
    store: Store,
    registry: Arc<Registry>,
    backend: Arc<dyn LlmBackend>,
    prompt: Prompt,
    config: AgentConfig,
    /// The worked examples of the turn pipeline; without them every turn
    /// runs the open loop.
    pipeline: Option<Arc<ExampleIndex>>,
}

/// One session being worked on, as one user.
struct Turn<'a> {
    session: AgentSession,
    user: &'a User,
    ctx: Ctx,
    caller: Caller,
    events: &'a Events,
    /// The last record read this turn ran ([`listing::lists`]), whole: the
    /// copy in the log is cut to fit the prompt.
    last_read: std::sync::Mutex<Option<(String, Value)>>,
    /// Every result of a call this turn ran, whole, by call id: the log's
    /// copy is cut to fit the prompt, and the pipeline answers a question
    /// from the whole result (a search's ten hits run past the cut).
    results: std::sync::Mutex<std::collections::HashMap<String, Value>>,
}

impl Agent {
    /// An agent with the built-in system prompt; fails only if the prompt does
    /// not compile.
    pub fn new(
        store: Store,
        registry: Arc<Registry>,
        backend: Arc<dyn LlmBackend>,
        config: AgentConfig,
    ) -> Result<Agent> {
        Ok(Agent {
            store,
            registry,
            backend,
            prompt: Prompt::system()?,
            config,
            pipeline: None,
        })
    }

    /// Runs every turn as the pipeline for small models (plan, resolve,
    /// fill, run, answer: [`crate::pipeline`]) with these worked examples,
    /// instead of the open loop.
    pub fn with_pipeline(mut self, examples: Arc<ExampleIndex>) -> Self {
        self.pipeline = Some(examples);
        self
    }

    /// Whether turns run as the pipeline rather than the open loop.
    pub fn runs_pipeline(&self) -> bool {
        self.pipeline.is_some()
    }

    /// Uses another system prompt (A/B experiments).
    pub fn with_prompt(mut self, prompt: Prompt) -> Self {
        self.prompt = prompt;
        self
    }

    /// The system prompt's version, as recorded with every call (`system@` and a hash).
    pub fn prompt_version(&self) -> &str {
        &self.prompt.version
    }

    /// The backend's model name, as recorded with every call.
    pub fn model(&self) -> String {
        self.backend.model()
    }

    /// The store sessions and tool calls go to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The tools the model is offered.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Opens a new session for `user`.
    pub async fn start_session(&self, user: &User, title: &str) -> Result<AgentSession> {
        let ctx = Ctx::new(user.workspace_id, Some(user.id), Source::Agent);
        let mut tx = self.store.begin().await?;
        let s = tx.create_session(&ctx, user.id, title).await?;
        tx.commit().await?;
        Ok(s)
    }

    /// The session's messages, oldest first.
    pub async fn history(&self, session_id: Id, user: &User) -> Result<Vec<ChatMessage>> {
        let none = Events::none();
        let t = self.open(session_id, user, &none).await?;
        Ok(self.log(&t).await?.messages)
    }

    /// Proposals of the session that wait for a decision.
    pub async fn pending(&self, session_id: Id, user: &User) -> Result<Vec<Proposal>> {
        let none = Events::none();
        let t = self.open(session_id, user, &none).await?;
        Ok(self
            .store
            .proposals(&t.ctx, session_id, Some(ProposalStatus::Pending))
            .await?)
    }

    /// Sends the user's message and runs the loop until an answer, a proposal
    /// that needs the user, or a guard stops it. A proposal still pending
    /// from before is rejected: the user moved on.
    pub async fn send(
        &self,
        session_id: Id,
        user: &User,
        text: &str,
        events: &Events,
    ) -> Result<TurnOutcome> {
        let text = text.trim();
        if text.is_empty() {
            return Err(AgentError::Invalid("the message is empty".into()));
        }
        let t = self.open(session_id, user, events).await?;
        for p in self
            .store
            .proposals(&t.ctx, session_id, Some(ProposalStatus::Pending))
            .await?
        {
            self.reject(
                &t,
                &p,
                Some("the user sent a new message instead of answering"),
            )
            .await?;
        }
        let tools = self.choose_tools(&t, text).await?;
        let names: Vec<&str> = tools.iter().map(|s| s.name.as_str()).collect();
        let mentioned = mentions::lookup(&self.store, &t.ctx, text).await?;
        let mut tx = self.store.begin().await?;
        tx.append_session_entry(
            &t.ctx,
            session_id,
            kind::MESSAGE,
            &json!(ChatMessage::user(text)),
        )
        .await?;
        tx.append_session_entry(&t.ctx, session_id, kind::TOOLS, &json!(names))
            .await?;
        if !mentioned.is_empty() {
            tx.append_session_entry(&t.ctx, session_id, kind::MENTIONS, &json!(mentioned))
                .await?;
        }
        tx.commit().await?;
        if let Some(refusal) = self.read_only_refusal(user, text) {
            // The model could only fail here, slowly: it would call a read
            // tool with made-up arguments or claim it made the change.
            self.fired(&t, Guard::ReadOnly, None);
            return self.answer(&t, refusal).await;
        }
        self.run(&t).await
    }

    /// The answer to a request for a change from a user whose role may use
    /// no tool that changes anything (a viewer).
    fn read_only_refusal(&self, user: &User, request: &str) -> Option<String> {
        let can_change = self.registry.tools().any(|tool| {
            tool.effect() != rapport_tools::Effect::Read && tool.roles().contains(&user.role)
        });
        (!can_change && select::asks_change(request)).then(|| {
            format!(
                "I can't change anything for you: your role ({}) can look records up but not \
                 create, change or delete them. Ask a rep, a manager or an admin to make this \
                 change, or ask me to look something up.",
                role_name(user.role)
            )
        })
    }

    /// Applies the user's decision on a proposal, then lets the loop go on.
    pub async fn decide(
        &self,
        session_id: Id,
        user: &User,
        proposal_id: Id,
        decision: Decision,
        events: &Events,
    ) -> Result<TurnOutcome> {
        let t = self.open(session_id, user, events).await?;
        let p = self.store.proposal(&t.ctx, proposal_id).await?;
        if p.session_id != session_id {
            return Err(AgentError::Invalid(format!(
                "proposal {proposal_id} belongs to another session"
            )));
        }
        if p.status != ProposalStatus::Pending {
            return Err(AgentError::Invalid(format!(
                "proposal {proposal_id} was already decided ({})",
                p.status.as_str()
            )));
        }
        match decision {
            Decision::Reject { reason } => self.reject(&t, &p, reason.as_deref()).await?,
            Decision::Approve => self.apply(&t, &p, p.args.clone(), false).await?,
            Decision::Edit(changes) => {
                let args = edited(&p.args, changes)?;
                self.registry.tool(&p.tool)?.validate_args(&args)?;
                self.apply(&t, &p, args, true).await?
            }
        }
        self.run(&t).await
    }

    /// Has the model evaluate what every prompt of `user`'s turns starts
    /// with (the system prompt and the tools always offered) in the
    /// background, so the first message does not wait for it. Returns at
    /// once; a backend without a prompt cache ignores it.
    pub fn warm(&self, user: &User) -> Result<()> {
        let tools = select::always_offered(
            &self.config.selection,
            &self.registry,
            |tool| tool.roles().contains(&user.role) && self.registry.ready(tool),
            self.config.compact_tools,
        );
        let cite = tools.iter().any(|t| t.name == CITING_TOOL);
        self.backend.warm(&LlmRequest {
            messages: vec![self.system_message(user, cite)?],
            tools,
            tool_choice: ToolChoice::None,
            max_tokens: Some(1),
            withheld: Vec::new(),
        });
        Ok(())
    }

    /// The system prompt for `user`; `warm` and `ask_model` must render it
    /// alike, or the cached prefix does not match.
    fn system_message(&self, user: &User, cite: bool) -> Result<ChatMessage> {
        let vars = PromptVars {
            user_name: user.name.clone(),
            user_role: role_name(user.role).into(),
            timezone: user.timezone.clone(),
            now: self.config.now.unwrap_or_else(Utc::now),
            cite,
        };
        Ok(ChatMessage::system(self.prompt.render(&vars)?))
    }

    async fn open<'a>(
        &self,
        session_id: Id,
        user: &'a User,
        events: &'a Events,
    ) -> Result<Turn<'a>> {
        let base = Ctx::new(user.workspace_id, Some(user.id), Source::Agent);
        let session = self.store.session(&base, session_id).await?;
        if session.user_id != user.id {
            // Another user's session is reported like a missing one.
            return Err(AgentError::Invalid(format!(
                "no session with id {session_id} for {}",
                user.name
            )));
        }
        let sid = session_id.to_string();
        let caller = Caller {
            workspace_id: user.workspace_id,
            user_id: user.id,
            role: user.role,
            source: Source::Agent,
            session_id: Some(sid.clone()),
            agent: Some(AgentInfo {
                model: self.backend.model(),
                prompt_version: Some(self.prompt.version.clone()),
            }),
        };
        Ok(Turn {
            session,
            user,
            ctx: base.with_session(sid),
            caller,
            events,
            last_read: std::sync::Mutex::new(None),
            results: std::sync::Mutex::new(std::collections::HashMap::new()),
        })
    }

    async fn log(&self, t: &Turn<'_>) -> Result<Log> {
        let entries = self.store.session_entries(&t.ctx, t.session.id).await?;
        Ok(Log::from_entries(&entries))
    }

    async fn choose_tools(&self, t: &Turn<'_>, request: &str) -> Result<Vec<ToolSpec>> {
        let role = t.user.role;
        select::select(
            &self.config.selection,
            &self.registry,
            |tool| tool.roles().contains(&role) && self.registry.ready(tool),
            request,
            self.config.compact_tools,
        )
        .await
    }

    /// The turn proper: the pipeline when it is set up, the loop otherwise.
    async fn run(&self, t: &Turn<'_>) -> Result<TurnOutcome> {
        match &self.pipeline {
            // A model that fails mid-plan ends the turn as the loop's does.
            Some(examples) => match self.run_plan(t, examples).await {
                Err(e) => Err(self.model_failed(t, e).await),
                done => done,
            },
            None => self.run_loop(t).await,
        }
    }

    /// The loop: run what is pending, ask the model, repeat.
    async fn run_loop(&self, t: &Turn<'_>) -> Result<TurnOutcome> {
        loop {
            let log = self.log(t).await?;
            let (repeated, spent, wrote) = match self.run_pending(t, &log).await? {
                Pending::Stop(outcome) => return Ok(outcome),
                Pending::Ask {
                    repeated,
                    spent,
                    wrote,
                } => (repeated, spent, wrote),
            };
            if let Some(done) = wrote.filter(|_| {
                self.config.confirm_writes
                    && self.guard_on(Guard::ConfirmWrite)
                    && confirm::single_action(log.turn_request())
            }) {
                self.fired(t, Guard::ConfirmWrite, None);
                return self.answer(t, done).await;
            }
            let log = self.log(t).await?;
            if let Some(reason) = self.guard(&log) {
                self.fired(t, Guard::Budget, None);
                t.events.emit(AgentEvent::Error {
                    message: reason.clone(),
                });
                self.append(t, kind::MESSAGE, &json!(ChatMessage::assistant(&reason)))
                    .await?;
                return Ok(TurnOutcome::Stopped(reason));
            }
            let mut withheld = spent;
            withheld.extend(log.unavailable_tools());
            let choice = if repeated.is_some() {
                ToolChoice::None
            } else {
                ToolChoice::Auto
            };
            let mut reply = match self.ask_model(t, &log, choice, withheld.clone()).await {
                Ok(reply) => reply,
                Err(e) => return Err(self.model_failed(t, e).await),
            };
            if reply.tool_calls.is_empty()
                && repeated.is_none()
                && self.guard_on(Guard::Apology)
                && !log.turn_tools.is_empty()
                && !log.turn_has_results()
                && is_apology(&reply.content)
            {
                // The 0.5B model sometimes declines a plain CRM request
                // ("I'm sorry, but I can't assist with that.") before looking
                // at anything; asked again, it must pick one of the tools.
                self.fired(t, Guard::Apology, None);
                reply = match self
                    .ask_model(t, &log, ToolChoice::Required, withheld)
                    .await
                {
                    Ok(reply) => reply,
                    Err(e) => return Err(self.model_failed(t, e).await),
                };
            }
            if let Some(done) = repeated.filter(|_| {
                self.guard_on(Guard::Parrot)
                    && (!reply.tool_calls.is_empty()
                        || reply.content.contains("from the tool results")
                        || reply.content.contains("already ran")
                        || parrots(&reply.content, log.turn_request()))
            }) {
                // Told to answer and still calling (or parroting the request
                // to answer, the repeat's note — seen from the 0.5B model
                // as "This exact call already ran; its result is above." —
                // or the user's own words): say what was done, from the result.
                self.fired(t, Guard::Parrot, None);
                return self.answer(t, done).await;
            }
            if reply.tool_calls.is_empty() {
                let text = if reply.content.trim().is_empty() {
                    "(the model gave no answer)".to_owned()
                } else {
                    reply.content.trim().to_owned()
                };
                let text = self.with_listing(t, &log, text);
                return self.answer(t, text).await;
            }
            // A small model may write the same call twice in one reply: run it once.
            let mut raw: Vec<RawCall> = Vec::new();
            for c in reply.tool_calls {
                let doubled = self.guard_on(Guard::DoubledCall)
                    && raw.iter().any(|r| {
                        r.name == c.name && history::same_arguments(&r.arguments, &c.arguments)
                    });
                if doubled {
                    self.fired(t, Guard::DoubledCall, Some(&c.name));
                } else {
                    raw.push(c);
                }
            }
            // Ids unique within the session: models reuse `call_0` turn after
            // turn, and results are matched to calls by id.
            let calls: Vec<ToolCall> = raw
                .into_iter()
                .enumerate()
                .map(|(i, c)| ToolCall {
                    id: format!("call_{}_{i}", log.messages.len()),
                    name: c.name,
                    arguments: c.arguments,
                })
                .collect();
            let mut msg = ChatMessage::assistant_calls(calls);
            msg.content = reply.content;
            self.append(t, kind::MESSAGE, &json!(msg)).await?;
        }
    }

    /// Ends a turn whose model call failed after the backend's own retries
    /// (an endpoint that kept answering 500, a stream that kept breaking
    /// off, …). Nothing of the failed reply was stored or run: the backend
    /// hands over whole replies only, and the log is written after it
    /// returns. The user is told in words (an [`AgentEvent::Error`]), and the
    /// same words close the turn in the session's log, so the log holds
    /// whole turns only and the next message starts a clean one (chat
    /// templates that want user and assistant to alternate would refuse two
    /// user messages in a row). The error is still returned: a caller tells
    /// a failed endpoint from an answer.
    async fn model_failed(&self, t: &Turn<'_>, e: AgentError) -> AgentError {
        let AgentError::Backend(b) = &e else {
            return e;
        };
        let message = format!(
            "I could not finish this: {b}. Nothing of the unfinished reply was kept or run; \
             please send your message again."
        );
        t.events.emit(AgentEvent::Error {
            message: message.clone(),
        });
        let closing = json!(ChatMessage::assistant(&message));
        if let Err(store) = self.append(t, kind::MESSAGE, &closing).await {
            warn!(session = t.session.id, error = %store, "could not record the model's failure");
        }
        e
    }

    /// Why the turn must stop now, if it must.
    fn guard(&self, log: &Log) -> Option<String> {
        if log.steps() >= self.config.max_steps {
            return Some(format!(
                "I stopped after {} model steps without finishing; please rephrase or split the request.",
                log.steps()
            ));
        }
        if log.tokens() >= self.config.token_budget {
            return Some(format!(
                "I stopped: this request used its budget of {} tokens; please narrow it down.",
                self.config.token_budget
            ));
        }
        None
    }

    /// Asks the model for the next step; `answer_only` offers no tools, so
    /// the model must answer in words.
    async fn ask_model(
        &self,
        t: &Turn<'_>,
        log: &Log,
        choice: ToolChoice,
        withheld: Vec<String>,
    ) -> Result<LlmReply> {
        let answer_only = choice == ToolChoice::None;
        let cite = log.turn_tools.iter().any(|n| n == CITING_TOOL);
        let mut messages = vec![self.system_message(t.user, cite)?];
        messages.extend(log.for_prompt(self.config.history_chars));
        if let Some(m) = messages.iter_mut().rev().find(|m| m.role == MsgRole::User) {
            if !log.turn_mentions.is_empty() {
                m.content = format!(
                    "{}\n\n(Records named in this request, found by lookup:\n{})",
                    m.content, log.turn_mentions.text
                );
            }
            // The same "today" as the system prompt's.
            let today = self.config.now.unwrap_or_else(Utc::now).date_naive();
            if let Some(note) = dates::note(log.turn_request(), today) {
                m.content = format!("{}\n\n{note}", m.content);
            }
        }
        if answer_only {
            // Small models imitate the calls above them; a plain request to
            // answer, as the last user words, gets words back.
            messages.push(ChatMessage::user(ANSWER_NOW));
        }
        // Answering still lists the turn's tools (with `tool_choice: none`):
        // the prompt then shares its prefix with the turn's earlier steps,
        // which a local model has cached.
        let tools: Vec<ToolSpec> = log
            .turn_tools
            .iter()
            .filter_map(|n| self.registry.get(n))
            .map(|tool| select::spec(tool, self.config.compact_tools))
            .collect();
        let request = LlmRequest {
            messages,
            tool_choice: choice,
            tools,
            max_tokens: self.config.max_tokens,
            withheld,
        };
        self.call_model(t, &request, true).await
    }

    /// Sends one request to the model, its text streamed to the user when
    /// `stream` (not a plan's or a fill's JSON), and records what it cost in
    /// the session and the audit log.
    async fn call_model(
        &self,
        t: &Turn<'_>,
        request: &LlmRequest,
        stream: bool,
    ) -> Result<LlmReply> {
        let events = t.events.clone();
        let on_delta = move |d: &str| {
            if stream {
                events.emit(AgentEvent::TextDelta { text: d.to_owned() });
            }
        };
        let started = Instant::now();
        let reply = self.backend.complete(request, &on_delta).await?;
        let usage = reply.usage.unwrap_or_default();
        let stats = ModelCall {
            model: self.backend.model(),
            prompt_version: self.prompt.version.clone(),
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            cached_tokens: usage.cached_tokens,
            seconds: started.elapsed().as_secs_f64(),
            tools_offered: request.tools.len(),
        };
        info!(
            session = t.session.id,
            prompt_tokens = stats.prompt_tokens,
            cached = stats.cached_tokens,
            completion_tokens = stats.completion_tokens,
            seconds = stats.seconds,
            calls = reply.tool_calls.len(),
            "model call"
        );
        let body = json!(stats);
        let mut tx = self.store.begin().await?;
        tx.append_session_entry(&t.ctx, t.session.id, kind::MODEL_CALL, &body)
            .await?;
        tx.audit(
            &t.ctx,
            NewAuditEntry {
                action: "agent:model_call",
                record_type: "session",
                record_id: Some(t.session.id),
                before: None,
                after: Some(&body),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(reply)
    }

    /// Runs the calls of the last assistant message that have no result yet.
    async fn run_pending(&self, t: &Turn<'_>, log: &Log) -> Result<Pending> {
        let mut repeated = None;
        let mut spent = Vec::new();
        // The one write this step ran cleanly, worded, if it was the step's
        // only call and the turn's first write.
        let pending = log.pending_calls();
        let mut wrote = None;
        let first_write = !log.wrote(|name| self.is_write(name));
        let tainted_before = log.tainted();
        let mut tainted = tainted_before;
        let mut known = log.known_ids();
        known.insert_typed("user", t.user.id);
        for mut call in pending.iter().cloned() {
            t.events.emit(AgentEvent::ToolCall {
                call_id: call.id.clone(),
                name: call.name.clone(),
                arguments: call.arguments.clone(),
            });
            if log.failures_of(&call.name, &call.arguments) >= 2 {
                self.fired(t, Guard::RepeatedFailure, Some(&call.name));
                let reason = format!(
                    "I stopped: the call {} failed the same way twice; please check the request.",
                    call.name
                );
                let e = ToolError::new(ErrorCode::InvalidArgument, reason.clone());
                self.record_result(t, &call, Err(&e), false).await?;
                t.events.emit(AgentEvent::Error {
                    message: reason.clone(),
                });
                self.append(t, kind::MESSAGE, &json!(ChatMessage::assistant(&reason)))
                    .await?;
                return Ok(Pending::Stop(TurnOutcome::Stopped(reason)));
            }
            // A small model may repeat a call that already worked instead of
            // going on: do not run it twice. A read repeated once is withheld
            // from the next reply (so the model moves on to the call the
            // request needs, or answers); a write, or a read repeated again,
            // means the model must answer from the result it has.
            if let Some(done) = log
                .success_of(&call.name, &call.arguments)
                .filter(|_| self.guard_on(Guard::RepeatedCall))
            {
                self.fired(t, Guard::RepeatedCall, Some(&call.name));
                let read = self
                    .registry
                    .get(&call.name)
                    .is_some_and(|tool| tool.effect() == rapport_tools::Effect::Read);
                let note = if read && log.successes_of(&call.name, &call.arguments) < 2 {
                    spent.push(call.name.clone());
                    REPEATED_READ
                } else {
                    repeated = Some(done_answer(&call, &done.content, read));
                    REPEATED_WRITE
                };
                let note = json!({"already_done": true, "note": note});
                self.record_result(t, &call, Ok(&note), false).await?;
                continue;
            }
            if let Some(done) = self
                .same_text_write(log, &call)
                .filter(|_| self.guard_on(Guard::SameTextWrite))
            {
                self.fired(t, Guard::SameTextWrite, Some(&call.name));
                repeated = Some(done_answer(&call, &done.content, false));
                let note = json!({"already_done": true, "note": REPEATED_TEXT});
                self.record_result(t, &call, Ok(&note), false).await?;
                continue;
            }
            let (mut notes, unsaid) = self.rewrite_call(t, &mut call, log, &known);
            match self.check_call(t, &call, log, &known) {
                Err(mut e) => {
                    self.fired(t, Guard::CallCheck, Some(&call.name));
                    if e.code == ErrorCode::NotFound && e.field.as_deref().is_some_and(is_id_key) {
                        e.candidates = self.linked_to_wrong_id(t, &call, &known).await?;
                        if e.candidates.is_empty() {
                            // An id the conversation never showed: the next
                            // reply looks it up (find_records) instead of
                            // retrying the same call with another made-up id.
                            spent.push(call.name.clone());
                        } else {
                            e.hint = Some(LINKED_HINT.to_owned());
                        }
                    }
                    notes.extend(unsaid_note(&unsaid));
                    let e = noted_error(e, &notes);
                    self.record_result(t, &call, Err(&e), false).await?
                }
                Ok(effect) => {
                    if effect != rapport_tools::Effect::Read
                        && self.guard_on(Guard::AmbiguousPick)
                        && let Some(a) = ambiguous_pick(&call, &log.turn_mentions)
                    {
                        self.fired(t, Guard::AmbiguousPick, Some(&call.name));
                        // The request named one of several records and the
                        // model picked one: ask, do not guess.
                        let question = a.question();
                        let e = ToolError::new(ErrorCode::Ambiguous, question.clone())
                            .with_hint("ask the user which record is meant");
                        self.record_result(t, &call, Err(&e), false).await?;
                        return Ok(Pending::Stop(self.answer(t, question).await?));
                    }
                    if let Some(reason) = approval_reason(&self.config.policy, effect, tainted) {
                        self.fired(t, Guard::Approval, Some(&call.name));
                        let p = self.propose(t, &call, reason).await?;
                        let p = Box::new(p);
                        t.events.emit(AgentEvent::ApprovalNeeded {
                            proposal: p.clone(),
                        });
                        return Ok(Pending::Stop(TurnOutcome::AwaitingApproval(p)));
                    }
                    let result = self
                        .registry
                        .call(&self.store, &t.caller, &call.name, call.arguments.clone())
                        .await;
                    if let Ok(v) = &result {
                        tainted |= history::carries_outside_text(v, &call.arguments);
                    }
                    if let Ok(v) = &result
                        && effect != rapport_tools::Effect::Read
                        && notes.is_empty()
                        && pending.len() == 1
                        && first_write
                    {
                        // Details left out are told, not a reason to ask again.
                        let done = confirm::confirmation(&call.name, &call.arguments, v);
                        wrote = Some(match unsaid.is_empty() {
                            true => done,
                            false => format!(
                                "{done} Not filled in, as not given: {}.",
                                unsaid.join(", ")
                            ),
                        });
                    }
                    notes.extend(unsaid_note(&unsaid));
                    let result = result
                        .map(|v| noted(v, &notes))
                        .map_err(|e| noted_error(e, &notes));
                    self.record_result(t, &call, result.as_ref(), true).await?;
                }
            }
        }
        if tainted && !tainted_before {
            debug!(session = t.session.id, "untrusted text entered the turn");
        }
        Ok(Pending::Ask {
            repeated,
            spent,
            wrote,
        })
    }

    /// The rewrites of a call before it is checked, each by its guard: ids
    /// the request named put in place of made-up ones, made-up optional ids
    /// and date windows nobody asked for left out, details the user did not
    /// give left out. Returns the notes for the model and the details left out.
    fn rewrite_call(
        &self,
        t: &Turn<'_>,
        call: &mut ToolCall,
        log: &Log,
        known: &KnownIds,
    ) -> (Vec<String>, Vec<&'static str>) {
        let mut notes = Vec::new();
        if self.guard_on(Guard::TypedIds) {
            let typed = resolve_invented_ids(call, known, &log.turn_mentions);
            if !typed.is_empty() {
                self.fired(t, Guard::TypedIds, Some(&call.name));
            }
            notes.extend(typed);
        }
        if self.guard_on(Guard::InventedIds) {
            let dropped = self.drop_invented_ids(call, known);
            if !dropped.is_empty() {
                self.fired(t, Guard::InventedIds, Some(&call.name));
                notes.push(left_out(&dropped));
            }
        }
        if self.guard_on(Guard::UnaskedWindow) {
            let today = self.config.now.unwrap_or_else(Utc::now).date_naive();
            if let Some(note) = drop_unasked_window(call, log.turn_request(), today) {
                self.fired(t, Guard::UnaskedWindow, Some(&call.name));
                notes.push(note);
            }
        }
        let mut unsaid = Vec::new();
        if self.guard_on(Guard::GivenDetails) {
            unsaid = drop_unsaid_details(call, || log.said());
            if !unsaid.is_empty() {
                self.fired(t, Guard::GivenDetails, Some(&call.name));
            }
        }
        (notes, unsaid)
    }

    /// Whether `g` acts in this agent ([`AgentConfig::guards`]).
    fn guard_on(&self, g: Guard) -> bool {
        self.config.guards.on(g)
    }

    /// Reports that `g` acted, on a call of `tool` if it acted on one.
    fn fired(&self, t: &Turn<'_>, g: Guard, tool: Option<&str>) {
        debug!(
            session = t.session.id,
            guard = g.name(),
            tool,
            "guard acted"
        );
        t.events.emit(AgentEvent::Guard {
            guard: g,
            tool: tool.map(str::to_owned),
        });
    }

    /// An earlier success of this turn that `call` repeats with only ids or
    /// numbers changed, if `call` creates records and the request did not
    /// ask for several ("a task for Dana and one for Marcus" is two tasks).
    fn same_text_write<'l>(&self, log: &'l Log, call: &ToolCall) -> Option<&'l ChatMessage> {
        let creates = call.name == "log_activity" || call.name.starts_with("create_");
        if !creates || confirm::asks_for_several(log.turn_request()) {
            return None;
        }
        log.same_text_success_of(&call.name, &call.arguments)
    }

    /// Whether the tool of this name changes records.
    fn is_write(&self, name: &str) -> bool {
        self.registry
            .get(name)
            .is_some_and(|tool| tool.effect() != rapport_tools::Effect::Read)
    }

    /// The model's answer to a turn that only read, with the records its
    /// last read returned added when the answer names none of them
    /// ([`listing`]). They stream after the model's words.
    fn with_listing(&self, t: &Turn<'_>, log: &Log, text: String) -> String {
        if log.wrote(|n| self.is_write(n)) || !self.guard_on(Guard::Listing) {
            return text;
        }
        let last_read = t
            .last_read
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some(added) =
            last_read.and_then(|(tool, result)| listing::listing(&tool, &result, &text))
        else {
            return text;
        };
        self.fired(t, Guard::Listing, None);
        let added = format!("\n\n{added}");
        t.events.emit(AgentEvent::TextDelta {
            text: added.clone(),
        });
        text + &added
    }

    /// Ends the turn with `text` as the answer.
    async fn answer(&self, t: &Turn<'_>, text: String) -> Result<TurnOutcome> {
        self.append(t, kind::MESSAGE, &json!(ChatMessage::assistant(&text)))
            .await?;
        t.events.emit(AgentEvent::Final { text: text.clone() });
        Ok(TurnOutcome::Answer(text))
    }

    /// Leaves out optional id arguments whose value appears nowhere in the
    /// conversation: small models fill `company_id: 12345` from thin air, and
    /// a record linked to the wrong company is worse than one linked to none.
    /// Objects nested in the arguments are checked alike (`follow_up` of
    /// `log_activity` came with `assignee_id: 0`, which the tool then refused
    /// as a task for another user, twice). Returns the arguments left out, as
    /// dotted paths (required ones are refused later).
    fn drop_invented_ids(&self, call: &mut ToolCall, known: &KnownIds) -> Vec<String> {
        let Some(tool) = self.registry.get(&call.name) else {
            return Vec::new();
        };
        let schema = tool.input_schema();
        let Some(args) = call.arguments.as_object_mut() else {
            return Vec::new();
        };
        let mut dropped = Vec::new();
        let scope = IdScope {
            tool: &call.name,
            known,
            root: &schema,
        };
        scope.drop_in(args, &schema, "", &mut dropped);
        dropped
    }

    /// Checks that a call names an offered tool with well-formed arguments
    /// and ids that came from the conversation; returns its effect.
    fn check_call(
        &self,
        t: &Turn<'_>,
        call: &ToolCall,
        log: &Log,
        known: &KnownIds,
    ) -> Result<rapport_tools::Effect, ToolError> {
        let offered = log.turn_tools.iter().any(|n| n == &call.name);
        let tool = match self.registry.get(&call.name) {
            Some(tool) if offered || log.turn_tools.is_empty() => tool,
            _ => {
                return Err(ToolError::new(
                    ErrorCode::NotFound,
                    format!("there is no tool named {:?} here", call.name),
                )
                .with_field("name")
                .with_hint(format!("use one of: {}", log.turn_tools.join(", "))));
            }
        };
        if !call.arguments.is_object() {
            return Err(ToolError::invalid(
                "arguments",
                format!(
                    "the arguments must be a JSON object; got {}",
                    call.arguments
                        .to_string()
                        .chars()
                        .take(200)
                        .collect::<String>()
                ),
            ));
        }
        tool.validate_args(&call.arguments)?;
        if let Some((k, n, why)) = self
            .unshown_id(call, known)
            .filter(|_| self.guard_on(Guard::TypedIds))
        {
            let message = match why {
                Known::AsOther(types) => format!(
                    "{k} {n} is the id of {}, not of {}",
                    types
                        .iter()
                        .map(|t| a_or_an(t))
                        .collect::<Vec<_>>()
                        .join(" or "),
                    a_or_an(
                        crate::known::expected_type_in(&call.name, &k, &call.arguments)
                            .unwrap_or("record of this kind")
                    )
                ),
                _ => format!("{k} {n} does not come from this conversation"),
            };
            return Err(ToolError::new(ErrorCode::NotFound, message)
                .with_field(k)
                .with_hint(
                    "look the record up with find_records (or a list tool) and use the id it returns",
                ));
        }
        if tool.effect() != rapport_tools::Effect::Read
            && self.guard_on(Guard::Apology)
            && let Some(field) = refusal_in(&call.arguments, "")
        {
            // A small model that will not or cannot do a request sometimes
            // writes its apology into the record ("I'm sorry, but I can't
            // assist with that request." logged as a call's body).
            // The tool is withheld from here on (`Log::unavailable_tools`).
            return Err(ToolError::invalid(field, history::APOLOGY).with_hint(
                "fill text fields with the user's own words; if this tool cannot do the request, use another or answer in words",
            ));
        }
        if !tool.roles().contains(&t.caller.role) {
            // Let the registry produce its permission error.
            return Ok(rapport_tools::Effect::Read);
        }
        Ok(tool.effect())
    }

    /// The first id argument (in the schema's order: argument order differs
    /// by database) that the conversation did not show as the type it needs.
    fn unshown_id(&self, call: &ToolCall, known: &KnownIds) -> Option<(String, i64, Known)> {
        let schema = self.registry.get(&call.name)?.input_schema();
        let position = |k: &str| {
            schema["properties"]
                .as_object()
                .and_then(|p| p.keys().position(|o| o == k))
                .unwrap_or(usize::MAX)
        };
        call.arguments.as_object().and_then(|a| {
            a.iter()
                .filter(|(k, _)| is_id_key(k))
                .filter_map(|(k, v)| {
                    let n = v.as_i64()?;
                    let expected = crate::known::expected_type_in(&call.name, k, &call.arguments);
                    match known.check_as(expected, n) {
                        Known::Yes => None,
                        why => Some((k.clone(), n, why)),
                    }
                })
                .min_by_key(|(k, _, _)| position(k))
        })
    }

    /// For an id the model gave as the wrong type of record (a deal's id as
    /// `task_id`): the records of the right type linked to that one.
    async fn linked_to_wrong_id(
        &self,
        t: &Turn<'_>,
        call: &ToolCall,
        known: &KnownIds,
    ) -> Result<Vec<rapport_crm::Candidate>> {
        let Some((k, n, Known::AsOther(types))) = self.unshown_id(call, known) else {
            return Ok(Vec::new());
        };
        let wanted = crate::known::expected_type_in(&call.name, &k, &call.arguments)
            .and_then(|w| RecordType::parse(w).ok());
        let Some(wanted) = wanted else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for given in types.iter().filter_map(|g| RecordType::parse(g).ok()) {
            out.extend(linked::linked(&self.store, &t.ctx, wanted, given, n).await?);
        }
        Ok(out)
    }

    async fn propose(&self, t: &Turn<'_>, call: &ToolCall, reason: &str) -> Result<Proposal> {
        let snapshot = self
            .registry
            .snapshot(&self.store, &t.caller, &call.name, &call.arguments)
            .await?;
        let mut tx = self.store.begin().await?;
        let p = tx
            .propose(
                &t.ctx,
                NewProposal {
                    session_id: t.session.id,
                    call_id: &call.id,
                    tool: &call.name,
                    args: &call.arguments,
                    snapshot: &json!(snapshot),
                    reason,
                },
            )
            .await?;
        tx.commit().await?;
        Ok(p)
    }

    /// Runs an approved call and marks the proposal applied, in one transaction.
    /// On failure nothing of the call is kept and the proposal is marked
    /// `conflict` (a record changed since) or `failed` — except when the user's
    /// own edit is invalid: then the proposal stays pending for another try.
    async fn apply(&self, t: &Turn<'_>, p: &Proposal, args: Value, edited: bool) -> Result<()> {
        let snapshot: Snapshot = serde_json::from_value(p.snapshot.clone()).unwrap_or_default();
        let call = ToolCall {
            id: p.call_id.clone(),
            name: p.tool.clone(),
            arguments: args.clone(),
        };
        let mut cx = self.registry.begin(&self.store, &t.caller).await?;
        match self
            .registry
            .execute(&mut cx, &p.tool, args.clone(), Some(&snapshot))
            .await
        {
            Ok(result) => {
                cx.tx
                    .decide_proposal(&t.ctx, p.id, ProposalStatus::Applied, &args, &result)
                    .await?;
                let msg = ChatMessage::tool(
                    &call.id,
                    &call.name,
                    history::ok_content(&result, self.config.result_chars),
                );
                cx.tx
                    .append_session_entry(&t.ctx, t.session.id, kind::MESSAGE, &json!(msg))
                    .await?;
                cx.tx.commit().await?;
                t.events.emit(AgentEvent::ToolResult {
                    call_id: call.id,
                    name: call.name,
                    ok: true,
                    ran: true,
                    result,
                });
                Ok(())
            }
            Err(e) if edited && e.code == ErrorCode::InvalidArgument => {
                cx.tx.rollback().await?;
                Err(AgentError::Tool(e))
            }
            Err(e) => {
                cx.tx.rollback().await?;
                let status = if e.code == ErrorCode::Conflict {
                    ProposalStatus::Conflict
                } else {
                    ProposalStatus::Failed
                };
                self.close_proposal(t, p, status, &args, &call, &e).await
            }
        }
    }

    async fn reject(&self, t: &Turn<'_>, p: &Proposal, reason: Option<&str>) -> Result<()> {
        let call = ToolCall {
            id: p.call_id.clone(),
            name: p.tool.clone(),
            arguments: p.args.clone(),
        };
        let message = match reason {
            Some(r) => format!("the user rejected this call: {r}"),
            None => "the user rejected this call".to_owned(),
        };
        let e = ToolError::new(ErrorCode::PermissionDenied, message)
            .with_hint("do not retry it; ask the user what to do instead");
        self.close_proposal(t, p, ProposalStatus::Rejected, &p.args, &call, &e)
            .await
    }

    async fn close_proposal(
        &self,
        t: &Turn<'_>,
        p: &Proposal,
        status: ProposalStatus,
        args: &Value,
        call: &ToolCall,
        e: &ToolError,
    ) -> Result<()> {
        let mut tx = self.store.begin().await?;
        tx.decide_proposal(&t.ctx, p.id, status, args, &json!(e))
            .await?;
        let msg = ChatMessage::tool(&call.id, &call.name, history::error_content(e));
        tx.append_session_entry(&t.ctx, t.session.id, kind::MESSAGE, &json!(msg))
            .await?;
        tx.commit().await?;
        t.events.emit(AgentEvent::ToolResult {
            call_id: call.id.clone(),
            name: call.name.clone(),
            ok: false,
            // A rejected proposal never ran; one whose approved write failed
            // ran and was rolled back.
            ran: status != ProposalStatus::Rejected,
            result: json!(e),
        });
        Ok(())
    }

    async fn record_result(
        &self,
        t: &Turn<'_>,
        call: &ToolCall,
        result: std::result::Result<&Value, &ToolError>,
        ran: bool,
    ) -> Result<()> {
        if let Ok(v) = result
            && ran
            && listing::lists(&call.name)
            && !self.is_write(&call.name)
        {
            *t.last_read.lock().unwrap_or_else(|p| p.into_inner()) =
                Some((call.name.clone(), v.clone()));
        }
        if let Ok(v) = result
            && ran
        {
            t.results
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(call.id.clone(), v.clone());
        }
        let (content, ok, shown) = match result {
            Ok(v) => (
                history::ok_content(v, self.config.result_chars),
                true,
                v.clone(),
            ),
            Err(e) => (history::error_content(e), false, json!(e)),
        };
        self.append(
            t,
            kind::MESSAGE,
            &json!(ChatMessage::tool(&call.id, &call.name, content)),
        )
        .await?;
        t.events.emit(AgentEvent::ToolResult {
            call_id: call.id.clone(),
            name: call.name.clone(),
            ok,
            ran,
            result: shown,
        });
        Ok(())
    }

    async fn append(&self, t: &Turn<'_>, kind: &str, body: &Value) -> Result<()> {
        let mut tx = self.store.begin().await?;
        tx.append_session_entry(&t.ctx, t.session.id, kind, body)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Whether `answer` only repeats (part of) the user's request.
fn parrots(answer: &str, request: &str) -> bool {
    let norm = |s: &str| {
        s.to_lowercase()
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let (a, r) = (norm(answer), norm(request));
    a.len() >= 12 && r.contains(&a)
}

/// What a repeated read is answered with; the read is withheld next.
/// The hint of a wrong-type id refusal that lists the linked records.
const LINKED_HINT: &str = "candidates lists the records of the right type linked to the one you named: call again with the id of the one the user means, or look it up with find_records";

const REPEATED_READ: &str = "this exact call already ran; its result is above. Use it: make the next call the request needs with the ids it gave, or answer.";
/// What a write that repeats an earlier one's text is answered with.
const REPEATED_TEXT: &str = "a call with this same text already ran in this turn; its result is above. Do not write it again: answer the user now.";
/// What a repeated write (or a read repeated again) is answered with.
const REPEATED_WRITE: &str =
    "this exact call already ran; its result is above. Answer the user now.";

/// The nudge after a repeated call: answer from the results, no more calls.
const ANSWER_NOW: &str =
    "Now reply to my request in one or two plain sentences, from the tool results. No tool calls.";

/// What the pending calls leave the loop to do.
enum Pending {
    /// The turn ends here (a guard, or a call waiting for approval).
    Stop(TurnOutcome),
    /// Ask the model. `repeated`: a write that had already worked was asked
    /// for again; the model must now answer, and if it calls tools anyway
    /// this summary of what was done is the answer. `spent`: reads repeated
    /// with the same arguments, which the next reply may not call again.
    /// `wrote`: the step's only call was the turn's first write and it
    /// worked; what it did, in words, the answer if the request asked for
    /// nothing more.
    Ask {
        repeated: Option<String>,
        spent: Vec<String>,
        wrote: Option<String>,
    },
}

/// The answer for a turn whose model repeated a call that had worked: what
/// was done (or, for a `read`, what it found), from the result itself
/// (never invented).
fn done_answer(call: &ToolCall, content: &str, read: bool) -> String {
    let body = content
        .trim_start_matches(history::DATA_OPEN)
        .trim_end_matches("</data>")
        .trim();
    let parsed = serde_json::from_str::<Value>(body);
    let found = parsed
        .as_ref()
        .ok()
        .filter(|_| read)
        .and_then(|v| listing::found(&call.name, &v["result"]));
    if let Some(found) = found {
        return found;
    }
    match parsed {
        Ok(v) if v["result"].is_object() => {
            confirm::confirmation(&call.name, &call.arguments, &v["result"])
        }
        _ => format!("Done: {}.", call.name.replace('_', " ")),
    }
}

/// A failed call whose invented ids were left out says so: "give exactly one
/// of stage_id and stage" alone sends a model that did give a stage_id round
/// in circles.
fn noted_error(mut e: ToolError, notes: &[String]) -> ToolError {
    if notes.is_empty() {
        return e;
    }
    let note = notes.join("; ");
    e.hint = Some(match e.hint.take() {
        Some(h) => format!("{note}. {h}"),
        None => note,
    });
    e
}

/// The note on optional id arguments left out because nothing showed them.
fn left_out(dropped: &[String]) -> String {
    format!(
        "left out {}: not ids from this conversation (look ids up with find_records)",
        dropped.join(", ")
    )
}

/// The date-window arguments of a search, left out when the request says
/// nothing about when ([`dates::names_a_time`]): a window the model made up
/// hides every hit outside it. Returns the note for the model.
fn drop_unasked_window(call: &mut ToolCall, request: &str, today: NaiveDate) -> Option<String> {
    const WINDOW: [&str; 2] = ["since", "until"];
    if call.name != "search_interactions" || dates::names_a_time(request, today) {
        return None;
    }
    let args = call.arguments.as_object_mut()?;
    let dropped: Vec<&str> = WINDOW
        .into_iter()
        .filter(|k| args.remove(*k).is_some_and(|v| !v.is_null()))
        .collect();
    (!dropped.is_empty()).then(|| {
        format!(
            "left out {}: the request gives no dates, so the search covers all time",
            dropped.join(", ")
        )
    })
}

/// The fields of a create or update whose value is a fact about the world the
/// model cannot know unless the conversation showed it. Constrained by a
/// schema that lists every field, the 0.5B model filled them all: asked to
/// "create a contact: Jane Doe, email jane.doe@acme.com" it also wrote phone
/// 123-456-7890 and title "Software Engineer"; asked for a company's domain
/// it set employees and revenue to 0. Names count on updates only (a create
/// needs one; an update renamed a company "company 4"). Enums and dates are
/// left alone: "disqualify" gives `disqualified`, "next Friday" a date.
fn given_only(tool: &str) -> Vec<&'static str> {
    let Some((verb, record)) = tool.split_once('_') else {
        return Vec::new();
    };
    let (names, details): (&[&'static str], &[&'static str]) = match record {
        "contact" => (&["first_name", "last_name"], &["email", "phone", "title"]),
        "lead" => (&["name"], &["email", "title", "company_name", "source"]),
        "company" => (
            &["name"],
            &[
                "domain",
                "industry",
                "employees",
                "annual_revenue",
                "country",
                "city",
            ],
        ),
        _ => return Vec::new(),
    };
    match verb {
        "create" => details.to_vec(),
        "update" => names.iter().chain(details).copied().collect(),
        _ => Vec::new(),
    }
}

/// Leaves out of a create or update the fields of [`given_only`] whose value
/// does not appear in what the conversation showed (`said`, lowercased:
/// [`Log::said`], read only for the tools that have such fields): text as a
/// substring, a phone number by its digits, a number as a figure ("48
/// million", "$1.2M", "1,300"). Returns the fields left out.
fn drop_unsaid_details(call: &mut ToolCall, said: impl FnOnce() -> String) -> Vec<&'static str> {
    let fields = given_only(&call.name);
    let Some(args) = call
        .arguments
        .as_object_mut()
        .filter(|_| !fields.is_empty())
    else {
        return Vec::new();
    };
    let said = said();
    let said = said.as_str();
    let figures = figures_in(said);
    // A value of the wrong type is left for validation to answer.
    let figure_field = |key: &str| matches!(key, "employees" | "annual_revenue");
    let phones = phones_in(said);
    let shown = |key: &str, value: &Value| match value {
        Value::String(v) if !figure_field(key) => {
            let v = v.trim().to_lowercase();
            match key {
                _ if v.is_empty() => true,
                // "Austin" is no domain, even if the user said it.
                "domain" => v.contains('.') && !v.contains(' ') && said.contains(&v),
                "phone" => {
                    let d = digits(&v);
                    d.len() >= 7 && phones.iter().any(|p| p.ends_with(&d))
                }
                _ => said.contains(&v),
            }
        }
        Value::Number(n) if figure_field(key) => n.as_f64().is_some_and(|x| {
            figures
                .iter()
                .any(|f| (f - x).abs() <= 1e-9 * x.abs().max(1.0))
        }),
        _ => true,
    };
    let dropped: Vec<&'static str> = fields
        .into_iter()
        .filter(|k| args.get(*k).is_some_and(|v| !shown(k, v)))
        .collect();
    for k in &dropped {
        args.remove(*k);
    }
    dropped
}

/// The note for the model on the details [`drop_unsaid_details`] left out.
fn unsaid_note(dropped: &[&str]) -> Option<String> {
    (!dropped.is_empty()).then(|| {
        format!(
            "left out {}: the user did not give them; ask if they are needed",
            dropped.join(", ")
        )
    })
}

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// The digits of each run of `text` that can be a phone number: digits with
/// the spaces, dashes, dots, brackets and plus signs between them, at least
/// seven digits long ("+1 (512) 555-0199" gives 15125550199). A number the
/// model writes counts as given when one of these ends with its digits, so
/// "512-555-0199" matches but "1234" (the end of "+49 30 555 01234") does not.
fn phones_in(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_ascii_digit() || " +-().".contains(c)))
        .map(digits)
        .filter(|d| d.len() >= 7)
        .collect()
}

/// The figures written in `text`, with their scale words applied: "48
/// million" gives 48 and 48000000, "$1.2M" 1.2 and 1200000, "1,300" 1300.
fn figures_in(text: &str) -> Vec<f64> {
    fn scale(word: &str) -> Option<f64> {
        match word {
            "k" | "thousand" => Some(1e3),
            "m" | "mm" | "mn" | "million" | "millions" => Some(1e6),
            "b" | "bn" | "billion" | "billions" => Some(1e9),
            _ => None,
        }
    }
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || "()[]{};:!?\"'".contains(c))
        .filter(|w| !w.is_empty())
        .collect();
    let mut out = Vec::new();
    for (i, w) in words.iter().enumerate() {
        let w = w
            .trim_start_matches(['$', '€', '£', '~'])
            .trim_end_matches(['.', ',']);
        let w = w.replace(',', "");
        let end = w
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(w.len());
        let Ok(x) = w[..end].parse::<f64>() else {
            continue;
        };
        out.push(x);
        let next = words.get(i + 1).map(|n| n.trim_end_matches(['.', ',']));
        if let Some(m) = scale(&w[end..]).or_else(|| next.and_then(scale)) {
            out.push(x * m);
        }
    }
    out
}

/// A result with notes on the id arguments that were replaced or left out.
fn noted(mut result: Value, notes: &[String]) -> Value {
    if !notes.is_empty() && result.is_object() {
        result["note"] = json!(notes.join("; "));
    }
    result
}

/// Replaces id arguments the model made up with the one record of that type
/// the request named ("Move the Globex deal…", called with `deal_id: 12345`):
/// the lookup found exactly one deal, so that is the deal meant. Where the
/// request named none, or several, nothing is replaced and the id is left
/// out or refused as before. Returns a note per replacement, for the model.
fn resolve_invented_ids(call: &mut ToolCall, known: &KnownIds, mentions: &Mentions) -> Vec<String> {
    let name = call.name.clone();
    let given = call.arguments.clone();
    let Some(args) = call.arguments.as_object_mut() else {
        return Vec::new();
    };
    let mut notes = Vec::new();
    for (k, v) in args.iter_mut() {
        let Some(n) = v.as_i64().filter(|_| is_id_key(k)) else {
            continue;
        };
        let expected = crate::known::expected_type_in(&name, k, &given);
        if known.check_as(expected, n) == Known::Yes {
            continue;
        }
        if let Some(m) = expected.and_then(|t| mentions.only(t)) {
            notes.push(format!(
                "{k} {n} was not from this conversation; used {} {} ({}), named in the request",
                m.record_type, m.id, m.label
            ));
            *v = json!(m.id);
        }
    }
    notes
}

/// "a deal", "an activity".
fn a_or_an(noun: &str) -> String {
    // "user" is the one record type that starts with a vowel but not its sound.
    let article = if noun.starts_with(['a', 'e', 'i', 'o', 'u']) && !noun.starts_with("us") {
        "an"
    } else {
        "a"
    };
    format!("{article} {noun}")
}

/// An argument naming a record by id.
/// The ambiguous name of the request a write's id argument picked from.
fn ambiguous_pick<'m>(call: &ToolCall, mentions: &'m Mentions) -> Option<&'m Ambiguous> {
    call.arguments.as_object()?.iter().find_map(|(k, v)| {
        let n = v.as_i64().filter(|_| is_id_key(k))?;
        let record_type = crate::known::expected_type_in(&call.name, k, &call.arguments);
        mentions.ambiguity(record_type, n)
    })
}

/// What [`Agent::drop_invented_ids`] needs while it walks nested arguments.
struct IdScope<'a> {
    tool: &'a str,
    known: &'a KnownIds,
    /// The tool's whole input schema, for `$ref`s into its `$defs`.
    root: &'a Value,
}

impl IdScope<'_> {
    /// Leaves out the invented optional ids of `args` (described by
    /// `schema`) and of the objects nested in it, adding their paths to
    /// `dropped` in the schema's order: the arguments come back from the
    /// session log, and PostgreSQL's jsonb reorders object keys (shortest
    /// first), so their own order differs between the two databases.
    fn drop_in(
        &self,
        args: &mut Map<String, Value>,
        schema: &Value,
        prefix: &str,
        dropped: &mut Vec<String>,
    ) {
        let required = |k: &str| {
            schema["required"]
                .as_array()
                .is_some_and(|r| r.iter().any(|x| x == k))
        };
        let invented = |k: &str, v: &Value| {
            is_id_key(k)
                && v.as_i64()
                    .is_some_and(|n| self.known.check(self.tool, k, n) != Known::Yes)
                && !required(k)
        };
        let order: Vec<&String> = schema["properties"]
            .as_object()
            .map(|p| p.keys().collect())
            .unwrap_or_default();
        let mut keys: Vec<String> = args.keys().cloned().collect();
        keys.sort_by_key(|k| order.iter().position(|o| *o == k).unwrap_or(usize::MAX));
        for k in keys {
            if args.get(&k).is_some_and(|v| invented(&k, v)) {
                args.remove(&k);
                dropped.push(format!("{prefix}{k}"));
            } else if let Some(inner) = args.get_mut(&k).and_then(Value::as_object_mut) {
                let sub = self.object_schema(&schema["properties"][&k]);
                self.drop_in(inner, sub, &format!("{prefix}{k}."), dropped);
            }
        }
    }

    /// The object schema `s` stands for: its `$ref` followed, the object
    /// alternative of an `anyOf`/`oneOf` (an optional field is `X or null`).
    fn object_schema<'s>(&'s self, s: &'s Value) -> &'s Value {
        if let Some(name) = s["$ref"].as_str().and_then(|r| r.rsplit('/').next()) {
            let defs = &self.root["$defs"];
            let def = if defs.is_object() {
                &defs[name]
            } else {
                &self.root["definitions"][name]
            };
            return self.object_schema(def);
        }
        for key in ["anyOf", "oneOf", "allOf"] {
            if let Some(alts) = s[key].as_array()
                && let Some(obj) = alts
                    .iter()
                    .map(|a| self.object_schema(a))
                    .find(|a| a["properties"].is_object())
            {
                return obj;
            }
        }
        s
    }
}

/// Whether `text` reads as a model declining ("I'm sorry, but I can't assist
/// with that request."), not as an answer or as CRM content.
fn is_apology(text: &str) -> bool {
    const REFUSALS: [&str; 6] = [
        "i'm sorry, but i can",
        "i apologize, but i can",
        "i can't assist",
        "i cannot assist",
        "i'm unable to assist",
        "as an ai",
    ];
    let text = text.to_lowercase().replace('\u{2019}', "'");
    REFUSALS.iter().any(|r| text.contains(r))
}

/// The path of the first string argument (nested ones included) that reads
/// as a model's refusal rather than CRM content.
fn refusal_in(v: &Value, path: &str) -> Option<String> {
    match v {
        Value::String(text) => is_apology(text).then(|| path.to_owned()),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            let inner = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            refusal_in(v, &inner)
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| refusal_in(v, &format!("{path}[{i}]"))),
        _ => None,
    }
}

fn is_id_key(k: &str) -> bool {
    k == "id" || k.ends_with("_id")
}

/// The proposed arguments with the user's changes; only proposed fields may change.
fn edited(proposed: &Value, changes: Map<String, Value>) -> Result<Value> {
    let mut args = proposed.as_object().cloned().unwrap_or_default();
    let unknown: Vec<&String> = changes.keys().filter(|k| !args.contains_key(*k)).collect();
    if !unknown.is_empty() {
        let names: Vec<&str> = unknown.iter().map(|s| s.as_str()).collect();
        let allowed: Vec<&str> = args.keys().map(String::as_str).collect();
        return Err(AgentError::Invalid(format!(
            "only the proposed fields can be edited ({}); not {}",
            allowed.join(", "),
            names.join(", ")
        )));
    }
    args.extend(changes);
    Ok(Value::Object(args))
}

pub(crate) fn role_name(role: Role) -> &'static str {
    match role {
        Role::Viewer => "viewer",
        Role::Rep => "rep",
        Role::Manager => "manager",
        Role::Admin => "admin",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_details_the_user_did_not_give_are_left_out() {
        let said =
            "create a contact: jane doe, email jane.doe@acme.com, call her on +1 (555) 010-2030";
        let mut c = ToolCall {
            id: "c".into(),
            name: "create_contact".into(),
            arguments: json!({"first_name": "Jane", "last_name": "Doe",
                "email": "Jane.Doe@acme.com", "phone": "555-010-2030",
                "title": "Software Engineer", "city": ""}),
        };
        assert_eq!(drop_unsaid_details(&mut c, || said.to_owned()), ["title"]);
        assert_eq!(
            c.arguments,
            json!({"first_name": "Jane", "last_name": "Doe",
                "email": "Jane.Doe@acme.com", "phone": "555-010-2030", "city": ""})
        );
        // An invented phone number goes; a title the user said stays.
        let mut c = ToolCall {
            name: "update_contact".into(),
            arguments: json!({"id": 3, "phone": "123-456-7890", "title": "VP Sales"}),
            ..c
        };
        assert_eq!(
            drop_unsaid_details(&mut c, || "make dana vp sales".to_owned()),
            ["phone"]
        );
        assert_eq!(c.arguments, json!({"id": 3, "title": "VP Sales"}));
        // Figures count as written, with their scale; names only on updates.
        let mut c = ToolCall {
            name: "update_company".into(),
            arguments: json!({"id": 4, "name": "company 4", "annual_revenue": 48000000,
                "employees": 0, "domain": "norrland.se"}),
            ..c
        };
        let said = "halden's revenue is about 48 million; domain norrland.se";
        assert_eq!(
            drop_unsaid_details(&mut c, || said.to_owned()),
            ["name", "employees"]
        );
        assert_eq!(
            c.arguments,
            json!({"id": 4, "annual_revenue": 48000000, "domain": "norrland.se"})
        );
        // Part of a number the user gave is not that number; a city is no domain.
        let mut c = ToolCall {
            name: "create_contact".into(),
            arguments: json!({"first_name": "Jonas", "phone": "1234"}),
            ..c
        };
        assert_eq!(
            drop_unsaid_details(&mut c, || "jonas weber, +49 30 555 01234".to_owned()),
            ["phone"]
        );
        let mut c = ToolCall {
            name: "create_company".into(),
            arguments: json!({"name": "Kestrel", "domain": "Austin", "city": "Austin"}),
            ..c
        };
        assert_eq!(
            drop_unsaid_details(&mut c, || "kestrel (kestrel.ai), based in austin"
                .to_owned()),
            ["domain"]
        );
        let figures = figures_in("about 240 people, $1.2m revenue, 1,300 seats");
        for x in [240.0, 1.2, 1_200_000.0, 1300.0] {
            assert!(
                figures.iter().any(|f| (f - x).abs() < 1e-6),
                "{x} in {figures:?}"
            );
        }
        // Other tools' titles (a task's) are the model's words to choose.
        let mut c = ToolCall {
            name: "create_task".into(),
            arguments: json!({"title": "Send the IT pack"}),
            ..c
        };
        assert!(drop_unsaid_details(&mut c, || "remind me to send it".to_owned()).is_empty());
    }

    #[test]
    fn a_search_window_the_request_did_not_ask_for_is_left_out() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 2).unwrap();
        let search = |args: Value| ToolCall {
            id: "c".into(),
            name: "search_interactions".into(),
            arguments: args,
        };
        let invented = json!({"query": "contract", "since": "2026-11-02T14:00:00Z", "until": "2026-11-02T15:00:00Z"});
        let mut c = search(invented.clone());
        let note = drop_unasked_window(&mut c, "What did Acme say about the contract?", today);
        assert_eq!(c.arguments, json!({"query": "contract"}));
        assert!(note.unwrap().contains("since, until"));
        // Asked for: kept.
        let mut c = search(invented.clone());
        assert!(drop_unasked_window(&mut c, "What did Acme say last week?", today).is_none());
        assert_eq!(c.arguments, invented);
        // Other tools are not touched.
        let mut c = ToolCall {
            name: "list_activities".into(),
            ..search(invented.clone())
        };
        assert!(drop_unasked_window(&mut c, "the contract", today).is_none());
    }

    #[test]
    fn invented_ids_are_left_out_of_nested_objects_too() {
        // The shape schemars gives `log_activity`: an optional nested object
        // is `$ref or null`, its fields in `$defs`.
        let schema = json!({
            "type": "object",
            "required": ["kind"],
            "properties": {
                "kind": {"type": "string"},
                "contact_id": {"type": "integer"},
                "company_id": {"type": "integer"},
                "follow_up": {"anyOf": [{"$ref": "#/$defs/FollowUp"}, {"type": "null"}]}
            },
            "$defs": {"FollowUp": {
                "type": "object",
                "required": ["title"],
                "properties": {"title": {"type": "string"}, "assignee_id": {"type": "integer"}}
            }}
        });
        let mut known = KnownIds::default();
        known.insert_typed("contact", 9);
        let scope = IdScope {
            tool: "log_activity",
            known: &known,
            root: &schema,
        };
        let mut args = json!({
            "kind": "call", "contact_id": 9, "company_id": 0,
            "follow_up": {"title": "Budget", "assignee_id": 0}
        });
        let mut dropped = Vec::new();
        scope.drop_in(args.as_object_mut().unwrap(), &schema, "", &mut dropped);
        assert_eq!(dropped, ["company_id", "follow_up.assignee_id"]);
        assert_eq!(
            args,
            json!({"kind": "call", "contact_id": 9, "follow_up": {"title": "Budget"}})
        );
    }

    #[test]
    fn an_apology_in_a_text_argument_is_found() {
        let args = json!({
            "kind": "call",
            "body": "I'm sorry, but I can't assist with that request."
        });
        assert_eq!(refusal_in(&args, "").as_deref(), Some("body"));
        let nested = json!({"follow_up": {"title": "As an AI, I cannot set reminders"}});
        assert_eq!(refusal_in(&nested, "").as_deref(), Some("follow_up.title"));
        let fine = json!({"body": "Sorry we missed you; they can't assist until Q1."});
        assert_eq!(refusal_in(&fine, ""), None);
    }

    #[test]
    fn edits_touch_only_proposed_fields() {
        let p = json!({"id": 3, "name": "Acme"});
        let mut ok = Map::new();
        ok.insert("name".into(), json!("Acme Corp"));
        assert_eq!(
            edited(&p, ok).unwrap(),
            json!({"id": 3, "name": "Acme Corp"})
        );
        let mut bad = Map::new();
        bad.insert("owner_id".into(), json!(9));
        assert!(
            edited(&p, bad)
                .unwrap_err()
                .to_string()
                .contains("only the proposed fields")
        );
    }

    #[test]
    fn an_answer_that_repeats_the_request_is_a_parrot() {
        let request = "Add a new company: Brightwater Foods, brightwaterfoods.com, they're a food & beverage business in Portland.";
        assert!(parrots(
            "Brightwater Foods, brightwaterfoods.com, they're a food & beverage business in Portland.",
            request
        ));
        assert!(!parrots("Created Brightwater Foods (company 4).", request));
        assert!(!parrots("Done.", request));
    }

    #[test]
    fn a_failure_after_leaving_out_invented_ids_says_so() {
        let e = ToolError::invalid("stage", "give exactly one of stage_id and stage")
            .with_hint("stage names: Qualified, Proposal, Negotiation");
        let e = noted_error(e, &[left_out(&["stage_id".to_string()])]);
        let hint = e.hint.unwrap();
        assert!(
            hint.starts_with("left out stage_id: not ids from this conversation"),
            "{hint}"
        );
        assert!(
            hint.ends_with("stage names: Qualified, Proposal, Negotiation"),
            "{hint}"
        );
        let plain = noted_error(ToolError::invalid("x", "bad"), &[]);
        assert_eq!(plain.hint, None);
    }
}
