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
}

impl Recording {
    pub fn label(&self) -> &'static str {
        match self {
            Recording::Off => "live",
            Recording::Record(_) => "record",
            Recording::Replay(_) => "replay",
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
        Recording::Replay(dir) => {
            let path = runner::recording_path(dir, spec);
            if !path.exists() {
                return Err(Error::file(
                    &path,
                    "no recording for this arm (record one with --record DIR)",
                ));
            }
            let tape = Arc::new(tape::Tape::open(&path)?);
            (
                tape::Mode::Replay {
                    model: spec.model_name(),
                    tape: tape.clone(),
                },
                None,
            )
        }
        Recording::Off | Recording::Record(_) => {
            let s = spec.clone();
            let backend = tokio::task::spawn_blocking(move || s.load_backend())
                .await
                .map_err(|e| Error::Model(e.to_string()))??;
            match recording {
                Recording::Record(dir) => {
                    let tape = Arc::new(tape::Tape::open(&runner::recording_path(dir, spec))?);
                    (tape::Mode::Record(backend, tape.clone()), Some(tape))
                }
                _ => (tape::Mode::Live(backend), None),
            }
        }
    };
    let harness = Harness::new(spec.clone(), mode, &tasks).await?;
    let tasks = harness.run(suites, opts, bar).await;
    if let Some(tape) = tape {
        tape.save()?;
    }
    Ok(Report {
        version: 1,
        agent: spec.clone(),
        prompt_version: harness.prompt_version(),
        mode: recording.label().into(),
        started_at,
        seconds: started.elapsed().as_secs_f64(),
        summary: report::summarize(&tasks, opts.k),
        tasks,
    })
}
