//! The shared index suite: one set of behaviours every engine must show. It
//! runs on the embedded qdrant-edge shard always, and on a Qdrant server when
//! `RAPPORT_QDRANT_URL` is set (each test in its own collection, dropped after).

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use rapport_index::{
    Bm25, ChunkPayload, EdgeIndex, IndexFilter, IndexPoint, Query, SparseVector, VectorIndex,
    point_id,
};

const DIM: usize = 8;

/// A unit vector pointing mostly along axis `axis`, tilted by `tilt` towards the next one.
fn vector(axis: usize, tilt: f32) -> Vec<f32> {
    let mut v = vec![0.0; DIM];
    v[axis % DIM] = 1.0;
    v[(axis + 1) % DIM] = tilt;
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

struct Engine {
    index: Arc<dyn VectorIndex>,
    _dir: Option<tempfile::TempDir>,
}

async fn edge() -> Engine {
    let dir = tempfile::tempdir().unwrap();
    let index = EdgeIndex::open(&dir.path().join("index"), DIM)
        .await
        .unwrap();
    Engine {
        index: Arc::new(index),
        _dir: Some(dir),
    }
}

#[cfg(feature = "server")]
async fn server(test: &str) -> Option<Engine> {
    let url = std::env::var("RAPPORT_QDRANT_URL").ok()?;
    let key = std::env::var("RAPPORT_QDRANT_API_KEY").ok();
    let collection = format!("rapport_test_{test}_{}", std::process::id());
    let mut index = rapport_index::ServerIndex::connect(&url, key.as_deref(), &collection, DIM)
        .await
        .unwrap();
    index.drop_collection_on_drop();
    Some(Engine {
        index: Arc::new(index),
        _dir: None,
    })
}

#[cfg(not(feature = "server"))]
async fn server(_test: &str) -> Option<Engine> {
    None
}

fn payload(
    ws: i64,
    activity: i64,
    chunk: u32,
    kind: &str,
    company: i64,
    text: &str,
) -> ChunkPayload {
    ChunkPayload {
        workspace_id: ws,
        activity_id: activity,
        chunk,
        kind: kind.into(),
        company_id: Some(company),
        contact_id: Some(company * 10),
        deal_id: None,
        lead_id: None,
        owner_id: Some(7),
        occurred_at: Utc.with_ymd_and_hms(2026, 10, 1, 12, 0, 0).unwrap()
            + Duration::days(activity),
        text: text.into(),
        start: 0,
        end: text.len() as u32,
    }
}

fn point(bm25: &Bm25, p: ChunkPayload, axis: usize) -> IndexPoint {
    IndexPoint {
        sparse: bm25.embed_document(&p.text),
        dense: vector(axis, 0.1 * p.chunk as f32),
        payload: p,
    }
}

/// Workspace 1: activities 1–4 at companies 100/200; workspace 2: activity 9,
/// whose dense vector and text equal activity 1's.
fn corpus(bm25: &Bm25) -> Vec<IndexPoint> {
    vec![
        point(
            bm25,
            payload(
                1,
                1,
                0,
                "email",
                100,
                "They worry about the price of the Pro plan",
            ),
            0,
        ),
        point(
            bm25,
            payload(
                1,
                1,
                1,
                "email",
                100,
                "Next step: a revised quote by Friday",
            ),
            1,
        ),
        point(
            bm25,
            payload(
                1,
                2,
                0,
                "call",
                100,
                "The SOC 2 report is needed for the security review",
            ),
            2,
        ),
        point(
            bm25,
            payload(1, 3, 0, "note", 200, "LedgerLoop offered a big discount"),
            3,
        ),
        point(
            bm25,
            payload(1, 4, 0, "meeting", 200, "Onboarding sessions went well"),
            4,
        ),
        point(
            bm25,
            payload(
                2,
                9,
                0,
                "email",
                900,
                "They worry about the price of the Pro plan",
            ),
            0,
        ),
    ]
}

async fn loaded(e: &Engine) -> Bm25 {
    let bm25 = Bm25::english().unwrap();
    e.index.upsert(corpus(&bm25)).await.unwrap();
    e.index.flush().await.unwrap();
    bm25
}

fn ids(found: &[rapport_index::ScoredChunk]) -> Vec<(i64, u32)> {
    found
        .iter()
        .map(|c| (c.payload.activity_id, c.payload.chunk))
        .collect()
}

async fn upsert_then_search(e: Engine) {
    let bm25 = loaded(&e).await;
    assert_eq!(e.index.count(1).await.unwrap(), 5);
    assert_eq!(e.index.count(2).await.unwrap(), 1);
    let found = e
        .index
        .search(&Query::Dense(vector(2, 0.0)), &IndexFilter::workspace(1), 3)
        .await
        .unwrap();
    assert_eq!(ids(&found)[0], (1 + 1, 0), "nearest is activity 2");
    assert_eq!(
        found[0].payload,
        corpus(&bm25)[2].payload,
        "payload round-trips"
    );
    let kw = e
        .index
        .search(
            &Query::Sparse(bm25.embed_query("LedgerLoop discount")),
            &IndexFilter::workspace(1),
            3,
        )
        .await
        .unwrap();
    assert_eq!(ids(&kw), vec![(3, 0)], "only one chunk has those words");
    let hybrid = e
        .index
        .search(
            &Query::Hybrid {
                dense: vector(4, 0.0),
                sparse: bm25.embed_query("SOC 2 security review"),
            },
            &IndexFilter::workspace(1),
            2,
        )
        .await
        .unwrap();
    let got = ids(&hybrid);
    assert!(got.contains(&(4, 0)) && got.contains(&(2, 0)), "{got:?}");
    assert_eq!(
        e.index.keys(1).await.unwrap(),
        vec![(1, 0), (1, 1), (2, 0), (3, 0), (4, 0)]
    );
    // Payloads are read by point id; an id with no point reads nothing.
    let read = e
        .index
        .payloads(&[point_id(3, 0), point_id(99, 0), point_id(1, 1)])
        .await
        .unwrap();
    let mut read: Vec<(i64, u32)> = read.iter().map(|p| (p.activity_id, p.chunk)).collect();
    read.sort_unstable();
    assert_eq!(read, vec![(1, 1), (3, 0)]);
}

async fn upsert_is_idempotent_and_replaces(e: Engine) {
    let bm25 = loaded(&e).await;
    e.index.upsert(corpus(&bm25)).await.unwrap();
    assert_eq!(e.index.count(1).await.unwrap(), 5, "same ids, same points");
    let mut changed = point(
        &bm25,
        payload(1, 3, 0, "note", 200, "Spendwise is cheaper"),
        3,
    );
    changed.payload.kind = "call".into();
    e.index.upsert(vec![changed]).await.unwrap();
    let found = e
        .index
        .search(
            &Query::Sparse(bm25.embed_query("Spendwise")),
            &IndexFilter::workspace(1),
            5,
        )
        .await
        .unwrap();
    assert_eq!(ids(&found), vec![(3, 0)]);
    assert_eq!(found[0].payload.kind, "call");
    let old = e
        .index
        .search(
            &Query::Sparse(bm25.embed_query("LedgerLoop")),
            &IndexFilter::workspace(1),
            5,
        )
        .await
        .unwrap();
    assert!(old.is_empty(), "the replaced text is gone: {:?}", ids(&old));
}

async fn delete_removes_every_chunk_of_an_activity(e: Engine) {
    loaded(&e).await;
    e.index.delete_activities(1, &[1, 4]).await.unwrap();
    assert_eq!(e.index.keys(1).await.unwrap(), vec![(2, 0), (3, 0)]);
    // Another workspace's activity ids are not touched by a delete in workspace 1.
    e.index.delete_activities(1, &[9]).await.unwrap();
    assert_eq!(e.index.count(2).await.unwrap(), 1);
    e.index.delete_workspace(1).await.unwrap();
    assert_eq!(e.index.count(1).await.unwrap(), 0);
    assert_eq!(e.index.count(2).await.unwrap(), 1);
}

async fn filters_narrow_results(e: Engine) {
    loaded(&e).await;
    let q = Query::Dense(vector(0, 0.0));
    let all = |f: IndexFilter| {
        let index = e.index.clone();
        let q = q.clone();
        async move { ids(&index.search(&q, &f, 10).await.unwrap()) }
    };
    let base = IndexFilter::workspace(1);
    let mut got = all(IndexFilter {
        company_id: Some(200),
        ..base.clone()
    })
    .await;
    got.sort();
    assert_eq!(got, vec![(3, 0), (4, 0)]);
    let got = all(IndexFilter {
        kinds: vec!["call".into(), "note".into()],
        ..base.clone()
    })
    .await;
    assert_eq!(got.len(), 2);
    assert!(got.contains(&(2, 0)) && got.contains(&(3, 0)));
    let since = Utc.with_ymd_and_hms(2026, 10, 4, 0, 0, 0).unwrap();
    let mut got = all(IndexFilter {
        since: Some(since),
        ..base.clone()
    })
    .await;
    got.sort();
    assert_eq!(
        got,
        vec![(3, 0), (4, 0)],
        "activities 3 and 4 occur on Oct 4 and 5"
    );
    let got = all(IndexFilter {
        until: Some(since),
        contact_id: Some(1000),
        ..base.clone()
    })
    .await;
    let mut got = got;
    got.sort();
    assert_eq!(got, vec![(1, 0), (1, 1), (2, 0)]);
    assert!(
        all(IndexFilter {
            owner_id: Some(8),
            ..base.clone()
        })
        .await
        .is_empty()
    );
    assert!(
        all(IndexFilter {
            deal_id: Some(1),
            ..base
        })
        .await
        .is_empty()
    );
}

async fn workspaces_are_isolated(e: Engine) {
    let bm25 = loaded(&e).await;
    // Activity 9 in workspace 2 is identical to activity 1 in workspace 1.
    for q in [
        Query::Dense(vector(0, 0.0)),
        Query::Sparse(bm25.embed_query("price of the Pro plan")),
        Query::Hybrid {
            dense: vector(0, 0.0),
            sparse: bm25.embed_query("price of the Pro plan"),
        },
    ] {
        let a = e
            .index
            .search(&q, &IndexFilter::workspace(1), 10)
            .await
            .unwrap();
        assert!(a.iter().all(|c| c.payload.workspace_id == 1));
        let b = e
            .index
            .search(&q, &IndexFilter::workspace(2), 10)
            .await
            .unwrap();
        assert_eq!(ids(&b), vec![(9, 0)]);
        let none = e
            .index
            .search(&q, &IndexFilter::workspace(3), 10)
            .await
            .unwrap();
        assert!(none.is_empty());
    }
}

/// Twelve activities with the same text and vector tie on every score; ties
/// come back by activity id, the same on every call (the engine's own fusion
/// ordered them at random).
async fn ties_come_back_in_one_order(e: Engine) {
    let bm25 = Bm25::english().unwrap();
    let text = "Renewal call: they asked about the price of seats";
    let twins: Vec<IndexPoint> = (1..=12)
        .rev()
        .map(|a| point(&bm25, payload(1, a * 7 % 13, 0, "call", 100, text), 0))
        .collect();
    e.index.upsert(twins).await.unwrap();
    e.index.flush().await.unwrap();
    let queries = [
        Query::Dense(vector(0, 0.0)),
        Query::Sparse(bm25.embed_query("price of seats")),
        Query::Hybrid {
            dense: vector(0, 0.0),
            sparse: bm25.embed_query("price of seats"),
        },
    ];
    for q in &queries {
        let first = ids(&e
            .index
            .search(q, &IndexFilter::workspace(1), 5)
            .await
            .unwrap());
        let mut want: Vec<(i64, u32)> = (1..=12).map(|a| (a * 7 % 13, 0)).collect();
        want.sort();
        want.truncate(5);
        assert_eq!(first, want, "{q:?}");
        for _ in 0..20 {
            let again = e
                .index
                .search(q, &IndexFilter::workspace(1), 5)
                .await
                .unwrap();
            assert_eq!(ids(&again), first, "{q:?}");
        }
    }
}

async fn bad_filters_are_refused(e: Engine) {
    let t = Utc.with_ymd_and_hms(2026, 10, 4, 0, 0, 0).unwrap();
    let err = e
        .index
        .search(
            &Query::Dense(vector(0, 0.0)),
            &IndexFilter {
                since: Some(t),
                until: Some(t),
                ..IndexFilter::workspace(1)
            },
            10,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("since"), "{err}");
    let err = e
        .index
        .search(
            &Query::Dense(vec![1.0; DIM + 1]),
            &IndexFilter::workspace(1),
            10,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("dimension"), "{err}");
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod edge_shard {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::edge().await).await;
                }
            )*
        }
        mod qdrant_server {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    match super::server(stringify!($name)).await {
                        Some(e) => super::$name(e).await,
                        None => eprintln!("RAPPORT_QDRANT_URL is not set: server suite skipped"),
                    }
                }
            )*
        }
    };
}

suite!(
    upsert_then_search,
    upsert_is_idempotent_and_replaces,
    delete_removes_every_chunk_of_an_activity,
    filters_narrow_results,
    workspaces_are_isolated,
    ties_come_back_in_one_order,
    bad_filters_are_refused,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_shard_keeps_points_across_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index");
    let bm25 = Bm25::english().unwrap();
    {
        let index = EdgeIndex::open(&path, DIM).await.unwrap();
        index.upsert(corpus(&bm25)).await.unwrap();
        index.flush().await.unwrap();
    }
    let index = EdgeIndex::open(&path, DIM).await.unwrap();
    assert_eq!(index.count(1).await.unwrap(), 5);
    let busy = EdgeIndex::open(&path, DIM).await.map(drop).unwrap_err();
    assert!(busy.to_string().contains("another process"), "{busy}");
    drop(index);
    let other = EdgeIndex::open(&dir.path().join("other"), DIM)
        .await
        .map(drop);
    assert!(other.is_ok(), "a new directory makes a new shard");
    let wrong = EdgeIndex::open(&path, DIM * 2).await.map(drop).unwrap_err();
    assert!(wrong.to_string().contains("dimension"), "{wrong}");
    let _ = SparseVector::default();
}
