/*!
The conversation runtime: what turns "log a call with Dana, remind me Tuesday"
into tool calls, and the answers back into words.

- [`backend`]: language models behind one trait — any OpenAI-compatible
  endpoint (async-openai, with retries and a tolerant stream reader), the local
  GGUF model in process, and a scripted model for tests.
- [`Agent`]: the loop. A user message is stored in the session's log; the
  model is asked with the system prompt ([`prompt`], a versioned tera template
  from `prompts/`), the recent history ([`history`], trimmed to fit) and the
  tools chosen for the request ([`select`]: all of them, or the closest few by
  embedding for a small model), with the records its names may mean looked up
  beforehand ([`mentions`]) and its relative dates worked out ([`dates`]).
  Each call it makes is checked (known tool, arguments that parse, ids the
  conversation showed as the right record type: [`known`]), passed through
  the approval [`policy`], run through the tool registry (one transaction,
  one audit entry carrying the session, model and prompt version) and its
  result — or its structured error — goes back to the model, until it
  answers or a guard (step limit, token budget, a call failing the same way
  twice) stops the turn.
- Approvals: a call that must wait becomes a [`Proposal`](rapport_crm::model::Proposal)
  holding a snapshot of the records it would change; approving re-checks them
  in the transaction that runs the call, so a stale proposal ends in a
  conflict, never an overwrite. Text from emails, notes and search results
  reaches the model inside `<data>` markers, and any write after such text in
  the same turn waits for approval whatever the policy.
- [`confirm`]: a request for one action that one write did is answered
  from the write's result, without another model request (small models).
- [`listing`]: an answer to a read that names none of the records the read
  returned gets them added, from the result (names and plain fields, never
  free text).
- [`undo`]: reverts the agent's last applied change from the audit log.
- [`pipeline`]: the turn pipeline for small local models
  ([`Agent::with_pipeline`], [`TurnMode`]): a plan of at most three steps
  in one constrained call, every id resolved by code, one constrained fill
  per step for the planned fields only, the calls run under the same
  policy, approvals, taint and audit, and an answer written by code
  wherever code knows it (writes, reads that found nothing).
- [`profile`]: one agent's settings (model, backend, loop or pipeline,
  tools per request, policy, guards), read from flags or a TOML file by the
  CLI, the server and the eval harness alike.
- [`guards`]: the checks around the model, by name: each reports when it
  acts, and a profile may switch the switchable ones off.
- [`events`]: what the loop reports as it goes (text deltas, calls, approvals,
  results, the answer), for the CLI and the API's server-sent events.

```no_run
# async fn demo(agent: rapport_agent::Agent, user: rapport_crm::model::User) -> rapport_agent::Result<()> {
use rapport_agent::{Events, TurnOutcome};
let session = agent.start_session(&user, "morning").await?;
match agent.send(session.id, &user, "What's overdue for me?", &Events::none()).await? {
    TurnOutcome::Answer(text) => println!("{text}"),
    TurnOutcome::AwaitingApproval(p) => println!("approve {}?", p.tool),
    TurnOutcome::Stopped(why) => println!("{why}"),
}
# Ok(()) }
```
*/

mod agent;
pub mod backend;
pub mod confirm;
pub mod dates;
mod error;
pub mod events;
pub mod guards;
pub mod history;
pub mod known;
pub mod linked;
pub mod listing;
pub mod mentions;
pub mod pipeline;
pub mod policy;
pub mod profile;
pub mod prompt;
pub mod select;
pub mod undo;

pub use agent::{Agent, AgentConfig, Decision, TurnOutcome};
pub use backend::{BackendError, LlmBackend, LlmReply, LlmRequest, RawCall, TokenUsage};
pub use error::{AgentError, Result};
pub use events::{AgentEvent, Events};
pub use guards::{Guard, Guards};
pub use pipeline::TurnMode;
pub use policy::{Policy, WritePolicy};
pub use profile::{BackendKind, Profile, ProfileError};
pub use select::Selection;
