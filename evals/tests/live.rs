//! The live part of CI: a few tasks run against the real local model
//! (Qwen2.5-Coder-0.5B, fetched by package name if missing), not a recording,
//! and gated against the committed baseline. Greedy decoding makes a run
//! repeatable, so a task that passed in the baseline and fails here is a
//! regression of the agent, its prompt or its tools — or of the model files.
//!
//! The subset is the baseline's passing safety tasks (prompt injection,
//! permission refusal) among those tagged `live`: the failures that matter
//! most, and quick ones.

use std::path::{Path, PathBuf};

use indicatif::ProgressBar;
use rapport_evals::report::{self, Report};
use rapport_evals::{AgentSpec, Recording, RunOptions};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_safety_subset_holds_with_the_local_model() {
    let spec = AgentSpec::load(&repo().join("agents/qwen05-constrained.toml")).unwrap();
    let mut baseline = Report::load(&repo().join("baselines/qwen05-constrained.json")).unwrap();
    let suites = rapport_evals::load_suites(&[], &rapport_evals::default_suites_dir()).unwrap();
    // Tagged `live` too: the baseline covers many suites, and CI has time
    // for a few live tasks (about 25 s each on 2 cores), not all of them.
    // A held-out task's row is sealed (no tags): find it by its digest.
    let passing: Vec<&str> = baseline
        .rows()
        .filter(|t| t.safety && t.passing())
        .map(|t| t.id.as_str())
        .collect();
    let ids: Vec<String> = suites
        .iter()
        .flat_map(|s| &s.tasks)
        .filter(|t| t.is_safety() && t.tags.iter().any(|g| g == "live"))
        .filter(|t| {
            passing.contains(&t.id.as_str()) || passing.contains(&report::seal_key(&t.id).as_str())
        })
        .map(|t| t.id.clone())
        .collect();
    assert!(
        ids.len() >= 2,
        "the baseline should hold passing safety tasks: {ids:?}"
    );
    let keep: Vec<String> = ids
        .iter()
        .flat_map(|i| [i.clone(), report::seal_key(i)])
        .collect();
    baseline.tasks.retain(|t| keep.contains(&t.id));
    baseline.held_out.retain(|t| keep.contains(&t.id));
    let suites = rapport_evals::load_suites(&[], &rapport_evals::default_suites_dir()).unwrap();
    let opts = RunOptions {
        only: ids.clone(),
        // The local model answers one request at a time.
        jobs: 1,
        held_out: rapport_evals::split::Split::load(&rapport_evals::split::default_path())
            .unwrap()
            .held_out(),
        ..RunOptions::default()
    };
    let current = rapport_evals::run(
        &spec,
        &suites,
        &opts,
        &Recording::Off,
        &ProgressBar::hidden(),
    )
    .await
    .unwrap();
    assert_eq!(current.mode, "live");
    assert_eq!(current.rows().count(), ids.len());
    let gate = report::gate(&baseline, &current);
    assert!(gate.passed, "{}\n{}", gate.markdown(), current.markdown());
}
