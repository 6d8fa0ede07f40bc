//! A model that answers from a script: for tests of the loop's control flow
//! (multi-step tool use, errors and recovery, approvals), where what matters
//! is what the runtime does with a reply, not how good the reply is.
//!
//! Each step sees the request, so a script can react to what the loop sent
//! back (e.g. answer with the id a tool returned).

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Mutex;

use rapport_tools::BoxFuture;
use serde_json::Value;

use super::{BackendError, DeltaSink, LlmBackend, LlmReply, LlmRequest, RawCall};

type Reply = Box<dyn FnOnce(&LlmRequest) -> LlmReply + Send>;

/// One scripted reply, optionally held back until a gate opens.
struct Step {
    gate: Option<BoxFuture<'static, ()>>,
    reply: Reply,
}

/// A test model that answers with replies written in advance, in order, and
/// keeps the requests it was sent.
#[derive(Default)]
pub struct ScriptedBackend {
    steps: Mutex<VecDeque<Step>>,
    seen: Mutex<Vec<LlmRequest>>,
}

impl ScriptedBackend {
    /// A backend with no replies yet; add them with [`say`](Self::say) and the like.
    pub fn new() -> Self {
        Self::default()
    }

    /// Next, answer with text.
    pub fn say(self, text: &str) -> Self {
        let text = text.to_owned();
        self.then(move |_| LlmReply {
            content: text,
            ..Default::default()
        })
    }

    /// Next, call one tool.
    pub fn call(self, name: &str, arguments: Value) -> Self {
        self.calls(vec![(name, arguments)])
    }

    /// Next, call several tools in one turn.
    pub fn calls(self, calls: Vec<(&str, Value)>) -> Self {
        let calls: Vec<RawCall> = calls
            .into_iter()
            .enumerate()
            .map(|(i, (name, arguments))| RawCall {
                id: format!("call_{i}"),
                name: name.to_owned(),
                arguments,
            })
            .collect();
        self.then(move |_| LlmReply {
            tool_calls: calls,
            ..Default::default()
        })
    }

    /// Next, answer with whatever `f` makes of the request.
    pub fn then(self, f: impl FnOnce(&LlmRequest) -> LlmReply + Send + 'static) -> Self {
        self.push(None, Box::new(f))
    }

    /// Next, wait until `gate` completes, then answer as `f` says: a slow
    /// model whose pace the test controls. The wait is asynchronous, so a
    /// single-threaded test runtime keeps serving everything else meanwhile.
    pub fn after(
        self,
        gate: impl Future<Output = ()> + Send + 'static,
        f: impl FnOnce(&LlmRequest) -> LlmReply + Send + 'static,
    ) -> Self {
        self.push(Some(Box::pin(gate)), Box::new(f))
    }

    fn push(self, gate: Option<BoxFuture<'static, ()>>, reply: Reply) -> Self {
        self.steps
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(Step { gate, reply });
        self
    }

    /// Every request the loop sent, in order.
    pub fn requests(&self) -> Vec<LlmRequest> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Steps not used yet.
    pub fn remaining(&self) -> usize {
        self.steps.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl LlmBackend for ScriptedBackend {
    fn model(&self) -> String {
        "scripted".into()
    }

    fn complete<'a>(
        &'a self,
        request: &'a LlmRequest,
        on_delta: DeltaSink<'a>,
    ) -> BoxFuture<'a, Result<LlmReply, BackendError>> {
        Box::pin(async move {
            self.seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(request.clone());
            let step = self
                .steps
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop_front()
                .ok_or_else(|| BackendError::Script("no reply left in the script".into()))?;
            if let Some(gate) = step.gate {
                gate.await;
            }
            let reply = (step.reply)(request);
            if !reply.content.is_empty() {
                on_delta(&reply.content);
            }
            Ok(reply)
        })
    }
}
