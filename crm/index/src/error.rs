//! The index's one error type.

/// Result of every index operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why an index operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The embedded qdrant-edge engine failed (I/O, a corrupt shard, a bad request).
    #[error("vector index (qdrant-edge at {path}): {message}")]
    Edge {
        /// Directory of the shard.
        path: String,
        /// The engine's own description of the failure.
        message: String,
    },

    /// Another handle (another process, or another open in this one) holds
    /// the embedded shard; the engine allows one at a time.
    #[error(
        "the vector index at {path} is open in another process (is `rapport ingest` or `rapport serve --search` running?); try again when it ends"
    )]
    InUse {
        /// Directory of the shard.
        path: String,
    },

    /// The Qdrant server refused a request or could not be reached.
    #[error("vector index (Qdrant server at {url}): {message}")]
    Server {
        /// The server's URL as configured.
        url: String,
        /// The client's or server's description of the failure.
        message: String,
    },

    /// The caller asked for something the index cannot hold or answer.
    #[error("invalid {field}: {message}")]
    Invalid {
        /// The argument or setting at fault (`since`, `vector`, `dimension`, `bm25`).
        field: String,
        /// What is wrong with it.
        message: String,
    },

    /// The index holds data this code did not write (a payload that does not decode).
    #[error("vector index holds an unreadable point: {0}")]
    Corrupt(String),

    /// A blocking engine call panicked or was cancelled.
    #[error("vector index task failed: {0}")]
    Task(String),
}

impl Error {
    /// An [`Error::Invalid`] naming the offending argument or setting.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}
