//! Draining the index outbox into the vector index.
//!
//! One round reads the oldest pending outbox entries, reads those activities as
//! they are *now* (an entry only says "look at this activity again"), deletes
//! every point of each of them and writes the points their current text
//! implies, flushes the index, and only then acknowledges the entries by
//! sequence number. Point ids are deterministic, so redoing a round writes the
//! same points again. Hence, killed at any moment and restarted, ingestion ends
//! with exactly the points the database implies: an unacknowledged round is
//! redone whole; an entry queued while a round ran has a later number and
//! stays queued.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use indicatif::ProgressBar;
use rapport_crm::model::Activity;
use rapport_crm::{Ctx, Filter, Id, ListQuery, Op, Source};
use rapport_index::{ChunkPayload, IndexPoint, MAX_CHUNKS};
use serde::Serialize;

use super::Memory;
use super::clean::indexed_text;
use super::error::{Error, Result};

/// What to ingest.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Outbox entries per round (one index flush and one acknowledgement each).
    pub batch: u32,
    /// Only this workspace's entries; `None`: every workspace.
    pub workspace_id: Option<Id>,
    /// Stop after this many rounds (tests and benchmarks); `None`: until empty.
    pub max_rounds: Option<usize>,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            batch: 128,
            workspace_id: None,
            max_rounds: None,
        }
    }
}

/// What an ingestion did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IngestReport {
    /// Outbox entries handled.
    pub entries: usize,
    /// Activities (re)indexed.
    pub indexed: usize,
    /// Activities removed from the index (deleted from the database).
    pub removed: usize,
    /// Chunks written.
    pub chunks: usize,
    pub rounds: usize,
    /// Seconds spent by the index's optimizer after the last round (HNSW
    /// building and segment merging; search is exact until it has run).
    pub optimize_seconds: f64,
    pub seconds: f64,
}

impl Memory {
    /// Drains the outbox (see the module docs). The progress bar counts outbox entries.
    pub async fn ingest(
        &self,
        opts: &IngestOptions,
        progress: &ProgressBar,
    ) -> Result<IngestReport> {
        if opts.batch == 0 || opts.batch > 1000 {
            return Err(Error::invalid(
                "batch",
                "between 1 and 1000 entries per round",
            ));
        }
        let started = Instant::now();
        let pending = self.store().outbox_len(opts.workspace_id).await?;
        progress.set_length(pending.max(0) as u64);
        let mut report = IngestReport::default();
        while opts.max_rounds.is_none_or(|m| report.rounds < m) {
            let entries = self
                .store()
                .outbox_pending(opts.workspace_id, opts.batch)
                .await?;
            if entries.is_empty() {
                break;
            }
            let mut by_ws: BTreeMap<Id, BTreeSet<Id>> = BTreeMap::new();
            for e in &entries {
                by_ws
                    .entry(e.workspace_id)
                    .or_default()
                    .insert(e.activity_id);
            }
            for (ws, ids) in by_ws {
                let ids: Vec<Id> = ids.into_iter().collect();
                let (indexed, chunks) = self.refresh(ws, &ids).await?;
                report.indexed += indexed;
                report.removed += ids.len() - indexed;
                report.chunks += chunks;
            }
            // Durable first, acknowledged second: a crash in between redoes the round.
            self.index().flush().await?;
            let seqs: Vec<i64> = entries.iter().map(|e| e.seq).collect();
            self.store().outbox_ack(&seqs).await?;
            report.entries += entries.len();
            report.rounds += 1;
            progress.inc(entries.len() as u64);
            tracing::debug!(round = report.rounds, entries = entries.len(), "ingested");
        }
        if report.entries > 0 {
            // The engine plans its own work (indexing thresholds): cheap when
            // little changed, and it keeps searches off brute force.
            let optimizing = Instant::now();
            self.index().optimize().await?;
            report.optimize_seconds = optimizing.elapsed().as_secs_f64();
        }
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }

    /// Rebuilds a workspace's index from the database: queues every activity,
    /// removes the workspace's points, and ingests.
    pub async fn reindex(&self, ctx: &Ctx, progress: &ProgressBar) -> Result<IngestReport> {
        // Queue first: if the rebuild stops half way, the queue still holds the rest.
        self.store().outbox_enqueue_all(ctx).await?;
        self.index().delete_workspace(ctx.workspace_id).await?;
        self.index().flush().await?;
        self.ingest(
            &IngestOptions {
                workspace_id: Some(ctx.workspace_id),
                ..Default::default()
            },
            progress,
        )
        .await
    }

    /// Replaces the points of these activities with what their current state
    /// implies. Returns (activities still present, chunks written).
    async fn refresh(&self, workspace_id: Id, ids: &[Id]) -> Result<(usize, usize)> {
        let ctx = Ctx::new(workspace_id, None, Source::Pipeline);
        let activities = self
            .store()
            .list::<Activity>(
                &ctx,
                &ListQuery::filtered(Filter::cond("id", Op::In, ids.to_vec())).limit(500),
            )
            .await?
            .items;
        let points = self.points_for(&activities).await?;
        let n = points.len();
        self.index().delete_activities(workspace_id, ids).await?;
        if !points.is_empty() {
            self.index().upsert(points).await?;
        }
        Ok((activities.len(), n))
    }

    /// The points an activity's current state implies: its cleaned text cut
    /// into chunks, each embedded (dense and BM25) with the payload.
    pub async fn points_for(&self, activities: &[Activity]) -> Result<Vec<IndexPoint>> {
        let mut payloads = Vec::new();
        for a in activities {
            let kind = kind_name(a);
            let text = indexed_text(kind, a.subject.as_deref(), &a.body);
            let mut chunks = self.chunker().chunk(&text)?;
            if chunks.len() > MAX_CHUNKS as usize {
                // Failing would block the outbox behind one giant activity
                // forever; its beginning stays searchable instead.
                tracing::warn!(
                    activity = %a.id,
                    chunks = chunks.len(),
                    "activity text longer than the index holds; only its first {MAX_CHUNKS} chunks are indexed"
                );
                chunks.truncate(MAX_CHUNKS as usize);
            }
            for (i, c) in chunks.into_iter().enumerate() {
                payloads.push(ChunkPayload {
                    workspace_id: a.workspace_id,
                    activity_id: a.id,
                    chunk: i as u32,
                    kind: kind.to_owned(),
                    company_id: a.company_id,
                    contact_id: a.contact_id,
                    deal_id: a.deal_id,
                    lead_id: a.lead_id,
                    owner_id: a.owner_id,
                    occurred_at: a.occurred_at,
                    text: c.text,
                    start: c.start as u32,
                    end: c.end as u32,
                });
            }
        }
        let dense = self
            .embed(payloads.iter().map(|p| p.text.clone()).collect())
            .await?;
        Ok(payloads
            .into_iter()
            .zip(dense)
            .map(|(payload, dense)| IndexPoint {
                sparse: self.bm25().embed_document(&payload.text),
                dense,
                payload,
            })
            .collect())
    }
}

fn kind_name(a: &Activity) -> &'static str {
    use rapport_crm::model::ActivityKind as K;
    match a.kind {
        K::Email => "email",
        K::Call => "call",
        K::Meeting => "meeting",
        K::Note => "note",
    }
}
