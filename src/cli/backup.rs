//! `rapport backup DEST` and `rapport restore SOURCE [--force]`: thin adapters
//! over `rapport_pipelines::backup`, which owns the snapshot, the manifest and
//! the checks. The embedded deployment only; the scale-out one is backed up
//! with pg_dump and Qdrant's snapshot API (docs/operations.md).

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use rapport_pipelines::backup::{self, BackupOptions, IndexMode, IndexSource, RestoreOptions};

use super::GlobalArgs;

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// A new directory, or a file ending in `.tar`.
    pub dest: std::path::PathBuf,
    /// Leave the trained sentiment heads of the models directory out.
    #[arg(long)]
    pub no_models: bool,
    /// Print the manifest as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A backup directory or `.tar` written by `rapport backup`.
    pub source: std::path::PathBuf,
    /// Replace a data directory (and sentiment-head directory) that is not empty.
    #[arg(long)]
    pub force: bool,
    /// Leave the backup's sentiment heads out of the models directory.
    #[arg(long)]
    pub no_models: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Refuses what is not the embedded deployment's data directory.
fn embedded_only(g: &GlobalArgs) -> anyhow::Result<()> {
    match &g.database_url {
        Some(url) if url.starts_with("postgres") => anyhow::bail!(
            "`rapport backup` and `restore` cover the embedded deployment (SQLite in --data-dir); back up PostgreSQL with pg_dump and a Qdrant server with its snapshot API (docs/operations.md)"
        ),
        Some(_) => anyhow::bail!(
            "`rapport backup` and `restore` work on the SQLite file of --data-dir; unset --database-url / RAPPORT_DATABASE_URL"
        ),
        None => Ok(()),
    }
}

fn models_dir(skip: bool) -> anyhow::Result<Option<std::path::PathBuf>> {
    if skip {
        return Ok(None);
    }
    Ok(Some(rapport_models::store::default_models_dir()?))
}

fn bar() -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>10} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar
}

pub async fn backup(g: &GlobalArgs, args: BackupArgs) -> anyhow::Result<()> {
    embedded_only(g)?;
    let index = match std::env::var("RAPPORT_QDRANT_URL") {
        Ok(url) => IndexSource::External(url),
        Err(_) => IndexSource::Embedded(g.data_dir.join(backup::INDEX_DIR)),
    };
    let opts = BackupOptions {
        data_dir: g.data_dir.clone(),
        index,
        models_dir: models_dir(args.no_models)?,
        dest: args.dest.clone(),
    };
    let bar = bar();
    let manifest = backup::backup(&opts, &bar)
        .await
        .with_context(|| format!("backup of {} failed", g.data_dir.display()))?;
    bar.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&manifest)?);
        return Ok(());
    }
    let bytes: u64 = manifest.files.iter().map(|f| f.size).sum();
    println!(
        "Backed up {} to {}: {} files, {:.1} MB; {} rows in {} tables; {} model versions, {} sentiment heads; index: {}.",
        g.data_dir.display(),
        args.dest.display(),
        manifest.files.len(),
        bytes as f64 / 1e6,
        manifest.database.tables.values().sum::<i64>(),
        manifest.database.tables.len(),
        manifest.registry.model_versions.len(),
        manifest.registry.sentiment_heads.len(),
        manifest.index.mode.as_str(),
    );
    if manifest.index.mode != IndexMode::Snapshot {
        println!("{}", manifest.index.note);
    }
    Ok(())
}

pub async fn restore(g: &GlobalArgs, args: RestoreArgs) -> anyhow::Result<()> {
    embedded_only(g)?;
    let opts = RestoreOptions {
        source: args.source.clone(),
        data_dir: g.data_dir.clone(),
        models_dir: models_dir(args.no_models)?,
        force: args.force,
    };
    let bar = bar();
    let report = backup::restore(&opts, &bar).await;
    bar.finish_and_clear();
    let report = report.with_context(|| format!("restore of {} failed", args.source.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "Restored {} into {}{}: {} rows in {} tables, {} model versions{}; index: {}.",
        args.source.display(),
        report.data_dir.display(),
        if report.replaced { " (replaced)" } else { "" },
        report.tables.values().sum::<i64>(),
        report.tables.len(),
        report.model_versions,
        match &report.sentiment_heads {
            Some(dir) => format!(", sentiment heads in {}", dir.display()),
            None => String::new(),
        },
        report.index.mode.as_str(),
    );
    match report.index.mode {
        IndexMode::Snapshot | IndexMode::Rebuild => {
            println!(
                "Next: rapport ingest --all-workspaces (indexes what the outbox still queues)."
            )
        }
        IndexMode::External => println!("{}", report.index.note),
        IndexMode::Absent => {}
    }
    Ok(())
}
