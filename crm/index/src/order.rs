//! The order of search results, decided here rather than by the engine.
//!
//! Engines return equal scores in whatever order their internals produce:
//! qdrant-edge's own reciprocal rank fusion collects points in a randomly
//! seeded hash map and does not break ties, so the same hybrid query could put
//! a different activity first from one run to the next (and a tie inside a
//! candidate list moves ranks, which changes fused scores too). A rep asking
//! the same question twice should see the same answer, and recorded agent runs
//! must replay, so every list is put in a total order: score descending, then
//! activity id, then chunk number.

use std::cmp::Ordering;
use std::collections::HashMap;

use crate::{Candidate, ChunkPayload, IndexFilter, Probe, Result, ScoredChunk, VectorIndex};

/// The reciprocal rank fusion constant: a chunk at 0-based position `p` of a
/// candidate list contributes `1 / (RRF_K + p)`.
pub const RRF_K: usize = 60;

/// Candidates fetched from the engine for each `wanted`: the extra ones let
/// ties at the cut-off be settled by [`ranked`] instead of by the engine.
pub(crate) fn with_slack(wanted: usize) -> usize {
    wanted + wanted / 2 + 8
}

/// Best first in the total order: score descending, then point id, which
/// orders by activity id, then chunk ([`point_id`](crate::point_id)).
fn best_first(a: &Candidate, b: &Candidate) -> Ordering {
    b.score.total_cmp(&a.score).then(a.id.cmp(&b.id))
}

/// The best `limit` candidates of an engine's answer, in the total order.
pub fn ranked(mut found: Vec<Candidate>, limit: usize) -> Vec<Candidate> {
    found.sort_by(best_first);
    found.truncate(limit);
    found
}

/// The engine's [`nearest`](VectorIndex::nearest), over-fetched so that ties
/// at the cut-off are settled by [`ranked`], not by the engine. An
/// all-stop-word keyword query matches nothing: the engine is not asked.
pub(crate) async fn nearest<I: VectorIndex + ?Sized>(
    index: &I,
    probe: Probe<'_>,
    filter: &IndexFilter,
    limit: usize,
) -> Result<Vec<Candidate>> {
    if matches!(probe, Probe::Sparse(v) if v.indices.is_empty()) {
        return Ok(Vec::new());
    }
    let found = index.nearest(probe, filter, with_slack(limit)).await?;
    Ok(ranked(found, limit))
}

/// The ranked candidates with their payloads, in the same order. A point
/// deleted between the search and the read is left out.
pub(crate) fn with_payloads(best: &[Candidate], payloads: Vec<ChunkPayload>) -> Vec<ScoredChunk> {
    let mut by_id: HashMap<u64, ChunkPayload> = payloads
        .into_iter()
        .map(|p| (crate::point_id(p.activity_id, p.chunk), p))
        .collect();
    best.iter()
        .filter_map(|c| {
            let payload = by_id.remove(&c.id)?;
            Some(ScoredChunk {
                score: c.score,
                payload,
            })
        })
        .collect()
}

/// Reciprocal rank fusion of ranked candidate lists: each chunk scores the sum
/// of `1 / (RRF_K + position)` over the lists it appears in (the formula, and
/// the `f32` sums, of Qdrant's own fusion), and the best `limit` are returned
/// in the total order.
pub fn fuse(lists: &[Vec<Candidate>], limit: usize) -> Vec<Candidate> {
    let mut fused: HashMap<u64, f32> = HashMap::new();
    for list in lists {
        for (position, candidate) in list.iter().enumerate() {
            *fused.entry(candidate.id).or_default() += 1.0 / (position + RRF_K) as f32;
        }
    }
    let fused = fused
        .into_iter()
        .map(|(id, score)| Candidate { id, score })
        .collect();
    ranked(fused, limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MAX_CHUNKS, point_id};

    fn chunk(activity_id: i64, chunk: u32, score: f32) -> Candidate {
        Candidate {
            id: point_id(activity_id, chunk),
            score,
        }
    }

    fn keys(found: &[Candidate]) -> Vec<(i64, u32)> {
        let slots = u64::from(MAX_CHUNKS);
        found
            .iter()
            .map(|c| ((c.id / slots) as i64, (c.id % slots) as u32))
            .collect()
    }

    #[test]
    fn ties_are_broken_by_activity_then_chunk() {
        let found = vec![
            chunk(9, 0, 0.5),
            chunk(3, 1, 0.5),
            chunk(3, 0, 0.5),
            chunk(7, 0, 0.9),
        ];
        assert_eq!(
            keys(&ranked(found.clone(), 3)),
            vec![(7, 0), (3, 0), (3, 1)]
        );
        let mut reversed = found;
        reversed.reverse();
        assert_eq!(
            keys(&ranked(reversed, 4)),
            vec![(7, 0), (3, 0), (3, 1), (9, 0)]
        );
    }

    #[test]
    fn fusion_scores_positions_like_qdrant() {
        // Activity 3 is first by meaning and second by keywords, activity 27
        // the other way round: equal fused scores, 1/60 + 1/61.
        let dense = vec![chunk(3, 0, 0.9), chunk(27, 0, 0.8), chunk(5, 0, 0.1)];
        let sparse = vec![chunk(27, 0, 7.0), chunk(3, 0, 6.0)];
        let fused = fuse(&[dense.clone(), sparse.clone()], 10);
        assert_eq!(keys(&fused), vec![(3, 0), (27, 0), (5, 0)]);
        let tied = 1.0f32 / 60.0 + 1.0 / 61.0;
        assert_eq!(fused[0].score, tied);
        assert_eq!(fused[1].score, tied);
        assert_eq!(fused[2].score, 1.0 / 62.0);
        // The order of the lists does not change the answer.
        let swapped = fuse(&[sparse, dense], 2);
        assert_eq!(keys(&swapped), vec![(3, 0), (27, 0)]);
        assert_eq!(swapped[0].score, tied);
    }

    #[test]
    fn payloads_follow_the_ranking_and_a_vanished_point_is_left_out() {
        let payload = |activity_id: i64| ChunkPayload {
            workspace_id: 1,
            activity_id,
            chunk: 0,
            kind: "note".into(),
            company_id: None,
            contact_id: None,
            deal_id: None,
            lead_id: None,
            owner_id: None,
            occurred_at: chrono::Utc::now(),
            text: format!("activity {activity_id}"),
            start: 0,
            end: 0,
        };
        let best = [chunk(9, 0, 0.9), chunk(4, 0, 0.5), chunk(7, 0, 0.2)];
        // The engine answers in its own order, and activity 4 is gone.
        let found = with_payloads(&best, vec![payload(7), payload(9)]);
        let got: Vec<(i64, f32)> = found
            .iter()
            .map(|c| (c.payload.activity_id, c.score))
            .collect();
        assert_eq!(got, vec![(9, 0.9), (7, 0.2)]);
    }

    #[test]
    fn fusing_nothing_finds_nothing() {
        assert!(fuse(&[vec![], vec![]], 5).is_empty());
        assert!(ranked(vec![chunk(1, 0, 1.0)], 0).is_empty());
    }
}
