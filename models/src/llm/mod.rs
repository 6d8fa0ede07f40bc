/*!
The local chat model: GGUF weights run by llama.cpp (through the `llama-cpp-2`
bindings), with the chat template taken from the GGUF and rendered by
minijinja, tool calls parsed from what small models emit, and optional
schema-constrained decoding (llguidance) so that a call of an offered tool is
syntactically valid and its arguments validate.

Why llama.cpp and not Candle: on this project's 2-core machines Candle's CPU
prefill on quantized weights took 261 s for a 2,550-token prompt that
llama.cpp handles in under 20 s, and an agent turn is mostly prefill (system
prompt plus tool schemas). Candle stays the engine for embeddings.

The pieces, in reading order:

- [`types`]: messages, tools, tool choice, generation options and results.
- [`prompt_schema`]: the shorter form of a tool's schema the model reads
  (the full one constrains its output).
- [`template`]: the GGUF's Jinja2 chat template rendered with minijinja (with
  a tools block added for templates that have none).
- [`toolcall`]: parsing `<tool_call>…</tool_call>`, fenced JSON and bare JSON
  objects; validating arguments against the tool's JSON Schema.
- [`constraint`]: the llguidance (Lark) grammar built from the offered tools:
  plain text *or* a valid call, or only a call (`required`, a named function).
- [`engine`]: [`ChatModel`], a worker thread that owns the model and one
  context; requests queue and run one at a time, reuse the KV cache for the
  unchanged prompt prefix, stream tokens, and stop when the receiver hangs up.
- [`bench`]: `rapport bench llm` (speed, and tool-call validity on 30 CRM requests).

```no_run
use rapport_models::llm::{ChatModel, ChatRequest, ChatMessage, LoadOptions};
let path = rapport_models::ensure("qwen2.5-coder-0.5b-instruct-q4_k_m")?;
let model = ChatModel::load(&path, LoadOptions::default())?;
let out = model.generate(ChatRequest::new(vec![ChatMessage::user("Say hi")]), |_delta| {})?;
println!("{}", out.text);
# Ok::<(), Box<dyn std::error::Error>>(())
```
*/

// The message types and the prompt form of schemas are always built (the
// agent and the eval harness speak them to any backend); the engine itself
// needs the `llm` feature (llama.cpp).
pub mod prompt_schema;
pub mod types;

#[cfg(all(feature = "llm", feature = "bench"))]
pub mod bench;
#[cfg(feature = "llm")]
pub mod constraint;
#[cfg(feature = "llm")]
pub mod engine;
#[cfg(feature = "llm")]
pub mod template;
#[cfg(feature = "llm")]
pub mod toolcall;

#[cfg(feature = "llm")]
pub use engine::{ChatModel, Event, LoadOptions, ModelInfo};
#[cfg(feature = "llm")]
pub use template::ChatTemplate;
#[cfg(feature = "llm")]
pub use toolcall::{ParsedOutput, parse_tool_calls};
pub use types::{
    ChatMessage, ChatRequest, Completion, ContextPolicy, FinishReason, GenerateOptions, Role,
    Sampling, Timings, ToolCall, ToolChoice, ToolSpec, Usage,
};

/// Everything that can go wrong in the local chat engine.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// The GGUF file could not be loaded.
    #[error("loading {path}: {message}")]
    Load {
        /// The file, as given (empty when the llama.cpp backend itself failed).
        path: String,
        /// Why it could not be loaded.
        message: String,
    },

    /// The chat template is missing or does not render.
    #[error("chat template: {0}")]
    Template(String),

    /// The prompt (plus the tokens asked for) does not fit in the context window.
    #[error(
        "this model's context is {n_ctx} tokens; the prompt has {prompt_tokens} and {requested} more were requested \
         (shorten the conversation, lower max_tokens, or use the trim-oldest context policy)"
    )]
    ContextOverflow {
        /// Tokens in the rendered prompt.
        prompt_tokens: usize,
        /// Tokens asked for the reply.
        requested: usize,
        /// The context window, in tokens.
        n_ctx: usize,
    },

    /// The request itself is invalid (e.g. `tool_choice` names a tool that was not offered).
    #[error("invalid request: {0}")]
    InvalidRequest(String),

    /// The constraint grammar built from the tools could not be compiled.
    #[error("constraint grammar: {0}")]
    Grammar(String),

    /// llama.cpp failed while decoding.
    #[error("decode: {0}")]
    Decode(String),

    /// The worker thread of the model is gone (it panicked or was shut down).
    #[error("the model's worker thread has stopped")]
    WorkerGone,
}

/// `Result` with [`LlmError`].
pub type Result<T, E = LlmError> = std::result::Result<T, E>;
