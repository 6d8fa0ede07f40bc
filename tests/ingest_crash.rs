//! Kill -9 in the middle of `rapport ingest`, change the database, run it again:
//! the index must then hold exactly the points the database implies — none
//! missing, none duplicated, none stale. Runs the real binary on a real SQLite
//! file, a real qdrant-edge shard and the real MiniLM.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rapport_crm::model::Activity;
use rapport_crm::{Ctx, ListQuery, Source, Store};
use rapport_index::{EdgeIndex, VectorIndex};
use rapport_pipelines::memory::Chunker;
use rapport_pipelines::memory::clean::indexed_text;
use serde_json::json;

fn rapport(data: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rapport"));
    c.arg("--data-dir")
        .arg(data)
        .env_remove("RAPPORT_DATABASE_URL")
        .env_remove("RAPPORT_QDRANT_URL")
        .env("RAPPORT_WORKSPACE", "crash")
        .stdout(Stdio::null());
    c
}

fn run_ok(c: &mut Command) {
    let out = c.stderr(Stdio::piped()).output().expect("run rapport");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn all_activities(store: &Store, ctx: &Ctx) -> Vec<Activity> {
    let mut out = Vec::new();
    let mut q = ListQuery::default().limit(500);
    loop {
        let page = store.list::<Activity>(ctx, &q).await.unwrap();
        out.extend(page.items);
        match page.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => return out,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_ingestion_resumes_to_exactly_the_implied_points() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    run_ok(rapport(data).args(["seed", "demo", "--companies", "12", "--as-of", "2026-11-02"]));

    let store = Store::connect(&Store::sqlite_url_in(data)).await.unwrap();
    let ws = store.workspace_by_name("crash").await.unwrap().unwrap();
    let ctx = Ctx::new(ws.id, None, Source::Cli);
    let queued = store.outbox_len(Some(ws.id)).await.unwrap();
    assert!(queued > 200, "seeding queued every activity ({queued})");

    // Start ingesting in small rounds and kill it once some rounds are acknowledged.
    let mut child = rapport(data)
        .args(["ingest", "--batch", "8"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        let left = store.outbox_len(Some(ws.id)).await.unwrap();
        if left < queued - 16 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "ingest ended before it could be killed"
        );
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "ingest made no progress"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let left = store.outbox_len(Some(ws.id)).await.unwrap();
    assert!(left > 0, "killed mid-run, work is left");

    // Meanwhile the database changes: an edit and a delete, of activities
    // that may or may not have been indexed already.
    let acts = all_activities(&store, &ctx).await;
    let (first, last) = (acts[0].id, acts[acts.len() - 1].id);
    store
        .update::<Activity>(
            &ctx,
            first,
            json!({"body": "Rewritten after the crash: they now want Spendwise."}),
        )
        .await
        .unwrap();
    store.delete::<Activity>(&ctx, last).await.unwrap();

    run_ok(rapport(data).arg("ingest"));
    assert_eq!(store.outbox_len(None).await.unwrap(), 0);

    // What the database implies, computed independently of the ingesting process.
    let chunker = tokio::task::spawn_blocking(|| Chunker::minilm(Default::default()).unwrap())
        .await
        .unwrap();
    let mut implied = Vec::new();
    for a in all_activities(&store, &ctx).await {
        let kind = serde_json::to_value(a.kind).unwrap();
        let text = indexed_text(kind.as_str().unwrap(), a.subject.as_deref(), &a.body);
        let n = chunker.chunk(&text).unwrap().len() as u32;
        implied.extend((0..n).map(|c| (a.id, c)));
    }
    implied.sort();
    store.close().await;

    let index = EdgeIndex::open(&data.join("index"), 384).await.unwrap();
    let keys = index.keys(ws.id).await.unwrap();
    assert_eq!(keys.len(), implied.len(), "no point missing or extra");
    assert_eq!(keys, implied);
    assert_eq!(
        index.count(ws.id).await.unwrap(),
        implied.len() as u64,
        "no duplicates"
    );
    assert!(
        keys.iter().all(|k| k.0 != last),
        "the deleted activity is gone"
    );
}
