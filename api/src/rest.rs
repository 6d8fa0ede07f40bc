//! REST under `/api/v1`: records of every type, any tool by name, search,
//! next-best actions, the model registry and a record's audit history.
//!
//! Writes go through the tool registry (`create_company`, `update_deal`, …),
//! so permissions, validation, the one transaction and the audit entry are the
//! tools' own, exactly as for the agent, the CLI and MCP. Reads of records
//! (get, list, history) go straight to the store with the same typed filters,
//! sort and cursors as `list_X`: every role may read its workspace, and a read
//! should not cost a write (the tool path audits reads).

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rapport_crm::filter::Direction;
use rapport_crm::model::{AuditEntry, User};
use rapport_crm::{Filter, Id, ListQuery, ModelVersion, RecordMap, RecordType, Sort};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Auth;
use crate::problem::Problem;
use crate::server::AppState;

/// The record types with REST endpoints (those with record tools); the path
/// segment is the plural.
pub const RECORDS: [RecordType; 8] = rapport_tools::records::TYPES;

/// Most items of one bulk request.
pub const MAX_BULK: usize = 100;

type ApiResult<T = Response> = Result<T, Problem>;

/// The REST routes under `/api/v1`: records, bulk writes, tools, search,
/// next-best actions and models.
pub fn routes() -> Router<AppState> {
    let mut r = Router::new()
        .route("/api/v1/me", get(me))
        .route("/api/v1/users", get(list_users))
        .route("/api/v1/tools", get(list_tools))
        .route("/api/v1/tools/{name}", post(call_tool))
        .route("/api/v1/search", get(search))
        .route("/api/v1/nba", get(nba))
        .route("/api/v1/models", get(models));
    for rt in RECORDS {
        let plural = rt.plural();
        r = r
            .route(
                &format!("/api/v1/{plural}"),
                get(move |s: State<AppState>, a: Auth, q: Query<ListParams>| list(rt, s, a, q))
                    .post(move |s: State<AppState>, a: Auth, b: Bytes| create(rt, s, a, b)),
            )
            .route(
                &format!("/api/v1/{plural}/bulk"),
                post(move |s: State<AppState>, a: Auth, b: Bytes| bulk(rt, Bulk::Create, s, a, b))
                    .patch(move |s: State<AppState>, a: Auth, b: Bytes| {
                        bulk(rt, Bulk::Update, s, a, b)
                    }),
            )
            .route(
                &format!("/api/v1/{plural}/{{id}}"),
                get(move |s: State<AppState>, a: Auth, id: Path<Id>| read(rt, s, a, id))
                    .patch(move |s: State<AppState>, a: Auth, id: Path<Id>, b: Bytes| {
                        update(rt, s, a, id, b)
                    })
                    .delete(move |s: State<AppState>, a: Auth, id: Path<Id>| remove(rt, s, a, id)),
            )
            .route(
                &format!("/api/v1/{plural}/{{id}}/history"),
                get(move |s: State<AppState>, a: Auth, id: Path<Id>| history(rt, s, a, id)),
            );
    }
    r
}

/// The name of a record tool: `create_company`, `list_companies`, …
pub fn tool_name(op: &str, rt: RecordType) -> String {
    format!("{op}_{}", rt.name())
}

/// A JSON body, or a 400 that says what is wrong with it. An empty body is
/// `null`.
pub fn json_body(body: &Bytes) -> ApiResult<Value> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(body).map_err(|e| {
        Problem::bad_request("body", format!("the body is not valid JSON: {e}"))
            .with_hint("send a JSON object with Content-Type: application/json")
    })
}

fn object_body(body: &Bytes) -> ApiResult<Map<String, Value>> {
    match json_body(body)? {
        Value::Object(o) => Ok(o),
        other => Err(Problem::bad_request(
            "body",
            format!(
                "expected a JSON object of field names to values, got {}",
                kind(&other)
            ),
        )),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Calls a tool as the request's user: the registry's one path.
async fn call(state: &AppState, auth: &Auth, name: &str, args: Value) -> ApiResult<Value> {
    Ok(state
        .registry
        .call(&state.store, &auth.caller, name, args)
        .await?)
}

/// How a list is asked for in a query string.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// A typed filter as JSON: `{"field":"value","op":"gte","value":1000}`,
    /// operators eq ne lt lte gt gte in contains is_null, nested
    /// `{"and":[…]}` / `{"or":[…]}`.
    pub filter: Option<String>,
    /// A field to sort by; `-field` sorts descending. Default: `id`.
    pub sort: Option<String>,
    /// Page size, 1–500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl ListParams {
    /// The store's query; a filter that is not valid JSON of the typed filter
    /// is a 400 naming `filter`.
    pub fn query(self) -> ApiResult<ListQuery> {
        let filter = match self.filter.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => Some(serde_json::from_str::<Filter>(text).map_err(|e| {
                Problem::bad_request(
                    "filter",
                    format!("the filter is not a valid typed filter: {e}"),
                )
                .with_hint(r#"e.g. filter={"field":"name","op":"contains","value":"acme"}"#)
            })?),
        };
        let sort = self
            .sort
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| match s.strip_prefix('-') {
                Some(field) => Sort {
                    field: field.to_owned(),
                    direction: Some(Direction::Desc),
                },
                None => Sort {
                    field: s.to_owned(),
                    direction: Some(Direction::Asc),
                },
            });
        Ok(ListQuery {
            filter,
            sort,
            limit: self.limit,
            cursor: self.cursor,
        })
    }
}

/// One page of records; pass `next_cursor` back as `cursor` for the next.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page {
    /// The records of this page, in the requested order.
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<RecordMap>,
    /// Cursor of the next page; absent on the last.
    pub next_cursor: Option<String>,
}

async fn list(
    rt: RecordType,
    State(state): State<AppState>,
    auth: Auth,
    Query(params): Query<ListParams>,
) -> ApiResult {
    let q = params.query()?;
    let page = state.store.list_dyn(&auth.caller.ctx(), rt, &q).await?;
    Ok(Json(Page {
        items: page.items,
        next_cursor: page.next_cursor,
    })
    .into_response())
}

async fn read(
    rt: RecordType,
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Id>,
) -> ApiResult {
    let record = state.store.get_dyn(&auth.caller.ctx(), rt, id).await?;
    Ok(Json(record).into_response())
}

async fn create(
    rt: RecordType,
    State(state): State<AppState>,
    auth: Auth,
    body: Bytes,
) -> ApiResult {
    let fields = object_body(&body)?;
    let record = call(
        &state,
        &auth,
        &tool_name("create", rt),
        Value::Object(fields),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(record)).into_response())
}

/// The patch with the path's id; an id in the body must agree.
fn patch_with_id(mut patch: Map<String, Value>, id: Id) -> ApiResult<Value> {
    match patch.get("id") {
        Some(v) if v.as_i64() != Some(id) => {
            return Err(Problem::bad_request(
                "id",
                format!("the body's id {v} differs from the path's id {id}"),
            ));
        }
        _ => {}
    }
    patch.insert("id".into(), json!(id));
    Ok(Value::Object(patch))
}

async fn update(
    rt: RecordType,
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Id>,
    body: Bytes,
) -> ApiResult {
    let patch = patch_with_id(object_body(&body)?, id)?;
    let record = call(&state, &auth, &tool_name("update", rt), patch).await?;
    Ok(Json(record).into_response())
}

async fn remove(
    rt: RecordType,
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Id>,
) -> ApiResult {
    let record = call(&state, &auth, &tool_name("delete", rt), json!({"id": id})).await?;
    Ok(Json(record).into_response())
}

async fn history(
    rt: RecordType,
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Id>,
) -> ApiResult {
    let ctx = auth.caller.ctx();
    // A record of another workspace (or none) is a 404, not an empty history.
    state.store.get_dyn(&ctx, rt, id).await?;
    let entries: Vec<AuditEntry> = state.store.history(&ctx, rt, id).await?;
    Ok(Json(json!({"items": entries})).into_response())
}

#[derive(Debug, Clone, Copy)]
enum Bulk {
    Create,
    Update,
}

/// The outcome of one item of a bulk request.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkItem {
    /// The item's position in the request.
    pub index: usize,
    /// The status this item alone would have had.
    pub status: u16,
    /// The record as written, when the item succeeded.
    #[schema(value_type = Option<Object>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<Value>,
    /// Why the item failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Problem>,
}

/// The outcome of a bulk request: counts, and one result per item in request order.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkResult {
    /// Items written.
    pub succeeded: usize,
    /// Items refused; nothing of them was written.
    pub failed: usize,
    /// One per item, in request order.
    pub results: Vec<BulkItem>,
}

/// Each item is its own tool call in its own transaction: one bad item fails
/// alone, with its own problem, and the others are kept.
async fn bulk(
    rt: RecordType,
    op: Bulk,
    State(state): State<AppState>,
    auth: Auth,
    body: Bytes,
) -> ApiResult {
    let mut body = object_body(&body)?;
    let items = match body.remove("items") {
        Some(Value::Array(items)) => items,
        _ => {
            return Err(Problem::bad_request(
                "items",
                "expected {\"items\": [ … ]} with one object per record",
            ));
        }
    };
    if let Some(k) = body.keys().next() {
        return Err(Problem::bad_request(
            k,
            format!("unknown field `{k}`: only `items` is accepted"),
        ));
    }
    if items.is_empty() || items.len() > MAX_BULK {
        return Err(Problem::bad_request(
            "items",
            format!("send 1 to {MAX_BULK} items, not {}", items.len()),
        ));
    }
    let mut results = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let outcome = bulk_item(&state, &auth, rt, op, item).await;
        results.push(match outcome {
            Ok(record) => BulkItem {
                index,
                status: match op {
                    Bulk::Create => 201,
                    Bulk::Update => 200,
                },
                record: Some(record),
                error: None,
            },
            Err(p) => BulkItem {
                index,
                status: p.status,
                record: None,
                error: Some(p.with_field_prefix(&format!("items[{index}]"))),
            },
        });
    }
    let failed = results.iter().filter(|r| r.error.is_some()).count();
    Ok(Json(BulkResult {
        succeeded: results.len() - failed,
        failed,
        results,
    })
    .into_response())
}

async fn bulk_item(
    state: &AppState,
    auth: &Auth,
    rt: RecordType,
    op: Bulk,
    item: Value,
) -> ApiResult<Value> {
    let Value::Object(fields) = item else {
        return Err(Problem::bad_request(
            "",
            format!("expected an object, got {}", kind(&item)),
        ));
    };
    match op {
        Bulk::Create => call(state, auth, &tool_name("create", rt), Value::Object(fields)).await,
        Bulk::Update => {
            let id = fields.get("id").and_then(Value::as_i64).ok_or_else(|| {
                Problem::bad_request(
                    "id",
                    "each item needs the integer id of the record to change",
                )
            })?;
            call(
                state,
                auth,
                &tool_name("update", rt),
                patch_with_id(fields, id)?,
            )
            .await
        }
    }
}

impl Problem {
    /// Names the field inside a bulk item (`items[3].email`).
    fn with_field_prefix(mut self, prefix: &str) -> Problem {
        self.field = Some(match self.field.take() {
            Some(f) if !f.is_empty() => format!("{prefix}.{f}"),
            _ => prefix.to_owned(),
        });
        self
    }
}

/// The key's user.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// The user the key acts as.
    #[schema(value_type = Object)]
    pub user: User,
    /// The id of the API key used.
    pub key_id: Id,
}

/// The user the request's API key acts as.
#[utoipa::path(get, path = "/api/v1/me", tag = "auth", security(("api_key" = [])),
    responses((status = 200, description = "the user this key acts as", body = Me)))]
pub async fn me(auth: Auth) -> Json<Me> {
    Json(Me {
        user: auth.user,
        key_id: auth.key_id,
    })
}

/// The workspace's users, filtered, sorted and paged like any record list.
#[utoipa::path(get, path = "/api/v1/users", tag = "records", security(("api_key" = [])), params(ListParams),
    responses((status = 200, description = "the workspace's users", body = Page)))]
pub async fn list_users(state: State<AppState>, auth: Auth, q: Query<ListParams>) -> ApiResult {
    list(RecordType::User, state, auth, q).await
}

/// One tool as `GET /api/v1/tools` lists it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ToolSummary {
    /// The name to call it by (`POST /api/v1/tools/{name}`).
    pub name: String,
    /// What the tool does, when to use it and what it returns.
    pub description: String,
    /// read, write or destructive
    pub effect: String,
    /// JSON Schema of the arguments (strict: closed objects, required listed).
    #[schema(value_type = Object)]
    pub input_schema: Value,
}

/// Every tool with its input schema, by name.
#[utoipa::path(get, path = "/api/v1/tools", tag = "tools", security(("api_key" = [])),
    responses((status = 200, description = "every tool with its input schema", body = Vec<ToolSummary>)))]
pub async fn list_tools(State(state): State<AppState>, _auth: Auth) -> Json<Vec<ToolSummary>> {
    Json(
        state
            .registry
            .list()
            .into_iter()
            .map(|t| ToolSummary {
                name: t.name.to_owned(),
                description: t.description,
                effect: t.effect.as_str().to_owned(),
                input_schema: t.input_schema,
            })
            .collect(),
    )
}

/// Calls any tool with its JSON arguments as the key's user: the tool's own
/// permission check, transaction and audit entry.
#[utoipa::path(post, path = "/api/v1/tools/{name}", tag = "tools", security(("api_key" = [])),
    params(("name" = String, Path, description = "a tool name from GET /api/v1/tools")),
    request_body(content = Object, description = "the tool's arguments (see its input schema)"),
    responses((status = 200, description = "the tool's result", body = Object),
              (status = 400, description = "bad arguments", body = Problem, content_type = "application/problem+json"),
              (status = 403, description = "the role may not call this tool", body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "no such tool or record", body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "conflict, ambiguous reference or not available", body = Problem, content_type = "application/problem+json")))]
pub async fn call_tool(
    State(state): State<AppState>,
    auth: Auth,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    let args = json_body(&body)?;
    Ok(Json(call(&state, &auth, &name, args).await?).into_response())
}

/// Search parameters: those of the `search_interactions` tool.
#[derive(Debug, Deserialize, Serialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// What to look for, in plain words.
    pub query: String,
    /// Only interactions linked to this company.
    pub company_id: Option<Id>,
    /// Only interactions with this contact.
    pub contact_id: Option<Id>,
    /// Only interactions linked to this deal.
    pub deal_id: Option<Id>,
    /// email, call, meeting or note
    pub kind: Option<String>,
    /// Only interactions this user owns.
    pub owner_id: Option<Id>,
    /// At or after (RFC 3339).
    pub since: Option<String>,
    /// Before (RFC 3339).
    pub until: Option<String>,
    /// At most this many interactions, 1–50 (default 10).
    #[param(minimum = 1, maximum = 50)]
    pub limit: Option<u32>,
}

/// Semantic and keyword search over what was written and said, through the
/// `search_interactions` tool; 409 when semantic search is not set up.
#[utoipa::path(get, path = "/api/v1/search", tag = "search", security(("api_key" = [])), params(SearchParams),
    responses((status = 200, description = "the best interactions with citations", body = Object),
              (status = 409, description = "semantic search is not set up", body = Problem, content_type = "application/problem+json")))]
pub async fn search(
    State(state): State<AppState>,
    auth: Auth,
    Query(params): Query<SearchParams>,
) -> ApiResult {
    let mut args = serde_json::to_value(params).map_err(|e| Problem::internal(e.to_string()))?;
    if let Value::Object(o) = &mut args {
        o.retain(|_, v| !v.is_null());
    }
    Ok(Json(call(&state, &auth, "search_interactions", args).await?).into_response())
}

/// Ranked next-best actions, from the `next_best_actions` tool; the query
/// parameters are its arguments (numbers and booleans parsed as such).
#[utoipa::path(get, path = "/api/v1/nba", tag = "search", security(("api_key" = [])),
    responses((status = 200, description = "ranked actions with reasons", body = Object),
              (status = 404, description = "no next-best-action tool in this build", body = Problem, content_type = "application/problem+json")))]
pub async fn nba(
    State(state): State<AppState>,
    auth: Auth,
    Query(params): Query<std::collections::BTreeMap<String, String>>,
) -> ApiResult {
    let args: Map<String, Value> = params
        .into_iter()
        .map(|(k, v)| {
            let parsed = match serde_json::from_str::<Value>(&v) {
                Ok(n @ (Value::Number(_) | Value::Bool(_))) => n,
                _ => Value::String(v),
            };
            (k, parsed)
        })
        .collect();
    Ok(Json(call(&state, &auth, "next_best_actions", Value::Object(args)).await?).into_response())
}

/// Query parameters of `GET /api/v1/models`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ModelParams {
    /// Only this task (e.g. `lead_score`, `churn`).
    pub task: Option<String>,
}

/// The model registry's versions (lead score, churn, ...), oldest first.
#[utoipa::path(get, path = "/api/v1/models", tag = "models", security(("api_key" = [])), params(ModelParams),
    responses((status = 200, description = "the registry's model versions, oldest first", body = Object)))]
pub async fn models(
    State(state): State<AppState>,
    auth: Auth,
    Query(p): Query<ModelParams>,
) -> ApiResult {
    let versions: Vec<ModelVersion> = state
        .store
        .model_versions(&auth.caller.ctx(), p.task.as_deref())
        .await?;
    Ok(Json(json!({"items": versions})).into_response())
}
