//! An agent configuration under test (`--agent CONFIG`, a small TOML file):
//! which backend and model, decoding, prompt, and the loop's knobs. It maps
//! onto the agent's own types ([`AgentConfig`], [`Policy`], [`OpenAiConfig`])
//! so an eval measures exactly what `rapport chat` runs.
//!
//! ```toml
//! name = "qwen0.5b-constrained"
//! backend = "local"                    # local | openai
//! model = "qwen2.5-coder-0.5b-instruct-q4_k_m"
//! constrained = true                   # local: schema-constrained tool calls
//! threads = 2
//! # prompt = "my-system.tera"          # another system prompt (relative to this file)
//! # tools_top_k = 4                    # tools offered per request (local default 4; 0 = all)
//! # base_url = "http://127.0.0.1:8089/v1"   # openai
//! # api_key_env = "OPENAI_API_KEY"
//! # [policy]
//! # writes = "direct"                  # direct | approve
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rapport_agent::backend::local::LocalBackend;
use rapport_agent::backend::openai::{OpenAiBackend, OpenAiConfig};
use rapport_agent::prompt::Prompt;
use rapport_agent::select::ToolIndex;
use rapport_agent::{AgentConfig, LlmBackend, Policy, Selection, TurnMode, WritePolicy};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Which kind of backend an arm talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// The GGUF model in process (llama.cpp).
    Local,
    /// Any OpenAI-compatible endpoint.
    Openai,
}

/// One arm of a run: a model, its backend and the agent's settings (a TOML file
/// under `evals/agents/`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    /// Names the arm in reports and the recording file.
    pub name: String,
    /// Local model or OpenAI-compatible endpoint.
    pub backend: BackendKind,
    /// Local: a manifest artifact name or a .gguf path; openai: the model id.
    pub model: String,
    /// Local: constrain tool calls to the offered schemas (default true).
    #[serde(default = "yes")]
    pub constrained: bool,
    /// Local: decoding threads (default: all cores).
    #[serde(default)]
    pub threads: Option<usize>,
    /// Local: context window in tokens.
    #[serde(default)]
    pub ctx: Option<u32>,
    /// Openai: the endpoint, e.g. `http://127.0.0.1:8080/v1` (required).
    #[serde(default)]
    pub base_url: Option<String>,
    /// Environment variable holding the endpoint's API key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Sampling temperature (default: the backend's, 0 for repeatable runs).
    #[serde(default)]
    pub temperature: Option<f32>,
    /// A system prompt template (tera) instead of the built-in one.
    #[serde(default)]
    pub prompt: Option<PathBuf>,
    /// Tools offered per request, chosen by embedding similarity; 0 = all.
    #[serde(default)]
    pub tools_top_k: Option<usize>,
    /// Most model calls per task turn (default: the agent's).
    #[serde(default)]
    pub max_steps: Option<usize>,
    /// Most tokens per model reply.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Which writes wait for approval.
    #[serde(default)]
    pub policy: PolicySpec,
    /// How a turn runs: the open tool loop (default) or the pipeline
    /// (plan, resolve, fill, run, answer).
    #[serde(default)]
    pub mode: TurnMode,
}

/// The approval policy, as the agent's [`Policy`] with every field optional.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    /// Whether ordinary writes run directly or wait (default: directly).
    #[serde(default)]
    pub writes: WritePolicy,
    /// Skip policy and destructive waits, as `--approve-all` does.
    #[serde(default)]
    pub approve_all: bool,
}

fn yes() -> bool {
    true
}

impl AgentSpec {
    /// Reads a TOML file; a relative `prompt` is taken relative to it.
    pub fn load(path: &Path) -> Result<AgentSpec> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut spec: AgentSpec = toml::from_str(&text).map_err(|e| Error::file(path, e))?;
        if let Some(p) = &spec.prompt
            && p.is_relative()
        {
            spec.prompt = Some(path.parent().unwrap_or(Path::new(".")).join(p));
        }
        spec.check()?;
        Ok(spec)
    }

    /// Refuses a spec that cannot run: a name unusable as a file name, or an
    /// `openai` backend without `base_url` ([`Error::Config`]).
    pub fn check(&self) -> Result<()> {
        if self.name.trim().is_empty() || self.name.contains(['/', '\\', ' ']) {
            return Err(Error::Config(format!(
                "name {:?} must be one word usable as a file name",
                self.name
            )));
        }
        if self.backend == BackendKind::Openai && self.base_url.is_none() {
            return Err(Error::Config("backend openai needs base_url".into()));
        }
        Ok(())
    }

    /// Tools offered per request: the local model gets the 4 closest by default.
    pub fn top_k(&self) -> usize {
        self.tools_top_k.unwrap_or(match self.backend {
            BackendKind::Local => 4,
            BackendKind::Openai => 0,
        })
    }

    /// The name the backend reports (and the recording is keyed by) without loading it.
    pub fn model_name(&self) -> String {
        self.model.clone()
    }

    /// The system prompt the arm uses.
    pub fn prompt(&self) -> Result<Prompt> {
        match &self.prompt {
            None => Ok(Prompt::system()?),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?;
                Ok(Prompt::from_text(&text)?)
            }
        }
    }

    /// The loop's settings: the small-model profile for the local backend.
    pub fn agent_config(
        &self,
        index: Option<Arc<ToolIndex>>,
        now: DateTime<Utc>,
    ) -> Result<AgentConfig> {
        let selection = match (self.top_k(), index) {
            (0, _) => Selection::All,
            (k, Some(index)) => Selection::TopK { k, index },
            (_, None) => return Err(Error::Config("tool selection needs the embedder".into())),
        };
        let mut c = match self.backend {
            BackendKind::Local => AgentConfig::small_model(selection),
            BackendKind::Openai => AgentConfig {
                selection,
                ..AgentConfig::default()
            },
        };
        c.policy = Policy {
            writes: self.policy.writes,
            approve_all: self.policy.approve_all,
        };
        c.now = Some(now);
        if let Some(n) = self.max_steps {
            c.max_steps = n;
        }
        if self.max_tokens.is_some() {
            c.max_tokens = self.max_tokens;
        }
        Ok(c)
    }

    /// Loads the model (blocking for the local one: call off the async runtime).
    pub fn load_backend(&self) -> Result<Arc<dyn LlmBackend>> {
        match self.backend {
            BackendKind::Openai => {
                let mut c =
                    OpenAiConfig::new(self.base_url.clone().unwrap_or_default(), &self.model);
                c.api_key = self
                    .api_key_env
                    .as_ref()
                    .and_then(|v| std::env::var(v).ok());
                c.temperature = self.temperature.or(Some(0.0));
                let b = OpenAiBackend::new(c).map_err(|e| Error::Model(e.to_string()))?;
                Ok(Arc::new(b))
            }
            BackendKind::Local => {
                let path = if self.model.ends_with(".gguf") {
                    PathBuf::from(&self.model)
                } else {
                    rapport_models::ensure(&self.model).map_err(|e| Error::Model(e.to_string()))?
                };
                let model = rapport_models::llm::ChatModel::load(
                    &path,
                    rapport_models::llm::LoadOptions {
                        name: Some(self.model.clone()),
                        n_ctx: self.ctx.unwrap_or(4096),
                        n_threads: self.threads,
                        ..Default::default()
                    },
                )
                .map_err(|e| Error::Model(e.to_string()))?;
                let mut b = LocalBackend::new(Arc::new(model))
                    .sampled(self.temperature.unwrap_or(0.0), SAMPLING_SEED);
                b.constrained = self.constrained;
                Ok(Arc::new(b))
            }
        }
    }
}

/// The first seed of a sampled local arm (`temperature` > 0): fixed, so a
/// rerun of the same configuration on the same machine draws the same.
const SAMPLING_SEED: u32 = 0x5eed;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_file_parses_with_the_agent_policy_type() {
        let spec: AgentSpec = toml::from_str(
            "name = \"a\"\nbackend = \"local\"\nmodel = \"m\"\nconstrained = false\n[policy]\nwrites = \"approve\"\n",
        )
        .unwrap();
        assert!(!spec.constrained);
        assert_eq!(spec.policy.writes, rapport_agent::WritePolicy::Approve);
        assert_eq!(spec.top_k(), 4);
        assert!(
            toml::from_str::<AgentSpec>("name = \"a\"\nbackend = \"x\"\nmodel = \"m\"").is_err()
        );
        let bad = AgentSpec {
            backend: BackendKind::Openai,
            ..spec
        };
        assert!(bad.check().is_err());
    }
}
