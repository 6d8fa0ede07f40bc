//! The crate's errors: faults of the web app itself ([`Error`]: a template
//! that does not compile or render), and what a request can end in
//! ([`WebError`]), each mapped to its status in one exhaustive match.
//!
//! An error answer is a small HTML page for a browser that navigated, and a
//! toast for htmx: [`toasts_for_htmx`] retargets it into the page's live
//! region instead of letting it replace the fragment that asked.

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use rapport_tools::{ErrorCode, ToolError};

use crate::render::escape;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A fault of the web app itself, not of a request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("template error: {0}")]
    Template(#[from] tera::Error),
    /// A dashboard chart could not be drawn.
    #[error("chart error: {0}")]
    Chart(String),
}

/// How a request failed.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// No live session: a browser goes to the sign-in page.
    #[error("sign in first")]
    SignIn { next: String },
    /// An unsafe request without the session's CSRF token.
    #[error("this form has expired or did not come from Rapport; reload the page and try again")]
    Csrf,
    /// Too many failed sign-ins.
    #[error("too many failed sign-ins; try again in {minutes} minutes")]
    RateLimited { minutes: i64 },
    /// The page does not exist (or belongs to another workspace).
    #[error("{0}")]
    NotFound(String),
    /// A form value the page cannot use.
    #[error("{0}")]
    BadRequest(String),
    /// A tool or the store refused or failed.
    #[error("{}", .0.message)]
    Tool(ToolError),
    /// A template failed to render: a bug.
    #[error("the page could not be rendered")]
    Render(#[from] Error),
}

impl From<ToolError> for WebError {
    fn from(e: ToolError) -> Self {
        WebError::Tool(e)
    }
}

impl From<rapport_crm::Error> for WebError {
    fn from(e: rapport_crm::Error) -> Self {
        WebError::Tool(ToolError::from(e))
    }
}

impl From<tera::Error> for WebError {
    fn from(e: tera::Error) -> Self {
        WebError::Render(Error::Template(e))
    }
}

impl WebError {
    pub fn status(&self) -> StatusCode {
        match self {
            WebError::SignIn { .. } => StatusCode::SEE_OTHER,
            WebError::Csrf => StatusCode::FORBIDDEN,
            WebError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            WebError::NotFound(_) => StatusCode::NOT_FOUND,
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::Tool(e) => match e.code {
                ErrorCode::InvalidArgument | ErrorCode::Ambiguous => {
                    StatusCode::UNPROCESSABLE_ENTITY
                }
                ErrorCode::NotFound => StatusCode::NOT_FOUND,
                ErrorCode::PermissionDenied => StatusCode::FORBIDDEN,
                ErrorCode::Conflict => StatusCode::CONFLICT,
                ErrorCode::NotAvailable => StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            },
            WebError::Render(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What the person reads: the tool's message (with the field it names)
    /// for a refused write; nothing internal for a fault.
    pub fn message(&self) -> String {
        match self {
            WebError::Tool(e) if e.code == ErrorCode::Internal => {
                "something went wrong on our side; nothing was changed".into()
            }
            WebError::Tool(e) => match &e.field {
                Some(f) if !f.is_empty() && !e.message.contains(f.as_str()) => {
                    format!("{f}: {}", e.message)
                }
                _ => e.message.clone(),
            },
            other => other.to_string(),
        }
    }
}

/// The message of an error answer, for [`toasts_for_htmx`].
#[derive(Debug, Clone)]
struct ErrorMessage(String);

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        if let WebError::SignIn { next } = &self {
            let to = if next.is_empty() || next == "/" {
                "/signin".to_owned()
            } else {
                format!("/signin?next={}", crate::render::url_encode(next))
            };
            let mut res = Redirect::to(&to).into_response();
            // htmx follows a redirect inside fetch; this makes it navigate.
            if let Ok(v) = HeaderValue::from_str(&to) {
                res.headers_mut().insert("HX-Redirect", v);
            }
            return res;
        }
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = ?self, "web request failed");
        }
        let message = self.message();
        let body = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{code} · Rapport</title>\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <link rel=\"stylesheet\" href=\"{css}\"></head><body class=\"error-page\"><main>\
             <h1>{reason}</h1><p>{msg}</p><p><a href=\"/\">Back to Rapport</a></p></main></body></html>",
            code = status.as_u16(),
            css = crate::assets::url("app.css"),
            reason = status.canonical_reason().unwrap_or("Error"),
            msg = escape(&message),
        );
        let mut res = (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response();
        res.extensions_mut().insert(ErrorMessage(message));
        res
    }
}

/// For an htmx request, an error answer becomes a toast appended to the
/// page's live region (`HX-Retarget`/`HX-Reswap`), so a refused drag or a
/// bad value never replaces the fragment that asked.
pub async fn toasts_for_htmx(req: Request, next: Next) -> Response {
    let htmx = req.headers().contains_key("HX-Request");
    let mut res = next.run(req).await;
    if !htmx {
        return res;
    }
    // fetch would follow a redirect to the sign-in page and swap it into a
    // fragment; htmx navigates on HX-Redirect instead when nothing redirects.
    if res.status() == StatusCode::SEE_OTHER && res.headers().contains_key("HX-Redirect") {
        *res.status_mut() = StatusCode::NO_CONTENT;
        res.headers_mut().remove(header::LOCATION);
        return res;
    }
    let Some(ErrorMessage(message)) = res.extensions().get::<ErrorMessage>().cloned() else {
        return res;
    };
    let status = res.status();
    let body = crate::render::toast(&message, true);
    let mut out = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response();
    let h = out.headers_mut();
    h.insert("HX-Retarget", HeaderValue::from_static("#toasts"));
    h.insert("HX-Reswap", HeaderValue::from_static("beforeend"));
    out
}
