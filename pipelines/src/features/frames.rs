//! crm rows (JSON objects) into Polars frames with typed columns: timestamps as
//! epoch milliseconds, custom attributes pulled out by name.

use std::collections::{BTreeMap, BTreeSet};

use chrono::DateTime;
use polars::prelude::*;
use rapport_crm::RecordMap;
use serde_json::Value;

use super::{CHURN_KEY, pe};
use crate::registry::Result;

/// The tables feature building reads, each read once per run.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub leads: DataFrame,
    pub activities: DataFrame,
    pub deals: DataFrame,
    pub companies: DataFrame,
    pub contacts: DataFrame,
}

#[derive(Clone, Copy)]
pub enum Kind {
    Int,
    Float,
    Text,
    /// An RFC 3339 timestamp, as epoch milliseconds.
    Ms,
    /// Computed from the whole row.
    Flag(fn(&RecordMap) -> bool),
}

/// Output column, source (a field, or `custom.KEY`), kind.
pub type Spec = [(&'static str, &'static str, Kind)];

pub const LEAD: [(&str, &str, Kind); 9] = [
    ("id", "id", Kind::Int),
    ("created_ms", "created_at", Kind::Ms),
    ("converted_ms", "converted_at", Kind::Ms),
    ("status", "status", Kind::Text),
    ("source", "source", Kind::Text),
    ("owner_id", "owner_id", Kind::Int),
    ("company_id", "company_id", Kind::Int),
    ("contact_id", "contact_id", Kind::Int),
    ("split", "custom.split", Kind::Text),
];

pub const ACTIVITY: [(&str, &str, Kind); 12] = [
    ("id", "id", Kind::Int),
    ("occurred_ms", "occurred_at", Kind::Ms),
    ("kind", "kind", Kind::Text),
    ("direction", "direction", Kind::Text),
    ("duration_seconds", "duration_seconds", Kind::Float),
    ("sentiment", "sentiment", Kind::Float),
    ("lead_id", "lead_id", Kind::Int),
    ("company_id", "company_id", Kind::Int),
    (
        "pricing_page_views",
        "custom.pricing_page_views",
        Kind::Float,
    ),
    ("demo_page_views", "custom.demo_page_views", Kind::Float),
    ("is_session", "", Kind::Flag(is_session)),
    ("positive_outcome", "", Kind::Flag(positive_outcome)),
];

pub const DEAL: [(&str, &str, Kind); 7] = [
    ("id", "id", Kind::Int),
    ("created_ms", "created_at", Kind::Ms),
    ("closed_ms", "closed_at", Kind::Ms),
    ("status", "status", Kind::Text),
    ("value", "value", Kind::Float),
    ("lead_id", "lead_id", Kind::Int),
    ("company_id", "company_id", Kind::Int),
];

pub const CONTACT: [(&str, &str, Kind); 7] = [
    ("id", "id", Kind::Int),
    ("created_ms", "created_at", Kind::Ms),
    ("company_id", "company_id", Kind::Int),
    ("title", "title", Kind::Text),
    ("role_function", "custom.role_function", Kind::Text),
    ("seniority", "custom.seniority", Kind::Text),
    ("buyer_role", "custom.buyer_role", Kind::Text),
];

const COMPANY: [(&str, &str, Kind); 10] = [
    ("id", "id", Kind::Int),
    ("created_ms", "created_at", Kind::Ms),
    ("name", "name", Kind::Text),
    ("industry", "industry", Kind::Text),
    ("country", "country", Kind::Text),
    ("employees", "employees", Kind::Float),
    ("annual_revenue", "annual_revenue", Kind::Float),
    ("employee_band", "custom.employee_band", Kind::Text),
    ("revenue_band", "custom.revenue_band", Kind::Text),
    (
        "process_maturity_band",
        "custom.process_maturity_band",
        Kind::Text,
    ),
];

fn is_session(r: &RecordMap) -> bool {
    source(r, "custom.source_table").and_then(Value::as_str) == Some("sessions")
}

/// Outcomes that mean the prospect engaged.
fn positive_outcome(r: &RecordMap) -> bool {
    matches!(
        r.get("outcome").and_then(Value::as_str),
        Some("connected" | "meeting_set" | "demo_completed" | "completed" | "positive")
    )
}

fn source<'a>(r: &'a RecordMap, path: &str) -> Option<&'a Value> {
    match path.strip_prefix("custom.") {
        Some(key) => r.get("custom")?.get(key),
        None => r.get(path),
    }
    .filter(|v| !v.is_null())
}

fn column(rows: &[RecordMap], name: &str, path: &str, kind: Kind) -> Column {
    match kind {
        Kind::Int => Column::new(
            name.into(),
            rows.iter()
                .map(|r| source(r, path).and_then(Value::as_i64))
                .collect::<Vec<_>>(),
        ),
        Kind::Float => Column::new(
            name.into(),
            rows.iter()
                .map(|r| source(r, path).and_then(as_number))
                .collect::<Vec<_>>(),
        ),
        Kind::Text => Column::new(
            name.into(),
            rows.iter()
                .map(|r| source(r, path).map(as_text))
                .collect::<Vec<_>>(),
        ),
        Kind::Ms => Column::new(
            name.into(),
            rows.iter()
                .map(|r| {
                    source(r, path)
                        .and_then(Value::as_str)
                        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                        .map(|t| t.timestamp_millis())
                })
                .collect::<Vec<_>>(),
        ),
        Kind::Flag(f) => Column::new(name.into(), rows.iter().map(f).collect::<Vec<_>>()),
    }
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub fn records(rows: Vec<RecordMap>, spec: &Spec) -> Result<DataFrame> {
    DataFrame::new(
        rows.len(),
        spec.iter()
            .map(|(name, path, kind)| column(&rows, name, path, *kind))
            .collect(),
    )
    .map_err(pe)
}

/// Companies, with every other custom attribute as a column `custom_KEY`
/// (numeric when all its values are numbers) and the churn flag as `churned`.
pub fn companies(rows: Vec<RecordMap>) -> Result<DataFrame> {
    let known: BTreeSet<&str> = COMPANY
        .iter()
        .filter_map(|(_, p, _)| p.strip_prefix("custom."))
        .collect();
    let mut extra: BTreeMap<String, bool> = BTreeMap::new();
    for r in &rows {
        if let Some(Value::Object(c)) = r.get("custom") {
            for (k, v) in c {
                if known.contains(k.as_str()) || k == CHURN_KEY || v.is_null() {
                    continue;
                }
                let numeric = as_number(v).is_some() && !v.is_boolean();
                *extra.entry(k.clone()).or_insert(true) &= numeric;
            }
        }
    }
    let mut cols: Vec<Column> = COMPANY
        .iter()
        .map(|(name, path, kind)| column(&rows, name, path, *kind))
        .collect();
    for (k, numeric) in extra {
        let kind = if numeric { Kind::Float } else { Kind::Text };
        cols.push(column(
            &rows,
            &format!("custom_{k}"),
            &format!("custom.{k}"),
            kind,
        ));
    }
    cols.push(column(
        &rows,
        CHURN_KEY,
        &format!("custom.{CHURN_KEY}"),
        Kind::Text,
    ));
    DataFrame::new(rows.len(), cols).map_err(pe)
}
