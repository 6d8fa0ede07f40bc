//! The chat template: the Jinja2 source stored in the GGUF
//! (`tokenizer.chat_template`), rendered with minijinja the way Hugging Face
//! `transformers` renders it (`trim_blocks`, `lstrip_blocks`, Python string
//! methods, a `tojson` that writes `", "` and `": "` separators and no HTML
//! escaping, `raise_exception`).
//!
//! Templates that know no tools (SmolLM2's, for one) get the same tools block
//! Qwen2.5's template writes, appended to the system message, and tool calls
//! and results are written into ordinary messages as `<tool_call>` and
//! `<tool_response>` blocks, so every model sees one tool protocol.

use minijinja::{Environment, Error as JinjaError, ErrorKind, Value as JinjaValue, value::Kwargs};
use serde_json::{Value, json};

use super::types::{ChatMessage, Role, ToolSpec};
use super::{LlmError, Result};

/// Default system prompt when a tools block must be added and the conversation has no system message.
const DEFAULT_SYSTEM: &str = "You are a helpful assistant.";

/// A chat template ready to render.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
    native_tools: bool,
}

impl ChatTemplate {
    /// Compiles a template. `bos_token`/`eos_token` are the texts of the model's
    /// BOS and EOS tokens (templates may print them).
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self> {
        let mut env = Environment::new();
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(|e| LlmError::Template(e.to_string()))?;
        env.set_syntax(syntax);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_filter("tojson", tojson_filter);
        env.add_function(
            "raise_exception",
            |msg: String| -> std::result::Result<JinjaValue, JinjaError> {
                Err(JinjaError::new(ErrorKind::InvalidOperation, msg))
            },
        );
        env.add_template_owned("chat", source.to_string())
            .map_err(|e| LlmError::Template(format!("does not compile: {e:#}")))?;
        Ok(ChatTemplate {
            env,
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
            native_tools: source.contains("tools"),
        })
    }

    /// Whether the template renders tools itself (otherwise a tools block is added).
    pub fn native_tools(&self) -> bool {
        self.native_tools
    }

    /// Renders a conversation; with `add_generation_prompt` the text ends where
    /// the assistant's reply begins.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        tools: &[ToolSpec],
        add_generation_prompt: bool,
    ) -> Result<String> {
        let (messages, tools) = if self.native_tools {
            (
                messages.iter().map(native_message).collect::<Vec<_>>(),
                (!tools.is_empty())
                    .then(|| tools.iter().map(ToolSpec::to_prompt).collect::<Vec<_>>()),
            )
        } else {
            (inline_tools(messages, tools), None)
        };
        let ctx = json!({
            "messages": messages,
            "tools": tools,
            "add_generation_prompt": add_generation_prompt,
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
        });
        let tmpl = self
            .env
            .get_template("chat")
            .map_err(|e| LlmError::Template(e.to_string()))?;
        tmpl.render(minijinja::value::Serde(&ctx))
            .map_err(|e| LlmError::Template(format!("does not render: {e:#}")))
    }
}

/// A message as templates with tool support expect it (arguments as an object).
fn native_message(m: &ChatMessage) -> Value {
    let mut v = json!({"role": m.role.as_str(), "content": m.content});
    if !m.tool_calls.is_empty() {
        v["tool_calls"] = m
            .tool_calls
            .iter()
            .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}))
            .collect();
    }
    if let Some(id) = &m.tool_call_id {
        v["tool_call_id"] = json!(id);
    }
    if let Some(name) = &m.name {
        v["name"] = json!(name);
    }
    v
}

/// The tools block (the wording Qwen2.5 was trained with).
pub fn tools_block(tools: &[ToolSpec]) -> String {
    let mut s = String::from(
        "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n\
         You are provided with function signatures within <tools></tools> XML tags:\n<tools>",
    );
    for t in tools {
        s.push('\n');
        s.push_str(&py_json(&t.to_prompt(), None));
    }
    s.push_str(
        "\n</tools>\n\nFor each function call, return a json object with function name and arguments \
         within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": \
         <args-json-object>}\n</tool_call>",
    );
    s
}

/// The text of a tool call as the model writes it.
pub fn tool_call_text(name: &str, arguments: &Value) -> String {
    format!(
        "<tool_call>\n{}\n</tool_call>",
        py_json(&json!({"name": name, "arguments": arguments}), None)
    )
}

/// Messages for a template without tool support: tools block in the system
/// message, calls and results as text.
fn inline_tools(messages: &[ChatMessage], tools: &[ToolSpec]) -> Vec<Value> {
    let mut out = Vec::with_capacity(messages.len() + 1);
    let mut rest = messages;
    if !tools.is_empty() {
        let (system, tail) = match messages.first() {
            Some(m) if m.role == Role::System => (m.content.as_str(), &messages[1..]),
            _ => (DEFAULT_SYSTEM, messages),
        };
        out.push(
            json!({"role": "system", "content": format!("{system}\n\n{}", tools_block(tools))}),
        );
        rest = tail;
    }
    for m in rest {
        let (role, content) = match m.role {
            Role::Assistant if !m.tool_calls.is_empty() => {
                let calls: Vec<String> = m
                    .tool_calls
                    .iter()
                    .map(|c| tool_call_text(&c.name, &c.arguments))
                    .collect();
                let content = if m.content.is_empty() {
                    calls.join("\n")
                } else {
                    format!("{}\n{}", m.content, calls.join("\n"))
                };
                ("assistant", content)
            }
            Role::Tool => (
                "user",
                format!("<tool_response>\n{}\n</tool_response>", m.content),
            ),
            r => (r.as_str(), m.content.clone()),
        };
        out.push(json!({"role": role, "content": content}));
    }
    out
}

/// `tojson` as `transformers` defines it: `json.dumps(x, ensure_ascii=False, indent=indent)`.
fn tojson_filter(value: JinjaValue, kwargs: Kwargs) -> std::result::Result<JinjaValue, JinjaError> {
    let indent: Option<usize> = kwargs.get("indent")?;
    kwargs.assert_all_used()?;
    let v = serde_json::to_value(&value)
        .map_err(|e| JinjaError::new(ErrorKind::InvalidOperation, format!("tojson: {e}")))?;
    Ok(JinjaValue::from_safe_string(py_json(&v, indent)))
}

/// JSON written the way Python's `json.dumps` writes it (`", "`, `": "`,
/// optional indent, non-ASCII kept).
pub fn py_json(v: &Value, indent: Option<usize>) -> String {
    let mut out = String::new();
    write_py_json(v, indent, 0, &mut out);
    out
}

fn write_py_json(v: &Value, indent: Option<usize>, depth: usize, out: &mut String) {
    let newline = |out: &mut String, depth: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.extend(std::iter::repeat_n(' ', n * depth));
        }
    };
    let item_sep = if indent.is_some() { "," } else { ", " };
    match v {
        Value::Array(items) if !items.is_empty() => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                write_py_json(item, indent, depth + 1, out);
            }
            newline(out, depth);
            out.push(']');
        }
        Value::Object(map) if !map.is_empty() => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                out.push_str(&Value::String(k.clone()).to_string());
                out.push_str(": ");
                write_py_json(item, indent, depth + 1, out);
            }
            newline(out, depth);
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::types::ToolCall;

    /// The tool-related part of Qwen2.5's chat template (abridged from the GGUF).
    const QWEN_LIKE: &str = r#"{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {{- '<|im_start|>user\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response><|im_end|>\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
"#;

    /// SmolLM2's template: no tools.
    const SMOL_LIKE: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    fn weather() -> ToolSpec {
        ToolSpec::new(
            "get_weather",
            "Weather in a city",
            json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
        )
    }

    #[test]
    fn renders_plain_conversation() {
        let t = ChatTemplate::new(QWEN_LIKE, "", "<|im_end|>").unwrap();
        let out = t
            .render(
                &[ChatMessage::system("Be brief."), ChatMessage::user("Hi")],
                &[],
                true,
            )
            .unwrap();
        assert_eq!(
            out,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn renders_tools_and_tool_turns_with_python_json() {
        let t = ChatTemplate::new(QWEN_LIKE, "", "<|im_end|>").unwrap();
        assert!(t.native_tools());
        let call = ToolCall {
            id: "call_1".into(),
            name: "get_weather".into(),
            arguments: json!({"city": "Paris"}),
        };
        let out = t
            .render(
                &[
                    ChatMessage::user("Weather in Paris?"),
                    ChatMessage::assistant_calls(vec![call]),
                    ChatMessage::tool("call_1", "get_weather", "sunny"),
                ],
                &[weather()],
                true,
            )
            .unwrap();
        assert!(out.starts_with("<|im_start|>system\nYou are Qwen"), "{out}");
        assert!(
            out.contains(&format!(
                "<tools>\n{}\n</tools>",
                py_json(&weather().to_prompt(), None)
            )),
            "{out}"
        );
        assert!(out.contains(r#""parameters": {"#), "{out}");
        assert!(
            out.contains("<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call><|im_end|>"),
            "{out}"
        );
        assert!(
            out.contains("<|im_start|>user\n<tool_response>\nsunny\n</tool_response><|im_end|>"),
            "{out}"
        );
        assert!(out.ends_with("<|im_start|>assistant\n"));
    }

    #[test]
    fn template_without_tools_gets_a_tools_block_and_text_calls() {
        let t = ChatTemplate::new(SMOL_LIKE, "", "<|im_end|>").unwrap();
        assert!(!t.native_tools());
        let call = ToolCall {
            id: "c".into(),
            name: "get_weather".into(),
            arguments: json!({"city": "Oslo"}),
        };
        let out = t
            .render(
                &[
                    ChatMessage::user("Oslo?"),
                    ChatMessage::assistant_calls(vec![call]),
                    ChatMessage::tool("c", "get_weather", "rain"),
                ],
                &[weather()],
                false,
            )
            .unwrap();
        assert!(
            out.starts_with("<|im_start|>system\nYou are a helpful assistant.\n\n# Tools\n"),
            "{out}"
        );
        assert!(out.contains("<tools>\n{\""), "{out}");
        assert!(out.contains("<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call><|im_end|>"), "{out}");
        assert!(
            out.contains("<|im_start|>user\n<tool_response>\nrain\n</tool_response><|im_end|>"),
            "{out}"
        );
        // Without tools the template's own default system prompt is used.
        let plain = t.render(&[ChatMessage::user("Hi")], &[], true).unwrap();
        assert!(
            plain.starts_with("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
        );
    }

    #[test]
    fn python_string_methods_and_raise_exception_work() {
        let t = ChatTemplate::new(
            "{{ messages[0].content.strip() }}{% if messages|length > 1 %}{{ raise_exception('only one') }}{% endif %}",
            "",
            "",
        )
        .unwrap();
        assert_eq!(
            t.render(&[ChatMessage::user("  hi  ")], &[], false)
                .unwrap(),
            "hi"
        );
        let err = t
            .render(
                &[ChatMessage::user("a"), ChatMessage::user("b")],
                &[],
                false,
            )
            .unwrap_err();
        assert!(err.to_string().contains("only one"), "{err}");
    }

    #[test]
    fn py_json_matches_python() {
        let v = json!({"a": [1, 2, {"b": null}], "c": "é\"", "d": {}, "e": []});
        assert_eq!(
            py_json(&v, None),
            r#"{"a": [1, 2, {"b": null}], "c": "é\"", "d": {}, "e": []}"#
        );
        assert_eq!(
            py_json(&json!({"a": [1]}), Some(2)),
            "{\n  \"a\": [\n    1\n  ]\n}"
        );
    }
}
