//! Tool calls in the forms small models write them:
//!
//! - `<tool_call>{"name": …, "arguments": {…}}</tool_call>` (Qwen2.5, Hermes; the
//!   closing tag may be cut off at the end of the output),
//! - a fenced block (` ```json … ``` `) holding such an object,
//! - a bare JSON object, alone or after some text.
//!
//! An object names its function with `name` (or `function.name`) and gives its
//! arguments as `arguments` or `parameters`, as an object or a JSON string.
//! [`validate_call`] checks a call against the offered tools' JSON Schemas.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

use super::types::{ToolCall, ToolSpec};

/// What [`parse_tool_calls`] found in a model's output.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParsedOutput {
    /// The text outside the calls, trimmed; `None` when nothing is left.
    pub content: Option<String>,
    /// Calls that parsed (not yet checked against the tools).
    pub tool_calls: Vec<ToolCall>,
    /// Whether the output looked like an attempt to call a tool (a tag, a
    /// fence or a JSON object), whether or not it parsed.
    pub attempted: bool,
}

/// Finds tool calls in `text`.
pub fn parse_tool_calls(text: &str) -> ParsedOutput {
    let mut calls = Vec::new();
    let mut kept = String::new();

    // 1. <tool_call> … </tool_call> blocks.
    if text.contains("<tool_call>") {
        let mut rest = text;
        while let Some(start) = rest.find("<tool_call>") {
            kept.push_str(&rest[..start]);
            let after = &rest[start + "<tool_call>".len()..];
            let (body, next) = match after.find("</tool_call>") {
                Some(end) => (&after[..end], &after[end + "</tool_call>".len()..]),
                None => (after, ""),
            };
            match first_json_object(body) {
                Some((v, _, _)) => calls.extend(call_from_value(&v)),
                None => kept.push_str(&rest[start..rest.len() - next.len()]),
            }
            rest = next;
        }
        kept.push_str(rest);
        return finish(kept, calls, true);
    }

    // 2. Fenced blocks: ```json … ``` (or a bare ``` fence).
    if text.contains("```") {
        let mut rest = text;
        let mut found = false;
        while let Some(start) = rest.find("```") {
            let after = &rest[start + 3..];
            let body_start = after.find('\n').map_or(0, |i| i + 1);
            let lang = after[..body_start].trim();
            let body_and_rest = &after[body_start..];
            let (body, next) = match body_and_rest.find("```") {
                Some(end) => (&body_and_rest[..end], &body_and_rest[end + 3..]),
                None => (body_and_rest, ""),
            };
            let parsed =
                (lang.is_empty() || lang.eq_ignore_ascii_case("json") || lang == "tool_call")
                    .then(|| serde_json::from_str::<Value>(body.trim()).ok())
                    .flatten()
                    .map(|v| calls_from_json(&v))
                    .filter(|c| !c.is_empty());
            match parsed {
                Some(c) => {
                    found = true;
                    kept.push_str(&rest[..start]);
                    calls.extend(c);
                }
                None => kept.push_str(&rest[..rest.len() - next.len()]),
            }
            rest = next;
        }
        if found {
            kept.push_str(rest);
            return finish(kept, calls, true);
        }
        kept.clear();
    }

    // 3. A bare JSON object (or array of them) somewhere in the text.
    if let Some((v, start, end)) = first_json_object(text) {
        let found = calls_from_json(&v);
        if !found.is_empty() {
            kept.push_str(&text[..start]);
            kept.push_str(&text[end..]);
            return finish(kept, found, true);
        }
    }
    let attempted = text.trim_start().starts_with('{');
    finish(text.to_string(), Vec::new(), attempted)
}

fn finish(kept: String, tool_calls: Vec<ToolCall>, attempted: bool) -> ParsedOutput {
    let content = kept.trim();
    ParsedOutput {
        content: (!content.is_empty()).then(|| content.to_string()),
        tool_calls,
        attempted,
    }
}

/// The first JSON object or array in `s` that parses, with its byte span.
fn first_json_object(s: &str) -> Option<(Value, usize, usize)> {
    for (i, ch) in s.char_indices() {
        if ch != '{' && ch != '[' {
            continue;
        }
        let mut it = serde_json::Deserializer::from_str(&s[i..]).into_iter::<Value>();
        if let Some(Ok(v)) = it.next() {
            return Some((v, i, i + it.byte_offset()));
        }
    }
    None
}

fn calls_from_json(v: &Value) -> Vec<ToolCall> {
    match v {
        Value::Array(items) => items.iter().filter_map(call_from_value).collect(),
        other => call_from_value(other).into_iter().collect(),
    }
}

/// One call from an object in any of the accepted shapes.
fn call_from_value(v: &Value) -> Option<ToolCall> {
    let obj = v.as_object()?;
    let inner = obj
        .get("function")
        .and_then(Value::as_object)
        .unwrap_or(obj);
    let name = inner.get("name")?.as_str()?.to_string();
    let args = inner
        .get("arguments")
        .or_else(|| inner.get("parameters"))
        .cloned();
    let arguments = match args {
        None | Some(Value::Null) => Value::Object(Default::default()),
        Some(Value::String(s)) => serde_json::from_str(&s).ok()?,
        Some(v @ Value::Object(_)) => v,
        Some(_) => return None,
    };
    Some(ToolCall {
        id: new_call_id(),
        name,
        arguments,
    })
}

/// A fresh id for a tool call (`call_…`), unique within the process.
pub fn new_call_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("call_{t:08x}{n:04x}")
}

/// Checks that a call names one of `tools` and that its arguments validate
/// against that tool's JSON Schema. The error says what is wrong.
pub fn validate_call(call: &ToolCall, tools: &[ToolSpec]) -> Result<(), String> {
    let tool = tools
        .iter()
        .find(|t| t.name == call.name)
        .ok_or_else(|| format!("`{}` is not one of the offered tools", call.name))?;
    let validator = jsonschema::validator_for(&tool.parameters)
        .map_err(|e| format!("the schema of `{}` is invalid: {e}", tool.name))?;
    let errors: Vec<String> = validator
        .iter_errors(&call.arguments)
        .map(|e| format!("{} at `{}`", e, e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "arguments of `{}` do not validate: {}",
            call.name,
            errors.join("; ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(p: &ParsedOutput) -> Vec<&str> {
        p.tool_calls.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn tagged_calls() {
        let p = parse_tool_calls(
            "<tool_call>\n{\"name\": \"create_contact\", \"arguments\": {\"name\": \"Jane Doe\"}}\n</tool_call>\n\
             <tool_call>\n{\"name\": \"log_activity\", \"arguments\": \"{\\\"kind\\\": \\\"call\\\"}\"}\n</tool_call>",
        );
        assert_eq!(names(&p), ["create_contact", "log_activity"]);
        assert_eq!(p.tool_calls[0].arguments, json!({"name": "Jane Doe"}));
        assert_eq!(p.tool_calls[1].arguments, json!({"kind": "call"}));
        assert_eq!(p.content, None);
        assert!(p.attempted);
        assert_ne!(p.tool_calls[0].id, p.tool_calls[1].id);
    }

    #[test]
    fn tagged_call_without_closing_tag_and_with_text() {
        let p = parse_tool_calls(
            "Sure.\n<tool_call>\n{\"name\": \"search\", \"arguments\": {\"query\": \"acme\"}}",
        );
        assert_eq!(names(&p), ["search"]);
        assert_eq!(p.content.as_deref(), Some("Sure."));
    }

    #[test]
    fn broken_tagged_call_is_an_attempt_without_calls() {
        let p = parse_tool_calls(
            "<tool_call>\n{\"name\": \"search\", \"arguments\": {\"query\": </tool_call>",
        );
        assert!(p.tool_calls.is_empty());
        assert!(p.attempted);
        assert!(p.content.unwrap().contains("<tool_call>"));
    }

    #[test]
    fn fenced_json() {
        let p = parse_tool_calls(
            "I'll add her.\n```json\n{\"name\": \"create_contact\", \"parameters\": {\"name\": \"Jane\"}}\n```\nDone.",
        );
        assert_eq!(names(&p), ["create_contact"]);
        assert_eq!(p.tool_calls[0].arguments, json!({"name": "Jane"}));
        assert_eq!(p.content.as_deref(), Some("I'll add her.\n\nDone."));
    }

    #[test]
    fn fenced_code_that_is_not_a_call_stays_text() {
        let text = "Example:\n```python\nprint({'a': 1})\n```";
        let p = parse_tool_calls(text);
        assert!(p.tool_calls.is_empty());
        assert_eq!(p.content.as_deref(), Some(text));
    }

    #[test]
    fn bare_objects_and_openai_shape() {
        let p = parse_tool_calls("{\"name\": \"search\", \"arguments\": {\"query\": \"x\"}}");
        assert_eq!(names(&p), ["search"]);
        let p = parse_tool_calls(
            "Calling: {\"type\": \"function\", \"function\": {\"name\": \"search\", \"arguments\": \"{}\"}}",
        );
        assert_eq!(names(&p), ["search"]);
        assert_eq!(p.content.as_deref(), Some("Calling:"));
        let p = parse_tool_calls("[{\"name\": \"a\"}, {\"name\": \"b\", \"arguments\": {}}]");
        assert_eq!(names(&p), ["a", "b"]);
    }

    #[test]
    fn plain_text_is_not_a_call() {
        let p = parse_tool_calls("Hello! How can I help?");
        assert!(p.tool_calls.is_empty());
        assert!(!p.attempted);
        assert_eq!(p.content.as_deref(), Some("Hello! How can I help?"));
        let p = parse_tool_calls("{\"answer\": 42}");
        assert!(p.tool_calls.is_empty());
        assert!(p.attempted);
    }

    #[test]
    fn validation_against_schemas() {
        let tools = vec![ToolSpec::new(
            "create_contact",
            "",
            json!({"type": "object", "properties": {"name": {"type": "string"}, "email": {"type": "string", "format": "email"}},
                   "required": ["name"], "additionalProperties": false}),
        )];
        let call = |name: &str, args: Value| ToolCall {
            id: "c".into(),
            name: name.into(),
            arguments: args,
        };
        assert!(validate_call(&call("create_contact", json!({"name": "Jane"})), &tools).is_ok());
        let err = validate_call(&call("create_contact", json!({"email": "j@x.com"})), &tools)
            .unwrap_err();
        assert!(err.contains("name"), "{err}");
        let err = validate_call(
            &call("create_contact", json!({"name": "J", "phone": "1"})),
            &tools,
        )
        .unwrap_err();
        assert!(err.contains("phone"), "{err}");
        assert!(validate_call(&call("delete_all", json!({})), &tools).is_err());
    }
}
