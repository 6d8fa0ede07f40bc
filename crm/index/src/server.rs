//! The scale-out engine: a Qdrant server or cluster through qdrant-client, one
//! collection holding every workspace's points (named `dense` and `bm25`
//! vectors, payload indexes on the filtered fields), each request filtered by
//! workspace — Qdrant's recommended multitenancy layout.

use async_trait::async_trait;
use qdrant_client::qdrant::{
    Condition, CountPointsBuilder, CreateCollectionBuilder, CreateFieldIndexCollectionBuilder,
    DeletePointsBuilder, Distance, FieldType, Filter, GetPointsBuilder, Modifier, NamedVectors,
    PointId, PointStruct, Query as QQuery, QueryPointsBuilder, Range, ScrollPointsBuilder,
    SparseVectorParamsBuilder, SparseVectorsConfigBuilder, Vector, VectorInput,
    VectorParamsBuilder, VectorsConfigBuilder,
};
use qdrant_client::{Payload, Qdrant};

use crate::error::{Error, Result};
use crate::{
    Candidate, ChunkPayload, Clause, DENSE, INTEGER_FIELDS, IndexFilter, IndexPoint, Probe, SPARSE,
    VectorIndex,
};

/// The scale-out engine: one collection on a Qdrant server or cluster, shared
/// by all workspaces.
pub struct ServerIndex {
    client: Qdrant,
    url: String,
    collection: String,
    dim: usize,
    drop_on_drop: bool,
}

impl std::fmt::Debug for ServerIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerIndex")
            .field("url", &self.url)
            .field("collection", &self.collection)
            .finish()
    }
}

impl ServerIndex {
    /// Connects and creates the collection (with payload indexes) if missing.
    pub async fn connect(
        url: &str,
        api_key: Option<&str>,
        collection: &str,
        dim: usize,
    ) -> Result<ServerIndex> {
        let mut builder = Qdrant::from_url(url);
        if let Some(key) = api_key {
            builder = builder.api_key(key.to_owned());
        }
        let client = builder.build().map_err(|e| server_error(url, e))?;
        let index = ServerIndex {
            client,
            url: url.to_owned(),
            collection: collection.to_owned(),
            dim,
            drop_on_drop: false,
        };
        index.ensure_collection().await?;
        Ok(index)
    }

    /// Tests: drop the collection when this handle is dropped.
    pub fn drop_collection_on_drop(&mut self) {
        self.drop_on_drop = true;
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        server_error(&self.url, e)
    }

    async fn ensure_collection(&self) -> Result<()> {
        let exists = self
            .client
            .collection_exists(&self.collection)
            .await
            .map_err(|e| self.err(e))?;
        if exists {
            return Ok(());
        }
        let mut vectors = VectorsConfigBuilder::default();
        vectors.add_named_vector_params(
            DENSE,
            VectorParamsBuilder::new(self.dim as u64, Distance::Cosine),
        );
        let mut sparse = SparseVectorsConfigBuilder::default();
        sparse.add_named_vector_params(
            SPARSE,
            SparseVectorParamsBuilder::default().modifier(Modifier::Idf as i32),
        );
        self.client
            .create_collection(
                CreateCollectionBuilder::new(&self.collection)
                    .vectors_config(vectors)
                    .sparse_vectors_config(sparse),
            )
            .await
            .map_err(|e| self.err(e))?;
        let fields = INTEGER_FIELDS
            .iter()
            .map(|f| (*f, FieldType::Integer))
            .chain([("kind", FieldType::Keyword)]);
        for (field, ty) in fields {
            self.client
                .create_field_index(
                    CreateFieldIndexCollectionBuilder::new(&self.collection, field, ty).wait(true),
                )
                .await
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    fn check_dense(&self, v: &[f32]) -> Result<()> {
        if v.len() != self.dim {
            return Err(Error::invalid(
                "vector",
                format!(
                    "dimension {} does not match the index's {}",
                    v.len(),
                    self.dim
                ),
            ));
        }
        Ok(())
    }
}

impl Drop for ServerIndex {
    fn drop(&mut self) {
        if !self.drop_on_drop {
            return;
        }
        let client = self.client.clone();
        let name = self.collection.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = client.delete_collection(name).await;
            });
        }
    }
}

fn server_error(url: &str, e: impl std::fmt::Display) -> Error {
    Error::Server {
        url: url.to_owned(),
        message: e.to_string(),
    }
}

/// The server's form of one clause.
fn condition(c: &Clause) -> Condition {
    match c {
        Clause::Is(f, v) => Condition::matches(*f, *v),
        Clause::IsAnyInt(f, vs) => Condition::matches(*f, vs.clone()),
        Clause::IsAnyText(f, vs) => Condition::matches(*f, vs.clone()),
        Clause::Between { field, gte, lt } => Condition::range(
            *field,
            Range {
                gte: *gte,
                lt: *lt,
                gt: None,
                lte: None,
            },
        ),
    }
}

/// A server filter in which every clause must hold.
fn must(clauses: Vec<Clause>) -> Filter {
    Filter::must(clauses.iter().map(condition))
}

/// The number of a point id: Rapport writes only numeric ids ([`crate::point_id`]).
fn numeric(id: Option<PointId>) -> Result<u64> {
    use qdrant_client::qdrant::point_id::PointIdOptions;
    match id.and_then(|p| p.point_id_options) {
        Some(PointIdOptions::Num(n)) => Ok(n),
        other => Err(Error::Corrupt(format!(
            "a point with a non-numeric id {other:?}"
        ))),
    }
}

fn decode(
    payload: std::collections::HashMap<String, qdrant_client::qdrant::Value>,
) -> Result<ChunkPayload> {
    let json: serde_json::Value = Payload::from(payload).into();
    ChunkPayload::from_json(json)
}

#[async_trait]
impl VectorIndex for ServerIndex {
    fn engine(&self) -> &'static str {
        "qdrant-server"
    }

    async fn upsert(&self, points: Vec<IndexPoint>) -> Result<()> {
        if points.is_empty() {
            return Ok(());
        }
        let mut structs = Vec::with_capacity(points.len());
        for p in points {
            self.check_dense(&p.dense)?;
            let vectors = NamedVectors::default()
                .add_vector(DENSE, Vector::new_dense(p.dense.clone()))
                .add_vector(
                    SPARSE,
                    Vector::new_sparse(p.sparse.indices.clone(), p.sparse.values.clone()),
                );
            let payload = Payload::try_from(p.payload.to_json()).map_err(|e| self.err(e))?;
            structs.push(PointStruct::new(p.id(), vectors, payload));
        }
        self.client
            .upsert_points(
                qdrant_client::qdrant::UpsertPointsBuilder::new(&self.collection, structs)
                    .wait(true),
            )
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    async fn delete_activities(&self, workspace_id: i64, activity_ids: &[i64]) -> Result<()> {
        if activity_ids.is_empty() {
            return Ok(());
        }
        let filter = must(Clause::activities(workspace_id, activity_ids));
        self.client
            .delete_points(
                DeletePointsBuilder::new(&self.collection)
                    .points(filter)
                    .wait(true),
            )
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    async fn delete_workspace(&self, workspace_id: i64) -> Result<()> {
        self.client
            .delete_points(
                DeletePointsBuilder::new(&self.collection)
                    .points(must(vec![Clause::workspace(workspace_id)]))
                    .wait(true),
            )
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    async fn nearest(
        &self,
        probe: Probe<'_>,
        filter: &IndexFilter,
        limit: usize,
    ) -> Result<Vec<Candidate>> {
        let q = QueryPointsBuilder::new(&self.collection)
            .filter(must(filter.clauses()))
            .limit(limit as u64)
            .with_payload(false);
        let q = match probe {
            Probe::Dense(v) => {
                self.check_dense(v)?;
                q.query(QQuery::new_nearest(v.to_vec())).using(DENSE)
            }
            Probe::Sparse(v) => q
                .query(QQuery::new_nearest(VectorInput::new_sparse(
                    v.indices.clone(),
                    v.values.clone(),
                )))
                .using(SPARSE),
        };
        let res = self.client.query(q).await.map_err(|e| self.err(e))?;
        res.result
            .into_iter()
            .map(|p| {
                Ok(Candidate {
                    id: numeric(p.id)?,
                    score: p.score,
                })
            })
            .collect()
    }

    async fn payloads(&self, ids: &[u64]) -> Result<Vec<ChunkPayload>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<PointId> = ids.iter().map(|&n| n.into()).collect();
        let res = self
            .client
            .get_points(
                GetPointsBuilder::new(&self.collection, ids)
                    .with_payload(true)
                    .with_vectors(false),
            )
            .await
            .map_err(|e| self.err(e))?;
        res.result.into_iter().map(|p| decode(p.payload)).collect()
    }

    async fn count(&self, workspace_id: i64) -> Result<u64> {
        let res = self
            .client
            .count(
                CountPointsBuilder::new(&self.collection)
                    .filter(must(vec![Clause::workspace(workspace_id)]))
                    .exact(true),
            )
            .await
            .map_err(|e| self.err(e))?;
        Ok(res.result.map_or(0, |r| r.count))
    }

    async fn keys(&self, workspace_id: i64) -> Result<Vec<(i64, u32)>> {
        let mut keys = Vec::new();
        let mut offset = None;
        loop {
            let mut req = ScrollPointsBuilder::new(&self.collection)
                .filter(must(vec![Clause::workspace(workspace_id)]))
                .limit(1000)
                .with_payload(true)
                .with_vectors(false);
            if let Some(o) = offset.take() {
                req = req.offset(o);
            }
            let res = self.client.scroll(req).await.map_err(|e| self.err(e))?;
            for p in res.result {
                let c = decode(p.payload)?;
                keys.push((c.activity_id, c.chunk));
            }
            match res.next_page_offset {
                Some(o) => offset = Some(o),
                None => break,
            }
        }
        keys.sort_unstable();
        Ok(keys)
    }

    async fn flush(&self) -> Result<()> {
        // Every write above waits for the server to apply it (`wait(true)`).
        Ok(())
    }

    async fn optimize(&self) -> Result<()> {
        // The server's optimizers run on their own.
        Ok(())
    }
}
