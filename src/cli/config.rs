//! `rapport.toml`: the settings of a deployment in one file, beside the
//! environment variables and flags that set the same things.
//!
//! Precedence is flags > environment > file > built-in defaults. The file is
//! read before the command line is parsed, and each of its values fills the
//! environment variable of that setting when the variable is unset; clap then
//! applies its usual flag-over-environment rule. So every setting has one
//! name in each place, and the file needs no second parser for the flags.
//!
//! The file is `--config FILE`, else `$RAPPORT_CONFIG`, else `./rapport.toml`
//! when it exists. `rapport config show [--json]` prints what is in effect and
//! where each value came from, secrets masked.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use clap::parser::ValueSource;
use serde_json::{Value, json};

/// One setting: its key in the file, its environment variable, and the
/// global flag that also sets it (if any).
#[derive(Debug)]
pub struct Setting {
    /// Dotted key in `rapport.toml` (`agent.llm`).
    pub key: &'static str,
    pub env: &'static str,
    /// The id of the global clap argument, for settings every command takes.
    pub arg: Option<&'static str>,
    /// Printed masked by `config show`.
    pub secret: bool,
}

const fn setting(key: &'static str, env: &'static str) -> Setting {
    Setting {
        key,
        env,
        arg: None,
        secret: false,
    }
}

/// Every setting the file may hold.
pub const SETTINGS: &[Setting] = &[
    Setting {
        arg: Some("data_dir"),
        ..setting("data_dir", "RAPPORT_DATA_DIR")
    },
    Setting {
        arg: Some("database_url"),
        ..setting("database_url", "RAPPORT_DATABASE_URL")
    },
    Setting {
        arg: Some("workspace"),
        ..setting("workspace", "RAPPORT_WORKSPACE")
    },
    Setting {
        arg: Some("as_user"),
        ..setting("user", "RAPPORT_USER")
    },
    setting("models_dir", "RAPPORT_MODELS_DIR"),
    setting("agent.llm", "RAPPORT_LLM"),
    setting("agent.local_model", "RAPPORT_LOCAL_MODEL"),
    setting("agent.write_policy", "RAPPORT_WRITE_POLICY"),
    setting("agent.mode", "RAPPORT_AGENT_MODE"),
    setting("agent.profile", "RAPPORT_AGENT_PROFILE"),
    setting("agent.openai_base_url", "RAPPORT_OPENAI_BASE_URL"),
    setting("agent.openai_model", "RAPPORT_OPENAI_MODEL"),
    Setting {
        secret: true,
        ..setting("agent.openai_api_key", "RAPPORT_OPENAI_API_KEY")
    },
    setting("server.addr", "RAPPORT_ADDR"),
    setting("server.cors_origins", "RAPPORT_CORS_ORIGINS"),
    setting("server.llm_addr", "RAPPORT_LLM_ADDR"),
    setting("index.qdrant_url", "RAPPORT_QDRANT_URL"),
    Setting {
        secret: true,
        ..setting("index.qdrant_api_key", "RAPPORT_QDRANT_API_KEY")
    },
];

/// Where the settings came from, remembered for `config show`.
#[derive(Debug, Default, Clone)]
pub struct Loaded {
    /// The file that was read, if any.
    pub path: Option<PathBuf>,
    /// Environment variables this process got from the file.
    pub from_file: Vec<&'static str>,
}

/// The config file named on the command line (`--config FILE` or
/// `--config=FILE`), read before clap so the file can feed it.
fn config_arg(args: &[OsString]) -> Option<PathBuf> {
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let a = a.to_string_lossy();
        if a == "--" {
            return None;
        }
        if a == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(v) = a.strip_prefix("--config=") {
            return Some(PathBuf::from(v));
        }
    }
    None
}

/// Finds the file (flag, then `RAPPORT_CONFIG`, then `./rapport.toml`).
/// A file that was named must exist; the default one may be absent.
fn locate(args: &[OsString]) -> anyhow::Result<Option<PathBuf>> {
    let named = config_arg(args).or_else(|| std::env::var_os("RAPPORT_CONFIG").map(PathBuf::from));
    match named {
        Some(p) if p.is_file() => Ok(Some(p)),
        Some(p) => bail!("config file {} does not exist", p.display()),
        None => Ok(Some(PathBuf::from("rapport.toml")).filter(|p| p.is_file())),
    }
}

/// The file's values by dotted key; unknown keys and non-scalar values are
/// errors that list what is allowed.
pub fn parse(text: &str, path: &Path) -> anyhow::Result<Vec<(&'static Setting, String)>> {
    let table: toml::Table =
        toml::from_str(text).with_context(|| format!("reading {}", path.display()))?;
    let mut flat = Vec::new();
    flatten("", &table, &mut flat);
    let mut out = Vec::new();
    for (key, value) in flat {
        let Some(s) = SETTINGS.iter().find(|s| s.key == key) else {
            let known: Vec<&str> = SETTINGS.iter().map(|s| s.key).collect();
            bail!(
                "{}: unknown setting {key:?}; known settings: {}",
                path.display(),
                known.join(", ")
            );
        };
        let text = match value {
            toml::Value::String(v) => v,
            toml::Value::Integer(v) => v.to_string(),
            toml::Value::Float(v) => v.to_string(),
            toml::Value::Boolean(v) => v.to_string(),
            other => bail!(
                "{}: {key} must be a string, number or boolean, not {}",
                path.display(),
                other.type_str()
            ),
        };
        out.push((s, text));
    }
    Ok(out)
}

fn flatten(prefix: &str, table: &toml::Table, out: &mut Vec<(String, toml::Value)>) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => flatten(&key, t, out),
            other => out.push((key, other.clone())),
        }
    }
}

/// Reads the config file and fills the environment from it.
///
/// # Safety
///
/// Sets environment variables: call it before any other thread exists (at
/// the top of `main`, before the async runtime starts).
pub unsafe fn load(args: &[OsString]) -> anyhow::Result<Loaded> {
    let Some(path) = locate(args)? else {
        return Ok(Loaded::default());
    };
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut from_file = Vec::new();
    for (s, value) in parse(&text, &path)? {
        if std::env::var_os(s.env).is_none() {
            // SAFETY: the caller guarantees no other thread runs yet.
            unsafe { std::env::set_var(s.env, value) };
            from_file.push(s.env);
        }
    }
    Ok(Loaded {
        path: Some(path),
        from_file,
    })
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// What `config show` prints for a secret: enough to tell two keys apart.
fn mask(v: &str) -> String {
    let tail: String = v
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    if v.chars().count() <= 8 {
        "****".into()
    } else {
        format!("****{tail}")
    }
}

/// A database URL with its password masked.
fn mask_url(v: &str) -> String {
    let Some((scheme, rest)) = v.split_once("://") else {
        return v.to_owned();
    };
    let Some((auth, host)) = rest.split_once('@') else {
        return v.to_owned();
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:****@{host}"),
        None => v.to_owned(),
    }
}

/// Each setting with its value in effect and its source.
pub fn resolved(loaded: &Loaded, matches: &clap::ArgMatches) -> Vec<Value> {
    SETTINGS
        .iter()
        .map(|s| {
            let flag = s
                .arg
                .is_some_and(|a| matches.value_source(a) == Some(ValueSource::CommandLine));
            let env = std::env::var(s.env).ok();
            let (source, value) = if flag {
                let v = s
                    .arg
                    .and_then(|a| matches.get_raw(a))
                    .and_then(|mut r| r.next())
                    .map(|v| v.to_string_lossy().into_owned());
                ("flag", v)
            } else if let Some(v) = env {
                let from_file = loaded.from_file.contains(&s.env);
                (if from_file { "file" } else { "env" }, Some(v))
            } else {
                let default = s
                    .arg
                    .and_then(|a| matches.get_raw(a))
                    .and_then(|mut r| r.next())
                    .map(|v| v.to_string_lossy().into_owned());
                ("default", default)
            };
            let shown = value.map(|v| match (s.secret, s.key) {
                (true, _) => mask(&v),
                (_, "database_url") => mask_url(&v),
                _ => v,
            });
            json!({"key": s.key, "env": s.env, "value": shown, "source": source})
        })
        .collect()
}

/// `rapport config show`.
pub fn show(loaded: &Loaded, matches: &clap::ArgMatches, args: &ShowArgs) {
    let rows = resolved(loaded, matches);
    let file = loaded.path.as_ref().map(|p| p.display().to_string());
    if args.json {
        println!("{}", json!({"file": file, "settings": rows}));
        return;
    }
    println!("config file: {}", file.as_deref().unwrap_or("(none)"));
    for r in rows {
        println!(
            "{:<24} {:<8} {}",
            r["key"].as_str().unwrap_or_default(),
            r["source"].as_str().unwrap_or_default(),
            r["value"].as_str().unwrap_or("(unset)")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_names_known_settings_only() {
        let p = Path::new("rapport.toml");
        let got = parse("workspace = \"acme\"\n[agent]\nllm = \"openai\"\n", p).unwrap();
        let mut keys: Vec<(&str, &str)> = got.iter().map(|(s, v)| (s.env, v.as_str())).collect();
        keys.sort();
        assert_eq!(
            keys,
            [("RAPPORT_LLM", "openai"), ("RAPPORT_WORKSPACE", "acme")]
        );
        let err = parse("[agent]\nmodel = \"x\"\n", p)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown setting \"agent.model\""), "{err}");
        assert!(err.contains("agent.local_model"), "{err}");
        let err = parse("workspace = [1]\n", p).unwrap_err().to_string();
        assert!(err.contains("must be a string"), "{err}");
    }

    #[test]
    fn the_config_flag_is_found_before_clap() {
        let args: Vec<OsString> = ["rapport", "--config", "a.toml", "stats"]
            .map(OsString::from)
            .to_vec();
        assert_eq!(config_arg(&args), Some(PathBuf::from("a.toml")));
        let args: Vec<OsString> = ["rapport", "--config=b.toml"].map(OsString::from).to_vec();
        assert_eq!(config_arg(&args), Some(PathBuf::from("b.toml")));
        let args: Vec<OsString> = ["rapport", "--", "--config", "c"]
            .map(OsString::from)
            .to_vec();
        assert_eq!(config_arg(&args), None);
    }

    #[test]
    fn secrets_are_masked() {
        assert_eq!(mask("sk-abcdefghijkl"), "****ijkl");
        assert_eq!(mask("short"), "****");
        assert_eq!(
            mask_url("postgres://app:hunter2@db:5432/rapport"),
            "postgres://app:****@db:5432/rapport"
        );
        assert_eq!(mask_url("sqlite://x.db"), "sqlite://x.db");
    }
}
