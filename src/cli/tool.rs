//! `rapport tool list | schema NAME | call NAME --json '{…}'`: the tool registry
//! on the command line. Thin: it opens the store, builds the caller from
//! `--as USER`, and prints what `rapport-tools` returns.

use anyhow::Context;
use clap::{Args, Subcommand};
use rapport_crm::model::User;
use rapport_crm::{Source, Store};
use rapport_tools::{Caller, Registry, first_sentence};

use super::GlobalArgs;

#[derive(Debug, Subcommand)]
pub enum ToolCmd {
    /// Every tool: name, effect and what it does.
    List(ListArgs),
    /// The JSON Schema of a tool's arguments, with its description and effect.
    Schema(SchemaArgs),
    /// Call a tool with JSON arguments, acting as `--as USER` (default: the
    /// workspace admin). Prints the JSON result, or the structured error and
    /// exits non-zero.
    Call(CallArgs),
    /// Per-call overhead of representative read and write tools over the bare
    /// repository call they wrap, on SQLite and PostgreSQL (JSON).
    Bench(BenchArgs),
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Contacts in the table that is read.
    #[arg(long, default_value_t = 5_000)]
    rows: usize,
    /// Timed repetitions per operation.
    #[arg(long, default_value_t = 500)]
    iterations: usize,
    /// PostgreSQL server to benchmark on (a scratch database is created and dropped);
    /// `none` to skip.
    #[arg(
        long,
        env = "RAPPORT_TEST_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    postgres_url: String,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// A Markdown table, for docs/tools.md.
    #[arg(long, conflicts_with = "json")]
    pub markdown: bool,
    /// JSON with every tool's input schema.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SchemaArgs {
    pub name: String,
    /// Print the tool as a small local model reads it in its prompt (compact
    /// description, schema in prompt form) instead of the full schema.
    #[arg(long)]
    pub prompt: bool,
}

#[derive(Debug, Args)]
pub struct CallArgs {
    pub name: String,
    /// The arguments as a JSON object.
    #[arg(long, default_value = "{}")]
    pub json: String,
}

pub async fn run(global: &GlobalArgs, cmd: ToolCmd) -> anyhow::Result<()> {
    let tools = Registry::new().with_services(rapport_pipelines::tool_services(None));
    match cmd {
        ToolCmd::Bench(args) => bench(args).await?,
        ToolCmd::List(args) if args.markdown => print!("{}", tools.markdown()),
        ToolCmd::List(args) if args.json => {
            println!("{}", serde_json::to_string_pretty(&tools.list())?)
        }
        ToolCmd::List(_) => {
            let width = tools.tools().map(|t| t.name().len()).max().unwrap_or(0);
            for t in tools.tools() {
                println!(
                    "{:<width$}  {:<11}  {}",
                    t.name(),
                    t.effect().as_str(),
                    first_sentence(&t.description())
                );
            }
        }
        ToolCmd::Schema(args) => {
            let t = tools.get(&args.name).with_context(|| {
                format!(
                    "no tool named {:?}; `rapport tool list` shows them",
                    args.name
                )
            })?;
            if args.prompt {
                let spec = rapport_agent::select::spec(t, true);
                println!("{}", serde_json::to_string_pretty(&spec.to_prompt())?);
                return Ok(());
            }
            let out = serde_json::json!({
                "name": t.name(),
                "description": t.description(),
                "effect": t.effect(),
                "input_schema": t.input_schema(),
                "example": t.example(),
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        ToolCmd::Call(args) => {
            let input: serde_json::Value = serde_json::from_str(&args.json)
                .context("--json must be a JSON object, e.g. '{\"id\": 1}'")?;
            let s = super::db::open(global).await?;
            let caller = caller(&s.store, &s.ctx).await?;
            // A call may need semantic search: open the index when there is one.
            let tools =
                Registry::new().with_services(super::chat::services_for(global, &s.store).await);
            match tools.call(&s.store, &caller, &args.name, input).await {
                Ok(v) => println!("{}", serde_json::to_string_pretty(&v)?),
                Err(e) => {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&serde_json::json!({"error": e}))?
                    );
                    s.store.close().await;
                    std::process::exit(2);
                }
            }
            s.store.close().await;
        }
    }
    Ok(())
}

async fn caller(store: &Store, ctx: &rapport_crm::Ctx) -> anyhow::Result<Caller> {
    let user_id = ctx.actor_id.context("no acting user")?;
    let user: User = store.get(ctx, user_id).await?;
    Ok(Caller::user(&user, Source::Cli))
}

pub async fn bench(args: BenchArgs) -> anyhow::Result<()> {
    use rapport_crm::scratch::{create_scratch_database, drop_scratch_database};
    use rapport_tools::bench::{BenchParams, run};
    let params = BenchParams {
        rows: args.rows,
        iterations: args.iterations,
    };
    let mut results = Vec::new();
    let dir = tempfile::tempdir()?;
    let store = Store::connect(&Store::sqlite_url_in(dir.path())).await?;
    results.push(run(&store, &params).await?);
    store.close().await;
    if args.postgres_url != "none" {
        let name = format!("rapport_tool_bench_{}", std::process::id());
        match create_scratch_database(&args.postgres_url, &name).await {
            Ok(url) => {
                let outcome = async {
                    let store = Store::connect(&url).await?;
                    let r = run(&store, &params).await;
                    store.close().await;
                    anyhow::Ok(r?)
                }
                .await;
                drop_scratch_database(&args.postgres_url, &name).await?;
                results.push(outcome?);
            }
            Err(e) => tracing::warn!("PostgreSQL not benchmarked: {e}"),
        }
    }
    let doc = serde_json::json!({"benchmark": "tools", "results": results});
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}
