/*!
Rapport's web app: sign-in, Today (the rep's next-best actions, tasks and
risks), the command palette, the dashboard, record tables, record pages and
the pipeline board, rendered on the server with tera and made faster (never
possible) by htmx.

This crate owns the browser-facing surface only: pages, browser sessions,
CSRF and the vendored static assets. Every write goes through the tool
registry (`rapport-tools`) as the signed-in user with source `web`, exactly as
the REST API's writes do, so permissions, the one transaction and the audit
entry are the same on every path. Reads go to the store with the same typed
filters the `list_X` tools take (a page view should not cost an audit write).

The shape, one concern per module:

- [`assets`]: the vendored htmx, its SSE extension and SortableJS, our own CSS
  and JS, embedded in the binary and served under a versioned path with
  long cache lifetimes.
- [`security`]: response headers (a CSP without inline scripts, frame and
  referrer policies) and the CSRF check on every unsafe request.
- [`auth`]: argon2id passwords, server-side sessions in a cookie, sign-in
  with a rate limit, sign-out that revokes.
- [`render`]: the templates (autoescaped) and the formatting they share.
- [`meta`]: what the pages know about each record type (path, columns,
  labels, how a typed value is read from a form).
- [`tables`], [`record`], [`board`]: the record pages.
- [`today`]: the home page: next-best actions (with their feedback through
  `nba_feedback`), due tasks, deals and accounts at risk.
- [`palette`]: the command palette (Ctrl/Cmd+K) and [`new`], the small
  forms of its actions.
- [`dashboard`] with [`charts`]: figures from the tools, drawn as SVG on
  the server.

Pages read without JavaScript: every action is a link or a form that posts and
redirects. With htmx, the same routes answer with the fragment that changed
(`HX-Request`), and errors arrive as toasts in a live region.

```no_run
# async fn demo(store: rapport_crm::Store) {
use std::sync::Arc;
let web = rapport_web::WebState::new(store, Arc::new(rapport_tools::Registry::new()), Default::default()).unwrap();
let app: axum::Router = rapport_web::router(web);
# }
```
*/

// 62 public items still lack docs (2026-12-07); the workspace warns
// `missing_docs`, and this allowance goes when the crate is documented.
#![allow(missing_docs)]

pub mod assets;
pub mod auth;
pub mod board;
pub mod charts;
pub mod dashboard;
mod error;
pub mod meta;
pub mod new;
pub mod palette;
pub mod record;
pub mod render;
pub mod security;
pub mod tables;
pub mod today;

use std::sync::Arc;

use axum::Router;
use axum::middleware;
use axum::routing::{get, post};
use rapport_crm::Store;
use rapport_tools::Registry;

pub use error::{Error, Result, WebError};

/// What an operator tunes.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// Mark cookies `Secure` even without `X-Forwarded-Proto: https` (set it
    /// when a TLS proxy does not send that header).
    pub secure_cookies: bool,
    /// How long a browser session lasts after sign-in.
    pub session_ttl: chrono::Duration,
    /// The window of the sign-in rate limit…
    pub signin_window: chrono::Duration,
    /// …failed attempts allowed per email in it…
    pub max_failures_per_email: i64,
    /// …and per client address.
    pub max_failures_per_client: i64,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            secure_cookies: false,
            session_ttl: chrono::Duration::days(7),
            signin_window: chrono::Duration::minutes(15),
            max_failures_per_email: 5,
            max_failures_per_client: 30,
        }
    }
}

/// Everything a page handler uses. Cheap to clone.
#[derive(Clone)]
pub struct WebState(Arc<Inner>);

pub struct Inner {
    pub store: Store,
    pub registry: Arc<Registry>,
    pub templates: tera::Tera,
    pub config: WebConfig,
}

impl std::ops::Deref for WebState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl WebState {
    /// Compiles the templates (a broken template fails here, at start-up).
    pub fn new(store: Store, registry: Arc<Registry>, config: WebConfig) -> Result<WebState> {
        Ok(WebState(Arc::new(Inner {
            store,
            registry,
            templates: render::templates()?,
            config,
        })))
    }
}

/// The web app's routes, with their own layers (security headers, CSRF,
/// errors as toasts for htmx), ready to merge into any router. Every path is
/// static or under a record type's own prefix, so the routes merge beside
/// the API's without catching its unknown paths.
pub fn router<S: Clone + Send + Sync + 'static>(state: WebState) -> Router<S> {
    let mut pages = Router::new()
        .route("/", get(today::home))
        .route("/today", get(today::page))
        .route("/today/actions", post(today::feedback))
        .route("/today/tasks/{id}/complete", post(today::complete_task))
        .route("/today/tasks/{id}/reschedule", post(today::reschedule_task))
        .route("/palette", get(palette::page))
        .route("/new/{what}", get(new::page).post(new::create))
        .route("/dashboard", get(dashboard::page))
        .route("/deals/board", get(board::page))
        .route("/deals/{id}/move", post(board::move_deal))
        .route("/signout", post(auth::sign_out));
    for kind in meta::Kind::ALL {
        let p = kind.path();
        pages = pages
            .route(&format!("/{p}"), get(tables::page))
            .route(&format!("/{p}/bulk"), post(tables::bulk))
            .route(&format!("/{p}/views"), post(tables::save_view))
            .route(
                &format!("/{p}/views/{{id}}/delete"),
                post(tables::delete_view),
            )
            .route(&format!("/{p}/{{id}}"), get(record::page))
            .route(
                &format!("/{p}/{{id}}/fields/{{field}}"),
                get(record::field_editor),
            )
            .route(&format!("/{p}/{{id}}/fields"), post(record::update_field))
            .route(&format!("/{p}/{{id}}/timeline"), get(record::timeline))
            .route(
                &format!("/{p}/{{id}}/activities"),
                post(record::log_activity),
            )
            .route(&format!("/{p}/{{id}}/tasks"), post(record::add_task))
            .route(&format!("/{p}/{{id}}/tags"), post(record::tag));
    }
    let pages = pages.route_layer(middleware::from_fn(security::csrf));
    Router::new()
        .route("/signin", get(auth::sign_in_page).post(auth::sign_in))
        .merge(pages)
        .route(
            &format!("/assets/{}/{{file}}", assets::ASSET_VERSION),
            get(assets::serve),
        )
        .layer(middleware::from_fn(error::toasts_for_htmx))
        .layer(middleware::from_fn(security::headers))
        .with_state(state)
}
