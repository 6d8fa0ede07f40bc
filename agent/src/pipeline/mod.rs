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
//! The open tool loop ([`crate::Agent`]) stays for strong models behind an
//! OpenAI-compatible endpoint, and stays the default until the evals say
//! otherwise.

// 35 public items of the pipeline (not yet wired into a turn) lack docs;
// this allowance goes with the wiring.
#![allow(missing_docs)]

pub mod examples;
pub mod fill;
pub mod plan;
pub mod resolve;

pub use examples::{ExampleIndex, WorkedExample, WorkedExamples};
pub use plan::{Candidate, Plan, PlanError, Step};
pub use resolve::{Resolution, Scope};
