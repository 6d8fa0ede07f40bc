//! The crate's error type: faults of the server itself (a tool that cannot be
//! described, a session that cannot start, a socket that fails). A failed tool
//! call is not one of them: it travels to the client as a tool result or a
//! problem document.

/// Result of the server's own operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A fault of the server itself, as opposed to a failed call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tool's schema is not a JSON object, so MCP cannot carry it.
    #[error("tool {tool}: the {which} schema is not a JSON object")]
    Schema {
        /// The tool's name.
        tool: String,
        /// `input` or `output`.
        which: &'static str,
    },
    /// The client closed or broke the connection before the MCP handshake ended.
    /// Boxed: rmcp's error carries a whole message and would bloat every `Result`.
    #[error("the MCP session could not start: {0}")]
    Start(Box<rmcp::service::ServerInitializeError>),
    /// The task serving the session panicked or was aborted.
    #[error("the MCP session ended abnormally: {0}")]
    Session(#[from] tokio::task::JoinError),
    /// The web app could not start (a template that does not compile).
    #[error("the web app failed to start: {0}")]
    Web(#[from] rapport_web::Error),
    /// The HTTP server could not bind or serve.
    #[error("the HTTP server failed: {0}")]
    Io(#[from] std::io::Error),
}

impl From<rmcp::service::ServerInitializeError> for Error {
    fn from(err: rmcp::service::ServerInitializeError) -> Self {
        Error::Start(Box::new(err))
    }
}
