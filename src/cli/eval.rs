//! `rapport eval run|ab|retrieval|quality`: thin over `rapport_evals` (agent
//! suites, A/B experiments, the gate, the quality report) and
//! `rapport_pipelines::memory::eval` (retrieval quality).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use rapport_evals::{AgentSpec, Recording, Report, RunOptions};

use super::db::progress_bar;
use super::memory;

#[derive(Debug, Subcommand)]
pub enum EvalCmd {
    /// Retrieval quality on a freshly seeded demo CRM: recall@10, MRR and
    /// nDCG@10 for dense, BM25 and hybrid search (JSON).
    Retrieval(memory::EvalRetrievalArgs),
    /// Run agent task suites with one agent configuration; write a JSON report
    /// and a Markdown summary; with --baseline, exit non-zero on a regression.
    Run(RunArgs),
    /// Run (or compare the reports of) two agent configurations on the same
    /// tasks: per-arm pass^1 and pass^k, paired difference, McNemar, flips.
    Ab(AbArgs),
    /// One report of every quality figure (agent suites, sentiment accuracy,
    /// retrieval recall@10, lead-score and churn ROC AUC) against the committed
    /// baselines; exits non-zero when a figure falls below its tolerance.
    Quality(QualityArgs),
    /// Check the committed development / held-out split of the shipped tasks
    /// (each batch the seeded draw of its tasks); with --write, draw tasks
    /// added since as a new batch and write the file.
    Split(SplitArgs),
}

#[derive(Debug, Args)]
pub struct SplitArgs {
    /// The split file.
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Write the file: a first draw when there is none, else the tasks added
    /// since as a new batch (earlier batches never move).
    #[arg(long)]
    pub write: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Source {
    Agent,
    Sentiment,
    Retrieval,
    Tabular,
}

#[derive(Debug, Args)]
pub struct QualityArgs {
    /// Agent suite reports to include (default: every report in evals/reports).
    #[arg(long = "agent-report", value_name = "FILE")]
    pub agent_reports: Vec<PathBuf>,
    /// Data sets from scripts/fetch-data (default: $RAPPORT_DATA_CACHE or ~/.cache/rapport/data).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Leave a source out (repeatable).
    #[arg(long, value_enum)]
    pub skip: Vec<Source>,
    /// Demo CRM size for the retrieval eval.
    #[arg(long, default_value_t = 30)]
    pub companies: usize,
    /// Committed baselines to judge against.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "evals/baselines/quality.json"
    )]
    pub baseline: PathBuf,
    /// Write the measured figures as the new baseline (keeping tolerances and
    /// references; a source skipped or not measurable here keeps its entries).
    #[arg(long)]
    pub update_baseline: bool,
    /// Where quality.json and quality.md go.
    #[arg(long, default_value = "eval-out")]
    pub out: PathBuf,
}

/// What both `run` and `ab` take.
#[derive(Debug, Args)]
pub struct Common {
    /// Suite files or directories (default: the shipped evals/suites).
    pub suites: Vec<PathBuf>,
    /// Trials per task (pass^k).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=50))]
    pub k: u32,
    /// Trials running at once (the local model serves one request at a time: 1 is best there).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub jobs: u32,
    /// Seconds a trial may take before it counts as a timeout.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Only tasks with this id or tag (repeatable).
    #[arg(long = "only")]
    pub only: Vec<String>,
    /// At most this many tasks.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Record every model exchange into DIR/<arm name>.json (merged with what is there).
    #[arg(long, value_name = "DIR", conflicts_with = "replay")]
    pub record: Option<PathBuf>,
    /// Answer from DIR/<arm name>.json instead of the model; unmatched requests make a task stale.
    #[arg(long, value_name = "DIR")]
    pub replay: Option<PathBuf>,
    /// With --replay: afterwards drop from the recording the exchanges no task
    /// used (left by re-recording some tasks with --record --only). Runs every
    /// shipped task; refused unless every trial replays to a grade.
    #[arg(long, requires = "replay", conflicts_with_all = ["suites", "only", "limit"])]
    pub prune: bool,
    /// With --replay: afterwards rewrite a recording made before task keys so
    /// each task keeps the replies it was served under keys of its own (two
    /// tasks sending one request stop sharing a sampled arm's draws). Replay
    /// every task the recording holds (--only each, if it holds only some) at
    /// its --k; replies no task was served are dropped.
    #[arg(long, requires = "replay", conflicts_with = "prune")]
    pub rekey: bool,
    /// Where reports go.
    #[arg(long, default_value = "eval-out")]
    pub out: PathBuf,
    /// Run each trial in its own scratch database on this PostgreSQL server
    /// (an admin URL; created and dropped per trial) instead of a SQLite file.
    #[arg(long, value_name = "URL")]
    pub postgres: Option<String>,
    /// The development / held-out split (default: the shipped evals/split.toml):
    /// the report shows the held-out half in aggregate only.
    #[arg(long, value_name = "FILE")]
    pub split: Option<PathBuf>,
    /// Report every task in full, as one development half (to debug a
    /// held-out task is to stop holding it out: say so where it is used).
    #[arg(long, conflicts_with = "split")]
    pub no_split: bool,
}

impl Common {
    fn options(&self) -> anyhow::Result<RunOptions> {
        let held_out = if self.no_split {
            Default::default()
        } else {
            let path = self
                .split
                .clone()
                .unwrap_or_else(rapport_evals::split::default_path);
            rapport_evals::split::Split::load(&path)
                .with_context(|| format!("the task split {}", path.display()))?
                .held_out()
        };
        Ok(RunOptions {
            k: self.k as usize,
            jobs: self.jobs as usize,
            timeout: Duration::from_secs(self.timeout),
            only: self.only.clone(),
            limit: self.limit,
            postgres: self.postgres.clone(),
            held_out,
        })
    }

    fn recording(&self) -> Recording {
        match (&self.record, &self.replay) {
            (Some(d), _) => Recording::Record(d.clone()),
            (None, Some(d)) if self.prune => Recording::Prune(d.clone()),
            (None, Some(d)) if self.rekey => Recording::Rekey(d.clone()),
            (None, Some(d)) => Recording::Replay(d.clone()),
            (None, None) => Recording::Off,
        }
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub common: Common,
    /// The agent configuration (TOML: name, backend local|openai, model, decoding, prompt).
    #[arg(long, value_name = "CONFIG")]
    pub agent: PathBuf,
    /// A previous report: exit non-zero on a significant pass-rate drop or a
    /// previously passing safety task (injection, permission) failing.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct AbArgs {
    #[command(flatten)]
    pub common: Common,
    /// Arm A's configuration.
    #[arg(long, value_name = "CONFIG", required_unless_present = "a_report")]
    pub a: Option<PathBuf>,
    /// Arm B's configuration.
    #[arg(long, value_name = "CONFIG", required_unless_present = "b_report")]
    pub b: Option<PathBuf>,
    /// Compare this existing report as arm A instead of running it.
    #[arg(long, value_name = "FILE", conflicts_with = "a")]
    pub a_report: Option<PathBuf>,
    /// Compare this existing report as arm B instead of running it.
    #[arg(long, value_name = "FILE", conflicts_with = "b")]
    pub b_report: Option<PathBuf>,
}

pub async fn run(cmd: EvalCmd) -> anyhow::Result<()> {
    match cmd {
        EvalCmd::Retrieval(args) => memory::eval_retrieval(args).await,
        EvalCmd::Run(args) => eval_run(args).await,
        EvalCmd::Ab(args) => eval_ab(args).await,
        EvalCmd::Quality(args) => eval_quality(args).await,
        EvalCmd::Split(args) => eval_split(args),
    }
}

fn eval_split(args: SplitArgs) -> anyhow::Result<()> {
    use rapport_evals::split::{self, Split};
    let suites = rapport_evals::load_suites(&[], &rapport_evals::default_suites_dir())?;
    let path = args.file.unwrap_or_else(split::default_path);
    let current = if path.exists() {
        let s = Split::load(&path)?;
        s.check(&suites)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        s
    } else {
        Split {
            seed: split::SEED,
            batches: Vec::new(),
        }
    };
    let next = current.extended(&suites);
    let halves = next.halves();
    let held = halves
        .values()
        .filter(|h| **h == split::Half::HeldOut)
        .count();
    eprintln!(
        "{}: seed {}, {} batches, {} development and {held} held-out tasks; {} not yet assigned",
        path.display(),
        next.seed,
        next.batches.len(),
        halves.len() - held,
        current.unassigned(&suites).len()
    );
    if args.write && next != current {
        std::fs::write(&path, next.to_toml())?;
        eprintln!("written");
    } else if next != current {
        anyhow::bail!("tasks not in the split: run with --write to draw them as a new batch");
    }
    Ok(())
}

fn suites(c: &Common) -> anyhow::Result<Vec<rapport_evals::Suite>> {
    let suites = rapport_evals::load_suites(&c.suites, &rapport_evals::default_suites_dir())?;
    let tools = rapport_evals::task::registry_tools(&rapport_tools::Registry::new());
    for s in &suites {
        s.validate(&tools)?;
    }
    Ok(suites)
}

async fn run_arm(config: &Path, c: &Common) -> anyhow::Result<Report> {
    let spec =
        AgentSpec::load(config).with_context(|| format!("agent config {}", config.display()))?;
    let suites = suites(c)?;
    let bar = progress_bar(&spec.name);
    let report = rapport_evals::run(&spec, &suites, &c.options()?, &c.recording(), &bar).await?;
    bar.finish_and_clear();
    report.save(&c.out, &spec.name)?;
    let s = &report.summary;
    eprintln!(
        "{}: {} tasks, pass^1 {:.3} [{:.3}, {:.3}]{}; report in {}",
        spec.name,
        s.tasks,
        s.pass1.value,
        s.pass1.low,
        s.pass1.high,
        s.passk
            .map(|p| format!(", pass^{} {:.3}", s.k, p.value))
            .unwrap_or_default(),
        c.out.join(format!("{}.{{json,md}}", spec.name)).display()
    );
    Ok(report)
}

async fn eval_run(args: RunArgs) -> anyhow::Result<()> {
    let report = run_arm(&args.agent, &args.common).await?;
    println!("{}", report.markdown());
    if let Some(path) = &args.baseline {
        let baseline = Report::load(path)?;
        let gate = rapport_evals::report::gate(&baseline, &report);
        let md = gate.markdown();
        println!("{md}");
        let out = &args.common.out;
        std::fs::write(out.join("gate.md"), &md)?;
        std::fs::write(out.join("gate.json"), serde_json::to_string_pretty(&gate)?)?;
        if !gate.passed {
            anyhow::bail!(
                "regression against {}: {}",
                path.display(),
                gate.reasons.join("; ")
            );
        }
    }
    Ok(())
}

async fn eval_ab(args: AbArgs) -> anyhow::Result<()> {
    let c = &args.common;
    let a = match (&args.a_report, &args.a) {
        (Some(r), _) => Report::load(r)?,
        (None, Some(cfg)) => run_arm(cfg, c).await?,
        (None, None) => anyhow::bail!("give --a CONFIG or --a-report FILE"),
    };
    let b = match (&args.b_report, &args.b) {
        (Some(r), _) => Report::load(r)?,
        (None, Some(cfg)) => run_arm(cfg, c).await?,
        (None, None) => anyhow::bail!("give --b CONFIG or --b-report FILE"),
    };
    let ab = rapport_evals::report::ab(&a, &b);
    let name = format!("ab-{}-vs-{}", a.agent.name, b.agent.name);
    std::fs::create_dir_all(&c.out)?;
    std::fs::write(
        c.out.join(format!("{name}.json")),
        serde_json::to_string_pretty(&ab)? + "\n",
    )?;
    let md = ab.markdown();
    std::fs::write(c.out.join(format!("{name}.md")), &md)?;
    println!("{md}");
    Ok(())
}

async fn eval_quality(args: QualityArgs) -> anyhow::Result<()> {
    use rapport_evals::quality::{self, Baseline, sources};
    let wants = |s: Source| !args.skip.contains(&s);
    let mut measures = Vec::new();
    // A source that cannot run here (no data fetched, no head trained) is
    // reported as not measured, not as a failure of the others.
    let unavailable = |what: &str, e: &dyn std::fmt::Display| {
        eprintln!("quality: {what} not measured: {e}");
    };
    if wants(Source::Agent) {
        let reports = if args.agent_reports.is_empty() {
            sources::agent_reports_in(Path::new("evals/reports"))?
        } else {
            let mut v = Vec::new();
            for p in &args.agent_reports {
                v.push((p.clone(), Report::load(p)?));
            }
            v
        };
        for (path, r) in &reports {
            eprintln!("quality: agent report {}", path.display());
            measures.extend(sources::agent(r));
        }
    }
    if wants(Source::Sentiment) {
        match rapport_models::Store::open_default()
            .map_err(|e| e.to_string())
            .and_then(|s| sources::sentiment(s.root()).map_err(|e| e.to_string()))
        {
            Ok(m) => measures.extend(m),
            Err(e) => unavailable("sentiment", &e),
        }
    }
    if wants(Source::Retrieval) {
        let bar = progress_bar("retrieval eval: ingest");
        match sources::retrieval(args.companies, &bar).await {
            Ok(m) => measures.extend(m),
            Err(e) => unavailable("retrieval", &e),
        }
        bar.finish_and_clear();
    }
    if wants(Source::Tabular) {
        let data = args.data.clone().unwrap_or_else(super::pipelines::data_dir);
        let sets = sources::tabular_sets(&data);
        let bar = progress_bar("tabular models");
        bar.set_length(sets.len() as u64);
        for set in sets {
            bar.set_message(set.name);
            if !(set.train.exists() && set.test.exists()) {
                unavailable(
                    set.name,
                    &format!("{} missing (run scripts/fetch-data)", set.train.display()),
                );
            } else {
                match tokio::task::spawn_blocking(move || sources::tabular(&set)).await? {
                    Ok(m) => measures.push(m),
                    Err(e) => unavailable("a tabular set", &e),
                }
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
    }
    let baseline = if args.baseline.exists() {
        Baseline::load(&args.baseline)?
    } else {
        eprintln!(
            "quality: no baseline at {}; every figure is new",
            args.baseline.display()
        );
        Baseline::default()
    };
    let report = quality::compare(&measures, &baseline);
    std::fs::create_dir_all(&args.out)?;
    std::fs::write(
        args.out.join("quality.json"),
        serde_json::to_string_pretty(&report)? + "\n",
    )?;
    let md = report.markdown();
    std::fs::write(args.out.join("quality.md"), &md)?;
    println!("{md}");
    if args.update_baseline {
        let next = Baseline::from_measures(&measures, 0.02, &baseline);
        std::fs::write(&args.baseline, serde_json::to_string_pretty(&next)? + "\n")?;
        eprintln!("quality: baseline written to {}", args.baseline.display());
        return Ok(());
    }
    if !report.passed {
        anyhow::bail!("quality regressed: {}", report.regressions().join("; "));
    }
    Ok(())
}
