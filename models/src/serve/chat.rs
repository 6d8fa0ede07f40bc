//! The handlers: chat completions (whole or streamed), models, embeddings.

use std::convert::Infallible;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tracing::{debug, warn};

use super::error::ApiError;
use super::wire::{ChatCompletionRequest, EmbeddingInput, EmbeddingRequest};
use super::{AppState, unix_now};
use crate::llm::{Completion, Event, FinishReason, ToolCall};

/// Parses a JSON body ourselves so that a malformed one gets an OpenAI error object.
fn parse_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))
}

pub(super) async fn not_found() -> ApiError {
    ApiError::BadRequest {
        message:
            "unknown endpoint: this server has /v1/chat/completions, /v1/models and /v1/embeddings"
                .into(),
        param: None,
    }
}

pub(super) async fn list_models(State(state): State<AppState>) -> Json<Value> {
    let created = state.inner.created;
    let mut data: Vec<Value> = state
        .models()
        .iter()
        .map(|m| json!({"id": m.name(), "object": "model", "created": created, "owned_by": "rapport"}))
        .collect();
    if state.inner.embedder.is_some() {
        data.push(json!({"id": state.inner.embedder_name, "object": "model", "created": created, "owned_by": "rapport"}));
    }
    Json(json!({"object": "list", "data": data}))
}

pub(super) async fn embeddings(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req: EmbeddingRequest = parse_body(&body)?;
    if req.model != state.inner.embedder_name {
        return Err(ApiError::ModelNotFound(req.model));
    }
    let embedder =
        state.inner.embedder.clone().ok_or_else(|| {
            ApiError::Unavailable("the embedder is not loaded on this server".into())
        })?;
    let texts = match req.input {
        EmbeddingInput::One(s) => vec![s],
        EmbeddingInput::Many(v) => v,
    };
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::BadRequest {
                message: format!("encoding_format `{other}` is not one of float, base64"),
                param: Some("encoding_format".into()),
            });
        }
    };
    let (vectors, tokens) = tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let tokens: usize = texts
            .iter()
            .map(|t| embedder.count_tokens(t).unwrap_or(0))
            .sum();
        embedder.embed(&refs).map(|v| (v, tokens))
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let embedding = if base64 {
                json!(base64_f32(v))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    Ok(Json(json!({
        "object": "list",
        "data": data,
        "model": state.inner.embedder_name,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    })))
}

pub(super) async fn chat_completions(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: ChatCompletionRequest = parse_body(&body)?;
    let model = state.model(&req.model)?;
    let engine_req = req.to_engine(state.inner.constrained)?;
    let tools_offered = !engine_req.offered_tools().is_empty();
    let id = format!(
        "chatcmpl-{}",
        crate::llm::toolcall::new_call_id().trim_start_matches("call_")
    );
    let created = unix_now();
    let model_name = model.name().to_string();
    debug!(model = %model_name, queue = model.queue_len(), stream = req.stream, "chat completion");
    let mut events = model.submit(engine_req);

    if !req.stream {
        // Dropping `events` (client gone, future dropped) cancels the generation.
        while let Some(event) = events.recv().await {
            match event {
                Event::Delta(_) => {}
                Event::Done(c) => {
                    return Ok(Json(completion_body(&id, created, &model_name, &c)).into_response());
                }
                Event::Error(e) => return Err(e.into()),
            }
        }
        return Err(ApiError::Internal(
            "the generation ended without a result".into(),
        ));
    }

    // Wait for the first event so that errors found before any output (context
    // overflow, bad tool choice) still get their status code.
    let first = match events.recv().await {
        Some(Event::Error(e)) => return Err(e.into()),
        Some(ev) => ev,
        None => {
            return Err(ApiError::Internal(
                "the generation ended without a result".into(),
            ));
        }
    };
    let include_usage = req.stream_options.as_ref().is_some_and(|o| o.include_usage);
    let (tx, rx) = mpsc::channel::<Result<SseEvent, Infallible>>(64);
    let mut writer = ChunkWriter {
        id,
        created,
        model: model_name,
        tx,
        tools_offered,
        mode: Mode::Undecided,
        buffer: String::new(),
    };
    tokio::spawn(async move {
        let mut next = Some(first);
        if writer
            .send(json!({"role": "assistant", "content": ""}), None)
            .await
            .is_err()
        {
            return;
        }
        while let Some(event) = next.take() {
            let ok = match event {
                Event::Delta(d) => writer.delta(d).await,
                Event::Done(c) => {
                    let _ = writer.finish(&c, include_usage).await;
                    return;
                }
                Event::Error(e) => {
                    warn!(error = %e, "generation failed mid-stream");
                    let body = ApiError::from(e).body();
                    let _ = writer
                        .tx
                        .send(Ok(SseEvent::default().data(body.to_string())))
                        .await;
                    let _ = writer.tx.send(Ok(SseEvent::default().data("[DONE]"))).await;
                    return;
                }
            };
            if ok.is_err() {
                debug!("client disconnected; cancelling the generation");
                return; // dropping `events` cancels the generation
            }
            next = events.recv().await;
        }
    });
    Ok(Sse::new(ReceiverStream::new(rx))
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// The body of a non-streamed completion.
fn completion_body(id: &str, created: u64, model: &str, c: &Completion) -> Value {
    let mut message = json!({"role": "assistant", "content": c.content});
    if !c.tool_calls.is_empty() {
        message["tool_calls"] = c.tool_calls.iter().map(wire_call).collect();
    }
    json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish_str(c.finish_reason)}],
        "usage": usage_body(c),
    })
}

fn wire_call(c: &ToolCall) -> Value {
    json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments.to_string()}})
}

fn usage_body(c: &Completion) -> Value {
    json!({
        "prompt_tokens": c.usage.prompt_tokens,
        "completion_tokens": c.usage.completion_tokens,
        "total_tokens": c.usage.prompt_tokens + c.usage.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": c.usage.cached_prompt_tokens},
    })
}

fn finish_str(f: FinishReason) -> &'static str {
    match f {
        FinishReason::Stop | FinishReason::Cancelled => "stop",
        FinishReason::Length => "length",
        FinishReason::ToolCalls => "tool_calls",
    }
}

/// Whether streamed text is still undecided (it may be the start of a tool call), plain text, or a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Undecided,
    Text,
    Call,
}

struct ChunkWriter {
    id: String,
    created: u64,
    model: String,
    tx: mpsc::Sender<Result<SseEvent, Infallible>>,
    tools_offered: bool,
    mode: Mode,
    buffer: String,
}

struct Disconnected;

impl ChunkWriter {
    async fn send_raw(&self, body: Value) -> Result<(), Disconnected> {
        self.tx
            .send(Ok(SseEvent::default().data(body.to_string())))
            .await
            .map_err(|_| Disconnected)
    }

    async fn send(&self, delta: Value, finish: Option<&str>) -> Result<(), Disconnected> {
        self.send_raw(json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        }))
        .await
    }

    /// Text streams at once unless tools are offered and it may be the start of a call.
    async fn delta(&mut self, d: String) -> Result<(), Disconnected> {
        if !self.tools_offered || self.mode == Mode::Text {
            return self.send(json!({"content": d}), None).await;
        }
        self.buffer.push_str(&d);
        if self.mode == Mode::Undecided {
            let t = self.buffer.trim_start();
            if t.is_empty() {
                return Ok(());
            }
            let may_be_call = ["<tool_call>", "```"]
                .iter()
                .any(|m| m.starts_with(t) || t.starts_with(m))
                || t.starts_with('{')
                || t.starts_with('[');
            if may_be_call {
                self.mode = Mode::Call;
            } else {
                self.mode = Mode::Text;
                let text = std::mem::take(&mut self.buffer);
                return self.send(json!({"content": text}), None).await;
            }
        }
        Ok(())
    }

    async fn finish(&mut self, c: &Completion, include_usage: bool) -> Result<(), Disconnected> {
        if self.mode == Mode::Call {
            if c.tool_calls.is_empty() {
                let text = std::mem::take(&mut self.buffer);
                if !text.is_empty() {
                    self.send(json!({"content": text}), None).await?;
                }
            } else if let Some(content) = &c.content {
                self.send(json!({"content": content}), None).await?;
            }
        }
        for (i, call) in c.tool_calls.iter().enumerate() {
            self.send(
                json!({"tool_calls": [{"index": i, "id": call.id, "type": "function",
                                       "function": {"name": call.name, "arguments": ""}}]}),
                None,
            )
            .await?;
            self.send(
                json!({"tool_calls": [{"index": i, "function": {"arguments": call.arguments.to_string()}}]}),
                None,
            )
            .await?;
        }
        self.send(json!({}), Some(finish_str(c.finish_reason)))
            .await?;
        if include_usage {
            self.send_raw(json!({
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": usage_body(c),
            }))
            .await?;
        }
        self.tx
            .send(Ok(SseEvent::default().data("[DONE]")))
            .await
            .map_err(|_| Disconnected)
    }
}

/// Little-endian f32s in standard base64, as OpenAI's `encoding_format: base64`.
fn base64_f32(v: &[f32]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::base64_f32;

    #[test]
    fn base64_of_floats() {
        // 1.0f32 = 00 00 80 3F
        assert_eq!(base64_f32(&[1.0]), "AACAPw==");
        assert_eq!(base64_f32(&[]), "");
    }
}
