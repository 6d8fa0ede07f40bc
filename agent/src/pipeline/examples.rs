//! Worked examples (`prompts/worked_examples.toml`): requests with their
//! plans and fills, in a fictional world of their own, and the retrieval of
//! the few nearest a request.
//!
//! The plan prompt shows the model a handful of examples as earlier turns;
//! which ones matters more than how many. [`ExampleIndex::nearest`] embeds
//! the request and picks by maximal marginal relevance ([`mmr`]): each next
//! example is the one most like the request and least like those already
//! picked, so five examples are not five phrasings of one tool.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::NaiveDate;
use rapport_models::Embedder;
use rapport_models::embed::cosine;
use rapport_tools::Registry;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::plan::{ANSWER, ASK_USER, Plan, Step, is_id_field, value_fields};
use crate::error::{AgentError, Result};

/// The worked examples compiled into the binary.
pub const WORKED_EXAMPLES: &str = include_str!("../../../prompts/worked_examples.toml");

/// The examples file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WorkedExamples {
    /// The day the examples' relative dates are worked out from.
    pub today: NaiveDate,
    #[serde(rename = "example")]
    pub examples: Vec<WorkedExample>,
}

/// One request with its plan and fills.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WorkedExample {
    pub request: String,
    #[serde(rename = "step")]
    pub steps: Vec<ExampleStep>,
}

/// A step of a worked example: the plan step and its fill.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExampleStep {
    pub action: String,
    #[serde(default)]
    pub fields: Vec<String>,
    pub span: String,
    /// The values of the fields (and of the tool's required value fields);
    /// never an id.
    #[serde(default)]
    pub fill: Map<String, Value>,
}

impl WorkedExample {
    /// The example's plan, as the plan prompt shows it.
    pub fn plan(&self) -> Plan {
        Plan {
            steps: self
                .steps
                .iter()
                .map(|s| Step {
                    action: s.action.clone(),
                    fields: s.fields.clone(),
                    span: s.span.clone(),
                })
                .collect(),
        }
    }

    /// Every action the example uses.
    pub fn actions(&self) -> impl Iterator<Item = &str> {
        self.steps.iter().map(|s| s.action.as_str())
    }
}

impl WorkedExamples {
    /// The built-in examples.
    pub fn builtin() -> Result<WorkedExamples> {
        WorkedExamples::parse(WORKED_EXAMPLES)
    }

    pub fn parse(text: &str) -> Result<WorkedExamples> {
        toml::from_str(text).map_err(|e| AgentError::Prompt(format!("worked examples: {e}")))
    }

    /// Checks every example against the registry: a known action, fields that
    /// are value fields of it, a span taken from the request, a fill holding
    /// the fields and only fields the step may write (given or required),
    /// never an id, and arguments the tool accepts once the resolver has set
    /// the ids. Returns every problem found.
    pub fn check(&self, registry: &Registry) -> std::result::Result<(), Vec<String>> {
        let mut problems = Vec::new();
        for (i, e) in self.examples.iter().enumerate() {
            let at = |m: String| format!("example {} ({:?}): {m}", i + 1, e.request);
            if e.steps.is_empty() || e.steps.len() > super::plan::MAX_STEPS {
                problems.push(at(format!("{} steps", e.steps.len())));
            }
            for s in &e.steps {
                if !e.request.contains(&s.span) {
                    problems.push(at(format!("span {:?} is not in the request", s.span)));
                }
                if let Err(m) = check_step(registry, s) {
                    problems.push(at(format!("{}: {m}", s.action)));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

fn check_step(registry: &Registry, s: &ExampleStep) -> std::result::Result<(), String> {
    let filled: BTreeSet<&str> = s.fill.keys().map(String::as_str).collect();
    if s.action == ASK_USER || s.action == ANSWER {
        let key = if s.action == ASK_USER {
            "question"
        } else {
            "text"
        };
        return (filled == BTreeSet::from([key]) && s.fields == [key])
            .then_some(())
            .ok_or_else(|| format!("fields and fill must be exactly [{key}]"));
    }
    let tool = registry
        .get(&s.action)
        .ok_or_else(|| "no such tool".to_owned())?;
    let schema = tool.input_schema();
    let values = value_fields(&schema);
    let required: BTreeSet<&str> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if let Some(f) = s.fields.iter().find(|f| !values.contains(f)) {
        return Err(format!("{f:?} is not a value field"));
    }
    if let Some(f) = s.fields.iter().find(|f| !filled.contains(f.as_str())) {
        return Err(format!("field {f:?} has no value in the fill"));
    }
    for k in &filled {
        if is_id_field(k) {
            return Err(format!("the fill sets the id {k:?}"));
        }
        if !s.fields.iter().any(|f| f == k) && !required.contains(k) {
            return Err(format!("the fill sets {k:?}, which the user did not give"));
        }
    }
    for r in required.iter().filter(|r| !is_id_field(r)) {
        if !filled.contains(r) {
            return Err(format!("the required field {r:?} has no value"));
        }
    }
    // The resolver sets the ids: stand in for them, then let the tool parse.
    let mut args = s.fill.clone();
    for r in required.iter().filter(|r| is_id_field(r)) {
        args.insert((*r).to_owned(), Value::from(1));
    }
    tool.validate_args(&Value::Object(args))
        .map_err(|e| format!("arguments do not parse: {e}"))
}

/// Maximal marginal relevance: up to `k` indices, each next one maximising
/// `lambda · sim(query, i) − (1 − lambda) · max sim(i, picked)`. `query[i]` is
/// the similarity of item i to the query; `pair(i, j)` of two items.
pub fn mmr(query: &[f32], pair: impl Fn(usize, usize) -> f32, k: usize, lambda: f32) -> Vec<usize> {
    let mut picked: Vec<usize> = Vec::new();
    while picked.len() < k.min(query.len()) {
        let next = (0..query.len())
            .filter(|i| !picked.contains(i))
            .map(|i| {
                let redundancy = if picked.is_empty() {
                    0.0
                } else {
                    picked.iter().map(|&j| pair(i, j)).fold(f32::MIN, f32::max)
                };
                (i, lambda * query[i] - (1.0 - lambda) * redundancy)
            })
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)));
        match next {
            Some((i, _)) => picked.push(i),
            None => break,
        }
    }
    picked
}

/// The worked examples' requests, embedded once.
pub struct ExampleIndex {
    embedder: Arc<Embedder>,
    pub examples: WorkedExamples,
    vectors: Vec<Vec<f32>>,
    /// The last request embedded: a turn asks for the plan's examples and
    /// then each step's, all for the same request.
    last: std::sync::Mutex<Option<(String, Vec<f32>)>>,
}

/// How much relevance counts against diversity in [`ExampleIndex::nearest`].
pub const MMR_LAMBDA: f32 = 0.7;

impl ExampleIndex {
    /// Embeds every example's request (blocking: call from a plain thread or
    /// `spawn_blocking`).
    pub fn build(embedder: Arc<Embedder>, examples: WorkedExamples) -> Result<ExampleIndex> {
        let texts: Vec<&str> = examples
            .examples
            .iter()
            .map(|e| e.request.as_str())
            .collect();
        let vectors = embedder
            .embed(&texts)
            .map_err(|e| AgentError::Embedder(e.to_string()))?;
        Ok(ExampleIndex {
            embedder,
            examples,
            vectors,
            last: std::sync::Mutex::new(None),
        })
    }

    /// The request's embedding, computed once for consecutive asks.
    fn query(&self, request: &str) -> Result<Vec<f32>> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((text, v)) = last.as_ref()
            && text == request
        {
            return Ok(v.clone());
        }
        let v = self
            .embedder
            .embed_one(request)
            .map_err(|e| AgentError::Embedder(e.to_string()))?;
        *last = Some((request.to_owned(), v.clone()));
        Ok(v)
    }

    /// The built-in worked examples ([`WORKED_EXAMPLES`]), embedded.
    pub fn builtin(embedder: Arc<Embedder>) -> Result<ExampleIndex> {
        ExampleIndex::build(embedder, WorkedExamples::builtin()?)
    }

    /// The `k` examples nearest `request`, diverse ([`mmr`]), nearest first.
    pub fn nearest(&self, request: &str, k: usize) -> Result<Vec<&WorkedExample>> {
        let q = self.query(request)?;
        let sims: Vec<f32> = self.vectors.iter().map(|v| cosine(&q, v)).collect();
        let picked = mmr(
            &sims,
            |i, j| cosine(&self.vectors[i], &self.vectors[j]),
            k,
            MMR_LAMBDA,
        );
        Ok(picked
            .into_iter()
            .map(|i| &self.examples.examples[i])
            .collect())
    }

    /// Up to `k` examples with a step of `action`, nearest `request` first
    /// (for the fill prompt of that action).
    pub fn nearest_for(&self, request: &str, action: &str, k: usize) -> Result<Vec<&ExampleStep>> {
        let q = self.query(request)?;
        let mut scored: Vec<(f32, &ExampleStep)> = self
            .examples
            .examples
            .iter()
            .zip(&self.vectors)
            .flat_map(|(e, v)| {
                let s = cosine(&q, v);
                e.steps
                    .iter()
                    .filter(|st| st.action == action)
                    .map(move |st| (s, st))
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        Ok(scored.into_iter().take(k).map(|(_, s)| s).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_examples_fit_the_registry() {
        let ex = WorkedExamples::builtin().unwrap();
        let n = ex.examples.len();
        assert!((150..=200).contains(&n), "{n} examples");
        let multi = ex.examples.iter().filter(|e| e.steps.len() > 1).count();
        assert!(multi >= 12, "only {multi} multi-step examples");
        if let Err(problems) = ex.check(&Registry::new()) {
            panic!("{} problems:\n{}", problems.len(), problems.join("\n"));
        }
        // Every tool the agent can run is shown at least once.
        let used: BTreeSet<&str> = ex.examples.iter().flat_map(|e| e.actions()).collect();
        let missing: Vec<&str> = Registry::new()
            .tools()
            .map(|t| t.name())
            .filter(|n| !used.contains(n))
            .collect();
        assert!(missing.len() <= 8, "tools without an example: {missing:?}");
    }

    #[test]
    fn a_bad_example_is_reported() {
        let text = r#"today = "2031-03-03"
[[example]]
request = "Make the Quillfeather deal 71,500."
[[example.step]]
action = "update_deal"
fields = ["value"]
span = "the Pellinor deal"
fill = { value = 71500, id = 3, status = "won" }
"#;
        let ex = WorkedExamples::parse(text).unwrap();
        let problems = ex.check(&Registry::new()).unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("span"), "{problems:?}");
        assert!(problems[1].contains("\"id\""), "{problems:?}");
    }

    #[test]
    fn mmr_trades_relevance_for_diversity() {
        // Items 0 and 1 are near copies; 2 is a little less relevant but new.
        let query = [0.9, 0.89, 0.8, 0.1];
        let pair = |i: usize, j: usize| {
            if (i, j) == (0, 1) || (i, j) == (1, 0) {
                0.99
            } else {
                0.1
            }
        };
        assert_eq!(mmr(&query, pair, 2, 0.7), [0, 2]);
        assert_eq!(
            mmr(&query, pair, 2, 1.0),
            [0, 1],
            "no diversity at lambda 1"
        );
        assert_eq!(mmr(&query, pair, 9, 0.7).len(), 4);
    }
}
