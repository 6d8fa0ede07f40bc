//! `rapport nba [--rep USER] [--limit N]`, `rapport nba feedback|outcomes|backtest`
//! and `rapport experiments report NAME`: thin adapters over
//! `rapport_pipelines::nba` and `rapport_pipelines::experiments`.

use std::path::PathBuf;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{MultiProgress, ProgressDrawTarget};
use rapport_crm::FeedbackStatus;
use rapport_pipelines::experiments::{self, ReportOptions};
use rapport_pipelines::nba::{self, FeedbackInput, NbaConfig, backtest, outcomes};

use super::GlobalArgs;
use super::db;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct NbaArgs {
    #[command(subcommand)]
    pub command: Option<NbaCmd>,
    /// The rep (email, name or first name); default: the acting user (`--as`).
    #[arg(long)]
    pub rep: Option<String>,
    /// How many actions (1–100).
    #[arg(long, default_value_t = 10)]
    pub limit: usize,
    /// A JSON file of thresholds (fields of `NbaConfig`; missing ones keep their defaults).
    #[arg(long, value_name = "FILE")]
    pub thresholds: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum NbaCmd {
    /// Record what a rep did with an action: done, dismissed or snoozed.
    Feedback(FeedbackArgs),
    /// Link outcomes (deal advanced, lead converted, account renewed…) to
    /// feedback and experiment exposures; run it as a batch job.
    Outcomes(OutcomesArgs),
    /// Offline backtest on a leadforge bundle: precision@k of converted leads
    /// for the NBA order, most-recent-activity and random orders (JSON).
    Backtest(BacktestArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Status {
    Done,
    Dismissed,
    Snoozed,
}

#[derive(Debug, Args)]
pub struct FeedbackArgs {
    /// The action's key as listed (`RULE:RECORD_TYPE:ID`).
    pub action_key: String,
    pub status: Status,
    /// Why it was dismissed.
    #[arg(long)]
    pub reason: Option<String>,
    /// When a snooze ends (RFC 3339).
    #[arg(long)]
    pub until: Option<DateTime<Utc>>,
    /// The rep giving it; default: the acting user (`--as`).
    #[arg(long)]
    pub rep: Option<String>,
}

#[derive(Debug, Args)]
pub struct OutcomesArgs {
    #[arg(long, value_name = "FILE")]
    pub thresholds: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BacktestArgs {
    /// A leadforge bundle directory (scripts/fetch-data makes two).
    pub dir: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum ExperimentsCmd {
    /// Per-variant rates, the difference with its confidence interval, a
    /// two-proportion z-test and sample-size warnings.
    Report(ReportArgs),
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    pub name: String,
    #[arg(long, default_value_t = 0.95)]
    pub confidence: f64,
    /// Warn below this many units per variant.
    #[arg(long, default_value_t = 30)]
    pub min_units: u64,
    #[arg(long)]
    pub json: bool,
}

fn config(path: Option<&PathBuf>) -> anyhow::Result<NbaConfig> {
    let Some(p) = path else {
        return Ok(NbaConfig::default());
    };
    let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a valid NBA config", p.display()))
}

pub async fn run(g: &GlobalArgs, a: NbaArgs) -> anyhow::Result<()> {
    match a.command {
        Some(NbaCmd::Feedback(f)) => feedback(g, f).await,
        Some(NbaCmd::Outcomes(o)) => link_outcomes(g, o).await,
        Some(NbaCmd::Backtest(b)) => run_backtest(b).await,
        None => list(g, a.rep, a.limit, a.thresholds, a.json).await,
    }
}

async fn list(
    g: &GlobalArgs,
    rep: Option<String>,
    limit: usize,
    config_path: Option<PathBuf>,
    json: bool,
) -> anyhow::Result<()> {
    let cfg = config(config_path.as_ref())?;
    let s = db::open(g).await?;
    let rep_id = match rep {
        Some(who) => db::find_user(&s.store, &s.ctx, &who).await?.id,
        None => s.ctx.actor_id.context("no acting user; pass --rep USER")?,
    };
    let list = nba::for_rep(&s.store, &s.ctx, rep_id, &cfg, limit, Utc::now()).await?;
    let mut tx = s.store.begin().await?;
    nba::record_exposures(&mut tx, &s.ctx, &cfg, &list).await?;
    tx.commit().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    println!(
        "Next-best actions for {} (strategy {}{}; {} candidates, {} hidden by feedback; lead-score model: {}, churn model: {})",
        list.rep,
        list.strategy.as_str(),
        list.experiment
            .as_ref()
            .map(|e| format!(" from experiment {e}"))
            .unwrap_or_default(),
        list.candidates,
        list.hidden_by_feedback,
        if list.models.lead_score { "yes" } else { "no" },
        if list.models.churn { "yes" } else { "no" },
    );
    if list.actions.is_empty() {
        println!("Nothing to do: no rule fires for this rep right now.");
    }
    for r in &list.actions {
        println!("{:>2}. {}", r.rank, r.candidate.reason);
        println!(
            "    priority {:.1} = p {:.2} ({}) × value {:.0} × urgency {:.2}   [{}]",
            r.priority,
            r.candidate.facts.probability,
            r.candidate.facts.probability_source,
            r.candidate.facts.value,
            r.candidate.facts.urgency,
            r.key
        );
    }
    Ok(())
}

async fn feedback(g: &GlobalArgs, f: FeedbackArgs) -> anyhow::Result<()> {
    let s = db::open(g).await?;
    let rep_id = match f.rep {
        Some(who) => db::find_user(&s.store, &s.ctx, &who).await?.id,
        None => s.ctx.actor_id.context("no acting user; pass --rep USER")?,
    };
    let input = FeedbackInput {
        action_key: f.action_key,
        status: match f.status {
            Status::Done => FeedbackStatus::Done,
            Status::Dismissed => FeedbackStatus::Dismissed,
            Status::Snoozed => FeedbackStatus::Snoozed,
        },
        reason: f.reason,
        until: f.until,
    };
    let mut tx = s.store.begin().await?;
    let fb = nba::record_feedback(&mut tx, &s.ctx, rep_id, &input, Utc::now()).await?;
    tx.commit().await?;
    println!(
        "recorded: {} {}{}{}",
        fb.action_key,
        fb.status.as_str(),
        fb.reason.map(|r| format!(" ({r})")).unwrap_or_default(),
        fb.snoozed_until
            .map(|u| format!(" until {u}"))
            .unwrap_or_default()
    );
    Ok(())
}

async fn link_outcomes(g: &GlobalArgs, o: OutcomesArgs) -> anyhow::Result<()> {
    let cfg = config(o.thresholds.as_ref())?;
    let s = db::open(g).await?;
    let report = outcomes::link(&s.store, &s.ctx, &cfg, Utc::now()).await?;
    if o.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "feedback: {} checked, {} linked to an outcome, {} closed with no change; exposures: {} checked, {} new outcome events",
            report.feedback_checked,
            report.feedback_linked,
            report.feedback_no_change,
            report.exposures_checked,
            report.events_recorded
        );
    }
    Ok(())
}

async fn run_backtest(b: BacktestArgs) -> anyhow::Result<()> {
    let bars = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let report = backtest::run(&b.dir, &NbaConfig::default(), &bars)
        .await
        .with_context(|| {
            format!(
                "backtesting on {} (run scripts/fetch-data first)",
                b.dir.display()
            )
        })?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

pub async fn experiments(g: &GlobalArgs, cmd: ExperimentsCmd) -> anyhow::Result<()> {
    let ExperimentsCmd::Report(a) = cmd;
    anyhow::ensure!(
        a.confidence > 0.5 && a.confidence < 1.0,
        "--confidence must be between 0.5 and 1 (e.g. 0.95)"
    );
    let s = db::open(g).await?;
    let counts = outcomes::experiment_counts(&s.store, &s.ctx, &a.name)
        .await?
        .with_context(|| {
            format!(
                "no experiment {:?} in this workspace (the NBA experiment starts with the first `rapport nba`)",
                a.name
            )
        })?;
    let opts = ReportOptions {
        confidence: a.confidence,
        min_units: a.min_units,
        ..ReportOptions::default()
    };
    let report = experiments::report(&a.name, &counts, &opts);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("experiment {}", report.experiment);
    println!(
        "{:<16} {:>6} {:>10} {:>10} {:>8}",
        "variant", "units", "exposures", "outcomes", "rate"
    );
    for v in &report.variants {
        println!(
            "{:<16} {:>6} {:>10} {:>10} {:>7.2}%",
            v.counts.variant,
            v.counts.units,
            v.counts.trials,
            v.counts.successes,
            v.rate * 100.0
        );
    }
    for c in &report.comparisons {
        println!(
            "{} − {}: {:+.2} pp, {:.0}% CI [{:+.2}, {:+.2}] pp, z = {:.3}, p = {:.4}{}",
            c.variant,
            c.control,
            c.difference * 100.0,
            c.confidence * 100.0,
            c.ci_low * 100.0,
            c.ci_high * 100.0,
            c.z,
            c.p_value,
            if c.significant { " (significant)" } else { "" }
        );
    }
    for w in &report.warnings {
        println!("warning: {w}");
    }
    Ok(())
}
