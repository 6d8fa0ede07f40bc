//! Record tables: typed filters (field, operator, value; all or any), sort by
//! any column, chosen columns, cursor pages and a count; saved views; bulk
//! tag, reassign and delete.
//!
//! The table's whole state is its query string (`f`/`op`/`v` repeated per
//! filter, `match`, `sort`, `col` repeated, `cursor`), so a link, the back
//! button and a saved view all restore it. The filter is the crm crate's
//! typed [`Filter`], checked against the schema by the store: a bad field
//! or value comes back as a message on the page, never as SQL.

use axum::Form;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use rapport_crm::filter::Direction;
use rapport_crm::model::User;
use rapport_crm::schema::{FieldDef, FieldType};
use rapport_crm::{Filter, Id, ListQuery, Op, Sort};
use serde::Serialize;
use serde_json::{Value, json};

use crate::WebState;
use crate::auth::Signed;
use crate::error::WebError;
use crate::meta::{self, Kind, Labels};
use crate::render::{Page, query_string};

/// Rows per page.
pub const PAGE_SIZE: u32 = 50;
/// Filter rows a table form offers.
const FILTER_ROWS: usize = 3;

impl<S: Send + Sync> FromRequestParts<S> for Kind {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Kind, WebError> {
        Kind::from_path(parts.uri.path()).ok_or_else(|| WebError::NotFound("no such page".into()))
    }
}

/// The operators a filter row offers, with their labels.
pub const OPS: &[(&str, &str)] = &[
    ("contains", "contains"),
    ("eq", "is"),
    ("ne", "is not"),
    ("lt", "<"),
    ("lte", "≤"),
    ("gt", ">"),
    ("gte", "≥"),
    ("in", "is one of"),
    ("is_null", "is empty"),
];

fn parse_op(s: &str) -> Option<Op> {
    serde_json::from_value(Value::String(s.to_owned())).ok()
}

/// One filter row as the form sent it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FilterRow {
    pub field: String,
    pub op: String,
    pub value: String,
}

/// A table's state, read from its query string.
#[derive(Debug, Clone, Default)]
pub struct TableQuery {
    pub filters: Vec<FilterRow>,
    pub any: bool,
    /// A column, `-column` for descending.
    pub sort: Option<String>,
    pub columns: Vec<String>,
    pub cursor: Option<String>,
    pub view: Option<Id>,
    pub done: Option<String>,
    pub n: Option<usize>,
}

impl TableQuery {
    pub fn parse(pairs: &[(String, String)]) -> TableQuery {
        let mut q = TableQuery::default();
        let (mut fields, mut ops, mut values) = (Vec::new(), Vec::new(), Vec::new());
        for (k, v) in pairs {
            match k.as_str() {
                "f" => fields.push(v.clone()),
                "op" => ops.push(v.clone()),
                "v" => values.push(v.clone()),
                "match" => q.any = v == "any",
                "sort" if !v.trim().is_empty() => q.sort = Some(v.trim().to_owned()),
                "col" => q.columns.push(v.clone()),
                "cursor" if !v.is_empty() => q.cursor = Some(v.clone()),
                "view" => q.view = v.parse().ok(),
                "done" => q.done = Some(v.clone()),
                "n" => q.n = v.parse().ok(),
                _ => {}
            }
        }
        for (i, field) in fields.into_iter().enumerate() {
            if field.trim().is_empty() {
                continue;
            }
            q.filters.push(FilterRow {
                field: field.trim().to_owned(),
                op: ops.get(i).cloned().unwrap_or_else(|| "eq".into()),
                value: values.get(i).cloned().unwrap_or_default(),
            });
        }
        q
    }

    /// The query string of this state (without the cursor unless asked).
    pub fn pairs(&self, with_cursor: bool) -> Vec<(String, String)> {
        let mut p = Vec::new();
        for f in &self.filters {
            p.push(("f".into(), f.field.clone()));
            p.push(("op".into(), f.op.clone()));
            p.push(("v".into(), f.value.clone()));
        }
        if self.any {
            p.push(("match".into(), "any".into()));
        }
        if let Some(s) = &self.sort {
            p.push(("sort".into(), s.clone()));
        }
        for c in &self.columns {
            p.push(("col".into(), c.clone()));
        }
        if with_cursor && let Some(c) = &self.cursor {
            p.push(("cursor".into(), c.clone()));
        }
        p
    }

    /// The typed filter, values typed by their field.
    pub fn filter(&self, kind: Kind) -> Result<Option<Filter>, WebError> {
        let def = kind.rt().def();
        let mut conds = Vec::new();
        for row in &self.filters {
            let op = parse_op(&row.op)
                .ok_or_else(|| WebError::BadRequest(format!("unknown operator {:?}", row.op)))?;
            let field = def.field(&row.field);
            let typed = |s: &str| -> Result<Value, WebError> {
                match field {
                    Some(f)
                        if !matches!(
                            f.ty,
                            FieldType::Text | FieldType::Email | FieldType::Enum(_)
                        ) =>
                    {
                        meta::parse_input(f, s)
                    }
                    _ => Ok(json!(s.trim())),
                }
            };
            let value = match op {
                Op::IsNull => json!(!matches!(row.value.trim(), "false" | "no" | "0")),
                Op::In => Value::Array(
                    row.value
                        .split(',')
                        .filter(|s| !s.trim().is_empty())
                        .map(&typed)
                        .collect::<Result<_, _>>()?,
                ),
                Op::Contains => json!(row.value.trim()),
                _ => typed(&row.value)?,
            };
            conds.push(Filter::cond(row.field.clone(), op, value));
        }
        Ok(match conds.len() {
            0 => None,
            1 => conds.pop(),
            _ if self.any => Some(Filter::or(conds)),
            _ => Some(Filter::and(conds)),
        })
    }

    pub fn list_query(&self, kind: Kind) -> Result<ListQuery, WebError> {
        Ok(ListQuery {
            filter: self.filter(kind)?,
            sort: self.sort.as_deref().map(|s| match s.strip_prefix('-') {
                Some(f) => Sort {
                    field: f.to_owned(),
                    direction: Some(Direction::Desc),
                },
                None => Sort {
                    field: s.to_owned(),
                    direction: Some(Direction::Asc),
                },
            }),
            limit: Some(PAGE_SIZE),
            cursor: self.cursor.clone(),
        })
    }
}

#[derive(Serialize)]
struct Column {
    name: String,
    label: String,
    sort_href: String,
    /// `ascending`, `descending` or `none` (aria-sort).
    sorted: &'static str,
}

#[derive(Serialize)]
struct Choice {
    value: String,
    label: String,
    selected: bool,
}

#[derive(Serialize)]
struct Cell {
    text: String,
    href: Option<String>,
    /// The field, when the person may edit this cell in place.
    field: Option<&'static str>,
    label: String,
}

#[derive(Serialize)]
struct Row {
    id: Id,
    href: String,
    label: String,
    cells: Vec<Cell>,
}

#[derive(Serialize)]
struct ViewLink {
    id: Id,
    name: String,
    href: String,
    shared: bool,
    mine: bool,
    current: bool,
}

#[derive(Serialize)]
struct FilterForm {
    field: String,
    op: String,
    value: String,
    index: usize,
}

/// `GET /{kind}`: the table (or, for htmx, only its results).
pub async fn page(
    State(state): State<WebState>,
    who: Signed,
    kind: Kind,
    headers: axum::http::HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let q = TableQuery::parse(&pairs);
    let fragment = who.htmx
        && headers
            .get("HX-Target")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.ends_with("#results"));
    let mut page = Page::new(kind.plural_label(), &who, kind.path());
    let status = fill_table(&state, &who, kind, &q, &mut page).await?;
    let template = if fragment { "_rows.html" } else { "table.html" };
    Ok((status, page.render(&state, template)?).into_response())
}

async fn fill_table(
    state: &WebState,
    who: &Signed,
    kind: Kind,
    q: &TableQuery,
    page: &mut Page,
) -> Result<StatusCode, WebError> {
    let ctx = who.ctx();
    let def = kind.rt().def();
    let offered = meta::columns(kind);
    let chosen: Vec<&FieldDef> = if q.columns.is_empty() {
        kind.default_columns()
            .iter()
            .filter_map(|c| def.field(c))
            .collect()
    } else {
        q.columns.iter().filter_map(|c| def.field(c)).collect()
    };
    let base = format!("/{}", kind.path());
    let mut error = None;
    let mut status = StatusCode::OK;
    let (items, next_cursor, count) = match q.list_query(kind) {
        Ok(lq) => {
            let listed = state.store.list_dyn(&ctx, kind.rt(), &lq).await;
            let counted = state
                .store
                .count_dyn(&ctx, kind.rt(), lq.filter.as_ref())
                .await;
            match (listed, counted) {
                (Ok(p), Ok(n)) => (p.items, p.next_cursor, n),
                (Err(e), _) | (_, Err(e)) => {
                    let e = WebError::from(e);
                    if e.status().is_server_error() {
                        return Err(e);
                    }
                    error = Some(e.message());
                    status = StatusCode::UNPROCESSABLE_ENTITY;
                    (Vec::new(), None, 0)
                }
            }
        }
        Err(e) => {
            error = Some(e.message());
            status = StatusCode::UNPROCESSABLE_ENTITY;
            (Vec::new(), None, 0)
        }
    };
    let labels = Labels::load(&state.store, &ctx, &items, &chosen).await?;
    let title = kind.title_column();
    let rows: Vec<Row> = items
        .iter()
        .map(|r| {
            let id = r.get("id").and_then(Value::as_i64).unwrap_or_default();
            let href = format!("{base}/{id}");
            Row {
                id,
                label: meta::label(kind.rt(), r),
                cells: chosen
                    .iter()
                    .map(|f| {
                        let v = r.get(f.name).unwrap_or(&Value::Null);
                        let mut text = meta::display(f, v, &labels);
                        let link = match f.ty {
                            FieldType::Ref(rt) => v.as_i64().and_then(|id| meta::href(rt, id)),
                            _ if f.name == title => Some(href.clone()),
                            _ => None,
                        };
                        // A link always has a name: an activity without a
                        // subject links by its kind and first words.
                        if text.is_empty() && link.is_some() {
                            text = meta::label(kind.rt(), r);
                        }
                        let editable = who.can_write()
                            && f.writable
                            && !matches!(
                                f.ty,
                                FieldType::Json | FieldType::Ref(rapport_crm::RecordType::Pipeline)
                            );
                        Cell {
                            text,
                            href: link,
                            field: editable.then_some(f.name),
                            label: meta::field_label(f.name),
                        }
                    })
                    .collect(),
                href,
            }
        })
        .collect();
    let (sort_field, sort_desc) = match q.sort.as_deref() {
        Some(s) => match s.strip_prefix('-') {
            Some(f) => (f.to_owned(), true),
            None => (s.to_owned(), false),
        },
        None => ("id".to_owned(), false),
    };
    let columns: Vec<Column> = chosen
        .iter()
        .map(|f| {
            let mut next = q.clone();
            next.cursor = None;
            next.sort = Some(if sort_field == f.name && !sort_desc {
                format!("-{}", f.name)
            } else {
                f.name.to_owned()
            });
            Column {
                name: f.name.to_owned(),
                label: meta::field_label(f.name),
                sort_href: format!("{base}?{}", query_string(&next.pairs(false))),
                sorted: match (sort_field == f.name, sort_desc) {
                    (true, false) => "ascending",
                    (true, true) => "descending",
                    _ => "none",
                },
            }
        })
        .collect();
    let all_columns: Vec<Choice> = offered
        .iter()
        .map(|f| Choice {
            value: f.name.to_owned(),
            label: meta::field_label(f.name),
            selected: chosen.iter().any(|c| c.name == f.name),
        })
        .collect();
    let mut filters: Vec<FilterForm> = q
        .filters
        .iter()
        .enumerate()
        .map(|(index, f)| FilterForm {
            field: f.field.clone(),
            op: f.op.clone(),
            value: f.value.clone(),
            index,
        })
        .collect();
    while filters.len() < FILTER_ROWS.max(q.filters.len() + 1) {
        let index = filters.len();
        filters.push(FilterForm {
            field: String::new(),
            op: "contains".into(),
            value: String::new(),
            index,
        });
    }
    let next_href = next_cursor.map(|c| {
        let mut next = q.clone();
        next.cursor = Some(c);
        format!("{base}?{}", query_string(&next.pairs(true)))
    });
    let first_href = q
        .cursor
        .as_ref()
        .map(|_| format!("{base}?{}", query_string(&q.pairs(false))));
    let views = state
        .store
        .views(&ctx, kind.rt())
        .await?
        .into_iter()
        .map(|v| {
            let qs = v
                .query
                .get("qs")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let sep = if qs.is_empty() { "" } else { "&" };
            ViewLink {
                href: format!("{base}?{qs}{sep}view={}", v.id),
                mine: Some(v.user_id) == ctx.actor_id,
                current: q.view == Some(v.id),
                id: v.id,
                name: v.name,
                shared: v.shared,
            }
        })
        .collect::<Vec<_>>();
    let users: Vec<Choice> = if who.manages() {
        workspace_users(state, who)
            .await?
            .into_iter()
            .map(|u| Choice {
                value: u.id.to_string(),
                label: u.name,
                selected: false,
            })
            .collect()
    } else {
        Vec::new()
    };
    let notice = match (q.done.as_deref(), q.n) {
        (Some("tagged"), Some(n)) => Some(format!("Tagged {n} record(s).")),
        (Some("reassigned"), Some(n)) => Some(format!("Reassigned {n} record(s).")),
        (Some("deleted"), Some(n)) => Some(format!("Deleted {n} record(s).")),
        (Some("saved"), _) => Some("View saved.".to_owned()),
        (Some("view_deleted"), _) => Some("View deleted.".to_owned()),
        (Some("failed"), Some(n)) => Some(format!(
            "{n} record(s) could not be changed; see each record's page."
        )),
        _ => None,
    };
    let filter_fields: Vec<Choice> = offered
        .iter()
        .map(|f| Choice {
            value: f.name.to_owned(),
            label: meta::field_label(f.name),
            selected: false,
        })
        .collect();
    let ops: Vec<Choice> = OPS
        .iter()
        .map(|(v, l)| Choice {
            value: (*v).to_owned(),
            label: (*l).to_owned(),
            selected: false,
        })
        .collect();
    page.insert("kind", kind.path())
        .insert("kind_label", kind.label())
        .insert("plural_label", kind.plural_label())
        .insert("base", &base)
        .insert("columns", &columns)
        .insert("all_columns", &all_columns)
        .insert("rows", &rows)
        .insert("count", &crate::render::money(count as f64))
        .insert("shown", &rows.len())
        .insert("next_href", &next_href)
        .insert("first_href", &first_href)
        .insert("filters", &filters)
        .insert("filter_fields", &filter_fields)
        .insert("ops", &ops)
        .insert("match_any", &q.any)
        .insert("sort", &q.sort.clone().unwrap_or_default())
        .insert("views", &views)
        .insert("current_qs", &query_string(&q.pairs(false)))
        .insert(
            "return_to",
            &format!("{base}?{}", query_string(&q.pairs(true))),
        )
        .insert("users", &users)
        .insert("taggable", &kind.rt().taggable())
        .insert("notice", &notice)
        .insert("error", &error);
    Ok(status)
}

/// The workspace's users (for owner menus), by name.
pub async fn workspace_users(state: &WebState, who: &Signed) -> Result<Vec<User>, WebError> {
    let q = ListQuery::default()
        .sorted("name", Direction::Asc)
        .limit(500);
    Ok(state.store.list::<User>(&who.ctx(), &q).await?.items)
}

/// A path back into this table from a form, or the table itself.
fn back_to(kind: Kind, raw: Option<&str>) -> String {
    let base = format!("/{}", kind.path());
    match raw {
        Some(r) if r == base || r.starts_with(&format!("{base}?")) => r.to_owned(),
        _ => base,
    }
}

fn with_notice(back: &str, done: &str, n: usize) -> String {
    let sep = if back.contains('?') { "&" } else { "?" };
    format!("{back}{sep}done={done}&n={n}")
}

/// `POST /{kind}/views`: saves the table's current state under a name.
pub async fn save_view(
    State(state): State<WebState>,
    who: Signed,
    kind: Kind,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let get = |k: &str| {
        form.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let name = get("name").unwrap_or_default();
    let shared = get("shared").is_some_and(|v| v == "on" || v == "true");
    // Re-read and re-write the state so only table parameters are kept.
    let qs = get("qs").unwrap_or_default();
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(qs).unwrap_or_default();
    let state_qs = query_string(&TableQuery::parse(&pairs).pairs(false));
    let view = state
        .store
        .save_view(
            &who.ctx(),
            kind.rt(),
            name,
            shared,
            &json!({"qs": state_qs}),
        )
        .await?;
    let sep = if state_qs.is_empty() { "" } else { "&" };
    Ok(Redirect::to(&format!(
        "/{}?{state_qs}{sep}view={}&done=saved",
        kind.path(),
        view.id
    ))
    .into_response())
}

/// `POST /{kind}/views/{id}/delete`.
pub async fn delete_view(
    State(state): State<WebState>,
    who: Signed,
    kind: Kind,
    Path(id): Path<Id>,
) -> Result<Response, WebError> {
    state.store.delete_view(&who.ctx(), id).await?;
    Ok(Redirect::to(&format!("/{}?done=view_deleted", kind.path())).into_response())
}

/// `POST /{kind}/bulk`: tag, reassign or delete the selected records, one
/// tool call (one transaction, one audit entry) per record. A delete first
/// answers with a confirmation page.
pub async fn bulk(
    State(state): State<WebState>,
    who: Signed,
    kind: Kind,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let get = |k: &str| form.iter().find(|(key, _)| key == k).map(|(_, v)| v.trim());
    let ids: Vec<Id> = form
        .iter()
        .filter(|(k, _)| k == "ids")
        .filter_map(|(_, v)| v.parse().ok())
        .collect();
    let back = back_to(kind, get("return_to"));
    if ids.is_empty() {
        return Err(WebError::BadRequest(
            "select at least one record first".into(),
        ));
    }
    if ids.len() > 500 {
        return Err(WebError::BadRequest(
            "select at most 500 records at once".into(),
        ));
    }
    let rt = kind.rt();
    let action = get("action").unwrap_or_default();
    let calls: Vec<(String, Value)> = match action {
        "tag" => {
            let tag = get("tag").unwrap_or_default();
            if tag.is_empty() {
                return Err(WebError::BadRequest("type the tag to add".into()));
            }
            ids.iter()
                .map(|id| {
                    (
                        "add_tag".to_owned(),
                        json!({"record_type": rt.name(), "id": id, "tag": tag}),
                    )
                })
                .collect()
        }
        "reassign" => {
            let owner: Id = get("owner_id")
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| WebError::BadRequest("choose the new owner".into()))?;
            ids.iter()
                .map(|id| {
                    (
                        "reassign_owner".to_owned(),
                        json!({"record_type": rt.name(), "id": id, "owner_id": owner}),
                    )
                })
                .collect()
        }
        "delete" => {
            if get("confirmed") != Some("yes") {
                return confirm_delete(&state, &who, kind, &ids, &back).await;
            }
            ids.iter()
                .map(|id| (format!("delete_{}", rt.name()), json!({"id": id})))
                .collect()
        }
        other => {
            return Err(WebError::BadRequest(format!(
                "unknown bulk action {other:?}: tag, reassign or delete"
            )));
        }
    };
    let mut done = 0;
    let mut first_error = None;
    for (tool, args) in calls {
        match state
            .registry
            .call(&state.store, &who.caller, &tool, args)
            .await
        {
            Ok(_) => done += 1,
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if done == 0
        && let Some(e) = first_error
    {
        return Err(e.into());
    }
    let code = match action {
        "tag" => "tagged",
        "reassign" => "reassigned",
        _ => "deleted",
    };
    let failed = ids.len() - done;
    let to = if failed > 0 {
        with_notice(&back, "failed", failed)
    } else {
        with_notice(&back, code, done)
    };
    Ok(Redirect::to(&to).into_response())
}

#[derive(Serialize)]
struct Doomed {
    id: Id,
    label: String,
}

async fn confirm_delete(
    state: &WebState,
    who: &Signed,
    kind: Kind,
    ids: &[Id],
    back: &str,
) -> Result<Response, WebError> {
    let mut labels = Labels::default();
    labels
        .add(&state.store, &who.ctx(), kind.rt(), ids.to_vec())
        .await?;
    let doomed: Vec<Doomed> = ids
        .iter()
        .filter_map(|id| {
            labels.get(kind.rt(), *id).map(|l| Doomed {
                id: *id,
                label: l.to_owned(),
            })
        })
        .collect();
    if doomed.is_empty() {
        return Err(WebError::NotFound(
            "none of the selected records exist".into(),
        ));
    }
    let mut page = Page::new("Confirm delete", who, kind.path());
    page.insert("kind", kind.path())
        .insert("plural_label", kind.plural_label())
        .insert("doomed", &doomed)
        .insert("return_to", back);
    Ok(page.render(state, "confirm.html")?.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(s: &str) -> Vec<(String, String)> {
        serde_urlencoded::from_str(s).unwrap()
    }

    #[test]
    fn a_query_string_round_trips() {
        let q = TableQuery::parse(&pairs(
            "f=name&op=contains&v=acme&f=&op=eq&v=&f=employees&op=gte&v=100&match=any&sort=-name&col=name&col=domain&cursor=abc",
        ));
        assert_eq!(q.filters.len(), 2);
        assert!(q.any);
        assert_eq!(q.sort.as_deref(), Some("-name"));
        assert_eq!(q.columns, ["name", "domain"]);
        let again = TableQuery::parse(&q.pairs(true));
        assert_eq!(again.filters, q.filters);
        assert_eq!(again.cursor.as_deref(), Some("abc"));
    }

    #[test]
    fn filter_values_are_typed_by_field() {
        let q = TableQuery::parse(&pairs("f=employees&op=gte&v=100&f=name&op=contains&v=ac"));
        let f = q.filter(Kind::Company).unwrap().unwrap();
        assert_eq!(
            serde_json::to_value(&f).unwrap(),
            json!({"and": [
                {"field": "employees", "op": "gte", "value": 100},
                {"field": "name", "op": "contains", "value": "ac"}
            ]})
        );
        let q = TableQuery::parse(&pairs("f=owner_id&op=in&v=1,2"));
        assert_eq!(
            serde_json::to_value(q.filter(Kind::Deal).unwrap().unwrap()).unwrap(),
            json!({"field": "owner_id", "op": "in", "value": [1, 2]})
        );
        let q = TableQuery::parse(&pairs("f=employees&op=gte&v=lots"));
        assert!(q.filter(Kind::Company).is_err());
    }
}
