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

/// The committed split is the seeded draw of the shipped tasks, batch by
/// batch, and names every shipped task: a task added without a draw (or a
/// task moved between halves by hand) fails here.
#[test]
fn the_committed_split_is_the_seeded_draw_of_every_task() {
    use rapport_evals::split::{self, Half, Split};
    let suites = load_suites(&[], &default_suites_dir()).unwrap();
    let split = Split::load(&split::default_path()).expect("evals/split.toml");
    assert_eq!(split.seed, split::SEED);
    split.check(&suites).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        split.unassigned(&suites),
        Vec::<String>::new(),
        "run `rapport eval split --write`"
    );
    // Halves, suite by suite.
    let halves = split.halves();
    for s in &suites {
        let held = s
            .tasks
            .iter()
            .filter(|t| halves[t.id.as_str()] == Half::HeldOut)
            .count();
        assert_eq!(held, s.tasks.len() / 2, "suite {}", s.name);
    }
    // The first batch is what a fresh draw of those tasks gives.
    let first: BTreeSet<&str> = split.batches[0]
        .development
        .iter()
        .chain(&split.batches[0].held_out)
        .map(String::as_str)
        .collect();
    let only_first: Vec<rapport_evals::Suite> = suites
        .iter()
        .map(|s| rapport_evals::Suite {
            tasks: s
                .tasks
                .iter()
                .filter(|t| first.contains(t.id.as_str()))
                .cloned()
                .collect(),
            ..s.clone()
        })
        .collect();
    assert_eq!(
        split::generate(split::SEED, &only_first).batches[0],
        split.batches[0]
    );
}

/// An update task says which fields may change and holds the rest: a write
/// that also sets a status or a value nobody asked for fails it. Every task
/// expecting fields of an existing record (`where: {id: "@ref"}`) carries an
/// `unchanged: ["@ref except …"]` (or a whole `"@ref"`) for that record.
#[test]
fn every_update_task_holds_the_fields_it_does_not_change() {
    use rapport_evals::task::Unchanged;
    let suites = load_suites(&[], &default_suites_dir()).unwrap();
    let mut missing = Vec::new();
    let mut updates = 0;
    for t in suites.iter().flat_map(|s| &s.tasks) {
        let e = &t.expect;
        let held: BTreeSet<&str> = e
            .unchanged
            .iter()
            .filter_map(|u| match Unchanged::parse(u) {
                Unchanged::Record { reference, .. } => Some(reference),
                Unchanged::Type(_) => None,
            })
            .collect();
        for r in e
            .records
            .iter()
            .filter(|r| !r.absent && !r.fields.is_empty())
        {
            let Some(reference) = r.filter.get("id").and_then(|v| v.as_str()) else {
                continue;
            };
            updates += 1;
            if !held.contains(reference) {
                missing.push(format!("{}: {reference}", t.id));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "update tasks without `unchanged`: {missing:?}"
    );
    assert!(updates >= 30, "only {updates} updated records");
}
