//! The repository suite. Every case runs twice: on a fresh SQLite file and on a
//! fresh PostgreSQL database (`RAPPORT_TEST_POSTGRES_URL`, default the local
//! server), through the same code path.

use rapport_crm::filter::Direction;
use rapport_crm::model::{
    Activity, Company, Contact, Deal, DealStatus, Lead, Pipeline, Stage, Task, TaskStatus, User,
};
use rapport_crm::testing::Fixture;
use rapport_crm::{
    Ctx, Error, Filter, ListQuery, LookupQuery, Op, Outcome, RecordMap, RecordType, RuleKind,
    Source, StageTarget, Store,
};
use serde_json::{Value, json};

rapport_crm::both_backends!(
    crud_of_every_record_type,
    each_filter_operator,
    custom_attributes_filter_and_merge,
    pagination_is_stable,
    unique_email_violation_is_clear,
    missing_reference_is_clear,
    failed_multi_step_write_leaves_nothing,
    audit_entries_hold_before_and_after,
    workspace_isolation,
    bad_input_names_the_field_and_writes_nothing,
    deal_stage_moves_keep_history,
    deal_lifecycle_rules_hold_on_every_write_path,
    tags_on_records,
    lookup_resolves_loose_references,
    delete_refuses_while_referenced,
    status_timestamps_follow_status,
    demo_seed_writes_a_consistent_crm,
);

async fn fixture(store: &Store, name: &str) -> (Fixture, Ctx) {
    let fx = Fixture::new(store, name).await.expect("fixture");
    let ctx = fx.admin_ctx();
    (fx, ctx)
}

async fn count(store: &Store, ctx: &Ctx, rt: RecordType) -> usize {
    let mut n = 0;
    let mut q = ListQuery::default().limit(500);
    loop {
        let page = store.list_dyn(ctx, rt, &q).await.unwrap();
        n += page.items.len();
        match page.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => return n,
        }
    }
}

fn deal_of(m: RecordMap) -> Deal {
    serde_json::from_value(Value::Object(m)).expect("a deal")
}

/// The rule a refusal names: its kind and field.
fn rule_of(err: &Error) -> (RuleKind, &str) {
    match err {
        Error::Rule(r) => (r.kind, r.field.as_deref().unwrap_or_default()),
        other => panic!("not a rule refusal: {other}"),
    }
}

fn field_of(err: &Error) -> &str {
    err.field()
        .unwrap_or_else(|| panic!("error without a field: {err}"))
}

async fn crud_of_every_record_type(store: &Store) {
    let (fx, ctx) = fixture(store, "crud").await;

    let acme: Company = store
        .create(&ctx, json!({"name": "Acme Logistics", "domain": "acme.com", "employees": 120, "owner_id": fx.rep.id}))
        .await
        .unwrap();
    assert_eq!(store.get::<Company>(&ctx, acme.id).await.unwrap(), acme);
    let acme: Company = store
        .update(&ctx, acme.id, json!({"industry": "Logistics"}))
        .await
        .unwrap();
    assert_eq!(acme.industry.as_deref(), Some("Logistics"));
    assert_eq!(
        acme.domain.as_deref(),
        Some("acme.com"),
        "partial update keeps other fields"
    );

    let dana: Contact = store
        .create(&ctx, json!({"first_name": "Dana", "last_name": "Lee", "email": "Dana@Acme.com", "company_id": acme.id}))
        .await
        .unwrap();
    assert_eq!(dana.email.as_deref(), Some("dana@acme.com"));
    let dana: Contact = store
        .update(&ctx, dana.id, json!({"title": "VP Finance", "phone": null}))
        .await
        .unwrap();
    assert_eq!(dana.title.as_deref(), Some("VP Finance"));

    let lead: Lead = store
        .create(
            &ctx,
            json!({"name": "Sam Carter", "source": "web", "owner_id": fx.rep.id}),
        )
        .await
        .unwrap();
    assert_eq!(lead.status, rapport_crm::model::LeadStatus::New);

    let deal: Deal = store
        .create(&ctx, json!({"name": "Acme – Pro plan", "value": 29000, "company_id": acme.id, "contact_ids": [dana.id], "expected_close_date": "2026-12-15"}))
        .await
        .unwrap();
    assert_eq!(deal.pipeline_id, fx.pipeline.id);
    assert_eq!(
        deal.stage_id,
        fx.stage("Qualification").id,
        "new deals start in the first stage"
    );
    assert_eq!(deal.probability, 0.1);
    assert_eq!(deal.contact_ids, vec![dana.id]);
    assert_eq!(deal.currency, "USD");

    let call: Activity = store
        .create(&ctx, json!({"kind": "call", "direction": "outbound", "body": "Likes the Pro plan, worried about price.", "contact_id": dana.id, "company_id": acme.id, "deal_id": deal.id, "duration_seconds": 900}))
        .await
        .unwrap();
    assert!(call.sentiment.is_none(), "sentiment is empty until scored");
    let call: Activity = store
        .update(&ctx, call.id, json!({"sentiment": -0.2}))
        .await
        .unwrap();
    assert_eq!(call.sentiment, Some(-0.2));

    let task: Task = store
        .create(&ctx, json!({"title": "Follow up with Dana", "due_at": "2026-11-24T09:00:00Z", "assignee_id": fx.rep.id, "contact_id": dana.id}))
        .await
        .unwrap();
    assert_eq!(task.status, TaskStatus::Open);

    let user: User = store
        .create(
            &ctx,
            json!({"name": "New Rep", "email": "new@x.test", "role": "rep"}),
        )
        .await
        .unwrap();
    assert_eq!(user.timezone, "UTC");
    let pipeline: Pipeline = store
        .create(&ctx, json!({"name": "Renewals"}))
        .await
        .unwrap();
    let stage: Stage = store
        .create(&ctx, json!({"pipeline_id": pipeline.id, "name": "Up for renewal", "position": 0, "probability": 0.7}))
        .await
        .unwrap();

    // Deletes, children first; each returns the record as it was.
    assert_eq!(
        store.delete::<Task>(&ctx, task.id).await.unwrap().id,
        task.id
    );
    assert_eq!(
        store.delete::<Activity>(&ctx, call.id).await.unwrap().id,
        call.id
    );
    assert_eq!(
        store.delete::<Deal>(&ctx, deal.id).await.unwrap().id,
        deal.id
    );
    assert_eq!(
        store.delete::<Contact>(&ctx, dana.id).await.unwrap().id,
        dana.id
    );
    assert_eq!(
        store.delete::<Company>(&ctx, acme.id).await.unwrap().id,
        acme.id
    );
    assert_eq!(
        store.delete::<Lead>(&ctx, lead.id).await.unwrap().id,
        lead.id
    );
    assert_eq!(
        store.delete::<Stage>(&ctx, stage.id).await.unwrap().id,
        stage.id
    );
    assert_eq!(
        store
            .delete::<Pipeline>(&ctx, pipeline.id)
            .await
            .unwrap()
            .id,
        pipeline.id
    );
    assert_eq!(
        store.delete::<User>(&ctx, user.id).await.unwrap().id,
        user.id
    );
    for (rt, id) in [
        (RecordType::Company, acme.id),
        (RecordType::Deal, deal.id),
        (RecordType::Task, task.id),
    ] {
        assert!(matches!(
            store.get_dyn(&ctx, rt, id).await,
            Err(Error::NotFound { .. })
        ));
    }
}

async fn seed_deals(store: &Store, ctx: &Ctx) -> Vec<Deal> {
    let mut out = Vec::new();
    for (name, value, close, custom) in [
        ("Alpha", 1000.0, Some("2026-12-01"), json!({"plan": "pro"})),
        ("Beta", 5000.0, None, json!({"plan": "starter"})),
        ("Gamma deal", 5000.0, Some("2027-01-15"), json!({})),
        ("Delta", 20000.0, Some("2026-11-30"), json!({"plan": "pro"})),
    ] {
        out.push(
            store
                .create(ctx, json!({"name": name, "value": value, "expected_close_date": close, "custom": custom}))
                .await
                .unwrap(),
        );
    }
    out
}

async fn names(store: &Store, ctx: &Ctx, filter: Filter) -> Vec<String> {
    let page = store
        .list::<Deal>(
            ctx,
            &ListQuery::filtered(filter).sorted("name", Direction::Asc),
        )
        .await
        .unwrap();
    page.items.into_iter().map(|d| d.name).collect()
}

async fn each_filter_operator(store: &Store) {
    let (_fx, ctx) = fixture(store, "filters").await;
    seed_deals(store, &ctx).await;
    let n = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        names(store, &ctx, Filter::eq("value", 5000)).await,
        n(&["Beta", "Gamma deal"])
    );
    assert_eq!(
        names(store, &ctx, Filter::cond("value", Op::Ne, 5000)).await,
        n(&["Alpha", "Delta"])
    );
    assert_eq!(
        names(store, &ctx, Filter::cond("value", Op::Lt, 5000)).await,
        n(&["Alpha"])
    );
    assert_eq!(
        names(store, &ctx, Filter::cond("value", Op::Lte, 5000)).await,
        n(&["Alpha", "Beta", "Gamma deal"])
    );
    assert_eq!(
        names(store, &ctx, Filter::cond("value", Op::Gt, 5000)).await,
        n(&["Delta"])
    );
    assert_eq!(
        names(store, &ctx, Filter::cond("value", Op::Gte, 5000)).await,
        n(&["Beta", "Delta", "Gamma deal"])
    );
    assert_eq!(
        names(
            store,
            &ctx,
            Filter::cond("name", Op::In, json!(["Alpha", "Delta", "Nope"]))
        )
        .await,
        n(&["Alpha", "Delta"])
    );
    assert_eq!(
        names(store, &ctx, Filter::cond("name", Op::Contains, "AMMA")).await,
        n(&["Gamma deal"])
    );
    assert_eq!(
        names(store, &ctx, Filter::cond("name", Op::Contains, "%")).await,
        Vec::<String>::new(),
        "LIKE wildcards are literal"
    );
    assert_eq!(
        names(
            store,
            &ctx,
            Filter::cond("expected_close_date", Op::IsNull, true)
        )
        .await,
        n(&["Beta"])
    );
    assert_eq!(
        names(
            store,
            &ctx,
            Filter::cond("expected_close_date", Op::IsNull, false)
        )
        .await
        .len(),
        3
    );
    assert_eq!(
        names(
            store,
            &ctx,
            Filter::cond("expected_close_date", Op::Lt, "2026-12-31")
        )
        .await,
        n(&["Alpha", "Delta"])
    );
    // Not-equal includes empty values.
    assert_eq!(
        names(
            store,
            &ctx,
            Filter::cond("expected_close_date", Op::Ne, "2026-12-01")
        )
        .await,
        n(&["Beta", "Delta", "Gamma deal"])
    );
    let group = Filter::and(vec![
        Filter::cond("value", Op::Gte, 5000),
        Filter::or(vec![
            Filter::cond("name", Op::Contains, "gamma"),
            Filter::cond("value", Op::Gt, 10000),
        ]),
    ]);
    assert_eq!(names(store, &ctx, group).await, n(&["Delta", "Gamma deal"]));
    // Timestamps compare as instants on both backends.
    let all = store
        .list::<Deal>(&ctx, &ListQuery::default())
        .await
        .unwrap()
        .items;
    let t = all[2].created_at.to_rfc3339();
    assert_eq!(
        names(store, &ctx, Filter::cond("created_at", Op::Gte, t)).await,
        n(&["Delta", "Gamma deal"])
    );
}

async fn custom_attributes_filter_and_merge(store: &Store) {
    let (_fx, ctx) = fixture(store, "custom").await;
    let deals = seed_deals(store, &ctx).await;
    let n = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        names(store, &ctx, Filter::eq("custom.plan", "pro")).await,
        n(&["Alpha", "Delta"])
    );
    assert_eq!(
        names(store, &ctx, Filter::cond("custom.plan", Op::IsNull, true)).await,
        n(&["Gamma deal"])
    );
    let d: Deal = store
        .update(
            &ctx,
            deals[0].id,
            json!({"custom": {"seats": 40, "plan": null}}),
        )
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(&d.custom).unwrap(),
        json!({"seats": 40}),
        "custom merges; null removes a key"
    );
}

async fn pagination_is_stable(store: &Store) {
    let (_fx, ctx) = fixture(store, "pages").await;
    // Duplicate and empty sort values are the hard cases.
    for i in 0..23 {
        let last = match i % 4 {
            0 => Value::Null,
            1 => json!("Alpha"),
            _ => json!(format!("L{:02}", i % 7)),
        };
        store
            .create::<Contact>(
                &ctx,
                json!({"first_name": format!("P{i}"), "last_name": last}),
            )
            .await
            .unwrap();
    }
    for dir in [Direction::Asc, Direction::Desc] {
        let full = store
            .list::<Contact>(
                &ctx,
                &ListQuery::default().sorted("last_name", dir).limit(100),
            )
            .await
            .unwrap();
        assert!(full.next_cursor.is_none());
        let mut seen = Vec::new();
        let mut q = ListQuery::default().sorted("last_name", dir).limit(5);
        let mut pages = 0;
        let mut late = Vec::new();
        loop {
            let page = store.list::<Contact>(&ctx, &q).await.unwrap();
            pages += 1;
            seen.extend(page.items.iter().map(|c| c.id));
            if pages == 2 {
                // A write between pages neither repeats nor skips records already paged.
                let c: Contact = store
                    .create(&ctx, json!({"first_name": "Late", "last_name": "Zzz"}))
                    .await
                    .unwrap();
                late.push(c.id);
            }
            match page.next_cursor {
                Some(c) => q.cursor = Some(c),
                None => break,
            }
        }
        let expected: Vec<i64> = full.items.iter().map(|c| c.id).collect();
        let mut dedup = seen.clone();
        // The late record shows up only if it sorts after the pages already read.
        seen.retain(|id| !late.contains(id));
        assert_eq!(
            seen, expected,
            "{dir:?}: pages concatenate to the full listing"
        );
        dedup.sort();
        let n = dedup.len();
        dedup.dedup();
        assert_eq!(dedup.len(), n, "no record twice");
        let nulls_last = full
            .items
            .iter()
            .skip_while(|c| c.last_name.is_some())
            .all(|c| c.last_name.is_none());
        assert!(nulls_last, "empty values sort last");
    }
    // A cursor is tied to its sort.
    let page = store
        .list::<Contact>(
            &ctx,
            &ListQuery::default()
                .sorted("last_name", Direction::Asc)
                .limit(3),
        )
        .await
        .unwrap();
    let mut q = ListQuery::default().sorted("first_name", Direction::Asc);
    q.cursor = page.next_cursor;
    assert_eq!(
        field_of(&store.list::<Contact>(&ctx, &q).await.unwrap_err()),
        "cursor"
    );
    q.cursor = Some("garbage!".into());
    assert_eq!(
        field_of(&store.list::<Contact>(&ctx, &q).await.unwrap_err()),
        "cursor"
    );
}

async fn unique_email_violation_is_clear(store: &Store) {
    let (_fx, ctx) = fixture(store, "unique").await;
    let first: Contact = store
        .create(
            &ctx,
            json!({"first_name": "Dana", "email": "dana@acme.com"}),
        )
        .await
        .unwrap();
    let err = store
        .create::<Contact>(
            &ctx,
            json!({"first_name": "Other", "email": "DANA@acme.com"}),
        )
        .await
        .unwrap_err();
    match &err {
        Error::Duplicate {
            field, existing_id, ..
        } => {
            assert_eq!(field, "email");
            assert_eq!(*existing_id, first.id);
        }
        other => panic!("expected a duplicate error, got {other}"),
    }
    assert!(err.to_string().contains("dana@acme.com"), "{err}");
    let second: Contact = store
        .create(&ctx, json!({"first_name": "Sam", "email": "sam@acme.com"}))
        .await
        .unwrap();
    let err = store
        .update::<Contact>(&ctx, second.id, json!({"email": "dana@acme.com"}))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Duplicate { .. }), "{err}");
    // Updating a record to its own email is no conflict.
    store
        .update::<Contact>(
            &ctx,
            first.id,
            json!({"email": "dana@acme.com", "title": "CFO"}),
        )
        .await
        .unwrap();
    assert_eq!(count(store, &ctx, RecordType::Contact).await, 2);
}

async fn missing_reference_is_clear(store: &Store) {
    let (_fx, ctx) = fixture(store, "fk").await;
    let err = store
        .create::<Contact>(&ctx, json!({"first_name": "Dana", "company_id": 999_999}))
        .await
        .unwrap_err();
    match &err {
        Error::MissingReference { field, target, id } => {
            assert_eq!(
                (field.as_str(), *target, *id),
                ("company_id", RecordType::Company, 999_999)
            );
        }
        other => panic!("expected a missing reference, got {other}"),
    }
    assert!(
        err.to_string().contains("no company with id 999999"),
        "{err}"
    );
    assert_eq!(count(store, &ctx, RecordType::Contact).await, 0);
}

async fn failed_multi_step_write_leaves_nothing(store: &Store) {
    let (fx, ctx) = fixture(store, "atomic").await;
    let audit_before = store
        .actions_of(&ctx, fx.admin.id, 1000)
        .await
        .unwrap()
        .len();
    // A deal whose second contact is missing: no deal, no link, no history, no audit.
    let dana: Contact = store
        .create(&ctx, json!({"first_name": "Dana"}))
        .await
        .unwrap();
    let err = store
        .create::<Deal>(
            &ctx,
            json!({"name": "Half", "value": 10, "contact_ids": [dana.id, 424242]}),
        )
        .await
        .unwrap_err();
    assert_eq!(field_of(&err), "contact_ids");
    assert_eq!(count(store, &ctx, RecordType::Deal).await, 0);
    // An explicit transaction: the first write is undone when the second fails.
    let mut tx = store.begin().await.unwrap();
    tx.create::<Company>(&ctx, json!({"name": "Written first"}))
        .await
        .unwrap();
    let err = tx
        .create::<Contact>(&ctx, json!({"first_name": "X", "owner_id": 77777}))
        .await
        .unwrap_err();
    assert_eq!(field_of(&err), "owner_id");
    drop(tx);
    assert_eq!(count(store, &ctx, RecordType::Company).await, 0);
    let audit_after = store
        .actions_of(&ctx, fx.admin.id, 1000)
        .await
        .unwrap()
        .len();
    assert_eq!(
        audit_after,
        audit_before + 1,
        "only the contact that was written is audited"
    );
}

async fn audit_entries_hold_before_and_after(store: &Store) {
    let (fx, _) = fixture(store, "audit").await;
    let ctx = fx.ctx(&fx.rep).with_session("sess-1");
    let ctx = Ctx {
        source: Source::Agent,
        ..ctx
    };
    let c: Contact = store
        .create(&ctx, json!({"first_name": "Dana", "email": "dana@a.com"}))
        .await
        .unwrap();
    store
        .update::<Contact>(&ctx, c.id, json!({"email": "dana@b.com"}))
        .await
        .unwrap();
    // An update that changes nothing writes nothing.
    store
        .update::<Contact>(&ctx, c.id, json!({"email": "dana@b.com"}))
        .await
        .unwrap();
    store.delete::<Contact>(&ctx, c.id).await.unwrap();
    let h = store
        .history(&ctx, RecordType::Contact, c.id)
        .await
        .unwrap();
    let actions: Vec<&str> = h.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["create", "update", "delete"]);
    assert!(h[0].before.is_none());
    assert_eq!(h[0].after.as_ref().unwrap()["email"], "dana@a.com");
    assert_eq!(h[1].before.as_ref().unwrap()["email"], "dana@a.com");
    assert_eq!(h[1].after.as_ref().unwrap()["email"], "dana@b.com");
    assert_eq!(h[2].before.as_ref().unwrap()["email"], "dana@b.com");
    assert!(h[2].after.is_none());
    for e in &h {
        assert_eq!(e.actor_id, Some(fx.rep.id));
        assert_eq!(e.source, "agent");
        assert_eq!(e.session_id.as_deref(), Some("sess-1"));
        assert_eq!(e.workspace_id, fx.workspace_id);
    }
    let mine = store.actions_of(&ctx, fx.rep.id, 10).await.unwrap();
    assert_eq!(mine.len(), 3);
    assert_eq!(mine[0].action, "delete", "newest first");
}

async fn workspace_isolation(store: &Store) {
    let (a, ctx_a) = fixture(store, "alpha").await;
    let (_b, ctx_b) = fixture(store, "bravo").await;
    let acme: Company = store.create(&ctx_a, json!({"name": "Acme"})).await.unwrap();
    let dana: Contact = store
        .create(
            &ctx_a,
            json!({"first_name": "Dana", "email": "dana@acme.com", "company_id": acme.id}),
        )
        .await
        .unwrap();
    store
        .add_tag(&ctx_a, RecordType::Contact, dana.id, "vip")
        .await
        .unwrap();

    // By id: B's user sees A's records as missing, for every operation.
    assert!(matches!(
        store.get::<Contact>(&ctx_b, dana.id).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        store
            .update::<Contact>(&ctx_b, dana.id, json!({"title": "x"}))
            .await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        store.delete::<Contact>(&ctx_b, dana.id).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        store
            .add_tag(&ctx_b, RecordType::Contact, dana.id, "x")
            .await,
        Err(Error::NotFound { .. })
    ));
    assert!(
        store
            .history(&ctx_b, RecordType::Contact, dana.id)
            .await
            .unwrap()
            .is_empty()
    );
    // By filter.
    let by_id = store
        .list::<Contact>(&ctx_b, &ListQuery::filtered(Filter::eq("id", dana.id)))
        .await
        .unwrap();
    assert!(by_id.items.is_empty());
    let by_email = store
        .list::<Contact>(
            &ctx_b,
            &ListQuery::filtered(Filter::eq("email", "dana@acme.com")),
        )
        .await
        .unwrap();
    assert!(by_email.items.is_empty());
    assert!(
        store
            .tagged(&ctx_b, RecordType::Contact, "vip")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .lookup(&ctx_b, &LookupQuery::new("Dana at Acme"))
            .await
            .unwrap()
            .is_empty()
    );
    // By reference: B cannot point at A's company.
    let err = store
        .create::<Contact>(&ctx_b, json!({"first_name": "Eve", "company_id": acme.id}))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::MissingReference { .. }), "{err}");
    // The same email is fine in another workspace.
    store
        .create::<Contact>(
            &ctx_b,
            json!({"first_name": "Dana B", "email": "dana@acme.com"}),
        )
        .await
        .unwrap();
    // A is untouched.
    assert_eq!(store.get::<Contact>(&ctx_a, dana.id).await.unwrap(), dana);
    assert_eq!(
        store
            .tags_of(&a.admin_ctx(), RecordType::Contact, dana.id)
            .await
            .unwrap(),
        ["vip"]
    );
}

async fn bad_input_names_the_field_and_writes_nothing(store: &Store) {
    let (_fx, ctx) = fixture(store, "bad").await;
    let cases: Vec<(RecordType, Value, &str, &str)> = vec![
        (
            RecordType::Contact,
            json!({"first_name": "D", "nickname": "x"}),
            "nickname",
            "unknown field",
        ),
        (
            RecordType::Deal,
            json!({"name": "D", "value": "lots"}),
            "value",
            "a number",
        ),
        (
            RecordType::Deal,
            json!({"name": "D", "value": -5}),
            "value",
            "at least 0",
        ),
        (
            RecordType::Deal,
            json!({"name": "D", "expected_close_date": "next tuesday"}),
            "expected_close_date",
            "ISO-8601 date",
        ),
        (
            RecordType::Deal,
            json!({"name": "D", "stage_id": 987654}),
            "stage_id",
            "no stage with id 987654",
        ),
        (
            RecordType::Deal,
            json!({"name": "D", "currency": "dollars"}),
            "currency",
            "3-letter",
        ),
        (
            RecordType::Deal,
            json!({"name": "D", "probability": 1.5}),
            "probability",
            "at most 1",
        ),
        (
            RecordType::Task,
            json!({"title": "T", "due_at": "31/12/2026"}),
            "due_at",
            "ISO-8601 timestamp",
        ),
        (
            RecordType::Task,
            json!({"title": "T", "priority": "asap"}),
            "priority",
            "low, normal, high, urgent",
        ),
        (
            RecordType::Contact,
            json!({"first_name": "  "}),
            "first_name",
            "blank",
        ),
        (
            RecordType::Contact,
            json!({"last_name": "NoFirst"}),
            "first_name",
            "required",
        ),
        (
            RecordType::Contact,
            json!({"first_name": "D", "email": "not-an-email"}),
            "email",
            "email address",
        ),
        (
            RecordType::Contact,
            json!({"first_name": "D", "id": 5}),
            "id",
            "cannot be set",
        ),
        (
            RecordType::Company,
            json!({"name": "C", "employees": 3.5}),
            "employees",
            "an integer",
        ),
    ];
    for (rt, body, field, hint) in cases {
        let err = store
            .begin()
            .await
            .unwrap()
            .create_dyn(&ctx, rt, body.clone())
            .await
            .unwrap_err();
        assert_eq!(err.field(), Some(field), "{body}: {err}");
        assert!(
            err.to_string().contains(hint),
            "{body}: {err:?} should mention {hint:?}"
        );
    }
    for (filter, field) in [
        (Filter::eq("nickname", "x"), "nickname"),
        (Filter::cond("value", Op::Gt, "abc"), "value"),
        (
            Filter::cond("expected_close_date", Op::Lt, "soon"),
            "expected_close_date",
        ),
        (
            Filter::cond("status", Op::In, json!(["open", "pending"])),
            "status",
        ),
    ] {
        let err = store
            .list_dyn(&ctx, RecordType::Deal, &ListQuery::filtered(filter))
            .await
            .unwrap_err();
        assert_eq!(err.field(), Some(field), "{err}");
    }
    let err = store
        .list_dyn(
            &ctx,
            RecordType::Deal,
            &ListQuery::default().sorted("custom", Direction::Asc),
        )
        .await
        .unwrap_err();
    assert_eq!(err.field(), Some("sort"));
    for rt in [
        RecordType::Contact,
        RecordType::Deal,
        RecordType::Task,
        RecordType::Company,
    ] {
        assert_eq!(count(store, &ctx, rt).await, 0, "{rt}: nothing written");
    }
}

async fn deal_stage_moves_keep_history(store: &Store) {
    let (fx, _) = fixture(store, "stages").await;
    let ctx = fx.ctx(&fx.manager);
    let deal: Deal = store
        .create(&ctx, json!({"name": "Move me", "value": 50000}))
        .await
        .unwrap();
    let proposal = fx.stage("Proposal");
    let moved: Deal = store
        .update(&ctx, deal.id, json!({"stage_id": proposal.id}))
        .await
        .unwrap();
    assert_eq!(moved.probability, 0.4, "probability follows the stage");
    assert!(moved.stage_entered_at >= deal.stage_entered_at);
    // An explicit probability wins over the stage default.
    let nego = fx.stage("Negotiation");
    let moved: Deal = store
        .update(
            &ctx,
            deal.id,
            json!({"stage_id": nego.id, "probability": 0.75}),
        )
        .await
        .unwrap();
    assert_eq!(moved.probability, 0.75);
    let won: Deal = deal_of(
        store
            .close_deal(&ctx, deal.id, Outcome::Won, "Best integration fit")
            .await
            .unwrap()
            .deal,
    );
    assert_eq!(won.status, DealStatus::Won);
    assert!(won.closed_at.is_some());
    assert_eq!(won.probability, 1.0);
    let history = store.stage_history(&ctx, deal.id).await.unwrap();
    let path: Vec<(Option<i64>, i64)> = history
        .iter()
        .map(|h| (h.from_stage_id, h.to_stage_id))
        .collect();
    assert_eq!(
        path,
        [
            (None, fx.stage("Qualification").id),
            (Some(fx.stage("Qualification").id), proposal.id),
            (Some(proposal.id), nego.id),
            (Some(nego.id), fx.stage("Closed Won").id),
        ]
    );
    assert!(history[0].seconds_in_previous.is_none());
    assert!(
        history[1..]
            .iter()
            .all(|h| h.seconds_in_previous.unwrap() >= 0)
    );
    assert!(history.iter().all(|h| h.changed_by == Some(fx.manager.id)));
    // Reopening (a stage move) clears the close.
    let reopened: Deal = deal_of(
        store
            .move_deal_stage(&ctx, deal.id, &StageTarget::Id(nego.id))
            .await
            .unwrap()
            .deal,
    );
    assert_eq!(reopened.status, DealStatus::Open);
    assert!(reopened.closed_at.is_none());
    // A stage of another pipeline is refused.
    let other: Pipeline = store
        .create(&ctx, json!({"name": "Partners"}))
        .await
        .unwrap();
    let foreign: Stage = store
        .create(
            &ctx,
            json!({"pipeline_id": other.id, "name": "Intro", "position": 0, "probability": 0.05}),
        )
        .await
        .unwrap();
    let err = store
        .update::<Deal>(&ctx, deal.id, json!({"stage_id": foreign.id}))
        .await
        .unwrap_err();
    assert_eq!(field_of(&err), "stage_id");
    assert!(err.to_string().contains("belongs to pipeline"), "{err}");
    // Moving to the other pipeline with its stage is fine.
    let switched: Deal = store
        .update(
            &ctx,
            deal.id,
            json!({"pipeline_id": other.id, "stage_id": foreign.id}),
        )
        .await
        .unwrap();
    assert_eq!(switched.stage_id, foreign.id);
    // A pipeline without a lost stage cannot lose the deal.
    let err = store
        .close_deal(&ctx, deal.id, Outcome::Lost, "Price too high")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("has no lost stage"), "{err}");
}

/// A deal's status changes only by closing it or moving its stage, whatever
/// path the write takes: generic create and update (tools, REST, CLI, web),
/// the domain operations, recorded state (undo, imports) and bulk inserts.
async fn deal_lifecycle_rules_hold_on_every_write_path(store: &Store) {
    let (fx, ctx) = fixture(store, "lifecycle").await;
    let won_stage = fx.stage("Closed Won").id;
    let deal: Deal = store
        .create(&ctx, json!({"name": "Fleet renewal", "value": 12000.0}))
        .await
        .unwrap();

    // Generic writes refuse what only closing may set, and write nothing.
    for patch in [
        json!({"status": "won"}),
        json!({"closed_at": "2026-01-05T10:00:00Z"}),
        json!({"close_reason": "Best fit"}),
        json!({"stage_id": won_stage, "close_reason": "Best fit"}),
    ] {
        let err = store
            .update::<Deal>(&ctx, deal.id, patch.clone())
            .await
            .unwrap_err();
        assert_eq!(rule_of(&err).0, RuleKind::Invalid, "{patch}: {err}");
        let Error::Rule(r) = &err else { unreachable!() };
        assert!(r.hint.as_deref().unwrap().contains("close_deal"), "{r:?}");
    }
    let unchanged: Deal = store.get(&ctx, deal.id).await.unwrap();
    assert_eq!(unchanged, deal, "refused writes leave the deal as it was");
    // A create may not start closed; the empty values forms send are fine.
    let err = store
        .create::<Deal>(&ctx, json!({"name": "Won at birth", "status": "won"}))
        .await
        .unwrap_err();
    assert_eq!(rule_of(&err), (RuleKind::Invalid, "status"));
    let err = store
        .create::<Deal>(&ctx, json!({"name": "Won stage", "stage_id": won_stage}))
        .await
        .unwrap_err();
    assert_eq!(rule_of(&err), (RuleKind::Invalid, "stage_id"));
    let quiet: Deal = store
        .create(
            &ctx,
            json!({"name": "Blank form", "status": "open", "closed_at": null, "close_reason": ""}),
        )
        .await
        .unwrap();
    assert_eq!(quiet.status, DealStatus::Open);

    // The domain operations: moving between open stages, closing with a reason.
    let err = store
        .move_deal_stage(&ctx, deal.id, &StageTarget::Name("closed won".into()))
        .await
        .unwrap_err();
    assert_eq!(rule_of(&err), (RuleKind::Invalid, "stage"));
    let moved = store
        .move_deal_stage(&ctx, deal.id, &StageTarget::Name("proposal".into()))
        .await
        .unwrap();
    assert_eq!(moved.to.name, "Proposal");
    let err = store
        .close_deal(&ctx, deal.id, Outcome::Won, "  ")
        .await
        .unwrap_err();
    assert_eq!(field_of(&err), "reason");
    let won = deal_of(
        store
            .close_deal(&ctx, deal.id, Outcome::Won, "Best integration fit")
            .await
            .unwrap()
            .deal,
    );
    assert_eq!(won.status, DealStatus::Won);
    assert!(won.closed_at.is_some());
    assert_eq!(won.stage_id, won_stage);
    let err = store
        .close_deal(&ctx, deal.id, Outcome::Won, "again")
        .await
        .unwrap_err();
    assert_eq!(rule_of(&err), (RuleKind::Conflict, "deal_id"));
    // A closed deal's reason may be corrected; reopening is a stage move.
    let edited: Deal = store
        .update(
            &ctx,
            deal.id,
            json!({"close_reason": "Integration and price"}),
        )
        .await
        .unwrap();
    assert_eq!(edited.status, DealStatus::Won);
    let err = store
        .update::<Deal>(&ctx, deal.id, json!({"stage_id": fx.stage("Proposal").id}))
        .await
        .unwrap_err();
    assert_eq!(rule_of(&err), (RuleKind::Conflict, "stage_id"));

    // Recorded state (undo, imports): a status that agrees with the stage.
    let mut tx = store.begin().await.unwrap();
    let err = tx
        .update_recorded_dyn(&ctx, RecordType::Deal, deal.id, json!({"status": "lost"}))
        .await
        .unwrap_err();
    assert_eq!(rule_of(&err), (RuleKind::Invalid, "status"));
    let restored = tx
        .update_recorded_dyn(
            &ctx,
            RecordType::Deal,
            deal.id,
            json!({"stage_id": fx.stage("Proposal").id, "status": "open", "closed_at": null, "close_reason": null}),
        )
        .await
        .unwrap();
    assert_eq!(restored["status"], "open");
    assert_eq!(restored["closed_at"], Value::Null);

    // Bulk inserts: each row's status must agree with its stage.
    let row = |status: &str, stage: i64| {
        let v = json!({"name": "Imported", "pipeline_id": fx.pipeline.id, "stage_id": stage,
                       "status": status, "probability": 0.1, "value": 10.0, "currency": "USD",
                       "stage_entered_at": "2026-01-05T10:00:00Z"});
        v.as_object().unwrap().clone()
    };
    let err = tx
        .bulk_insert(
            &ctx,
            RecordType::Deal,
            vec![
                row("open", fx.stage("Proposal").id),
                row("won", fx.stage("Proposal").id),
            ],
        )
        .await
        .unwrap_err();
    assert_eq!(rule_of(&err), (RuleKind::Invalid, "rows[1].status"));
    drop(tx);
    let mut tx = store.begin().await.unwrap();
    let ids = tx
        .bulk_insert(&ctx, RecordType::Deal, vec![row("won", won_stage)])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(ids.len(), 1);
}

async fn tags_on_records(store: &Store) {
    let (_fx, ctx) = fixture(store, "tags").await;
    let c: Company = store.create(&ctx, json!({"name": "Acme"})).await.unwrap();
    assert!(
        store
            .add_tag(&ctx, RecordType::Company, c.id, "Enterprise")
            .await
            .unwrap()
    );
    assert!(
        !store
            .add_tag(&ctx, RecordType::Company, c.id, "enterprise ")
            .await
            .unwrap(),
        "tags are case-insensitive and idempotent"
    );
    store
        .add_tag(&ctx, RecordType::Company, c.id, "q4-target")
        .await
        .unwrap();
    assert_eq!(
        store
            .tags_of(&ctx, RecordType::Company, c.id)
            .await
            .unwrap(),
        ["enterprise", "q4-target"]
    );
    assert_eq!(
        store
            .tagged(&ctx, RecordType::Company, "ENTERPRISE")
            .await
            .unwrap(),
        [c.id]
    );
    assert!(
        store
            .remove_tag(&ctx, RecordType::Company, c.id, "enterprise")
            .await
            .unwrap()
    );
    assert!(
        !store
            .remove_tag(&ctx, RecordType::Company, c.id, "enterprise")
            .await
            .unwrap()
    );
    assert_eq!(
        field_of(
            &store
                .add_tag(&ctx, RecordType::Company, c.id, "")
                .await
                .unwrap_err()
        ),
        "tag"
    );
    assert!(matches!(
        store.add_tag(&ctx, RecordType::Company, 4242, "x").await,
        Err(Error::NotFound { .. })
    ));
    // Deleting the record removes its tags.
    store.delete::<Company>(&ctx, c.id).await.unwrap();
    assert!(
        store
            .tagged(&ctx, RecordType::Company, "q4-target")
            .await
            .unwrap()
            .is_empty()
    );
}

async fn lookup_resolves_loose_references(store: &Store) {
    let (_fx, ctx) = fixture(store, "lookup").await;
    let acme: Company = store
        .create(&ctx, json!({"name": "Acme Logistics"}))
        .await
        .unwrap();
    let globex: Company = store.create(&ctx, json!({"name": "Globex"})).await.unwrap();
    let dana: Contact = store.create(&ctx, json!({"first_name": "Dana", "last_name": "Lee", "email": "dana@acme.com", "company_id": acme.id})).await.unwrap();
    let dana2: Contact = store.create(&ctx, json!({"first_name": "Dana", "last_name": "Ruiz", "email": "dana@globex.com", "company_id": globex.id})).await.unwrap();
    store
        .create::<Contact>(
            &ctx,
            json!({"first_name": "Olga", "last_name": "Okafor", "company_id": acme.id}),
        )
        .await
        .unwrap();

    let hits = store
        .lookup(&ctx, &LookupQuery::new("Dana at Acme"))
        .await
        .unwrap();
    assert_eq!(
        hits.iter().map(|h| h.id).collect::<Vec<_>>(),
        [dana.id],
        "{hits:?}"
    );
    assert!(
        hits[0].label.contains("Acme Logistics"),
        "{}",
        hits[0].label
    );
    // A type listed twice still returns each record once.
    let hits = store
        .lookup(
            &ctx,
            &LookupQuery::new("dana")
                .of(RecordType::Contact)
                .of(RecordType::Contact),
        )
        .await
        .unwrap();
    let ids: Vec<_> = hits.iter().map(|h| h.id).collect();
    assert!(
        ids.contains(&dana.id) && ids.contains(&dana2.id) && ids.len() == 2,
        "two Danas: ambiguous, both returned once: {hits:?}"
    );
    let hits = store
        .lookup(&ctx, &LookupQuery::new("dana@globex.com"))
        .await
        .unwrap();
    assert_eq!(hits[0].id, dana2.id);
    assert_eq!(hits[0].score, 1.0);
    let hits = store
        .lookup(&ctx, &LookupQuery::new("acme").of(RecordType::Company))
        .await
        .unwrap();
    assert_eq!(hits[0].id, acme.id);
    let hits = store
        .lookup(&ctx, &LookupQuery::new("Dana Lea"))
        .await
        .unwrap();
    assert_eq!(
        hits[0].id, dana.id,
        "a typo still finds the best match first"
    );
    assert!(
        store
            .lookup(&ctx, &LookupQuery::new("Zebediah"))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        field_of(
            &store
                .lookup(&ctx, &LookupQuery::new("  "))
                .await
                .unwrap_err()
        ),
        "text"
    );
}

async fn delete_refuses_while_referenced(store: &Store) {
    let (_fx, ctx) = fixture(store, "refs").await;
    let acme: Company = store.create(&ctx, json!({"name": "Acme"})).await.unwrap();
    store
        .create::<Contact>(&ctx, json!({"first_name": "Dana", "company_id": acme.id}))
        .await
        .unwrap();
    store
        .create::<Deal>(&ctx, json!({"name": "D", "company_id": acme.id}))
        .await
        .unwrap();
    let err = store.delete::<Company>(&ctx, acme.id).await.unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("1 contacts") && msg.contains("1 deals"),
        "{msg}"
    );
    assert!(
        store.get::<Company>(&ctx, acme.id).await.is_ok(),
        "nothing deleted"
    );
}

async fn status_timestamps_follow_status(store: &Store) {
    let (fx, ctx) = fixture(store, "status").await;
    let t: Task = store
        .create(
            &ctx,
            json!({"title": "Call back", "assignee_id": fx.rep.id}),
        )
        .await
        .unwrap();
    let done: Task = store
        .update(&ctx, t.id, json!({"status": "done"}))
        .await
        .unwrap();
    assert!(done.completed_at.is_some());
    let reopened: Task = store
        .update(&ctx, t.id, json!({"status": "open"}))
        .await
        .unwrap();
    assert!(reopened.completed_at.is_none());
    let l: Lead = store.create(&ctx, json!({"name": "Sam"})).await.unwrap();
    let converted: Lead = store
        .update(&ctx, l.id, json!({"status": "converted"}))
        .await
        .unwrap();
    assert!(converted.converted_at.is_some());
}

async fn demo_seed_writes_a_consistent_crm(store: &Store) {
    let ws = store.create_workspace("demo").await.unwrap();
    let ctx = Ctx::new(ws.id, None, Source::Cli);
    let params = rapport_crm::seed::SeedParams {
        companies: 8,
        seed: 3,
        as_of: rapport_crm::seed::fixed_date(),
    };
    let data = rapport_crm::seed::generate(&params);
    let ids = rapport_crm::seed::write(store, &ctx, &data, &indicatif::ProgressBar::hidden())
        .await
        .unwrap();
    let counts: std::collections::HashMap<_, _> =
        store.counts(&ctx).await.unwrap().into_iter().collect();
    assert_eq!(counts[&RecordType::Company], 8);
    assert_eq!(
        counts[&RecordType::Activity] as usize,
        data.activities.len()
    );
    assert_eq!(counts[&RecordType::Stage], 6);
    // Records link up and read back through the typed path.
    let a: Activity = store.get(&ctx, ids.activities[0]).await.unwrap();
    assert_eq!(a.body, data.activities[0].body);
    assert_eq!(
        a.company_id,
        Some(ids.companies[data.activities[0].company])
    );
    let dana = store
        .lookup(&ctx, &LookupQuery::new("Dana Lee at Acme"))
        .await
        .unwrap();
    assert_eq!(dana[0].id, ids.contacts[0]);
    if let Some(&deal) = ids.deals.first() {
        assert!(!store.stage_history(&ctx, deal).await.unwrap().is_empty());
    }
}
