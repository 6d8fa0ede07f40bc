/*!
Rapport's servers: thin adapters that put the typed tools of `rapport-tools`
in front of other programs. It owns the protocol edges — how a tool is
described to a client, how a call and its result or structured error travel —
and nothing of the CRM's behaviour, which stays in the tool registry.

Today it holds [`mcp`]: every tool over the Model Context Protocol with the
official Rust SDK (`rmcp`), served on stdio by `rapport mcp`. The handler knows
no transport, so the streamable HTTP endpoint (`/mcp` under API keys) serves the
same [`mcp::McpServer`]. REST with OpenAPI and chat over server-sent events come
with the "API server" issue.
*/

mod error;
pub mod mcp;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::{Error, Result};
