//! Which record ids the conversation has shown, and as what type of record.
//!
//! A small model copies numbers it has seen into any id argument: in one
//! transcript it passed contact 45 as `company_id`. Every integer the user
//! wrote counts as a possible id of any type (people say "deal 12"); ids from
//! lookups and tool results are kept with their record type, read from the
//! JSON (`record_type`, a `<type>_id` key, or the tool that returned the
//! record), so a contact's id is not accepted where a company's is expected.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

/// Record types an id argument can name, by the singular word used in keys
/// and tool names.
const TYPES: &[&str] = &[
    "company", "contact", "lead", "deal", "activity", "task", "pipeline", "stage", "user",
];

/// How an id argument relates to what the conversation showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Known {
    /// Seen (as this type, or untyped).
    Yes,
    /// Never seen.
    No,
    /// Seen only as the id of other record types (sorted).
    AsOther(Vec<String>),
}

/// The ids the conversation has shown: numbers the user typed (any type) and
/// ids from lookups and results with their record types. The loop checks the
/// id arguments of every call against it ([`Known`]).
#[derive(Debug, Clone, Default)]
pub struct KnownIds {
    untyped: HashSet<i64>,
    typed: HashMap<i64, HashSet<String>>,
}

impl KnownIds {
    /// An id of any type (numbers the user typed).
    pub fn insert_untyped(&mut self, n: i64) {
        self.untyped.insert(n);
    }

    /// An id known to be of `record_type` (one of the record types above).
    pub fn insert_typed(&mut self, record_type: &str, n: i64) {
        self.typed
            .entry(n)
            .or_default()
            .insert(record_type.to_owned());
    }

    /// Text the user wrote: every integer in it, untyped.
    pub fn add_text(&mut self, text: &str) {
        for n in numbers_in(text) {
            self.insert_untyped(n);
        }
    }

    /// A lookup's mention text (`contact 45 (Aisha Khan, Acme)`): a record-type
    /// word followed by a number is typed; any other number is untyped.
    pub fn add_mentions(&mut self, text: &str) {
        let words: Vec<&str> = text
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .filter(|w| !w.is_empty())
            .collect();
        for (i, w) in words.iter().enumerate() {
            let Ok(n) = w.parse::<i64>() else { continue };
            match i
                .checked_sub(1)
                .map(|j| words[j])
                .filter(|p| TYPES.contains(p))
            {
                Some(t) => self.insert_typed(t, n),
                None => self.insert_untyped(n),
            }
        }
    }

    /// A successful tool result as the model saw it. JSON is walked for typed
    /// ids; anything else (a result cut short) falls back to untyped numbers.
    pub fn add_result(&mut self, tool: &str, content: &str) {
        let json = content
            .trim()
            .strip_prefix(crate::history::DATA_OPEN)
            .and_then(|s| s.trim_end().strip_suffix("</data>"))
            .unwrap_or(content)
            .trim();
        match serde_json::from_str::<Value>(json) {
            Ok(v) => {
                let top = v.get("result").unwrap_or(&v);
                self.walk(top, tool_record_type(tool));
            }
            Err(_) => self.add_text(content),
        }
    }

    /// An error result: only the records it lists as `candidates` (the
    /// records linked to a wrong-type id, or the ones an ambiguous name may
    /// mean). The rest echoes the refused value back, which does not make it
    /// known.
    pub fn add_error_candidates(&mut self, content: &str) {
        if let Ok(v) = serde_json::from_str::<Value>(content.trim())
            && let Some(c) = v.pointer("/error/candidates")
        {
            self.walk(c, None);
        }
    }

    fn walk(&mut self, v: &Value, record_type: Option<&str>) {
        match v {
            Value::Object(map) => {
                let own = ["record_type", "type"]
                    .iter()
                    .filter_map(|k| map.get(*k)?.as_str())
                    .find_map(|t| TYPES.iter().find(|x| **x == t).copied())
                    .or(record_type);
                for (k, val) in map {
                    if let Some(n) = val.as_i64() {
                        if k == "id" || k == "record_id" {
                            match own {
                                Some(t) => self.insert_typed(t, n),
                                None => self.insert_untyped(n),
                            }
                        } else if let Some(t) = key_type(k) {
                            self.insert_typed(t, n);
                        }
                    } else if let (Some(t), Some(items)) = (ids_key_type(k), val.as_array()) {
                        for n in items.iter().filter_map(Value::as_i64) {
                            self.insert_typed(t, n);
                        }
                    } else {
                        // A list of records keeps the tool's type (`items` of
                        // list_contacts), a list named for a type has that type
                        // (`stages`); anything else names its own.
                        let inner = match k.as_str() {
                            _ if !val.is_array() => None,
                            "items" | "results" | "records" | "data" => own,
                            _ => tool_record_type(k),
                        };
                        self.walk(val, inner);
                    }
                }
            }
            Value::Array(items) => {
                for item in items {
                    self.walk(item, record_type);
                }
            }
            _ => {}
        }
    }

    /// Whether `n`, passed as argument `key` of `tool`, was shown.
    pub fn check(&self, tool: &str, key: &str, n: i64) -> Known {
        self.check_as(expected_type(tool, key), n)
    }

    /// Whether `n` was shown as the id of an `expected` record (any, if `None`).
    pub fn check_as(&self, expected: Option<&str>, n: i64) -> Known {
        if self.untyped.contains(&n) {
            return Known::Yes;
        }
        let Some(seen) = self.typed.get(&n) else {
            return Known::No;
        };
        match expected {
            Some(t) if !seen.contains(t) => {
                let mut other: Vec<String> = seen.iter().cloned().collect();
                other.sort();
                Known::AsOther(other)
            }
            _ => Known::Yes,
        }
    }
}

/// The record type argument `key` of `tool` must name: `id` is the tool's
/// own record type, `<type>_id` that type.
pub fn expected_type(tool: &str, key: &str) -> Option<&'static str> {
    if key == "id" {
        tool_record_type(tool)
    } else {
        key_type(key)
    }
}

/// The record type an id argument of a call must name: as [`expected_type`],
/// and for the `id` of a tool over several record types (`add_tag`,
/// `reassign_owner`, `timeline`) the one its `record_type` argument names.
pub fn expected_type_in(tool: &str, key: &str, args: &Value) -> Option<&'static str> {
    expected_type(tool, key).or_else(|| {
        let named = args.get("record_type").and_then(Value::as_str)?;
        (key == "id")
            .then(|| TYPES.iter().find(|t| **t == named).copied())
            .flatten()
    })
}

/// The record type a `<type>_id` key names (`owner_id` and `assignee_id` are users).
pub fn key_type(key: &str) -> Option<&'static str> {
    let stem = key.strip_suffix("_id")?;
    let stem = stem.rsplit('_').next().unwrap_or(stem);
    match stem {
        "owner" | "assignee" | "actor" | "author" => Some("user"),
        s => TYPES.iter().find(|t| **t == s).copied(),
    }
}

fn ids_key_type(key: &str) -> Option<&'static str> {
    key.strip_suffix("_ids")
        .and_then(|stem| key_type(&format!("{stem}_id")))
}

/// The record type a tool works on, from its name: `create_contact`,
/// `list_companies`, `log_activity`, `move_deal_stage` → contact, company,
/// activity, deal. Tools over several types (`find_records`) have none.
pub fn tool_record_type(tool: &str) -> Option<&'static str> {
    tool.split('_').find_map(|w| {
        let singular = w
            .strip_suffix("ies")
            .map(|s| format!("{s}y"))
            .or_else(|| w.strip_suffix('s').map(str::to_owned))
            .unwrap_or_else(|| w.to_owned());
        TYPES.iter().find(|t| **t == w || **t == singular).copied()
    })
}

pub(crate) fn numbers_in(text: &str) -> Vec<i64> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty() && w.len() <= 18)
        .filter_map(|w| w.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tool_names_and_keys_map_to_record_types() {
        assert_eq!(tool_record_type("create_contact"), Some("contact"));
        assert_eq!(tool_record_type("list_companies"), Some("company"));
        assert_eq!(tool_record_type("log_activity"), Some("activity"));
        assert_eq!(tool_record_type("move_deal_stage"), Some("deal"));
        assert_eq!(tool_record_type("my_tasks"), Some("task"));
        assert_eq!(tool_record_type("find_records"), None);
        assert_eq!(key_type("company_id"), Some("company"));
        assert_eq!(key_type("owner_id"), Some("user"));
        assert_eq!(key_type("pipeline_stage_id"), Some("stage"));
        assert_eq!(key_type("custom_id"), None);
    }

    #[test]
    fn a_contact_id_is_not_a_company_id() {
        let mut k = KnownIds::default();
        k.add_mentions("\"Aisha\" may be: contact 45 (Aisha Khan), contact 46 (Aisha Patel)");
        assert_eq!(k.check("create_note", "contact_id", 45), Known::Yes);
        assert_eq!(
            k.check("create_contact", "company_id", 45),
            Known::AsOther(vec!["contact".into()])
        );
        assert_eq!(k.check("create_contact", "company_id", 47), Known::No);
        // A number the user typed may be any record's id.
        k.add_text("move deal 45 to won");
        assert_eq!(k.check("create_contact", "company_id", 45), Known::Yes);
    }

    #[test]
    fn the_id_of_a_tool_over_several_types_is_typed_by_its_record_type() {
        let args = serde_json::json!({"record_type": "deal", "id": 6, "tag": "at-risk"});
        assert_eq!(expected_type_in("remove_tag", "id", &args), Some("deal"));
        assert_eq!(expected_type_in("get_deal", "id", &args), Some("deal"));
        assert_eq!(
            expected_type_in("add_tag", "id", &serde_json::json!({})),
            None
        );
        let mut k = KnownIds::default();
        k.add_mentions("\"Lumen Clinics\" is company 6 (Lumen Clinics)");
        assert_eq!(
            k.check_as(expected_type_in("remove_tag", "id", &args), 6),
            Known::AsOther(vec!["company".into()])
        );
    }

    #[test]
    fn an_error_makes_only_its_candidates_known() {
        let mut k = KnownIds::default();
        k.add_error_candidates(
            r#"{"ok":false,"error":{"code":"not_found","message":"task_id 6 is the id of a deal, not of a task","field":"task_id","candidates":[{"record_type":"task","id":7,"label":"Send whitepaper","score":1.0}],"retryable":false}}"#,
        );
        assert_eq!(k.check("reschedule_task", "task_id", 7), Known::Yes);
        assert_eq!(k.check("reschedule_task", "task_id", 6), Known::No);
    }

    #[test]
    fn results_are_walked_for_typed_ids() {
        let mut k = KnownIds::default();
        let content = json!({"ok": true, "result": {"items": [
            {"id": 7, "company_id": 3, "owner_id": 2, "first_name": "Dana"}
        ]}})
        .to_string();
        k.add_result("list_contacts", &content);
        assert_eq!(k.check("update_contact", "id", 7), Known::Yes);
        assert_eq!(k.check("log_activity", "contact_id", 7), Known::Yes);
        assert_eq!(k.check("create_deal", "company_id", 3), Known::Yes);
        assert_eq!(k.check("create_task", "owner_id", 2), Known::Yes);
        assert_eq!(
            k.check("create_deal", "company_id", 7),
            Known::AsOther(vec!["contact".into()])
        );
        // Candidates of a multi-type lookup carry their own type.
        let found = json!({"ok": true, "result": {"candidates": [
            {"record_type": "deal", "id": 12, "label": "Acme renewal"}
        ]}})
        .to_string();
        k.add_result("find_records", &format!("<data>\n{found}\n</data>"));
        assert_eq!(k.check("move_deal_stage", "deal_id", 12), Known::Yes);
        assert_eq!(
            k.check("create_task", "contact_id", 12),
            Known::AsOther(vec!["deal".into()])
        );
        // Nested lists name their own type.
        let pipeline = json!({"ok": true, "result": {"id": 1, "name": "Sales",
            "stages": [{"id": 5, "name": "Won"}]}})
        .to_string();
        k.add_result("get_pipeline", &pipeline);
        assert_eq!(k.check("move_deal_stage", "stage_id", 5), Known::Yes);
        assert_eq!(k.check("list_deals", "pipeline_id", 1), Known::Yes);
        // A result cut short still makes its numbers known, untyped.
        k.add_result(
            "get_company",
            "{\"ok\":true,\"result\":{\"id\":99, … cut at 100",
        );
        assert_eq!(k.check("create_deal", "contact_id", 99), Known::Yes);
    }
}
