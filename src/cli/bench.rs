//! `rapport bench …`: each benchmark prints one JSON document on stdout.

use clap::{Args, Subcommand};
use rapport_crm::Store;
use rapport_crm::bench::{self, BenchParams};

use super::GlobalArgs;
use super::db::progress_bar;
use super::models;

#[derive(Debug, Subcommand)]
pub enum BenchCmd {
    /// Store latency (point read, filtered list, insert) on SQLite and PostgreSQL,
    /// with a raw sqlx SELECT of the same rows as the baseline.
    Crm(CrmBenchArgs),
    /// Per-call overhead of typed tools over the bare repository call they wrap.
    Tools(super::tool::BenchArgs),
    /// Sentence-embedding throughput at several batch sizes.
    Embed(models::BenchEmbedArgs),
    /// Local chat models: load, prefill and decode speed, cached-prefix latency,
    /// tool-call validity with and without constrained decoding.
    Llm(super::llm::BenchLlmArgs),
    /// Feature building (rows/s) and training time per algorithm on a 20,000-lead bundle.
    Train(super::pipelines::BenchTrainArgs),
    /// Vector search: ingestion throughput with and without embedding, query
    /// latency with and without filters, recall@10 against exact search.
    Search(super::memory::BenchSearchArgs),
    /// The API server over HTTP: point read and filtered list at N connections
    /// (p50/p99, requests/s) beside `pgbench -S` at the same concurrency.
    Api(ApiBenchArgs),
    /// The web app's board, table and record pages against the JSON API reading the same data.
    Web(super::bench_web::WebBenchArgs),
}

#[derive(Debug, Args)]
pub struct ApiBenchArgs {
    /// Companies in the table that is read.
    #[arg(long, default_value_t = 10_000)]
    rows: usize,
    /// Concurrent connections (and pgbench clients).
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds per scenario.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Also run the API scenarios on SQLite.
    #[arg(long)]
    sqlite: bool,
    /// PostgreSQL server for the scratch databases (created and dropped).
    #[arg(
        long,
        env = "RAPPORT_TEST_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    postgres_url: String,
}

#[derive(Debug, Args)]
pub struct CrmBenchArgs {
    /// Contacts in the table that is read.
    #[arg(long, default_value_t = 20_000)]
    rows: usize,
    /// Timed repetitions per read operation.
    #[arg(long, default_value_t = 2_000)]
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

pub async fn run(_global: &GlobalArgs, cmd: BenchCmd) -> anyhow::Result<()> {
    match cmd {
        BenchCmd::Crm(args) => crm(args).await,
        BenchCmd::Tools(args) => super::tool::bench(args).await,
        BenchCmd::Embed(args) => models::bench_embed(args).await,
        BenchCmd::Llm(args) => super::llm::bench(args).await,
        BenchCmd::Train(args) => super::pipelines::bench_train(args).await,
        BenchCmd::Search(args) => super::memory::bench_search(args).await,
        BenchCmd::Api(args) => api(args).await,
        BenchCmd::Web(args) => super::bench_web::run(args).await,
    }
}

async fn crm(args: CrmBenchArgs) -> anyhow::Result<()> {
    let params = BenchParams {
        rows: args.rows,
        iterations: args.iterations,
    };
    let mut results = Vec::new();

    let dir = tempfile::tempdir()?;
    let store = Store::connect(&Store::sqlite_url_in(dir.path())).await?;
    results.push(bench::run(&store, &params, &progress_bar("sqlite")).await?);
    store.close().await;

    if args.postgres_url != "none" {
        let name = format!("rapport_bench_{}", std::process::id());
        match rapport_crm::scratch::create_scratch_database(&args.postgres_url, &name).await {
            Ok(url) => {
                let outcome = async {
                    let store = Store::connect(&url).await?;
                    let r = bench::run(&store, &params, &progress_bar("postgres")).await;
                    store.close().await;
                    r
                }
                .await;
                rapport_crm::scratch::drop_scratch_database(&args.postgres_url, &name).await?;
                results.push(outcome?);
            }
            Err(e) => tracing::warn!("PostgreSQL not benchmarked: {e}"),
        }
    }
    let doc = serde_json::json!({"benchmark": "crm", "results": results});
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}

async fn api(args: ApiBenchArgs) -> anyhow::Result<()> {
    let params = rapport_api::bench::ApiBenchParams {
        postgres_url: args.postgres_url,
        rows: args.rows,
        connections: args.connections.max(1),
        seconds: args.seconds.max(1),
        sqlite: args.sqlite,
    };
    let doc = rapport_api::bench::run(&params).await?;
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}
