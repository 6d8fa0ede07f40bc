//! The manifest of a backup: what it holds, where it came from, and the sha256
//! of every file, so a restore can tell a whole backup from a damaged or
//! altered one before it writes anything.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use rapport_crm::snapshot::RegistryRow;
use serde::{Deserialize, Serialize};

use super::{Error, Result, files::IoAt};

/// The manifest's `format`.
pub const FORMAT: &str = "rapport-backup";
/// The layout version this code writes and reads.
pub const VERSION: u32 = 1;
/// The manifest's file name, at the top of the backup.
pub const MANIFEST: &str = "manifest.json";
/// The database snapshot, at the top of the backup and of a data directory.
pub const DATABASE: &str = "rapport.sqlite";
/// The vector index's directory, in the backup and in a data directory.
pub const INDEX_DIR: &str = "index";
/// Where trained model files sit in the backup (`models/sentiment-head/…`).
pub const MODELS_DIR: &str = "models";

/// Everything a restore needs to check a backup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// The layout version ([`VERSION`]).
    pub version: u32,
    /// The Rapport that wrote it.
    pub rapport_version: String,
    pub created_at: DateTime<Utc>,
    /// The data directory backed up (absolute).
    pub source_data_dir: String,
    pub database: DatabaseEntry,
    pub index: IndexEntry,
    pub registry: RegistryEntry,
    /// Every file of the backup but the manifest, sorted by path.
    pub files: Vec<FileEntry>,
}

/// The SQLite snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatabaseEntry {
    /// Its path in the backup ([`DATABASE`]).
    pub file: String,
    /// `PRAGMA integrity_check` of the snapshot: `ok`.
    pub integrity: String,
    /// Rows per table in the snapshot.
    pub tables: BTreeMap<String, i64>,
}

/// What became of the vector index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IndexMode {
    /// The qdrant-edge shard was copied, held alone from before the copy until
    /// after the database snapshot, so no ingestion ran in between: whatever
    /// the copy lacks is still queued in the snapshot's outbox.
    Snapshot,
    /// Another process held the shard, so it was not copied; the snapshot's
    /// outbox queues every activity and `rapport ingest --all-workspaces`
    /// rebuilds the index after a restore (the index is derived data).
    Rebuild,
    /// The data directory had no index.
    Absent,
    /// The index is a Qdrant server: snapshot it with its own API
    /// (docs/operations.md).
    External,
}

impl IndexMode {
    pub fn as_str(self) -> &'static str {
        match self {
            IndexMode::Snapshot => "snapshot",
            IndexMode::Rebuild => "rebuild",
            IndexMode::Absent => "absent",
            IndexMode::External => "external",
        }
    }
}

/// The vector index's part of the backup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexEntry {
    pub mode: IndexMode,
    /// Points in the copied shard (mode `snapshot`).
    pub points: Option<u64>,
    /// Dimension of its dense vectors (mode `snapshot`).
    pub dim: Option<usize>,
    /// In words, what was done and what to do after a restore.
    pub note: String,
}

/// The model registry: the trained versions (rows of the snapshot, artifacts
/// inline) and the trained sentiment heads (files).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegistryEntry {
    pub model_versions: Vec<RegistryRow>,
    /// Versions of `sentiment-head/` copied from the models directory.
    pub sentiment_heads: Vec<String>,
}

/// One file of the backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Relative, `/`-separated.
    pub path: String,
    pub size: u64,
    /// Hex sha256 of the content.
    pub sha256: String,
}

impl Manifest {
    /// Reads and checks the manifest at the top of a backup directory.
    pub fn read(dir: &Path) -> Result<Manifest> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read(&path).at(&path, "reading the manifest")?;
        let manifest: Manifest = serde_json::from_slice(&text)
            .map_err(|e| Error::BadManifest(format!("{}: {e}", path.display())))?;
        if manifest.format != FORMAT {
            return Err(Error::BadManifest(format!(
                "{}: format {:?}, expected {FORMAT:?}",
                path.display(),
                manifest.format
            )));
        }
        if manifest.version != VERSION {
            return Err(Error::BadManifest(format!(
                "{}: layout version {}, this Rapport reads {VERSION}",
                path.display(),
                manifest.version
            )));
        }
        for f in &manifest.files {
            check_relative(&f.path)?;
        }
        Ok(manifest)
    }

    /// Writes the manifest at the top of a backup directory.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(MANIFEST);
        let text = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::BadManifest(format!("cannot encode the manifest: {e}")))?;
        std::fs::write(&path, text).at(&path, "writing the manifest")
    }
}

/// A manifest path must stay inside the backup: relative, no `..`, no root.
fn check_relative(path: &str) -> Result<()> {
    let bad = path.is_empty()
        || path.starts_with('/')
        || path.contains('\\')
        || path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        return Err(Error::BadManifest(format!(
            "the file path {path:?} leaves the backup"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_leave_the_backup_are_refused() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "index/../../x",
            "a//b",
            "./a",
            "a\\b",
        ] {
            assert!(check_relative(bad).is_err(), "{bad}");
        }
        for good in [
            "rapport.sqlite",
            "index/segments/x/y.dat",
            "models/sentiment-head/v1/head.json",
        ] {
            assert!(check_relative(good).is_ok(), "{good}");
        }
    }
}
