//! Typed filters, sorting and pagination for listing records. A filter is data
//! (field, operator, value, and/or groups), validated against the record type's
//! schema before any SQL exists: the model and API callers never write SQL.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::schema::{FieldDef, FieldType, Scalar, TableDef};

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Lte,
    Gt,
    Gte,
    /// The value is a list; matches any of them.
    In,
    /// Case-insensitive substring match on text.
    Contains,
    /// The value is `true` (field is empty) or `false` (field has a value).
    IsNull,
}

impl Op {
    /// Every operator, in the order the schemas list them.
    pub const ALL: [Op; 9] = [
        Op::Eq,
        Op::Ne,
        Op::Lt,
        Op::Lte,
        Op::Gt,
        Op::Gte,
        Op::In,
        Op::Contains,
        Op::IsNull,
    ];

    /// The operator's name in filters (`is_null`).
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Ne => "ne",
            Op::Lt => "lt",
            Op::Lte => "lte",
            Op::Gt => "gt",
            Op::Gte => "gte",
            Op::In => "in",
            Op::Contains => "contains",
            Op::IsNull => "is_null",
        }
    }
}

names_schema!(Op);

/// A condition on one field, or an `and` / `or` group of filters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(untagged)]
pub enum Filter {
    And { and: Vec<Filter> },
    Or { or: Vec<Filter> },
    Cond(Condition),
}

/// One comparison of a field with a value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// A field of the record type, or `custom.KEY` for a custom attribute.
    pub field: String,
    pub op: Op,
    /// The value to compare with; a list for `in`; true/false for `is_null`.
    #[serde(default)]
    pub value: Value,
}

impl Filter {
    pub fn cond(field: impl Into<String>, op: Op, value: impl Into<Value>) -> Filter {
        Filter::Cond(Condition {
            field: field.into(),
            op,
            value: value.into(),
        })
    }

    pub fn eq(field: impl Into<String>, value: impl Into<Value>) -> Filter {
        Filter::cond(field, Op::Eq, value)
    }

    pub fn and(filters: Vec<Filter>) -> Filter {
        Filter::And { and: filters }
    }

    pub fn or(filters: Vec<Filter>) -> Filter {
        Filter::Or { or: filters }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    #[default]
    Asc,
    Desc,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Sort {
    pub field: String,
    // Ascending when left out. (No doc comment: docs of these types become the
    // descriptions in tool schemas, which recorded eval turns pin.)
    pub direction: Option<Direction>,
}

/// What to list: filter, sort, page size and the cursor from the previous page.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    pub filter: Option<Filter>,
    #[serde(default)]
    pub sort: Option<Sort>,
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub cursor: Option<String>,
}

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 500;
/// Deeper trees are refused: they are never needed and cost the database.
const MAX_DEPTH: usize = 8;
const MAX_IN: usize = 1000;

impl ListQuery {
    pub fn filtered(filter: Filter) -> Self {
        ListQuery {
            filter: Some(filter),
            ..Default::default()
        }
    }

    pub fn sorted(mut self, field: &str, direction: Direction) -> Self {
        self.sort = Some(Sort {
            field: field.into(),
            direction: Some(direction),
        });
        self
    }

    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    pub fn page_size(&self) -> Result<u32> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(0) => Err(Error::invalid("limit", "must be at least 1")),
            Some(n) if n > MAX_LIMIT => Err(Error::invalid(
                "limit",
                format!("must be at most {MAX_LIMIT}, got {n}"),
            )),
            Some(n) => Ok(n),
        }
    }
}

/// What a checked condition compares: a column or a custom attribute.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Column(&'static FieldDef),
    /// `custom.KEY`, compared as text.
    Custom(String),
}

/// A filter that passed validation: every field exists and every value has the
/// field's type.
#[derive(Debug, Clone, PartialEq)]
pub enum Checked {
    And(Vec<Checked>),
    Or(Vec<Checked>),
    Cmp(Target, Op, Scalar),
    In(Target, Vec<Scalar>),
    IsNull(Target, bool),
}

/// Validates a filter against a table, naming the offending field on error.
pub fn check(def: &TableDef, filter: &Filter) -> Result<Checked> {
    check_at(def, filter, 0)
}

fn check_at(def: &TableDef, filter: &Filter, depth: usize) -> Result<Checked> {
    if depth > MAX_DEPTH {
        return Err(Error::invalid(
            "filter",
            format!("nested more than {MAX_DEPTH} levels deep"),
        ));
    }
    match filter {
        Filter::And { and } => Ok(Checked::And(
            and.iter()
                .map(|f| check_at(def, f, depth + 1))
                .collect::<Result<_>>()?,
        )),
        Filter::Or { or } => Ok(Checked::Or(
            or.iter()
                .map(|f| check_at(def, f, depth + 1))
                .collect::<Result<_>>()?,
        )),
        Filter::Cond(c) => check_condition(def, c),
    }
}

fn check_condition(def: &TableDef, c: &Condition) -> Result<Checked> {
    let (target, field) = resolve_target(def, &c.field)?;
    let name = c.field.as_str();
    match c.op {
        Op::IsNull => {
            let want = c.value.as_bool().ok_or_else(|| {
                Error::invalid(
                    name,
                    "is_null takes true (field is empty) or false (field has a value)",
                )
            })?;
            Ok(Checked::IsNull(target, want))
        }
        Op::In => {
            let items = c
                .value
                .as_array()
                .ok_or_else(|| Error::invalid(name, "the in operator takes a list of values"))?;
            if items.len() > MAX_IN {
                return Err(Error::invalid(
                    name,
                    format!("in takes at most {MAX_IN} values"),
                ));
            }
            let values = items
                .iter()
                .map(|v| filter_value(name, &field, v))
                .collect::<Result<_>>()?;
            Ok(Checked::In(target, values))
        }
        Op::Contains => {
            if !matches!(field.ty, FieldType::Text | FieldType::Email) {
                return Err(Error::invalid(
                    name,
                    format!(
                        "contains works on text fields; {name} holds {}",
                        field.ty.expected()
                    ),
                ));
            }
            let s = c
                .value
                .as_str()
                .ok_or_else(|| Error::invalid(name, "contains takes a string"))?;
            Ok(Checked::Cmp(
                target,
                Op::Contains,
                Scalar::Text(s.to_owned()),
            ))
        }
        Op::Lt | Op::Lte | Op::Gt | Op::Gte
            if matches!(field.ty, FieldType::Json | FieldType::Bool) =>
        {
            Err(Error::invalid(
                name,
                format!("{:?} cannot be used on {name}", c.op).to_lowercase(),
            ))
        }
        op => {
            if c.value.is_null() {
                return Err(Error::invalid(
                    name,
                    "compare with a value; to test for an empty field use is_null",
                ));
            }
            Ok(Checked::Cmp(
                target,
                op,
                filter_value(name, &field, &c.value)?,
            ))
        }
    }
}

/// Filter values are checked like writes, but a value outside a write's range
/// (e.g. `value gt -1`) is still a sensible question, so ranges are not applied.
fn filter_value(name: &str, field: &FieldDef, value: &Value) -> Result<Scalar> {
    let unbounded = FieldDef {
        min: None,
        max: None,
        nullable: false,
        name: field.name,
        ..*field
    };
    Scalar::from_json(&unbounded, value).map_err(|e| match e {
        Error::Invalid { message, .. } => Error::invalid(name, message),
        other => other,
    })
}

fn resolve_target(def: &TableDef, name: &str) -> Result<(Target, FieldDef)> {
    if let Some(key) = name.strip_prefix("custom.") {
        let valid = !key.is_empty()
            && key.len() <= 64
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid || def.field("custom").is_none() {
            return Err(Error::invalid(
                name,
                "custom attribute keys are letters, digits, '_' or '-' (e.g. custom.plan)",
            ));
        }
        let as_text = FieldDef {
            name: "custom",
            ty: FieldType::Text,
            nullable: true,
            writable: false,
            required: false,
            min: None,
            max: None,
        };
        return Ok((Target::Custom(key.to_owned()), as_text));
    }
    let field = def.known_field(name, name)?;
    Ok((Target::Column(field), *field))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{CONTACTS, DEALS};
    use serde_json::json;

    #[test]
    fn parses_nested_groups_from_json() {
        let f: Filter = serde_json::from_value(json!({
            "and": [
                {"field": "status", "op": "eq", "value": "open"},
                {"or": [
                    {"field": "value", "op": "gte", "value": 1000},
                    {"field": "expected_close_date", "op": "is_null", "value": true}
                ]}
            ]
        }))
        .unwrap();
        let checked = check(&DEALS, &f).unwrap();
        let Checked::And(parts) = checked else {
            panic!("not an and")
        };
        assert_eq!(parts.len(), 2);
    }

    #[test]
    fn unknown_field_is_named() {
        let err = check(&CONTACTS, &Filter::eq("nickname", "D")).unwrap_err();
        assert_eq!(err.field(), Some("nickname"));
        assert!(
            err.to_string().contains("first_name"),
            "lists choices: {err}"
        );
    }

    #[test]
    fn wrong_value_type_is_named() {
        let err = check(&DEALS, &Filter::cond("value", Op::Gt, "lots")).unwrap_err();
        assert_eq!(err.field(), Some("value"));
        assert!(err.to_string().contains("a number"), "{err}");
        let err = check(&DEALS, &Filter::eq("status", "pending")).unwrap_err();
        assert!(err.to_string().contains("open, won, lost"), "{err}");
    }

    #[test]
    fn operators_fit_their_types() {
        assert!(check(&DEALS, &Filter::cond("value", Op::Contains, "1")).is_err());
        assert!(check(&DEALS, &Filter::cond("custom", Op::Gt, json!({}))).is_err());
        assert!(check(&DEALS, &Filter::cond("status", Op::In, "open")).is_err());
        assert!(
            check(
                &DEALS,
                &Filter::cond("status", Op::In, json!(["open", "won"]))
            )
            .is_ok()
        );
        assert!(check(&DEALS, &Filter::cond("custom.plan", Op::Eq, "pro")).is_ok());
        assert!(check(&DEALS, &Filter::cond("custom.x'y", Op::Eq, "pro")).is_err());
    }

    #[test]
    fn page_size_is_bounded() {
        assert!(ListQuery::default().limit(0).page_size().is_err());
        assert!(ListQuery::default().limit(501).page_size().is_err());
        assert_eq!(ListQuery::default().page_size().unwrap(), DEFAULT_LIMIT);
    }
}
