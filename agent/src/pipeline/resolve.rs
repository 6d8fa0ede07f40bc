//! The resolver: every id a step needs, found by code, never by the model.
//!
//! An id argument's record type comes from the tool ([`target`]); its record
//! from, in order: a record named in the step's span, one named anywhere in
//! the request, the session's latest record of that type ("it", "her"), and
//! a record an earlier step of the plan produced (the company created in
//! step 1 is step 2's `company_id`). The last two only for an id the tool
//! requires: an optional link (a note's deal) is set only when it is named.
//!
//! Names are looked up with the store's loose lookup, extended for tasks (by
//! the words of their titles, within the account the request names, open
//! ones first), stages (by name, within the deal's pipeline) and users ("from
//! Idris to Caspian": the new owner is the one the record goes *to*). One
//! candidate fills the id; several go to the fill step to choose among (or
//! to the user when nothing tells them apart); none, for a required id, make
//! the turn ask, saying what was looked for.

use rapport_crm::{Candidate, Ctx, Id, LookupQuery, RecordType, Store};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::plan::is_id_field;
use crate::error::Result;
use crate::mentions::names_in;

/// Matches below this are not the record meant.
const MIN_SCORE: f64 = 0.9;
/// Candidates kept when a name matches several records.
const MAX_CANDIDATES: usize = 5;

/// The record type an id argument of `tool` holds; `args` are the values
/// filled so far (a tagging tool says its record type in `record_type`).
pub fn target(tool: &str, field: &str, args: &Map<String, Value>) -> Option<RecordType> {
    let by_arg = || {
        args.get("record_type")
            .and_then(Value::as_str)
            .and_then(|t| RecordType::parse(t).ok())
    };
    match field {
        "contact_id" | "survivor_id" | "duplicate_id" => Some(RecordType::Contact),
        "company_id" => Some(RecordType::Company),
        "deal_id" => Some(RecordType::Deal),
        "lead_id" => Some(RecordType::Lead),
        "task_id" => Some(RecordType::Task),
        "stage_id" => Some(RecordType::Stage),
        "pipeline_id" => Some(RecordType::Pipeline),
        "activity_id" => Some(RecordType::Activity),
        "owner_id" | "assignee_id" | "user_id" | "rep_id" => Some(RecordType::User),
        "id" => match tool.split_once('_') {
            Some(("get" | "update" | "delete", rt)) => RecordType::parse(rt).ok(),
            _ => by_arg(),
        },
        _ => None,
    }
}

/// The id arguments of a tool schema: (name, required).
pub fn id_arguments(schema: &Value) -> Vec<(String, bool)> {
    let required: Vec<&str> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| {
            p.keys()
                // One id per argument: a list of ids (a deal's contacts) is
                // not resolved from names.
                .filter(|k| is_id_field(k) && !k.ends_with("_ids"))
                .map(|k| (k.clone(), required.contains(&k.as_str())))
                .collect()
        })
        .unwrap_or_default()
}

/// What the resolver found for one id argument.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "found")]
pub enum Resolution {
    One {
        record: Candidate,
        from: Source,
    },
    /// Several records fit equally: the fill step (or the user) chooses.
    Several {
        records: Vec<Candidate>,
        from: Source,
    },
    /// Nothing: the names looked for (empty when the request names none).
    None {
        looked_for: Vec<String>,
    },
}

/// Where a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Span,
    Request,
    Session,
    EarlierStep,
    /// The user asking ("remind me", "give it to me").
    Requester,
}

/// What a step is resolved in.
#[derive(Debug, Clone, Default)]
pub struct Scope<'a> {
    pub request: &'a str,
    pub span: &'a str,
    /// The session's latest record of each type, newest first.
    pub latest: &'a [Candidate],
    /// Records the plan's earlier steps produced, in step order.
    pub earlier: &'a [Candidate],
    /// The user asking.
    pub requester: Option<Candidate>,
    /// The pipeline a stage name is looked up in (the deal's).
    pub pipeline_id: Option<Id>,
}

/// Resolves one id argument holding a `target` record.
pub async fn resolve(
    store: &Store,
    ctx: &Ctx,
    target: RecordType,
    required: bool,
    scope: &Scope<'_>,
) -> Result<Resolution> {
    let mut looked_for = Vec::new();
    for (text, from) in [(scope.span, Source::Span), (scope.request, Source::Request)] {
        let found = named(store, ctx, target, text, scope, &mut looked_for).await?;
        match found.len() {
            0 => {}
            1 => {
                return Ok(Resolution::One {
                    record: found.into_iter().next().expect("one"),
                    from,
                });
            }
            _ => {
                return Ok(Resolution::Several {
                    records: found,
                    from,
                });
            }
        }
    }
    if target == RecordType::User
        && let Some(me) = scope.requester.clone().filter(|_| says_me(scope.span))
    {
        return Ok(Resolution::One {
            record: me,
            from: Source::Requester,
        });
    }
    if required {
        if let Some(r) = scope.latest.iter().find(|c| c.record_type == target) {
            return Ok(Resolution::One {
                record: r.clone(),
                from: Source::Session,
            });
        }
        if let Some(r) = scope.earlier.iter().rev().find(|c| c.record_type == target) {
            return Ok(Resolution::One {
                record: r.clone(),
                from: Source::EarlierStep,
            });
        }
    }
    let mut seen = Vec::new();
    looked_for.retain(|n| {
        let new = !seen.contains(n);
        seen.push(n.clone());
        new
    });
    Ok(Resolution::None { looked_for })
}

/// "to me", "for me", "mine", "myself".
fn says_me(text: &str) -> bool {
    text.split(|c: char| !c.is_alphanumeric())
        .any(|w| matches!(w.to_lowercase().as_str(), "me" | "myself" | "mine"))
}

/// The records of type `target` that the names in `text` stand for, best
/// first; those about as good as the best.
async fn named(
    store: &Store,
    ctx: &Ctx,
    target: RecordType,
    text: &str,
    scope: &Scope<'_>,
    looked_for: &mut Vec<String>,
) -> Result<Vec<Candidate>> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    match target {
        RecordType::Task => {
            // A task is named by the words of its title, within the account
            // the request names.
            let company = named_company(store, ctx, scope.request).await?;
            looked_for.push(text.to_owned());
            let found = store
                .lookup_tasks(ctx, text, company, MAX_CANDIDATES)
                .await?;
            Ok(best_tasks(found))
        }
        RecordType::Stage => {
            let mut out = Vec::new();
            for name in names_in(text) {
                looked_for.push(name.clone());
                out.extend(store.lookup_stages(ctx, &name, scope.pipeline_id).await?);
            }
            Ok(out)
        }
        _ => {
            let mut out: Vec<Candidate> = Vec::new();
            for name in names_in(text) {
                looked_for.push(name.clone());
                let q = LookupQuery {
                    limit: Some(MAX_CANDIDATES),
                    ..LookupQuery::new(name.as_str()).of(target)
                };
                let mut found = store.lookup(ctx, &q).await?;
                if target == RecordType::Lead {
                    // "The Horvath Bakery lead": named by its company.
                    found.extend(
                        store
                            .lookup_leads_by_company(ctx, &name, MAX_CANDIDATES)
                            .await?,
                    );
                }
                for c in found {
                    if c.score >= MIN_SCORE && !out.iter().any(|o| o.id == c.id) {
                        out.push(c);
                    }
                }
            }
            if target == RecordType::User && out.len() > 1 {
                out = new_owner(text, out);
            }
            Ok(closest(out))
        }
    }
}

/// The company the request names, if exactly one.
async fn named_company(store: &Store, ctx: &Ctx, request: &str) -> Result<Option<Id>> {
    let mut ids: Vec<Id> = Vec::new();
    for name in names_in(request) {
        let q = LookupQuery::new(name.as_str()).of(RecordType::Company);
        for c in store.lookup(ctx, &q).await? {
            if c.score >= MIN_SCORE && !ids.contains(&c.id) {
                ids.push(c.id);
            }
        }
    }
    Ok((ids.len() == 1).then(|| ids[0]))
}

/// Of several matching tasks, the first (of the named account, open, best
/// scored: the order the lookup gives) and those just as good.
fn best_tasks(found: Vec<Candidate>) -> Vec<Candidate> {
    let Some(top) = found.first().map(|c| c.score) else {
        return found;
    };
    let open = |c: &Candidate| c.label.ends_with("(open)");
    let first_open = found.first().is_some_and(open);
    found
        .into_iter()
        .filter(|c| c.score >= top && (!first_open || open(c)))
        .collect()
}

/// Those about as good as the best (within 0.02): "Wren" matching Wren
/// Halloway (1.0) and Wren Hallett (0.92) is Wren Halloway's; matching both
/// at 1.0 is a question.
fn closest(mut found: Vec<Candidate>) -> Vec<Candidate> {
    found.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
    let Some(top) = found.first().map(|c| c.score) else {
        return found;
    };
    found.retain(|c| c.score >= top - 0.02);
    found
}

/// Of several users named, the one a record goes to: "from Idris to
/// Caspian", "Caspian is taking over from Idris" — not the one after "from".
fn new_owner(text: &str, users: Vec<Candidate>) -> Vec<Candidate> {
    let lower = text.to_lowercase();
    let after = |word: &str, c: &Candidate| {
        let first = c
            .label
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_lowercase();
        lower.contains(&format!("{word} {first}"))
    };
    let to: Vec<Candidate> = users.iter().filter(|c| after("to", c)).cloned().collect();
    if to.len() == 1 {
        return to;
    }
    let not_from: Vec<Candidate> = users
        .iter()
        .filter(|c| !after("from", c))
        .cloned()
        .collect();
    if not_from.is_empty() { users } else { not_from }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(id: Id, name: &str) -> Candidate {
        Candidate {
            record_type: RecordType::User,
            id,
            label: format!(
                "{name} <{}@x.example>",
                name.to_lowercase().replace(' ', ".")
            ),
            score: 1.0,
        }
    }

    #[test]
    fn the_target_of_an_id_comes_from_the_tool() {
        let none = Map::new();
        assert_eq!(target("update_deal", "id", &none), Some(RecordType::Deal));
        assert_eq!(
            target("get_contact", "id", &none),
            Some(RecordType::Contact)
        );
        assert_eq!(
            target("complete_task", "task_id", &none),
            Some(RecordType::Task)
        );
        assert_eq!(
            target("reassign_owner", "owner_id", &none),
            Some(RecordType::User)
        );
        let company: Map<String, Value> =
            serde_json::from_value(json!({"record_type": "company"})).unwrap();
        assert_eq!(target("add_tag", "id", &company), Some(RecordType::Company));
        assert_eq!(target("add_tag", "id", &none), None);
        assert_eq!(
            target("merge_contacts", "survivor_id", &none),
            Some(RecordType::Contact)
        );
    }

    #[test]
    fn id_arguments_say_which_are_required() {
        let schema = json!({"properties": {"id": {}, "owner_id": {}, "record_type": {},
                                           "contact_ids": {}},
                            "required": ["id", "record_type"]});
        let mut ids = id_arguments(&schema);
        ids.sort();
        assert_eq!(
            ids,
            [("id".to_owned(), true), ("owner_id".to_owned(), false)]
        );
    }

    #[test]
    fn the_new_owner_is_the_one_it_goes_to() {
        let both = vec![user(3, "Idris Fenwick"), user(4, "Caspian Rook")];
        let pick = |t: &str| {
            new_owner(t, both.clone())
                .iter()
                .map(|c| c.id)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            pick("Caspian Rook is taking over Brannoch from Idris Fenwick"),
            [4]
        );
        assert_eq!(pick("move Brannoch from Idris to Caspian"), [4]);
        assert_eq!(pick("Idris and Caspian share it"), [3, 4]);
    }

    #[test]
    fn only_the_closest_matches_are_kept() {
        let mut a = user(1, "Wren Halloway");
        let mut b = user(2, "Wren Hallett");
        b.score = 0.92;
        assert_eq!(closest(vec![b.clone(), a.clone()]), [a.clone()]);
        a.score = 0.93;
        assert_eq!(closest(vec![a.clone(), b.clone()]).len(), 2);
        assert!(says_me("give it to me") && !says_me("the memo"));
    }
}
