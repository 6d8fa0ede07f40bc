//! Records named in the user's message, looked up before the model is asked.
//!
//! A small model rarely calls `find_records` first; it invents ids instead.
//! So the runtime finds the capitalised names in the request ("Dana Lee at
//! Acme Logistics", "Aisha"), looks each up with the store's loose lookup and
//! shows the model what they match — one record, or several when the name is
//! ambiguous. A write that names one of several same-type matches is not
//! run: the loop asks the user which one is meant, since a small model picks
//! one at random. The lookup is the same the `find_records` tool uses;
//! nothing here guesses.

use rapport_crm::{Candidate, Ctx, LookupQuery, RecordType, Store};
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// What a name in a request may be: the lookup's default types plus
/// pipelines ("rename the Partners pipeline": the 0.5B model otherwise
/// invented the pipeline's id). Not stages: every pipeline may have its own
/// "Negotiation", and a name matching several would hold up the move.
const TYPES: [RecordType; 6] = [
    RecordType::Contact,
    RecordType::Company,
    RecordType::Lead,
    RecordType::Deal,
    RecordType::User,
    RecordType::Pipeline,
];

/// Best matches kept per name.
const PER_NAME: usize = 4;
/// Only close matches: a capitalised word that is not a name should match nothing.
const MIN_SCORE: f64 = 0.9;

/// Names in `text` worth looking up: runs of capitalised words, with an
/// "X at Y" pair kept whole. A lone capitalised word that starts a sentence
/// ("Log", "Move") is usually a verb, and is skipped.
pub fn names_in(text: &str) -> Vec<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut runs: Vec<(usize, String)> = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    let mut start = 0;
    for (i, raw) in words.iter().enumerate() {
        let w =
            raw.trim_matches(|c: char| !c.is_alphanumeric() && c != '-' && c != '.' && c != '@');
        let w = w.trim_end_matches('.');
        let w = w.strip_suffix("'s").unwrap_or(w);
        let capital = w.chars().next().is_some_and(char::is_uppercase);
        let connector = matches!(*raw, "–" | "-" | "&") && !current.is_empty();
        if capital || connector {
            if current.is_empty() {
                start = i;
            }
            current.push(if connector { raw } else { w });
        }
        let ends = !(capital || connector) || raw.ends_with([',', ':', ';', '.', '?', '!']);
        if ends && !current.is_empty() {
            runs.push((start, current.join(" ")));
            current.clear();
        }
    }
    if !current.is_empty() {
        runs.push((start, current.join(" ")));
    }
    let sentence_start = |i: usize| i == 0 || words[i - 1].ends_with(['.', '?', '!', ':']);
    // "Compare Acme Logistics with …": the verb that opens the sentence is
    // capitalised too, and glued to the name it would spoil the lookup.
    let runs: Vec<(usize, String)> = runs
        .into_iter()
        .filter_map(|(i, run)| match run.split_once(' ') {
            Some((first, rest)) if sentence_start(i) && is_verb(first) => {
                Some((i + 1, rest.to_owned()))
            }
            None if sentence_start(i) => None,
            _ => Some((i, run)),
        })
        .collect();
    let mut names = Vec::new();
    for (k, (_, run)) in runs.iter().enumerate() {
        // "Dana Lee at Acme Logistics": the pair narrows the person down.
        if let Some((j, next)) = runs.get(k + 1)
            && words.get(j.wrapping_sub(1)) == Some(&"at")
        {
            names.push(format!("{run} at {next}"));
        }
        names.push(run.clone());
    }
    names.dedup();
    names
}

/// A word that opens a request rather than a name: the verbs and question
/// words tool selection knows, and a few more a request starts with.
fn is_verb(word: &str) -> bool {
    let w = word.to_lowercase();
    crate::select::CHANGE_WORDS.contains(&w.as_str())
        || crate::select::QUESTION_WORDS.contains(&w.as_str())
        || matches!(
            w.as_str(),
            "compare"
                | "check"
                | "give"
                | "get"
                | "call"
                | "email"
                | "draft"
                | "summarize"
                | "summarise"
                | "prepare"
                | "please"
                | "follow"
                | "reply"
                | "ping"
        )
}

/// One record a name may mean.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mentioned {
    /// `contact`, `company`, `deal`, ...
    pub record_type: String,
    /// The record's id.
    pub id: i64,
    /// "Sam Carter <sam@lumen.io>, Lumen".
    pub label: String,
}

/// A name that matched several records of one type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ambiguous {
    /// The name as the user wrote it.
    pub name: String,
    /// The records it may mean.
    pub candidates: Vec<Mentioned>,
}

/// What the names in a request matched.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mentions {
    /// One line per name, for the model.
    pub text: String,
    /// Names that could mean several records of one type: a write naming
    /// one of them waits for the user to say which (see [`Mentions::question`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ambiguous: Vec<Ambiguous>,
    /// Every record the names matched, each once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub found: Vec<Mentioned>,
}

impl Mentions {
    /// Whether no name matched anything.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// The one `record_type` record the request named, if it named exactly
    /// one of that type (and no name of that type was ambiguous): what an id
    /// argument of that type the model made up must have meant.
    pub fn only(&self, record_type: &str) -> Option<&Mentioned> {
        if self
            .ambiguous
            .iter()
            .any(|a| a.candidates.iter().any(|c| c.record_type == record_type))
        {
            return None;
        }
        let mut of_type = self.found.iter().filter(|m| m.record_type == record_type);
        let first = of_type.next()?;
        of_type.next().is_none().then_some(first)
    }

    /// The ambiguous name a `record_type` id `id` was picked from, if any.
    pub fn ambiguity(&self, record_type: Option<&str>, id: i64) -> Option<&Ambiguous> {
        self.ambiguous.iter().find(|a| {
            a.candidates
                .iter()
                .any(|c| c.id == id && record_type.is_none_or(|t| c.record_type == t))
        })
    }
}

impl Ambiguous {
    /// The clarifying question to ask instead of picking one.
    pub fn question(&self) -> String {
        let options: Vec<String> = self
            .candidates
            .iter()
            .map(|c| format!("{} {} ({})", c.record_type, c.id, c.label))
            .collect();
        let (last, rest) = options
            .split_last()
            .expect("an ambiguous name has candidates");
        format!(
            "\"{}\" could be {} or {}. Which one do you mean? I have not changed anything yet.",
            self.name,
            rest.join(", "),
            last
        )
    }
}

/// The records each name in `text` may mean. A name that a longer one in the
/// same request already narrowed down ("Sam" after "Sam at Lumen") adds
/// nothing of the record types it was narrowed to.
pub async fn lookup(store: &Store, ctx: &Ctx, text: &str) -> Result<Mentions> {
    let mut lines = Vec::new();
    let mut ambiguous = Vec::new();
    let mut found: Vec<Mentioned> = Vec::new();
    let mut seen: Vec<(RecordType, i64)> = Vec::new();
    for name in names_in(text) {
        let mut q = LookupQuery::new(name.clone());
        q.limit = Some(PER_NAME);
        q.types = TYPES.to_vec();
        let all: Vec<Candidate> = store
            .lookup(ctx, &q)
            .await?
            .into_iter()
            .filter(|c| c.score >= MIN_SCORE)
            .collect();
        let narrowed = |t: RecordType| {
            all.iter()
                .any(|c| c.record_type == t && seen.contains(&(t, c.id)))
        };
        let hits: Vec<&Candidate> = all.iter().filter(|c| !narrowed(c.record_type)).collect();
        seen.extend(all.iter().map(|c| (c.record_type, c.id)));
        if hits.is_empty() {
            continue;
        }
        let list: Vec<String> = hits
            .iter()
            .map(|c| format!("{} {} ({})", c.record_type, c.id, c.label))
            .collect();
        let line = if hits.len() == 1 {
            format!("\"{name}\" is {}", list[0])
        } else {
            format!(
                "\"{name}\" may be any of {} records: {} — ask which one if unclear",
                hits.len(),
                list.join("; ")
            )
        };
        lines.push(line);
        ambiguous.extend(same_type_groups(&name, &hits));
        for c in &hits {
            let t = c.record_type.to_string();
            if !found
                .iter()
                .any(|m: &Mentioned| m.record_type == t && m.id == c.id)
            {
                found.push(Mentioned {
                    record_type: t,
                    id: c.id,
                    label: c.label.clone(),
                });
            }
        }
    }
    Ok(Mentions {
        text: lines.join("\n"),
        ambiguous,
        found,
    })
}

/// Per record type with two or more hits, the name's candidates of that type.
fn same_type_groups(name: &str, hits: &[&Candidate]) -> Vec<Ambiguous> {
    let mut groups: Vec<Ambiguous> = Vec::new();
    for c in hits {
        let t = c.record_type.to_string();
        if hits
            .iter()
            .filter(|o| o.record_type == c.record_type)
            .count()
            < 2
        {
            continue;
        }
        let m = Mentioned {
            record_type: t.clone(),
            id: c.id,
            label: c.label.clone(),
        };
        match groups.iter_mut().find(|g| g.candidates[0].record_type == t) {
            Some(g) => g.candidates.push(m),
            None => groups.push(Ambiguous {
                name: name.to_owned(),
                candidates: vec![m],
            }),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::{Ambiguous, Mentioned, Mentions, names_in};

    fn m(t: &str, id: i64) -> Mentioned {
        Mentioned {
            record_type: t.into(),
            id,
            label: format!("{t} {id}"),
        }
    }

    #[test]
    fn only_is_the_single_unambiguous_record_of_a_type() {
        let mentions = Mentions {
            text: String::new(),
            ambiguous: vec![Ambiguous {
                name: "Sam".into(),
                candidates: vec![m("contact", 1), m("contact", 2)],
            }],
            found: vec![
                m("company", 4),
                m("deal", 6),
                m("deal", 7),
                m("contact", 1),
                m("contact", 2),
            ],
        };
        assert_eq!(mentions.only("company"), Some(&m("company", 4)));
        assert_eq!(mentions.only("deal"), None, "two deals named");
        assert_eq!(mentions.only("contact"), None, "an ambiguous name");
        assert_eq!(mentions.only("lead"), None, "none named");
    }

    #[test]
    fn finds_names_and_pairs_and_skips_sentence_verbs() {
        assert_eq!(
            names_in("Log a call with Dana Lee at Acme Logistics: likes the Pro plan. Remind me"),
            [
                "Dana Lee at Acme Logistics",
                "Dana Lee",
                "Acme Logistics",
                "Pro"
            ]
        );
        assert_eq!(
            names_in("Move the deal Acme Logistics – Expense Cloud to Negotiation."),
            ["Acme Logistics – Expense Cloud", "Negotiation"]
        );
        assert_eq!(names_in("Add a note to Aisha's account"), ["Aisha"]);
        assert_eq!(
            names_in("Compare Acme Logistics with Globex."),
            ["Acme Logistics", "Globex"]
        );
        assert_eq!(names_in("Dana Lee called."), ["Dana Lee"]);
        assert!(names_in("what's overdue for me?").is_empty());
    }
}
