//! The agent's errors. Tool errors are not here: they go back to the model as
//! data it can correct from. These are the failures the user has to see.

use crate::backend::BackendError;

/// Why a turn, an approval or an undo failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The model backend failed (after its own retries).
    #[error(transparent)]
    Backend(#[from] BackendError),

    /// The store failed reading or writing the session.
    #[error(transparent)]
    Store(#[from] rapport_crm::Error),

    /// A tool error outside the loop (undo, approving a proposal).
    #[error("{}", .0.message)]
    Tool(#[from] rapport_tools::ToolError),

    /// The system prompt template does not render.
    #[error("prompt template: {0}")]
    Prompt(String),

    /// The sentence embedder used to pick tools failed.
    #[error("tool selection: {0}")]
    Embedder(String),

    /// The user asked for something that cannot be done as asked (approve a
    /// proposal that is not pending, edit a field that was not proposed, …).
    #[error("{0}")]
    Invalid(String),

    /// Undo refused because the record changed since, or nothing to undo.
    #[error("{0}")]
    Conflict(String),
}

/// Result of the agent's operations.
pub type Result<T, E = AgentError> = std::result::Result<T, E>;
