//! Semantic memory: the text of emails, calls, meetings and notes, searchable
//! by meaning and by keyword, with citations.
//!
//! The database stays the source of truth. Triggers queue every changed
//! activity in the index outbox; [`Memory::ingest`] drains it (clean, chunk by
//! tokens, embed in batches, BM25, delete-then-upsert the activity's points,
//! flush, then acknowledge), and [`Memory::search`] answers queries with hits
//! grouped per activity. See [`ingest`] for why a crash at any moment is safe.

pub mod bench;
pub mod chunk;
pub mod clean;
mod error;
pub mod eval;
pub mod ingest;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rapport_crm::model::{Activity, Company, Contact};
use rapport_crm::{Ctx, Filter, Id, ListQuery, Op, Store};
use rapport_index::{Bm25, IndexFilter, Query, ScoredChunk, VectorIndex};
use rapport_models::{Embedder, EmbedderOptions};
use serde::{Deserialize, Serialize};

pub use chunk::{ChunkParams, Chunker};
pub use error::{Error, Result};
pub use ingest::{IngestOptions, IngestReport};

/// Which vectors a search uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// MiniLM vectors only.
    Dense,
    /// BM25 keywords only.
    Bm25,
    /// Both, fused by reciprocal rank fusion.
    #[default]
    Hybrid,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Dense, Mode::Bm25, Mode::Hybrid];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Dense => "dense",
            Mode::Bm25 => "bm25",
            Mode::Hybrid => "hybrid",
        }
    }
}

/// Filters a search applies besides the workspace (always applied): the
/// tools' type, which `search_interactions` fills from its arguments.
pub use rapport_tools::SearchFilters;

/// The activity kinds a search may filter on.
pub const KINDS: &[&str] = rapport_crm::schema::ACTIVITY_KINDS;

/// The index's filter for a search in one workspace, after checking the
/// filters make sense.
fn to_index(f: &SearchFilters, workspace_id: Id) -> Result<IndexFilter> {
    if let Some(k) = &f.kind
        && !KINDS.contains(&k.as_str())
    {
        return Err(Error::invalid(
            "kind",
            format!(
                "{k:?} is not an activity kind; use one of {}",
                KINDS.join(", ")
            ),
        ));
    }
    if let (Some(s), Some(u)) = (f.since, f.until)
        && s >= u
    {
        return Err(Error::invalid(
            "since",
            format!("since ({s}) must be before until ({u})"),
        ));
    }
    Ok(IndexFilter {
        workspace_id,
        kinds: f.kind.iter().cloned().collect(),
        company_id: f.company_id,
        contact_id: f.contact_id,
        deal_id: f.deal_id,
        owner_id: f.owner_id,
        since: f.since,
        until: f.until,
    })
}

/// One activity that answers a query, with the chunk that matched best.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    /// The citation: the activity this text comes from.
    pub activity_id: Id,
    /// The best chunk's score (cosine for dense, BM25 for keywords, fused rank score for hybrid).
    pub score: f32,
    pub kind: String,
    pub occurred_at: DateTime<Utc>,
    pub subject: Option<String>,
    /// The contact the activity was with, by name.
    pub who: Option<String>,
    pub contact_id: Option<Id>,
    pub company: Option<String>,
    pub company_id: Option<Id>,
    pub deal_id: Option<Id>,
    pub owner_id: Option<Id>,
    /// The best-matching chunk's text.
    pub snippet: String,
    /// Which chunk, and its byte span within the activity's indexed text.
    pub chunk: u32,
    pub span: (u32, u32),
}

/// The semantic memory of a CRM: store, index, embedder, keyword model and chunker.
#[derive(Clone)]
pub struct Memory {
    store: Store,
    index: Arc<dyn VectorIndex>,
    embedder: Embedder,
    bm25: Arc<Bm25>,
    chunker: Chunker,
}

impl std::fmt::Debug for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memory")
            .field("index", &self.index.engine())
            .field("chunker", &self.chunker)
            .finish_non_exhaustive()
    }
}

impl Memory {
    pub fn new(
        store: Store,
        index: Arc<dyn VectorIndex>,
        embedder: Embedder,
        chunker: Chunker,
    ) -> Result<Memory> {
        Ok(Memory {
            store,
            index,
            embedder,
            bm25: Arc::new(Bm25::english()?),
            chunker,
        })
    }

    /// Loads MiniLM and its tokenizer (fetching them if missing) off the async runtime.
    pub async fn open(store: Store, index: Arc<dyn VectorIndex>) -> Result<Memory> {
        let (embedder, chunker) = tokio::task::spawn_blocking(|| -> Result<_> {
            let embedder = Embedder::load_default(EmbedderOptions::default())?;
            let chunker = Chunker::minilm(ChunkParams::default())?;
            Ok((embedder, chunker))
        })
        .await??;
        Memory::new(store, index, embedder, chunker)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn index(&self) -> &Arc<dyn VectorIndex> {
        &self.index
    }

    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }

    pub fn bm25(&self) -> &Bm25 {
        &self.bm25
    }

    pub fn chunker(&self) -> &Chunker {
        &self.chunker
    }

    /// Embeds texts on the blocking pool (the forward pass takes the CPU for a while).
    pub async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>> {
        let embedder = self.embedder.clone();
        Ok(tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            embedder.embed(&refs)
        })
        .await??)
    }

    /// The index query for a text in a mode.
    pub async fn query_for(&self, text: &str, mode: Mode) -> Result<Query> {
        let dense = || async {
            self.embed(vec![text.to_owned()])
                .await
                .map(|mut v| v.remove(0))
        };
        Ok(match mode {
            Mode::Dense => Query::Dense(dense().await?),
            Mode::Bm25 => Query::Sparse(self.bm25.embed_query(text)),
            Mode::Hybrid => Query::Hybrid {
                dense: dense().await?,
                sparse: self.bm25.embed_query(text),
            },
        })
    }

    /// Hybrid search: the `limit` activities of the context's workspace that
    /// best answer `query` under `filters`, best first.
    pub async fn search(
        &self,
        ctx: &Ctx,
        query: &str,
        filters: &SearchFilters,
        limit: usize,
    ) -> Result<Vec<Hit>> {
        self.search_with(ctx, query, filters, Mode::Hybrid, limit)
            .await
    }

    /// As [`search`](Self::search), in a chosen mode.
    pub async fn search_with(
        &self,
        ctx: &Ctx,
        query: &str,
        filters: &SearchFilters,
        mode: Mode,
        limit: usize,
    ) -> Result<Vec<Hit>> {
        if query.trim().is_empty() {
            return Err(Error::invalid("query", "the query is empty"));
        }
        if limit == 0 || limit > 100 {
            return Err(Error::invalid("limit", "between 1 and 100 results"));
        }
        let filter = to_index(filters, ctx.workspace_id)?;
        let q = self.query_for(query, mode).await?;
        // Several chunks of one activity may rank high: ask for more chunks
        // than activities wanted, then keep each activity's best.
        let chunks = self.index.search(&q, &filter, limit * 4).await?;
        let best = best_per_activity(chunks, limit);
        self.describe(ctx, best).await
    }

    /// Turns chunks into hits with names from the database, dropping chunks of
    /// activities deleted since the last ingestion (a citation must exist).
    async fn describe(&self, ctx: &Ctx, chunks: Vec<ScoredChunk>) -> Result<Vec<Hit>> {
        if chunks.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Id> = chunks.iter().map(|c| c.payload.activity_id).collect();
        let activities: HashMap<Id, Activity> = self
            .store
            .list::<Activity>(
                ctx,
                &ListQuery::filtered(Filter::cond("id", Op::In, ids)).limit(500),
            )
            .await?
            .items
            .into_iter()
            .map(|a| (a.id, a))
            .collect();
        let mut contacts: BTreeMap<Id, Option<String>> = BTreeMap::new();
        let mut companies: BTreeMap<Id, Option<String>> = BTreeMap::new();
        let mut hits = Vec::with_capacity(chunks.len());
        for c in chunks {
            let Some(a) = activities.get(&c.payload.activity_id) else {
                continue;
            };
            let who = match a.contact_id {
                Some(id) => self.name_of::<Contact>(ctx, id, &mut contacts).await?,
                None => None,
            };
            let company = match a.company_id {
                Some(id) => self.name_of::<Company>(ctx, id, &mut companies).await?,
                None => None,
            };
            hits.push(Hit {
                activity_id: a.id,
                score: c.score,
                kind: c.payload.kind,
                occurred_at: a.occurred_at,
                subject: a.subject.clone(),
                who,
                contact_id: a.contact_id,
                company,
                company_id: a.company_id,
                deal_id: a.deal_id,
                owner_id: a.owner_id,
                snippet: c.payload.text,
                chunk: c.payload.chunk,
                span: (c.payload.start, c.payload.end),
            });
        }
        Ok(hits)
    }

    async fn name_of<R: Named>(
        &self,
        ctx: &Ctx,
        id: Id,
        cache: &mut BTreeMap<Id, Option<String>>,
    ) -> Result<Option<String>> {
        if let Some(n) = cache.get(&id) {
            return Ok(n.clone());
        }
        let name = match self.store.get::<R>(ctx, id).await {
            Ok(r) => Some(r.display_name()),
            Err(rapport_crm::Error::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        cache.insert(id, name.clone());
        Ok(name)
    }
}

/// Records shown by name in a hit.
trait Named: rapport_crm::Record {
    fn display_name(&self) -> String;
}

impl Named for Contact {
    fn display_name(&self) -> String {
        self.full_name()
    }
}

impl Named for Company {
    fn display_name(&self) -> String {
        self.name.clone()
    }
}

/// Keeps the first (best) chunk of each activity, up to `limit` activities, in rank order.
fn best_per_activity(chunks: Vec<ScoredChunk>, limit: usize) -> Vec<ScoredChunk> {
    let mut seen = std::collections::HashSet::new();
    chunks
        .into_iter()
        .filter(|c| seen.insert(c.payload.activity_id))
        .take(limit)
        .collect()
}
