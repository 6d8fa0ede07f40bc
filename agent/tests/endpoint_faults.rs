//! Whole chat turns against a model endpoint that fails, over real HTTP (the
//! scripted chat-completions server of `fixtures/openai_server.rs`) and a
//! real database (every case on SQLite and on PostgreSQL): 429 with
//! `Retry-After` (within and beyond the retry budget), 500s, a stream that
//! stalls after its headers, a stream cut mid-answer, invalid JSON in a tool
//! call's arguments, and a server that hangs for 60 s.
//!
//! For each: the backend retries within its budget; no half-received call
//! runs (no record, no audit entry of a tool); the turn ends with a clear
//! message to the user; the session's log holds the user's message and that
//! message and nothing of the failed reply; and the next turn in the same
//! session, with the endpoint behaving again, works.

#[path = "fixtures/openai_server.rs"]
mod openai_server;

use std::sync::Arc;
use std::time::{Duration, Instant};

use openai_server::{Act, Script, call_chunks, server, text_chunks};
use rapport_agent::backend::openai::{OpenAiBackend, OpenAiConfig};
use rapport_agent::{
    Agent, AgentConfig, AgentError, AgentEvent, BackendError, Events, Policy, TurnOutcome,
};
use rapport_crm::model::{AgentSession, Company, User};
use rapport_crm::testing::Fixture;
use rapport_crm::{ListQuery, Store};
use rapport_models::llm::Role;
use rapport_tools::Registry;
use tokio::sync::mpsc;

rapport_crm::both_backends!(
    a_retry_after_within_the_budget_is_waited_and_the_turn_goes_on,
    a_retry_after_beyond_the_budget_ends_the_turn_at_once,
    server_errors_are_retried_then_end_the_turn_cleanly,
    a_stream_that_stalls_after_its_headers_ends_the_turn_cleanly,
    a_cut_stream_never_runs_its_half_call,
    invalid_json_in_a_call_is_never_run_and_stops_the_turn,
    a_server_that_hangs_for_a_minute_is_given_up_on_in_time,
);

/// Attempts per model request in these tests.
const ATTEMPTS: usize = 3;

/// The silence after which an attempt is given up on: short, so a test of
/// a 60 s hang takes a second. The same code path bounds the default 60 s.
const SILENCE: Duration = Duration::from_millis(300);

/// What the user asks in every first turn, and what the model does with it
/// when it behaves.
const ASK: &str = "Add a company called Initech";

struct World {
    store: Store,
    fx: Fixture,
    agent: Agent,
    script: Script,
    session: AgentSession,
}

impl World {
    async fn new(store: &Store, name: &str, acts: Vec<Act>) -> World {
        let fx = Fixture::new(store, name).await.expect("fixture");
        let (addr, script) = server(acts).await;
        let mut c = OpenAiConfig::new(format!("http://{addr}/v1"), "test-model");
        c.backoff = Duration::from_millis(20);
        c.read_timeout = SILENCE;
        c.max_attempts = ATTEMPTS as u32;
        c.retry_budget = Duration::from_secs(5);
        let backend = Arc::new(OpenAiBackend::new(c).expect("backend"));
        let config = AgentConfig {
            policy: Policy::default(),
            ..AgentConfig::default()
        };
        let agent =
            Agent::new(store.clone(), Arc::new(Registry::new()), backend, config).expect("agent");
        let session = agent.start_session(&fx.rep, "faults").await.unwrap();
        World {
            store: store.clone(),
            fx,
            agent,
            script,
            session,
        }
    }

    fn user(&self) -> &User {
        &self.fx.rep
    }

    /// One turn: its outcome and the events it sent.
    async fn turn(&self, text: &str) -> (Result<TurnOutcome, AgentError>, Vec<AgentEvent>) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let out = self
            .agent
            .send(self.session.id, self.user(), text, &Events::to(tx))
            .await;
        let mut events = Vec::new();
        while let Ok(e) = rx.try_recv() {
            events.push(e);
        }
        (out, events)
    }

    async fn companies(&self) -> Vec<Company> {
        self.store
            .list::<Company>(&self.fx.admin_ctx(), &ListQuery::default())
            .await
            .unwrap()
            .items
    }

    /// Audit actions written under the session.
    async fn audit(&self) -> Vec<String> {
        self.store
            .session_audit(&self.fx.ctx(self.user()), &self.session.id.to_string())
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect()
    }

    /// The session's messages as (role, content).
    async fn history(&self) -> Vec<(Role, String)> {
        self.agent
            .history(self.session.id, self.user())
            .await
            .unwrap()
            .into_iter()
            .map(|m| (m.role, m.content))
            .collect()
    }

    /// Checks a turn that the endpoint made fail: a backend error, told to
    /// the user as an error event with `says` in it, no call announced or
    /// run, no record and no audit entry, and the log holding the request and
    /// the message only.
    async fn failed_cleanly(
        &self,
        out: Result<TurnOutcome, AgentError>,
        events: &[AgentEvent],
        says: &str,
    ) -> BackendError {
        let e = match out {
            Err(AgentError::Backend(e)) => e,
            other => panic!("expected a backend error, got {other:?}"),
        };
        let told: Vec<&str> = events
            .iter()
            .filter_map(|e| match e {
                AgentEvent::Error { message } => Some(message.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(told.len(), 1, "{events:?}");
        assert!(told[0].contains(says), "{}", told[0]);
        assert!(told[0].contains("send your message again"), "{}", told[0]);
        assert!(
            !events.iter().any(|e| matches!(
                e,
                AgentEvent::ToolCall { .. } | AgentEvent::ToolResult { .. }
            )),
            "{events:?}"
        );
        assert!(self.companies().await.is_empty());
        assert_eq!(self.audit().await, Vec::<String>::new());
        let history = self.history().await;
        assert_eq!(history.len(), 2, "{history:?}");
        assert_eq!(history[0], (Role::User, ASK.to_owned()));
        assert_eq!(history[1], (Role::Assistant, told[0].to_owned()));
        // No model-call entry: the model never answered.
        let entries = self
            .store
            .session_entries(&self.fx.ctx(self.user()), self.session.id)
            .await
            .unwrap();
        assert!(
            entries.iter().all(|e| e.kind != "model_call"),
            "{entries:?}"
        );
        e
    }

    /// The next turn, with the endpoint behaving: the call runs once and the
    /// model's answer ends the turn.
    async fn next_turn_works(&self) {
        let hits = self.script.hits();
        let (out, _) = self.turn("Please add Initech now").await;
        assert_eq!(
            out.expect("the next turn runs"),
            TurnOutcome::Answer("Created Initech.".into())
        );
        assert_eq!(self.script.hits(), hits + 2);
        let names: Vec<String> = self.companies().await.into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["Initech"]);
        let audit = self.audit().await;
        assert_eq!(
            audit.iter().filter(|a| *a == "tool:create_company").count(),
            1,
            "{audit:?}"
        );
        // The request of the next turn carried the earlier turn whole: the
        // user's words and the failure message, in turn.
        let sent = &self.script.bodies()[hits];
        let roles: Vec<&str> = sent["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["role"].as_str().unwrap())
            .collect();
        assert_eq!(
            roles[..roles.len() - 1].last(),
            Some(&"assistant"),
            "{roles:?}"
        );
    }
}

/// The well-behaved model's two replies to [`ASK`]: the call, then the answer.
fn behaving() -> Vec<Act> {
    vec![
        Act::Sse(call_chunks(
            "c1",
            "create_company",
            &["{\"name\": ", "\"Initech\"}"],
        )),
        Act::Sse(text_chunks(&["Created ", "Initech."])),
    ]
}

/// `n` copies of `act`, then the well-behaved replies.
fn failing(act: Act, n: usize) -> Vec<Act> {
    let mut acts = vec![act; n];
    acts.extend(behaving());
    acts
}

async fn a_retry_after_within_the_budget_is_waited_and_the_turn_goes_on(store: &Store) {
    let mut acts = vec![Act::RetryAfter(429, "1".into())];
    acts.extend(behaving());
    let w = World::new(store, "retry-after", acts).await;
    let (out, _) = w.turn(ASK).await;
    assert_eq!(out.unwrap(), TurnOutcome::Answer("Created Initech.".into()));
    assert_eq!(w.script.hits(), 3);
    let t = w.script.times();
    // Waited as the header asked (1 s), not the 20 ms backoff.
    assert!(t[1] - t[0] >= Duration::from_secs(1), "{:?}", t[1] - t[0]);
    assert!(
        t[1] - t[0] < Duration::from_millis(1900),
        "{:?}",
        t[1] - t[0]
    );
    assert_eq!(w.companies().await.len(), 1);
}

async fn a_retry_after_beyond_the_budget_ends_the_turn_at_once(store: &Store) {
    let w = World::new(
        store,
        "retry-after-long",
        failing(Act::RetryAfter(429, "120".into()), 1),
    )
    .await;
    let started = Instant::now();
    let (out, events) = w.turn(ASK).await;
    let e = w.failed_cleanly(out, &events, "asks to wait 120 s").await;
    assert!(
        matches!(e, BackendError::Throttled { status: 429, .. }),
        "{e:?}"
    );
    assert_eq!(
        w.script.hits(),
        1,
        "not retried: the wait is beyond the budget"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    w.next_turn_works().await;
}

async fn server_errors_are_retried_then_end_the_turn_cleanly(store: &Store) {
    let w = World::new(store, "status-500", failing(Act::Status(500), ATTEMPTS)).await;
    let (out, events) = w.turn(ASK).await;
    let e = w.failed_cleanly(out, &events, "answered 500").await;
    assert!(
        matches!(e, BackendError::Status { status: 500, .. }),
        "{e:?}"
    );
    assert_eq!(w.script.hits(), ATTEMPTS);
    w.next_turn_works().await;
}

async fn a_stream_that_stalls_after_its_headers_ends_the_turn_cleanly(store: &Store) {
    // Headers and half a call, then nothing for a minute.
    let stall = Act::StallAfter(
        call_chunks("c1", "create_company", &["{\"name\": "]),
        Duration::from_secs(60),
    );
    let w = World::new(store, "stall", failing(stall, ATTEMPTS)).await;
    let started = Instant::now();
    let (out, events) = w.turn(ASK).await;
    let e = w.failed_cleanly(out, &events, "stalled").await;
    assert!(matches!(e, BackendError::Timeout(_)), "{e:?}");
    assert_eq!(w.script.hits(), ATTEMPTS);
    assert!(started.elapsed() < Duration::from_secs(10));
    w.next_turn_works().await;
}

async fn a_cut_stream_never_runs_its_half_call(store: &Store) {
    // Dropped mid-arguments; and whole arguments whose stream then ends
    // without `[DONE]`: neither is used.
    let mut acts = vec![
        Act::Cut(call_chunks("c1", "create_company", &["{\"name\": \"Ini"])),
        Act::NoDone(call_chunks(
            "c1",
            "create_company",
            &["{\"name\": ", "\"Initech\"}"],
        )),
        Act::Cut(call_chunks(
            "c1",
            "create_company",
            &["{\"name\": \"Initech\"}"],
        )),
        // The next turn: cut once more, then whole.
        Act::Cut(call_chunks("c1", "create_company", &["{\"name\": \"Init"])),
    ];
    acts.extend(behaving());
    let w = World::new(store, "cut", acts).await;
    let (out, events) = w.turn(ASK).await;
    let e = w.failed_cleanly(out, &events, "broke off").await;
    assert!(matches!(e, BackendError::Cut(_)), "{e:?}");
    assert_eq!(w.script.hits(), ATTEMPTS);
    // The next turn's first stream is cut too; the retry gets it whole, and
    // the call runs once.
    let hits = w.script.hits();
    let (out, _) = w.turn("Please add Initech now").await;
    assert_eq!(out.unwrap(), TurnOutcome::Answer("Created Initech.".into()));
    assert_eq!(w.script.hits(), hits + 3);
    assert_eq!(w.companies().await.len(), 1);
    let audit = w.audit().await;
    assert_eq!(
        audit.iter().filter(|a| *a == "tool:create_company").count(),
        1,
        "{audit:?}"
    );
}

async fn invalid_json_in_a_call_is_never_run_and_stops_the_turn(store: &Store) {
    // A whole stream whose call's arguments are not JSON (an object cut
    // short by the model), three times: the loop answers the model with the
    // error each time, and the third repeat stops the turn.
    let bad = Act::Sse(call_chunks(
        "c1",
        "create_company",
        &["{\"name\": \"Initech\""],
    ));
    let w = World::new(store, "bad-json", failing(bad, 3)).await;
    let (out, events) = w.turn(ASK).await;
    let stopped = match out {
        Ok(TurnOutcome::Stopped(reason)) => reason,
        other => panic!("{other:?}"),
    };
    assert!(stopped.contains("failed the same way twice"), "{stopped}");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, AgentEvent::Error { message } if *message == stopped))
    );
    assert_eq!(w.script.hits(), 3);
    // Never run: no result that ran, no record, no audit entry of a tool.
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, AgentEvent::ToolResult { ran: true, .. }))
    );
    assert!(w.companies().await.is_empty());
    let audit = w.audit().await;
    assert!(audit.iter().all(|a| !a.starts_with("tool:")), "{audit:?}");
    // The model was told what was wrong, so it could correct itself.
    let second = &w.script.bodies()[1];
    let told = second["messages"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|m| m["role"] == "tool")
        .expect("a tool message");
    let told = told["content"].as_str().unwrap();
    assert!(told.contains("must be a JSON object"), "{told}");
    // The turn ends with the stop message; the next turn works.
    let history = w.history().await;
    assert_eq!(history.last().unwrap(), &(Role::Assistant, stopped.clone()));
    w.next_turn_works().await;
}

async fn a_server_that_hangs_for_a_minute_is_given_up_on_in_time(store: &Store) {
    let hang = Act::Stall(Duration::from_secs(60));
    let w = World::new(store, "hang", failing(hang, ATTEMPTS)).await;
    let started = Instant::now();
    let (out, events) = w.turn(ASK).await;
    let e = w
        .failed_cleanly(out, &events, "did not answer in time")
        .await;
    assert!(matches!(e, BackendError::Timeout(_)), "{e:?}");
    assert_eq!(w.script.hits(), ATTEMPTS);
    // Three attempts of 0.3 s each and two short backoffs: far below the
    // minute the server would have taken.
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(took >= SILENCE * ATTEMPTS as u32, "{took:?}");
    w.next_turn_works().await;
}
