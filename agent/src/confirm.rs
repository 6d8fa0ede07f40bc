//! The answer to a request that one write did, built from the write's result.
//!
//! After the write a request asked for, a small local model spends one more
//! request only to say it is done: the result's prefill plus a sentence of
//! decode, some 4–7 s of a 0.5B model on these machines, and a chance to
//! call the same tool again. When the request asks for one action and one
//! write did it, the agent answers from the result instead ([`confirmation`]).
//! The words come from the record as stored, so the answer cannot claim what
//! was not done. A request that asks for more ("log it and move the deal",
//! "update both", "…and tell me what's open") still goes back to the model
//! ([`single_action`]).

use chrono::DateTime;
use serde_json::Value;

use crate::select::{CHANGE_WORDS, QUESTION_WORDS, words};

/// Words that open a clause without being its action: "can you update…",
/// "please log…", "and then move…".
const LEAD_INS: &[&str] = &[
    "please", "pls", "also", "then", "and", "just", "now", "so", "ok", "okay", "can", "could",
    "would", "will", "you", "i", "we", "want", "need", "to", "like", "kindly", "let", "me", "us",
];

/// Words that ask for more than one record, so more than one write.
const MANY: &[&str] = &[
    "both", "all", "each", "every", "two", "three", "four", "several", "everyone",
];

/// Words that ask for something besides a change ("give it to Sofia",
/// "tell me what's open"), counted as actions of their own.
const OTHER_ASKS: &[&str] = &["give", "open", "check", "answer", "explain", "summarize"];

/// Whether `request` asks for a single action: at most one clause opens with
/// an action or a question ("Log a call with Dana: she wants the pricing
/// sheet" — one; "Mark it won and create a task" — two), and no word asks for
/// several records ("update both").
pub fn single_action(request: &str) -> bool {
    let lower = request.to_lowercase();
    if asks_for_several(&lower) {
        return false;
    }
    let actions = clauses(&lower)
        .iter()
        .filter(|clause| {
            words(clause)
                .iter()
                .find(|w| !LEAD_INS.contains(*w))
                .is_some_and(|w| is_action(w))
        })
        .count();
    actions <= 1
}

/// Whether `request` asks for more than one record ("update both", "a task
/// for each").
pub fn asks_for_several(request: &str) -> bool {
    words(&request.to_lowercase())
        .iter()
        .any(|w| MANY.contains(w))
}

/// The request cut at punctuation and at the words that join actions.
fn clauses(request: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in request.split(['.', ',', ';', ':', '!', '?', '\n']) {
        let mut clause = String::new();
        for word in part.split_whitespace() {
            if matches!(word, "and" | "then" | "also" | "plus") && !clause.is_empty() {
                out.push(std::mem::take(&mut clause));
            }
            clause.push_str(word);
            clause.push(' ');
        }
        out.push(clause);
    }
    out
}

fn is_action(word: &str) -> bool {
    CHANGE_WORDS.contains(&word) || QUESTION_WORDS.contains(&word) || OTHER_ASKS.contains(&word)
}

/// What a write did, in a sentence, from its result: "Created company
/// \"Brightwater Foods\" (company 4)." `args` are the call's arguments (for
/// an update, the fields it changed).
pub fn confirmation(tool: &str, args: &Value, result: &Value) -> String {
    match tool {
        "log_activity" => logged(result),
        "move_deal_stage" | "close_deal" => moved(tool, result),
        "complete_task" => format!("Marked {} done.", named("task", result)),
        "reschedule_task" => format!(
            "Rescheduled {} to {}.",
            named("task", result),
            when(&result["due_at"])
        ),
        "reassign_owner" => reassigned(result),
        "add_tag" | "remove_tag" => tagged(tool, result),
        "merge_contacts" => format!(
            "Merged the duplicate into {}.",
            named("contact", &result["survivor"])
        ),
        _ => crud(tool, args, result),
    }
}

/// create_/update_/delete_ of one record type; anything else by its name.
fn crud(tool: &str, args: &Value, result: &Value) -> String {
    let (verb, kind) = tool.split_once('_').unwrap_or((tool, "record"));
    let what = named(kind, result);
    match verb {
        "create" => format!("Created {what}."),
        "delete" => format!("Deleted {what}."),
        "update" => match changed(args) {
            Some(fields) => format!("Updated {what}: {fields}."),
            None => format!("Updated {what}."),
        },
        _ if result["id"].is_i64() => format!("Done: {} ({what}).", tool.replace('_', " ")),
        _ => format!("Done: {}.", tool.replace('_', " ")),
    }
}

fn logged(result: &Value) -> String {
    let a = &result["activity"];
    let kind = a["kind"].as_str().unwrap_or("activity");
    let mut text = format!("Logged the {kind}");
    if let Some(s) = a["subject"].as_str().filter(|s| !s.is_empty()) {
        text.push_str(&format!(" \"{s}\""));
    }
    if let Some(id) = a["id"].as_i64() {
        text.push_str(&format!(" (activity {id})"));
    }
    let task = &result["follow_up_task"];
    if task.is_object() {
        text.push_str(&format!(", with a follow-up: {}", named("task", task)));
        if !task["due_at"].is_null() {
            text.push_str(&format!(", due {}", when(&task["due_at"])));
        }
    }
    text.push('.');
    text
}

fn moved(tool: &str, result: &Value) -> String {
    let deal = named("deal", &result["deal"]);
    let to = result["to_stage"]["name"]
        .as_str()
        .unwrap_or("its new stage");
    if tool == "close_deal" {
        let status = result["deal"]["status"].as_str().unwrap_or("closed");
        return format!("Closed {deal} as {status} (stage {to}).");
    }
    match result["from_stage"]["name"].as_str() {
        Some(from) if from != to => format!("Moved {deal} from {from} to {to}."),
        _ => format!("The {deal} is in {to}."),
    }
}

fn reassigned(result: &Value) -> String {
    let owner = result["owner_id"]
        .as_i64()
        .map_or_else(|| "nobody".to_owned(), |id| format!("user {id}"));
    format!("Gave {} to {owner}.", named("record", result))
}

fn tagged(tool: &str, result: &Value) -> String {
    let kind = result["record_type"].as_str().unwrap_or("record");
    let id = result["id"].as_i64().unwrap_or_default();
    let tag = result["tag"].as_str().unwrap_or_default();
    match (tool, result["changed"].as_bool().unwrap_or(true)) {
        ("add_tag", true) => format!("Tagged {kind} {id} \"{tag}\"."),
        ("add_tag", false) => format!("The {kind} {id} already had the tag \"{tag}\"."),
        (_, true) => format!("Removed the tag \"{tag}\" from {kind} {id}."),
        (_, false) => format!("The {kind} {id} did not have the tag \"{tag}\"."),
    }
}

/// `kind "label" (kind id)`, or as much of it as the record has.
fn named(kind: &str, record: &Value) -> String {
    let id = record["id"].as_i64();
    match (label(record), id) {
        (Some(l), Some(id)) => format!("{kind} \"{l}\" ({kind} {id})"),
        (Some(l), None) => format!("{kind} \"{l}\""),
        (None, Some(id)) => format!("{kind} {id}"),
        (None, None) => format!("the {kind}"),
    }
}

/// What a person calls the record: a person's full name (a contact's
/// `title` is a job title), else its name, title or subject.
fn label(r: &Value) -> Option<String> {
    label_of(r, &["name", "title", "subject"])
}

/// A person's full name from `first_name` and `last_name`, else the first
/// non-empty field of `keys`.
pub(crate) fn label_of(r: &Value, keys: &[&str]) -> Option<String> {
    let full: Vec<&str> = ["first_name", "last_name"]
        .iter()
        .filter_map(|k| r[*k].as_str())
        .filter(|s| !s.is_empty())
        .collect();
    if !full.is_empty() {
        return Some(full.join(" "));
    }
    keys.iter()
        .find_map(|k| r[*k].as_str().filter(|s| !s.is_empty()))
        .map(str::to_owned)
}

/// The fields an update set, as "title CFO, phone +1 512…" (ids left out:
/// they name the record, they are not the change).
fn changed(args: &Value) -> Option<String> {
    let fields: Vec<String> = args
        .as_object()?
        .iter()
        .filter(|(k, v)| k.as_str() != "id" && !k.ends_with("_id") && !v.is_null())
        .map(|(k, v)| format!("{} {}", k.replace('_', " "), shown(v)))
        .collect();
    (!fields.is_empty()).then(|| fields.join(", "))
}

fn shown(v: &Value) -> String {
    match v {
        Value::String(s) if DateTime::parse_from_rfc3339(s).is_ok() => when(v),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A timestamp as "2026-11-24 09:00 UTC"; anything else as it is.
fn when(v: &Value) -> String {
    match v.as_str() {
        Some(s) => DateTime::parse_from_rfc3339(s)
            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_else(|_| s.to_owned()),
        None => "no date".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_action_or_several() {
        for single in [
            "Log a call with Hannah Brooks: she wants to loop in their IT team before signing.",
            "Remind me to send the revised quote to Globex Manufacturing on Thursday.",
            "Ingrid Solberg got promoted to CFO, can you update her title?",
            "Rajesh Menon has a new mobile: +1 512 555 0199",
            "And remind me to send her the IT security pack tomorrow.",
            "Add a new company: Brightwater Foods, brightwaterfoods.com, they're a food & beverage business in Portland.",
        ] {
            assert!(single_action(single), "{single}");
        }
        for several in [
            "Lumen Clinics signed! Mark the deal won and create a task for me to schedule their kickoff call by Friday.",
            "Had a great meeting with Hannah, she's sending the contract to legal. Log it and move the Lumen deal to Negotiation.",
            "Org changes at Halden Marine: Ingrid is now CFO and Eirik became AP Manager. Update both.",
            "Lumen Clinics is becoming a key account: tag it key-account and give it to Sofia.",
            "I've sent Sable Medical the pricing sheet. Mark it done, and tell me what else is open.",
            "Move the Globex deal to Proposal, what's its value now?",
        ] {
            assert!(!single_action(several), "{several}");
        }
    }

    #[test]
    fn confirmations_come_from_the_result() {
        let created = confirmation(
            "create_company",
            &json!({"name": "Brightwater Foods"}),
            &json!({"id": 4, "name": "Brightwater Foods", "city": "Portland"}),
        );
        assert_eq!(
            created,
            "Created company \"Brightwater Foods\" (company 4)."
        );

        let updated = confirmation(
            "update_contact",
            &json!({"id": 9, "title": "CFO"}),
            &json!({"id": 9, "first_name": "Ingrid", "last_name": "Solberg", "title": "CFO"}),
        );
        assert_eq!(
            updated,
            "Updated contact \"Ingrid Solberg\" (contact 9): title CFO."
        );

        let logged = confirmation(
            "log_activity",
            &json!({}),
            &json!({"activity": {"id": 12, "kind": "call", "subject": "Pricing"},
                    "follow_up_task": {"id": 3, "title": "Send sheet", "due_at": "2026-11-24T09:00:00Z"}}),
        );
        assert_eq!(
            logged,
            "Logged the call \"Pricing\" (activity 12), with a follow-up: task \"Send sheet\" (task 3), due 2026-11-24 09:00 UTC."
        );

        let moved = confirmation(
            "move_deal_stage",
            &json!({}),
            &json!({"deal": {"id": 7, "name": "Globex – Expense Cloud"},
                    "from_stage": {"id": 1, "name": "Qualification"},
                    "to_stage": {"id": 3, "name": "Negotiation"}}),
        );
        assert_eq!(
            moved,
            "Moved deal \"Globex – Expense Cloud\" (deal 7) from Qualification to Negotiation."
        );

        let tagged = confirmation(
            "add_tag",
            &json!({}),
            &json!({"record_type": "company", "id": 2, "tag": "key-account", "changed": true}),
        );
        assert_eq!(tagged, "Tagged company 2 \"key-account\".");
    }
}
