//! The tool suite. Every case runs twice: on a fresh SQLite file and on a fresh
//! PostgreSQL database (`RAPPORT_TEST_POSTGRES_URL`, default the local server).
//! Each tool is checked for its happy path, invalid arguments (the error names
//! the field and nothing is written), a missing record, a refused caller, and
//! rollback when a step fails midway.

use rapport_crm::model::{Role, User};
use rapport_crm::testing::Fixture;
use rapport_crm::{Ctx, ListQuery, RecordType, Source, Store};
use rapport_tools::{Caller, ErrorCode, Registry, ToolError};
use serde_json::{Value, json};

rapport_crm::both_backends!(
    record_tools_happy_path_for_every_type,
    record_tools_reject_bad_arguments_and_write_nothing,
    record_tools_report_missing_records,
    permissions_follow_role_and_ownership,
    each_call_writes_one_audit_entry,
    find_records_ranks_and_reports_ambiguity,
    log_activity_links_and_creates_follow_up,
    log_activity_rolls_back_when_a_step_fails,
    move_deal_stage_by_name_and_id,
    close_deal_wins_and_loses_with_reason,
    update_deal_cannot_close_or_reopen_a_deal,
    task_tools_complete_reschedule_and_list_mine,
    tags_are_added_and_removed,
    list_users_is_read_only_lookup,
    pipeline_summary_counts_and_weights,
    unknown_tool_is_not_found,
    pipelines_and_stages_are_for_managers,
    reassign_owner_moves_records_between_users,
    timeline_orders_activities_tasks_and_stage_changes,
    forecast_groups_open_deals_by_close_month,
    merge_contacts_moves_everything_to_the_survivor,
    a_tool_failing_after_writes_leaves_nothing,
);

struct Env {
    store: Store,
    fx: Fixture,
    tools: Registry,
}

impl Env {
    async fn new(store: &Store, name: &str) -> Env {
        Env {
            store: store.clone(),
            fx: Fixture::new(store, name).await.expect("fixture"),
            tools: Registry::new(),
        }
    }

    fn caller(&self, user: &User) -> Caller {
        Caller {
            workspace_id: self.fx.workspace_id,
            user_id: user.id,
            role: user.role,
            source: Source::Agent,
            session_id: Some("test-session".into()),
            agent: None,
        }
    }

    async fn call(&self, user: &User, name: &str, args: Value) -> Result<Value, ToolError> {
        self.tools
            .call(&self.store, &self.caller(user), name, args)
            .await
    }

    async fn ok(&self, user: &User, name: &str, args: Value) -> Value {
        self.call(user, name, args.clone())
            .await
            .unwrap_or_else(|e| panic!("{name}({args}) failed: {e:?}"))
    }

    async fn err(&self, user: &User, name: &str, args: Value) -> ToolError {
        match self.call(user, name, args.clone()).await {
            Ok(v) => panic!("{name}({args}) should fail, returned {v}"),
            Err(e) => e,
        }
    }

    fn admin(&self) -> &User {
        &self.fx.admin
    }

    fn ctx(&self) -> Ctx {
        self.fx.admin_ctx()
    }

    async fn count(&self, rt: RecordType) -> usize {
        self.store
            .list_dyn(&self.ctx(), rt, &ListQuery::default().limit(500))
            .await
            .unwrap()
            .items
            .len()
    }

    /// Tool-call audit entries of every user, newest first.
    async fn tool_audits(&self) -> Vec<rapport_crm::model::AuditEntry> {
        let mut all = Vec::new();
        for u in [
            &self.fx.admin,
            &self.fx.manager,
            &self.fx.rep,
            &self.fx.viewer,
        ] {
            let entries = self.store.actions_of(&self.ctx(), u.id, 500).await.unwrap();
            all.extend(
                entries
                    .into_iter()
                    .filter(|e| e.action.starts_with("tool:")),
            );
        }
        all
    }

    /// Asserts a call failed with `code` on `field` and left no trace.
    async fn refused(
        &self,
        user: &User,
        name: &str,
        args: Value,
        code: ErrorCode,
        field: Option<&str>,
    ) -> ToolError {
        let counts = self.snapshot().await;
        let err = self.err(user, name, args.clone()).await;
        assert_eq!(err.code, code, "{name}({args}): {err:?}");
        if let Some(f) = field {
            assert_eq!(err.field.as_deref(), Some(f), "{name}({args}): {err:?}");
        }
        assert_eq!(
            self.snapshot().await,
            counts,
            "{name}({args}) wrote something"
        );
        err
    }

    async fn snapshot(&self) -> Vec<usize> {
        let mut v = Vec::new();
        for rt in RecordType::ALL {
            v.push(self.count(rt).await);
        }
        v.push(self.tool_audits().await.len());
        v
    }
}

fn id(v: &Value) -> i64 {
    v["id"].as_i64().unwrap_or_else(|| panic!("no id in {v}"))
}

async fn record_tools_happy_path_for_every_type(store: &Store) {
    let env = Env::new(store, "happy").await;
    let admin = env.admin();
    let acme = env
        .ok(
            admin,
            "create_company",
            json!({"name": "Acme", "domain": "acme.com"}),
        )
        .await;
    assert_eq!(
        acme["owner_id"],
        json!(admin.id),
        "owner defaults to the caller"
    );
    let dana = env
        .ok(
            admin,
            "create_contact",
            json!({"first_name": "Dana", "last_name": "Lee", "company_id": id(&acme)}),
        )
        .await;
    let cases = [
        (
            "company",
            "companies",
            json!({"name": "Globex"}),
            json!({"industry": "Energy"}),
        ),
        (
            "contact",
            "contacts",
            json!({"first_name": "Sam", "email": "sam@globex.com"}),
            json!({"title": "CTO"}),
        ),
        (
            "lead",
            "leads",
            json!({"name": "Kim Park", "source": "web"}),
            json!({"status": "working"}),
        ),
        (
            "deal",
            "deals",
            json!({"name": "Globex pilot", "value": 5000, "contact_ids": [id(&dana)]}),
            json!({"value": 7500}),
        ),
        (
            "activity",
            "activities",
            json!({"kind": "note", "body": "Met at the fair.", "contact_id": id(&dana)}),
            json!({"subject": "Fair"}),
        ),
        (
            "task",
            "tasks",
            json!({"title": "Send pricing", "due_at": "2026-11-24T09:00:00Z"}),
            json!({"priority": "high"}),
        ),
    ];
    for (one, many, create, change) in cases {
        let made = env
            .ok(admin, &format!("create_{one}"), create.clone())
            .await;
        let got = env
            .ok(admin, &format!("get_{one}"), json!({"id": id(&made)}))
            .await;
        assert_eq!(got, made, "{one}");
        let mut patch = change.clone();
        patch["id"] = json!(id(&made));
        let changed = env.ok(admin, &format!("update_{one}"), patch).await;
        for (k, v) in change.as_object().unwrap() {
            assert_eq!(
                &changed[k]
                    .as_f64()
                    .map(Value::from)
                    .unwrap_or(changed[k].clone()),
                &v.as_f64().map(Value::from).unwrap_or(v.clone()),
                "{one}.{k}"
            );
        }
        let page = env
            .ok(admin, &format!("list_{many}"), json!({"filter": {"field": "id", "op": "eq", "value": id(&made)}, "sort": {"field": "id", "direction": "desc"}, "limit": 5}))
            .await;
        assert_eq!(page["items"].as_array().unwrap().len(), 1, "{many}");
        assert_eq!(page["items"][0]["id"], made["id"]);
        if one != "deal" && one != "contact" {
            let gone = env
                .ok(
                    &env.fx.manager,
                    &format!("delete_{one}"),
                    json!({"id": id(&made)}),
                )
                .await;
            assert_eq!(id(&gone), id(&made));
            env.refused(
                admin,
                &format!("get_{one}"),
                json!({"id": id(&made)}),
                ErrorCode::NotFound,
                None,
            )
            .await;
        }
    }
    // A deal still referenced by its activity cannot go: a conflict, not a crash.
    let deal = env.ok(admin, "create_deal", json!({"name": "Ref"})).await;
    env.ok(
        admin,
        "create_activity",
        json!({"kind": "note", "body": "x", "deal_id": id(&deal)}),
    )
    .await;
    env.refused(
        admin,
        "delete_deal",
        json!({"id": id(&deal)}),
        ErrorCode::Conflict,
        None,
    )
    .await;
}

async fn record_tools_reject_bad_arguments_and_write_nothing(store: &Store) {
    let env = Env::new(store, "badargs").await;
    let admin = env.admin();
    use ErrorCode::InvalidArgument as Inv;
    env.refused(
        admin,
        "create_contact",
        json!({"last_name": "Lee"}),
        Inv,
        Some("first_name"),
    )
    .await;
    env.refused(
        admin,
        "create_contact",
        json!({"first_name": 5}),
        Inv,
        Some("first_name"),
    )
    .await;
    env.refused(
        admin,
        "create_contact",
        json!({"first_name": "D", "nickname": "x"}),
        Inv,
        Some("nickname"),
    )
    .await;
    env.refused(
        admin,
        "create_contact",
        json!({"first_name": "D", "email": "not-an-email"}),
        Inv,
        Some("email"),
    )
    .await;
    env.refused(
        admin,
        "create_contact",
        json!({"first_name": "D", "id": 9}),
        Inv,
        Some("id"),
    )
    .await;
    env.refused(
        admin,
        "create_deal",
        json!({"name": "D", "value": -5}),
        Inv,
        Some("value"),
    )
    .await;
    env.refused(
        admin,
        "create_task",
        json!({"title": "T", "due_at": "next tuesday"}),
        Inv,
        Some("due_at"),
    )
    .await;
    env.refused(
        admin,
        "create_lead",
        json!({"name": "L", "status": "hot"}),
        Inv,
        Some("status"),
    )
    .await;
    env.refused(
        admin,
        "get_company",
        json!({"id": "seven"}),
        Inv,
        Some("id"),
    )
    .await;
    env.refused(admin, "get_company", json!({}), Inv, Some("id"))
        .await;
    env.refused(
        admin,
        "get_company",
        json!({"id": 1, "extra": true}),
        Inv,
        Some("extra"),
    )
    .await;
    env.refused(
        admin,
        "update_company",
        json!({"name": "x"}),
        Inv,
        Some("id"),
    )
    .await;
    env.refused(
        admin,
        "list_deals",
        json!({"filter": {"field": "colour", "op": "eq", "value": "red"}}),
        Inv,
        Some("colour"),
    )
    .await;
    env.refused(
        admin,
        "list_deals",
        json!({"filter": {"field": "value", "op": "gt", "value": "lots"}}),
        Inv,
        Some("value"),
    )
    .await;
    env.refused(admin, "list_deals", json!({"limit": 0}), Inv, Some("limit"))
        .await;
    env.refused(
        admin,
        "list_deals",
        json!({"limit": "ten"}),
        Inv,
        Some("limit"),
    )
    .await;
    env.refused(
        admin,
        "list_deals",
        json!({"sort": {"field": "custom"}}),
        Inv,
        Some("sort"),
    )
    .await;
    let e = env
        .refused(admin, "create_company", json!("Acme"), Inv, None)
        .await;
    assert!(e.field.is_some(), "{e:?}");
}

async fn record_tools_report_missing_records(store: &Store) {
    let env = Env::new(store, "missing").await;
    let admin = env.admin();
    for (one, _) in [
        ("company", 0),
        ("contact", 0),
        ("lead", 0),
        ("deal", 0),
        ("activity", 0),
        ("task", 0),
    ] {
        let e = env
            .refused(
                admin,
                &format!("get_{one}"),
                json!({"id": 987654}),
                ErrorCode::NotFound,
                None,
            )
            .await;
        assert!(e.hint.is_some(), "{e:?}");
        env.refused(
            admin,
            &format!("update_{one}"),
            json!({"id": 987654}),
            ErrorCode::NotFound,
            None,
        )
        .await;
        env.refused(
            admin,
            &format!("delete_{one}"),
            json!({"id": 987654}),
            ErrorCode::NotFound,
            None,
        )
        .await;
    }
    // A reference to a missing record names the field.
    env.refused(
        admin,
        "create_contact",
        json!({"first_name": "D", "company_id": 987654}),
        ErrorCode::NotFound,
        Some("company_id"),
    )
    .await;
    // Records of another workspace look exactly like missing ones.
    let other = Env::new(store, "missing-other").await;
    let theirs = other
        .ok(other.admin(), "create_company", json!({"name": "Theirs"}))
        .await;
    env.refused(
        admin,
        "get_company",
        json!({"id": id(&theirs)}),
        ErrorCode::NotFound,
        None,
    )
    .await;
}

async fn permissions_follow_role_and_ownership(store: &Store) {
    let env = Env::new(store, "perm").await;
    let (fx, admin) = (&env.fx, env.admin());
    use ErrorCode::PermissionDenied as Denied;
    let mine = env
        .ok(&fx.rep, "create_company", json!({"name": "Rep Co"}))
        .await;
    assert_eq!(mine["owner_id"], json!(fx.rep.id));
    let theirs = env
        .ok(admin, "create_company", json!({"name": "Admin Co"}))
        .await;

    // Viewers read but never write.
    env.ok(&fx.viewer, "get_company", json!({"id": id(&mine)}))
        .await;
    env.ok(&fx.viewer, "list_companies", json!({})).await;
    let e = env
        .refused(
            &fx.viewer,
            "create_company",
            json!({"name": "V"}),
            Denied,
            None,
        )
        .await;
    assert!(e.message.contains("viewers"), "{e:?}");
    env.refused(
        &fx.viewer,
        "update_company",
        json!({"id": id(&mine), "city": "Oslo"}),
        Denied,
        None,
    )
    .await;

    // Reps change their own records only, and cannot give records away.
    env.ok(
        &fx.rep,
        "update_company",
        json!({"id": id(&mine), "city": "Oslo"}),
    )
    .await;
    env.refused(
        &fx.rep,
        "update_company",
        json!({"id": id(&theirs), "city": "Oslo"}),
        Denied,
        None,
    )
    .await;
    env.refused(
        &fx.rep,
        "update_company",
        json!({"id": id(&mine), "owner_id": fx.manager.id}),
        Denied,
        Some("owner_id"),
    )
    .await;
    env.refused(
        &fx.rep,
        "create_company",
        json!({"name": "X", "owner_id": fx.manager.id}),
        Denied,
        Some("owner_id"),
    )
    .await;
    env.refused(
        &fx.rep,
        "add_tag",
        json!({"record_type": "company", "id": id(&theirs), "tag": "vip"}),
        Denied,
        None,
    )
    .await;

    // Destructive tools need a manager or admin, even on the rep's own record.
    env.refused(
        &fx.rep,
        "delete_company",
        json!({"id": id(&mine)}),
        Denied,
        None,
    )
    .await;

    // Managers change and reassign anything in the workspace.
    let moved = env
        .ok(
            &fx.manager,
            "update_company",
            json!({"id": id(&mine), "owner_id": fx.manager.id}),
        )
        .await;
    assert_eq!(moved["owner_id"], json!(fx.manager.id));
    env.ok(&fx.manager, "delete_company", json!({"id": id(&theirs)}))
        .await;

    // The actor comes from the caller, never from the arguments.
    let e = env
        .refused(
            &fx.viewer,
            "create_company",
            json!({"name": "X", "actor_id": admin.id}),
            Denied,
            None,
        )
        .await;
    assert_eq!(e.code, Denied);
}

async fn each_call_writes_one_audit_entry(store: &Store) {
    let env = Env::new(store, "audit").await;
    let rep = &env.fx.rep;
    let made = env
        .ok(rep, "create_contact", json!({"first_name": "Ada"}))
        .await;
    let entries = env.tool_audits().await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    let e = &entries[0];
    assert_eq!(e.action, "tool:create_contact");
    assert_eq!(e.actor_id, Some(rep.id));
    assert_eq!(e.source, "agent");
    assert_eq!(e.session_id.as_deref(), Some("test-session"));
    let after = e.after.as_ref().unwrap();
    assert_eq!(after["args"], json!({"first_name": "Ada"}));
    assert_eq!(after["result"], made);
    // The store's own change entry (before/after) is there too, by the same actor.
    let history = env
        .store
        .history(&env.ctx(), RecordType::Contact, id(&made))
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].actor_id, Some(rep.id));
    // The model and prompt acting for the user are recorded with the call.
    let mut agent_caller = env.caller(rep);
    agent_caller.agent = Some(rapport_tools::AgentInfo {
        model: "qwen2.5-coder-0.5b".into(),
        prompt_version: Some("v1".into()),
    });
    env.tools
        .call(
            &env.store,
            &agent_caller,
            "add_tag",
            json!({"record_type": "contact", "id": id(&made), "tag": "vip"}),
        )
        .await
        .unwrap();
    let entries = env.tool_audits().await;
    let tagged = entries.iter().find(|e| e.action == "tool:add_tag").unwrap();
    assert_eq!(
        tagged.after.as_ref().unwrap()["agent"],
        json!({"model": "qwen2.5-coder-0.5b", "prompt_version": "v1"})
    );
    // Reads are audited as well (who looked at what).
    env.ok(rep, "get_contact", json!({"id": id(&made)})).await;
    assert_eq!(env.tool_audits().await.len(), 3);
    // A failed call leaves no entry.
    env.err(rep, "get_contact", json!({"id": 987654})).await;
    assert_eq!(env.tool_audits().await.len(), 3);
}

async fn find_records_ranks_and_reports_ambiguity(store: &Store) {
    let env = Env::new(store, "find").await;
    let admin = env.admin();
    let acme = env
        .ok(admin, "create_company", json!({"name": "Acme Logistics"}))
        .await;
    let globex = env
        .ok(admin, "create_company", json!({"name": "Globex"}))
        .await;
    let dana_acme = env
        .ok(admin, "create_contact", json!({"first_name": "Dana", "last_name": "Lee", "email": "dana@acme.com", "company_id": id(&acme)}))
        .await;
    env.ok(
        admin,
        "create_contact",
        json!({"first_name": "Dana", "last_name": "Ruiz", "company_id": id(&globex)}),
    )
    .await;

    let found = env
        .ok(
            &env.fx.viewer,
            "find_records",
            json!({"query": "Dana at Acme", "expect_one": true}),
        )
        .await;
    assert_eq!(found["candidates"][0]["id"], dana_acme["id"]);
    assert_eq!(found["candidates"][0]["record_type"], "contact");

    let found = env
        .ok(
            admin,
            "find_records",
            json!({"query": "dana@acme.com", "types": ["contact"]}),
        )
        .await;
    assert_eq!(found["candidates"][0]["id"], dana_acme["id"]);

    let e = env
        .refused(
            admin,
            "find_records",
            json!({"query": "Dana", "types": ["contact"], "expect_one": true}),
            ErrorCode::Ambiguous,
            Some("query"),
        )
        .await;
    assert_eq!(e.candidates.len(), 2, "{e:?}");
    assert!(
        e.message.contains("Dana Lee") && e.message.contains("Dana Ruiz"),
        "{}",
        e.message
    );
    assert!(e.hint.is_some());
    // Without expect_one the same query lists both.
    let both = env
        .ok(
            admin,
            "find_records",
            json!({"query": "Dana", "types": ["contact"]}),
        )
        .await;
    assert_eq!(both["candidates"].as_array().unwrap().len(), 2);

    env.refused(
        admin,
        "find_records",
        json!({"query": "Zebulon Quux", "expect_one": true}),
        ErrorCode::NotFound,
        Some("query"),
    )
    .await;
    env.refused(
        admin,
        "find_records",
        json!({"query": "Dana", "types": ["planet"]}),
        ErrorCode::InvalidArgument,
        Some("types[0]"),
    )
    .await;
    env.refused(
        admin,
        "find_records",
        json!({"query": "   "}),
        ErrorCode::InvalidArgument,
        Some("query"),
    )
    .await;
    env.refused(
        admin,
        "find_records",
        json!({}),
        ErrorCode::InvalidArgument,
        Some("query"),
    )
    .await;
}

async fn log_activity_links_and_creates_follow_up(store: &Store) {
    let env = Env::new(store, "logact").await;
    let (fx, admin) = (&env.fx, env.admin());
    let acme = env
        .ok(admin, "create_company", json!({"name": "Acme"}))
        .await;
    let dana = env
        .ok(
            admin,
            "create_contact",
            json!({"first_name": "Dana", "company_id": id(&acme)}),
        )
        .await;
    let deal = env
        .ok(admin, "create_deal", json!({"name": "Acme Pro"}))
        .await;
    let out = env
        .ok(&fx.rep, "log_activity", json!({
            "kind": "call", "body": "Likes the Pro plan, worried about price.",
            "direction": "outbound", "occurred_at": "2026-11-20T15:00:00Z", "duration_seconds": 600,
            "contact_id": id(&dana), "deal_id": id(&deal),
            "follow_up": {"title": "Follow up on pricing", "due_at": "2026-11-24T09:00:00Z", "priority": "high"}
        }))
        .await;
    let a = &out["activity"];
    assert_eq!(a["kind"], "call");
    assert_eq!(a["company_id"], acme["id"], "company follows the contact");
    assert_eq!(a["owner_id"], json!(fx.rep.id));
    assert_eq!(
        a["sentiment"],
        Value::Null,
        "sentiment is left to the scoring pipeline"
    );
    let t = &out["follow_up_task"];
    assert_eq!(t["assignee_id"], json!(fx.rep.id));
    assert_eq!(t["contact_id"], dana["id"]);
    assert_eq!(t["deal_id"], deal["id"]);
    assert_eq!(t["status"], "open");

    let plain = env
        .ok(
            admin,
            "log_activity",
            json!({"kind": "note", "body": "Internal note."}),
        )
        .await;
    assert_eq!(plain["follow_up_task"], Value::Null);

    use ErrorCode::*;
    env.refused(
        admin,
        "log_activity",
        json!({"kind": "fax", "body": "x"}),
        InvalidArgument,
        Some("kind"),
    )
    .await;
    env.refused(
        admin,
        "log_activity",
        json!({"kind": "call"}),
        InvalidArgument,
        Some("body"),
    )
    .await;
    env.refused(
        admin,
        "log_activity",
        json!({"kind": "call", "body": "x", "occurred_at": "yesterday"}),
        InvalidArgument,
        Some("occurred_at"),
    )
    .await;
    env.refused(
        admin,
        "log_activity",
        json!({"kind": "call", "body": "x", "follow_up": {"due_at": "2026-11-24T09:00:00Z"}}),
        InvalidArgument,
        Some("follow_up.title"),
    )
    .await;
    env.refused(
        admin,
        "log_activity",
        json!({"kind": "call", "body": "x", "contact_id": 987654}),
        NotFound,
        Some("contact_id"),
    )
    .await;
    env.refused(
        admin,
        "log_activity",
        json!({"kind": "call", "body": "x", "deal_id": 987654}),
        NotFound,
        Some("deal_id"),
    )
    .await;
    env.refused(
        &fx.viewer,
        "log_activity",
        json!({"kind": "call", "body": "x"}),
        PermissionDenied,
        None,
    )
    .await;
    env.refused(&fx.rep, "log_activity", json!({"kind": "call", "body": "x", "follow_up": {"title": "t", "assignee_id": fx.manager.id}}), PermissionDenied, Some("follow_up.assignee_id")).await;
}

async fn log_activity_rolls_back_when_a_step_fails(store: &Store) {
    let env = Env::new(store, "rollback").await;
    let admin = env.admin();
    // The activity is written first; the follow-up task then fails on a
    // missing assignee. Neither the activity nor any audit entry may remain.
    let before = env.snapshot().await;
    let e = env
        .err(admin, "log_activity", json!({"kind": "call", "body": "Talked.", "follow_up": {"title": "Call back", "assignee_id": 987654}}))
        .await;
    assert_eq!(e.code, ErrorCode::NotFound, "{e:?}");
    assert_eq!(e.field.as_deref(), Some("follow_up.assignee_id"));
    assert_eq!(env.snapshot().await, before);
    assert_eq!(env.count(RecordType::Activity).await, 0);
    let all = env
        .store
        .actions_of(&env.ctx(), admin.id, 100)
        .await
        .unwrap();
    assert!(
        all.iter().all(|a| a.record_type != "activity"),
        "no audit of the rolled-back activity: {all:?}"
    );
}

async fn move_deal_stage_by_name_and_id(store: &Store) {
    let env = Env::new(store, "move").await;
    let (fx, admin) = (&env.fx, env.admin());
    let deal = env
        .ok(
            &fx.rep,
            "create_deal",
            json!({"name": "Acme Pro", "value": 1000}),
        )
        .await;
    assert_eq!(deal["stage_id"], json!(fx.stage("Qualification").id));
    let moved = env
        .ok(
            &fx.rep,
            "move_deal_stage",
            json!({"deal_id": id(&deal), "stage": "proposal"}),
        )
        .await;
    let proposal = fx.stage("Proposal");
    assert_eq!(moved["deal"]["stage_id"], json!(proposal.id));
    assert_eq!(
        moved["deal"]["probability"].as_f64(),
        Some(proposal.probability)
    );
    assert_eq!(moved["from_stage"]["name"], "Qualification");
    assert_eq!(moved["to_stage"]["name"], "Proposal");
    let nego = fx.stage("Negotiation");
    env.ok(
        &fx.rep,
        "move_deal_stage",
        json!({"deal_id": id(&deal), "stage_id": nego.id}),
    )
    .await;
    let history = env
        .store
        .stage_history(&env.ctx(), id(&deal))
        .await
        .unwrap();
    assert_eq!(history.len(), 3, "{history:?}");
    assert_eq!(history[2].to_stage_id, nego.id);
    assert_eq!(history[2].changed_by, Some(fx.rep.id));

    use ErrorCode::*;
    env.refused(
        admin,
        "move_deal_stage",
        json!({"deal_id": id(&deal), "stage": "Limbo"}),
        NotFound,
        Some("stage"),
    )
    .await;
    env.refused(
        admin,
        "move_deal_stage",
        json!({"deal_id": id(&deal), "stage_id": 987654}),
        NotFound,
        Some("stage_id"),
    )
    .await;
    env.refused(
        admin,
        "move_deal_stage",
        json!({"deal_id": id(&deal)}),
        InvalidArgument,
        Some("stage"),
    )
    .await;
    env.refused(
        admin,
        "move_deal_stage",
        json!({"deal_id": id(&deal), "stage": "Proposal", "stage_id": proposal.id}),
        InvalidArgument,
        Some("stage"),
    )
    .await;
    env.refused(
        admin,
        "move_deal_stage",
        json!({"deal_id": id(&deal), "stage": "Closed Won"}),
        InvalidArgument,
        Some("stage"),
    )
    .await;
    env.refused(
        admin,
        "move_deal_stage",
        json!({"deal_id": "x", "stage": "Proposal"}),
        InvalidArgument,
        Some("deal_id"),
    )
    .await;
    env.refused(
        admin,
        "move_deal_stage",
        json!({"deal_id": 987654, "stage": "Proposal"}),
        NotFound,
        Some("deal_id"),
    )
    .await;
    let other = env
        .ok(admin, "create_deal", json!({"name": "Admin's"}))
        .await;
    env.refused(
        &fx.rep,
        "move_deal_stage",
        json!({"deal_id": id(&other), "stage": "Proposal"}),
        PermissionDenied,
        None,
    )
    .await;
    env.refused(
        &fx.viewer,
        "move_deal_stage",
        json!({"deal_id": id(&deal), "stage": "Proposal"}),
        PermissionDenied,
        None,
    )
    .await;
}

/// The deal lifecycle rule on the tool path: `update_deal` cannot change what
/// only close_deal and move_deal_stage may, and says which to use.
async fn update_deal_cannot_close_or_reopen_a_deal(store: &Store) {
    let env = Env::new(store, "update-close").await;
    let (fx, admin) = (&env.fx, env.admin());
    let deal = env
        .ok(&fx.rep, "create_deal", json!({"name": "Keep open"}))
        .await;
    use ErrorCode::*;
    for (args, field) in [
        (json!({"id": id(&deal), "status": "won"}), "status"),
        (
            json!({"id": id(&deal), "status": "lost", "close_reason": "Price"}),
            "status",
        ),
        (
            json!({"id": id(&deal), "stage_id": fx.stage("Closed Won").id}),
            "stage_id",
        ),
    ] {
        env.refused(admin, "update_deal", args, InvalidArgument, Some(field))
            .await;
    }
    let err = env
        .err(
            admin,
            "update_deal",
            json!({"id": id(&deal), "status": "won"}),
        )
        .await;
    assert!(
        err.hint
            .as_deref()
            .unwrap_or_default()
            .contains("close_deal"),
        "{err:?}"
    );
    let now = env.ok(admin, "get_deal", json!({"id": id(&deal)})).await;
    assert_eq!(now["status"], "open");
    // Closed with its reason, the deal cannot be reopened by a generic update.
    env.ok(
        admin,
        "close_deal",
        json!({"deal_id": id(&deal), "outcome": "won", "reason": "Signed."}),
    )
    .await;
    env.refused(
        admin,
        "update_deal",
        json!({"id": id(&deal), "stage_id": fx.stage("Proposal").id}),
        Conflict,
        Some("stage_id"),
    )
    .await;
}

async fn close_deal_wins_and_loses_with_reason(store: &Store) {
    let env = Env::new(store, "close").await;
    let (fx, admin) = (&env.fx, env.admin());
    let a = env
        .ok(
            &fx.rep,
            "create_deal",
            json!({"name": "Win me", "value": 100}),
        )
        .await;
    let b = env
        .ok(
            &fx.rep,
            "create_deal",
            json!({"name": "Lose me", "value": 100}),
        )
        .await;
    let won = env
        .ok(
            &fx.rep,
            "close_deal",
            json!({"deal_id": id(&a), "outcome": "won", "reason": "Loved the onboarding."}),
        )
        .await;
    assert_eq!(won["deal"]["status"], "won");
    assert_eq!(won["deal"]["close_reason"], "Loved the onboarding.");
    assert_eq!(won["deal"]["stage_id"], json!(fx.stage("Closed Won").id));
    assert!(won["deal"]["closed_at"].is_string());
    let lost = env
        .ok(
            admin,
            "close_deal",
            json!({"deal_id": id(&b), "outcome": "lost", "reason": "Too expensive."}),
        )
        .await;
    assert_eq!(lost["deal"]["status"], "lost");
    assert_eq!(lost["deal"]["probability"].as_f64(), Some(0.0));

    use ErrorCode::*;
    env.refused(
        admin,
        "close_deal",
        json!({"deal_id": id(&a), "outcome": "lost", "reason": "x"}),
        Conflict,
        Some("deal_id"),
    )
    .await;
    let c = env.ok(admin, "create_deal", json!({"name": "Open"})).await;
    env.refused(
        admin,
        "close_deal",
        json!({"deal_id": id(&c), "outcome": "won", "reason": "  "}),
        InvalidArgument,
        Some("reason"),
    )
    .await;
    env.refused(
        admin,
        "close_deal",
        json!({"deal_id": id(&c), "outcome": "won"}),
        InvalidArgument,
        Some("reason"),
    )
    .await;
    env.refused(
        admin,
        "close_deal",
        json!({"deal_id": id(&c), "outcome": "maybe", "reason": "x"}),
        InvalidArgument,
        Some("outcome"),
    )
    .await;
    env.refused(
        admin,
        "close_deal",
        json!({"deal_id": 987654, "outcome": "won", "reason": "x"}),
        NotFound,
        Some("deal_id"),
    )
    .await;
    env.refused(
        &fx.rep,
        "close_deal",
        json!({"deal_id": id(&c), "outcome": "won", "reason": "x"}),
        PermissionDenied,
        None,
    )
    .await;
}

async fn task_tools_complete_reschedule_and_list_mine(store: &Store) {
    let env = Env::new(store, "tasks").await;
    let (fx, admin) = (&env.fx, env.admin());
    let late = env
        .ok(
            &fx.rep,
            "create_task",
            json!({"title": "Late", "due_at": "2026-11-19T09:00:00Z"}),
        )
        .await;
    let soon = env
        .ok(
            &fx.rep,
            "create_task",
            json!({"title": "Soon", "due_at": "2026-11-23T09:00:00Z"}),
        )
        .await;
    let someday = env
        .ok(&fx.rep, "create_task", json!({"title": "Someday"}))
        .await;
    let done = env
        .ok(&fx.rep, "create_task", json!({"title": "Done"}))
        .await;
    let not_mine = env
        .ok(
            admin,
            "create_task",
            json!({"title": "Admin's", "due_at": "2026-11-01T09:00:00Z"}),
        )
        .await;

    let completed = env
        .ok(&fx.rep, "complete_task", json!({"task_id": id(&done)}))
        .await;
    assert_eq!(completed["status"], "done");
    assert!(completed["completed_at"].is_string());
    env.ok(&fx.rep, "complete_task", json!({"task_id": id(&done)}))
        .await;

    let mine = env
        .ok(&fx.rep, "my_tasks", json!({"now": "2026-11-21T09:00:00Z"}))
        .await;
    let ids = |k: &str| {
        mine[k]
            .as_array()
            .unwrap()
            .iter()
            .map(id)
            .collect::<Vec<_>>()
    };
    assert_eq!(ids("overdue"), vec![id(&late)]);
    assert_eq!(ids("open"), vec![id(&soon), id(&someday)]);

    let moved = env
        .ok(
            &fx.rep,
            "reschedule_task",
            json!({"task_id": id(&late), "due_at": "2026-11-25T10:00:00Z"}),
        )
        .await;
    assert!(
        moved["due_at"]
            .as_str()
            .unwrap()
            .starts_with("2026-11-25T10:00:00")
    );
    let mine = env
        .ok(&fx.rep, "my_tasks", json!({"now": "2026-11-21T09:00:00Z"}))
        .await;
    assert!(mine["overdue"].as_array().unwrap().is_empty());

    use ErrorCode::*;
    env.refused(
        &fx.rep,
        "reschedule_task",
        json!({"task_id": id(&soon), "due_at": "next tuesday"}),
        InvalidArgument,
        Some("due_at"),
    )
    .await;
    env.refused(
        &fx.rep,
        "reschedule_task",
        json!({"task_id": id(&done), "due_at": "2026-11-25T10:00:00Z"}),
        Conflict,
        Some("task_id"),
    )
    .await;
    env.refused(&fx.rep, "my_tasks", json!({}), InvalidArgument, Some("now"))
        .await;
    env.refused(
        &fx.rep,
        "complete_task",
        json!({"task_id": 987654}),
        NotFound,
        Some("task_id"),
    )
    .await;
    env.refused(
        &fx.rep,
        "reschedule_task",
        json!({"task_id": 987654, "due_at": "2026-11-25T10:00:00Z"}),
        NotFound,
        Some("task_id"),
    )
    .await;
    env.refused(
        &fx.rep,
        "complete_task",
        json!({"task_id": id(&not_mine)}),
        PermissionDenied,
        None,
    )
    .await;
    env.refused(
        &fx.viewer,
        "complete_task",
        json!({"task_id": id(&soon)}),
        PermissionDenied,
        None,
    )
    .await;
    // Anyone may look at a colleague's list; an unknown user is named.
    let reps = env
        .ok(
            &fx.viewer,
            "my_tasks",
            json!({"now": "2026-11-21T09:00:00Z", "user_id": fx.rep.id}),
        )
        .await;
    assert_eq!(
        reps["open"].as_array().unwrap().len(),
        3,
        "soon, late (rescheduled), someday"
    );
    env.refused(
        &fx.viewer,
        "my_tasks",
        json!({"now": "2026-11-21T09:00:00Z", "user_id": 987654}),
        NotFound,
        Some("user_id"),
    )
    .await;
    // A viewer has no tasks, but may ask.
    let none = env
        .ok(
            &fx.viewer,
            "my_tasks",
            json!({"now": "2026-11-21T09:00:00Z"}),
        )
        .await;
    assert!(none["open"].as_array().unwrap().is_empty());
}

async fn tags_are_added_and_removed(store: &Store) {
    let env = Env::new(store, "tags").await;
    let (fx, admin) = (&env.fx, env.admin());
    let c = env
        .ok(&fx.rep, "create_contact", json!({"first_name": "Dana"}))
        .await;
    let args = json!({"record_type": "contact", "id": id(&c), "tag": "vip"});
    assert_eq!(
        env.ok(&fx.rep, "add_tag", args.clone()).await["changed"],
        true
    );
    assert_eq!(
        env.ok(&fx.rep, "add_tag", args.clone()).await["changed"],
        false
    );
    let tags = env
        .store
        .tags_of(&env.ctx(), RecordType::Contact, id(&c))
        .await
        .unwrap();
    assert_eq!(tags, vec!["vip".to_owned()]);
    assert_eq!(
        env.ok(&fx.rep, "remove_tag", args.clone()).await["changed"],
        true
    );
    assert_eq!(
        env.ok(&fx.rep, "remove_tag", args.clone()).await["changed"],
        false
    );

    use ErrorCode::*;
    env.refused(
        admin,
        "add_tag",
        json!({"record_type": "pipeline", "id": 1, "tag": "x"}),
        InvalidArgument,
        Some("record_type"),
    )
    .await;
    env.refused(
        admin,
        "add_tag",
        json!({"record_type": "contact", "id": id(&c)}),
        InvalidArgument,
        Some("tag"),
    )
    .await;
    env.refused(
        admin,
        "add_tag",
        json!({"record_type": "contact", "id": 987654, "tag": "x"}),
        NotFound,
        Some("id"),
    )
    .await;
    env.refused(&fx.viewer, "add_tag", args.clone(), PermissionDenied, None)
        .await;
    env.refused(&fx.viewer, "remove_tag", args, PermissionDenied, None)
        .await;
}

async fn list_users_is_read_only_lookup(store: &Store) {
    let env = Env::new(store, "users").await;
    let fx = &env.fx;
    let all = env.ok(&fx.viewer, "list_users", json!({})).await;
    assert_eq!(all["users"].as_array().unwrap().len(), 4);
    let reps = env
        .ok(&fx.viewer, "list_users", json!({"role": "rep"}))
        .await;
    assert_eq!(reps["users"].as_array().unwrap().len(), 1);
    assert_eq!(reps["users"][0]["id"], json!(fx.rep.id));
    assert_eq!(reps["users"][0]["role"], "rep");
    env.refused(
        &fx.viewer,
        "list_users",
        json!({"role": "boss"}),
        ErrorCode::InvalidArgument,
        Some("role"),
    )
    .await;
    // Users are read-only through tools: there is no tool that writes them.
    for t in env.tools.tools() {
        assert!(
            !(t.name().ends_with("_user") && t.effect() != rapport_tools::Effect::Read),
            "{}",
            t.name()
        );
    }
    // No not-found case exists for a listing; an unknown filter value is the closest.
    assert_eq!(fx.viewer.role, Role::Viewer);
}

async fn pipeline_summary_counts_and_weights(store: &Store) {
    let env = Env::new(store, "summary").await;
    let (fx, admin) = (&env.fx, env.admin());
    for (v, stage) in [(1000, None), (3000, None), (2000, Some("Proposal"))] {
        let d = env
            .ok(
                admin,
                "create_deal",
                json!({"name": format!("D{v}"), "value": v}),
            )
            .await;
        if let Some(s) = stage {
            env.ok(
                admin,
                "move_deal_stage",
                json!({"deal_id": id(&d), "stage": s}),
            )
            .await;
        }
    }
    let won = env
        .ok(admin, "create_deal", json!({"name": "W", "value": 500}))
        .await;
    env.ok(
        admin,
        "close_deal",
        json!({"deal_id": id(&won), "outcome": "won", "reason": "ok"}),
    )
    .await;

    let s = env.ok(&fx.viewer, "pipeline_summary", json!({})).await;
    assert_eq!(s["pipeline_id"], json!(fx.pipeline.id));
    let stage = |name: &str| {
        s["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == name)
            .unwrap()
            .clone()
    };
    let q = stage("Qualification");
    assert_eq!(q["deals"], 2);
    assert_eq!(q["total_value"].as_f64(), Some(4000.0));
    assert!(
        (q["weighted_value"].as_f64().unwrap() - 4000.0 * fx.stage("Qualification").probability)
            .abs()
            < 1e-6
    );
    let p = stage("Proposal");
    assert_eq!(p["deals"], 1);
    assert!(
        (p["weighted_value"].as_f64().unwrap() - 2000.0 * fx.stage("Proposal").probability).abs()
            < 1e-6
    );
    assert_eq!(stage("Closed Won")["deals"], 1);
    assert_eq!(s["open_deals"], 3);
    assert_eq!(s["open_value"].as_f64(), Some(6000.0));
    assert_eq!(s["stages"].as_array().unwrap().len(), fx.stages.len());
    let same = env
        .ok(
            admin,
            "pipeline_summary",
            json!({"pipeline_id": fx.pipeline.id}),
        )
        .await;
    assert_eq!(same, s);

    env.refused(
        admin,
        "pipeline_summary",
        json!({"pipeline_id": 987654}),
        ErrorCode::NotFound,
        Some("pipeline_id"),
    )
    .await;
    env.refused(
        admin,
        "pipeline_summary",
        json!({"pipeline_id": "sales"}),
        ErrorCode::InvalidArgument,
        Some("pipeline_id"),
    )
    .await;
}

async fn unknown_tool_is_not_found(store: &Store) {
    let env = Env::new(store, "unknown").await;
    env.refused(
        env.admin(),
        "drop_database",
        json!({}),
        ErrorCode::NotFound,
        Some("name"),
    )
    .await;
}

async fn pipelines_and_stages_are_for_managers(store: &Store) {
    let env = Env::new(store, "pipes").await;
    let (fx, admin) = (&env.fx, env.admin());
    let p = env
        .ok(&fx.manager, "create_pipeline", json!({"name": "Renewals"}))
        .await;
    let s = env
        .ok(
            &fx.manager,
            "create_stage",
            json!({"pipeline_id": id(&p), "name": "Check-in", "position": 0, "probability": 0.5}),
        )
        .await;
    assert_eq!(s["outcome"], "open");
    let s2 = env
        .ok(
            admin,
            "update_stage",
            json!({"id": id(&s), "probability": 0.7}),
        )
        .await;
    assert_eq!(s2["probability"].as_f64(), Some(0.7));
    let list = env
        .ok(
            &fx.viewer,
            "list_stages",
            json!({"filter": {"field": "pipeline_id", "op": "eq", "value": id(&p)}}),
        )
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    env.ok(&fx.viewer, "get_pipeline", json!({"id": id(&p)}))
        .await;
    assert_eq!(
        env.ok(&fx.viewer, "list_pipelines", json!({})).await["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    use ErrorCode::*;
    env.refused(
        &fx.rep,
        "create_pipeline",
        json!({"name": "Mine"}),
        PermissionDenied,
        None,
    )
    .await;
    env.refused(
        &fx.rep,
        "update_stage",
        json!({"id": id(&s), "name": "x"}),
        PermissionDenied,
        None,
    )
    .await;
    env.refused(
        &fx.rep,
        "delete_stage",
        json!({"id": id(&s)}),
        PermissionDenied,
        None,
    )
    .await;
    env.refused(
        admin,
        "create_stage",
        json!({"pipeline_id": id(&p), "name": "Bad", "position": 1, "probability": 1.5}),
        InvalidArgument,
        Some("probability"),
    )
    .await;
    env.refused(
        admin,
        "create_stage",
        json!({"pipeline_id": 987654, "name": "Bad", "position": 1, "probability": 0.5}),
        NotFound,
        Some("pipeline_id"),
    )
    .await;
    env.refused(
        admin,
        "create_pipeline",
        json!({"name": "Renewals"}),
        Conflict,
        Some("name"),
    )
    .await;
    env.refused(admin, "get_stage", json!({"id": 987654}), NotFound, None)
        .await;
    env.refused(
        admin,
        "delete_pipeline",
        json!({"id": id(&p)}),
        Conflict,
        None,
    )
    .await;
    env.ok(&fx.manager, "delete_stage", json!({"id": id(&s)}))
        .await;
    env.ok(&fx.manager, "delete_pipeline", json!({"id": id(&p)}))
        .await;
}

async fn reassign_owner_moves_records_between_users(store: &Store) {
    let env = Env::new(store, "reassign").await;
    let (fx, admin) = (&env.fx, env.admin());
    let deal = env
        .ok(&fx.rep, "create_deal", json!({"name": "Handover"}))
        .await;
    let task = env
        .ok(&fx.rep, "create_task", json!({"title": "Call"}))
        .await;
    let moved = env
        .ok(
            &fx.manager,
            "reassign_owner",
            json!({"record_type": "deal", "id": id(&deal), "owner_id": fx.manager.id}),
        )
        .await;
    assert_eq!(moved["owner_id"], json!(fx.manager.id));
    let moved = env
        .ok(
            admin,
            "reassign_owner",
            json!({"record_type": "task", "id": id(&task), "owner_id": fx.manager.id}),
        )
        .await;
    assert_eq!(moved["assignee_id"], json!(fx.manager.id));
    // The rep no longer owns the deal, so may not change it.
    env.refused(
        &fx.rep,
        "move_deal_stage",
        json!({"deal_id": id(&deal), "stage": "Proposal"}),
        ErrorCode::PermissionDenied,
        None,
    )
    .await;

    use ErrorCode::*;
    env.refused(
        &fx.rep,
        "reassign_owner",
        json!({"record_type": "task", "id": id(&task), "owner_id": fx.rep.id}),
        PermissionDenied,
        None,
    )
    .await;
    env.refused(
        admin,
        "reassign_owner",
        json!({"record_type": "user", "id": 1, "owner_id": fx.rep.id}),
        InvalidArgument,
        Some("record_type"),
    )
    .await;
    env.refused(
        admin,
        "reassign_owner",
        json!({"record_type": "deal", "id": id(&deal)}),
        InvalidArgument,
        Some("owner_id"),
    )
    .await;
    env.refused(
        admin,
        "reassign_owner",
        json!({"record_type": "deal", "id": 987654, "owner_id": fx.rep.id}),
        NotFound,
        Some("id"),
    )
    .await;
    env.refused(
        admin,
        "reassign_owner",
        json!({"record_type": "deal", "id": id(&deal), "owner_id": 987654}),
        NotFound,
        Some("owner_id"),
    )
    .await;
}

async fn timeline_orders_activities_tasks_and_stage_changes(store: &Store) {
    let env = Env::new(store, "timeline").await;
    let (fx, admin) = (&env.fx, env.admin());
    let deal = env
        .ok(admin, "create_deal", json!({"name": "Acme Pro"}))
        .await;
    env.ok(admin, "log_activity", json!({"kind": "email", "subject": "Intro", "body": "Hello", "deal_id": id(&deal), "occurred_at": "2020-01-02T10:00:00Z"})).await;
    env.ok(admin, "log_activity", json!({"kind": "call", "body": "Discussed price", "deal_id": id(&deal), "occurred_at": "2020-01-05T10:00:00Z",
        "follow_up": {"title": "Send quote", "due_at": "2020-01-07T09:00:00Z"}})).await;
    env.ok(
        admin,
        "move_deal_stage",
        json!({"deal_id": id(&deal), "stage": "Proposal"}),
    )
    .await;

    let t = env
        .ok(
            &fx.viewer,
            "timeline",
            json!({"record_type": "deal", "id": id(&deal)}),
        )
        .await;
    let summaries: Vec<&str> = t["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["summary"].as_str().unwrap())
        .collect();
    assert_eq!(
        summaries,
        vec![
            "email: Intro",
            "call: Discussed price",
            "task (open): Send quote",
            "stage: Qualification",
            "stage: Proposal"
        ],
        "{t}"
    );
    assert_eq!(t["truncated"], false);
    let last2 = env
        .ok(
            admin,
            "timeline",
            json!({"record_type": "deal", "id": id(&deal), "limit": 2}),
        )
        .await;
    assert_eq!(last2["events"].as_array().unwrap().len(), 2);
    assert_eq!(last2["truncated"], true);
    assert_eq!(last2["events"][1]["summary"], "stage: Proposal");

    use ErrorCode::*;
    env.refused(
        admin,
        "timeline",
        json!({"record_type": "deal", "id": 987654}),
        NotFound,
        Some("id"),
    )
    .await;
    env.refused(
        admin,
        "timeline",
        json!({"record_type": "planet", "id": 1}),
        InvalidArgument,
        Some("record_type"),
    )
    .await;
    env.refused(
        admin,
        "timeline",
        json!({"record_type": "deal"}),
        InvalidArgument,
        Some("id"),
    )
    .await;
}

async fn forecast_groups_open_deals_by_close_month(store: &Store) {
    let env = Env::new(store, "forecast").await;
    let (fx, admin) = (&env.fx, env.admin());
    for (v, date) in [
        (1000, Some("2026-12-03")),
        (3000, Some("2026-12-28")),
        (2000, Some("2027-01-15")),
        (700, None),
    ] {
        env.ok(
            &fx.rep,
            "create_deal",
            json!({"name": format!("D{v}"), "value": v, "expected_close_date": date}),
        )
        .await;
    }
    let won = env
        .ok(
            admin,
            "create_deal",
            json!({"name": "W", "value": 9999, "expected_close_date": "2026-12-01"}),
        )
        .await;
    env.ok(
        admin,
        "close_deal",
        json!({"deal_id": id(&won), "outcome": "won", "reason": "ok"}),
    )
    .await;
    let f = env.ok(&fx.viewer, "forecast", json!({})).await;
    let p = fx.stage("Qualification").probability;
    assert_eq!(f["months"][0]["month"], "2026-12");
    assert_eq!(
        f["months"][0]["deals"], 2,
        "closed deals are not forecast: {f}"
    );
    assert_eq!(f["months"][0]["total_value"].as_f64(), Some(4000.0));
    assert!((f["months"][0]["weighted_value"].as_f64().unwrap() - 4000.0 * p).abs() < 1e-6);
    assert_eq!(f["months"][1]["month"], "2027-01");
    assert_eq!(f["unscheduled"]["deals"], 1);
    let mine = env
        .ok(
            admin,
            "forecast",
            json!({"owner_id": fx.rep.id, "pipeline_id": fx.pipeline.id}),
        )
        .await;
    assert_eq!(mine["months"].as_array().unwrap().len(), 2);
    let none = env
        .ok(admin, "forecast", json!({"owner_id": fx.manager.id}))
        .await;
    assert!(none["months"].as_array().unwrap().is_empty());

    use ErrorCode::*;
    env.refused(
        admin,
        "forecast",
        json!({"pipeline_id": 987654}),
        NotFound,
        Some("pipeline_id"),
    )
    .await;
    env.refused(
        admin,
        "forecast",
        json!({"owner_id": 987654}),
        NotFound,
        Some("owner_id"),
    )
    .await;
    env.refused(
        admin,
        "forecast",
        json!({"owner_id": "me"}),
        InvalidArgument,
        Some("owner_id"),
    )
    .await;
}

async fn merge_contacts_moves_everything_to_the_survivor(store: &Store) {
    let env = Env::new(store, "merge").await;
    let (fx, admin) = (&env.fx, env.admin());
    let keep = env
        .ok(
            admin,
            "create_contact",
            json!({"first_name": "Dana", "last_name": "Lee", "custom": {"plan": "pro"}}),
        )
        .await;
    let dup = env
        .ok(admin, "create_contact", json!({"first_name": "Dana", "last_name": "Lee", "email": "dana@acme.com", "phone": "+1 555", "custom": {"plan": "basic", "tier": "gold"}}))
        .await;
    let act = env.ok(admin, "log_activity", json!({"kind": "call", "body": "x", "contact_id": id(&dup), "follow_up": {"title": "Call back"}})).await;
    let deal = env
        .ok(
            admin,
            "create_deal",
            json!({"name": "Acme", "contact_ids": [id(&dup), id(&keep)]}),
        )
        .await;
    env.ok(
        admin,
        "add_tag",
        json!({"record_type": "contact", "id": id(&dup), "tag": "vip"}),
    )
    .await;

    use ErrorCode::*;
    env.refused(
        &fx.rep,
        "merge_contacts",
        json!({"survivor_id": id(&keep), "duplicate_id": id(&dup)}),
        PermissionDenied,
        None,
    )
    .await;
    env.refused(
        admin,
        "merge_contacts",
        json!({"survivor_id": id(&keep), "duplicate_id": id(&keep)}),
        InvalidArgument,
        Some("duplicate_id"),
    )
    .await;
    env.refused(
        admin,
        "merge_contacts",
        json!({"survivor_id": id(&keep)}),
        InvalidArgument,
        Some("duplicate_id"),
    )
    .await;
    env.refused(
        admin,
        "merge_contacts",
        json!({"survivor_id": id(&keep), "duplicate_id": 987654}),
        NotFound,
        Some("duplicate_id"),
    )
    .await;
    env.refused(
        admin,
        "merge_contacts",
        json!({"survivor_id": 987654, "duplicate_id": id(&dup)}),
        NotFound,
        Some("survivor_id"),
    )
    .await;

    let out = env
        .ok(
            &fx.manager,
            "merge_contacts",
            json!({"survivor_id": id(&keep), "duplicate_id": id(&dup)}),
        )
        .await;
    let s = &out["survivor"];
    assert_eq!(s["email"], "dana@acme.com");
    assert_eq!(s["phone"], "+1 555");
    assert_eq!(
        s["custom"],
        json!({"plan": "pro", "tier": "gold"}),
        "the survivor's values win"
    );
    assert_eq!(out["moved"]["activities"], 1);
    assert_eq!(out["moved"]["tasks"], 1);
    assert_eq!(out["moved"]["deals"], 1);
    assert_eq!(out["tags_added"], json!(["vip"]));
    let a = env
        .ok(admin, "get_activity", json!({"id": id(&act["activity"])}))
        .await;
    assert_eq!(a["contact_id"], keep["id"]);
    let t = env
        .ok(admin, "get_task", json!({"id": id(&act["follow_up_task"])}))
        .await;
    assert_eq!(t["contact_id"], keep["id"]);
    let d = env.ok(admin, "get_deal", json!({"id": id(&deal)})).await;
    assert_eq!(d["contact_ids"], json!([id(&keep)]));
    env.refused(
        admin,
        "get_contact",
        json!({"id": id(&dup)}),
        NotFound,
        None,
    )
    .await;
    assert_eq!(env.count(RecordType::Contact).await, 1);
}

/// A tool that writes two records and then fails, to pin the registry's
/// guarantee for every tool: a failed call keeps nothing, audit included.
struct WritesThenFails;

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

impl rapport_tools::Tool for WritesThenFails {
    type Args = NoArgs;
    type Output = Value;
    fn name(&self) -> &'static str {
        "writes_then_fails"
    }
    fn description(&self) -> String {
        "Test tool.".into()
    }
    fn effect(&self) -> rapport_tools::Effect {
        rapport_tools::Effect::Write
    }
    fn example(&self) -> Value {
        json!({})
    }
    async fn call(&self, cx: &mut rapport_tools::Call, _: NoArgs) -> rapport_tools::Result<Value> {
        let c = cx
            .tx
            .create_dyn(&cx.ctx, RecordType::Company, json!({"name": "Ghost"}))
            .await?;
        cx.tx
            .create_dyn(
                &cx.ctx,
                RecordType::Contact,
                json!({"first_name": "Ghost", "company_id": c["id"]}),
            )
            .await?;
        Err(ToolError::new(
            ErrorCode::Conflict,
            "failed after two writes",
        ))
    }
}

async fn a_tool_failing_after_writes_leaves_nothing(store: &Store) {
    let mut env = Env::new(store, "failing").await;
    env.tools = Registry::new();
    env.tools.register(WritesThenFails);
    let before = env.snapshot().await;
    let all_before = env
        .store
        .actions_of(&env.ctx(), env.fx.admin.id, 500)
        .await
        .unwrap()
        .len();
    let e = env.err(&env.fx.admin, "writes_then_fails", json!({})).await;
    assert_eq!(e.code, ErrorCode::Conflict);
    assert_eq!(env.snapshot().await, before);
    assert_eq!(env.count(RecordType::Company).await, 0);
    let all_after = env
        .store
        .actions_of(&env.ctx(), env.fx.admin.id, 500)
        .await
        .unwrap()
        .len();
    assert_eq!(
        all_after, all_before,
        "the store's own audit entries roll back too"
    );
    // The registry still works afterwards (the transaction was released).
    env.ok(&env.fx.admin, "create_company", json!({"name": "Real"}))
        .await;
}
