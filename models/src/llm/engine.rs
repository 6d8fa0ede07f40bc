//! [`ChatModel`]: a GGUF chat model on llama.cpp, run by one worker thread.
//!
//! The worker owns the model and a single context (whose KV cache persists
//! between requests). Requests queue on a channel and run one at a time, so a
//! model serves one generation at a time in arrival order. Each request's
//! prompt is compared with the tokens already in the KV cache; only the part
//! after the longest common prefix is evaluated, so a follow-up turn that
//! keeps the same system prompt and tools does not pay for them again.
//!
//! Results arrive as [`Event`]s on a channel: text deltas as tokens are
//! decoded, then the [`Completion`]. Dropping the receiver cancels the
//! generation at the next token.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, mpsc};
use std::time::Instant;

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llguidance::api::TopLevelGrammar;
use llguidance::{Matcher, ParserFactory};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tracing::{debug, info, warn};

use super::constraint::tool_grammar;
use super::template::ChatTemplate;
use super::toolcall::parse_tool_calls;
use super::types::{
    ChatMessage, ChatRequest, Completion, ContextPolicy, FinishReason, Role, Sampling, Timings,
    ToolChoice, ToolSpec, Usage,
};
use super::{LlmError, Result};

/// ChatML, for GGUFs that carry no chat template.
const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// How to load a model.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Name the model is known by (default: the file stem).
    pub name: Option<String>,
    /// Context window in tokens (prompt plus output).
    pub n_ctx: u32,
    /// Threads for prefill and decode (default: all cores).
    pub n_threads: Option<usize>,
    /// Tokens evaluated per llama.cpp batch during prefill.
    pub n_batch: u32,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            name: None,
            n_ctx: 8192,
            n_threads: None,
            n_batch: 512,
        }
    }
}

/// Facts about a loaded model.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelInfo {
    /// The model's name: the one given at load, else the GGUF file's stem.
    pub name: String,
    /// The GGUF file.
    pub path: PathBuf,
    /// Context window of the loaded context, in tokens.
    pub n_ctx: usize,
    /// Context length the model was trained with.
    pub n_ctx_train: usize,
    /// Parameters of the model.
    pub n_params: u64,
    /// Size of the weights in bytes.
    pub size_bytes: u64,
    /// Threads for prefill and decode.
    pub n_threads: usize,
    /// Seconds to load the weights and create the context.
    pub load_s: f64,
    /// Whether the GGUF's chat template renders tools itself.
    pub native_tools: bool,
}

/// What a generation reports, in order: any number of deltas, then `Done` or `Error`.
#[derive(Debug)]
pub enum Event {
    /// Newly decoded text.
    Delta(String),
    /// The generation ended; the whole result.
    Done(Completion),
    /// The generation failed; nothing follows.
    Error(LlmError),
}

enum Job {
    Generate {
        request: Box<ChatRequest>,
        events: UnboundedSender<Event>,
    },
    CountTokens {
        messages: Vec<ChatMessage>,
        reply: mpsc::Sender<Result<usize>>,
    },
    ClearCache,
}

/// A loaded chat model. Cheap to share behind an `Arc`; all work happens on
/// its worker thread, which stops when the `ChatModel` is dropped.
pub struct ChatModel {
    info: ModelInfo,
    jobs: mpsc::Sender<Job>,
    queued: Arc<AtomicUsize>,
}

impl std::fmt::Debug for ChatModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatModel")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

fn backend() -> Result<&'static LlamaBackend> {
    static BACKEND: OnceLock<std::result::Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| LlmError::Load {
            path: String::new(),
            message: format!("llama.cpp backend: {e}"),
        })
}

impl ChatModel {
    /// Loads a GGUF file and starts its worker thread.
    ///
    /// llama.cpp runs on ggml's own thread pool, not OpenMP (the crate's
    /// `openmp` feature is off): with OpenMP's passive waiting, decode ran at
    /// 21 tokens/s here against 26.5 on the thread pool (`rapport bench llm`).
    pub fn load(path: &Path, opts: LoadOptions) -> Result<ChatModel> {
        let backend = backend()?;
        let path = path.to_path_buf();
        if !path.is_file() {
            return Err(LlmError::Load {
                path: path.display().to_string(),
                message: "no such file".into(),
            });
        }
        let name = opts.name.clone().unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "local".into())
        });
        let (jobs, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<ModelInfo>>();
        let queued = Arc::new(AtomicUsize::new(0));
        let queued_worker = queued.clone();
        std::thread::Builder::new()
            .name(format!("llm-{name}"))
            .spawn(move || worker_main(backend, path, name, opts, rx, ready_tx, queued_worker))
            .map_err(|e| LlmError::Load {
                path: String::new(),
                message: format!("spawning the worker thread: {e}"),
            })?;
        let info = ready_rx.recv().map_err(|_| LlmError::WorkerGone)??;
        info!(model = %info.name, load_s = info.load_s, n_ctx = info.n_ctx, threads = info.n_threads, "chat model loaded");
        Ok(ChatModel { info, jobs, queued })
    }

    /// Facts about the loaded model.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The model's name, as reported with every reply.
    pub fn name(&self) -> &str {
        &self.info.name
    }

    /// Requests waiting or running on this model.
    pub fn queue_len(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Queues a generation; its events arrive on the returned channel. Dropping
    /// the receiver cancels the generation.
    pub fn submit(&self, request: ChatRequest) -> UnboundedReceiver<Event> {
        let (events, rx) = unbounded_channel();
        self.queued.fetch_add(1, Ordering::Relaxed);
        if let Err(mpsc::SendError(Job::Generate { events, .. })) = self.jobs.send(Job::Generate {
            request: Box::new(request),
            events,
        }) {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            let _ = events.send(Event::Error(LlmError::WorkerGone));
        }
        rx
    }

    /// Runs a generation to the end, calling `on_delta` with each piece of text.
    /// Blocks: call it from a plain thread or `spawn_blocking`, not from async code.
    pub fn generate(
        &self,
        request: ChatRequest,
        mut on_delta: impl FnMut(&str),
    ) -> Result<Completion> {
        let mut rx = self.submit(request);
        while let Some(event) = rx.blocking_recv() {
            match event {
                Event::Delta(d) => on_delta(&d),
                Event::Done(c) => return Ok(c),
                Event::Error(e) => return Err(e),
            }
        }
        Err(LlmError::WorkerGone)
    }

    /// Number of tokens of the prompt these messages render to (no tools).
    pub fn count_prompt_tokens(&self, messages: Vec<ChatMessage>) -> Result<usize> {
        let (reply, rx) = mpsc::channel();
        self.jobs
            .send(Job::CountTokens { messages, reply })
            .map_err(|_| LlmError::WorkerGone)?;
        rx.recv().map_err(|_| LlmError::WorkerGone)?
    }

    /// Forgets the KV cache, so the next request pays its full prefill.
    pub fn clear_cache(&self) -> Result<()> {
        self.jobs
            .send(Job::ClearCache)
            .map_err(|_| LlmError::WorkerGone)
    }
}

fn load_err(path: &Path, e: impl std::fmt::Display) -> LlmError {
    LlmError::Load {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

fn worker_main(
    backend: &'static LlamaBackend,
    path: PathBuf,
    name: String,
    opts: LoadOptions,
    jobs: mpsc::Receiver<Job>,
    ready: mpsc::Sender<Result<ModelInfo>>,
    queued: Arc<AtomicUsize>,
) {
    let started = Instant::now();
    let n_threads = opts
        .n_threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .max(1);
    let model = match LlamaModel::load_from_file(backend, &path, &LlamaModelParams::default()) {
        Ok(m) => m,
        Err(e) => {
            let _ = ready.send(Err(load_err(&path, e)));
            return;
        }
    };
    let threads = i32::try_from(n_threads).unwrap_or(i32::MAX);
    let ctx_params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(opts.n_ctx.max(64)))
        .with_n_batch(opts.n_batch)
        .with_n_ubatch(opts.n_batch)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let ctx = match model.new_context(backend, ctx_params) {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(Err(load_err(&path, e)));
            return;
        }
    };
    let template = match make_template(&model) {
        Ok(t) => t,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let info = ModelInfo {
        name,
        path: path.clone(),
        n_ctx: ctx.n_ctx() as usize,
        n_ctx_train: model.n_ctx_train() as usize,
        n_params: model.n_params(),
        size_bytes: model.size(),
        n_threads,
        load_s: started.elapsed().as_secs_f64(),
        native_tools: template.native_tools(),
    };
    let mut worker = Worker {
        model: &model,
        ctx,
        template,
        cached: Vec::new(),
        n_batch: opts.n_batch as usize,
        factory: None,
        name: info.name.clone(),
    };
    if ready.send(Ok(info)).is_err() {
        return;
    }
    while let Ok(job) = jobs.recv() {
        match job {
            Job::Generate { request, events } => {
                if events.is_closed() {
                    debug!("request cancelled before it started");
                } else {
                    let result = worker.generate(&request, &events);
                    let _ = events.send(match result {
                        Ok(c) => Event::Done(c),
                        Err(e) => Event::Error(e),
                    });
                }
                queued.fetch_sub(1, Ordering::Relaxed);
            }
            Job::CountTokens { messages, reply } => {
                let _ = reply.send(worker.render_tokens(&messages, &[]).map(|t| t.len()));
            }
            Job::ClearCache => {
                worker.ctx.clear_kv_cache();
                worker.cached.clear();
            }
        }
    }
}

fn make_template(model: &LlamaModel) -> Result<ChatTemplate> {
    let source = match model.meta_val_str("tokenizer.chat_template") {
        Ok(s) => s,
        Err(_) => {
            warn!("the GGUF has no chat template; using ChatML");
            CHATML.to_string()
        }
    };
    let vocab = model.vocab();
    let piece = |t: LlamaToken| {
        if t.0 < 0 {
            String::new()
        } else {
            String::from_utf8_lossy(&vocab.token_to_piece(t, true, None)).into_owned()
        }
    };
    ChatTemplate::new(&source, &piece(vocab.bos()), &piece(vocab.eos()))
}

struct Worker<'m> {
    model: &'m LlamaModel,
    ctx: LlamaContext<'m>,
    template: ChatTemplate,
    /// Tokens whose keys and values are in the KV cache, positions 0.. in order.
    cached: Vec<LlamaToken>,
    n_batch: usize,
    /// llguidance's view of the vocabulary, built on first constrained request.
    factory: Option<ParserFactory>,
    name: String,
}

impl Worker<'_> {
    fn render_tokens(
        &self,
        messages: &[ChatMessage],
        tools: &[super::types::ToolSpec],
    ) -> Result<Vec<LlamaToken>> {
        let prompt = self.template.render(messages, tools, true)?;
        let vocab = self.model.vocab();
        let bos = vocab.bos();
        let add_bos = vocab.should_add_bos()
            && bos.0 >= 0
            && !prompt
                .as_bytes()
                .starts_with(&vocab.token_to_piece(bos, true, None));
        let mut tokens = vocab.tokenize(prompt.as_bytes(), false, true);
        if add_bos {
            tokens.insert(0, bos);
        }
        Ok(tokens)
    }

    fn matcher(&mut self, grammar: String) -> Result<Matcher> {
        if self.factory.is_none() {
            let t = Instant::now();
            let env = LlamaSampler::llguidance_tok_env(self.model);
            let mut factory =
                ParserFactory::new_simple(&env).map_err(|e| LlmError::Grammar(e.to_string()))?;
            factory.quiet();
            info!(model = %self.name, secs = t.elapsed().as_secs_f64(), "built the constraint vocabulary");
            self.factory = Some(factory);
        }
        let factory = self
            .factory
            .as_ref()
            .ok_or_else(|| LlmError::Grammar("no parser factory".into()))?;
        let matcher = Matcher::new(factory.create_parser(TopLevelGrammar::from_lark(grammar)));
        if let Some(e) = matcher.get_error() {
            return Err(LlmError::Grammar(e));
        }
        Ok(matcher)
    }

    /// Renders and tokenizes the request, applying the context policy.
    fn fit_prompt(&self, request: &ChatRequest) -> Result<(Vec<LlamaToken>, usize)> {
        let n_ctx = self.ctx.n_ctx() as usize;
        let tools = &request.tools;
        let mut messages = request.messages.clone();
        loop {
            let tokens = self.render_tokens(&messages, tools)?;
            let requested = request.options.max_tokens.unwrap_or(0).max(1);
            if tokens.len() + requested <= n_ctx {
                let max_tokens = request.options.max_tokens.unwrap_or(n_ctx - tokens.len());
                return Ok((tokens, max_tokens));
            }
            let first = usize::from(messages.first().is_some_and(|m| m.role == Role::System));
            if request.options.context_policy == ContextPolicy::Fail || messages.len() <= first + 1
            {
                return Err(LlmError::ContextOverflow {
                    prompt_tokens: tokens.len(),
                    requested: request.options.max_tokens.unwrap_or(0),
                    n_ctx,
                });
            }
            // Drop the oldest turn after the system prompt, with the tool results that answer it.
            messages.remove(first);
            while messages.len() > first + 1 && messages[first].role == Role::Tool {
                messages.remove(first);
            }
            debug!(
                left = messages.len(),
                "trimmed the oldest message to fit the context"
            );
        }
    }

    fn generate(
        &mut self,
        request: &ChatRequest,
        events: &UnboundedSender<Event>,
    ) -> Result<Completion> {
        let t_setup = Instant::now();
        let offered = request.offered_tools();
        if let ToolChoice::Function(name) = &request.tool_choice
            && !offered.iter().any(|t| &t.name == name)
        {
            return Err(LlmError::InvalidRequest(format!(
                "tool_choice names `{name}`, which is not among the offered tools"
            )));
        }
        let (tokens, max_tokens) = self.fit_prompt(request)?;
        let n_ctx = self.ctx.n_ctx() as usize;

        let mut samplers = Vec::new();
        // `tool_choice: none` still lists the tools (the prompt, and so the
        // cached prefix, stays the same as the turn's other steps); the
        // grammar then allows only text.
        let withheld = &request.options.withheld_tools;
        let callable: Vec<ToolSpec> = request
            .tools
            .iter()
            .filter(|t| !withheld.contains(&t.name))
            .cloned()
            .collect();
        // Everything withheld: the reply can only be text.
        let choice = if callable.is_empty() && request.tool_choice == ToolChoice::Auto {
            ToolChoice::None
        } else {
            request.tool_choice.clone()
        };
        let grammar_tools = if choice == ToolChoice::None {
            &request.tools
        } else {
            &callable
        };
        if request.options.constrained
            && let Some(grammar) =
                tool_grammar(grammar_tools, &choice, request.options.parallel_tool_calls)?
        {
            samplers.push(LlamaSampler::from(self.matcher(grammar)?));
        }
        match request.options.sampling {
            Sampling::Greedy => samplers.push(LlamaSampler::greedy()),
            Sampling::Sampled {
                temperature,
                top_p,
                seed,
            } => {
                samplers.push(LlamaSampler::top_p(top_p.clamp(0.0, 1.0), 1));
                samplers.push(LlamaSampler::temp(temperature.max(0.0)));
                samplers.push(LlamaSampler::dist(seed));
            }
        }
        let mut sampler = LlamaSampler::chain_simple(samplers);
        let setup_s = t_setup.elapsed().as_secs_f64();

        // Reuse the KV cache for the longest common prefix (at least one token is evaluated).
        let t_prefill = Instant::now();
        let mut common = self
            .cached
            .iter()
            .zip(&tokens)
            .take_while(|(a, b)| a == b)
            .count();
        common = common.min(tokens.len().saturating_sub(1));
        if common < self.cached.len() {
            let removed = self.ctx.kv_cache_seq_rm(0, Some(common as u32), None);
            if removed.is_err() {
                self.ctx.clear_kv_cache();
                common = 0;
            }
            self.cached.truncate(common);
        }
        let mut batch = LlamaBatch::new(self.n_batch.max(1), 1);
        let mut last_index = 0;
        let todo = &tokens[common..];
        for (c, chunk) in todo.chunks(self.n_batch.max(1)).enumerate() {
            batch.clear();
            let base = common + c * self.n_batch.max(1);
            for (i, &t) in chunk.iter().enumerate() {
                let pos = base + i;
                let is_last = pos + 1 == tokens.len();
                batch
                    .add(t, pos as i32, &[0], is_last)
                    .map_err(|e| LlmError::Decode(e.to_string()))?;
            }
            self.ctx.decode(&mut batch).map_err(|e| {
                self.cached.clear();
                self.ctx.clear_kv_cache();
                LlmError::Decode(e.to_string())
            })?;
            self.cached.extend_from_slice(chunk);
            last_index = batch.n_tokens() - 1;
        }
        let prefill_s = t_prefill.elapsed().as_secs_f64();

        // Decode.
        let t_decode = Instant::now();
        let vocab = self.model.vocab();
        let mut text = String::new();
        let mut pending: Vec<u8> = Vec::new();
        let mut emitted = 0usize;
        let mut completion_tokens = 0usize;
        let mut finish;
        let stops = &request.options.stop;
        let mut idx = last_index;
        loop {
            if events.is_closed() {
                finish = FinishReason::Cancelled;
                break;
            }
            let token = sampler.sample(&self.ctx, idx);
            if vocab.is_eog(token) && !request.options.ignore_eos {
                finish = FinishReason::Stop;
                break;
            }
            completion_tokens += 1;
            pending.extend(vocab.token_to_piece(token, false, None));
            let valid = match std::str::from_utf8(&pending) {
                Ok(s) => s.len(),
                Err(e) => e.valid_up_to(),
            };
            text.push_str(std::str::from_utf8(&pending[..valid]).unwrap_or_default());
            pending.drain(..valid);

            let mut stopped = false;
            if let Some(at) = stops
                .iter()
                .filter(|s| !s.is_empty())
                .filter_map(|s| text.find(s.as_str()))
                .min()
            {
                text.truncate(at);
                stopped = true;
            }
            let safe = if stopped {
                text.len()
            } else {
                safe_emit_end(&text, stops)
            };
            if safe > emitted {
                if events
                    .send(Event::Delta(text[emitted..safe].to_string()))
                    .is_err()
                {
                    finish = FinishReason::Cancelled;
                    break;
                }
                emitted = safe;
            }
            if stopped {
                finish = FinishReason::Stop;
                break;
            }
            let pos = self.cached.len();
            if completion_tokens >= max_tokens || pos + 1 >= n_ctx {
                finish = FinishReason::Length;
                break;
            }
            batch.clear();
            batch
                .add(token, pos as i32, &[0], true)
                .map_err(|e| LlmError::Decode(e.to_string()))?;
            self.ctx.decode(&mut batch).map_err(|e| {
                self.cached.clear();
                self.ctx.clear_kv_cache();
                LlmError::Decode(e.to_string())
            })?;
            self.cached.push(token);
            idx = 0;
        }
        if emitted < text.len() && finish != FinishReason::Cancelled {
            let _ = events.send(Event::Delta(text[emitted..].to_string()));
        }
        let decode_s = t_decode.elapsed().as_secs_f64();

        let (content, tool_calls) = if offered.is_empty() {
            (Some(text.clone()), Vec::new())
        } else {
            let parsed = parse_tool_calls(&text);
            let calls: Vec<_> = parsed
                .tool_calls
                .into_iter()
                .filter(|c| {
                    offered.iter().any(|t| t.name == c.name)
                        && !request.options.withheld_tools.contains(&c.name)
                })
                .collect();
            if calls.is_empty() {
                (Some(text.clone()), calls)
            } else {
                (parsed.content, calls)
            }
        };
        if !tool_calls.is_empty() && finish == FinishReason::Stop {
            finish = FinishReason::ToolCalls;
        }
        let usage = Usage {
            prompt_tokens: tokens.len(),
            completion_tokens,
            cached_prompt_tokens: common,
        };
        let timings = Timings {
            setup_s,
            prefill_s,
            decode_s,
        };
        info!(
            model = %self.name, prompt = usage.prompt_tokens, cached = usage.cached_prompt_tokens,
            completion = usage.completion_tokens, prefill_s, decode_s, finish = ?finish, "generation done"
        );
        Ok(Completion {
            text,
            content,
            tool_calls,
            finish_reason: finish,
            usage,
            timings,
        })
    }
}

/// How much of `text` can be shown without revealing the start of a stop string.
fn safe_emit_end(text: &str, stops: &[String]) -> usize {
    let mut end = text.len();
    for stop in stops.iter().filter(|s| !s.is_empty()) {
        for k in (1..stop.len().min(text.len() + 1)).rev() {
            let start = text.len() - k;
            if text.is_char_boundary(start)
                && stop.as_bytes().starts_with(&text.as_bytes()[start..])
            {
                end = end.min(start);
                break;
            }
        }
    }
    end
}

#[cfg(test)]
mod tests {
    use super::safe_emit_end;

    #[test]
    fn holds_back_a_possible_stop_string() {
        let stops = vec!["END".to_string()];
        assert_eq!(safe_emit_end("hello E", &stops), 6);
        assert_eq!(safe_emit_end("hello EN", &stops), 6);
        assert_eq!(safe_emit_end("hello", &stops), 5);
        assert_eq!(safe_emit_end("héllo", &[]), "héllo".len());
    }
}
