//! `rapport bench crm`: latency of the store's point read, filtered list and
//! insert, and — as the baseline measured in the same run — a raw sqlx `SELECT`
//! of the same rows. Reported as JSON; ratios matter more than absolute times on
//! a shared machine.

use std::time::Instant;

use indicatif::ProgressBar;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use sqlx::Row;

use crate::error::Result;
use crate::filter::{Filter, ListQuery, Op};
use crate::model::{Contact, Ctx, Source};
use crate::schema::RecordType;
use crate::store::Store;

#[derive(Debug, Clone)]
pub struct BenchParams {
    /// Contacts in the table being read.
    pub rows: usize,
    /// Timed repetitions of each read operation (inserts do a fifth of this).
    pub iterations: usize,
}

impl Default for BenchParams {
    fn default() -> Self {
        BenchParams {
            rows: 20_000,
            iterations: 2_000,
        }
    }
}

/// Latency summary in microseconds: count, p50, p99 and mean.
pub fn summary(mut us: Vec<f64>) -> Value {
    us.sort_by(f64::total_cmp);
    let at = |q: f64| us[((us.len() as f64 - 1.0) * q).round() as usize];
    json!({"n": us.len(), "p50_us": round(at(0.5)), "p99_us": round(at(0.99)), "mean_us": round(us.iter().sum::<f64>() / us.len() as f64)})
}

/// `a / b` to two decimals.
pub fn ratio(a: f64, b: f64) -> f64 {
    (a / b * 100.0).round() / 100.0
}

fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn elapsed_us(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e6
}

/// Benchmarks one store (SQLite or PostgreSQL) in a fresh workspace of its own.
pub async fn run(store: &Store, p: &BenchParams, progress: &ProgressBar) -> Result<Value> {
    let ws = store
        .create_workspace(&format!("bench-{}", chrono::Utc::now().timestamp_micros()))
        .await?;
    let ctx = Ctx::new(ws.id, None, Source::Cli);
    let companies = 200;
    let mut tx = store.begin().await?;
    let company_ids = tx
        .bulk_insert(
            &ctx,
            RecordType::Company,
            (0..companies)
                .map(|i| obj(json!({"name": format!("Company {i}"), "industry": (["Retail", "Energy", "Software"][i % 3])})))
                .collect(),
        )
        .await?;
    let rows = (0..p.rows)
        .map(|i| {
            obj(json!({"first_name": format!("First{}", i % 97), "last_name": format!("Last{}", i % 389),
                "email": format!("person{i}@example.com"), "title": (["CFO", "Controller", "AP Manager"][i % 3]),
                "company_id": company_ids[i % companies]}))
        })
        .collect();
    let ids = tx.bulk_insert(&ctx, RecordType::Contact, rows).await?;
    tx.commit().await?;
    progress.set_length((p.iterations * 3 + p.iterations / 5) as u64);

    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let picks: Vec<i64> = (0..p.iterations)
        .map(|_| ids[rng.random_range(0..ids.len())])
        .collect();

    // Interleave store and raw reads of the same rows so drift hits both alike.
    let mut store_us = Vec::with_capacity(picks.len());
    let mut raw_us = Vec::with_capacity(picks.len());
    for id in &picks {
        let t = Instant::now();
        let c: Contact = store.get(&ctx, *id).await?;
        store_us.push(elapsed_us(t));
        std::hint::black_box(c);
        let t = Instant::now();
        let row = raw_point_read(store, ws.id, *id).await?;
        raw_us.push(elapsed_us(t));
        std::hint::black_box(row);
        progress.inc(2);
    }

    let mut list_us = Vec::with_capacity(p.iterations);
    for i in 0..p.iterations {
        let filter = Filter::and(vec![
            Filter::eq("company_id", company_ids[i % companies]),
            Filter::cond("title", Op::In, json!(["CFO", "Controller"])),
        ]);
        let q = ListQuery::filtered(filter)
            .sorted("last_name", crate::filter::Direction::Asc)
            .limit(50);
        let t = Instant::now();
        let page = store.list::<Contact>(&ctx, &q).await?;
        list_us.push(elapsed_us(t));
        std::hint::black_box(page);
        progress.inc(1);
    }

    let mut insert_us = Vec::new();
    for i in 0..(p.iterations / 5).max(10) {
        let body = json!({"first_name": "Bench", "last_name": format!("Insert{i}"), "email": format!("insert{i}@example.com"), "company_id": company_ids[i % companies]});
        let t = Instant::now();
        let c: Contact = store.create(&ctx, body).await?;
        insert_us.push(elapsed_us(t));
        std::hint::black_box(c);
        progress.inc(1);
    }

    let store_p50 = percentile(&store_us, 0.5);
    let raw_p50 = percentile(&raw_us, 0.5);
    Ok(json!({
        "backend": store.backend().name(),
        "rows": p.rows,
        "point_read": summary(store_us.clone()),
        "point_read_raw_sqlx": summary(raw_us.clone()),
        "point_read_ratio_p50": ratio(store_p50, raw_p50),
        "point_read_ratio_p99": ratio(percentile(&store_us, 0.99), percentile(&raw_us, 0.99)),
        "filtered_list_50": summary(list_us),
        "insert_with_audit": summary(insert_us),
    }))
}

fn percentile(v: &[f64], q: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * q).round() as usize]
}

/// The baseline: the same row by hand-written SQL, decoded column by column.
async fn raw_point_read(
    store: &Store,
    ws: i64,
    id: i64,
) -> Result<(i64, String, Option<String>, Option<String>)> {
    const SQL: &str = "SELECT id, workspace_id, first_name, last_name, email, phone, title, company_id, owner_id, custom, created_at, updated_at FROM contacts WHERE workspace_id = $1 AND id = $2";
    let decode = |id: i64, first: String, last: Option<String>, email: Option<String>| {
        (id, first, last, email)
    };
    if let Some(pool) = store.sqlite_pool() {
        let r = sqlx::query(SQL).bind(ws).bind(id).fetch_one(pool).await?;
        let _: chrono::DateTime<chrono::Utc> = r.try_get(10)?;
        let _: sqlx::types::Json<Value> = r.try_get(9)?;
        return Ok(decode(
            r.try_get(0)?,
            r.try_get(2)?,
            r.try_get(3)?,
            r.try_get(4)?,
        ));
    }
    let pool = store.postgres_pool().expect("one of the two backends");
    let r = sqlx::query(SQL).bind(ws).bind(id).fetch_one(pool).await?;
    let _: chrono::DateTime<chrono::Utc> = r.try_get(10)?;
    let _: sqlx::types::Json<Value> = r.try_get(9)?;
    Ok(decode(
        r.try_get(0)?,
        r.try_get(2)?,
        r.try_get(3)?,
        r.try_get(4)?,
    ))
}

fn obj(v: Value) -> serde_json::Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}
