//! Any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, llama.cpp's
//! server, Ollama, `rapport llm serve`) through async-openai.
//!
//! Requests and chunks travel as plain JSON (async-openai's "bring your own
//! types") so that servers which bend the protocol still work: arguments sent
//! as an object instead of a string, tool-call deltas without an index, no
//! `usage`.
//!
//! What can go wrong with an endpoint, and what this backend does about it:
//!
//! - **An error status.** The HTTP layer under async-openai ([`Transport`])
//!   turns it into a [`Refusal`] that keeps the `Retry-After` header
//!   (async-openai's own errors drop it). 429 (unless the quota is used up),
//!   408 and 5xx are retried; a `Retry-After` is waited exactly, other
//!   retries back off exponentially with jitter. All waits of one request
//!   share one budget ([`OpenAiConfig::retry_budget`]): a `Retry-After`
//!   longer than what is left ends the request at once
//!   ([`BackendError::Throttled`]) instead of holding the user for minutes.
//! - **Silence.** No headers, or no bytes of the stream, for
//!   [`OpenAiConfig::read_timeout`] (a hung server, a stalled stream) is a
//!   [`BackendError::Timeout`], retried. SSE comments (keep-alives) count as
//!   bytes: a server busy with a long prompt that says so is not silent.
//! - **A cut stream.** A reply is whole only when the stream says
//!   `data: [DONE]`; a connection that drops or a body that ends before it is
//!   [`BackendError::Cut`], retried — what the cut stream carried is dropped,
//!   so half a tool call never reaches the loop.
//!
//! A failure after text was shown is not retried (the user would see the text
//! twice) but reported. Connection errors are retried too. Async-openai's
//! own retry layer is not used: its `Retry-After` wait has no bound.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Once};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::middleware::HttpRequestFactory;
use futures::{Stream, StreamExt};
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
    /// Longest silence: for the connection, for the answer's headers, and
    /// between any two pieces of the streamed answer. A server that hangs
    /// (for 60 s or for ever) is given up on after this, per attempt.
    pub read_timeout: Duration,
    /// Longest a whole attempt may take, however steadily it streams.
    pub request_timeout: Duration,
    /// Attempts in all for a request that fails in a way worth retrying
    /// (429, 408, 5xx, silence, a cut stream, a failed connection).
    pub max_attempts: u32,
    /// First backoff when the endpoint gives no `Retry-After`; doubled on
    /// each retry, with jitter.
    pub backoff: Duration,
    /// Most time one request spends waiting between its attempts, backoffs
    /// and `Retry-After` together. A `Retry-After` longer than what is left
    /// ends the request at once.
    pub retry_budget: Duration,
    /// Sampling temperature; `None` leaves it to the server (default 0: repeatable).
    pub temperature: Option<f32>,
}

impl OpenAiConfig {
    /// Defaults: no key, 60 s of silence at most, 10 min per attempt, 4
    /// attempts, 30 s of waiting between them in all, temperature 0.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        OpenAiConfig {
            base_url: base_url.into(),
            api_key: None,
            model: model.into(),
            read_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(600),
            max_attempts: 4,
            backoff: Duration::from_millis(500),
            retry_budget: Duration::from_secs(30),
            temperature: Some(0.0),
        }
    }
}

/// Any OpenAI-compatible chat completions endpoint (llama-server, vLLM, hosted
/// APIs), streamed, with retries.
pub struct OpenAiBackend {
    http: reqwest::Client,
    openai: OpenAIConfig,
    config: Arc<OpenAiConfig>,
}

impl OpenAiBackend {
    /// A client for the endpoint; nothing is sent until the first request, so
    /// this fails only if the HTTP client cannot be built.
    pub fn new(config: OpenAiConfig) -> Result<Self, BackendError> {
        install_crypto_provider();
        // Silence after the connection is timed by `Transport` (headers) and
        // `Guarded` (the stream), which know what it means.
        let http = reqwest::Client::builder()
            .connect_timeout(config.read_timeout)
            .timeout(config.request_timeout)
            .build()
            .map_err(|e| BackendError::Connect(format!("building the HTTP client: {e}")))?;
        let mut openai = OpenAIConfig::new().with_api_base(config.base_url.trim_end_matches('/'));
        // async-openai sends no Authorization header for an empty key; local servers need none.
        openai = openai.with_api_key(config.api_key.clone().unwrap_or_default());
        Ok(OpenAiBackend {
            http,
            openai,
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

    /// One attempt: opens the stream and reads it to its `[DONE]`.
    async fn attempt(
        &self,
        body: &Value,
        on_delta: DeltaSink<'_>,
        shown: &mut bool,
    ) -> Result<LlmReply, Failure> {
        // A client per attempt (cheap: clones of handles) so that the
        // transport's verdict on this attempt's stream is this attempt's.
        let verdict = Verdict::default();
        let transport = Transport {
            http: self.http.clone(),
            silence: self.config.read_timeout,
            verdict: verdict.clone(),
        };
        let client =
            Client::build(self.http.clone(), self.openai.clone()).with_http_service(transport);
        let chat = client.chat();
        let opening = chat.create_stream_byot::<&Value, Value>(body);
        let mut stream = match tokio::time::timeout(self.config.read_timeout, opening).await {
            Err(_) => {
                return Err(BackendError::Timeout(format!(
                    "no answer within {}",
                    seconds(self.config.read_timeout)
                ))
                .into());
            }
            Ok(opened) => opened.map_err(|e| verdict.explain(e))?,
        };
        let mut acc = Accumulator::default();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| verdict.explain(e))?;
            if let Some(text) = acc.add(&chunk)? {
                *shown = true;
                on_delta(&text);
            }
        }
        // The stream ends early only with an error from `Guarded`; a verdict
        // without one would still mean the reply is not whole.
        if let Some(e) = verdict.take() {
            return Err(e.into());
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
            let mut retries = Retries::new(&self.config);
            loop {
                let mut shown = false;
                let failure = match self.attempt(&body, on_delta, &mut shown).await {
                    Ok(reply) => return Ok(reply),
                    Err(f) => f,
                };
                if shown {
                    return Err(failure.error);
                }
                let wait = retries.next_wait(failure)?;
                tokio::time::sleep(wait).await;
            }
        })
    }
}

/// One request's retry budget: attempts and waiting time.
struct Retries {
    max_attempts: u32,
    budget: Duration,
    attempt: u32,
    waited: Duration,
    delay: Duration,
}

impl Retries {
    fn new(config: &OpenAiConfig) -> Self {
        Retries {
            max_attempts: config.max_attempts.max(1),
            budget: config.retry_budget,
            attempt: 1,
            waited: Duration::ZERO,
            delay: config.backoff,
        }
    }

    /// How long to wait before the next attempt after `failure`, or the error
    /// to give up with: one that is not worth retrying, the last attempt's,
    /// or a `Retry-After` longer than the budget has left.
    fn next_wait(&mut self, failure: Failure) -> Result<Duration, BackendError> {
        let Failure { error, retry_after } = failure;
        if !retryable(&error) {
            return Err(error);
        }
        if self.attempt >= self.max_attempts {
            warn!(attempts = self.attempt, error = %error, "model request failed; no attempts left");
            return Err(error);
        }
        let wait = match retry_after {
            Some(asked) => asked,
            None => self.delay.mul_f64(1.0 + rand::random_range(0.0..0.25)),
        };
        let left = self.budget.saturating_sub(self.waited);
        if wait > left {
            return Err(match (retry_after, &error) {
                (Some(asked), BackendError::Status { status, .. }) => BackendError::Throttled {
                    status: *status,
                    asked,
                    budget: left,
                },
                _ => error,
            });
        }
        warn!(attempt = self.attempt, error = %error, wait_ms = wait.as_millis() as u64,
            retry_after = retry_after.is_some(), "model request failed; retrying");
        self.attempt += 1;
        self.waited += wait;
        if retry_after.is_none() {
            self.delay *= 2;
        }
        Ok(wait)
    }
}

/// A failed attempt: what went wrong and how long the endpoint asked us to wait.
#[derive(Debug)]
struct Failure {
    error: BackendError,
    retry_after: Option<Duration>,
}

impl From<BackendError> for Failure {
    fn from(error: BackendError) -> Self {
        Failure {
            error,
            retry_after: None,
        }
    }
}

/// Failures another attempt may cure. Not: client errors other than 408 and
/// 429, a used-up quota (a 429 the endpoint marks so, reported as 402 here),
/// a broken protocol, a `Retry-After` beyond the budget.
fn retryable(e: &BackendError) -> bool {
    match e {
        BackendError::Status { status, .. } => {
            *status == 408 || *status == 429 || (500..600).contains(status)
        }
        BackendError::Timeout(_) | BackendError::Connect(_) | BackendError::Cut(_) => true,
        _ => false,
    }
}

/// An error status from the endpoint, with its `Retry-After`. Travels through
/// async-openai as [`OpenAIError::Boxed`].
#[derive(Debug, thiserror::Error)]
#[error("{status}: {message}")]
struct Refusal {
    status: u16,
    message: String,
    retry_after: Option<Duration>,
}

impl Refusal {
    async fn read(response: reqwest::Response) -> Refusal {
        let mut status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let text = response.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let error = &body["error"];
        let quota = [&error["type"], &error["code"]]
            .iter()
            .any(|v| v.as_str() == Some("insufficient_quota"));
        if status == 429 && quota {
            // Waiting does not bring quota back: not a rate limit.
            status = 402;
        }
        let message = match error["message"].as_str().or(error.as_str()) {
            Some(m) => m.to_owned(),
            None if text.trim().is_empty() => "(no message)".to_owned(),
            None => text.trim().chars().take(300).collect(),
        };
        Refusal {
            status,
            message,
            retry_after,
        }
    }
}

/// `Retry-After` as seconds or as an HTTP date.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// What the transport found wrong with an attempt's stream, for the attempt
/// to report instead of async-openai's text-only stream error.
#[derive(Clone, Default)]
struct Verdict(Arc<Mutex<Option<BackendError>>>);

impl Verdict {
    fn set(&self, e: BackendError) {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert(e);
    }

    fn take(&self) -> Option<BackendError> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// The failure an async-openai error stands for: the transport's verdict
    /// when it has one, else the error classified.
    fn explain(&self, e: OpenAIError) -> Failure {
        if let Some(found) = self.take() {
            return found.into();
        }
        classify(e)
    }
}

fn classify(e: OpenAIError) -> Failure {
    let error = match e {
        OpenAIError::Boxed(boxed) => match boxed.downcast::<Refusal>() {
            Ok(r) => {
                return Failure {
                    error: BackendError::Status {
                        status: r.status,
                        message: r.message,
                    },
                    retry_after: r.retry_after,
                };
            }
            Err(other) => BackendError::Protocol(other.to_string()),
        },
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
            None => BackendError::Connect(r.to_string()),
        },
        // `Guarded` sets a verdict for every failure of the body; one
        // without is the SSE framing itself.
        OpenAIError::StreamError(s) => BackendError::Protocol(s.to_string()),
        OpenAIError::JSONDeserialize(err, content) => BackendError::Protocol(format!(
            "a chunk is not JSON ({err}): {}",
            content.chars().take(200).collect::<String>()
        )),
        other => BackendError::Protocol(other.to_string()),
    };
    error.into()
}

/// The HTTP layer under async-openai: sends the request, turns an error
/// status into a [`Refusal`], and hands the stream over [`Guarded`].
#[derive(Clone)]
struct Transport {
    http: reqwest::Client,
    silence: Duration,
    verdict: Verdict,
}

impl tower::Service<HttpRequestFactory> for Transport {
    type Response = reqwest::Response;
    type Error = OpenAIError;
    type Future = BoxFuture<'static, Result<reqwest::Response, OpenAIError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), OpenAIError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, factory: HttpRequestFactory) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let request = factory.build().await?;
            let response = this
                .http
                .execute(request)
                .await
                .map_err(OpenAIError::Reqwest)?;
            if !response.status().is_success() {
                let refusal = Refusal::read(response).await;
                return Err(OpenAIError::Boxed(Box::new(refusal)));
            }
            Ok(guard(response, this.silence, this.verdict))
        })
    }
}

/// The response with its body read through [`Guarded`].
fn guard(response: reqwest::Response, silence: Duration, verdict: Verdict) -> reqwest::Response {
    let mut builder = http::Response::builder()
        .status(response.status())
        .version(response.version());
    if let Some(headers) = builder.headers_mut() {
        headers.extend(response.headers().clone());
    }
    let guarded = Guarded {
        inner: Box::pin(response.bytes_stream()),
        silence,
        timer: None,
        tail: Vec::new(),
        done: false,
        ended: false,
        verdict,
    };
    match builder.body(reqwest::Body::wrap_stream(guarded)) {
        Ok(r) => reqwest::Response::from(r),
        // Status, version and headers came from a valid response.
        Err(_) => unreachable!("rebuilding a valid response"),
    }
}

/// The answer's bytes, watched: silence longer than `silence` and an end
/// before `data: [DONE]` become errors, with the reason in the verdict.
struct Guarded {
    inner: Pin<Box<dyn Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    silence: Duration,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The last bytes seen, for a `[DONE]` split across two reads.
    tail: Vec<u8>,
    done: bool,
    ended: bool,
    verdict: Verdict,
}

impl Guarded {
    fn fail(&mut self, e: BackendError) -> Poll<Option<io::Result<bytes::Bytes>>> {
        let text = e.to_string();
        self.verdict.set(e);
        self.ended = true;
        Poll::Ready(Some(Err(io::Error::other(text))))
    }

    /// Whether these bytes complete a `data: [DONE]` line. Only at a line
    /// start: inside a JSON chunk a newline is escaped, so text the model
    /// wrote cannot end the stream.
    fn watch(&mut self, bytes: &[u8]) {
        if self.done {
            return;
        }
        let mut seen = std::mem::take(&mut self.tail);
        seen.extend_from_slice(bytes);
        let at_start = |m: &[u8]| {
            seen.starts_with(m)
                || seen
                    .windows(m.len() + 1)
                    .any(|w| w[0] == b'\n' && &w[1..] == m)
        };
        self.done = at_start(b"data: [DONE]") || at_start(b"data:[DONE]");
        let keep = seen.len().saturating_sub(16);
        self.tail = seen.split_off(keep);
    }
}

impl Stream for Guarded {
    type Item = io::Result<bytes::Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match self.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(bytes))) => {
                self.timer = None;
                self.watch(&bytes);
                Poll::Ready(Some(Ok(bytes)))
            }
            Poll::Ready(Some(Err(e))) if e.is_timeout() => self.fail(BackendError::Timeout(
                "the answer took longer than a request may".into(),
            )),
            Poll::Ready(Some(Err(e))) => self.fail(BackendError::Cut(format!(
                "the connection broke mid-answer ({})",
                source_chain(&e)
            ))),
            Poll::Ready(None) if self.done => {
                self.ended = true;
                Poll::Ready(None)
            }
            Poll::Ready(None) => self.fail(BackendError::Cut(
                "the answer ended before the end-of-stream marker".into(),
            )),
            Poll::Pending => {
                let silence = self.silence;
                let timer = self
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(silence)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => self.fail(BackendError::Timeout(format!(
                        "the answer stalled: nothing for {}",
                        seconds(silence)
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

/// An error with its causes: reqwest's own text leaves them out.
fn source_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 && s.fract() == 0.0 {
        format!("{s:.0} s")
    } else {
        format!("{s:.1} s")
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
