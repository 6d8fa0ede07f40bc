//! The store benchmark without the rest of Rapport (no model crates to build):
//!
//! ```sh
//! cargo run --release -p rapport-crm --example bench_crm -- [ROWS] [ITERATIONS]
//! ```
//!
//! Same figures as `rapport bench crm`, on SQLite and, when
//! `RAPPORT_TEST_POSTGRES_URL` (default the local server) answers, PostgreSQL.

use indicatif::ProgressBar;
use rapport_crm::Store;
use rapport_crm::bench::{self, BenchParams};

#[tokio::main]
async fn main() -> rapport_crm::Result<()> {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().expect("a number"));
    let params = BenchParams {
        rows: args.next().unwrap_or(20_000),
        iterations: args.next().unwrap_or(2_000),
    };
    let mut results = Vec::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::connect(&Store::sqlite_url_in(dir.path())).await?;
    results.push(bench::run(&store, &params, &ProgressBar::hidden()).await?);
    store.close().await;

    let admin = std::env::var("RAPPORT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("rapport_bench_{}", std::process::id());
    if let Ok(url) = rapport_crm::scratch::create_scratch_database(&admin, &name).await {
        let store = Store::connect(&url).await?;
        let r = bench::run(&store, &params, &ProgressBar::hidden()).await;
        store.close().await;
        rapport_crm::scratch::drop_scratch_database(&admin, &name).await?;
        results.push(r?);
    }
    let doc = serde_json::json!({"benchmark": "crm", "results": results});
    println!("{}", serde_json::to_string_pretty(&doc).expect("JSON"));
    Ok(())
}
