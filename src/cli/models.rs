//! `rapport models …`, `rapport train sentiment` and `rapport bench embed`:
//! thin adapters over `rapport-models`.

use clap::{Args, Subcommand};

/// `rapport models …`
#[derive(Debug, Subcommand)]
pub enum ModelsCmd {
    /// List the model artifacts of the manifest and whether each is present and verified.
    List,
}

/// `rapport train sentiment`
#[derive(Debug, Args)]
pub struct TrainSentimentArgs {}

/// `rapport bench embed`
#[derive(Debug, Args)]
pub struct BenchEmbedArgs {}

pub async fn run(_cmd: ModelsCmd) -> anyhow::Result<()> {
    anyhow::bail!("not built yet: see the 'Local models I' issue")
}

pub async fn train_sentiment(_args: TrainSentimentArgs) -> anyhow::Result<()> {
    anyhow::bail!("not built yet: see the 'Local models I' issue")
}

pub async fn bench_embed(_args: BenchEmbedArgs) -> anyhow::Result<()> {
    anyhow::bail!("not built yet: see the 'Local models I' issue")
}
