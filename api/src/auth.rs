//! Who is calling: every protected request carries `Authorization: Bearer
//! rk_…`, a key created with `rapport keys create`. The key's hash finds the
//! key and its user; the request then acts as that user, in that user's
//! workspace, with that user's role ([`Caller`] with source `api`, put in the
//! request's extensions for handlers and for MCP). Then the per-key rate limit
//! applies (429 with `Retry-After`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rapport_crm::model::User;
use rapport_crm::{Id, Source};
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
    if let Err(wait) = state.limiter.check(auth.key_id) {
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

/// A token bucket per key: `burst` requests at once, refilled at `rate` per
/// second. In memory: one server process enforces its own limits.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<Id, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// `rate` requests per second on average (at least 0.001), `burst` at once.
    pub fn new(rate: f64, burst: u32) -> RateLimiter {
        RateLimiter {
            rate: rate.max(0.001),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `key`, or says how many seconds until one is there.
    pub fn check(&self, key: Id) -> Result<(), f64> {
        self.check_at(key, Instant::now())
    }

    fn check_at(&self, key: Id, now: Instant) -> Result<(), f64> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let b = buckets.entry(key).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate).min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err((1.0 - b.tokens) / self.rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_passes_then_waits_for_the_refill() {
        let l = RateLimiter::new(2.0, 3);
        let t = Instant::now();
        for _ in 0..3 {
            assert!(l.check_at(1, t).is_ok());
        }
        let wait = l.check_at(1, t).expect_err("bucket empty");
        assert!((wait - 0.5).abs() < 1e-9, "{wait}");
        // Another key has its own bucket.
        assert!(l.check_at(2, t).is_ok());
        assert!(l.check_at(1, t + Duration::from_millis(500)).is_ok());
    }
}
