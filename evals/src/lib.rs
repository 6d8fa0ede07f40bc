/*!
The eval harness: agent task suites graded on outcomes, record/replay of the
model's exchanges, pass^k, A/B experiments with paired statistics, and the
regression gate CI runs.

- [`task`]: the suite format (YAML under `evals/suites/`): a starting state
  (a named seed plus inline records), the user's turns and approval answers,
  and expectations on the final database, the tool calls and the answer
  ([`matcher`] says how a field is matched).
- [`runner`]: each trial on a fresh SQLite database in a temporary directory,
  in parallel, with a timeout; the agent is the real one ([`rapport_agent`])
  over the real tools, driven by the arm's configuration ([`config`]).
- [`tape`]: recording of every model exchange keyed by the request's hash, and
  replay that marks a task **stale** (never passed) when a request has no
  recording — CI runs the suites without a model, deterministically.
- [`split`]: the development / held-out split of the tasks, drawn once with
  a fixed seed and committed; a run seals the held-out half's rows so that a
  report shows that half only in aggregate.
- [`grade`]: pure graders over the run's data; [`stats`]: Wilson intervals,
  pass^k, exact McNemar, paired bootstrap; [`report`]: JSON and Markdown
  reports, the gate against a baseline, A/B comparison.
- [`quality`]: one report of every quality figure (agent suites, sentiment,
  retrieval, lead-score and churn AUC) against committed baselines.

It leaves the model, the loop and the tools to `rapport-agent` and
`rapport-tools`, and the command line to the `rapport` binary
(`rapport eval run|ab|quality`).
*/

pub mod config;
mod error;
pub mod grade;
pub mod matcher;
pub mod quality;
pub mod report;
pub mod runner;
pub mod split;
pub mod stats;
pub mod tape;
pub mod task;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use indicatif::ProgressBar;

pub use config::AgentSpec;
pub use error::{Error, Result};
pub use report::{AbReport, Gate, Report, Status};
pub use runner::{Harness, RunOptions};
pub use task::{Suite, Task, load_suites};

/// Where the model's answers come from.
#[derive(Debug, Clone)]
pub enum Recording {
    /// From the model, not kept.
    Off,
    /// From the model, every exchange written to `DIR/<arm name>.json`.
    Record(PathBuf),
    /// From `DIR/<arm name>.json` only; the model is not loaded.
    Replay(PathBuf),
    /// A replay of every task that then drops from `DIR/<arm name>.json` the
    /// exchanges it did not use (left there by `--record --only …`
    /// re-recordings of some tasks).
    Prune(PathBuf),
    /// A replay that then rewrites `DIR/<arm name>.json` with task keys:
    /// each task keeps the replies it was served under keys of its own
    /// ([`tape::Tape::rekey`]). Replay every task the recording holds.
    Rekey(PathBuf),
}

impl Recording {
    /// `live`, `record` or `replay`, as reports show it.
    pub fn label(&self) -> &'static str {
        match self {
            Recording::Off => "live",
            Recording::Record(_) => "record",
            Recording::Replay(_) | Recording::Prune(_) | Recording::Rekey(_) => "replay",
        }
    }
}

/// The suites shipped with the crate.
pub fn default_suites_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("suites")
}

/// Runs the suites with one arm and returns the report (and saves the
/// recording when recording).
pub async fn run(
    spec: &AgentSpec,
    suites: &[Suite],
    opts: &RunOptions,
    recording: &Recording,
    bar: &ProgressBar,
) -> Result<Report> {
    let started = Instant::now();
    let started_at = chrono::Utc::now().to_rfc3339();
    let tasks: Vec<&Task> = runner::select(suites, opts)
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    let (mode, tape) = match recording {
        Recording::Replay(dir) | Recording::Prune(dir) | Recording::Rekey(dir) => {
            let path = runner::recording_path(dir, spec);
            if !path.exists() {
                return Err(Error::file(
                    &path,
                    "no recording for this arm (record one with --record DIR)",
                ));
            }
            let tape = Arc::new(tape::Tape::open(&path)?);
            match recording {
                Recording::Prune(_) => prunable(&tape, opts)?,
                Recording::Rekey(_) => every_trial(&tape, opts)?,
                _ => {}
            }
            (
                tape::Mode::Replay {
                    model: spec.model.clone(),
                    tape: tape.clone(),
                },
                Some(tape),
            )
        }
        Recording::Off | Recording::Record(_) => {
            let tape = match recording {
                Recording::Record(dir) => Some(Arc::new(recordable(
                    &runner::recording_path(dir, spec),
                    opts,
                )?)),
                _ => None,
            };
            let s = spec.clone();
            let backend = tokio::task::spawn_blocking(move || s.load_backend())
                .await
                .map_err(|e| Error::Model(e.to_string()))??;
            match tape {
                Some(tape) => (tape::Mode::Record(backend, tape.clone()), Some(tape)),
                None => (tape::Mode::Live(backend), None),
            }
        }
    };
    let harness = Harness::new(spec.clone(), mode, &tasks).await?;
    let tasks = harness.run(suites, opts, bar).await;
    match (recording, tape) {
        (Recording::Record(_), Some(tape)) => tape.save()?,
        (Recording::Prune(_), Some(tape)) => prune(&tape, &tasks)?,
        (Recording::Rekey(_), Some(tape)) => rekey(&tape, &tasks)?,
        _ => {}
    }
    let (tasks, held_out) = report::seal(tasks, &opts.held_out);
    Ok(Report {
        version: 1,
        agent: spec.clone(),
        prompt_version: harness.prompt_version(),
        mode: recording.label().into(),
        started_at,
        seconds: started.elapsed().as_secs_f64(),
        summary: report::summarize(&tasks, &held_out, opts.k),
        tasks,
        held_out,
    })
}

/// Whether a replay with `opts` can tell which exchanges are unused: it must
/// run every task and at least as many trials as were recorded.
fn prunable(tape: &tape::Tape, opts: &RunOptions) -> Result<()> {
    if !opts.only.is_empty() || opts.limit.is_some() {
        return Err(Error::Rewrite(
            "pruning needs a replay of every task: drop --only and --limit".into(),
        ));
    }
    every_trial(tape, opts)
}

/// Whether a replay with `opts` runs every trial the recording holds.
fn every_trial(tape: &tape::Tape, opts: &RunOptions) -> Result<()> {
    let recorded = tape.trials();
    if opts.k < recorded {
        return Err(Error::Rewrite(format!(
            "the recording holds {recorded} trials per task; replay them all with --k {recorded}"
        )));
    }
    Ok(())
}

/// The recording at `path`, if a run with `opts` may record into it: one
/// whose sampled trials are keyed by request alone must be re-keyed first,
/// which is said before the model loads rather than at its first reply.
fn recordable(path: &Path, opts: &RunOptions) -> Result<tape::Tape> {
    let tape = tape::Tape::open(path)?;
    if !tape.by_task() && (tape.per_trial() || opts.k > 1) {
        return Err(Error::file(path, tape::NOT_BY_TASK));
    }
    Ok(tape)
}

/// Re-keys the recording by task and saves it, if every trial replayed to a
/// grade (a stale trial was served only part of what it needs).
fn rekey(tape: &tape::Tape, tasks: &[report::TaskReport]) -> Result<()> {
    graded(tasks, "re-keyed")?;
    let (before, after) = tape.rekey();
    tape.save()?;
    tracing::info!(
        path = %tape.path().display(),
        before,
        after,
        "re-keyed the recording by task"
    );
    Ok(())
}

/// Refuses (with what to do) when some trial did not replay to a grade.
fn graded(tasks: &[report::TaskReport], what: &str) -> Result<()> {
    let unfinished: Vec<&str> = tasks
        .iter()
        .filter(|t| {
            t.trials
                .iter()
                .any(|x| !matches!(x.status, Status::Pass | Status::Fail))
        })
        .map(|t| t.id.as_str())
        .collect();
    if !unfinished.is_empty() {
        return Err(Error::Rewrite(format!(
            "not {what}, because {} tasks did not replay to a grade ({}); fix or re-record them first",
            unfinished.len(),
            unfinished.join(", ")
        )));
    }
    Ok(())
}

/// Drops the exchanges the replay did not serve and saves the file, unless
/// some trial did not replay to a grade (stale, error, timeout, skipped):
/// its unused replies may be what a fixed run needs.
fn prune(tape: &tape::Tape, tasks: &[report::TaskReport]) -> Result<()> {
    graded(tasks, "pruned")?;
    let dropped = tape.prune();
    tape.save()?;
    tracing::info!(
        path = %tape.path().display(),
        dropped,
        kept = tape.len(),
        "pruned the recording"
    );
    Ok(())
}
