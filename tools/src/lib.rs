/*!
Every CRM operation as a typed tool: `Args`/`Output` types with JSON Schema, an
effect (read, write, destructive), a permission check, execution in one
transaction and one audit entry. The agent, the REST API, the CLI and MCP are
adapters over this one [`Registry`]. Depends on `rapport-crm`, and on
`rapport-pipelines` for the services some tools use ([`Services`]: semantic
search).

The shape:

- [`Tool`]: a typed operation (name, description written for a model, `Args`,
  `Output`, [`Effect`], allowed roles, async `call`). The blanket impl of
  [`DynTool`] is the one place where JSON becomes `Args` and `Output` becomes
  JSON.
- [`Registry`]: lists tools with strict-mode friendly input schemas and
  dispatches a call given as JSON for a [`Caller`] (the actor comes from the
  adapter, never from the arguments).
- [`ToolError`]: what a model needs to act on a failure — a code, a message, the
  field, a hint, the candidates of an ambiguous reference, whether to retry.

Rules every call follows:

- **Permissions.** Viewers call read tools only. Reps create records (owned by
  them unless they name themselves) and change records they own (`owner_id`, or
  `assignee_id` for tasks); they cannot give records away. Managers and admins
  change anything in their workspace and alone call destructive tools and
  change pipelines and stages.
- **One transaction, one audit entry.** The registry opens the transaction,
  the tool's store calls write their own before/after entries in it, and the
  registry adds one `tool:NAME` entry holding the arguments, the result and the
  acting model if any. Reads are audited too. Any error rolls everything back.
- **Errors name the field.** Argument parse errors carry the JSON path of the
  offending value (`follow_up.due_at`, `types[0]`); store errors keep the field
  the store names.
- **No invented numbers.** Sentiment, scores and next-best actions come from
  the pipelines; until those exist there are no tools for them.

```no_run
# async fn demo(store: rapport_crm::Store, caller: rapport_tools::Caller) -> rapport_tools::Result<()> {
use serde_json::json;
let tools = rapport_tools::Registry::new();
let dana = tools.call(&store, &caller, "create_contact", json!({"first_name": "Dana"})).await?;
let found = tools.call(&store, &caller, "find_records", json!({"query": "Dana"})).await?;
# Ok(()) }
```
*/

#[cfg(feature = "bench")]
pub mod bench;
mod domain;
mod error;
mod nba;
pub mod records;
mod registry;
pub mod schema;
mod scores;
mod search;
mod services;
mod tool;

pub use error::{ErrorCode, Result, ToolError};
pub use nba::{ActionOut, FeedbackOutput, NbaOutput};
pub use registry::{Registry, Snapshot, SnapshotItem, ToolInfo, first_sentence};
pub use search::InteractionHit;
pub use services::{ActionEngine, ActionFeedback, InteractionSearch, SearchFilters, Services};
pub use tool::{AgentInfo, BoxFuture, Call, Caller, DynTool, Effect, Tool, owner_field};
