//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in `rapport-models`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("manifest: {0}")]
    Manifest(String),

    #[error("unknown model artifact `{name}` (known: {known})")]
    UnknownArtifact { name: String, known: String },

    #[error(
        "artifact `{artifact}` is missing file {}: run `rapport models fetch {artifact}`",
        path.display()
    )]
    Missing { artifact: String, path: PathBuf },

    #[error(
        "sha256 mismatch for {}: expected {expected}, got {actual}; the file is not trusted and will not be loaded \
         (re-run `rapport models fetch {artifact}`, or pass --allow-unpinned with --from to accept it knowingly)",
        path.display()
    )]
    HashMismatch {
        artifact: String,
        path: PathBuf,
        expected: String,
        actual: String,
    },

    #[error(
        "artifact `{artifact}` file `{file}` has no pinned sha256 in the manifest (it hashes to {actual}); \
         pin it, or pass --allow-unpinned to accept it on trust"
    )]
    Unpinned {
        artifact: String,
        file: String,
        actual: String,
    },

    #[error("fetching `{artifact}`: {message}")]
    Fetch { artifact: String, message: String },

    #[error("I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("tokenizer: {0}")]
    Tokenizer(String),

    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),

    #[error("invalid input: {0}")]
    InvalidInput(String),

    #[error("data set: {0}")]
    Data(String),

    #[error("sentiment head: {0}")]
    Head(String),

    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches a path to an I/O error.
pub(crate) trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| Error::Io {
            path: path.into(),
            source,
        })
    }
}
