//! Two API servers on one database, as two `rapport serve` processes behind a
//! balancer: each with its own store (its own connection pool), its own agent
//! and its own model, over real HTTP. On PostgreSQL and on SQLite (one file).
//!
//! - A chat turn started through server A stops for the approval of a write;
//!   the approval, decided through server B, applies the write and B's model
//!   finishes the turn.
//! - While A runs a turn, a second message to the same session through B is
//!   refused with 409; once A's turn ends, B takes the next message. A lease
//!   left by a server that died expires.
//! - A key's rate limit holds across both servers: its burst is spent once.

use std::sync::Arc;
use std::time::Duration;

use rapport_agent::backend::scripted::ScriptedBackend;
use rapport_agent::{Agent, AgentConfig, LlmReply, Policy, WritePolicy};
use rapport_api::server::{AppState, ServerConfig, serve};
use rapport_crm::Store;
use rapport_crm::testing::{Fixture, TestDb};
use rapport_tools::Registry;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::oneshot;

#[tokio::test]
async fn postgres() {
    let db = TestDb::postgres().await;
    two_servers_on_one_database(&db).await;
    db.cleanup().await;
}

#[tokio::test]
async fn sqlite() {
    let db = TestDb::sqlite().await;
    two_servers_on_one_database(&db).await;
    db.cleanup().await;
}

/// One `rapport serve` process: its store, its server task.
struct Server {
    base: String,
    store: Store,
    stop: oneshot::Sender<()>,
    done: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(url: &str, agent: Option<ScriptedBackend>, config: ServerConfig) -> Server {
        // Its own pool on the shared database, as a separate process has.
        let store = Store::connect(url).await.expect("open the shared database");
        let agent = agent.map(|model| {
            let config = AgentConfig {
                policy: Policy {
                    writes: WritePolicy::Approve,
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
        });
        let state =
            AppState::new(store.clone(), Arc::new(Registry::new()), agent, config).expect("state");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
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
            store,
            stop,
            done,
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(10), self.done).await;
        self.store.close().await;
    }
}

struct Client {
    http: reqwest::Client,
    key: String,
}

impl Client {
    async fn post(&self, server: &Server, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", server.base))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await
            .expect("the server answers")
    }

    async fn get(&self, server: &Server, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", server.base))
            .bearer_auth(&self.key)
            .send()
            .await
            .expect("the server answers")
    }
}

async fn json_of(res: reqwest::Response, status: StatusCode) -> Value {
    let got = res.status();
    let text = res.text().await.expect("body");
    assert_eq!(got, status, "body: {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// The named server-sent events of a body, with their data.
fn sse(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter_map(|block| {
            let mut name = None;
            let mut data = String::new();
            for line in block.lines() {
                if let Some(n) = line.strip_prefix("event:") {
                    name = Some(n.trim().to_owned());
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push_str(d.trim_start());
                }
            }
            Some((name?, serde_json::from_str(&data).unwrap_or(Value::Null)))
        })
        .collect()
}

fn done_of(events: &[(String, Value)]) -> &Value {
    let (name, done) = events.last().expect("events");
    assert_eq!(name, "done", "{events:?}");
    done
}

fn say(text: &str) -> LlmReply {
    LlmReply {
        content: text.into(),
        ..Default::default()
    }
}

async fn two_servers_on_one_database(db: &TestDb) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fx = Fixture::new(&db.store, "two").await.expect("fixture");
    let key = |user| {
        let store = db.store.clone();
        let ctx = fx.admin_ctx();
        async move {
            store
                .create_api_key(&ctx, user, "test")
                .await
                .expect("key")
                .secret
        }
    };
    let rep = Client {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        key: key(fx.rep.id).await,
    };

    // A's model proposes the write and, in the second session, holds its
    // turn until the test lets it go. B's model answers after the approval
    // and takes the message A's turn had blocked.
    let (release, held) = oneshot::channel::<()>();
    let model_a = ScriptedBackend::new()
        .call("create_company", json!({"name": "Globex"}))
        .after(
            async move {
                let _ = tokio::time::timeout(Duration::from_secs(30), held).await;
            },
            |_| say("Still thinking, done now."),
        );
    let model_b = ScriptedBackend::new()
        .say("Created Globex.")
        .say("Next message, answered by B.");
    let config = ServerConfig::default;
    let a = Server::start(&db.url, Some(model_a), config()).await;
    let b = Server::start(&db.url, Some(model_b), config()).await;

    // A turn through A stops for approval.
    let sid = json_of(
        rep.post(&a, "/api/v1/sessions", json!({"title": "two servers"}))
            .await,
        StatusCode::CREATED,
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let messages = format!("/api/v1/sessions/{sid}/messages");
    let res = rep
        .post(&a, &messages, json!({"text": "Add Globex as a company"}))
        .await;
    let events = sse(&res.text().await.unwrap());
    let done = done_of(&events);
    assert_eq!(done["outcome"], "awaiting_approval", "{events:?}");
    let pid = done["proposal"]["id"].as_i64().unwrap();
    let none = json_of(rep.get(&b, "/api/v1/companies").await, StatusCode::OK).await;
    assert_eq!(none["items"], json!([]), "nothing written before approval");

    // The approval, through B, applies the write; B's model ends the turn.
    let res = rep
        .post(
            &b,
            &format!("/api/v1/sessions/{sid}/proposals/{pid}"),
            json!({"decision": "approve"}),
        )
        .await;
    let events = sse(&res.text().await.unwrap());
    assert_eq!(events[0].0, "tool_result", "{events:?}");
    assert_eq!(events[0].1["ok"], true);
    let done = done_of(&events);
    assert_eq!(done["outcome"], "answer", "{events:?}");
    assert_eq!(done["text"], "Created Globex.");
    // Both servers see the write and the whole session.
    for server in [&a, &b] {
        let companies = json_of(rep.get(server, "/api/v1/companies").await, StatusCode::OK).await;
        assert_eq!(companies["items"][0]["name"], "Globex");
        let h = json_of(
            rep.get(server, &format!("/api/v1/sessions/{sid}")).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(h["proposals"][0]["status"], "applied");
        let last = h["messages"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["content"], "Created Globex.");
    }
    // Deciding again, through either server, is a conflict.
    let again = rep
        .post(
            &a,
            &format!("/api/v1/sessions/{sid}/proposals/{pid}"),
            json!({"decision": "approve"}),
        )
        .await;
    assert_eq!(again.status(), StatusCode::CONFLICT);

    // A turn through A holds the session: B refuses a second message.
    let sid2 = json_of(
        rep.post(&a, "/api/v1/sessions", json!({})).await,
        StatusCode::CREATED,
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let messages2 = format!("/api/v1/sessions/{sid2}/messages");
    let running = rep
        .post(&a, &messages2, json!({"text": "Think about Globex"}))
        .await;
    assert_eq!(running.status(), StatusCode::OK);
    let refused = json_of(
        rep.post(&b, &messages2, json!({"text": "and another"}))
            .await,
        StatusCode::CONFLICT,
    )
    .await;
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("already running"),
        "{refused}"
    );
    // A's turn ends; B takes the next message at once.
    release.send(()).unwrap();
    let events = sse(&running.text().await.unwrap());
    assert_eq!(done_of(&events)["text"], "Still thinking, done now.");
    let res = rep
        .post(&b, &messages2, json!({"text": "and another"}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let events = sse(&res.text().await.unwrap());
    assert_eq!(done_of(&events)["text"], "Next message, answered by B.");

    // A server that dies mid-turn leaves its lease; it expires.
    assert!(
        a.store
            .take_session_lease(sid2, "a server that then died", Duration::from_millis(800))
            .await
            .unwrap()
    );
    let refused = rep.post(&b, &messages2, json!({"text": "hello?"})).await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    assert!(
        !b.store
            .take_session_lease(sid2, "another", Duration::from_secs(5))
            .await
            .unwrap(),
        "a live lease is not taken over"
    );
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(
        b.store
            .take_session_lease(sid2, "after expiry", Duration::from_secs(5))
            .await
            .unwrap(),
        "an expired lease is taken over"
    );
    assert!(
        !b.store
            .release_session_lease(sid2, "a server that then died")
            .await
            .unwrap(),
        "the dead holder's release does not free the new holder's lease"
    );
    assert!(
        b.store
            .release_session_lease(sid2, "after expiry")
            .await
            .unwrap()
    );
    a.stop().await;
    b.stop().await;

    // The rate limit: a burst of 4 for the key, refilled too slowly to
    // matter, spent through both servers together.
    let limited = ServerConfig {
        rate_per_sec: 0.01,
        rate_burst: 4,
        ..ServerConfig::default()
    };
    let a = Server::start(&db.url, None, limited.clone()).await;
    let b = Server::start(&db.url, None, limited).await;
    let viewer = Client {
        http: rep.http.clone(),
        key: key(fx.viewer.id).await,
    };
    for server in [&a, &b, &a, &b] {
        json_of(viewer.get(server, "/api/v1/me").await, StatusCode::OK).await;
    }
    for server in [&a, &b] {
        let res = viewer.get(server, "/api/v1/me").await;
        assert!(res.headers().contains_key("retry-after"));
        let p = json_of(res, StatusCode::TOO_MANY_REQUESTS).await;
        assert_eq!(p["code"], "rate_limited");
    }
    // Another key has its own bucket.
    json_of(rep.get(&b, "/api/v1/me").await, StatusCode::OK).await;
    a.stop().await;
    b.stop().await;
}
