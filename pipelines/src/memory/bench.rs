//! `rapport bench search`: ingestion throughput, query latency and the index's
//! recall against exact search, on chunks of seeded demo text.
//!
//! Embedding every chunk of a 100,000-chunk run would take far longer than the
//! index work on a small machine, so the run embeds a measured sample (timed
//! end to end: clean text, MiniLM, BM25, upsert, flush) and builds the other
//! chunks' dense vectors from the sample's by adding small deterministic noise
//! and renormalising; their BM25 vectors come from their own text. The JSON
//! says how many were embedded. Recall@10 compares the index's answers with an
//! exact brute-force scan over the very same vectors, in the same run.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use chrono::Duration;
use indicatif::ProgressBar;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rapport_crm::seed::{self, SeedParams};
use rapport_index::{ChunkPayload, EdgeIndex, IndexFilter, IndexPoint, Query, VectorIndex};
use serde::Serialize;

use super::KINDS;
use super::clean::indexed_text;
use super::{Memory, Result};

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchParams {
    pub chunks: usize,
    /// Chunks embedded with MiniLM for the with-embedding figure.
    pub embed_sample: usize,
    /// Timed queries per latency figure.
    pub queries: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SearchBench {
    pub engine: &'static str,
    pub chunks: usize,
    pub embedded_chunks: usize,
    pub vectors_note: &'static str,
    /// Clean + embed (MiniLM) + BM25 + upsert + flush, over the embedded sample.
    pub ingest_with_embedding_chunks_per_s: f64,
    /// Upsert + flush of precomputed vectors, over all chunks.
    pub ingest_without_embedding_chunks_per_s: f64,
    /// Building the HNSW graph after the writes.
    pub optimize_seconds: f64,
    pub queries: usize,
    pub dense_unfiltered: Latency,
    pub dense_filtered: Latency,
    pub hybrid_unfiltered: Latency,
    pub hybrid_filtered: Latency,
    /// Mean overlap of the index's top 10 with the exact top 10, dense queries.
    pub recall_at_10_unfiltered: f64,
    pub recall_at_10_filtered: f64,
    pub filter: &'static str,
}

const WS: i64 = 1;

fn latency(mut ms: Vec<f64>) -> Latency {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() as f64 - 1.0) * q).round() as usize];
    Latency {
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        mean_ms: ms.iter().sum::<f64>() / ms.len() as f64,
    }
}

/// Texts and payloads of `n` chunks of demo activity text (cycling if the
/// generated CRM has fewer activities).
fn corpus(n: usize) -> Vec<ChunkPayload> {
    let data = seed::generate(&SeedParams {
        companies: (n / 28).clamp(1, 5000),
        seed: 7,
        as_of: seed::fixed_date(),
    });
    (0..n)
        .map(|i| {
            let a = &data.activities[i % data.activities.len()];
            let text = indexed_text(a.kind, a.subject.as_deref(), &a.body);
            ChunkPayload {
                workspace_id: WS,
                activity_id: i as i64 + 1,
                chunk: 0,
                kind: a.kind.to_owned(),
                company_id: Some(a.company as i64 + 1),
                contact_id: a.contact.map(|c| c as i64 + 1),
                deal_id: a.deal.map(|d| d as i64 + 1),
                lead_id: None,
                owner_id: Some(a.owner as i64 + 1),
                occurred_at: a.occurred_at - Duration::seconds((i / data.activities.len()) as i64),
                start: 0,
                end: text.len() as u32,
                text,
            }
        })
        .collect()
}

fn perturb(v: &[f32], rng: &mut ChaCha8Rng, sigma: f32) -> Vec<f32> {
    let mut out: Vec<f32> = v
        .iter()
        .map(|x| x + sigma * (rng.random::<f32>() - 0.5) * 2.0)
        .collect();
    let norm = out.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    out.iter_mut().for_each(|x| *x /= norm);
    out
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Exact top-k point ids by cosine (vectors are unit length) among points passing `keep`.
fn brute_force(points: &[IndexPoint], q: &[f32], k: usize, filter: &IndexFilter) -> Vec<u64> {
    let mut scored: Vec<(f32, u64)> = points
        .iter()
        .filter(|p| filter.matches(&p.payload))
        .map(|p| (dot(&p.dense, q), p.id()))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.into_iter().take(k).map(|(_, id)| id).collect()
}

fn overlap(found: &[u64], exact: &[u64]) -> f64 {
    if exact.is_empty() {
        return 1.0;
    }
    let exact: HashSet<_> = exact.iter().collect();
    found.iter().filter(|id| exact.contains(id)).count() as f64 / exact.len() as f64
}

/// Runs the benchmark in a temporary directory with `memory`'s embedder and BM25.
pub async fn run(memory: &Memory, p: &BenchParams, progress: &ProgressBar) -> Result<SearchBench> {
    let dir = tempfile::tempdir().map_err(|e| super::Error::Task(e.to_string()))?;
    let payloads = corpus(p.chunks);
    let sample = p.embed_sample.min(p.chunks).max(1);
    progress.set_length((sample + p.chunks + 4 * p.queries) as u64);

    // With embedding: the sample, end to end, into its own index.
    let sample_index = EdgeIndex::open(&dir.path().join("sample"), 384).await?;
    let started = Instant::now();
    let mut sample_vectors = Vec::with_capacity(sample);
    for part in payloads[..sample].chunks(256) {
        let dense = memory
            .embed(part.iter().map(|c| c.text.clone()).collect())
            .await?;
        let points: Vec<IndexPoint> = part
            .iter()
            .zip(&dense)
            .map(|(c, d)| IndexPoint {
                payload: c.clone(),
                dense: d.clone(),
                sparse: memory.bm25().embed_document(&c.text),
            })
            .collect();
        sample_index.upsert(points).await?;
        sample_vectors.extend(dense);
        progress.inc(part.len() as u64);
    }
    sample_index.flush().await?;
    let with_embedding = sample as f64 / started.elapsed().as_secs_f64();
    drop(sample_index);

    // Every chunk's vectors, precomputed.
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let points: Vec<IndexPoint> = payloads
        .into_iter()
        .enumerate()
        .map(|(i, c)| IndexPoint {
            dense: if i < sample {
                sample_vectors[i].clone()
            } else {
                perturb(&sample_vectors[i % sample], &mut rng, 0.05)
            },
            sparse: memory.bm25().embed_document(&c.text),
            payload: c,
        })
        .collect();

    // Without embedding: all chunks into the benchmark index.
    let index: Arc<dyn VectorIndex> =
        Arc::new(EdgeIndex::open(&dir.path().join("all"), 384).await?);
    let started = Instant::now();
    for part in points.chunks(1000) {
        index.upsert(part.to_vec()).await?;
        progress.inc(part.len() as u64);
    }
    index.flush().await?;
    let without_embedding = points.len() as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    index.optimize().await?;
    let optimize_seconds = started.elapsed().as_secs_f64();

    // Queries: stored vectors moved a little, each with the filter of its source point.
    let mut queries = Vec::with_capacity(p.queries);
    for _ in 0..p.queries {
        let src = &points[rng.random_range(0..points.len())];
        let filter = IndexFilter {
            company_id: src.payload.company_id,
            kinds: vec![KINDS[rng.random_range(0..KINDS.len())].to_owned()],
            ..IndexFilter::workspace(WS)
        };
        queries.push((
            perturb(&src.dense, &mut rng, 0.3),
            src.sparse.clone(),
            filter,
        ));
    }

    let measure = async |filtered: bool, hybrid: bool| -> Result<(Latency, f64)> {
        let mut ms = Vec::with_capacity(queries.len());
        let mut recall = 0.0;
        for (dense, sparse, f) in &queries {
            let filter = if filtered {
                f.clone()
            } else {
                IndexFilter::workspace(WS)
            };
            let q = if hybrid {
                Query::Hybrid {
                    dense: dense.clone(),
                    sparse: sparse.clone(),
                }
            } else {
                Query::Dense(dense.clone())
            };
            let t = Instant::now();
            let found = index.search(&q, &filter, 10).await?;
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
            if !hybrid {
                let ids: Vec<u64> = found
                    .iter()
                    .map(|c| rapport_index::point_id(c.payload.activity_id, c.payload.chunk))
                    .collect();
                recall += overlap(&ids, &brute_force(&points, dense, 10, &filter));
            }
            progress.inc(1);
        }
        Ok((latency(ms), recall / queries.len() as f64))
    };
    let (dense_unfiltered, recall_unfiltered) = measure(false, false).await?;
    let (dense_filtered, recall_filtered) = measure(true, false).await?;
    let (hybrid_unfiltered, _) = measure(false, true).await?;
    let (hybrid_filtered, _) = measure(true, true).await?;
    progress.finish_and_clear();
    Ok(SearchBench {
        engine: index.engine(),
        chunks: points.len(),
        embedded_chunks: sample,
        vectors_note: "the first `embedded_chunks` chunks are embedded with MiniLM; the others reuse a sampled chunk's vector plus uniform noise (±0.05 per dimension), renormalised; BM25 vectors come from each chunk's own text",
        ingest_with_embedding_chunks_per_s: with_embedding,
        ingest_without_embedding_chunks_per_s: without_embedding,
        optimize_seconds,
        queries: queries.len(),
        dense_unfiltered,
        dense_filtered,
        hybrid_unfiltered,
        hybrid_filtered,
        recall_at_10_unfiltered: recall_unfiltered,
        recall_at_10_filtered: recall_filtered,
        filter: "workspace + company of a random chunk + one random kind",
    })
}
