//! An arm of an eval run is an agent profile ([`rapport_agent::profile`]),
//! the same definition `rapport chat --profile FILE` runs, read from a small
//! TOML file under `evals/agents/`: an eval measures exactly what a rep runs.

pub use rapport_agent::profile::{BackendKind, PolicySpec, Profile as AgentSpec, ProfileError};
