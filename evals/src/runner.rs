//! The runner: each trial of each task on a fresh SQLite database in a
//! temporary directory — seeded, inline records written, activities indexed
//! if the task searches — then the agent under test gets the user's turns,
//! approvals are answered as the task says, and the outcome is graded.
//!
//! A seed is the same for every trial that names it, so it is written once
//! per run into a template that each trial copies ([`Template`]: a file on
//! SQLite, a template database on PostgreSQL); the task's own records go in
//! after the copy.
//!
//! Trials run in parallel up to `jobs`, each under a timeout. What a trial
//! did (transcript, tool calls, tokens, latency) goes into the report.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use futures::StreamExt;
use indicatif::ProgressBar;
use rapport_agent::TurnMode;
use rapport_agent::pipeline::ExampleIndex;
use rapport_agent::select::ToolIndex;
use rapport_agent::{Agent, AgentError, AgentEvent, BackendError, Decision, Events, TurnOutcome};
use rapport_crm::model::User;
use rapport_crm::scratch::{
    create_scratch_database, create_scratch_database_from, drop_scratch_database,
};
use rapport_crm::seed::{self, SeedParams};
use rapport_crm::{Ctx, RecordType, Source, Store};
use rapport_index::EdgeIndex;
use rapport_models::Embedder;
use rapport_models::llm::ChatMessage;
use rapport_pipelines::memory::{ChunkParams, Chunker, IngestOptions, Memory};
use rapport_tools::{Effect, Registry};
use serde_json::Value;
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::{info, warn};

use crate::config::AgentSpec;
use crate::error::{Error, Result};
use crate::grade::{self, CallRecord, Outcome, Snapshot};
use crate::matcher::{Refs, resolve};
use crate::report::{Status, TaskReport, Trial};
use crate::tape::{Mode, STALE, TrialBackend};
use crate::task::{Approvals, CloseOutcome, SEED_USERS, Seed, Suite, Task, registry_tools};

/// "Now" for every eval run: Monday 2026-11-02, 9 am in Chicago, the day the
/// demo data is generated for. Relative dates in tasks ("tomorrow", "next
/// Friday") are written against it.
pub fn eval_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 15, 0, 0)
        .single()
        .expect("valid date")
}

/// Refs every task has besides its own records and the seed users: the
/// default pipeline and its stages.
pub const PIPELINE_REFS: &[&str] = &[
    "sales",
    "qualification",
    "discovery",
    "proposal",
    "negotiation",
    "closed_won",
    "closed_lost",
];

/// Most approval requests answered in one turn (a model proposing forever).
const MAX_DECISIONS: usize = 6;

/// How many trials to run, of which tasks, where.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Trials per task.
    pub k: usize,
    /// Trials running at once.
    pub jobs: usize,
    /// Longest one trial may take; beyond it the trial counts as a timeout.
    pub timeout: Duration,
    /// Only tasks whose id or one of whose tags is listed (empty: all).
    pub only: Vec<String>,
    /// At most this many tasks (after `only`).
    pub limit: Option<usize>,
    /// Run each trial in a scratch database on this PostgreSQL server
    /// (created and dropped per trial) instead of a temporary SQLite file.
    pub postgres: Option<String>,
    /// Tasks of the held-out half ([`crate::split`]): the report keeps their
    /// rows sealed and shows them only in aggregate. Empty: all development.
    pub held_out: BTreeSet<String>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            k: 1,
            jobs: 2,
            timeout: Duration::from_secs(600),
            only: Vec::new(),
            limit: None,
            postgres: None,
            held_out: BTreeSet::new(),
        }
    }
}

/// Everything trials share: the arm under test, how the model is reached,
/// and the embedder (tool selection and semantic search).
pub struct Harness {
    /// The arm under test.
    pub spec: AgentSpec,
    /// How the model is reached: live, recording or replaying.
    pub mode: Arc<Mode>,
    prompt: rapport_agent::prompt::Prompt,
    tool_index: Option<Arc<ToolIndex>>,
    /// The worked examples of a pipeline arm.
    examples: Option<Arc<ExampleIndex>>,
    memory_models: Option<(Embedder, Chunker)>,
    prefers_small: bool,
    /// Seeded databases by seed and PostgreSQL server (none: SQLite),
    /// built on first use; the PostgreSQL ones are dropped when a run ends.
    templates: tokio::sync::Mutex<Templates>,
}

impl Harness {
    /// Loads what the arm and the tasks need (blocking loads run off the
    /// async runtime): the embedder when the arm selects tools or a task
    /// searches interactions.
    pub async fn new(spec: AgentSpec, mode: Mode, tasks: &[&Task]) -> Result<Harness> {
        let prompt = spec.prompt()?;
        let needs_index = spec.top_k() > 0;
        let needs_examples = spec.mode == TurnMode::Pipeline;
        let needs_memory = tasks.iter().any(|t| t.index);
        let (tool_index, examples, memory_models) = if needs_index || needs_examples || needs_memory
        {
            tokio::task::spawn_blocking(move || -> Result<_> {
                // Memoized: every trial of a task that searches indexes the
                // same seeded activities. Embedding them afresh made a
                // replayed semantic trial 7.8 s against 0.2 s for the rest.
                let embedder = Embedder::load_default(Default::default())
                    .map_err(|e| Error::Model(e.to_string()))?
                    .memoized();
                let index = if needs_index {
                    Some(Arc::new(ToolIndex::build(
                        Arc::new(embedder.clone()),
                        &Registry::new(),
                    )?))
                } else {
                    None
                };
                let examples = if needs_examples {
                    Some(Arc::new(ExampleIndex::builtin(Arc::new(embedder.clone()))?))
                } else {
                    None
                };
                let memory = if needs_memory {
                    let chunker = Chunker::minilm(ChunkParams::default())
                        .map_err(|e| Error::Model(e.to_string()))?;
                    Some((embedder, chunker))
                } else {
                    None
                };
                Ok((index, examples, memory))
            })
            .await
            .map_err(|e| Error::Model(e.to_string()))??
        } else {
            (None, None, None)
        };
        let prefers_small = spec.backend == crate::config::BackendKind::Local;
        Ok(Harness {
            spec,
            mode: Arc::new(mode),
            prompt,
            tool_index,
            examples,
            memory_models,
            prefers_small,
            templates: Default::default(),
        })
    }

    /// The version of the arm's system prompt, as reports show it.
    pub fn prompt_version(&self) -> String {
        self.prompt.version.clone()
    }

    /// Runs every selected task of the suites `k` times.
    pub async fn run(
        &self,
        suites: &[Suite],
        opts: &RunOptions,
        bar: &ProgressBar,
    ) -> Vec<TaskReport> {
        let known = registry_tools(&Registry::new());
        let tasks = select(suites, opts);
        let mut reports: Vec<TaskReport> = tasks
            .iter()
            .map(|(suite, t)| TaskReport::new(suite, t, t.missing_tools(&known)))
            .collect();
        let jobs: Vec<(usize, usize)> = reports
            .iter()
            .enumerate()
            .filter(|(_, r)| r.status != Status::Skipped)
            .flat_map(|(i, _)| (0..opts.k).map(move |trial| (i, trial)))
            .collect();
        bar.set_length(jobs.len() as u64);
        let mut results: Vec<(usize, usize, Trial)> = futures::stream::iter(jobs)
            .map(|(i, n)| {
                let (_, task) = tasks[i];
                async move {
                    let trial = self
                        .trial_with_timeout(task, n, opts.timeout, opts.postgres.as_deref())
                        .await;
                    bar.inc(1);
                    bar.set_message(format!("{} {:?}", task.id, trial.status));
                    (i, n, trial)
                }
            })
            .buffer_unordered(opts.jobs.max(1))
            .collect()
            .await;
        // Trials finish in any order; a report lists them by trial number, so
        // trial N of a sampled arm is the one its replies were recorded for.
        results.sort_by_key(|&(i, n, _)| (i, n));
        for (i, _, trial) in results {
            reports[i].trials.push(trial);
        }
        for r in &mut reports {
            r.finish(opts.k);
        }
        self.drop_postgres_templates().await;
        reports
    }

    async fn trial_with_timeout(
        &self,
        task: &Task,
        n: usize,
        timeout: Duration,
        postgres: Option<&str>,
    ) -> Trial {
        let started = Instant::now();
        let trial = async {
            match postgres {
                None => self.trial(task, n).await,
                Some(admin) => self.trial_on_postgres(task, n, admin).await,
            }
        };
        match tokio::time::timeout(timeout, trial).await {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => {
                warn!(task = %task.id, error = %e, "trial failed to run");
                Trial::broken(Status::Error, e.to_string(), started.elapsed())
            }
            Err(_) => Trial::broken(
                Status::Timeout,
                format!("no outcome within {} s", timeout.as_secs()),
                started.elapsed(),
            ),
        }
    }

    /// Trial `n` (from 0) of `task` on a fresh SQLite file (a copy of its
    /// seed's template): the conversation, the grade.
    pub async fn trial(&self, task: &Task, n: usize) -> Result<Trial> {
        let dir = tempdir()?;
        let base = self
            .template(&task.seed(), None)
            .await?
            .copy_to(dir.path())?;
        let store = Store::connect(&Store::sqlite_url_in(dir.path())).await?;
        let world = add_records(&store, base, task).await?;
        self.trial_on(&store, dir.path(), world, task, n).await
    }

    /// The template of `seed` (on the PostgreSQL server `postgres` points
    /// at, or a SQLite file), written the first time a trial asks. The lock
    /// is held while it is written, so trials starting meanwhile wait for it
    /// rather than write it again.
    async fn template(&self, seed: &Seed, postgres: Option<&str>) -> Result<Arc<Template>> {
        let key = (SeedKey::of(seed), postgres.map(str::to_owned));
        let mut templates = self.templates.lock().await;
        if let Some(t) = templates.get(&key) {
            return Ok(t.clone());
        }
        let t = Arc::new(match postgres {
            None => Template::write(seed).await?,
            Some(admin) => Template::write_postgres(seed, admin).await?,
        });
        templates.insert(key, t.clone());
        Ok(t)
    }

    /// Drops the PostgreSQL templates this harness wrote (a run's trials
    /// are over when it is called).
    async fn drop_postgres_templates(&self) {
        let mut templates = self.templates.lock().await;
        let on_postgres = templates.extract_if(|(_, server), _| server.is_some());
        for ((_, server), t) in on_postgres.collect::<Vec<_>>() {
            if let (Some(admin), Template::Postgres { name, .. }) = (server, &*t) {
                drop_database(&admin, name).await;
            }
        }
    }

    /// One trial in a scratch database on the PostgreSQL server `admin_url`
    /// points at (a copy of its seed's template), dropped afterwards
    /// whatever the outcome. Private: the templates it writes are dropped at
    /// the end of [`Harness::run`].
    async fn trial_on_postgres(&self, task: &Task, n: usize, admin_url: &str) -> Result<Trial> {
        let template = self.template(&task.seed(), Some(admin_url)).await?;
        let Template::Postgres {
            name: from, base, ..
        } = &*template
        else {
            unreachable!("a template asked of a PostgreSQL server is a database on it")
        };
        let dir = tempdir()?;
        let name = scratch_name();
        let url = create_scratch_database_from(admin_url, &name, from).await?;
        let result = async {
            let store = Store::connect(&url).await?;
            let trial = match add_records(&store, base.clone(), task).await {
                Ok(world) => self.trial_on(&store, dir.path(), world, task, n).await,
                Err(e) => Err(e),
            };
            store.close().await;
            trial
        }
        .await;
        drop_database(admin_url, &name).await;
        result
    }

    /// Trial `n` on `store`, set up as `world`, with `dir` for its search
    /// index.
    async fn trial_on(
        &self,
        store: &Store,
        dir: &std::path::Path,
        world: World,
        task: &Task,
        n: usize,
    ) -> Result<Trial> {
        let started = Instant::now();
        let store = store.clone();
        // The tasks' fixed clock for the tools too: next-best-action
        // priorities age with "now", and what the model reads must not
        // change between the recording and its replay.
        let mut services = match (&self.memory_models, task.index) {
            (Some((embedder, chunker)), true) => {
                let index = EdgeIndex::open(&dir.join("index"), embedder.dim())
                    .await
                    .map_err(|e| Error::Model(e.to_string()))?;
                let memory = Memory::new(
                    store.clone(),
                    Arc::new(index),
                    embedder.clone(),
                    chunker.clone(),
                )
                .map_err(|e| Error::Model(e.to_string()))?;
                let opts = IngestOptions {
                    workspace_id: Some(world.ctx.workspace_id),
                    ..Default::default()
                };
                memory
                    .ingest(&opts, &ProgressBar::hidden())
                    .await
                    .map_err(|e| Error::Model(e.to_string()))?;
                rapport_pipelines::tool_services(Some(memory))
            }
            _ => rapport_pipelines::tool_services(None),
        };
        services.now = Some(eval_now());
        let registry = Arc::new(Registry::new().with_services(services));
        let backend = Arc::new(TrialBackend::new(
            self.mode.clone(),
            self.prefers_small,
            &task.id,
            n,
        ));
        let config = self
            .spec
            .agent_config(self.tool_index.clone(), Some(eval_now()))?;
        let mut agent = Agent::new(store.clone(), registry.clone(), backend.clone(), config)?
            .with_prompt(self.prompt.clone());
        if let Some(examples) = &self.examples {
            agent = agent.with_pipeline(examples.clone());
        }
        let before = snapshot(&store, &world.ctx).await?;

        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let events = Events::to(tx);
        let mut calls: Vec<CallRecord> = Vec::new();
        let mut guards: BTreeMap<String, usize> = BTreeMap::new();
        let session = agent.start_session(&world.user, &task.id).await?;
        let mut answer = String::new();
        let mut answered = false;
        let mut failure: Option<AgentError> = None;
        'turns: for turn in &task.turns {
            let policy = turn.approvals().unwrap_or(task.approvals());
            let mut result = agent
                .send(session.id, &world.user, turn.text(), &events)
                .await;
            let mut decisions = 0;
            loop {
                drain(&mut rx, &registry, &mut calls, &mut guards);
                match result {
                    Err(e) => {
                        failure = Some(e);
                        break 'turns;
                    }
                    Ok(TurnOutcome::Answer(text)) => {
                        answer = text;
                        answered = true;
                        break;
                    }
                    Ok(TurnOutcome::Stopped(text)) => {
                        answer = text;
                        answered = false;
                        break;
                    }
                    Ok(TurnOutcome::AwaitingApproval(p)) => {
                        decisions += 1;
                        if decisions > MAX_DECISIONS {
                            answer = format!("(still proposing after {MAX_DECISIONS} decisions)");
                            answered = false;
                            break;
                        }
                        let (decision, label) = match policy {
                            Approvals::Approve => (Decision::Approve, "approve"),
                            Approvals::Reject => (
                                Decision::Reject {
                                    reason: Some("no, don't do that".into()),
                                },
                                "reject",
                            ),
                        };
                        if let Some(c) = calls.iter_mut().rev().find(|c| c.call_id == p.call_id) {
                            c.proposed = true;
                            c.decision = Some(label.into());
                        }
                        result = agent
                            .decide(session.id, &world.user, p.id, decision, &events)
                            .await;
                    }
                }
            }
        }
        drop(events);
        drain(&mut rx, &registry, &mut calls, &mut guards);
        let transcript: Vec<ChatMessage> = agent
            .history(session.id, &world.user)
            .await
            .unwrap_or_default();
        let meter = backend.meter();
        if let Some(key) = backend.stale() {
            return Ok(Trial {
                status: Status::Stale,
                error: Some(format!("{STALE}: request {key} has no recording")),
                answer,
                calls,
                transcript,
                meter,
                seconds: started.elapsed().as_secs_f64(),
                ..Trial::default()
            });
        }
        if let Some(e) = failure {
            let status = match &e {
                AgentError::Backend(BackendError::Script(m)) if m.starts_with(STALE) => {
                    Status::Stale
                }
                _ => Status::Error,
            };
            return Ok(Trial {
                status,
                error: Some(e.to_string()),
                answer,
                calls,
                transcript,
                meter,
                guards,
                seconds: started.elapsed().as_secs_f64(),
                ..Trial::default()
            });
        }
        let after = snapshot(&store, &world.ctx).await?;
        let tags = tags_for(&store, &world.ctx, task, &after).await?;
        let outcome = Outcome {
            before,
            after,
            refs: world.refs,
            tags,
            calls: calls.clone(),
            answer: answer.clone(),
            answered,
        };
        let checks = grade::grade(&task.expect, &outcome);
        let passed = checks.iter().all(|c| c.ok);
        store.close().await;
        info!(task = %task.id, passed, "trial graded");
        Ok(Trial {
            status: if passed { Status::Pass } else { Status::Fail },
            checks,
            answer,
            stopped: !answered,
            calls,
            transcript,
            meter,
            guards,
            seconds: started.elapsed().as_secs_f64(),
            error: None,
        })
    }
}

/// The tasks to run, in suite order.
pub fn select<'a>(suites: &'a [Suite], opts: &RunOptions) -> Vec<(&'a str, &'a Task)> {
    let mut out: Vec<(&str, &Task)> = suites
        .iter()
        .flat_map(|s| s.tasks.iter().map(move |t| (s.name.as_str(), t)))
        .filter(|(_, t)| {
            opts.only.is_empty()
                || opts
                    .only
                    .iter()
                    .any(|o| *o == t.id || t.tags.iter().any(|g| g == o))
        })
        .collect();
    if let Some(n) = opts.limit {
        out.truncate(n);
    }
    out
}

/// The events of the turn so far: the calls as call records, and how often
/// each guard acted.
fn drain(
    rx: &mut UnboundedReceiver<AgentEvent>,
    registry: &Registry,
    calls: &mut Vec<CallRecord>,
    guards: &mut BTreeMap<String, usize>,
) {
    while let Ok(e) = rx.try_recv() {
        match e {
            AgentEvent::ToolCall {
                call_id,
                name,
                arguments,
            } => {
                let effect = match registry.get(&name).map(|t| t.effect()) {
                    Some(Effect::Read) => "read",
                    Some(Effect::Write) => "write",
                    Some(Effect::Destructive) => "destructive",
                    None => "unknown",
                };
                calls.push(CallRecord {
                    call_id,
                    name,
                    arguments,
                    effect: effect.into(),
                    proposed: false,
                    decision: None,
                    ok: None,
                });
            }
            AgentEvent::ApprovalNeeded { proposal } => {
                if let Some(c) = calls
                    .iter_mut()
                    .rev()
                    .find(|c| c.call_id == proposal.call_id)
                {
                    c.proposed = true;
                }
            }
            AgentEvent::ToolResult {
                call_id, ok, ran, ..
            } => {
                if let Some(c) = calls.iter_mut().rev().find(|c| c.call_id == call_id) {
                    // A rejected proposal, or a repeat the loop answered
                    // "already done", never ran: it wrote nothing.
                    c.ok = ran.then_some(ok);
                }
            }
            AgentEvent::Guard { guard, .. } => {
                *guards.entry(guard.name().to_owned()).or_default() += 1;
            }
            AgentEvent::TextDelta { .. } | AgentEvent::Final { .. } | AgentEvent::Error { .. } => {}
        }
    }
}

/// The starting state of a task, written.
pub struct World {
    /// The workspace, acting as its admin.
    pub ctx: Ctx,
    /// Who talks to the agent.
    pub user: User,
    /// The task's named records and seed users, by ref.
    pub refs: Refs,
}

/// Seeds a fresh database for `task`: workspace, the seed (users, pipeline,
/// demo data), then the inline records in one transaction. (Trials copy a
/// template instead; this is what a copy must equal.)
pub async fn setup(store: &Store, task: &Task) -> Result<World> {
    let base = write_seed(store, &task.seed()).await?;
    add_records(store, base, task).await
}

/// A seeded database: the workspace, acting as its admin, and the refs of
/// the seed's users, pipeline and stages.
#[derive(Debug, Clone)]
struct Base {
    ctx: Ctx,
    refs: Refs,
}

/// Templates by seed and PostgreSQL server (none: SQLite).
type Templates = HashMap<(SeedKey, Option<String>), Arc<Template>>;

/// What tells two seeds apart: how many companies, from which random seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct SeedKey(usize, u64);

impl SeedKey {
    fn of(seed: &Seed) -> SeedKey {
        SeedKey(seed.companies(), seed.random_seed())
    }
}

/// A seed written once into a database that trials copy. A fresh SQLite
/// database (schema, demo seed, a task's records) took 53 ms in a debug
/// build here, the copy and the records 7 ms: with about 1,800 replayed
/// trials in the test suite, a minute and a half of CPU. The copy holds the
/// same rows with the same ids, so what a trial's model reads does not
/// change; only `created_at` is earlier, and recordings mask wall-clock
/// times.
enum Template {
    /// A SQLite file in `dir`.
    Sqlite { dir: tempfile::TempDir, base: Base },
    /// A database `name` on the PostgreSQL server of its key in
    /// [`Templates`], copied with `CREATE DATABASE … TEMPLATE`.
    Postgres { name: String, base: Base },
}

impl Template {
    async fn write(seed: &Seed) -> Result<Template> {
        let dir = tempdir()?;
        let store = Store::connect(&Store::sqlite_url_in(dir.path())).await?;
        let base = write_seed(&store, seed).await;
        // Closing the last connection checkpoints the write-ahead log into
        // the main file, so the file alone is the whole database.
        store.close().await;
        Ok(Template::Sqlite { dir, base: base? })
    }

    async fn write_postgres(seed: &Seed, admin: &str) -> Result<Template> {
        let name = scratch_name();
        let url = create_scratch_database(admin, &name).await?;
        let written = async {
            let store = Store::connect(&url).await?;
            let base = write_seed(&store, seed).await;
            // PostgreSQL copies a template only while nobody is connected.
            store.close().await;
            base
        }
        .await;
        match written {
            Ok(base) => Ok(Template::Postgres { name, base }),
            Err(e) => {
                drop_database(admin, &name).await;
                Err(e)
            }
        }
    }

    /// Copies the SQLite database into the directory `to` (where
    /// [`Store::sqlite_url_in`] finds it).
    fn copy_to(&self, to: &std::path::Path) -> Result<Base> {
        let Template::Sqlite { dir, base } = self else {
            unreachable!("only SQLite templates are copied as files")
        };
        let from = dir.path();
        for entry in std::fs::read_dir(from).map_err(|e| Error::io(from, e))? {
            let path = entry.map_err(|e| Error::io(from, e))?.path();
            // The shared-memory index is rebuilt by the first connection.
            if path.extension().is_some_and(|x| x == "sqlite-shm") {
                continue;
            }
            let name = path.file_name().expect("a directory entry has a name");
            std::fs::copy(&path, to.join(name)).map_err(|e| Error::io(&path, e))?;
        }
        Ok(base.clone())
    }
}

/// A fresh name for an eval's database on PostgreSQL.
fn scratch_name() -> String {
    format!("rapport_eval_{}", hex::encode(rand::random::<[u8; 6]>()))
}

/// Drops a scratch database; a failure is logged, not returned, as the
/// trial's outcome is what matters.
async fn drop_database(admin: &str, name: &str) {
    if let Err(e) = drop_scratch_database(admin, name).await {
        warn!(database = %name, error = %e, "scratch database not dropped");
    }
}

/// Writes the workspace and `s` into an empty database.
async fn write_seed(store: &Store, s: &Seed) -> Result<Base> {
    let ws = store.create_workspace("eval").await?;
    let system = Ctx::new(ws.id, None, Source::Cli);
    let data = seed::generate(&SeedParams {
        companies: s.companies(),
        seed: s.random_seed(),
        as_of: seed::fixed_date(),
    });
    let ids = seed::write(store, &system, &data, &ProgressBar::hidden()).await?;
    let mut refs: Refs = HashMap::new();
    for (i, (short, _, _)) in SEED_USERS.iter().enumerate() {
        refs.insert((*short).to_owned(), ids.users[i]);
    }
    let admin = Ctx::new(ws.id, Some(refs["alex"]), Source::Cli);
    let pipelines = store.all_rows(&admin, RecordType::Pipeline).await?;
    if let Some(p) = pipelines
        .first()
        .and_then(|p| p.get("id"))
        .and_then(Value::as_i64)
    {
        refs.insert("sales".into(), p);
    }
    for stage in store.all_rows(&admin, RecordType::Stage).await? {
        if let (Some(name), Some(id)) = (
            stage.get("name").and_then(Value::as_str),
            stage.get("id").and_then(Value::as_i64),
        ) {
            refs.insert(name.to_lowercase().replace(' ', "_"), id);
        }
    }
    Ok(Base { ctx: admin, refs })
}

/// Writes `task`'s inline records into the seeded database `base` describes,
/// in one transaction, and finds the user who talks to the agent.
async fn add_records(store: &Store, base: Base, task: &Task) -> Result<World> {
    let Base {
        ctx: admin,
        mut refs,
    } = base;
    let mut tx = store.begin().await?;
    for r in &task.records {
        let rt = RecordType::parse(&r.record_type)?;
        let fields = resolve_deep(&Value::Object(r.fields.clone()), &refs);
        let row = tx.create_dyn(&admin, rt, fields).await?;
        let id = row.get("id").and_then(Value::as_i64).unwrap_or_default();
        for tag in &r.tags {
            tx.add_tag(&admin, rt, id, tag).await?;
        }
        if let Some(close) = &r.close {
            let outcome = match close.outcome {
                CloseOutcome::Won => rapport_crm::Outcome::Won,
                CloseOutcome::Lost => rapport_crm::Outcome::Lost,
            };
            tx.close_deal(&admin, id, outcome, &close.reason).await?;
        }
        if let Some(name) = &r.reference {
            refs.insert(name.clone(), id);
        }
    }
    tx.commit().await?;
    let user = store.get::<User>(&admin, refs[task.user()]).await?;
    Ok(World {
        ctx: admin,
        user,
        refs,
    })
}

fn resolve_deep(v: &Value, refs: &Refs) -> Value {
    match v {
        Value::String(_) => resolve(v, refs),
        Value::Array(a) => Value::Array(a.iter().map(|x| resolve_deep(x, refs)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), resolve_deep(x, refs)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Every row of every record type.
pub async fn snapshot(store: &Store, ctx: &Ctx) -> Result<Snapshot> {
    let mut s = BTreeMap::new();
    for rt in RecordType::ALL {
        s.insert(rt.name().to_owned(), store.all_rows(ctx, rt).await?);
    }
    Ok(s)
}

/// Tags of the rows of the types whose expectations mention tags.
async fn tags_for(
    store: &Store,
    ctx: &Ctx,
    task: &Task,
    after: &Snapshot,
) -> Result<HashMap<(String, i64), Vec<String>>> {
    let mut out = HashMap::new();
    for r in task
        .expect
        .records
        .iter()
        .filter(|r| !r.tags.is_empty() || !r.no_tags.is_empty())
    {
        let rt = RecordType::parse(&r.record_type)?;
        for row in after.get(rt.name()).into_iter().flatten() {
            let Some(id) = row.get("id").and_then(Value::as_i64) else {
                continue;
            };
            let key = (rt.name().to_owned(), id);
            if let std::collections::hash_map::Entry::Vacant(e) = out.entry(key) {
                e.insert(store.tags_of(ctx, rt, id).await?);
            }
        }
    }
    Ok(out)
}

/// Where recordings of an arm live: `DIR/NAME.json`.
pub fn recording_path(dir: &std::path::Path, spec: &AgentSpec) -> PathBuf {
    dir.join(format!("{}.json", spec.name))
}

fn tempdir() -> Result<tempfile::TempDir> {
    tempfile::tempdir().map_err(|e| Error::io(std::path::Path::new("tempdir"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUITE: &str = r#"
suite: t
tasks:
  - id: demo-with-records
    records:
      - {ref: norr, type: company, fields: {name: Norrland Timber, owner_id: "@dana"}}
      - {type: contact, fields: {first_name: Ana, last_name: Berg, company_id: "@norr"}}
    turns: ["Who works at Norrland Timber?"]
    expect:
      counts: {company: 4}
"#;

    /// Rows without the times they were written at, which differ between
    /// two writes of the same data.
    fn timeless(s: Snapshot) -> Snapshot {
        s.into_iter()
            .map(|(t, rows)| {
                let rows = rows
                    .into_iter()
                    .map(|mut r| {
                        r.retain(|k, _| k != "created_at" && k != "updated_at");
                        r
                    })
                    .collect();
                (t, rows)
            })
            .collect()
    }

    /// A trial's database copied from the template holds exactly what
    /// seeding it afresh writes, ids included, and a trial's writes to its
    /// copy do not reach the template the next trial copies.
    #[tokio::test]
    async fn a_copied_template_holds_what_a_fresh_seed_writes() {
        let suite = Suite::parse(SUITE, std::path::Path::new("t.yaml")).unwrap();
        let task = &suite.tasks[0];

        let fresh_dir = tempdir().unwrap();
        let fresh = Store::connect(&Store::sqlite_url_in(fresh_dir.path()))
            .await
            .unwrap();
        let world = setup(&fresh, task).await.unwrap();
        let expected = timeless(snapshot(&fresh, &world.ctx).await.unwrap());
        assert_eq!(
            expected["company"].len(),
            4,
            "the demo's three and Norrland"
        );

        let template = Template::write(&task.seed()).await.unwrap();
        for _ in 0..2 {
            let dir = tempdir().unwrap();
            let base = template.copy_to(dir.path()).unwrap();
            let store = Store::connect(&Store::sqlite_url_in(dir.path()))
                .await
                .unwrap();
            let copied = add_records(&store, base, task).await.unwrap();
            assert_eq!(copied.refs, world.refs);
            assert_eq!(copied.user.id, world.user.id);
            let got = timeless(snapshot(&store, &copied.ctx).await.unwrap());
            assert_eq!(got, expected);
            store.close().await;
        }
    }

    /// The same on PostgreSQL: a database created from the template
    /// database holds what seeding afresh writes, ids included (its
    /// sequences are copied with it).
    #[tokio::test]
    async fn a_database_copied_from_a_postgres_template_holds_what_a_fresh_seed_writes() {
        let admin = std::env::var("RAPPORT_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let suite = Suite::parse(SUITE, std::path::Path::new("t.yaml")).unwrap();
        let task = &suite.tasks[0];

        let fresh_name = scratch_name();
        let url = create_scratch_database(&admin, &fresh_name).await.unwrap();
        let fresh = Store::connect(&url).await.unwrap();
        let world = setup(&fresh, task).await.unwrap();
        let expected = timeless(snapshot(&fresh, &world.ctx).await.unwrap());
        fresh.close().await;
        drop_database(&admin, &fresh_name).await;
        assert_eq!(expected["company"].len(), 4);

        let template = Template::write_postgres(&task.seed(), &admin)
            .await
            .unwrap();
        let Template::Postgres {
            name: from, base, ..
        } = &template
        else {
            unreachable!("written on PostgreSQL")
        };
        for _ in 0..2 {
            let name = scratch_name();
            let url = create_scratch_database_from(&admin, &name, from)
                .await
                .unwrap();
            let store = Store::connect(&url).await.unwrap();
            let copied = add_records(&store, base.clone(), task).await.unwrap();
            assert_eq!(copied.refs, world.refs);
            assert_eq!(copied.user.id, world.user.id);
            let got = timeless(snapshot(&store, &copied.ctx).await.unwrap());
            store.close().await;
            drop_database(&admin, &name).await;
            assert_eq!(got, expected);
        }
        drop_database(&admin, from).await;
    }
}
