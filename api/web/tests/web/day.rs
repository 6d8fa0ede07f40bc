//! Today, the command palette, the palette's forms and the dashboard over
//! HTTP, on SQLite and PostgreSQL; the palette's semantic search over a real
//! qdrant-edge shard with the real MiniLM embedder (SQLite).

use chrono::{Duration, Utc};
use rapport_crm::model::{Company, Contact, Task, TaskStatus};
use rapport_crm::{FeedbackStatus, RecordType, Score, Store};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{App, unescape};

rapport_crm::both_backends!(
    today_lists_actions_and_records_feedback_through_nba_feedback,
    today_completes_and_reschedules_tasks_in_place,
    today_shows_deals_and_accounts_at_risk_of_the_signed_in_rep_only,
    the_palette_finds_records_by_typo_pages_and_actions,
    the_palettes_forms_create_through_the_tools_and_keep_bad_input,
    the_dashboards_figures_are_the_tools_answers,
    new_posts_need_the_csrf_token,
);

fn ts(d: chrono::DateTime<Utc>) -> String {
    rapport_crm::schema::format_timestamp(&d)
}

async fn task(app: &App, title: &str, assignee: &rapport_crm::model::User, due_days: i64) -> Task {
    app.store
        .create(
            &app.fx.ctx(assignee),
            json!({"title": title, "assignee_id": assignee.id,
                   "due_at": ts(Utc::now() + Duration::days(due_days))}),
        )
        .await
        .expect("task")
}

async fn today_lists_actions_and_records_feedback_through_nba_feedback(store: &Store) {
    let app = App::start_served(store, "today", None).await;
    let late = task(&app, "Send the <b>quote</b>", &app.fx.rep, -3).await;
    let later = task(&app, "Call back Initech", &app.fx.rep, -2).await;
    let third = task(&app, "Book the demo", &app.fx.rep, -1).await;
    let theirs = task(&app, "Manager's own chore", &app.fx.manager, -3).await;
    let ctx = app.ctx();
    let exposed_before = store
        .exposures(&ctx, rapport_pipelines::nba::EXPERIMENT)
        .await
        .unwrap()
        .len();
    let mut c = app.signed_in("rep").await;
    // `/` is Today.
    assert_eq!(c.get("/").await.location(), "/today");
    let page = c.get("/today").await;
    let body = unescape(page.ok());
    let key = format!("overdue_task:task:{}", late.id);
    assert!(body.contains(&format!("value=\"{key}\"")), "{body}");
    assert!(body.contains(&format!("href=\"/tasks/{}\"", late.id)));
    // The one-line reason is the tool's.
    let caller = rapport_tools::Caller::user(&app.fx.rep, rapport_crm::Source::Web);
    let ranked = app
        .registry
        .call(store, &caller, "next_best_actions", json!({"limit": 10}))
        .await
        .unwrap();
    let reason = ranked["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["action_key"] == json!(key))
        .and_then(|a| a["reason"].as_str())
        .expect("the tool ranks it")
        .to_owned();
    assert!(!reason.is_empty());
    assert!(
        body.contains(&unescape(&rapport_web::render::escape(&reason))),
        "{reason} in {body}"
    );
    assert!(
        body.contains("Send the &lt;b&gt;quote&lt;/b&gt;"),
        "labels are text"
    );
    assert!(
        !body.contains("Manager's own chore"),
        "only the rep's own list"
    );
    assert!(!body.contains(&format!("overdue_task:task:{}", theirs.id)));
    // The view counted as an exposure of the ranking experiment.
    let exposed = store
        .exposures(&ctx, rapport_pipelines::nba::EXPERIMENT)
        .await
        .unwrap();
    assert!(
        exposed.len() > exposed_before,
        "the page view is an exposure"
    );
    // Dismiss with a reason (htmx): the action leaves, the feedback is stored.
    c.htmx = true;
    let res = c
        .post(
            "/today/actions",
            &[
                ("action_key", &key),
                ("status", "dismissed"),
                ("reason", "already handled"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert!(
        res.body.contains("Dismissed (already handled)."),
        "{}",
        res.body
    );
    // A dismissal without a reason is refused and stores nothing.
    let k2 = format!("overdue_task:task:{}", later.id);
    let res = c
        .post(
            "/today/actions",
            &[("action_key", &k2), ("status", "dismissed")],
        )
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    // A snooze needs a later day.
    let res = c
        .post(
            "/today/actions",
            &[
                ("action_key", &k2),
                ("status", "snoozed"),
                ("until", "2000-01-01"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    let until = (Utc::now() + Duration::days(3)).date_naive().to_string();
    let res = c
        .post(
            "/today/actions",
            &[
                ("action_key", &k2),
                ("status", "snoozed"),
                ("until", &until),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    // Done, as a plain form: redirected to Today with a notice.
    c.htmx = false;
    let k3 = format!("overdue_task:task:{}", third.id);
    let res = c
        .post("/today/actions", &[("action_key", &k3), ("status", "done")])
        .await;
    assert_eq!(res.location(), "/today?done=done");
    let fb = store.nba_feedback(&ctx, Some(app.fx.rep.id)).await.unwrap();
    assert_eq!(fb.len(), 3, "{fb:?}");
    assert_eq!(
        (
            fb[0].action_key.as_str(),
            fb[0].status,
            fb[0].reason.as_deref()
        ),
        (
            key.as_str(),
            FeedbackStatus::Dismissed,
            Some("already handled")
        )
    );
    assert_eq!(fb[1].status, FeedbackStatus::Snoozed);
    assert_eq!(
        fb[1].snoozed_until.map(|u| u.date_naive().to_string()),
        Some(until.clone())
    );
    assert_eq!(fb[2].status, FeedbackStatus::Done);
    // Audited as the tool call, from the web.
    let mine = store.actions_of(&ctx, app.fx.rep.id, 50).await.unwrap();
    assert!(
        mine.iter()
            .any(|e| e.action == "tool:nba_feedback" && e.source == "web"),
        "{mine:?}"
    );
    // All three have left the list.
    let body = unescape(c.get("/today?done=done").await.ok());
    for k in [&key, &k2, &k3] {
        assert!(!body.contains(&format!("value=\"{k}\"")), "{k} is gone");
    }
    assert!(body.contains("Marked done."));
    // A viewer sees Today without controls and is refused if they post.
    let mut v = app.signed_in("viewer").await;
    let page = v.get("/today").await;
    assert!(!page.ok().contains("action=\"/today/actions\""));
    let res = v
        .post(
            "/today/actions",
            &[("action_key", &key), ("status", "done")],
        )
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.body);
    app.stop().await;
}

async fn today_completes_and_reschedules_tasks_in_place(store: &Store) {
    let app = App::start_served(store, "tasks", None).await;
    let overdue = task(&app, "Chase the invoice", &app.fx.rep, -2).await;
    let soon = task(&app, "Prepare the QBR", &app.fx.rep, 3).await;
    let far = task(&app, "Plan next year", &app.fx.rep, 60).await;
    let theirs = task(&app, "Manager task", &app.fx.manager, -1).await;
    let mut c = app.signed_in("rep").await;
    let body = c.get("/today").await.ok().to_owned();
    assert!(body.contains(&format!("id=\"task-{}\"", overdue.id)));
    assert!(body.contains(&format!("id=\"task-{}\"", soon.id)));
    assert!(
        !body.contains("Plan next year"),
        "beyond the upcoming window"
    );
    assert!(!body.contains("Manager task"));
    let _ = far;
    // Complete in place: the tasks section comes back without it.
    c.htmx = true;
    let res = c
        .post(&format!("/today/tasks/{}/complete", overdue.id), &[])
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert!(
        res.body.starts_with("<section id=\"today-tasks\""),
        "{}",
        res.body
    );
    assert!(!res.body.contains(&format!("id=\"task-{}\"", overdue.id)));
    assert!(res.body.contains("Completed: Chase the invoice."));
    let done: Task = store.get(&app.ctx(), overdue.id).await.unwrap();
    assert_eq!(done.status, TaskStatus::Done);
    // Reschedule in place.
    let day = (Utc::now() + Duration::days(5)).date_naive().to_string();
    let res = c
        .post(
            &format!("/today/tasks/{}/reschedule", soon.id),
            &[("due", &day)],
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert!(res.body.contains(&format!("now due {day}")));
    let moved: Task = store.get(&app.ctx(), soon.id).await.unwrap();
    assert_eq!(
        moved.due_at.map(|d| d.date_naive().to_string()),
        Some(day.clone())
    );
    // A bad date changes nothing.
    let res = c
        .post(
            &format!("/today/tasks/{}/reschedule", soon.id),
            &[("due", "yesterday")],
        )
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    // Someone else's task: refused by the tool, unchanged.
    let res = c
        .post(&format!("/today/tasks/{}/complete", theirs.id), &[])
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.body);
    let still: Task = store.get(&app.ctx(), theirs.id).await.unwrap();
    assert_eq!(still.status, TaskStatus::Open);
    app.stop().await;
}

async fn today_shows_deals_and_accounts_at_risk_of_the_signed_in_rep_only(store: &Store) {
    let app = App::start_served(store, "risk", None).await;
    let ctx = app.ctx();
    let late = app
        .deal(&app.fx.rep, "Late renewal", "Proposal", 9000.0)
        .await;
    store
        .update::<rapport_crm::model::Deal>(
            &ctx,
            late.id,
            json!({"expected_close_date": (Utc::now() - Duration::days(10)).date_naive().to_string()}),
        )
        .await
        .unwrap();
    let fine = app.deal(&app.fx.rep, "Fresh deal", "Proposal", 100.0).await;
    let other = app
        .deal(&app.fx.manager, "Manager's late deal", "Proposal", 5.0)
        .await;
    store
        .update::<rapport_crm::model::Deal>(
            &ctx,
            other.id,
            json!({"expected_close_date": "2020-01-01"}),
        )
        .await
        .unwrap();
    let acme = app.company(&app.fx.rep, "Acme Risky").await;
    let calm = app.company(&app.fx.rep, "Calm Co").await;
    let theirs = app.company(&app.fx.manager, "Manager Risky").await;
    let mut c = app.signed_in("rep").await;
    // Before any churn model: the section says why it is empty.
    let body = c.get("/today").await.ok().to_owned();
    assert!(body.contains("Late renewal"), "{body}");
    assert!(body.contains("Expected to close"), "{body}");
    assert!(!body.contains("Fresh deal"));
    assert!(!body.contains("Manager&#x27;s late deal") && !body.contains("Manager's late deal"));
    assert!(body.contains("No churn scores yet"), "{body}");
    let _ = fine;
    // With scores: the rep's accounts at or above the threshold.
    let score = |id, s| Score {
        record_type: "company".into(),
        record_id: id,
        task: "churn".into(),
        score: s,
        reasons: json!([]),
        model_version: 1,
        scored_at: Utc::now(),
    };
    let mut tx = store.begin().await.unwrap();
    tx.put_scores(
        &ctx,
        &[
            score(acme.id, 0.81),
            score(calm.id, 0.1),
            score(theirs.id, 0.9),
        ],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let body = c.get("/today").await.ok().to_owned();
    assert!(
        body.contains("Acme Risky") && body.contains("churn risk 81%"),
        "{body}"
    );
    assert!(!body.contains("Calm Co"));
    assert!(!body.contains("Manager Risky"));
    app.stop().await;
}

async fn the_palette_finds_records_by_typo_pages_and_actions(store: &Store) {
    let app = App::start(store, "palette").await;
    let acme = app.company(&app.fx.rep, "Acme Logistics").await;
    let dana: Contact = store
        .create(
            &app.fx.ctx(&app.fx.rep),
            json!({"first_name": "Dana", "last_name": "Lee", "email": "dana@acme.example",
                   "company_id": acme.id, "owner_id": app.fx.rep.id}),
        )
        .await
        .unwrap();
    let _evil: Company = store
        .create(
            &app.fx.ctx(&app.fx.rep),
            json!({"name": "<img src=x onerror=alert(1)> Dana", "owner_id": app.fx.rep.id}),
        )
        .await
        .unwrap();
    let other = rapport_crm::testing::Fixture::new(store, "elsewhere")
        .await
        .unwrap();
    let _: Contact = store
        .create(
            &other.admin_ctx(),
            json!({"first_name": "Dana", "last_name": "Leeward"}),
        )
        .await
        .unwrap();
    let mut c = app.signed_in("rep").await;
    // htmx asks for the options: a typo still finds Dana Lee, first.
    let res = c
        .get_fragment("/palette?q=Dana%20Leee", "palette-list")
        .await;
    let body = unescape(res.ok());
    let first = body.find("role=\"option\"").expect("options");
    assert!(
        body[first..].starts_with(&format!(
            "role=\"option\" id=\"pal-opt-1\" class=\"pal-option\" aria-selected=\"false\" data-href=\"/contacts/{}\"",
            dana.id
        )),
        "{body}"
    );
    assert!(
        body.contains("Dana Lee &lt;dana@acme.example&gt;, Acme Logistics"),
        "{body}"
    );
    assert!(
        !body.contains("Leeward"),
        "another workspace's records stay there"
    );
    assert!(!body.contains("<img"), "names are text: {body}");
    assert!(
        body.contains("Semantic search is not available on this server"),
        "{body}"
    );
    // By email.
    let body = unescape(
        c.get_fragment("/palette?q=dana@acme.example", "palette-list")
            .await
            .ok(),
    );
    assert!(
        body.contains(&format!("data-href=\"/contacts/{}\"", dana.id)),
        "{body}"
    );
    // Pages and actions by their words.
    let body = unescape(
        c.get_fragment("/palette?q=new%20d", "palette-list")
            .await
            .ok(),
    );
    assert!(body.contains("data-href=\"/new/deal\""), "{body}");
    assert!(!body.contains("data-href=\"/new/contact\""));
    let body = unescape(c.get_fragment("/palette?q=dash", "palette-list").await.ok());
    assert!(body.contains("data-href=\"/dashboard\""), "{body}");
    // An empty query lists pages and actions.
    let body = unescape(c.get_fragment("/palette?q=", "palette-list").await.ok());
    assert!(body.contains("data-href=\"/today\"") && body.contains("data-href=\"/new/call\""));
    // Without htmx it is a page of links.
    let page = unescape(c.get("/palette?q=Dana%20Leee").await.ok());
    assert!(
        page.contains(&format!("<a href=\"/contacts/{}\">", dana.id)),
        "{page}"
    );
    assert!(page.contains("<h1>Search</h1>"));
    // Every signed-in page carries the palette dialog and its script.
    let today = c.get("/companies").await;
    assert!(today.ok().contains("role=\"combobox\""));
    assert!(today.body.contains("palette.js"));
    // A viewer gets no actions.
    let mut v = app.signed_in("viewer").await;
    let body = unescape(v.get_fragment("/palette?q=", "palette-list").await.ok());
    assert!(!body.contains("/new/"), "{body}");
    // Too long a query is cut, not an error.
    let long = "a".repeat(400);
    c.get_fragment(&format!("/palette?q={long}"), "palette-list")
        .await
        .ok();
    app.stop().await;
}

async fn the_palettes_forms_create_through_the_tools_and_keep_bad_input(store: &Store) {
    let app = App::start(store, "newforms").await;
    let acme = app.company(&app.fx.rep, "Acme Logistics").await;
    app.company(&app.fx.rep, "Globex East").await;
    app.company(&app.fx.rep, "Globex West").await;
    let mut c = app.signed_in("rep").await;
    for what in ["contact", "deal", "task", "call"] {
        let page = c.get(&format!("/new/{what}")).await;
        assert!(page.ok().contains(&format!("action=\"/new/{what}\"")));
    }
    assert_eq!(c.get("/new/spaceship").await.status, StatusCode::NOT_FOUND);
    // A contact at a company named loosely.
    let res = c
        .post(
            "/new/contact",
            &[
                ("first_name", "Priya"),
                ("last_name", "Raman"),
                ("email", "priya@acme.example"),
                ("company", "acme"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let contacts = store
        .list::<Contact>(&app.ctx(), &rapport_crm::ListQuery::default())
        .await
        .unwrap()
        .items;
    let priya = contacts
        .iter()
        .find(|c| c.first_name == "Priya")
        .expect("created");
    assert_eq!(priya.company_id, Some(acme.id));
    assert_eq!(res.location(), format!("/contacts/{}?done=saved", priya.id));
    // An ambiguous company: the form again, with what was typed, nothing made.
    let res = c
        .post(
            "/new/deal",
            &[
                ("name", "Globex expansion"),
                ("value", "12,000"),
                ("company", "Globex"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", res.body);
    assert!(res.body.contains("role=\"alert\""));
    assert!(res.body.contains("value=\"Globex expansion\""));
    assert!(res.body.contains("Globex East") && res.body.contains("Globex West"));
    let deals = store
        .count_dyn(&app.ctx(), RecordType::Deal, None)
        .await
        .unwrap();
    assert_eq!(deals, 0);
    let res = c
        .post(
            "/new/deal",
            &[
                ("name", "Acme pilot"),
                ("value", "12,000"),
                ("company", "Acme Logistics"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    // A task for me about Priya; a call with Priya.
    let res = c
        .post(
            "/new/task",
            &[
                ("title", "Send Priya the deck"),
                ("due", "2030-01-02"),
                ("about", "Priya Raman"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let tasks = store
        .list::<Task>(&app.ctx(), &rapport_crm::ListQuery::default())
        .await
        .unwrap()
        .items;
    assert_eq!(tasks[0].assignee_id, Some(app.fx.rep.id));
    assert_eq!(tasks[0].contact_id, Some(priya.id));
    let res = c
        .post(
            "/new/call",
            &[
                ("with", "priya@acme.example"),
                ("body", "Wants the SSO add-on"),
            ],
        )
        .await;
    assert_eq!(
        res.location(),
        format!("/contacts/{}?done=logged", priya.id)
    );
    let acts = store
        .list_dyn(&app.ctx(), RecordType::Activity, &Default::default())
        .await
        .unwrap()
        .items;
    assert_eq!(acts.len(), 1);
    assert_eq!(acts[0]["kind"], json!("call"));
    assert_eq!(
        acts[0]["company_id"],
        json!(acme.id),
        "the contact's company"
    );
    // A viewer may not.
    let mut v = app.signed_in("viewer").await;
    assert_eq!(v.get("/new/contact").await.status, StatusCode::FORBIDDEN);
    let res = v.post("/new/contact", &[("first_name", "Nope")]).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    app.stop().await;
}

async fn new_posts_need_the_csrf_token(store: &Store) {
    let app = App::start_served(store, "daycsrf", None).await;
    let t = task(&app, "Keep me open", &app.fx.rep, -1).await;
    let mut c = app.signed_in("rep").await;
    let key = format!("overdue_task:task:{}", t.id);
    let posts: Vec<(String, Vec<(&str, &str)>)> = vec![
        (
            "/today/actions".into(),
            vec![("action_key", &key), ("status", "done")],
        ),
        (format!("/today/tasks/{}/complete", t.id), vec![]),
        (
            format!("/today/tasks/{}/reschedule", t.id),
            vec![("due", "2031-01-01")],
        ),
        ("/new/contact".into(), vec![("first_name", "Forged")]),
        ("/new/call".into(), vec![("with", "x"), ("body", "x")]),
    ];
    for (path, fields) in &posts {
        let res = c.post_raw(path, fields, None).await;
        assert_eq!(res.status, StatusCode::FORBIDDEN, "{path}: {}", res.body);
        let res = c.post_raw(path, fields, Some("forged")).await;
        assert_eq!(res.status, StatusCode::FORBIDDEN, "{path}");
    }
    let still: Task = store.get(&app.ctx(), t.id).await.unwrap();
    assert_eq!(still.status, TaskStatus::Open);
    assert!(
        store
            .nba_feedback(&app.ctx(), None)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .count_dyn(&app.ctx(), RecordType::Contact, None)
            .await
            .unwrap(),
        0
    );
    app.stop().await;
}

/// A few interactions of this week with sentiment scores (the demo data has
/// none until a sentiment model scores them), so the trend has points.
pub async fn add_scored_interactions(app: &App) {
    let ctx = app.fx.ctx(&app.fx.rep);
    for (i, s) in [0.6, -0.4, 0.2].into_iter().enumerate() {
        let _: rapport_crm::model::Activity = app
            .store
            .create(
                &ctx,
                json!({"kind": "note", "body": format!("Scored note {i}"), "sentiment": s,
                       "occurred_at": ts(Utc::now() - Duration::seconds(i as i64 + 1)),
                       "owner_id": app.fx.rep.id}),
            )
            .await
            .expect("activity");
    }
}

/// The numbers of a figure's table: row label → the cells' `data-value`s.
pub fn figure_rows(html: &str, figure: &str) -> Vec<(String, Vec<String>)> {
    let start = html
        .find(&format!("data-figure=\"{figure}\""))
        .unwrap_or_else(|| panic!("no figure {figure}"));
    let end = html[start..].find("</table>").expect("table end") + start;
    let table = &html[start..end];
    let mut rows = Vec::new();
    for tr in table.split("<tr>").skip(2) {
        let Some(label) = tr
            .split("<th scope=\"row\">")
            .nth(1)
            .and_then(|s| s.split("</th>").next())
        else {
            continue;
        };
        let values = tr
            .split("data-value=\"")
            .skip(1)
            .filter_map(|s| s.split('"').next())
            .map(str::to_owned)
            .collect();
        rows.push((label.to_owned(), values));
    }
    rows
}

/// Checks the pipeline and forecast tables against the tools' answers.
pub fn assert_figures_match(html: &str, summary: &Value, forecast: &Value) {
    let close = |a: &str, b: f64, what: &str| {
        let a: f64 = a.parse().unwrap_or_else(|_| panic!("{what}: {a}"));
        assert!((a - b).abs() < 1e-6, "{what}: page {a}, tool {b}");
    };
    let rows = figure_rows(html, "pipeline");
    let stages = summary["stages"].as_array().expect("stages");
    assert_eq!(rows.len(), stages.len() + 1, "stages and the open total");
    for (s, (label, cells)) in stages.iter().zip(&rows) {
        assert_eq!(label, s["name"].as_str().unwrap());
        close(&cells[0], s["deals"].as_f64().unwrap(), label);
        close(&cells[1], s["total_value"].as_f64().unwrap(), label);
        close(&cells[2], s["weighted_value"].as_f64().unwrap(), label);
    }
    let open = &rows[stages.len()].1;
    close(
        &open[0],
        summary["open_deals"].as_f64().unwrap(),
        "open deals",
    );
    close(
        &open[1],
        summary["open_value"].as_f64().unwrap(),
        "open value",
    );
    close(
        &open[2],
        summary["open_weighted_value"].as_f64().unwrap(),
        "open weighted",
    );
    let rows = figure_rows(html, "forecast");
    let months = forecast["months"].as_array().expect("months");
    for (m, (label, cells)) in months.iter().zip(&rows) {
        assert_eq!(label, m["month"].as_str().unwrap());
        close(&cells[0], m["deals"].as_f64().unwrap(), label);
        close(&cells[1], m["total_value"].as_f64().unwrap(), label);
        close(&cells[2], m["weighted_value"].as_f64().unwrap(), label);
    }
    let unscheduled = forecast["unscheduled"]["deals"].as_u64().unwrap();
    assert_eq!(
        rows.len(),
        months.len() + usize::from(unscheduled > 0),
        "months and the undated deals"
    );
}

async fn the_dashboards_figures_are_the_tools_answers(store: &Store) {
    let app = App::start(store, "dash").await;
    let mut c = app.signed_in("rep").await;
    // An empty workspace renders, saying what is missing.
    let body = c.get("/dashboard").await.ok().to_owned();
    assert!(body.contains("No activity in the last"), "{body}");
    app.seed(25).await;
    add_scored_interactions(&app).await;
    let page = c.get("/dashboard").await;
    let html = page.ok();
    let caller = rapport_tools::Caller::user(&app.fx.rep, rapport_crm::Source::Web);
    let summary = app
        .registry
        .call(store, &caller, "pipeline_summary", json!({}))
        .await
        .unwrap();
    let forecast = app
        .registry
        .call(store, &caller, "forecast", json!({}))
        .await
        .unwrap();
    assert!(summary["open_deals"].as_u64().unwrap() > 0, "{summary}");
    assert_figures_match(html, &summary, &forecast);
    // Five charts, inline SVG the CSP allows.
    assert_eq!(
        html.matches("<svg class=\"chart\" role=\"img\"").count(),
        5,
        "{html}"
    );
    assert!(!html.contains("style="), "no style attribute anywhere");
    assert!(html.contains("currentColor"));
    // Every rep with activity is a row of the volume table.
    let rows = figure_rows(html, "activity");
    assert!(!rows.is_empty());
    let week_total: u64 = rows
        .iter()
        .map(|(_, v)| v.last().unwrap().parse::<u64>().unwrap())
        .sum();
    let since = rapport_web::dashboard::week_start(
        Utc::now().date_naive(),
        rapport_web::dashboard::WEEKS - 1,
    );
    let in_window = store
        .count_dyn(
            &app.ctx(),
            RecordType::Activity,
            Some(&rapport_crm::Filter::cond(
                "occurred_at",
                rapport_crm::Op::Gte,
                json!(format!("{since}T00:00:00Z")),
            )),
        )
        .await
        .unwrap();
    assert_eq!(
        week_total as i64, in_window,
        "every activity of the window counted once"
    );
    // The sentiment of this week: the mean of the three scored notes.
    let rows = figure_rows(html, "sentiment");
    let this_week = &rows.last().unwrap().1;
    assert_eq!(this_week[0], "3");
    assert!(
        (this_week[1].parse::<f64>().unwrap() - 0.4 / 3.0).abs() < 1e-9,
        "{this_week:?}"
    );
    app.stop().await;
}

/// The palette's interactions by meaning: a real qdrant-edge shard and the
/// real MiniLM embedder (fetched into the model cache like the pipelines'
/// tests), the memory `rapport serve --search` hands the registry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_palette_finds_interactions_by_meaning() {
    use std::sync::Arc;

    use indicatif::ProgressBar;
    use rapport_index::EdgeIndex;
    use rapport_pipelines::memory::{Chunker, IngestOptions, Memory};

    let db = rapport_crm::testing::TestDb::sqlite().await;
    let store = &db.store;
    let dir = tempfile::tempdir().unwrap();
    let (embedder, chunker) = tokio::task::spawn_blocking(|| {
        (
            rapport_models::Embedder::load_default(Default::default()).expect("MiniLM"),
            Chunker::minilm(Default::default()).expect("chunker"),
        )
    })
    .await
    .unwrap();
    let index = EdgeIndex::open(&dir.path().join("index"), embedder.dim())
        .await
        .unwrap();
    let memory = Memory::new(store.clone(), Arc::new(index), embedder, chunker).unwrap();
    let app = App::start_served(store, "semantic", Some(memory.clone())).await;
    let ctx = app.fx.ctx(&app.fx.rep);
    let acme = app.company(&app.fx.rep, "Acme Logistics").await;
    let dana: Contact = store
        .create(
            &ctx,
            json!({"first_name": "Dana", "last_name": "Lee", "company_id": acme.id, "owner_id": app.fx.rep.id}),
        )
        .await
        .unwrap();
    let mk = |kind: &str, subject: &str, body: &str| {
        json!({"kind": kind, "subject": subject, "body": body, "occurred_at": "2026-10-01T10:00:00Z",
               "company_id": acme.id, "contact_id": dana.id, "owner_id": app.fx.rep.id})
    };
    let pricing: rapport_crm::model::Activity = store
        .create(
            &ctx,
            mk(
                "email",
                "Re: quote",
                "They are worried about price: the quote is above their budget for next year.",
            ),
        )
        .await
        .unwrap();
    let _other: rapport_crm::model::Activity = store
        .create(
            &ctx,
            mk(
                "call",
                "Security review",
                "Security review: they need the SOC 2 Type II report before signing.",
            ),
        )
        .await
        .unwrap();
    memory
        .ingest(&IngestOptions::default(), &ProgressBar::hidden())
        .await
        .unwrap();
    let mut c = app.signed_in("rep").await;
    let res = c
        .get_fragment("/palette?q=too%20expensive%20for%20them", "palette-list")
        .await;
    let body = unescape(res.ok());
    let group = body
        .find("aria-label=\"Interactions\"")
        .expect("an interactions group");
    let first = &body[group..];
    assert!(
        first.contains(&format!("data-href=\"/activities/{}\"", pricing.id)),
        "{body}"
    );
    let option = &first[first.find("role=\"option\"").unwrap()..];
    let option = &option[..option.find("</div>").unwrap()];
    assert!(
        option.contains(&format!("data-href=\"/activities/{}\"", pricing.id)),
        "best first: {body}"
    );
    assert!(option.contains("Email: Re: quote"), "{option}");
    assert!(
        option.contains("2026-10-01 · Dana Lee · Acme Logistics"),
        "{option}"
    );
    assert!(
        option.contains("worried about price"),
        "the snippet: {option}"
    );
    assert!(!body.contains("not available"), "{body}");
    app.stop().await;
    db.cleanup().await;
}
