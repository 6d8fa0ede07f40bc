//! An agent profile: which model behind which backend, how a turn runs (loop
//! or pipeline), how many tools each request is offered, the context, the
//! approval policy and the guards. One definition for every caller: `rapport
//! chat`, `ask` and `serve` build their agent from one (from flags, or from
//! a file with `--profile`), and each eval arm is one (`evals/agents/*.toml`),
//! so an eval measures exactly what a rep runs.
//!
//! ```toml
//! name = "qwen05-pipeline"
//! backend = "local"                    # local | openai
//! model = "qwen2.5-coder-0.5b-instruct-q4_k_m"
//! constrained = true                   # local: schema-constrained tool calls
//! threads = 2
//! mode = "pipeline"                    # loop | pipeline
//! # prompt = "my-system.tera"          # another system prompt (relative to this file)
//! # tools_top_k = 4                    # tools offered per request (local default 4; 0 = all)
//! # guards_off = ["apology"]           # guards switched off, to measure them
//! # base_url = "http://127.0.0.1:8089/v1"   # openai
//! # api_key_env = "OPENAI_API_KEY"
//! # [policy]
//! # writes = "direct"                  # direct | approve
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::agent::AgentConfig;
use crate::backend::LlmBackend;
use crate::backend::openai::{OpenAiBackend, OpenAiConfig};
use crate::guards::Guards;
use crate::pipeline::TurnMode;
use crate::policy::{Policy, WritePolicy};
use crate::prompt::Prompt;
use crate::select::{Selection, ToolIndex};

/// Why a profile could not be read or used.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The file is not a profile.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with its line.
        message: String,
    },
    /// A setting cannot work (no endpoint for `openai`, an unknown guard, …).
    #[error("agent profile: {0}")]
    Invalid(String),
    /// The model could not be fetched or loaded, or its prompt rendered.
    #[error("model: {0}")]
    Model(String),
}

/// Which kind of backend a profile talks to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// The GGUF model in process (llama.cpp).
    #[default]
    Local,
    /// Any OpenAI-compatible endpoint.
    Openai,
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

/// One agent: a model, its backend and the agent's settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Names the profile in reports and the eval recording file.
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
    /// Local: context window in tokens (default 4096).
    #[serde(default)]
    pub ctx: Option<u32>,
    /// Openai: the endpoint, e.g. `http://127.0.0.1:8080/v1` (required).
    #[serde(default)]
    pub base_url: Option<String>,
    /// Environment variable holding the endpoint's API key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// The endpoint's API key itself (from a command-line flag; never
    /// written to a file or a report).
    #[serde(skip)]
    pub api_key: Option<String>,
    /// Sampling temperature (default 0: repeatable turns).
    #[serde(default)]
    pub temperature: Option<f32>,
    /// A system prompt template (tera) instead of the built-in one.
    #[serde(default)]
    pub prompt: Option<PathBuf>,
    /// Tools offered per request, chosen by embedding similarity; 0 = all.
    #[serde(default)]
    pub tools_top_k: Option<usize>,
    /// Most model calls per turn (default: the agent's).
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
    /// Guards switched off, by name (e.g. `["apology", "parrot"]`), to
    /// measure what each is worth; approvals and budgets cannot be.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guards_off: Vec<String>,
}

fn yes() -> bool {
    true
}

/// The first seed of a sampled local profile (`temperature` > 0): fixed, so
/// a rerun of the same configuration on the same machine draws the same.
const SAMPLING_SEED: u32 = 0x5eed;

impl Profile {
    /// A profile of `model` behind `backend` with every other setting at
    /// its default.
    pub fn new(name: &str, backend: BackendKind, model: &str) -> Profile {
        Profile {
            name: name.to_owned(),
            backend,
            model: model.to_owned(),
            constrained: true,
            threads: None,
            ctx: None,
            base_url: None,
            api_key_env: None,
            api_key: None,
            temperature: None,
            prompt: None,
            tools_top_k: None,
            max_steps: None,
            max_tokens: None,
            policy: PolicySpec::default(),
            mode: TurnMode::default(),
            guards_off: Vec::new(),
        }
    }

    /// Reads a TOML file; a relative `prompt` is taken relative to it.
    pub fn load(path: &Path) -> Result<Profile, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Io {
            path: path.to_owned(),
            source,
        })?;
        let mut profile: Profile = toml::from_str(&text).map_err(|e| ProfileError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        if let Some(p) = &profile.prompt
            && p.is_relative()
        {
            profile.prompt = Some(path.parent().unwrap_or(Path::new(".")).join(p));
        }
        profile.check()?;
        Ok(profile)
    }

    /// Refuses a profile that cannot run: a name unusable as a file name,
    /// an `openai` backend without `base_url`, or a guard that is unknown or
    /// cannot be switched off.
    pub fn check(&self) -> Result<(), ProfileError> {
        if self.name.trim().is_empty() || self.name.contains(['/', '\\', ' ']) {
            return Err(ProfileError::Invalid(format!(
                "name {:?} must be one word usable as a file name",
                self.name
            )));
        }
        if self.backend == BackendKind::Openai && self.base_url.is_none() {
            return Err(ProfileError::Invalid(
                "backend openai needs base_url".into(),
            ));
        }
        self.guards()?;
        Ok(())
    }

    /// The guards this profile runs with.
    pub fn guards(&self) -> Result<Guards, ProfileError> {
        Guards::without(&self.guards_off).map_err(ProfileError::Invalid)
    }

    /// Tools offered per request: the local model gets the 4 closest by default.
    pub fn top_k(&self) -> usize {
        self.tools_top_k.unwrap_or(match self.backend {
            BackendKind::Local => 4,
            BackendKind::Openai => 0,
        })
    }

    /// The system prompt the profile uses.
    pub fn prompt(&self) -> Result<Prompt, ProfileError> {
        let prompt = match &self.prompt {
            None => Prompt::system(),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ProfileError::Io {
                    path: p.clone(),
                    source,
                })?;
                Prompt::from_text(&text)
            }
        };
        prompt.map_err(|e| ProfileError::Model(e.to_string()))
    }

    /// The loop's settings: the small-model ones for the local backend.
    /// `index` picks the tools when [`Profile::top_k`] is not 0; `now`
    /// fixes the clock (evals), else the agent reads it.
    pub fn agent_config(
        &self,
        index: Option<Arc<ToolIndex>>,
        now: Option<DateTime<Utc>>,
    ) -> Result<AgentConfig, ProfileError> {
        let selection = match (self.top_k(), index) {
            (0, _) => Selection::All,
            (k, Some(index)) => Selection::TopK { k, index },
            (_, None) => {
                return Err(ProfileError::Invalid(
                    "tool selection needs the embedder".into(),
                ));
            }
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
        c.now = now;
        if let Some(n) = self.max_steps {
            c.max_steps = n;
        }
        if self.max_tokens.is_some() {
            c.max_tokens = self.max_tokens;
        }
        c.guards = self.guards()?;
        Ok(c)
    }

    /// Loads the model (blocking for the local one, which it fetches first
    /// if missing: call off the async runtime).
    pub fn load_backend(&self) -> Result<Arc<dyn LlmBackend>, ProfileError> {
        match self.backend {
            BackendKind::Openai => {
                let mut c =
                    OpenAiConfig::new(self.base_url.clone().unwrap_or_default(), &self.model);
                c.api_key = self.api_key.clone().or_else(|| {
                    self.api_key_env
                        .as_ref()
                        .and_then(|v| std::env::var(v).ok())
                });
                c.temperature = self.temperature.or(Some(0.0));
                let b = OpenAiBackend::new(c).map_err(|e| ProfileError::Model(e.to_string()))?;
                Ok(Arc::new(b))
            }
            BackendKind::Local => self.load_local(),
        }
    }

    #[cfg(feature = "local")]
    fn load_local(&self) -> Result<Arc<dyn LlmBackend>, ProfileError> {
        use crate::backend::local::LocalBackend;
        let model_err =
            |e: &dyn std::fmt::Display| ProfileError::Model(format!("{}: {e}", self.model));
        let path = if self.model.ends_with(".gguf") {
            PathBuf::from(&self.model)
        } else {
            rapport_models::ensure(&self.model).map_err(|e| model_err(&e))?
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
        .map_err(|e| model_err(&e))?;
        let mut b = LocalBackend::new(Arc::new(model))
            .sampled(self.temperature.unwrap_or(0.0), SAMPLING_SEED);
        b.constrained = self.constrained;
        Ok(Arc::new(b))
    }

    #[cfg(not(feature = "local"))]
    fn load_local(&self) -> Result<Arc<dyn LlmBackend>, ProfileError> {
        Err(ProfileError::Invalid(
            "this build has no local models (the agent's `local` feature is off)".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_file_parses_with_the_agent_policy_type() {
        let p: Profile = toml::from_str(
            "name = \"a\"\nbackend = \"local\"\nmodel = \"m\"\nconstrained = false\n[policy]\nwrites = \"approve\"\n",
        )
        .unwrap();
        assert!(!p.constrained);
        assert_eq!(p.policy.writes, WritePolicy::Approve);
        assert_eq!(p.top_k(), 4);
        assert!(toml::from_str::<Profile>("name = \"a\"\nbackend = \"x\"\nmodel = \"m\"").is_err());
        let no_endpoint = Profile {
            backend: BackendKind::Openai,
            ..p.clone()
        };
        assert!(no_endpoint.check().is_err());
        let no_approvals = Profile {
            guards_off: vec!["approval".into()],
            ..p
        };
        let e = no_approvals.check().unwrap_err().to_string();
        assert!(e.contains("cannot be switched off"), "{e}");
    }

    #[test]
    fn the_api_key_is_never_written_out() {
        let mut p = Profile::new("a", BackendKind::Openai, "m");
        p.api_key = Some("sk-secret".into());
        let text = toml::to_string(&p).unwrap();
        assert!(!text.contains("sk-secret"), "{text}");
    }

    #[test]
    fn the_local_profile_gets_the_small_model_settings_and_its_guards() {
        let mut p = Profile::new("a", BackendKind::Openai, "m");
        p.guards_off = vec!["parrot".into()];
        p.max_steps = Some(3);
        let c = p.agent_config(None, None).unwrap();
        assert!(matches!(c.selection, Selection::All));
        assert_eq!(c.max_steps, 3);
        assert!(!c.guards.on(crate::Guard::Parrot));
        let local = Profile::new("b", BackendKind::Local, "m");
        let e = local.agent_config(None, None).err().unwrap().to_string();
        assert!(e.contains("needs the embedder"), "{e}");
    }
}
