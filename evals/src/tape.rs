//! Record and replay of model exchanges, so CI runs the suites without a model
//! and deterministically.
//!
//! Every request is keyed by the SHA-256 of its exact content — model name,
//! messages, offered tools with their schemas (and the version of the form a
//! local model reads them in), tool choice, token limit —
//! serialized canonically (object keys sorted). One thing is masked first:
//! timestamps within a day and a half of the wall clock. Records the tools
//! create get `created_at = now`, and that text reaches the model in tool
//! results; everything else in an eval run is fixed (seeded data, a fixed
//! "today" in the prompt), so this is the only part of a request that differs
//! between two runs of the same code. A replay also tries the clocks the
//! recording may have had ([`replay_keys`]): a recorded reply can carry the
//! recording's time into the next request.
//!
//! The same request can come twice in one trial: the loop asks again after a
//! reply it could not use, and a greedy model whose cached prefix was split
//! differently may answer the second time otherwise. So a recording keeps
//! every occurrence: the first under the plain key, the n-th under
//! `key#n` ([`occurrence_key`]). Recordings made before that (file version 1)
//! kept one reply per request; their replay serves it for every occurrence.
//!
//! A sampled arm (temperature above 0) answers each trial of a task
//! differently, so its recording keys the second to k-th trials apart
//! ([`trial_key`]: `key@t2` …). A recording made with one trial per task
//! (greedy decoding, where every trial is the same run) serves all `k`
//! trials of a replay from that one.
//!
//! Two tasks can send the same request: "What should I do today?" opens
//! more than one next-best-action task. Keyed by the request alone, the
//! later task's recording overwrote the earlier one's replies, and a sampled
//! arm's replay then gave both tasks the same draws. So a recording started
//! now also names the task in every key (`task/key`, [`Tape::by_task`]).
//! Recordings made before keep their keys and replay as they did; a sampled
//! one is re-keyed with a replay of every task it holds ([`Tape::rekey`])
//! before more is recorded into it.
//!
//! A replay run answers from the recording. A request without a recording —
//! a changed prompt, tool description or schema, or a model answer that
//! would have led elsewhere — fails the model call and marks the task
//! **stale**, which is never a pass.
//!
//! Re-recording a few tasks (`--record --only …`) adds their new replies but
//! leaves the replies their old requests got. A replay remembers which keys
//! it served, so a replay of every task can drop the rest ([`Tape::prune`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use rapport_agent::backend::DeltaSink;
use rapport_agent::{BackendError, LlmBackend, LlmReply, LlmRequest, RawCall, TokenUsage};
use rapport_models::llm::ToolChoice;
use rapport_tools::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The message a replay gives the agent for a request it has no recording of.
pub const STALE: &str = "stale recording";

/// Why a recording made before task keys takes no more sampled trials.
pub const NOT_BY_TASK: &str = "this recording keys sampled trials by request alone, so two tasks \
sending the same request would share replies; re-key it first with a replay of every task it \
holds: `rapport eval run --agent ARM --k K --replay DIR --rekey`";

/// The recording file format: 2 keeps every occurrence of a request within a
/// trial, 1 kept one reply per request.
pub const TAPE_VERSION: u32 = 2;

/// The tape key of the `occurrence`-th (from 0) time a trial sends the
/// request with key `key`: the first keeps the plain key, so a request that
/// comes once is keyed as in version 1.
pub fn occurrence_key(key: &str, occurrence: usize) -> String {
    match occurrence {
        0 => key.to_owned(),
        n => format!("{key}#{}", n + 1),
    }
}

/// The tape key of a request in trial `trial` (from 0) of a task: the first
/// trial keeps the key, so recordings of one trial per task read as before.
pub fn trial_key(key: &str, trial: usize) -> String {
    match trial {
        0 => key.to_owned(),
        n => format!("{key}@t{}", n + 1),
    }
}

/// Where a request was sent from: which task, which trial of it (from 0),
/// and how many times that trial had sent the same request before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot<'a> {
    /// The task's id.
    pub task: &'a str,
    /// The trial, from 0.
    pub trial: usize,
    /// Times this trial sent the same request before, from 0.
    pub occurrence: usize,
}

/// A recorded reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exchange {
    /// The reply's text.
    pub content: String,
    /// The calls it made.
    #[serde(default)]
    pub tool_calls: Vec<StoredCall>,
    /// Token counts, when the backend gave them.
    #[serde(default)]
    pub usage: Option<StoredUsage>,
    /// Seconds the live call took (replays report it as the latency).
    #[serde(default)]
    pub seconds: f64,
    /// For people reading the file: the last message of the request.
    #[serde(default)]
    pub last_message: String,
}

/// A recorded tool call (the backend's [`RawCall`](rapport_agent::RawCall)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredCall {
    /// The call's id.
    pub id: String,
    /// The tool named.
    pub name: String,
    /// The arguments as the model wrote them.
    pub arguments: Value,
}

/// Recorded token counts (the backend's [`TokenUsage`](rapport_agent::TokenUsage)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredUsage {
    /// Prompt tokens, cached ones included.
    pub prompt_tokens: u64,
    /// Tokens the model generated.
    pub completion_tokens: u64,
    /// Prompt tokens served from a cache.
    pub cached_tokens: u64,
}

impl Exchange {
    fn of(reply: &LlmReply, seconds: f64, request: &LlmRequest) -> Exchange {
        Exchange {
            content: reply.content.clone(),
            tool_calls: reply
                .tool_calls
                .iter()
                .map(|c| StoredCall {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    arguments: c.arguments.clone(),
                })
                .collect(),
            usage: reply.usage.map(|u| StoredUsage {
                prompt_tokens: u.prompt_tokens,
                completion_tokens: u.completion_tokens,
                cached_tokens: u.cached_tokens,
            }),
            seconds,
            last_message: request
                .messages
                .last()
                .map(|m| m.content.chars().take(200).collect())
                .unwrap_or_default(),
        }
    }

    fn reply(&self) -> LlmReply {
        LlmReply {
            content: self.content.clone(),
            tool_calls: self
                .tool_calls
                .iter()
                .map(|c| RawCall {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    arguments: c.arguments.clone(),
                })
                .collect(),
            usage: self.usage.map(|u| TokenUsage {
                prompt_tokens: u.prompt_tokens,
                completion_tokens: u.completion_tokens,
                cached_tokens: u.cached_tokens,
            }),
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct TapeFile {
    version: u32,
    model: String,
    /// Whether trials after the first were recorded under keys of their own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    per_trial: bool,
    /// Whether every key names its task (`task/key`). False in recordings
    /// made before, where two tasks sending one request shared its reply.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    by_task: bool,
    exchanges: BTreeMap<String, Exchange>,
    /// What a replay has served since the file was opened (not saved): the
    /// key each request would have in a task-keyed recording, and the key
    /// its reply was found under.
    #[serde(skip)]
    served: HashMap<String, String>,
}

impl TapeFile {
    /// The key of the request `key` sent from `slot`, under this file's rules.
    fn key(&self, key: &str, slot: Slot) -> String {
        if self.by_task {
            self.task_key(key, slot)
        } else {
            self.request_key(key, slot)
        }
    }

    /// The key in a task-keyed recording: the task, then the request's key.
    fn task_key(&self, key: &str, slot: Slot) -> String {
        format!("{}/{}", slot.task, self.request_key(key, slot))
    }

    /// The key by request alone, as recordings made before task keys have it.
    fn request_key(&self, key: &str, slot: Slot) -> String {
        let trial = if self.per_trial { slot.trial } else { 0 };
        trial_key(&occurrence_key(key, slot.occurrence), trial)
    }
}

/// A set of recorded exchanges, in memory, saved as one JSON file.
#[derive(Debug)]
pub struct Tape {
    path: PathBuf,
    file: Mutex<TapeFile>,
}

impl Tape {
    /// Opens a recording; a missing file is an empty tape (for recording).
    pub fn open(path: &Path) -> Result<Tape> {
        let file = if path.exists() {
            let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
            serde_json::from_str(&text).map_err(|e| Error::file(path, e))?
        } else {
            TapeFile {
                version: TAPE_VERSION,
                by_task: true,
                ..Default::default()
            }
        };
        Ok(Tape {
            path: path.to_owned(),
            file: Mutex::new(file),
        })
    }

    /// The recording file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Recorded exchanges.
    pub fn len(&self) -> usize {
        self.lock().exchanges.len()
    }

    /// Whether nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The model the recording was made with.
    pub fn model(&self) -> String {
        self.lock().model.clone()
    }

    /// The file format version the recording was made with.
    pub fn version(&self) -> u32 {
        self.lock().version
    }

    /// Whether later trials have replies of their own ([`trial_key`]).
    pub fn per_trial(&self) -> bool {
        self.lock().per_trial
    }

    /// Whether every key names its task (every recording started since
    /// task keys came in, and every re-keyed one).
    pub fn by_task(&self) -> bool {
        self.lock().by_task
    }

    /// The key the request `key` sent from `slot` is kept under.
    pub fn key(&self, key: &str, slot: Slot) -> String {
        self.lock().key(key, slot)
    }

    /// The reply to the request `key` sent from `slot`. A version 1
    /// recording has one reply per request and serves it every time; a
    /// recording without per-trial keys serves every trial the first trial's
    /// replies.
    pub fn get(&self, key: &str, slot: Slot) -> Option<Exchange> {
        self.get_any([key.to_owned()], slot)
    }

    /// The reply to the first of `keys` (one request's keys, most likely
    /// first: [`replay_keys`]) the recording holds for `slot`, as
    /// [`get`](Tape::get) finds it. The keys are made lazily: later ones
    /// cost a hash each and are rarely needed.
    pub fn get_any(&self, keys: impl IntoIterator<Item = String>, slot: Slot) -> Option<Exchange> {
        let mut f = self.lock();
        for key in keys {
            let mut found = f.key(&key, slot);
            if !f.exchanges.contains_key(&found) && f.version < TAPE_VERSION {
                found = f.key(
                    &key,
                    Slot {
                        occurrence: 0,
                        ..slot
                    },
                );
            }
            if let Some(reply) = f.exchanges.get(&found).cloned() {
                let as_task = f.task_key(&key, slot);
                f.served.insert(as_task, found);
                return Some(reply);
            }
        }
        None
    }

    /// Drops every exchange no [`get`](Tape::get) served since the tape was
    /// opened, and returns how many went. Only meaningful after a replay of
    /// every task and trial the recording covers: the caller checks that.
    pub fn prune(&self) -> usize {
        let mut f = self.lock();
        let before = f.exchanges.len();
        let TapeFile {
            exchanges, served, ..
        } = &mut *f;
        let used: HashSet<&String> = served.values().collect();
        exchanges.retain(|k, _| used.contains(k));
        before - exchanges.len()
    }

    /// Rewrites the recording with task keys: each task keeps, under its
    /// own keys, the replies a replay served it, so tasks that sent the same
    /// request stop sharing replies (each keeps what it was served, and a
    /// re-recording of one no longer overwrites the other's). Exchanges no
    /// task was served are dropped, so the replay must have run every task
    /// the recording is for, each to a grade: the caller checks the grades.
    /// Returns how many exchanges the file held before and holds now.
    pub fn rekey(&self) -> (usize, usize) {
        let mut f = self.lock();
        let before = f.exchanges.len();
        let rekeyed: BTreeMap<String, Exchange> = f
            .served
            .iter()
            .filter_map(|(to, from)| Some((to.clone(), f.exchanges.get(from)?.clone())))
            .collect();
        f.served = rekeyed.keys().map(|k| (k.clone(), k.clone())).collect();
        f.exchanges = rekeyed;
        f.by_task = true;
        f.version = TAPE_VERSION;
        (before, f.exchanges.len())
    }

    /// Trials per task the recording holds replies for: the largest `@tN`
    /// of its keys, 1 when it has none (greedy recordings).
    pub fn trials(&self) -> usize {
        self.lock()
            .exchanges
            .keys()
            .filter_map(|k| k.rsplit_once("@t").and_then(|(_, n)| n.parse().ok()))
            .max()
            .unwrap_or(1)
    }

    /// Keeps the reply to the request `key` sent from `slot`. Recording into
    /// a version 1 file upgrades it: its retried requests then replay as
    /// stale until re-recorded, which shows rather than hides them. A
    /// recording whose keys do not name the task takes no trial after the
    /// first (those would collide across tasks): re-key it first.
    pub fn put(&self, key: &str, slot: Slot, model: &str, x: Exchange) -> Result<()> {
        let mut f = self.lock();
        if !f.by_task && (f.per_trial || slot.trial > 0) {
            return Err(Error::file(&self.path, NOT_BY_TASK));
        }
        f.model = model.to_owned();
        f.version = TAPE_VERSION;
        // Before the key: a trial after the first is keyed apart from then on.
        f.per_trial |= slot.trial > 0;
        let k = f.key(key, slot);
        f.exchanges.insert(k, x);
        Ok(())
    }

    /// Writes the file: one exchange per line, keys sorted, so a
    /// re-recording diffs line by line ([`render`]).
    pub fn save(&self) -> Result<()> {
        let text = render(&self.lock()).map_err(|e| Error::file(&self.path, e))?;
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        std::fs::write(&self.path, text).map_err(|e| Error::io(&self.path, e))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TapeFile> {
        self.file.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The file's JSON with each exchange compact on a line of its own.
/// Pretty-printed, a sampled arm's recording passed 2 MB (the limit on a
/// committed file) at about 140 tasks; one line per exchange takes a third
/// less and still diffs per exchange, which one compact line would not.
fn render(f: &TapeFile) -> serde_json::Result<String> {
    let Value::Object(top) = serde_json::to_value(f)? else {
        unreachable!("a TapeFile serializes as an object")
    };
    let mut fields = Vec::with_capacity(top.len());
    for (name, value) in &top {
        let value = match value {
            Value::Object(exchanges) if name == "exchanges" && !exchanges.is_empty() => {
                let lines = exchanges
                    .iter()
                    .map(|(k, x)| {
                        Ok(format!(
                            "    {}: {}",
                            Value::from(k.as_str()),
                            serde_json::to_string(x)?
                        ))
                    })
                    .collect::<serde_json::Result<Vec<_>>>()?;
                format!("{{\n{}\n  }}", lines.join(",\n"))
            }
            other => serde_json::to_string(other)?,
        };
        fields.push(format!("  {}: {value}", Value::from(name.as_str())));
    }
    Ok(format!("{{\n{}\n}}\n", fields.join(",\n")))
}

/// The key of a request: SHA-256 (hex) of its canonical JSON with wall-clock
/// timestamps masked.
pub fn request_key(model: &str, request: &LlmRequest, wall_clock: DateTime<Utc>) -> String {
    key_of(&mask_wall_clock(
        &canonical_request(model, request),
        wall_clock,
    ))
}

/// The keys a replay at `now` tries for a request, most likely first.
///
/// A recording keys each request with the timestamps near *its* clock
/// masked. On replay, the records the run itself creates carry `now`, but
/// text the recorded replies brought in (a model that copied a
/// `stage_entered_at` into its answer, which the next request then holds)
/// carries the recording's clock, days ago. Masking around `now` alone made
/// such a request stale a day and a half after it was recorded. So after the
/// plain key, this tries the recording clocks the request itself allows:
/// every distinct set of its timestamps that a clock could have masked
/// (those within [`WALL_CLOCK_WINDOW`] of it), together with the run's own
/// (within [`REPLAY_WINDOW`] of `now`). A hit is still an exact match of
/// everything else in the request.
pub fn replay_keys(
    model: &str,
    request: &LlmRequest,
    now: DateTime<Utc>,
) -> impl Iterator<Item = String> {
    let text = canonical_request(model, request);
    let first = key_of(&mask_wall_clock(&text, now));
    let clocks = recording_clocks(&timestamps_in(&text), now);
    std::iter::once(first).chain(clocks.into_iter().map(move |clock| {
        key_of(&mask_timestamps(&text, |t| {
            (t - now).abs() < REPLAY_WINDOW || (t - clock).abs() < WALL_CLOCK_WINDOW
        }))
    }))
}

/// How far from the clock a timestamp is taken for the clock's own.
pub const WALL_CLOCK_WINDOW: Duration = Duration::hours(36);

/// How far from a replay's clock the records it creates can be: a replay
/// of every suite takes minutes, so hours are ample, and narrower than
/// [`WALL_CLOCK_WINDOW`] so that fewer of the seeded world's dates fall in it.
pub const REPLAY_WINDOW: Duration = Duration::hours(6);

/// One clock (not after `now`) for each distinct set of `times` a recording
/// clock could have masked, the empty set left out. The set a clock masks
/// only changes where the clock crosses a time ± the window, so a clock just
/// past each such point finds every set.
fn recording_clocks(times: &[DateTime<Utc>], now: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let mut edges: Vec<DateTime<Utc>> = times
        .iter()
        .flat_map(|&t| [t - WALL_CLOCK_WINDOW, t + WALL_CLOCK_WINDOW])
        .map(|edge| edge + Duration::milliseconds(1))
        .filter(|&clock| clock <= now)
        .collect();
    edges.sort();
    // The most recent recordings first: they are the likeliest.
    edges.reverse();
    let mut seen = HashSet::new();
    edges
        .into_iter()
        .filter(|&clock| {
            let masked: Vec<usize> = (0..times.len())
                .filter(|&i| (times[i] - clock).abs() < WALL_CLOCK_WINDOW)
                .collect();
            !masked.is_empty() && seen.insert(masked)
        })
        .collect()
}

/// The canonical JSON a request's key is a hash of, before masking.
fn canonical_request(model: &str, request: &LlmRequest) -> String {
    let choice = match &request.tool_choice {
        ToolChoice::Auto => "auto".to_owned(),
        ToolChoice::None => "none".to_owned(),
        ToolChoice::Required => "required".to_owned(),
        ToolChoice::Function(f) => format!("function:{f}"),
    };
    let doc = json!({
        "model": model,
        "messages": request.messages,
        "tools": request.tools,
        "tool_choice": choice,
        "max_tokens": request.max_tokens,
        "withheld": request.withheld,
        // How a local model reads the tools: a change re-keys every request.
        "prompt_schema": rapport_models::llm::prompt_schema::VERSION,
    });
    canonical(&doc).to_string()
}

/// The key of a request's canonical text with its timestamps masked.
fn key_of(masked: &str) -> String {
    hex::encode(Sha256::digest(mask_scores(masked).as_bytes()))
}

/// Replaces the numbers of `"score":` fields (search relevance, as floats
/// whose last digits depend on the CPU's arithmetic) with `_`, in plain or
/// escaped JSON text.
pub fn mask_scores(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("score") {
        let after = &rest[i + 5..];
        let prefix = after
            .strip_prefix("\\\":")
            .map(|a| (a, "\\\":"))
            .or_else(|| after.strip_prefix("\":").map(|a| (a, "\":")));
        match prefix {
            Some((value, sep)) => {
                let n = value
                    .find(|c: char| !(c.is_ascii_digit() || "+-.eE".contains(c)))
                    .unwrap_or(value.len());
                out.push_str(&rest[..i + 5]);
                out.push_str(sep);
                out.push_str(if n > 0 { "_" } else { "" });
                rest = &value[n..];
            }
            None => {
                out.push_str(&rest[..i + 5]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The value with object keys sorted at every level.
fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let sorted: BTreeMap<&String, Value> =
                m.iter().map(|(k, v)| (k, canonical(v))).collect();
            let mut out = serde_json::Map::new();
            for (k, v) in sorted {
                out.insert(k.clone(), v);
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// Replaces timestamps (`YYYY-MM-DDTHH:MM[:SS[.f]][Z|±HH:MM]`, `T` or a
/// space) within 36 hours of `now` with `<now>`. Minute precision counts too:
/// the loop's own answers render times as `2026-12-06 03:57 UTC`, and such an
/// answer is part of the next turn's request.
pub fn mask_wall_clock(text: &str, now: DateTime<Utc>) -> String {
    mask_timestamps(text, |t| (t - now).abs() < WALL_CLOCK_WINDOW)
}

/// Replaces the timestamps `masked` picks with `<now>`. A timestamp left as
/// it is is scanned past one byte at a time, as before clocks other than
/// `now` were tried, so that recorded keys stay what they were.
fn mask_timestamps(text: &str, masked: impl Fn(DateTime<Utc>) -> bool) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut copied = 0;
    while i + 16 <= b.len() {
        if let Some(len) = timestamp_at(&b[i..])
            && let Some(t) = parse_ts(&text[i..i + len])
            && masked(t)
        {
            out.push_str(&text[copied..i]);
            out.push_str("<now>");
            i += len;
            copied = i;
            continue;
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    out
}

/// Every timestamp in `text`, found as [`mask_timestamps`] finds them.
fn timestamps_in(text: &str) -> Vec<DateTime<Utc>> {
    let b = text.as_bytes();
    (0..(b.len() + 1).saturating_sub(16))
        .filter_map(|i| {
            let len = timestamp_at(&b[i..])?;
            parse_ts(&text[i..i + len])
        })
        .collect()
}

/// The length of a timestamp starting at `b[0]`, if one does.
fn timestamp_at(b: &[u8]) -> Option<usize> {
    const SHAPE: &[u8] = b"dddd-dd-ddTdd:dd";
    for (i, s) in SHAPE.iter().enumerate() {
        let c = b[i];
        let ok = match s {
            b'd' => c.is_ascii_digit(),
            b'T' => c == b'T' || c == b' ',
            other => c == *other,
        };
        if !ok {
            return None;
        }
    }
    let mut n = 16;
    if b.get(n) == Some(&b':')
        && b.get(n + 1..n + 3)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
    {
        n += 3;
    }
    if n == 19 && b.get(n) == Some(&b'.') {
        n += 1;
        while b.get(n).is_some_and(u8::is_ascii_digit) {
            n += 1;
        }
    }
    match b.get(n) {
        Some(b'Z') => n += 1,
        Some(b'+' | b'-')
            if b.len() >= n + 6
                && b[n + 1..n + 3].iter().all(u8::is_ascii_digit)
                && b[n + 3] == b':' =>
        {
            n += 6
        }
        _ => {}
    }
    Some(n)
}

/// Reads what `timestamp_at` found. RFC 3339 needs seconds, so the
/// minute-precision forms are parsed by pattern: `%#z` is chrono's permissive
/// offset, which reads both `Z` and `+01:00`.
fn parse_ts(s: &str) -> Option<DateTime<Utc>> {
    let s = s.replacen(' ', "T", 1);
    let zoned = DateTime::parse_from_rfc3339(&s)
        .or_else(|_| DateTime::parse_from_str(&s, "%Y-%m-%dT%H:%M%#z"));
    if let Ok(t) = zoned {
        return Some(t.with_timezone(&Utc));
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"]
        .into_iter()
        .find_map(|f| NaiveDateTime::parse_from_str(&s, f).ok())
        .map(|t| t.and_utc())
}

/// What a task's model calls cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Meter {
    /// Model requests made (or served from the tape).
    pub requests: u64,
    /// Prompt tokens, cached ones included.
    pub prompt_tokens: u64,
    /// Tokens generated.
    pub completion_tokens: u64,
    /// Prompt tokens served from a cache.
    pub cached_tokens: u64,
    /// Seconds spent in the model (recorded seconds on replay).
    pub model_seconds: f64,
}

/// How a run talks to the model.
pub enum Mode {
    /// Straight to the backend.
    Live(Arc<dyn LlmBackend>),
    /// To the backend, keeping every exchange on the tape.
    Record(Arc<dyn LlmBackend>, Arc<Tape>),
    /// From the tape only; `model` is the name the recording was made with.
    Replay {
        /// The model's name, as recorded.
        model: String,
        /// The recorded exchanges.
        tape: Arc<Tape>,
    },
}

impl Mode {
    /// The model name reports and recordings are keyed by.
    pub fn model(&self) -> String {
        match self {
            Mode::Live(b) | Mode::Record(b, _) => b.model(),
            Mode::Replay { model, .. } => model.clone(),
        }
    }
}

/// The backend one task trial talks to: the run's mode, with the trial's own
/// meter and staleness flag.
pub struct TrialBackend {
    mode: Arc<Mode>,
    prefers_small: bool,
    /// The task's id: recordings key by it.
    task: String,
    /// Which trial of its task this is (from 0).
    trial: usize,
    meter: Mutex<Meter>,
    stale: Mutex<Option<String>>,
    /// How often this trial has sent each request key so far.
    sent: Mutex<HashMap<String, usize>>,
}

impl TrialBackend {
    /// The backend of trial `trial` (from 0) of the task `task`.
    pub fn new(mode: Arc<Mode>, prefers_small: bool, task: &str, trial: usize) -> TrialBackend {
        TrialBackend {
            mode,
            prefers_small,
            task: task.to_owned(),
            trial,
            meter: Mutex::new(Meter::default()),
            stale: Mutex::new(None),
            sent: Mutex::new(HashMap::new()),
        }
    }

    /// Where this sending of `key` comes from; counts it, so the next
    /// sending of the same request is the next occurrence.
    fn slot(&self, key: &str) -> Slot<'_> {
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        let n = sent.entry(key.to_owned()).or_default();
        *n += 1;
        Slot {
            task: &self.task,
            trial: self.trial,
            occurrence: *n - 1,
        }
    }

    /// What this trial's model calls cost so far.
    pub fn meter(&self) -> Meter {
        *self.meter.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The key of the first request the replay had no recording for.
    pub fn stale(&self) -> Option<String> {
        self.stale.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn count(&self, reply: &LlmReply, seconds: f64) {
        let mut m = self.meter.lock().unwrap_or_else(|p| p.into_inner());
        m.requests += 1;
        m.model_seconds += seconds;
        if let Some(u) = reply.usage {
            m.prompt_tokens += u.prompt_tokens;
            m.completion_tokens += u.completion_tokens;
            m.cached_tokens += u.cached_tokens;
        }
    }
}

impl LlmBackend for TrialBackend {
    fn model(&self) -> String {
        self.mode.model()
    }

    fn prefers_small_prompts(&self) -> bool {
        self.prefers_small
    }

    fn complete<'a>(
        &'a self,
        request: &'a LlmRequest,
        on_delta: DeltaSink<'a>,
    ) -> BoxFuture<'a, Result<LlmReply, BackendError>> {
        Box::pin(async move {
            match &*self.mode {
                Mode::Live(inner) => {
                    let started = Instant::now();
                    let reply = inner.complete(request, on_delta).await?;
                    self.count(&reply, started.elapsed().as_secs_f64());
                    Ok(reply)
                }
                Mode::Record(inner, tape) => {
                    let key = request_key(&inner.model(), request, Utc::now());
                    let slot = self.slot(&key);
                    let started = Instant::now();
                    let reply = inner.complete(request, on_delta).await?;
                    let seconds = started.elapsed().as_secs_f64();
                    self.count(&reply, seconds);
                    let x = Exchange::of(&reply, seconds, request);
                    tape.put(&key, slot, &inner.model(), x)
                        .map_err(|e| BackendError::Script(e.to_string()))?;
                    Ok(reply)
                }
                Mode::Replay { model, tape } => {
                    let mut keys = replay_keys(model, request, Utc::now());
                    let key = keys.next().expect("the plain key comes first");
                    let slot = self.slot(&key);
                    match tape.get_any(std::iter::once(key.clone()).chain(keys), slot) {
                        Some(x) => {
                            let reply = x.reply();
                            if !reply.content.is_empty() {
                                on_delta(&reply.content);
                            }
                            self.count(&reply, x.seconds);
                            Ok(reply)
                        }
                        None => {
                            let key = tape.key(&key, slot);
                            let mut s = self.stale.lock().unwrap_or_else(|p| p.into_inner());
                            s.get_or_insert_with(|| key.clone());
                            Err(BackendError::Script(format!(
                                "{STALE}: no recorded reply for request {key}"
                            )))
                        }
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use rapport_models::llm::ChatMessage;

    #[test]
    fn wall_clock_timestamps_are_masked_and_others_kept() {
        let now = Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap();
        let text = r#"{"created_at":"2026-11-21T11:59:58.123456Z","due_at":"2026-11-03T09:00:00Z","x":"2026-11-20 20:00:00+00:00"}"#;
        assert_eq!(
            mask_wall_clock(text, now),
            r#"{"created_at":"<now>","due_at":"2026-11-03T09:00:00Z","x":"<now>"}"#
        );
        assert_eq!(
            mask_wall_clock(
                "stage entered at 2026-11-21 11:57 UTC, due 2026-11-03 09:00 UTC",
                now
            ),
            "stage entered at <now> UTC, due 2026-11-03 09:00 UTC"
        );
        // Minute precision with a zone: the zone is part of what is masked.
        assert_eq!(
            mask_wall_clock(
                "at 2026-11-21T11:57Z, 2026-11-21 12:57+01:00 and 2026-11-03T09:00Z",
                now
            ),
            "at <now>, <now> and 2026-11-03T09:00Z"
        );
    }

    #[test]
    fn search_scores_are_masked_in_plain_and_escaped_json() {
        assert_eq!(
            mask_scores(r#"{"score":0.8123,"x":1} "{\"score\":-1.5e-3}" score: 4"#),
            r#"{"score":_,"x":1} "{\"score\":_}" score: 4"#
        );
    }

    #[test]
    fn keys_follow_content_not_key_order_or_the_clock() {
        let now = Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap();
        let later = now + Duration::minutes(5);
        let req = |t: DateTime<Utc>, body: &str| LlmRequest {
            messages: vec![
                ChatMessage::user(body),
                ChatMessage::tool(
                    "c1",
                    "create_task",
                    format!("{{\"created_at\":\"{}\"}}", t.to_rfc3339()),
                ),
            ],
            ..Default::default()
        };
        let a = request_key("m", &req(now, "hi"), now);
        assert_eq!(a, request_key("m", &req(later, "hi"), later));
        assert_ne!(a, request_key("m", &req(now, "hi!"), now));
        assert_ne!(a, request_key("other", &req(now, "hi"), now));
    }

    /// A reply recorded days ago brought its clock's timestamp into the
    /// next request; the run's own records carry today's. The plain key
    /// misses (this made recordings stale after a day and a half); one of
    /// the replay keys is the recorded one, and only for the same request.
    #[test]
    fn replay_finds_a_request_recorded_under_another_clock() {
        let recorded = Utc.with_ymd_and_hms(2026, 12, 6, 12, 0, 0).unwrap();
        let now = recorded + Duration::days(5);
        let req = |created: DateTime<Utc>, body: &str| LlmRequest {
            messages: vec![
                ChatMessage::user(body),
                ChatMessage::assistant(format!(
                    "Moved it; stage entered at {} (due 2026-11-03T09:00:00Z).",
                    recorded.format("%Y-%m-%d %H:%M UTC")
                )),
                ChatMessage::tool(
                    "c1",
                    "create_task",
                    format!("{{\"created_at\":\"{}\"}}", created.to_rfc3339()),
                ),
            ],
            ..Default::default()
        };
        let key = request_key("m", &req(recorded, "hi"), recorded);
        assert_ne!(key, request_key("m", &req(now, "hi"), now));
        let tried: Vec<String> = replay_keys("m", &req(now, "hi"), now).collect();
        assert!(tried.contains(&key), "tried {} keys", tried.len());
        assert!(!replay_keys("m", &req(now, "hi!"), now).any(|k| k == key));
        // A request recorded today is found by the first key.
        assert_eq!(
            replay_keys("m", &req(now, "hi"), now).next(),
            Some(request_key("m", &req(now, "hi"), now))
        );
    }

    #[test]
    fn each_set_a_clock_could_mask_is_tried_once() {
        let at = |d: u32, h: u32| Utc.with_ymd_and_hms(2026, 12, d, h, 0, 0).unwrap();
        let now = at(20, 0);
        // Two times 12 h apart and one 10 days earlier: the sets {a},
        // {a, b}, {b} and {c}; nothing after now.
        let times = [at(1, 0), at(10, 0), at(10, 12)];
        let clocks = recording_clocks(&times, now);
        let sets: Vec<Vec<usize>> = clocks
            .iter()
            .map(|&c| {
                (0..times.len())
                    .filter(|&i| (times[i] - c).abs() < WALL_CLOCK_WINDOW)
                    .collect()
            })
            .collect();
        assert_eq!(sets, vec![vec![2], vec![1, 2], vec![1], vec![0]]);
        assert!(clocks.iter().all(|&c| c <= now));
    }

    fn exchange(content: &str) -> Exchange {
        Exchange {
            content: content.into(),
            tool_calls: vec![],
            usage: None,
            seconds: 0.0,
            last_message: String::new(),
        }
    }

    /// The saved file is JSON with one line per exchange, and reads back
    /// as it was written.
    #[test]
    fn a_saved_tape_has_one_line_per_exchange_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        let tape = Tape::open(&path).unwrap();
        tape.save().unwrap();
        let empty: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(empty["exchanges"], json!({}));

        let mut x = exchange("line one\nline two, \"quoted\"");
        x.tool_calls.push(StoredCall {
            id: "c1".into(),
            name: "create_task".into(),
            arguments: json!({"title": "Call back", "nested": {"a": [1, 2]}}),
        });
        tape.put("a", at("t", 0, 0), "m", x.clone()).unwrap();
        tape.put("b", at("t", 1, 0), "m", exchange("b")).unwrap();
        tape.save().unwrap();

        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let keyed = |k: &str| {
            lines
                .iter()
                .filter(|l| l.trim_start().starts_with(k))
                .count()
        };
        assert_eq!(keyed("\"t/a\""), 1, "{text}");
        assert_eq!(keyed("\"t/b@t2\""), 1, "{text}");
        assert_eq!(lines.len(), 10, "5 fields, 2 exchanges, 3 braces: {text}");
        let back = Tape::open(&path).unwrap();
        assert!(back.by_task());
        assert_eq!(back.trials(), 2);
        assert_eq!(back.get("a", at("t", 0, 0)).unwrap(), x);
    }

    #[test]
    fn pruning_keeps_exactly_the_replies_served() {
        let dir = tempfile::tempdir().unwrap();
        let tape = Tape::open(&dir.path().join("t.json")).unwrap();
        let put = |key: &str, occurrence, trial, text: &str| {
            let slot = at("t", trial, occurrence);
            tape.put(key, slot, "m", exchange(text)).unwrap();
        };
        put("a", 1, 0, "a again");
        put("a", 0, 0, "a");
        put("b", 0, 0, "b, an old request");
        put("a", 0, 2, "a in trial 3");
        assert_eq!(tape.trials(), 3);

        assert_eq!(tape.get("a", at("t", 0, 0)).unwrap().content, "a");
        let third = tape.get("a", at("t", 2, 0)).unwrap();
        assert_eq!(third.content, "a in trial 3");
        assert!(
            tape.get("c", at("t", 0, 0)).is_none(),
            "a miss serves nothing"
        );
        assert!(tape.get("a", at("u", 0, 0)).is_none(), "nor another task");
        assert_eq!(tape.prune(), 2, "b and the second a were never served");
        assert_eq!(tape.len(), 2);
        assert!(tape.get("b", at("t", 0, 0)).is_none());
        assert_eq!(tape.get("a", at("t", 0, 0)).unwrap().content, "a");
        assert_eq!(tape.prune(), 0, "pruning twice drops nothing more");
    }

    fn at(task: &str, trial: usize, occurrence: usize) -> Slot<'_> {
        Slot {
            task,
            trial,
            occurrence,
        }
    }

    /// A sampled recording from before task keys: two tasks sent one
    /// request, and both were served the reply the later one left.
    /// Re-keying gives each task that reply under its own key, keeps what
    /// only one task was served, and drops what nobody was.
    #[test]
    fn rekeying_gives_each_task_what_it_was_served() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        let old = json!({
            "version": 2, "model": "m", "per_trial": true,
            "exchanges": {
                "today": exchange("shared"), "today@t2": exchange("shared 2"),
                "dismiss": exchange("dismiss"), "unused": exchange("unused"),
            }
        });
        std::fs::write(&path, old.to_string()).unwrap();
        let tape = Tape::open(&path).unwrap();
        assert!(!tape.by_task());
        let refused = tape.put("x", at("a", 0, 0), "m", exchange("x"));
        assert!(refused.unwrap_err().to_string().contains("--rekey"));

        for (task, trial, key) in [("a", 0, "today"), ("a", 1, "today")] {
            assert!(tape.get(key, at(task, trial, 0)).is_some());
        }
        for (task, trial, key) in [("b", 0, "today"), ("b", 0, "dismiss")] {
            assert!(tape.get(key, at(task, trial, 0)).is_some());
        }
        assert_eq!(tape.rekey(), (4, 4));
        assert!(tape.by_task());
        tape.save().unwrap();

        let tape = Tape::open(&path).unwrap();
        assert_eq!(
            tape.get("today", at("a", 1, 0)).unwrap().content,
            "shared 2"
        );
        assert_eq!(tape.get("today", at("b", 0, 0)).unwrap().content, "shared");
        assert!(tape.get("dismiss", at("a", 0, 0)).is_none());
        assert!(tape.get("unused", at("a", 0, 0)).is_none());
        // Now a new recording of one task leaves the other's replies alone.
        tape.put("today", at("a", 0, 0), "m", exchange("a's own"))
            .unwrap();
        assert_eq!(tape.get("today", at("a", 0, 0)).unwrap().content, "a's own");
        assert_eq!(tape.get("today", at("b", 0, 0)).unwrap().content, "shared");
    }
}
