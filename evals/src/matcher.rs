//! Field matchers: how a task says what a field must hold.
//!
//! A plain value means equality — strings compared trimmed and
//! case-insensitively, numbers within 1e-6, `"@ref"` meaning the id of an
//! inline record or seed user. An object with one operator says more:
//!
//! | matcher | holds when the field … |
//! | --- | --- |
//! | `{contains: "pro plan"}` | is text containing it (case-insensitive) |
//! | `{any_of: [a, b]}` | matches one of the matchers |
//! | `{not: m}` | does not match `m` |
//! | `{gte: 1, lte: 5}` (also `gt`, `lt`) | is a number in range |
//! | `{date: "2026-11-03"}` | is a timestamp on that day, in UTC or in a US time zone (from D 00:00Z to D+1 08:00Z) |
//! | `{null: true}` | is null / missing (`false`: is set) |
//! | `{contains_id: "@ref"}` | is an array holding that id |

use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::Value;

/// Refs known to a run: name → id.
pub type Refs = HashMap<String, i64>;

/// What a field must hold; parsed from a task file (see the table above).
#[derive(Debug, Clone, PartialEq)]
pub enum Matcher {
    /// Equal (text trimmed and case-insensitive, numbers within 1e-6, `@ref` ids resolved).
    Eq(Value),
    /// Text containing this, case-insensitively.
    Contains(String),
    /// Any one of these.
    AnyOf(Vec<Matcher>),
    /// Not this.
    Not(Box<Matcher>),
    /// A number within all given bounds.
    Range {
        /// At least.
        gte: Option<f64>,
        /// At most.
        lte: Option<f64>,
        /// More than.
        gt: Option<f64>,
        /// Less than.
        lt: Option<f64>,
    },
    /// A timestamp on that day, in UTC or a US time zone.
    Date(NaiveDate),
    /// `true`: null or missing; `false`: set.
    Null(bool),
    /// An array holding this id (`@ref` resolved).
    ContainsId(Value),
}

impl Matcher {
    /// A matcher from its task-file form: a plain value means equality; an
    /// unknown operator is an error naming the valid ones.
    pub fn parse(v: &Value) -> Result<Matcher, String> {
        let Value::Object(m) = v else {
            return Ok(Matcher::Eq(v.clone()));
        };
        let num = |k: &str| -> Result<Option<f64>, String> {
            match m.get(k) {
                None => Ok(None),
                Some(x) => x
                    .as_f64()
                    .map(Some)
                    .ok_or_else(|| format!("`{k}` needs a number, got {x}")),
            }
        };
        if ["gte", "lte", "gt", "lt"]
            .iter()
            .any(|k| m.contains_key(*k))
        {
            if let Some(k) = m
                .keys()
                .find(|k| !["gte", "lte", "gt", "lt"].contains(&k.as_str()))
            {
                return Err(format!("`{k}` cannot be combined with a range"));
            }
            return Ok(Matcher::Range {
                gte: num("gte")?,
                lte: num("lte")?,
                gt: num("gt")?,
                lt: num("lt")?,
            });
        }
        if m.len() != 1 {
            return Err(format!("a matcher has one operator, got {v}"));
        }
        let (k, x) = m.iter().next().expect("one entry");
        match k.as_str() {
            "contains" => x
                .as_str()
                .map(|s| Matcher::Contains(s.to_lowercase()))
                .ok_or_else(|| "`contains` needs text".into()),
            "any_of" => x
                .as_array()
                .ok_or_else(|| "`any_of` needs a list".to_owned())?
                .iter()
                .map(Matcher::parse)
                .collect::<Result<_, _>>()
                .map(Matcher::AnyOf),
            "not" => Ok(Matcher::Not(Box::new(Matcher::parse(x)?))),
            "date" => x
                .as_str()
                .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
                .map(Matcher::Date)
                .ok_or_else(|| format!("`date` needs YYYY-MM-DD, got {x}")),
            "null" => x
                .as_bool()
                .map(Matcher::Null)
                .ok_or_else(|| "`null` needs true or false".into()),
            "contains_id" => Ok(Matcher::ContainsId(x.clone())),
            other => Err(format!(
                "unknown matcher `{other}`; use contains, any_of, not, gte/lte/gt/lt, date, null, contains_id"
            )),
        }
    }

    /// Whether the field's value (`None`: missing, treated as null) matches,
    /// with `@ref`s resolved through `refs`.
    pub fn matches(&self, actual: Option<&Value>, refs: &Refs) -> bool {
        let actual = actual.unwrap_or(&Value::Null);
        match self {
            Matcher::Eq(want) => equal(&resolve(want, refs), actual),
            Matcher::Contains(s) => actual
                .as_str()
                .is_some_and(|a| a.to_lowercase().contains(s.as_str())),
            Matcher::AnyOf(ms) => ms.iter().any(|m| m.matches(Some(actual), refs)),
            Matcher::Not(m) => !m.matches(Some(actual), refs),
            Matcher::Range { gte, lte, gt, lt } => actual.as_f64().is_some_and(|a| {
                gte.is_none_or(|b| a >= b)
                    && lte.is_none_or(|b| a <= b)
                    && gt.is_none_or(|b| a > b)
                    && lt.is_none_or(|b| a < b)
            }),
            Matcher::Date(d) => timestamp(actual).is_some_and(|t| on_day(t, *d)),
            Matcher::Null(want) => actual.is_null() == *want,
            Matcher::ContainsId(id) => {
                let id = resolve(id, refs);
                let list = match actual {
                    Value::Array(a) => a.clone(),
                    // Arrays may be stored as JSON text.
                    Value::String(s) => serde_json::from_str::<Vec<Value>>(s).unwrap_or_default(),
                    _ => Vec::new(),
                };
                list.iter().any(|x| equal(&id, x))
            }
        }
    }
}

/// `"@name"` → the ref's id; anything else as it is.
pub fn resolve(v: &Value, refs: &Refs) -> Value {
    match v.as_str().and_then(|s| s.strip_prefix('@')) {
        Some(name) => refs
            .get(name)
            .map(|id| Value::from(*id))
            .unwrap_or(Value::Null),
        None => v.clone(),
    }
}

fn equal(want: &Value, actual: &Value) -> bool {
    match (want, actual) {
        (Value::String(w), Value::String(a)) => w.trim().to_lowercase() == a.trim().to_lowercase(),
        (Value::Number(w), Value::Number(a)) => match (w.as_f64(), a.as_f64()) {
            (Some(w), Some(a)) => (w - a).abs() < 1e-6,
            _ => false,
        },
        // SQLite hands booleans back as 0/1.
        (Value::Bool(w), Value::Number(a)) => a.as_i64() == Some(*w as i64),
        (w, a) => w == a,
    }
}

fn timestamp(v: &Value) -> Option<DateTime<Utc>> {
    let s = v.as_str()?;
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f") {
        return Some(t.and_utc());
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(12, 0, 0))
        .map(|t| t.and_utc())
}

/// On day `d` in UTC or in a time zone up to 8 hours behind it (the seed's
/// users are in America/Chicago): a due time "Tuesday 5 pm" local is Wednesday
/// in UTC.
fn on_day(t: DateTime<Utc>, d: NaiveDate) -> bool {
    let start = d.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    t >= start && t < start + Duration::hours(32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(v: Value) -> Matcher {
        Matcher::parse(&v).unwrap()
    }

    #[test]
    fn equality_is_forgiving_about_case_and_number_type() {
        let refs = Refs::from([("acme".to_owned(), 7)]);
        assert!(m(json!("Acme Corp")).matches(Some(&json!(" acme corp")), &refs));
        assert!(m(json!(5)).matches(Some(&json!(5.0)), &refs));
        assert!(m(json!("@acme")).matches(Some(&json!(7)), &refs));
        assert!(!m(json!("@acme")).matches(Some(&json!(8)), &refs));
        assert!(!m(json!("x")).matches(None, &refs));
    }

    #[test]
    fn operators() {
        let r = Refs::from([("a".to_owned(), 3)]);
        assert!(m(json!({"contains": "Pro Plan"})).matches(Some(&json!("likes the pro plan")), &r));
        assert!(m(json!({"gte": 1, "lt": 5})).matches(Some(&json!(4.5)), &r));
        assert!(!m(json!({"gte": 1, "lt": 5})).matches(Some(&json!(5)), &r));
        assert!(m(json!({"any_of": ["won", "lost"]})).matches(Some(&json!("lost")), &r));
        assert!(m(json!({"not": "open"})).matches(Some(&json!("won")), &r));
        assert!(m(json!({"null": true})).matches(None, &r));
        assert!(m(json!({"null": false})).matches(Some(&json!(1)), &r));
        assert!(m(json!({"contains_id": "@a"})).matches(Some(&json!([1, 3])), &r));
        assert!(m(json!({"contains_id": "@a"})).matches(Some(&json!("[3]")), &r));
        assert!(Matcher::parse(&json!({"bogus": 1})).is_err());
        assert!(Matcher::parse(&json!({"gte": 1, "contains": "x"})).is_err());
    }

    #[test]
    fn dates_accept_utc_and_us_local_evenings() {
        let d = m(json!({"date": "2026-11-03"}));
        let r = Refs::new();
        assert!(d.matches(Some(&json!("2026-11-03T09:00:00Z")), &r));
        // 5 pm in Chicago on the 3rd is 23:00Z; 10 pm is 04:00Z on the 4th.
        assert!(d.matches(Some(&json!("2026-11-04T04:00:00Z")), &r));
        assert!(!d.matches(Some(&json!("2026-11-02T23:00:00Z")), &r));
        assert!(!d.matches(Some(&json!("2026-11-04T09:00:00Z")), &r));
        assert!(d.matches(Some(&json!("2026-11-03")), &r));
    }
}
