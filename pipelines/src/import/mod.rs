//! Imports into the crm database: a leadforge bundle ([`leadforge`]) and any
//! CSV file of one record type ([`csv`]). Both keep the source's ids (table
//! `source_ids`), so importing the same source again updates records instead
//! of duplicating them, and both write in one transaction: an import either
//! lands whole or not at all.

pub mod csv;
pub mod leadforge;

use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Crm(#[from] rapport_crm::Error),
    #[error("cannot read {path}: {message}")]
    Read { path: String, message: String },
    #[error("{0}")]
    Invalid(String),
    /// Validation found bad rows; nothing was written. The report lists them.
    #[error("{} of {} rows rejected; nothing was imported (fix them, or pass --skip-invalid to import the rest)", .0.rejected.len(), .0.rows)]
    Rejected(Box<ImportReport>),
}

pub type Result<T> = std::result::Result<T, Error>;

/// A row that was not imported, and why (row numbers count data rows from 1).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejection {
    pub row: usize,
    pub reason: String,
}

/// A row whose key repeats an earlier row of the file or a record already present.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Duplicate {
    pub row: usize,
    pub key: String,
    /// The earlier row of the same file, if that is what it repeats.
    pub same_as_row: Option<usize>,
    /// The record it matches in the database, if any (that record is updated).
    pub existing_id: Option<i64>,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ImportReport {
    pub record_type: String,
    pub rows: usize,
    /// New records created.
    pub created: usize,
    /// Existing records updated (known by source id or unique key).
    pub updated: usize,
    pub rejected: Vec<Rejection>,
    pub duplicates: Vec<Duplicate>,
}

fn read_err(path: &std::path::Path, e: impl std::fmt::Display) -> Error {
    Error::Read {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}
