//! `rapport bench …`: each benchmark prints one JSON document on stdout.

use clap::Subcommand;

use super::GlobalArgs;
use super::models;

#[derive(Debug, Subcommand)]
pub enum BenchCmd {
    /// Sentence-embedding throughput at several batch sizes.
    Embed(models::BenchEmbedArgs),
}

pub async fn run(_global: &GlobalArgs, cmd: BenchCmd) -> anyhow::Result<()> {
    match cmd {
        BenchCmd::Embed(args) => models::bench_embed(args).await,
    }
}
