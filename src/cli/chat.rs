//! `rapport chat` (an interactive session) and `rapport ask "…"` (one message):
//! the agent on the command line. This module builds the agent from the
//! options — which model, which approval policy — and prints its events.

use std::io::{BufRead, Write};
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, ValueEnum};
use rapport_agent::pipeline::ExampleIndex;
use rapport_agent::profile::{BackendKind, PolicySpec, Profile};
use rapport_agent::select::ToolIndex;
use rapport_agent::{Agent, AgentEvent, Decision, Events, TurnMode, TurnOutcome, WritePolicy};
use rapport_crm::model::{Proposal, User};
use rapport_crm::{Id, Store};
use rapport_models::llm::Role;
use rapport_pipelines::tool_services;
use rapport_tools::{Registry, Services};

use super::GlobalArgs;
use super::db;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LlmKind {
    /// The local GGUF model, in process (no network, no key).
    Local,
    /// Any OpenAI-compatible endpoint.
    Openai,
}

/// Which model the agent talks to and how it treats writes: a profile file,
/// or the flags below (which make the same [`Profile`]).
#[derive(Debug, Clone, Args)]
pub struct AgentArgs {
    /// An agent profile (TOML, e.g. `evals/agents/qwen05-pipeline.toml`):
    /// model, backend, loop or pipeline, tools per request, policy and
    /// guards, as the eval arms define them. Replaces the flags below.
    #[arg(long, env = "RAPPORT_AGENT_PROFILE")]
    pub profile: Option<std::path::PathBuf>,
    /// The model backend.
    #[arg(long, env = "RAPPORT_LLM", value_enum, default_value = "local")]
    pub llm: LlmKind,
    /// Local model: a manifest name (fetched if missing) or a .gguf path.
    #[arg(
        long,
        env = "RAPPORT_LOCAL_MODEL",
        default_value = "qwen2.5-coder-0.5b-instruct-q4_k_m"
    )]
    pub local_model: String,
    /// Local model: threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Local model: sample tool calls without the schema constraint.
    #[arg(long)]
    pub unconstrained: bool,
    /// OpenAI-compatible endpoint, e.g. `rapport llm serve`'s.
    #[arg(
        long,
        env = "RAPPORT_OPENAI_BASE_URL",
        default_value = "http://127.0.0.1:8080/v1"
    )]
    pub openai_base_url: String,
    #[arg(long, env = "RAPPORT_OPENAI_MODEL", default_value = "gpt-4o-mini")]
    pub openai_model: String,
    /// API key of the endpoint (also read from OPENAI_API_KEY).
    #[arg(long, env = "RAPPORT_OPENAI_API_KEY", hide_env_values = true)]
    pub openai_api_key: Option<String>,
    /// Writes run directly, or wait for approval (destructive ones always wait).
    #[arg(
        long,
        env = "RAPPORT_WRITE_POLICY",
        value_enum,
        default_value = "direct"
    )]
    pub writes: WritesArg,
    /// How a turn runs: the open tool loop, or the pipeline for small
    /// models (plan, resolve ids in code, fill, run, answer). The loop stays
    /// the default: with the 0.5B model the pipeline passed 0.497 of the
    /// eval tasks to the loop's 0.400, but only +0.023 on the held-out half
    /// (docs/evals.md), short of the 5 points that would make it the default.
    #[arg(long, env = "RAPPORT_AGENT_MODE", default_value_t = TurnMode::Loop)]
    pub mode: TurnMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WritesArg {
    Direct,
    Approve,
}

impl AgentArgs {
    /// The profile the options describe: the `--profile` file, or one made
    /// from the flags. `--approve-all` applies to either.
    pub fn profile(&self, approve_all: bool) -> anyhow::Result<Profile> {
        let mut p = match &self.profile {
            Some(path) => Profile::load(path)?,
            None => self.flags_profile(),
        };
        p.policy.approve_all |= approve_all;
        Ok(p)
    }

    fn flags_profile(&self) -> Profile {
        let mut p = match self.llm {
            LlmKind::Local => {
                let mut p = Profile::new("cli", BackendKind::Local, &self.local_model);
                p.threads = self.threads;
                p.constrained = !self.unconstrained;
                p
            }
            LlmKind::Openai => {
                let mut p = Profile::new("cli", BackendKind::Openai, &self.openai_model);
                p.base_url = Some(self.openai_base_url.clone());
                p.api_key = self.openai_api_key.clone();
                p.api_key_env = Some("OPENAI_API_KEY".into());
                p
            }
        };
        p.policy = PolicySpec {
            writes: match self.writes {
                WritesArg::Direct => WritePolicy::Direct,
                WritesArg::Approve => WritePolicy::Approve,
            },
            approve_all: false,
        };
        p.mode = self.mode;
        p
    }
}

#[derive(Debug, Args)]
pub struct ChatArgs {
    #[command(flatten)]
    pub agent: AgentArgs,
    /// Resume this session instead of starting a new one.
    #[arg(long)]
    pub session: Option<Id>,
}

#[derive(Debug, Args)]
pub struct AskArgs {
    /// What to ask or tell the agent.
    pub message: String,
    #[command(flatten)]
    pub agent: AgentArgs,
    /// Approve changes in advance (not those that follow untrusted text such
    /// as an email body: those still wait and are reported).
    #[arg(long)]
    pub approve_all: bool,
    /// Continue this session.
    #[arg(long)]
    pub session: Option<Id>,
}

/// What the agent's tools need beyond the store: semantic memory for
/// `search_interactions` when an index exists (the embedded shard in the data
/// directory, or the Qdrant server `RAPPORT_QDRANT_URL` names). Without one
/// the tool answers `not_available` with the command that builds it.
pub async fn services_for(g: &GlobalArgs, store: &Store) -> Services {
    let configured =
        std::env::var_os("RAPPORT_QDRANT_URL").is_some() || g.data_dir.join("index").exists();
    if !configured {
        return tool_services(None);
    }
    match memory_services(g, store).await {
        Ok(services) => services,
        Err(e) => {
            tracing::warn!(error = %e, "semantic search is off for this session");
            tool_services(None)
        }
    }
}

/// Semantic memory over the configured index, as tool services.
pub async fn memory_services(g: &GlobalArgs, store: &Store) -> anyhow::Result<Services> {
    let memory = super::memory::memory_for(g, store).await?;
    Ok(tool_services(Some(memory)))
}

/// Builds the agent the options describe (loading the local model and the
/// embedder that picks its tools, fetching them first if missing).
pub async fn build_agent(
    store: Store,
    services: Services,
    args: &AgentArgs,
    approve_all: bool,
) -> anyhow::Result<Agent> {
    let profile = args.profile(approve_all)?;
    let registry = Arc::new(Registry::new().with_services(services));
    // One embedder picks the tools and the pipeline's worked examples.
    let needs_embedder = profile.top_k() > 0 || profile.mode == TurnMode::Pipeline;
    eprintln!("Loading the model {}…", profile.model);
    let (backend, embedder) = {
        let profile = profile.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let backend = profile.load_backend()?;
            let embedder = match needs_embedder {
                true => Some(Arc::new(rapport_models::Embedder::load_default(
                    Default::default(),
                )?)),
                false => None,
            };
            Ok((backend, embedder))
        })
        .await??
    };
    let index = match (&embedder, profile.top_k()) {
        (Some(e), k) if k > 0 => Some(Arc::new(ToolIndex::build(e.clone(), &registry)?)),
        _ => None,
    };
    let config = profile.agent_config(index, None)?;
    let agent = Agent::new(store, registry, backend, config)?.with_prompt(profile.prompt()?);
    match (profile.mode, embedder) {
        (TurnMode::Pipeline, Some(embedder)) => {
            let examples =
                tokio::task::spawn_blocking(move || ExampleIndex::builtin(embedder)).await??;
            Ok(agent.with_pipeline(Arc::new(examples)))
        }
        _ => Ok(agent),
    }
}

async fn user_of(s: &db::Session) -> anyhow::Result<User> {
    let id = s.ctx.actor_id.context("no acting user")?;
    Ok(s.store.get::<User>(&s.ctx, id).await?)
}

/// Prints the loop's events as they come: the answer streams, calls and
/// results show as short lines on stderr.
fn printer() -> (Events, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut streamed = false;
        while let Some(e) = rx.recv().await {
            match e {
                AgentEvent::TextDelta { text } => {
                    streamed = true;
                    print!("{text}");
                    let _ = std::io::stdout().flush();
                }
                AgentEvent::ToolCall {
                    name, arguments, ..
                } => {
                    eprintln!("  → {name} {arguments}");
                }
                AgentEvent::ToolResult {
                    name,
                    ok,
                    ran,
                    result,
                    ..
                } => {
                    let text = result.to_string();
                    let short: String = text.chars().take(160).collect();
                    let status = match (ok, ran) {
                        (false, _) => "error",
                        (true, true) => "ok",
                        (true, false) => "not run again",
                    };
                    eprintln!("  ← {name} {status} {short}");
                }
                AgentEvent::Final { text } => {
                    if streamed {
                        println!();
                    } else {
                        println!("{text}");
                    }
                    streamed = false;
                }
                AgentEvent::Error { message } => eprintln!("  ! {message}"),
                AgentEvent::ApprovalNeeded { .. } => {}
                AgentEvent::Guard { guard, tool } => {
                    tracing::debug!(%guard, tool, "guard acted");
                }
            }
        }
    });
    (Events::to(tx), task)
}

pub async fn ask(g: &GlobalArgs, args: AskArgs) -> anyhow::Result<()> {
    let s = db::open(g).await?;
    let user = user_of(&s).await?;
    let services = services_for(g, &s.store).await;
    let agent = build_agent(s.store.clone(), services, &args.agent, args.approve_all).await?;
    let session = match args.session {
        Some(id) => id,
        None => {
            agent
                .start_session(&user, &title_of(&args.message))
                .await?
                .id
        }
    };
    let (events, printing) = printer();
    let outcome = agent.send(session, &user, &args.message, &events).await?;
    drop(events);
    printing.await?;
    if let TurnOutcome::AwaitingApproval(p) = outcome {
        println!("{}", describe(&p));
        println!("Not applied. To decide: rapport chat --session {session}");
        std::process::exit(2);
    }
    Ok(())
}

fn title_of(text: &str) -> String {
    text.chars().take(60).collect()
}

fn describe(p: &Proposal) -> String {
    format!(
        "Waiting for your approval: {} {}\n  (why: {})",
        p.tool, p.args, p.reason
    )
}

pub async fn chat(g: &GlobalArgs, args: ChatArgs) -> anyhow::Result<()> {
    let s = db::open(g).await?;
    let user = user_of(&s).await?;
    let services = services_for(g, &s.store).await;
    let agent = build_agent(s.store.clone(), services, &args.agent, false).await?;
    run_chat(&agent, &user, args.session).await
}

/// The interactive loop: messages, approvals, and the slash commands.
pub async fn run_chat(agent: &Agent, user: &User, resume: Option<Id>) -> anyhow::Result<()> {
    let mut session = match resume {
        Some(id) => id,
        None => agent.start_session(user, "chat").await?.id,
    };
    // While the user types, a local model evaluates the system prompt and
    // the always-offered tools, which every request starts with.
    if let Err(e) = agent.warm(user) {
        tracing::warn!(error = %e, "could not warm the model's prompt cache");
    }
    println!(
        "Rapport chat as {} ({}), model {}, session {session}. /undo /history /new /quit",
        user.name,
        format!("{:?}", user.role).to_lowercase(),
        agent.model()
    );
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        // A resumed session may have a proposal waiting.
        if let Some(p) = agent.pending(session, user).await?.into_iter().next() {
            match ask_decision(agent, user, session, &p, &mut lines).await? {
                None => break, // end of input
                Some(TurnOutcome::AwaitingApproval(_)) => continue,
                Some(_) => {}
            }
        }
        print!("> ");
        std::io::stdout().flush()?;
        let Some(line) = lines.next().transpose()? else {
            break;
        };
        let line = line.trim();
        match line {
            "" => continue,
            "/quit" | "/exit" => break,
            "/new" => {
                session = agent.start_session(user, "chat").await?.id;
                println!("new session {session}");
            }
            "/history" => print_history(agent, user, session).await?,
            "/undo" => match agent.undo(session, user).await {
                Ok(r) => println!("undid {}: {}", r.tool, r.reverted.join("; ")),
                Err(e) => println!("cannot undo: {e}"),
            },
            text => {
                let (events, printing) = printer();
                let result = agent.send(session, user, text, &events).await;
                drop(events);
                printing.await?;
                if let Err(e) = result {
                    println!("error: {e}");
                }
            }
        }
    }
    Ok(())
}

/// Asks the user about a proposal: approve, reject (with a reason) or edit
/// (a JSON object of the proposed fields to change).
async fn ask_decision(
    agent: &Agent,
    user: &User,
    session: Id,
    p: &Proposal,
    lines: &mut impl Iterator<Item = std::io::Result<String>>,
) -> anyhow::Result<Option<TurnOutcome>> {
    println!("{}", describe(p));
    loop {
        print!("[a]pprove, [r]eject [reason], [e]dit {{\"field\": value}}? ");
        std::io::stdout().flush()?;
        let Some(line) = lines.next().transpose()? else {
            return Ok(None);
        };
        let line = line.trim();
        let decision = if line == "a" || line == "approve" {
            Decision::Approve
        } else if let Some(rest) = line.strip_prefix('r') {
            let reason = rest.trim_start_matches("eject").trim();
            Decision::Reject {
                reason: (!reason.is_empty()).then(|| reason.to_owned()),
            }
        } else if let Some(rest) = line.strip_prefix('e') {
            let json = rest.trim_start_matches("dit").trim();
            match serde_json::from_str::<serde_json::Value>(json) {
                Ok(serde_json::Value::Object(m)) => Decision::Edit(m),
                _ => {
                    println!(
                        "an edit is a JSON object of the proposed fields, e.g. e {{\"name\": \"Acme Corp\"}}"
                    );
                    continue;
                }
            }
        } else {
            continue;
        };
        let (events, printing) = printer();
        let result = agent.decide(session, user, p.id, decision, &events).await;
        drop(events);
        printing.await?;
        match result {
            Ok(outcome) => return Ok(Some(outcome)),
            Err(e) => println!("{e}"),
        }
    }
}

async fn print_history(agent: &Agent, user: &User, session: Id) -> anyhow::Result<()> {
    for m in agent.history(session, user).await? {
        match m.role {
            Role::User => println!("you: {}", m.content),
            Role::Assistant if !m.tool_calls.is_empty() => {
                for c in &m.tool_calls {
                    println!("  call {} {}", c.name, c.arguments);
                }
            }
            Role::Assistant => println!("rapport: {}", m.content),
            Role::Tool => {
                let short: String = m.content.chars().take(120).collect();
                println!("  result {}: {short}", m.name.unwrap_or_default());
            }
            Role::System => {}
        }
    }
    Ok(())
}
