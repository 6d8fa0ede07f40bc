//! The HTTP server: its configuration, shared state, the router with its
//! layers, and serving with graceful shutdown.
//!
//! Layers, outermost first: request id (set, then copied to the response),
//! tracing span carrying the id, metrics, CORS, problem documents for bare
//! error answers, request timeout, body size limit. Authentication and the
//! per-key rate limit wrap every route except the health, metrics and OpenAPI
//! ones.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use rapport_agent::Agent;
use rapport_crm::Store;
use rapport_tools::Registry;
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::auth::RateLimiter;
use crate::chat::SessionLocks;
use crate::error::Result;
use crate::mcp::McpServer;
use crate::ops::Metrics;
use crate::problem::Problem;

/// Header carrying each request's id: the client's if it sent one, else a new
/// one; echoed on the response and logged.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What an operator tunes (`rapport serve` flags).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest request body accepted, in bytes (413 beyond).
    pub body_limit: usize,
    /// Requests per second each API key may make on average…
    pub rate_per_sec: f64,
    /// …and in a burst.
    pub rate_burst: u32,
    /// Longest time to the response head (504 beyond). Streams (chat) are
    /// bounded by the agent's own guards once they started.
    pub timeout: Duration,
    /// Browser origins allowed by CORS; empty: no CORS headers at all.
    pub cors_origins: Vec<String>,
    /// Host names MCP requests may carry (DNS-rebinding protection of rmcp).
    pub mcp_allowed_hosts: Vec<String>,
    /// The web app's settings (sessions, sign-in limits).
    pub web: rapport_web::WebConfig,
    /// How long a chat turn's lease of its session lasts without renewal:
    /// after a server dies mid-turn, the session takes messages again after
    /// this long. Renewed every third of it while the turn runs.
    pub session_lease: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            body_limit: 1 << 20,
            rate_per_sec: 50.0,
            rate_burst: 100,
            timeout: Duration::from_secs(30),
            cors_origins: Vec::new(),
            mcp_allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            web: rapport_web::WebConfig::default(),
            session_lease: Duration::from_secs(30),
        }
    }
}

/// Everything a handler may use. Cheap to clone.
#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

/// The shared state behind [`AppState`].
pub struct Inner {
    /// The CRM store every request reads and writes.
    pub store: Store,
    /// The tools, with their services (search, next-best actions).
    pub registry: Arc<Registry>,
    /// The chat agent; `None` serves everything but the chat endpoints.
    pub agent: Option<Arc<Agent>>,
    /// The MCP endpoint's server; each authenticated session gets a copy acting
    /// as its caller.
    pub mcp: McpServer,
    /// The web app (pages, browser sessions) on the same store and registry.
    pub web: rapport_web::WebState,
    /// The operator's settings.
    pub config: ServerConfig,
    /// Per-key rate limit (its buckets in the database).
    pub limiter: RateLimiter,
    /// What `/metrics` reports.
    pub metrics: Metrics,
    /// One running turn per chat session (its leases in the database).
    pub sessions: SessionLocks,
    /// Set when shutdown begins: `/readyz` turns 503 so balancers drain us.
    pub draining: AtomicBool,
    /// Cancels the MCP endpoint's work at shutdown.
    pub mcp_cancel: tokio_util::sync::CancellationToken,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// The state for a server over `store` and `registry`; fails if a tool's
    /// schema cannot be offered over MCP.
    pub fn new(
        store: Store,
        registry: Arc<Registry>,
        agent: Option<Arc<Agent>>,
        config: ServerConfig,
    ) -> Result<AppState> {
        let mcp = McpServer::for_http(Arc::clone(&registry), store.clone())?;
        let web =
            rapport_web::WebState::new(store.clone(), Arc::clone(&registry), config.web.clone())?;
        let session_lease = config.session_lease;
        Ok(AppState(Arc::new(Inner {
            web,
            limiter: RateLimiter::new(config.rate_per_sec, config.rate_burst),
            store,
            registry,
            agent,
            mcp,
            config,
            metrics: Metrics::default(),
            sessions: SessionLocks::new(session_lease),
            draining: AtomicBool::new(false),
            mcp_cancel: tokio_util::sync::CancellationToken::new(),
        })))
    }

    /// Whether shutdown has begun (readiness then answers 503).
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    fn mcp_cancel(&self) {
        self.mcp_cancel.cancel();
    }
}

/// The whole application as a router (testable without a socket).
pub fn app(state: AppState) -> Router {
    let protected = Router::new()
        .merge(crate::rest::routes())
        .merge(crate::chat::routes())
        .nest_service("/mcp", crate::mcp::http_service(&state))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            crate::auth::authenticate,
        ));
    let open = crate::ops::routes().merge(crate::openapi::routes());
    let x_request_id = REQUEST_ID;
    Router::new()
        .merge(protected)
        .merge(open)
        .merge(rapport_web::router(state.web.clone()))
        .fallback(|| async { Problem::not_found("no such endpoint: see /api/openapi.json") })
        .layer(DefaultBodyLimit::max(state.config.body_limit))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            state.config.body_limit,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), time_limit))
        .layer(middleware::map_response(crate::problem::problemize))
        .layer(cors(&state.config))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::ops::track,
        ))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request| {
                let id = req
                    .headers()
                    .get(REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("http", method = %req.method(), path = %req.uri().path(), request_id = %id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(x_request_id.clone()))
        .layer(SetRequestIdLayer::new(x_request_id, MakeRequestUuid))
        .with_state(state)
}

/// 504 as a problem document when the response head takes too long.
async fn time_limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(state.config.timeout, next.run(req)).await {
        Ok(res) => res,
        Err(_) => {
            let mut p = Problem::new(
                axum::http::StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                format!(
                    "the request took longer than {} s and was abandoned",
                    state.config.timeout.as_secs_f64()
                ),
            );
            p.retryable = true;
            p.into_response()
        }
    }
}

fn cors(config: &ServerConfig) -> CorsLayer {
    if config.cors_origins.is_empty() {
        return CorsLayer::new();
    }
    let any = config.cors_origins.iter().any(|o| o == "*");
    let origins = if any {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            config
                .cors_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok()),
        )
    };
    CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, REQUEST_ID])
        .expose_headers([REQUEST_ID, header::RETRY_AFTER])
        .max_age(Duration::from_secs(600))
}

/// Serves `state` on `listener` until `shutdown` resolves, then stops
/// accepting, lets in-flight requests finish and returns.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "API server listening");
    let draining = state.clone();
    let router = app(state);
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        draining.draining.store(true, Ordering::Relaxed);
        draining.mcp_cancel();
        tracing::info!("shutting down: finishing in-flight requests");
    })
    .await?;
    Ok(())
}
