//! Messages, tools and options of a chat request, and what a generation returns.
//!
//! These mirror the OpenAI chat-completions shapes closely enough that the
//! server converts with little code, but they belong to the engine: arguments
//! of a tool call are a JSON value here, not a string.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions from the application (the system prompt).
    System,
    /// The person talking to the model.
    User,
    /// The model.
    Assistant,
    /// A tool's result.
    Tool,
}

impl Role {
    /// The role as chat templates and the OpenAI wire format spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Who wrote it.
    pub role: Role,
    /// Text content; empty for an assistant turn that only calls tools.
    #[serde(default)]
    pub content: String,
    /// Tool calls made by an assistant turn.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For a tool result: the id of the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// For a tool result: the name of the tool that produced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl ChatMessage {
    fn new(role: Role, content: impl Into<String>) -> Self {
        ChatMessage {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
            name: None,
        }
    }
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new(Role::System, content)
    }
    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new(Role::User, content)
    }
    /// An assistant turn with text only.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new(Role::Assistant, content)
    }
    /// An assistant turn that calls tools.
    pub fn assistant_calls(calls: Vec<ToolCall>) -> Self {
        ChatMessage {
            tool_calls: calls,
            ..Self::new(Role::Assistant, "")
        }
    }
    /// The result of a tool call.
    pub fn tool(
        call_id: impl Into<String>,
        name: impl Into<String>,
        content: impl Into<String>,
    ) -> Self {
        ChatMessage {
            tool_call_id: Some(call_id.into()),
            name: Some(name.into()),
            ..Self::new(Role::Tool, content)
        }
    }
}

/// A function the model may call: its name, what it does, and the JSON Schema of its arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// Name the model calls it by (unique among the offered tools).
    pub name: String,
    /// What it does and when to use it, for the model.
    #[serde(default)]
    pub description: String,
    /// JSON Schema of the arguments object.
    #[serde(default = "empty_object_schema")]
    pub parameters: Value,
}

fn empty_object_schema() -> Value {
    serde_json::json!({"type": "object", "properties": {}})
}

impl ToolSpec {
    /// A tool from its name, description and arguments schema.
    pub fn new(name: impl Into<String>, description: impl Into<String>, parameters: Value) -> Self {
        ToolSpec {
            name: name.into(),
            description: description.into(),
            parameters,
        }
    }

    /// The tool as a local model reads it in its prompt: the OpenAI shape
    /// that chat templates expect, with the schema in its shorter
    /// [prompt form](super::prompt_schema::for_prompt). The full schema
    /// still constrains and validates the call.
    pub fn to_prompt(&self) -> Value {
        let mut v = self.to_openai();
        v["function"]["parameters"] = super::prompt_schema::for_prompt(&self.parameters);
        v
    }

    /// The tool in the OpenAI `tools` array shape (`{"type":"function","function":{…}}`),
    /// as sent over the wire.
    pub fn to_openai(&self) -> Value {
        serde_json::json!({
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            }
        })
    }
}

/// A call of a tool, as parsed from the model's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The call's id; the tool result message carries it back.
    pub id: String,
    /// The tool called (one of the offered).
    pub name: String,
    /// The arguments object.
    pub arguments: Value,
}

/// Whether and how the model must call a tool (OpenAI's `tool_choice`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ToolChoice {
    /// Text or a call, the model decides.
    #[default]
    Auto,
    /// No call: tools are not shown to the model.
    None,
    /// At least one call of any offered tool.
    Required,
    /// A call of this tool.
    Function(String),
}

/// How the next token is picked.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Sampling {
    /// Always the most likely token (deterministic; used for evals and tests).
    #[default]
    Greedy,
    /// Temperature and nucleus (top-p) sampling from a seeded generator.
    Sampled {
        /// Softmax temperature; higher spreads the choice.
        temperature: f32,
        /// Smallest set of tokens whose probabilities sum to at least this.
        top_p: f32,
        /// Seed of the generator: the same seed and prompt give the same text.
        seed: u32,
    },
}

/// What to do when the conversation does not fit in the context window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ContextPolicy {
    /// Fail with [`LlmError::ContextOverflow`](super::LlmError::ContextOverflow).
    #[default]
    Fail,
    /// Drop the oldest messages after the system prompt (never the last one) until it fits.
    TrimOldest,
}

/// Options of one generation.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    /// Most tokens to generate; `None` means up to the end of the context.
    pub max_tokens: Option<usize>,
    /// How tokens are picked.
    pub sampling: Sampling,
    /// Extra stop strings (the model's end-of-turn tokens always stop).
    pub stop: Vec<String>,
    /// Constrain decoding to plain text or valid calls of the offered tools
    /// (llguidance). Has no effect when no tools are offered.
    pub constrained: bool,
    /// What to do when the conversation does not fit.
    pub context_policy: ContextPolicy,
    /// Allow several tool calls in one turn (OpenAI's `parallel_tool_calls`);
    /// when false a constrained turn holds at most one call.
    pub parallel_tool_calls: bool,
    /// Keep generating past end-of-turn until `max_tokens` (for benchmarks).
    pub ignore_eos: bool,
    /// Offered tools this turn may not call: they stay in the prompt (so a
    /// cached prefix still matches) but not in the constraint grammar.
    pub withheld_tools: Vec<String>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_tokens: Some(512),
            sampling: Sampling::Greedy,
            stop: Vec::new(),
            constrained: true,
            context_policy: ContextPolicy::Fail,
            parallel_tool_calls: true,
            ignore_eos: false,
            withheld_tools: Vec::new(),
        }
    }
}

/// One chat request to a [`ChatModel`](super::ChatModel).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChatRequest {
    /// The conversation, oldest first.
    pub messages: Vec<ChatMessage>,
    /// Tools the model may call.
    pub tools: Vec<ToolSpec>,
    /// Whether it must, may or may not call one.
    pub tool_choice: ToolChoice,
    /// Length, sampling, stops and constraints.
    pub options: GenerateOptions,
}

impl ChatRequest {
    /// A request for a reply to `messages`, without tools, with default options.
    pub fn new(messages: Vec<ChatMessage>) -> Self {
        ChatRequest {
            messages,
            ..Default::default()
        }
    }
    /// Offers `tools` under `choice`.
    pub fn with_tools(mut self, tools: Vec<ToolSpec>, choice: ToolChoice) -> Self {
        self.tools = tools;
        self.tool_choice = choice;
        self
    }
    /// Replaces the generation options.
    pub fn with_options(mut self, options: GenerateOptions) -> Self {
        self.options = options;
        self
    }
    /// The tools the model sees: none when `tool_choice` is `None`.
    pub fn offered_tools(&self) -> &[ToolSpec] {
        match self.tool_choice {
            ToolChoice::None => &[],
            _ => &self.tools,
        }
    }
}

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// End of turn or a stop string.
    Stop,
    /// `max_tokens` or the end of the context.
    Length,
    /// The output is one or more tool calls.
    ToolCalls,
    /// The receiver hung up (client disconnected).
    Cancelled,
}

/// Token counts of one generation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Tokens in the prompt, cached ones included.
    pub prompt_tokens: usize,
    /// Tokens generated.
    pub completion_tokens: usize,
    /// Prompt tokens whose KV cache was reused from the previous request.
    pub cached_prompt_tokens: usize,
}

/// Wall-clock split of one generation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Timings {
    /// Rendering the template, tokenizing, building the constraint.
    pub setup_s: f64,
    /// Evaluating the prompt tokens not in the cache.
    pub prefill_s: f64,
    /// Generating the completion tokens.
    pub decode_s: f64,
}

/// The result of a generation.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// Everything the model generated (stop strings removed).
    pub text: String,
    /// The text outside tool calls, if any.
    pub content: Option<String>,
    /// Tool calls found in the output (only calls of offered tools that parse).
    pub tool_calls: Vec<ToolCall>,
    /// Why it stopped.
    pub finish_reason: FinishReason,
    /// Token counts.
    pub usage: Usage,
    /// Where the time went.
    pub timings: Timings,
}
