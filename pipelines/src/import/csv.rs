//! `rapport import csv --type TYPE FILE [--map col=field …] [--key COL]`: every
//! row is checked against the record type's schema before anything is written;
//! rejected rows are reported with their row number and reason, duplicates
//! (a repeated key in the file, or a record already present) are reported, and
//! the accepted rows are written in one transaction.

use std::collections::HashMap;
use std::path::Path;

use indicatif::ProgressBar;
use polars::prelude::*;
use rapport_crm::schema::{FieldDef, FieldType, Scalar};
use rapport_crm::{Ctx, RecordMap, RecordType, Store};
use serde_json::{Map, Value};

use super::{Duplicate, Error, ImportReport, Rejection, Result, read_err};

#[derive(Debug, Clone)]
pub struct CsvOptions {
    pub record_type: RecordType,
    /// Column → field renames; `custom.NAME` puts the column into custom attributes.
    pub map: Vec<(String, String)>,
    /// A column holding the source's own id: re-importing updates by it.
    pub key: Option<String>,
    /// Import the valid rows even when some are rejected.
    pub skip_invalid: bool,
}

/// Where a column goes.
#[derive(Debug, Clone)]
enum Target {
    Field(&'static FieldDef),
    Custom(String),
    Key,
}

pub async fn import_csv(
    store: &Store,
    ctx: &Ctx,
    path: &Path,
    opts: &CsvOptions,
    progress: &ProgressBar,
) -> Result<ImportReport> {
    let df = read_text_csv(path)?;
    let targets = plan_columns(&df, opts)?;
    let rows = df.height();
    progress.set_length(rows as u64);
    let cells = text_cells(&df)?;
    let source = format!("csv:{}", file_key(path));
    let known_keys = store.source_ids(ctx, &source, opts.record_type).await?;
    let known_unique = existing_unique(store, ctx, opts.record_type).await?;

    let mut report = ImportReport {
        record_type: opts.record_type.name().into(),
        rows,
        ..ImportReport::default()
    };
    let mut new_rows: Vec<(Option<String>, RecordMap)> = Vec::new();
    let mut updates: Vec<(i64, RecordMap)> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for i in 0..rows {
        progress.inc(1);
        let row_no = i + 1;
        let (fields, key) = match build_row(&targets, &cells, i, opts.record_type) {
            Ok(r) => r,
            Err(reason) => {
                report.rejected.push(Rejection {
                    row: row_no,
                    reason,
                });
                continue;
            }
        };
        let unique = key.clone().or_else(|| unique_value(&fields));
        if let Some(k) = &unique {
            if let Some(&first) = seen.get(k) {
                report.duplicates.push(Duplicate {
                    row: row_no,
                    key: k.clone(),
                    same_as_row: Some(first),
                    existing_id: None,
                });
                continue;
            }
            seen.insert(k.clone(), row_no);
        }
        let existing = key
            .as_ref()
            .and_then(|k| known_keys.get(k))
            .or_else(|| unique_value(&fields).and_then(|u| known_unique.get(&u)))
            .copied();
        match existing {
            Some(id) => {
                report.duplicates.push(Duplicate {
                    row: row_no,
                    key: unique.unwrap_or_default(),
                    same_as_row: None,
                    existing_id: Some(id),
                });
                updates.push((id, fields));
            }
            None => new_rows.push((key, fields)),
        }
    }
    if !report.rejected.is_empty() && !opts.skip_invalid {
        return Err(Error::Rejected(Box::new(report)));
    }

    let mut tx = store.begin().await?;
    let (keys, maps): (Vec<Option<String>>, Vec<RecordMap>) = new_rows.into_iter().unzip();
    let ids = tx.bulk_insert(ctx, opts.record_type, maps).await?;
    report.created = ids.len();
    for (id, fields) in &updates {
        tx.update_recorded_dyn(ctx, opts.record_type, *id, Value::Object(fields.clone()))
            .await?;
    }
    report.updated = updates.len();
    let pairs: Vec<(String, i64)> = keys
        .into_iter()
        .zip(ids)
        .filter_map(|(k, id)| Some((k?, id)))
        .collect();
    tx.add_source_ids(ctx, &source, opts.record_type, &pairs)
        .await?;
    tx.commit().await?;
    Ok(report)
}

/// Every column as text, so the schema (not a type guess) decides what parses.
fn read_text_csv(path: &Path) -> Result<DataFrame> {
    let file = std::fs::File::open(path).map_err(|e| read_err(path, e))?;
    CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .into_reader_with_file_handle(file)
        .finish()
        .map_err(|e| read_err(path, e))
}

fn text_cells(df: &DataFrame) -> Result<Vec<Vec<Option<String>>>> {
    df.columns()
        .iter()
        .map(|c| {
            let s = c.as_materialized_series();
            let ca = s.str().map_err(|e| Error::Invalid(e.to_string()))?;
            Ok(ca
                .iter()
                .map(|v| {
                    v.map(str::trim)
                        .filter(|v| !v.is_empty())
                        .map(str::to_owned)
                })
                .collect())
        })
        .collect()
}

fn plan_columns(df: &DataFrame, opts: &CsvOptions) -> Result<Vec<Target>> {
    let def = opts.record_type.def();
    for (col, _) in &opts.map {
        if df.column(col).is_err() {
            return Err(Error::Invalid(format!(
                "--map names column {col:?}, which the file does not have"
            )));
        }
    }
    df.get_column_names()
        .iter()
        .map(|name| {
            let name = name.as_str();
            if opts.key.as_deref() == Some(name) {
                return Ok(Target::Key);
            }
            let to = opts
                .map
                .iter()
                .find(|(c, _)| c == name)
                .map_or(name, |(_, f)| f.as_str());
            if let Some(custom) = to.strip_prefix("custom.") {
                return Ok(Target::Custom(custom.to_owned()));
            }
            match def.field(to) {
                Some(f) if f.writable => Ok(Target::Field(f)),
                _ => Err(Error::Invalid(format!(
                    "column {name:?} is not a writable {} field; map it with --map {name}=FIELD or --map {name}=custom.{name}; fields: {}",
                    opts.record_type,
                    def.fields
                        .iter()
                        .filter(|f| f.writable)
                        .map(|f| f.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))),
            }
        })
        .collect()
}

/// One row as writable fields, or the reason it cannot be imported.
fn build_row(
    targets: &[Target],
    cells: &[Vec<Option<String>>],
    i: usize,
    rt: RecordType,
) -> std::result::Result<(RecordMap, Option<String>), String> {
    let mut fields = Map::new();
    let mut custom = Map::new();
    let mut key = None;
    for (t, col) in targets.iter().zip(cells) {
        let Some(text) = &col[i] else { continue };
        match t {
            Target::Key => key = Some(text.clone()),
            Target::Custom(name) => {
                custom.insert(name.clone(), Value::String(text.clone()));
            }
            Target::Field(f) => {
                let value = parse_cell(f, text)?;
                Scalar::from_json(f, &value).map_err(|e| e.to_string())?;
                fields.insert(f.name.to_owned(), value);
            }
        }
    }
    if !custom.is_empty() {
        fields.insert("custom".into(), Value::Object(custom));
    }
    if let Some(f) = rt
        .def()
        .fields
        .iter()
        .find(|f| f.required && !fields.contains_key(f.name))
    {
        return Err(format!("{} is required to create a {rt}", f.name));
    }
    Ok((fields, key))
}

fn parse_cell(f: &FieldDef, text: &str) -> std::result::Result<Value, String> {
    let bad = |what: &str| format!("{}: {text:?} is not {what}", f.name);
    Ok(match f.ty {
        FieldType::Int | FieldType::Ref(_) | FieldType::Id => {
            Value::from(text.parse::<i64>().map_err(|_| bad("a whole number"))?)
        }
        FieldType::Float => Value::from(text.parse::<f64>().map_err(|_| bad("a number"))?),
        FieldType::Bool => match text.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Value::Bool(true),
            "false" | "no" | "0" => Value::Bool(false),
            _ => return Err(bad("true or false")),
        },
        FieldType::Json => serde_json::from_str(text).map_err(|_| bad("a JSON object"))?,
        _ => Value::String(text.to_owned()),
    })
}

/// The value of the type's unique field (email), lower-cased.
fn unique_value(fields: &RecordMap) -> Option<String> {
    fields
        .get("email")
        .and_then(Value::as_str)
        .map(str::to_lowercase)
}

async fn existing_unique(store: &Store, ctx: &Ctx, rt: RecordType) -> Result<HashMap<String, i64>> {
    if rt.def().field("email").is_none() || !matches!(rt, RecordType::Contact | RecordType::User) {
        return Ok(HashMap::new());
    }
    Ok(store
        .all_rows(ctx, rt)
        .await?
        .into_iter()
        .filter_map(|r| {
            Some((
                r.get("email")?.as_str()?.to_lowercase(),
                r.get("id")?.as_i64()?,
            ))
        })
        .collect())
}

/// A file's name identifies its source ids (the same export imported again).
fn file_key(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}
