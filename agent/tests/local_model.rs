//! The agent end to end with the real local model (Qwen2.5-Coder-0.5B, fetched
//! by package name on first use): create a contact, then answer a question
//! about it, on a fresh SQLite database. Slow (a minute or two on 2 cores).

use std::sync::Arc;

use rapport_agent::backend::local::LocalBackend;
use rapport_agent::history::{ModelCall, kind};
use rapport_agent::select::ToolIndex;
use rapport_agent::{Agent, AgentConfig, Events, Selection, TurnOutcome};
use rapport_crm::model::Contact;
use rapport_crm::testing::{Fixture, TestDb};
use rapport_crm::{Filter, ListQuery};
use rapport_models::llm::{ChatModel, LoadOptions};
use rapport_tools::Registry;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_model_creates_a_contact_and_answers_about_it() {
    let db = TestDb::sqlite().await;
    let fx = Fixture::new(&db.store, "local").await.unwrap();
    let registry = Arc::new(Registry::new());
    let name = std::env::var("RAPPORT_TEST_AGENT_MODEL")
        .unwrap_or_else(|_| "qwen2.5-coder-0.5b-instruct-q4_k_m".into());
    let reg = registry.clone();
    let (model, index) = tokio::task::spawn_blocking(move || {
        let path = rapport_models::ensure(&name).expect("fetch the chat model");
        let model = ChatModel::load(
            &path,
            LoadOptions {
                name: Some(name),
                n_ctx: 4096,
                n_threads: Some(2),
                ..Default::default()
            },
        )
        .expect("load the chat model");
        let embedder =
            rapport_models::Embedder::load_default(Default::default()).expect("embedder");
        let index = ToolIndex::build(Arc::new(embedder), &reg).expect("tool index");
        (Arc::new(model), Arc::new(index))
    })
    .await
    .unwrap();
    let agent = Agent::new(
        db.store.clone(),
        registry,
        Arc::new(LocalBackend::new(model)),
        AgentConfig::small_model(Selection::TopK { k: 4, index }),
    )
    .unwrap();
    let s = agent.start_session(&fx.rep, "local").await.unwrap();
    // The system prompt and core tools are evaluated before the first message.
    agent.warm(&fx.rep).unwrap();

    let out = agent
        .send(
            s.id,
            &fx.rep,
            "Create a contact: Jane Doe, email jane.doe@acme.com",
            &Events::none(),
        )
        .await
        .unwrap();
    println!("turn 1: {out:?}");
    let found = db
        .store
        .list::<Contact>(
            &fx.admin_ctx(),
            &ListQuery::filtered(Filter::eq("email", "jane.doe@acme.com")),
        )
        .await
        .unwrap()
        .items;
    assert_eq!(found.len(), 1, "the contact was created: {out:?}");
    assert_eq!(found[0].first_name, "Jane");
    // Details the request did not give are not made up (the model fills
    // every field of the schema; the loop leaves those out).
    assert_eq!(found[0].phone, None, "{out:?}");
    assert_eq!(found[0].title, None, "{out:?}");
    assert!(matches!(out, TurnOutcome::Answer(_)), "{out:?}");
    let entries = db
        .store
        .session_entries(&fx.admin_ctx(), s.id)
        .await
        .unwrap();
    let first: ModelCall = entries
        .iter()
        .find(|e| e.kind == kind::MODEL_CALL)
        .map(|e| serde_json::from_value(e.body.clone()).unwrap())
        .expect("a model call");
    println!("first model call: {first:?}");
    assert!(
        first.cached_tokens >= 300,
        "the warmed prefix was reused: {first:?}"
    );

    let out = agent
        .send(
            s.id,
            &fx.rep,
            "What is Jane Doe's email address?",
            &Events::none(),
        )
        .await
        .unwrap();
    println!("turn 2: {out:?}");
    let TurnOutcome::Answer(text) = out else {
        panic!("{out:?}")
    };
    assert!(text.to_lowercase().contains("jane.doe@acme.com"), "{text}");
    db.cleanup().await;
}
