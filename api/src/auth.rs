//! Who is calling: every protected request carries `Authorization: Bearer
//! rk_…`, a key created with `rapport keys create`. The key's hash finds the
//! key and its user; the request then acts as that user, in that user's
//! workspace, with that user's role ([`Caller`] with source `api`, put in the
//! request's extensions for handlers and for MCP). Then the per-key rate limit
//! applies (429 with `Retry-After`), shared by every server on the database.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rapport_crm::model::User;
use rapport_crm::{Bucket, Id, Source, Store};
use rapport_tools::Caller;

use crate::problem::Problem;
use crate::server::AppState;

/// The authenticated user of a request (an extractor for handlers).
#[derive(Debug, Clone)]
pub struct Auth {
    /// The key's user.
    pub user: User,
    /// The API key's id (for logs and `GET /api/v1/me`).
    pub key_id: Id,
    /// The caller tool calls run as: the user, role and workspace, source `api`.
    pub caller: Caller,
}

impl<S: Send + Sync> FromRequestParts<S> for Auth {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Auth, Problem> {
        parts
            .extensions
            .get::<Auth>()
            .cloned()
            .ok_or_else(|| Problem::unauthorized("this endpoint needs an API key"))
    }
}

fn bearer(req: &Request) -> Result<&str, Problem> {
    let value = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| Problem::unauthorized("no Authorization header: an API key is needed"))?;
    let value = value
        .to_str()
        .map_err(|_| Problem::unauthorized("the Authorization header is not readable text"))?;
    let (scheme, key) = value
        .split_once(' ')
        .ok_or_else(|| Problem::unauthorized("expected `Authorization: Bearer KEY`"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || key.trim().is_empty() {
        return Err(Problem::unauthorized(
            "expected `Authorization: Bearer KEY`",
        ));
    }
    Ok(key.trim())
}

/// The middleware: resolves the key, refuses unknown or revoked ones, applies
/// the rate limit and hands the [`Auth`] to the handler.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    // Owned before any await: a request body is not `Sync`, so a borrowed
    // request cannot be held across one.
    let key = match bearer(&req) {
        Ok(k) => k.to_owned(),
        Err(p) => return p.into_response(),
    };
    let auth = match resolve(&state, &key).await {
        Ok(a) => a,
        Err(p) => return p.into_response(),
    };
    let checked = state.limiter.check(&state.store, auth.key_id).await;
    let limited = match checked {
        Ok(answer) => answer,
        Err(e) => {
            tracing::error!(error = %e, "rate limit check failed");
            return Problem::internal("the rate limit could not be checked; try again")
                .into_response();
        }
    };
    if let Err(wait) = limited {
        let secs = wait.ceil().max(1.0) as u64;
        let mut p = Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "this key made more than {} requests in a burst ({} per second on average); try again in {secs} s",
                state.config.rate_burst, state.config.rate_per_sec
            ),
        );
        p.retryable = true;
        p.retry_after = Some(secs);
        return p.into_response();
    }
    req.extensions_mut().insert(auth.caller.clone());
    req.extensions_mut().insert(auth);
    next.run(req).await
}

async fn resolve(state: &AppState, key: &str) -> Result<Auth, Problem> {
    let found = state.store.user_for_api_key(key).await.map_err(|e| {
        tracing::error!(error = %e, "API key lookup failed");
        Problem::internal("the key could not be checked; try again")
    })?;
    let (key, user) =
        found.ok_or_else(|| Problem::unauthorized("this API key is unknown or was revoked"))?;
    Ok(Auth {
        caller: Caller::user(&user, Source::Api),
        key_id: key.id,
        user,
    })
}

/// The per-key rate limit, one for all servers on the database: each key's
/// token bucket is a row ([`Store::take_rate_tokens`]), so two `rapport
/// serve` processes behind a balancer give a key its limit once, not twice.
///
/// A request does not pay a database write: a process takes tokens from the
/// shared bucket in batches (a tenth of what a second allows, at most 1000)
/// and spends them locally; a refusal is remembered until the bucket refills,
/// so a throttled key does not reach the database either. The limit is never
/// exceeded (every request spends a token taken from the shared bucket);
/// what a process holds unspent — less than one batch per key — only reaches
/// the key later.
pub struct RateLimiter {
    limits: Bucket,
    batch: u32,
    local: Mutex<HashMap<Id, Held>>,
}

/// What one process holds of a key's bucket.
#[derive(Default)]
struct Held {
    tokens: u32,
    refused_until: Option<Instant>,
}

impl RateLimiter {
    /// `rate` requests per second on average (at least 0.001), `burst` at once.
    pub fn new(rate: f64, burst: u32) -> RateLimiter {
        let limits = Bucket {
            rate: rate.max(0.001),
            burst: f64::from(burst.max(1)),
        };
        let per_second = limits.burst.min(limits.rate);
        RateLimiter {
            batch: (per_second / 10.0).clamp(1.0, 1000.0) as u32,
            limits,
            local: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `key`, or says how many seconds until one is there.
    pub async fn check(
        &self,
        store: &Store,
        key: Id,
    ) -> Result<Result<(), f64>, rapport_crm::Error> {
        let now = Instant::now();
        if let Some(answer) = self.answer_held(key, now) {
            return Ok(answer);
        }
        let grant = store.take_rate_tokens(key, self.batch, self.limits).await?;
        let mut local = self.local.lock().unwrap_or_else(|e| e.into_inner());
        let held = local.entry(key).or_default();
        if grant.granted == 0 {
            held.refused_until = Some(now + Duration::from_secs_f64(grant.wait_secs));
            return Ok(Err(grant.wait_secs));
        }
        held.refused_until = None;
        held.tokens += grant.granted - 1;
        Ok(Ok(()))
    }

    /// The answer this process can give alone: a token it holds, or the
    /// wait of a refusal that still stands.
    fn answer_held(&self, key: Id, now: Instant) -> Option<Result<(), f64>> {
        let mut local = self.local.lock().unwrap_or_else(|e| e.into_inner());
        let held = local.get_mut(&key)?;
        if held.tokens > 0 {
            held.tokens -= 1;
            return Some(Ok(()));
        }
        let until = held.refused_until?;
        (until > now).then(|| Err((until - now).as_secs_f64()))
    }
}
