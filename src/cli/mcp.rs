//! `rapport mcp`: every tool over MCP on stdin/stdout, for MCP clients that
//! start Rapport as a child process. Thin: it opens the store and workspace,
//! fixes the acting user from `--as USER` (default: the workspace admin) and
//! hands over to `rapport-api`. Stdout carries the protocol; logs go to stderr.

use anyhow::Context;
use rapport_api::mcp::McpServer;
use rapport_crm::Source;
use rapport_crm::model::User;
use rapport_tools::{Caller, Registry};

use super::GlobalArgs;

pub async fn run(global: &GlobalArgs) -> anyhow::Result<()> {
    let s = super::db::open(global).await?;
    let actor_id = s.ctx.actor_id.context("no acting user")?;
    let user: User = s.store.get(&s.ctx, actor_id).await?;
    tracing::info!(user = %user.email, role = ?user.role, "serving MCP on stdio");
    let server = McpServer::new(
        Registry::new().with_services(super::chat::services_for(global, &s.store).await),
        s.store.clone(),
        Caller::user(&user, Source::Mcp),
    )?;
    let served = server.serve_stdio().await;
    s.store.close().await;
    Ok(served?)
}
