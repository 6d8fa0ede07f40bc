//! Any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, llama.cpp's
//! server, Ollama, `rapport llm serve`) through async-openai.
//!
//! Requests and chunks travel as plain JSON (async-openai's "bring your own
//! types") so that servers which bend the protocol still work: arguments sent
//! as an object instead of a string, tool-call deltas without an index, no
//! `usage`. Retries: async-openai's own retry layer retries 429, 5xx and
//! connection errors (3 retries, exponential backoff from 100 ms, honouring
//! `Retry-After`); this backend adds retries of timeouts, which that layer
//! does not cover. A stream that breaks after text was shown is not retried
//! (the user would see the text twice) but reported.

use std::sync::{Arc, Once};
use std::time::Duration;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use futures::StreamExt;
use rapport_models::llm::{ChatMessage, Role, ToolChoice};
use rapport_tools::BoxFuture;
use serde_json::{Map, Value, json};
use tracing::{debug, warn};

use super::{
    BackendError, DeltaSink, LlmBackend, LlmReply, LlmRequest, RawCall, TokenUsage, parse_arguments,
};

/// Where and how to reach the endpoint.
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// e.g. `http://127.0.0.1:8080/v1`.
    pub base_url: String,
    /// Bearer token, if the endpoint wants one.
    pub api_key: Option<String>,
    /// Model name sent with each request and recorded with each call.
    pub model: String,
    /// Longest wait for the connection and for each piece of the answer.
    pub read_timeout: Duration,
    /// Longest a whole request may take.
    pub request_timeout: Duration,
    /// Attempts in all for a request that times out (429, 5xx and connection
    /// errors are retried by async-openai's retry layer).
    pub max_attempts: u32,
    /// First backoff; doubled on each retry, with jitter.
    pub backoff: Duration,
    /// Sampling temperature; `None` leaves it to the server (default 0: repeatable).
    pub temperature: Option<f32>,
}

impl OpenAiConfig {
    /// Defaults: no key, 60 s read timeout, 10 min per request, 4 attempts, temperature 0.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        OpenAiConfig {
            base_url: base_url.into(),
            api_key: None,
            model: model.into(),
            read_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(600),
            max_attempts: 4,
            backoff: Duration::from_millis(500),
            temperature: Some(0.0),
        }
    }
}

/// Any OpenAI-compatible chat completions endpoint (llama-server, vLLM, hosted
/// APIs), streamed, with retries.
pub struct OpenAiBackend {
    client: Client<OpenAIConfig>,
    config: Arc<OpenAiConfig>,
}

impl OpenAiBackend {
    /// A client for the endpoint; nothing is sent until the first request, so
    /// this fails only if the HTTP client cannot be built.
    pub fn new(config: OpenAiConfig) -> Result<Self, BackendError> {
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(config.read_timeout)
            .read_timeout(config.read_timeout)
            .timeout(config.request_timeout)
            .build()
            .map_err(|e| BackendError::Connect(format!("building the HTTP client: {e}")))?;
        let mut oc = OpenAIConfig::new().with_api_base(config.base_url.trim_end_matches('/'));
        // async-openai sends no Authorization header for an empty key; local servers need none.
        oc = oc.with_api_key(config.api_key.clone().unwrap_or_default());
        let client = Client::with_config(oc).with_http_client(http);
        Ok(OpenAiBackend {
            client,
            config: Arc::new(config),
        })
    }

    fn body(&self, request: &LlmRequest) -> Value {
        let mut body = json!({
            "model": self.config.model,
            "messages": request.messages.iter().map(wire_message).collect::<Vec<_>>(),
            "stream": true,
            "stream_options": {"include_usage": true},
        });
        if let Some(t) = self.config.temperature {
            body["temperature"] = json!(t);
        }
        if let Some(n) = request.max_tokens {
            body["max_tokens"] = json!(n);
        }
        if !request.tools.is_empty() && request.tool_choice != ToolChoice::None {
            body["tools"] = Value::Array(
                request
                    .tools
                    .iter()
                    .filter(|t| !request.withheld.contains(&t.name))
                    .map(|t| t.to_openai())
                    .collect(),
            );
            body["tool_choice"] = match &request.tool_choice {
                ToolChoice::Auto => json!("auto"),
                ToolChoice::None => json!("none"),
                ToolChoice::Required => json!("required"),
                ToolChoice::Function(name) => {
                    json!({"type": "function", "function": {"name": name}})
                }
            };
        }
        body
    }

    /// One attempt: opens the stream and reads it to the end.
    async fn attempt(
        &self,
        body: &Value,
        on_delta: DeltaSink<'_>,
        shown: &mut bool,
    ) -> Result<LlmReply, BackendError> {
        let mut stream = self
            .client
            .chat()
            .create_stream_byot::<&Value, Value>(body)
            .await
            .map_err(classify)?;
        let mut acc = Accumulator::default();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(classify)?;
            if let Some(text) = acc.add(&chunk)? {
                *shown = true;
                on_delta(&text);
            }
        }
        Ok(acc.finish())
    }
}

impl LlmBackend for OpenAiBackend {
    fn model(&self) -> String {
        self.config.model.clone()
    }

    fn complete<'a>(
        &'a self,
        request: &'a LlmRequest,
        on_delta: DeltaSink<'a>,
    ) -> BoxFuture<'a, Result<LlmReply, BackendError>> {
        Box::pin(async move {
            let body = self.body(request);
            let mut delay = self.config.backoff;
            let mut attempt = 1;
            loop {
                let mut shown = false;
                match self.attempt(&body, on_delta, &mut shown).await {
                    Ok(reply) => return Ok(reply),
                    Err(e) if retryable(&e) && !shown && attempt < self.config.max_attempts => {
                        let jitter = rand::random_range(0.0..0.25);
                        let wait = delay.mul_f64(1.0 + jitter);
                        warn!(attempt, error = %e, wait_ms = wait.as_millis() as u64, "model request failed; retrying");
                        tokio::time::sleep(wait).await;
                        delay *= 2;
                        attempt += 1;
                    }
                    Err(e) => return Err(e),
                }
            }
        })
    }
}

/// Only timeouts: statuses and connection errors were retried below us.
fn retryable(e: &BackendError) -> bool {
    matches!(e, BackendError::Timeout(_))
}

fn classify(e: OpenAIError) -> BackendError {
    match e {
        OpenAIError::ApiError(api) => BackendError::Status {
            status: api.status_code.as_u16(),
            message: api.api_error.message.clone(),
        },
        OpenAIError::Reqwest(r) if r.is_timeout() => BackendError::Timeout(r.to_string()),
        OpenAIError::Reqwest(r) if r.is_connect() => BackendError::Connect(r.to_string()),
        OpenAIError::Reqwest(r) => match r.status() {
            Some(s) => BackendError::Status {
                status: s.as_u16(),
                message: r.to_string(),
            },
            None if r.is_body() || r.is_decode() => BackendError::Timeout(r.to_string()),
            None => BackendError::Connect(r.to_string()),
        },
        OpenAIError::StreamError(s) => {
            let text = s.to_string();
            // A read timeout surfaces as a stream error from the SSE reader.
            if text.contains("timed out") || text.contains("operation timed out") {
                BackendError::Timeout(text)
            } else {
                BackendError::Protocol(text)
            }
        }
        OpenAIError::JSONDeserialize(err, content) => BackendError::Protocol(format!(
            "a chunk is not JSON ({err}): {}",
            content.chars().take(200).collect::<String>()
        )),
        other => BackendError::Protocol(other.to_string()),
    }
}

/// A message in the wire format.
fn wire_message(m: &ChatMessage) -> Value {
    let mut v = Map::new();
    v.insert("role".into(), json!(m.role.as_str()));
    match m.role {
        Role::Assistant if !m.tool_calls.is_empty() => {
            v.insert(
                "content".into(),
                if m.content.is_empty() {
                    Value::Null
                } else {
                    json!(m.content)
                },
            );
            let calls: Vec<Value> = m
                .tool_calls
                .iter()
                .map(|c| {
                    json!({
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments.to_string()},
                    })
                })
                .collect();
            v.insert("tool_calls".into(), Value::Array(calls));
        }
        Role::Tool => {
            v.insert("content".into(), json!(m.content));
            v.insert(
                "tool_call_id".into(),
                json!(m.tool_call_id.clone().unwrap_or_default()),
            );
        }
        _ => {
            v.insert("content".into(), json!(m.content));
        }
    }
    Value::Object(v)
}

/// Builds the reply from streamed chunks.
#[derive(Default)]
struct Accumulator {
    content: String,
    /// Calls by index: id, name, and the arguments as text or as an object.
    calls: Vec<(String, String, ArgParts)>,
    usage: Option<TokenUsage>,
}

enum ArgParts {
    Text(String),
    Object(Value),
}

impl Default for ArgParts {
    fn default() -> Self {
        ArgParts::Text(String::new())
    }
}

impl Accumulator {
    /// Folds one chunk in; returns newly generated text, if any.
    fn add(&mut self, chunk: &Value) -> Result<Option<String>, BackendError> {
        if let Some(err) = chunk.get("error") {
            return Err(BackendError::Protocol(format!(
                "the stream carried an error: {err}"
            )));
        }
        if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
            let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
            self.usage = Some(TokenUsage {
                prompt_tokens: n("prompt_tokens"),
                completion_tokens: n("completion_tokens"),
                cached_tokens: u
                    .pointer("/prompt_tokens_details/cached_tokens")
                    .and_then(Value::as_u64)
                    .unwrap_or(0),
            });
        }
        let Some(delta) = chunk
            .pointer("/choices/0/delta")
            .or_else(|| chunk.pointer("/choices/0/message"))
        else {
            return Ok(None);
        };
        if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
            for c in calls {
                self.add_call(c);
            }
        }
        match delta.get("content").and_then(Value::as_str) {
            Some(t) if !t.is_empty() => {
                self.content.push_str(t);
                Ok(Some(t.to_owned()))
            }
            _ => Ok(None),
        }
    }

    fn add_call(&mut self, c: &Value) {
        let index = self.slot_of(c);
        while self.calls.len() <= index {
            self.calls.push(Default::default());
        }
        let slot = &mut self.calls[index];
        if let Some(id) = c.get("id").and_then(Value::as_str) {
            slot.0 = id.to_owned();
        }
        if let Some(name) = c.pointer("/function/name").and_then(Value::as_str) {
            slot.1.push_str(name);
        }
        match c.pointer("/function/arguments") {
            Some(Value::String(s)) => match &mut slot.2 {
                ArgParts::Text(t) => t.push_str(s),
                ArgParts::Object(_) => debug!("ignoring text arguments after an object"),
            },
            Some(obj @ Value::Object(_)) => slot.2 = ArgParts::Object(obj.clone()),
            _ => {}
        }
    }

    /// Which call a delta continues. Servers that omit `index` start a new
    /// call with a new `id` and continue the last one without.
    fn slot_of(&self, c: &Value) -> usize {
        if let Some(i) = c.get("index").and_then(Value::as_u64) {
            return i as usize;
        }
        match c.get("id").and_then(Value::as_str) {
            Some(id) => self
                .calls
                .iter()
                .position(|(known, _, _)| known == id)
                .unwrap_or(self.calls.len()),
            None => self.calls.len().saturating_sub(1),
        }
    }

    fn finish(self) -> LlmReply {
        let tool_calls = self
            .calls
            .into_iter()
            .enumerate()
            .filter(|(_, (_, name, _))| !name.is_empty())
            .map(|(i, (id, name, args))| RawCall {
                id: if id.is_empty() {
                    format!("call_{i}")
                } else {
                    id
                },
                name,
                arguments: match args {
                    ArgParts::Text(t) => parse_arguments(&Value::String(t)),
                    ArgParts::Object(o) => o,
                },
            })
            .collect();
        LlmReply {
            content: self.content,
            tool_calls,
            usage: self.usage,
        }
    }
}

/// reqwest's rustls needs a process-wide crypto provider; ring builds quickly
/// and needs no system libraries.
fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_fold_into_calls_whatever_shape_the_server_uses() {
        let mut acc = Accumulator::default();
        let chunks = [
            json!({"choices": [{"delta": {"content": "Hi"}}]}),
            json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "a", "function": {"name": "get_deal", "arguments": "{\"id\""}}]}}]}),
            json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": ": 3}"}}]}}]}),
            // No index, arguments as an object.
            json!({"choices": [{"delta": {"tool_calls": [{"id": "b", "function": {"name": "x", "arguments": {"k": 1}}}]}}]}),
        ];
        for c in &chunks {
            acc.add(c).unwrap();
        }
        let reply = acc.finish();
        assert_eq!(reply.content, "Hi");
        assert_eq!(reply.usage, None);
        assert_eq!(reply.tool_calls.len(), 2);
        assert_eq!(reply.tool_calls[0].name, "get_deal");
        assert_eq!(reply.tool_calls[0].arguments, json!({"id": 3}));
        assert_eq!(reply.tool_calls[1].id, "b");
        assert_eq!(reply.tool_calls[1].arguments, json!({"k": 1}));
    }
}
