//! The pipeline's resolver on a real database (each case on SQLite and on
//! PostgreSQL): ids from the step's span, the request, the session's latest
//! record and an earlier step's result; tasks by the words of their titles
//! within the named account, open ones first; stages within a pipeline;
//! the new owner of "from … to …".

use rapport_agent::pipeline::resolve::{Resolution, Scope, Source, resolve};
use rapport_crm::model::{Company, Contact, Deal, Pipeline, Task, User};
use rapport_crm::testing::Fixture;
use rapport_crm::{Candidate, Id, RecordType, Store};
use serde_json::json;

rapport_crm::both_backends!(
    ids_come_from_the_span_the_request_the_session_and_earlier_steps,
    tasks_are_found_by_title_words_within_the_named_account,
    stages_are_found_by_name_within_a_pipeline,
    the_new_owner_is_the_user_the_record_goes_to,
);

async fn company(store: &Store, fx: &Fixture, name: &str) -> Company {
    store
        .create(
            &fx.admin_ctx(),
            json!({"name": name, "owner_id": fx.rep.id}),
        )
        .await
        .unwrap()
}

async fn contact(store: &Store, fx: &Fixture, first: &str, last: &str, company: Id) -> Contact {
    store
        .create(
            &fx.admin_ctx(),
            json!({"first_name": first, "last_name": last, "company_id": company, "owner_id": fx.rep.id}),
        )
        .await
        .unwrap()
}

fn found(r: &Resolution) -> (Vec<Id>, Option<Source>) {
    match r {
        Resolution::One { record, from } => (vec![record.id], Some(*from)),
        Resolution::Several { records, from } => {
            (records.iter().map(|c| c.id).collect(), Some(*from))
        }
        Resolution::None { .. } => (vec![], None),
    }
}

fn candidate(rt: RecordType, id: Id) -> Candidate {
    Candidate {
        record_type: rt,
        id,
        label: format!("{rt} {id}"),
        score: 1.0,
    }
}

async fn ids_come_from_the_span_the_request_the_session_and_earlier_steps(store: &Store) {
    let fx = Fixture::new(store, "resolve").await.unwrap();
    let ctx = fx.ctx(&fx.rep);
    let brannoch = company(store, &fx, "Brannoch Vineyards").await;
    let hollowell = company(store, &fx, "Hollowell Apiaries").await;
    let ambrose = contact(store, &fx, "Ambrose", "Kettle", brannoch.id).await;
    let wren_a = contact(store, &fx, "Wren", "Halloway", brannoch.id).await;
    let wren_b = contact(store, &fx, "Wren", "Halloway", hollowell.id).await;
    let deal: Deal = store
        .create(
            &fx.admin_ctx(),
            json!({"name": "Brannoch – Cellar Probes", "company_id": brannoch.id, "owner_id": fx.rep.id}),
        )
        .await
        .unwrap();

    // The span names the contact.
    let request = "Log a call with Ambrose Kettle at Brannoch Vineyards: batteries.";
    let scope = Scope {
        request,
        span: "Log a call with Ambrose Kettle",
        ..Scope::default()
    };
    let r = resolve(store, &ctx, RecordType::Contact, true, &scope)
        .await
        .unwrap();
    assert_eq!(found(&r), (vec![ambrose.id], Some(Source::Span)));
    // The company is named in the request, not in the span.
    let r = resolve(store, &ctx, RecordType::Company, false, &scope)
        .await
        .unwrap();
    assert_eq!(found(&r), (vec![brannoch.id], Some(Source::Request)));
    // An optional link nobody named stays unset, even with a deal in the session.
    let latest = [candidate(RecordType::Deal, deal.id)];
    let with_session = Scope {
        latest: &latest,
        ..scope.clone()
    };
    let r = resolve(store, &ctx, RecordType::Deal, false, &with_session)
        .await
        .unwrap();
    assert_eq!(found(&r), (vec![], None));
    // A required one is the session's latest of its type ("move it").
    let it = Scope {
        request: "Move it to Quote Sent.",
        span: "Move it",
        latest: &latest,
        ..Scope::default()
    };
    let r = resolve(store, &ctx, RecordType::Deal, true, &it)
        .await
        .unwrap();
    assert_eq!(found(&r), (vec![deal.id], Some(Source::Session)));
    // Or what an earlier step produced.
    let earlier = [candidate(RecordType::Company, 4242)];
    let there = Scope {
        request: "Add a company and a contact there.",
        span: "a contact there",
        earlier: &earlier,
        ..Scope::default()
    };
    let r = resolve(store, &ctx, RecordType::Company, true, &there)
        .await
        .unwrap();
    assert_eq!(found(&r), (vec![4242], Some(Source::EarlierStep)));
    // Two contacts of one name: several, for the fill step or the user.
    let two = Scope {
        request: "Tag Wren Halloway as champion.",
        span: "Wren Halloway",
        ..Scope::default()
    };
    let r = resolve(store, &ctx, RecordType::Contact, true, &two)
        .await
        .unwrap();
    let mut both = vec![wren_a.id, wren_b.id];
    both.sort();
    assert_eq!(found(&r), (both, Some(Source::Span)));
    // Nobody of that name: nothing, saying what was looked for.
    let nobody = Scope {
        request: "Log a call with Thomasina Quarrie: she wants a discount.",
        span: "Log a call with Thomasina Quarrie",
        ..Scope::default()
    };
    let r = resolve(store, &ctx, RecordType::Contact, true, &nobody)
        .await
        .unwrap();
    match r {
        Resolution::None { looked_for } => assert_eq!(looked_for, ["Thomasina Quarrie"]),
        other => panic!("{other:?}"),
    }
}

async fn tasks_are_found_by_title_words_within_the_named_account(store: &Store) {
    let fx = Fixture::new(store, "tasks").await.unwrap();
    let ctx = fx.ctx(&fx.rep);
    let brannoch = company(store, &fx, "Brannoch Vineyards").await;
    let osterley = company(store, &fx, "Osterley Nurseries").await;
    let task = |title: &str, company: Id, status: &str| json!({"title": title, "company_id": company, "status": status, "assignee_id": fx.rep.id});
    let done: Task = store
        .create(
            &ctx,
            task("Walk through the Brannoch cellars", brannoch.id, "done"),
        )
        .await
        .unwrap();
    let open: Task = store
        .create(
            &ctx,
            task("Walk through the Brannoch cellars", brannoch.id, "open"),
        )
        .await
        .unwrap();
    let other: Task = store
        .create(&ctx, task("Walk through the cellars", osterley.id, "open"))
        .await
        .unwrap();
    let _unrelated: Task = store
        .create(&ctx, task("Send the price list", brannoch.id, "open"))
        .await
        .unwrap();

    let by = |request: &'static str, span: &'static str| Scope {
        request,
        span,
        ..Scope::default()
    };
    // Open first: the one done last week is not the one meant.
    let s = by(
        "Move the Brannoch cellar walk-through task to Thursday.",
        "the Brannoch cellar walk-through task",
    );
    let r = resolve(store, &ctx, RecordType::Task, true, &s)
        .await
        .unwrap();
    assert_eq!(found(&r), (vec![open.id], Some(Source::Span)));
    // The account the request names decides between like titles.
    let s = by(
        "The cellar walk-through at Osterley Nurseries is done.",
        "The cellar walk-through",
    );
    let r = resolve(store, &ctx, RecordType::Task, true, &s)
        .await
        .unwrap();
    assert_eq!(found(&r), (vec![other.id], Some(Source::Span)));
    // No account named: both open ones fit, which is a question.
    let s = by(
        "The cellar walk-through is done.",
        "The cellar walk-through",
    );
    let r = resolve(store, &ctx, RecordType::Task, true, &s)
        .await
        .unwrap();
    let mut both = vec![open.id, other.id];
    both.sort();
    let (mut ids, from) = found(&r);
    ids.sort();
    assert_eq!((ids, from), (both, Some(Source::Span)));
    assert_ne!(done.id, open.id);
}

async fn stages_are_found_by_name_within_a_pipeline(store: &Store) {
    let fx = Fixture::new(store, "stages").await.unwrap();
    let ctx = fx.admin_ctx();
    let growers: Pipeline = store
        .create(&ctx, json!({"name": "Growers"}))
        .await
        .unwrap();
    let _: rapport_crm::model::Stage = store
        .create(
            &ctx,
            json!({"pipeline_id": growers.id, "name": "Proposal", "position": 0, "probability": 0.3, "outcome": "open"}),
        )
        .await
        .unwrap();
    let everywhere = store.lookup_stages(&ctx, "proposal", None).await.unwrap();
    assert_eq!(everywhere.len(), 2, "{everywhere:?}");
    let mine = store
        .lookup_stages(&ctx, "Proposal", Some(fx.pipeline.id))
        .await
        .unwrap();
    assert_eq!(
        mine.iter().map(|c| c.id).collect::<Vec<_>>(),
        [fx.stage("Proposal").id]
    );
    // Through the resolver, with the deal's pipeline.
    let scope = Scope {
        request: "Make the Proposal stage 55% likely.",
        span: "the Proposal stage",
        pipeline_id: Some(growers.id),
        ..Scope::default()
    };
    let r = resolve(store, &ctx, RecordType::Stage, true, &scope)
        .await
        .unwrap();
    assert_eq!(found(&r).0.len(), 1);
    assert_ne!(found(&r).0, [fx.stage("Proposal").id]);
}

async fn the_new_owner_is_the_user_the_record_goes_to(store: &Store) {
    let fx = Fixture::new(store, "owners").await.unwrap();
    let ctx = fx.admin_ctx();
    let user = |name: &str, email: &str| json!({"name": name, "email": email, "role": "rep"});
    let idris: User = store
        .create(&ctx, user("Idris Fenwick", "idris@x.test"))
        .await
        .unwrap();
    let caspian: User = store
        .create(&ctx, user("Caspian Rook", "caspian@x.test"))
        .await
        .unwrap();
    let scope = Scope {
        request: "Caspian Rook is taking over Brannoch Vineyards from Idris Fenwick.",
        span: "Caspian Rook is taking over Brannoch Vineyards from Idris Fenwick",
        ..Scope::default()
    };
    let r = resolve(store, &ctx, RecordType::User, true, &scope)
        .await
        .unwrap();
    assert_eq!(found(&r), (vec![caspian.id], Some(Source::Span)));
    let scope = Scope {
        request: "Move Brannoch from Caspian to Idris.",
        span: "Move Brannoch from Caspian to Idris",
        ..Scope::default()
    };
    let r = resolve(store, &ctx, RecordType::User, true, &scope)
        .await
        .unwrap();
    assert_eq!(found(&r), (vec![idris.id], Some(Source::Span)));
    // "to me": the requester.
    let me = candidate(RecordType::User, fx.rep.id);
    let scope = Scope {
        request: "Give the Brannoch account to me.",
        span: "the Brannoch account to me",
        requester: Some(me),
        ..Scope::default()
    };
    let r = resolve(store, &ctx, RecordType::User, true, &scope)
        .await
        .unwrap();
    assert_eq!(found(&r), (vec![fx.rep.id], Some(Source::Requester)));
}
