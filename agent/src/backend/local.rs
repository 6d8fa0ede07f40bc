//! The local GGUF chat model (llama.cpp, in process) as a backend.
//!
//! Generation is greedy by default (deterministic, as evals need) or sampled
//! ([`LocalBackend::sampled`]: temperature and top-p, a new seed per request,
//! so repeated trials of an eval task differ and pass^k means something) and,
//! by default, schema-constrained so that a small model's tool calls parse
//! and validate.
//! The model keeps its KV cache between requests, so the system prompt and
//! tools — rendered identically turn after turn — are evaluated once, and
//! [`LlmBackend::warm`] evaluates them before the first request arrives.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use rapport_models::llm::{
    ChatModel, ChatRequest, ContextPolicy, Event, GenerateOptions, Sampling, ToolChoice,
};
use rapport_tools::BoxFuture;

use super::{BackendError, DeltaSink, LlmBackend, LlmReply, LlmRequest, RawCall, TokenUsage};

/// The local GGUF chat model in process (llama.cpp), greedy by default and with
/// tool calls constrained to the offered schemas.
pub struct LocalBackend {
    model: Arc<ChatModel>,
    /// Constrain tool calls to the offered tools' schemas (llguidance).
    pub constrained: bool,
    /// Most tokens per reply.
    pub max_tokens: usize,
    /// How tokens are picked; a sampled setting's seed is the first request's.
    sampling: Sampling,
    /// Requests answered so far: a sampled request's seed is the base seed
    /// plus this, so no two requests draw the same random stream.
    requests: AtomicU32,
}

impl LocalBackend {
    /// Greedy decoding, constrained calls, at most 384 tokens per reply.
    pub fn new(model: Arc<ChatModel>) -> Self {
        LocalBackend {
            model,
            constrained: true,
            max_tokens: 384,
            sampling: Sampling::Greedy,
            requests: AtomicU32::new(0),
        }
    }

    /// Samples at `temperature` with top-p 0.95 from `seed` onwards instead
    /// of decoding greedily; a temperature of 0 stays greedy.
    pub fn sampled(mut self, temperature: f32, seed: u32) -> Self {
        if temperature > 0.0 {
            self.sampling = Sampling::Sampled {
                temperature,
                top_p: 0.95,
                seed,
            };
        }
        self
    }

    /// The sampling of the next request.
    fn next_sampling(&self) -> Sampling {
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        match self.sampling {
            Sampling::Sampled {
                temperature,
                top_p,
                seed,
            } => Sampling::Sampled {
                temperature,
                top_p,
                seed: seed.wrapping_add(n),
            },
            greedy => greedy,
        }
    }

    /// The loaded model this backend answers with.
    pub fn chat_model(&self) -> &Arc<ChatModel> {
        &self.model
    }
}

impl LlmBackend for LocalBackend {
    fn model(&self) -> String {
        self.model.name().to_owned()
    }

    fn prefers_small_prompts(&self) -> bool {
        true
    }

    fn warm(&self, request: &LlmRequest) {
        let req = ChatRequest::new(request.messages.clone())
            .with_tools(request.tools.clone(), ToolChoice::None)
            .with_options(GenerateOptions {
                max_tokens: Some(1),
                sampling: Sampling::Greedy,
                constrained: false,
                context_policy: ContextPolicy::TrimOldest,
                ..GenerateOptions::default()
            });
        let mut events = self.model.submit(req);
        // The worker evaluates the prompt whether or not anyone listens; the
        // receiver is drained so the one token it samples is not "cancelled".
        tokio::spawn(async move { while events.recv().await.is_some() {} });
    }

    fn complete<'a>(
        &'a self,
        request: &'a LlmRequest,
        on_delta: DeltaSink<'a>,
    ) -> BoxFuture<'a, Result<LlmReply, BackendError>> {
        Box::pin(async move {
            let req = ChatRequest::new(request.messages.clone())
                .with_tools(request.tools.clone(), request.tool_choice.clone())
                .with_options(GenerateOptions {
                    max_tokens: Some(request.max_tokens.map_or(self.max_tokens, |n| n as usize)),
                    sampling: self.next_sampling(),
                    constrained: self.constrained,
                    context_policy: ContextPolicy::TrimOldest,
                    withheld_tools: request.withheld.clone(),
                    ..GenerateOptions::default()
                });
            let mut events = self.model.submit(req);
            let mut text = TextFilter::default();
            while let Some(event) = events.recv().await {
                match event {
                    Event::Delta(d) => {
                        if let Some(shown) = text.push(&d) {
                            on_delta(&shown);
                        }
                    }
                    Event::Done(c) => {
                        return Ok(LlmReply {
                            content: c.content.clone().unwrap_or_else(|| {
                                if c.tool_calls.is_empty() {
                                    c.text.clone()
                                } else {
                                    String::new()
                                }
                            }),
                            tool_calls: c
                                .tool_calls
                                .into_iter()
                                .map(|t| RawCall {
                                    id: t.id,
                                    name: t.name,
                                    arguments: t.arguments,
                                })
                                .collect(),
                            usage: Some(TokenUsage {
                                prompt_tokens: c.usage.prompt_tokens as u64,
                                completion_tokens: c.usage.completion_tokens as u64,
                                cached_tokens: c.usage.cached_prompt_tokens as u64,
                            }),
                        });
                    }
                    Event::Error(e) => return Err(BackendError::Local(e.to_string())),
                }
            }
            Err(BackendError::Local("the model's worker stopped".into()))
        })
    }
}

/// Holds back generated text that is the start of a tool call, so the user
/// sees prose as it streams but not the JSON of calls.
#[derive(Default)]
struct TextFilter {
    buffered: String,
    decided: Option<bool>,
}

impl TextFilter {
    fn push(&mut self, delta: &str) -> Option<String> {
        match self.decided {
            Some(true) => return Some(delta.to_owned()),
            Some(false) => return None,
            None => {}
        }
        self.buffered.push_str(delta);
        let head = self.buffered.trim_start();
        if head.is_empty() {
            return None;
        }
        let call_like = ["<tool_call>", "{", "```"];
        if call_like.iter().any(|p| head.starts_with(p)) {
            self.decided = Some(false);
            return None;
        }
        if call_like.iter().any(|p| p.starts_with(head)) {
            return None; // too short to tell yet
        }
        self.decided = Some(true);
        Some(std::mem::take(&mut self.buffered))
    }
}

#[cfg(test)]
mod tests {
    use super::TextFilter;

    #[test]
    fn prose_streams_and_calls_do_not() {
        let mut f = TextFilter::default();
        assert_eq!(f.push("<tool"), None);
        assert_eq!(f.push("_call>"), None);
        assert_eq!(f.push("{\"name\""), None);
        let mut f = TextFilter::default();
        assert_eq!(f.push("Do"), Some("Do".into()));
        assert_eq!(f.push("ne."), Some("ne.".into()));
        let mut f = TextFilter::default();
        assert_eq!(f.push("`"), None);
        assert_eq!(f.push("`x"), Some("``x".into()));
    }
}
