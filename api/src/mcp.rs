//! Every tool of the registry over the Model Context Protocol.
//!
//! [`McpServer`] is an `rmcp` server handler and knows no transport: `rapport
//! mcp` runs it on stdio ([`McpServer::serve_stdio`]); an HTTP endpoint hands
//! the same handler (one [`McpServer::for_caller`] per authenticated session)
//! to rmcp's streamable HTTP service.
//!
//! What a client sees:
//!
//! - `tools/list`: each tool's name, description, strict input schema, output
//!   schema and annotations ([`annotations`]: read-only for read tools,
//!   destructive for destructive ones, idempotent where repeating a call
//!   changes nothing more).
//! - `tools/call`: [`Registry::call`] as the configured caller — the actor is
//!   the server's, never the client's. A result comes back as structured
//!   content with its JSON as text; a [`ToolError`] (bad arguments, not found,
//!   ambiguous, permission denied, unknown tool, …) comes back as a tool result
//!   with `isError: true` whose structured content is the error's JSON (code,
//!   message, field, hint, candidates, retryable), so the model can act on it.
//!   Protocol errors are left to faults of the protocol itself.

use std::sync::Arc;
use std::time::Instant;

use rapport_crm::Store;
use rapport_tools::{Caller, DynTool, Effect, Registry, ToolError};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, Implementation, JsonObject,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
    ToolAnnotations,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, ServerHandler, ServiceExt};
use serde_json::Value;

use crate::error::{Error, Result};

/// The MCP face of the tool registry for one caller. Cloning is cheap: the
/// registry, the store and the tool descriptions are shared.
#[derive(Clone)]
pub struct McpServer {
    shared: Arc<Shared>,
    caller: Caller,
    /// Over HTTP every request names its own caller (the API key's user, put
    /// into the request by the authentication middleware); `caller` is then
    /// never used, and a request without one is refused.
    per_request: bool,
}

struct Shared {
    registry: Arc<Registry>,
    store: Store,
    /// Described once: listing is the most frequent request of a client.
    tools: Vec<Tool>,
}

impl McpServer {
    /// Serves `registry` on `store`, every call acting as `caller`. Fails if a
    /// tool cannot be described to MCP (a schema that is not an object).
    pub fn new(registry: Registry, store: Store, caller: Caller) -> Result<McpServer> {
        Self::shared(Arc::new(registry), store, caller, false)
    }

    /// For the HTTP endpoint: each call acts as the caller the request
    /// carries in its extensions (see [`http_service`]).
    pub fn for_http(registry: Arc<Registry>, store: Store) -> Result<McpServer> {
        let nobody = Caller {
            workspace_id: 0,
            user_id: 0,
            role: rapport_crm::Role::Viewer,
            source: rapport_crm::Source::Mcp,
            session_id: None,
            agent: None,
        };
        Self::shared(registry, store, nobody, true)
    }

    fn shared(
        registry: Arc<Registry>,
        store: Store,
        caller: Caller,
        per_request: bool,
    ) -> Result<McpServer> {
        let tools = registry.tools().map(describe).collect::<Result<_>>()?;
        Ok(McpServer {
            shared: Arc::new(Shared {
                registry,
                store,
                tools,
            }),
            caller,
            per_request,
        })
    }

    /// The same tools and store acting for another caller (one per
    /// authenticated HTTP session).
    pub fn for_caller(&self, caller: Caller) -> McpServer {
        McpServer {
            shared: Arc::clone(&self.shared),
            caller,
            per_request: false,
        }
    }

    /// Who this server's tool calls act as.
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// The tool descriptions `tools/list` answers with.
    pub fn tools(&self) -> &[Tool] {
        &self.shared.tools
    }

    /// Calls a tool as this server's caller and turns the outcome into an MCP
    /// tool result (see the module doc). Never a protocol error.
    pub async fn call(&self, name: &str, arguments: Option<JsonObject>) -> CallToolResult {
        self.call_as(&self.caller, name, arguments).await
    }

    async fn call_as(
        &self,
        caller: &Caller,
        name: &str,
        arguments: Option<JsonObject>,
    ) -> CallToolResult {
        let started = Instant::now();
        let args = arguments.map_or(Value::Null, Value::Object);
        let outcome = self
            .shared
            .registry
            .call(&self.shared.store, caller, name, args)
            .await;
        let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
        match &outcome {
            Ok(_) => tracing::info!(tool = name, elapsed_ms, "MCP tool call"),
            Err(e) => {
                tracing::info!(tool = name, elapsed_ms, code = %e.code, "MCP tool call failed")
            }
        }
        tool_result(outcome)
    }

    /// Serves one MCP session on this process's stdin and stdout until the
    /// client closes it. Nothing else may write to stdout meanwhile.
    pub async fn serve_stdio(self) -> Result<()> {
        let running = self.serve(rmcp::transport::stdio()).await?;
        let reason = running.waiting().await?;
        tracing::info!(?reason, "MCP session ended");
        Ok(())
    }
}

/// `/mcp`: the same handler over rmcp's streamable HTTP transport, stateless
/// (every POST is answered on its own, JSON when it can be), behind the API's
/// authentication. Shutting the server down cancels it.
pub fn http_service(
    state: &crate::server::AppState,
) -> StreamableHttpService<McpServer, LocalSessionManager> {
    let mut config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(state.config.mcp_allowed_hosts.clone());
    config.legacy_session_mode = false;
    config.json_response = true;
    config.sse_keep_alive = None;
    config.max_request_body_bytes = state.config.body_limit;
    config.cancellation_token = state.mcp_cancel.clone();
    let server = state.mcp.clone();
    StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    )
}

/// A tool as MCP describes it.
pub fn describe(tool: &dyn DynTool) -> Result<Tool> {
    let input = object(tool.name(), "input", tool.input_schema())?;
    let output = object(tool.name(), "output", tool.output_schema())?;
    Ok(Tool::new(tool.name(), tool.description(), input)
        .with_title(title(tool.name()))
        .with_raw_output_schema(Arc::new(output))
        .with_annotations(annotations(tool)))
}

fn object(tool: &str, which: &'static str, schema: Value) -> Result<JsonObject> {
    match schema {
        Value::Object(o) => Ok(o),
        _ => Err(Error::Schema {
            tool: tool.to_owned(),
            which,
        }),
    }
}

/// `create_company` → "Create company".
fn title(name: &str) -> String {
    let words = name.replace('_', " ");
    let mut chars = words.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// The hints a client may show or use to ask for confirmation. Every tool works
/// on this CRM only, so none is open-world.
pub fn annotations(tool: &dyn DynTool) -> ToolAnnotations {
    let base = ToolAnnotations::with_title(title(tool.name())).open_world(false);
    match tool.effect() {
        Effect::Read => base.read_only(true),
        Effect::Write => base
            .read_only(false)
            .destructive(false)
            .idempotent(idempotent(tool.name())),
        Effect::Destructive => base
            .read_only(false)
            .destructive(true)
            .idempotent(idempotent(tool.name())),
    }
}

/// Tools whose repetition with the same arguments changes nothing more: they
/// set a value (update, reschedule, reassign, tag on or off) or remove a record
/// (the second call finds nothing to delete). Anything else — creating,
/// logging, moving, merging — says no, the safe default.
fn idempotent(name: &str) -> bool {
    name.starts_with("update_")
        || name.starts_with("delete_")
        || matches!(
            name,
            "add_tag" | "remove_tag" | "reassign_owner" | "reschedule_task"
        )
}

/// A registry outcome as an MCP tool result: the value as structured content,
/// or the error's JSON with `isError: true`. Both also as JSON text, for
/// clients that read only the content.
pub fn tool_result(outcome: std::result::Result<Value, ToolError>) -> CallToolResult {
    match outcome {
        Ok(value) => CallToolResult::structured(value),
        Err(err) => CallToolResult::structured_error(
            serde_json::to_value(&err).unwrap_or_else(|_| Value::String(err.to_string())),
        ),
    }
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("rapport", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Rapport CRM tools. Find records by loose reference with find_records before \
                 acting on them; pass ids, not names, to the other tools. Dates are ISO-8601. \
                 A failed call returns isError with a code, the field at fault, a hint and, \
                 for an ambiguous reference, the candidates to choose from.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> std::result::Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.shared.tools.clone()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.shared.tools.iter().find(|t| t.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> std::result::Result<CallToolResponse, ErrorData> {
        if !self.per_request {
            return Ok(self.call(&request.name, request.arguments).await.into());
        }
        // The HTTP request's parts, with the caller the API key authenticated.
        let caller = context
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Caller>())
            .cloned();
        Ok(match caller {
            Some(c) => self.call_as(&c, &request.name, request.arguments).await,
            None => tool_result(Err(ToolError::denied(
                "this MCP request carries no authenticated user",
            ))),
        }
        .into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_read_like_words() {
        assert_eq!(title("create_company"), "Create company");
        assert_eq!(title("timeline"), "Timeline");
        assert_eq!(title(""), "");
    }

    #[test]
    fn only_setting_and_removing_tools_are_idempotent() {
        assert!(idempotent("update_deal"));
        assert!(idempotent("delete_contact"));
        assert!(idempotent("add_tag"));
        assert!(!idempotent("create_company"));
        assert!(!idempotent("log_activity"));
        assert!(!idempotent("merge_contacts"));
    }

    #[test]
    fn an_error_outcome_is_a_structured_tool_error() {
        let err = ToolError::invalid("name", "missing field `name`").with_hint("give a name");
        let result = tool_result(Err(err));
        assert_eq!(result.is_error, Some(true));
        let sc = result.structured_content.expect("structured");
        assert_eq!(sc["code"], "invalid_argument");
        assert_eq!(sc["field"], "name");
        assert_eq!(sc["hint"], "give a name");
        let text = result.content[0].as_text().expect("text").text.clone();
        assert_eq!(serde_json::from_str::<Value>(&text).expect("json"), sc);
    }
}
