//! The OpenAPI 3.1 document at `/api/openapi.json`, built from the code: the
//! hand-written endpoints describe themselves with `utoipa` attributes, and
//! the record endpoints are generated per record type from the same crm field
//! definitions the store validates with (through the tools' schema builders),
//! so the document and the server cannot drift apart.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rapport_crm::RecordType;
use rapport_crm::schema::FieldType;
use serde_json::{Map, Value, json};
use utoipa::OpenApi;

use crate::rest::{RECORDS, tool_name};
use crate::server::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Rapport API",
        description = "Rapport CRM over HTTP: records, tools, search, chat with the agent. Every request but health, metrics and this document needs `Authorization: Bearer rk_…` (`rapport keys create`). Errors are application/problem+json."
    ),
    paths(
        crate::ops::healthz,
        crate::ops::readyz,
        crate::ops::metrics,
        crate::rest::me,
        crate::rest::list_users,
        crate::rest::list_tools,
        crate::rest::call_tool,
        crate::rest::search,
        crate::rest::nba,
        crate::rest::models,
        crate::chat::create_session,
        crate::chat::list_sessions,
        crate::chat::session_history,
        crate::chat::send_message,
        crate::chat::decide,
    ),
    components(schemas(
        crate::problem::Problem,
        crate::ops::Health,
        crate::rest::Page,
        crate::rest::BulkItem,
        crate::rest::BulkResult,
        crate::rest::Me,
        crate::rest::ToolSummary,
        crate::chat::NewSession,
        crate::chat::NewMessage,
        crate::chat::DecisionBody,
        crate::chat::DecisionKind,
        crate::chat::SessionHistory,
    ))
)]
struct Doc;

/// Serves the OpenAPI document at `/api/openapi.json`.
pub fn routes() -> Router<AppState> {
    Router::new().route("/api/openapi.json", get(serve_doc))
}

async fn serve_doc(State(state): State<AppState>) -> Response {
    Json(document(&state)).into_response()
}

/// The whole document as JSON.
pub fn document(state: &AppState) -> Value {
    let mut doc = serde_json::to_value(Doc::openapi()).unwrap_or_else(|_| json!({}));
    doc["openapi"] = json!("3.1.0");
    doc["info"]["version"] = json!(env!("CARGO_PKG_VERSION"));
    let schemas = doc["components"]["schemas"]
        .as_object_mut()
        .map(std::mem::take)
        .unwrap_or_default();
    let mut schemas = schemas;
    let mut paths = doc["paths"].as_object().cloned().unwrap_or_default();
    for rt in RECORDS {
        let plural = rt.plural();
        record_schemas(state, rt, &mut schemas);
        record_paths(rt, plural, &mut paths);
    }
    doc["paths"] = Value::Object(paths);
    doc["components"]["schemas"] = Value::Object(schemas);
    doc["components"]["securitySchemes"] = json!({
        "api_key": {"type": "http", "scheme": "bearer", "description": "an API key from `rapport keys create`"}
    });
    doc["security"] = json!([{"api_key": []}]);
    common_errors(&mut doc);
    // Health, metrics and this document are open.
    for open in ["/healthz", "/readyz", "/metrics"] {
        if let Some(op) = doc["paths"][open]["get"].as_object_mut() {
            op.insert("security".into(), json!([]));
        }
    }
    doc
}

/// Answers every protected operation may give whatever it is: malformed
/// input, no or a revoked key, a body over the limit, the rate limit, a
/// timeout.
fn common_errors(doc: &mut Value) {
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        if !path.starts_with("/api/v1") {
            continue;
        }
        let Some(ops) = item.as_object_mut() else {
            continue;
        };
        for op in ops.values_mut() {
            let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
                continue;
            };
            for (code, what) in [
                ("400", "invalid input: `field` names what to fix"),
                ("401", "no key, or an unknown or revoked key"),
                ("404", "not found"),
                ("413", "the body is larger than the server accepts"),
                ("429", "rate limited: see Retry-After"),
                ("504", "the request took too long"),
            ] {
                responses.entry(code).or_insert_with(|| problem(what));
            }
        }
    }
}

/// `Company` (as returned), `CompanyCreate` and `CompanyPatch`.
fn record_schemas(state: &AppState, rt: RecordType, schemas: &mut Map<String, Value>) {
    let name = type_name(rt);
    let def = rt.def();
    let mut props = Map::new();
    for f in def.fields {
        let mut s = rapport_tools::schema::field(f);
        // Read back, a column may be empty even where a write requires it
        // (the schema of answers stays permissive about nulls of old rows).
        if !f.nullable && f.ty != FieldType::Id {
            s["type"] = json!([s["type"].clone(), "null"]);
            if let Some(values) = s.get_mut("enum").and_then(Value::as_array_mut) {
                values.push(Value::Null);
            }
        }
        props.insert(f.name.to_owned(), s);
    }
    if rt == RecordType::Deal {
        props.insert(
            "contact_ids".into(),
            json!({"type": "array", "items": {"type": "integer"}}),
        );
    }
    schemas.insert(
        name.clone(),
        json!({"type": "object", "properties": props, "required": ["id"], "additionalProperties": true}),
    );
    let input = |op: &str| {
        state
            .registry
            .get(&tool_name(op, rt))
            .map(|t| t.input_schema())
            .unwrap_or_else(|| json!({"type": "object"}))
    };
    schemas.insert(format!("{name}Create"), input("create"));
    let mut patch = input("update");
    // The id comes from the path.
    if let Some(req) = patch.get_mut("required").and_then(Value::as_array_mut) {
        req.retain(|r| r != "id");
    }
    schemas.insert(format!("{name}Patch"), patch.clone());
    let mut bulk_patch = patch;
    bulk_patch["required"] = json!(["id"]);
    schemas.insert(format!("{name}BulkPatch"), bulk_patch);
    schemas.insert(
        format!("{name}Page"),
        json!({"type": "object", "required": ["items", "next_cursor"], "properties": {
            "items": {"type": "array", "items": {"$ref": format!("#/components/schemas/{name}")}},
            "next_cursor": {"type": ["string", "null"]}
        }}),
    );
}

fn type_name(rt: RecordType) -> String {
    let n = rt.name();
    let mut c = n.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn json_content(schema: Value) -> Value {
    json!({"application/json": {"schema": schema}})
}

fn problem(description: &str) -> Value {
    json!({"description": description, "content": {"application/problem+json": {"schema": schema_ref("Problem")}}})
}

fn errors(codes: &[(&str, &str)]) -> Map<String, Value> {
    let mut m: Map<String, Value> = codes
        .iter()
        .map(|(c, d)| ((*c).to_owned(), problem(d)))
        .collect();
    m.insert(
        "401".into(),
        problem("no key, or an unknown or revoked key"),
    );
    m.insert("429".into(), problem("rate limited: see Retry-After"));
    m
}

fn op(id: String, summary: String, responses: Map<String, Value>) -> Value {
    json!({"operationId": id, "summary": summary, "tags": ["records"], "responses": responses})
}

fn id_param(rt: RecordType) -> Value {
    json!({"name": "id", "in": "path", "required": true, "description": format!("the {rt}'s id"), "schema": {"type": "integer", "format": "int64"}})
}

fn record_paths(rt: RecordType, plural: &str, paths: &mut Map<String, Value>) {
    let name = type_name(rt);
    let ok = |d: &str, s: Value| json!({"description": d, "content": json_content(s)});
    let bad = [("400", "invalid input: `field` names what to fix")];

    let mut list_r = errors(&bad);
    list_r.insert(
        "200".into(),
        ok("one page", schema_ref(&format!("{name}Page"))),
    );
    let mut list = op(
        format!("list_{plural}"),
        format!("List {plural} (typed filter, sort, cursor)"),
        list_r,
    );
    list["parameters"] = json!([
        {"name": "filter", "in": "query", "required": false, "description": "a typed filter as JSON: {\"field\":…,\"op\":…,\"value\":…} or {\"and\"|\"or\":[…]}", "schema": {"type": "string"}},
        {"name": "sort", "in": "query", "required": false, "description": "field to sort by; -field for descending", "schema": {"type": "string"}},
        {"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
        {"name": "cursor", "in": "query", "required": false, "schema": {"type": "string"}}
    ]);
    let mut create_r = errors(&[
        ("400", "invalid input: `field` names what to fix"),
        ("403", "the role may not create this"),
        ("404", "a referenced record does not exist"),
        ("409", "a unique value is taken"),
    ]);
    create_r.insert("201".into(), ok("created", schema_ref(&name)));
    let mut create = op(tool_name("create", rt), format!("Create a {rt}"), create_r);
    create["requestBody"] =
        json!({"required": true, "content": json_content(schema_ref(&format!("{name}Create")))});
    paths.insert(
        format!("/api/v1/{plural}"),
        json!({"get": list, "post": create}),
    );

    let item_errors = [
        ("400", "invalid input: `field` names what to fix"),
        ("403", "the role or ownership does not allow this"),
        ("404", "no such record in this workspace"),
        ("409", "conflict (unique value taken, still referenced)"),
    ];
    let mut get_r = errors(&[
        ("400", "invalid id"),
        ("404", "no such record in this workspace"),
    ]);
    get_r.insert("200".into(), ok("the record", schema_ref(&name)));
    let mut get = op(tool_name("get", rt), format!("Get a {rt}"), get_r);
    get["parameters"] = json!([id_param(rt)]);
    let mut patch_r = errors(&item_errors);
    patch_r.insert(
        "200".into(),
        ok("the record as it is now", schema_ref(&name)),
    );
    let mut patch = op(
        tool_name("update", rt),
        format!("Change fields of a {rt} (null clears)"),
        patch_r,
    );
    patch["parameters"] = json!([id_param(rt)]);
    patch["requestBody"] =
        json!({"required": true, "content": json_content(schema_ref(&format!("{name}Patch")))});
    let mut del_r = errors(&item_errors);
    del_r.insert("200".into(), ok("the record as it was", schema_ref(&name)));
    let mut del = op(
        tool_name("delete", rt),
        format!("Delete a {rt} (managers and admins)"),
        del_r,
    );
    del["parameters"] = json!([id_param(rt)]);
    paths.insert(
        format!("/api/v1/{plural}/{{id}}"),
        json!({"get": get, "patch": patch, "delete": del}),
    );

    let bulk_body = |item: String| {
        json!({"required": true, "content": json_content(json!({
            "type": "object", "required": ["items"], "additionalProperties": false,
            "properties": {"items": {"type": "array", "minItems": 1, "maxItems": crate::rest::MAX_BULK, "items": schema_ref(&item)}}
        }))})
    };
    let mut bulk_r = errors(&[("400", "not a list of 1 to 100 objects")]);
    bulk_r.insert(
        "200".into(),
        ok(
            "one result per item, in order; each item ran in its own transaction",
            schema_ref("BulkResult"),
        ),
    );
    let mut bulk_create = op(
        format!("bulk_create_{plural}"),
        format!("Create many {plural}"),
        bulk_r.clone(),
    );
    bulk_create["requestBody"] = bulk_body(format!("{name}Create"));
    let mut bulk_update = op(
        format!("bulk_update_{plural}"),
        format!("Change many {plural}"),
        bulk_r,
    );
    bulk_update["requestBody"] = bulk_body(format!("{name}BulkPatch"));
    paths.insert(
        format!("/api/v1/{plural}/bulk"),
        json!({"post": bulk_create, "patch": bulk_update}),
    );

    let mut hist_r = errors(&[
        ("400", "invalid id"),
        ("404", "no such record in this workspace"),
    ]);
    hist_r.insert(
        "200".into(),
        ok("audit entries, oldest first", json!({"type": "object", "required": ["items"], "properties": {"items": {"type": "array", "items": {"type": "object"}}}})),
    );
    let mut hist = op(
        format!("history_{}", rt.name()),
        format!("The audit history of a {rt}"),
        hist_r,
    );
    hist["parameters"] = json!([id_param(rt)]);
    paths.insert(
        format!("/api/v1/{plural}/{{id}}/history"),
        json!({"get": hist}),
    );
}
