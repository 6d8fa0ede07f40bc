//! The crate's one error type, written for the model (or person) that made the
//! call: a stable code to branch on, a message, the argument at fault, a hint on
//! what to do next, the candidates of an ambiguous reference, and whether trying
//! again unchanged can help. Diagnostics for operators go to the logs instead.

use rapport_crm::{Candidate, RecordType};
use serde::{Deserialize, Serialize};

/// Result of a tool call and of the helpers tools are built from.
pub type Result<T, E = ToolError> = std::result::Result<T, E>;

/// What kind of failure this is; adapters map it to HTTP statuses, MCP errors
/// and exit codes with one exhaustive match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The arguments are malformed or a value is out of range. Fix `field`.
    InvalidArgument,
    /// A record the call names does not exist in the workspace.
    NotFound,
    /// A loose reference matches several records; pick one of `candidates`.
    Ambiguous,
    /// The caller's role or ownership does not allow this.
    PermissionDenied,
    /// The change would break consistency (duplicate, still referenced, …).
    Conflict,
    /// The capability exists but has nothing to answer with yet.
    NotAvailable,
    /// A fault of Rapport or its database, not of the caller.
    Internal,
}

impl ErrorCode {
    /// The code as models and clients see it (`invalid_argument`, `not_found`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Ambiguous => "ambiguous",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::Conflict => "conflict",
            ErrorCode::NotAvailable => "not_available",
            ErrorCode::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed tool call. Nothing the call did was kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ToolError {
    /// What kind of failure; branch on this, not on the message.
    pub code: ErrorCode,
    /// What went wrong, in one sentence written for the caller.
    pub message: String,
    /// The argument at fault, as a path into the arguments (`filter`, `deal_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What to do next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// For `ambiguous`: the records that may be meant, best first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<Candidate>,
    /// Whether the same call may succeed if tried again unchanged.
    pub retryable: bool,
    /// The underlying fault (a database error, …), for operators: the
    /// registry logs it once; it is never sent to models or clients.
    #[serde(skip)]
    #[source]
    pub cause: Option<Cause>,
}

/// The error behind a [`ToolError`], kept for the logs. Two causes compare
/// equal: a tool error's meaning is its code, message and field.
#[derive(Debug, Clone)]
pub struct Cause(std::sync::Arc<dyn std::error::Error + Send + Sync>);

impl Cause {
    /// Wraps an error for the logs.
    pub fn new(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Cause(std::sync::Arc::new(err))
    }
}

impl PartialEq for Cause {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl ToolError {
    /// An error with a code and message only: no field, hint or candidates, not retryable.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ToolError {
            code,
            message: message.into(),
            field: None,
            hint: None,
            candidates: Vec::new(),
            retryable: false,
            cause: None,
        }
    }

    /// Keeps the error behind this one for the logs.
    pub fn with_cause(mut self, cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.cause = Some(Cause::new(cause));
        self
    }

    /// An argument is malformed or out of range; `field` is its path in the arguments.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ToolError::new(ErrorCode::InvalidArgument, message).with_field(field)
    }

    /// A record the call names does not exist in the caller's workspace.
    pub fn not_found(message: impl Into<String>) -> Self {
        ToolError::new(ErrorCode::NotFound, message)
    }

    /// The caller's role or ownership does not allow the call.
    pub fn denied(message: impl Into<String>) -> Self {
        ToolError::new(ErrorCode::PermissionDenied, message)
    }

    /// A fault of Rapport or its database; the caller cannot fix it.
    pub fn internal(message: impl Into<String>) -> Self {
        ToolError::new(ErrorCode::Internal, message)
    }

    /// Several records match a reference that must name one.
    pub fn ambiguous(what: &str, candidates: Vec<Candidate>) -> Self {
        let labels: Vec<String> = candidates
            .iter()
            .map(|c| format!("{} {} ({})", c.record_type, c.id, c.label))
            .collect();
        ToolError {
            candidates,
            ..ToolError::new(
                ErrorCode::Ambiguous,
                format!(
                    "{} records match {what:?}: {}",
                    labels.len(),
                    labels.join("; ")
                ),
            )
            .with_hint("ask the user which one is meant, then call again with its id")
        }
    }

    /// Names the argument at fault (a path such as `follow_up.due_at`).
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// Adds what the caller should do next.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Arguments that do not deserialize into the tool's `Args`, with the path
    /// of the offending field.
    pub fn from_args(err: serde_path_to_error::Error<serde_json::Error>) -> Self {
        let path = err.path().to_string();
        let inner = err.into_inner().to_string();
        // serde names the field only in the message for missing/unknown ones.
        let named = ["missing field `", "unknown field `"]
            .iter()
            .find_map(|p| inner.strip_prefix(p))
            .and_then(|rest| rest.split('`').next())
            .map(str::to_owned);
        let field = match (path.as_str(), named) {
            (".", Some(n)) => n,
            // Unknown fields are already the last step of the path.
            (p, Some(n)) if p == n || p.ends_with(&format!(".{n}")) => p.to_owned(),
            (p, Some(n)) => format!("{p}.{n}"),
            (".", None) => "arguments".to_owned(),
            (p, None) => p.to_owned(),
        };
        ToolError::invalid(field, inner)
            .with_hint("call again with arguments that match the tool's input schema")
    }
}

fn lookup_hint(rt: RecordType) -> String {
    format!(
        "find the right {rt} id with find_records or list_{}",
        rt.plural()
    )
}

impl From<rapport_crm::Error> for ToolError {
    fn from(err: rapport_crm::Error) -> Self {
        use rapport_crm::Error as E;
        let message = err.to_string();
        let tool = match &err {
            E::Invalid { field, .. } => ToolError::invalid(field.clone(), message),
            E::NotFound { record, .. } => {
                ToolError::not_found(message).with_hint(lookup_hint(*record))
            }
            E::MissingReference { field, target, .. } => ToolError::not_found(message)
                .with_field(field.clone())
                .with_hint(lookup_hint(*target)),
            E::Duplicate {
                field, existing_id, ..
            } => ToolError::new(ErrorCode::Conflict, message)
                .with_field(field.clone())
                .with_hint(format!(
                    "record {existing_id} already holds this value; update it instead"
                )),
            E::Conflict(_) => ToolError::new(ErrorCode::Conflict, message),
            E::Rule(rule) => {
                let code = match rule.kind {
                    rapport_crm::RuleKind::Invalid => ErrorCode::InvalidArgument,
                    rapport_crm::RuleKind::NotFound => ErrorCode::NotFound,
                    rapport_crm::RuleKind::Conflict => ErrorCode::Conflict,
                };
                ToolError {
                    field: rule.field.clone(),
                    hint: rule.hint.clone(),
                    ..ToolError::new(code, message)
                }
            }
            // Busy databases, timeouts and dropped connections pass; constraint
            // faults are mapped to the variants above by the store.
            E::Database(_) => ToolError {
                retryable: true,
                ..ToolError::internal("the database failed; the call changed nothing")
            },
            E::Migrate(_) | E::Config(_) | E::Internal(_) => ToolError::internal(message),
        };
        if tool.code == ErrorCode::Internal {
            tool.with_cause(err)
        } else {
            tool
        }
    }
}
