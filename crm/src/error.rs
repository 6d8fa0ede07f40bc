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

impl Error {
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
            _ => None,
        }
    }
}
