//! Turns a [`Table`] into a numeric design matrix, learned on the training rows
//! only: numerics imputed with the median and standardised (plus a 0/1
//! "was missing" column where training data had gaps, because missingness often
//! carries signal), categoricals one-hot encoded with the most frequent value
//! imputed; unseen levels at scoring time encode as all zeros. Text columns with
//! more than [`MAX_LEVELS`] distinct values are identifiers or free text and are
//! left out (the same rule as scripts/compare-sklearn.py).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::table::{ColumnData, Table};
use super::{Error, Result};

pub const MAX_LEVELS: usize = 100;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Encoder {
    Numeric {
        median: f64,
        mean: f64,
        std: f64,
        missing_indicator: bool,
    },
    Categorical {
        levels: Vec<String>,
        mode: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnPrep {
    pub name: String,
    pub encoder: Encoder,
}

/// The fitted preprocessing; part of every model artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prep {
    pub columns: Vec<ColumnPrep>,
    /// Columns left out and why.
    pub dropped: Vec<(String, String)>,
}

/// A dense row-major matrix with a name per column and, per column, the index
/// of the source column it came from (for per-record explanations).
#[derive(Debug, Clone)]
pub struct Design {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f64>,
    pub names: Vec<String>,
    pub source: Vec<usize>,
}

impl Design {
    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// The same values, column after column (what tree learners want).
    pub fn column_major(&self) -> Vec<f64> {
        let mut out = Vec::with_capacity(self.data.len());
        for j in 0..self.cols {
            out.extend((0..self.rows).map(|i| self.data[i * self.cols + j]));
        }
        out
    }
}

impl Prep {
    pub fn fit(table: &Table) -> Result<Prep> {
        let mut columns = Vec::new();
        let mut dropped = Vec::new();
        for c in &table.columns {
            let encoder = match &c.data {
                ColumnData::Numeric(v) => fit_numeric(v),
                ColumnData::Categorical(v) => match fit_categorical(v) {
                    Ok(e) => e,
                    Err(reason) => {
                        dropped.push((c.name.clone(), reason));
                        continue;
                    }
                },
            };
            match encoder {
                Some(encoder) => columns.push(ColumnPrep {
                    name: c.name.clone(),
                    encoder,
                }),
                None => dropped.push((c.name.clone(), "no values in the training rows".into())),
            }
        }
        if columns.is_empty() {
            return Err(Error::Data("no usable feature columns".into()));
        }
        Ok(Prep { columns, dropped })
    }

    /// Names of the source columns the model uses, in order.
    pub fn feature_names(&self) -> Vec<String> {
        self.columns.iter().map(|c| c.name.clone()).collect()
    }

    pub fn transform(&self, table: &Table) -> Result<Design> {
        let rows = table.rows();
        let by_name: HashMap<&str, &ColumnData> = table
            .columns
            .iter()
            .map(|c| (c.name.as_str(), &c.data))
            .collect();
        let mut names = Vec::new();
        let mut source = Vec::new();
        let mut blocks: Vec<Vec<f64>> = Vec::new();
        for (k, cp) in self.columns.iter().enumerate() {
            let data = by_name.get(cp.name.as_str()).ok_or_else(|| {
                Error::Data(format!("column {:?} is missing from the input", cp.name))
            })?;
            match (&cp.encoder, data) {
                (
                    Encoder::Numeric {
                        median,
                        mean,
                        std,
                        missing_indicator,
                    },
                    ColumnData::Numeric(v),
                ) => {
                    blocks.push(
                        v.iter()
                            .map(|x| (x.unwrap_or(*median) - mean) / std)
                            .collect(),
                    );
                    names.push(cp.name.clone());
                    source.push(k);
                    if *missing_indicator {
                        blocks.push(v.iter().map(|x| f64::from(u8::from(x.is_none()))).collect());
                        names.push(format!("{}_missing", cp.name));
                        source.push(k);
                    }
                }
                (Encoder::Categorical { levels, mode }, ColumnData::Categorical(v)) => {
                    for level in levels {
                        blocks.push(
                            v.iter()
                                .map(|x| f64::from(u8::from(x.as_deref().unwrap_or(mode) == level)))
                                .collect(),
                        );
                        names.push(format!("{}={level}", cp.name));
                        source.push(k);
                    }
                }
                _ => {
                    return Err(Error::Data(format!(
                        "column {:?} changed type since training",
                        cp.name
                    )));
                }
            }
        }
        let cols = blocks.len();
        let mut data = vec![0.0; rows * cols];
        for (j, b) in blocks.iter().enumerate() {
            for (i, x) in b.iter().enumerate() {
                data[i * cols + j] = *x;
            }
        }
        Ok(Design {
            rows,
            cols,
            data,
            names,
            source,
        })
    }
}

fn fit_numeric(v: &[Option<f64>]) -> Option<Encoder> {
    let mut present: Vec<f64> = v.iter().flatten().copied().collect();
    if present.is_empty() {
        return None;
    }
    present.sort_by(f64::total_cmp);
    let n = present.len();
    let median = if n % 2 == 1 {
        present[n / 2]
    } else {
        (present[n / 2 - 1] + present[n / 2]) / 2.0
    };
    // Mean and spread of the imputed column, as a scaler after an imputer sees it.
    let imputed: Vec<f64> = v.iter().map(|x| x.unwrap_or(median)).collect();
    let mean = imputed.iter().sum::<f64>() / imputed.len() as f64;
    let var = imputed.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / imputed.len() as f64;
    let std = if var > 0.0 { var.sqrt() } else { 1.0 };
    Some(Encoder::Numeric {
        median,
        mean,
        std,
        missing_indicator: present.len() < v.len(),
    })
}

fn fit_categorical(v: &[Option<String>]) -> std::result::Result<Option<Encoder>, String> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for x in v.iter().flatten() {
        *counts.entry(x.as_str()).or_default() += 1;
    }
    if counts.len() > MAX_LEVELS {
        return Err(format!(
            "{} distinct values (more than {MAX_LEVELS}): an identifier or free text",
            counts.len()
        ));
    }
    let mut levels: Vec<(&str, usize)> = counts.into_iter().collect();
    levels.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let Some(mode) = levels.first().map(|(l, _)| (*l).to_owned()) else {
        return Ok(None);
    };
    let mut names: Vec<String> = levels.into_iter().map(|(l, _)| l.to_owned()).collect();
    names.sort();
    Ok(Some(Encoder::Categorical {
        levels: names,
        mode,
    }))
}
