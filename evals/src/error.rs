//! The harness's errors: what stops a run before or outside a task. A task
//! that fails or cannot finish is not an error; it is a result in the report.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A suite file does not parse.
    #[error("suite {path}: {message}")]
    Suite { path: PathBuf, message: String },
    /// A task names something that does not exist.
    #[error("suite {path}, task {task}: {message}")]
    Task {
        path: PathBuf,
        task: String,
        message: String,
    },
    /// The agent configuration is wrong.
    #[error("agent config: {0}")]
    Config(String),
    /// A recording or report file is not what it should be.
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error(transparent)]
    Store(#[from] rapport_crm::Error),
    #[error(transparent)]
    Agent(#[from] rapport_agent::AgentError),
    #[error("model: {0}")]
    Model(String),
    /// A replay could not prune or re-key its recording: it cannot tell
    /// which recorded exchanges the tasks use.
    #[error("recording left as it was: {0}")]
    Rewrite(String),
}

impl Error {
    pub fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_owned(),
            source,
        }
    }

    pub fn file(path: &Path, message: impl std::fmt::Display) -> Error {
        Error::File {
            path: path.to_owned(),
            message: message.to_string(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
