//! `backup` and `restore` of a real data directory: a seeded SQLite file, a
//! qdrant-edge shard with points, a model-registry row and a trained
//! sentiment head on disk. The backup runs while another writer commits; the
//! restore is compared with the live data table by table and row by row, the
//! index by point count and search result, the registry by its rows and files.
//! Damaged backups and non-empty targets are refused with nothing written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use indicatif::ProgressBar;
use rapport_crm::model::{Activity, Company};
use rapport_crm::seed::{self, SeedParams};
use rapport_crm::snapshot::{SnapshotFile, snapshot_sqlite};
use rapport_crm::testing::Fixture;
use rapport_crm::{Ctx, ListQuery, NewModelVersion, Store};
use rapport_index::{
    Candidate, ChunkPayload, EdgeIndex, IndexFilter, IndexPoint, Probe, SparseVector, VectorIndex,
};
use rapport_pipelines::backup::{
    self, BackupOptions, Error, IndexMode, IndexSource, Manifest, RestoreOptions,
};
use serde_json::json;

const DIM: usize = 8;
const POINTS: usize = 12;

/// A data directory with records, an index, a registry entry; a models
/// directory with a trained sentiment head.
struct Deployment {
    _root: tempfile::TempDir,
    root: PathBuf,
    data: PathBuf,
    models: PathBuf,
    store: Store,
    ctx: Ctx,
}

impl Deployment {
    async fn new() -> Deployment {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().to_path_buf();
        let data = path.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let store = Store::connect(&Store::sqlite_url_in(&data)).await.unwrap();
        let fx = Fixture::new(&store, "main").await.unwrap();
        let ctx = fx.admin_ctx();
        let demo = seed::generate(&SeedParams::new(3, 11));
        seed::write(&store, &ctx, &demo, &ProgressBar::hidden())
            .await
            .unwrap();
        let mut tx = store.begin().await.unwrap();
        tx.add_model_version(&ctx, model_version()).await.unwrap();
        tx.commit().await.unwrap();

        let index = EdgeIndex::open(&data.join("index"), DIM).await.unwrap();
        let activities = store
            .list::<Activity>(&ctx, &ListQuery::default().limit(POINTS as u32))
            .await
            .unwrap()
            .items;
        assert_eq!(activities.len(), POINTS);
        index
            .upsert(activities.iter().map(|a| point(&ctx, a)).collect())
            .await
            .unwrap();
        drop(index);

        let models = path.join("models");
        let head = models.join("sentiment-head").join("v1");
        std::fs::create_dir_all(&head).unwrap();
        std::fs::write(head.join("head.json"), r#"{"version":"v1","hidden":16}"#).unwrap();
        std::fs::write(models.join("sentiment-head").join("CURRENT"), "v1\n").unwrap();
        Deployment {
            _root: root,
            root: path,
            data,
            models,
            store,
            ctx,
        }
    }

    fn backup_options(&self, dest: &str) -> BackupOptions {
        BackupOptions {
            data_dir: self.data.clone(),
            index: IndexSource::Embedded(self.data.join("index")),
            models_dir: Some(self.models.clone()),
            dest: self.root.join(dest),
        }
    }

    fn restore_options(&self, source: &str, target: &str, force: bool) -> RestoreOptions {
        RestoreOptions {
            source: self.root.join(source),
            data_dir: self.root.join(target),
            models_dir: Some(self.root.join(format!("{target}-models"))),
            force,
        }
    }

    async fn backup(&self, dest: &str) -> Manifest {
        backup::backup(&self.backup_options(dest), &ProgressBar::hidden())
            .await
            .unwrap()
    }
}

fn model_version() -> NewModelVersion {
    NewModelVersion {
        task: "lead_score".into(),
        algorithm: "logistic".into(),
        features: json!(["touches", "inbound"]),
        window_start: None,
        window_end: None,
        data_fingerprint: "f00d".into(),
        metrics: json!({"test": {"roc_auc": 0.71}}),
        artifact: r#"{"weights":[0.5,-0.25],"bias":0.1}"#.into(),
        status: "champion".into(),
        decision: Some("first model for this task".into()),
    }
}

/// A point whose dense vector is derived from the activity id.
fn point(ctx: &Ctx, a: &Activity) -> IndexPoint {
    IndexPoint {
        payload: ChunkPayload {
            workspace_id: ctx.workspace_id,
            activity_id: a.id,
            chunk: 0,
            kind: "note".into(),
            company_id: a.company_id,
            contact_id: a.contact_id,
            deal_id: a.deal_id,
            lead_id: a.lead_id,
            owner_id: a.owner_id,
            occurred_at: a.occurred_at,
            text: a.body.chars().take(40).collect(),
            start: 0,
            end: 40,
        },
        dense: vector(a.id as f32),
        sparse: SparseVector {
            indices: vec![(a.id % 50) as u32],
            values: vec![1.0],
        },
    }
}

fn vector(x: f32) -> Vec<f32> {
    (0..DIM)
        .map(|i| ((x + 1.0) * (i as f32 + 1.0)).sin())
        .collect()
}

/// The nearest points to a fixed probe, and the workspace's point count.
async fn search(dir: &Path, ws: i64) -> (u64, Vec<Candidate>) {
    let index = EdgeIndex::open(dir, DIM).await.unwrap();
    let probe = vector(3.5);
    let found = index
        .nearest(Probe::Dense(&probe), &IndexFilter::workspace(ws), 5)
        .await
        .unwrap();
    (index.count(ws).await.unwrap(), found)
}

/// Every table's rows, read from a fresh snapshot of `store` (the live file
/// is never opened beside its pool).
async fn tables_of(store: &Store, scratch: &Path) -> BTreeMap<String, Vec<Vec<String>>> {
    let path = scratch.join(format!("read-{}.sqlite", rand_suffix()));
    snapshot_sqlite(store, &path).await.unwrap();
    tables_in(&path).await
}

async fn tables_in(path: &Path) -> BTreeMap<String, Vec<Vec<String>>> {
    let mut db = SnapshotFile::open(path).await.unwrap();
    db.integrity_check().await.unwrap();
    let mut out = BTreeMap::new();
    for t in db.tables().await.unwrap() {
        let rows = db.rows(&t).await.unwrap();
        out.insert(t, rows);
    }
    db.close().await.unwrap();
    out
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Rows of `a` not in `b`, as a multiset difference.
fn minus(a: &[Vec<String>], b: &[Vec<String>]) -> Vec<Vec<String>> {
    let mut left: Vec<&Vec<String>> = b.iter().collect();
    let mut out = Vec::new();
    for row in a {
        match left.iter().position(|r| *r == row) {
            Some(i) => {
                left.swap_remove(i);
            }
            None => out.push(row.clone()),
        }
    }
    out
}

/// How far the writer got: pairs begun (their transaction may be open) and
/// pairs committed.
#[derive(Default)]
struct Progress {
    begun: AtomicUsize,
    done: AtomicUsize,
    stop: AtomicBool,
}

/// Commits pairs (a company and its note, both `writer-I`) until stopped.
fn spawn_writer(store: Store, ctx: Ctx, p: Arc<Progress>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut i = 0;
        while !p.stop.load(Ordering::Relaxed) {
            p.begun.store(i + 1, Ordering::SeqCst);
            let mut tx = store.begin().await.unwrap();
            let c: Company = tx
                .create(&ctx, json!({"name": format!("writer-{i}")}))
                .await
                .unwrap();
            tx.create::<Activity>(
                &ctx,
                json!({"kind": "note", "body": format!("writer-{i}"), "company_id": c.id}),
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
            i += 1;
            p.done.store(i, Ordering::SeqCst);
        }
    })
}

fn column(
    tables: &BTreeMap<String, Vec<Vec<String>>>,
    columns: &[String],
    table: &str,
    name: &str,
) -> Vec<String> {
    let at = columns.iter().position(|c| c == name).unwrap();
    tables[table].iter().map(|r| r[at].clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_under_a_writer_restores_a_consistent_copy() {
    let d = Deployment::new().await;
    let ws = d.ctx.workspace_id;
    let (points_before, found_before) = search(&d.data.join("index"), ws).await;
    assert_eq!(points_before, POINTS as u64);

    // Another connection pool on the same file, as a running server would be.
    let writer_store = Store::connect(&Store::sqlite_url_in(&d.data))
        .await
        .unwrap();
    let p = Arc::new(Progress::default());
    let writer = spawn_writer(writer_store.clone(), d.ctx.clone(), p.clone());
    while p.done.load(Ordering::SeqCst) < 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Committed before the backup began: in it. Begun after it ended: not.
    let before = p.done.load(Ordering::SeqCst);
    let manifest = d.backup("backup.tar").await;
    let after = p.begun.load(Ordering::SeqCst);
    while p.done.load(Ordering::SeqCst) < after + 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    p.stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    let total = p.done.load(Ordering::SeqCst);
    writer_store.close().await;

    assert_eq!(
        manifest.index.mode,
        IndexMode::Snapshot,
        "{}",
        manifest.index.note
    );
    assert_eq!(manifest.index.points, Some(POINTS as u64));
    assert_eq!(manifest.registry.model_versions.len(), 1);
    assert_eq!(manifest.registry.sentiment_heads, vec!["v1".to_owned()]);
    assert!(manifest.files.iter().any(|f| f.path == "rapport.sqlite"));
    assert!(manifest.files.iter().any(|f| f.path.starts_with("index/")));
    assert!(d.root.join("backup.tar").is_file());

    let report = backup::restore(
        &d.restore_options("backup.tar", "restored", false),
        &ProgressBar::hidden(),
    )
    .await
    .unwrap();
    assert!(!report.replaced);
    let restored_db = d.root.join("restored").join("rapport.sqlite");
    let restored = tables_in(&restored_db).await;
    let counts: BTreeMap<String, i64> = restored
        .iter()
        .map(|(t, rows)| (t.clone(), rows.len() as i64))
        .collect();
    assert_eq!(
        counts, manifest.database.tables,
        "the manifest's counts are the restored database's"
    );

    // One commit: the writer's pairs form a whole prefix, none torn.
    let mut snap = SnapshotFile::open(&restored_db).await.unwrap();
    let company_cols = snap.columns("companies").await.unwrap();
    let activity_cols = snap.columns("activities").await.unwrap();
    snap.close().await.unwrap();
    let writers = |values: Vec<String>| {
        let mut n: Vec<usize> = values
            .iter()
            .filter_map(|v| v.strip_prefix("'writer-")?.strip_suffix('\'')?.parse().ok())
            .collect();
        n.sort_unstable();
        n
    };
    let companies = writers(column(&restored, &company_cols, "companies", "name"));
    let notes = writers(column(&restored, &activity_cols, "activities", "body"));
    let k = companies.len();
    assert_eq!(companies, (0..k).collect::<Vec<_>>());
    assert_eq!(notes, companies, "every company with its note");
    assert!((before..=after).contains(&k), "{before} <= {k} <= {after}");
    assert!(total > k);

    // Row by row: the live database is the restored one plus exactly the
    // writer's later commits (a company, a note, its outbox entry and two
    // audit entries each); nothing restored is missing from it.
    let live = tables_of(&d.store, &d.root).await;
    assert_eq!(
        live.keys().collect::<Vec<_>>(),
        restored.keys().collect::<Vec<_>>()
    );
    let later = total - k;
    for (table, rows) in &restored {
        let missing = minus(rows, &live[table]);
        assert!(
            missing.is_empty(),
            "{table}: restored rows not in the live database: {missing:?}"
        );
        let extra = minus(&live[table], rows).len();
        let expected = match table.as_str() {
            "companies" | "activities" | "index_outbox" => later,
            "audit_log" => 2 * later,
            _ => 0,
        };
        assert_eq!(extra, expected, "{table}: rows written after the snapshot");
    }

    // The index: same points, same answer.
    let (points_after, found_after) = search(&d.root.join("restored").join("index"), ws).await;
    assert_eq!(points_after, POINTS as u64);
    assert_eq!(found_after, found_before);

    // The registry: its row, and the sentiment head's files.
    assert_eq!(restored["model_versions"], live["model_versions"]);
    let heads = d.root.join("restored-models").join("sentiment-head");
    assert_eq!(
        std::fs::read(heads.join("v1").join("head.json")).unwrap(),
        std::fs::read(d.models.join("sentiment-head").join("v1").join("head.json")).unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(heads.join("CURRENT")).unwrap(),
        "v1\n"
    );
    assert!(leftovers(&d.root).is_empty(), "{:?}", leftovers(&d.root));
}

/// Temporary directories or files a backup or restore left behind.
fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(".rapport-") || n.contains(".replaced-"))
        .collect()
}

#[tokio::test]
async fn a_damaged_backup_is_refused_and_nothing_is_written() {
    let d = Deployment::new().await;
    let manifest = d.backup("bk").await;
    let bk = d.root.join("bk");
    assert!(bk.join("manifest.json").is_file());

    // One byte of the database changed.
    let db = bk.join("rapport.sqlite");
    let mut bytes = std::fs::read(&db).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x5a;
    std::fs::write(&db, &bytes).unwrap();
    let err = backup::restore(
        &d.restore_options("bk", "r1", false),
        &ProgressBar::hidden(),
    )
    .await
    .unwrap_err();
    match &err {
        Error::HashMismatch { path, expected, .. } => {
            assert_eq!(path, "rapport.sqlite");
            let listed = manifest
                .files
                .iter()
                .find(|f| f.path == "rapport.sqlite")
                .unwrap();
            assert_eq!(expected, &listed.sha256);
        }
        other => panic!("expected a hash mismatch, got {other}"),
    }
    assert!(err.to_string().contains("nothing was restored"), "{err}");
    assert!(!d.root.join("r1").exists());
    assert!(!d.root.join("r1-models").join("sentiment-head").exists());
    bytes[last] ^= 0x5a;
    std::fs::write(&db, &bytes).unwrap();

    // A file the manifest does not list.
    std::fs::write(bk.join("index").join("extra.bin"), b"x").unwrap();
    let err = backup::restore(
        &d.restore_options("bk", "r2", false),
        &ProgressBar::hidden(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Tampered(_)), "{err}");
    assert!(err.to_string().contains("extra.bin"), "{err}");
    assert!(!d.root.join("r2").exists());
    std::fs::remove_file(bk.join("index").join("extra.bin")).unwrap();

    // A manifest edited to claim other counts: the files hash right, the check after does not.
    let mut edited = manifest.clone();
    *edited.database.tables.get_mut("companies").unwrap() += 1;
    edited.write(&bk).unwrap();
    let err = backup::restore(
        &d.restore_options("bk", "r3", false),
        &ProgressBar::hidden(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Tampered(_)), "{err}");
    assert!(!d.root.join("r3").exists());
    assert!(leftovers(&d.root).is_empty(), "{:?}", leftovers(&d.root));

    // Put right, it restores.
    manifest.write(&bk).unwrap();
    backup::restore(
        &d.restore_options("bk", "r4", false),
        &ProgressBar::hidden(),
    )
    .await
    .unwrap();
    assert!(d.root.join("r4").join("rapport.sqlite").is_file());
}

#[tokio::test]
async fn a_non_empty_directory_is_replaced_only_with_force() {
    let d = Deployment::new().await;
    d.backup("bk.tar").await;
    let target = d.root.join("target");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("keep.txt"), b"mine").unwrap();

    let err = backup::restore(
        &d.restore_options("bk.tar", "target", false),
        &ProgressBar::hidden(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::NotEmpty { .. }), "{err}");
    assert!(err.to_string().contains("--force"), "{err}");
    assert_eq!(std::fs::read(target.join("keep.txt")).unwrap(), b"mine");
    assert!(!target.join("rapport.sqlite").exists());

    let report = backup::restore(
        &d.restore_options("bk.tar", "target", true),
        &ProgressBar::hidden(),
    )
    .await
    .unwrap();
    assert!(report.replaced);
    assert!(!target.join("keep.txt").exists());
    assert!(target.join("rapport.sqlite").is_file());
    assert!(leftovers(&d.root).is_empty(), "{:?}", leftovers(&d.root));

    // A backup never overwrites either.
    let err = backup::backup(&d.backup_options("bk.tar"), &ProgressBar::hidden())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DestinationExists(_)), "{err}");
}

#[tokio::test]
async fn an_index_held_elsewhere_is_left_out_and_rebuilt_from_the_outbox() {
    let d = Deployment::new().await;
    // Held as `rapport serve --search` would hold it.
    let held = EdgeIndex::open(&d.data.join("index"), DIM).await.unwrap();
    let manifest = d.backup("bk").await;
    drop(held);
    assert_eq!(manifest.index.mode, IndexMode::Rebuild);
    assert!(
        manifest
            .index
            .note
            .contains("rapport ingest --all-workspaces")
    );
    assert!(!manifest.files.iter().any(|f| f.path.starts_with("index/")));

    backup::restore(&d.restore_options("bk", "r", false), &ProgressBar::hidden())
        .await
        .unwrap();
    let restored = tables_in(&d.root.join("r").join("rapport.sqlite")).await;
    assert!(!d.root.join("r").join("index").exists());
    let activities = restored["activities"].len();
    assert!(activities > POINTS);
    let outbox = &restored["index_outbox"];
    assert_eq!(outbox.len(), activities, "one queued upsert per activity");
    assert!(outbox.iter().all(|r| r.iter().any(|v| v == "'upsert'")));
    // The live database's outbox is untouched.
    let live = tables_of(&d.store, &d.root).await;
    assert_eq!(live["activities"], restored["activities"]);
}
