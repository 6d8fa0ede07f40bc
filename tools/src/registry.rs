//! The registry: every tool by name, with its schema, and the one dispatch path
//! all adapters (CLI, agent, REST, MCP) go through — parse, permission check,
//! one transaction, one audit entry, commit.

use std::collections::BTreeMap;

use rapport_crm::{Id, NewAuditEntry, RecordMap, RecordType, Store};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Services;
use crate::error::{ErrorCode, Result, ToolError};
use crate::tool::{Call, Caller, DynTool, Effect, role_name};

/// What a listing shows of one tool.
#[derive(Debug, Clone, Serialize)]
pub struct ToolInfo {
    /// The name calls use (snake_case, unique).
    pub name: &'static str,
    /// What the tool does, written for a model.
    pub description: String,
    /// Whether it reads, writes or destroys.
    pub effect: Effect,
    /// The strict JSON Schema of its arguments.
    pub input_schema: Value,
}

/// Every tool by name and the services they use; the one path through which
/// adapters call tools. Build once and share: calls take `&self`.
pub struct Registry {
    tools: BTreeMap<&'static str, Box<dyn DynTool>>,
    services: Services,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// Every tool this crate defines.
    pub fn new() -> Self {
        let mut r = Registry::empty();
        for rt in crate::records::TYPES {
            r.register(crate::records::CreateRecord(rt));
            r.register(crate::records::GetRecord(rt));
            r.register(crate::records::UpdateRecord(rt));
            r.register(crate::records::DeleteRecord(rt));
            r.register(crate::records::ListRecords(rt));
        }
        crate::domain::register(&mut r);
        crate::scores::register(&mut r);
        crate::nba::register(&mut r);
        r.register(crate::search::SearchInteractions);
        r
    }

    /// A registry with no tools and no services, for tests and adapters that
    /// register their own selection.
    pub fn empty() -> Self {
        Registry {
            tools: BTreeMap::new(),
            services: Services::default(),
        }
    }

    /// Gives tools the services they use (e.g. semantic search).
    pub fn with_services(mut self, services: Services) -> Self {
        self.services = services;
        self
    }

    /// The services the tools of this registry use. Adapters that show what
    /// a read tool would answer without a tool call per keystroke (the web
    /// app's search box) call the same service the tool calls.
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// Whether `tool` can run with this registry's services, so it is worth
    /// offering to a model (see [`Tool::available`](crate::Tool::available)).
    pub fn ready(&self, tool: &dyn DynTool) -> bool {
        tool.available(&self.services)
    }

    /// Adds a tool; a second tool with the same name is a bug.
    pub fn register(&mut self, tool: impl DynTool + 'static) {
        let name = tool.name();
        let old = self.tools.insert(name, Box::new(tool));
        assert!(old.is_none(), "tool {name} registered twice");
    }

    /// The tool called `name`, if registered.
    pub fn get(&self, name: &str) -> Option<&dyn DynTool> {
        self.tools.get(name).map(|t| t.as_ref())
    }

    /// All tools, by name.
    pub fn tools(&self) -> impl Iterator<Item = &dyn DynTool> {
        self.tools.values().map(|t| t.as_ref())
    }

    /// Name, description, effect and input schema of every tool, by name.
    pub fn list(&self) -> Vec<ToolInfo> {
        self.tools()
            .map(|t| ToolInfo {
                name: t.name(),
                description: t.description(),
                effect: t.effect(),
                input_schema: t.input_schema(),
            })
            .collect()
    }

    /// Calls a tool by name with JSON arguments, as `caller`. Runs in one
    /// transaction with one audit entry (`tool:NAME`, the arguments and the
    /// result); on any error nothing is kept, the audit entry included.
    pub async fn call(
        &self,
        store: &Store,
        caller: &Caller,
        name: &str,
        args: Value,
    ) -> Result<Value> {
        self.call_checked(store, caller, name, args, None).await
    }

    /// The tool by name, or a `not_found` error a model can act on.
    pub fn tool(&self, name: &str) -> Result<&dyn DynTool> {
        self.get(name).ok_or_else(|| {
            ToolError::new(ErrorCode::NotFound, format!("no tool named {name:?}"))
                .with_field("name")
                .with_hint("list the available tools and their schemas")
        })
    }

    /// The records a call would change, as they are now: taken when a call is
    /// proposed, checked by [`Registry::call_checked`] when it is approved.
    pub async fn snapshot(
        &self,
        store: &Store,
        caller: &Caller,
        name: &str,
        args: &Value,
    ) -> Result<Snapshot> {
        let targets = self.tool(name)?.targets(args)?;
        let ctx = caller.ctx();
        let mut items = Vec::with_capacity(targets.len());
        for (rt, id) in targets {
            items.push(SnapshotItem {
                record_type: rt,
                id,
                record: found(store.get_dyn(&ctx, rt, id).await)?,
            });
        }
        Ok(Snapshot(items))
    }

    /// Like [`Registry::call`], but when `expect` is given the records it holds
    /// are re-read inside the call's transaction first, and if any changed (or
    /// appeared or vanished) the call fails with `conflict` and writes nothing.
    pub async fn call_checked(
        &self,
        store: &Store,
        caller: &Caller,
        name: &str,
        args: Value,
        expect: Option<&Snapshot>,
    ) -> Result<Value> {
        // Find the tool and check the role before opening a transaction.
        self.permitted(caller, self.tool(name)?)?;
        let mut cx = self
            .begin(store, caller)
            .await
            .inspect_err(|e| log_internal(name, e))?;
        let result = self.execute(&mut cx, name, args, expect).await?;
        cx.tx
            .commit()
            .await
            .map_err(ToolError::from)
            .inspect_err(|e| log_internal(name, e))?;
        Ok(result)
    }

    /// A call context on a new transaction, acting as `caller`, with this
    /// registry's services: for [`Registry::execute`].
    pub async fn begin(&self, store: &Store, caller: &Caller) -> Result<Call> {
        Ok(Call {
            tx: store.begin().await?,
            store: store.clone(),
            ctx: caller.ctx(),
            caller: caller.clone(),
            services: self.services.clone(),
        })
    }

    /// Runs a call inside a transaction the caller owns (and commits): the
    /// permission check, the optional snapshot check, the tool and its audit
    /// entry. Lets a caller add its own writes to the same transaction (the
    /// agent marks a proposal applied atomically with the call it approves).
    pub async fn execute(
        &self,
        cx: &mut Call,
        name: &str,
        args: Value,
        expect: Option<&Snapshot>,
    ) -> Result<Value> {
        self.execute_logged(cx, name, args, expect)
            .await
            .inspect_err(|e| log_internal(name, e))
    }

    async fn execute_logged(
        &self,
        cx: &mut Call,
        name: &str,
        args: Value,
        expect: Option<&Snapshot>,
    ) -> Result<Value> {
        let tool = self.tool(name)?;
        self.permitted(&cx.caller, tool)?;
        let args = match args {
            Value::Null => json!({}),
            other => other,
        };
        if let Some(expect) = expect {
            expect.check(cx).await?;
        }
        let result = tool.call_json(cx, args.clone()).await?;
        let action = format!("tool:{name}");
        let mut record = json!({"args": args, "result": result});
        if let Some(agent) = &cx.caller.agent {
            record["agent"] = json!(agent);
        }
        cx.tx
            .audit(
                &cx.ctx,
                NewAuditEntry {
                    action: &action,
                    record_type: "tool",
                    record_id: None,
                    before: None,
                    after: Some(&record),
                },
            )
            .await?;
        Ok(result)
    }

    fn permitted(&self, caller: &Caller, tool: &dyn DynTool) -> Result<()> {
        if tool.roles().contains(&caller.role) {
            return Ok(());
        }
        let allowed: Vec<&str> = tool.roles().iter().map(|r| role_name(*r)).collect();
        Err(ToolError::denied(format!(
            "{} is a {} tool; {} may not call it (allowed: {})",
            tool.name(),
            tool.effect().as_str(),
            role_name(caller.role),
            allowed.join(", ")
        ))
        .with_hint("ask a manager or admin to do this"))
    }

    /// The tool list as a Markdown table (for docs/tools.md).
    pub fn markdown(&self) -> String {
        let mut out = String::from("| tool | effect | what it does |\n| --- | --- | --- |\n");
        for t in self.tools() {
            out.push_str(&format!(
                "| `{}` | {} | {} |\n",
                t.name(),
                t.effect().as_str(),
                first_sentence(&t.description()).replace('|', "\\|")
            ));
        }
        out
    }
}

/// Logs a fault of Rapport (not of the caller) once, with its cause, where it
/// leaves the registry. The caller's span (an HTTP request with its id, a chat
/// turn, an eval trial) is the event's parent, so the log names the request.
fn log_internal(tool: &str, e: &ToolError) {
    if e.code != ErrorCode::Internal {
        return;
    }
    match &e.cause {
        Some(cause) => {
            tracing::error!(tool, error = %e.message, cause = %cause, "tool call failed")
        }
        None => tracing::error!(tool, error = %e.message, "tool call failed"),
    }
}

/// The description's first sentence, for one-line listings.
pub fn first_sentence(s: &str) -> &str {
    match s.find(". ") {
        Some(i) => &s[..=i],
        None => s,
    }
}

/// The records a proposed call would change, as they were when it was proposed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot(pub Vec<SnapshotItem>);

/// One record as it was when a call was proposed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotItem {
    /// The record's type.
    pub record_type: RecordType,
    /// The record's id within its type.
    pub id: Id,
    /// `None` when the record did not exist.
    pub record: Option<RecordMap>,
}

impl Snapshot {
    async fn check(&self, cx: &mut Call) -> Result<()> {
        for item in &self.0 {
            let now = found(cx.tx.get_dyn(&cx.ctx, item.record_type, item.id).await)?;
            if now == item.record {
                continue;
            }
            let what = format!("{} {}", item.record_type, item.id);
            let detail = match (&item.record, &now) {
                (Some(_), None) => format!("{what} was deleted"),
                (None, Some(_)) => format!("{what} appeared"),
                (Some(a), Some(b)) => {
                    let changed: Vec<&str> = b
                        .iter()
                        .filter(|(k, v)| a.get(k.as_str()) != Some(v) && k.as_str() != "updated_at")
                        .map(|(k, _)| k.as_str())
                        .collect();
                    format!("{what} changed ({})", changed.join(", "))
                }
                (None, None) => continue,
            };
            return Err(ToolError::new(
                ErrorCode::Conflict,
                format!("{detail} since this call was proposed; nothing was written"),
            )
            .with_hint("look at the record again and propose the change anew"));
        }
        Ok(())
    }
}

/// A record, or `None` when it does not exist.
fn found(r: rapport_crm::Result<RecordMap>) -> Result<Option<RecordMap>> {
    match r {
        Ok(m) => Ok(Some(m)),
        Err(rapport_crm::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}
