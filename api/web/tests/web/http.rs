//! Every route over HTTP, on SQLite and PostgreSQL.

use rapport_crm::model::{Company, Contact, Deal};
use rapport_crm::testing::Fixture;
use rapport_crm::{Filter, ListQuery, RecordType, Store};
use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{App, password, unescape};

rapport_crm::both_backends!(
    signing_in_rotates_the_session_and_signing_out_revokes_it,
    sign_in_is_rate_limited_and_its_form_needs_its_token,
    every_page_answers_with_the_security_headers,
    csrf_is_required_on_every_unsafe_request,
    tables_filter_sort_page_count_and_choose_columns,
    inline_edit_goes_through_the_registry_with_source_web,
    record_pages_show_related_records_timeline_and_quick_actions,
    viewers_see_no_edit_controls_and_are_refused_when_they_post,
    another_workspaces_records_are_not_found,
    names_and_bodies_with_markup_render_as_text,
    the_board_sums_columns_and_moves_deals_with_stage_history,
    saved_views_are_personal_or_shared,
    bulk_tag_reassign_and_confirmed_delete,
);

async fn signing_in_rotates_the_session_and_signing_out_revokes_it(store: &Store) {
    let app = App::start(store, "signin").await;
    let mut c = app.client();
    // Not signed in: every page sends the browser to the sign-in form.
    let res = c.get("/companies?f=name&op=contains&v=a").await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(
        res.location(),
        "/signin?next=%2Fcompanies%3Ff%3Dname%26op%3Dcontains%26v%3Da"
    );
    // htmx is told to navigate instead of following the redirect.
    c.htmx = true;
    let res = c.get("/companies").await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    assert!(res.header("hx-redirect").starts_with("/signin"));
    c.htmx = false;
    // A wrong password: the form again, 401, no session.
    let res = c.sign_in("rep@signin.test", "not the password").await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert!(res.body.contains("do not match"), "{}", res.body);
    assert!(c.session().is_none());
    // The right one: a session cookie, HttpOnly and SameSite=Lax.
    let res = c.sign_in("REP@signin.test", &password("rep")).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(res.location(), "/");
    let set = res
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("rapport_session="))
        .expect("session cookie");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax") && set.contains("Path=/"),
        "{set}"
    );
    assert!(!set.contains("Secure"), "plain HTTP: not Secure: {set}");
    let first = c.session().expect("session");
    let board = c.get("/deals/board").await;
    assert!(board.ok().contains("rep of signin"));
    assert!(board.body.contains("signin"), "the workspace is named");
    // Signing in again mints a new session and ends the old one.
    let res = c.sign_in("rep@signin.test", &password("rep")).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    let second = c.session().expect("session");
    assert_ne!(first, second, "the session rotates at sign-in");
    let mut stale = app.client();
    stale
        .cookies
        .insert("rapport_session".into(), first.clone());
    assert_eq!(stale.get("/companies").await.status, StatusCode::SEE_OTHER);
    c.get("/companies").await.ok();
    // Sign-out revokes the session in the database, not only the cookie.
    let res = c.post("/signout", &[]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(res.location(), "/signin");
    assert!(c.session().is_none());
    let mut replay = app.client();
    replay.cookies.insert("rapport_session".into(), second);
    assert_eq!(replay.get("/companies").await.status, StatusCode::SEE_OTHER);
    // Behind a TLS proxy the cookie is Secure.
    let res = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(app.url("/signin"))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    let set = res
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(set.contains("; Secure"), "{set}");
    // A user without a password cannot sign in at all.
    store
        .set_password_hash(&app.ctx(), app.fx.manager.id, None)
        .await
        .unwrap();
    let res = app
        .client()
        .sign_in("manager@signin.test", &password("manager"))
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    app.stop().await;
}

async fn sign_in_is_rate_limited_and_its_form_needs_its_token(store: &Store) {
    let app = App::start(store, "limits").await;
    let mut c = app.client();
    for _ in 0..5 {
        let res = c.sign_in("rep@limits.test", "wrong").await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    }
    // Even the right password is refused now, without being checked.
    let res = c.sign_in("rep@limits.test", &password("rep")).await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS, "{}", res.body);
    assert!(
        res.body.contains("too many failed sign-ins"),
        "{}",
        res.body
    );
    // Another email from the same client is not locked by the first one's failures.
    let res = c.sign_in("admin@limits.test", &password("admin")).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    // A sign-in post without the form's token (another site's form) is refused.
    let mut bare = app.client();
    let res = bare
        .post_raw(
            "/signin",
            &[
                ("email", "admin@limits.test"),
                ("password", &password("admin")),
            ],
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert!(bare.session().is_none());
    app.stop().await;
}

async fn every_page_answers_with_the_security_headers(store: &Store) {
    let app = App::start(store, "headers").await;
    let acme = app.company(&app.fx.rep, "Acme").await;
    let deal = app
        .deal(&app.fx.rep, "Acme renewal", "Qualification", 1000.0)
        .await;
    let mut c = app.signed_in("rep").await;
    let contact: Contact = store
        .create(
            &app.fx.ctx(&app.fx.rep),
            json!({"first_name": "Dana", "company_id": acme.id, "owner_id": app.fx.rep.id}),
        )
        .await
        .unwrap();
    let mut pages = vec![
        "/deals/board".to_owned(),
        "/today".to_owned(),
        "/dashboard".to_owned(),
        "/palette?q=Dana".to_owned(),
        "/new/contact".to_owned(),
        format!("/companies/{}", acme.id),
        format!("/deals/{}", deal.id),
        format!("/contacts/{}", contact.id),
        format!("/companies/{}/timeline", acme.id),
        format!("/companies/{}/fields/name", acme.id),
    ];
    for k in rapport_web::meta::Kind::ALL {
        pages.push(format!("/{}", k.path()));
    }
    for p in &pages {
        let res = c.get(p).await;
        assert_eq!(res.status, StatusCode::OK, "{p}: {}", res.body);
        let csp = res.header("content-security-policy");
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{p}: {csp}"
        );
        assert_eq!(res.header("x-frame-options"), "DENY", "{p}");
        assert_eq!(res.header("referrer-policy"), "same-origin", "{p}");
        assert_eq!(res.header("x-content-type-options"), "nosniff", "{p}");
        assert_eq!(res.header("cache-control"), "no-store", "{p}");
        assert!(!res.body.contains("<script>"), "{p}: no inline script");
    }
    // `/` is Today.
    let res = c.get("/").await;
    assert_eq!(res.location(), "/today");
    // The sign-in page has them too.
    let res = app.client().get("/signin").await;
    assert!(res.ok().contains("Sign in"));
    assert_eq!(res.header("x-frame-options"), "DENY");
    // Assets: versioned, immutable, typed; unknown ones are 404.
    for a in rapport_web::assets::ASSETS {
        let res = c.get(&rapport_web::assets::url(a.name)).await;
        assert_eq!(res.status, StatusCode::OK, "{}", a.name);
        assert_eq!(res.header("content-type"), a.content_type);
        assert!(res.header("cache-control").contains("immutable"));
        assert_eq!(res.body.len(), a.bytes.len());
    }
    assert_eq!(
        c.get(&rapport_web::assets::url("nope.js")).await.status,
        StatusCode::NOT_FOUND
    );
    // A record that does not exist is a 404 page.
    let res = c.get("/companies/999999").await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    assert!(
        res.body.contains("there is no company 999999"),
        "{}",
        res.body
    );
    app.stop().await;
}

async fn csrf_is_required_on_every_unsafe_request(store: &Store) {
    let app = App::start(store, "csrf").await;
    let acme = app.company(&app.fx.rep, "Acme").await;
    let deal = app
        .deal(&app.fx.rep, "Acme deal", "Qualification", 10.0)
        .await;
    let mut c = app.signed_in("rep").await;
    let field = format!("/companies/{}/fields", acme.id);
    let posts: Vec<(String, Vec<(&str, String)>)> = vec![
        (
            field.clone(),
            vec![("field", "name".into()), ("value", "Hacked".into())],
        ),
        (
            format!("/companies/{}/tags", acme.id),
            vec![("tag", "x".into())],
        ),
        (
            format!("/companies/{}/activities", acme.id),
            vec![("body", "x".into())],
        ),
        (
            format!("/companies/{}/tasks", acme.id),
            vec![("title", "x".into())],
        ),
        (
            format!("/deals/{}/move", deal.id),
            vec![("stage_id", app.fx.stage("Proposal").id.to_string())],
        ),
        (
            "/companies/bulk".into(),
            vec![
                ("action", "tag".into()),
                ("tag", "x".into()),
                ("ids", acme.id.to_string()),
            ],
        ),
        ("/companies/views".into(), vec![("name", "x".into())]),
        ("/signout".into(), vec![]),
    ];
    for (path, fields) in &posts {
        let f: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        // No token at all.
        let res = c.post_raw(path, &f, None).await;
        assert_eq!(res.status, StatusCode::FORBIDDEN, "{path}: {}", res.body);
        // A wrong token in the header.
        let res = c.post_raw(path, &f, Some("forged")).await;
        assert_eq!(res.status, StatusCode::FORBIDDEN, "{path}");
        // A wrong token in the form.
        let mut with = f.clone();
        with.push(("csrf", "forged"));
        let res = c.post_raw(path, &with, None).await;
        assert_eq!(res.status, StatusCode::FORBIDDEN, "{path}");
    }
    let still: Company = store.get(&app.ctx(), acme.id).await.unwrap();
    assert_eq!(still.name, "Acme");
    assert!(
        store
            .tags_of(&app.ctx(), RecordType::Company, acme.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(c.session().is_some(), "a forged sign-out signs nobody out");
    c.get("/companies").await.ok();
    // Another session's token does not fit this session.
    let mut other = app.signed_in("rep").await;
    let theirs = other.csrf().await;
    let res = c
        .post_raw(
            &field,
            &[("field", "name"), ("value", "X"), ("csrf", &theirs)],
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    // The right token, as a field and as htmx's header.
    let res = c
        .post(&field, &[("field", "name"), ("value", "Acme Corp")])
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    c.htmx = true;
    let res = c
        .post(&field, &[("field", "name"), ("value", "Acme Group")])
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let now: Company = store.get(&app.ctx(), acme.id).await.unwrap();
    assert_eq!(now.name, "Acme Group");
    app.stop().await;
}

async fn tables_filter_sort_page_count_and_choose_columns(store: &Store) {
    let app = App::start(store, "tables").await;
    let ctx = app.fx.ctx(&app.fx.rep);
    for i in 0..120 {
        let name = format!("{} {i:03}", if i % 2 == 0 { "Alpha" } else { "Beta" });
        let _: Company = store
            .create(
                &ctx,
                json!({"name": name, "employees": i, "owner_id": app.fx.rep.id, "country": "DE"}),
            )
            .await
            .unwrap();
    }
    let mut c = app.signed_in("viewer").await;
    // Filter, sort descending, 50 a page, with the total count.
    let path = "/companies?f=name&op=contains&v=alpha&f=employees&op=gte&v=10&sort=-employees&col=name&col=employees";
    let page = c.get(path).await;
    let body = page.ok();
    assert!(body.contains("<strong>55</strong> matching"), "{body}");
    assert!(body.contains("Alpha 118"));
    assert!(!body.contains("Beta 117"));
    assert!(
        !body.contains("Alpha 008"),
        "filtered out by employees ≥ 10"
    );
    let first = body.find("Alpha 118").unwrap();
    assert!(first < body.find("Alpha 116").unwrap(), "descending");
    assert!(body.contains("aria-sort=\"descending\""));
    // Chosen columns only: no country column.
    assert!(!body.contains(">Country</a></th>"), "{body}");
    assert!(body.contains(">Employees</a></th>"));
    // The next page by cursor: the rest, no repeats.
    let next = body
        .split("rel=\"next\"")
        .next()
        .and_then(|b| b.rsplit("href=\"").next())
        .map(|h| unescape(&h[..h.find('"').unwrap()]))
        .expect("a next link");
    let page2 = c.get(&next).await;
    let body2 = page2.ok();
    assert!(
        body2.contains("Alpha 018")
            && !body2.contains("Alpha 020<")
            && !body2.contains("Alpha 118"),
        "{body2}"
    );
    assert!(body2.contains("First page"));
    assert!(!body2.contains("rel=\"next\""), "55 rows fit in two pages");
    // htmx asks for the results only.
    let frag = c.get_fragment(path, "div#results").await;
    assert!(
        frag.ok().starts_with("<div id=\"results\""),
        "{}",
        frag.body
    );
    assert!(!frag.body.contains("<html"));
    // "any" combines with or.
    let any = c
        .get("/companies?f=name&op=eq&v=Alpha%20000&f=name&op=eq&v=Beta%20001&match=any")
        .await;
    assert!(
        any.ok().contains("<strong>2</strong> matching"),
        "{}",
        any.body
    );
    // A value of the wrong type is a message on the page, not a crash.
    let bad = c.get("/companies?f=employees&op=gte&v=many").await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad.body.contains("employees: expected an integer"),
        "{}",
        bad.body
    );
    let bad = c.get("/companies?f=nope&op=eq&v=1").await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("unknown field"), "{}", bad.body);
    // Sorting by a column with text that sorts before the rest.
    let sorted = c.get("/companies?sort=name").await;
    let b = sorted.ok();
    assert!(b.find("Alpha 000").unwrap() < b.find("Alpha 002").unwrap());
    assert!(!b.contains("Beta 001<"), "the first page holds the Alphas");
    // Every other table renders for a viewer too.
    for p in ["/contacts", "/leads", "/deals", "/activities", "/tasks"] {
        c.get(p).await.ok();
    }
    app.stop().await;
}

async fn inline_edit_goes_through_the_registry_with_source_web(store: &Store) {
    let app = App::start(store, "inline").await;
    let acme = app.company(&app.fx.rep, "Acme").await;
    let mut c = app.signed_in("rep").await;
    let page = c.get(&format!("/companies/{}", acme.id)).await;
    assert!(
        page.ok()
            .contains(&format!("hx-get=\"/companies/{}/fields/name\"", acme.id))
    );
    // The no-JavaScript editor: the page with one field as a form.
    let editing = c
        .get(&format!("/companies/{}?edit=industry", acme.id))
        .await;
    assert!(editing.ok().contains("id=\"input-industry\""));
    // htmx's editor fragment.
    c.htmx = true;
    let editor = c
        .get(&format!("/companies/{}/fields/industry", acme.id))
        .await;
    assert!(
        editor
            .ok()
            .starts_with("<div class=\"field\" id=\"field-industry\">"),
        "{}",
        editor.body
    );
    assert!(editor.body.contains("<form"));
    // Saving answers the field in view mode, a toast and the new timeline.
    let res = c
        .post(
            &format!("/companies/{}/fields", acme.id),
            &[("field", "industry"), ("value", "Robotics")],
        )
        .await;
    let body = res.ok();
    assert!(body.contains("Robotics"));
    assert!(body.contains("hx-swap-oob=\"beforeend:#toasts\""));
    assert!(body.contains("id=\"timeline\"") && body.contains("hx-swap-oob=\"true\""));
    assert!(body.contains("via web"), "{body}");
    assert!(body.contains("Industry: — → Robotics"), "{body}");
    // Stored, and audited with source web: the record's entry and the tool call's.
    let now: Company = store.get(&app.ctx(), acme.id).await.unwrap();
    assert_eq!(now.industry.as_deref(), Some("Robotics"));
    let history = store
        .history(&app.ctx(), RecordType::Company, acme.id)
        .await
        .unwrap();
    let last = history.last().unwrap();
    assert_eq!(
        (last.source.as_str(), last.action.as_str()),
        ("web", "update")
    );
    assert_eq!(last.actor_id, Some(app.fx.rep.id));
    let calls = store
        .actions_of(&app.ctx(), app.fx.rep.id, 10)
        .await
        .unwrap();
    assert!(
        calls
            .iter()
            .any(|e| e.action == "tool:update_company" && e.source == "web"),
        "{calls:?}"
    );
    // A table cell, edited in place: the cell comes back, no timeline.
    let cell = c
        .get(&format!("/companies/{}/fields/domain?in=cell", acme.id))
        .await;
    assert!(
        cell.ok()
            .starts_with(&format!("<td id=\"cell-{}-domain\">", acme.id)),
        "{}",
        cell.body
    );
    let res = c
        .post(
            &format!("/companies/{}/fields", acme.id),
            &[
                ("field", "domain"),
                ("value", "acme.example"),
                ("in", "cell"),
            ],
        )
        .await;
    let body = res.ok();
    assert!(
        body.starts_with(&format!("<td id=\"cell-{}-domain\">", acme.id))
            && body.contains("acme.example"),
        "{body}"
    );
    assert!(!body.contains("id=\"timeline\""));
    let table = c.get("/companies").await;
    assert!(
        table
            .ok()
            .contains(&format!("id=\"cell-{}-domain\"", acme.id))
    );
    // A bad value: the tool's message as a toast, nothing stored.
    let res = c
        .post(
            &format!("/companies/{}/fields", acme.id),
            &[("field", "employees"), ("value", "-5")],
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(res.header("hx-retarget"), "#toasts");
    assert!(
        res.body.contains("toast-error") && res.body.contains("employees"),
        "{}",
        res.body
    );
    // A field that cannot be set.
    let res = c
        .post(
            &format!("/companies/{}/fields", acme.id),
            &[("field", "created_at"), ("value", "x")],
        )
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    // Clearing a field with an empty value.
    c.htmx = false;
    let res = c
        .post(
            &format!("/companies/{}/fields", acme.id),
            &[("field", "industry"), ("value", "")],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(res.location(), format!("/companies/{}?done=saved", acme.id));
    let now: Company = store.get(&app.ctx(), acme.id).await.unwrap();
    assert_eq!(now.industry, None);
    // A rep cannot change another rep's record: refused, unchanged.
    let theirs = app.company(&app.fx.manager, "Managed").await;
    let res = c
        .post(
            &format!("/companies/{}/fields", theirs.id),
            &[("field", "name"), ("value", "Mine")],
        )
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.body);
    app.stop().await;
}

async fn record_pages_show_related_records_timeline_and_quick_actions(store: &Store) {
    let app = App::start(store, "record").await;
    let rep = &app.fx.rep;
    let ctx = app.fx.ctx(rep);
    let acme = app.company(rep, "Acme").await;
    let dana: Contact = store
        .create(&ctx, json!({"first_name": "Dana", "last_name": "Lee", "company_id": acme.id, "owner_id": rep.id}))
        .await
        .unwrap();
    let deal: Deal = store
        .create(
            &ctx,
            json!({"name": "Acme Pro", "pipeline_id": app.fx.pipeline.id, "stage_id": app.fx.stage("Qualification").id,
                   "value": 5000, "owner_id": rep.id, "company_id": acme.id, "contact_ids": [dana.id]}),
        )
        .await
        .unwrap();
    let mut c = app.signed_in("rep").await;
    // Quick actions: a call, a task, a tag, each through its tool.
    let res = c
        .post(
            &format!("/companies/{}/activities", acme.id),
            &[
                ("activity_kind", "call"),
                ("subject", "Pricing"),
                ("body", "Likes the Pro plan"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(
        res.location(),
        format!("/companies/{}?done=logged", acme.id)
    );
    let res = c
        .post(
            &format!("/companies/{}/tasks", acme.id),
            &[("title", "Send the quote"), ("due", "2026-12-24")],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let res = c
        .post(&format!("/companies/{}/tags", acme.id), &[("tag", "vip")])
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let page = c.get(&format!("/companies/{}?done=logged", acme.id)).await;
    let body = page.ok();
    for needle in [
        "Dana Lee",
        "Acme Pro",
        "call: Pricing",
        "Likes the Pro plan",
        "task (open): Send the quote",
        "vip",
        "Logged.",
    ] {
        assert!(body.contains(needle), "{needle}: {body}");
    }
    // Newest first: the tag (audit) after the call in time, above it on the page.
    assert!(body.find("tagged it").unwrap() < body.find("call: Pricing").unwrap());
    let task = store
        .list::<rapport_crm::model::Task>(
            &ctx,
            &ListQuery::filtered(Filter::eq("company_id", acme.id)),
        )
        .await
        .unwrap()
        .items
        .pop()
        .unwrap();
    assert_eq!(task.assignee_id, Some(rep.id));
    assert_eq!(
        task.due_at.unwrap().to_rfc3339(),
        "2026-12-24T17:00:00+00:00"
    );
    // Insights: the churn score with its top reasons, and recent sentiment.
    let mut tx = store.begin().await.unwrap();
    tx.put_scores(
        &app.ctx(),
        &[rapport_crm::Score {
            record_type: "company".into(),
            record_id: acme.id,
            task: "churn".into(),
            score: 0.72,
            reasons: json!([{"feature": "days_since_last_touch", "contribution": 1.2},
                            {"feature": "open_tickets", "contribution": -0.4}]),
            model_version: 1,
            scored_at: chrono::Utc::now(),
        }],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let _: rapport_crm::model::Activity = store
        .create(&ctx, json!({"kind": "email", "body": "Love it", "company_id": acme.id, "sentiment": 0.8, "owner_id": rep.id}))
        .await
        .unwrap();
    let page = c.get(&format!("/companies/{}", acme.id)).await;
    let body = page.ok();
    assert!(
        body.contains("Churn risk") && body.contains("72%"),
        "{body}"
    );
    assert!(
        body.contains("days since last touch raises it") && body.contains("open tickets lowers it")
    );
    assert!(
        body.contains("positive (+0.80, last 1 interactions)"),
        "{body}"
    );
    // The deal page: its company, its contact, its stage moves.
    let res = c
        .post(
            &format!("/deals/{}/move", deal.id),
            &[("stage_id", &app.fx.stage("Proposal").id.to_string())],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    let page = c.get(&format!("/deals/{}", deal.id)).await;
    let body = unescape(page.ok());
    assert!(
        body.contains("moved from Qualification to Proposal"),
        "{body}"
    );
    assert!(
        body.contains("Dana Lee") && body.contains(&format!("href=\"/companies/{}\"", acme.id))
    );
    // The timeline pages: 25 notes make two pages.
    for i in 0..25 {
        c.post(
            &format!("/contacts/{}/activities", dana.id),
            &[("activity_kind", "note"), ("body", &format!("note {i}"))],
        )
        .await;
    }
    let p0 = c.get(&format!("/contacts/{}", dana.id)).await;
    assert!(p0.ok().contains("Older"));
    let p1 = c
        .get(&format!("/contacts/{}/timeline?tpage=1", dana.id))
        .await;
    assert!(p1.ok().contains("Newer"));
    // A note on a contact keeps the contact's company.
    let notes = store
        .list::<rapport_crm::model::Activity>(
            &ctx,
            &ListQuery::filtered(Filter::eq("contact_id", dana.id)),
        )
        .await
        .unwrap()
        .items;
    assert!(notes.iter().all(|a| a.company_id == Some(acme.id)));
    // An empty note is refused before any tool runs.
    let res = c
        .post(
            &format!("/companies/{}/activities", acme.id),
            &[("activity_kind", "note"), ("body", " ")],
        )
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{}", res.body);
    assert!(res.body.contains("write what was said"), "{}", res.body);
    app.stop().await;
}

async fn viewers_see_no_edit_controls_and_are_refused_when_they_post(store: &Store) {
    let app = App::start(store, "viewer").await;
    let acme = app.company(&app.fx.rep, "Acme").await;
    let deal = app
        .deal(&app.fx.rep, "Acme deal", "Qualification", 10.0)
        .await;
    let mut c = app.signed_in("viewer").await;
    let page = c.get(&format!("/companies/{}", acme.id)).await;
    let body = page.ok();
    assert!(!body.contains("class=\"edit\""), "no edit links");
    assert!(!body.contains("Quick actions"));
    assert!(!body.contains("/fields\""), "no edit forms");
    let board = c.get("/deals/board").await;
    assert!(board.ok().contains("Acme deal"));
    assert!(!board.body.contains("form class=\"move\""), "no move menu");
    let table = c.get("/companies").await;
    assert!(!table.ok().contains("id=\"bulk\""), "no bulk actions");
    // Posting anyway is refused by the tools' permission check.
    let res = c
        .post(
            &format!("/companies/{}/fields", acme.id),
            &[("field", "name"), ("value", "Viewer Inc")],
        )
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.body);
    let res = c
        .post(
            &format!("/deals/{}/move", deal.id),
            &[("stage_id", &app.fx.stage("Proposal").id.to_string())],
        )
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    let res = c
        .post(
            "/companies/bulk",
            &[
                ("action", "tag"),
                ("tag", "x"),
                ("ids", &acme.id.to_string()),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.body);
    let res = c.get(&format!("/companies/{}/fields/name", acme.id)).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    let still: Company = store.get(&app.ctx(), acme.id).await.unwrap();
    assert_eq!(still.name, "Acme");
    let d: Deal = store.get(&app.ctx(), deal.id).await.unwrap();
    assert_eq!(d.stage_id, app.fx.stage("Qualification").id);
    app.stop().await;
}

async fn another_workspaces_records_are_not_found(store: &Store) {
    let app = App::start(store, "ours").await;
    let other = Fixture::new(store, "theirs").await.unwrap();
    let theirs: Company = store
        .create(&other.admin_ctx(), json!({"name": "Their Co"}))
        .await
        .unwrap();
    let their_deal: Deal = store
        .create(
            &other.admin_ctx(),
            json!({"name": "Their deal", "pipeline_id": other.pipeline.id, "stage_id": other.stages[0].id, "value": 1}),
        )
        .await
        .unwrap();
    let mut c = app.signed_in("admin").await;
    for p in [
        format!("/companies/{}", theirs.id),
        format!("/companies/{}/timeline", theirs.id),
        format!("/companies/{}/fields/name", theirs.id),
        format!("/deals/{}", their_deal.id),
    ] {
        assert_eq!(c.get(&p).await.status, StatusCode::NOT_FOUND, "{p}");
    }
    let res = c
        .post(
            &format!("/companies/{}/fields", theirs.id),
            &[("field", "name"), ("value", "Ours")],
        )
        .await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    let res = c
        .post(
            &format!("/deals/{}/move", their_deal.id),
            &[("stage_id", &app.fx.stage("Proposal").id.to_string())],
        )
        .await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    let table = c.get("/companies").await;
    assert!(!table.ok().contains("Their Co"));
    let board = c.get("/deals/board").await;
    assert!(!board.ok().contains("Their deal"));
    let still: Company = store.get(&other.admin_ctx(), theirs.id).await.unwrap();
    assert_eq!(still.name, "Their Co");
    app.stop().await;
}

async fn names_and_bodies_with_markup_render_as_text(store: &Store) {
    let app = App::start(store, "xss").await;
    let rep = &app.fx.rep;
    let ctx = app.fx.ctx(rep);
    let evil: Company = store
        .create(
            &ctx,
            json!({"name": "<script>alert('name')</script>", "owner_id": rep.id,
                   "industry": "\"><img src=x onerror=alert(1)>",
                   "custom": {"note": "<svg onload=alert(2)>"}}),
        )
        .await
        .unwrap();
    let _ = app
        .deal(
            rep,
            "<b onmouseover=alert(3)>deal</b>",
            "Qualification",
            1.0,
        )
        .await;
    let mut c = app.signed_in("rep").await;
    c.post(
        &format!("/companies/{}/activities", evil.id),
        &[
            ("activity_kind", "note"),
            ("body", "<img src=x onerror=alert(4)>"),
        ],
    )
    .await;
    for p in [
        format!("/companies/{}", evil.id),
        "/companies".into(),
        "/deals/board".into(),
        "/activities".into(),
    ] {
        let page = c.get(&p).await;
        let body = page.ok();
        for raw in ["<script>alert", "<img src=x", "<svg", "<b onmouseover"] {
            assert!(!body.contains(raw), "{p} contains raw {raw}");
        }
        assert!(
            !body.contains("onerror=alert(1)>") || body.contains("onerror=alert(1)&gt;"),
            "{p}"
        );
    }
    let page = c.get(&format!("/companies/{}", evil.id)).await;
    assert!(
        page.body
            .contains("&lt;script&gt;alert(&#x27;name&#x27;)&lt;&#x2F;script&gt;"),
        "{}",
        page.body
    );
    assert!(page.body.contains("&lt;img src=x onerror=alert(4)&gt;"));
    assert!(
        page.body.contains("&lt;svg onload=alert(2)&gt;"),
        "custom attributes are shown, as text"
    );
    app.stop().await;
}

async fn the_board_sums_columns_and_moves_deals_with_stage_history(store: &Store) {
    let app = App::start(store, "board").await;
    let rep = &app.fx.rep;
    let a = app.deal(rep, "Deal A", "Qualification", 1000.0).await;
    let _b = app.deal(rep, "Deal B", "Qualification", 3000.0).await;
    let c_deal = app.deal(&app.fx.manager, "Deal C", "Proposal", 500.0).await;
    let mut c = app.signed_in("rep").await;
    let board = c.get("/deals/board").await;
    let body = board.ok();
    let qual = app.fx.stage("Qualification");
    // Qualification: 2 deals, 4,000, weighted by the stage's probability.
    let weighted = rapport_web::render::money(4000.0 * qual.probability);
    assert!(body.contains(&format!("<span class=\"count\">2</span> deals · <span class=\"total\">4,000</span> · <span class=\"weighted\">{weighted}</span>")), "{body}");
    assert!(body.contains("Deal A") && body.contains("Deal C"));
    assert!(body.contains("0 d in stage"));
    // Won and lost are not columns: moving there is close_deal's job.
    assert!(!body.contains(">Closed Won <"), "{body}");
    // Filter by owner and close date.
    let mine = c.get(&format!("/deals/board?owner={}", rep.id)).await;
    assert!(mine.ok().contains("Deal A") && !mine.body.contains("Deal C"));
    let none = c.get("/deals/board?close_to=2000-01-01").await;
    assert!(!none.ok().contains("Deal A"));
    let bad = c.get("/deals/board?close_to=soon").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    // Move by the menu (a plain form): redirected back with the filters.
    let proposal = app.fx.stage("Proposal").id.to_string();
    let res = c
        .post(
            &format!("/deals/{}/move", a.id),
            &[("stage_id", &proposal), ("owner", &rep.id.to_string())],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(res.location(), format!("/deals/board?owner={}", rep.id));
    let history = store.stage_history(&app.ctx(), a.id).await.unwrap();
    let last = history.last().unwrap();
    assert_eq!(
        (last.from_stage_id, last.to_stage_id),
        (Some(qual.id), app.fx.stage("Proposal").id)
    );
    assert_eq!(last.changed_by, Some(rep.id));
    // As htmx does after a drag: the board back, with a toast.
    c.htmx = true;
    let res = c
        .post(
            &format!("/deals/{}/move", a.id),
            &[("stage_id", &app.fx.stage("Negotiation").id.to_string())],
        )
        .await;
    let body = res.ok();
    assert!(body.starts_with("<div id=\"board\""), "{body}");
    assert!(body.contains("Deal A moved to Negotiation."));
    // A rep cannot move someone else's deal; the toast says why.
    let res = c
        .post(
            &format!("/deals/{}/move", c_deal.id),
            &[("stage_id", &qual.id.to_string())],
        )
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert_eq!(res.header("hx-retarget"), "#toasts");
    // Moving to a closing stage is refused with the tool's hint.
    let won = app.fx.stage("Closed Won").id.to_string();
    let res = c
        .post(&format!("/deals/{}/move", a.id), &[("stage_id", &won)])
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.body.contains("closes the deal"), "{}", res.body);
    app.stop().await;
}

async fn saved_views_are_personal_or_shared(store: &Store) {
    let app = App::start(store, "views").await;
    let mut rep = app.signed_in("rep").await;
    let qs = "f=name&op=contains&v=acme&sort=-name&cursor=junk";
    let res = rep
        .post("/companies/views", &[("name", "My Acme"), ("qs", qs)])
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert!(
        res.location()
            .starts_with("/companies?f=name&op=contains&v=acme&sort=-name&view="),
        "{}",
        res.location()
    );
    assert!(
        !res.location().contains("cursor"),
        "a view keeps no page position"
    );
    let mut manager = app.signed_in("manager").await;
    let res = manager
        .post(
            "/companies/views",
            &[
                ("name", "Team view"),
                ("qs", "f=country&op=eq&v=DE"),
                ("shared", "on"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    let page = rep.get("/companies").await;
    let body = page.ok();
    assert!(body.contains("My Acme") && body.contains("Team view"));
    let mut viewer = app.signed_in("viewer").await;
    let page = viewer.get("/companies").await;
    assert!(page.ok().contains("Team view") && !page.body.contains("My Acme"));
    // Views of one table stay on it.
    assert!(!rep.get("/contacts").await.ok().contains("My Acme"));
    // Only the owner deletes a view.
    let team = store
        .views(&app.fx.ctx(&app.fx.rep), RecordType::Company)
        .await
        .unwrap();
    let shared = team.iter().find(|v| v.shared).unwrap();
    let mine = team.iter().find(|v| !v.shared).unwrap();
    let res = rep
        .post(&format!("/companies/views/{}/delete", shared.id), &[])
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    let res = rep
        .post(&format!("/companies/views/{}/delete", mine.id), &[])
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(
        store
            .views(&app.fx.ctx(&app.fx.rep), RecordType::Company)
            .await
            .unwrap()
            .len(),
        1
    );
    // An empty name is refused.
    let res = rep
        .post("/companies/views", &[("name", " "), ("qs", "")])
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    app.stop().await;
}

async fn bulk_tag_reassign_and_confirmed_delete(store: &Store) {
    let app = App::start(store, "bulk").await;
    let rep = &app.fx.rep;
    let ctx = app.fx.ctx(rep);
    let mut ids = Vec::new();
    for name in ["Ann", "Ben", "Cat", "Dan"] {
        let c: Contact = store
            .create(&ctx, json!({"first_name": name, "owner_id": rep.id}))
            .await
            .unwrap();
        ids.push(c.id.to_string());
    }
    let mut c = app.signed_in("rep").await;
    let table = c.get("/contacts").await;
    assert!(table.ok().contains("id=\"bulk\""));
    assert!(
        !table.body.contains("value=\"delete\""),
        "reps cannot bulk delete"
    );
    let res = c
        .post(
            "/contacts/bulk",
            &[
                ("action", "tag"),
                ("tag", "webinar"),
                ("ids", &ids[0]),
                ("ids", &ids[1]),
                ("ids", &ids[2]),
                ("return_to", "/contacts?sort=first_name"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(res.location(), "/contacts?sort=first_name&done=tagged&n=3");
    let tagged = store
        .tagged(&ctx, RecordType::Contact, "webinar")
        .await
        .unwrap();
    assert_eq!(tagged.len(), 3);
    let notice = c.get(res.location()).await;
    assert!(notice.ok().contains("Tagged 3 record(s)."));
    // A rep may not delete; the tool refuses each one.
    let res = c
        .post(
            "/contacts/bulk",
            &[("action", "delete"), ("ids", &ids[3]), ("confirmed", "yes")],
        )
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.body);
    // A manager reassigns, then deletes after confirming.
    let mut m = app.signed_in("manager").await;
    let res = m
        .post(
            "/contacts/bulk",
            &[
                ("action", "reassign"),
                ("owner_id", &app.fx.manager.id.to_string()),
                ("ids", &ids[3]),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let dan: Contact = store.get(&ctx, ids[3].parse().unwrap()).await.unwrap();
    assert_eq!(dan.owner_id, Some(app.fx.manager.id));
    let confirm = m
        .post(
            "/contacts/bulk",
            &[("action", "delete"), ("ids", &ids[2]), ("ids", &ids[3])],
        )
        .await;
    let body = confirm.ok();
    assert!(
        body.contains("Delete 2 Contacts?") && body.contains("Cat") && body.contains("Dan"),
        "{body}"
    );
    assert_eq!(
        store
            .count_dyn(&ctx, RecordType::Contact, None)
            .await
            .unwrap(),
        4,
        "nothing deleted before confirming"
    );
    let res = m
        .post(
            "/contacts/bulk",
            &[
                ("action", "delete"),
                ("confirmed", "yes"),
                ("ids", &ids[2]),
                ("ids", &ids[3]),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(res.location(), "/contacts?done=deleted&n=2");
    assert_eq!(
        store
            .count_dyn(&ctx, RecordType::Contact, None)
            .await
            .unwrap(),
        2
    );
    // Nothing selected.
    let res = m
        .post("/contacts/bulk", &[("action", "tag"), ("tag", "x")])
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    app.stop().await;
}
