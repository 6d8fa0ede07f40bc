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

/// Words too common in a request about a task to tell tasks apart.
const TASK_NOISE: &[&str] = &[
    "the", "a", "an", "my", "our", "their", "his", "her", "its", "that", "this", "task", "tasks",
    "to-do", "todo", "reminder", "about", "for", "with", "on", "of", "to", "and", "it", "one",
    "call", "due",
];

/// The words of `text` that can pick a task out by its title: lower case,
/// split at spaces and hyphens, without common words and very short ones.
pub fn task_words(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for w in text
        .split(|c: char| c.is_whitespace() || c == '-' || c == '/')
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .trim_end_matches("'s")
                .to_lowercase()
        })
        .filter(|w| w.chars().count() >= 3 && !TASK_NOISE.contains(&w.as_str()))
    {
        if !out.contains(&w) {
            out.push(w);
        }
    }
    out
}

/// Tasks whose titles hold the words of `query` ("the Brannoch cellar
/// walk-through" → "Walk through the Brannoch cellars"): scored by the share
/// of the words found in the title (a word found as a prefix of a title
/// word counts: "cellar" in "cellars"), at least half of them; only tasks of
/// `company_id` (the account the request names) when it has any; open tasks
/// first.
pub async fn tasks(
    mut conn: Conn<'_>,
    ctx: &Ctx,
    query: &str,
    company_id: Option<Id>,
    limit: usize,
) -> Result<Vec<Candidate>> {
    let words = task_words(query);
    if words.is_empty() {
        return Ok(Vec::new());
    }
    let filter = Filter::or(
        words
            .iter()
            .map(|w| Filter::cond("title", Op::Contains, w.as_str()))
            .collect(),
    );
    let rows = records::list(
        conn.reborrow(),
        ctx,
        RecordType::Task,
        &ListQuery::filtered(filter).limit(PREFILTER),
    )
    .await?
    .items;
    let mut scored: Vec<(bool, bool, Candidate)> = Vec::new();
    for r in rows {
        let Some(id) = r.get("id").and_then(Value::as_i64) else {
            continue;
        };
        let title = text(&r, "title");
        let title_words = task_words(&title);
        let found = words
            .iter()
            .filter(|w| {
                title_words
                    .iter()
                    .any(|t| t.starts_with(w.as_str()) || w.starts_with(t.as_str()))
            })
            .count();
        let score = found as f64 / words.len() as f64;
        if score < 0.5 {
            continue;
        }
        let open = r.get("status").and_then(Value::as_str) == Some("open");
        let of_account =
            company_id.is_some() && r.get("company_id").and_then(Value::as_i64) == company_id;
        let status = r.get("status").and_then(Value::as_str).unwrap_or("open");
        scored.push((
            of_account,
            open,
            Candidate {
                record_type: RecordType::Task,
                id,
                label: format!("{title} ({status})"),
                score: (score * 1000.0).round() / 1000.0,
            },
        ));
    }
    // Within the named account when it has such a task.
    if scored.iter().any(|(of_account, _, _)| *of_account) {
        scored.retain(|(of_account, _, _)| *of_account);
    }
    scored.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then(b.1.cmp(&a.1))
            .then(b.2.score.total_cmp(&a.2.score))
            .then(a.2.id.cmp(&b.2.id))
    });
    Ok(scored
        .into_iter()
        .map(|(_, _, c)| c)
        .take(limit.clamp(1, 50))
        .collect())
}

/// Leads whose company is called `name` ("the Horvath Bakery lead": a lead
/// is as often named by its company as by its person), scored by the same
/// word similarity as [`lookup`], labelled "Tim Horvath, Horvath Bakery".
pub async fn leads_by_company(
    conn: Conn<'_>,
    ctx: &Ctx,
    name: &str,
    limit: usize,
) -> Result<Vec<Candidate>> {
    let needle = name.trim().to_lowercase();
    let words: Vec<&str> = needle.split_whitespace().filter(|w| w.len() >= 2).collect();
    if words.is_empty() {
        return Ok(Vec::new());
    }
    let filter = Filter::or(
        words
            .iter()
            .map(|w| Filter::cond("company_name", Op::Contains, *w))
            .collect(),
    );
    let rows = records::list(
        conn,
        ctx,
        RecordType::Lead,
        &ListQuery::filtered(filter).limit(PREFILTER),
    )
    .await?
    .items;
    let mut out: Vec<Candidate> = rows
        .iter()
        .filter_map(|r| {
            let id = r.get("id")?.as_i64()?;
            let company = text(r, "company_name");
            let s = similarity(&needle, &company.to_lowercase());
            (s >= MIN_SCORE).then(|| Candidate {
                record_type: RecordType::Lead,
                id,
                label: format!("{}, {company}", text(r, "name")),
                score: (s * 1000.0).round() / 1000.0,
            })
        })
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
    out.truncate(limit.clamp(1, 50));
    Ok(out)
}

/// Stages named `name` (case-insensitive, the whole name), in `pipeline_id`
/// when given (a deal's stage is one of its own pipeline's); otherwise in
/// every pipeline, the label saying which.
pub async fn stages(
    mut conn: Conn<'_>,
    ctx: &Ctx,
    name: &str,
    pipeline_id: Option<Id>,
) -> Result<Vec<Candidate>> {
    let name = name.trim();
    if name.is_empty() {
        return Ok(Vec::new());
    }
    let mut conds = vec![Filter::cond("name", Op::Contains, name)];
    if let Some(p) = pipeline_id {
        conds.push(Filter::cond("pipeline_id", Op::Eq, p));
    }
    let rows = records::list(
        conn.reborrow(),
        ctx,
        RecordType::Stage,
        &ListQuery::filtered(Filter::and(conds)).limit(PREFILTER),
    )
    .await?
    .items;
    let pipelines = records::list(
        conn,
        ctx,
        RecordType::Pipeline,
        &ListQuery::default().limit(crate::filter::MAX_LIMIT),
    )
    .await?
    .items;
    let pipeline_name = |id: Option<i64>| {
        pipelines
            .iter()
            .find(|p| p.get("id").and_then(Value::as_i64) == id)
            .map(|p| text(p, "name"))
            .unwrap_or_default()
    };
    Ok(rows
        .iter()
        .filter(|r| text(r, "name").eq_ignore_ascii_case(name))
        .filter_map(|r| {
            Some(Candidate {
                record_type: RecordType::Stage,
                id: r.get("id")?.as_i64()?,
                label: format!(
                    "{} ({} pipeline)",
                    text(r, "name"),
                    pipeline_name(r.get("pipeline_id").and_then(Value::as_i64))
                ),
                score: 1.0,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_words_drop_the_common_ones_and_split_hyphens() {
        assert_eq!(
            task_words("the Brannoch cellar walk-through task"),
            ["brannoch", "cellar", "walk", "through"]
        );
        assert_eq!(task_words("my reminder to call Isolde's"), ["isolde"]);
    }

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
