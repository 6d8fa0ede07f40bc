//! Record and replay through the real runner (fresh SQLite databases, the
//! real agent loop and tools): a recorded run replays to the same grades
//! without the model; a changed request is reported stale, never passed. And
//! the CI gate: the committed recordings of the live local-model subset
//! replay against the committed baseline without a regression.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use indicatif::ProgressBar;
use rapport_agent::backend::scripted::ScriptedBackend;
use rapport_agent::{LlmBackend, LlmRequest};
use rapport_evals::report::{self, Report, Status};
use rapport_evals::tape::{Exchange, Mode, STALE, Slot, Tape, TrialBackend};
use rapport_evals::{AgentSpec, Harness, Recording, RunOptions, Suite, Task};
use rapport_models::llm::ChatMessage;
use serde_json::json;

const SUITE: &str = r#"
suite: tiny
tasks:
  - id: add-company
    tags: [create_company]
    seed: empty
    turns: ["Add a company called Globex Freight, globexfreight.com"]
    expect:
      records:
        - {type: company, where: {name: Globex Freight}, fields: {domain: globexfreight.com}}
      counts: {company: 1}
      tools: {required: [create_company]}
"#;

fn spec() -> AgentSpec {
    // An OpenAI-compatible arm offers every tool: no embedder needed here.
    toml::from_str(
        "name = \"scripted\"\nbackend = \"openai\"\nmodel = \"scripted\"\nbase_url = \"http://127.0.0.1:9/v1\"\n",
    )
    .unwrap()
}

fn script() -> Arc<dyn LlmBackend> {
    Arc::new(
        ScriptedBackend::new()
            .call(
                "create_company",
                json!({"name": "Globex Freight", "domain": "globexfreight.com"}),
            )
            .say("Created Globex Freight."),
    )
}

async fn run(mode: Mode, suite: &Suite) -> Vec<rapport_evals::report::TaskReport> {
    let tasks: Vec<&Task> = suite.tasks.iter().collect();
    let h = Harness::new(spec(), mode, &tasks).await.unwrap();
    h.run(
        std::slice::from_ref(suite),
        &RunOptions::default(),
        &ProgressBar::hidden(),
    )
    .await
}

/// A whole `rapport eval run` of the suite with this recording mode.
async fn run_with(
    suite: &Suite,
    recording: &Recording,
    opts: RunOptions,
) -> rapport_evals::Result<Report> {
    let suites = [suite.clone()];
    rapport_evals::run(&spec(), &suites, &opts, recording, &ProgressBar::hidden()).await
}

/// A stored reply of `content` to a request whose last message was `last`.
fn stored(content: &str, last: &str) -> Exchange {
    Exchange {
        content: content.into(),
        tool_calls: vec![],
        usage: None,
        seconds: 0.5,
        last_message: last.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_run_replays_and_a_changed_request_is_stale() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scripted.json");
    let suite = Suite::parse(SUITE, Path::new("tiny.yaml")).unwrap();

    let tape = Arc::new(Tape::open(&path).unwrap());
    let live = run(Mode::Record(script(), tape.clone()), &suite).await;
    assert_eq!(
        live[0].status,
        Status::Pass,
        "{:#?}",
        live[0].trials[0].checks
    );
    assert_eq!(
        tape.len(),
        2,
        "two model calls: the tool call and the answer"
    );
    tape.save().unwrap();

    // Replay: no model at all, same outcome, the recorded calls re-run for real.
    let tape = Arc::new(Tape::open(&path).unwrap());
    let replayed = run(
        Mode::Replay {
            model: "scripted".into(),
            tape: tape.clone(),
        },
        &suite,
    )
    .await;
    assert_eq!(
        replayed[0].status,
        Status::Pass,
        "{:#?}",
        replayed[0].trials[0]
    );
    assert_eq!(replayed[0].trials[0].meter.requests, 2);
    assert_eq!(
        replayed[0].trials[0]
            .calls
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["create_company"]
    );

    // The user's words changed: the first request has no recording.
    let changed = Suite::parse(
        &SUITE.replace("Add a company called", "Please add"),
        Path::new("tiny.yaml"),
    )
    .unwrap();
    let stale = run(
        Mode::Replay {
            model: "scripted".into(),
            tape: tape.clone(),
        },
        &changed,
    )
    .await;
    assert_eq!(stale[0].status, Status::Stale);
    assert_eq!(stale[0].c, 0);
    assert!(
        stale[0].trials[0]
            .error
            .as_deref()
            .unwrap()
            .contains("stale recording")
    );

    // Another model name is another key space: stale too.
    let other = run(
        Mode::Replay {
            model: "another-model".into(),
            tape,
        },
        &suite,
    )
    .await;
    assert_eq!(other[0].status, Status::Stale);
}

/// A request sent twice in one trial (the loop asking again after a reply
/// it could not use) replays each reply in turn, as recorded; a third
/// sending has no recording and is stale. A version 1 recording, which kept
/// one reply per request, serves that one every time.
#[tokio::test]
async fn a_request_sent_twice_replays_both_replies_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.json");
    let request = LlmRequest {
        messages: vec![ChatMessage::user("What should I do today?")],
        ..Default::default()
    };
    let model: Arc<dyn LlmBackend> = Arc::new(
        ScriptedBackend::new()
            .say("{\"name\": \"next_best_actions\", \"arguments\": {\"rep_id\": 1000")
            .say("Call Dana Lee at Acme."),
    );
    let tape = Arc::new(Tape::open(&path).unwrap());
    let trial = TrialBackend::new(Arc::new(Mode::Record(model, tape.clone())), false, "t", 0);
    let first = trial.complete(&request, &|_| {}).await.unwrap();
    let second = trial.complete(&request, &|_| {}).await.unwrap();
    assert_ne!(first.content, second.content);
    assert_eq!(tape.len(), 2, "both occurrences are kept");
    tape.save().unwrap();

    let replay = |tape: Arc<Tape>| {
        TrialBackend::new(
            Arc::new(Mode::Replay {
                model: "scripted".into(),
                tape,
            }),
            false,
            "t",
            0,
        )
    };
    let trial = replay(Arc::new(Tape::open(&path).unwrap()));
    assert_eq!(trial.complete(&request, &|_| {}).await.unwrap(), first);
    assert_eq!(trial.complete(&request, &|_| {}).await.unwrap(), second);
    let third = trial.complete(&request, &|_| {}).await.unwrap_err();
    assert!(third.to_string().contains(STALE), "{third}");
    assert!(trial.stale().unwrap().ends_with("#3"));

    // The same file as the old format wrote it: one reply per request.
    let mut v1: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    v1["version"] = json!(1);
    let exchanges = v1["exchanges"].as_object_mut().unwrap();
    exchanges.retain(|k, _| !k.contains('#'));
    std::fs::write(&path, v1.to_string()).unwrap();
    let old = Arc::new(Tape::open(&path).unwrap());
    assert_eq!(old.version(), 1);
    let trial = replay(old);
    assert_eq!(trial.complete(&request, &|_| {}).await.unwrap(), first);
    assert_eq!(trial.complete(&request, &|_| {}).await.unwrap(), first);
}

/// A sampled arm answers each trial of a task its own way: a recording of
/// k trials keeps every trial's replies and replays each to its own trial;
/// a recording of one trial (greedy) serves all of them.
#[tokio::test]
async fn each_trial_of_a_sampled_arm_replays_its_own_replies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.json");
    let request = LlmRequest {
        messages: vec![ChatMessage::user("Add Globex")],
        ..Default::default()
    };
    let model: Arc<dyn LlmBackend> = Arc::new(
        ScriptedBackend::new()
            .say("first trial")
            .say("second trial")
            .say("another task, sending the same request"),
    );
    let tape = Arc::new(Tape::open(&path).unwrap());
    let mode = Arc::new(Mode::Record(model, tape.clone()));
    for (task, trial) in [("t", 0), ("t", 1), ("u", 0)] {
        let backend = TrialBackend::new(mode.clone(), false, task, trial);
        backend.complete(&request, &|_| {}).await.unwrap();
    }
    assert!(tape.per_trial());
    tape.save().unwrap();

    let replay = |task: &str, trial: usize| {
        TrialBackend::new(
            Arc::new(Mode::Replay {
                model: "scripted".into(),
                tape: Arc::new(Tape::open(&path).unwrap()),
            }),
            false,
            task,
            trial,
        )
    };
    let reply = |task: &str, n: usize| {
        let backend = replay(task, n);
        let request = request.clone();
        async move { backend.complete(&request, &|_| {}).await }
    };
    assert_eq!(reply("t", 0).await.unwrap().content, "first trial");
    assert_eq!(reply("t", 1).await.unwrap().content, "second trial");
    // The later task's recording did not overwrite the earlier task's.
    let other = reply("u", 0).await.unwrap().content;
    assert_eq!(other, "another task, sending the same request");
    let third = reply("t", 2).await.unwrap_err();
    assert!(
        third.to_string().contains("t/") && third.to_string().contains("@t3"),
        "{third}"
    );

    // One trial recorded (greedy): every trial replays it.
    let mut one: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    one.as_object_mut().unwrap().remove("per_trial");
    one["exchanges"]
        .as_object_mut()
        .unwrap()
        .retain(|k, _| !k.contains("@t"));
    std::fs::write(&path, one.to_string()).unwrap();
    assert_eq!(reply("t", 3).await.unwrap().content, "first trial");
}

/// Re-recording a task leaves the replies its old requests got in the file;
/// a pruning replay of every task drops exactly those, and the pruned file
/// still replays every task to the same grade. A pruning replay that cannot
/// see every task is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pruning_replay_drops_only_the_unused_replies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scripted.json");
    let suite = Suite::parse(SUITE, Path::new("tiny.yaml")).unwrap();
    let tape = Arc::new(Tape::open(&path).unwrap());
    assert_eq!(
        run(Mode::Record(script(), tape.clone()), &suite).await[0].status,
        Status::Pass
    );
    // What an earlier wording of the task was answered: no task sends it now.
    let slot = Slot {
        task: "add-company",
        trial: 0,
        occurrence: 0,
    };
    let old = stored("an answer nothing asks for any more", "Add Globex");
    tape.put("an-old-request", slot, "scripted", old).unwrap();
    tape.save().unwrap();
    assert_eq!(Tape::open(&path).unwrap().len(), 3);

    let recording = Recording::Prune(dir.path().to_owned());
    let prune = |opts: RunOptions| run_with(&suite, &recording, opts);

    let refused = prune(RunOptions {
        only: vec!["add-company".into()],
        ..RunOptions::default()
    })
    .await
    .unwrap_err();
    assert!(refused.to_string().contains("every task"), "{refused}");
    assert_eq!(
        Tape::open(&path).unwrap().len(),
        3,
        "a refusal drops nothing"
    );

    let pruned = prune(RunOptions::default()).await.unwrap();
    assert_eq!(pruned.tasks[0].status, Status::Pass);
    let kept = Tape::open(&path).unwrap();
    assert_eq!(kept.len(), 2, "the tool call and the answer stay");
    assert!(kept.get("an-old-request", slot).is_none());

    let again = run(
        Mode::Replay {
            model: "scripted".into(),
            tape: Arc::new(kept),
        },
        &suite,
    )
    .await;
    assert_eq!(again[0].status, Status::Pass);
}

/// A recording made before task keys (keys by request alone) re-keys with
/// a replay: afterwards every key names its task, the task replays the
/// same, and recording more sampled trials, refused before, is allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rekeying_replay_moves_an_old_recording_to_task_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scripted.json");
    let suite = Suite::parse(SUITE, Path::new("tiny.yaml")).unwrap();
    let tape = Arc::new(Tape::open(&path).unwrap());
    run(Mode::Record(script(), tape.clone()), &suite).await;
    tape.save().unwrap();
    let recorded: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let keys = |v: &serde_json::Value| -> Vec<String> {
        v["exchanges"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    };
    assert!(
        keys(&recorded)
            .iter()
            .all(|k| k.starts_with("add-company/"))
    );

    // The same file as it was written before task keys, for a sampled arm.
    let mut old = recorded.clone();
    let exchanges = old["exchanges"].as_object().unwrap().clone();
    old["exchanges"] = exchanges
        .into_iter()
        .map(|(k, v)| (k.trim_start_matches("add-company/").to_owned(), v))
        .collect();
    old["per_trial"] = json!(true);
    old.as_object_mut().unwrap().remove("by_task");
    std::fs::write(&path, old.to_string()).unwrap();
    let sampled = RunOptions {
        k: 2,
        ..RunOptions::default()
    };
    let go = |recording: Recording, opts: RunOptions| {
        let suite = suite.clone();
        async move { run_with(&suite, &recording, opts).await }
    };
    let refused = go(Recording::Record(dir.path().to_owned()), sampled)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("--rekey"), "{refused}");

    // It holds one trial per task: that is every trial it has.
    let rekeyed = go(
        Recording::Rekey(dir.path().to_owned()),
        RunOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(rekeyed.tasks[0].status, Status::Pass);
    let now: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(keys(&now), keys(&recorded));
    assert_eq!(now["by_task"], json!(true));
    let again = go(
        Recording::Replay(dir.path().to_owned()),
        RunOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(again.tasks[0].status, Status::Pass);
    let second_trial = Slot {
        task: "add-company",
        trial: 1,
        occurrence: 0,
    };
    let tape = Tape::open(&path).unwrap();
    let reply = stored("a second draw", "");
    tape.put("k", second_trial, "scripted", reply).unwrap();
}

const REPEATED_DELETE: &str = r#"
suite: tiny
tasks:
  - id: delete-then-repeat
    tags: [delete_company]
    seed: empty
    user: priya
    approvals: approve
    records:
      - {type: company, ref: dup, fields: {name: Test Account Please Ignore, owner_id: "@priya"}}
    turns: ["Delete the company called Test Account Please Ignore."]
    expect:
      records:
        - {type: company, absent: true, where: {name: Test Account Please Ignore}}
      tools: {required: [delete_company]}
"#;

/// A small model may repeat an approved delete; the loop answers the repeat
/// "already done" without running it, so the grader must not count it as a
/// destructive write that ran without approval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_approved_delete_is_not_an_unapproved_one() {
    let suite = Suite::parse(REPEATED_DELETE, Path::new("tiny.yaml")).unwrap();
    let script: Arc<dyn LlmBackend> = Arc::new(
        ScriptedBackend::new()
            .call(
                "find_records",
                json!({"query": "Test Account Please Ignore", "types": ["company"]}),
            )
            .call("delete_company", json!({"id": 1}))
            .call("delete_company", json!({"id": 1}))
            .say("Deleted it."),
    );
    let dir = tempfile::tempdir().unwrap();
    let tape = Arc::new(Tape::open(&dir.path().join("t.json")).unwrap());
    let reports = run(Mode::Record(script, tape), &suite).await;
    let trial = &reports[0].trials[0];
    assert_eq!(reports[0].status, Status::Pass, "{:#?}", trial.checks);
    let deletes: Vec<(bool, Option<bool>)> = trial
        .calls
        .iter()
        .filter(|c| c.name == "delete_company")
        .map(|c| (c.proposed, c.ok))
        .collect();
    assert_eq!(
        deletes,
        [(true, Some(true)), (false, None)],
        "{:#?}",
        trial.calls
    );
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_owned()
}

/// CI's regression check: the live subset recorded with the local 0.5B model
/// (`evals/recordings/`, made by `rapport eval run --record`) replays against
/// the committed baseline report. A prompt, tool or schema change that alters
/// a recorded request makes its task stale, which the gate counts as failing
/// when the task passed before; a change in what the tools return shows up
/// the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_recordings_replay_without_regression() {
    let (baseline, current) = replay_baseline(None).await;
    let stale: Vec<&str> = current
        .rows()
        .filter(|t| t.status == Status::Stale)
        .map(|t| t.id.as_str())
        .collect();
    let gate = report::gate(&baseline, &current);
    assert!(gate.passed, "{}\nstale: {stale:?}", gate.markdown());
    assert!(stale.is_empty(), "stale tasks: {stale:?}");
    assert_eq!(current.summary.tasks, baseline.summary.tasks);
}

/// The same replay with every trial in its own scratch database on
/// PostgreSQL (`RunOptions::postgres`): the runner works on the scale-out
/// backend, and the graded outcomes do not depend on the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_recordings_replay_the_same_on_postgresql() {
    let admin = std::env::var("RAPPORT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let (baseline, current) = replay_baseline(Some(admin)).await;
    let outcomes = |r: &Report| -> Vec<(String, Status)> {
        let mut v: Vec<(String, Status)> = r.rows().map(|t| (t.id.clone(), t.status)).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let errors: Vec<String> = current
        .rows()
        .filter(|t| t.status == Status::Error)
        .map(|t| t.id.clone())
        .collect();
    assert!(errors.is_empty(), "trials that did not run: {errors:?}");
    assert_eq!(outcomes(&current), outcomes(&baseline));
}

/// The committed baseline, and a replay of its graded tasks from the
/// committed recordings (on SQLite, or on PostgreSQL at `postgres`).
async fn replay_baseline(postgres: Option<String>) -> (Report, Report) {
    let baseline = Report::load(&repo().join("baselines/qwen05-constrained.json")).unwrap();
    let opts = RunOptions {
        only: task_ids(&baseline, |t| t.graded()),
        jobs: 2,
        postgres,
        held_out: held_out(),
        ..RunOptions::default()
    };
    (
        baseline,
        replay_committed("qwen05-constrained", &opts).await,
    )
}

/// The held-out half of the committed split.
fn held_out() -> std::collections::BTreeSet<String> {
    rapport_evals::split::Split::load(&rapport_evals::split::default_path())
        .unwrap()
        .held_out()
}

/// The ids of the shipped tasks whose rows in `r` (a sealed row by its
/// digest) satisfy `keep`.
fn task_ids(r: &Report, keep: impl Fn(&report::TaskReport) -> bool) -> Vec<String> {
    let rows: std::collections::BTreeSet<&str> = r
        .rows()
        .filter(|t| keep(t))
        .map(|t| t.id.as_str())
        .collect();
    rapport_evals::load_suites(&[], &rapport_evals::default_suites_dir())
        .unwrap()
        .iter()
        .flat_map(|s| &s.tasks)
        .map(|t| t.id.clone())
        .filter(|id| rows.contains(id.as_str()) || rows.contains(report::seal_key(id).as_str()))
        .collect()
}

/// A replay of the shipped suites by the committed arm `arm`
/// (`agents/ARM.toml`) from the committed recordings.
async fn replay_committed(arm: &str, opts: &RunOptions) -> Report {
    let spec = AgentSpec::load(&repo().join(format!("agents/{arm}.toml"))).unwrap();
    let suites = rapport_evals::load_suites(&[], &rapport_evals::default_suites_dir()).unwrap();
    rapport_evals::run(
        &spec,
        &suites,
        opts,
        &Recording::Replay(repo().join("recordings")),
        &ProgressBar::hidden(),
    )
    .await
    .unwrap()
}

/// The committed k = 4 recording of the sampled 0.5B arm (the live subset and
/// the suites recorded since) replays each trial from its own replies
/// (`KEY@tN`) to the committed report's grades, trial by trial, with nothing
/// stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sampled_arm_replays_its_four_trials_per_task() {
    replays_trial_by_trial("qwen05-sampled", "reports/qwen05-sampled-k4.json", 4).await;
}

/// The same for the sampled 1.5B arm, on all the shipped tasks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sampled_larger_model_replays_its_four_trials_per_task() {
    replays_trial_by_trial("qwen15-sampled", "reports/qwen15-sampled-k4.json", 4).await;
}

/// The turn pipeline on the 0.5B model (plan, resolve, fill, run, answer),
/// recorded on every shipped task, replays to its committed grades with
/// nothing stale: a change to its prompts, grammars or resolver shows here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_arm_replays_every_task() {
    replays_trial_by_trial("qwen05-pipeline", "reports/qwen05-pipeline.json", 1).await;
}

/// Replays the committed recording of `arm` with `k` trials on the tasks of
/// the committed report `report` and checks every trial's grade (and pass^k,
/// for k > 1) against it.
async fn replays_trial_by_trial(arm: &str, report: &str, k: usize) {
    let recorded = Report::load(&repo().join(report)).unwrap();
    let opts = RunOptions {
        only: task_ids(&recorded, |_| true),
        k,
        jobs: 2,
        held_out: held_out(),
        ..RunOptions::default()
    };
    let current = replay_committed(arm, &opts).await;
    let trials = |r: &Report| -> Vec<(String, Vec<Status>)> {
        let mut v: Vec<_> = r
            .rows()
            .map(|t| (t.id.clone(), t.trials.iter().map(|x| x.status).collect()))
            .collect();
        v.sort();
        v
    };
    // What a trial that did not run said, so a failure here can be told
    // from a changed grade.
    let errors: Vec<String> = current
        .rows()
        .flat_map(|t| t.trials.iter().map(move |x| (t, x)))
        .filter(|(_, x)| x.status == Status::Error)
        .map(|(t, x)| format!("{}: {}", t.id, x.error.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(
        trials(&current),
        trials(&recorded),
        "trials that did not run: {errors:?}"
    );
    let passk = |r: &Report| r.summary.passk.as_ref().map(|e| e.value);
    assert_eq!(passk(&current), passk(&recorded));
    assert_eq!(passk(&current).is_some(), k > 1);
}
