//! Database commands: init, seed, stats, demo. (Being written.)
use clap::{Args, Subcommand};

use super::GlobalArgs;

#[derive(Debug, Subcommand)]
pub enum SeedCmd {
    /// The demo CRM.
    Demo,
}
#[derive(Debug, Args)]
pub struct StatsArgs {}
#[derive(Debug, Args)]
pub struct DemoArgs {}

pub async fn init(_g: &GlobalArgs) -> anyhow::Result<()> { anyhow::bail!("not yet") }
pub async fn seed(_g: &GlobalArgs, _c: SeedCmd) -> anyhow::Result<()> { anyhow::bail!("not yet") }
pub async fn stats(_g: &GlobalArgs, _a: StatsArgs) -> anyhow::Result<()> { anyhow::bail!("not yet") }
pub async fn demo(_g: &GlobalArgs, _a: DemoArgs) -> anyhow::Result<()> { anyhow::bail!("not yet") }
