/*!
Batch jobs: imports (CSV, Parquet), ingestion of activity text into the vector
index, Polars feature extraction, Linfa training, the model registry, batch
scoring and next-best-action computation. Uses `rapport-crm`, `rapport-index`
and `rapport-models`.

The prediction pipeline, in the order data flows:

- [`import`]: a leadforge bundle or a CSV file into crm records, keeping source
  ids so a re-import updates instead of duplicating; all or nothing.
- [`features`]: Polars lazy queries that turn the database into per-lead and
  per-account feature tables as of a snapshot instant (nothing after it leaks in).
- [`train`]: database-free training and evaluation on any table: Linfa logistic
  regression, gradient-boosted trees (forust-ml) and their blend, metrics,
  explanations.
- [`registry`]: model versions with provenance in the database, champion /
  challenger promotion by a paired bootstrap, and the training jobs.
- [`score`]: the champions score open leads and active accounts; the scores and
  their reasons go back to the database for the tools to read.
- [`nba`]: next-best actions for reps (candidate rules, ranking with
  diversity, feedback and outcomes, the offline backtest), using the scores
  when they exist and rules alone before.
- [`experiments`]: database-free A/B machinery (hash assignment, two-proportion
  test, report); the first experiment ranks next-best actions two ways.

Semantic memory sits beside it:

- [`memory`]: the outbox-driven ingestion of emails, calls, meetings and notes
  into the vector index (clean, chunk, embed, BM25), hybrid search with
  citations, the retrieval evaluation and the search benchmark.

Operations: [`backup`] snapshots a data directory (database, index, model
registry) while it is in use, and restores it after checking every file.

And for the tools: [`services`] implements the tool crate's service traits
(search, next-best actions); [`tool_services`] hands them to a registry.
*/

// 346 public items still lack docs (2026-12-07); the workspace warns
// `missing_docs`, and this allowance goes when the crate is documented.
#![allow(missing_docs)]

pub mod backup;
pub mod experiments;
pub mod features;
pub mod import;
pub mod memory;
pub mod nba;
pub mod registry;
pub mod score;
pub mod services;
pub mod train;

pub use services::tool_services;
