//! The embedded engine: one qdrant-edge shard on disk holding every
//! workspace's points, each search filtered by workspace. The shard's calls
//! block (disk, CPU), so each runs on tokio's blocking pool; a read-write lock
//! keeps writes, flushes and optimisation apart (the engine's own flush expects
//! no write in flight) while searches share the shard.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use qdrant_edge::external::ordered_float::OrderedFloat;
use qdrant_edge::{
    Condition, CountRequest, CreateIndex, Distance, EdgeConfig, EdgeShard, EdgeSparseVectorParams,
    EdgeVectorParams, FieldCondition, FieldIndexOperations, Filter, Match, Modifier, NamedQuery,
    PayloadFieldSchema, PayloadSchemaType, PointId, PointInsertOperations, PointOperations,
    PointStruct, QueryEnum, QueryRequest, Range, ScoringQuery, ScrollRequest, UpdateOperation,
    ValueVariants, Vector, VectorInternal, Vectors, WithPayloadInterface, WithVector,
};

use crate::error::{Error, Result};
use crate::{
    Candidate, ChunkPayload, Clause, DENSE, INTEGER_FIELDS, IndexFilter, IndexPoint, Probe, SPARSE,
    SparseVector, VectorIndex,
};

/// The embedded engine: a qdrant-edge shard in one directory, shared by all
/// workspaces. Searches share the shard; writes, flushes and optimisation
/// take it alone.
pub struct EdgeIndex {
    shard: Arc<RwLock<EdgeShard>>,
    path: PathBuf,
    dim: usize,
}

impl std::fmt::Debug for EdgeIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeIndex")
            .field("path", &self.path)
            .field("dim", &self.dim)
            .finish()
    }
}

fn config(dim: usize) -> EdgeConfig {
    EdgeConfig {
        vectors: HashMap::from([(
            DENSE.to_owned(),
            EdgeVectorParams {
                size: dim,
                distance: Distance::Cosine,
                on_disk: None,
                multivector_config: None,
                datatype: None,
                quantization_config: None,
                hnsw_config: None,
            },
        )]),
        sparse_vectors: HashMap::from([(
            SPARSE.to_owned(),
            EdgeSparseVectorParams {
                modifier: Some(Modifier::Idf),
                ..Default::default()
            },
        )]),
        ..Default::default()
    }
}

impl EdgeIndex {
    /// Opens the shard in `dir`, creating it (with payload indexes) if the
    /// directory holds none. An existing shard must have `dim`-dimensional
    /// dense vectors.
    pub async fn open(dir: &Path, dim: usize) -> Result<EdgeIndex> {
        let path = dir.to_path_buf();
        let p = path.clone();
        let shard = tokio::task::spawn_blocking(move || open_blocking(&p, dim))
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
        Ok(EdgeIndex {
            shard: Arc::new(RwLock::new(shard)),
            path,
            dim,
        })
    }

    /// Opens the shard already in `dir`, whatever the dimension of its dense
    /// vectors (for backups, which copy it without searching it). An error if
    /// `dir` holds no shard; [`Error::InUse`] if another handle holds it.
    pub async fn open_existing(dir: &Path) -> Result<EdgeIndex> {
        let path = dir.to_path_buf();
        if !path.join("edge_config.json").exists() {
            return Err(edge_error(&path, "no vector index here"));
        }
        let p = path.clone();
        let (shard, dim) = tokio::task::spawn_blocking(move || {
            let shard = EdgeShard::load(&p, None).map_err(|e| load_error(&p, e))?;
            let dim = shard.config().vectors.get(DENSE).map(|v| v.size);
            let dim = dim.ok_or_else(|| edge_error(&p, "the shard has no dense vectors"))?;
            Ok::<_, Error>((shard, dim))
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))??;
        Ok(EdgeIndex {
            shard: Arc::new(RwLock::new(shard)),
            path,
            dim,
        })
    }

    /// The dimension of the dense vectors.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Points of every workspace.
    pub async fn total_points(&self) -> Result<u64> {
        let n = self
            .with_shard(false, |s| {
                s.count(CountRequest {
                    filter: None,
                    exact: true,
                })
            })
            .await?;
        Ok(n as u64)
    }

    /// Flushes the shard and copies its directory into `dest` (created; it
    /// must not exist), holding the shard alone throughout: no write, flush
    /// or optimisation of this handle can run meanwhile, and no other handle
    /// can exist (the engine locks the shard to one). The engine has no
    /// background work, so the flushed files are the shard's whole state and
    /// the copy opens as the same index. Returns the bytes copied.
    pub async fn copy_files(&self, dest: &Path) -> Result<u64> {
        let shard = self.shard.clone();
        let src = self.path.clone();
        let dest = dest.to_path_buf();
        tokio::task::spawn_blocking(move || {
            let guard = shard
                .write()
                .map_err(|_| edge_error(&src, "lock poisoned"))?;
            guard.flush();
            if dest.exists() {
                return Err(edge_error(&dest, "the copy's directory exists already"));
            }
            let copied = copy_tree(&src, &dest).map_err(|e| edge_error(&src, e))?;
            drop(guard);
            Ok(copied)
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))?
    }

    /// Runs `f` on the shard on the blocking pool, with shared (`write = false`)
    /// or exclusive access.
    async fn with_shard<T: Send + 'static>(
        &self,
        write: bool,
        f: impl FnOnce(&EdgeShard) -> qdrant_edge::OperationResult<T> + Send + 'static,
    ) -> Result<T> {
        let shard = self.shard.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let out = if write {
                let guard = shard
                    .write()
                    .map_err(|_| edge_error(&path, "lock poisoned"))?;
                f(&guard)
            } else {
                let guard = shard
                    .read()
                    .map_err(|_| edge_error(&path, "lock poisoned"))?;
                f(&guard)
            };
            out.map_err(|e| edge_error(&path, e))
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))?
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

fn edge_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Edge {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// The engine reports a shard locked by another open handle as a WAL error.
fn load_error(path: &Path, e: qdrant_edge::OperationError) -> Error {
    let message = e.to_string();
    if message.contains("WouldBlock") {
        return Error::InUse {
            path: path.display().to_string(),
        };
    }
    edge_error(path, message)
}

fn open_blocking(path: &Path, dim: usize) -> Result<EdgeShard> {
    let exists = path.join("edge_config.json").exists();
    if exists {
        let shard = EdgeShard::load(path, None).map_err(|e| load_error(path, e))?;
        let have = shard.config().vectors.get(DENSE).map(|v| v.size);
        if have != Some(dim) {
            return Err(Error::invalid(
                "dimension",
                format!(
                    "the index at {} holds {have:?}-dimensional vectors, not {dim}: rebuild it with `rapport reindex` after removing the directory",
                    path.display()
                ),
            ));
        }
        return Ok(shard);
    }
    std::fs::create_dir_all(path).map_err(|e| edge_error(path, e))?;
    let shard = EdgeShard::new(path, config(dim)).map_err(|e| edge_error(path, e))?;
    let indexes = INTEGER_FIELDS
        .iter()
        .map(|f| (*f, PayloadSchemaType::Integer))
        .chain([("kind", PayloadSchemaType::Keyword)]);
    for (field, ty) in indexes {
        shard
            .update(UpdateOperation::FieldIndexOperation(
                FieldIndexOperations::CreateIndex(CreateIndex {
                    field_name: field.try_into().expect("a plain field name"),
                    field_schema: Some(PayloadFieldSchema::FieldType(ty)),
                }),
            ))
            .map_err(|e| edge_error(path, e))?;
    }
    shard.flush();
    Ok(shard)
}

/// Copies a directory tree (files and directories only), returning the bytes.
fn copy_tree(src: &Path, dest: &Path) -> std::io::Result<u64> {
    std::fs::create_dir_all(dest)?;
    let mut bytes = 0;
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let ty = entry.file_type()?;
        let to = dest.join(entry.file_name());
        if ty.is_dir() {
            bytes += copy_tree(&entry.path(), &to)?;
        } else if ty.is_file() {
            bytes += std::fs::copy(entry.path(), &to)?;
        }
    }
    Ok(bytes)
}

fn field(name: &str) -> qdrant_edge::JsonPath {
    name.try_into().expect("a plain field name")
}

/// The edge engine's form of one clause.
fn condition(c: &Clause) -> Condition {
    Condition::Field(match c {
        Clause::Is(f, v) => {
            FieldCondition::new_match(field(f), Match::new_value(ValueVariants::Integer(*v)))
        }
        Clause::IsAnyInt(f, vs) => FieldCondition::new_match(field(f), Match::from(vs.clone())),
        Clause::IsAnyText(f, vs) => FieldCondition::new_match(field(f), Match::from(vs.clone())),
        Clause::Between { field: f, gte, lt } => FieldCondition::new_range(
            field(f),
            Range {
                gte: gte.map(OrderedFloat),
                lt: lt.map(OrderedFloat),
                gt: None,
                lte: None,
            },
        ),
    })
}

/// An engine filter in which every clause must hold.
fn must(clauses: Vec<Clause>) -> Filter {
    Filter {
        must: Some(clauses.iter().map(condition).collect()),
        ..Default::default()
    }
}

fn sparse(v: &SparseVector) -> Result<Vector> {
    Vector::new_sparse(v.indices.clone(), v.values.clone())
        .map_err(|e| Error::invalid("sparse vector", e.to_string()))
}

fn nearest(vector: VectorInternal, using: &str) -> ScoringQuery {
    ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery {
        query: vector,
        using: Some(using.to_owned()),
    }))
}

/// The number of a point id: Rapport writes only numeric ids ([`crate::point_id`]).
fn numeric(id: PointId) -> Result<u64> {
    match id {
        PointId::NumId(n) => Ok(n),
        other => Err(Error::Corrupt(format!(
            "a point with a non-numeric id {other:?}"
        ))),
    }
}

fn decode(payload: Option<qdrant_edge::Payload>) -> Result<ChunkPayload> {
    let map = payload.ok_or_else(|| Error::Corrupt("a point without payload".into()))?;
    ChunkPayload::from_json(serde_json::Value::Object(map.0.into_iter().collect()))
}

#[async_trait]
impl VectorIndex for EdgeIndex {
    fn engine(&self) -> &'static str {
        "qdrant-edge"
    }

    async fn upsert(&self, points: Vec<IndexPoint>) -> Result<()> {
        if points.is_empty() {
            return Ok(());
        }
        let mut structs = Vec::with_capacity(points.len());
        for p in points {
            self.check_dense(&p.dense)?;
            let vectors = Vectors::new_named([
                (DENSE, Vector::new_dense(p.dense.clone())),
                (SPARSE, sparse(&p.sparse)?),
            ]);
            structs.push(PointStruct::new(p.id(), vectors, p.payload.to_json()).into());
        }
        self.with_shard(true, move |s| {
            s.update(UpdateOperation::PointOperation(
                PointOperations::UpsertPoints(PointInsertOperations::PointsList(structs)),
            ))
        })
        .await
    }

    async fn delete_activities(&self, workspace_id: i64, activity_ids: &[i64]) -> Result<()> {
        if activity_ids.is_empty() {
            return Ok(());
        }
        let filter = must(Clause::activities(workspace_id, activity_ids));
        self.with_shard(true, move |s| {
            s.update(UpdateOperation::PointOperation(
                PointOperations::DeletePointsByFilter(filter),
            ))
        })
        .await
    }

    async fn delete_workspace(&self, workspace_id: i64) -> Result<()> {
        let filter = must(vec![Clause::workspace(workspace_id)]);
        self.with_shard(true, move |s| {
            s.update(UpdateOperation::PointOperation(
                PointOperations::DeletePointsByFilter(filter),
            ))
        })
        .await
    }

    async fn nearest(
        &self,
        probe: Probe<'_>,
        filter: &IndexFilter,
        limit: usize,
    ) -> Result<Vec<Candidate>> {
        let scoring = match probe {
            Probe::Dense(v) => {
                self.check_dense(v)?;
                nearest(VectorInternal::Dense(v.to_vec()), DENSE)
            }
            Probe::Sparse(v) => nearest(sparse(v)?.0, SPARSE),
        };
        let request = QueryRequest {
            prefetches: vec![],
            query: Some(scoring),
            filter: Some(must(filter.clauses())),
            score_threshold: None,
            limit,
            offset: 0,
            params: None,
            with_vector: WithVector::Bool(false),
            with_payload: WithPayloadInterface::Bool(false),
        };
        let found = self.with_shard(false, move |s| s.query(request)).await?;
        found
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
        let ids: Vec<PointId> = ids.iter().copied().map(PointId::NumId).collect();
        let found = self
            .with_shard(false, move |s| {
                s.retrieve(
                    &ids,
                    Some(WithPayloadInterface::Bool(true)),
                    Some(WithVector::Bool(false)),
                )
            })
            .await?;
        found.into_iter().map(|r| decode(r.payload)).collect()
    }

    async fn count(&self, workspace_id: i64) -> Result<u64> {
        let filter = must(vec![Clause::workspace(workspace_id)]);
        let n = self
            .with_shard(false, move |s| {
                s.count(CountRequest {
                    filter: Some(filter),
                    exact: true,
                })
            })
            .await?;
        Ok(n as u64)
    }

    async fn keys(&self, workspace_id: i64) -> Result<Vec<(i64, u32)>> {
        let mut keys = Vec::new();
        let mut offset: Option<PointId> = None;
        loop {
            let filter = must(vec![Clause::workspace(workspace_id)]);
            let request = ScrollRequest {
                offset,
                limit: Some(1000),
                filter: Some(filter),
                with_payload: Some(WithPayloadInterface::Bool(true)),
                with_vector: WithVector::Bool(false),
                order_by: None,
            };
            let (records, next) = self.with_shard(false, move |s| s.scroll(request)).await?;
            for r in records {
                let p = decode(r.payload)?;
                keys.push((p.activity_id, p.chunk));
            }
            match next {
                Some(n) => offset = Some(n),
                None => break,
            }
        }
        keys.sort_unstable();
        Ok(keys)
    }

    async fn flush(&self) -> Result<()> {
        self.with_shard(true, |s| {
            s.flush();
            Ok(())
        })
        .await
    }

    async fn optimize(&self) -> Result<()> {
        self.with_shard(true, |s| s.optimize().map(drop)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_always_hold_the_workspace() {
        let f = must(IndexFilter::workspace(4).clauses());
        let must = f.must.unwrap();
        assert_eq!(must.len(), 1);
        assert_eq!(must[0], condition(&Clause::workspace(4)));
    }
}
