//! Every error the HTTP server answers with is an RFC 9457 problem document
//! (`application/problem+json`): a stable `code` to branch on, a `detail` a
//! person can act on, and — for tool errors — the field at fault, a hint, the
//! candidates of an ambiguous reference and whether a retry can help. HTTP
//! statuses are decided here, in one exhaustive match per error type.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rapport_agent::AgentError;
use rapport_crm::Candidate;
use rapport_tools::{ErrorCode, ToolError};
use serde::Serialize;
use utoipa::ToSchema;

/// Content type of problem documents (RFC 9457).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error answer. `type` is a URN naming the code, so clients can branch
/// on either.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// `urn:rapport:problem:CODE`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The status's reason phrase.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request, in one sentence.
    pub detail: String,
    /// A stable code: `invalid_argument`, `not_found`, `unauthorized`, …
    pub code: String,
    /// The argument at fault, as a path (`filter`, `follow_up.due_at`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What to do next.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// For `ambiguous`: the records that may be meant, best first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub candidates: Vec<Candidate>,
    /// Whether the same request may succeed if sent again unchanged.
    pub retryable: bool,
    /// Seconds to wait before trying again (429).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

impl Problem {
    /// A problem with a status, code and detail; not retryable.
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Problem {
        Problem {
            kind: format!("urn:rapport:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            code: code.to_owned(),
            field: None,
            hint: None,
            candidates: Vec::new(),
            retryable: false,
            retry_after: None,
        }
    }

    /// Adds what the client should do next.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Problem {
        self.hint = Some(hint.into());
        self
    }

    /// Names the argument at fault.
    pub fn with_field(mut self, field: impl Into<String>) -> Problem {
        self.field = Some(field.into());
        self
    }

    /// 400 `invalid_argument`, naming the field.
    pub fn bad_request(field: &str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, "invalid_argument", detail).with_field(field)
    }

    /// 404 `not_found`.
    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    /// 401 `unauthorized`, with a hint on sending a key.
    pub fn unauthorized(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
            .with_hint("send `Authorization: Bearer rk_…` with a key from `rapport keys create`")
    }

    /// 500 `internal`: a fault of the server; retryable.
    pub fn internal(detail: impl Into<String>) -> Problem {
        let mut p = Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail);
        p.retryable = true;
        p
    }

    /// The HTTP status to answer with (500 if `status` is not a valid code).
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

/// The status of each tool error code.
pub fn tool_status(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidArgument => StatusCode::BAD_REQUEST,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Ambiguous => StatusCode::CONFLICT,
        ErrorCode::PermissionDenied => StatusCode::FORBIDDEN,
        ErrorCode::Conflict => StatusCode::CONFLICT,
        // A capability that is set up but has nothing to answer with yet (no
        // trained model, no index): the state of the server, not a fault.
        ErrorCode::NotAvailable => StatusCode::CONFLICT,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<ToolError> for Problem {
    fn from(e: ToolError) -> Problem {
        let mut p = Problem::new(tool_status(e.code), e.code.as_str(), e.message);
        p.field = e.field;
        p.hint = e.hint;
        p.candidates = e.candidates;
        p.retryable = e.retryable;
        p
    }
}

impl From<rapport_crm::Error> for Problem {
    fn from(e: rapport_crm::Error) -> Problem {
        ToolError::from(e).into()
    }
}

impl From<AgentError> for Problem {
    fn from(e: AgentError) -> Problem {
        match e {
            AgentError::Tool(t) => t.into(),
            AgentError::Store(s) => s.into(),
            AgentError::Invalid(m) => Problem::new(StatusCode::BAD_REQUEST, "invalid_argument", m),
            AgentError::Conflict(m) => Problem::new(StatusCode::CONFLICT, "conflict", m),
            AgentError::Backend(b) => {
                let mut p = Problem::new(
                    StatusCode::BAD_GATEWAY,
                    "model_unavailable",
                    format!("the language model failed: {b}"),
                );
                p.retryable = true;
                p
            }
            AgentError::Prompt(m) | AgentError::Embedder(m) => Problem::internal(m),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status();
        let retry_after = self.retry_after;
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut res = (status, body).into_response();
        let h = res.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(secs) = retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

/// The code of a bare status (a rejection by axum or a tower layer).
fn code_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::REQUEST_TIMEOUT | StatusCode::GATEWAY_TIMEOUT => "timeout",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "permission_denied",
        s if s.is_server_error() => "internal",
        _ => "invalid_argument",
    }
}

/// Turns error answers that are not problem documents yet — axum's extractor
/// rejections, 404/405 of the router, 413 of the body limit, 408 of the
/// timeout — into problem documents, keeping their text as the detail. JSON,
/// event streams (MCP's own errors) and HTML (the web app's pages) pass unchanged.
pub async fn problemize(res: Response) -> Response {
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let typed = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            // The web app's pages answer errors as HTML (or htmx toasts).
            ct.contains("json")
                || ct.starts_with("text/event-stream")
                || ct.starts_with("text/html")
        });
    if typed {
        return res;
    }
    let (parts, body) = res.into_parts();
    let text = axum::body::to_bytes(body, 8 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let detail = match (status, text.is_empty()) {
        (StatusCode::PAYLOAD_TOO_LARGE, _) => {
            "the request body is larger than this server accepts".to_owned()
        }
        (StatusCode::NOT_FOUND, true) => "no such endpoint: see /api/openapi.json".to_owned(),
        (StatusCode::METHOD_NOT_ALLOWED, true) => {
            "this endpoint does not accept that method: see /api/openapi.json".to_owned()
        }
        (StatusCode::REQUEST_TIMEOUT, true) => "the request took too long".to_owned(),
        (_, true) => status.canonical_reason().unwrap_or("error").to_owned(),
        (_, false) => text,
    };
    let mut out = Problem::new(status, code_of(status), detail).into_response();
    // Keep headers such as Retry-After, Allow and the request id.
    for (k, v) in parts.headers.iter() {
        if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
            out.headers_mut().insert(k.clone(), v.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_errors_keep_their_field_hint_and_code() {
        let p: Problem = ToolError::invalid("name", "missing field `name`")
            .with_hint("give a name")
            .into();
        assert_eq!(p.status, 400);
        assert_eq!(p.code, "invalid_argument");
        assert_eq!(p.field.as_deref(), Some("name"));
        assert_eq!(p.hint.as_deref(), Some("give a name"));
        assert_eq!(p.kind, "urn:rapport:problem:invalid_argument");
    }

    #[test]
    fn every_tool_code_has_a_client_or_server_status() {
        for (code, status) in [
            (ErrorCode::NotFound, 404),
            (ErrorCode::PermissionDenied, 403),
            (ErrorCode::Conflict, 409),
            (ErrorCode::Internal, 500),
        ] {
            assert_eq!(tool_status(code).as_u16(), status);
        }
    }
}
