//! `rapport llm serve` and `rapport bench llm`: thin adapters over
//! `rapport_models::llm` and `rapport_models::serve`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};
use rapport_models::llm::bench::{BenchOptions, bench_model, report_json};
use rapport_models::llm::{ChatModel, LoadOptions};
use rapport_models::serve::{AppState, bind_and_serve};

/// The default local chat model (an artifact of the manifest).
pub const DEFAULT_CHAT_MODEL: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m";

/// `rapport llm …`
#[derive(Debug, Subcommand)]
pub enum LlmCmd {
    /// Serve the local models over an OpenAI-compatible HTTP API (/v1/chat/completions, /v1/models, /v1/embeddings).
    Serve(ServeArgs),
}

/// `rapport llm serve`
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "RAPPORT_LLM_ADDR", default_value = "127.0.0.1:8089")]
    pub addr: String,
    /// Chat model to serve: a manifest artifact name (fetched and verified if missing) or a path to a
    /// .gguf file. Repeat to serve several; the first answers `model: "default"`.
    #[arg(long = "model", default_value = DEFAULT_CHAT_MODEL)]
    pub models: Vec<String>,
    /// Threads per model (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Context window in tokens.
    #[arg(long, default_value_t = 8192)]
    pub ctx: u32,
    /// Do not load the sentence embedder (/v1/embeddings then answers 503).
    #[arg(long)]
    pub no_embedder: bool,
    /// Do not constrain tool calls to the offered schemas unless a request asks (`"constrained": true`).
    #[arg(long)]
    pub unconstrained: bool,
}

/// `rapport bench llm`
#[derive(Debug, Args)]
pub struct BenchLlmArgs {
    /// Models to measure: manifest artifact names or .gguf paths.
    #[arg(long = "model", default_values = ["smollm2-135m-instruct-q4_1", DEFAULT_CHAT_MODEL])]
    pub models: Vec<String>,
    /// Threads for prefill and decode.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// How many of the 30 CRM requests to run per decoding mode.
    #[arg(long, default_value_t = 30)]
    pub requests: usize,
}

/// A model argument as (name, verified path): a manifest artifact is fetched
/// and checked; a `.gguf` path is used as it is.
fn resolve_model(arg: &str) -> anyhow::Result<(String, PathBuf)> {
    let p = Path::new(arg);
    if arg.ends_with(".gguf") && p.is_file() {
        let name = p
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| arg.into());
        tracing::warn!(path = %p.display(), "loading a GGUF file given by path: not checked against the manifest");
        return Ok((name, p.to_path_buf()));
    }
    let path = rapport_models::ensure(arg).with_context(|| format!("model `{arg}`"))?;
    Ok((arg.to_string(), path))
}

pub async fn run(cmd: LlmCmd) -> anyhow::Result<()> {
    match cmd {
        LlmCmd::Serve(args) => serve(args).await,
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let (models, embedder) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let mut models = Vec::new();
        for m in &args.models {
            let (name, path) = resolve_model(m)?;
            let opts = LoadOptions {
                name: Some(name),
                n_ctx: args.ctx,
                n_threads: args.threads,
                ..Default::default()
            };
            models.push(Arc::new(ChatModel::load(&path, opts)?));
        }
        let embedder = if args.no_embedder {
            None
        } else {
            match rapport_models::Embedder::load_default(Default::default()) {
                Ok(e) => Some(e),
                Err(e) => {
                    tracing::warn!(error = %e, "embedder not loaded; /v1/embeddings will answer 503");
                    None
                }
            }
        };
        Ok((models, embedder))
    })
    .await??;
    let state = AppState::new(models, embedder).with_constrained(!args.unconstrained);
    eprintln!(
        "serving the OpenAI-compatible API at http://{}/v1 (Ctrl-C to stop)",
        args.addr
    );
    bind_and_serve(&args.addr, state)
        .await
        .with_context(|| format!("serving on {}", args.addr))
}

pub async fn bench(args: BenchLlmArgs) -> anyhow::Result<()> {
    let opts = BenchOptions {
        threads: args.threads,
        requests: args.requests,
        ..Default::default()
    };
    let doc = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let mut reports = Vec::new();
        for m in &args.models {
            let (name, path) = resolve_model(m)?;
            eprintln!("benchmarking {name} …");
            reports.push(bench_model(&name, &path, &opts)?);
        }
        Ok(report_json(&reports, &opts))
    })
    .await??;
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}
