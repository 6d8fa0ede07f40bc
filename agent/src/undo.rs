//! Undo of the agent's last applied change in a session, from the audit log.
//!
//! A tool call writes its record-level audit entries (create, update, tag, …)
//! and then one `tool:NAME` entry, all under the session. Undo takes the last
//! `tool:` entry of a write tool not undone yet, reverses its record entries
//! newest first — but only if each record is still as the call left it — and
//! writes an `agent:undo` entry naming what it undid, in one transaction.

use rapport_crm::model::{AuditEntry, User};
use rapport_crm::{Id, NewAuditEntry, RecordMap, RecordType};
use rapport_tools::Effect;
use serde::Serialize;
use serde_json::{Value, json};

use crate::agent::Agent;
use crate::error::{AgentError, Result};

/// What an undo reverted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UndoReport {
    /// The tool call undone.
    pub tool: String,
    /// Its audit entry.
    pub audit_id: Id,
    /// One line per record change reverted.
    pub reverted: Vec<String>,
}

const UNDO: &str = "agent:undo";

/// Fields the store maintains itself; never part of a restoring patch.
const MAINTAINED: &[&str] = &["id", "workspace_id", "created_at", "updated_at"];

impl Agent {
    /// Undoes the last change the agent applied in this session.
    pub async fn undo(&self, session_id: Id, user: &User) -> Result<UndoReport> {
        // Opening the session checks that it is this user's.
        self.history(session_id, user).await?;
        let sid = session_id.to_string();
        let ctx =
            rapport_crm::Ctx::new(user.workspace_id, Some(user.id), rapport_crm::Source::Agent)
                .with_session(sid.clone());
        let audit = self.store().session_audit(&ctx, &sid).await?;
        let (call, changes) = self.last_undoable(&audit)?;
        let tool = call.action.trim_start_matches("tool:").to_owned();

        let mut tx = self.store().begin().await?;
        let mut reverted = Vec::new();
        for change in changes.iter().rev() {
            reverted.push(revert(&mut tx, &ctx, change).await?);
        }
        tx.audit(
            &ctx,
            NewAuditEntry {
                action: UNDO,
                record_type: "tool",
                record_id: None,
                before: None,
                after: Some(&json!({"undid": call.id, "tool": tool})),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(UndoReport {
            tool,
            audit_id: call.id,
            reverted,
        })
    }

    /// The last write tool call not undone yet, with its record changes.
    fn last_undoable<'a>(
        &self,
        audit: &'a [AuditEntry],
    ) -> Result<(&'a AuditEntry, Vec<&'a AuditEntry>)> {
        let undone: Vec<i64> = audit
            .iter()
            .filter(|e| e.action == UNDO)
            .filter_map(|e| e.after.as_ref()?.get("undid")?.as_i64())
            .collect();
        let is_write_call = |e: &AuditEntry| {
            e.action
                .strip_prefix("tool:")
                .and_then(|name| self.registry().get(name))
                .is_some_and(|t| t.effect() != Effect::Read)
        };
        let pos = audit
            .iter()
            .rposition(|e| is_write_call(e) && !undone.contains(&e.id))
            .ok_or_else(|| AgentError::Conflict("nothing to undo in this session".into()))?;
        // The call's record changes are the entries between the previous tool
        // call (of any kind) and this one: a session runs one call at a time.
        let start = audit[..pos]
            .iter()
            .rposition(|e| e.action.starts_with("tool:") || e.action == UNDO)
            .map_or(0, |i| i + 1);
        let changes: Vec<&AuditEntry> = audit[start..pos]
            .iter()
            .filter(|e| {
                e.record_id.is_some() && e.record_type != "tool" && e.record_type != "session"
            })
            .collect();
        if changes.is_empty() {
            return Err(AgentError::Conflict(format!(
                "the last change ({}) changed no record; nothing to undo",
                audit[pos].action
            )));
        }
        Ok((&audit[pos], changes))
    }
}

async fn revert(
    tx: &mut rapport_crm::Tx,
    ctx: &rapport_crm::Ctx,
    e: &AuditEntry,
) -> Result<String> {
    let rt: RecordType = serde_json::from_value(json!(e.record_type))
        .map_err(|_| AgentError::Conflict(format!("cannot undo a change of {}", e.record_type)))?;
    let id = e.record_id.unwrap_or_default();
    let what = format!("{rt} {id}");
    match e.action.as_str() {
        "create" => {
            unchanged(tx, ctx, rt, id, e.after.as_ref()).await?;
            tx.delete_dyn(ctx, rt, id).await?;
            Ok(format!("deleted {what}, which it had created"))
        }
        "update" => {
            unchanged(tx, ctx, rt, id, e.after.as_ref()).await?;
            let patch = restoring_patch(rt, e.before.as_ref(), e.after.as_ref());
            tx.update_recorded_dyn(ctx, rt, id, Value::Object(patch))
                .await?;
            Ok(format!("restored {what}"))
        }
        "tag" | "untag" => {
            let snap = e.after.as_ref().or(e.before.as_ref());
            let tag = snap
                .and_then(|v| v.get("tag"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            if e.action == "tag" {
                tx.remove_tag(ctx, rt, id, tag).await?;
                Ok(format!("removed tag {tag:?} from {what}"))
            } else {
                tx.add_tag(ctx, rt, id, tag).await?;
                Ok(format!("put tag {tag:?} back on {what}"))
            }
        }
        other => Err(AgentError::Conflict(format!(
            "the last change includes a {other} of {what}, which cannot be undone here"
        ))),
    }
}

/// Refuses when the record changed since the call left it.
async fn unchanged(
    tx: &mut rapport_crm::Tx,
    ctx: &rapport_crm::Ctx,
    rt: RecordType,
    id: Id,
    after: Option<&Value>,
) -> Result<()> {
    let now = match tx.get_dyn(ctx, rt, id).await {
        Ok(m) => m,
        Err(rapport_crm::Error::NotFound { .. }) => {
            return Err(AgentError::Conflict(format!(
                "{rt} {id} was deleted since; nothing was undone"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let Some(Value::Object(after)) = after else {
        return Ok(());
    };
    let changed: Vec<&str> = after
        .iter()
        .filter(|(k, v)| now.get(k.as_str()).is_some_and(|n| n != *v))
        .map(|(k, _)| k.as_str())
        .collect();
    if changed.is_empty() {
        Ok(())
    } else {
        Err(AgentError::Conflict(format!(
            "{rt} {id} changed since ({}); nothing was undone",
            changed.join(", ")
        )))
    }
}

/// The writable fields the call changed, with their old values.
fn restoring_patch(rt: RecordType, before: Option<&Value>, after: Option<&Value>) -> RecordMap {
    let (Some(Value::Object(before)), Some(Value::Object(after))) = (before, after) else {
        return RecordMap::new();
    };
    let def = rt.def();
    before
        .iter()
        .filter(|(k, v)| after.get(k.as_str()) != Some(*v))
        .filter(|(k, _)| !MAINTAINED.contains(&k.as_str()))
        .filter(|(k, _)| def.field(k).is_some_and(|f| f.writable))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}
