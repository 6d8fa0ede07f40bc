/*!
The axum server behind `rapport serve`: REST with OpenAPI, chat over server-sent
events, MCP over streamable HTTP, API keys and roles. Thin handlers over the tool
registry and the agent.

Filled by the "API server" issue; for now this crate holds only this doc.
*/
