//! Semantic memory end to end on real parts: a real SQLite file or PostgreSQL
//! database (its outbox triggers), a real qdrant-edge shard and the real MiniLM.

use std::collections::BTreeSet;
use std::sync::Arc;

use indicatif::ProgressBar;
use rapport_crm::model::{Activity, Company, Contact};
use rapport_crm::testing::Fixture;
use rapport_crm::{Ctx, ListQuery, Store};
use rapport_index::EdgeIndex;
use rapport_models::{Embedder, EmbedderOptions};
use rapport_pipelines::memory::clean::indexed_text;
use rapport_pipelines::memory::{ChunkParams, Chunker, IngestOptions, Memory, Mode, SearchFilters};
use serde_json::json;

/// Small chunks, so a paragraph becomes several chunks and edits change their number.
const PARAMS: ChunkParams = ChunkParams {
    max_tokens: 24,
    overlap: 6,
};

async fn memory(store: &Store, dir: &std::path::Path) -> Memory {
    let (embedder, chunker) = tokio::task::spawn_blocking(|| {
        let embedder = Embedder::load_default(EmbedderOptions {
            threads: Some(2),
            ..Default::default()
        })
        .expect("MiniLM (rapport models fetch all-minilm-l6-v2)");
        (embedder, Chunker::minilm(PARAMS).expect("tokenizer"))
    })
    .await
    .unwrap();
    let index = EdgeIndex::open(&dir.join("index"), embedder.dim())
        .await
        .unwrap();
    Memory::new(store.clone(), Arc::new(index), embedder, chunker).unwrap()
}

/// The (activity, chunk) keys the database implies for a workspace.
async fn implied_keys(m: &Memory, ctx: &Ctx) -> Vec<(i64, u32)> {
    let acts = m
        .store()
        .list::<Activity>(ctx, &ListQuery::default().limit(500))
        .await
        .unwrap()
        .items;
    let mut keys = Vec::new();
    for a in acts {
        let kind = serde_json::to_value(a.kind).unwrap();
        let text = indexed_text(kind.as_str().unwrap(), a.subject.as_deref(), &a.body);
        let n = m.chunker().chunk(&text).unwrap().len() as u32;
        keys.extend((0..n).map(|c| (a.id, c)));
    }
    keys.sort();
    keys
}

const LONG: &str = "Hi Sam,\n\nWe are worried about price: the quote for 120 users is well above what we budgeted and our CFO pushed back hard. We also need the SOC 2 Type II report before the security review can finish, and our IT team asks how the NetSuite connector handles purchase orders.\n\nBest,\nDana Lee\nCFO, Acme Logistics\n\nOn Monday, Sam wrote:\n> Thanks for the call last week.";

async fn ingest_follows_creates_edits_and_deletes(store: &Store) {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::new(store, "memory").await.unwrap();
    let ctx = fx.admin_ctx();
    let acme: Company = store
        .create(&ctx, json!({"name": "Acme Logistics"}))
        .await
        .unwrap();
    let globex: Company = store.create(&ctx, json!({"name": "Globex"})).await.unwrap();
    let dana: Contact = store
        .create(
            &ctx,
            json!({"first_name": "Dana", "last_name": "Lee", "company_id": acme.id}),
        )
        .await
        .unwrap();
    let act = |kind: &str, subject: &str, body: &str, company: i64| {
        json!({"kind": kind, "subject": subject, "body": body, "occurred_at": "2026-10-01T10:00:00Z",
               "company_id": company, "contact_id": (company == acme.id).then_some(dana.id)})
    };
    let email: Activity = store
        .create(&ctx, act("email", "Re: Quote", LONG, acme.id))
        .await
        .unwrap();
    let call: Activity = store
        .create(
            &ctx,
            act(
                "call",
                "Call",
                "LedgerLoop offered them a big discount and they lean towards LedgerLoop.",
                globex.id,
            ),
        )
        .await
        .unwrap();
    let note: Activity = store
        .create(
            &ctx,
            act(
                "note",
                "Onboarding",
                "Onboarding is going well: the AP team is live.",
                acme.id,
            ),
        )
        .await
        .unwrap();
    assert_eq!(store.outbox_len(Some(fx.workspace_id)).await.unwrap(), 3);

    let m = memory(store, dir.path()).await;
    let report = m
        .ingest(&IngestOptions::default(), &ProgressBar::hidden())
        .await
        .unwrap();
    assert_eq!((report.entries, report.indexed, report.removed), (3, 3, 0));
    let keys = m.index().keys(fx.workspace_id).await.unwrap();
    assert_eq!(keys, implied_keys(&m, &ctx).await);
    assert!(
        keys.iter().filter(|k| k.0 == email.id).count() > 1,
        "the long email is several chunks"
    );
    assert_eq!(store.outbox_len(None).await.unwrap(), 0);

    // Idempotent: draining an empty outbox, and redoing everything, change nothing.
    let again = m
        .ingest(&IngestOptions::default(), &ProgressBar::hidden())
        .await
        .unwrap();
    assert_eq!(again.entries, 0);
    store.outbox_enqueue_all(&ctx).await.unwrap();
    m.ingest(
        &IngestOptions {
            batch: 1,
            ..Default::default()
        },
        &ProgressBar::hidden(),
    )
    .await
    .unwrap();
    assert_eq!(m.index().keys(fx.workspace_id).await.unwrap(), keys);
    assert_eq!(
        m.index().count(fx.workspace_id).await.unwrap(),
        keys.len() as u64
    );

    // Search: citations, names, quoted replies and signatures not indexed.
    let hits = m
        .search(
            &ctx,
            "concerns about the price and budget",
            &SearchFilters::default(),
            3,
        )
        .await
        .unwrap();
    assert_eq!(hits[0].activity_id, email.id);
    assert_eq!(hits[0].who.as_deref(), Some("Dana Lee"));
    assert_eq!(hits[0].company.as_deref(), Some("Acme Logistics"));
    let quoted = m
        .search_with(
            &ctx,
            "Thanks for the call last week",
            &SearchFilters::default(),
            Mode::Bm25,
            5,
        )
        .await
        .unwrap();
    assert!(
        quoted
            .iter()
            .all(|h| !h.snippet.contains("Thanks for the call")),
        "{quoted:?}"
    );
    let filtered = m
        .search(
            &ctx,
            "big discount",
            &SearchFilters {
                company_id: Some(acme.id),
                ..Default::default()
            },
            5,
        )
        .await
        .unwrap();
    assert!(filtered.iter().all(|h| h.company_id == Some(acme.id)));
    let by_kind = m
        .search(
            &ctx,
            "discount",
            &SearchFilters {
                kind: Some("call".into()),
                ..Default::default()
            },
            5,
        )
        .await
        .unwrap();
    assert_eq!(
        by_kind.iter().map(|h| h.activity_id).collect::<Vec<_>>(),
        vec![call.id]
    );

    // A sentiment score is not indexed text: nothing is queued.
    store
        .update::<Activity>(&ctx, note.id, json!({"sentiment": 0.8}))
        .await
        .unwrap();
    assert_eq!(store.outbox_len(None).await.unwrap(), 0);

    // Edits and deletes propagate.
    store
        .update::<Activity>(
            &ctx,
            email.id,
            json!({"body": "Short answer: Spendwise is cheaper."}),
        )
        .await
        .unwrap();
    store.delete::<Activity>(&ctx, call.id).await.unwrap();
    let report = m
        .ingest(&IngestOptions::default(), &ProgressBar::hidden())
        .await
        .unwrap();
    assert_eq!((report.indexed, report.removed), (1, 1));
    let keys = m.index().keys(fx.workspace_id).await.unwrap();
    assert_eq!(keys, implied_keys(&m, &ctx).await);
    assert_eq!(keys.iter().filter(|k| k.0 == email.id).count(), 1);
    assert!(keys.iter().all(|k| k.0 != call.id));
    let hits = m
        .search_with(&ctx, "LedgerLoop", &SearchFilters::default(), Mode::Bm25, 5)
        .await
        .unwrap();
    assert!(hits.is_empty(), "deleted text is gone: {hits:?}");
    let hits = m
        .search_with(
            &ctx,
            "Spendwise",
            &SearchFilters::default(),
            Mode::Hybrid,
            5,
        )
        .await
        .unwrap();
    assert_eq!(hits[0].activity_id, email.id);

    // Rebuild from scratch: the same points.
    let before = m.index().keys(fx.workspace_id).await.unwrap();
    m.reindex(&ctx, &ProgressBar::hidden()).await.unwrap();
    assert_eq!(m.index().keys(fx.workspace_id).await.unwrap(), before);
}

async fn workspaces_do_not_see_each_other(store: &Store) {
    let dir = tempfile::tempdir().unwrap();
    let a = Fixture::new(store, "alpha").await.unwrap();
    let b = Fixture::new(store, "beta").await.unwrap();
    let body = json!({"kind": "note", "body": "They asked for the SOC 2 Type II report.", "occurred_at": "2026-10-01T10:00:00Z"});
    let in_a: Activity = store.create(&a.admin_ctx(), body.clone()).await.unwrap();
    let in_b: Activity = store.create(&b.admin_ctx(), body).await.unwrap();
    let m = memory(store, dir.path()).await;
    m.ingest(&IngestOptions::default(), &ProgressBar::hidden())
        .await
        .unwrap();
    for mode in Mode::ALL {
        let ids = |hits: Vec<rapport_pipelines::memory::Hit>| {
            hits.into_iter()
                .map(|h| h.activity_id)
                .collect::<BTreeSet<_>>()
        };
        let from_a = m
            .search_with(
                &a.admin_ctx(),
                "SOC 2 report",
                &SearchFilters::default(),
                mode,
                10,
            )
            .await
            .unwrap();
        let from_b = m
            .search_with(
                &b.admin_ctx(),
                "SOC 2 report",
                &SearchFilters::default(),
                mode,
                10,
            )
            .await
            .unwrap();
        assert_eq!(ids(from_a), BTreeSet::from([in_a.id]), "{mode:?}");
        assert_eq!(ids(from_b), BTreeSet::from([in_b.id]), "{mode:?}");
    }
}

async fn bad_searches_are_refused(store: &Store) {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::new(store, "refuse").await.unwrap();
    let m = memory(store, dir.path()).await;
    let ctx = fx.admin_ctx();
    let err = m
        .search(&ctx, "  ", &SearchFilters::default(), 5)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("query"), "{err}");
    let err = m
        .search(
            &ctx,
            "x",
            &SearchFilters {
                kind: Some("fax".into()),
                ..Default::default()
            },
            5,
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("email, call, meeting, note"),
        "{err}"
    );
}

rapport_crm::both_backends!(
    ingest_follows_creates_edits_and_deletes,
    workspaces_do_not_see_each_other,
    bad_searches_are_refused,
);
