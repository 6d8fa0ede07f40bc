//! `lead_score` and `churn_risk` read the scores table: before any model is
//! trained they answer a structured `not_available` error naming the command,
//! after training but before scoring they say the record is not scored yet,
//! and with a score they return it with its model version and reasons.

use chrono::Utc;
use rapport_crm::model::{Company, Lead};
use rapport_crm::testing::Fixture;
use rapport_crm::{NewModelVersion, RecordType, Score, Source, Store};
use rapport_tools::{Caller, ErrorCode, Registry};
use serde_json::json;

rapport_crm::both_backends!(score_tools_refuse_to_invent_and_read_stored_scores);

async fn score_tools_refuse_to_invent_and_read_stored_scores(store: &Store) {
    let fx = Fixture::new(store, "scores").await.unwrap();
    let ctx = fx.admin_ctx();
    let tools = Registry::new();
    let caller = Caller::user(&fx.viewer, Source::Agent);
    let lead: Lead = store.create(&ctx, json!({"name": "Pat"})).await.unwrap();
    let company: Company = store.create(&ctx, json!({"name": "Acme"})).await.unwrap();

    let err = tools
        .call(store, &caller, "lead_score", json!({"lead_id": lead.id}))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::NotAvailable);
    assert_eq!(
        err.message,
        "no lead-score model trained yet: run `rapport train lead-score`"
    );
    let err = tools
        .call(
            store,
            &caller,
            "churn_risk",
            json!({"company_id": company.id}),
        )
        .await
        .unwrap_err();
    assert!(err.message.contains("rapport train churn"), "{err:?}");

    let missing = tools
        .call(store, &caller, "lead_score", json!({"lead_id": 999_999}))
        .await
        .unwrap_err();
    assert_eq!(missing.code, ErrorCode::NotFound);
    assert_eq!(missing.field.as_deref(), Some("lead_id"));

    let mut tx = store.begin().await.unwrap();
    tx.add_model_version(
        &ctx,
        NewModelVersion {
            task: "lead-score".into(),
            algorithm: "logistic".into(),
            features: json!(["activities"]),
            window_start: None,
            window_end: None,
            data_fingerprint: "f".into(),
            metrics: json!({}),
            artifact: "{}".into(),
            status: "champion".into(),
            decision: Some("first model for this task".into()),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let err = tools
        .call(store, &caller, "lead_score", json!({"lead_id": lead.id}))
        .await
        .unwrap_err();
    assert!(err.message.contains("no lead-score score yet"), "{err:?}");
    assert!(err.hint.as_deref().unwrap_or("").contains("rapport score"));

    let mut tx = store.begin().await.unwrap();
    tx.put_scores(
        &ctx,
        &[Score {
            record_type: RecordType::Lead.name().into(),
            record_id: lead.id,
            task: "lead-score".into(),
            score: 0.73,
            reasons: json!([{"feature": "inbound_7d", "contribution": 0.8}]),
            model_version: 1,
            scored_at: Utc::now(),
        }],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let out = tools
        .call(store, &caller, "lead_score", json!({"lead_id": lead.id}))
        .await
        .unwrap();
    assert_eq!(out["score"], json!(0.73));
    assert_eq!(out["model_version"], json!(1));
    assert_eq!(out["top_reasons"][0]["feature"], json!("inbound_7d"));
}
