//! `rapport bench web`: the web app's board, table and record pages against
//! the JSON API request reading the same data (see `rapport_api::web_bench`).

use clap::Args;

#[derive(Debug, Args)]
pub struct WebBenchArgs {
    /// Company counts to measure at (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [100usize, 10_000])]
    pub sizes: Vec<usize>,
    /// Requests per page and per API request.
    #[arg(long, default_value_t = 200)]
    pub requests: usize,
    /// Also measure on PostgreSQL (scratch databases on this server).
    #[arg(long)]
    pub postgres_url: Option<String>,
}

pub async fn run(args: WebBenchArgs) -> anyhow::Result<()> {
    let params = rapport_api::web_bench::WebBenchParams {
        sizes: args.sizes,
        requests: args.requests.max(10),
        postgres_url: args.postgres_url,
    };
    let doc = rapport_api::web_bench::run(&params).await?;
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}
