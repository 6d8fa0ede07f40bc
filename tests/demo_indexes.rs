//! `rapport demo --no-chat` leaves a CRM that `rapport ask` can search: the
//! emails, calls and notes it seeded are indexed before it returns (and with
//! `--no-index` they are not). Runs the real binary on a real SQLite file, a
//! real qdrant-edge shard and the real MiniLM.

use std::path::Path;
use std::process::{Command, Stdio};

use rapport_crm::Store;

fn demo(data: &Path, extra: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_rapport"))
        .arg("--data-dir")
        .arg(data)
        .env_remove("RAPPORT_DATABASE_URL")
        .env_remove("RAPPORT_QDRANT_URL")
        .env("RAPPORT_WORKSPACE", "demo")
        .args(["demo", "--no-chat", "--companies", "3"])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("run rapport");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Activities still waiting in the outbox to be indexed.
async fn unindexed(data: &Path) -> i64 {
    let store = Store::connect(&Store::sqlite_url_in(data)).await.unwrap();
    let ws = store.workspace_by_name("demo").await.unwrap().unwrap();
    store.outbox_len(Some(ws.id)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_without_chat_indexes_what_it_seeded() {
    let skipped = tempfile::tempdir().unwrap();
    demo(skipped.path(), &["--no-index"]);
    assert!(
        unindexed(skipped.path()).await > 20,
        "--no-index leaves the seeded activities queued"
    );

    let indexed = tempfile::tempdir().unwrap();
    demo(indexed.path(), &[]);
    assert_eq!(unindexed(indexed.path()).await, 0, "everything indexed");
}
