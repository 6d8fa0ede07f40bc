//! `rapport bench api`: the server under load over real HTTP — a point read
//! (`GET /api/v1/companies/{id}`) and a filtered list (`GET
//! /api/v1/companies?filter=…&limit=20`) at N concurrent connections for a
//! fixed time each — beside PostgreSQL's own select-only throughput from
//! `pgbench -S` at the same concurrency, on the same machine, in the same run.
//! The load generator runs in this process: on a small machine it takes CPU
//! from the server, which the ratio to pgbench (whose client also shares the
//! machine) partly accounts for.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rapport_crm::bench::ratio;
use rapport_crm::model::User;
use rapport_crm::scratch::{create_scratch_database, drop_scratch_database};
use rapport_crm::{Ctx, RecordMap, RecordType, Source, Store};
use rapport_tools::Registry;
use serde_json::{Value, json};

use crate::server::{AppState, ServerConfig, serve};

/// Size and length of an API benchmark run (`rapport bench api`).
#[derive(Debug, Clone)]
pub struct ApiBenchParams {
    /// PostgreSQL server for the scratch databases (created and dropped).
    pub postgres_url: String,
    /// Companies in the table being read.
    pub rows: usize,
    /// Concurrent connections.
    pub connections: usize,
    /// Seconds per scenario.
    pub seconds: u64,
    /// Also run the API scenarios on a SQLite file.
    pub sqlite: bool,
}

/// Why a benchmark run failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A scratch database could not be set up or seeded.
    #[error(transparent)]
    Store(#[from] rapport_crm::Error),
    /// The API server under test failed.
    #[error(transparent)]
    Server(#[from] crate::Error),
    /// A benchmark request failed at the HTTP level.
    #[error("the HTTP client failed: {0}")]
    Http(String),
    /// The pgbench baseline could not run.
    #[error("pgbench failed: {0}")]
    Pgbench(String),
}

/// Runs the whole benchmark and returns its JSON report.
pub async fn run(p: &ApiBenchParams) -> Result<Value, BenchError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut backends = Vec::new();
    let name = format!("rapport_bench_api_{}", std::process::id());
    let url = create_scratch_database(&p.postgres_url, &name).await?;
    let pg = async {
        let store = Store::connect(&url).await?;
        let r = scenarios(&store, p).await;
        store.close().await;
        r
    }
    .await;
    drop_scratch_database(&p.postgres_url, &name).await?;
    backends.push(json!({"backend": "postgres", "scenarios": pg?}));
    if p.sqlite {
        let dir = tempfile_dir()?;
        let store = Store::connect(&Store::sqlite_url_in(&dir)).await?;
        let r = scenarios(&store, p).await;
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
        backends.push(json!({"backend": "sqlite", "scenarios": r?}));
    }
    let pgbench = pgbench(p).await?;
    let tps = pgbench["tps"].as_f64().unwrap_or(f64::NAN);
    let ratios: Vec<Value> = backends
        .iter()
        .flat_map(|b| {
            let backend = b["backend"].clone();
            b["scenarios"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |s| {
                    json!({"backend": backend, "scenario": s["scenario"],
                           "api_rps_over_pgbench_tps": ratio(s["throughput_rps"].as_f64().unwrap_or(0.0), tps)})
                })
        })
        .collect();
    Ok(json!({
        "benchmark": "api",
        "connections": p.connections,
        "seconds_per_scenario": p.seconds,
        "rows": p.rows,
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "api": backends,
        "pgbench_select_only": pgbench,
        "ratios": ratios,
    }))
}

/// A server on a free local port with rate limits out of the way (the
/// benchmarks measure the server, not the limiter): its base URL, the sender
/// that stops it, and its task.
pub(crate) async fn start_unlimited(
    store: &Store,
) -> Result<
    (
        String,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<crate::Result<()>>,
    ),
    BenchError,
> {
    let config = ServerConfig {
        rate_per_sec: 1e9,
        rate_burst: u32::MAX,
        ..ServerConfig::default()
    };
    let state = AppState::new(store.clone(), Arc::new(Registry::new()), None, config)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(crate::Error::Io)?;
    let base = format!(
        "http://{}",
        listener.local_addr().map_err(crate::Error::Io)?
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, state, async {
        let _ = stopped.await;
    }));
    Ok((base, stop, server))
}

fn tempfile_dir() -> Result<std::path::PathBuf, BenchError> {
    let dir = std::env::temp_dir().join(format!("rapport-bench-api-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| BenchError::Server(crate::Error::Io(e)))?;
    Ok(dir)
}

/// Seeds a workspace, starts the server, runs both scenarios, stops it.
async fn scenarios(store: &Store, p: &ApiBenchParams) -> Result<Vec<Value>, BenchError> {
    let ws = store.create_workspace("bench-api").await?;
    let system = Ctx::new(ws.id, None, Source::Cli);
    let admin: User = store
        .create(
            &system,
            json!({"name": "Bench", "email": "bench@bench.test", "role": "admin"}),
        )
        .await?;
    let ctx = Ctx::new(ws.id, Some(admin.id), Source::Cli);
    let rows: Vec<RecordMap> = (0..p.rows)
        .map(|i| {
            let mut m = RecordMap::new();
            m.insert("name".into(), json!(format!("Company {i:06}")));
            m.insert("employees".into(), json!((i * 7919) % 5000));
            m.insert("owner_id".into(), json!(admin.id));
            m
        })
        .collect();
    let mut tx = store.begin().await?;
    let ids = tx.bulk_insert(&ctx, RecordType::Company, rows).await?;
    tx.commit().await?;
    let key = store.create_api_key(&ctx, admin.id, "bench").await?.secret;

    let (base, stop, server) = crate::bench::start_unlimited(store).await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(p.connections)
        .build()
        .map_err(|e| BenchError::Http(e.to_string()))?;
    let ids = Arc::new(ids);
    let point = {
        let ids = ids.clone();
        let base = base.clone();
        move |n: u64| {
            format!(
                "{base}/api/v1/companies/{}",
                ids[(n as usize).wrapping_mul(2_654_435_761) % ids.len()]
            )
        }
    };
    let list = {
        let base = base.clone();
        move |n: u64| {
            let lo = (n * 37) % 4900;
            let filter = json!({"and": [{"field": "employees", "op": "gte", "value": lo},
                                        {"field": "employees", "op": "lt", "value": lo + 100}]});
            format!(
                "{base}/api/v1/companies?limit=20&filter={}",
                urlencode(&filter.to_string())
            )
        }
    };
    // A short warm-up fills the connection pools of both sides.
    load(&client, &key, p.connections, Duration::from_secs(1), &point).await?;
    let mut out = vec![
        summarise(
            "point_read",
            load(
                &client,
                &key,
                p.connections,
                Duration::from_secs(p.seconds),
                &point,
            )
            .await?,
            p.seconds,
        ),
        summarise(
            "filtered_list",
            load(
                &client,
                &key,
                p.connections,
                Duration::from_secs(p.seconds),
                &list,
            )
            .await?,
            p.seconds,
        ),
    ];
    for s in &mut out {
        s["store"] = json!(store.backend().name());
    }
    let _ = stop.send(());
    let _ = server.await;
    Ok(out)
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

struct Load {
    latencies_us: Vec<f64>,
    errors: u64,
}

/// `connections` workers issue requests back to back for `time`.
async fn load(
    client: &reqwest::Client,
    key: &str,
    connections: usize,
    time: Duration,
    url: &(impl Fn(u64) -> String + Clone + Send + Sync + 'static),
) -> Result<Load, BenchError> {
    let until = Instant::now() + time;
    let mut workers = Vec::with_capacity(connections);
    for w in 0..connections {
        let client = client.clone();
        let key = key.to_owned();
        let url = url.clone();
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut n = w as u64 * 1_000_003;
            while Instant::now() < until {
                n += 1;
                let t = Instant::now();
                let ok = match client.get(url(n)).bearer_auth(&key).send().await {
                    Ok(res) => {
                        let good = res.status().is_success();
                        good && res.bytes().await.is_ok()
                    }
                    Err(_) => false,
                };
                if ok {
                    lat.push(t.elapsed().as_secs_f64() * 1e6);
                } else {
                    errors += 1;
                }
            }
            (lat, errors)
        }));
    }
    let mut all = Load {
        latencies_us: Vec::new(),
        errors: 0,
    };
    for w in workers {
        let (lat, errors) = w.await.map_err(|e| BenchError::Http(e.to_string()))?;
        all.latencies_us.extend(lat);
        all.errors += errors;
    }
    Ok(all)
}

fn summarise(name: &str, mut l: Load, seconds: u64) -> Value {
    l.latencies_us.sort_by(f64::total_cmp);
    let n = l.latencies_us.len();
    let at = |q: f64| {
        if n == 0 {
            f64::NAN
        } else {
            l.latencies_us[((n as f64 - 1.0) * q).round() as usize] / 1000.0
        }
    };
    let r2 = |x: f64| (x * 100.0).round() / 100.0;
    json!({
        "scenario": name,
        "requests": n,
        "errors": l.errors,
        "throughput_rps": r2(n as f64 / seconds as f64),
        "p50_ms": r2(at(0.5)),
        "p99_ms": r2(at(0.99)),
    })
}

/// `pgbench -S` (select-only) at the same concurrency on a scratch database.
async fn pgbench(p: &ApiBenchParams) -> Result<Value, BenchError> {
    let name = format!("rapport_bench_pgbench_{}", std::process::id());
    let url = create_scratch_database(&p.postgres_url, &name).await?;
    let run = |args: &[&str]| -> Result<String, BenchError> {
        let out = Command::new("pgbench").args(args).output().map_err(|e| {
            BenchError::Pgbench(format!(
                "cannot run pgbench ({e}); install postgresql-client"
            ))
        })?;
        if !out.status.success() {
            return Err(BenchError::Pgbench(
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let clients = p.connections.to_string();
    let secs = p.seconds.to_string();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .to_string();
    let result = run(&["-i", "-q", "-s", "10", &url]).and_then(|_| {
        run(&[
            "-S", "-n", "-c", &clients, "-j", &threads, "-T", &secs, &url,
        ])
    });
    drop_scratch_database(&p.postgres_url, &name).await?;
    let text = result?;
    let number_after = |label: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<f64>().ok())
    };
    Ok(json!({
        "clients": p.connections,
        "scale": 10,
        "tps": number_after("tps = "),
        "latency_avg_ms": number_after("latency average = "),
    }))
}
