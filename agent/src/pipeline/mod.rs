//! The turn pipeline for small local models: plan, resolve, fill, run,
//! answer — the model makes at most two small, constrained choices per
//! action and code does the rest.
//!
//! - [`examples`]: worked examples (`prompts/worked_examples.toml`, a world
//!   of their own) and the retrieval of the nearest few, diverse ([`examples::mmr`]).
//! - [`plan`]: one constrained call naming at most three steps, each a
//!   candidate action, the value fields the user gave and the span of the
//!   request it is about; fixed before any tool output is read.
//! - [`resolve`]: every id from the span, the request, the session's latest
//!   record of the type or an earlier step's result — no model.
//! - [`fill`]: one constrained call per step for the planned fields only,
//!   skipped when nothing is left to fill.
//!
//! The turn itself — the stages run in order, the plan kept in the session
//! so an approval resumes it, one repair of a failed step, the answer — is
//! the agent's ([`crate::Agent::with_pipeline`]). The open tool loop stays
//! for strong models behind an OpenAI-compatible endpoint, and stays the
//! default ([`TurnMode`]) until the evals say otherwise.

// 35 public items of the pipeline's parts lack docs.
#![allow(missing_docs)]

pub mod examples;
pub mod fill;
pub mod plan;
pub mod resolve;

pub use examples::{ExampleIndex, WorkedExample, WorkedExamples};
pub use plan::{Candidate, Plan, PlanError, Step};
pub use resolve::{Resolution, Scope};

/// How the agent runs a turn.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TurnMode {
    /// The open tool loop: the model chooses every call and when it is done.
    #[default]
    Loop,
    /// The pipeline: plan, resolve, fill, run, answer.
    Pipeline,
}

impl std::str::FromStr for TurnMode {
    type Err = String;

    fn from_str(s: &str) -> Result<TurnMode, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "loop" => Ok(TurnMode::Loop),
            "pipeline" => Ok(TurnMode::Pipeline),
            other => Err(format!("unknown turn mode {other:?}; use loop or pipeline")),
        }
    }
}

impl std::fmt::Display for TurnMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TurnMode::Loop => "loop",
            TurnMode::Pipeline => "pipeline",
        })
    }
}
