//! OpenAI-style errors: `{"error": {"message", "type", "param", "code"}}` with
//! the status decided in one exhaustive match.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::llm::LlmError;

/// An error answered to an HTTP client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON or not a valid request.
    #[error("{message}")]
    BadRequest {
        /// What is wrong with the request.
        message: String,
        /// The request field at fault, if one is.
        param: Option<String>,
    },
    /// No such model is served.
    #[error("The model `{0}` does not exist or is not served here")]
    ModelNotFound(String),
    /// The prompt plus requested tokens exceed the model's context.
    #[error("{0}")]
    ContextLength(String),
    /// The server cannot do this (e.g. embeddings without an embedder loaded).
    #[error("{0}")]
    Unavailable(String),
    /// Anything else.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// A 400 naming no particular field.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            message: message.into(),
            param: None,
        }
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } | ApiError::ContextLength(_) => StatusCode::BAD_REQUEST,
            ApiError::ModelNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `error` object of the body.
    pub fn body(&self) -> Value {
        let (kind, code, param) = match self {
            ApiError::BadRequest { param, .. } => ("invalid_request_error", None, param.clone()),
            ApiError::ModelNotFound(_) => (
                "invalid_request_error",
                Some("model_not_found"),
                Some("model".into()),
            ),
            ApiError::ContextLength(_) => (
                "invalid_request_error",
                Some("context_length_exceeded"),
                Some("messages".into()),
            ),
            ApiError::Unavailable(_) => ("server_error", Some("unavailable"), None),
            ApiError::Internal(_) => ("server_error", None, None),
        };
        json!({"error": {"message": self.to_string(), "type": kind, "param": param, "code": code}})
    }
}

impl From<LlmError> for ApiError {
    fn from(e: LlmError) -> Self {
        match e {
            LlmError::ContextOverflow { .. } => ApiError::ContextLength(e.to_string()),
            LlmError::InvalidRequest(_) | LlmError::Grammar(_) | LlmError::Template(_) => {
                ApiError::bad_request(e.to_string())
            }
            LlmError::Load { .. } | LlmError::Decode(_) | LlmError::WorkerGone => {
                ApiError::Internal(e.to_string())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status(), Json(self.body())).into_response()
    }
}
