//! Records named in the user's message, looked up before the model is asked.
//!
//! A small model rarely calls `find_records` first; it invents ids instead.
//! So the runtime finds the capitalised names in the request ("Dana Lee at
//! Acme Logistics", "Aisha"), looks each up with the store's loose lookup and
//! shows the model what they match — one record, or several when the name is
//! ambiguous, so the model can ask which one. The lookup is the same the
//! `find_records` tool uses; nothing here guesses.

use rapport_crm::{Candidate, Ctx, LookupQuery, Store};

use crate::error::Result;

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
    let mut names = Vec::new();
    for (k, (i, run)) in runs.iter().enumerate() {
        let single = !run.contains(' ');
        if single && sentence_start(*i) {
            continue;
        }
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

/// The records each name may mean, as lines for the model; empty when none match.
pub async fn lookup(store: &Store, ctx: &Ctx, text: &str) -> Result<String> {
    let mut lines = Vec::new();
    let mut seen: Vec<(rapport_crm::RecordType, i64)> = Vec::new();
    for name in names_in(text) {
        let mut q = LookupQuery::new(name.clone());
        q.limit = Some(PER_NAME);
        let hits: Vec<Candidate> = store
            .lookup(ctx, &q)
            .await?
            .into_iter()
            .filter(|c| c.score >= MIN_SCORE)
            .filter(|c| !seen.contains(&(c.record_type, c.id)))
            .collect();
        if hits.is_empty() {
            continue;
        }
        seen.extend(hits.iter().map(|c| (c.record_type, c.id)));
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
    }
    Ok(lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::names_in;

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
        assert!(names_in("what's overdue for me?").is_empty());
    }
}
