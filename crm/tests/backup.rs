//! The database snapshot of a backup, on a real SQLite file under a real
//! concurrent writer: the copy is the database as of one commit (the writer's
//! pairs of rows are a whole prefix, none torn), a transaction in flight is
//! not in it, and it passes `PRAGMA integrity_check`. PostgreSQL is refused.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use indicatif::ProgressBar;
use rapport_crm::model::{Activity, Company};
use rapport_crm::seed::{self, SeedParams};
use rapport_crm::snapshot::{SnapshotError, SnapshotFile, snapshot_sqlite};
use rapport_crm::testing::{Fixture, TestDb};
use rapport_crm::{Ctx, Store};
use serde_json::json;

/// One transaction: a company and a note on it, both named `writer-I`.
async fn write_pair(store: &Store, ctx: &Ctx, i: usize) -> rapport_crm::Result<()> {
    let mut tx = store.begin().await?;
    let c: Company = tx
        .create(ctx, json!({"name": format!("writer-{i}")}))
        .await?;
    tx.create::<Activity>(
        ctx,
        json!({"kind": "note", "body": format!("writer-{i}"), "company_id": c.id}),
    )
    .await?;
    tx.commit().await
}

/// How far the writer got: pairs begun (their transaction may be open) and
/// pairs committed.
#[derive(Default)]
struct Progress {
    begun: AtomicUsize,
    done: AtomicUsize,
    stop: AtomicBool,
}

/// Writes pairs until told to stop.
fn spawn_writer(store: Store, ctx: Ctx, p: Arc<Progress>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut i = 0;
        while !p.stop.load(Ordering::Relaxed) {
            p.begun.store(i + 1, Ordering::SeqCst);
            write_pair(&store, &ctx, i).await.expect("writer");
            i += 1;
            p.done.store(i, Ordering::SeqCst);
        }
    })
}

/// The numbers `I` of the `writer-I` values in one column of a snapshot table.
async fn writer_numbers(snap: &mut SnapshotFile, table: &str, column: usize) -> Vec<usize> {
    let mut found: Vec<usize> = snap
        .rows(table)
        .await
        .unwrap()
        .iter()
        .filter_map(|r| {
            r[column]
                .strip_prefix("'writer-")?
                .strip_suffix('\'')?
                .parse()
                .ok()
        })
        .collect();
    found.sort_unstable();
    found
}

/// The `writer-I` numbers found in a column of a snapshot table, sorted.
async fn writers_in(snap: &mut SnapshotFile, table: &str, column: &str) -> Vec<usize> {
    let columns = snap.columns(table).await.unwrap();
    let at = columns.iter().position(|c| c == column).expect("column");
    writer_numbers(snap, table, at).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_is_one_commit_while_a_writer_writes() {
    let db = TestDb::sqlite().await;
    let fx = Fixture::new(&db.store, "snap").await.unwrap();
    let ctx = fx.admin_ctx();
    let data = seed::generate(&SeedParams::new(2, 7));
    seed::write(&db.store, &ctx, &data, &ProgressBar::hidden())
        .await
        .unwrap();

    let p = Arc::new(Progress::default());
    let writer = spawn_writer(db.store.clone(), ctx.clone(), p.clone());
    while p.done.load(Ordering::SeqCst) < 5 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snap.sqlite");
    // Committed before the snapshot began: in it. Begun after it ended: not.
    let before = p.done.load(Ordering::SeqCst);
    snapshot_sqlite(&db.store, &path).await.unwrap();
    let after = p.begun.load(Ordering::SeqCst);
    // The writer goes on after the snapshot.
    while p.done.load(Ordering::SeqCst) < after + 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    p.stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    let total = p.done.load(Ordering::SeqCst);

    let mut snap = SnapshotFile::open(&path).await.unwrap();
    snap.integrity_check().await.unwrap();
    let companies = writers_in(&mut snap, "companies", "name").await;
    let notes = writers_in(&mut snap, "activities", "body").await;
    let k = companies.len();
    assert_eq!(
        companies,
        (0..k).collect::<Vec<_>>(),
        "a prefix of the commits"
    );
    assert_eq!(
        notes, companies,
        "every company with its note: no torn pair"
    );
    assert!(
        (before..=after).contains(&k),
        "the snapshot holds {k} commits, taken between {before} and {after}"
    );
    assert!(total > k, "the writer wrote on ({total} > {k})");
    let counts = snap.table_counts().await.unwrap();
    let seeded_companies = data.companies.len();
    assert_eq!(counts["companies"] as usize, seeded_companies + k);
    assert_eq!(
        counts["activities"] as usize,
        data.activities.len() + k,
        "{counts:?}"
    );
    // Nothing indexed yet: the outbox holds one entry per activity.
    assert_eq!(counts["index_outbox"], counts["activities"]);
    snap.close().await.unwrap();
    db.cleanup().await;
}

#[tokio::test]
async fn a_transaction_in_flight_is_not_in_the_snapshot() {
    let db = TestDb::sqlite().await;
    let fx = Fixture::new(&db.store, "flight").await.unwrap();
    let ctx = fx.admin_ctx();
    write_pair(&db.store, &ctx, 0).await.unwrap();
    let mut tx = db.store.begin().await.unwrap();
    tx.create::<Company>(&ctx, json!({"name": "writer-1"}))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snap.sqlite");
    snapshot_sqlite(&db.store, &path).await.unwrap();
    tx.commit().await.unwrap();

    let mut snap = SnapshotFile::open(&path).await.unwrap();
    snap.integrity_check().await.unwrap();
    assert_eq!(writers_in(&mut snap, "companies", "name").await, vec![0]);
    snap.close().await.unwrap();
    // A snapshot never overwrites.
    let again = snapshot_sqlite(&db.store, &path).await.unwrap_err();
    assert!(matches!(again, SnapshotError::TargetExists(_)), "{again}");
    db.cleanup().await;
}

#[tokio::test]
async fn postgres_is_left_to_pg_dump() {
    let db = TestDb::postgres().await;
    let dir = tempfile::tempdir().unwrap();
    let err = snapshot_sqlite(&db.store, &dir.path().join("x.sqlite"))
        .await
        .unwrap_err();
    assert!(matches!(err, SnapshotError::NotSqlite), "{err}");
    assert!(err.to_string().contains("pg_dump"), "{err}");
    assert!(!dir.path().join("x.sqlite").exists());
    db.cleanup().await;
}
