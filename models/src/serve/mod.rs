/*!
`rapport llm serve`: the local models behind an OpenAI-compatible HTTP API
(axum), so that anything that speaks OpenAI — the project's own agent through
async-openai, or another tool — can use them.

- `POST /v1/chat/completions`: `tools`, `tool_choice` (`auto`, `none`,
  `required`, a named function), `stream: true` as server-sent chunks (tool
  calls as `tool_calls` deltas, then `data: [DONE]`), `stream_options.include_usage`,
  `usage` with cached prompt tokens. Temperature absent or 0 means greedy.
  Non-standard: `"constrained": false` turns schema-constrained tool calls off
  for one request.
- `GET /v1/models`: the chat models and the embedder.
- `POST /v1/embeddings`: the MiniLM sentence embedder.

Errors are OpenAI error objects: 400 for malformed bodies and context
overflow (`code: context_length_exceeded`), 404 for unknown models
(`code: model_not_found`), 503 when the embedder is not loaded, 500 otherwise.
Each model runs one generation at a time; requests wait in its queue. A client
that disconnects cancels its generation at the next token.

```no_run
# async fn run() -> std::io::Result<()> {
use std::sync::Arc;
use rapport_models::llm::{ChatModel, LoadOptions};
use rapport_models::serve::{AppState, serve};
let path = rapport_models::ensure("qwen2.5-coder-0.5b-instruct-q4_k_m").unwrap();
let model = ChatModel::load(&path, LoadOptions::default()).unwrap();
let state = AppState::new(vec![Arc::new(model)], None);
let listener = tokio::net::TcpListener::bind("127.0.0.1:8089").await?;
serve(listener, state).await
# }
```
*/

mod chat;
pub mod error;
pub mod wire;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

pub use error::ApiError;

use crate::Embedder;
use crate::llm::ChatModel;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    models: Vec<Arc<ChatModel>>,
    embedder: Option<Embedder>,
    embedder_name: String,
    constrained: bool,
    created: u64,
}

impl AppState {
    /// Serves these chat models (the first is the default for `model: "default"`)
    /// and, if given, the embedder. Tool calls are constrained by default.
    pub fn new(models: Vec<Arc<ChatModel>>, embedder: Option<Embedder>) -> Self {
        AppState {
            inner: Arc::new(Inner {
                models,
                embedder,
                embedder_name: crate::embed::EMBEDDER_ARTIFACT.to_string(),
                constrained: true,
                created: unix_now(),
            }),
        }
    }

    /// Sets whether tool calls are schema-constrained when a request does not say.
    pub fn with_constrained(self, constrained: bool) -> Self {
        let inner = Inner {
            models: self.inner.models.clone(),
            embedder: self.inner.embedder.clone(),
            embedder_name: self.inner.embedder_name.clone(),
            constrained,
            created: self.inner.created,
        };
        AppState {
            inner: Arc::new(inner),
        }
    }

    /// The chat model called `name` (`"default"` is the first one).
    pub fn model(&self, name: &str) -> Result<Arc<ChatModel>, ApiError> {
        self.inner
            .models
            .iter()
            .find(|m| m.name() == name)
            .or_else(|| {
                (name == "default")
                    .then(|| self.inner.models.first())
                    .flatten()
            })
            .cloned()
            .ok_or_else(|| ApiError::ModelNotFound(name.to_string()))
    }

    /// The chat models served, the default first.
    pub fn models(&self) -> &[Arc<ChatModel>] {
        &self.inner.models
    }
}

/// The router, without a socket (tests call it with `oneshot`).
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/models", get(chat::list_models))
        .route("/v1/embeddings", post(chat::embeddings))
        .fallback(chat::not_found)
        .with_state(state)
}

/// Serves until Ctrl-C.
pub async fn serve(listener: tokio::net::TcpListener, state: AppState) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving the OpenAI-compatible API at http://{addr}/v1");
    }
    axum::serve(listener, app(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}

/// Binds `addr` (e.g. `127.0.0.1:8089`) and serves until Ctrl-C.
pub async fn bind_and_serve(addr: &str, state: AppState) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    serve(listener, state).await
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
