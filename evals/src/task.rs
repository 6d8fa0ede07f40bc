//! The task format: what a suite file says, parsed with serde from YAML.
//!
//! A suite file holds tasks. A task names its starting state (a named seed at a
//! fixed seed, plus inline records that expectations refer to as `@ref`), the
//! user it acts as, the user's turns and how approvals are answered, and the
//! expectations graded on the outcome: the final database rows, the tool calls
//! the run made, and the answer. Validation checks every name a task uses
//! (tools, record types, refs, users, seeds) before anything runs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use rapport_crm::RecordType;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

/// Tools that tasks may name before they exist in the registry (built on
/// another branch). A task that needs one is reported as skipped, not failed.
pub const PENDING_TOOLS: &[&str] = &["next_best_actions"];

/// The users every seed creates, by the short name tasks use (`user: dana`,
/// `owner_id: "@marcus"`): (short name, full name, role).
pub const SEED_USERS: &[(&str, &str, &str)] = &[
    ("alex", "Alex Morgan", "admin"),
    ("priya", "Priya Shah", "manager"),
    ("dana", "Dana Ruiz", "rep"),
    ("marcus", "Marcus Webb", "rep"),
    ("sofia", "Sofia Lindqvist", "rep"),
    ("tom", "Tom Becker", "rep"),
    ("jordan", "Jordan Ellis", "viewer"),
];

/// Tags that mark safety tasks: a previously passing one that fails stops the gate.
pub const SAFETY_TAGS: &[&str] = &["injection", "permission"];

/// One suite file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteFile {
    /// The suite's name (defaults to the file stem).
    #[serde(default)]
    pub suite: Option<String>,
    /// What the suite tests, for people.
    #[serde(default)]
    pub description: Option<String>,
    /// Values every task of the file starts from (seed, user, approvals, tags).
    #[serde(default)]
    pub defaults: Defaults,
    /// The tasks, as written.
    pub tasks: Vec<Task>,
}

/// Values a suite file's tasks start from; a task's own values win.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// The starting database.
    pub seed: Option<Seed>,
    /// Who talks to the agent (a seed user's short name).
    pub user: Option<String>,
    /// How approval requests are answered.
    pub approvals: Option<Approvals>,
    /// Tags added to every task's own.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A suite: its name and its tasks with the file's defaults applied.
#[derive(Debug, Clone, Serialize)]
pub struct Suite {
    /// The suite's name.
    pub name: String,
    /// The file it was read from.
    pub path: PathBuf,
    /// Its tasks, defaults applied, in file order.
    pub tasks: Vec<Task>,
}

/// One task.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Task {
    /// Unique within the suite; reports and recordings are keyed by it.
    pub id: String,
    /// For `--only` and per-tag pass rates; `injection` and `permission` mark safety tasks.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The starting database: a named seed (default: `demo`).
    #[serde(default)]
    pub seed: Option<Seed>,
    /// Records created after the seed, in order; later ones may refer to
    /// earlier ones (`company_id: "@acme"`) and to seed users (`"@dana"`).
    #[serde(default)]
    pub records: Vec<InlineRecord>,
    /// Index the activities' text for `search_interactions` (slower setup).
    #[serde(default)]
    pub index: bool,
    /// Who talks to the agent: a seed user's short name (default `dana`).
    #[serde(default)]
    pub user: Option<String>,
    /// How approval requests are answered (default: approve).
    #[serde(default)]
    pub approvals: Option<Approvals>,
    /// The user's messages, in order.
    pub turns: Vec<Turn>,
    /// What must be true after the run.
    #[serde(default)]
    pub expect: Expect,
}

/// A named starting state.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Seed {
    /// `empty` or `demo`.
    Named(String),
    /// A named seed with its size or random seed changed.
    Params {
        /// `empty` or `demo`.
        name: String,
        /// Companies to generate (default [`DEMO_COMPANIES`]).
        #[serde(default)]
        companies: Option<usize>,
        /// Seed of the generated data (default [`DEMO_SEED`]).
        #[serde(default)]
        seed: Option<u64>,
    },
}

/// The seeds a task may start from.
pub const SEEDS: &[&str] = &["empty", "demo"];
/// Companies and random seed of `demo` unless the task says otherwise: small,
/// so that listings stay short enough for a small model's context.
pub const DEMO_COMPANIES: usize = 3;
/// Random seed of `demo` unless the task says otherwise.
pub const DEMO_SEED: u64 = 7;

impl Seed {
    /// `empty` or `demo`.
    pub fn name(&self) -> &str {
        match self {
            Seed::Named(n) => n,
            Seed::Params { name, .. } => name,
        }
    }

    /// Companies the seed generates: 0 for `empty`.
    pub fn companies(&self) -> usize {
        match (self.name(), self) {
            ("empty", _) => 0,
            (
                _,
                Seed::Params {
                    companies: Some(n), ..
                },
            ) => *n,
            _ => DEMO_COMPANIES,
        }
    }

    /// Seed of the generated data.
    pub fn random_seed(&self) -> u64 {
        match self {
            Seed::Params { seed: Some(s), .. } => *s,
            _ => DEMO_SEED,
        }
    }
}

/// A record created for the task.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InlineRecord {
    /// The name expectations and later records use (`@ref`).
    #[serde(rename = "ref", default)]
    pub reference: Option<String>,
    /// The record type (`company`, `deal`, ...).
    #[serde(rename = "type")]
    pub record_type: String,
    /// Its fields; `@ref` values are replaced by the ids they name.
    pub fields: serde_json::Map<String, Value>,
    /// Tags to put on it.
    #[serde(default)]
    pub tags: Vec<String>,
    /// A deal only: close it once created, as `close_deal` does (a deal
    /// cannot be created closed: closing takes the domain's own path).
    #[serde(default)]
    pub close: Option<InlineClose>,
}

/// How an inline deal is closed.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InlineClose {
    /// `won` or `lost`.
    pub outcome: CloseOutcome,
    /// Why, as a rep (or an import) wrote it.
    pub reason: String,
}

/// A closed deal's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseOutcome {
    /// The deal was won.
    Won,
    /// The deal was lost.
    Lost,
}

/// How the simulated user answers approval requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Approvals {
    /// Approve every call as proposed.
    Approve,
    /// Reject every call.
    Reject,
}

/// One user message.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Turn {
    /// Just the text; approvals as the task says.
    Text(String),
    /// The text with its own way of answering approvals.
    Full {
        /// What the user says.
        say: String,
        /// How this turn's approval requests are answered (default: the task's).
        #[serde(default)]
        approvals: Option<Approvals>,
    },
}

impl Turn {
    /// What the user says.
    pub fn text(&self) -> &str {
        match self {
            Turn::Text(s) => s,
            Turn::Full { say, .. } => say,
        }
    }

    /// This turn's own approval answer, if it has one.
    pub fn approvals(&self) -> Option<Approvals> {
        match self {
            Turn::Text(_) => None,
            Turn::Full { approvals, .. } => *approvals,
        }
    }
}

/// What must be true after the run.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Records that must (or must not) exist, with fields.
    #[serde(default)]
    pub records: Vec<RecordExpect>,
    /// Change in the number of records per type (`task: 1`).
    #[serde(default)]
    pub counts: BTreeMap<String, i64>,
    /// Inline records (`@ref`) or whole types (`type:deal`) that must be exactly
    /// as they were at the start; `@ref except f, g` lets the fields named
    /// (and `updated_at`) change and holds every other field: what an update
    /// task says so that a write which also sets a status or a value fails.
    #[serde(default)]
    pub unchanged: Vec<String>,
    /// What the final answer must (not) say.
    #[serde(default)]
    pub answer: AnswerExpect,
    /// Which tools must, may not or may only so often be called.
    #[serde(default)]
    pub tools: ToolsExpect,
    /// No destructive call may run without an approved proposal (default true).
    #[serde(default = "yes")]
    pub no_unapproved_destructive: bool,
}

fn yes() -> bool {
    true
}

/// A record that must exist (or not) at the end.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RecordExpect {
    /// The record type.
    #[serde(rename = "type")]
    pub record_type: String,
    /// Field matchers selecting the rows (see [`crate::matcher`]); `@ref` names
    /// an inline record's id (as a value) — `id: "@acme"` selects that record.
    #[serde(rename = "where", default)]
    pub filter: serde_json::Map<String, Value>,
    /// Matchers the selected rows must satisfy.
    #[serde(default)]
    pub fields: serde_json::Map<String, Value>,
    /// Tags the rows must carry / must not carry.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Tags the rows must not carry.
    #[serde(default)]
    pub no_tags: Vec<String>,
    /// The row must not exist.
    #[serde(default)]
    pub absent: bool,
    /// Exactly this many rows must match `where` (default: at least one).
    #[serde(default)]
    pub count: Option<usize>,
}

/// What the final answer must and must not say.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerExpect {
    /// Each must appear in the final answer (case-insensitive).
    #[serde(default)]
    pub contains: Vec<String>,
    /// At least one of each group must appear.
    #[serde(default)]
    pub contains_any: Vec<Vec<String>>,
    /// None may appear (case-insensitive).
    #[serde(default)]
    pub not_contains: Vec<String>,
    /// Activities (`@ref`) whose ids the answer must cite.
    #[serde(default)]
    pub cites: Vec<String>,
    /// The answer must be a question to the user (a clarification), not an action.
    #[serde(default)]
    pub asks: bool,
}

/// What the calls of the run must look like.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ToolsExpect {
    /// Each must have been called at least once.
    #[serde(default)]
    pub required: Vec<String>,
    /// At least one of each group must have been called.
    #[serde(default)]
    pub required_any: Vec<Vec<String>>,
    /// None may be called (a proposal counts: the model asked for it).
    #[serde(default)]
    pub forbidden: Vec<String>,
    /// No write or destructive tool may be called at all.
    #[serde(default)]
    pub read_only: bool,
    /// At most this many calls in all.
    #[serde(default)]
    pub max_calls: Option<usize>,
    /// Bounds per tool: `create_task: 1` means at most one call.
    #[serde(default)]
    pub at_most: BTreeMap<String, usize>,
}

/// One `unchanged` entry, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unchanged<'a> {
    /// `type:deal`: every row of the type.
    Type(&'a str),
    /// `@ref` or `@ref except f, g`.
    Record {
        /// The `@ref` naming the record.
        reference: &'a str,
        /// Fields the task lets change.
        except: Vec<&'a str>,
    },
}

/// The bookkeeping field every write moves, let through by `except`.
pub const WRITE_STAMP: &str = "updated_at";

impl<'a> Unchanged<'a> {
    /// Parses one `unchanged` entry of a task.
    pub fn parse(u: &'a str) -> Unchanged<'a> {
        if let Some(t) = u.strip_prefix("type:") {
            return Unchanged::Type(t.trim());
        }
        match u.split_once(" except ") {
            Some((r, fields)) => Unchanged::Record {
                reference: r.trim(),
                except: fields
                    .split(',')
                    .map(str::trim)
                    .filter(|f| !f.is_empty())
                    .collect(),
            },
            None => Unchanged::Record {
                reference: u.trim(),
                except: Vec::new(),
            },
        }
    }
}

impl Task {
    /// The starting database (default: `demo`).
    pub fn seed(&self) -> Seed {
        self.seed.clone().unwrap_or(Seed::Named("demo".into()))
    }

    /// Who talks to the agent (default: `dana`).
    pub fn user(&self) -> &str {
        self.user.as_deref().unwrap_or("dana")
    }

    /// How approval requests are answered (default: approve).
    pub fn approvals(&self) -> Approvals {
        self.approvals.unwrap_or(Approvals::Approve)
    }

    /// Whether a tag marks it a safety task ([`SAFETY_TAGS`]): gated separately.
    pub fn is_safety(&self) -> bool {
        self.tags.iter().any(|t| SAFETY_TAGS.contains(&t.as_str()))
    }

    /// Every tool the task names.
    pub fn tools_named(&self) -> BTreeSet<&str> {
        let t = &self.expect.tools;
        t.required
            .iter()
            .chain(t.required_any.iter().flatten())
            .chain(&t.forbidden)
            .chain(t.at_most.keys())
            .map(String::as_str)
            .collect()
    }

    /// Tools the task needs that the registry does not have (yet).
    pub fn missing_tools(&self, known: &BTreeSet<String>) -> Vec<String> {
        let t = &self.expect.tools;
        t.required
            .iter()
            .chain(
                t.required_any
                    .iter()
                    .filter(|g| g.iter().all(|n| !known.contains(n)))
                    .flatten(),
            )
            .filter(|n| !known.contains(*n))
            .cloned()
            .collect()
    }

    fn apply(&mut self, d: &Defaults) {
        if self.seed.is_none() {
            self.seed = d.seed.clone();
        }
        if self.user.is_none() {
            self.user = d.user.clone();
        }
        if self.approvals.is_none() {
            self.approvals = d.approvals;
        }
        for t in &d.tags {
            if !self.tags.contains(t) {
                self.tags.push(t.clone());
            }
        }
    }

    /// Checks every name the task uses; `tools` are the registry's tool names.
    pub fn validate(&self, tools: &BTreeSet<String>) -> std::result::Result<(), String> {
        if self.id.trim().is_empty() || self.id.contains(char::is_whitespace) {
            return Err(format!("task id {:?} must be one word", self.id));
        }
        if self.turns.is_empty() || self.turns.iter().any(|t| t.text().trim().is_empty()) {
            return Err("a task needs at least one non-empty turn".into());
        }
        let seed = self.seed();
        if !SEEDS.contains(&seed.name()) {
            return Err(format!("unknown seed {:?}; seeds: {SEEDS:?}", seed.name()));
        }
        if !SEED_USERS.iter().any(|u| u.0 == self.user()) {
            return Err(format!(
                "unknown user {:?}; users: {}",
                self.user(),
                SEED_USERS
                    .iter()
                    .map(|u| u.0)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let mut refs: BTreeSet<String> = SEED_USERS
            .iter()
            .map(|u| u.0)
            .chain(crate::runner::PIPELINE_REFS.iter().copied())
            .map(str::to_owned)
            .collect();
        for r in &self.records {
            RecordType::parse(&r.record_type).map_err(|e| e.to_string())?;
            check_refs(&Value::Object(r.fields.clone()), &refs)
                .map_err(|e| format!("record {:?}: {e}", r.reference))?;
            if r.close.is_some() && r.record_type != "deal" {
                return Err(format!(
                    "record {:?}: only a deal can be closed (`close`)",
                    r.reference
                ));
            }
            if let Some(name) = &r.reference
                && !refs.insert(name.clone())
            {
                return Err(format!(
                    "ref {name:?} is defined twice (or names a seed user)"
                ));
            }
        }
        for name in self.tools_named() {
            if !tools.contains(name) && !PENDING_TOOLS.contains(&name) {
                return Err(format!("no tool named {name:?}"));
            }
        }
        let e = &self.expect;
        for r in &e.records {
            RecordType::parse(&r.record_type).map_err(|e| e.to_string())?;
            check_refs(&Value::Object(r.filter.clone()), &refs)?;
            check_refs(&Value::Object(r.fields.clone()), &refs)?;
            for m in r.filter.values().chain(r.fields.values()) {
                crate::matcher::Matcher::parse(m).map_err(|e| e.to_string())?;
            }
            if r.absent && r.count.is_some() {
                return Err("`absent` and `count` exclude each other".into());
            }
        }
        for k in e.counts.keys() {
            RecordType::parse(k).map_err(|e| e.to_string())?;
        }
        for u in &e.unchanged {
            match Unchanged::parse(u) {
                Unchanged::Type(t) => {
                    RecordType::parse(t).map_err(|e| e.to_string())?;
                }
                Unchanged::Record { reference, except } => {
                    check_refs(&Value::String(reference.to_owned()), &refs)?;
                    if !except.is_empty() {
                        self.check_fields(reference, &except)?;
                    }
                }
            }
        }
        for c in &e.answer.cites {
            check_refs(&Value::String(c.clone()), &refs)?;
        }
        if self.index
            && !self.records.iter().any(|r| r.record_type == "activity")
            && seed.companies() == 0
        {
            return Err("`index: true` with no activities to index".into());
        }
        Ok(())
    }
}

impl Task {
    /// The fields an `except` names must be fields of the ref's type (an
    /// inline record's, or a stage's or pipeline's for the seed's refs).
    fn check_fields(&self, reference: &str, fields: &[&str]) -> std::result::Result<(), String> {
        let name = reference.strip_prefix('@').unwrap_or(reference);
        let rt = match self
            .records
            .iter()
            .find(|r| r.reference.as_deref() == Some(name))
        {
            Some(r) => RecordType::parse(&r.record_type).map_err(|e| e.to_string())?,
            None if name == "sales" => RecordType::Pipeline,
            None if crate::runner::PIPELINE_REFS.contains(&name) => RecordType::Stage,
            None => RecordType::User,
        };
        for f in fields {
            if rt.def().field(f).is_none() && *f != "contact_ids" {
                return Err(format!(
                    "`{reference} except {f}`: a {rt} has no field {f:?}"
                ));
            }
        }
        Ok(())
    }
}

/// Every `@name` in `v` must be a known ref.
fn check_refs(v: &Value, refs: &BTreeSet<String>) -> std::result::Result<(), String> {
    match v {
        Value::String(s) => match s.strip_prefix('@') {
            Some(name) if !refs.contains(name) => Err(format!("unknown ref {s:?}")),
            _ => Ok(()),
        },
        Value::Array(a) => a.iter().try_for_each(|x| check_refs(x, refs)),
        Value::Object(m) => m.values().try_for_each(|x| check_refs(x, refs)),
        _ => Ok(()),
    }
}

impl Suite {
    /// Reads one suite file (YAML), applying its defaults.
    pub fn load(path: &Path) -> Result<Suite> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Suite::parse(&text, path)
    }

    /// Parses suite text read from `path` (named in errors) and applies its
    /// defaults; a file that does not parse is [`Error::Suite`]. Tasks are
    /// checked by [`validate`](Self::validate).
    pub fn parse(text: &str, path: &Path) -> Result<Suite> {
        let file: SuiteFile = serde_yaml::from_str(text).map_err(|e| Error::Suite {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let name = file.suite.clone().unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "suite".into())
        });
        let tasks = file
            .tasks
            .into_iter()
            .map(|mut t| {
                t.apply(&file.defaults);
                t
            })
            .collect();
        Ok(Suite {
            name,
            path: path.to_owned(),
            tasks,
        })
    }

    /// Validates every task, and that ids are unique within the suite.
    pub fn validate(&self, tools: &BTreeSet<String>) -> Result<()> {
        let mut seen = BTreeSet::new();
        for t in &self.tasks {
            if !seen.insert(&t.id) {
                return Err(self.invalid(&t.id, "the id is used twice".into()));
            }
            t.validate(tools).map_err(|m| self.invalid(&t.id, m))?;
        }
        Ok(())
    }

    fn invalid(&self, task: &str, message: String) -> Error {
        Error::Task {
            path: self.path.clone(),
            task: task.to_owned(),
            message,
        }
    }
}

/// The suite files to run: each argument is a file or a directory of `*.yaml`
/// files; no argument means `default_dir`.
pub fn load_suites(args: &[PathBuf], default_dir: &Path) -> Result<Vec<Suite>> {
    let roots: Vec<PathBuf> = if args.is_empty() {
        vec![default_dir.to_owned()]
    } else {
        args.to_vec()
    };
    let mut files = Vec::new();
    for root in roots {
        if root.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(&root)
                .map_err(|e| Error::io(&root, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| matches!(p.extension().and_then(|x| x.to_str()), Some("yaml" | "yml")))
                .collect();
            found.sort();
            files.extend(found);
        } else if root.is_file() {
            files.push(root);
        } else {
            return Err(Error::Suite {
                path: root,
                message: "no such suite file or directory".into(),
            });
        }
    }
    files.iter().map(|p| Suite::load(p)).collect()
}

/// The registry's tool names.
pub fn registry_tools(registry: &rapport_tools::Registry) -> BTreeSet<String> {
    registry.tools().map(|t| t.name().to_owned()).collect()
}
