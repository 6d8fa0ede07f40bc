//! The harness's errors: what stops a run before or outside a task. A task
//! that fails or cannot finish is not an error; it is a result in the report.

use std::path::{Path, PathBuf};

/// What stops a run, before or outside a task.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A suite file does not parse.
    #[error("suite {path}: {message}")]
    Suite {
        /// The suite file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A task names something that does not exist.
    #[error("suite {path}, task {task}: {message}")]
    Task {
        /// The suite file.
        path: PathBuf,
        /// The task's id.
        task: String,
        /// What it names that does not exist.
        message: String,
    },
    /// The arm's agent profile cannot be read or used.
    #[error(transparent)]
    Profile(#[from] rapport_agent::ProfileError),
    /// A recording or report file is not what it should be.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The scratch CRM store failed (setup, seeding, snapshots).
    #[error(transparent)]
    Store(#[from] rapport_crm::Error),
    /// The agent failed outside a task's turn (building it, its prompt).
    #[error(transparent)]
    Agent(#[from] rapport_agent::AgentError),
    /// A model, embedder or backend could not be obtained or loaded.
    #[error("model: {0}")]
    Model(String),
    /// A replay could not prune or re-key its recording: it cannot tell
    /// which recorded exchanges the tasks use.
    #[error("recording left as it was: {0}")]
    Rewrite(String),
}

impl Error {
    /// An [`Error::Io`] on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_owned(),
            source,
        }
    }

    /// An [`Error::File`]: `path` is not what it should be.
    pub fn file(path: &Path, message: impl std::fmt::Display) -> Error {
        Error::File {
            path: path.to_owned(),
            message: message.to_string(),
        }
    }
}

/// Result of the harness's operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
