//! The API server over real HTTP (axum on 127.0.0.1:0, a reqwest client), on
//! SQLite and on PostgreSQL: authentication and roles, CRUD and filters for
//! every record type, bulk partial failure, tools, chat with an approval round
//! trip over server-sent events, a client that disconnects mid-turn, MCP over
//! HTTP, the rate limit, the body limit, and the operational endpoints.

use std::sync::Arc;
use std::time::Duration;

use rapport_agent::backend::scripted::ScriptedBackend;
use rapport_agent::{Agent, AgentConfig, LlmReply, Policy, WritePolicy};
use rapport_api::rest::RECORDS;
use rapport_api::server::{AppState, ServerConfig, serve};
use rapport_crm::testing::Fixture;
use rapport_crm::{RecordType, Store};
use rapport_tools::Registry;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::oneshot;

rapport_crm::both_backends!(
    requests_without_a_valid_key_are_refused_and_workspaces_stay_apart,
    every_record_type_supports_crud_filters_and_history,
    lists_filter_sort_and_page_without_repeats,
    bulk_create_and_update_keep_the_good_items_and_explain_the_bad,
    tools_models_and_nba_go_through_the_registry,
    chat_streams_events_and_an_approval_round_trip,
    a_client_that_disconnects_mid_turn_leaves_a_whole_session,
    mcp_over_http_acts_as_the_keys_user,
    the_rate_limit_answers_429_with_retry_after,
    an_oversized_body_is_refused_with_413,
    health_metrics_openapi_and_request_ids,
);

struct Server {
    base: String,
    http: reqwest::Client,
    fx: Fixture,
    admin: String,
    rep: String,
    viewer: String,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn get(&self, key: &str, path: &str) -> reqwest::RequestBuilder {
        self.http.get(self.url(path)).bearer_auth(key)
    }

    fn post(&self, key: &str, path: &str, body: Value) -> reqwest::RequestBuilder {
        self.http.post(self.url(path)).bearer_auth(key).json(&body)
    }

    fn patch(&self, key: &str, path: &str, body: Value) -> reqwest::RequestBuilder {
        self.http.patch(self.url(path)).bearer_auth(key).json(&body)
    }

    /// Stops the server gracefully and waits for it.
    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), self.done).await;
    }
}

async fn start(
    store: &Store,
    name: &str,
    config: ServerConfig,
    agent: Option<Arc<Agent>>,
) -> Server {
    // reqwest is built with `rustls-no-provider` in this workspace.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fx = Fixture::new(store, name).await.expect("fixture");
    let ctx = fx.admin_ctx();
    let key = |user: rapport_crm::Id| {
        let store = store.clone();
        let ctx = ctx.clone();
        async move {
            store
                .create_api_key(&ctx, user, "test")
                .await
                .expect("key")
                .secret
        }
    };
    let admin = key(fx.admin.id).await;
    let rep = key(fx.rep.id).await;
    let viewer = key(fx.viewer.id).await;
    let state =
        AppState::new(store.clone(), Arc::new(Registry::new()), agent, config).expect("state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = oneshot::channel::<()>();
    let done = tokio::spawn(async move {
        serve(listener, state, async {
            let _ = stopped.await;
        })
        .await
        .expect("serve");
    });
    Server {
        base,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client"),
        fx,
        admin,
        rep,
        viewer,
        stop: Some(stop),
        done,
    }
}

async fn plain(store: &Store, name: &str) -> Server {
    start(store, name, ServerConfig::default(), None).await
}

/// The JSON body after checking the status.
/// Sends the request and checks its status (and problem body): see [`expect`].
async fn call(req: reqwest::RequestBuilder, status: StatusCode) -> Value {
    expect(req.send().await.expect("the server answers"), status).await
}

async fn expect(res: reqwest::Response, status: StatusCode) -> Value {
    let got = res.status();
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = res.text().await.expect("body");
    assert_eq!(got, status, "body: {text}");
    if status.is_client_error() || status.is_server_error() {
        assert_eq!(
            ct, "application/problem+json",
            "errors are problem documents: {text}"
        );
    }
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

async fn requests_without_a_valid_key_are_refused_and_workspaces_stay_apart(store: &Store) {
    let s = plain(store, "auth").await;
    // No key.
    let p = call(
        s.http.get(s.url("/api/v1/companies")),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(p["code"], "unauthorized");
    assert!(
        p["detail"].as_str().unwrap().contains("Authorization"),
        "{p}"
    );
    // A made-up key.
    let p = call(
        s.get("rk_not-a-real-key", "/api/v1/companies"),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("unknown or was revoked"),
        "{p}"
    );
    // A key that worked, then revoked.
    call(s.get(&s.rep, "/api/v1/me"), StatusCode::OK).await;
    let keys = store.api_keys(&s.fx.admin_ctx()).await.unwrap();
    let rep_key = keys.iter().find(|k| k.user_id == s.fx.rep.id).unwrap();
    store
        .revoke_api_key(&s.fx.admin_ctx(), rep_key.id)
        .await
        .unwrap();
    call(s.get(&s.rep, "/api/v1/me"), StatusCode::UNAUTHORIZED).await;
    // The key acts as its user with their role.
    let me = call(s.get(&s.viewer, "/api/v1/me"), StatusCode::OK).await;
    assert_eq!(me["user"]["role"], "viewer");
    let p = call(
        s.post(
            &s.viewer,
            "/api/v1/companies",
            json!({"name": "Viewer Inc"}),
        ),
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(p["code"], "permission_denied");
    // Another workspace's record is not found, for reads and writes alike.
    let other = Fixture::new(store, "auth-other").await.unwrap();
    let theirs: rapport_crm::model::Company = store
        .create(&other.admin_ctx(), json!({"name": "Their Co"}))
        .await
        .unwrap();
    let path = format!("/api/v1/companies/{}", theirs.id);
    call(s.get(&s.admin, &path), StatusCode::NOT_FOUND).await;
    call(
        s.patch(&s.admin, &path, json!({"name": "Ours now"})),
        StatusCode::NOT_FOUND,
    )
    .await;
    call(
        s.http.delete(s.url(&path)).bearer_auth(&s.admin),
        StatusCode::NOT_FOUND,
    )
    .await;
    call(
        s.get(&s.admin, &format!("{path}/history")),
        StatusCode::NOT_FOUND,
    )
    .await;
    let still: rapport_crm::model::Company =
        store.get(&other.admin_ctx(), theirs.id).await.unwrap();
    assert_eq!(still.name, "Their Co");
    s.stop().await;
}

/// Minimal valid fields of a new record: the tool's own example, pointed at
/// the fixture's pipeline where it names one.
fn example(s: &Server, rt: RecordType) -> Value {
    let registry = Registry::new();
    let mut v = registry
        .get(&rapport_api::rest::tool_name("create", rt))
        .expect("create tool")
        .example();
    if v.get("pipeline_id").is_some() {
        v["pipeline_id"] = json!(s.fx.pipeline.id);
    }
    v
}

/// A text field every type has that a patch can change.
fn text_field(rt: RecordType) -> &'static str {
    match rt {
        RecordType::Contact => "first_name",
        RecordType::Activity => "body",
        RecordType::Task => "title",
        _ => "name",
    }
}

async fn every_record_type_supports_crud_filters_and_history(store: &Store) {
    let s = plain(store, "crud").await;
    for rt in RECORDS {
        let plural = rt.plural();
        let base = format!("/api/v1/{plural}");
        let created = call(
            s.post(&s.admin, &base, example(&s, rt)),
            StatusCode::CREATED,
        )
        .await;
        let id = created["id"]
            .as_i64()
            .unwrap_or_else(|| panic!("{rt}: {created}"));
        let item = format!("{base}/{id}");
        let got = call(s.get(&s.admin, &item), StatusCode::OK).await;
        assert_eq!(got["id"], id, "{rt}");

        let field = text_field(rt);
        let patched = call(
            s.patch(&s.admin, &item, json!({field: "Changed by REST"})),
            StatusCode::OK,
        )
        .await;
        assert_eq!(patched[field], "Changed by REST", "{rt}");
        // Fields not named are kept.
        for (k, v) in example(&s, rt).as_object().unwrap() {
            if k != field {
                let got = &patched[k.as_str()];
                // Numbers compare by value (a float column answers 12000.0).
                match (got.as_f64(), v.as_f64()) {
                    (Some(a), Some(b)) => assert_eq!(a, b, "{rt}.{k} kept"),
                    _ => assert_eq!(got, v, "{rt}.{k} kept"),
                }
            }
        }
        // A bad patch names its field and writes nothing.
        let p = call(
            s.patch(&s.admin, &item, json!({"no_such_field": 1})),
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert!(
            p["field"].as_str().unwrap_or("").contains("no_such_field"),
            "{rt}: {p}"
        );
        // A deal's status changes only by closing it (the domain rule holds
        // on the REST path too).
        if rt == RecordType::Deal {
            let p = call(
                s.patch(&s.admin, &item, json!({"status": "won"})),
                StatusCode::BAD_REQUEST,
            )
            .await;
            assert_eq!(p["field"], "status", "{p}");
            assert!(
                p["hint"].as_str().unwrap_or("").contains("close_deal"),
                "{p}"
            );
            let now = call(s.get(&s.admin, &item), StatusCode::OK).await;
            assert_eq!(now["status"], "open", "nothing was written");
        }

        // The typed filter finds exactly the changed record.
        let filter = json!({"and": [{"field": field, "op": "eq", "value": "Changed by REST"}, {"field": "id", "op": "eq", "value": id}]});
        let page = call(
            s.get(&s.admin, &base)
                .query(&[("filter", filter.to_string())]),
            StatusCode::OK,
        )
        .await;
        let ids: Vec<i64> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect();
        assert_eq!(ids, vec![id], "{rt}");
        // A filter on a field the type does not have is a 400 naming it.
        let p = call(
            s.get(&s.admin, &base)
                .query(&[("filter", r#"{"field":"nope","op":"eq","value":1}"#)]),
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert!(p["detail"].as_str().unwrap().contains("nope"), "{rt}: {p}");

        let history = call(s.get(&s.admin, &format!("{item}/history")), StatusCode::OK).await;
        let actions: Vec<&str> = history["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        assert!(
            actions.len() >= 2,
            "{rt}: create and update audited: {actions:?}"
        );
        assert!(
            history["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["source"] == "api"),
            "{rt}: {history}"
        );

        // Reps may not delete; admins may.
        let p = call(
            s.http.delete(s.url(&item)).bearer_auth(&s.rep),
            StatusCode::FORBIDDEN,
        )
        .await;
        assert_eq!(p["code"], "permission_denied");
        if rt == RecordType::Pipeline {
            // The new pipeline got no stages, so it can go.
        }
        let gone = call(
            s.http.delete(s.url(&item)).bearer_auth(&s.admin),
            StatusCode::OK,
        )
        .await;
        assert_eq!(gone["id"], id);
        call(s.get(&s.admin, &item), StatusCode::NOT_FOUND).await;
    }
    // Users are listed (read-only).
    let users = call(s.get(&s.viewer, "/api/v1/users"), StatusCode::OK).await;
    assert_eq!(users["items"].as_array().unwrap().len(), 4);
    s.stop().await;
}

async fn lists_filter_sort_and_page_without_repeats(store: &Store) {
    let s = plain(store, "lists").await;
    for (i, name) in ["Acme", "Globex", "Initech", "Umbrella", "Acme Rockets"]
        .iter()
        .enumerate()
    {
        call(
            s.post(
                &s.admin,
                "/api/v1/companies",
                json!({"name": name, "employees": 10 * (i + 1)}),
            ),
            StatusCode::CREATED,
        )
        .await;
    }
    let names = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let page = call(
        s.get(&s.viewer, "/api/v1/companies").query(&[
            (
                "filter",
                r#"{"field":"name","op":"contains","value":"acme"}"#,
            ),
            ("sort", "-name"),
        ]),
        StatusCode::OK,
    )
    .await;
    assert_eq!(names(&page), ["Acme Rockets", "Acme"]);
    let page = call(s.get(&s.viewer, "/api/v1/companies")
            .query(&[("filter", r#"{"or":[{"field":"employees","op":"gte","value":40},{"field":"name","op":"eq","value":"Globex"}]}"#), ("sort", "employees")]),
        StatusCode::OK,
    )
    .await;
    assert_eq!(names(&page), ["Globex", "Umbrella", "Acme Rockets"]);
    // Cursor pagination: every record once, in order.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut q = vec![("limit", "2".to_owned()), ("sort", "name".to_owned())];
        if let Some(c) = &cursor {
            q.push(("cursor", c.clone()));
        }
        let page = call(
            s.get(&s.viewer, "/api/v1/companies").query(&q),
            StatusCode::OK,
        )
        .await;
        seen.extend(names(&page));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(
        seen,
        ["Acme", "Acme Rockets", "Globex", "Initech", "Umbrella"]
    );
    let p = call(
        s.get(&s.viewer, "/api/v1/companies?limit=501"),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(p["field"], "limit");
    let p = call(
        s.get(&s.viewer, "/api/v1/companies?filter=%7Bbroken"),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(p["field"], "filter");
    s.stop().await;
}

async fn bulk_create_and_update_keep_the_good_items_and_explain_the_bad(store: &Store) {
    let s = plain(store, "bulk").await;
    let out = call(
        s.post(
            &s.rep,
            "/api/v1/contacts/bulk",
            json!({"items": [
                {"first_name": "Dana", "email": "dana@acme.test"},
                {"first_name": "Sam", "emial": "typo@acme.test"},
                {"first_name": "Dana again", "email": "dana@acme.test"},
                {"first_name": "Lee"}
            ]}),
        ),
        StatusCode::OK,
    )
    .await;
    assert_eq!(out["succeeded"], 2, "{out}");
    assert_eq!(out["failed"], 2, "{out}");
    let r = out["results"].as_array().unwrap();
    assert_eq!(r[0]["status"], 201);
    assert_eq!(r[1]["status"], 400);
    assert!(
        r[1]["error"]["field"]
            .as_str()
            .unwrap()
            .starts_with("items[1]"),
        "{out}"
    );
    assert_eq!(r[2]["status"], 409, "duplicate email: {out}");
    assert_eq!(r[3]["status"], 201);
    let dana = r[0]["record"]["id"].as_i64().unwrap();
    let lee = r[3]["record"]["id"].as_i64().unwrap();
    let page = call(s.get(&s.rep, "/api/v1/contacts"), StatusCode::OK).await;
    assert_eq!(
        page["items"].as_array().unwrap().len(),
        2,
        "only the good items exist"
    );

    let out = call(s.patch(
            &s.rep,
            "/api/v1/contacts/bulk",
            json!({"items": [{"id": dana, "title": "CTO"}, {"id": 999_999, "title": "Ghost"}, {"id": lee, "last_name": "Park"}]}),
        ),
        StatusCode::OK,
    )
    .await;
    assert_eq!(out["succeeded"], 2, "{out}");
    assert_eq!(out["results"][1]["status"], 404);
    assert_eq!(out["results"][0]["record"]["title"], "CTO");
    assert_eq!(out["results"][2]["record"]["last_name"], "Park");
    let p = call(
        s.post(&s.rep, "/api/v1/contacts/bulk", json!({"items": []})),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(p["field"], "items");
    s.stop().await;
}

async fn tools_models_and_nba_go_through_the_registry(store: &Store) {
    let s = plain(store, "tools").await;
    let tools = call(s.get(&s.viewer, "/api/v1/tools"), StatusCode::OK).await;
    assert!(
        tools
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "find_records")
    );
    call(
        s.post(
            &s.rep,
            "/api/v1/tools/create_company",
            json!({"name": "Acme Logistics"}),
        ),
        StatusCode::OK,
    )
    .await;
    let found = call(
        s.post(
            &s.viewer,
            "/api/v1/tools/find_records",
            json!({"query": "Acme"}),
        ),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        found["candidates"][0]["label"]
            .as_str()
            .map(|l| l.contains("Acme")),
        Some(true),
        "{found}"
    );
    let p = call(
        s.post(
            &s.viewer,
            "/api/v1/tools/create_company",
            json!({"name": "X"}),
        ),
        StatusCode::FORBIDDEN,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("viewers"), "{p}");
    let p = call(
        s.post(&s.rep, "/api/v1/tools/no_such_tool", json!({})),
        StatusCode::NOT_FOUND,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("no_such_tool"));
    let p = call(
        s.post(
            &s.rep,
            "/api/v1/tools/create_company",
            json!({"nmae": "typo"}),
        ),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(p["field"].as_str().is_some(), "{p}");
    let models = call(s.get(&s.viewer, "/api/v1/models"), StatusCode::OK).await;
    assert_eq!(models["items"], json!([]));
    // Search without an index says how to set it up.
    let p = call(
        s.get(&s.viewer, "/api/v1/search?query=pricing"),
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(p["code"], "not_available");
    // Next-best actions are a service the server is given (by the binary,
    // from rapport-pipelines); without it the endpoint says so.
    let p = call(s.get(&s.rep, "/api/v1/nba?limit=5"), StatusCode::CONFLICT).await;
    assert_eq!(p["code"], "not_available", "{p}");
    s.stop().await;
}

/// The events of an SSE body: (name, JSON data).
fn sse(body: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for block in body.split("\n\n") {
        let mut name = String::new();
        let mut data = String::new();
        for line in block.lines() {
            if let Some(n) = line.strip_prefix("event:") {
                name = n.trim().to_owned();
            } else if let Some(d) = line.strip_prefix("data:") {
                data.push_str(d.trim_start());
            }
        }
        if !name.is_empty() {
            out.push((name, serde_json::from_str(&data).unwrap_or(Value::Null)));
        }
    }
    out
}

fn scripted_agent(store: &Store, model: ScriptedBackend, writes: WritePolicy) -> Arc<Agent> {
    let config = AgentConfig {
        policy: Policy {
            writes,
            approve_all: false,
        },
        max_steps: 4,
        ..AgentConfig::default()
    };
    Arc::new(
        Agent::new(
            store.clone(),
            Arc::new(Registry::new()),
            Arc::new(model),
            config,
        )
        .expect("agent"),
    )
}

async fn chat_streams_events_and_an_approval_round_trip(store: &Store) {
    let model = ScriptedBackend::new()
        .call("create_company", json!({"name": "Globex"}))
        .say("Created Globex.");
    let agent = scripted_agent(store, model, WritePolicy::Approve);
    let s = start(store, "chat", ServerConfig::default(), Some(agent)).await;
    let session = call(
        s.post(&s.rep, "/api/v1/sessions", json!({"title": "morning"})),
        StatusCode::CREATED,
    )
    .await;
    let sid = session["id"].as_i64().unwrap();

    let res = s
        .post(
            &s.rep,
            &format!("/api/v1/sessions/{sid}/messages"),
            json!({"text": "Add Globex as a company"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let events = sse(&res.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["tool_call", "approval_needed", "done"],
        "{events:?}"
    );
    let done = &events[2].1;
    assert_eq!(done["outcome"], "awaiting_approval");
    let pid = done["proposal"]["id"].as_i64().unwrap();
    assert_eq!(events[1].1["proposal"]["id"], pid);
    let none = call(s.get(&s.rep, "/api/v1/companies"), StatusCode::OK).await;
    assert_eq!(none["items"], json!([]), "nothing written before approval");

    // Someone else cannot decide it: the session is not theirs.
    call(
        s.post(
            &s.admin,
            &format!("/api/v1/sessions/{sid}/proposals/{pid}"),
            json!({"decision": "approve"}),
        ),
        StatusCode::NOT_FOUND,
    )
    .await;
    let p = call(
        s.post(
            &s.rep,
            &format!("/api/v1/sessions/{sid}/proposals/{pid}"),
            json!({"decision": "edit"}),
        ),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(p["field"], "changes");

    let res = s
        .post(
            &s.rep,
            &format!("/api/v1/sessions/{sid}/proposals/{pid}"),
            json!({"decision": "approve"}),
        )
        .send()
        .await
        .unwrap();
    let events = sse(&res.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"tool_result"), "{events:?}");
    assert_eq!(events[0].1["ok"], true);
    assert_eq!(names.last(), Some(&"done"));
    let done = &events.last().unwrap().1;
    assert_eq!(done["outcome"], "answer");
    assert_eq!(done["text"], "Created Globex.");
    assert!(
        events
            .iter()
            .any(|(n, v)| n == "final" && v["text"] == "Created Globex.")
    );

    let companies = call(s.get(&s.rep, "/api/v1/companies"), StatusCode::OK).await;
    assert_eq!(companies["items"][0]["name"], "Globex");
    assert_eq!(companies["items"][0]["owner_id"], s.fx.rep.id);
    // Deciding twice is a conflict.
    let p = call(
        s.post(
            &s.rep,
            &format!("/api/v1/sessions/{sid}/proposals/{pid}"),
            json!({"decision": "approve"}),
        ),
        StatusCode::CONFLICT,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("already decided"));

    let history = call(
        s.get(&s.rep, &format!("/api/v1/sessions/{sid}")),
        StatusCode::OK,
    )
    .await;
    assert_eq!(history["proposals"][0]["status"], "applied");
    let roles: Vec<&str> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles.first(), Some(&"user"));
    assert_eq!(
        history["messages"].as_array().unwrap().last().unwrap()["content"],
        "Created Globex."
    );
    // Another user sees no such session.
    call(
        s.get(&s.admin, &format!("/api/v1/sessions/{sid}")),
        StatusCode::NOT_FOUND,
    )
    .await;
    s.stop().await;
}

async fn a_client_that_disconnects_mid_turn_leaves_a_whole_session(store: &Store) {
    // The model's second step waits until the test has checked the refusal
    // and left. The wait is asynchronous: the test runtime has one thread,
    // and a blocking wait would stall the server along with the model.
    let (release, wait) = tokio::sync::oneshot::channel::<()>();
    let model = ScriptedBackend::new()
        .call("create_company", json!({"name": "Slow Co"}))
        .after(
            async move {
                let _ = tokio::time::timeout(Duration::from_secs(30), wait).await;
            },
            |_| LlmReply {
                content: "Created Slow Co.".into(),
                ..Default::default()
            },
        )
        .say("Still here.");
    let agent = scripted_agent(store, model, WritePolicy::Direct);
    let s = start(store, "leaver", ServerConfig::default(), Some(agent)).await;
    let sid = call(
        s.post(&s.rep, "/api/v1/sessions", json!({})),
        StatusCode::CREATED,
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let path = format!("/api/v1/sessions/{sid}/messages");
    let res = s
        .post(&s.rep, &path, json!({"text": "Add Slow Co"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // A second turn while the first runs is refused, not interleaved.
    let p = call(
        s.post(&s.rep, &path, json!({"text": "and another"})),
        StatusCode::CONFLICT,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("already running"));
    drop(res); // the client leaves mid-turn
    release.send(()).unwrap();
    // The turn finishes on its own and the session is whole.
    let mut answered = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let h = call(
            s.get(&s.rep, &format!("/api/v1/sessions/{sid}")),
            StatusCode::OK,
        )
        .await;
        if h["messages"].as_array().unwrap().last().unwrap()["content"] == "Created Slow Co." {
            answered = true;
            break;
        }
    }
    assert!(answered, "the turn ran to its end after the client left");
    let companies = call(s.get(&s.rep, "/api/v1/companies"), StatusCode::OK).await;
    assert_eq!(companies["items"].as_array().unwrap().len(), 1);
    // And the session takes the next message normally.
    let res = s
        .post(&s.rep, &path, json!({"text": "still there?"}))
        .send()
        .await
        .unwrap();
    let events = sse(&res.text().await.unwrap());
    assert_eq!(
        events.last().unwrap().1["text"],
        "Still here.",
        "{events:?}"
    );
    s.stop().await;
}

/// One JSON-RPC request to `/mcp`; the result or error object.
async fn mcp(
    s: &Server,
    key: Option<&str>,
    id: u64,
    method: &str,
    params: Value,
) -> (StatusCode, Value) {
    let mut req = s
        .http
        .post(s.url("/mcp"))
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .json(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let text = res.text().await.unwrap();
    // JSON, or one SSE message carrying it.
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|_| sse_data(&text).unwrap_or_else(|| panic!("MCP answer: {text}")));
    (status, body)
}

fn sse_data(text: &str) -> Option<Value> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find(|v| v.get("id").is_some())
}

async fn mcp_over_http_acts_as_the_keys_user(store: &Store) {
    let s = plain(store, "mcp").await;
    let init = json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "0"}});
    let (status, _) = mcp(&s, None, 1, "initialize", init.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = mcp(&s, Some(&s.rep), 1, "initialize", init).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"]["serverInfo"]["name"], "rapport");
    let (_, body) = mcp(&s, Some(&s.rep), 2, "tools/list", json!({})).await;
    let tools = body["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"));
    assert!(tools.iter().any(|t| t["name"] == "create_company"));
    let call = json!({"name": "create_company", "arguments": {"name": "Over MCP"}});
    let (_, body) = mcp(&s, Some(&s.viewer), 3, "tools/call", call.clone()).await;
    assert_eq!(body["result"]["isError"], true, "{body}");
    assert_eq!(
        body["result"]["structuredContent"]["code"],
        "permission_denied"
    );
    let (_, body) = mcp(&s, Some(&s.rep), 4, "tools/call", call).await;
    assert_ne!(body["result"]["isError"], true, "{body}");
    assert_eq!(
        body["result"]["structuredContent"]["owner_id"], s.fx.rep.id,
        "acts as the key's user"
    );
    s.stop().await;
}

async fn the_rate_limit_answers_429_with_retry_after(store: &Store) {
    let config = ServerConfig {
        rate_per_sec: 0.5,
        rate_burst: 3,
        ..ServerConfig::default()
    };
    let s = start(store, "rate", config, None).await;
    for _ in 0..3 {
        call(s.get(&s.rep, "/api/v1/me"), StatusCode::OK).await;
    }
    let res = s.get(&s.rep, "/api/v1/me").send().await.unwrap();
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    let p = expect(res, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(p["code"], "rate_limited");
    // Each key has its own budget.
    call(s.get(&s.viewer, "/api/v1/me"), StatusCode::OK).await;
    s.stop().await;
}

async fn an_oversized_body_is_refused_with_413(store: &Store) {
    let config = ServerConfig {
        body_limit: 4096,
        ..ServerConfig::default()
    };
    let s = start(store, "big", config, None).await;
    let big = "x".repeat(10_000);
    let p = call(
        s.post(
            &s.rep,
            "/api/v1/companies",
            json!({"name": "Big", "description": big}),
        ),
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    assert_eq!(p["code"], "payload_too_large");
    // Chunked, with no length announced, is cut off as well.
    let chunks = futures::stream::iter((0..20).map(|_| Ok::<_, std::io::Error>(vec![b' '; 1024])));
    let res = s
        .http
        .post(s.url("/api/v1/companies"))
        .bearer_auth(&s.rep)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    expect(res, StatusCode::PAYLOAD_TOO_LARGE).await;
    let none = call(s.get(&s.rep, "/api/v1/companies"), StatusCode::OK).await;
    assert_eq!(none["items"], json!([]));
    s.stop().await;
}

async fn health_metrics_openapi_and_request_ids(store: &Store) {
    let s = plain(store, "ops").await;
    let res = s.http.get(s.url("/healthz")).send().await.unwrap();
    let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "a UUID request id: {id}");
    expect(res, StatusCode::OK).await;
    // A request id sent by the client is kept.
    let res = s
        .http
        .get(s.url("/readyz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "abc-123");
    expect(res, StatusCode::OK).await;
    call(s.get(&s.rep, "/api/v1/companies"), StatusCode::OK).await;
    call(s.get(&s.rep, "/api/v1/nothing-here"), StatusCode::NOT_FOUND).await;
    let metrics = s
        .http
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            r#"rapport_http_requests_total{method="GET",route="/api/v1/companies",status="200"} 1"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains("rapport_http_request_duration_seconds_bucket"));
    let doc = call(s.http.get(s.url("/api/openapi.json")), StatusCode::OK).await;
    assert_eq!(doc["openapi"], "3.1.0");
    for plural in RECORDS.map(|rt| rt.plural()) {
        for p in ["", "/{id}", "/bulk", "/{id}/history"] {
            assert!(
                doc["paths"][format!("/api/v1/{plural}{p}")].is_object(),
                "{plural}{p}"
            );
        }
    }
    assert!(doc["paths"]["/api/v1/sessions/{id}/messages"]["post"].is_object());
    assert_eq!(
        doc["components"]["schemas"]["CompanyCreate"]["required"],
        json!(["name"])
    );
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    s.stop().await;
}
