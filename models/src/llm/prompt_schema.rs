//! The form of a tool's argument schema that a local model *reads*, kept apart
//! from the schema that *constrains* its output.
//!
//! A small model pays for every prompt token (about 7 ms each on these
//! machines), and a strict JSON Schema spends many on what the grammar
//! already enforces: `additionalProperties: false` on every object, integer
//! widths (`"format": "int64"`, `"minimum": 0`), string and list lengths,
//! `["string", "null"]` where
//! leaving the field out means the same, `$defs` and `$ref` indirection that
//! small models follow badly. [`for_prompt`] drops those; the grammar
//! ([`constraint`](super::constraint)) and argument validation still use the
//! full schema, so nothing is lost: the model just reads less.
//!
//! For the same reason alternatives that differ only in what their
//! properties accept (a filter condition spelled out per kind of value, so
//! the grammar pairs `status` with its enum and `company_id` with integers)
//! are read as one object whose properties accept the union.

use serde_json::{Map, Value};

/// Bumped whenever [`for_prompt`] renders differently: recorded model replies
/// keyed on the tools (eval tapes) are stale after a change.
pub const VERSION: u32 = 2;

/// Integer and number widths: the grammar enforces them, a model needs only "integer".
const WIDTHS: &[&str] = &[
    "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64", "float",
    "double",
];

/// How deep a recursive definition (a filter made of filters) is spelled out.
const MAX_REF_DEPTH: usize = 1;

/// The schema as the model reads it: references inlined (a recursive one
/// once), null alternatives and strictness keywords dropped.
pub fn for_prompt(schema: &Value) -> Value {
    let defs = schema
        .get("$defs")
        .or_else(|| schema.get("definitions"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut out = render(schema, &defs, &mut Vec::new());
    if let Some(o) = out.as_object_mut() {
        o.remove("$defs");
        o.remove("definitions");
    }
    out
}

fn render(v: &Value, defs: &Map<String, Value>, expanding: &mut Vec<String>) -> Value {
    match v {
        Value::Object(o) => render_object(o, defs, expanding),
        Value::Array(a) => Value::Array(a.iter().map(|x| render(x, defs, expanding)).collect()),
        other => other.clone(),
    }
}

fn render_object(
    o: &Map<String, Value>,
    defs: &Map<String, Value>,
    expanding: &mut Vec<String>,
) -> Value {
    if let Some(name) = o.get("$ref").and_then(Value::as_str).and_then(def_name) {
        return inline_ref(name, o, defs, expanding);
    }
    // `anyOf: [X, {type: null}]` is how an optional `X` reads: just X.
    if let Some(Value::Array(alts)) = o.get("anyOf").or_else(|| o.get("oneOf")) {
        let kept: Vec<&Value> = alts.iter().filter(|a| !is_null_schema(a)).collect();
        if kept.len() == 1 && kept.len() < alts.len() {
            let mut inner = render(kept[0], defs, expanding);
            if let (Some(d), Some(io)) = (o.get("description"), inner.as_object_mut()) {
                io.insert("description".into(), d.clone());
            }
            return inner;
        }
    }
    if let Some(Value::Array(alts)) = o.get("anyOf").or_else(|| o.get("oneOf")) {
        let rendered: Vec<Value> = alts.iter().map(|a| render(a, defs, expanding)).collect();
        if let Some(mut merged) = merge_same_shape(&rendered) {
            if let (Some(d), Some(mo)) = (o.get("description"), merged.as_object_mut()) {
                mo.insert("description".into(), d.clone());
            }
            return merged;
        }
    }
    let uint = o
        .get("format")
        .and_then(Value::as_str)
        .is_some_and(|f| f.starts_with("uint"));
    let mut out = Map::new();
    for (k, child) in o {
        match k.as_str() {
            "$defs" | "definitions" | "$schema" | "title" => {}
            "additionalProperties" if child == &Value::Bool(false) => {}
            "required" | "properties" | "enum"
                if child.as_array().is_some_and(Vec::is_empty)
                    || child.as_object().is_some_and(Map::is_empty) => {}
            "format" if child.as_str().is_some_and(|f| WIDTHS.contains(&f)) => {}
            "minLength" | "maxLength" | "maxItems" => {}
            "minimum" if uint && child.as_f64() == Some(0.0) => {}
            "type" => {
                out.insert(k.clone(), without_null_type(child));
            }
            "enum" => {
                let vals: Vec<Value> = child
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|x| !x.is_null())
                    .cloned()
                    .collect();
                out.insert(k.clone(), Value::Array(vals));
            }
            "properties" => {
                let props = child
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(name, s)| (name.clone(), render(s, defs, expanding)))
                    .collect();
                out.insert(k.clone(), Value::Object(props));
            }
            _ => {
                out.insert(k.clone(), render(child, defs, expanding));
            }
        }
    }
    Value::Object(out)
}

/// Objects with the same property names, read as one: each property keeps
/// its schema where all agree, string choices are united (`enum` values
/// joined, patterns kept), and anything else is left to its description.
/// `None` unless there are several alternatives, all objects of one shape.
fn merge_same_shape(alts: &[Value]) -> Option<Value> {
    let props: Vec<&Map<String, Value>> = alts
        .iter()
        .map(|a| a.get("properties")?.as_object())
        .collect::<Option<_>>()?;
    let first = props.first()?;
    let same =
        |p: &&Map<String, Value>| p.len() == first.len() && first.keys().all(|k| p.contains_key(k));
    if props.len() < 2 || !props.iter().all(same) {
        return None;
    }
    let merged: Map<String, Value> = first
        .keys()
        .map(|k| {
            let vals: Vec<&Value> = props.iter().map(|p| &p[k]).collect();
            (k.clone(), merge_values(&vals))
        })
        .collect();
    let mut out = alts[0].clone();
    out["properties"] = Value::Object(merged);
    Some(out)
}

fn merge_values(vals: &[&Value]) -> Value {
    let description = vals.iter().find_map(|v| v.get("description")).cloned();
    let with_description = |mut v: Value| {
        if let (Some(d), Some(o)) = (&description, v.as_object_mut()) {
            o.insert("description".into(), d.clone());
        }
        v
    };
    if vals.iter().all(|v| *v == vals[0]) {
        return vals[0].clone();
    }
    // Each value as its alternatives: `{anyOf: [A, B]}` is A and B.
    let items: Vec<&Value> = vals
        .iter()
        .flat_map(|v| match v.get("anyOf").and_then(Value::as_array) {
            Some(a) => a.iter().collect(),
            None => vec![*v],
        })
        .collect();
    let choice = |v: &Value| {
        v.get("type") == Some(&Value::from("string"))
            && (v.get("enum").is_some() || v.get("pattern").is_some())
    };
    if !items.iter().all(|v| choice(v)) {
        return with_description(serde_json::json!({}));
    }
    let mut values: Vec<Value> = Vec::new();
    let mut patterns: Vec<Value> = Vec::new();
    for v in items {
        for e in v
            .get("enum")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !values.contains(e) {
                values.push(e.clone());
            }
        }
        if let Some(p) = v.get("pattern")
            && !patterns.contains(p)
        {
            patterns.push(p.clone());
        }
    }
    let mut alts = Vec::new();
    if !values.is_empty() {
        alts.push(serde_json::json!({"type": "string", "enum": values}));
    }
    alts.extend(
        patterns
            .into_iter()
            .map(|p| serde_json::json!({"type": "string", "pattern": p})),
    );
    with_description(if alts.len() == 1 {
        alts.remove(0)
    } else {
        serde_json::json!({ "anyOf": alts })
    })
}

/// A `$ref` replaced by the definition it names, keeping the referring
/// schema's own description; a definition already being spelled out (a
/// filter inside a filter) becomes a one-line mention of it.
fn inline_ref(
    name: &str,
    o: &Map<String, Value>,
    defs: &Map<String, Value>,
    expanding: &mut Vec<String>,
) -> Value {
    let Some(def) = defs.get(name) else {
        return Value::Object(o.clone());
    };
    let depth = expanding.iter().filter(|n| *n == name).count();
    let mut inner = if depth >= MAX_REF_DEPTH {
        serde_json::json!({"description": format!("another {name}")})
    } else {
        expanding.push(name.to_owned());
        let r = render(def, defs, expanding);
        expanding.pop();
        r
    };
    if let (Some(d), Some(io)) = (o.get("description"), inner.as_object_mut()) {
        io.insert("description".into(), d.clone());
    }
    inner
}

fn def_name(reference: &str) -> Option<&str> {
    reference
        .strip_prefix("#/$defs/")
        .or_else(|| reference.strip_prefix("#/definitions/"))
}

fn is_null_schema(v: &Value) -> bool {
    v.get("type").is_some_and(|t| t == "null") || v.get("const").is_some_and(Value::is_null)
}

/// `["integer", "null"]` → `"integer"`: leaving a field out says "none".
fn without_null_type(t: &Value) -> Value {
    match t.as_array() {
        Some(types) => {
            let kept: Vec<&Value> = types.iter().filter(|x| *x != "null").collect();
            match kept.as_slice() {
                [one] => (*one).clone(),
                _ => Value::Array(kept.into_iter().cloned().collect()),
            }
        }
        None => t.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn drops_what_the_grammar_enforces() {
        let s = json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["id"],
            "properties": {
                "id": {"type": "integer", "format": "int64"},
                "name": {"type": "string", "minLength": 1, "maxLength": 200},
                "limit": {"type": ["integer", "null"], "format": "uint32", "minimum": 0},
                "kind": {"type": ["string", "null"], "enum": ["call", "email", null]},
                "custom": {"type": "object", "additionalProperties": true, "properties": {}, "required": []}
            }
        });
        assert_eq!(
            for_prompt(&s),
            json!({
                "type": "object",
                "required": ["id"],
                "properties": {
                    "id": {"type": "integer"},
                    "name": {"type": "string"},
                    "limit": {"type": "integer"},
                    "kind": {"type": "string", "enum": ["call", "email"]},
                    "custom": {"type": "object", "additionalProperties": true}
                }
            })
        );
    }

    #[test]
    fn inlines_references_and_spells_a_recursive_one_out_once() {
        let s = json!({
            "type": "object",
            "properties": {
                "filter": {"anyOf": [{"$ref": "#/$defs/Filter"}, {"type": "null"}], "description": "which records"},
                "direction": {"$ref": "#/$defs/Direction"}
            },
            "$defs": {
                "Filter": {"anyOf": [
                    {"type": "object", "properties": {"and": {"type": "array", "items": {"$ref": "#/$defs/Filter"}}}},
                    {"type": "object", "properties": {"field": {"type": "string"}}}
                ]},
                "Direction": {"type": "string", "enum": ["asc", "desc"]}
            }
        });
        assert_eq!(
            for_prompt(&s),
            json!({
                "type": "object",
                "properties": {
                    "filter": {"anyOf": [
                        {"type": "object", "properties": {"and": {"type": "array", "items": {"description": "another Filter"}}}},
                        {"type": "object", "properties": {"field": {"type": "string"}}}
                    ], "description": "which records"},
                    "direction": {"type": "string", "enum": ["asc", "desc"]}
                }
            })
        );
    }

    #[test]
    fn alternatives_of_one_shape_read_as_one_object() {
        let variant = |names: Value, value: Value| {
            json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["field", "value"],
                "properties": {
                    "field": {"type": "string", "enum": names, "description": "which field"},
                    "value": {"anyOf": [value, {"type": "boolean"}], "description": "compared with"}
                }
            })
        };
        let s = json!({"anyOf": [
            variant(json!(["id", "owner_id"]), json!({"type": "integer"})),
            variant(json!(["status"]), json!({"type": "string", "enum": ["open", "done"]})),
            {
                "type": "object",
                "required": ["field", "value"],
                "properties": {
                    "field": {"type": "string", "pattern": "^custom\\.", "description": "which field"},
                    "value": {"description": "compared with"}
                }
            }
        ]});
        assert_eq!(
            for_prompt(&s),
            json!({
                "type": "object",
                "required": ["field", "value"],
                "properties": {
                    "field": {"anyOf": [
                        {"type": "string", "enum": ["id", "owner_id", "status"]},
                        {"type": "string", "pattern": "^custom\\."}
                    ], "description": "which field"},
                    "value": {"description": "compared with"}
                }
            })
        );
        // Different shapes (an `and` group beside a condition) stay apart.
        let groups = json!({"anyOf": [
            {"type": "object", "properties": {"and": {"type": "array"}}},
            {"type": "object", "properties": {"field": {"type": "string"}}}
        ]});
        assert_eq!(for_prompt(&groups), groups);
    }

    #[test]
    fn a_schema_without_references_keeps_its_descriptions() {
        let s = json!({"type": "object", "properties": {"q": {"type": "string", "description": "what to find"}}});
        assert_eq!(for_prompt(&s), s);
    }
}
