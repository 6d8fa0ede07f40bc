//! Rapport's web app: sign-in, record tables, record pages and the pipeline
//! board, rendered on the server with tera and made faster (never possible)
//! by htmx.
//!
//! This crate owns the browser-facing surface only: pages, browser sessions,
//! CSRF and the vendored static assets. Every write goes through the tool
//! registry (`rapport-tools`), exactly as the REST API's do, so permissions,
//! transactions and audit entries are the same on every path.
