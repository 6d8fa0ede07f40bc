//! `rapport tool bench`: what a tool call costs on top of the repository call it
//! wraps — argument parsing, permission check, transaction, audit entry, JSON
//! result — measured in the same run, interleaved, on one store. Ratios matter
//! more than absolute times on a shared machine.

use std::time::Instant;

use rapport_crm::bench::{ratio, summary};
use rapport_crm::model::{Role, User};
use rapport_crm::{Ctx, Filter, ListQuery, Op, RecordMap, RecordType, Source, Store};
use serde_json::{Value, json};

use crate::error::Result;
use crate::registry::Registry;
use crate::tool::Caller;

/// Size of a tools benchmark run.
#[derive(Debug, Clone)]
pub struct BenchParams {
    /// Contacts in the table being read.
    pub rows: usize,
    /// Timed repetitions of each operation (each side).
    pub iterations: usize,
}

impl Default for BenchParams {
    fn default() -> Self {
        BenchParams {
            rows: 5_000,
            iterations: 500,
        }
    }
}

fn p(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or(f64::NAN)
}

fn pair(tool: Vec<f64>, bare: Vec<f64>) -> Value {
    let (t, b) = (summary(tool), summary(bare));
    json!({
        "tool": t, "bare": b,
        "ratio_p50": ratio(p(&t, "p50_us"), p(&b, "p50_us")),
        "ratio_p99": ratio(p(&t, "p99_us"), p(&b, "p99_us")),
    })
}

/// Benchmarks one store in a fresh workspace of its own.
pub async fn run(store: &Store, params: &BenchParams) -> Result<Value> {
    let ws = store
        .create_workspace(&format!(
            "tool-bench-{}",
            chrono::Utc::now().timestamp_micros()
        ))
        .await?;
    let system = Ctx::new(ws.id, None, Source::Cli);
    let admin: User = store
        .create(
            &system,
            json!({"name": "Bench Admin", "email": "bench@example.com", "role": "admin"}),
        )
        .await?;
    let ctx = Ctx::new(ws.id, Some(admin.id), Source::Cli);
    let rows: Vec<RecordMap> = (0..params.rows.max(1))
        .map(|i| {
            let v = json!({"first_name": format!("First{}", i % 97), "last_name": format!("Last{}", i % 389), "email": format!("p{i}@example.com")});
            v.as_object().cloned().unwrap_or_default()
        })
        .collect();
    let mut tx = store.begin().await?;
    let ids = tx.bulk_insert(&ctx, RecordType::Contact, rows).await?;
    tx.commit().await?;

    let tools = Registry::new();
    let caller = Caller {
        workspace_id: ws.id,
        user_id: admin.id,
        role: Role::Admin,
        source: Source::Cli,
        session_id: None,
        agent: None,
    };
    let n = params.iterations.max(2);
    let pick = |i: usize| ids[(i * 7919) % ids.len()];
    let (mut get_t, mut get_b) = (Vec::new(), Vec::new());
    let (mut list_t, mut list_b) = (Vec::new(), Vec::new());
    let (mut upd_t, mut upd_b) = (Vec::new(), Vec::new());
    for i in 0..n {
        let id = pick(i);
        let t = Instant::now();
        tools
            .call(store, &caller, "get_contact", json!({"id": id}))
            .await?;
        get_t.push(us(t));
        let t = Instant::now();
        store.get_dyn(&ctx, RecordType::Contact, id).await?;
        get_b.push(us(t));

        let last = format!("Last{}", i % 389);
        let t = Instant::now();
        tools
            .call(
                store,
                &caller,
                "list_contacts",
                json!({"filter": {"field": "last_name", "op": "eq", "value": last}, "limit": 20}),
            )
            .await?;
        list_t.push(us(t));
        let q = ListQuery::filtered(Filter::cond("last_name", Op::Eq, last)).limit(20);
        let t = Instant::now();
        store.list_dyn(&ctx, RecordType::Contact, &q).await?;
        list_b.push(us(t));

        let title = format!("Title {i}");
        let t = Instant::now();
        tools
            .call(
                store,
                &caller,
                "update_contact",
                json!({"id": id, "title": title}),
            )
            .await?;
        upd_t.push(us(t));
        let t = Instant::now();
        let mut tx = store.begin().await?;
        tx.update_dyn(
            &ctx,
            RecordType::Contact,
            pick(i + 1),
            json!({"title": title}),
        )
        .await?;
        tx.commit().await?;
        upd_b.push(us(t));
    }
    Ok(json!({
        "backend": store.backend().name(),
        "rows": ids.len(),
        "iterations": n,
        "get_contact": pair(get_t, get_b),
        "list_contacts": pair(list_t, list_b),
        "update_contact": pair(upd_t, upd_b),
    }))
}

fn us(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e6
}
