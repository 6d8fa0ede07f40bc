//! Backup and restore of the embedded deployment: the SQLite database, the
//! qdrant-edge index and the model registry of a data directory, taken while
//! a server may be running, into one directory or `.tar` with a manifest.
//!
//! **Consistency.** The database copy is SQLite's `VACUUM INTO`
//! ([`rapport_crm::snapshot`]): the database as of one commit, while writers go
//! on. The index is derived from the database (the outbox queues every change
//! for `rapport ingest`), so it need not be copied at the same instant; it
//! must only never be *ahead* of what the database copy implies without the
//! outbox saying so. The backup therefore opens the shard itself (the engine
//! allows one handle, so no ingestion can run anywhere meanwhile), flushes
//! and copies it, and only then takes the database snapshot: every change the
//! index copy lacks is still queued in the snapshot's outbox, and
//! `rapport ingest --all-workspaces` after a restore finishes the job. When
//! another process holds the shard (`rapport serve --search`, a running
//! ingestion), the qdrant-edge engine offers no way to snapshot it from
//! outside (0.7 has no snapshot-creation API), so the backup leaves it out
//! and queues every activity in the snapshot's outbox instead: the restored
//! data directory rebuilds its index with one `rapport ingest
//! --all-workspaces`. The manifest says which of the two happened.
//!
//! **The model registry** is the `model_versions` table (each trained lead or
//! churn model with its artifact inline), listed in the manifest with a hash
//! of each artifact and checked again after a restore, plus the trained
//! sentiment heads (`sentiment-head/` of the models directory), copied as files.
//! Fetched models (MiniLM, the GGUF chat models) are not backed up: they are
//! fetched again by name and verified by sha256.
//!
//! **Restore** refuses a non-empty data directory without `force`, checks the
//! manifest's sha256 of every file while copying into a temporary directory
//! beside the target, re-checks the database (`PRAGMA integrity_check`, the
//! row counts, the registry) and the index's point count, and only then puts
//! the directory in place with a rename: a damaged backup writes nothing.

pub mod files;
pub mod manifest;

use std::path::{Path, PathBuf};

use indicatif::ProgressBar;
use rapport_crm::Store;
use rapport_crm::snapshot::{self, SnapshotFile};
use rapport_index::EdgeIndex;
use serde::Serialize;
use tempfile::TempDir;

use files::IoAt;
pub use manifest::{
    DATABASE, DatabaseEntry, FileEntry, INDEX_DIR, IndexEntry, IndexMode, MANIFEST, MODELS_DIR,
    Manifest, RegistryEntry,
};

/// Where the trained sentiment heads live in a models directory.
const HEADS: &str = rapport_models::sentiment::HEAD_DIR;

/// Why a backup or restore stopped. Nothing is left half-written by any of them.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no database at {0}: nothing to back up (is --data-dir right?)")]
    NoDatabase(PathBuf),
    #[error("{0} exists already; back up to a new path")]
    DestinationExists(PathBuf),
    #[error("{} is not empty: restore will not overwrite it without --force", .path.display())]
    NotEmpty { path: PathBuf },
    #[error("no backup at {0} (a backup directory or a .tar file)")]
    NoBackup(PathBuf),
    #[error("not a Rapport backup: {0}")]
    BadManifest(String),
    #[error(
        "the backup is damaged or was altered: {path} has sha256 {actual}, the manifest says {expected}; nothing was restored"
    )]
    HashMismatch {
        path: String,
        expected: String,
        actual: String,
    },
    #[error("the backup is damaged or was altered: {0}; nothing was restored")]
    Tampered(String),
    #[error(transparent)]
    Snapshot(#[from] snapshot::SnapshotError),
    #[error(transparent)]
    Crm(#[from] rapport_crm::Error),
    #[error(transparent)]
    Index(#[from] rapport_index::Error),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where the deployment keeps its vectors.
#[derive(Debug, Clone)]
pub enum IndexSource {
    /// The qdrant-edge shard in this directory (`DATA_DIR/index`).
    Embedded(PathBuf),
    /// A Qdrant server at this URL: not Rapport's to copy.
    External(String),
}

/// What to back up, and where to.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    /// The data directory holding `rapport.sqlite`.
    pub data_dir: PathBuf,
    pub index: IndexSource,
    /// The models directory whose `sentiment-head/` is copied, if any.
    pub models_dir: Option<PathBuf>,
    /// A new directory, or a file ending in `.tar`.
    pub dest: PathBuf,
}

/// What to restore, and where to.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// A backup directory or `.tar`.
    pub source: PathBuf,
    /// The data directory to create (or, with `force`, replace).
    pub data_dir: PathBuf,
    /// Where the backup's sentiment heads go (`MODELS_DIR/sentiment-head`);
    /// `None` leaves them out.
    pub models_dir: Option<PathBuf>,
    /// Replace a non-empty data directory (and sentiment-head directory).
    pub force: bool,
}

/// What a restore did.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub data_dir: PathBuf,
    /// A non-empty data directory was replaced (`force`).
    pub replaced: bool,
    /// Where the sentiment heads went, if the backup had any and they were restored.
    pub sentiment_heads: Option<PathBuf>,
    pub index: IndexEntry,
    pub tables: std::collections::BTreeMap<String, i64>,
    pub model_versions: usize,
}

/// Whether `dest` names a `.tar` archive rather than a directory.
pub fn is_tar(dest: &Path) -> bool {
    dest.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("tar"))
}

/// Backs up a data directory: the index copy (or the decision to rebuild it),
/// the database snapshot, the registry, the manifest; then the directory or
/// archive appears at `dest` in one rename.
pub async fn backup(opts: &BackupOptions, progress: &ProgressBar) -> Result<Manifest> {
    let db_path = opts.data_dir.join(DATABASE);
    if !db_path.is_file() {
        return Err(Error::NoDatabase(db_path));
    }
    if opts.dest.exists() && !(opts.dest.is_dir() && files::is_free(&opts.dest)?) {
        return Err(Error::DestinationExists(opts.dest.clone()));
    }
    let staging = files::staging_beside(&opts.dest, ".rapport-backup-")?;
    let root = staging.path();
    let store = Store::connect(&Store::sqlite_url_in(&opts.data_dir)).await?;

    progress.set_message("index");
    let (mut index, held) = take_index(&opts.index, &root.join(INDEX_DIR)).await?;
    progress.set_message("database");
    let snapshotted = snapshot::snapshot_sqlite(&store, &root.join(DATABASE)).await;
    // Ingestion may run again only once the database copy exists.
    drop(held);
    store.close().await;
    snapshotted?;

    let (database, model_versions) =
        check_snapshot(&root.join(DATABASE), index.mode == IndexMode::Rebuild).await?;
    if index.mode == IndexMode::Rebuild {
        index.note.push_str(&format!(
            " The snapshot's outbox queues all {} activities.",
            database.tables.get("activities").copied().unwrap_or(0)
        ));
    }
    let sentiment_heads = match &opts.models_dir {
        Some(dir) => copy_heads(&dir.join(HEADS), &root.join(MODELS_DIR).join(HEADS))?,
        None => Vec::new(),
    };

    progress.set_message("hashing");
    let manifest = Manifest {
        format: manifest::FORMAT.into(),
        version: manifest::VERSION,
        rapport_version: env!("CARGO_PKG_VERSION").into(),
        created_at: chrono::Utc::now(),
        source_data_dir: absolute(&opts.data_dir).display().to_string(),
        database,
        index,
        registry: RegistryEntry {
            model_versions,
            sentiment_heads,
        },
        files: files::hash_all(root, progress)?,
    };
    manifest.write(root)?;
    progress.set_message("writing");
    finish(staging, &opts.dest)?;
    tracing::info!(dest = %opts.dest.display(), files = manifest.files.len(), index = manifest.index.mode.as_str(), "backup written");
    Ok(manifest)
}

/// The open shard, held until the database snapshot is taken.
struct Held(#[allow(dead_code)] Option<EdgeIndex>);

/// Copies the embedded shard, holding it, or says why it is not copied.
async fn take_index(source: &IndexSource, dest: &Path) -> Result<(IndexEntry, Held)> {
    let entry = |mode, note: &str| IndexEntry {
        mode,
        points: None,
        dim: None,
        note: note.to_owned(),
    };
    let dir = match source {
        IndexSource::External(url) => {
            let note = format!(
                "The index is the Qdrant server at {url}; snapshot its collection with Qdrant's snapshot API (docs/operations.md)."
            );
            return Ok((entry(IndexMode::External, &note), Held(None)));
        }
        IndexSource::Embedded(dir) => dir,
    };
    if !dir.join("edge_config.json").exists() {
        let note = "The data directory had no vector index.";
        return Ok((entry(IndexMode::Absent, note), Held(None)));
    }
    let index = match EdgeIndex::open_existing(dir).await {
        Ok(index) => index,
        Err(rapport_index::Error::InUse { path }) => {
            tracing::warn!(%path, "the index is in use by another process: it is left out and rebuilt from the database after a restore");
            let note = "Another process held the index, so it was not copied; after a restore, `rapport ingest --all-workspaces` rebuilds it from the database.";
            return Ok((entry(IndexMode::Rebuild, note), Held(None)));
        }
        Err(e) => return Err(e.into()),
    };
    let bytes = index.copy_files(dest).await?;
    let points = index.total_points().await?;
    tracing::info!(points, bytes, "vector index copied");
    let note = "The qdrant-edge shard, copied while no ingestion could run; `rapport ingest --all-workspaces` after a restore indexes what the snapshot's outbox still queues.";
    let entry = IndexEntry {
        mode: IndexMode::Snapshot,
        points: Some(points),
        dim: Some(index.dim()),
        note: note.into(),
    };
    Ok((entry, Held(Some(index))))
}

/// Checks the snapshot (and queues every activity when the index is to be
/// rebuilt), returning its table counts and registry.
async fn check_snapshot(
    path: &Path,
    requeue: bool,
) -> Result<(DatabaseEntry, Vec<snapshot::RegistryRow>)> {
    let mut db = SnapshotFile::open(path).await?;
    db.integrity_check().await?;
    if requeue {
        db.requeue_all_activities().await?;
    }
    let tables = db.table_counts().await?;
    let registry = db.model_versions().await?;
    db.close().await?;
    Ok((
        DatabaseEntry {
            file: DATABASE.into(),
            integrity: "ok".into(),
            tables,
        },
        registry,
    ))
}

/// Copies the trained sentiment heads (every version, `CURRENT` too); returns
/// the versions copied.
fn copy_heads(src: &Path, dest: &Path) -> Result<Vec<String>> {
    if !src.is_dir() {
        return Ok(Vec::new());
    }
    let mut versions = Vec::new();
    for rel in files::list(src)? {
        let from = files::under(src, &rel);
        let to = files::under(dest, &rel);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).at(parent, "creating")?;
        }
        std::fs::copy(&from, &to).at(&from, "copying")?;
        if let Some((version, _)) = rel.split_once('/')
            && !versions.iter().any(|v| v == version)
        {
            versions.push(version.to_owned());
        }
    }
    Ok(versions)
}

/// Moves the finished staging directory to `dest`, or archives it there.
fn finish(staging: TempDir, dest: &Path) -> Result<()> {
    if is_tar(dest) {
        return files::write_tar(staging.path(), dest);
    }
    files::install(staging, dest, false).map(drop)
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Restores a backup into a new data directory (and the sentiment heads into
/// the models directory), after checking every file against the manifest.
pub async fn restore(opts: &RestoreOptions, progress: &ProgressBar) -> Result<RestoreReport> {
    if !opts.force && !files::is_free(&opts.data_dir)? {
        return Err(Error::NotEmpty {
            path: opts.data_dir.clone(),
        });
    }
    progress.set_message("reading");
    let (_unpacked, src) = open_source(&opts.source, &opts.data_dir)?;
    let manifest = Manifest::read(&src)?;
    check_listing(&src, &manifest)?;
    let heads_target = match &opts.models_dir {
        Some(dir) if !manifest.registry.sentiment_heads.is_empty() => {
            let target = dir.join(HEADS);
            if !opts.force && !files::is_free(&target)? {
                return Err(Error::NotEmpty { path: target });
            }
            Some(target)
        }
        _ => None,
    };

    progress.set_message("verifying");
    progress.set_length(manifest.files.iter().map(|f| f.size).sum());
    progress.set_position(0);
    let staged = files::staging_beside(&opts.data_dir, ".rapport-restore-")?;
    let staged_heads = match &heads_target {
        Some(t) => Some(files::staging_beside(t, ".rapport-restore-")?),
        None => None,
    };
    let heads_prefix = format!("{MODELS_DIR}/{HEADS}/");
    for entry in &manifest.files {
        let dest = match (entry.path.strip_prefix(&heads_prefix), &staged_heads) {
            (Some(rel), Some(heads)) => files::under(heads.path(), rel),
            (Some(_), None) => continue,
            (None, _) => files::under(staged.path(), &entry.path),
        };
        files::copy_verified(&src, entry, &dest, progress)?;
    }
    verify_database(&staged.path().join(DATABASE), &manifest).await?;
    verify_index(&staged.path().join(INDEX_DIR), &manifest.index).await?;

    progress.set_message("installing");
    let heads_restored = match (staged_heads, heads_target) {
        (Some(staged), Some(target)) => {
            files::install(staged, &target, opts.force)?;
            Some(target)
        }
        _ => None,
    };
    let replaced = files::install(staged, &opts.data_dir, opts.force)?;
    tracing::info!(data_dir = %opts.data_dir.display(), replaced, "backup restored");
    Ok(RestoreReport {
        data_dir: opts.data_dir.clone(),
        replaced,
        sentiment_heads: heads_restored,
        index: manifest.index.clone(),
        tables: manifest.database.tables.clone(),
        model_versions: manifest.registry.model_versions.len(),
    })
}

/// The backup as a directory: itself, or a `.tar` unpacked beside the target.
fn open_source(source: &Path, target: &Path) -> Result<(Option<TempDir>, PathBuf)> {
    if source.is_dir() {
        return Ok((None, source.to_path_buf()));
    }
    if !source.is_file() {
        return Err(Error::NoBackup(source.to_path_buf()));
    }
    let dir = files::staging_beside(target, ".rapport-unpack-")?;
    files::read_tar(source, dir.path())?;
    let path = dir.path().to_path_buf();
    Ok((Some(dir), path))
}

/// The backup holds exactly the files its manifest lists.
fn check_listing(src: &Path, manifest: &Manifest) -> Result<()> {
    let present = files::list(src)?;
    let listed: Vec<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
    if let Some(extra) = present.iter().find(|p| !listed.contains(&p.as_str())) {
        return Err(Error::Tampered(format!("{extra} is not in the manifest")));
    }
    if let Some(missing) = listed.iter().find(|p| !present.iter().any(|q| q == *p)) {
        return Err(Error::Tampered(format!("{missing} is missing")));
    }
    if !listed.contains(&manifest.database.file.as_str()) {
        return Err(Error::Tampered(format!(
            "{} is missing",
            manifest.database.file
        )));
    }
    Ok(())
}

/// The restored database passes SQLite's check and holds what the manifest says.
async fn verify_database(path: &Path, manifest: &Manifest) -> Result<()> {
    let mut db = SnapshotFile::open(path).await?;
    db.integrity_check().await?;
    let tables = db.table_counts().await?;
    let registry = db.model_versions().await?;
    db.close().await?;
    if tables != manifest.database.tables {
        return Err(Error::Tampered(format!(
            "the database's row counts {tables:?} differ from the manifest's {:?}",
            manifest.database.tables
        )));
    }
    if registry != manifest.registry.model_versions {
        return Err(Error::Tampered(
            "the database's model registry differs from the manifest's".into(),
        ));
    }
    Ok(())
}

/// The restored shard opens and holds the manifest's number of points.
async fn verify_index(dir: &Path, entry: &IndexEntry) -> Result<()> {
    if entry.mode != IndexMode::Snapshot {
        return Ok(());
    }
    let index = EdgeIndex::open_existing(dir).await?;
    let points = index.total_points().await?;
    drop(index);
    if Some(points) != entry.points {
        return Err(Error::Tampered(format!(
            "the index holds {points} points, the manifest says {:?}",
            entry.points
        )));
    }
    Ok(())
}
