//! The registry: every tool by name, with its schema, and the one dispatch path
//! all adapters (CLI, agent, REST, MCP) go through — parse, permission check,
//! one transaction, one audit entry, commit.

use std::collections::BTreeMap;

use rapport_crm::{NewAuditEntry, Store};
use serde::Serialize;
use serde_json::{Value, json};

use crate::error::{ErrorCode, Result, ToolError};
use crate::tool::{Call, Caller, DynTool, Effect, role_name};

/// What a listing shows of one tool.
#[derive(Debug, Clone, Serialize)]
pub struct ToolInfo {
    pub name: &'static str,
    pub description: String,
    pub effect: Effect,
    pub input_schema: Value,
}

pub struct Registry {
    tools: BTreeMap<&'static str, Box<dyn DynTool>>,
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
        r
    }

    pub fn empty() -> Self {
        Registry {
            tools: BTreeMap::new(),
        }
    }

    /// Adds a tool; a second tool with the same name is a bug.
    pub fn register(&mut self, tool: impl DynTool + 'static) {
        let name = tool.name();
        let old = self.tools.insert(name, Box::new(tool));
        assert!(old.is_none(), "tool {name} registered twice");
    }

    pub fn get(&self, name: &str) -> Option<&dyn DynTool> {
        self.tools.get(name).map(|t| t.as_ref())
    }

    /// All tools, by name.
    pub fn tools(&self) -> impl Iterator<Item = &dyn DynTool> {
        self.tools.values().map(|t| t.as_ref())
    }

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
        let tool = self.get(name).ok_or_else(|| {
            ToolError::new(ErrorCode::NotFound, format!("no tool named {name:?}"))
                .with_field("name")
                .with_hint("list the available tools and their schemas")
        })?;
        if !tool.roles().contains(&caller.role) {
            let allowed: Vec<&str> = tool.roles().iter().map(|r| role_name(*r)).collect();
            return Err(ToolError::denied(format!(
                "{name} is a {} tool; {} may not call it (allowed: {})",
                tool.effect().as_str(),
                role_name(caller.role),
                allowed.join(", ")
            ))
            .with_hint("ask a manager or admin to do this"));
        }
        let args = match args {
            Value::Null => json!({}),
            other => other,
        };
        let ctx = caller.ctx();
        let mut cx = Call {
            tx: store.begin().await?,
            store: store.clone(),
            ctx,
            caller: caller.clone(),
        };
        let result = tool.call_json(&mut cx, args.clone()).await?;
        let action = format!("tool:{name}");
        let mut record = json!({"args": args, "result": result});
        if let Some(agent) = &caller.agent {
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
        cx.tx.commit().await?;
        Ok(result)
    }

    /// The tool list as a Markdown table (for the README).
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

/// The description's first sentence, for one-line listings.
pub fn first_sentence(s: &str) -> &str {
    match s.find(". ") {
        Some(i) => &s[..=i],
        None => s,
    }
}
