//! Registry-wide checks that need no database: names, descriptions, schemas.

use rapport_tools::{Effect, Registry};
use serde_json::{Value, json};

fn walk_objects<'a>(v: &'a Value, path: String, out: &mut Vec<(String, &'a Value)>) {
    match v {
        Value::Object(o) => {
            if o.get("type").is_some_and(|t| {
                t == "object" || t.as_array().is_some_and(|a| a.contains(&json!("object")))
            }) {
                out.push((path.clone(), v));
            }
            for (k, child) in o {
                walk_objects(child, format!("{path}/{k}"), out);
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                walk_objects(child, format!("{path}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn every_tool_has_a_strict_valid_schema_and_its_example_round_trips() {
    let tools = Registry::new();
    let mut n = 0;
    for t in tools.tools() {
        n += 1;
        let name = t.name();
        assert!(
            name.chars().all(|c| c.is_ascii_lowercase() || c == '_') && name.len() <= 64,
            "{name}"
        );
        let d = t.description();
        assert!(
            d.len() >= 40 && d.ends_with('.'),
            "{name}: description {d:?}"
        );

        let schema = t.input_schema();
        assert!(
            jsonschema::meta::is_valid(&schema),
            "{name}: not a valid JSON Schema: {schema}"
        );
        assert_eq!(schema["type"], "object", "{name}");
        assert_eq!(schema["additionalProperties"], false, "{name}");
        assert!(
            schema["required"].is_array(),
            "{name}: required must be explicit"
        );
        let mut objects = Vec::new();
        walk_objects(&schema, String::new(), &mut objects);
        for (path, o) in objects {
            let free_form = path.ends_with("/custom");
            assert!(
                o.get("additionalProperties") == Some(&json!(false)) || free_form,
                "{name}: object at {path:?} is open: {o}"
            );
            assert!(
                o["required"].is_array(),
                "{name}: object at {path:?} lacks required"
            );
        }
        let validator = jsonschema::validator_for(&schema)
            .unwrap_or_else(|e| panic!("{name}: schema does not compile: {e}"));

        let example = t.example();
        assert!(
            validator.is_valid(&example),
            "{name}: example {example} does not match its schema: {:?}",
            validator
                .iter_errors(&example)
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
        );
        t.validate_args(&example)
            .unwrap_or_else(|e| panic!("{name}: example does not parse as Args: {e:?}"));

        // The schema and the Args type agree on refusing unknown fields.
        let mut extra = example.clone();
        extra["not_a_field"] = json!(1);
        assert!(
            !validator.is_valid(&extra),
            "{name}: schema accepts unknown fields"
        );
        let err = t.validate_args(&extra);
        if !name.starts_with("create_") && !name.starts_with("update_") {
            let err = err.expect_err(name);
            assert_eq!(err.field.as_deref(), Some("not_a_field"), "{name}: {err:?}");
        }
        // Every required property is really required by the Args type.
        for req in schema["required"].as_array().unwrap() {
            let key = req.as_str().unwrap();
            let mut missing = example.clone();
            missing.as_object_mut().unwrap().remove(key);
            assert!(!validator.is_valid(&missing), "{name}: {key}");
            if !name.starts_with("create_") && !name.starts_with("update_") {
                let err = t.validate_args(&missing).expect_err(name);
                assert_eq!(err.field.as_deref(), Some(key), "{name}: {err:?}");
            }
        }
        let _ = t.output_schema();
    }
    assert!(n >= 40, "only {n} tools");
}

#[test]
fn effects_and_roles_fit_together() {
    let tools = Registry::new();
    for t in tools.tools() {
        let roles = t.roles();
        match t.effect() {
            Effect::Read => assert_eq!(roles.len(), 4, "{}", t.name()),
            Effect::Write => assert!(
                !roles.contains(&rapport_crm::model::Role::Viewer),
                "{}",
                t.name()
            ),
            Effect::Destructive => assert!(
                roles
                    .iter()
                    .all(|r| *r >= rapport_crm::model::Role::Manager),
                "{}",
                t.name()
            ),
        }
        if t.name().starts_with("delete_") {
            assert_eq!(t.effect(), Effect::Destructive, "{}", t.name());
        }
    }
}

#[test]
fn markdown_lists_every_tool_once() {
    let tools = Registry::new();
    let md = tools.markdown();
    for t in tools.tools() {
        assert_eq!(
            md.matches(&format!("| `{}` |", t.name())).count(),
            1,
            "{}",
            t.name()
        );
    }
}

#[tokio::test]
async fn bench_reports_ratios_to_the_bare_calls() {
    let db = rapport_crm::testing::TestDb::sqlite().await;
    let params = rapport_tools::bench::BenchParams {
        rows: 50,
        iterations: 5,
    };
    let r = rapport_tools::bench::run(&db.store, &params).await.unwrap();
    for op in ["get_contact", "list_contacts", "update_contact"] {
        assert!(r[op]["ratio_p50"].as_f64().unwrap() > 0.0, "{r}");
        assert_eq!(r[op]["tool"]["n"], 5);
    }
    db.cleanup().await;
}

/// The tool list of docs/tools.md is generated from the registry; this keeps it honest.
#[test]
fn docs_tools_page_lists_exactly_the_registered_tools() {
    let page = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/tools.md"))
        .expect("docs/tools.md");
    let begin = page
        .find("<!-- tools:begin -->\n")
        .expect("tools:begin marker")
        + "<!-- tools:begin -->\n".len();
    let end = page.find("<!-- tools:end -->").expect("tools:end marker");
    assert_eq!(
        &page[begin..end],
        Registry::new().markdown(),
        "docs/tools.md's tool list is stale: paste the output of `rapport tool list --markdown` between the markers"
    );
}

#[test]
fn list_filters_pair_each_field_with_the_values_it_takes() {
    let tools = Registry::new();
    let validator = |tool: &str| {
        let schema = tools.get(tool).unwrap().input_schema();
        jsonschema::validator_for(&schema).unwrap()
    };
    let cond = |field: &str, op: &str, value: Value| json!({"filter": {"field": field, "op": op, "value": value}});
    let tasks = validator("list_tasks");
    for ok in [
        cond("status", "eq", json!("open")),
        cond("status", "in", json!(["open", "done"])),
        cond("due_at", "lt", json!("2026-11-21")),
        cond("assignee_id", "eq", json!(3)),
        cond("description", "is_null", json!(true)),
        cond("custom.tier", "eq", json!("gold")),
        json!({"filter": {"and": [{"field": "status", "op": "eq", "value": "open"}, {"field": "priority", "op": "eq", "value": "high"}]}}),
    ] {
        assert!(tasks.is_valid(&ok), "{ok}");
    }
    for bad in [
        // Seen from the 0.5B model: a status tasks do not have, an id as text.
        cond("status", "eq", json!("pending")),
        cond("assignee_id", "eq", json!("3")),
        cond("priority", "eq", json!("someday")),
        cond("label", "eq", json!("x")),
    ] {
        assert!(!tasks.is_valid(&bad), "{bad}");
    }
    let contacts = validator("list_contacts");
    assert!(contacts.is_valid(&cond("company_id", "eq", json!(4))));
    assert!(!contacts.is_valid(&cond("company_id", "eq", json!("4"))));
    let activities = validator("list_activities");
    assert!(activities.is_valid(&cond("kind", "eq", json!("call"))));
    assert!(!activities.is_valid(&cond("kind", "eq", json!("phone"))));
}
