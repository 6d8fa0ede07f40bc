//! Who is using the browser: passwords (argon2id), server-side sessions in a
//! cookie, sign-in with a rate limit, sign-out that revokes.
//!
//! - The session cookie holds 32 random bytes; the database keeps only their
//!   SHA-256, with an expiry and a revocation time. It is `HttpOnly`,
//!   `SameSite=Lax`, `Path=/`, and `Secure` when the request came over TLS
//!   (`X-Forwarded-Proto: https`) or the operator says so.
//! - Sign-in always mints a new session (rotation: a token planted before
//!   sign-in never becomes a signed-in one) and revokes the one the browser
//!   held; sign-out revokes it in the database, not only in the browser.
//! - The sign-in form itself is protected by a double-submit token (a cookie
//!   and a hidden field that must match), so another site cannot sign a
//!   browser into an account of its choosing.
//! - Failed attempts are counted per email and per client address over a
//!   window; beyond the limit the form answers 429 without checking the
//!   password. Unknown emails cost the same argon2 work as known ones.

use std::net::SocketAddr;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::Form;
use axum::extract::{ConnectInfo, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use rapport_crm::model::{Role, User};
use rapport_crm::{Ctx, Source};
use rapport_tools::Caller;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::WebState;
use crate::error::WebError;
use crate::render::Page;

pub const SESSION_COOKIE: &str = "rapport_session";
/// The double-submit token of the sign-in form.
pub const SIGNIN_COOKIE: &str = "rapport_signin";

/// The shortest password `set-password` accepts.
pub const MIN_PASSWORD: usize = 10;

/// An argon2id hash (PHC string) of a password, with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, WebError> {
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes)
        .map_err(|e| WebError::BadRequest(format!("salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| WebError::BadRequest(format!("the password cannot be hashed: {e}")))
}

/// Whether `password` matches the PHC string `hash`.
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Checked for unknown emails so they take as long as known ones (the
/// answer time must not tell which emails have accounts).
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password("not a real password").unwrap_or_default())
}

/// The CSRF token of a session: derived from its secret, so it needs no
/// storage and is useless without the cookie it comes from.
pub fn csrf_token(session_token: &str) -> String {
    let digest = Sha256::digest(format!("rapport-csrf:{session_token}").as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

/// A password for an invitation: 16 random bytes, shown once, to be
/// replaced by the person with `rapport users set-password`.
pub fn temporary_password() -> String {
    let bytes: [u8; 16] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A cookie's value from the request headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

fn over_tls(headers: &HeaderMap, state: &WebState) -> bool {
    state.config.secure_cookies
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

fn set_cookie(name: &str, value: &str, max_age: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let v = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}");
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A path on this site to go back to after sign-in (never another origin).
fn local_path(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/".to_owned(),
    }
}

/// The signed-in user of a request (an extractor for every page).
#[derive(Debug, Clone)]
pub struct Signed {
    pub user: User,
    pub workspace: String,
    pub caller: Caller,
    /// The session's CSRF token, for forms and the page's meta tag.
    pub csrf: String,
    /// The request came from htmx: answer with a fragment.
    pub htmx: bool,
}

impl Signed {
    pub fn ctx(&self) -> Ctx {
        self.caller.ctx()
    }

    /// Viewers read; everyone else may write (ownership is the tools' rule).
    pub fn can_write(&self) -> bool {
        self.user.role != Role::Viewer
    }

    /// Managers and admins: bulk reassign and delete.
    pub fn manages(&self) -> bool {
        self.user.role >= Role::Manager
    }
}

impl FromRequestParts<WebState> for Signed {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Signed, WebError> {
        let next = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default();
        let sign_in = || WebError::SignIn { next: next.clone() };
        let token = cookie(&parts.headers, SESSION_COOKIE).ok_or_else(sign_in)?;
        let (_, user) = state
            .store
            .web_session_for_token(&token)
            .await?
            .ok_or_else(sign_in)?;
        let workspace = state.store.workspace(user.workspace_id).await?.name;
        Ok(Signed {
            caller: Caller::user(&user, Source::Web),
            csrf: csrf_token(&token),
            htmx: parts.headers.contains_key("HX-Request"),
            user,
            workspace,
        })
    }
}

#[derive(Debug, Deserialize)]
pub struct NextParam {
    pub next: Option<String>,
}

/// `GET /signin`: the form, with a fresh double-submit token.
pub async fn sign_in_page(
    State(state): State<WebState>,
    headers: HeaderMap,
    Query(q): Query<NextParam>,
) -> Result<Response, WebError> {
    signin_form(
        &state,
        &headers,
        q.next.as_deref(),
        "",
        None,
        axum::http::StatusCode::OK,
    )
}

fn signin_form(
    state: &WebState,
    headers: &HeaderMap,
    next: Option<&str>,
    email: &str,
    error: Option<&str>,
    status: axum::http::StatusCode,
) -> Result<Response, WebError> {
    let token = random_token();
    let mut page = Page::bare("Sign in");
    page.ctx.insert("signin_token", &token);
    page.ctx.insert("next", &local_path(next));
    page.ctx.insert("email", email);
    page.ctx.insert("error", &error);
    let html = page.render(state, "signin.html")?;
    let mut res = (status, html).into_response();
    res.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SIGNIN_COOKIE, &token, 3600, over_tls(headers, state)),
    );
    Ok(res)
}

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub signin_token: String,
    #[serde(default)]
    pub next: Option<String>,
}

/// The address a request came from (`unknown` when the server was not
/// started with connection info, as in router-only tests). Behind a proxy
/// every request comes from the proxy; the per-email limit still holds.
pub struct ClientAddr(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<ClientAddr, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string())
                .unwrap_or_else(|| "unknown".into()),
        ))
    }
}

/// `POST /signin`.
pub async fn sign_in(
    State(state): State<WebState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Result<Response, WebError> {
    let planted = cookie(&headers, SIGNIN_COOKIE);
    if !planted.is_some_and(|c| crate::security::same(&c, &form.signin_token)) {
        return Err(WebError::Csrf);
    }
    let email = form.email.trim().to_lowercase();
    let since = chrono::Utc::now() - state.config.signin_window;
    let failed = state
        .store
        .failed_signins_since(&email, &client, since)
        .await?;
    if failed.by_email >= state.config.max_failures_per_email
        || failed.by_client >= state.config.max_failures_per_client
    {
        return Err(WebError::RateLimited {
            minutes: state.config.signin_window.num_minutes(),
        });
    }
    let credentials = state.store.credentials_for_email(&email).await?;
    let password = form.password.clone();
    // argon2 takes tens of milliseconds of CPU: off the async workers.
    let matched = tokio::task::spawn_blocking(move || {
        if credentials.is_empty() {
            verify_password(dummy_hash(), &password);
            return None;
        }
        credentials
            .into_iter()
            .find(|c| verify_password(&c.password_hash, &password))
    })
    .await
    .map_err(|e| WebError::BadRequest(format!("sign-in failed: {e}")))?;
    state
        .store
        .record_signin_attempt(&email, &client, matched.is_some())
        .await?;
    let Some(cred) = matched else {
        return signin_form(
            &state,
            &headers,
            form.next.as_deref(),
            &email,
            Some("That email and password do not match an account."),
            axum::http::StatusCode::UNAUTHORIZED,
        );
    };
    // Rotation: whatever session the browser held ends here.
    if let Some(old) = cookie(&headers, SESSION_COOKIE) {
        state.store.revoke_web_session(&old).await?;
    }
    let ctx = Ctx::new(cred.workspace_id, Some(cred.user_id), Source::Web);
    let new = state
        .store
        .create_web_session(&ctx, cred.user_id, state.config.session_ttl)
        .await?;
    let secure = over_tls(&headers, &state);
    let mut res = Redirect::to(&local_path(form.next.as_deref())).into_response();
    let h = res.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(
            SESSION_COOKIE,
            &new.token,
            state.config.session_ttl.num_seconds(),
            secure,
        ),
    );
    h.append(header::SET_COOKIE, set_cookie(SIGNIN_COOKIE, "", 0, secure));
    Ok(res)
}

/// `POST /signout`: revokes the session and clears the cookie.
pub async fn sign_out(
    State(state): State<WebState>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        state.store.revoke_web_session(&token).await?;
    }
    let mut res = Redirect::to("/signin").into_response();
    res.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", 0, over_tls(&headers, &state)),
    );
    if headers.contains_key("HX-Request") {
        res.headers_mut()
            .insert("HX-Redirect", HeaderValue::from_static("/signin"));
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let h = hash_password("correct horse battery").expect("hash");
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password(&h, "correct horse battery"));
        assert!(!verify_password(&h, "correct horse battery!"));
        assert!(!verify_password("not a hash", "x"));
        assert_ne!(h, hash_password("correct horse battery").expect("hash"));
    }

    #[test]
    fn csrf_tokens_differ_per_session() {
        assert_ne!(csrf_token("a"), csrf_token("b"));
        assert_eq!(csrf_token("a"), csrf_token("a"));
    }

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(local_path(Some("/deals/board")), "/deals/board");
        assert_eq!(local_path(Some("//evil.example")), "/");
        assert_eq!(local_path(Some("https://evil.example")), "/");
        assert_eq!(local_path(Some("/\\evil.example")), "/");
        assert_eq!(local_path(None), "/");
    }

    #[test]
    fn cookies_are_read_by_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; rapport_session=tok; b=2"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("tok"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
