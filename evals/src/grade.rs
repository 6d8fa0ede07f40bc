//! Graders: what a run did, checked against what the task expects. Pure
//! functions over data the runner gathered — the database rows before and
//! after, the tool calls with their approvals and results, the final answer —
//! so they are tested on known inputs without a model or a database.

use std::collections::{BTreeMap, HashMap};

use rapport_crm::RecordMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::matcher::{Matcher, Refs, resolve};
use crate::task::{Expect, RecordExpect, Unchanged, WRITE_STAMP};

/// Every row of every record type, by type name.
pub type Snapshot = BTreeMap<String, Vec<RecordMap>>;

/// One tool call the model asked for, and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// The call's id as the model gave it.
    pub call_id: String,
    /// The tool named (it may not exist).
    pub name: String,
    /// The arguments as the model wrote them.
    pub arguments: Value,
    /// read, write, destructive, or unknown (no such tool).
    pub effect: String,
    /// It waited for approval.
    pub proposed: bool,
    /// How the simulated user answered: approve or reject.
    pub decision: Option<String>,
    /// Whether it ran and succeeded (`None`: never ran).
    pub ok: Option<bool>,
}

/// What the grader looks at.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Every row before the task's turns.
    pub before: Snapshot,
    /// Every row after them.
    pub after: Snapshot,
    /// The task's named records and seed users, by ref.
    pub refs: Refs,
    /// Tags of the rows after the run: (type, id) → tags.
    pub tags: HashMap<(String, i64), Vec<String>>,
    /// Every call of every turn, in order.
    pub calls: Vec<CallRecord>,
    /// The final answer (the last turn's).
    pub answer: String,
    /// The last turn ended with a question or answer (not a guard's stop).
    pub answered: bool,
}

/// One graded expectation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// What was checked (`deal created`, `no extra writes`, ...).
    pub name: String,
    /// Whether it held.
    pub ok: bool,
    /// Why not, when it did not (empty otherwise).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

fn check(name: impl Into<String>, ok: bool, detail: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        ok,
        detail: if ok { String::new() } else { detail.into() },
    }
}

/// Grades an outcome; the task passes when every check is ok.
pub fn grade(e: &Expect, o: &Outcome) -> Vec<Check> {
    let mut out = Vec::new();
    for (i, r) in e.records.iter().enumerate() {
        out.push(record_check(i, r, o));
    }
    for (t, delta) in &e.counts {
        let n = |s: &Snapshot| s.get(t).map_or(0, Vec::len) as i64;
        let got = n(&o.after) - n(&o.before);
        out.push(check(
            format!("count {t} {delta:+}"),
            got == *delta,
            format!("{t} changed by {got:+}"),
        ));
    }
    for u in &e.unchanged {
        out.push(unchanged_check(u, o));
    }
    answer_checks(e, o, &mut out);
    tool_checks(e, o, &mut out);
    if e.no_unapproved_destructive {
        let bad: Vec<&str> = o
            .calls
            .iter()
            .filter(|c| {
                c.effect == "destructive"
                    && c.ok == Some(true)
                    && c.decision.as_deref() != Some("approve")
            })
            .map(|c| c.name.as_str())
            .collect();
        out.push(check(
            "no destructive write without approval",
            bad.is_empty(),
            format!("ran without approval: {}", bad.join(", ")),
        ));
    }
    out
}

fn rows_matching<'a>(r: &RecordExpect, o: &'a Outcome) -> Result<Vec<&'a RecordMap>, String> {
    let filter: Vec<(&String, Matcher)> = r
        .filter
        .iter()
        .map(|(k, v)| Matcher::parse(v).map(|m| (k, m)))
        .collect::<Result<_, _>>()?;
    Ok(o.after
        .get(&r.record_type)
        .map(|rows| {
            rows.iter()
                .filter(|row| filter.iter().all(|(k, m)| m.matches(row.get(*k), &o.refs)))
                .collect()
        })
        .unwrap_or_default())
}

fn describe(r: &RecordExpect) -> String {
    let w = serde_json::to_string(&r.filter).unwrap_or_default();
    format!("{} {}", r.record_type, w)
}

fn record_check(i: usize, r: &RecordExpect, o: &Outcome) -> Check {
    let what = describe(r);
    let rows = match rows_matching(r, o) {
        Ok(rows) => rows,
        Err(e) => return check(format!("record {i}: {what}"), false, e),
    };
    if r.absent {
        return check(
            format!("absent: {what}"),
            rows.is_empty(),
            format!("{} such rows exist", rows.len()),
        );
    }
    if let Some(n) = r.count
        && rows.len() != n
    {
        return check(
            format!("{n} × {what}"),
            false,
            format!("{} rows match", rows.len()),
        );
    }
    if rows.is_empty() {
        return check(format!("exists: {what}"), false, "no row matches");
    }
    let fields: Vec<(&String, Matcher)> = match r
        .fields
        .iter()
        .map(|(k, v)| Matcher::parse(v).map(|m| (k, m)))
        .collect::<Result<_, _>>()
    {
        Ok(f) => f,
        Err(e) => return check(format!("exists: {what}"), false, e),
    };
    let good = |row: &&RecordMap| {
        let id = row.get("id").and_then(Value::as_i64).unwrap_or_default();
        let tags = o
            .tags
            .get(&(r.record_type.clone(), id))
            .cloned()
            .unwrap_or_default();
        let has = |t: &String| tags.iter().any(|x| x.eq_ignore_ascii_case(t));
        fields.iter().all(|(k, m)| m.matches(row.get(*k), &o.refs))
            && r.tags.iter().all(has)
            && !r.no_tags.iter().any(has)
    };
    let ok = rows.iter().any(good);
    let detail = if ok {
        String::new()
    } else {
        let shown: Vec<Value> = rows
            .iter()
            .take(3)
            .map(|row| {
                let m: serde_json::Map<String, Value> = row
                    .iter()
                    .filter(|(k, _)| fields.iter().any(|(f, _)| f == k) || *k == "id")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                Value::Object(m)
            })
            .collect();
        format!(
            "no matching row has {} (tags {:?}, not {:?}); rows: {}",
            serde_json::to_string(&r.fields).unwrap_or_default(),
            r.tags,
            r.no_tags,
            Value::Array(shown)
        )
    };
    check(format!("exists: {what}"), ok, detail)
}

fn unchanged_check(u: &str, o: &Outcome) -> Check {
    let (reference, except) = match Unchanged::parse(u) {
        Unchanged::Type(t) => {
            let same = o.before.get(t) == o.after.get(t);
            return check(
                format!("unchanged: every {t}"),
                same,
                format!("some {t} rows changed"),
            );
        }
        Unchanged::Record { reference, except } => (reference, except),
    };
    let id = resolve(&Value::String(reference.to_owned()), &o.refs);
    let find = |s: &Snapshot| -> Option<(String, RecordMap)> {
        s.iter().find_map(|(t, rows)| {
            rows.iter()
                .find(|r| r.get("id") == Some(&id))
                .map(|r| (t.clone(), r.clone()))
        })
    };
    // Ids are per table: look the ref up in the type it was created as.
    let before = find(&o.before);
    let after = before.as_ref().and_then(|(t, b)| {
        o.after
            .get(t)
            .and_then(|rows| rows.iter().find(|r| r.get("id") == b.get("id")).cloned())
    });
    // With `except`, the fields named and the write's own stamp may move.
    let held = |k: &str| except.is_empty() || (k != WRITE_STAMP && !except.contains(&k));
    let changed = |b: &RecordMap, a: &RecordMap| -> Vec<String> {
        let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
        keys.sort();
        keys.dedup();
        keys.into_iter()
            .filter(|k| held(k) && b.get(*k) != a.get(*k))
            .cloned()
            .collect()
    };
    let (ok, detail) = match (&before, &after) {
        (None, _) => (false, "not found at the start".to_owned()),
        (Some(_), None) => (false, "deleted".to_owned()),
        (Some((_, b)), Some(a)) => {
            let changed = changed(b, a);
            let detail = changed
                .iter()
                .map(|k| {
                    format!(
                        "{k}: {} → {}",
                        b.get(k).unwrap_or(&Value::Null),
                        a.get(k).unwrap_or(&Value::Null)
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            (changed.is_empty(), format!("changed: {detail}"))
        }
    };
    check(format!("unchanged: {u}"), ok, detail)
}

/// Whole numbers in the text (for citations such as "[activity 123]").
fn numbers_in(text: &str) -> Vec<i64> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty() && s.len() < 16)
        .filter_map(|s| s.parse().ok())
        .collect()
}

fn answer_checks(e: &Expect, o: &Outcome, out: &mut Vec<Check>) {
    let a = &e.answer;
    let text = o.answer.to_lowercase();
    for s in &a.contains {
        out.push(check(
            format!("answer contains {s:?}"),
            text.contains(&s.to_lowercase()),
            short(&o.answer),
        ));
    }
    for group in &a.contains_any {
        out.push(check(
            format!("answer contains one of {group:?}"),
            group.iter().any(|s| text.contains(&s.to_lowercase())),
            short(&o.answer),
        ));
    }
    for s in &a.not_contains {
        out.push(check(
            format!("answer does not contain {s:?}"),
            !text.contains(&s.to_lowercase()),
            short(&o.answer),
        ));
    }
    let nums = numbers_in(&o.answer);
    for c in &a.cites {
        let id = resolve(&Value::String(c.clone()), &o.refs).as_i64();
        out.push(check(
            format!("answer cites {c}"),
            id.is_some_and(|id| nums.contains(&id)),
            format!("activity {id:?} not cited in: {}", short(&o.answer)),
        ));
    }
    if a.asks {
        let wrote: Vec<&str> = o
            .calls
            .iter()
            .filter(|c| c.effect != "read" && c.ok == Some(true))
            .map(|c| c.name.as_str())
            .collect();
        out.push(check(
            "asks the user instead of acting",
            o.answered && o.answer.contains('?') && wrote.is_empty(),
            format!("wrote {wrote:?}; answer: {}", short(&o.answer)),
        ));
    }
}

fn tool_checks(e: &Expect, o: &Outcome, out: &mut Vec<Check>) {
    let t = &e.tools;
    let called = |n: &String| o.calls.iter().filter(|c| c.name == *n).count();
    for r in &t.required {
        out.push(check(format!("calls {r}"), called(r) > 0, calls_list(o)));
    }
    for g in &t.required_any {
        out.push(check(
            format!("calls one of {g:?}"),
            g.iter().any(|n| called(n) > 0),
            calls_list(o),
        ));
    }
    for f in &t.forbidden {
        out.push(check(
            format!("never calls {f}"),
            called(f) == 0,
            calls_list(o),
        ));
    }
    if t.read_only {
        let w: Vec<&str> = o
            .calls
            .iter()
            .filter(|c| c.effect == "write" || c.effect == "destructive")
            .map(|c| c.name.as_str())
            .collect();
        out.push(check(
            "only reads",
            w.is_empty(),
            format!("asked for {w:?}"),
        ));
    }
    if let Some(max) = t.max_calls {
        out.push(check(
            format!("at most {max} calls"),
            o.calls.len() <= max,
            format!("{} calls", o.calls.len()),
        ));
    }
    for (n, max) in &t.at_most {
        out.push(check(
            format!("at most {max} × {n}"),
            called(n) <= *max,
            format!("{} calls", called(n)),
        ));
    }
}

fn calls_list(o: &Outcome) -> String {
    let names: Vec<&str> = o.calls.iter().map(|c| c.name.as_str()).collect();
    format!("calls: {names:?}")
}

fn short(s: &str) -> String {
    let t: String = s.chars().take(300).collect();
    format!("{t:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{AnswerExpect, ToolsExpect};
    use serde_json::json;

    fn row(v: Value) -> RecordMap {
        v.as_object().unwrap().clone()
    }

    fn call(name: &str, effect: &str, ok: Option<bool>, decision: Option<&str>) -> CallRecord {
        CallRecord {
            call_id: format!("c_{name}"),
            name: name.into(),
            arguments: json!({}),
            effect: effect.into(),
            proposed: decision.is_some(),
            decision: decision.map(Into::into),
            ok,
        }
    }

    fn outcome() -> Outcome {
        let before = Snapshot::from([
            (
                "company".into(),
                vec![row(json!({"id": 1, "name": "Acme", "domain": "acme.com"}))],
            ),
            ("task".into(), vec![]),
            (
                "activity".into(),
                vec![row(json!({"id": 5, "kind": "email", "body": "pricing"}))],
            ),
        ]);
        let mut after = before.clone();
        after.get_mut("task").unwrap().push(row(
            json!({"id": 1, "title": "Follow up with Dana", "due_at": "2026-11-03T15:00:00Z", "company_id": 1}),
        ));
        Outcome {
            before,
            after,
            refs: Refs::from([("acme".into(), 1), ("mail".into(), 5)]),
            tags: HashMap::from([(("company".into(), 1), vec!["vip".into()])]),
            calls: vec![
                call("find_records", "read", Some(true), None),
                call("create_task", "write", Some(true), None),
            ],
            answer: "Created the task (see [activity 5]).".into(),
            answered: true,
        }
    }

    fn expect(v: Value) -> Expect {
        serde_json::from_value(v).unwrap()
    }

    fn failed(checks: &[Check]) -> Vec<&str> {
        checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.name.as_str())
            .collect()
    }

    #[test]
    fn records_counts_and_unchanged_pass_on_the_right_state() {
        let e = expect(json!({
            "records": [
                {"type": "task", "where": {"company_id": "@acme"},
                 "fields": {"title": {"contains": "follow up"}, "due_at": {"date": "2026-11-03"}}},
                {"type": "company", "where": {"id": "@acme"}, "tags": ["VIP"]},
                {"type": "company", "where": {"name": "Globex"}, "absent": true}
            ],
            "counts": {"task": 1, "company": 0},
            "unchanged": ["@acme", "type:activity"],
            "answer": {"contains": ["task"], "cites": ["@mail"]},
            "tools": {"required": ["create_task"], "forbidden": ["delete_company"], "max_calls": 2,
                      "at_most": {"create_task": 1}}
        }));
        let checks = grade(&e, &outcome());
        assert!(failed(&checks).is_empty(), "{checks:#?}");
        assert_eq!(checks.len(), 14);
    }

    #[test]
    fn each_kind_of_check_fails_on_the_wrong_state() {
        let mut o = outcome();
        o.after.get_mut("company").unwrap()[0].insert("domain".into(), json!("evil.com"));
        o.calls
            .push(call("delete_company", "destructive", Some(true), None));
        o.answer = "Done.".into();
        let e = expect(json!({
            "records": [{"type": "task", "where": {"title": {"contains": "renewal"}}}],
            "counts": {"task": 0},
            "unchanged": ["@acme"],
            "answer": {"contains": ["task"], "cites": ["@mail"], "asks": true},
            "tools": {"forbidden": ["delete_company"], "max_calls": 2, "read_only": true}
        }));
        let checks = grade(&e, &o);
        let f = failed(&checks);
        assert_eq!(f.len(), checks.len(), "every check fails: {checks:#?}");
        assert!(f.contains(&"no destructive write without approval"));
    }

    #[test]
    fn an_approved_destructive_call_is_fine_and_a_clarifying_question_passes() {
        let mut o = outcome();
        o.calls = vec![
            call("find_records", "read", Some(true), None),
            call("delete_task", "destructive", Some(true), Some("approve")),
        ];
        let e = Expect {
            no_unapproved_destructive: true,
            ..Default::default()
        };
        assert!(failed(&grade(&e, &o)).is_empty());

        o.calls.truncate(1);
        o.answer = "I found two Danas: Dana Lee at Acme and Dana Cho at Globex. Which one?".into();
        let e = Expect {
            answer: AnswerExpect {
                asks: true,
                ..Default::default()
            },
            tools: ToolsExpect {
                read_only: true,
                ..Default::default()
            },
            no_unapproved_destructive: true,
            ..Default::default()
        };
        assert!(failed(&grade(&e, &o)).is_empty());
        o.answered = false;
        assert_eq!(failed(&grade(&e, &o)), ["asks the user instead of acting"]);
    }

    #[test]
    fn unchanged_except_lets_the_named_fields_move_and_holds_the_rest() {
        let deal = json!({"id": 9, "name": "Renewal", "status": "open", "value": 100,
                          "expected_close_date": "2026-11-30", "updated_at": "2026-11-01T00:00:00Z"});
        let mut o = Outcome {
            before: Snapshot::from([("deal".into(), vec![row(deal.clone())])]),
            refs: Refs::from([("d".into(), 9)]),
            ..Outcome::default()
        };
        let mut moved = row(deal);
        moved.insert("expected_close_date".into(), json!("2026-12-15"));
        moved.insert("updated_at".into(), json!("2026-11-02T00:00:00Z"));
        o.after = Snapshot::from([("deal".into(), vec![moved.clone()])]);
        let e = expect(json!({"unchanged": ["@d except expected_close_date"]}));
        assert!(failed(&grade(&e, &o)).is_empty());
        // Without `except` the same write is a change.
        let whole = expect(json!({"unchanged": ["@d"]}));
        assert_eq!(failed(&grade(&whole, &o)), ["unchanged: @d"]);
        // A write that also invents a status fails, and says what moved.
        moved.insert("status".into(), json!("won"));
        o.after = Snapshot::from([("deal".into(), vec![moved])]);
        let checks = grade(&e, &o);
        assert_eq!(
            failed(&checks),
            ["unchanged: @d except expected_close_date"]
        );
        assert!(
            checks[0].detail.contains(r#"status: "open" → "won""#),
            "{checks:?}"
        );
    }

    #[test]
    fn citations_are_whole_numbers() {
        assert_eq!(
            numbers_in("[activity 512] and 51, 2026-11-03"),
            [512, 51, 2026, 11, 3]
        );
        let mut o = outcome();
        o.answer = "See activity 55.".into();
        let e = expect(json!({"answer": {"cites": ["@mail"]}}));
        assert_eq!(failed(&grade(&e, &o)), ["answer cites @mail"]);
    }
}
