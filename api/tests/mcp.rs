//! The MCP handler without a child process: an rmcp client and the server
//! connected by an in-memory pipe, on a fresh SQLite file and a fresh
//! PostgreSQL database. The stdio binary is tested in the root package's
//! `tests/mcp_stdio.rs`.

use rapport_api::mcp::{McpServer, describe};
use rapport_api::testing::{call, in_memory as session, ok, tool_error as err};
use rapport_crm::model::User;
use rapport_crm::testing::Fixture;
use rapport_crm::{Source, Store};
use rapport_tools::{Caller, Effect, Registry};
use rmcp::model::CallToolRequestParams;
use serde_json::json;

rapport_crm::both_backends!(
    structured_results_and_errors_over_a_session,
    each_session_acts_as_its_own_caller,
);

fn server(store: &Store, user: &User) -> McpServer {
    McpServer::new(
        Registry::new(),
        store.clone(),
        Caller::user(user, Source::Mcp),
    )
    .expect("describe tools")
}

async fn structured_results_and_errors_over_a_session(store: &Store) {
    let fx = Fixture::new(store, "mcp").await.unwrap();
    let client = session(server(store, &fx.admin)).await;

    let acme = ok(call(&client, "create_company", json!({"name": "Acme Logistics"})).await);
    for last in ["Lee", "Ruiz"] {
        ok(call(
            &client,
            "create_contact",
            json!({"first_name": "Dana", "last_name": last, "company_id": acme["id"]}),
        )
        .await);
    }
    // An ambiguous reference comes back with its candidates, as data.
    let e = err(call(
        &client,
        "find_records",
        json!({"query": "Dana", "types": ["contact"], "expect_one": true}),
    )
    .await);
    assert_eq!(e["code"], "ambiguous");
    assert_eq!(e["field"], "query");
    assert_eq!(e["candidates"].as_array().map(Vec::len), Some(2), "{e}");
    assert_eq!(e["retryable"], false);

    // A missing required field is named; nothing was written.
    let e = err(call(&client, "create_contact", json!({"last_name": "Lee"})).await);
    assert_eq!(
        (e["code"].as_str(), e["field"].as_str()),
        (Some("invalid_argument"), Some("first_name"))
    );
    let contacts = ok(call(&client, "list_contacts", json!({})).await);
    assert_eq!(contacts["items"].as_array().map(Vec::len), Some(2));

    // Arguments left out altogether are an empty object, not a protocol error.
    let page = client
        .call_tool(CallToolRequestParams::new("list_companies"))
        .await
        .expect("call without arguments");
    assert_eq!(ok(page)["items"].as_array().map(Vec::len), Some(1));
    client.cancel().await.unwrap();
}

async fn each_session_acts_as_its_own_caller(store: &Store) {
    let fx = Fixture::new(store, "callers").await.unwrap();
    let admin = server(store, &fx.admin);
    let as_rep = session(admin.for_caller(Caller::user(&fx.rep, Source::Mcp))).await;
    let as_viewer = session(admin.for_caller(Caller::user(&fx.viewer, Source::Mcp))).await;

    // The owner is the session's user even when the client claims another.
    let mine = ok(call(&as_rep, "create_company", json!({"name": "Rep Co"})).await);
    assert_eq!(mine["owner_id"], json!(fx.rep.id));
    let e = err(call(
        &as_rep,
        "create_company",
        json!({"name": "Not Mine", "owner_id": fx.manager.id}),
    )
    .await);
    assert_eq!(
        (e["code"].as_str(), e["field"].as_str()),
        (Some("permission_denied"), Some("owner_id"))
    );

    let e = err(call(
        &as_viewer,
        "update_company",
        json!({"id": mine["id"], "name": "X"}),
    )
    .await);
    assert_eq!(e["code"], "permission_denied");
    let e = err(call(&as_rep, "delete_company", json!({"id": mine["id"]})).await);
    assert_eq!(e["code"], "permission_denied");
    let got = ok(call(&as_viewer, "get_company", json!({"id": mine["id"]})).await);
    assert_eq!(got["name"], "Rep Co");

    let history = store
        .history(
            &fx.admin_ctx(),
            rapport_crm::RecordType::Company,
            mine["id"].as_i64().unwrap(),
        )
        .await
        .unwrap();
    assert!(
        history
            .iter()
            .all(|h| h.source == "mcp" && h.actor_id == Some(fx.rep.id))
    );
    as_rep.cancel().await.unwrap();
    as_viewer.cancel().await.unwrap();
}

/// Every tool can be described to MCP: object input and output schemas (what
/// clients of older protocol versions require) and hints that match the effect.
#[test]
fn every_tool_is_described_with_object_schemas_and_hints() {
    let registry = Registry::new();
    for t in registry.tools() {
        let d = describe(t).expect("describable");
        let out = d.output_schema.as_deref().expect("output schema");
        assert_eq!(
            out.get("type"),
            Some(&json!("object")),
            "{} output",
            t.name()
        );
        assert_eq!(
            d.input_schema.get("type"),
            Some(&json!("object")),
            "{} input",
            t.name()
        );
        let a = d.annotations.expect("annotations");
        assert_eq!(
            a.read_only_hint,
            Some(t.effect() == Effect::Read),
            "{}",
            t.name()
        );
        if t.effect() != Effect::Read {
            assert_eq!(
                a.destructive_hint,
                Some(t.effect() == Effect::Destructive),
                "{}",
                t.name()
            );
        }
        assert_eq!(a.open_world_hint, Some(false));
    }
}
