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

use crate::ScoredChunk;

/// The reciprocal rank fusion constant: a chunk at 0-based position `p` of a
/// candidate list contributes `1 / (RRF_K + p)`.
pub const RRF_K: usize = 60;

/// Candidates fetched from the engine for each `wanted`: the extra ones let
/// ties at the cut-off be settled by [`ranked`] instead of by the engine.
pub(crate) fn with_slack(wanted: usize) -> usize {
    wanted + wanted / 2 + 8
}

/// Best first in the total order: score descending, then activity id, then chunk.
fn best_first(a: &ScoredChunk, b: &ScoredChunk) -> Ordering {
    b.score
        .total_cmp(&a.score)
        .then(a.payload.activity_id.cmp(&b.payload.activity_id))
        .then(a.payload.chunk.cmp(&b.payload.chunk))
}

/// The best `limit` chunks of an engine's answer, in the total order.
pub fn ranked(mut found: Vec<ScoredChunk>, limit: usize) -> Vec<ScoredChunk> {
    found.sort_by(best_first);
    found.truncate(limit);
    found
}

/// Reciprocal rank fusion of ranked candidate lists: each chunk scores the sum
/// of `1 / (RRF_K + position)` over the lists it appears in (the formula, and
/// the `f32` sums, of Qdrant's own fusion), and the best `limit` are returned
/// in the total order.
pub fn fuse(lists: &[Vec<ScoredChunk>], limit: usize) -> Vec<ScoredChunk> {
    let mut fused: HashMap<(i64, u32), ScoredChunk> = HashMap::new();
    for list in lists {
        for (position, chunk) in list.iter().enumerate() {
            let contribution = 1.0 / (position + RRF_K) as f32;
            let key = (chunk.payload.activity_id, chunk.payload.chunk);
            fused
                .entry(key)
                .and_modify(|c| c.score += contribution)
                .or_insert_with(|| ScoredChunk {
                    score: contribution,
                    payload: chunk.payload.clone(),
                });
        }
    }
    ranked(fused.into_values().collect(), limit)
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::ChunkPayload;

    fn chunk(activity_id: i64, chunk: u32, score: f32) -> ScoredChunk {
        ScoredChunk {
            score,
            payload: ChunkPayload {
                workspace_id: 1,
                activity_id,
                chunk,
                kind: "note".into(),
                company_id: None,
                contact_id: None,
                deal_id: None,
                lead_id: None,
                owner_id: None,
                occurred_at: Utc::now(),
                text: String::new(),
                start: 0,
                end: 0,
            },
        }
    }

    fn keys(found: &[ScoredChunk]) -> Vec<(i64, u32)> {
        found
            .iter()
            .map(|c| (c.payload.activity_id, c.payload.chunk))
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
    fn fusing_nothing_finds_nothing() {
        assert!(fuse(&[vec![], vec![]], 5).is_empty());
        assert!(ranked(vec![chunk(1, 0, 1.0)], 0).is_empty());
    }
}
