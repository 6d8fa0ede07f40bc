//! The OpenAI wire format: request bodies as clients send them, and their
//! conversion into the engine's [`ChatRequest`]. Responses are written as JSON
//! values in [`super::chat`].

use serde::Deserialize;
use serde_json::Value;

use super::error::ApiError;
use crate::llm::{
    ChatMessage, ChatRequest, GenerateOptions, Role, Sampling, ToolCall, ToolChoice, ToolSpec,
};

/// `POST /v1/chat/completions`
#[derive(Debug, Deserialize)]
pub struct ChatCompletionRequest {
    /// Name of a loaded chat model (`default`: the first); another name is a 404.
    pub model: String,
    /// The conversation, oldest first; must not be empty.
    pub messages: Vec<WireMessage>,
    /// Functions the model may call.
    #[serde(default)]
    pub tools: Vec<WireTool>,
    /// `auto` (default), `none`, `required` or a named function.
    #[serde(default)]
    pub tool_choice: Option<WireToolChoice>,
    /// Answer as server-sent events, chunk by chunk.
    #[serde(default)]
    pub stream: bool,
    /// Streaming options (only `include_usage` is read).
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    /// Most tokens to generate (older name of `max_completion_tokens`).
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Most tokens to generate; wins over `max_tokens`.
    #[serde(default)]
    pub max_completion_tokens: Option<u32>,
    /// Sampling temperature; absent or 0 decodes greedily.
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Nucleus sampling mass (default 1).
    #[serde(default)]
    pub top_p: Option<f32>,
    /// Seed of sampled decoding (default: from the clock).
    #[serde(default)]
    pub seed: Option<i64>,
    /// Extra stop strings.
    #[serde(default)]
    pub stop: Option<Stop>,
    /// Choices to generate; only 1 is supported.
    #[serde(default)]
    pub n: Option<u32>,
    /// Allow several calls in one reply (default true).
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    /// Extension: constrain tool calls to the offered schemas (default: the server's setting).
    #[serde(default)]
    pub constrained: Option<bool>,
}

/// `stream_options` of a streamed request.
#[derive(Debug, Deserialize, Default)]
pub struct StreamOptions {
    /// Send token usage in a last chunk.
    #[serde(default)]
    pub include_usage: bool,
}

/// `stop`: one string or several.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    /// A single stop string.
    One(String),
    /// Several stop strings.
    Many(Vec<String>),
}

/// One message as clients send it.
#[derive(Debug, Deserialize)]
pub struct WireMessage {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// The text; absent for an assistant turn that only calls tools.
    #[serde(default)]
    pub content: Option<Content>,
    /// Calls an assistant turn made.
    #[serde(default)]
    pub tool_calls: Option<Vec<WireToolCall>>,
    /// For a tool result: the call it answers.
    #[serde(default)]
    pub tool_call_id: Option<String>,
    /// For a tool result: the tool's name.
    #[serde(default)]
    pub name: Option<String>,
}

/// Message content: a string or an array of parts (only text parts are used).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Content parts; only `{"type": "text"}` parts are accepted.
    Parts(Vec<Value>),
}

impl Content {
    fn into_text(self) -> Result<String, ApiError> {
        match self {
            Content::Text(s) => Ok(s),
            Content::Parts(parts) => parts
                .iter()
                .map(|p| {
                    match (
                        p.get("type").and_then(Value::as_str),
                        p.get("text").and_then(Value::as_str),
                    ) {
                        (Some("text"), Some(t)) => Ok(t.to_string()),
                        _ => Err(ApiError::bad_request(
                            "only text content parts are supported",
                        )),
                    }
                })
                .collect::<Result<Vec<_>, _>>()
                .map(|v| v.join("\n")),
        }
    }
}

/// A tool call in an assistant message.
#[derive(Debug, Deserialize)]
pub struct WireToolCall {
    /// The call's id.
    #[serde(default)]
    pub id: Option<String>,
    /// The function called and its arguments.
    pub function: WireFunctionCall,
}

/// The function of a [`WireToolCall`].
#[derive(Debug, Deserialize)]
pub struct WireFunctionCall {
    /// The tool's name.
    pub name: String,
    /// A JSON string, as OpenAI sends it (an object is accepted too).
    #[serde(default)]
    pub arguments: Option<Value>,
}

/// An offered tool.
#[derive(Debug, Deserialize)]
pub struct WireTool {
    /// `type`: only `function` exists.
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    /// Name, description and arguments schema.
    pub function: WireFunction,
}

fn function_type() -> String {
    "function".into()
}

/// A function the model may call.
#[derive(Debug, Deserialize)]
pub struct WireFunction {
    /// The function's name.
    pub name: String,
    /// What it does, for the model.
    #[serde(default)]
    pub description: Option<String>,
    /// JSON Schema of its arguments (default: an empty object).
    #[serde(default)]
    pub parameters: Option<Value>,
}

/// `tool_choice`: a mode or one named function.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum WireToolChoice {
    /// `auto`, `none` or `required`.
    Mode(String),
    /// `{"type": "function", "function": {"name": ...}}`: call this function.
    Named {
        /// The function to call.
        function: NamedFunction,
    },
}

/// The function a [`WireToolChoice::Named`] asks for.
#[derive(Debug, Deserialize)]
pub struct NamedFunction {
    /// Its name; must be one of the offered tools.
    pub name: String,
}

/// `POST /v1/embeddings`
#[derive(Debug, Deserialize)]
pub struct EmbeddingRequest {
    /// Name of the loaded embedder; another name is a 404.
    pub model: String,
    /// The text or texts to embed.
    pub input: EmbeddingInput,
    /// `float` (default) or `base64`.
    #[serde(default)]
    pub encoding_format: Option<String>,
}

/// `input` of an embeddings request: one text or several.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingInput {
    /// One text.
    One(String),
    /// Several texts, embedded in order.
    Many(Vec<String>),
}

impl ChatCompletionRequest {
    /// The engine request, with `constrained_default` when the body does not say.
    pub fn to_engine(&self, constrained_default: bool) -> Result<ChatRequest, ApiError> {
        if self.n.is_some_and(|n| n != 1) {
            return Err(ApiError::BadRequest {
                message: "only n = 1 is supported".into(),
                param: Some("n".into()),
            });
        }
        if self.messages.is_empty() {
            return Err(ApiError::BadRequest {
                message: "messages must not be empty".into(),
                param: Some("messages".into()),
            });
        }
        let messages = self
            .messages
            .iter()
            .map(to_message)
            .collect::<Result<Vec<_>, _>>()?;
        let tools =
            self.tools
                .iter()
                .map(|t| {
                    if t.kind != "function" {
                        return Err(ApiError::BadRequest {
                            message: format!("tool type `{}` is not supported", t.kind),
                            param: Some("tools".into()),
                        });
                    }
                    Ok(ToolSpec {
                        name: t.function.name.clone(),
                        description: t.function.description.clone().unwrap_or_default(),
                        parameters: t.function.parameters.clone().unwrap_or_else(
                            || serde_json::json!({"type": "object", "properties": {}}),
                        ),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
        let tool_choice = match &self.tool_choice {
            None => ToolChoice::Auto,
            Some(WireToolChoice::Mode(m)) => match m.as_str() {
                "auto" => ToolChoice::Auto,
                "none" => ToolChoice::None,
                "required" => ToolChoice::Required,
                other => {
                    return Err(ApiError::BadRequest {
                        message: format!(
                            "tool_choice `{other}` is not one of auto, none, required"
                        ),
                        param: Some("tool_choice".into()),
                    });
                }
            },
            Some(WireToolChoice::Named { function }) => ToolChoice::Function(function.name.clone()),
        };
        if let ToolChoice::Function(name) = &tool_choice
            && !tools.iter().any(|t| &t.name == name)
        {
            return Err(ApiError::BadRequest {
                message: format!("tool_choice names `{name}`, which is not in tools"),
                param: Some("tool_choice".into()),
            });
        }
        let sampling = match self.temperature {
            Some(t) if t > 0.0 => Sampling::Sampled {
                temperature: t,
                top_p: self.top_p.unwrap_or(1.0),
                seed: self.seed.map_or_else(rand_seed, |s| s as u32),
            },
            _ => Sampling::Greedy,
        };
        let stop = match &self.stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s.clone()],
            Some(Stop::Many(v)) => v.clone(),
        };
        Ok(ChatRequest {
            messages,
            tools,
            tool_choice,
            options: GenerateOptions {
                max_tokens: self
                    .max_completion_tokens
                    .or(self.max_tokens)
                    .map(|n| n as usize),
                sampling,
                stop,
                constrained: self.constrained.unwrap_or(constrained_default),
                parallel_tool_calls: self.parallel_tool_calls.unwrap_or(true),
                ..Default::default()
            },
        })
    }
}

fn rand_seed() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

fn to_message(m: &WireMessage) -> Result<ChatMessage, ApiError> {
    let role = match m.role.as_str() {
        "system" | "developer" => Role::System,
        "user" => Role::User,
        "assistant" => Role::Assistant,
        "tool" => Role::Tool,
        other => {
            return Err(ApiError::BadRequest {
                message: format!("unknown message role `{other}`"),
                param: Some("messages".into()),
            });
        }
    };
    let content = match &m.content {
        None => String::new(),
        Some(Content::Text(s)) => s.clone(),
        Some(Content::Parts(p)) => Content::Parts(p.clone()).into_text()?,
    };
    let tool_calls = m
        .tool_calls
        .iter()
        .flatten()
        .map(|c| {
            let arguments = match &c.function.arguments {
                None => Value::Object(Default::default()),
                Some(Value::String(s)) if s.trim().is_empty() => Value::Object(Default::default()),
                Some(Value::String(s)) => {
                    serde_json::from_str(s).map_err(|e| ApiError::BadRequest {
                        message: format!("tool call arguments are not JSON: {e}"),
                        param: Some("messages".into()),
                    })?
                }
                Some(v) => v.clone(),
            };
            Ok(ToolCall {
                id: c.id.clone().unwrap_or_default(),
                name: c.function.name.clone(),
                arguments,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(ChatMessage {
        role,
        content,
        tool_calls,
        tool_call_id: m.tool_call_id.clone(),
        name: m.name.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> ChatCompletionRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn maps_openai_requests_onto_the_engine() {
        let req = parse(json!({
            "model": "m",
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "add Jane"}]},
                {"role": "assistant", "content": null,
                 "tool_calls": [{"id": "c1", "type": "function",
                                 "function": {"name": "create_contact", "arguments": "{\"name\":\"Jane\"}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "ok"}
            ],
            "tools": [{"type": "function", "function": {"name": "create_contact", "parameters": {"type": "object"}}}],
            "tool_choice": {"type": "function", "function": {"name": "create_contact"}},
            "temperature": 0.7, "top_p": 0.9, "seed": 3, "max_completion_tokens": 50, "stop": "END",
            "parallel_tool_calls": false
        }));
        let e = req.to_engine(true).unwrap();
        assert_eq!(e.messages[0].role, Role::System);
        assert_eq!(e.messages[1].content, "add Jane");
        assert_eq!(
            e.messages[2].tool_calls[0].arguments,
            json!({"name": "Jane"})
        );
        assert_eq!(e.messages[3].tool_call_id.as_deref(), Some("c1"));
        assert_eq!(e.tool_choice, ToolChoice::Function("create_contact".into()));
        assert_eq!(
            e.options.sampling,
            Sampling::Sampled {
                temperature: 0.7,
                top_p: 0.9,
                seed: 3
            }
        );
        assert_eq!(e.options.max_tokens, Some(50));
        assert_eq!(e.options.stop, vec!["END".to_string()]);
        assert!(e.options.constrained && !e.options.parallel_tool_calls);
    }

    #[test]
    fn rejects_what_it_cannot_serve() {
        let base = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        let with = |k: &str, v: Value| {
            let mut b = base.clone();
            b[k] = v;
            parse(b).to_engine(true)
        };
        assert!(with("n", json!(2)).is_err());
        assert!(with("tool_choice", json!("sometimes")).is_err());
        assert!(
            with(
                "tool_choice",
                json!({"type": "function", "function": {"name": "x"}})
            )
            .is_err()
        );
        assert!(with("messages", json!([])).is_err());
        assert!(with("messages", json!([{"role": "wizard", "content": "hi"}])).is_err());
        let greedy = with("temperature", json!(0)).unwrap();
        assert_eq!(greedy.options.sampling, Sampling::Greedy);
        assert_eq!(
            with("tool_choice", json!("none")).unwrap().tool_choice,
            ToolChoice::None
        );
    }
}
