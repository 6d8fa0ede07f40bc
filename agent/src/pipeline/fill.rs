//! The fill: one constrained call per step, for the values of the fields the
//! plan named — and nothing else.
//!
//! Its grammar ([`grammar`]) is the tool's schema cut to the step's fields
//! plus the tool's required value fields, every one of them required, ids
//! left out (the resolver sets them). So the model cannot write a field the
//! user did not give a value for, nor an id: a request to push a close date
//! cannot also set a status. A step with nothing left to fill makes no call.

use rapport_models::llm::{ChatMessage, ToolSpec};
use serde_json::{Map, Value, json};

use super::examples::ExampleStep;
use super::plan::{Step, is_id_field};

/// The fill's schema for `step` of a tool whose argument schema is `schema`:
/// the step's fields and the required value fields, all required; `None`
/// when there is nothing to fill.
pub fn grammar(schema: &Value, step: &Step) -> Option<Value> {
    let props = schema.get("properties").and_then(Value::as_object)?;
    let required: Vec<&str> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|r| !is_id_field(r))
        .collect();
    let mut cut = Map::new();
    for (name, def) in props {
        let planned = step.fields.iter().any(|f| f == name);
        if !is_id_field(name) && (planned || required.contains(&name.as_str())) {
            cut.insert(name.clone(), def.clone());
        }
    }
    if cut.is_empty() {
        return None;
    }
    let names: Vec<String> = cut.keys().cloned().collect();
    let mut g = json!({
        "type": "object",
        "properties": cut,
        "required": names,
        "additionalProperties": false,
    });
    // Definitions the cut properties refer to (`$ref`) travel with them.
    for key in ["$defs", "definitions"] {
        if let Some(d) = schema.get(key) {
            g[key] = d.clone();
        }
    }
    Some(g)
}

/// The fill as a call of the tool the backend constrains to `grammar`.
pub fn tool_spec(tool: &str, description: &str, grammar: Value) -> ToolSpec {
    ToolSpec::new(tool, description, grammar)
}

/// The tool's arguments: the fill's values (only those the grammar allows)
/// and the resolved ids.
pub fn arguments(fill: &Map<String, Value>, grammar: &Value, ids: &Map<String, Value>) -> Value {
    let allowed = grammar.get("properties").and_then(Value::as_object);
    let mut args: Map<String, Value> = fill
        .iter()
        .filter(|(k, _)| allowed.is_some_and(|a| a.contains_key(*k)) && !is_id_field(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, v) in ids {
        args.insert(k.clone(), v.clone());
    }
    Value::Object(args)
}

/// Leaves out the filled values of optional fields that the request does
/// not ground, and returns their names. The plan's list of "fields the user
/// gave" is the small model's own claim, and it claims too much: a new task
/// filled `status: done` with a `completed_at`, a logged call an `outcome`
/// and a follow-up "Send Dana Lee the rollout plan" copied from a worked
/// example. A value is grounded when the user could have said it:
/// text sharing three quarters of its words with the request, a date or
/// time when the request names one (`dated`), a number when the request
/// holds a figure, objects and lists whose every value is. Required fields
/// stay (the tool needs them, and the fill had to write them).
pub fn ungrounded(
    values: &mut Map<String, Value>,
    tool_schema: &Value,
    request: &str,
    dated: bool,
) -> Vec<String> {
    let required: Vec<&str> = tool_schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let said = Said::of(request, dated);
    let mut dropped = Vec::new();
    values.retain(|k, v| {
        let keep = required.contains(&k.as_str()) || said.grounds(v);
        if !keep {
            dropped.push(k.clone());
        }
        keep
    });
    dropped
}

/// What a request says, for [`ungrounded`].
struct Said {
    words: Vec<String>,
    figures: bool,
    dated: bool,
}

impl Said {
    fn of(request: &str, dated: bool) -> Said {
        Said {
            words: content_words(request),
            figures: request.chars().any(|c| c.is_ascii_digit()),
            dated,
        }
    }

    fn grounds(&self, v: &Value) -> bool {
        match v {
            Value::Null | Value::Bool(_) => true,
            Value::Number(_) => self.figures,
            Value::String(s) if is_date_or_time(s) => self.dated,
            Value::String(s) => {
                let words = content_words(s);
                let known = words.iter().filter(|w| self.knows(w)).count();
                words.is_empty() || 4 * known >= 3 * words.len()
            }
            Value::Array(a) => a.iter().all(|x| self.grounds(x)),
            Value::Object(m) => m.values().all(|x| self.grounds(x)),
        }
    }

    /// The request has this word, or one of the same stem ("unqualified"
    /// for `unqualified`, "convert" for `converted`).
    fn knows(&self, w: &str) -> bool {
        self.words.iter().any(|s| s == w || same_stem(s, w))
    }
}

/// Lower-case words of three letters or more, but the commonest.
fn content_words(text: &str) -> Vec<String> {
    const COMMON: &[&str] = &["the", "and", "for", "with", "that", "this", "from", "has"];
    text.split(|c: char| !c.is_alphanumeric())
        .map(str::to_lowercase)
        .filter(|w| w.chars().count() >= 3 && !COMMON.contains(&w.as_str()))
        .collect()
}

/// Two words share a stem: a common start of at least five letters that
/// covers all but three letters of each ("disqualify"/"disqualified").
fn same_stem(a: &str, b: &str) -> bool {
    let common = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
    let (la, lb) = (a.chars().count(), b.chars().count());
    common >= 5 && la - common <= 3 && lb - common <= 3
}

/// An ISO date or date-time, as the schemas' `date` and `date-time` fields hold.
fn is_date_or_time(s: &str) -> bool {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
        || chrono::DateTime::parse_from_rfc3339(s).is_ok()
}

/// The fill prompt: the cut schema, the nearest examples for the tool (their
/// span and fill), then the request, the step's span and the records the
/// resolver found (as labels: "Wren Halloway (contact 12)").
pub fn prompt(
    tool: &str,
    grammar: &Value,
    examples: &[&ExampleStep],
    request: &str,
    span: &str,
    resolved: &[String],
) -> Vec<ChatMessage> {
    let mut system = format!(
        "Fill in the arguments of {tool} for the user's request: only the values the user \
         gave, in the user's words. Ids are already set.\nSchema: {}\n",
        serde_json::to_string(grammar).unwrap_or_default()
    );
    if !examples.is_empty() {
        system.push_str("Examples:\n");
        for e in examples {
            system.push_str(&format!(
                "- about {:?}: {}\n",
                e.span,
                serde_json::to_string(&e.fill).unwrap_or_default()
            ));
        }
    }
    let mut user = format!("Request: {request}\nThis step is about: {span}");
    if !resolved.is_empty() {
        user.push_str(&format!("\nRecords: {}", resolved.join("; ")));
    }
    vec![ChatMessage::system(system), ChatMessage::user(user)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update_deal() -> Value {
        json!({
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "value": {"type": "number"},
                "status": {"type": "string", "enum": ["open", "won", "lost"]},
                "expected_close_date": {"type": "string", "format": "date"},
                "company_id": {"type": "integer"},
            },
            "required": ["id"],
            "additionalProperties": false,
        })
    }

    fn step(fields: &[&str]) -> Step {
        Step {
            action: "update_deal".into(),
            fields: fields.iter().map(|s| s.to_string()).collect(),
            span: "the deal".into(),
        }
    }

    #[test]
    fn the_grammar_is_the_schema_cut_to_the_planned_fields() {
        let g = grammar(&update_deal(), &step(&["expected_close_date"])).unwrap();
        let props = g["properties"].as_object().unwrap();
        assert_eq!(props.keys().collect::<Vec<_>>(), ["expected_close_date"]);
        assert_eq!(g["required"], json!(["expected_close_date"]));
        assert_eq!(g["additionalProperties"], false);
        // A step naming no value field of a tool with no required value field
        // (complete_task, get_deal) has nothing to fill.
        assert!(grammar(&update_deal(), &step(&[])).is_none());
        // An id named by mistake is not offered.
        assert!(grammar(&update_deal(), &step(&["company_id"])).is_none());
    }

    #[test]
    fn required_value_fields_are_always_filled() {
        let close = json!({
            "type": "object",
            "properties": {"deal_id": {"type": "integer"}, "outcome": {"enum": ["won", "lost"]},
                           "reason": {"type": "string"}},
            "required": ["deal_id", "outcome", "reason"],
        });
        let g = grammar(&close, &step(&["outcome"])).unwrap();
        let mut req: Vec<&str> = g["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        req.sort();
        assert_eq!(req, ["outcome", "reason"]);
    }

    #[test]
    fn arguments_keep_only_the_grammar_and_the_resolved_ids() {
        let g = grammar(&update_deal(), &step(&["value"])).unwrap();
        let fill: Map<String, Value> =
            serde_json::from_value(json!({"value": 71500, "status": "won", "id": 99})).unwrap();
        let ids: Map<String, Value> = serde_json::from_value(json!({"id": 7})).unwrap();
        assert_eq!(arguments(&fill, &g, &ids), json!({"value": 71500, "id": 7}));
    }

    #[test]
    fn values_the_request_does_not_ground_are_left_out() {
        let schema = json!({"type": "object", "properties": {}, "required": ["title"]});
        let request =
            "Add a task to send Olga Okafor the security whitepaper next Tuesday, high priority.";
        let mut v: Map<String, Value> = serde_json::from_value(json!({
            "title": "Something else entirely",
            "due_at": "2026-12-15T17:00:00Z",
            "priority": "high",
            "status": "done",
            "completed_at": "2026-12-15T17:00:00Z",
            "follow_up": {"title": "Send Olga the rollout plan", "due_at": "2026-12-15T17:00:00Z"},
        }))
        .unwrap();
        let mut dropped = ungrounded(&mut v, &schema, request, true);
        dropped.sort();
        assert_eq!(dropped, ["follow_up", "status"]);
        assert_eq!(v["title"], "Something else entirely", "required stays");
        assert!(v.contains_key("due_at") && v.contains_key("priority"));
        // No date in the request: no date may be written.
        let mut v: Map<String, Value> =
            serde_json::from_value(json!({"completed_at": "2026-12-15T17:00:00Z"})).unwrap();
        assert_eq!(
            ungrounded(&mut v, &schema, "Mark it done", false),
            ["completed_at"]
        );
        // Stems: "disqualify" grounds `disqualified`; numbers need a figure.
        let mut v: Map<String, Value> =
            serde_json::from_value(json!({"status": "disqualified", "employees": 0})).unwrap();
        assert_eq!(
            ungrounded(&mut v, &schema, "Disqualify the Horvath lead", false),
            ["employees"]
        );
    }

    #[test]
    fn the_prompt_holds_the_cut_schema_the_examples_and_the_records() {
        let g = grammar(&update_deal(), &step(&["value"])).unwrap();
        let e = ExampleStep {
            action: "update_deal".into(),
            fields: vec!["value".into()],
            span: "The Quillfeather deal".into(),
            fill: serde_json::from_value(json!({"value": 71500})).unwrap(),
        };
        let m = prompt(
            "update_deal",
            &g,
            &[&e],
            "Make the Pellinor deal 88k.",
            "the Pellinor deal",
            &["Pellinor – Hub (deal 4)".into()],
        );
        assert!(m[0].content.contains("\"value\""));
        assert!(!m[0].content.contains("status"), "only the cut schema");
        assert!(m[0].content.contains("{\"value\":71500}"));
        assert!(m[1].content.contains("Records: Pellinor – Hub (deal 4)"));
    }
}
