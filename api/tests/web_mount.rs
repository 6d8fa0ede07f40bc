//! `rapport serve`'s router serves the web app beside the API: the pages
//! answer HTML with their security headers, the API keeps its problem
//! documents and its key check, and a web session is not an API key.

use std::sync::Arc;

use rapport_api::server::{AppState, ServerConfig, app};
use rapport_crm::testing::{Fixture, TestDb};
use rapport_tools::Registry;

async fn get(router: &axum::Router, path: &str) -> (u16, String, String, String) {
    use tower::ServiceExt;
    let res = router
        .clone()
        .oneshot(
            axum::http::Request::get(path)
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = res.status().as_u16();
    let header = |n: &str| {
        res.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let (ct, frame) = (header("content-type"), header("x-frame-options"));
    let body = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        ct,
        frame,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[tokio::test]
async fn the_web_app_is_served_beside_the_api() {
    let db = TestDb::sqlite().await;
    Fixture::new(&db.store, "mount").await.unwrap();
    let state = AppState::new(
        db.store.clone(),
        Arc::new(Registry::new()),
        None,
        ServerConfig::default(),
    )
    .unwrap();
    let router = app(state);
    let (status, ct, frame, body) = get(&router, "/signin").await;
    assert_eq!(status, 200);
    assert!(ct.starts_with("text/html"), "{ct}");
    assert_eq!(frame, "DENY");
    assert!(body.contains("Sign in to Rapport"));
    // A page without a session goes to the sign-in form.
    let (status, ..) = get(&router, "/companies").await;
    assert_eq!(status, 303);
    // The API is unchanged: its key check and its problem documents.
    let (status, ct, _, _) = get(&router, "/api/v1/companies").await;
    assert_eq!((status, ct.as_str()), (401, "application/problem+json"));
    let (status, ct, _, _) = get(&router, "/no-such-thing").await;
    assert_eq!((status, ct.as_str()), (404, "application/problem+json"));
    // The operational endpoints stay open.
    let (status, ..) = get(&router, "/healthz").await;
    assert_eq!(status, 200);
    db.cleanup().await;
}

/// `rapport bench web` from the test build, for machines where a release
/// build of the binary is out of reach: prints the same JSON document.
/// `RAPPORT_BENCH_SIZES=100,10000` chooses the company counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark, run by hand: --run-ignored only --no-capture"]
async fn bench_web() {
    let sizes = std::env::var("RAPPORT_BENCH_SIZES")
        .unwrap_or_else(|_| "100,10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let doc = rapport_api::web_bench::run(&rapport_api::web_bench::WebBenchParams {
        sizes,
        requests: 100,
        postgres_url: None,
    })
    .await
    .expect("bench");
    println!("{}", serde_json::to_string_pretty(&doc).unwrap());
}
