//! Loose reference resolution: "Dana at Acme", "dana@acme.com", "the Acme
//! renewal". Candidates come from substring filters through the ordinary list
//! path and are ranked by string similarity; the caller decides what is
//! ambiguous (several close candidates) and asks the user instead of guessing.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::conn::Conn;
use super::records::{self, RecordMap};
use crate::error::{Error, Result};
use crate::filter::{Filter, ListQuery, Op};
use crate::model::{Ctx, Id};
use crate::schema::RecordType;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LookupQuery {
    /// Free text: a name, an email, "NAME at COMPANY".
    pub text: String,
    /// Restrict to these record types (default: contacts, companies, leads, deals, users).
    #[serde(default)]
    pub types: Vec<RecordType>,
    #[serde(default)]
    pub limit: Option<usize>,
}

impl LookupQuery {
    pub fn new(text: impl Into<String>) -> Self {
        LookupQuery {
            text: text.into(),
            types: Vec::new(),
            limit: None,
        }
    }

    pub fn of(mut self, rt: RecordType) -> Self {
        self.types.push(rt);
        self
    }
}

/// A record that may be the one meant, with how well it matches (0–1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub record_type: RecordType,
    pub id: Id,
    /// What a person would recognise it by: "Dana Lee <dana@acme.com>, Acme Logistics".
    pub label: String,
    pub score: f64,
}

const DEFAULT_TYPES: [RecordType; 5] = [
    RecordType::Contact,
    RecordType::Company,
    RecordType::Lead,
    RecordType::Deal,
    RecordType::User,
];
/// Rows fetched per type before ranking.
const PREFILTER: u32 = 200;
/// Candidates scoring below this are noise.
const MIN_SCORE: f64 = 0.8;

/// "Dana at Acme" → ("dana", Some("acme")).
fn split_org(text: &str) -> (String, Option<String>) {
    let lower = text.trim().to_lowercase();
    for sep in [" at ", " from ", " @ ", " of ", " with "] {
        if let Some((who, org)) = lower.split_once(sep) {
            let (who, org) = (who.trim(), org.trim());
            if !who.is_empty() && !org.is_empty() {
                return (who.to_owned(), Some(org.to_owned()));
            }
        }
    }
    (lower, None)
}

/// Word-level similarity: each word of the query is matched to its closest word
/// of the name (Jaro-Winkler, tolerant of typos), and the matches are averaged.
/// "dana" matches "dana lee" fully; "dana lee" matches "dana ruiz" half.
fn similarity(query: &str, name: &str) -> f64 {
    let names: Vec<&str> = name.split_whitespace().collect();
    let words: Vec<&str> = query.split_whitespace().collect();
    if words.is_empty() || names.is_empty() {
        return 0.0;
    }
    let total: f64 = words
        .iter()
        .map(|w| {
            names
                .iter()
                .map(|n| strsim::jaro_winkler(w, n))
                .fold(0.0, f64::max)
        })
        .sum();
    total / words.len() as f64
}

fn text(r: &RecordMap, k: &str) -> String {
    r.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

pub async fn lookup(mut conn: Conn<'_>, ctx: &Ctx, q: &LookupQuery) -> Result<Vec<Candidate>> {
    let raw = q.text.trim();
    if raw.is_empty() || raw.len() > 200 {
        return Err(Error::invalid(
            "text",
            "give 1 to 200 characters to look up",
        ));
    }
    // Each type once: a caller (a small model) listing "deal" three times
    // would otherwise get every deal three times.
    let mut types: Vec<RecordType> = Vec::new();
    for &t in if q.types.is_empty() {
        &DEFAULT_TYPES[..]
    } else {
        &q.types[..]
    } {
        if !types.contains(&t) {
            types.push(t);
        }
    }
    let (who, org) = split_org(raw);
    let mut out = Vec::new();
    for rt in types {
        let fields = rt.def().label_fields;
        if fields.is_empty() {
            continue;
        }
        // Whole text first; if it names an organisation, the person part.
        let needle = if org.is_some() && rt != RecordType::Company {
            &who
        } else {
            &raw.to_lowercase()
        };
        let words: Vec<&str> = needle.split_whitespace().filter(|w| w.len() >= 2).collect();
        if words.is_empty() {
            continue;
        }
        let filter = Filter::or(
            words
                .iter()
                .flat_map(|w| {
                    fields
                        .iter()
                        .map(move |f| Filter::cond(*f, Op::Contains, *w))
                })
                .collect(),
        );
        let rows = records::list(
            conn.reborrow(),
            ctx,
            rt,
            &ListQuery::filtered(filter).limit(PREFILTER),
        )
        .await?
        .items;
        let companies = company_names(conn.reborrow(), ctx, &rows).await?;
        for r in rows {
            if let Some(c) = score(rt, &r, needle, org.as_deref(), &companies) {
                out.push(c);
            }
        }
    }
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
    out.truncate(q.limit.unwrap_or(10).clamp(1, 50));
    Ok(out)
}

async fn company_names(
    conn: Conn<'_>,
    ctx: &Ctx,
    rows: &[RecordMap],
) -> Result<HashMap<Id, String>> {
    let ids: Vec<Value> = rows
        .iter()
        .filter_map(|r| r.get("company_id").and_then(Value::as_i64))
        .map(Value::from)
        .collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let q = ListQuery::filtered(Filter::cond("id", Op::In, Value::Array(ids)))
        .limit(crate::filter::MAX_LIMIT);
    let page = records::list(conn, ctx, RecordType::Company, &q).await?;
    Ok(page
        .items
        .iter()
        .filter_map(|c| Some((c.get("id")?.as_i64()?, text(c, "name"))))
        .collect())
}

fn score(
    rt: RecordType,
    r: &RecordMap,
    needle: &str,
    org: Option<&str>,
    companies: &HashMap<Id, String>,
) -> Option<Candidate> {
    let id = r.get("id")?.as_i64()?;
    let company = r
        .get("company_id")
        .and_then(Value::as_i64)
        .and_then(|c| companies.get(&c).cloned())
        .or_else(|| Some(text(r, "company_name")).filter(|s| !s.is_empty()));
    let email = text(r, "email");
    let (name, label) = match rt {
        RecordType::Contact => {
            let name = format!("{} {}", text(r, "first_name"), text(r, "last_name"))
                .trim()
                .to_owned();
            (name.clone(), name)
        }
        RecordType::Activity | RecordType::Task => {
            let k = if rt == RecordType::Task {
                "title"
            } else {
                "subject"
            };
            (text(r, k), text(r, k))
        }
        _ => (text(r, "name"), text(r, "name")),
    };
    let mut s = similarity(needle, &name.to_lowercase());
    if !email.is_empty() {
        s = s.max(if needle == email { 1.0 } else { 0.0 });
    }
    if let Some(org) = org {
        let c = company.as_deref().unwrap_or_default().to_lowercase();
        let org_match = !c.is_empty() && (c.contains(org) || strsim::jaro_winkler(org, &c) > 0.88);
        if !org_match && rt != RecordType::Company {
            return None;
        }
    }
    if s < MIN_SCORE {
        return None;
    }
    let mut label = label;
    if !email.is_empty() {
        label.push_str(&format!(" <{email}>"));
    }
    if let Some(c) = company.filter(|_| rt != RecordType::Company) {
        label.push_str(&format!(", {c}"));
    }
    Some(Candidate {
        record_type: rt,
        id,
        label,
        score: (s * 1000.0).round() / 1000.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_person_from_organisation() {
        assert_eq!(
            split_org("Dana at Acme"),
            ("dana".into(), Some("acme".into()))
        );
        assert_eq!(split_org("Dana Lee"), ("dana lee".into(), None));
        assert_eq!(
            split_org("Olga from Acme Logistics"),
            ("olga".into(), Some("acme logistics".into()))
        );
    }

    #[test]
    fn first_name_alone_matches_the_full_name() {
        assert!(similarity("dana", "dana lee") >= 0.9);
        assert!(similarity("dana lee", "dana lee") == 1.0);
        assert!(similarity("dana", "olga okafor") < MIN_SCORE);
        assert!(similarity("dana lee", "dana ruiz") < MIN_SCORE);
        assert!(
            similarity("dnaa lee", "dana lee") > MIN_SCORE,
            "typos are tolerated"
        );
    }
}
