//! Command-line definitions and dispatch. Each area has its own module; this one
//! holds the global options and the top-level command list.

mod backup;
mod bench;
mod bench_web;
mod chat;
pub mod config;
mod db;
mod eval;
mod keys;
mod llm;
mod mcp;
mod memory;
pub mod models;
mod nba;
mod pipelines;
mod serve;
mod tool;
mod users;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "rapport", version, about = "Rapport: the AI-agent-centric CRM")]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command understands.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Directory holding the embedded deployment's state (SQLite file, vector index).
    #[arg(
        long,
        global = true,
        env = "RAPPORT_DATA_DIR",
        default_value = "./rapport-data"
    )]
    pub data_dir: PathBuf,
    /// Database URL (`sqlite://…` or `postgres://…`); overrides the SQLite file in the data directory.
    #[arg(long, global = true, env = "RAPPORT_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Workspace to act in (created on first use).
    #[arg(
        long,
        global = true,
        env = "RAPPORT_WORKSPACE",
        default_value = "default"
    )]
    pub workspace: String,
    /// Act as this user (email, name or first name); default: the workspace's first admin.
    #[arg(long = "as", global = true, env = "RAPPORT_USER")]
    pub as_user: Option<String>,
    /// Settings file (default: ./rapport.toml when present); environment
    /// variables and flags override what it says. See `rapport config show`.
    #[arg(long, global = true, env = "RAPPORT_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log more (repeat for more detail); `RUST_LOG` overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Every setting with its value and where it came from (flag, env, file,
    /// default); secrets masked.
    Show(config::ShowArgs),
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the data directory and the database schema (idempotent).
    Init,
    /// The settings in effect: `rapport config show [--json]`.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Generate data: `rapport seed demo`.
    #[command(subcommand)]
    Seed(db::SeedCmd),
    /// Count the records of every type in a workspace.
    Stats(db::StatsArgs),
    /// The main job on the embedded default: initialise, seed the demo CRM if empty, show it.
    Demo(db::DemoArgs),
    /// Model artifacts: list, fetch.
    #[command(subcommand)]
    Models(models::ModelsCmd),
    /// The local chat model: `rapport llm serve` (OpenAI-compatible HTTP API).
    #[command(subcommand)]
    Llm(llm::LlmCmd),
    /// Train models: `train lead-score|churn|sentiment`, or `train --csv FILE --target COL`.
    Train(TrainArgs),
    /// Import records: `import leadforge DIR`, `import csv --type TYPE FILE`.
    #[command(subcommand)]
    Import(pipelines::ImportCmd),
    /// Score open leads and active accounts with the champion models.
    Score(pipelines::ScoreArgs),
    /// Benchmarks; each prints its figures as JSON.
    #[command(subcommand)]
    Bench(bench::BenchCmd),
    /// Talk to the agent: an interactive session with approvals, `/undo`, `/history`, `/new`.
    Chat(chat::ChatArgs),
    /// One message to the agent: `rapport ask "what's overdue for me?"`.
    Ask(chat::AskArgs),
    /// Typed CRM tools: `rapport tool list`, `tool schema NAME`, `tool call NAME --json '{…}'`.
    #[command(subcommand)]
    Tool(tool::ToolCmd),
    /// Serve every tool over MCP on stdio, acting as `--as USER` (default: the
    /// workspace admin). Register it in an MCP client as `rapport mcp`.
    Mcp,
    /// Bring the vector index up to date with the database (drains the outbox).
    Ingest(memory::IngestArgs),
    /// Rebuild the workspace's vector index from the database.
    Reindex(memory::ReindexArgs),
    /// Search emails, calls, meetings and notes by meaning and keywords.
    Search(memory::SearchArgs),
    /// Evaluations: `rapport eval run|ab|retrieval`.
    #[command(subcommand)]
    Eval(eval::EvalCmd),
    /// The API server: REST, chat over SSE, MCP over HTTP, under API keys.
    Serve(serve::ServeArgs),
    /// API keys of `rapport serve`: `keys create|list|revoke`.
    #[command(subcommand)]
    Keys(keys::KeysCmd),
    /// Next-best actions of a rep: `rapport nba --rep USER [--limit N]`; also
    /// `nba feedback`, `nba outcomes`, `nba backtest DIR`.
    Nba(nba::NbaArgs),
    /// Online experiments: `rapport experiments report NAME`.
    #[command(subcommand)]
    Experiments(nba::ExperimentsCmd),
    /// Back up the embedded deployment (database, vector index, model registry)
    /// into a new directory or FILE.tar, while it may be in use.
    Backup(backup::BackupArgs),
    /// Restore a backup into --data-dir after checking every file's sha256;
    /// refuses a non-empty directory without --force.
    Restore(backup::RestoreArgs),
    /// People who sign in to the web app: `users invite EMAIL`, `users set-password EMAIL`.
    #[command(subcommand)]
    Users(users::UsersCmd),
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct TrainArgs {
    #[command(subcommand)]
    pub task: Option<TrainCmd>,
    #[command(flatten)]
    pub csv: pipelines::CsvTrainArgs,
}

#[derive(Debug, Subcommand)]
pub enum TrainCmd {
    /// Train the sentiment head on the sentence embedder.
    Sentiment(models::TrainSentimentArgs),
    /// Lead conversion within a horizon, from the database's features.
    LeadScore(pipelines::TaskArgs),
    /// Account churn (custom attribute `churned`), from the database's features.
    Churn(pipelines::TaskArgs),
}

pub fn init_tracing(verbose: u8) {
    let default = match verbose {
        // qdrant-edge logs its own start-up checks (feature flags, mmap
        // support) as warnings; they are not ours to act on.
        0 => "warn,rapport=info,qdrant_edge=error",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: `rapport mcp`'s stderr usually lands in a client's log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let global = cli.global;
    match cli.command {
        Command::Init => db::init(&global).await,
        // Answered in `main` before the runtime starts (it needs the parse's matches).
        Command::Config(_) => Ok(()),
        Command::Seed(cmd) => db::seed(&global, cmd).await,
        Command::Stats(args) => db::stats(&global, args).await,
        Command::Demo(args) => db::demo(&global, args).await,
        Command::Models(models::ModelsCmd::Registry(args)) => {
            pipelines::registry(&global, args).await
        }
        Command::Models(cmd) => models::run(cmd).await,
        Command::Llm(cmd) => llm::run(cmd).await,
        Command::Train(TrainArgs { task, csv }) => match task {
            Some(TrainCmd::Sentiment(args)) => models::train_sentiment(args).await,
            Some(TrainCmd::LeadScore(args)) => {
                pipelines::train_task(
                    &global,
                    rapport_pipelines::registry::jobs::Task::LeadScore,
                    args,
                )
                .await
            }
            Some(TrainCmd::Churn(args)) => {
                pipelines::train_task(
                    &global,
                    rapport_pipelines::registry::jobs::Task::Churn,
                    args,
                )
                .await
            }
            None => pipelines::train_csv(csv).await,
        },
        Command::Import(cmd) => pipelines::import(&global, cmd).await,
        Command::Score(args) => pipelines::score(&global, args).await,
        Command::Bench(cmd) => bench::run(&global, cmd).await,
        Command::Tool(cmd) => tool::run(&global, cmd).await,
        Command::Chat(args) => chat::chat(&global, args).await,
        Command::Ask(args) => chat::ask(&global, args).await,
        Command::Mcp => mcp::run(&global).await,
        Command::Ingest(args) => memory::ingest(&global, args).await,
        Command::Reindex(args) => memory::reindex(&global, args).await,
        Command::Search(args) => memory::search(&global, args).await,
        Command::Eval(cmd) => eval::run(cmd).await,
        Command::Serve(args) => serve::run(&global, args).await,
        Command::Keys(cmd) => keys::run(&global, cmd).await,
        Command::Nba(args) => nba::run(&global, args).await,
        Command::Experiments(cmd) => nba::experiments(&global, cmd).await,
        Command::Users(cmd) => users::run(&global, cmd).await,
        Command::Backup(args) => backup::backup(&global, args).await,
        Command::Restore(args) => backup::restore(&global, args).await,
    }
}
