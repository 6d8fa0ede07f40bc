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
- [`snapshot`]: consistent copies of the live SQLite database for backups,
  and the checks run on them.

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

// 574 public items still lack docs (2026-12-07); the workspace warns
// `missing_docs`, and this allowance goes when the crate is documented.
#![allow(missing_docs)]

/// JSON Schema of a unit enum as the plain list of its names (from its `ALL`
/// and `as_str`), under the `schema` feature. By hand rather than derived: a
/// derive turns type and variant docs into descriptions and `oneOf`s, which
/// small models read worse and which recorded eval turns would pin.
macro_rules! names_schema {
    ($ty:ident) => {
        #[cfg(feature = "schema")]
        impl schemars::JsonSchema for $ty {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($ty).into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                let names: Vec<&str> = $ty::ALL.iter().map(|v| v.as_str()).collect();
                schemars::json_schema!({"type": "string", "enum": names})
            }
        }
    };
}

#[cfg(feature = "bench")]
pub mod bench;
mod error;
pub mod filter;
pub mod model;
pub mod schema;
pub mod scratch;
pub mod seed;
pub mod snapshot;
mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::{Error, Result, Rule, RuleKind};
pub use filter::{Filter, ListQuery, Op, Sort};
pub use model::{Ctx, Id, Record, Role, Source};
pub use schema::RecordType;
pub use store::{
    ApiKey, Backend, Candidate, DealMoved, ExperimentEvent, Exposure, Feedback, FeedbackStatus,
    KEY_PREFIX, LookupQuery, ModelVersion, NewApiKey, NewAuditEntry, NewFeedback, NewModelVersion,
    NewProposal, Outcome, Page, RecordMap, Score, StageLabel, StageTarget, Store, StoredExperiment,
    Tx, hash_key,
};
pub use store::{Bucket, RateGrant};
pub use store::{Credential, FailedSignins, NewWebSession, SavedView, StageTotals, WebSession};
