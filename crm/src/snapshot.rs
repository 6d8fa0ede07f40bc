//! Consistent copies of the embedded database, taken while it is in use, and
//! the checks a backup or a restore runs on such a copy.
//!
//! [`snapshot_sqlite`] writes the whole database into a new file with SQLite's
//! `VACUUM INTO`. It reads inside one read transaction, so under WAL the copy
//! is the database as of one commit: writers keep writing meanwhile, and a
//! transaction in flight is either wholly in the copy or not at all.
//! [`SnapshotFile`] opens such a copy on its own connection (never the live
//! pool) for `PRAGMA integrity_check`, per-table row counts, the rows of a
//! table, the model registry's rows, and the one change a backup may make to
//! its copy: queueing every activity for the vector index again.
//!
//! PostgreSQL is not copied here: its backup is `pg_dump` (docs/operations.md).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{Connection, Row, SqliteConnection};

use crate::Store;

/// Why a snapshot could not be taken or does not check out.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The store is PostgreSQL; its backups are `pg_dump`'s job.
    #[error(
        "only the embedded SQLite database is snapshotted by Rapport; back up PostgreSQL with pg_dump (see docs/operations.md)"
    )]
    NotSqlite,
    /// `VACUUM INTO` never overwrites; neither does this.
    #[error("the snapshot file {0} exists already")]
    TargetExists(PathBuf),
    /// SQLite failed while copying or reading the snapshot.
    #[error("SQLite failed on {path}: {source}")]
    Database {
        /// The database file concerned.
        path: PathBuf,
        /// SQLite's (sqlx's) description.
        source: sqlx::Error,
    },
    /// `PRAGMA integrity_check` found problems.
    #[error("{path} fails SQLite's integrity check: {problems}")]
    Integrity {
        /// The database file checked.
        path: PathBuf,
        /// What the check reported, joined.
        problems: String,
    },
}

/// Result of the snapshot functions.
pub type Result<T, E = SnapshotError> = std::result::Result<T, E>;

/// One trained model version as a backup lists it: who it belongs to, what it
/// is, and a hash of its artifact (the model itself, stored in the row).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryRow {
    /// The `model_versions` row id.
    pub id: i64,
    /// Its workspace.
    pub workspace_id: i64,
    /// `lead_score`, `churn`, ….
    pub task: String,
    /// Version number within the workspace and task.
    pub version: i64,
    /// `champion`, `challenger` or `retired`.
    pub status: String,
    /// The learner.
    pub algorithm: String,
    /// sha256 (hex) of the artifact JSON.
    pub artifact_sha256: String,
}

/// Copies the live SQLite database of `store` into the new file `dest`, as of
/// one commit, while other connections go on writing.
pub async fn snapshot_sqlite(store: &Store, dest: &Path) -> Result<()> {
    let pool = store.sqlite_pool().ok_or(SnapshotError::NotSqlite)?;
    if dest.exists() {
        return Err(SnapshotError::TargetExists(dest.to_path_buf()));
    }
    let at = |source| SnapshotError::Database {
        path: dest.to_path_buf(),
        source,
    };
    let target = dest.to_str().ok_or_else(|| {
        at(sqlx::Error::Configuration(
            format!("the path {} is not UTF-8", dest.display()).into(),
        ))
    })?;
    let started = std::time::Instant::now();
    // The target is a bound value: SQLite takes any string expression there.
    sqlx::query("VACUUM INTO ?")
        .bind(target)
        .execute(pool)
        .await
        .map_err(at)?;
    tracing::info!(dest = %dest.display(), ms = started.elapsed().as_millis() as u64, "SQLite snapshot written");
    Ok(())
}

/// A snapshot file opened on a connection of its own.
pub struct SnapshotFile {
    conn: SqliteConnection,
    path: PathBuf,
}

impl SnapshotFile {
    /// Opens an existing snapshot (never creates one). Its journal mode is set
    /// to DELETE, so the file stands alone: no `-wal` or `-shm` beside it once
    /// closed, and its hash is the hash of the whole database.
    pub async fn open(path: &Path) -> Result<SnapshotFile> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(false)
            .journal_mode(SqliteJournalMode::Delete);
        let conn = SqliteConnection::connect_with(&options)
            .await
            .map_err(|source| SnapshotError::Database {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(SnapshotFile {
            conn,
            path: path.to_path_buf(),
        })
    }

    fn err(&self, source: sqlx::Error) -> SnapshotError {
        SnapshotError::Database {
            path: self.path.clone(),
            source,
        }
    }

    /// `PRAGMA integrity_check`: Ok when SQLite answers `ok`.
    pub async fn integrity_check(&mut self) -> Result<()> {
        let rows: Vec<(String,)> = sqlx::query_as("PRAGMA integrity_check")
            .fetch_all(&mut self.conn)
            .await
            .map_err(|e| self.err(e))?;
        let problems: Vec<String> = rows.into_iter().map(|r| r.0).collect();
        if problems == ["ok"] {
            return Ok(());
        }
        Err(SnapshotError::Integrity {
            path: self.path.clone(),
            problems: problems.join("; "),
        })
    }

    /// The database's tables, by name (SQLite's own excluded).
    pub async fn tables(&mut self) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
        )
        .fetch_all(&mut self.conn)
        .await
        .map_err(|e| self.err(e))?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Rows per table.
    pub async fn table_counts(&mut self) -> Result<BTreeMap<String, i64>> {
        let mut counts = BTreeMap::new();
        for table in self.tables().await? {
            let sql = format!("SELECT COUNT(*) FROM {}", quote_ident(&table));
            let (n,): (i64,) = sqlx::query_as(&sql)
                .fetch_one(&mut self.conn)
                .await
                .map_err(|e| self.err(e))?;
            counts.insert(table, n);
        }
        Ok(counts)
    }

    /// The columns of `table`, in declared order.
    pub async fn columns(&mut self, table: &str) -> Result<Vec<String>> {
        let rows = sqlx::query(&format!(
            "SELECT name FROM pragma_table_info({})",
            quote_literal(table)
        ))
        .fetch_all(&mut self.conn)
        .await
        .map_err(|e| self.err(e))?;
        Ok(rows.iter().map(|r| r.get::<String, _>(0)).collect())
    }

    /// Every row of `table`, each value as SQLite's `quote()` writes it (so
    /// type and content compare exactly), columns in [`columns`](Self::columns)
    /// order, rows ordered by all columns.
    pub async fn rows(&mut self, table: &str) -> Result<Vec<Vec<String>>> {
        let columns = self.columns(table).await?;
        if columns.is_empty() {
            return Ok(Vec::new());
        }
        let select: Vec<String> = columns
            .iter()
            .map(|c| format!("quote({})", quote_ident(c)))
            .collect();
        let order: Vec<String> = (1..=columns.len()).map(|i| i.to_string()).collect();
        let sql = format!(
            "SELECT {} FROM {} ORDER BY {}",
            select.join(", "),
            quote_ident(table),
            order.join(", ")
        );
        let rows = sqlx::query(&sql)
            .fetch_all(&mut self.conn)
            .await
            .map_err(|e| self.err(e))?;
        Ok(rows
            .iter()
            .map(|r| (0..columns.len()).map(|i| r.get::<String, _>(i)).collect())
            .collect())
    }

    /// The model registry: every trained model version, by id.
    pub async fn model_versions(&mut self) -> Result<Vec<RegistryRow>> {
        let rows = sqlx::query(
            "SELECT id, workspace_id, task, version, status, algorithm, artifact FROM model_versions ORDER BY id",
        )
        .fetch_all(&mut self.conn)
        .await
        .map_err(|e| self.err(e))?;
        Ok(rows
            .iter()
            .map(|r| RegistryRow {
                id: r.get(0),
                workspace_id: r.get(1),
                task: r.get(2),
                version: r.get(3),
                status: r.get(4),
                algorithm: r.get(5),
                artifact_sha256: hex(&Sha256::digest(r.get::<String, _>(6).as_bytes())),
            })
            .collect())
    }

    /// Empties the index outbox and queues every activity of every workspace,
    /// so that `rapport ingest --all-workspaces` builds the vector index from
    /// nothing. For a backup taken without the index. Returns the rows queued.
    pub async fn requeue_all_activities(&mut self) -> Result<u64> {
        let queued = requeue(&mut self.conn).await.map_err(|e| self.err(e))?;
        tracing::info!(queued, "every activity queued for the index again");
        Ok(queued)
    }

    /// Closes the connection (the file is complete and stands alone after).
    pub async fn close(self) -> Result<()> {
        let path = self.path;
        self.conn
            .close()
            .await
            .map_err(|source| SnapshotError::Database { path, source })
    }
}

/// One transaction: the outbox emptied, then one upsert per activity.
async fn requeue(conn: &mut SqliteConnection) -> std::result::Result<u64, sqlx::Error> {
    let mut tx = conn.begin().await?;
    sqlx::query("DELETE FROM index_outbox")
        .execute(&mut *tx)
        .await?;
    let queued = sqlx::query(
        "INSERT INTO index_outbox (workspace_id, activity_id, op) \
         SELECT workspace_id, id, 'upsert' FROM activities ORDER BY id",
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(queued)
}

/// An SQL identifier in double quotes.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// An SQL string literal.
fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_literals_are_quoted() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
