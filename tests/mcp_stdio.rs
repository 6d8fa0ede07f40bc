//! `rapport mcp` as an MCP client sees it: the real binary started as a child
//! process on a fresh SQLite data directory and driven over stdio by rmcp's own
//! client. It lists the tools, calls write and read tools, gets structured
//! errors for bad arguments, unknown tools and a viewer's write, and the calls
//! are audited as the server's user with source `mcp`.

use std::path::Path;
use std::process::Stdio;

use rapport_api::testing::{Client, call, tool_error};
use rapport_crm::{Ctx, RecordType, Source, Store};
use rmcp::ServiceExt;
use rmcp::model::{CallToolResult, Tool};
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

/// `rapport --data-dir DIR [--as USER] ARGS…`, blind to the caller's environment.
fn rapport(data_dir: &Path, as_user: Option<&str>, args: &[&str]) -> Command {
    Command::new(env!("CARGO_BIN_EXE_rapport")).configure(|cmd| {
        for var in [
            "RAPPORT_DATABASE_URL",
            "RAPPORT_USER",
            "RAPPORT_WORKSPACE",
            "RAPPORT_DATA_DIR",
        ] {
            cmd.env_remove(var);
        }
        cmd.arg("--data-dir").arg(data_dir);
        if let Some(user) = as_user {
            cmd.args(["--as", user]);
        }
        cmd.args(args);
    })
}

/// Starts `rapport mcp` and completes the MCP handshake with it.
async fn connect(data_dir: &Path, as_user: Option<&str>) -> Client {
    let (transport, _) = TokioChildProcess::builder(rapport(data_dir, as_user, &["mcp"]))
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start rapport mcp");
    ().serve(transport).await.expect("MCP handshake")
}

/// The structured content of a successful call, checked against the output
/// schema the server advertised for the tool.
fn ok(result: CallToolResult, tool: &Tool) -> Value {
    let value = rapport_api::testing::ok(result);
    let schema = Value::Object(
        tool.output_schema
            .as_deref()
            .expect("output schema")
            .clone(),
    );
    let validator = jsonschema::validator_for(&schema).expect("valid output schema");
    if let Err(e) = validator.validate(&value) {
        panic!(
            "{} result does not match its output schema: {e}\n{value}",
            tool.name
        );
    }
    value
}

fn tool<'a>(tools: &'a [Tool], name: &str) -> &'a Tool {
    tools
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no tool {name}"))
}

#[tokio::test]
async fn lists_every_tool_with_schemas_and_annotations() {
    let dir = tempfile::tempdir().unwrap();
    let client = connect(dir.path(), None).await;
    let info = client.peer_info().expect("server info");
    assert_eq!(
        info.server_info.as_ref().map(|i| i.name.as_str()),
        Some("rapport")
    );
    let tools = client.list_all_tools().await.expect("tools/list");

    let registry = rapport_tools::Registry::new();
    assert_eq!(tools.len(), registry.tools().count());
    for t in registry.tools() {
        let listed = tool(&tools, t.name());
        assert_eq!(
            listed.description.as_deref(),
            Some(t.description().as_str())
        );
        assert_eq!(
            listed.schema_as_json_value(),
            t.input_schema(),
            "{}",
            t.name()
        );
        assert!(
            listed.output_schema.is_some(),
            "{} has no output schema",
            t.name()
        );
    }

    let hints = |name: &str| {
        let a = tool(&tools, name).annotations.clone().expect("annotations");
        (a.read_only_hint, a.destructive_hint, a.idempotent_hint)
    };
    assert_eq!(hints("get_company").0, Some(true));
    assert_eq!(hints("find_records").0, Some(true));
    for (name, expected) in [
        ("delete_company", (Some(false), Some(true), Some(true))),
        ("merge_contacts", (Some(false), Some(true), Some(false))),
        ("create_company", (Some(false), Some(false), Some(false))),
        ("update_company", (Some(false), Some(false), Some(true))),
    ] {
        assert_eq!(
            hints(name),
            expected,
            "{name}: (read-only, destructive, idempotent)"
        );
    }

    let create = tool(&tools, "create_company").schema_as_json_value();
    assert_eq!(create["additionalProperties"], json!(false));
    assert!(
        create["required"]
            .as_array()
            .unwrap()
            .contains(&json!("name"))
    );
    client.cancel().await.expect("close");
}

#[tokio::test]
async fn calls_write_and_read_tools_and_gets_structured_errors() {
    let dir = tempfile::tempdir().unwrap();
    let client = connect(dir.path(), None).await;
    let tools = client.list_all_tools().await.expect("tools/list");

    let acme = ok(
        call(
            &client,
            "create_company",
            json!({"name": "Acme Robotics", "domain": "acme.example"}),
        )
        .await,
        tool(&tools, "create_company"),
    );
    let id = acme["id"].as_i64().expect("id");
    let got = ok(
        call(&client, "get_company", json!({"id": id})).await,
        tool(&tools, "get_company"),
    );
    assert_eq!(got["name"], "Acme Robotics");
    let found = ok(
        call(&client, "find_records", json!({"query": "acme"})).await,
        tool(&tools, "find_records"),
    );
    assert!(found.to_string().contains("Acme Robotics"), "{found}");

    // A value of the wrong type: the error names the field, nothing is written.
    let err = tool_error(call(&client, "create_company", json!({"name": 42})).await);
    assert_eq!(err["code"], "invalid_argument");
    assert_eq!(err["field"], "name");
    let err = tool_error(call(&client, "get_company", json!({"id": "seven"})).await);
    assert_eq!(err["code"], "invalid_argument");
    assert_eq!(err["field"], "id");
    assert!(err["hint"].is_string(), "{err}");
    let err = tool_error(call(&client, "create_company", json!({"name": "X", "size": 5})).await);
    assert_eq!(err["code"], "invalid_argument");
    assert_eq!(err["field"], "size", "{err}");
    let err = tool_error(call(&client, "get_company", json!({"id": id + 1000})).await);
    assert_eq!(err["code"], "not_found");
    let err = tool_error(call(&client, "launch_rocket", json!({})).await);
    assert_eq!(err["code"], "not_found");
    assert_eq!(err["field"], "name");

    let all = ok(
        call(&client, "list_companies", json!({})).await,
        tool(&tools, "list_companies"),
    );
    assert_eq!(all.to_string().matches("\"name\":\"").count(), 1, "{all}");

    // The audit log names the server's user and the MCP source, not the client.
    let store = Store::connect(&Store::sqlite_url_in(dir.path()))
        .await
        .unwrap();
    let ws = store
        .workspace_by_name("default")
        .await
        .unwrap()
        .expect("workspace");
    let history = store
        .history(&Ctx::new(ws.id, None, Source::Cli), RecordType::Company, id)
        .await
        .unwrap();
    assert!(!history.is_empty());
    for entry in &history {
        assert_eq!(entry.source, "mcp");
        assert_eq!(entry.actor_id, acme["owner_id"].as_i64());
    }
    store.close().await;
    client.cancel().await.expect("close");
}

#[tokio::test]
async fn a_viewer_reads_but_may_not_write() {
    let dir = tempfile::tempdir().unwrap();
    let seeded = rapport(dir.path(), None, &["seed", "demo", "--companies", "2"])
        .stdout(Stdio::null())
        .status()
        .await
        .expect("run rapport seed demo");
    assert!(seeded.success());

    let client = connect(dir.path(), Some("jordan")).await;
    let err = tool_error(call(&client, "create_company", json!({"name": "Viewer Co"})).await);
    assert_eq!(err["code"], "permission_denied", "{err}");
    let listed = call(&client, "list_companies", json!({"limit": 5})).await;
    assert_ne!(listed.is_error, Some(true), "{listed:?}");
    let err = tool_error(call(&client, "delete_company", json!({"id": 1})).await);
    assert_eq!(err["code"], "permission_denied", "{err}");
    client.cancel().await.expect("close");
}

/// Stdout is the protocol: even with verbose logging every line the server
/// writes there is a JSON-RPC message.
#[tokio::test]
async fn stdout_carries_only_protocol_messages() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = rapport(dir.path(), None, &["-vv", "mcp"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start rapport mcp");
    let mut stdin = child.stdin.take().unwrap();
    let requests = [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "create_company", "arguments": {"name": "Initech"}}}),
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}),
    ];
    let mut stdout = child.stdout.take().unwrap();
    let mut out = String::new();
    for r in &requests {
        stdin.write_all(format!("{r}\n").as_bytes()).await.unwrap();
    }
    // One line per answer to ids 1–3, then end the session by closing stdin.
    let mut buf = vec![0u8; 1 << 16];
    while out.matches('\n').count() < 3 {
        let n = tokio::time::timeout(std::time::Duration::from_secs(60), stdout.read(&mut buf))
            .await
            .expect("server answers")
            .unwrap();
        assert!(n > 0, "server closed stdout early: {out}");
        out.push_str(std::str::from_utf8(&buf[..n]).unwrap());
    }
    drop(stdin);
    stdout.read_to_string(&mut out).await.unwrap();
    let status = child.wait().await.unwrap();
    assert!(status.success(), "rapport mcp exited with {status}");
    for line in out.lines() {
        let msg: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(msg["jsonrpc"], "2.0", "{line}");
    }
}
