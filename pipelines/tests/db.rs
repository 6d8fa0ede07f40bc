//! The database-facing jobs on SQLite and PostgreSQL: imports (idempotent,
//! all-or-nothing with a rejection report), point-in-time features, registry
//! promotion and refusal, and scoring writes.

mod common;

use chrono::{DateTime, Duration, Utc};
use indicatif::{MultiProgress, ProgressBar};
use polars::prelude::ChunkAgg;
use rapport_crm::model::{Activity, Contact, Deal, Lead};
use rapport_crm::testing::Fixture;
use rapport_crm::{Ctx, ListQuery, RecordType, Store};
use rapport_pipelines::import::Error as ImportError;
use rapport_pipelines::import::csv::{CsvOptions, import_csv};
use rapport_pipelines::import::leadforge::import_bundle;
use rapport_pipelines::registry::jobs::{JobOptions, Task, staleness, train_task};
use rapport_pipelines::registry::{Provenance, fingerprint, register};
use rapport_pipelines::train::{self, Column, ColumnData, Table, TrainOptions};
use rapport_pipelines::{features, score};
use serde_json::json;

rapport_crm::both_backends!(
    leadforge_import_is_idempotent,
    csv_import_reports_rejections_and_writes_nothing_half,
    features_ignore_what_happens_after_the_snapshot,
    registry_promotes_only_a_gain_the_bootstrap_supports,
    training_and_scoring_write_versions_and_scores,
);

fn hidden() -> MultiProgress {
    MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::hidden())
}

async fn setup(store: &Store, name: &str) -> (Fixture, Ctx) {
    let fx = Fixture::new(store, name).await.unwrap();
    let ctx = fx.admin_ctx();
    (fx, ctx)
}

async fn leadforge_import_is_idempotent(store: &Store) {
    let (_fx, ctx) = setup(store, "lf").await;
    let dir = tempfile::tempdir().unwrap();
    common::bundle(dir.path(), 120, 1);
    let first = import_bundle(store, &ctx, dir.path(), &hidden())
        .await
        .unwrap();
    let created: Vec<usize> = first.tables.iter().map(|t| t.created).collect();
    assert!(created.iter().all(|&c| c > 0), "{first:?}");
    let counts = store.counts(&ctx).await.unwrap();

    let second = import_bundle(store, &ctx, dir.path(), &hidden())
        .await
        .unwrap();
    for t in &second.tables {
        assert_eq!(t.created, 0, "{t:?}");
    }
    assert_eq!(
        store.counts(&ctx).await.unwrap(),
        counts,
        "a re-import adds nothing"
    );
    // Unchanged data updates nothing either.
    let leads = second
        .tables
        .iter()
        .find(|t| t.record_type == "lead")
        .unwrap();
    assert_eq!((leads.updated, leads.unchanged), (0, 120), "{leads:?}");
    let converted = store
        .list::<Lead>(
            &ctx,
            &ListQuery::filtered(rapport_crm::Filter::eq("status", "converted")).limit(500),
        )
        .await
        .unwrap()
        .items
        .len();
    assert_eq!(converted, first.converted_leads);
    let deals = store
        .list::<Deal>(&ctx, &ListQuery::default())
        .await
        .unwrap()
        .items;
    assert_eq!(deals.len(), 2);
    // The bundle keeps each opportunity's final stage but not when it closed:
    // as of the bundle's own snapshot no deal may look closed, or its outcome
    // (closed_won is the conversion label) leaks into the features.
    let closed = deals
        .iter()
        .find(|d| d.status == rapport_crm::model::DealStatus::Lost)
        .expect("opp_2 is lost");
    let snapshot = first.snapshot.expect("the bundle has events");
    assert!(closed.closed_at.unwrap() > snapshot, "{closed:?}");
    let snap = features::load(store, &ctx).await.unwrap();
    // Polars blocks on its own runtime: not on the test's async thread.
    let frame = tokio::task::spawn_blocking(move || features::lead_frame(&snap, snapshot))
        .await
        .unwrap()
        .unwrap();
    for col in ["won_deals", "lost_deals"] {
        let total: f64 = frame
            .column(col)
            .unwrap()
            .as_materialized_series()
            .f64()
            .unwrap()
            .sum()
            .unwrap_or(0.0);
        assert_eq!(total, 0.0, "{col} as of the snapshot");
    }
}

async fn csv_import_reports_rejections_and_writes_nothing_half(store: &Store) {
    let (_fx, ctx) = setup(store, "csv").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("contacts.csv");
    std::fs::write(
        &path,
        "first,last_name,email,tier\n\
         Dana,Lee,dana@acme.com,gold\n\
         Olga,Ivanova,not-an-email,silver\n\
         ,Nobody,nobody@acme.com,\n\
         Dana,Lee,DANA@acme.com,gold\n\
         Sam,Carter,sam@acme.com,bronze\n",
    )
    .unwrap();
    let opts = CsvOptions {
        record_type: RecordType::Contact,
        map: vec![
            ("first".into(), "first_name".into()),
            ("tier".into(), "custom.tier".into()),
        ],
        key: None,
        skip_invalid: false,
    };
    let bar = ProgressBar::hidden();
    let err = import_csv(store, &ctx, &path, &opts, &bar)
        .await
        .unwrap_err();
    let ImportError::Rejected(report) = err else {
        panic!("expected a rejection report, got {err}")
    };
    let rejected: Vec<usize> = report.rejected.iter().map(|r| r.row).collect();
    assert_eq!(rejected, vec![2, 3], "{report:?}");
    assert!(
        report.rejected[0].reason.contains("email"),
        "{:?}",
        report.rejected[0]
    );
    assert!(
        report.rejected[1].reason.contains("first_name"),
        "{:?}",
        report.rejected[1]
    );
    assert_eq!(report.duplicates.len(), 1);
    assert_eq!(report.duplicates[0].row, 4);
    assert_eq!(report.duplicates[0].same_as_row, Some(1));
    let none = store
        .list::<Contact>(&ctx, &ListQuery::default())
        .await
        .unwrap()
        .items;
    assert!(none.is_empty(), "nothing is written when rows are rejected");

    let opts = CsvOptions {
        skip_invalid: true,
        ..opts
    };
    let report = import_csv(store, &ctx, &path, &opts, &bar).await.unwrap();
    assert_eq!((report.created, report.updated), (2, 0), "{report:?}");
    let dana = store
        .list::<Contact>(
            &ctx,
            &ListQuery::filtered(rapport_crm::Filter::eq("email", "dana@acme.com")),
        )
        .await
        .unwrap()
        .items;
    assert_eq!(dana[0].custom["tier"], json!("gold"));
    // Importing the same file again matches the existing contacts by email.
    let again = import_csv(store, &ctx, &path, &opts, &bar).await.unwrap();
    assert_eq!((again.created, again.updated), (0, 2), "{again:?}");

    let unknown = dir.path().join("bad.csv");
    std::fs::write(&unknown, "first_name,shoe_size\nA,42\n").unwrap();
    let opts = CsvOptions {
        map: vec![],
        ..opts
    };
    let err = import_csv(store, &ctx, &unknown, &opts, &bar)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("--map shoe_size="), "{err}");
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

async fn features_ignore_what_happens_after_the_snapshot(store: &Store) {
    let (fx, ctx) = setup(store, "pit").await;
    let t = at("2025-03-10T12:00:00Z");
    let mut tx = store.begin().await.unwrap();
    let lead_id = tx
        .bulk_insert(&ctx, RecordType::Lead, vec![json!({"name": "L", "owner_id": fx.rep.id, "created_at": (t - Duration::days(10)).to_rfc3339()}).as_object().unwrap().clone()])
        .await
        .unwrap()[0];
    let acts = [t - Duration::days(1), t + Duration::days(1)]
        .iter()
        .map(|when| {
            json!({"kind": "call", "direction": "inbound", "occurred_at": when.to_rfc3339(), "lead_id": lead_id, "sentiment": 0.5})
                .as_object()
                .unwrap()
                .clone()
        })
        .collect();
    tx.bulk_insert(&ctx, RecordType::Activity, acts)
        .await
        .unwrap();
    tx.bulk_insert(
        &ctx,
        RecordType::Deal,
        vec![json!({"name": "D", "pipeline_id": fx.pipeline.id, "stage_id": fx.stages[0].id, "value": 1000.0, "probability": 0.1, "lead_id": lead_id,
                    "created_at": (t + Duration::days(1)).to_rfc3339(), "stage_entered_at": (t + Duration::days(1)).to_rfc3339()})
            .as_object()
            .unwrap()
            .clone()],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        store
            .list::<Activity>(&ctx, &ListQuery::default())
            .await
            .unwrap()
            .items
            .len(),
        2
    );

    let snap = features::load(store, &ctx).await.unwrap();
    // Polars blocks on its own runtime: not on the test's async thread.
    let frames = tokio::task::spawn_blocking(move || {
        [t, t + Duration::days(2), t - Duration::days(11)]
            .map(|when| features::lead_frame(&snap, when).unwrap())
    })
    .await
    .unwrap();
    let value = |df: &polars::prelude::DataFrame, col: &str| {
        df.column(col)
            .unwrap()
            .as_materialized_series()
            .cast(&polars::prelude::DataType::Float64)
            .unwrap()
            .f64()
            .unwrap()
            .get(0)
    };
    let [before, after, earlier] = frames;
    assert_eq!(before.height(), 1);
    assert_eq!(
        value(&before, "activities"),
        Some(1.0),
        "the activity at T+1 is not seen at T"
    );
    assert_eq!(value(&before, "inbound_7d"), Some(1.0));
    assert_eq!(
        value(&before, "deals"),
        Some(0.0),
        "the deal created at T+1 is not seen at T"
    );
    assert_eq!(value(&before, "days_since_last_activity"), Some(1.0));
    assert_eq!(value(&before, "lead_age_days"), Some(10.0));
    assert_eq!(value(&after, "activities"), Some(2.0));
    assert_eq!(value(&after, "deals"), Some(1.0));
    // Before the lead existed there is no row for it.
    assert_eq!(earlier.height(), 0);
}

/// y depends on `signal`; `noise` carries nothing.
fn table(n: usize, seed: u64, with_signal: bool) -> Table {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let (mut sig, mut noise, mut y) = (vec![], vec![], vec![]);
    for _ in 0..n {
        let s: f64 = rng.random_range(-2.0..2.0);
        y.push(rng.random_bool(1.0 / (1.0 + (-2.0 * s).exp())));
        sig.push(Some(s));
        noise.push(Some(rng.random_range(0.0..1.0)));
    }
    let mut columns = vec![Column {
        name: "noise".into(),
        data: ColumnData::Numeric(noise),
    }];
    if with_signal {
        columns.push(Column {
            name: "signal".into(),
            data: ColumnData::Numeric(sig),
        });
    }
    Table {
        columns,
        target: Some(y),
    }
}

async fn registry_promotes_only_a_gain_the_bootstrap_supports(store: &Store) {
    let (_fx, ctx) = setup(store, "reg").await;
    let opts = TrainOptions::default();
    let test = table(600, 2, true);
    let prov = |t: &Table| Provenance {
        task: "lead-score".into(),
        window_start: None,
        window_end: Some(Utc::now()),
        fingerprint: fingerprint(t),
    };
    let weak_train = table(1500, 1, false);
    let weak = train::train(&weak_train, &table(600, 2, false), &opts).unwrap();
    let (v1, d1) = register(store, &ctx, &weak, &test, prov(&weak_train))
        .await
        .unwrap();
    assert!(d1.promoted, "{d1:?}");
    assert_eq!((v1.version, v1.status.as_str()), (1, "champion"));

    let strong_train = table(1500, 1, true);
    let strong = train::train(&strong_train, &test, &opts).unwrap();
    let (v2, d2) = register(store, &ctx, &strong, &test, prov(&strong_train))
        .await
        .unwrap();
    assert!(d2.promoted, "{d2:?}");
    assert!(d2.ci_low.unwrap() > 0.0);
    assert_eq!((v2.version, v2.status.as_str()), (2, "champion"));

    // The same model again gains nothing: kept as a challenger, with the reason.
    let (v3, d3) = register(store, &ctx, &strong, &test, prov(&strong_train))
        .await
        .unwrap();
    assert!(!d3.promoted, "{d3:?}");
    assert_eq!(v3.status, "challenger");
    assert!(
        v3.decision.as_deref().unwrap().contains("not supported"),
        "{v3:?}"
    );

    let all = store
        .model_versions(&ctx, Some("lead-score"))
        .await
        .unwrap();
    let statuses: Vec<&str> = all.iter().map(|v| v.status.as_str()).collect();
    assert_eq!(statuses, vec!["retired", "champion", "challenger"]);
    assert!(all[1].metrics["test"]["roc_auc"].as_f64().unwrap() > 0.8);
    let champion = store.champion(&ctx, "lead-score").await.unwrap().unwrap();
    assert_eq!(champion.version, 2);
    assert!(!champion.artifact.is_empty());
}

async fn training_and_scoring_write_versions_and_scores(store: &Store) {
    let (_fx, ctx) = setup(store, "score").await;
    let before = score::score_all(store, &ctx).await.unwrap();
    assert!(
        before
            .tasks
            .iter()
            .all(|t| t.scored == 0 && t.note.as_deref().unwrap_or("").contains("rapport train"))
    );

    let dir = tempfile::tempdir().unwrap();
    common::bundle(dir.path(), 300, 7);
    import_bundle(store, &ctx, dir.path(), &hidden())
        .await
        .unwrap();
    let opts = JobOptions::default();
    let outcome = train_task(store, &ctx, Task::LeadScore, &opts)
        .await
        .unwrap();
    assert_eq!(
        outcome.report.test_rows, 60,
        "the bundle's own test split is used"
    );
    assert!(outcome.decision.promoted);
    let (start, end) = (
        outcome
            .version
            .window_start
            .expect("the window's start is recorded"),
        outcome
            .version
            .window_end
            .expect("the window's end is recorded"),
    );
    assert!(start < end, "window {start} … {end}");
    assert_eq!(end, outcome.as_of);
    assert!(
        outcome.report.chosen().test.roc_auc > 0.6,
        "{:?}",
        outcome.report.chosen().test
    );
    let st = staleness(
        store,
        &ctx,
        Task::LeadScore,
        &opts,
        Duration::days(30),
        0.05,
    )
    .await
    .unwrap();
    assert!(!st.stale, "{st:?}");

    let report = score::score_all(store, &ctx).await.unwrap();
    let leads = &report.tasks[0];
    assert_eq!(leads.scored, 300, "{report:?}");
    assert_eq!(leads.model_version, Some(1));
    let lead = store
        .list::<Lead>(&ctx, &ListQuery::default().limit(1))
        .await
        .unwrap()
        .items
        .remove(0);
    let s = store
        .score_of(&ctx, "lead-score", RecordType::Lead, lead.id)
        .await
        .unwrap()
        .unwrap();
    assert!((0.0..=1.0).contains(&s.score));
    let reasons = s.reasons.as_array().unwrap();
    assert!(!reasons.is_empty() && reasons.len() <= score::TOP_REASONS);
    // Scoring again replaces the scores instead of adding rows.
    score::score_all(store, &ctx).await.unwrap();
    let again = store
        .score_of(&ctx, "lead-score", RecordType::Lead, lead.id)
        .await
        .unwrap()
        .unwrap();
    assert!(again.scored_at >= s.scored_at);
}
