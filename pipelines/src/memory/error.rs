//! Semantic memory's one error type.

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] rapport_crm::Error),

    #[error(transparent)]
    Index(#[from] rapport_index::Error),

    /// The embedder or its tokenizer failed to load or run.
    #[error("model: {0}")]
    Model(String),

    /// A filter or argument is unusable; nothing was read or written.
    #[error("invalid {field}: {message}")]
    Invalid { field: String, message: String },

    /// A blocking task (embedding) panicked or was cancelled.
    #[error("background task failed: {0}")]
    Task(String),
}

impl Error {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<rapport_models::Error> for Error {
    fn from(e: rapport_models::Error) -> Self {
        Error::Model(e.to_string())
    }
}

impl From<tokio::task::JoinError> for Error {
    fn from(e: tokio::task::JoinError) -> Self {
        Error::Task(e.to_string())
    }
}
