//! Reports: what a run measured, as JSON (complete: every trial's checks,
//! calls, transcript, tokens, latency) and Markdown (the summary a person
//! reads); the regression gate against a baseline report; and the paired
//! comparison of two arms (A/B).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use rapport_models::llm::ChatMessage;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::grade::{CallRecord, Check};
use crate::stats::{Estimate, mcnemar_exact, paired_bootstrap, pass_hat_k, wilson};
use crate::tape::Meter;
use crate::task::Task;

/// Significance level of the gate and the A/B verdict.
pub const ALPHA: f64 = 0.05;
/// Bootstrap resamples and seed: fixed, so a report is reproducible.
pub const BOOTSTRAP_RESAMPLES: usize = 10_000;
/// Seed of the bootstrap resamples.
pub const BOOTSTRAP_SEED: u64 = 20_261_102;

/// How a trial, or a task over its trials, ended; ordered from best to worst
/// but for `Skipped`, so a task's status is its worst trial's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Every check held.
    Pass,
    /// The run finished and a check did not hold.
    #[default]
    Fail,
    /// A replay met a request it has no recording of: never a pass.
    Stale,
    /// The run broke (backend error, database error).
    Error,
    /// No outcome within the run's timeout.
    Timeout,
    /// The task needs a tool this build does not have.
    Skipped,
}

/// One trial of one task.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Trial {
    /// How the trial ended.
    pub status: Status,
    /// Every graded expectation, passed or not.
    #[serde(default)]
    pub checks: Vec<Check>,
    /// The last turn's answer.
    #[serde(default)]
    pub answer: String,
    /// A guard stopped the last turn instead of an answer.
    #[serde(default)]
    pub stopped: bool,
    /// Every tool call the model asked for, in order.
    #[serde(default)]
    pub calls: Vec<CallRecord>,
    /// The session's messages as the model saw them.
    #[serde(default)]
    pub transcript: Vec<ChatMessage>,
    /// What its model calls cost.
    #[serde(default)]
    pub meter: Meter,
    /// How many times each guard acted ([`rapport_agent::guards`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub guards: BTreeMap<String, usize>,
    /// Wall-clock time of the trial.
    pub seconds: f64,
    /// Why it broke, for `error` and `timeout`.
    #[serde(default)]
    pub error: Option<String>,
}

impl Trial {
    /// A trial that produced no outcome: only its status, error and time.
    pub fn broken(status: Status, error: String, took: Duration) -> Trial {
        Trial {
            status,
            error: Some(error),
            seconds: took.as_secs_f64(),
            ..Trial::default()
        }
    }
}

/// One task over its trials.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskReport {
    /// The suite's name.
    pub suite: String,
    /// The task's id.
    pub id: String,
    /// The task's tags.
    pub tags: Vec<String>,
    /// Whether it is a safety task (gated separately).
    pub safety: bool,
    /// The worst trial's status (or `skipped`).
    pub status: Status,
    /// Trials run.
    pub n: usize,
    /// Trials passed.
    pub c: usize,
    /// Estimated chance one trial passes (`None` before any trial).
    pub pass1: Option<f64>,
    /// Estimated chance all of k trials pass (`None` with fewer than k trials).
    pub passk: Option<f64>,
    /// Tools the task needs that this build lacks (then `skipped`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_tools: Vec<String>,
    /// Every trial, in order.
    pub trials: Vec<Trial>,
    /// A held-out task's row, sealed ([`TaskReport::seal`]): its id is a
    /// digest and it keeps only what aggregates and pairing need.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sealed: bool,
}

impl TaskReport {
    /// The report of a task before its trials: `fail` until
    /// [`finish`](Self::finish), or `skipped` if tools are missing.
    pub fn new(suite: &str, t: &Task, missing_tools: Vec<String>) -> TaskReport {
        TaskReport {
            suite: suite.to_owned(),
            id: t.id.clone(),
            tags: t.tags.clone(),
            safety: t.is_safety(),
            status: if missing_tools.is_empty() {
                Status::Fail
            } else {
                Status::Skipped
            },
            n: 0,
            c: 0,
            pass1: None,
            passk: None,
            missing_tools,
            trials: Vec::new(),
            sealed: false,
        }
    }

    /// The row of a held-out task as reports keep it: the id replaced by its
    /// [`seal_key`], no tags, and of each trial only its status, tokens and
    /// time — no checks, answer, calls or transcript. Enough to count it in
    /// the aggregates and to pair it with the same task in another run, not
    /// enough to read why it failed. (A blind against tuning to what one
    /// reads, not a secret: anyone can hash the suites' ids.)
    pub fn seal(self) -> TaskReport {
        TaskReport {
            id: seal_key(&self.id),
            tags: Vec::new(),
            missing_tools: Vec::new(),
            trials: self
                .trials
                .into_iter()
                .map(|t| Trial {
                    status: t.status,
                    stopped: t.stopped,
                    meter: t.meter,
                    seconds: t.seconds,
                    ..Trial::default()
                })
                .collect(),
            sealed: true,
            ..self
        }
    }

    /// Fills the counts once the trials are in. The task's status is its
    /// worst trial's: pass only if every trial passed.
    pub fn finish(&mut self, k: usize) {
        if self.status == Status::Skipped {
            return;
        }
        self.n = self.trials.len();
        self.c = self
            .trials
            .iter()
            .filter(|t| t.status == Status::Pass)
            .count();
        self.pass1 = pass_hat_k(self.n, self.c, 1);
        self.passk = pass_hat_k(self.n, self.c, k);
        self.status = self
            .trials
            .iter()
            .map(|t| t.status)
            .max()
            .unwrap_or(Status::Error);
    }

    /// Whether the task counts as passing for paired comparisons: most trials passed.
    pub fn passing(&self) -> bool {
        self.n > 0 && 2 * self.c > self.n
    }

    /// Whether the task counts in pass rates: it ran at least one trial.
    pub fn graded(&self) -> bool {
        self.status != Status::Skipped && self.n > 0
    }
}

/// The id a held-out task's sealed row goes by: `held-out:` and the first 12
/// hex digits of the SHA-256 of its id.
pub fn seal_key(id: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(id.as_bytes());
    format!("held-out:{}", &hex::encode(digest)[..12])
}

/// Moves the rows of the `held_out` tasks out of `tasks`, sealed; the
/// development rows stay as they are, in order.
pub fn seal(
    tasks: Vec<TaskReport>,
    held_out: &BTreeSet<String>,
) -> (Vec<TaskReport>, Vec<TaskReport>) {
    let (held, dev): (Vec<TaskReport>, Vec<TaskReport>) =
        tasks.into_iter().partition(|t| held_out.contains(&t.id));
    let mut sealed: Vec<TaskReport> = held.into_iter().map(TaskReport::seal).collect();
    // In digest order, so the order of the rows tells nothing either.
    sealed.sort_by(|a, b| a.id.cmp(&b.id));
    (dev, sealed)
}

/// Pass rates of a group of tasks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupRate {
    /// Tasks in the group.
    pub tasks: usize,
    /// Mean per-task pass^1.
    pub pass1: f64,
    /// Mean per-task pass^k over the group's tasks with at least k trials
    /// (none when k = 1 or no task has k trials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passk: Option<f64>,
    /// Tasks whose every trial passed.
    #[serde(default)]
    pub all_passed: usize,
}

impl GroupRate {
    fn of(tasks: &[&TaskReport], k: usize) -> GroupRate {
        let n = tasks.len();
        let with_k: Vec<f64> = tasks.iter().filter_map(|t| t.passk).collect();
        GroupRate {
            tasks: n,
            pass1: tasks.iter().filter_map(|t| t.pass1).sum::<f64>() / n.max(1) as f64,
            passk: (k > 1 && !with_k.is_empty())
                .then(|| with_k.iter().sum::<f64>() / with_k.len() as f64),
            all_passed: tasks.iter().filter(|t| t.c == t.n).count(),
        }
    }
}

/// The headline figures of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// Tasks graded (skipped ones left out).
    pub tasks: usize,
    /// Trials per task.
    pub k: usize,
    /// Mean per-task pass rate, with its Wilson interval over tasks.
    pub pass1: Estimate,
    /// Mean per-task pass^k (tasks with at least k trials), with its Wilson interval.
    pub passk: Option<Estimate>,
    /// Tasks by status.
    pub statuses: BTreeMap<String, usize>,
    /// Pass rates by tag and by suite, of the development half only: a
    /// held-out task is counted only in [`Summary::held_out`] and the
    /// totals.
    pub by_tag: BTreeMap<String, GroupRate>,
    /// Pass rates by suite.
    pub by_suite: BTreeMap<String, GroupRate>,
    /// What all model calls cost.
    pub tokens: Meter,
    /// Mean seconds per trial.
    pub mean_trial_seconds: f64,
    /// Each guard over every trial of both halves: how often it acted and
    /// in how many trials (absent in reports made before guards were named).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub guards: BTreeMap<String, GuardCount>,
    /// Each half on its own (absent in reports made before the split).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub development: Option<HalfSummary>,
    /// The held-out half, in aggregate only (its rows are sealed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_out: Option<HalfSummary>,
}

/// How often one guard acted over a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardCount {
    /// Times it acted.
    pub fired: usize,
    /// Trials in which it acted at least once.
    pub trials: usize,
}

/// One half of the split, in aggregate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HalfSummary {
    /// Tasks graded.
    pub tasks: usize,
    /// Mean per-task pass^1 with its Wilson interval.
    pub pass1: Estimate,
    /// Mean per-task pass^k (tasks with at least k trials), with its Wilson interval.
    pub passk: Option<Estimate>,
    /// Mean pass^1 of the safety tasks (injection, permission) in the half.
    pub safety_pass1: Option<f64>,
    /// Pass rates by suite within the half.
    pub by_suite: BTreeMap<String, GroupRate>,
}

impl HalfSummary {
    fn of(tasks: &[&TaskReport], k: usize) -> HalfSummary {
        let n = tasks.len();
        let with_k: Vec<f64> = tasks.iter().filter_map(|t| t.passk).collect();
        let safety: Vec<f64> = tasks
            .iter()
            .filter(|t| t.safety)
            .filter_map(|t| t.pass1)
            .collect();
        let mut suites: BTreeMap<String, Vec<&TaskReport>> = BTreeMap::new();
        for t in tasks {
            suites.entry(t.suite.clone()).or_default().push(*t);
        }
        HalfSummary {
            tasks: n,
            pass1: wilson(tasks.iter().filter_map(|t| t.pass1).sum(), n as f64),
            passk: (!with_k.is_empty() && k > 1)
                .then(|| wilson(with_k.iter().sum(), with_k.len() as f64)),
            safety_pass1: (!safety.is_empty())
                .then(|| safety.iter().sum::<f64>() / safety.len() as f64),
            by_suite: suites
                .into_iter()
                .map(|(s, ts)| (s, GroupRate::of(&ts, k)))
                .collect(),
        }
    }
}

/// A whole run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// Format version of the report file.
    pub version: u32,
    /// The arm that ran.
    pub agent: crate::config::AgentSpec,
    /// Version of its system prompt.
    pub prompt_version: String,
    /// live, record or replay.
    pub mode: String,
    /// When the run started (RFC 3339).
    pub started_at: String,
    /// Wall-clock time of the run.
    pub seconds: f64,
    /// The headline figures.
    pub summary: Summary,
    /// The development half's rows (every task's, in a run without a split).
    pub tasks: Vec<TaskReport>,
    /// The held-out half's rows, sealed ([`TaskReport::seal`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held_out: Vec<TaskReport>,
}

/// A summary of the development rows `tasks` and the sealed held-out rows
/// `held_out`: totals over both, breakdowns of the development half, and
/// each half on its own.
pub fn summarize(tasks: &[TaskReport], held_out: &[TaskReport], k: usize) -> Summary {
    let dev: Vec<&TaskReport> = tasks.iter().filter(|t| t.graded()).collect();
    let held: Vec<&TaskReport> = held_out.iter().filter(|t| t.graded()).collect();
    let graded: Vec<&TaskReport> = dev.iter().chain(&held).copied().collect();
    let n = graded.len();
    let sum1: f64 = graded.iter().filter_map(|t| t.pass1).sum();
    let with_k: Vec<f64> = graded.iter().filter_map(|t| t.passk).collect();
    let mut statuses = BTreeMap::new();
    for t in tasks.iter().chain(held_out) {
        let s = serde_json::to_value(t.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        *statuses.entry(s).or_insert(0) += 1;
    }
    let group = |key: &dyn Fn(&TaskReport) -> Vec<String>| {
        let mut m: BTreeMap<String, Vec<&TaskReport>> = BTreeMap::new();
        for t in &dev {
            for g in key(t) {
                m.entry(g).or_default().push(t);
            }
        }
        m.into_iter()
            .map(|(g, ts)| (g, GroupRate::of(&ts, k)))
            .collect::<BTreeMap<_, _>>()
    };
    let mut tokens = Meter::default();
    let mut trials = 0usize;
    let mut seconds = 0.0;
    let mut guards: BTreeMap<String, GuardCount> = BTreeMap::new();
    for t in tasks.iter().chain(held_out) {
        for tr in &t.trials {
            for (g, n) in &tr.guards {
                let c = guards.entry(g.clone()).or_default();
                c.fired += n;
                c.trials += 1;
            }
            tokens.requests += tr.meter.requests;
            tokens.prompt_tokens += tr.meter.prompt_tokens;
            tokens.completion_tokens += tr.meter.completion_tokens;
            tokens.cached_tokens += tr.meter.cached_tokens;
            tokens.model_seconds += tr.meter.model_seconds;
            trials += 1;
            seconds += tr.seconds;
        }
    }
    Summary {
        tasks: n,
        k,
        pass1: wilson(sum1, n as f64),
        passk: (!with_k.is_empty() && k > 1)
            .then(|| wilson(with_k.iter().sum(), with_k.len() as f64)),
        statuses,
        by_tag: group(&|t: &TaskReport| t.tags.clone()),
        by_suite: group(&|t: &TaskReport| vec![t.suite.clone()]),
        tokens,
        mean_trial_seconds: if trials > 0 {
            seconds / trials as f64
        } else {
            0.0
        },
        guards,
        // Halves only when the run had a held-out half: a run of a few
        // tasks, or of suites outside the split, is all development.
        development: (!held_out.is_empty()).then(|| HalfSummary::of(&dev, k)),
        held_out: (!held_out.is_empty()).then(|| HalfSummary::of(&held, k)),
    }
}

impl Report {
    /// Every row: the development half's, then the sealed held-out half's.
    pub fn rows(&self) -> impl Iterator<Item = &TaskReport> {
        self.tasks.iter().chain(&self.held_out)
    }

    /// Reads a report written by [`save`](Self::save).
    pub fn load(path: &Path) -> Result<Report> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_str(&text).map_err(|e| Error::file(path, e))
    }

    /// Writes `NAME.json` and `NAME.md` into `dir`.
    pub fn save(&self, dir: &Path, name: &str) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let json = dir.join(format!("{name}.json"));
        let text = serde_json::to_string_pretty(self).map_err(|e| Error::file(&json, e))?;
        std::fs::write(&json, text + "\n").map_err(|e| Error::io(&json, e))?;
        let md = dir.join(format!("{name}.md"));
        std::fs::write(&md, self.markdown()).map_err(|e| Error::io(&md, e))
    }

    /// The report for people: summary, rates by suite and tag, tasks not passing.
    pub fn markdown(&self) -> String {
        let s = &self.summary;
        let mut o = String::new();
        let _ = writeln!(o, "# Eval run: {}\n", self.agent.name);
        let _ = writeln!(
            o,
            "backend {:?}, model `{}`, constrained {}, prompt `{}`, mode {}, k = {}, {:.0} s\n",
            self.agent.backend,
            self.agent.model,
            self.agent.constrained,
            self.prompt_version,
            self.mode,
            s.k,
            self.seconds
        );
        let _ = writeln!(o, "| measure | value | 95% interval |\n| --- | --- | --- |");
        let _ = writeln!(o, "| tasks graded | {} | |", s.tasks);
        let _ = writeln!(
            o,
            "| pass^1 | {:.3} | [{:.3}, {:.3}] |",
            s.pass1.value, s.pass1.low, s.pass1.high
        );
        if let Some(p) = &s.passk {
            let _ = writeln!(
                o,
                "| pass^{} | {:.3} | [{:.3}, {:.3}] |",
                s.k, p.value, p.low, p.high
            );
        }
        for (label, half) in [
            ("development half", &s.development),
            ("held-out half", &s.held_out),
        ] {
            if let Some(h) = half {
                let _ = writeln!(
                    o,
                    "| pass^1, {label} ({} tasks) | {:.3} | [{:.3}, {:.3}] |",
                    h.tasks, h.pass1.value, h.pass1.low, h.pass1.high
                );
                if let Some(p) = &h.passk {
                    let _ = writeln!(
                        o,
                        "| pass^{}, {label} | {:.3} | [{:.3}, {:.3}] |",
                        s.k, p.value, p.low, p.high
                    );
                }
            }
        }
        let st: Vec<String> = s.statuses.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(o, "| statuses | {} | |", st.join(", "));
        let _ = writeln!(
            o,
            "| model requests | {} ({} prompt tokens, {} cached, {} completion) | |",
            s.tokens.requests,
            s.tokens.prompt_tokens,
            s.tokens.cached_tokens,
            s.tokens.completion_tokens
        );
        let _ = writeln!(
            o,
            "| mean seconds per trial | {:.1} | |\n",
            s.mean_trial_seconds
        );
        if !s.guards.is_empty() {
            let _ = writeln!(
                o,
                "## Guards\n\nHow often each check around the model acted, over every trial of both halves.\n\n| guard | acted | in trials |\n| --- | ---: | ---: |"
            );
            for (g, c) in &s.guards {
                let _ = writeln!(o, "| {g} | {} | {} |", c.fired, c.trials);
            }
            let _ = writeln!(o);
        }
        if s.held_out.is_some() {
            let _ = writeln!(
                o,
                "The held-out half is reported in aggregate only; the breakdowns and the list of tasks below are of the development half.\n"
            );
        }
        let _ = writeln!(
            o,
            "## By suite\n\n| suite | tasks | pass^1 | pass^{k} | every trial passed |\n| --- | ---: | ---: | ---: | ---: |",
            k = s.k
        );
        for (suite, g) in &s.by_suite {
            let passk = g.passk.map_or("–".into(), |p| format!("{p:.2}"));
            let _ = writeln!(
                o,
                "| {suite} | {} | {:.2} | {passk} | {} |",
                g.tasks, g.pass1, g.all_passed
            );
        }
        if let Some(h) = &s.held_out {
            let _ = writeln!(
                o,
                "\n## Held-out half by suite\n\n| suite | tasks | pass^1 |\n| --- | ---: | ---: |"
            );
            for (suite, g) in &h.by_suite {
                let _ = writeln!(o, "| {suite} | {} | {:.2} |", g.tasks, g.pass1);
            }
        }
        let _ = writeln!(
            o,
            "\n## By tag\n\n| tag | tasks | pass^1 |\n| --- | --- | --- |"
        );
        let mut tags: Vec<(&String, &GroupRate)> = s.by_tag.iter().collect();
        tags.sort_by(|a, b| a.1.pass1.total_cmp(&b.1.pass1).then(a.0.cmp(b.0)));
        for (t, g) in tags {
            let _ = writeln!(o, "| {t} | {} | {:.2} |", g.tasks, g.pass1);
        }
        let _ = writeln!(o, "\n## Tasks not passing\n");
        for t in self.tasks.iter().filter(|t| t.status != Status::Pass) {
            let _ = writeln!(
                o,
                "- `{}` ({}) — {:?} {}/{}",
                t.id,
                t.tags.join(", "),
                t.status,
                t.c,
                t.n
            );
            if let Some(tr) = t.trials.iter().find(|tr| tr.status != Status::Pass) {
                if let Some(e) = &tr.error {
                    let _ = writeln!(o, "  - {}", one_line(e));
                }
                for c in tr.checks.iter().filter(|c| !c.ok).take(4) {
                    let _ = writeln!(o, "  - ✗ {}: {}", c.name, one_line(&c.detail));
                }
            }
            if !t.missing_tools.is_empty() {
                let _ = writeln!(o, "  - needs {}", t.missing_tools.join(", "));
            }
        }
        o
    }
}

fn one_line(s: &str) -> String {
    let t: String = s.replace('\n', " ").chars().take(240).collect();
    t.replace('|', "\\|")
}

/// Paired outcomes of two runs on the tasks both graded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Paired {
    /// Tasks graded in both runs.
    pub tasks: usize,
    /// Passing in both.
    pub both_pass: usize,
    /// Passing in A only / B only (the discordant pairs).
    pub a_only: usize,
    /// Passing in B only.
    pub b_only: usize,
    /// Passing in neither.
    pub neither: usize,
    /// Exact McNemar test on the discordant pairs.
    pub mcnemar_p: f64,
    /// Mean per-task pass^1 difference B − A with its paired bootstrap interval.
    pub difference: Estimate,
    /// The development tasks that flipped.
    pub flipped: Vec<Flip>,
    /// How many held-out tasks flipped (which ones is not reported).
    #[serde(default)]
    pub held_out_flips: usize,
}

/// A task passing in one run and not the other.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Flip {
    /// The task's id.
    pub id: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// Its pass^1 in run A.
    pub a: f64,
    /// Its pass^1 in run B.
    pub b: f64,
}

/// Pairs the graded rows of two runs by id (a sealed row by its digest).
pub fn pair<'a>(
    a: impl IntoIterator<Item = &'a TaskReport>,
    b: impl IntoIterator<Item = &'a TaskReport>,
) -> Paired {
    let bs: BTreeMap<&str, &TaskReport> = b
        .into_iter()
        .filter(|t| t.graded())
        .map(|t| (t.id.as_str(), t))
        .collect();
    let mut p = Paired {
        tasks: 0,
        both_pass: 0,
        a_only: 0,
        b_only: 0,
        neither: 0,
        mcnemar_p: 1.0,
        difference: Estimate {
            value: 0.0,
            low: 0.0,
            high: 0.0,
        },
        flipped: Vec::new(),
        held_out_flips: 0,
    };
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for ta in a.into_iter().filter(|t| t.graded()) {
        let Some(tb) = bs.get(ta.id.as_str()) else {
            continue;
        };
        p.tasks += 1;
        match (ta.passing(), tb.passing()) {
            (true, true) => p.both_pass += 1,
            (true, false) => p.a_only += 1,
            (false, true) => p.b_only += 1,
            (false, false) => p.neither += 1,
        }
        if ta.passing() != tb.passing() && ta.sealed {
            p.held_out_flips += 1;
        } else if ta.passing() != tb.passing() {
            p.flipped.push(Flip {
                id: ta.id.clone(),
                tags: ta.tags.clone(),
                a: ta.pass1.unwrap_or(0.0),
                b: tb.pass1.unwrap_or(0.0),
            });
        }
        xs.push(ta.pass1.unwrap_or(0.0));
        ys.push(tb.pass1.unwrap_or(0.0));
    }
    p.mcnemar_p = mcnemar_exact(p.a_only as u64, p.b_only as u64);
    p.difference = paired_bootstrap(&xs, &ys, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED);
    p
}

/// The verdict of `rapport eval run --baseline`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Gate {
    /// No significant drop and no safety regression.
    pub passed: bool,
    /// Baseline (A) against this run (B).
    pub paired: Paired,
    /// Safety tasks (injection, permission) that passed in the baseline and do not now.
    pub safety_regressions: Vec<String>,
    /// Why it failed, one line each; empty when it passed.
    pub reasons: Vec<String>,
}

/// Fails on a significant drop (McNemar p < α with more tasks lost than
/// gained) or on any previously passing safety task that does not pass now
/// (stale counts as not passing).
pub fn gate(baseline: &Report, current: &Report) -> Gate {
    let paired = pair(baseline.rows(), current.rows());
    let now: BTreeMap<&str, &TaskReport> = current.rows().map(|t| (t.id.as_str(), t)).collect();
    // A held-out safety task is named by its digest: the gate must stop on
    // it all the same, and the digest is all a reader needs to re-run it.
    let safety_regressions: Vec<String> = baseline
        .rows()
        .filter(|t| t.safety && t.passing())
        .filter(|t| now.get(t.id.as_str()).is_none_or(|c| !c.passing()))
        .map(|t| t.id.clone())
        .collect();
    let mut reasons = Vec::new();
    if paired.a_only > paired.b_only && paired.mcnemar_p < ALPHA {
        reasons.push(format!(
            "pass rate dropped: {} tasks lost, {} gained (exact McNemar p = {:.4} < {ALPHA})",
            paired.a_only, paired.b_only, paired.mcnemar_p
        ));
    }
    if !safety_regressions.is_empty() {
        reasons.push(format!(
            "safety tasks that passed in the baseline fail now: {}",
            safety_regressions.join(", ")
        ));
    }
    Gate {
        passed: reasons.is_empty(),
        paired,
        safety_regressions,
        reasons,
    }
}

impl Gate {
    /// The verdict for people: the paired counts and the reasons.
    pub fn markdown(&self) -> String {
        let p = &self.paired;
        let mut o = String::new();
        let _ = writeln!(
            o,
            "## Gate against the baseline: {}\n",
            if self.passed { "PASS" } else { "FAIL" }
        );
        let _ = writeln!(
            o,
            "{} paired tasks: {} pass in both, {} lost, {} gained, {} fail in both ({} of the changes in the held-out half); exact McNemar p = {:.4}; difference {:+.3} [{:+.3}, {:+.3}]\n",
            p.tasks,
            p.both_pass,
            p.a_only,
            p.b_only,
            p.neither,
            p.held_out_flips,
            p.mcnemar_p,
            p.difference.value,
            p.difference.low,
            p.difference.high
        );
        for r in &self.reasons {
            let _ = writeln!(o, "- {r}");
        }
        o
    }
}

/// An A/B experiment: both arms' summaries and their paired comparison.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AbReport {
    /// The first arm.
    pub a: ArmSummary,
    /// The second arm.
    pub b: ArmSummary,
    /// Over every task both graded.
    pub paired: Paired,
    /// Whether the difference is significant (exact McNemar p < [`ALPHA`]).
    pub significant: bool,
    /// Each half on its own (absent when the runs had no held-out half).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub development: Option<Paired>,
    /// The held-out half paired by digest (flips counted, never named).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_out: Option<Paired>,
}

/// One arm of an A/B experiment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArmSummary {
    /// The arm's name.
    pub name: String,
    /// Its model.
    pub model: String,
    /// Whether its tool calls were constrained.
    pub constrained: bool,
    /// Version of its system prompt.
    pub prompt_version: String,
    /// `live`, `record` or `replay`.
    pub mode: String,
    /// Its headline figures over the tasks both arms graded.
    pub summary: Summary,
}

impl ArmSummary {
    fn of(r: &Report, only: &BTreeSet<String>) -> ArmSummary {
        let pick = |rows: &[TaskReport]| -> Vec<TaskReport> {
            rows.iter()
                .filter(|t| only.contains(&t.id))
                .cloned()
                .collect()
        };
        ArmSummary {
            name: r.agent.name.clone(),
            model: r.agent.model.clone(),
            constrained: r.agent.constrained,
            prompt_version: r.prompt_version.clone(),
            mode: r.mode.clone(),
            summary: summarize(&pick(&r.tasks), &pick(&r.held_out), r.summary.k),
        }
    }
}

/// Compares two runs over the tasks both graded, in all and per half.
pub fn ab(a: &Report, b: &Report) -> AbReport {
    let ids = |r: &Report| -> BTreeSet<String> {
        r.rows()
            .filter(|t| t.graded())
            .map(|t| t.id.clone())
            .collect()
    };
    let both: BTreeSet<String> = ids(a).intersection(&ids(b)).cloned().collect();
    let paired = pair(a.rows(), b.rows());
    let halves = !a.held_out.is_empty() && !b.held_out.is_empty();
    AbReport {
        a: ArmSummary::of(a, &both),
        b: ArmSummary::of(b, &both),
        significant: paired.mcnemar_p < ALPHA,
        paired,
        development: halves.then(|| pair(&a.tasks, &b.tasks)),
        held_out: halves.then(|| pair(&a.held_out, &b.held_out)),
    }
}

fn paired_line(p: &Paired) -> String {
    format!(
        "both pass {}, A only {}, B only {}, neither {}; difference B − A in pass^1 {:+.3} [{:+.3}, {:+.3}]; exact McNemar p = {:.4}",
        p.both_pass,
        p.a_only,
        p.b_only,
        p.neither,
        p.difference.value,
        p.difference.low,
        p.difference.high,
        p.mcnemar_p
    )
}

impl AbReport {
    /// The experiment for people: both arms, the paired counts and the flipped tasks.
    pub fn markdown(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "# A/B: {} vs {}\n", self.a.name, self.b.name);
        let _ = writeln!(
            o,
            "| arm | model | constrained | prompt | mode | tasks | pass^1 [95%] | pass^k [95%] |"
        );
        let _ = writeln!(o, "| --- | --- | --- | --- | --- | --- | --- | --- |");
        for (label, arm) in [("A", &self.a), ("B", &self.b)] {
            let s = &arm.summary;
            let pk = s
                .passk
                .map(|p| format!("pass^{} {:.3} [{:.3}, {:.3}]", s.k, p.value, p.low, p.high))
                .unwrap_or_else(|| "—".into());
            let _ = writeln!(
                o,
                "| {label}: {} | `{}` | {} | `{}` | {} | {} | {:.3} [{:.3}, {:.3}] | {pk} |",
                arm.name,
                arm.model,
                arm.constrained,
                arm.prompt_version,
                arm.mode,
                s.tasks,
                s.pass1.value,
                s.pass1.low,
                s.pass1.high
            );
        }
        let halves = [
            (
                "development",
                &self.a.summary.development,
                &self.b.summary.development,
            ),
            (
                "held-out",
                &self.a.summary.held_out,
                &self.b.summary.held_out,
            ),
        ];
        if halves.iter().any(|(_, a, b)| a.is_some() && b.is_some()) {
            let _ = writeln!(
                o,
                "\n| half | tasks | A pass^1 [95%] | B pass^1 [95%] |\n| --- | ---: | --- | --- |"
            );
            for (name, a, b) in halves {
                if let (Some(a), Some(b)) = (a, b) {
                    let _ = writeln!(
                        o,
                        "| {name} | {} | {:.3} [{:.3}, {:.3}] | {:.3} [{:.3}, {:.3}] |",
                        a.tasks,
                        a.pass1.value,
                        a.pass1.low,
                        a.pass1.high,
                        b.pass1.value,
                        b.pass1.low,
                        b.pass1.high
                    );
                }
            }
        }
        let p = &self.paired;
        let _ = writeln!(
            o,
            "\nPaired over {} tasks: both pass {}, A only {}, B only {}, neither {}.\n\nDifference B − A in pass^1: {:+.3}, 95% paired bootstrap interval [{:+.3}, {:+.3}] ({} resamples, seed {}); exact McNemar p = {:.4} — {}.\n",
            p.tasks,
            p.both_pass,
            p.a_only,
            p.b_only,
            p.neither,
            p.difference.value,
            p.difference.low,
            p.difference.high,
            BOOTSTRAP_RESAMPLES,
            BOOTSTRAP_SEED,
            p.mcnemar_p,
            if self.significant {
                "significant at 0.05"
            } else {
                "not significant at 0.05"
            }
        );
        for (name, half) in [
            ("Development", &self.development),
            ("Held-out", &self.held_out),
        ] {
            if let Some(h) = half {
                let _ = writeln!(o, "- {name} half, {} tasks: {}.", h.tasks, paired_line(h));
            }
        }
        if self.held_out.is_some() {
            let _ = writeln!(
                o,
                "\nThe held-out half's flips are counted, not listed ({}).\n",
                p.held_out_flips
            );
        }
        let _ = writeln!(o, "## Flipped tasks\n");
        if p.flipped.is_empty() {
            let _ = writeln!(o, "none");
        }
        for f in &p.flipped {
            let dir = if f.b > f.a {
                "fixed in B"
            } else {
                "broken in B"
            };
            let _ = writeln!(
                o,
                "- `{}` ({}): A {:.2} → B {:.2}, {dir}",
                f.id,
                f.tags.join(", "),
                f.a,
                f.b
            );
        }
        o
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A graded task report (also used by the quality sources' tests).
    pub(crate) fn task(id: &str, safety: bool, results: &[Status]) -> TaskReport {
        let mut t = TaskReport {
            suite: "s".into(),
            id: id.into(),
            tags: if safety {
                vec!["injection".into()]
            } else {
                vec!["x".into()]
            },
            safety,
            status: Status::Fail,
            n: 0,
            c: 0,
            pass1: None,
            passk: None,
            missing_tools: vec![],
            trials: results
                .iter()
                .map(|s| Trial {
                    status: *s,
                    answer: format!("answer of {id}"),
                    ..Trial::default()
                })
                .collect(),
            sealed: false,
        };
        t.finish(results.len());
        t
    }

    pub(crate) fn report(tasks: Vec<TaskReport>) -> Report {
        let k = tasks.first().map_or(1, |t| t.n);
        Report {
            version: 1,
            agent: toml::from_str("name = \"a\"\nbackend = \"local\"\nmodel = \"m\"").unwrap(),
            prompt_version: "system@x".into(),
            mode: "replay".into(),
            started_at: String::new(),
            seconds: 0.0,
            summary: summarize(&tasks, &[], k),
            tasks,
            held_out: Vec::new(),
        }
    }

    /// A report whose tasks in `held` are sealed, as `rapport_evals::run` makes it.
    pub(crate) fn split_report(tasks: Vec<TaskReport>, held: &[&str]) -> Report {
        let held: BTreeSet<String> = held.iter().map(|s| s.to_string()).collect();
        let k = tasks.first().map_or(1, |t| t.n);
        let (dev, sealed) = seal(tasks, &held);
        Report {
            summary: summarize(&dev, &sealed, k),
            tasks: dev,
            held_out: sealed,
            ..report(Vec::new())
        }
    }

    use Status::{Fail, Pass, Stale};

    #[test]
    fn pass_k_and_status_per_task() {
        let t = task("t", false, &[Pass, Fail, Pass, Pass]);
        assert_eq!((t.n, t.c), (4, 3));
        assert_eq!(t.pass1, Some(0.75));
        assert_eq!(t.passk, Some(0.0));
        assert_eq!(t.status, Fail);
        assert!(t.passing());
        let s = task("s", false, &[Pass, Stale]);
        assert_eq!(s.status, Stale);
        assert!(!s.passing());
        let r = report(vec![
            task("a", false, &[Pass, Pass]),
            task("b", false, &[Pass, Fail]),
        ]);
        assert_eq!(r.summary.pass1.value, 0.75);
        assert_eq!(r.summary.passk.unwrap().value, 0.5);
        let suite = &r.summary.by_suite["s"];
        assert_eq!((suite.tasks, suite.all_passed), (2, 1));
        assert_eq!((suite.pass1, suite.passk), (0.75, Some(0.5)));
        assert!(
            r.markdown().contains("| s | 2 | 0.75 | 0.50 | 1 |"),
            "{}",
            r.markdown()
        );
        let single = report(vec![task("a", false, &[Pass]), task("b", false, &[Fail])]);
        let suite = &single.summary.by_suite["s"];
        assert_eq!(
            (suite.passk, suite.all_passed),
            (None, 1),
            "no pass^k at k = 1"
        );
    }

    #[test]
    fn the_gate_fails_on_a_significant_drop_and_on_a_safety_regression() {
        let base: Vec<TaskReport> = (0..12)
            .map(|i| task(&format!("t{i}"), false, &[Pass]))
            .collect();
        let mut worse = base.clone();
        for t in worse.iter_mut().take(7) {
            *t = task(&t.id, false, &[Fail]);
        }
        let g = gate(&report(base.clone()), &report(worse));
        assert!(!g.passed);
        // 7 lost, 0 gained: p = 2 · 0.5^7 = 0.015625 (scipy binomtest(0, 7).pvalue).
        assert!((g.paired.mcnemar_p - 0.015625).abs() < 1e-12);

        let mut two_lost = base.clone();
        two_lost[0] = task("t0", false, &[Fail]);
        two_lost[1] = task("t1", false, &[Fail]);
        assert!(
            gate(&report(base.clone()), &report(two_lost)).passed,
            "p = 0.5 is noise"
        );

        let mut b = base.clone();
        b.push(task("inj", true, &[Pass]));
        let mut c = base.clone();
        c.push(task("inj", true, &[Stale]));
        let g = gate(&report(b), &report(c));
        assert!(!g.passed);
        assert_eq!(g.safety_regressions, ["inj"]);
    }

    #[test]
    fn ab_lists_flips_both_ways() {
        let a = report(vec![
            task("x", false, &[Pass]),
            task("y", false, &[Fail]),
            task("z", false, &[Pass]),
        ]);
        let b = report(vec![
            task("x", false, &[Fail]),
            task("y", false, &[Pass]),
            task("z", false, &[Pass]),
        ]);
        let r = ab(&a, &b);
        assert_eq!(
            (r.paired.a_only, r.paired.b_only, r.paired.both_pass),
            (1, 1, 1)
        );
        assert_eq!(r.paired.flipped.len(), 2);
        assert_eq!(r.paired.mcnemar_p, 1.0);
        assert!(
            r.markdown()
                .contains("`x` (x): A 1.00 → B 0.00, broken in B")
        );
    }

    #[test]
    fn held_out_rows_are_sealed_and_counted_only_in_aggregate() {
        let tasks = vec![
            task("d1", false, &[Pass]),
            task("d2", false, &[Fail]),
            task("h1", false, &[Pass]),
            task("h2", true, &[Pass]),
            task("h3", false, &[Fail]),
        ];
        let r = split_report(tasks, &["h1", "h2", "h3"]);
        assert_eq!(
            r.tasks.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
            ["d1", "d2"]
        );
        assert_eq!(r.held_out.len(), 3);
        for t in &r.held_out {
            assert!(t.sealed && t.id.starts_with("held-out:") && t.tags.is_empty());
            assert!(
                t.trials
                    .iter()
                    .all(|x| x.answer.is_empty() && x.checks.is_empty())
            );
        }
        assert!(
            r.held_out
                .iter()
                .any(|t| t.id == seal_key("h2") && t.safety)
        );
        let s = &r.summary;
        assert_eq!(s.tasks, 5);
        assert!((s.pass1.value - 0.6).abs() < 1e-12);
        let (dev, held) = (
            s.development.as_ref().unwrap(),
            s.held_out.as_ref().unwrap(),
        );
        assert_eq!((dev.tasks, dev.pass1.value), (2, 0.5));
        assert_eq!(held.tasks, 3);
        assert!((held.pass1.value - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(held.safety_pass1, Some(1.0));
        assert_eq!(s.by_tag["x"].tasks, 2, "tags are of the development half");
        assert_eq!(s.by_suite["s"].tasks, 2);
        let md = r.markdown();
        assert!(md.contains("held-out half (3 tasks) | 0.667"), "{md}");
        assert!(md.contains("`d2`") && !md.contains("h3") && !md.contains("answer of h"));
        // The JSON keeps no held-out id either.
        let json = serde_json::to_string(&r).unwrap();
        assert!(!json.contains("\"h1\"") && !json.contains("answer of h"));
    }

    #[test]
    fn the_gate_and_ab_pair_held_out_rows_by_digest_without_naming_them() {
        let ids = ["d1", "d2", "h1", "h2"];
        let base = split_report(
            ids.iter().map(|i| task(i, *i == "h2", &[Pass])).collect(),
            &["h1", "h2"],
        );
        let now = split_report(
            ids.iter()
                .map(|i| task(i, *i == "h2", &[if *i == "d1" { Pass } else { Fail }]))
                .collect(),
            &["h1", "h2"],
        );
        let g = gate(&base, &now);
        assert!(!g.passed);
        assert_eq!(g.safety_regressions, [seal_key("h2")]);
        assert_eq!((g.paired.a_only, g.paired.held_out_flips), (3, 2));
        assert_eq!(
            g.paired
                .flipped
                .iter()
                .map(|f| f.id.as_str())
                .collect::<Vec<_>>(),
            ["d2"]
        );
        let r = ab(&base, &now);
        assert_eq!(r.development.as_ref().unwrap().a_only, 1);
        assert_eq!(r.held_out.as_ref().unwrap().a_only, 2);
        assert!(r.held_out.as_ref().unwrap().flipped.is_empty());
        assert_eq!(r.b.summary.held_out.as_ref().unwrap().pass1.value, 0.0);
        let md = r.markdown();
        assert!(md.contains("| held-out | 2 | 1.000"), "{md}");
        assert!(md.contains("counted, not listed (2)"), "{md}");
        assert!(!md.contains("held-out:"), "{md}");
    }
}
