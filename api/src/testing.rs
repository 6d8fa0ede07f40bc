//! Test helpers for MCP clients of [`McpServer`](crate::mcp::McpServer)
//! (feature `testing`), shared by this crate's tests and the binary's stdio
//! test: an in-memory session, a call with JSON arguments, and the checks that
//! a result succeeded or failed with a structured error.

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::{RoleClient, RunningService};
use serde_json::Value;

use crate::mcp::McpServer;

/// An rmcp client session with no handler of its own.
pub type Client = RunningService<RoleClient, ()>;

/// A client session with `server` over an in-memory pipe.
pub async fn in_memory(server: McpServer) -> Client {
    let (client_end, server_end) = tokio::io::duplex(1 << 16);
    tokio::spawn(async move {
        let running = server.serve(server_end).await.expect("server handshake");
        let _ = running.waiting().await;
    });
    ().serve(client_end).await.expect("client handshake")
}

/// `tools/call` with a JSON object as arguments; a protocol error panics.
pub async fn call(client: &Client, name: &str, args: Value) -> CallToolResult {
    let Value::Object(args) = args else {
        panic!("arguments must be an object, not {args}")
    };
    client
        .call_tool(CallToolRequestParams::new(name.to_owned()).with_arguments(args))
        .await
        .unwrap_or_else(|e| panic!("{name}: protocol error {e}"))
}

/// The structured content of a successful call.
pub fn ok(result: CallToolResult) -> Value {
    assert_ne!(result.is_error, Some(true), "{result:?}");
    result.structured_content.expect("structured content")
}

/// The structured `ToolError` of a failed call, after checking that its text
/// content carries the same JSON.
pub fn tool_error(result: CallToolResult) -> Value {
    assert_eq!(result.is_error, Some(true), "expected an error: {result:?}");
    let value = result.structured_content.expect("structured error");
    let text = &result.content[0].as_text().expect("text content").text;
    assert_eq!(
        serde_json::from_str::<Value>(text).expect("JSON text"),
        value
    );
    value
}
