//! The system prompt: a tera template from `prompts/`, compiled into the
//! binary, versioned by the hash of its text. The version goes into every
//! audit entry the agent writes, so a behaviour change can be traced to the
//! prompt that caused it.

use chrono::{DateTime, Datelike, Utc};
use sha2::{Digest, Sha256};
use tera::{Context, Tera};

use crate::error::AgentError;

/// The system prompt's template text.
pub const SYSTEM: &str = include_str!("../../prompts/system.tera");

/// What the system prompt says about the user and the day.
#[derive(Debug, Clone)]
pub struct PromptVars {
    /// The user's display name.
    pub user_name: String,
    /// The user's role (`rep`, `manager`, ...), which bounds what they may change.
    pub user_role: String,
    /// IANA time zone the user's relative dates are meant in.
    pub timezone: String,
    /// The current time, so the model can resolve "today" and "overdue".
    pub now: DateTime<Utc>,
    /// Ask for citations of activities (when search results may be shown).
    pub cite: bool,
}

/// A compiled template with its version.
#[derive(Debug, Clone)]
pub struct Prompt {
    tera: Tera,
    /// `system@` and the first 12 hex digits of the template's SHA-256.
    pub version: String,
}

impl Prompt {
    /// The built-in system prompt.
    pub fn system() -> Result<Prompt, AgentError> {
        Prompt::from_text(SYSTEM)
    }

    /// A system prompt from other template text (experiments, tests).
    pub fn from_text(text: &str) -> Result<Prompt, AgentError> {
        let mut tera = Tera::default();
        tera.add_raw_template("system", text)
            .map_err(|e| AgentError::Prompt(format!("{e:?}")))?;
        Ok(Prompt {
            tera,
            version: version_of("system", text),
        })
    }

    /// The prompt text for one user and moment; a template that does not
    /// render is an [`AgentError::Prompt`].
    pub fn render(&self, vars: &PromptVars) -> Result<String, AgentError> {
        let mut cx = Context::new();
        cx.insert("user_name", &vars.user_name);
        cx.insert("user_role", &vars.user_role);
        cx.insert("timezone", &vars.timezone);
        cx.insert("today", &vars.now.format("%Y-%m-%d").to_string());
        cx.insert("weekday", &vars.now.weekday().to_string());
        cx.insert("cite", &vars.cite);
        self.tera
            .render("system", &cx)
            .map(|s| s.trim_end().to_owned())
            .map_err(|e| AgentError::Prompt(format!("{e:?}")))
    }
}

/// `NAME@` and the first 12 hex digits of the text's SHA-256.
pub fn version_of(name: &str, text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    format!("{name}@{}", &hex::encode(digest)[..12])
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn renders_the_day_and_user_and_versions_by_text() {
        let p = Prompt::system().unwrap();
        let out = p
            .render(&PromptVars {
                user_name: "Dana Lee".into(),
                user_role: "rep".into(),
                timezone: "UTC".into(),
                now: Utc.with_ymd_and_hms(2026, 11, 21, 9, 0, 0).unwrap(),
                cite: true,
            })
            .unwrap();
        assert!(out.contains("Dana Lee (rep)"), "{out}");
        assert!(out.contains("Sat 2026-11-21"), "{out}");
        assert!(out.contains("[activity ID]"));
        assert!(p.version.starts_with("system@") && p.version.len() == 19);
        assert_ne!(Prompt::from_text("other").unwrap().version, p.version);
    }
}
