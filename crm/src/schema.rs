//! What each record type looks like to the store: its table, its fields and their
//! types. Filters, sorting, validation and row decoding are all driven by these
//! definitions, so one generic code path serves every record type and every
//! error can name the field at fault. Pure data; no I/O.

use std::fmt;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

/// The kinds of records that live in a workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordType {
    User,
    Company,
    Contact,
    Lead,
    Pipeline,
    Stage,
    Deal,
    Activity,
    Task,
}

impl RecordType {
    pub const ALL: [RecordType; 9] = [
        RecordType::User,
        RecordType::Company,
        RecordType::Contact,
        RecordType::Lead,
        RecordType::Pipeline,
        RecordType::Stage,
        RecordType::Deal,
        RecordType::Activity,
        RecordType::Task,
    ];

    pub fn name(self) -> &'static str {
        match self {
            RecordType::User => "user",
            RecordType::Company => "company",
            RecordType::Contact => "contact",
            RecordType::Lead => "lead",
            RecordType::Pipeline => "pipeline",
            RecordType::Stage => "stage",
            RecordType::Deal => "deal",
            RecordType::Activity => "activity",
            RecordType::Task => "task",
        }
    }

    /// The plural used in tool names and REST paths (`list_companies`, `/companies`).
    pub fn plural(self) -> &'static str {
        match self {
            RecordType::User => "users",
            RecordType::Company => "companies",
            RecordType::Contact => "contacts",
            RecordType::Lead => "leads",
            RecordType::Pipeline => "pipelines",
            RecordType::Stage => "stages",
            RecordType::Deal => "deals",
            RecordType::Activity => "activities",
            RecordType::Task => "tasks",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        let wanted = s.trim().to_ascii_lowercase();
        RecordType::ALL
            .into_iter()
            .find(|rt| rt.name() == wanted || rt.def().table == wanted)
            .ok_or_else(|| {
                Error::invalid(
                    "record_type",
                    format!(
                        "unknown record type {s:?}; expected one of: {}",
                        RecordType::ALL.map(|r| r.name()).join(", ")
                    ),
                )
            })
    }

    pub fn def(self) -> &'static TableDef {
        match self {
            RecordType::User => &USERS,
            RecordType::Company => &COMPANIES,
            RecordType::Contact => &CONTACTS,
            RecordType::Lead => &LEADS,
            RecordType::Pipeline => &PIPELINES,
            RecordType::Stage => &STAGES,
            RecordType::Deal => &DEALS,
            RecordType::Activity => &ACTIVITIES,
            RecordType::Task => &TASKS,
        }
    }

    /// Record types that can carry tags.
    pub fn taggable(self) -> bool {
        !matches!(self, RecordType::Pipeline | RecordType::Stage)
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The type of a column, as the store validates, binds and decodes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldType {
    Id,
    Text,
    /// Text that must look like an email address; stored lower-cased.
    Email,
    Int,
    Float,
    Bool,
    Timestamp,
    Date,
    /// A JSON object (custom attributes).
    Json,
    /// Text restricted to a fixed set of values.
    Enum(&'static [&'static str]),
    /// The id of another record in the same workspace.
    Ref(RecordType),
}

impl FieldType {
    /// How the expected value is described in error messages.
    pub fn expected(&self) -> String {
        match self {
            FieldType::Id | FieldType::Int => "an integer".into(),
            FieldType::Text => "a string".into(),
            FieldType::Email => "an email address such as dana@acme.com".into(),
            FieldType::Float => "a number".into(),
            FieldType::Bool => "true or false".into(),
            FieldType::Timestamp => {
                "an ISO-8601 timestamp such as 2026-11-21T09:30:00Z (or a date 2026-11-21)".into()
            }
            FieldType::Date => "an ISO-8601 date such as 2026-11-21".into(),
            FieldType::Json => "a JSON object".into(),
            FieldType::Enum(values) => format!("one of: {}", values.join(", ")),
            FieldType::Ref(rt) => format!("the integer id of a {rt}"),
        }
    }

    fn orderable(&self) -> bool {
        !matches!(self, FieldType::Json | FieldType::Bool)
    }
}

/// One column of a record type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FieldDef {
    pub name: &'static str,
    pub ty: FieldType,
    /// May be NULL / absent.
    pub nullable: bool,
    /// Callers may set it on create and update (ids and timestamps are the store's).
    pub writable: bool,
    /// Must be given on create (unless the store fills a default).
    pub required: bool,
    /// Smallest allowed value for numbers.
    pub min: Option<f64>,
    /// Largest allowed value for numbers.
    pub max: Option<f64>,
}

const fn field(name: &'static str, ty: FieldType) -> FieldDef {
    FieldDef {
        name,
        ty,
        nullable: true,
        writable: true,
        required: false,
        min: None,
        max: None,
    }
}

const fn required(name: &'static str, ty: FieldType) -> FieldDef {
    FieldDef {
        nullable: false,
        required: true,
        ..field(name, ty)
    }
}

const fn system(name: &'static str, ty: FieldType) -> FieldDef {
    FieldDef {
        nullable: false,
        writable: false,
        ..field(name, ty)
    }
}

const fn ranged(f: FieldDef, min: f64, max: Option<f64>) -> FieldDef {
    FieldDef {
        min: Some(min),
        max,
        ..f
    }
}

/// Columns every workspace record has.
const ID: FieldDef = system("id", FieldType::Id);
const WORKSPACE: FieldDef = system("workspace_id", FieldType::Id);
const CREATED: FieldDef = system("created_at", FieldType::Timestamp);
const UPDATED: FieldDef = system("updated_at", FieldType::Timestamp);
const CUSTOM: FieldDef = FieldDef {
    nullable: false,
    ..field("custom", FieldType::Json)
};

pub const ROLES: &[&str] = &["admin", "manager", "rep", "viewer"];
pub const LEAD_STATUSES: &[&str] = &["new", "working", "qualified", "unqualified", "converted"];
pub const DEAL_STATUSES: &[&str] = &["open", "won", "lost"];
pub const STAGE_OUTCOMES: &[&str] = &["open", "won", "lost"];
/// The names of an enum's `ALL` values, at compile time: the column checks
/// below take their values from the model's enums, never from a second list.
macro_rules! names_of {
    ($ty:ty) => {{
        const N: usize = <$ty>::ALL.len();
        let mut out = [""; N];
        let mut i = 0;
        while i < N {
            out[i] = <$ty>::ALL[i].as_str();
            i += 1;
        }
        out
    }};
}

pub const ACTIVITY_KINDS: &[&str] = &names_of!(crate::model::ActivityKind);
pub const DIRECTIONS: &[&str] = &names_of!(crate::model::Direction);
pub const TASK_STATUSES: &[&str] = &["open", "done", "cancelled"];
pub const PRIORITIES: &[&str] = &names_of!(crate::model::Priority);

/// A record type's table and columns.
#[derive(Debug)]
pub struct TableDef {
    pub record: RecordType,
    pub table: &'static str,
    pub fields: &'static [FieldDef],
    /// Fields whose value is unique within a workspace.
    pub unique: &'static [&'static str],
    /// Fields searched by loose reference lookup ("Dana at Acme").
    pub label_fields: &'static [&'static str],
}

impl TableDef {
    pub fn field(&self, name: &str) -> Option<&'static FieldDef> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Looks up a field for filtering or sorting, with an error that lists the choices.
    pub fn known_field(&self, name: &str, context: &str) -> Result<&'static FieldDef> {
        self.field(name).ok_or_else(|| {
            Error::invalid(
                context,
                format!(
                    "unknown field {name:?} for {}; known fields: {}",
                    self.record,
                    self.fields
                        .iter()
                        .map(|f| f.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })
    }

    pub fn sortable(&self, name: &str) -> Result<&'static FieldDef> {
        let f = self.known_field(name, "sort")?;
        if !f.ty.orderable() {
            return Err(Error::invalid(
                "sort",
                format!("{} cannot be sorted on", f.name),
            ));
        }
        Ok(f)
    }

    pub fn columns(&self) -> impl Iterator<Item = &'static str> {
        self.fields.iter().map(|f| f.name)
    }

    /// The fields of other tables that reference this record type.
    pub fn referenced_by(&self) -> Vec<(&'static TableDef, &'static FieldDef)> {
        RecordType::ALL
            .iter()
            .map(|rt| rt.def())
            .flat_map(|def| {
                def.fields
                    .iter()
                    .filter(|f| f.ty == FieldType::Ref(self.record))
                    .map(move |f| (def, f))
            })
            .collect()
    }
}

pub static USERS: TableDef = TableDef {
    record: RecordType::User,
    table: "users",
    fields: &[
        ID,
        WORKSPACE,
        required("name", FieldType::Text),
        required("email", FieldType::Email),
        required("role", FieldType::Enum(ROLES)),
        FieldDef {
            nullable: false,
            ..field("timezone", FieldType::Text)
        },
        CREATED,
        UPDATED,
    ],
    unique: &["email"],
    label_fields: &["name", "email"],
};

pub static COMPANIES: TableDef = TableDef {
    record: RecordType::Company,
    table: "companies",
    fields: &[
        ID,
        WORKSPACE,
        required("name", FieldType::Text),
        field("domain", FieldType::Text),
        field("industry", FieldType::Text),
        ranged(field("employees", FieldType::Int), 0.0, None),
        ranged(field("annual_revenue", FieldType::Float), 0.0, None),
        field("country", FieldType::Text),
        field("city", FieldType::Text),
        field("owner_id", FieldType::Ref(RecordType::User)),
        CUSTOM,
        CREATED,
        UPDATED,
    ],
    unique: &[],
    label_fields: &["name", "domain"],
};

pub static CONTACTS: TableDef = TableDef {
    record: RecordType::Contact,
    table: "contacts",
    fields: &[
        ID,
        WORKSPACE,
        required("first_name", FieldType::Text),
        field("last_name", FieldType::Text),
        field("email", FieldType::Email),
        field("phone", FieldType::Text),
        field("title", FieldType::Text),
        field("company_id", FieldType::Ref(RecordType::Company)),
        field("owner_id", FieldType::Ref(RecordType::User)),
        CUSTOM,
        CREATED,
        UPDATED,
    ],
    unique: &["email"],
    label_fields: &["first_name", "last_name", "email"],
};

pub static LEADS: TableDef = TableDef {
    record: RecordType::Lead,
    table: "leads",
    fields: &[
        ID,
        WORKSPACE,
        required("name", FieldType::Text),
        field("email", FieldType::Email),
        field("company_name", FieldType::Text),
        field("title", FieldType::Text),
        field("source", FieldType::Text),
        FieldDef {
            nullable: false,
            ..field("status", FieldType::Enum(LEAD_STATUSES))
        },
        field("owner_id", FieldType::Ref(RecordType::User)),
        field("company_id", FieldType::Ref(RecordType::Company)),
        field("contact_id", FieldType::Ref(RecordType::Contact)),
        field("converted_at", FieldType::Timestamp),
        CUSTOM,
        CREATED,
        UPDATED,
    ],
    unique: &[],
    label_fields: &["name", "email", "company_name"],
};

pub static PIPELINES: TableDef = TableDef {
    record: RecordType::Pipeline,
    table: "pipelines",
    fields: &[
        ID,
        WORKSPACE,
        required("name", FieldType::Text),
        FieldDef {
            nullable: false,
            ..field("is_default", FieldType::Bool)
        },
        CREATED,
        UPDATED,
    ],
    unique: &["name"],
    label_fields: &["name"],
};

pub static STAGES: TableDef = TableDef {
    record: RecordType::Stage,
    table: "stages",
    fields: &[
        ID,
        WORKSPACE,
        required("pipeline_id", FieldType::Ref(RecordType::Pipeline)),
        required("name", FieldType::Text),
        ranged(required("position", FieldType::Int), 0.0, None),
        ranged(required("probability", FieldType::Float), 0.0, Some(1.0)),
        FieldDef {
            nullable: false,
            ..field("outcome", FieldType::Enum(STAGE_OUTCOMES))
        },
        CREATED,
        UPDATED,
    ],
    unique: &[],
    label_fields: &["name"],
};

pub static DEALS: TableDef = TableDef {
    record: RecordType::Deal,
    table: "deals",
    fields: &[
        ID,
        WORKSPACE,
        required("name", FieldType::Text),
        FieldDef {
            nullable: false,
            ..field("pipeline_id", FieldType::Ref(RecordType::Pipeline))
        },
        FieldDef {
            nullable: false,
            ..field("stage_id", FieldType::Ref(RecordType::Stage))
        },
        ranged(
            FieldDef {
                nullable: false,
                ..field("value", FieldType::Float)
            },
            0.0,
            None,
        ),
        FieldDef {
            nullable: false,
            ..field("currency", FieldType::Text)
        },
        ranged(
            FieldDef {
                nullable: false,
                ..field("probability", FieldType::Float)
            },
            0.0,
            Some(1.0),
        ),
        field("expected_close_date", FieldType::Date),
        FieldDef {
            nullable: false,
            ..field("status", FieldType::Enum(DEAL_STATUSES))
        },
        field("close_reason", FieldType::Text),
        field("closed_at", FieldType::Timestamp),
        field("company_id", FieldType::Ref(RecordType::Company)),
        field("lead_id", FieldType::Ref(RecordType::Lead)),
        field("owner_id", FieldType::Ref(RecordType::User)),
        system("stage_entered_at", FieldType::Timestamp),
        CUSTOM,
        CREATED,
        UPDATED,
    ],
    unique: &[],
    label_fields: &["name"],
};

pub static ACTIVITIES: TableDef = TableDef {
    record: RecordType::Activity,
    table: "activities",
    fields: &[
        ID,
        WORKSPACE,
        required("kind", FieldType::Enum(ACTIVITY_KINDS)),
        field("direction", FieldType::Enum(DIRECTIONS)),
        field("subject", FieldType::Text),
        FieldDef {
            nullable: false,
            ..field("body", FieldType::Text)
        },
        FieldDef {
            nullable: false,
            ..field("occurred_at", FieldType::Timestamp)
        },
        ranged(field("duration_seconds", FieldType::Int), 0.0, None),
        field("outcome", FieldType::Text),
        ranged(field("sentiment", FieldType::Float), -1.0, Some(1.0)),
        field("contact_id", FieldType::Ref(RecordType::Contact)),
        field("company_id", FieldType::Ref(RecordType::Company)),
        field("deal_id", FieldType::Ref(RecordType::Deal)),
        field("lead_id", FieldType::Ref(RecordType::Lead)),
        field("owner_id", FieldType::Ref(RecordType::User)),
        CUSTOM,
        CREATED,
        UPDATED,
    ],
    unique: &[],
    label_fields: &["subject"],
};

pub static TASKS: TableDef = TableDef {
    record: RecordType::Task,
    table: "tasks",
    fields: &[
        ID,
        WORKSPACE,
        required("title", FieldType::Text),
        field("description", FieldType::Text),
        field("due_at", FieldType::Timestamp),
        FieldDef {
            nullable: false,
            ..field("priority", FieldType::Enum(PRIORITIES))
        },
        FieldDef {
            nullable: false,
            ..field("status", FieldType::Enum(TASK_STATUSES))
        },
        field("assignee_id", FieldType::Ref(RecordType::User)),
        field("completed_at", FieldType::Timestamp),
        field("contact_id", FieldType::Ref(RecordType::Contact)),
        field("company_id", FieldType::Ref(RecordType::Company)),
        field("deal_id", FieldType::Ref(RecordType::Deal)),
        field("lead_id", FieldType::Ref(RecordType::Lead)),
        CUSTOM,
        CREATED,
        UPDATED,
    ],
    unique: &[],
    label_fields: &["title"],
};

/// A validated, typed value ready to be bound to a query.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Null,
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Timestamp(DateTime<Utc>),
    Date(NaiveDate),
    Json(Value),
}

impl Scalar {
    /// Converts a JSON value to this field's type, or explains what was expected.
    pub fn from_json(field: &FieldDef, value: &Value) -> Result<Scalar> {
        Self::from_json_as(field.name, &field.ty, field, value)
    }

    fn from_json_as(name: &str, ty: &FieldType, def: &FieldDef, value: &Value) -> Result<Scalar> {
        let wrong = || {
            Error::invalid(
                name,
                format!("expected {}, got {}", ty.expected(), describe(value)),
            )
        };
        if value.is_null() {
            return if def.nullable {
                Ok(Scalar::Null)
            } else {
                Err(Error::invalid(
                    name,
                    format!("must not be empty; expected {}", ty.expected()),
                ))
            };
        }
        let scalar = match ty {
            FieldType::Id | FieldType::Int | FieldType::Ref(_) => {
                Scalar::Int(value.as_i64().ok_or_else(wrong)?)
            }
            FieldType::Float => {
                let x = value.as_f64().ok_or_else(wrong)?;
                if !x.is_finite() {
                    return Err(wrong());
                }
                Scalar::Float(x)
            }
            FieldType::Bool => Scalar::Bool(value.as_bool().ok_or_else(wrong)?),
            FieldType::Text => Scalar::Text(value.as_str().ok_or_else(wrong)?.to_owned()),
            FieldType::Email => {
                let s = value.as_str().ok_or_else(wrong)?.trim().to_lowercase();
                if !looks_like_email(&s) {
                    return Err(wrong());
                }
                Scalar::Text(s)
            }
            FieldType::Enum(values) => {
                let s = value
                    .as_str()
                    .ok_or_else(wrong)?
                    .trim()
                    .to_ascii_lowercase();
                if !values.contains(&s.as_str()) {
                    return Err(wrong());
                }
                Scalar::Text(s)
            }
            FieldType::Timestamp => Scalar::Timestamp(
                parse_timestamp(value.as_str().ok_or_else(wrong)?).ok_or_else(wrong)?,
            ),
            FieldType::Date => Scalar::Date(
                NaiveDate::parse_from_str(value.as_str().ok_or_else(wrong)?.trim(), "%Y-%m-%d")
                    .map_err(|_| wrong())?,
            ),
            FieldType::Json => {
                if !value.is_object() {
                    return Err(wrong());
                }
                Scalar::Json(value.clone())
            }
        };
        check_range(name, def, &scalar)?;
        Ok(scalar)
    }

    pub fn to_json(&self) -> Value {
        match self {
            Scalar::Null => Value::Null,
            Scalar::Text(s) => Value::String(s.clone()),
            Scalar::Int(i) => Value::from(*i),
            Scalar::Float(x) => Value::from(*x),
            Scalar::Bool(b) => Value::Bool(*b),
            Scalar::Timestamp(t) => Value::String(format_timestamp(t)),
            Scalar::Date(d) => Value::String(d.format("%Y-%m-%d").to_string()),
            Scalar::Json(v) => v.clone(),
        }
    }
}

fn check_range(name: &str, def: &FieldDef, scalar: &Scalar) -> Result<()> {
    let x = match scalar {
        Scalar::Int(i) => *i as f64,
        Scalar::Float(x) => *x,
        _ => return Ok(()),
    };
    if let Some(min) = def.min.filter(|min| x < *min) {
        return Err(Error::invalid(
            name,
            format!("must be at least {min}, got {x}"),
        ));
    }
    if let Some(max) = def.max.filter(|max| x > *max) {
        return Err(Error::invalid(
            name,
            format!("must be at most {max}, got {x}"),
        ));
    }
    Ok(())
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) if s.chars().count() > 40 => {
            format!("the string {:?}…", s.chars().take(40).collect::<String>())
        }
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

fn looks_like_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(char::is_whitespace)
        && !domain.contains('@')
}

/// Accepts RFC 3339 timestamps and plain dates (midnight UTC). Timestamps are cut
/// to whole microseconds, the precision both databases keep.
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    let parsed = DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
        })?;
    Some(truncate_micros(parsed))
}

pub fn truncate_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

pub fn format_timestamp(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_reference_points_at_a_known_table() {
        for rt in RecordType::ALL {
            let def = rt.def();
            assert_eq!(def.record, rt);
            assert_eq!(def.fields[0].name, "id");
            for u in def.unique {
                assert!(def.field(u).is_some(), "{}.{u}", def.table);
            }
        }
    }

    #[test]
    fn values_are_checked_against_the_field_type() {
        let value = DEALS.field("value").unwrap();
        assert!(matches!(
            Scalar::from_json(value, &json!(-5)),
            Err(Error::Invalid { field, .. }) if field == "value"
        ));
        assert_eq!(
            Scalar::from_json(value, &json!(10)).unwrap(),
            Scalar::Float(10.0)
        );
        let close = DEALS.field("expected_close_date").unwrap();
        let err = Scalar::from_json(close, &json!("next tuesday")).unwrap_err();
        assert!(err.to_string().contains("expected_close_date"), "{err}");
        assert!(err.to_string().contains("2026-11-21"), "{err}");
        let email = CONTACTS.field("email").unwrap();
        assert_eq!(
            Scalar::from_json(email, &json!(" Dana@Acme.COM ")).unwrap(),
            Scalar::Text("dana@acme.com".into())
        );
        assert!(Scalar::from_json(email, &json!("dana")).is_err());
    }

    #[test]
    fn timestamps_accept_dates_and_offsets() {
        let t = parse_timestamp("2026-11-21T10:00:00+02:00").unwrap();
        assert_eq!(format_timestamp(&t), "2026-11-21T08:00:00Z");
        let d = parse_timestamp("2026-11-21").unwrap();
        assert_eq!(format_timestamp(&d), "2026-11-21T00:00:00Z");
        assert!(parse_timestamp("21/11/2026").is_none());
    }
}
