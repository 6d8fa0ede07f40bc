//! What the loop reports while it works, in order: the CLI prints these, the
//! API streams them as server-sent events.

use rapport_crm::model::Proposal;

use crate::guards::Guard;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc::UnboundedSender;

/// One step of a turn as it happens; serialized with a `type` tag for the API's
/// server-sent events.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentEvent {
    /// Text of the answer as the model writes it.
    TextDelta {
        /// The next piece of text, to append to what came before.
        text: String,
    },
    /// The model asked for a tool call; it runs next (or waits for approval).
    ToolCall {
        /// The call's id; its [`ToolResult`](AgentEvent::ToolResult) carries the same.
        call_id: String,
        /// The tool's name.
        name: String,
        /// The arguments as the model wrote them.
        arguments: Value,
    },
    /// A call waits for the user: approve, reject or edit it.
    ApprovalNeeded {
        /// The stored proposal, with the records it would change.
        proposal: Box<Proposal>,
    },
    /// A call ran (or failed, or was rejected); `result` is what the model sees.
    ToolResult {
        /// The id of the [`ToolCall`](AgentEvent::ToolCall) this answers.
        call_id: String,
        /// The tool's name.
        name: String,
        /// Whether the call succeeded; `result` is then its output, else the error.
        ok: bool,
        /// The tool itself ran. False when the loop answered for it: a call
        /// refused before it ran, a rejected proposal, or a repeat of a call
        /// that already ran (answered "already done" and not run again, so an
        /// `ok` repeat of a delete is not a second, unapproved delete).
        ran: bool,
        /// The output or structured error, as the model sees it.
        result: Value,
    },
    /// The turn's answer.
    Final {
        /// The whole answer.
        text: String,
    },
    /// A guard acted: left something out, refused or rewrote a call, or
    /// answered for the model ([`crate::guards`]). Counted by the evals.
    Guard {
        /// Which guard.
        guard: Guard,
        /// The tool of the call it acted on, if it acted on one.
        tool: Option<String>,
    },
    /// The turn stopped without an answer (step limit, budget, backend failure).
    Error {
        /// What stopped it, for the user.
        message: String,
    },
}

/// Where events go; a closed receiver (a client that left) is not an error.
#[derive(Debug, Clone, Default)]
pub struct Events(Option<UnboundedSender<AgentEvent>>);

impl Events {
    /// Sends every event to `tx`.
    pub fn to(tx: UnboundedSender<AgentEvent>) -> Self {
        Events(Some(tx))
    }

    /// Drops every event (callers that only want the outcome).
    pub fn none() -> Self {
        Events(None)
    }

    /// Sends one event, if anyone listens.
    pub fn emit(&self, event: AgentEvent) {
        if let Some(tx) = &self.0 {
            let _ = tx.send(event);
        }
    }
}
