//! How well the small-model tool selection finds the right tool: recall@k on
//! held-out requests (`fixtures/tool_selection.tsv`, phrased apart from the
//! examples in `prompts/tool_examples.toml`), with the real MiniLM embedder,
//! with and without the example requests, and for what the agent offers (at
//! most 4 within `select::MARGIN` of the best). Prints the figures.

use std::sync::Arc;

use rapport_agent::select::{CORE, Examples, MARGIN, TOOL_EXAMPLES, ToolIndex, parse_examples};
use rapport_tools::Registry;

const FIXTURE: &str = include_str!("fixtures/tool_selection.tsv");

/// (request, acceptable tools) from the fixture.
fn cases() -> Vec<(&'static str, Vec<&'static str>)> {
    FIXTURE
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (req, tools) = l.split_once('\t').expect("request<TAB>tools");
            (req, tools.split(',').map(str::trim).collect())
        })
        .collect()
}

/// Share of cases where one acceptable tool is among the core tools or the
/// `k` best ranked ones (what the model is offered).
fn recall_at(index: &ToolIndex, k: usize) -> (f64, Vec<String>) {
    let (recall, _, misses) = recall_within(index, k, f32::INFINITY);
    (recall, misses)
}

/// As [`recall_at`], offering only tools within `margin` of the best score
/// (at most `k`): returns the recall, the mean number offered beyond the
/// core, and the misses.
fn recall_within(index: &ToolIndex, k: usize, margin: f32) -> (f64, f64, Vec<String>) {
    let cases = cases();
    let mut misses = Vec::new();
    let mut offered_total = 0;
    for (req, want) in &cases {
        let ranked = index.rank(req).unwrap();
        let best = ranked
            .iter()
            .find(|(n, _)| !CORE.contains(&n.as_str()))
            .map_or(0.0, |(_, s)| *s);
        let chosen: Vec<&str> = ranked
            .iter()
            .filter(|(n, _)| !CORE.contains(&n.as_str()))
            .take(k)
            .filter(|(_, s)| best - s <= margin)
            .map(|(n, _)| n.as_str())
            .collect();
        offered_total += chosen.len();
        let offered: Vec<&str> = CORE.iter().copied().chain(chosen).collect();
        if !want.iter().any(|w| offered.contains(w)) {
            misses.push(format!("{req} → wanted {want:?}, offered {offered:?}"));
        }
    }
    let hit = cases.len() - misses.len();
    (
        hit as f64 / cases.len() as f64,
        offered_total as f64 / cases.len() as f64,
        misses,
    )
}

#[test]
fn every_example_names_a_registered_tool_and_every_tool_has_examples() {
    let registry = Registry::new();
    let examples = parse_examples(TOOL_EXAMPLES).unwrap();
    for name in examples.keys() {
        assert!(
            registry.get(name).is_some(),
            "examples for unknown tool `{name}`"
        );
    }
    for t in registry.tools() {
        assert!(
            examples.get(t.name()).is_some_and(|e| !e.is_empty()),
            "tool `{}` has no example requests in prompts/tool_examples.toml",
            t.name()
        );
    }
    for (req, want) in cases() {
        for w in want {
            assert!(
                registry.get(w).is_some(),
                "fixture names unknown tool `{w}` ({req})"
            );
        }
    }
}

#[test]
fn example_requests_lift_selection_recall() {
    let registry = Registry::new();
    let embedder = Arc::new(
        rapport_models::Embedder::load_default(Default::default()).expect("the MiniLM embedder"),
    );
    let bare = ToolIndex::with_examples(embedder.clone(), &registry, &Examples::new()).unwrap();
    let full = ToolIndex::build(embedder, &registry).unwrap();
    let (bare4, _) = recall_at(&bare, 4);
    let (full4, misses) = recall_at(&full, 4);
    let (full8, _) = recall_at(&full, 8);
    println!(
        "{}",
        serde_json::json!({"cases": cases().len(), "recall@4_descriptions_only": bare4,
                           "recall@4_with_examples": full4, "recall@8_with_examples": full8})
    );
    for m in &misses {
        println!("miss: {m}");
    }
    // How recall trades against prompt size: fewer tools, or only those
    // close to the best.
    for k in [2, 3] {
        let (r, _) = recall_at(&full, k);
        println!("{}", serde_json::json!({"k": k, "recall": r}));
    }
    for margin in [0.05f32, 0.1, 0.15, 0.2] {
        let (r, mean, _) = recall_within(&full, 4, margin);
        println!(
            "{}",
            serde_json::json!({"k": 4, "margin": margin, "recall": r, "mean_offered": mean})
        );
    }
    let (offered_recall, offered_mean, _) = recall_within(&full, 4, MARGIN);
    println!(
        "{}",
        serde_json::json!({"offered": "at most 4 within MARGIN", "margin": MARGIN,
                           "recall": offered_recall, "mean_offered": offered_mean})
    );
    assert!(full4 > bare4, "examples must help: {full4} vs {bare4}");
    assert!(
        offered_recall >= 0.85 && offered_mean < 3.0,
        "what is offered: recall {offered_recall}, {offered_mean} tools"
    );
    assert!(full4 >= 0.85, "recall@4 {full4} below 0.85");
}
