//! `rapport serve`: the API server (REST, chat over SSE, MCP over HTTP) on
//! one address, until Ctrl-C or SIGTERM; in-flight requests finish first.
//! Thin: it opens the store, builds the agent from the same options as
//! `rapport chat`, and hands over to `rapport-api`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use rapport_api::server::{AppState, ServerConfig, serve};
use rapport_crm::Store;
use rapport_tools::{Registry, Services};

use super::GlobalArgs;
use super::chat::{AgentArgs, build_agent};
use super::db;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "RAPPORT_ADDR", default_value = "127.0.0.1:8787")]
    pub addr: String,
    /// Largest request body, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub body_limit: usize,
    /// Requests per second per API key on average.
    #[arg(long, default_value_t = 50.0)]
    pub rate: f64,
    /// Requests per API key in a burst.
    #[arg(long, default_value_t = 100)]
    pub burst: u32,
    /// Seconds to the response head before a 504.
    #[arg(long, default_value_t = 30)]
    pub timeout_secs: u64,
    /// A browser origin allowed by CORS (repeat; `*` for any). Default: none.
    #[arg(
        long = "cors-origin",
        env = "RAPPORT_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,
    /// A host name MCP requests may carry besides localhost (repeat).
    #[arg(long = "allowed-host", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,
    /// Serve without the chat endpoints (no language model is loaded).
    #[arg(long)]
    pub no_chat: bool,
    /// Load the sentence embedder and the vector index (`rapport ingest`) so
    /// `/api/v1/search` and the search tool answer.
    #[arg(long)]
    pub search: bool,
    #[command(flatten)]
    pub agent: AgentArgs,
}

pub async fn run(g: &GlobalArgs, args: ServeArgs) -> anyhow::Result<()> {
    let s = db::open(g).await?;
    // The REST tools and the chat agent share one semantic memory.
    let services = if args.search {
        super::chat::memory_services(g, &s.store).await?
    } else {
        rapport_pipelines::tool_services(None)
    };
    let agent = if args.no_chat {
        None
    } else {
        Some(Arc::new(
            build_agent(s.store.clone(), services.clone(), &args.agent, false).await?,
        ))
    };
    let mut config = ServerConfig {
        body_limit: args.body_limit,
        rate_per_sec: args.rate,
        rate_burst: args.burst,
        timeout: Duration::from_secs(args.timeout_secs.max(1)),
        cors_origins: args.cors_origins,
        ..ServerConfig::default()
    };
    config.mcp_allowed_hosts.extend(args.allowed_hosts);
    let registry = Registry::new().with_services(services);
    let state = AppState::new(s.store.clone(), Arc::new(registry), agent, config)?;
    serve_until_stopped(&args.addr, state, |addr| {
        eprintln!("Rapport API on http://{addr} (OpenAPI: /api/openapi.json); Ctrl-C stops it");
    })
    .await?;
    s.store.close().await;
    Ok(())
}

/// What `rapport demo` serves: the API and the web app over the demo's
/// store, with semantic search, without a chat model (the terminal chat is
/// `rapport chat`).
pub fn demo_state(store: &Store, services: Services) -> anyhow::Result<AppState> {
    let registry = Registry::new().with_services(services);
    Ok(AppState::new(
        store.clone(),
        Arc::new(registry),
        None,
        ServerConfig::default(),
    )?)
}

/// Serves `state` on `addr` until Ctrl-C or SIGTERM (in-flight requests
/// finish first); `ready` gets the bound address once it accepts.
pub async fn serve_until_stopped(
    addr: &str,
    state: AppState,
    ready: impl FnOnce(SocketAddr),
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    ready(listener.local_addr()?);
    serve(listener, state, shutdown_signal()).await?;
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
