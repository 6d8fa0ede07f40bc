//! Which tools a request is offered.
//!
//! A small local model pays for every prompt token, and 55 tool schemas are
//! several thousand tokens. So for such models the request is embedded and
//! compared with each tool's name and description and with example requests
//! for it (`prompts/tool_examples.toml`); a tool scores its best match, the
//! closest few are offered, plus a small always-on core. Large hosted models
//! get every tool.

use std::collections::BTreeMap;
use std::sync::Arc;

use rapport_models::Embedder;
use rapport_models::embed::cosine;
use rapport_models::llm::ToolSpec;
use rapport_tools::{DynTool, Registry};
use serde_json::Value;

use crate::error::{AgentError, Result};

/// Tools offered with every request when selection is on.
pub const CORE: &[&str] = &["find_records", "search_interactions"];

/// How tools are chosen for a request.
#[derive(Clone)]
pub enum Selection {
    /// Every tool the caller may use.
    All,
    /// At most `k` tools closest to the request (within [`MARGIN`] of the
    /// closest), plus [`CORE`].
    TopK {
        /// Most tools chosen by similarity, before [`CORE`] is added.
        k: usize,
        /// The tools' descriptions and example requests, embedded once.
        index: Arc<ToolIndex>,
    },
}

/// A ranked tool scoring more than this below the best one is not offered.
/// On the held-out requests of `agent/tests/fixtures/tool_selection.tsv`
/// (60), at most 4 tools within 0.1 keep recall at 0.90 (0.92 for a plain
/// top 4) while offering 2.5 tools on average instead of 4: about 600 fewer
/// prompt tokens, some 4 s of prefill for the 0.5B model on these machines.
pub const MARGIN: f32 = 0.1;

/// The example requests compiled into the binary.
pub const TOOL_EXAMPLES: &str = include_str!("../../prompts/tool_examples.toml");

/// Example requests per tool name.
pub type Examples = BTreeMap<String, Vec<String>>;

/// Parses a tool-examples file (`tool = ["request", …]` per line).
pub fn parse_examples(text: &str) -> Result<Examples> {
    toml::from_str(text).map_err(|e| AgentError::Prompt(format!("tool examples: {e}")))
}

/// Tool descriptions and example requests, embedded once.
pub struct ToolIndex {
    embedder: Arc<Embedder>,
    /// (tool name, vector) per embedded text; a tool has one or more.
    vectors: Vec<(String, Vec<f32>)>,
}

impl ToolIndex {
    /// Embeds the name and first sentence of every tool and the built-in
    /// example requests (blocking: call from a plain thread or `spawn_blocking`).
    pub fn build(embedder: Arc<Embedder>, registry: &Registry) -> Result<ToolIndex> {
        ToolIndex::with_examples(embedder, registry, &parse_examples(TOOL_EXAMPLES)?)
    }

    /// As [`ToolIndex::build`], with these examples (empty: descriptions only).
    /// Examples of tools the registry does not have are ignored.
    pub fn with_examples(
        embedder: Arc<Embedder>,
        registry: &Registry,
        examples: &Examples,
    ) -> Result<ToolIndex> {
        let mut texts: Vec<(String, String)> = Vec::new();
        for t in registry.tools() {
            texts.push((t.name().to_owned(), tool_text(t)));
            for e in examples.get(t.name()).into_iter().flatten() {
                texts.push((t.name().to_owned(), e.clone()));
            }
        }
        let refs: Vec<&str> = texts.iter().map(|(_, t)| t.as_str()).collect();
        let vecs = embedder
            .embed(&refs)
            .map_err(|e| AgentError::Embedder(e.to_string()))?;
        let vectors = texts.into_iter().map(|(n, _)| n).zip(vecs).collect();
        Ok(ToolIndex { embedder, vectors })
    }

    /// Tool names by similarity to `text` (each tool's best-matching text),
    /// best first.
    pub fn rank(&self, text: &str) -> Result<Vec<(String, f32)>> {
        let q = self
            .embedder
            .embed_one(text)
            .map_err(|e| AgentError::Embedder(e.to_string()))?;
        let mut best: BTreeMap<&str, f32> = BTreeMap::new();
        for (n, v) in &self.vectors {
            let score = cosine(&q, v);
            let slot = best.entry(n.as_str()).or_insert(f32::MIN);
            *slot = slot.max(score);
        }
        let mut ranked: Vec<(String, f32)> =
            best.into_iter().map(|(n, s)| (n.to_owned(), s)).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok(ranked)
    }
}

/// What a tool is about, in words the request may share: "log activity: Log
/// a call, email, …".
fn tool_text(t: &dyn DynTool) -> String {
    format!(
        "{}: {}",
        t.name().replace('_', " "),
        rapport_tools::first_sentence(&t.description())
    )
}

/// The tools to offer for `request`, among those `allowed` (by name).
pub async fn select(
    selection: &Selection,
    registry: &Registry,
    allowed: impl Fn(&dyn DynTool) -> bool,
    request: &str,
    compact: bool,
) -> Result<Vec<ToolSpec>> {
    let names: Vec<String> = match selection {
        Selection::All => registry.tools().map(|t| t.name().to_owned()).collect(),
        Selection::TopK { k, index } => {
            let index = index.clone();
            let text = request.to_owned();
            let ranked = tokio::task::spawn_blocking(move || index.rank(&text))
                .await
                .map_err(|e| AgentError::Embedder(e.to_string()))??;
            // A question gets no write tools: a small model offered
            // create_deal for "what did Acme say about pricing?" called it.
            let read_only = asks_only(request);
            let fits = |name: &str| {
                registry.get(name).is_some_and(|t| {
                    allowed(t) && (!read_only || t.effect() == rapport_tools::Effect::Read)
                })
            };
            let mut names: Vec<String> = CORE.iter().map(|s| (*s).to_owned()).collect();
            let candidates: Vec<(String, f32)> = ranked
                .into_iter()
                .filter(|(n, _)| !CORE.contains(&n.as_str()) && fits(n))
                .take(*k)
                .collect();
            let best = candidates.first().map_or(0.0, |(_, s)| *s);
            names.extend(
                candidates
                    .into_iter()
                    .take_while(|(_, s)| best - s <= MARGIN)
                    .map(|(n, _)| n),
            );
            names
        }
    };
    Ok(names
        .iter()
        .filter_map(|n| registry.get(n))
        .filter(|t| allowed(*t))
        .map(|t| spec(t, compact))
        .collect())
}

/// The tools every request is offered, in the order they lead the tools
/// block: all of them, or [`CORE`] when the rest is chosen per request.
pub fn always_offered(
    selection: &Selection,
    registry: &Registry,
    allowed: impl Fn(&dyn DynTool) -> bool,
    compact: bool,
) -> Vec<ToolSpec> {
    let names: Vec<&str> = match selection {
        Selection::All => registry.tools().map(|t| t.name()).collect(),
        Selection::TopK { .. } => CORE.to_vec(),
    };
    names
        .into_iter()
        .filter_map(|n| registry.get(n))
        .filter(|t| allowed(*t))
        .map(|t| spec(t, compact))
        .collect()
}

/// Words that ask for a change; a request with none of them that is phrased
/// as a question only asks.
/// (Verbs only: nouns like "email" or "note" are as common in questions.)
pub(crate) const CHANGE_WORDS: &[&str] = &[
    "add", "create", "log", "update", "change", "edit", "set", "move", "mark", "delete", "remove",
    "schedule", "remind", "assign", "reassign", "tag", "untag", "close", "convert", "qualify",
    "book", "send", "rename", "merge", "undo", "accept", "dismiss", "complete", "reopen", "put",
    "make",
];

pub(crate) const QUESTION_WORDS: &[&str] = &[
    "what", "who", "whom", "whose", "when", "where", "which", "why", "how", "is", "are", "was",
    "were", "does", "do", "did", "any", "show", "list", "find", "tell",
];

/// Whether `request` asks for a change: a word like "add", "log" or "move"
/// in it ("Can you add Jane?", "Log a call with Dana").
pub fn asks_change(request: &str) -> bool {
    words(&request.to_lowercase())
        .iter()
        .any(|w| CHANGE_WORDS.contains(w))
}

/// The words of `request`, apostrophe endings cut ("Dana's" → "Dana").
pub(crate) fn words(request: &str) -> Vec<&str> {
    request
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(|w| w.split('\'').next().unwrap_or(w))
        .collect()
}

/// Whether `request` only asks for information: phrased as a question (a
/// question mark, or a question word first) with no word that asks for a
/// change. "Can you add Jane?" asks for a change; "What's overdue?" does not.
pub fn asks_only(request: &str) -> bool {
    let lower = request.to_lowercase();
    let words = words(&lower);
    let question = lower.trim_end().ends_with('?')
        || words.first().is_some_and(|w| QUESTION_WORDS.contains(w));
    question && !words.iter().any(|w| CHANGE_WORDS.contains(w))
}

/// The tool as the model sees it; `compact` drops what a small model does not
/// need (titles, `$schema`) and keeps descriptions to their first sentence.
pub fn spec(t: &dyn DynTool, compact: bool) -> ToolSpec {
    let mut schema = t.input_schema();
    let description = if compact {
        strip(&mut schema);
        rapport_tools::first_sentence(&t.description()).to_owned()
    } else {
        t.description()
    };
    ToolSpec::new(t.name(), description, schema)
}

/// Removes what a small model does not need: schema keywords it ignores,
/// descriptions that only restate the type ("a string"), and the fields that
/// default sensibly (`owner_id` defaults to the caller, `custom` to nothing),
/// which small models otherwise fill with invented values. Keys of a
/// `properties` map are field names (a task has a `title`): only the listed
/// defaulted fields are removed from it.
fn strip(v: &mut Value) {
    strip_in(v)
}

/// Fields left out of compact schemas where they are optional: they default
/// sensibly when absent. `expect_one` too: the 0.5B model set it on every
/// lookup, and a name that matched a company and its deal then failed as
/// ambiguous, again and again. A tool that requires one (`reassign_owner`
/// needs the new `owner_id`) keeps it: left out there, no call of the tool
/// could validate, and none of the eval's reassignments passed.
const DEFAULTED: &[&str] = &["owner_id", "custom", "expect_one"];

fn strip_in(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("$schema");
            m.remove("title");
            m.remove("examples");
            if m.get("description")
                .and_then(Value::as_str)
                .is_some_and(restates_type)
            {
                m.remove("description");
            }
            let required: Vec<String> = m
                .get("required")
                .and_then(Value::as_array)
                .map(|r| {
                    r.iter()
                        .filter_map(|x| x.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            for (k, child) in m.iter_mut() {
                match (k.as_str(), child) {
                    // Keys of a `properties` map are field names (a task
                    // has a `title`): only optional defaulted fields go.
                    ("properties", Value::Object(props)) => {
                        props.retain(|f, _| {
                            !DEFAULTED.contains(&f.as_str()) || required.contains(f)
                        });
                        props.values_mut().for_each(strip_in);
                    }
                    (_, child) => strip_in(child),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(strip_in),
        _ => {}
    }
}

/// "a string", "an integer", "one of: low, high" beside the enum, "the
/// integer id of a contact" on `contact_id`: what the schema already says.
fn restates_type(d: &str) -> bool {
    matches!(
        d,
        "a string" | "an integer" | "a number" | "a JSON object" | "true or false"
    ) || d.starts_with("one of: ")
        || d.starts_with("the integer id of ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn questions_without_a_change_word_only_ask() {
        for q in [
            "What did Acme Logistics say about pricing?",
            "What's overdue for me?",
            "who owns the Globex deal",
            "Show me my open deals",
            "How is the pipeline looking this quarter?",
        ] {
            assert!(asks_only(q), "{q}");
        }
        for q in [
            "Can you add Jane Doe from Acme?",
            "Log a call with Dana Lee at Acme Logistics: likes the Pro plan.",
            "Move the deal Acme Logistics – Expense Cloud to Negotiation.",
            "Is it possible to mark the Globex deal as won?",
            "Add a note to Aisha: she asked for a demo next week.",
            "Remind me to call Bo on Friday",
        ] {
            assert!(!asks_only(q), "{q}");
        }
    }

    #[test]
    fn strip_keeps_a_defaulted_field_where_it_is_required() {
        let mut s = json!({"type": "object", "required": ["id", "owner_id"], "properties": {
            "id": {"type": "integer"}, "owner_id": {"type": "integer"}}});
        let before = s.clone();
        strip(&mut s);
        assert_eq!(s, before, "reassign_owner needs its owner_id");
        let mut s = json!({"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string"}, "owner_id": {"type": "integer"}, "custom": {"type": "object"}}});
        strip(&mut s);
        assert_eq!(
            s,
            json!({"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}})
        );
    }

    #[test]
    fn strip_keeps_fields_named_like_keywords() {
        let mut s = json!({"title": "Args", "type": "object", "properties": {
            "title": {"type": "string", "title": "Title"}}});
        strip(&mut s);
        assert_eq!(
            s,
            json!({"type": "object", "properties": {"title": {"type": "string"}}})
        );
    }
}
