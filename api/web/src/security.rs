//! What protects a signed-in browser: response headers on every answer and the
//! CSRF check on every unsafe request.
//!
//! - The Content-Security-Policy allows scripts and styles from this origin
//!   only (`script-src 'self'`: no inline script, no `eval`), no framing, no
//!   plugins, forms posting only here. Record text is data, escaped by the
//!   templates; the CSP is the second wall if an escape were ever missed.
//! - `X-Frame-Options: DENY` for browsers that predate `frame-ancestors`,
//!   `Referrer-Policy: same-origin` so record URLs do not leak to other sites,
//!   `X-Content-Type-Options: nosniff`, and `Cache-Control: no-store` on pages
//!   (they hold customer data; assets set their own lifetime).
//! - CSRF: each session has a token derived from its secret
//!   ([`crate::auth::csrf_token`]); an unsafe request must carry it in the
//!   `X-CSRF-Token` header (htmx, via `app.js`) or a `csrf` form field (plain
//!   forms). SameSite=Lax cookies already stop most cross-site posts; the
//!   token also covers same-site subdomains and old browsers.

use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::{SESSION_COOKIE, cookie, csrf_token};
use crate::error::WebError;

pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

/// The header htmx requests carry the token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The form field plain forms carry it in.
pub const CSRF_FIELD: &str = "csrf";
/// Largest form body read for the token (the same as the server's limit).
const MAX_FORM: usize = 1 << 20;

/// Adds the security headers to every answer of the web app.
pub async fn headers(req: Request, next: Next) -> Response {
    let is_asset = req.uri().path().starts_with("/assets/");
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if !is_asset {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::VARY, HeaderValue::from_static("HX-Request, Cookie"));
    }
    res
}

fn safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Compares in time independent of where the strings differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Refuses an unsafe request whose CSRF token is missing or wrong (403).
/// Without a session it answers with the sign-in redirect: nothing unsafe
/// runs unsigned.
pub async fn csrf(req: Request, next: Next) -> Response {
    if safe(req.method()) {
        return next.run(req).await;
    }
    let Some(token) = cookie(req.headers(), SESSION_COOKIE) else {
        return WebError::SignIn {
            next: String::new(),
        }
        .into_response();
    };
    let expected = csrf_token(&token);
    if let Some(sent) = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()) {
        return if same(sent, &expected) {
            next.run(req).await
        } else {
            WebError::Csrf.into_response()
        };
    }
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return WebError::Csrf.into_response();
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_FORM).await else {
        return WebError::BadRequest("the form is too large".into()).into_response();
    };
    let sent = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
        .ok()
        .and_then(|pairs| {
            pairs
                .into_iter()
                .find(|(k, _)| k == CSRF_FIELD)
                .map(|(_, v)| v)
        });
    match sent {
        Some(sent) if same(&sent, &expected) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        _ => WebError::Csrf.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_compares_whole_strings() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
        assert!(!same("", "a"));
    }

    #[test]
    fn the_policy_allows_no_inline_script() {
        assert!(CSP.contains("script-src 'self'"));
        assert!(!CSP.contains("unsafe-inline"));
        assert!(!CSP.contains("unsafe-eval"));
        assert!(CSP.contains("frame-ancestors 'none'"));
    }
}
