//! Persistence: one [`Store`] over SQLite or PostgreSQL, chosen by URL. Reads go
//! straight to a pooled connection; writes run in a [`Tx`] so a multi-step write
//! either happens whole or not at all, audit entry included.

mod audit;
mod conn;
mod deals;
mod lookup;
mod outbox;
mod records;
mod sessions;
mod sql;
mod tags;
mod workspace;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde_json::{Map, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Postgres, Sqlite, SqlitePool, Transaction};

pub use conn::Backend;
use conn::Conn;
pub use deals::{DealMoved, Outcome, StageLabel, StageTarget};
pub use lookup::{Candidate, LookupQuery};
pub use records::{NewStageChange, Page, RecordMap};
pub use sessions::NewProposal;

use crate::error::{Error, Result};
use crate::filter::ListQuery;
use crate::model::{
    AgentSession, AuditEntry, Ctx, Id, OutboxEntry, Proposal, ProposalStatus, Record, SessionEntry,
    StageChange, Workspace,
};
use crate::schema::RecordType;

/// The record store. Cheap to clone (it holds a connection pool).
#[derive(Clone, Debug)]
pub struct Store {
    pool: Pool,
}

#[derive(Clone, Debug)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A write transaction. Dropped without [`Tx::commit`], it rolls back.
pub struct Tx {
    inner: TxInner,
}

enum TxInner {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

impl Store {
    /// Opens `sqlite://PATH` (created if missing) or `postgres://…` and applies
    /// pending migrations.
    pub async fn connect(url: &str) -> Result<Store> {
        let store = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10));
            let pool = SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(options)
                .await?;
            sqlx::migrate!("../migrations/sqlite").run(&pool).await?;
            Store {
                pool: Pool::Sqlite(pool),
            }
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let options = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await?;
            sqlx::migrate!("../migrations/postgres").run(&pool).await?;
            Store {
                pool: Pool::Postgres(pool),
            }
        } else {
            return Err(Error::Config(format!(
                "unsupported database URL {url:?}: use sqlite://PATH or postgres://…"
            )));
        };
        tracing::debug!(backend = store.backend().name(), "store ready");
        Ok(store)
    }

    /// The SQLite URL of the embedded default inside a data directory.
    pub fn sqlite_url_in(data_dir: &Path) -> String {
        format!("sqlite://{}", data_dir.join("rapport.sqlite").display())
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// The underlying pools, for benchmarks that compare against raw sqlx.
    pub fn sqlite_pool(&self) -> Option<&SqlitePool> {
        match &self.pool {
            Pool::Sqlite(p) => Some(p),
            Pool::Postgres(_) => None,
        }
    }

    pub fn postgres_pool(&self) -> Option<&PgPool> {
        match &self.pool {
            Pool::Postgres(p) => Some(p),
            Pool::Sqlite(_) => None,
        }
    }

    /// Starts a write transaction. On SQLite it takes the write lock up front
    /// (`BEGIN IMMEDIATE`), so two writers queue instead of deadlocking.
    pub async fn begin(&self) -> Result<Tx> {
        let inner = match &self.pool {
            Pool::Sqlite(p) => TxInner::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            Pool::Postgres(p) => TxInner::Postgres(p.begin().await?),
        };
        Ok(Tx { inner })
    }

    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
        }
    }
}

/// Runs `$body` with `$conn` bound to a pooled connection of `$store`.
macro_rules! with_pooled {
    ($store:expr, |$conn:ident| $body:expr) => {
        match &$store.pool {
            Pool::Sqlite(p) => {
                let mut c = p.acquire().await?;
                let $conn = Conn::Sqlite(&mut c);
                $body
            }
            Pool::Postgres(p) => {
                let mut c = p.acquire().await?;
                let $conn = Conn::Postgres(&mut c);
                $body
            }
        }
    };
}

/// Runs a write in its own transaction and commits it.
macro_rules! in_tx {
    ($store:expr, |$tx:ident| $body:expr) => {{
        let mut $tx = $store.begin().await?;
        let out = $body;
        $tx.commit().await?;
        Ok(out)
    }};
}

// After the macros above, which it uses.
mod nba;
mod pipelines;
pub use nba::{ExperimentEvent, Exposure, Feedback, FeedbackStatus, NewFeedback, StoredExperiment};
pub use pipelines::{ModelVersion, NewModelVersion, Score};
mod keys;
pub use keys::{ApiKey, KEY_PREFIX, NewApiKey, hash_key};
mod board;
mod leases;
mod signin;
mod views;
pub use board::StageTotals;
pub use leases::{Bucket, RateGrant};
pub use signin::{Credential, FailedSignins, NewWebSession, WebSession};
pub use views::SavedView;

impl Tx {
    fn conn(&mut self) -> Conn<'_> {
        match &mut self.inner {
            TxInner::Sqlite(t) => Conn::Sqlite(t),
            TxInner::Postgres(t) => Conn::Postgres(t),
        }
    }

    pub async fn commit(self) -> Result<()> {
        match self.inner {
            TxInner::Sqlite(t) => t.commit().await?,
            TxInner::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }

    pub async fn rollback(self) -> Result<()> {
        match self.inner {
            TxInner::Sqlite(t) => t.rollback().await?,
            TxInner::Postgres(t) => t.rollback().await?,
        }
        Ok(())
    }

    // Typed record operations, inside this transaction.

    pub async fn get<R: Record>(&mut self, ctx: &Ctx, id: Id) -> Result<R> {
        records::from_map(records::get(self.conn(), ctx, R::TYPE, id).await?)
    }

    pub async fn list<R: Record>(&mut self, ctx: &Ctx, query: &ListQuery) -> Result<Page<R>> {
        records::list(self.conn(), ctx, R::TYPE, query)
            .await?
            .typed()
    }

    /// Creates a record from its writable fields (a JSON object).
    pub async fn create<R: Record>(&mut self, ctx: &Ctx, fields: Value) -> Result<R> {
        records::from_map(records::create(self.conn(), ctx, R::TYPE, as_object(fields)?).await?)
    }

    /// Changes only the fields given. `custom` is merged key by key (a null value
    /// removes the key).
    pub async fn update<R: Record>(&mut self, ctx: &Ctx, id: Id, patch: Value) -> Result<R> {
        records::from_map(records::update(self.conn(), ctx, R::TYPE, id, as_object(patch)?).await?)
    }

    /// Deletes a record that nothing references; returns it as it was.
    pub async fn delete<R: Record>(&mut self, ctx: &Ctx, id: Id) -> Result<R> {
        records::from_map(records::delete(self.conn(), ctx, R::TYPE, id).await?)
    }

    // The same operations on a record type chosen at run time, as JSON objects
    // (for adapters that receive the type as data: tools, REST, CLI).

    pub async fn get_dyn(&mut self, ctx: &Ctx, rt: RecordType, id: Id) -> Result<RecordMap> {
        records::get(self.conn(), ctx, rt, id).await
    }

    pub async fn list_dyn(
        &mut self,
        ctx: &Ctx,
        rt: RecordType,
        q: &ListQuery,
    ) -> Result<Page<RecordMap>> {
        records::list(self.conn(), ctx, rt, q).await
    }

    pub async fn create_dyn(
        &mut self,
        ctx: &Ctx,
        rt: RecordType,
        fields: Value,
    ) -> Result<RecordMap> {
        records::create(self.conn(), ctx, rt, as_object(fields)?).await
    }

    pub async fn update_dyn(
        &mut self,
        ctx: &Ctx,
        rt: RecordType,
        id: Id,
        patch: Value,
    ) -> Result<RecordMap> {
        records::update(self.conn(), ctx, rt, id, as_object(patch)?).await
    }

    /// Writes back recorded state (an undo, an import's update): like
    /// [`Tx::update_dyn`], but a deal's status may be set as long as it agrees
    /// with its stage.
    pub async fn update_recorded_dyn(
        &mut self,
        ctx: &Ctx,
        rt: RecordType,
        id: Id,
        patch: Value,
    ) -> Result<RecordMap> {
        records::update_as(
            self.conn(),
            ctx,
            rt,
            id,
            as_object(patch)?,
            records::Lifecycle::Recorded,
        )
        .await
    }

    /// Moves a deal to another open stage of its pipeline, with its stage
    /// history; see [`deals::move_stage`].
    pub async fn move_deal_stage(
        &mut self,
        ctx: &Ctx,
        deal_id: Id,
        target: &StageTarget,
    ) -> Result<DealMoved> {
        let deal = records::get(self.conn(), ctx, RecordType::Deal, deal_id).await?;
        deals::move_stage(self.conn(), ctx, &deal, target).await
    }

    /// Closes an open deal won or lost with a reason; see [`deals::close`].
    pub async fn close_deal(
        &mut self,
        ctx: &Ctx,
        deal_id: Id,
        outcome: Outcome,
        reason: &str,
    ) -> Result<DealMoved> {
        let deal = records::get(self.conn(), ctx, RecordType::Deal, deal_id).await?;
        deals::close(self.conn(), ctx, &deal, outcome, reason).await
    }

    pub async fn delete_dyn(&mut self, ctx: &Ctx, rt: RecordType, id: Id) -> Result<RecordMap> {
        records::delete(self.conn(), ctx, rt, id).await
    }

    pub async fn add_tag(&mut self, ctx: &Ctx, rt: RecordType, id: Id, tag: &str) -> Result<bool> {
        tags::add(self.conn(), ctx, rt, id, tag).await
    }

    pub async fn remove_tag(
        &mut self,
        ctx: &Ctx,
        rt: RecordType,
        id: Id,
        tag: &str,
    ) -> Result<bool> {
        tags::remove(self.conn(), ctx, rt, id, tag).await
    }

    /// Inserts many records of one type at once (imports, demo data); see
    /// the module docs of `records::bulk_insert`. Returns ids in row order.
    pub async fn bulk_insert(
        &mut self,
        ctx: &Ctx,
        rt: RecordType,
        rows: Vec<RecordMap>,
    ) -> Result<Vec<Id>> {
        records::bulk_insert(self.conn(), ctx, rt, rows).await
    }

    /// Records past stage changes of deals (imports that carry history).
    pub async fn insert_stage_changes(
        &mut self,
        ctx: &Ctx,
        changes: &[NewStageChange],
    ) -> Result<()> {
        records::insert_stage_changes(self.conn(), ctx, changes).await
    }

    /// Writes an audit entry for an action the store does not know about (used by
    /// higher layers, e.g. a tool that records its own call).
    pub async fn audit(&mut self, ctx: &Ctx, entry: audit::NewEntry<'_>) -> Result<Id> {
        audit::write(self.conn(), ctx, entry).await
    }
}

/// Agent sessions: written inside the transaction of the step they record.
impl Tx {
    pub async fn create_session(
        &mut self,
        ctx: &Ctx,
        user_id: Id,
        title: &str,
    ) -> Result<AgentSession> {
        sessions::create(self.conn(), ctx, user_id, title).await
    }

    /// Appends an entry to a session's log.
    pub async fn append_session_entry(
        &mut self,
        ctx: &Ctx,
        session_id: Id,
        kind: &str,
        body: &Value,
    ) -> Result<Id> {
        sessions::append(self.conn(), ctx, session_id, kind, body).await
    }

    pub async fn propose(&mut self, ctx: &Ctx, p: NewProposal<'_>) -> Result<Proposal> {
        sessions::propose(self.conn(), ctx, p).await
    }

    /// Re-reads a proposal inside the transaction that decides it.
    pub async fn proposal(&mut self, ctx: &Ctx, id: Id) -> Result<Proposal> {
        sessions::proposal(self.conn(), ctx, id).await
    }

    pub async fn decide_proposal(
        &mut self,
        ctx: &Ctx,
        id: Id,
        status: ProposalStatus,
        args: &Value,
        result: &Value,
    ) -> Result<()> {
        sessions::decide(self.conn(), ctx, id, status, args, result).await
    }
}

pub use audit::NewEntry as NewAuditEntry;

impl Store {
    pub async fn get<R: Record>(&self, ctx: &Ctx, id: Id) -> Result<R> {
        with_pooled!(self, |c| records::from_map(
            records::get(c, ctx, R::TYPE, id).await?
        ))
    }

    pub async fn list<R: Record>(&self, ctx: &Ctx, query: &ListQuery) -> Result<Page<R>> {
        with_pooled!(self, |c| records::list(c, ctx, R::TYPE, query)
            .await?
            .typed())
    }

    pub async fn create<R: Record>(&self, ctx: &Ctx, fields: Value) -> Result<R> {
        in_tx!(self, |tx| tx.create::<R>(ctx, fields).await?)
    }

    pub async fn update<R: Record>(&self, ctx: &Ctx, id: Id, patch: Value) -> Result<R> {
        in_tx!(self, |tx| tx.update::<R>(ctx, id, patch).await?)
    }

    pub async fn delete<R: Record>(&self, ctx: &Ctx, id: Id) -> Result<R> {
        in_tx!(self, |tx| tx.delete::<R>(ctx, id).await?)
    }

    /// [`Tx::move_deal_stage`] in a transaction of its own.
    pub async fn move_deal_stage(
        &self,
        ctx: &Ctx,
        deal_id: Id,
        target: &StageTarget,
    ) -> Result<DealMoved> {
        in_tx!(self, |tx| tx.move_deal_stage(ctx, deal_id, target).await?)
    }

    /// [`Tx::close_deal`] in a transaction of its own.
    pub async fn close_deal(
        &self,
        ctx: &Ctx,
        deal_id: Id,
        outcome: Outcome,
        reason: &str,
    ) -> Result<DealMoved> {
        in_tx!(self, |tx| tx
            .close_deal(ctx, deal_id, outcome, reason)
            .await?)
    }

    pub async fn get_dyn(&self, ctx: &Ctx, rt: RecordType, id: Id) -> Result<RecordMap> {
        with_pooled!(self, |c| records::get(c, ctx, rt, id).await)
    }

    pub async fn list_dyn(
        &self,
        ctx: &Ctx,
        rt: RecordType,
        q: &ListQuery,
    ) -> Result<Page<RecordMap>> {
        with_pooled!(self, |c| records::list(c, ctx, rt, q).await)
    }

    pub async fn add_tag(&self, ctx: &Ctx, rt: RecordType, id: Id, tag: &str) -> Result<bool> {
        in_tx!(self, |tx| tx.add_tag(ctx, rt, id, tag).await?)
    }

    pub async fn remove_tag(&self, ctx: &Ctx, rt: RecordType, id: Id, tag: &str) -> Result<bool> {
        in_tx!(self, |tx| tx.remove_tag(ctx, rt, id, tag).await?)
    }

    pub async fn tags_of(&self, ctx: &Ctx, rt: RecordType, id: Id) -> Result<Vec<String>> {
        with_pooled!(self, |c| tags::of(c, ctx, rt, id).await)
    }

    /// Ids of the records of a type that carry a tag.
    pub async fn tagged(&self, ctx: &Ctx, rt: RecordType, tag: &str) -> Result<Vec<Id>> {
        with_pooled!(self, |c| tags::tagged(c, ctx, rt, tag).await)
    }

    /// A record's audit history, oldest first.
    pub async fn history(&self, ctx: &Ctx, rt: RecordType, id: Id) -> Result<Vec<AuditEntry>> {
        with_pooled!(self, |c| audit::for_record(c, ctx, rt, id).await)
    }

    /// What a user did, newest first.
    pub async fn actions_of(&self, ctx: &Ctx, actor_id: Id, limit: u32) -> Result<Vec<AuditEntry>> {
        with_pooled!(self, |c| audit::for_actor(c, ctx, actor_id, limit).await)
    }

    /// A deal's moves between stages, oldest first.
    pub async fn stage_history(&self, ctx: &Ctx, deal_id: Id) -> Result<Vec<StageChange>> {
        with_pooled!(self, |c| records::stage_history(c, ctx, deal_id).await)
    }

    /// Finds records by a loose reference such as "Dana at Acme" or an email.
    pub async fn lookup(&self, ctx: &Ctx, query: &LookupQuery) -> Result<Vec<Candidate>> {
        with_pooled!(self, |c| lookup::lookup(c, ctx, query).await)
    }

    /// Tasks whose titles hold the words of `text`, those of `company_id`
    /// and open ones first (see [`lookup::tasks`]).
    pub async fn lookup_tasks(
        &self,
        ctx: &Ctx,
        text: &str,
        company_id: Option<Id>,
        limit: usize,
    ) -> Result<Vec<Candidate>> {
        with_pooled!(self, |c| lookup::tasks(c, ctx, text, company_id, limit)
            .await)
    }

    /// Leads whose company is called `name` ("the Horvath Bakery lead").
    pub async fn lookup_leads_by_company(
        &self,
        ctx: &Ctx,
        name: &str,
        limit: usize,
    ) -> Result<Vec<Candidate>> {
        with_pooled!(self, |c| lookup::leads_by_company(c, ctx, name, limit)
            .await)
    }

    /// Stages called `name`, within `pipeline_id` when given.
    pub async fn lookup_stages(
        &self,
        ctx: &Ctx,
        name: &str,
        pipeline_id: Option<Id>,
    ) -> Result<Vec<Candidate>> {
        with_pooled!(self, |c| lookup::stages(c, ctx, name, pipeline_id).await)
    }

    /// Number of records of each type in the workspace.
    pub async fn counts(&self, ctx: &Ctx) -> Result<Vec<(RecordType, i64)>> {
        with_pooled!(self, |c| workspace::counts(c, ctx).await)
    }

    pub async fn session(&self, ctx: &Ctx, id: Id) -> Result<AgentSession> {
        with_pooled!(self, |c| sessions::get(c, ctx, id).await)
    }

    /// A user's sessions, newest first.
    pub async fn sessions_of(
        &self,
        ctx: &Ctx,
        user_id: Id,
        limit: u32,
    ) -> Result<Vec<AgentSession>> {
        with_pooled!(self, |c| sessions::of_user(c, ctx, user_id, limit).await)
    }

    /// A session's log, oldest first.
    pub async fn session_entries(&self, ctx: &Ctx, session_id: Id) -> Result<Vec<SessionEntry>> {
        with_pooled!(self, |c| sessions::entries(c, ctx, session_id).await)
    }

    pub async fn proposal(&self, ctx: &Ctx, id: Id) -> Result<Proposal> {
        with_pooled!(self, |c| sessions::proposal(c, ctx, id).await)
    }

    /// A session's proposals, oldest first, optionally only those in `status`.
    pub async fn proposals(
        &self,
        ctx: &Ctx,
        session_id: Id,
        status: Option<ProposalStatus>,
    ) -> Result<Vec<Proposal>> {
        with_pooled!(self, |c| sessions::proposals(c, ctx, session_id, status)
            .await)
    }

    /// The audit entries written under an agent session, oldest first.
    pub async fn session_audit(&self, ctx: &Ctx, session: &str) -> Result<Vec<AuditEntry>> {
        with_pooled!(self, |c| sessions::audit_of(c, ctx, session).await)
    }

    pub async fn create_workspace(&self, name: &str) -> Result<Workspace> {
        in_tx!(self, |tx| workspace::create(tx.conn(), name).await?)
    }

    pub async fn workspace_by_name(&self, name: &str) -> Result<Option<Workspace>> {
        with_pooled!(self, |c| workspace::by_name(c, name).await)
    }

    pub async fn workspaces(&self) -> Result<Vec<Workspace>> {
        with_pooled!(self, |c| workspace::all(c).await)
    }

    // The index outbox (filled by triggers on `activities`; drained by ingestion).

    /// The oldest `limit` pending outbox entries, in queue order; every
    /// workspace's when `workspace_id` is `None` (a system job).
    pub async fn outbox_pending(
        &self,
        workspace_id: Option<Id>,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>> {
        with_pooled!(self, |c| outbox::pending(c, workspace_id, limit).await)
    }

    /// Acknowledges handled outbox entries by their sequence numbers.
    pub async fn outbox_ack(&self, seqs: &[i64]) -> Result<u64> {
        in_tx!(self, |tx| outbox::ack(tx.conn(), seqs).await?)
    }

    /// Pending outbox entries; every workspace's when `workspace_id` is `None`.
    pub async fn outbox_len(&self, workspace_id: Option<Id>) -> Result<i64> {
        with_pooled!(self, |c| outbox::len(c, workspace_id).await)
    }

    /// Queues every activity of the context's workspace for (re)indexing.
    pub async fn outbox_enqueue_all(&self, ctx: &Ctx) -> Result<u64> {
        in_tx!(self, |tx| outbox::enqueue_all(tx.conn(), ctx.workspace_id)
            .await?)
    }
}

fn as_object(value: Value) -> Result<Map<String, Value>> {
    match value {
        Value::Object(map) => Ok(map),
        other => Err(Error::invalid(
            "fields",
            format!("expected a JSON object of field names to values, got {other}"),
        )),
    }
}
