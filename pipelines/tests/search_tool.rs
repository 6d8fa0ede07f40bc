//! `search_interactions` through the registry, on a real SQLite file, a real
//! qdrant-edge shard and the real MiniLM; and its clear failure when semantic
//! search is not set up.

use std::sync::Arc;

use indicatif::ProgressBar;
use rapport_crm::Source;
use rapport_crm::model::{Activity, Company};
use rapport_crm::testing::{Fixture, TestDb};
use rapport_index::EdgeIndex;
use rapport_pipelines::memory::{Chunker, IngestOptions, Memory};
use rapport_tools::{Caller, ErrorCode, Registry};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_memory_the_tool_says_how_to_set_it_up() {
    let db = TestDb::sqlite().await;
    let fx = Fixture::new(&db.store, "nomem").await.unwrap();
    let err = Registry::new()
        .call(
            &db.store,
            &Caller::user(&fx.rep, Source::Agent),
            "search_interactions",
            json!({"query": "pricing"}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::NotAvailable);
    assert!(err.message.contains("rapport ingest"), "{}", err.message);
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finds_interactions_with_citations_and_filters() {
    let db = TestDb::sqlite().await;
    let store = &db.store;
    let fx = Fixture::new(store, "search").await.unwrap();
    let ctx = fx.admin_ctx();
    let acme: Company = store
        .create(&ctx, json!({"name": "Acme Logistics"}))
        .await
        .unwrap();
    let other: Company = store
        .create(&ctx, json!({"name": "Initech"}))
        .await
        .unwrap();
    let mk = |company: i64, kind: &str, body: &str| json!({"kind": kind, "body": body, "occurred_at": "2026-10-01T10:00:00Z", "company_id": company});
    let pricing: Activity = store
        .create(
            &ctx,
            mk(
                acme.id,
                "call",
                "They are worried about price: the quote is above their budget.",
            ),
        )
        .await
        .unwrap();
    let _security: Activity = store
        .create(
            &ctx,
            mk(
                acme.id,
                "email",
                "Security review: they need the SOC 2 Type II report.",
            ),
        )
        .await
        .unwrap();
    let elsewhere: Activity = store
        .create(
            &ctx,
            mk(other.id, "call", "Price is too high for them as well."),
        )
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let (embedder, chunker) = tokio::task::spawn_blocking(|| {
        (
            rapport_models::Embedder::load_default(Default::default()).unwrap(),
            Chunker::minilm(Default::default()).unwrap(),
        )
    })
    .await
    .unwrap();
    let index = EdgeIndex::open(&dir.path().join("index"), embedder.dim())
        .await
        .unwrap();
    let memory = Memory::new(store.clone(), Arc::new(index), embedder, chunker).unwrap();
    memory
        .ingest(&IngestOptions::default(), &ProgressBar::hidden())
        .await
        .unwrap();
    let tools = Registry::new().with_services(rapport_pipelines::tool_services(Some(memory)));
    let viewer = Caller::user(&fx.viewer, Source::Agent);

    let out = tools
        .call(
            store,
            &viewer,
            "search_interactions",
            json!({"query": "what did Acme say about pricing?", "company_id": acme.id, "limit": 5}),
        )
        .await
        .unwrap();
    assert_eq!(out["citations"][0], json!(pricing.id), "{out}");
    assert_eq!(out["hits"][0]["company"], "Acme Logistics");
    assert!(
        out["hits"][0]["snippet"]
            .as_str()
            .unwrap()
            .contains("worried about price")
    );
    let cited: Vec<i64> = serde_json::from_value(out["citations"].clone()).unwrap();
    assert!(!cited.contains(&elsewhere.id), "the company filter holds");

    let out = tools
        .call(
            store,
            &viewer,
            "search_interactions",
            json!({"query": "SOC 2", "kind": "call"}),
        )
        .await
        .unwrap();
    let kinds: Vec<&str> = out["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.iter().all(|k| *k == "call"), "{out}");

    let err = tools
        .call(
            store,
            &viewer,
            "search_interactions",
            json!({"query": "x", "since": "2026-10-02T00:00:00Z", "until": "2026-10-01T00:00:00Z"}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidArgument);
    assert_eq!(err.field.as_deref(), Some("since"));
    db.cleanup().await;
}
