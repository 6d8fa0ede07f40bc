/*!
Rapport's vector index: the derived, searchable copy of what customers wrote and
said. It owns how chunks of activity text are stored as points (a dense MiniLM
vector, a sparse BM25 vector and a payload), how they are found again (dense,
keyword or hybrid search with reciprocal rank fusion, always inside one
workspace, in one order on every run: see [`ranked`]) and the two engines
behind one [`VectorIndex`] trait:

- [`EdgeIndex`]: an embedded qdrant-edge shard on disk (the default; no server).
- [`ServerIndex`] (feature `server`): a Qdrant server or cluster through
  qdrant-client, for the scale-out deployment.

It knows nothing of the database, of text cleaning or of embedding models:
`rapport-pipelines` turns activities into [`IndexPoint`]s and queries into
[`Query`]s. Every engine call that blocks runs on tokio's blocking pool.

Point ids are deterministic ([`point_id`]: activity id and chunk number), so
writing the same chunk twice leaves one point, which is what makes ingestion
idempotent.
*/

mod bm25;
mod edge;
mod error;
mod order;
#[cfg(feature = "server")]
mod server;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use bm25::Bm25;
pub use edge::EdgeIndex;
pub use error::{Error, Result};
pub use order::{RRF_K, fuse, ranked};
#[cfg(feature = "server")]
pub use server::ServerIndex;

/// Name of the dense (MiniLM) vector of every point.
pub const DENSE: &str = "dense";
/// Name of the sparse (BM25) vector of every point.
pub const SPARSE: &str = "bm25";
/// Integer payload fields the engines index (filters and deletes use them);
/// `kind` is indexed as a keyword.
pub(crate) const INTEGER_FIELDS: [&str; 7] = [
    "workspace_id",
    "activity_id",
    "company_id",
    "contact_id",
    "deal_id",
    "owner_id",
    "occurred_ts",
];

/// Chunks one activity may have: point ids leave this many slots per activity.
pub const MAX_CHUNKS: u32 = 4096;

/// The point id of an activity's chunk: unique per (activity, chunk) and the
/// same on every run.
pub fn point_id(activity_id: i64, chunk: u32) -> u64 {
    activity_id as u64 * u64::from(MAX_CHUNKS) + u64::from(chunk)
}

/// A sparse vector: term ids and weights, ids ascending and unique.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SparseVector {
    /// Term ids, strictly ascending.
    pub indices: Vec<u32>,
    /// One weight per id in `indices`, same length.
    pub values: Vec<f32>,
}

/// What a point carries besides its vectors: where the text came from and the
/// fields searches filter on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkPayload {
    /// Tenant the activity belongs to; every search is filtered on it.
    pub workspace_id: i64,
    /// The activity the chunk was cut from; with `chunk` it makes the [`point_id`].
    pub activity_id: i64,
    /// 0-based chunk number within the activity.
    pub chunk: u32,
    /// email, call, meeting or note.
    pub kind: String,
    /// Company the activity is linked to, if any.
    pub company_id: Option<i64>,
    /// Contact the activity is linked to, if any.
    pub contact_id: Option<i64>,
    /// Deal the activity is linked to, if any.
    pub deal_id: Option<i64>,
    /// Lead the activity is linked to, if any (stored, not filtered on).
    pub lead_id: Option<i64>,
    /// User who owns the activity, if any.
    pub owner_id: Option<i64>,
    /// When the activity happened (not when it was indexed).
    pub occurred_at: DateTime<Utc>,
    /// The chunk's text.
    pub text: String,
    /// Byte span of `text` within the activity's indexed text.
    pub start: u32,
    /// End of that byte span, exclusive.
    pub end: u32,
}

impl ChunkPayload {
    /// The payload as stored: the fields above plus `occurred_ts` (Unix
    /// seconds), which date-range filters compare.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).expect("a payload always serializes");
        v["occurred_ts"] = self.occurred_at.timestamp().into();
        v
    }

    /// Reads a payload as stored by [`to_json`](Self::to_json); a payload that
    /// does not decode is [`Error::Corrupt`].
    pub fn from_json(mut v: serde_json::Value) -> Result<ChunkPayload> {
        if let Some(m) = v.as_object_mut() {
            m.remove("occurred_ts");
        }
        serde_json::from_value(v).map_err(|e| Error::Corrupt(e.to_string()))
    }
}

/// One chunk as the index stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexPoint {
    /// Where the text came from and what searches filter on.
    pub payload: ChunkPayload,
    /// MiniLM embedding of the chunk text; its length is the index's dimension.
    pub dense: Vec<f32>,
    /// BM25 vector of the chunk text ([`Bm25::embed_document`]).
    pub sparse: SparseVector,
}

impl IndexPoint {
    /// The point's [`point_id`], derived from its activity and chunk number.
    pub fn id(&self) -> u64 {
        point_id(self.payload.activity_id, self.payload.chunk)
    }
}

/// Which points a search may return. The workspace is not optional: no query
/// ever crosses workspaces.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IndexFilter {
    /// The only workspace searched; required, so no query crosses tenants.
    pub workspace_id: i64,
    /// Any of these kinds (empty: all kinds).
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Only chunks of this company's activities.
    pub company_id: Option<i64>,
    /// Only chunks of this contact's activities.
    pub contact_id: Option<i64>,
    /// Only chunks of this deal's activities.
    pub deal_id: Option<i64>,
    /// Only chunks of activities this user owns.
    pub owner_id: Option<i64>,
    /// Occurred at or after.
    pub since: Option<DateTime<Utc>>,
    /// Occurred before.
    pub until: Option<DateTime<Utc>>,
}

impl IndexFilter {
    /// Everything in one workspace: no other condition.
    pub fn workspace(workspace_id: i64) -> Self {
        IndexFilter {
            workspace_id,
            ..Default::default()
        }
    }

    /// The filter as engine-neutral clauses, all of which must hold; each
    /// engine translates them (`edge::condition`, `server::condition`), so
    /// what a filter means is written once.
    pub(crate) fn clauses(&self) -> Vec<Clause> {
        let mut out = vec![Clause::workspace(self.workspace_id)];
        let equalities = [
            ("company_id", self.company_id),
            ("contact_id", self.contact_id),
            ("deal_id", self.deal_id),
            ("owner_id", self.owner_id),
        ];
        for (field, v) in equalities {
            if let Some(v) = v {
                out.push(Clause::Is(field, v));
            }
        }
        if !self.kinds.is_empty() {
            out.push(Clause::IsAnyText("kind", self.kinds.clone()));
        }
        if self.since.is_some() || self.until.is_some() {
            out.push(Clause::Between {
                field: "occurred_ts",
                gte: self.since.map(|t| t.timestamp() as f64),
                lt: self.until.map(|t| t.timestamp() as f64),
            });
        }
        out
    }

    /// Whether a payload passes the filter (the reference the engines are tested against).
    pub fn matches(&self, p: &ChunkPayload) -> bool {
        let eq = |want: Option<i64>, have: Option<i64>| want.is_none() || want == have;
        p.workspace_id == self.workspace_id
            && (self.kinds.is_empty() || self.kinds.contains(&p.kind))
            && eq(self.company_id, p.company_id)
            && eq(self.contact_id, p.contact_id)
            && eq(self.deal_id, p.deal_id)
            && eq(self.owner_id, p.owner_id)
            && self
                .since
                .is_none_or(|s| p.occurred_at.timestamp() >= s.timestamp())
            && self
                .until
                .is_none_or(|u| p.occurred_at.timestamp() < u.timestamp())
    }

    fn check(&self) -> Result<()> {
        if let (Some(s), Some(u)) = (self.since, self.until)
            && s >= u
        {
            return Err(Error::invalid(
                "since",
                format!("{s} is not before until {u}: the date range is empty"),
            ));
        }
        Ok(())
    }
}

/// One condition on a payload field, independent of the engine.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Clause {
    /// The integer field equals the value.
    Is(&'static str, i64),
    /// The integer field is any of the values.
    IsAnyInt(&'static str, Vec<i64>),
    /// The text field is any of the values.
    IsAnyText(&'static str, Vec<String>),
    /// The number lies in `[gte, lt)`; a missing bound is open.
    Between {
        field: &'static str,
        gte: Option<f64>,
        lt: Option<f64>,
    },
}

impl Clause {
    /// Points of one workspace: the clause every request carries.
    pub(crate) fn workspace(workspace_id: i64) -> Clause {
        Clause::Is("workspace_id", workspace_id)
    }

    /// The chunks of these activities, within one workspace.
    pub(crate) fn activities(workspace_id: i64, activity_ids: &[i64]) -> Vec<Clause> {
        vec![
            Clause::workspace(workspace_id),
            Clause::IsAnyInt("activity_id", activity_ids.to_vec()),
        ]
    }
}

/// What to search with.
#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    /// Nearest neighbours of a MiniLM vector (cosine).
    Dense(Vec<f32>),
    /// BM25 keyword match.
    Sparse(SparseVector),
    /// Both, fused by reciprocal rank fusion of the two candidate lists.
    Hybrid {
        /// MiniLM embedding of the query text.
        dense: Vec<f32>,
        /// BM25 vector of the query text ([`Bm25::embed_query`]).
        sparse: SparseVector,
    },
}

/// One vector to find the nearest points of: what an engine is asked;
/// [`VectorIndex::search`] builds hybrid search from two of these.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Probe<'a> {
    /// A MiniLM vector, matched by cosine similarity.
    Dense(&'a [f32]),
    /// A BM25 vector, matched by sparse dot product with engine-side IDF.
    Sparse(&'a SparseVector),
}

/// A point an engine found: its [`point_id`] and score, without payload.
/// Searches rank and fuse these, and read payloads only for the few they
/// return.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// The point's [`point_id`].
    pub id: u64,
    /// Engine similarity; higher is better, comparable only within one list.
    pub score: f32,
}

/// A found chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredChunk {
    /// Similarity, or the fused RRF score for hybrid search; higher is better.
    pub score: f32,
    /// The chunk's text and where it came from.
    pub payload: ChunkPayload,
}

/// Candidates each side contributes before fusion in a hybrid search.
pub fn hybrid_candidates(limit: usize) -> usize {
    (limit * 5).max(50)
}

/// The operations Rapport needs from a vector index. Every call is scoped to a
/// workspace; engines run their blocking work off the async runtime.
#[async_trait]
pub trait VectorIndex: Send + Sync {
    /// Engine name for logs and reports (`qdrant-edge`, `qdrant-server`).
    fn engine(&self) -> &'static str;

    /// Inserts or replaces points by their [`point_id`].
    async fn upsert(&self, points: Vec<IndexPoint>) -> Result<()>;

    /// Removes every chunk of these activities.
    async fn delete_activities(&self, workspace_id: i64, activity_ids: &[i64]) -> Result<()>;

    /// Removes every point of a workspace (before a rebuild).
    async fn delete_workspace(&self, workspace_id: i64) -> Result<()>;

    /// The engine's own search on one vector: up to `limit` points passing
    /// the filter (already checked), in any order, without payloads. Callers
    /// use [`search`](Self::search), which orders, fuses and reads payloads.
    async fn nearest(
        &self,
        probe: Probe<'_>,
        filter: &IndexFilter,
        limit: usize,
    ) -> Result<Vec<Candidate>>;

    /// The payloads of the points with these ids that exist, in any order.
    async fn payloads(&self, ids: &[u64]) -> Result<Vec<ChunkPayload>>;

    /// The best `limit` chunks for a query among those passing the filter,
    /// best first, in the same order on every run (see [`ranked`]). Hybrid
    /// search fuses the dense and keyword candidate lists here rather than in
    /// the engine, whose fusion leaves ties in a random order. Candidates are
    /// ranked and fused by id and score alone; only the `limit` returned are
    /// read whole.
    async fn search(
        &self,
        query: &Query,
        filter: &IndexFilter,
        limit: usize,
    ) -> Result<Vec<ScoredChunk>> {
        filter.check()?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let best = match query {
            Query::Dense(v) => order::nearest(self, Probe::Dense(v), filter, limit).await?,
            Query::Sparse(v) => order::nearest(self, Probe::Sparse(v), filter, limit).await?,
            Query::Hybrid { dense, sparse } => {
                let n = hybrid_candidates(limit);
                let by_meaning = order::nearest(self, Probe::Dense(dense), filter, n).await?;
                let by_words = order::nearest(self, Probe::Sparse(sparse), filter, n).await?;
                fuse(&[by_meaning, by_words], limit)
            }
        };
        let ids: Vec<u64> = best.iter().map(|c| c.id).collect();
        let payloads = self.payloads(&ids).await?;
        Ok(order::with_payloads(&best, payloads))
    }

    /// Points of a workspace.
    async fn count(&self, workspace_id: i64) -> Result<u64>;

    /// (activity id, chunk) of every point of a workspace, sorted.
    async fn keys(&self, workspace_id: i64) -> Result<Vec<(i64, u32)>>;

    /// Makes every write so far durable.
    async fn flush(&self) -> Result<()>;

    /// Builds search structures (HNSW) where the engine defers them.
    async fn optimize(&self) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_filter_starts_with_its_workspace() {
        let f = IndexFilter {
            kinds: vec!["email".into()],
            deal_id: Some(9),
            since: DateTime::from_timestamp(100, 0),
            ..IndexFilter::workspace(4)
        };
        assert_eq!(
            f.clauses(),
            vec![
                Clause::Is("workspace_id", 4),
                Clause::Is("deal_id", 9),
                Clause::IsAnyText("kind", vec!["email".into()]),
                Clause::Between {
                    field: "occurred_ts",
                    gte: Some(100.0),
                    lt: None
                },
            ]
        );
        assert_eq!(
            IndexFilter::workspace(4).clauses(),
            vec![Clause::workspace(4)]
        );
    }
}
