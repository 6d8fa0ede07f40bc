/*!
Rapport's records: the domain types of a CRM and their persistence.

This crate owns what a CRM *is* — workspaces, users and their roles, companies,
contacts, leads, pipelines and stages, deals with their stage history,
activities (emails, calls, meetings, notes), tasks, tags, custom attributes — and
how those records are stored, on SQLite (the embedded default) or PostgreSQL,
through one code path chosen by URL. It also keeps the audit log and generates
the demo CRM. It knows nothing of language models, embeddings or HTTP: those
live in `rapport-models`, `rapport-agent` and `rapport-api`.

The shape:

- [`model`] and [`schema`]: plain data, no I/O. `schema` describes each record
  type's columns, which drives validation, typed filters and row decoding, so
  every record type goes through the same generic code and every error names
  its field.
- [`filter`]: typed filters (field, operator, value; and/or groups), sorting
  and cursor pagination. Callers never write SQL.
- [`Store`]: reads on pooled connections, writes in a [`Tx`]. Every call takes a
  [`Ctx`] whose workspace is part of every query, so nothing crosses workspaces.
- [`seed`]: a deterministic demo CRM with realistic interaction text.

```no_run
# async fn demo() -> rapport_crm::Result<()> {
use rapport_crm::{Ctx, Filter, ListQuery, Source, Store, model::Contact};
use serde_json::json;

let store = Store::connect("sqlite://rapport.sqlite").await?;
let ws = store.create_workspace("acme-sales").await?;
let ctx = Ctx::new(ws.id, None, Source::Cli);
let dana: Contact = store.create(&ctx, json!({"first_name": "Dana", "last_name": "Lee", "email": "dana@acme.com"})).await?;
let page = store.list::<Contact>(&ctx, &ListQuery::filtered(Filter::eq("email", "dana@acme.com"))).await?;
assert_eq!(page.items[0].id, dana.id);
# Ok(()) }
```
*/

pub mod bench;
mod error;
pub mod filter;
pub mod model;
pub mod schema;
pub mod seed;
mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::{Error, Result};
pub use filter::{Filter, ListQuery, Op, Sort};
pub use model::{Ctx, Id, Record, Role, Source};
pub use schema::RecordType;
pub use store::{
    ApiKey, Backend, Candidate, ExperimentEvent, Exposure, Feedback, FeedbackStatus, KEY_PREFIX,
    LookupQuery, ModelVersion, NewApiKey, NewAuditEntry, NewFeedback, NewModelVersion, NewProposal,
    Page, RecordMap, Score, Store, StoredExperiment, Tx, hash_key,
};
pub use store::{Credential, FailedSignins, NewWebSession, SavedView, StageTotals, WebSession};
