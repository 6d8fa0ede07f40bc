//! JSON Schemas of tool arguments: generated from the `Args` types by schemars,
//! or from the crm's field definitions for the record tools, then made
//! strict-mode friendly in one place ([`strict`]): every object closes with
//! `additionalProperties: false` and lists its `required` fields explicitly.

use rapport_crm::RecordType;
use rapport_crm::schema::{FieldDef, FieldType, TableDef};
use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

/// The schema of a Rust type, draft 2020-12, with subschemas inlined where the
/// type is not recursive.
pub fn of<T: JsonSchema>() -> Value {
    let generator = SchemaSettings::draft2020_12()
        .with(|s| s.inline_subschemas = false)
        .into_generator();
    let mut v = generator.into_root_schema_for::<T>().to_value();
    if let Some(o) = v.as_object_mut() {
        o.remove("$schema");
        o.remove("title");
    }
    v
}

/// Closes every object schema (`additionalProperties: false` unless it says
/// otherwise, as the free-form `custom` attributes do) and makes `required`
/// explicit.
pub fn strict(mut schema: Value) -> Value {
    close(&mut schema);
    schema
}

fn close(v: &mut Value) {
    match v {
        Value::Object(o) => {
            let is_object = o.get("type").is_some_and(|t| {
                t == "object"
                    || t.as_array()
                        .is_some_and(|a| a.iter().any(|x| x == "object"))
            }) || o.contains_key("properties");
            if is_object {
                o.entry("additionalProperties")
                    .or_insert(Value::Bool(false));
                o.entry("properties").or_insert_with(|| json!({}));
                o.entry("required").or_insert_with(|| json!([]));
            }
            for (_, child) in o.iter_mut() {
                close(child);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(close),
        _ => {}
    }
}

/// The schema of one column as a tool argument.
pub fn field(f: &FieldDef) -> Value {
    let (mut s, ty) = match f.ty {
        FieldType::Id | FieldType::Int => (json!({}), "integer"),
        FieldType::Text => (json!({}), "string"),
        FieldType::Email => (json!({"format": "email"}), "string"),
        FieldType::Float => (json!({}), "number"),
        FieldType::Bool => (json!({}), "boolean"),
        FieldType::Timestamp => (json!({"format": "date-time"}), "string"),
        FieldType::Date => (json!({"format": "date"}), "string"),
        FieldType::Json => (
            json!({"additionalProperties": true, "properties": {}, "required": []}),
            "object",
        ),
        FieldType::Enum(values) => {
            let mut vals: Vec<Value> = values.iter().map(|v| json!(v)).collect();
            if f.nullable {
                vals.push(Value::Null);
            }
            (json!({"enum": vals}), "string")
        }
        FieldType::Ref(_) => (json!({}), "integer"),
    };
    let o = s.as_object_mut().expect("object");
    o.insert(
        "type".into(),
        if f.nullable {
            json!([ty, "null"])
        } else {
            json!(ty)
        },
    );
    if let Some(min) = f.min {
        o.insert("minimum".into(), json!(min));
    }
    if let Some(max) = f.max {
        o.insert("maximum".into(), json!(max));
    }
    o.insert("description".into(), json!(f.ty.expected()));
    s
}

/// The writable fields of a record type as argument properties.
fn writable(def: &TableDef) -> Map<String, Value> {
    let mut props: Map<String, Value> = def
        .fields
        .iter()
        .filter(|f| f.writable)
        .map(|f| (f.name.to_owned(), field(f)))
        .collect();
    if def.record == RecordType::Deal {
        props.insert(
            "contact_ids".into(),
            json!({"type": "array", "items": {"type": "integer"}, "description": "ids of the deal's contacts (replaces the list)"}),
        );
    }
    props
}

/// Arguments of `create_X`: the writable fields, the required ones required.
pub fn create_args(def: &TableDef) -> Value {
    let required: Vec<&str> = def
        .fields
        .iter()
        .filter(|f| f.required)
        .map(|f| f.name)
        .collect();
    json!({
        "type": "object",
        "properties": writable(def),
        "required": required,
        "additionalProperties": false,
    })
}

/// Arguments of `update_X`: the id and any writable fields to change.
pub fn update_args(def: &TableDef) -> Value {
    let mut props = writable(def);
    props.insert(
        "id".into(),
        json!({"type": "integer", "description": format!("the id of the {} to change", def.record)}),
    );
    json!({
        "type": "object",
        "properties": props,
        "required": ["id"],
        "additionalProperties": false,
    })
}

/// Schemas whose presentation recorded eval turns pin: the values come from
/// the crm's enums (the one list), but the order and the type's name the
/// models were shown stay as they were. Changing them means re-recording.
pub mod recorded {
    use std::borrow::Cow;

    use rapport_crm::model::ActivityKind;
    use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

    fn names(kinds: [ActivityKind; 4]) -> Vec<&'static str> {
        kinds.iter().map(|k| k.as_str()).collect()
    }

    /// `log_activity.kind`: calls listed first (the most logged kind).
    pub struct LoggedKind;

    impl JsonSchema for LoggedKind {
        fn schema_name() -> Cow<'static, str> {
            "ActivityKind".into()
        }
        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            use ActivityKind::*;
            json_schema!({"type": "string", "enum": names([Call, Email, Meeting, Note])})
        }
    }

    /// `search_interactions.kind`.
    pub struct InteractionKind;

    impl JsonSchema for InteractionKind {
        fn schema_name() -> Cow<'static, str> {
            "InteractionKind".into()
        }
        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            json_schema!({"type": "string", "enum": names(ActivityKind::ALL)})
        }
    }
}

/// The filter and sort of list tools: their schema is derived from the crm's
/// own types (feature `schema` of `rapport-crm`), then narrowed per record type.
pub mod filter {
    use rapport_crm::schema::{FieldType, TableDef};
    use serde_json::{Value, json};

    /// Narrows filter conditions and the sort in a list tool's schema to the
    /// record type's fields (or `custom.KEY`), and pairs each field with the
    /// type of value it takes. A constrained model then cannot name a field
    /// the type lacks, nor compare a field with a value it can never hold:
    /// the 0.5B model filtered activities on "label", tasks on status
    /// "pending" and contacts on `company_id: "4"`, and repeated each call
    /// until the loop stopped it. A condition becomes one alternative per
    /// kind of value (the integer fields, the text fields, each enum…); the
    /// prompt a model reads merges them back into one (see
    /// `rapport_models::llm::prompt_schema`), so this costs no prompt tokens.
    pub fn restrict(schema: &mut Value, def: &TableDef) {
        let names: Vec<&str> = def.fields.iter().map(|f| f.name).collect();
        if let Some(field) = schema.pointer_mut("/$defs/Sort/properties/field") {
            let description = field.get("description").cloned();
            *field = field_choice(&names);
            if let Some(d) = description {
                field["description"] = d;
            }
        }
        if let Some(cond) = schema.pointer_mut("/$defs/Condition") {
            *cond = typed_conditions(cond, def);
        }
    }

    fn field_choice(names: &[&str]) -> Value {
        json!({
            "anyOf": [
                {"type": "string", "enum": names},
                {"type": "string", "pattern": CUSTOM}
            ]
        })
    }

    /// `custom.KEY`: a custom attribute, compared with any value.
    const CUSTOM: &str = "^custom\\.[A-Za-z0-9_]+$";

    /// The condition schema as one alternative per kind of value, fields in
    /// the type's order; the descriptions of `field` and `value` are kept.
    fn typed_conditions(cond: &Value, def: &TableDef) -> Value {
        let description = |k: &str| {
            cond.pointer(&format!("/properties/{k}/description"))
                .cloned()
        };
        let op = cond
            .pointer("/properties/op")
            .cloned()
            .unwrap_or_else(|| json!({"type": "string"}));
        let mut groups: Vec<(Value, Vec<&str>)> = Vec::new();
        for f in def.fields {
            let Some(v) = value_of(&f.ty) else { continue };
            match groups.iter_mut().find(|(g, _)| *g == v) {
                Some((_, names)) => names.push(f.name),
                None => groups.push((v, vec![f.name])),
            }
        }
        let variant = |field: Value, value: Value| {
            let mut field = field;
            let mut value = value;
            if let Some(d) = description("field") {
                field["description"] = d;
            }
            if let Some(d) = description("value") {
                value["description"] = d;
            }
            json!({
                "type": "object",
                "properties": {"field": field, "op": op, "value": value},
                "required": ["field", "op", "value"],
                "additionalProperties": false
            })
        };
        let mut alts: Vec<Value> = groups
            .into_iter()
            .map(|(v, names)| {
                let list = json!({"type": "array", "items": v});
                let value = if v["type"] == "boolean" {
                    json!({"anyOf": [v, list]})
                } else {
                    json!({"anyOf": [v, list, {"type": "boolean"}]})
                };
                variant(json!({"type": "string", "enum": names}), value)
            })
            .collect();
        alts.push(variant(
            json!({"type": "string", "pattern": CUSTOM}),
            json!({}),
        ));
        json!({"anyOf": alts})
    }

    /// What a field is compared with (a list of these for `in`, true/false
    /// for `is_null`); `None` for JSON columns, reached as `custom.KEY`.
    fn value_of(ty: &FieldType) -> Option<Value> {
        Some(match ty {
            FieldType::Id | FieldType::Int | FieldType::Ref(_) => json!({"type": "integer"}),
            FieldType::Float => json!({"type": "number"}),
            FieldType::Bool => json!({"type": "boolean"}),
            // Timestamps take a date too ("due_at lt 2026-11-21").
            FieldType::Text | FieldType::Email | FieldType::Timestamp | FieldType::Date => {
                json!({"type": "string"})
            }
            FieldType::Enum(values) => json!({"type": "string", "enum": values}),
            FieldType::Json => return None,
        })
    }
}
