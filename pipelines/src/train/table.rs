//! A training table: named columns that are either numeric (missing = `None`)
//! or categorical (text; booleans become "true"/"false"), plus a 0/1 target.
//! Built from a Polars frame (a CSV or Parquet file, or the feature pipeline),
//! so the trainer itself does not depend on where the rows came from.

use std::collections::HashSet;
use std::path::Path;

use polars::prelude::*;

use super::{Error, Result};

#[derive(Debug, Clone, PartialEq)]
pub enum ColumnData {
    Numeric(Vec<Option<f64>>),
    Categorical(Vec<Option<String>>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub data: ColumnData,
}

impl Column {
    pub fn len(&self) -> usize {
        match &self.data {
            ColumnData::Numeric(v) => v.len(),
            ColumnData::Categorical(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Feature columns and, for training and evaluation, the labels.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    pub columns: Vec<Column>,
    pub target: Option<Vec<bool>>,
}

impl Table {
    pub fn rows(&self) -> usize {
        self.columns
            .first()
            .map_or_else(|| self.target.as_ref().map_or(0, Vec::len), Column::len)
    }

    pub fn labels(&self) -> Result<&[bool]> {
        self.target
            .as_deref()
            .ok_or_else(|| Error::Data("the table has no target column".into()))
    }

    /// The rows at `idx`, in that order.
    pub fn take(&self, idx: &[usize]) -> Table {
        let columns = self
            .columns
            .iter()
            .map(|c| Column {
                name: c.name.clone(),
                data: match &c.data {
                    ColumnData::Numeric(v) => {
                        ColumnData::Numeric(idx.iter().map(|&i| v[i]).collect())
                    }
                    ColumnData::Categorical(v) => {
                        ColumnData::Categorical(idx.iter().map(|&i| v[i].clone()).collect())
                    }
                },
            })
            .collect();
        Table {
            columns,
            target: self
                .target
                .as_ref()
                .map(|t| idx.iter().map(|&i| t[i]).collect()),
        }
    }

    /// Converts a Polars frame. `target` (if given) is read as a label: booleans,
    /// 0/1, or text where true/yes/1 are positive; other text takes the rarer
    /// value as positive (so "churn: yes/no" and "won/lost" both work).
    pub fn from_frame(df: &DataFrame, target: Option<&str>, drop: &[String]) -> Result<Table> {
        if let Some(t) = target
            && df.column(t).is_err()
        {
            return Err(Error::Data(format!(
                "no column {t:?}; columns: {}",
                df.get_column_names()
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let mut columns = Vec::new();
        let mut labels = None;
        for col in df.columns() {
            let name = col.name().to_string();
            let series = col.as_materialized_series();
            if Some(name.as_str()) == target {
                labels = Some(read_labels(series)?);
                continue;
            }
            if drop.contains(&name) {
                continue;
            }
            columns.push(Column {
                data: read_column(series)?,
                name,
            });
        }
        Ok(Table {
            columns,
            target: labels,
        })
    }

    /// Reads a CSV or Parquet file (by extension).
    pub fn read(path: &Path, target: Option<&str>, drop: &[String]) -> Result<Table> {
        Table::from_frame(&read_frame(path)?, target, drop)
    }
}

/// A CSV or Parquet file as a Polars frame.
pub fn read_frame(path: &Path) -> Result<DataFrame> {
    let is_parquet = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet"));
    let file = std::fs::File::open(path).map_err(|e| Error::Io(path.display().to_string(), e))?;
    let df = if is_parquet {
        ParquetReader::new(file).finish()
    } else {
        CsvReadOptions::default()
            .with_has_header(true)
            .with_infer_schema_length(Some(10_000))
            .into_reader_with_file_handle(file)
            .finish()
    };
    df.map_err(|e| Error::Data(format!("{}: {e}", path.display())))
}

fn read_column(s: &Series) -> Result<ColumnData> {
    let dtype = s.dtype();
    if dtype.is_bool() || !dtype.is_primitive_numeric() {
        let text = s.cast(&DataType::String).map_err(polars_err)?;
        let ca = text.str().map_err(polars_err)?;
        return Ok(ColumnData::Categorical(
            ca.iter().map(|v| v.map(str::to_owned)).collect(),
        ));
    }
    let f = s.cast(&DataType::Float64).map_err(polars_err)?;
    let ca = f.f64().map_err(polars_err)?;
    Ok(ColumnData::Numeric(
        ca.iter().map(|v| v.filter(|x| x.is_finite())).collect(),
    ))
}

fn read_labels(s: &Series) -> Result<Vec<bool>> {
    let text = s.cast(&DataType::String).map_err(polars_err)?;
    let values: Vec<Option<String>> = text
        .str()
        .map_err(polars_err)?
        .iter()
        .map(|v| v.map(|x| x.trim().to_lowercase()))
        .collect();
    if let Some(i) = values.iter().position(Option::is_none) {
        return Err(Error::Data(format!(
            "target {:?} is empty at row {}",
            s.name(),
            i + 1
        )));
    }
    let values: Vec<String> = values.into_iter().flatten().collect();
    let distinct: HashSet<&str> = values.iter().map(String::as_str).collect();
    if distinct.len() != 2 {
        return Err(Error::Data(format!(
            "target {:?} must have exactly two values, found {}",
            s.name(),
            distinct.len()
        )));
    }
    let positive = ["true", "yes", "1", "1.0"]
        .into_iter()
        .find(|p| distinct.contains(p))
        .map(str::to_owned)
        .unwrap_or_else(|| {
            // The rarer value is the event worth predicting.
            let mut d: Vec<&str> = distinct.iter().copied().collect();
            d.sort_by_key(|v| (values.iter().filter(|x| x == v).count(), *v));
            d[0].to_owned()
        });
    Ok(values.iter().map(|v| *v == positive).collect())
}

fn polars_err(e: PolarsError) -> Error {
    Error::Data(e.to_string())
}
