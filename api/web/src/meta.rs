//! What the pages know about each record type: its path and labels, the
//! columns a table offers and shows by default, a record's one-line label,
//! the labels of the records a page refers to (fetched in one query per
//! type), and how a form's text becomes a typed value.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rapport_crm::schema::{FieldDef, FieldType};
use rapport_crm::{Ctx, Filter, Id, ListQuery, Op, RecordMap, RecordType, Store};
use serde_json::{Value, json};

use crate::error::WebError;

/// The record types with pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Company,
    Contact,
    Lead,
    Deal,
    Activity,
    Task,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Company,
        Kind::Contact,
        Kind::Lead,
        Kind::Deal,
        Kind::Activity,
        Kind::Task,
    ];

    pub fn rt(self) -> RecordType {
        match self {
            Kind::Company => RecordType::Company,
            Kind::Contact => RecordType::Contact,
            Kind::Lead => RecordType::Lead,
            Kind::Deal => RecordType::Deal,
            Kind::Activity => RecordType::Activity,
            Kind::Task => RecordType::Task,
        }
    }

    pub fn of(rt: RecordType) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.rt() == rt)
    }

    /// The first path segment of its pages.
    pub fn path(self) -> &'static str {
        match self {
            Kind::Company => "companies",
            Kind::Contact => "contacts",
            Kind::Lead => "leads",
            Kind::Deal => "deals",
            Kind::Activity => "activities",
            Kind::Task => "tasks",
        }
    }

    /// The kind a request's path is about (`/contacts/7` → contacts).
    pub fn from_path(path: &str) -> Option<Kind> {
        let first = path.trim_start_matches('/').split('/').next()?;
        Kind::ALL.into_iter().find(|k| k.path() == first)
    }

    pub fn label(self) -> &'static str {
        match self {
            Kind::Company => "Company",
            Kind::Contact => "Contact",
            Kind::Lead => "Lead",
            Kind::Deal => "Deal",
            Kind::Activity => "Activity",
            Kind::Task => "Task",
        }
    }

    pub fn plural_label(self) -> &'static str {
        match self {
            Kind::Company => "Companies",
            Kind::Contact => "Contacts",
            Kind::Lead => "Leads",
            Kind::Deal => "Deals",
            Kind::Activity => "Activities",
            Kind::Task => "Tasks",
        }
    }

    /// The columns a table shows until the person chooses.
    pub fn default_columns(self) -> &'static [&'static str] {
        match self {
            Kind::Company => &[
                "name",
                "domain",
                "industry",
                "employees",
                "country",
                "owner_id",
            ],
            Kind::Contact => &[
                "first_name",
                "last_name",
                "email",
                "title",
                "company_id",
                "owner_id",
            ],
            Kind::Lead => &["name", "company_name", "status", "source", "owner_id"],
            Kind::Deal => &[
                "name",
                "stage_id",
                "value",
                "expected_close_date",
                "status",
                "company_id",
                "owner_id",
            ],
            Kind::Activity => &[
                "kind",
                "subject",
                "occurred_at",
                "contact_id",
                "company_id",
                "owner_id",
            ],
            Kind::Task => &["title", "status", "priority", "due_at", "assignee_id"],
        }
    }

    /// The column that links a row to its record page.
    pub fn title_column(self) -> &'static str {
        match self {
            Kind::Contact => "first_name",
            Kind::Activity => "subject",
            Kind::Task => "title",
            _ => "name",
        }
    }

    /// Which field of activities and tasks points at this kind (timelines).
    pub fn link_field(self) -> Option<&'static str> {
        match self {
            Kind::Company => Some("company_id"),
            Kind::Contact => Some("contact_id"),
            Kind::Lead => Some("lead_id"),
            Kind::Deal => Some("deal_id"),
            Kind::Activity | Kind::Task => None,
        }
    }
}

/// Fields a table may show and filter on: every column but the bookkeeping
/// ones and the long texts.
pub fn columns(kind: Kind) -> Vec<&'static FieldDef> {
    kind.rt()
        .def()
        .fields
        .iter()
        .filter(|f| {
            !matches!(
                f.name,
                "id" | "workspace_id" | "custom" | "body" | "description"
            )
        })
        .collect()
}

/// Fields a record page shows, in schema order (long texts included).
pub fn record_fields(kind: Kind) -> Vec<&'static FieldDef> {
    kind.rt()
        .def()
        .fields
        .iter()
        .filter(|f| !matches!(f.name, "id" | "workspace_id" | "custom"))
        .collect()
}

/// "Company", "Owner", "Expected close date" from `company_id`, …
pub fn field_label(name: &str) -> String {
    let base = name.strip_suffix("_id").unwrap_or(name);
    let mut s = base.replace('_', " ");
    if let Some(first) = s.get(0..1) {
        let upper = first.to_uppercase();
        s.replace_range(0..1, &upper);
    }
    s
}

/// A record's one-line label.
pub fn label(rt: RecordType, r: &RecordMap) -> String {
    let text = |k: &str| {
        r.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    let l = match rt {
        RecordType::Contact => {
            let last = text("last_name");
            if last.is_empty() {
                text("first_name")
            } else {
                format!("{} {last}", text("first_name"))
            }
        }
        RecordType::Activity => {
            let subject = text("subject");
            if subject.is_empty() {
                let body: String = text("body").chars().take(60).collect();
                format!("{}: {body}", text("kind"))
            } else {
                subject
            }
        }
        RecordType::Task => text("title"),
        _ => text("name"),
    };
    if l.is_empty() {
        format!(
            "#{}",
            r.get("id").and_then(Value::as_i64).unwrap_or_default()
        )
    } else {
        l
    }
}

/// Labels of referenced records, by type and id.
#[derive(Debug, Default)]
pub struct Labels(HashMap<(RecordType, Id), String>);

impl Labels {
    /// Reads the labels of every record `rows` refer to through `fields`:
    /// one query per referenced type.
    pub async fn load(
        store: &Store,
        ctx: &Ctx,
        rows: &[RecordMap],
        fields: &[&FieldDef],
    ) -> Result<Labels, WebError> {
        let mut wanted: BTreeMap<&'static str, (RecordType, BTreeSet<Id>)> = BTreeMap::new();
        for f in fields {
            if let FieldType::Ref(target) = f.ty {
                for r in rows {
                    if let Some(id) = r.get(f.name).and_then(Value::as_i64) {
                        wanted
                            .entry(target.name())
                            .or_insert_with(|| (target, BTreeSet::new()))
                            .1
                            .insert(id);
                    }
                }
            }
        }
        let mut labels = Labels::default();
        for (_, (rt, ids)) in wanted {
            labels
                .add(store, ctx, rt, ids.into_iter().collect())
                .await?;
        }
        Ok(labels)
    }

    /// Adds the labels of these records.
    pub async fn add(
        &mut self,
        store: &Store,
        ctx: &Ctx,
        rt: RecordType,
        ids: Vec<Id>,
    ) -> Result<(), WebError> {
        for chunk in ids.chunks(500) {
            let q = ListQuery::filtered(Filter::cond("id", Op::In, json!(chunk)))
                .limit(chunk.len() as u32);
            for r in store.list_dyn(ctx, rt, &q).await?.items {
                let id = r.get("id").and_then(Value::as_i64).unwrap_or_default();
                self.0.insert((rt, id), label(rt, &r));
            }
        }
        Ok(())
    }

    pub fn get(&self, rt: RecordType, id: Id) -> Option<&str> {
        self.0.get(&(rt, id)).map(String::as_str)
    }
}

/// The link to a record's page, for types that have one.
pub fn href(rt: RecordType, id: Id) -> Option<String> {
    Kind::of(rt).map(|k| format!("/{}/{id}", k.path()))
}

/// A field's value as text for a page.
pub fn display(f: &FieldDef, v: &Value, labels: &Labels) -> String {
    match (f.ty, v) {
        (_, Value::Null) => String::new(),
        (FieldType::Ref(rt), Value::Number(n)) => {
            let id = n.as_i64().unwrap_or_default();
            labels
                .get(rt, id)
                .map(str::to_owned)
                .unwrap_or_else(|| format!("#{id}"))
        }
        (FieldType::Float, Value::Number(n)) if matches!(f.name, "value" | "annual_revenue") => {
            crate::render::money(n.as_f64().unwrap_or_default())
        }
        (FieldType::Float, Value::Number(n)) if matches!(f.name, "probability") => {
            format!("{:.0}%", n.as_f64().unwrap_or_default() * 100.0)
        }
        (FieldType::Float, Value::Number(n)) => {
            let x = n.as_f64().unwrap_or_default();
            format!("{x:.2}")
        }
        (FieldType::Timestamp, Value::String(s)) => crate::render::when(s),
        (FieldType::Bool, Value::Bool(b)) => if *b { "yes" } else { "no" }.into(),
        (_, Value::String(s)) => s.clone(),
        (_, other) => other.to_string(),
    }
}

/// Reads a form's text as the field's typed JSON value. Empty text clears a
/// field that may be empty.
pub fn parse_input(f: &FieldDef, raw: &str) -> Result<Value, WebError> {
    let s = raw.trim();
    if s.is_empty() {
        return Ok(Value::Null);
    }
    let bad = || WebError::BadRequest(format!("{}: expected {}", f.name, f.ty.expected()));
    Ok(match f.ty {
        FieldType::Id | FieldType::Int | FieldType::Ref(_) => {
            json!(s.parse::<i64>().map_err(|_| bad())?)
        }
        FieldType::Float => {
            let x = s.replace(',', "").parse::<f64>().map_err(|_| bad())?;
            // Probabilities are typed as percentages on pages.
            if f.name == "probability" && x > 1.0 {
                json!(x / 100.0)
            } else {
                json!(x)
            }
        }
        FieldType::Bool => json!(matches!(s, "true" | "on" | "yes" | "1")),
        // `datetime-local` inputs send "2026-11-21T09:30", read as UTC.
        FieldType::Timestamp if s.len() == 16 && s.as_bytes()[10] == b'T' => {
            json!(format!("{s}:00Z"))
        }
        _ => json!(s),
    })
}

/// The value a form input starts with.
pub fn input_value(f: &FieldDef, v: &Value) -> String {
    match (f.ty, v) {
        (_, Value::Null) => String::new(),
        (FieldType::Timestamp, Value::String(s)) => s.get(0..16).unwrap_or(s).to_owned(),
        (FieldType::Float, Value::Number(n)) if f.name == "probability" => {
            format!("{:.0}", n.as_f64().unwrap_or_default() * 100.0)
        }
        (_, Value::String(s)) => s.clone(),
        (_, other) => other.to_string(),
    }
}

/// The HTML input type for a field.
pub fn input_type(f: &FieldDef) -> &'static str {
    match f.ty {
        FieldType::Email => "email",
        FieldType::Int | FieldType::Id | FieldType::Ref(_) | FieldType::Float => "number",
        FieldType::Date => "date",
        FieldType::Timestamp => "datetime-local",
        _ => "text",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_path() {
        for k in Kind::ALL {
            assert_eq!(Kind::from_path(&format!("/{}/3/fields", k.path())), Some(k));
            for c in k.default_columns() {
                assert!(k.rt().def().field(c).is_some(), "{c}");
            }
        }
        assert_eq!(Kind::from_path("/api/v1"), None);
    }

    #[test]
    fn labels_of_fields() {
        assert_eq!(field_label("company_id"), "Company");
        assert_eq!(field_label("expected_close_date"), "Expected close date");
    }

    #[test]
    fn inputs_parse_by_type() {
        let deal = RecordType::Deal.def();
        assert_eq!(
            parse_input(deal.field("value").unwrap(), "12,500").unwrap(),
            json!(12500.0)
        );
        assert_eq!(
            parse_input(deal.field("probability").unwrap(), "40").unwrap(),
            json!(0.4)
        );
        assert_eq!(
            parse_input(deal.field("name").unwrap(), "  ").unwrap(),
            Value::Null
        );
        assert!(parse_input(deal.field("owner_id").unwrap(), "x").is_err());
    }
}
