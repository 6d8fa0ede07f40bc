//! The plan: at most [`MAX_STEPS`] steps, each one candidate action, the
//! fields the user gave a value for, and the span of the request it is about.
//!
//! The plan is one constrained call. Its grammar ([`grammar`]) is a JSON
//! Schema the backend enforces token by token: the action is one of the
//! candidates, its fields an enum of that action's value fields (never an id:
//! ids are the resolver's job), the span a short string. The model makes two
//! small choices per step — which action, which fields — instead of writing a
//! whole call. The plan is fixed before any tool result is read, so text in
//! an email or a note cannot add a step.

use rapport_models::llm::{ChatMessage, ToolSpec};
use rapport_tools::DynTool;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::examples::WorkedExample;

/// Most steps in a plan.
pub const MAX_STEPS: usize = 3;
/// Longest span, in characters.
pub const MAX_SPAN: usize = 160;
/// The action that asks the user instead of acting.
pub const ASK_USER: &str = "ask_user";
/// The action that answers without any tool (thanks, greetings, out of scope).
pub const ANSWER: &str = "answer";
/// The name the plan is requested under (a call of this "tool").
pub const PLAN_CALL: &str = "plan";

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub action: String,
    /// The value fields the user gave a value for.
    #[serde(default)]
    pub fields: Vec<String>,
    /// The words of the request this step is about.
    pub span: String,
}

/// The steps of one turn, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub steps: Vec<Step>,
}

/// An action the plan may name: a tool, [`ASK_USER`] or [`ANSWER`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub name: String,
    /// One line for the prompt: what the action does.
    pub summary: String,
    /// The value fields a step of this action may name.
    pub fields: Vec<String>,
}

impl Candidate {
    pub fn of_tool(t: &dyn DynTool) -> Candidate {
        Candidate {
            name: t.name().to_owned(),
            summary: rapport_tools::first_sentence(&t.description()).to_owned(),
            fields: value_fields(&t.input_schema()),
        }
    }

    pub fn ask_user() -> Candidate {
        Candidate {
            name: ASK_USER.into(),
            summary: "Ask the user a question when the request does not say what to do.".into(),
            fields: vec!["question".into()],
        }
    }

    pub fn answer() -> Candidate {
        Candidate {
            name: ANSWER.into(),
            summary: "Answer without any tool (thanks, greetings, anything outside the CRM)."
                .into(),
            fields: vec!["text".into()],
        }
    }
}

/// Whether an argument holds a record id (or ids): filled by the resolver,
/// never by the model. By name until the schemas say it (`id`, `…_id`,
/// `…_ids`).
pub fn is_id_field(name: &str) -> bool {
    name == "id" || name.ends_with("_id") || name.ends_with("_ids")
}

/// Fields a plan never names: custom properties are set by imports and
/// forms, not by a sentence (planned, the 0.5B model filled the schema's
/// own description into them).
const UNPLANNED: &[&str] = &["custom"];

/// The properties of a tool's argument schema that hold values, not ids, in
/// the schema's order.
pub fn value_fields(schema: &Value) -> Vec<String> {
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| {
            p.keys()
                .filter(|k| !is_id_field(k) && !UNPLANNED.contains(&k.as_str()))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// The JSON Schema of a plan over `candidates`: 1 to [`MAX_STEPS`] steps,
/// each naming one candidate, fields from that candidate's value fields
/// (each at most once) and a span.
pub fn grammar(candidates: &[Candidate]) -> Value {
    let steps: Vec<Value> = candidates
        .iter()
        .map(|c| {
            let fields = if c.fields.is_empty() {
                json!({"type": "array", "maxItems": 0, "items": {"type": "string"}})
            } else {
                json!({"type": "array", "items": {"enum": c.fields}, "uniqueItems": true,
                       "maxItems": c.fields.len()})
            };
            json!({
                "type": "object",
                "properties": {
                    "action": {"const": c.name},
                    "fields": fields,
                    "span": {"type": "string", "minLength": 1, "maxLength": MAX_SPAN},
                },
                "required": ["action", "fields", "span"],
                "additionalProperties": false,
            })
        })
        .collect();
    json!({
        "type": "object",
        "properties": {
            "steps": {"type": "array", "minItems": 1, "maxItems": MAX_STEPS,
                      "items": {"anyOf": steps}},
        },
        "required": ["steps"],
        "additionalProperties": false,
    })
}

/// The plan as a call the backend constrains to [`grammar`].
pub fn tool_spec(candidates: &[Candidate]) -> ToolSpec {
    ToolSpec::new(
        PLAN_CALL,
        "The steps that carry out the request, in order.",
        grammar(candidates),
    )
}

/// What is wrong with a plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("the plan does not parse: {0}")]
    Parse(String),
    #[error("a plan has 1 to {MAX_STEPS} steps, this one {0}")]
    Steps(usize),
    #[error("step {step}: {action:?} is not one of the candidate actions")]
    Action { step: usize, action: String },
    #[error("step {step}: {action} has no value field {field:?}")]
    Field {
        step: usize,
        action: String,
        field: String,
    },
}

impl Plan {
    /// Parses the model's plan and checks it against the candidates (a
    /// backend that does not enforce the grammar may stray from it). A span
    /// that is not in the request is kept: it still tells the steps apart.
    pub fn parse(arguments: &Value, candidates: &[Candidate]) -> Result<Plan, PlanError> {
        let mut plan: Plan = serde_json::from_value(arguments.clone())
            .map_err(|e| PlanError::Parse(e.to_string()))?;
        if plan.steps.is_empty() || plan.steps.len() > MAX_STEPS {
            return Err(PlanError::Steps(plan.steps.len()));
        }
        for (i, s) in plan.steps.iter_mut().enumerate() {
            let c = candidates
                .iter()
                .find(|c| c.name == s.action)
                .ok_or_else(|| PlanError::Action {
                    step: i + 1,
                    action: s.action.clone(),
                })?;
            if let Some(f) = s.fields.iter().find(|f| !c.fields.contains(f)) {
                return Err(PlanError::Field {
                    step: i + 1,
                    action: s.action.clone(),
                    field: f.clone(),
                });
            }
            s.fields.dedup();
            s.span = s.span.trim().chars().take(MAX_SPAN).collect();
        }
        Ok(plan)
    }

    /// Whether the plan only asks or answers (no tool runs).
    pub fn talks_only(&self) -> bool {
        self.steps
            .iter()
            .all(|s| s.action == ASK_USER || s.action == ANSWER)
    }
}

/// The plan prompt: the candidates one line each (no schemas), then the
/// examples as user/assistant pairs (the assistant's turn is the plan), then
/// the request (with its dates already worked out by the caller).
pub fn prompt(
    candidates: &[Candidate],
    examples: &[&WorkedExample],
    request: &str,
) -> Vec<ChatMessage> {
    let mut lines = String::from(
        "Plan the steps that carry out the user's request, at most three. For each step \
         name one action, the fields the user gave a value for, and the words of the \
         request it is about. Ids are found for you: never plan a step only to look one \
         up. A question is one step that reads. If the request does not say what to do, \
         ask the user.\n\nActions:\n",
    );
    for c in candidates {
        lines.push_str(&format!("- {}: {}", c.name, c.summary));
        if !c.fields.is_empty() {
            lines.push_str(&format!(" Fields: {}.", c.fields.join(", ")));
        }
        lines.push('\n');
    }
    let mut messages = vec![ChatMessage::system(lines)];
    for e in examples {
        messages.push(ChatMessage::user(e.request.clone()));
        messages.push(ChatMessage::assistant(
            serde_json::to_string(&e.plan()).unwrap_or_default(),
        ));
    }
    messages.push(ChatMessage::user(request));
    messages
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cands() -> Vec<Candidate> {
        vec![
            Candidate {
                name: "update_deal".into(),
                summary: "Change a deal.".into(),
                fields: vec!["value".into(), "name".into()],
            },
            Candidate::ask_user(),
        ]
    }

    #[test]
    fn id_fields_are_left_to_the_resolver() {
        let schema = json!({"properties": {"id": {}, "deal_id": {}, "contact_ids": {},
                                           "value": {}, "name": {}, "idea": {}}});
        let mut got = value_fields(&schema);
        got.sort();
        assert_eq!(got, ["idea", "name", "value"]);
    }

    #[test]
    fn the_grammar_names_each_candidate_with_its_own_fields() {
        let g = grammar(&cands());
        let steps = &g["properties"]["steps"];
        assert_eq!(steps["maxItems"], MAX_STEPS);
        let any = steps["items"]["anyOf"].as_array().unwrap();
        assert_eq!(any.len(), 2);
        assert_eq!(any[0]["properties"]["action"]["const"], "update_deal");
        assert_eq!(
            any[0]["properties"]["fields"]["items"]["enum"],
            json!(["value", "name"])
        );
        assert_eq!(
            any[1]["properties"]["fields"]["items"]["enum"],
            json!(["question"])
        );
    }

    #[test]
    fn a_plan_is_checked_against_the_candidates() {
        let ok = json!({"steps": [{"action": "update_deal", "fields": ["value"], "span": " the deal "}]});
        let p = Plan::parse(&ok, &cands()).unwrap();
        assert_eq!(p.steps[0].span, "the deal");
        assert!(!p.talks_only());
        let bad_action = json!({"steps": [{"action": "delete_deal", "fields": [], "span": "x"}]});
        assert!(matches!(
            Plan::parse(&bad_action, &cands()),
            Err(PlanError::Action { .. })
        ));
        let id_field = json!({"steps": [{"action": "update_deal", "fields": ["id"], "span": "x"}]});
        assert!(matches!(
            Plan::parse(&id_field, &cands()),
            Err(PlanError::Field { .. })
        ));
        let four = json!({"steps": [
            {"action": "ask_user", "fields": [], "span": "a"},
            {"action": "ask_user", "fields": [], "span": "b"},
            {"action": "ask_user", "fields": [], "span": "c"},
            {"action": "ask_user", "fields": [], "span": "d"}]});
        assert_eq!(Plan::parse(&four, &cands()), Err(PlanError::Steps(4)));
        let ask = json!({"steps": [{"action": "ask_user", "fields": ["question"], "span": "x"}]});
        assert!(Plan::parse(&ask, &cands()).unwrap().talks_only());
    }

    #[test]
    fn the_prompt_lists_candidates_then_example_pairs_then_the_request() {
        let e: WorkedExample = toml::from_str(
            r#"request = "Tag Quillfeather as flagship."
[[step]]
action = "add_tag"
fields = ["tag"]
span = "Quillfeather"
fill = { record_type = "company", tag = "flagship" }
"#,
        )
        .unwrap();
        let m = prompt(&cands(), &[&e], "Set the deal to 19k.");
        assert_eq!(m.len(), 4);
        assert!(
            m[0].content
                .contains("- update_deal: Change a deal. Fields: value, name.")
        );
        assert!(
            !m[0].content.contains("properties"),
            "no schemas in the plan prompt"
        );
        assert_eq!(m[1].content, "Tag Quillfeather as flagship.");
        let plan: Plan = serde_json::from_str(&m[2].content).unwrap();
        assert_eq!(plan.steps[0].fields, ["tag"]);
        assert_eq!(m[3].content, "Set the deal to 19k.");
    }
}
