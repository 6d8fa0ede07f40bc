//! `next_best_actions` and `nba_feedback` through the registry, on SQLite and
//! PostgreSQL: the happy path (ranked actions with reasons, feedback hides
//! one), invalid arguments (field named, nothing written), missing records,
//! and permissions (the actor comes from the caller).

use chrono::{Duration, Utc};
use rapport_crm::model::{Task, User};
use rapport_crm::testing::Fixture;
use rapport_crm::{Source, Store};
use rapport_tools::{Caller, ErrorCode, Registry};
use serde_json::json;

rapport_crm::both_backends!(
    next_best_actions_happy_path_and_feedback,
    nba_tools_reject_bad_arguments,
    nba_tools_report_missing_records,
    nba_tools_follow_permissions,
);

fn caller(u: &User) -> Caller {
    Caller::user(u, Source::Agent)
}

async fn overdue_task(store: &Store, fx: &Fixture, assignee: &User) -> Task {
    store
        .create(
            &fx.admin_ctx(),
            json!({"title": "Call back Dana", "assignee_id": assignee.id,
                   "due_at": (Utc::now() - Duration::days(3)).to_rfc3339()}),
        )
        .await
        .unwrap()
}

async fn next_best_actions_happy_path_and_feedback(store: &Store) {
    let fx = Fixture::new(store, "nba-tool").await.unwrap();
    let tools = Registry::new().with_services(rapport_pipelines::tool_services(None));
    let task = overdue_task(store, &fx, &fx.rep).await;
    let rep = caller(&fx.rep);
    let out = tools
        .call(store, &rep, "next_best_actions", json!({}))
        .await
        .unwrap();
    assert_eq!(out["rep_id"], json!(fx.rep.id));
    let actions = out["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 1, "{out}");
    let key = format!("overdue_task:task:{}", task.id);
    assert_eq!(actions[0]["action_key"], json!(key));
    assert_eq!(actions[0]["rule"], json!("overdue_task"));
    assert_eq!(
        actions[0]["reason"],
        json!(
            "Do overdue task \"Call back Dana\": due 3 days ago (normal priority), $1,000 at stake"
        )
    );
    // Showing the list recorded one exposure in the experiment.
    let ctx = fx.ctx(&fx.rep);
    assert_eq!(store.exposures(&ctx, "nba-ranking").await.unwrap().len(), 1);

    let fb = tools
        .call(
            store,
            &rep,
            "nba_feedback",
            json!({"action_key": key, "status": "done"}),
        )
        .await
        .unwrap();
    assert_eq!(fb["status"], json!("done"));
    let out = tools
        .call(store, &rep, "next_best_actions", json!({"limit": 5}))
        .await
        .unwrap();
    assert_eq!(out["actions"], json!([]));
    assert_eq!(out["hidden_by_feedback"], json!(1));

    // A manager may look at the rep's list.
    let out = tools
        .call(
            store,
            &caller(&fx.manager),
            "next_best_actions",
            json!({"rep_id": fx.rep.id}),
        )
        .await
        .unwrap();
    assert_eq!(out["rep_id"], json!(fx.rep.id));
    // The rep's feedback applies to the rep's list whoever looks at it.
    assert_eq!(out["hidden_by_feedback"], json!(1));
}

async fn nba_tools_reject_bad_arguments(store: &Store) {
    let fx = Fixture::new(store, "nba-bad").await.unwrap();
    let tools = Registry::new().with_services(rapport_pipelines::tool_services(None));
    let task = overdue_task(store, &fx, &fx.rep).await;
    let rep = caller(&fx.rep);
    let key = format!("overdue_task:task:{}", task.id);
    let cases = [
        ("next_best_actions", json!({"limit": 0}), "limit"),
        ("next_best_actions", json!({"limit": 51}), "limit"),
        ("next_best_actions", json!({"limit": "ten"}), "limit"),
        ("next_best_actions", json!({"rep": 1}), "rep"),
        (
            "nba_feedback",
            json!({"action_key": key, "status": "finished"}),
            "status",
        ),
        (
            "nba_feedback",
            json!({"action_key": key, "status": "snoozed"}),
            "until",
        ),
        (
            "nba_feedback",
            json!({"action_key": key, "status": "snoozed", "until": "2001-01-01T00:00:00Z"}),
            "until",
        ),
        (
            "nba_feedback",
            json!({"action_key": key, "status": "done", "reason": "meh"}),
            "reason",
        ),
        (
            "nba_feedback",
            json!({"action_key": "overdue_task", "status": "done"}),
            "action_key",
        ),
        ("nba_feedback", json!({"status": "done"}), "action_key"),
    ];
    for (tool, args, field) in cases {
        let err = tools
            .call(store, &rep, tool, args.clone())
            .await
            .unwrap_err();
        assert_eq!(
            err.code,
            ErrorCode::InvalidArgument,
            "{tool} {args}: {err:?}"
        );
        assert_eq!(err.field.as_deref(), Some(field), "{tool} {args}: {err:?}");
    }
    assert!(
        store
            .nba_feedback(&fx.ctx(&fx.rep), None)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn nba_tools_report_missing_records(store: &Store) {
    let fx = Fixture::new(store, "nba-missing").await.unwrap();
    let tools = Registry::new().with_services(rapport_pipelines::tool_services(None));
    let err = tools
        .call(
            store,
            &caller(&fx.manager),
            "next_best_actions",
            json!({"rep_id": 999_999}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound);
    assert_eq!(err.field.as_deref(), Some("rep_id"));
    let err = tools
        .call(
            store,
            &caller(&fx.rep),
            "nba_feedback",
            json!({"action_key": "overdue_task:task:999999", "status": "done"}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound);
    assert_eq!(err.field.as_deref(), Some("action_key"));
}

async fn nba_tools_follow_permissions(store: &Store) {
    let fx = Fixture::new(store, "nba-perm").await.unwrap();
    let tools = Registry::new().with_services(rapport_pipelines::tool_services(None));
    let task = overdue_task(store, &fx, &fx.manager).await;
    // A rep cannot read the manager's list…
    let err = tools
        .call(
            store,
            &caller(&fx.rep),
            "next_best_actions",
            json!({"rep_id": fx.manager.id}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::PermissionDenied);
    assert_eq!(err.field.as_deref(), Some("rep_id"));
    // …and a viewer may read (their own, empty) list but not write feedback.
    let out = tools
        .call(store, &caller(&fx.viewer), "next_best_actions", json!({}))
        .await
        .unwrap();
    assert_eq!(out["actions"], json!([]));
    let err = tools
        .call(
            store,
            &caller(&fx.viewer),
            "nba_feedback",
            json!({"action_key": format!("overdue_task:task:{}", task.id), "status": "done"}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::PermissionDenied);
    // Feedback is always the caller's own: the rep's "done" does not touch the manager's list.
    tools
        .call(
            store,
            &caller(&fx.rep),
            "nba_feedback",
            json!({"action_key": format!("overdue_task:task:{}", task.id), "status": "done"}),
        )
        .await
        .unwrap();
    let out = tools
        .call(store, &caller(&fx.manager), "next_best_actions", json!({}))
        .await
        .unwrap();
    assert_eq!(out["actions"].as_array().unwrap().len(), 1);
    assert_eq!(out["hidden_by_feedback"], json!(0));
}
