//! `rapport bench llm`: speed and tool-call reliability of a local chat model.
//!
//! Per model: load time; a ~1,000-token prompt plus 60 generated tokens, first
//! with an empty KV cache ("cold") and then with a different last user turn
//! after the same long system prompt ("cached prefix"), which gives prefill
//! and decode rates; and the fraction of 30 fixed CRM requests for which the
//! model emits a tool call that parses, names an offered tool and whose
//! arguments validate against its schema, with constrained and with
//! unconstrained decoding (tool choice `auto`, greedy, one call per turn).
//! The CRM tools and requests are fixed here so runs compare.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;
use serde_json::{Value, json};
use tracing::info;

use super::toolcall::{parse_tool_calls, validate_call};
use super::types::{ChatMessage, ChatRequest, GenerateOptions, Sampling, ToolChoice, ToolSpec};
use super::{ChatModel, LoadOptions, Result};

/// How to run the benchmark.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Threads for prefill and decode.
    pub threads: usize,
    /// Context window to load the model with, in tokens.
    pub n_ctx: u32,
    /// How many of the 30 CRM requests to run (all by default).
    pub requests: usize,
    /// Prompt length of the speed test, in tokens (approximately).
    pub prompt_tokens: usize,
    /// Tokens generated in the speed test.
    pub gen_tokens: usize,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            threads: 2,
            n_ctx: 4096,
            requests: CRM_REQUESTS.len(),
            prompt_tokens: 1000,
            gen_tokens: 60,
        }
    }
}

/// One model's figures.
#[derive(Debug, Clone, Serialize)]
pub struct ModelReport {
    /// The model's name.
    pub model: String,
    /// Size of the GGUF file.
    pub file_bytes: u64,
    /// Parameters of the model.
    pub params: u64,
    /// Threads it ran on.
    pub threads: usize,
    /// Seconds to load the weights and create the context.
    pub load_s: f64,
    /// Prompt tokens evaluated per second (speed test, empty cache).
    pub prefill_tok_s: f64,
    /// Tokens generated per second.
    pub decode_tok_s: f64,
    /// Prompt tokens of the speed test.
    pub prompt_tokens: usize,
    /// Tokens generated in the speed test.
    pub generated_tokens: usize,
    /// Seconds for the prompt plus generation with an empty KV cache.
    pub cold_s: f64,
    /// Seconds for a prompt sharing its long system prefix with the previous one.
    pub cached_prefix_s: f64,
    /// Prompt tokens of that second request found in the KV cache.
    pub cached_prefix_tokens: usize,
    /// Tool-call reliability, constrained and unconstrained.
    pub tool_calls: Vec<ToolCallReport>,
}

/// Tool-call reliability in one decoding mode.
#[derive(Debug, Clone, Serialize)]
pub struct ToolCallReport {
    /// `constrained` or `unconstrained` decoding.
    pub mode: &'static str,
    /// CRM requests run.
    pub requests: usize,
    /// Outputs that tried to call a tool (tag, fence or JSON object).
    pub attempts: usize,
    /// Calls that parse, name an offered tool and validate against its schema.
    pub valid: usize,
    /// `valid / attempts`: the fraction of tool-call attempts that parse and validate.
    pub valid_of_attempts: f64,
    /// `valid / requests` (every request asks for an action).
    pub valid_of_requests: f64,
    /// Valid calls of the tool the request calls for.
    pub expected_tool: usize,
    /// Mean seconds per request.
    pub mean_s: f64,
    /// Up to five outputs that were not valid calls, for reading.
    pub failures: Vec<String>,
}

/// The CRM tools the reliability test offers.
pub fn crm_tools() -> Vec<ToolSpec> {
    vec![
        ToolSpec::new(
            "create_contact",
            "Create a contact (a person) in the CRM.",
            json!({"type": "object", "properties": {
                "name": {"type": "string", "description": "Full name"},
                "email": {"type": "string", "description": "Email address"},
                "company": {"type": "string", "description": "Company the person works for"},
                "title": {"type": "string", "description": "Job title"},
                "phone": {"type": "string"}
            }, "required": ["name"], "additionalProperties": false}),
        ),
        ToolSpec::new(
            "log_activity",
            "Log a call, email, meeting or note with a contact.",
            json!({"type": "object", "properties": {
                "contact": {"type": "string", "description": "Name or email of the contact"},
                "kind": {"type": "string", "enum": ["call", "email", "meeting", "note"]},
                "summary": {"type": "string", "description": "What was said or done"}
            }, "required": ["contact", "kind", "summary"], "additionalProperties": false}),
        ),
        ToolSpec::new(
            "create_task",
            "Create a follow-up task, optionally for a contact.",
            json!({"type": "object", "properties": {
                "title": {"type": "string"},
                "due_date": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$", "description": "YYYY-MM-DD"},
                "contact": {"type": "string"},
                "priority": {"type": "string", "enum": ["low", "normal", "high"]}
            }, "required": ["title"], "additionalProperties": false}),
        ),
        ToolSpec::new(
            "move_deal_stage",
            "Move a deal to another pipeline stage.",
            json!({"type": "object", "properties": {
                "deal": {"type": "string", "description": "Deal name"},
                "stage": {"type": "string", "enum": ["lead", "qualified", "proposal", "negotiation", "won", "lost"]}
            }, "required": ["deal", "stage"], "additionalProperties": false}),
        ),
        ToolSpec::new(
            "search",
            "Search CRM records by text.",
            json!({"type": "object", "properties": {
                "query": {"type": "string"},
                "record_type": {"type": "string", "enum": ["contact", "company", "deal", "activity"]},
                "limit": {"type": "integer", "minimum": 1, "maximum": 50}
            }, "required": ["query"], "additionalProperties": false}),
        ),
    ]
}

/// 30 requests a rep might type, each with the tool it calls for.
pub const CRM_REQUESTS: [(&str, &str); 30] = [
    ("add Jane Doe from Acme, jane@acme.com", "create_contact"),
    (
        "New contact: Raj Patel, CTO at Globex, raj.patel@globex.io",
        "create_contact",
    ),
    (
        "Please create a contact for Maria Garcia (maria@initech.com), she works at Initech",
        "create_contact",
    ),
    (
        "add Tom Becker, phone +49 30 1234567, company Umbrella GmbH",
        "create_contact",
    ),
    (
        "Create contact Li Wei, head of procurement at Soylent Corp",
        "create_contact",
    ),
    (
        "I met Sarah Connor from Cyberdyne today, email sarah@cyberdyne.com — add her",
        "create_contact",
    ),
    (
        "Log a call with Dana Lee: likes the Pro plan, worried about price",
        "log_activity",
    ),
    (
        "log an email to raj.patel@globex.io saying we sent the proposal",
        "log_activity",
    ),
    (
        "Record a meeting with Jane Doe: demo went well, wants a trial",
        "log_activity",
    ),
    (
        "note on Maria Garcia: prefers contact by email, not phone",
        "log_activity",
    ),
    (
        "Had a call with Tom Becker, he needs a quote by Friday",
        "log_activity",
    ),
    (
        "Log meeting with Li Wei — discussed volume discount for 500 seats",
        "log_activity",
    ),
    (
        "remind me to follow up with Dana Lee on 2025-07-15",
        "create_task",
    ),
    (
        "Create a high priority task: send contract to Globex by 2025-06-30",
        "create_task",
    ),
    (
        "task: call Sarah Connor back next week about pricing",
        "create_task",
    ),
    (
        "Add a to-do to prepare the Q3 pipeline review, due 2025-09-01",
        "create_task",
    ),
    (
        "create a low priority task to update Acme's billing address",
        "create_task",
    ),
    (
        "Remind me on 2025-08-04 to renew the Initech subscription",
        "create_task",
    ),
    ("Move the Acme Pro deal to negotiation", "move_deal_stage"),
    ("Globex expansion deal is won!", "move_deal_stage"),
    ("mark the Initech renewal deal as lost", "move_deal_stage"),
    (
        "move Umbrella GmbH pilot to the proposal stage",
        "move_deal_stage",
    ),
    ("The Soylent deal is now qualified", "move_deal_stage"),
    (
        "Cyberdyne enterprise deal goes to proposal",
        "move_deal_stage",
    ),
    ("find contacts at Acme", "search"),
    ("search for deals with Globex", "search"),
    (
        "What did Acme say about pricing? Look through activities",
        "search",
    ),
    ("look up Maria Garcia", "search"),
    (
        "show me the 5 most relevant companies matching 'logistics'",
        "search",
    ),
    ("Search activities mentioning the word discount", "search"),
];

const SYSTEM: &str = "You are Rapport, the assistant of a CRM. When the user asks for an action, \
                      call exactly one of the tools with the right arguments. Dates are YYYY-MM-DD; today is 2025-06-02.";

/// Runs the whole benchmark for one GGUF file.
pub fn bench_model(name: &str, path: &Path, opts: &BenchOptions) -> Result<ModelReport> {
    let model = ChatModel::load(
        path,
        LoadOptions {
            name: Some(name.to_string()),
            n_ctx: opts.n_ctx,
            n_threads: Some(opts.threads),
            ..Default::default()
        },
    )?;
    let info = model.info().clone();

    // Speed: a long system prompt (~prompt_tokens) and a short user turn.
    let system = long_system_prompt(&model, opts.prompt_tokens)?;
    let speed_opts = GenerateOptions {
        max_tokens: Some(opts.gen_tokens),
        ignore_eos: true,
        ..Default::default()
    };
    let ask = |q: &str| {
        ChatRequest::new(vec![
            ChatMessage::system(system.clone()),
            ChatMessage::user(q),
        ])
        .with_options(speed_opts.clone())
    };
    model.clear_cache()?;
    let t = Instant::now();
    let cold = model.generate(
        ask("Summarise the account notes above in three sentences."),
        |_| {},
    )?;
    let cold_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let warm = model.generate(
        ask("Which account above has the largest open deal?"),
        |_| {},
    )?;
    let cached_prefix_s = t.elapsed().as_secs_f64();
    info!(model = name, cold_s, cached_prefix_s, "speed test done");

    let tools = crm_tools();
    let mut tool_calls = Vec::new();
    for (mode, constrained) in [("constrained", true), ("unconstrained", false)] {
        tool_calls.push(tool_call_test(
            &model,
            &tools,
            constrained,
            mode,
            opts.requests,
        )?);
    }
    Ok(ModelReport {
        model: name.to_string(),
        file_bytes: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
        params: info.n_params,
        threads: info.n_threads,
        load_s: info.load_s,
        prefill_tok_s: cold.usage.prompt_tokens as f64 / cold.timings.prefill_s.max(1e-9),
        decode_tok_s: cold.usage.completion_tokens as f64 / cold.timings.decode_s.max(1e-9),
        prompt_tokens: cold.usage.prompt_tokens,
        generated_tokens: cold.usage.completion_tokens,
        cold_s,
        cached_prefix_s,
        cached_prefix_tokens: warm.usage.cached_prompt_tokens,
        tool_calls,
    })
}

/// A system prompt of about `target` tokens: CRM account notes.
fn long_system_prompt(model: &ChatModel, target: usize) -> Result<String> {
    let mut s = String::from("You are Rapport, a CRM assistant. Account notes follow.\n");
    let mut i = 0usize;
    loop {
        let n = model.count_prompt_tokens(vec![
            ChatMessage::system(s.clone()),
            ChatMessage::user("Hi"),
        ])?;
        if n >= target.saturating_sub(30) {
            return Ok(s);
        }
        let accounts = [
            "Acme",
            "Globex",
            "Initech",
            "Umbrella",
            "Soylent",
            "Cyberdyne",
            "Hooli",
            "Stark",
        ];
        let a = accounts[i % accounts.len()];
        s.push_str(&format!(
            "- {a} (note {i}): renewal due in {} days, {} seats, champion asked about SSO and the price of the Pro plan; \
             open deal value {} EUR; last call was positive but procurement is slow.\n",
            30 + i * 7 % 90,
            10 + i * 13 % 400,
            5000 + i * 1750 % 90000
        ));
        i += 1;
    }
}

fn tool_call_test(
    model: &ChatModel,
    tools: &[ToolSpec],
    constrained: bool,
    mode: &'static str,
    n: usize,
) -> Result<ToolCallReport> {
    let mut attempts = 0;
    let mut valid = 0;
    let mut expected_tool = 0;
    let mut failures = Vec::new();
    let t = Instant::now();
    let n = n.min(CRM_REQUESTS.len());
    for (text, expected) in CRM_REQUESTS.iter().take(n) {
        let req = ChatRequest::new(vec![ChatMessage::system(SYSTEM), ChatMessage::user(*text)])
            .with_tools(tools.to_vec(), ToolChoice::Auto)
            .with_options(GenerateOptions {
                max_tokens: Some(160),
                sampling: Sampling::Greedy,
                constrained,
                // Each request calls for one action.
                parallel_tool_calls: false,
                ..Default::default()
            });
        let out = model.generate(req, |_| {})?;
        let parsed = parse_tool_calls(&out.text);
        if parsed.attempted {
            attempts += 1;
        }
        let ok = !parsed.tool_calls.is_empty()
            && parsed
                .tool_calls
                .iter()
                .all(|c| validate_call(c, tools).is_ok());
        if ok {
            valid += 1;
            if parsed.tool_calls.iter().any(|c| c.name == *expected) {
                expected_tool += 1;
            }
        } else if failures.len() < 5 {
            failures.push(out.text.chars().take(300).collect());
        }
    }
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    Ok(ToolCallReport {
        mode,
        requests: n,
        attempts,
        valid,
        valid_of_attempts: ratio(valid, attempts),
        valid_of_requests: ratio(valid, n),
        expected_tool,
        mean_s: t.elapsed().as_secs_f64() / n.max(1) as f64,
        failures,
    })
}

/// The JSON document `rapport bench llm` prints.
pub fn report_json(reports: &[ModelReport], opts: &BenchOptions) -> Value {
    json!({
        "bench": "llm",
        "engine": "llama.cpp (llama-cpp-2 =0.1.160)",
        "threads": opts.threads,
        "prompt_tokens_target": opts.prompt_tokens,
        "gen_tokens": opts.gen_tokens,
        "models": reports,
    })
}
