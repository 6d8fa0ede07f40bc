//! `rapport bench web`: the web app's pages against the JSON API request that
//! reads the same data, on the same server, in the same run — the pipeline
//! board, a table page and a record page, at 100 and at 10,000 companies.
//!
//! Each page is requested back to back by one signed-in browser-like client
//! (a session cookie), each API request by one key holder; latency is
//! measured at the client over loopback, so it is the server's time plus a
//! local round trip. The ratio is the page's p50 over the API's p50: what
//! rendering HTML (and the extra reads a page does: labels, counts,
//! related records, the timeline) costs over returning JSON.
//!
//! | page | the API request compared |
//! | --- | --- |
//! | `GET /deals/board` | `GET /api/v1/deals?filter=<open deals of the pipeline>&limit=200` |
//! | `GET /companies?sort=name` | `GET /api/v1/companies?sort=name&limit=50` |
//! | `GET /companies/{id}` | `GET /api/v1/companies/{id}` |

use std::time::Instant;

use rapport_crm::bench::ratio;
use rapport_crm::model::User;
use rapport_crm::{Ctx, RecordMap, RecordType, Source, Store};
use serde_json::{Value, json};

use crate::bench::BenchError;

/// What `rapport bench web` measures.
#[derive(Debug, Clone)]
pub struct WebBenchParams {
    /// Company counts to measure at.
    pub sizes: Vec<usize>,
    /// Requests per page and per API request (after a warm-up of a tenth).
    pub requests: usize,
    /// A PostgreSQL server for scratch databases; `None`: SQLite only.
    pub postgres_url: Option<String>,
}

/// Runs every size on SQLite (and PostgreSQL when given) and returns the report.
pub async fn run(p: &WebBenchParams) -> Result<Value, BenchError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut results = Vec::new();
    for &size in &p.sizes {
        let dir =
            std::env::temp_dir().join(format!("rapport-bench-web-{}-{size}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| BenchError::Server(crate::Error::Io(e)))?;
        let store = Store::connect(&Store::sqlite_url_in(&dir)).await?;
        let r = one_size(&store, size, p.requests).await;
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
        results.push(json!({"backend": "sqlite", "companies": size, "pages": r?}));
        if let Some(admin) = &p.postgres_url {
            let name = format!("rapport_bench_web_{}_{size}", std::process::id());
            let url = rapport_crm::scratch::create_scratch_database(admin, &name).await?;
            let r = async {
                let store = Store::connect(&url).await?;
                let r = one_size(&store, size, p.requests).await;
                store.close().await;
                r
            }
            .await;
            rapport_crm::scratch::drop_scratch_database(admin, &name).await?;
            results.push(json!({"backend": "postgres", "companies": size, "pages": r?}));
        }
    }
    Ok(json!({
        "benchmark": "web",
        "requests_per_scenario": p.requests,
        "build": if cfg!(debug_assertions) { "debug" } else { "release" },
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "results": results,
    }))
}

fn http_err(e: impl std::fmt::Display) -> BenchError {
    BenchError::Http(e.to_string())
}

/// Seeds `size` companies (a contact and a deal for every fourth, a few
/// activities on the measured one), serves the app, measures each pair.
async fn one_size(store: &Store, size: usize, requests: usize) -> Result<Vec<Value>, BenchError> {
    let ws = store.create_workspace("bench-web").await?;
    let system = Ctx::new(ws.id, None, Source::Cli);
    let admin: User = store
        .create(
            &system,
            json!({"name": "Bench", "email": "bench@bench.test", "role": "admin"}),
        )
        .await?;
    let ctx = Ctx::new(ws.id, Some(admin.id), Source::Cli);
    let pipeline = rapport_crm::seed::create_default_pipeline(store, &ctx).await?;
    let stages = store
        .list_dyn(
            &ctx,
            RecordType::Stage,
            &rapport_crm::ListQuery::filtered(rapport_crm::Filter::eq("pipeline_id", pipeline.id))
                .limit(100),
        )
        .await?
        .items;
    // (id, probability) of the open stages: bulk inserts take every column.
    let open: Vec<(i64, f64)> = stages
        .iter()
        .filter(|s| s["outcome"] == "open")
        .filter_map(|s| Some((s["id"].as_i64()?, s["probability"].as_f64()?)))
        .collect();
    let now = rapport_crm::schema::format_timestamp(&chrono::Utc::now());
    let rows: Vec<RecordMap> = (0..size)
        .map(|i| {
            let mut m = RecordMap::new();
            m.insert("name".into(), json!(format!("Company {i:06}")));
            m.insert("employees".into(), json!((i * 7919) % 5000));
            m.insert(
                "industry".into(),
                json!(["Software", "Retail", "Health", "Logistics"][i % 4]),
            );
            m.insert("owner_id".into(), json!(admin.id));
            m
        })
        .collect();
    let mut tx = store.begin().await?;
    let companies = tx.bulk_insert(&ctx, RecordType::Company, rows).await?;
    let contacts: Vec<RecordMap> = companies
        .iter()
        .step_by(4)
        .enumerate()
        .map(|(i, c)| {
            let mut m = RecordMap::new();
            m.insert("first_name".into(), json!(format!("Person {i}")));
            m.insert("company_id".into(), json!(c));
            m.insert("owner_id".into(), json!(admin.id));
            m
        })
        .collect();
    tx.bulk_insert(&ctx, RecordType::Contact, contacts).await?;
    let deals: Vec<RecordMap> = companies
        .iter()
        .step_by(4)
        .enumerate()
        .map(|(i, c)| {
            let mut m = RecordMap::new();
            m.insert("name".into(), json!(format!("Deal {i}")));
            m.insert("company_id".into(), json!(c));
            m.insert("pipeline_id".into(), json!(pipeline.id));
            let (stage, probability) = open[i % open.len()];
            m.insert("stage_id".into(), json!(stage));
            m.insert("probability".into(), json!(probability));
            m.insert("stage_entered_at".into(), json!(now));
            m.insert("value".into(), json!(1000 + (i * 37) % 50_000));
            m.insert("owner_id".into(), json!(admin.id));
            m
        })
        .collect();
    tx.bulk_insert(&ctx, RecordType::Deal, deals).await?;
    tx.commit().await?;
    let measured = companies[companies.len() / 2];
    for i in 0..5 {
        let _: rapport_crm::model::Activity = store
            .create(
                &ctx,
                json!({"kind": "call", "body": format!("Call {i} about pricing"), "company_id": measured, "owner_id": admin.id}),
            )
            .await?;
    }
    let password = "bench password 1";
    let hash = rapport_web::auth::hash_password(password).map_err(http_err)?;
    store.set_password_hash(&ctx, admin.id, Some(&hash)).await?;
    let key = store.create_api_key(&ctx, admin.id, "bench").await?.secret;

    let (base, stop, server) = crate::bench::start_unlimited(store).await?;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(http_err)?;
    let cookie = sign_in(&client, &base, "bench@bench.test", password).await?;
    let board_filter = json!({"and": [{"field": "pipeline_id", "op": "eq", "value": pipeline.id},
                                      {"field": "status", "op": "eq", "value": "open"}]});
    let pairs = [
        (
            "board",
            "/deals/board".to_owned(),
            format!(
                "/api/v1/deals?limit=200&filter={}",
                rapport_web::render::url_encode(&board_filter.to_string())
            ),
        ),
        (
            "table_page",
            "/companies?sort=name".to_owned(),
            "/api/v1/companies?sort=name&limit=50".to_owned(),
        ),
        (
            "record_page",
            format!("/companies/{measured}"),
            format!("/api/v1/companies/{measured}"),
        ),
    ];
    let mut out = Vec::new();
    for (name, page, api) in pairs {
        let web = measure(
            &client,
            &format!("{base}{page}"),
            Auth::Cookie(&cookie),
            requests,
        )
        .await?;
        let json_api = measure(&client, &format!("{base}{api}"), Auth::Key(&key), requests).await?;
        out.push(json!({
            "scenario": name,
            "page": page,
            "api": api,
            "web": web,
            "json_api": json_api,
            "p50_ratio": ratio(web["p50_ms"].as_f64().unwrap_or(0.0), json_api["p50_ms"].as_f64().unwrap_or(f64::NAN)),
            "bytes_ratio": ratio(web["bytes"].as_f64().unwrap_or(0.0), json_api["bytes"].as_f64().unwrap_or(f64::NAN)),
        }));
    }
    let _ = stop.send(());
    let _ = server.await;
    Ok(out)
}

async fn sign_in(
    client: &reqwest::Client,
    base: &str,
    email: &str,
    password: &str,
) -> Result<String, BenchError> {
    let form = client
        .get(format!("{base}/signin"))
        .send()
        .await
        .map_err(http_err)?;
    let planted = cookie_of(form.headers(), rapport_web::auth::SIGNIN_COOKIE)
        .ok_or_else(|| http_err("the sign-in page set no token"))?;
    let res = client
        .post(format!("{base}/signin"))
        .header(
            "cookie",
            format!("{}={planted}", rapport_web::auth::SIGNIN_COOKIE),
        )
        .header("content-type", "application/x-www-form-urlencoded")
        .body(rapport_web::render::query_string(&[
            ("email".to_owned(), email.to_owned()),
            ("password".to_owned(), password.to_owned()),
            ("signin_token".to_owned(), planted.clone()),
        ]))
        .send()
        .await
        .map_err(http_err)?;
    cookie_of(res.headers(), rapport_web::auth::SESSION_COOKIE)
        .map(|v| format!("{}={v}", rapport_web::auth::SESSION_COOKIE))
        .ok_or_else(|| http_err(format!("sign-in failed with {}", res.status())))
}

fn cookie_of(h: &reqwest::header::HeaderMap, name: &str) -> Option<String> {
    h.get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next()?.split_once('='))
        .find(|(k, v)| *k == name && !v.is_empty())
        .map(|(_, v)| v.to_owned())
}

enum Auth<'a> {
    Cookie(&'a str),
    Key(&'a str),
}

/// `requests` GETs back to back after a warm-up: p50, p99 and body size.
async fn measure(
    client: &reqwest::Client,
    url: &str,
    auth: Auth<'_>,
    requests: usize,
) -> Result<Value, BenchError> {
    let warm = (requests / 10).max(3);
    let mut lat = Vec::with_capacity(requests);
    let mut bytes = 0;
    for i in 0..warm + requests {
        let req = match auth {
            Auth::Cookie(c) => client.get(url).header("cookie", c),
            Auth::Key(k) => client.get(url).bearer_auth(k),
        };
        let t = Instant::now();
        let res = req.send().await.map_err(http_err)?;
        let status = res.status();
        let body = res.bytes().await.map_err(http_err)?;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        if !status.is_success() {
            return Err(http_err(format!("{url} answered {status}")));
        }
        if i >= warm {
            lat.push(ms);
            bytes = body.len();
        }
    }
    lat.sort_by(f64::total_cmp);
    let at = |q: f64| lat[((lat.len() as f64 - 1.0) * q).round() as usize];
    let r2 = |x: f64| (x * 100.0).round() / 100.0;
    Ok(json!({"p50_ms": r2(at(0.5)), "p99_ms": r2(at(0.99)), "bytes": bytes}))
}
