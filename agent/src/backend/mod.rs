//! Language-model backends behind one trait: an OpenAI-compatible HTTP
//! endpoint ([`openai`]), the local GGUF model in process ([`local`]), and a
//! scripted model for tests of the loop's control flow ([`scripted`]).
//!
//! A backend takes the conversation and the offered tools and returns the
//! model's reply: text and/or tool calls, with token counts. Text is streamed
//! through a callback as it is generated.

#[cfg(feature = "local")]
pub mod local;
pub mod openai;
pub mod scripted;

use rapport_models::llm::{ChatMessage, ToolChoice, ToolSpec};
use rapport_tools::BoxFuture;
use serde::Serialize;
use serde_json::Value;

/// What went wrong talking to a model. Errors worth retrying were retried
/// already by the backends that retry; the loop reports them to the user.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The endpoint answered with an error status (after retries for 429 and 5xx).
    #[error("the model endpoint answered {status}: {message}")]
    Status {
        /// The HTTP status code.
        status: u16,
        /// The error message the endpoint sent, or the HTTP client's description.
        message: String,
    },
    /// No answer in time (after retries).
    #[error("the model endpoint did not answer in time: {0}")]
    Timeout(String),
    /// The connection failed (after retries).
    #[error("could not reach the model endpoint: {0}")]
    Connect(String),
    /// The answer broke off before its end (the connection dropped, or the
    /// stream ended without its end marker); nothing of it was used.
    #[error("the model endpoint's answer broke off: {0}")]
    Cut(String),
    /// The endpoint is rate-limited and asked for a longer wait than a
    /// request may spend waiting.
    #[error(
        "the model endpoint is busy ({status}) and asks to wait {} s, more than the {} s this request may still wait",
        .asked.as_secs_f64().ceil(),
        .budget.as_secs_f64().ceil()
    )]
    Throttled {
        /// The HTTP status (429, or 503 with `Retry-After`).
        status: u16,
        /// The `Retry-After` the endpoint sent.
        asked: std::time::Duration,
        /// What the request had left of its waiting budget.
        budget: std::time::Duration,
    },
    /// The endpoint sent something that is not the protocol (e.g. a chunk that is not JSON).
    #[error("the model endpoint broke the protocol: {0}")]
    Protocol(String),
    /// The local model failed (context overflow, decode error, …).
    #[error("local model: {0}")]
    Local(String),
    /// A scripted test model ran out of replies.
    #[error("scripted model: {0}")]
    Script(String),
}

/// One request to a model.
#[derive(Debug, Clone, Default)]
pub struct LlmRequest {
    /// The conversation so far, system prompt first.
    pub messages: Vec<ChatMessage>,
    /// The tools the model may call.
    pub tools: Vec<ToolSpec>,
    /// Whether the model must, may or may not call a tool.
    pub tool_choice: ToolChoice,
    /// Most tokens in the reply; `None` leaves it to the backend.
    pub max_tokens: Option<u32>,
    /// Tools listed in the prompt that this reply may not call (a read the
    /// model just repeated). Listed still, so a local model's cached prompt
    /// prefix holds; a backend that cannot withhold drops them from `tools`.
    pub withheld: Vec<String>,
}

/// A tool call as the model wrote it. `arguments` is the parsed object, or
/// the raw text as a JSON string when it did not parse (the loop answers the
/// model with an error it can correct from).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RawCall {
    /// The call's id, echoed in its result message.
    pub id: String,
    /// The tool's name as written (it may not exist).
    pub name: String,
    /// The arguments object, or the raw text as a string if it did not parse.
    pub arguments: Value,
}

/// Token counts of one model call; `None` fields when the endpoint did not say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TokenUsage {
    /// Prompt tokens, cached ones included.
    pub prompt_tokens: u64,
    /// Tokens the model generated.
    pub completion_tokens: u64,
    /// Prompt tokens served from a cache (KV-cache prefix reuse, or the endpoint's prompt cache).
    pub cached_tokens: u64,
}

/// The model's reply to one request.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LlmReply {
    /// The reply's text (empty when it only calls tools).
    pub content: String,
    /// The calls it asks for, in order.
    pub tool_calls: Vec<RawCall>,
    /// Token counts, when the backend reports them.
    pub usage: Option<TokenUsage>,
}

/// Receives text as the model generates it.
pub type DeltaSink<'a> = &'a (dyn Fn(&str) + Send + Sync);

/// A chat model the agent can talk to.
pub trait LlmBackend: Send + Sync {
    /// The model's name, recorded with every tool call it makes.
    fn model(&self) -> String;
    /// Whether the backend benefits from a short prompt with few tools (a
    /// small local model pays for every prompt token).
    fn prefers_small_prompts(&self) -> bool {
        false
    }
    /// Sends one request and returns the whole reply, streaming its text to
    /// `on_delta` as it comes.
    fn complete<'a>(
        &'a self,
        request: &'a LlmRequest,
        on_delta: DeltaSink<'a>,
    ) -> BoxFuture<'a, Result<LlmReply, BackendError>>;
    /// Starts evaluating `request`'s prompt in the background, so that a
    /// later request sharing its prefix finds it cached. Returns at once;
    /// backends without a prompt cache of their own do nothing.
    fn warm(&self, request: &LlmRequest) {
        let _ = request;
    }
}

/// Parses a call's arguments, tolerating what servers send: a JSON string
/// holding the object (the protocol), the object itself, or an empty string
/// for a call without arguments. Anything else comes back as a JSON string
/// with the raw text.
pub fn parse_arguments(raw: &Value) -> Value {
    match raw {
        Value::Object(_) => raw.clone(),
        Value::Null => Value::Object(Default::default()),
        Value::String(s) if s.trim().is_empty() => Value::Object(Default::default()),
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => v,
            _ => Value::String(s.clone()),
        },
        other => Value::String(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arguments_in_every_shape_servers_send() {
        assert_eq!(parse_arguments(&json!("{\"a\": 1}")), json!({"a": 1}));
        assert_eq!(parse_arguments(&json!({"a": 1})), json!({"a": 1}));
        assert_eq!(parse_arguments(&json!("")), json!({}));
        assert_eq!(parse_arguments(&Value::Null), json!({}));
        assert_eq!(parse_arguments(&json!("{\"a\": ")), json!("{\"a\": "));
        assert_eq!(parse_arguments(&json!("[1]")), json!("[1]"));
    }
}
