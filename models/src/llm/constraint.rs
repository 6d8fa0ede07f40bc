//! Schema-constrained decoding: the llguidance grammar (Lark syntax with
//! inline JSON Schemas) built from the offered tools.
//!
//! With `tool_choice: auto` the model may write plain text (which must not
//! start with `<`, `{` or a backtick) *or* one or more calls
//! `<tool_call>\n{"name": …, "arguments": {…}}\n</tool_call>`, *or* one call as
//! a fenced (` ```json `) or bare JSON object, the other forms small models
//! reach for; once it starts a call, every token is masked so that the name is
//! one of the offered tools and the arguments validate against that tool's
//! JSON Schema. With
//! `required` only calls are allowed, and with a named function only calls of
//! that function. After the last call the grammar accepts only end-of-turn.
//! With `none` and tools in the prompt only text is allowed: a small model
//! told to answer otherwise imitates the calls above it as JSON.
//!
//! Arrays get an upper bound on their length (the number of allowed values
//! for an array of an enum, [`MAX_ITEMS`] otherwise): a 0.5B model can loop
//! on `"types": ["deal", "deal", …]` until it runs out of tokens. Numbers get
//! bounds on their size ([`MAX_MAGNITUDE`]) for the same reason: it has
//! written `"rep_id": 1` followed by 319 zeros, and a deal value of 48
//! followed by sixteen.
//!
//! JSON is written with the separators the model was trained on (`", "` and
//! `": "`) and no free whitespace, which keeps the model on familiar tokens
//! and stops it from padding with blanks.

use serde_json::{Value, json};

use super::types::{ToolChoice, ToolSpec};
use super::{LlmError, Result};

/// Most calls one constrained turn may contain.
pub const MAX_CALLS: usize = 4;

/// Most items of an array argument whose schema sets no bound.
pub const MAX_ITEMS: usize = 16;

/// Largest size of a number argument whose schema sets no bound: twelve
/// digits hold any record id and any amount a CRM holds, and stop a run of
/// zeros after a dozen tokens instead of hundreds.
pub const MAX_MAGNITUDE: i64 = 999_999_999_999;

/// Plain text: anything that does not open a call.
const TEXT_RULE: &str = "TEXT: /[^<{`](.|\\n)*/";

/// The grammar for `tools` under `choice`, or `None` when nothing is constrained
/// (no tools offered, or `tool_choice: none`). `parallel` allows up to
/// [`MAX_CALLS`] calls in the turn, otherwise one.
pub fn tool_grammar(
    tools: &[ToolSpec],
    choice: &ToolChoice,
    parallel: bool,
) -> Result<Option<String>> {
    let offered: Vec<&ToolSpec> = match choice {
        ToolChoice::None if tools.is_empty() => return Ok(None),
        ToolChoice::None => {
            return Ok(Some(format!(
                "%llguidance {{}}\nstart: TEXT\n{TEXT_RULE}\n"
            )));
        }
        ToolChoice::Function(name) => {
            let t = tools.iter().find(|t| &t.name == name).ok_or_else(|| {
                LlmError::InvalidRequest(format!(
                    "tool_choice names `{name}`, which is not among the offered tools"
                ))
            })?;
            vec![t]
        }
        ToolChoice::Auto | ToolChoice::Required => tools.iter().collect(),
    };
    if offered.is_empty() {
        if *choice == ToolChoice::Required {
            return Err(LlmError::InvalidRequest(
                "tool_choice is `required` but no tools were offered".into(),
            ));
        }
        return Ok(None);
    }
    let schema = call_schema(&offered);
    let start = match choice {
        ToolChoice::Auto => "start: TEXT | calls | fenced | body",
        _ => "start: calls",
    };
    let calls = if parallel {
        format!("call (\"\\n\" call){{0,{}}}", MAX_CALLS - 1)
    } else {
        "call".to_string()
    };
    Ok(Some(format!(
        "%llguidance {{}}\n\
         {start}\n\
         {TEXT_RULE}\n\
         calls: {calls}\n\
         call: \"<tool_call>\\n\" body \"\\n</tool_call>\"\n\
         fenced: \"```json\\n\" body \"\\n```\"\n\
         body: %json {schema}\n"
    )))
}

/// The JSON Schema of one call of any of `tools`.
pub fn call_schema(tools: &[&ToolSpec]) -> Value {
    let alternatives: Vec<Value> = tools
        .iter()
        .map(|t| {
            json!({
                "type": "object",
                "properties": {
                    "name": {"const": t.name},
                    "arguments": bound_sizes(inline_refs(&t.parameters)),
                },
                "required": ["name", "arguments"],
                "additionalProperties": false,
            })
        })
        .collect();
    let mut schema = if alternatives.len() == 1 {
        alternatives.into_iter().next().unwrap_or_default()
    } else {
        json!({"anyOf": alternatives})
    };
    schema["x-guidance"] = json!({
        "whitespace_flexible": false,
        "item_separator": ", ",
        "key_separator": ": ",
        "lenient": true,
    });
    schema
}

/// The schema with its local `$ref`s (`#/$defs/…`, `#/definitions/…`)
/// replaced by what they point to. A tool's schema becomes one branch of the
/// call schema, where its `$defs` would no longer be at the root the
/// references assume. A recursive definition stops after
/// [`MAX_RECURSION`] levels (an open object there).
pub fn inline_refs(schema: &Value) -> Value {
    let defs = schema
        .get("$defs")
        .or_else(|| schema.get("definitions"))
        .cloned()
        .unwrap_or(Value::Null);
    let mut out = resolve(schema, &defs, &mut Vec::new());
    if let Value::Object(m) = &mut out {
        m.remove("$defs");
        m.remove("definitions");
    }
    out
}

/// The schema with a `maxItems` on every array that has none (the number
/// of allowed values for an array of an enum, [`MAX_ITEMS`] otherwise), and
/// a `minimum` and `maximum` of ±[`MAX_MAGNITUDE`] on every integer or
/// number that lacks them.
pub fn bound_sizes(mut schema: Value) -> Value {
    bound_in(&mut schema);
    schema
}

/// Whether a schema object's `type` names `kind` (or, with no `type`,
/// whether it has `keyword`, which only that kind uses).
fn has_type(m: &serde_json::Map<String, Value>, kind: &str, keyword: &str) -> bool {
    match m.get("type") {
        Some(Value::String(t)) => t == kind,
        Some(Value::Array(ts)) => ts.iter().any(|t| t == kind),
        _ => m.contains_key(keyword),
    }
}

fn bound_in(v: &mut Value) {
    match v {
        Value::Object(m) => {
            let is_number = has_type(m, "integer", "maximum") || has_type(m, "number", "maximum");
            let unbounded = ["exclusiveMinimum", "exclusiveMaximum", "enum", "const"]
                .iter()
                .all(|k| !m.contains_key(*k));
            if is_number && unbounded {
                m.entry("minimum").or_insert(json!(-MAX_MAGNITUDE));
                m.entry("maximum").or_insert(json!(MAX_MAGNITUDE));
            }
            if has_type(m, "array", "items") && !m.contains_key("maxItems") {
                let distinct = m
                    .get("items")
                    .and_then(|i| i.get("enum"))
                    .and_then(Value::as_array)
                    .map_or(MAX_ITEMS, Vec::len);
                m.insert("maxItems".into(), json!(distinct.min(MAX_ITEMS)));
            }
            m.values_mut().for_each(bound_in);
        }
        Value::Array(a) => a.iter_mut().for_each(bound_in),
        _ => {}
    }
}

/// How often one definition may sit inside itself (a filter's `and` group
/// holding filters): two levels of groups are plenty for a request in words,
/// and each further level doubles the grammar (`and` and `or` both recurse).
const MAX_RECURSION: usize = 2;

fn resolve(v: &Value, defs: &Value, path: &mut Vec<String>) -> Value {
    match v {
        Value::Object(m) => {
            if let Some(target) = m.get("$ref").and_then(Value::as_str) {
                let name = target
                    .strip_prefix("#/$defs/")
                    .or_else(|| target.strip_prefix("#/definitions/"));
                if let Some((name, def)) = name.and_then(|n| Some((n, defs.get(n)?))) {
                    if path.iter().filter(|p| *p == name).count() >= MAX_RECURSION {
                        return json!({"type": "object"});
                    }
                    path.push(name.to_owned());
                    let mut merged = resolve(def, defs, path);
                    path.pop();
                    // Keywords beside the $ref (a description) stay.
                    if let Value::Object(mm) = &mut merged {
                        for (k, x) in m.iter().filter(|(k, _)| k.as_str() != "$ref") {
                            mm.insert(k.clone(), resolve(x, defs, path));
                        }
                    }
                    return merged;
                }
            }
            Value::Object(
                m.iter()
                    .map(|(k, x)| (k.clone(), resolve(x, defs, path)))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| resolve(x, defs, path)).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use llguidance::{Matcher, ParserFactory, api::TopLevelGrammar};
    use toktrie::{ApproximateTokEnv, TokEnv, TokRxInfo, TokTrie};

    use super::*;

    const EOS: u32 = 256;

    /// A byte-level tokenizer: token `b` is byte `b`, token 256 is end-of-turn.
    fn byte_env() -> TokEnv {
        let info = TokRxInfo::new(257, EOS);
        let mut words: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        words.push(b"\xFF<|im_end|>".to_vec());
        Arc::new(ApproximateTokEnv::new(TokTrie::from(&info, &words)))
    }

    fn tools() -> Vec<ToolSpec> {
        vec![
            ToolSpec::new(
                "create_contact",
                "Add a person",
                json!({"type": "object",
                       "properties": {"name": {"type": "string"}, "email": {"type": "string"}},
                       "required": ["name"], "additionalProperties": false}),
            ),
            ToolSpec::new(
                "move_deal_stage",
                "Move a deal",
                json!({"type": "object",
                       "properties": {"deal": {"type": "string"},
                                      "stage": {"enum": ["lead", "qualified", "won", "lost"]}},
                       "required": ["deal", "stage"], "additionalProperties": false}),
            ),
        ]
    }

    /// Whether the grammar lets a sampler write `text` followed by end-of-turn.
    fn accepts(grammar: &str, text: &str) -> bool {
        let env = byte_env();
        let factory = ParserFactory::new_simple(&env).unwrap();
        let mut m =
            Matcher::new(factory.create_parser(TopLevelGrammar::from_lark(grammar.to_string())));
        assert!(
            !m.is_error(),
            "grammar does not compile: {:?}\n{grammar}",
            m.get_error()
        );
        // As in sampling: each token must be allowed by the mask before it is consumed.
        for t in text.bytes().map(u32::from).chain([EOS]) {
            match m.compute_mask_or_eos() {
                Ok(mask) if mask.is_allowed(t) => {}
                _ => return false,
            }
            if t == EOS {
                return true;
            }
            if m.consume_token(t).is_err() || m.is_error() {
                return false;
            }
        }
        false
    }

    const CALL: &str = "<tool_call>\n{\"name\": \"create_contact\", \"arguments\": {\"name\": \"Jane Doe\", \"email\": \"jane@acme.com\"}}\n</tool_call>";

    #[test]
    fn a_recursive_definition_is_spelled_out_twice_then_left_open() {
        let schema = json!({
            "type": "object",
            "properties": {"f": {"$ref": "#/$defs/F"}},
            "$defs": {"F": {"anyOf": [
                {"type": "object", "properties": {"and": {"type": "array", "items": {"$ref": "#/$defs/F"}}}},
                {"type": "string"}
            ]}}
        });
        let out = inline_refs(&schema);
        let inner = &out["properties"]["f"]["anyOf"][0]["properties"]["and"]["items"];
        assert_eq!(inner["anyOf"][1], json!({"type": "string"}), "{out}");
        assert_eq!(
            inner["anyOf"][0]["properties"]["and"]["items"],
            json!({"type": "object"}),
            "{out}"
        );
    }

    #[test]
    fn refs_are_inlined_so_a_tool_schema_can_sit_inside_the_call_schema() {
        let schema = json!({
            "type": "object",
            "properties": {"types": {"type": ["array", "null"], "items": {"$ref": "#/$defs/Kind"}},
                            "one": {"$ref": "#/$defs/Kind", "description": "which"}},
            "$defs": {"Kind": {"type": "string", "enum": ["a", "b"]}}
        });
        let out = inline_refs(&schema);
        assert_eq!(
            out["properties"]["types"]["items"],
            json!({"type": "string", "enum": ["a", "b"]})
        );
        assert_eq!(out["properties"]["one"]["description"], "which");
        assert!(out.get("$defs").is_none());
        assert!(!out.to_string().contains("$ref"));
    }

    #[test]
    fn auto_allows_text_or_valid_calls() {
        let g = tool_grammar(&tools(), &ToolChoice::Auto, true)
            .unwrap()
            .unwrap();
        assert!(accepts(&g, "Hello, how can I help?"));
        assert!(accepts(&g, CALL));
        let two = format!(
            "{CALL}\n<tool_call>\n{{\"name\": \"move_deal_stage\", \"arguments\": {{\"deal\": \"Acme\", \"stage\": \"won\"}}}}\n</tool_call>"
        );
        assert!(accepts(&g, &two));
        let single = tool_grammar(&tools(), &ToolChoice::Auto, false)
            .unwrap()
            .unwrap();
        assert!(accepts(&single, CALL));
        assert!(!accepts(&single, &two));
        // Unknown tool, missing required argument, value outside the enum, extra argument, bare JSON.
        assert!(!accepts(
            &g,
            &CALL.replace("create_contact", "delete_everything")
        ));
        assert!(!accepts(
            &g,
            "<tool_call>\n{\"name\": \"create_contact\", \"arguments\": {\"email\": \"j@x.com\"}}\n</tool_call>"
        ));
        assert!(!accepts(
            &g,
            "<tool_call>\n{\"name\": \"move_deal_stage\", \"arguments\": {\"deal\": \"A\", \"stage\": \"maybe\"}}\n</tool_call>"
        ));
        assert!(!accepts(
            &g,
            "<tool_call>\n{\"name\": \"create_contact\", \"arguments\": {\"name\": \"J\", \"phone\": \"1\"}}\n</tool_call>"
        ));
        assert!(!accepts(&g, "{\"name\": \"create_contact\"}"));
        assert!(!accepts(
            &g,
            "```json\n{\"name\": \"search\", \"arguments\": {}}\n```"
        ));
        // Fenced and bare calls are allowed, and held to the schema too.
        let body = "{\"name\": \"move_deal_stage\", \"arguments\": {\"deal\": \"Acme\", \"stage\": \"won\"}}";
        assert!(accepts(&g, &format!("```json\n{body}\n```")));
        assert!(accepts(&g, body));
        assert!(!accepts(
            &g,
            &format!("```json\n{}\n```", body.replace("won", "maybe"))
        ));
        assert!(!accepts(&g, "```python\nprint(1)\n```"));
    }

    #[test]
    fn required_and_named_allow_only_calls() {
        let g = tool_grammar(&tools(), &ToolChoice::Required, true)
            .unwrap()
            .unwrap();
        assert!(accepts(&g, CALL));
        assert!(!accepts(&g, "Sure, I can do that."));
        let g = tool_grammar(
            &tools(),
            &ToolChoice::Function("move_deal_stage".into()),
            true,
        )
        .unwrap()
        .unwrap();
        assert!(!accepts(&g, CALL));
        assert!(accepts(
            &g,
            "<tool_call>\n{\"name\": \"move_deal_stage\", \"arguments\": {\"deal\": \"Acme\", \"stage\": \"lost\"}}\n</tool_call>"
        ));
    }

    #[test]
    fn none_allows_text_only_no_tools_is_unconstrained_and_bad_choices_fail() {
        let g = tool_grammar(&tools(), &ToolChoice::None, true)
            .unwrap()
            .unwrap();
        assert!(accepts(&g, "Created Jane Doe (contact 4)."));
        assert!(!accepts(&g, CALL));
        assert!(!accepts(&g, "{\"name\": \"create_contact\"}"));
        assert_eq!(tool_grammar(&[], &ToolChoice::None, true).unwrap(), None);
        assert_eq!(tool_grammar(&[], &ToolChoice::Auto, true).unwrap(), None);
        assert!(tool_grammar(&[], &ToolChoice::Required, true).is_err());
        assert!(tool_grammar(&tools(), &ToolChoice::Function("nope".into()), true).is_err());
    }

    #[test]
    fn arrays_are_bounded_so_a_repeating_model_must_stop() {
        let t = ToolSpec::new(
            "find_records",
            "Find",
            json!({"type": "object",
                   "properties": {"query": {"type": "string"},
                                  "types": {"type": ["array", "null"],
                                            "items": {"enum": ["company", "deal"]}},
                                  "tags": {"type": "array", "items": {"type": "string"}}},
                   "required": ["query"], "additionalProperties": false}),
        );
        let s = call_schema(&[&t]);
        let args = &s["properties"]["arguments"]["properties"];
        assert_eq!(args["types"]["maxItems"], 2);
        assert_eq!(args["tags"]["maxItems"], MAX_ITEMS);
        let g = tool_grammar(&[t], &ToolChoice::Required, false)
            .unwrap()
            .unwrap();
        let call = |types: &str| {
            format!(
                "<tool_call>\n{{\"name\": \"find_records\", \"arguments\": {{\"query\": \"Globex\", \"types\": [{types}]}}}}\n</tool_call>"
            )
        };
        assert!(accepts(&g, &call("\"company\", \"deal\"")));
        assert!(!accepts(&g, &call("\"company\", \"deal\", \"deal\"")));
    }

    #[test]
    fn numbers_are_bounded_so_a_run_of_zeros_must_stop() {
        let t = ToolSpec::new(
            "update_deal",
            "Update",
            json!({"type": "object",
                   "properties": {"id": {"type": "integer", "format": "int64"},
                                  "value": {"type": ["number", "null"]},
                                  "limit": {"type": "integer", "minimum": 1, "maximum": 50}},
                   "required": ["id"], "additionalProperties": false}),
        );
        let s = call_schema(&[&t]);
        let args = &s["properties"]["arguments"]["properties"];
        assert_eq!(args["id"]["maximum"], MAX_MAGNITUDE);
        assert_eq!(args["value"]["minimum"], -MAX_MAGNITUDE);
        assert_eq!(args["limit"]["maximum"], 50, "a bound of its own stays");
        let g = tool_grammar(&[t], &ToolChoice::Required, false)
            .unwrap()
            .unwrap();
        let call = |args: &str| {
            format!(
                "<tool_call>\n{{\"name\": \"update_deal\", \"arguments\": {{{args}}}}}\n</tool_call>"
            )
        };
        assert!(accepts(&g, &call("\"id\": 999999999999")));
        assert!(accepts(&g, &call("\"id\": -7, \"value\": 48000000.5")));
        assert!(!accepts(&g, &call(&format!("\"id\": 1{}", "0".repeat(12)))));
        assert!(!accepts(
            &g,
            &call(&format!("\"id\": 1, \"value\": 48{}", "0".repeat(16)))
        ));
    }

    #[test]
    fn call_schema_keeps_name_before_arguments() {
        let t = tools();
        let s = call_schema(&[&t[0]]);
        let keys: Vec<&String> = s["properties"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["name", "arguments"]);
    }
}
