//! What the loop reports while it works, in order: the CLI prints these, the
//! API streams them as server-sent events.

use rapport_crm::model::Proposal;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc::UnboundedSender;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentEvent {
    /// Text of the answer as the model writes it.
    TextDelta { text: String },
    /// The model asked for a tool call; it runs next (or waits for approval).
    ToolCall {
        call_id: String,
        name: String,
        arguments: Value,
    },
    /// A call waits for the user: approve, reject or edit it.
    ApprovalNeeded { proposal: Box<Proposal> },
    /// A call ran (or failed, or was rejected); `result` is what the model sees.
    ToolResult {
        call_id: String,
        name: String,
        ok: bool,
        /// The tool itself ran. False when the loop answered for it: a call
        /// refused before it ran, a rejected proposal, or a repeat of a call
        /// that already ran (answered "already done" and not run again, so an
        /// `ok` repeat of a delete is not a second, unapproved delete).
        ran: bool,
        result: Value,
    },
    /// The turn's answer.
    Final { text: String },
    /// The turn stopped without an answer (step limit, budget, backend failure).
    Error { message: String },
}

/// Where events go; a closed receiver (a client that left) is not an error.
#[derive(Debug, Clone, Default)]
pub struct Events(Option<UnboundedSender<AgentEvent>>);

impl Events {
    pub fn to(tx: UnboundedSender<AgentEvent>) -> Self {
        Events(Some(tx))
    }

    pub fn none() -> Self {
        Events(None)
    }

    pub fn emit(&self, event: AgentEvent) {
        if let Some(tx) = &self.0 {
            let _ = tx.send(event);
        }
    }
}
