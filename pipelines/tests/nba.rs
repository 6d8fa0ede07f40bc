//! Next-best actions against a real database (SQLite and PostgreSQL): the
//! library call ranks a rep's actions from stored records, feedback is
//! validated, recorded and hides actions, exposures are recorded once per
//! action, and the outcome job links a completed task to both the feedback
//! and the experiment.

use chrono::{Duration, Utc};
use rapport_crm::model::{Deal, Task};
use rapport_crm::testing::Fixture;
use rapport_crm::{FeedbackStatus, Store};
use rapport_pipelines::nba::{self, FeedbackInput, NbaConfig, Strategy, outcomes};
use serde_json::json;

rapport_crm::both_backends!(
    for_rep_ranks_stored_records_and_feedback_hides_them,
    feedback_is_validated_and_nothing_half_written,
    outcomes_link_to_feedback_and_exposures,
);

struct Setup {
    fx: Fixture,
    deal: Deal,
    task: Task,
}

async fn setup(store: &Store, name: &str) -> Setup {
    let fx = Fixture::new(store, name).await.unwrap();
    let ctx = fx.admin_ctx();
    let proposal = fx.stages.iter().find(|s| s.position == 2).unwrap();
    let deal: Deal = store
        .create(
            &ctx,
            json!({"name": "Acme Pro", "pipeline_id": fx.pipeline.id, "stage_id": proposal.id,
                   "value": 48_000.0, "owner_id": fx.rep.id,
                   "expected_close_date": (Utc::now() - Duration::days(6)).date_naive().to_string()}),
        )
        .await
        .unwrap();
    let task: Task = store
        .create(
            &ctx,
            json!({"title": "Send the proposal", "assignee_id": fx.rep.id,
                   "due_at": (Utc::now() - Duration::days(2)).to_rfc3339()}),
        )
        .await
        .unwrap();
    // Someone else's task never shows up in the rep's list.
    let _: Task = store
        .create(
            &ctx,
            json!({"title": "Not yours", "assignee_id": fx.manager.id,
                   "due_at": (Utc::now() - Duration::days(2)).to_rfc3339()}),
        )
        .await
        .unwrap();
    Setup { fx, deal, task }
}

async fn for_rep_ranks_stored_records_and_feedback_hides_them(store: &Store) {
    let s = setup(store, "nba-rank").await;
    let ctx = s.fx.ctx(&s.fx.rep);
    let cfg = NbaConfig::default();
    let list = nba::for_rep(store, &ctx, s.fx.rep.id, &cfg, 10, Utc::now())
        .await
        .unwrap();
    let keys: Vec<&str> = list.actions.iter().map(|a| a.key.as_str()).collect();
    let deal_key = format!("close_date_passed:deal:{}", s.deal.id);
    let task_key = format!("overdue_task:task:{}", s.task.id);
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.contains(&deal_key.as_str()) && keys.contains(&task_key.as_str()));
    assert_eq!(list.experiment.as_deref(), Some(nba::EXPERIMENT));
    assert!(!list.models.lead_score && !list.models.churn);
    let deal_action = list.actions.iter().find(|a| a.key == deal_key).unwrap();
    assert!(
        deal_action.candidate.reason.contains("$48,000 at ")
            && deal_action.candidate.reason.contains("6 days ago"),
        "{}",
        deal_action.candidate.reason
    );
    // Under expected value the $48k deal outranks the $1k task; under urgency alone it does not matter which.
    if list.strategy == Strategy::ExpectedValue {
        assert_eq!(list.actions[0].key, deal_key);
    }

    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        nba::record_exposures(&mut tx, &ctx, &cfg, &list)
            .await
            .unwrap(),
        2
    );
    tx.commit().await.unwrap();
    // Shown again: no new exposures.
    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        nba::record_exposures(&mut tx, &ctx, &cfg, &list)
            .await
            .unwrap(),
        0
    );
    tx.commit().await.unwrap();
    let exposures = store.exposures(&ctx, nba::EXPERIMENT).await.unwrap();
    assert_eq!(exposures.len(), 2);
    assert!(
        exposures
            .iter()
            .all(|e| e.variant == list.strategy.as_str())
    );

    let mut tx = store.begin().await.unwrap();
    let fb = nba::record_feedback(
        &mut tx,
        &ctx,
        s.fx.rep.id,
        &FeedbackInput {
            action_key: task_key.clone(),
            status: FeedbackStatus::Dismissed,
            reason: Some("already sent by email".into()),
            until: None,
        },
        Utc::now(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(fb.reason.as_deref(), Some("already sent by email"));
    let stored = store.nba_feedback(&ctx, Some(s.fx.rep.id)).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].status, FeedbackStatus::Dismissed);
    assert_eq!(stored[0].record_id, s.task.id);

    let list = nba::for_rep(store, &ctx, s.fx.rep.id, &cfg, 10, Utc::now())
        .await
        .unwrap();
    assert_eq!(list.hidden_by_feedback, 1);
    assert_eq!(list.actions.len(), 1);
    assert_eq!(list.actions[0].key, deal_key);

    // Snoozed until tomorrow: hidden today, back the day after.
    let mut tx = store.begin().await.unwrap();
    nba::record_feedback(
        &mut tx,
        &ctx,
        s.fx.rep.id,
        &FeedbackInput {
            action_key: deal_key.clone(),
            status: FeedbackStatus::Snoozed,
            reason: None,
            until: Some(Utc::now() + Duration::days(1)),
        },
        Utc::now(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let list = nba::for_rep(store, &ctx, s.fx.rep.id, &cfg, 10, Utc::now())
        .await
        .unwrap();
    assert!(list.actions.is_empty());
    let later = nba::for_rep(
        store,
        &ctx,
        s.fx.rep.id,
        &cfg,
        10,
        Utc::now() + Duration::days(2),
    )
    .await
    .unwrap();
    assert_eq!(later.actions.len(), 1);
    assert_eq!(later.actions[0].key, deal_key);

    // Another rep sees none of it.
    let other = nba::for_rep(store, &ctx, s.fx.viewer.id, &cfg, 10, Utc::now())
        .await
        .unwrap();
    assert!(other.actions.is_empty());
}

async fn feedback_is_validated_and_nothing_half_written(store: &Store) {
    let s = setup(store, "nba-feedback").await;
    let ctx = s.fx.ctx(&s.fx.rep);
    let now = Utc::now();
    let cases = [
        (
            format!("overdue_task:task:{}", s.task.id),
            FeedbackStatus::Snoozed,
            None,
            None,
            "until",
        ),
        (
            format!("overdue_task:task:{}", s.task.id),
            FeedbackStatus::Snoozed,
            None,
            Some(now - Duration::hours(1)),
            "until",
        ),
        (
            format!("overdue_task:task:{}", s.task.id),
            FeedbackStatus::Done,
            Some("x"),
            None,
            "reason",
        ),
        (
            "overdue_task:task".to_owned(),
            FeedbackStatus::Done,
            None,
            None,
            "action_key",
        ),
        (
            "no_such_rule:task:1".to_owned(),
            FeedbackStatus::Done,
            None,
            None,
            "action_key",
        ),
    ];
    for (key, status, reason, until, field) in cases {
        let mut tx = store.begin().await.unwrap();
        let err = nba::record_feedback(
            &mut tx,
            &ctx,
            s.fx.rep.id,
            &FeedbackInput {
                action_key: key.clone(),
                status,
                reason: reason.map(str::to_owned),
                until,
            },
            now,
        )
        .await
        .unwrap_err();
        tx.rollback().await.unwrap();
        match err {
            nba::Error::Invalid { field: f, .. } => assert_eq!(f, field, "{key}"),
            other => panic!("{key}: expected invalid {field}, got {other:?}"),
        }
    }
    let mut tx = store.begin().await.unwrap();
    let err = nba::record_feedback(
        &mut tx,
        &ctx,
        s.fx.rep.id,
        &FeedbackInput {
            action_key: "overdue_task:task:999999".into(),
            status: FeedbackStatus::Done,
            reason: None,
            until: None,
        },
        now,
    )
    .await
    .unwrap_err();
    tx.rollback().await.unwrap();
    assert!(
        matches!(err, nba::Error::Crm(rapport_crm::Error::NotFound { .. })),
        "{err:?}"
    );
    assert!(store.nba_feedback(&ctx, None).await.unwrap().is_empty());
}

async fn outcomes_link_to_feedback_and_exposures(store: &Store) {
    let s = setup(store, "nba-outcomes").await;
    let ctx = s.fx.ctx(&s.fx.rep);
    let cfg = NbaConfig::default();
    let t0 = Utc::now() - Duration::minutes(10);
    let list = nba::for_rep(store, &ctx, s.fx.rep.id, &cfg, 10, t0)
        .await
        .unwrap();
    let mut tx = store.begin().await.unwrap();
    nba::record_exposures(&mut tx, &ctx, &cfg, &list)
        .await
        .unwrap();
    let task_key = format!("overdue_task:task:{}", s.task.id);
    nba::record_feedback(
        &mut tx,
        &ctx,
        s.fx.rep.id,
        &FeedbackInput {
            action_key: task_key.clone(),
            status: FeedbackStatus::Done,
            reason: None,
            until: None,
        },
        Utc::now(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    // Nothing happened yet: no outcome, and the window is still open.
    let r = outcomes::link(store, &ctx, &cfg, Utc::now()).await.unwrap();
    assert_eq!(
        (r.feedback_checked, r.feedback_linked, r.feedback_no_change),
        (1, 0, 0)
    );
    assert_eq!(r.events_recorded, 0);

    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let _: Task = store
        .update(&s.fx.admin_ctx(), s.task.id, json!({"status": "done"}))
        .await
        .unwrap();
    let r = outcomes::link(store, &ctx, &cfg, Utc::now() + Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(r.feedback_linked, 1);
    assert_eq!(r.events_recorded, 1);
    let fb = store.nba_feedback(&ctx, None).await.unwrap();
    assert_eq!(fb[0].outcome.as_deref(), Some("task_completed"));
    // Linking again adds nothing.
    let r = outcomes::link(store, &ctx, &cfg, Utc::now() + Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!((r.feedback_checked, r.events_recorded), (0, 0));

    let counts = outcomes::experiment_counts(store, &ctx, nba::EXPERIMENT)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(counts.len(), 2);
    let mine = counts
        .iter()
        .find(|c| c.variant == list.strategy.as_str())
        .unwrap();
    assert_eq!((mine.units, mine.trials, mine.successes), (1, 2, 1));
    let theirs = counts
        .iter()
        .find(|c| c.variant != list.strategy.as_str())
        .unwrap();
    assert_eq!((theirs.units, theirs.trials, theirs.successes), (0, 0, 0));
    assert!(
        outcomes::experiment_counts(store, &ctx, "nope")
            .await
            .unwrap()
            .is_none()
    );
}
