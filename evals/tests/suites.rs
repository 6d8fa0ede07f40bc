//! Every shipped suite file parses and every task in it validates against the
//! real tool registry: tools named exist (or are known to be coming), seeds,
//! users, record types and refs exist, matchers parse. And the suites cover
//! every tool and every category the harness promises.

use std::collections::BTreeSet;

use rapport_evals::task::{PENDING_TOOLS, registry_tools};
use rapport_evals::{default_suites_dir, load_suites};
use rapport_tools::Registry;

#[test]
fn every_suite_task_validates_against_the_registry() {
    let suites = load_suites(&[], &default_suites_dir()).expect("suites parse");
    let tools = registry_tools(&Registry::new());
    let mut ids = BTreeSet::new();
    let mut total = 0;
    for s in &suites {
        s.validate(&tools).unwrap_or_else(|e| panic!("{e}"));
        for t in &s.tasks {
            assert!(
                ids.insert(t.id.clone()),
                "task id {} is used in two suites",
                t.id
            );
            total += 1;
        }
    }
    assert!(total >= 150, "only {total} tasks");
}

#[test]
fn the_suites_cover_every_tool_and_category() {
    let suites = load_suites(&[], &default_suites_dir()).unwrap();
    let mut named: BTreeSet<String> = BTreeSet::new();
    let mut tags: BTreeSet<String> = BTreeSet::new();
    for t in suites.iter().flat_map(|s| &s.tasks) {
        named.extend(t.tools_named().into_iter().map(str::to_owned));
        tags.extend(t.tags.iter().cloned());
    }
    let covered: BTreeSet<&String> = named.iter().chain(&tags).collect();
    let missing: Vec<String> = registry_tools(&Registry::new())
        .into_iter()
        .chain(PENDING_TOOLS.iter().map(|s| s.to_string()))
        .filter(|t| !covered.contains(t))
        .collect();
    assert!(missing.is_empty(), "tools without a task: {missing:?}");
    for category in [
        "multi_step",
        "ambiguous",
        "permission",
        "dates",
        "semantic",
        "cites",
        "injection",
        "nba",
    ] {
        assert!(tags.contains(category), "no task tagged {category}");
    }
}

#[test]
fn a_task_naming_an_unknown_tool_or_ref_is_rejected() {
    let tools = registry_tools(&Registry::new());
    let bad = [
        ("tools: {required: [make_coffee]}", "no tool named"),
        ("unchanged: [\"@nobody\"]", "unknown ref"),
        ("records: [{type: spaceship}]", "unknown record type"),
        (
            "records: [{type: task, fields: {due_at: {soon: 1}}}]",
            "unknown matcher",
        ),
    ];
    for (expect, message) in bad {
        let text = format!("tasks:\n  - id: t\n    turns: [hi]\n    expect: {{{expect}}}\n");
        let suite = rapport_evals::Suite::parse(&text, std::path::Path::new("x.yaml")).unwrap();
        let err = suite.validate(&tools).unwrap_err().to_string();
        assert!(err.contains(message), "{expect}: {err}");
    }
    let seed = "tasks:\n  - id: t\n    seed: galaxy\n    turns: [hi]\n";
    let err = rapport_evals::Suite::parse(seed, std::path::Path::new("x.yaml"))
        .unwrap()
        .validate(&tools)
        .unwrap_err();
    assert!(err.to_string().contains("unknown seed"));
}
