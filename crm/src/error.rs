//! The crate's one error type. Every variant carries what a person (or a model)
//! needs to correct the request: the field at fault and what was expected.

use crate::schema::RecordType;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A value, filter or argument failed validation. Nothing was written.
    #[error("invalid {field}: {message}")]
    Invalid { field: String, message: String },

    /// The record does not exist in the caller's workspace (records of other
    /// workspaces are reported exactly like missing ones).
    #[error("{record} {id} not found")]
    NotFound { record: RecordType, id: i64 },

    /// A field that must be unique already holds this value in the workspace.
    #[error("{record} with {field} {value:?} already exists (id {existing_id})")]
    Duplicate {
        record: RecordType,
        field: String,
        value: String,
        existing_id: i64,
    },

    /// A reference points at a record that is missing from the workspace.
    #[error("invalid {field}: no {target} with id {id} in this workspace")]
    MissingReference {
        field: String,
        target: RecordType,
        id: i64,
    },

    /// The write would break the data's consistency (e.g. deleting a record that
    /// others still reference). Nothing was written.
    #[error("conflict: {0}")]
    Conflict(String),

    /// A rule of the domain refused the change (a deal closed without a reason,
    /// a status set by a generic update, …). Nothing was written; the rule
    /// says what to do instead.
    #[error("{}", .0.message)]
    Rule(Rule),

    /// The database could not be reached or failed in a way the caller cannot fix.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),

    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),

    #[error("{0}")]
    Config(String),

    /// A bug or a database in a state this code did not write; not the caller's fault.
    #[error("internal error: {0}")]
    Internal(String),
}

/// What a domain rule refused, in the words a caller (person or model) can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub kind: RuleKind,
    pub message: String,
    /// The argument at fault, when there is one.
    pub field: Option<String>,
    /// What to do instead.
    pub hint: Option<String>,
}

/// How a refused rule is reported: as a bad argument, a missing record or a
/// conflict with the record's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    Invalid,
    NotFound,
    Conflict,
}

impl Error {
    /// A rule refusal; add the field and hint with [`Error::at`] and [`Error::hint`].
    pub fn rule(kind: RuleKind, message: impl Into<String>) -> Self {
        Error::Rule(Rule {
            kind,
            message: message.into(),
            field: None,
            hint: None,
        })
    }

    /// Names the argument a rule refusal is about (no effect on other errors).
    pub fn at(mut self, field: impl Into<String>) -> Self {
        if let Error::Rule(r) = &mut self {
            r.field = Some(field.into());
        }
        self
    }

    /// Says what to do instead (no effect on other errors).
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        if let Error::Rule(r) = &mut self {
            r.hint = Some(hint.into());
        }
        self
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The field this error is about, if any: adapters show it to the caller.
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::Invalid { field, .. }
            | Error::Duplicate { field, .. }
            | Error::MissingReference { field, .. } => Some(field),
            Error::Rule(r) => r.field.as_deref(),
            _ => None,
        }
    }
}
