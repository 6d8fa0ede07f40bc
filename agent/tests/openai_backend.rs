//! The OpenAI-compatible backend over real HTTP.
//!
//! Against a test server that speaks the chat-completions SSE protocol and
//! misbehaves on purpose (429, 500, stalls, chunks that are not JSON, calls
//! with arguments as objects and no usage), and against the real
//! `rapport llm serve` router with the smallest local model.

#[path = "fixtures/openai_server.rs"]
mod openai_server;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use openai_server::{Act, call_chunks, server, text_chunks};
use rapport_agent::backend::openai::{OpenAiBackend, OpenAiConfig};
use rapport_agent::{BackendError, LlmBackend, LlmRequest};
use rapport_models::llm::{ChatMessage, ToolChoice, ToolSpec};
use serde_json::{Value, json};

fn backend(addr: SocketAddr) -> OpenAiBackend {
    let mut c = OpenAiConfig::new(format!("http://{addr}/v1"), "test-model");
    c.backoff = Duration::from_millis(20);
    c.read_timeout = Duration::from_millis(400);
    c.max_attempts = 3;
    OpenAiBackend::new(c).unwrap()
}

fn request() -> LlmRequest {
    LlmRequest {
        messages: vec![ChatMessage::system("be brief"), ChatMessage::user("hi")],
        tools: vec![ToolSpec::new(
            "get_deal",
            "Get a deal",
            json!({"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]}),
        )],
        tool_choice: ToolChoice::Auto,
        max_tokens: Some(50),
        withheld: Vec::new(),
    }
}

async fn complete(b: &OpenAiBackend) -> (Result<rapport_agent::LlmReply, BackendError>, String) {
    let seen = std::sync::Mutex::new(String::new());
    let sink = |d: &str| seen.lock().unwrap().push_str(d);
    let r = b.complete(&request(), &sink).await;
    let text = seen.lock().unwrap().clone();
    (r, text)
}

#[tokio::test]
async fn streams_text_and_usage_and_sends_the_protocol() {
    let (addr, script) = server(vec![Act::Sse(text_chunks(&["Hel", "lo"]))]).await;
    let (r, streamed) = complete(&backend(addr)).await;
    let reply = r.unwrap();
    assert_eq!(reply.content, "Hello");
    assert_eq!(streamed, "Hello");
    assert_eq!(reply.usage.unwrap().prompt_tokens, 12);
    let body = script.bodies()[0].clone();
    assert_eq!(body["stream"], true);
    assert_eq!(body["tools"][0]["function"]["name"], "get_deal");
    assert_eq!(
        body["messages"][1],
        json!({"role": "user", "content": "hi"})
    );
}

#[tokio::test]
async fn retries_429_and_5xx_then_succeeds() {
    let (addr, script) = server(vec![
        Act::Status(429),
        Act::Status(503),
        Act::Sse(text_chunks(&["ok"])),
    ])
    .await;
    let (r, _) = complete(&backend(addr)).await;
    assert_eq!(r.unwrap().content, "ok");
    assert_eq!(script.hits(), 3);
}

#[tokio::test]
async fn gives_up_after_the_last_attempt_with_the_status() {
    let (addr, script) = server(vec![Act::Status(500)]).await;
    let (r, _) = complete(&backend(addr)).await;
    match r {
        Err(BackendError::Status {
            status: 500,
            message,
        }) => assert!(message.contains("test error")),
        other => panic!("{other:?}"),
    }
    // Three attempts in all, as configured.
    assert_eq!(script.hits(), 3);
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let (addr, script) = server(vec![Act::Status(400)]).await;
    let (r, _) = complete(&backend(addr)).await;
    assert!(
        matches!(r, Err(BackendError::Status { status: 400, .. })),
        "{r:?}"
    );
    assert_eq!(script.hits(), 1);
}

#[tokio::test]
async fn a_stalled_server_times_out_and_is_retried() {
    let (addr, script) = server(vec![
        Act::Stall(Duration::from_secs(3)),
        Act::Sse(text_chunks(&["late but fine"])),
    ])
    .await;
    let (r, _) = complete(&backend(addr)).await;
    assert_eq!(r.unwrap().content, "late but fine");
    assert_eq!(script.hits(), 2);
}

#[tokio::test]
async fn a_malformed_chunk_is_a_protocol_error() {
    let mut chunks = text_chunks(&["partial"]);
    chunks.insert(1, "{not json".into());
    let (addr, _) = server(vec![Act::Sse(chunks)]).await;
    let (r, streamed) = complete(&backend(addr)).await;
    assert!(matches!(r, Err(BackendError::Protocol(_))), "{r:?}");
    // Text already shown is not shown twice by a retry.
    assert_eq!(streamed, "partial");
}

#[tokio::test]
async fn tolerates_arguments_as_objects_missing_index_and_no_usage() {
    let chunks = vec![
        json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_deal", "arguments": {"id": 7}}}]}}]}).to_string(),
        json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"id": "c2", "function": {"name": "get_deal", "arguments": "{\"id\": "}}]}}]}).to_string(),
        json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"function": {"arguments": "8}"}}]}, "finish_reason": "tool_calls"}]}).to_string(),
    ];
    let (addr, _) = server(vec![Act::Sse(chunks)]).await;
    let (r, _) = complete(&backend(addr)).await;
    let reply = r.unwrap();
    assert_eq!(reply.usage, None);
    let calls: Vec<(String, Value)> = reply
        .tool_calls
        .into_iter()
        .map(|c| (c.id, c.arguments))
        .collect();
    assert_eq!(
        calls,
        [
            ("c1".to_string(), json!({"id": 7})),
            ("c2".to_string(), json!({"id": 8}))
        ]
    );
}

#[tokio::test]
async fn a_retry_after_is_waited_as_asked() {
    let (addr, script) = server(vec![
        Act::RetryAfter(429, "1".into()),
        Act::Sse(text_chunks(&["ok"])),
    ])
    .await;
    let (r, _) = complete(&backend(addr)).await;
    assert_eq!(r.unwrap().content, "ok");
    let t = script.times();
    let waited = t[1] - t[0];
    // The header's second, not the 20 ms backoff.
    assert!(waited >= Duration::from_secs(1), "{waited:?}");
    assert!(waited < Duration::from_millis(1900), "{waited:?}");
}

#[tokio::test]
async fn a_retry_after_beyond_the_budget_fails_at_once() {
    let (addr, script) = server(vec![Act::RetryAfter(429, "120".into())]).await;
    let started = std::time::Instant::now();
    let (r, _) = complete(&backend(addr)).await;
    match r {
        Err(e @ BackendError::Throttled { status: 429, .. }) => {
            assert!(e.to_string().contains("asks to wait 120 s"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(script.hits(), 1);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_cut_stream_is_retried_and_its_half_call_never_returned() {
    let (addr, script) = server(vec![
        Act::Cut(call_chunks("c1", "get_deal", &["{\"id\": 4"])),
        Act::Sse(call_chunks("c1", "get_deal", &["{\"id\": 4", "2}"])),
    ])
    .await;
    let (r, _) = complete(&backend(addr)).await;
    let reply = r.unwrap();
    assert_eq!(reply.tool_calls.len(), 1);
    assert_eq!(reply.tool_calls[0].arguments, json!({"id": 42}));
    assert_eq!(script.hits(), 2);
}

#[tokio::test]
async fn a_stream_that_ends_without_done_is_cut_even_when_its_call_parses() {
    let (addr, script) = server(vec![Act::NoDone(call_chunks(
        "c1",
        "get_deal",
        &["{\"id\": 4}"],
    ))])
    .await;
    let (r, _) = complete(&backend(addr)).await;
    assert!(matches!(r, Err(BackendError::Cut(_))), "{r:?}");
    assert_eq!(script.hits(), 3);
}

#[tokio::test]
async fn a_stream_that_stalls_after_its_headers_times_out_and_is_retried() {
    let (addr, script) = server(vec![
        Act::StallAfter(
            call_chunks("c1", "get_deal", &["{\"id\":"]),
            Duration::from_secs(60),
        ),
        Act::Sse(text_chunks(&["fine"])),
    ])
    .await;
    let started = std::time::Instant::now();
    let (r, _) = complete(&backend(addr)).await;
    assert_eq!(r.unwrap().content, "fine");
    assert_eq!(script.hits(), 2);
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// The real server: `rapport llm serve`'s router with the smallest local model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_rapport_llm_serve_with_a_real_model() {
    use rapport_models::llm::{ChatModel, LoadOptions};
    use rapport_models::serve::{AppState, serve};
    let name = std::env::var("RAPPORT_TEST_CHAT_MODEL")
        .unwrap_or_else(|_| "smollm2-135m-instruct-q4_1".into());
    let path = rapport_models::ensure(&name).expect("fetch the test chat model");
    let model = tokio::task::spawn_blocking({
        let name = name.clone();
        move || {
            ChatModel::load(
                &path,
                LoadOptions {
                    name: Some(name),
                    n_ctx: 2048,
                    n_threads: Some(2),
                    ..Default::default()
                },
            )
        }
    })
    .await
    .unwrap()
    .expect("load the model");
    let state = AppState::new(vec![Arc::new(model)], None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { serve(listener, state).await.unwrap() });

    let mut c = OpenAiConfig::new(format!("http://{addr}/v1"), &name);
    c.read_timeout = Duration::from_secs(120);
    let b = OpenAiBackend::new(c).unwrap();
    // A forced call of the offered tool: constrained decoding makes it valid.
    let mut req = request();
    req.messages = vec![ChatMessage::user("Show me deal 42.")];
    req.tool_choice = ToolChoice::Function("get_deal".into());
    let sink = |_: &str| {};
    let reply = b.complete(&req, &sink).await.expect("completion");
    assert_eq!(reply.tool_calls.len(), 1, "{reply:?}");
    assert_eq!(reply.tool_calls[0].name, "get_deal");
    assert!(reply.tool_calls[0].arguments["id"].is_i64(), "{reply:?}");
    assert!(reply.usage.unwrap().prompt_tokens > 0);
    // Plain text, streamed.
    let streamed = std::sync::Mutex::new(String::new());
    let sink = |d: &str| streamed.lock().unwrap().push_str(d);
    let mut req = request();
    req.tool_choice = ToolChoice::None;
    req.max_tokens = Some(12);
    let reply = b.complete(&req, &sink).await.expect("completion");
    assert!(!reply.content.is_empty());
    assert_eq!(*streamed.lock().unwrap(), reply.content);
}
