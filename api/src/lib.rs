/*!
Rapport's servers: thin adapters that put the typed tools of `rapport-tools`
and the agent of `rapport-agent` in front of other programs. It owns the
protocol edges — authentication, how a call and its result or structured
error travel, streaming — and nothing of the CRM's behaviour, which stays in
the tool registry and the agent.

- [`mcp`]: every tool over the Model Context Protocol (`rmcp`), on stdio for
  `rapport mcp` and over streamable HTTP at `/mcp`.
- [`server`]: `rapport serve`, an axum server: REST under `/api/v1` for every
  record type ([`rest`]: writes through the tools, reads with the same typed
  filters), any tool by name, search, next-best actions, the model registry,
  audit history; chat with the agent over server-sent events ([`chat`]); an
  OpenAPI 3.1 document generated from the code ([`openapi`]); API keys bound to
  a user and workspace ([`auth`]) with a per-key rate limit; errors as
  `application/problem+json` ([`problem`]); health, readiness and Prometheus
  metrics ([`ops`]); request ids, size limits, timeouts, CORS and graceful
  shutdown.

```no_run
# async fn demo(store: rapport_crm::Store) -> rapport_api::Result<()> {
use std::sync::Arc;
use rapport_api::server::{AppState, ServerConfig, serve};
let state = AppState::new(store, Arc::new(rapport_tools::Registry::new()), None, ServerConfig::default())?;
let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
serve(listener, state, async { let _ = tokio::signal::ctrl_c().await; }).await
# }
```
*/

// Handlers return `Result<_, Problem>`: the problem is the HTTP error body
// (RFC 9457, 192 bytes with its optional fields). clippy's size heuristic is
// about hot paths; an error answer is built once per failed request, next to
// a network round trip, so boxing it would only add noise to every handler.
#![allow(clippy::result_large_err)]

pub mod auth;
#[cfg(feature = "bench")]
pub mod bench;
pub mod chat;
mod error;
pub mod mcp;
pub mod openapi;
pub mod ops;
pub mod problem;
pub mod rest;
pub mod server;
#[cfg(feature = "testing")]
pub mod testing;
#[cfg(feature = "bench")]
pub mod web_bench;

pub use error::{Error, Result};
