//! The services the tools use, implemented here: the memory answers
//! `search_interactions`, the NBA engine answers `next_best_actions` and
//! `nba_feedback`. The traits belong to `rapport-tools`, so the tool crate
//! does not build llama.cpp, Candle or Polars; whoever builds a registry
//! (the binary, the eval harness) hands these in with [`tool_services`].

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rapport_crm::{Ctx, Id, Store, Tx};
use rapport_tools::{
    ActionEngine, ActionFeedback, ActionOut, BoxFuture, FeedbackOutput, InteractionHit,
    InteractionSearch, NbaOutput, SearchFilters, Services, ToolError,
};

use crate::memory::{self, Memory};
use crate::nba::{self, FeedbackInput, NbaConfig};

/// The services every registry of a full Rapport process gets: next-best
/// actions always, semantic search when an index is open.
pub fn tool_services(memory: Option<Memory>) -> Services {
    Services {
        search: memory.map(|m| Arc::new(m) as Arc<dyn InteractionSearch>),
        actions: Some(Arc::new(ActionRanker::default())),
        now: None,
    }
}

impl InteractionSearch for Memory {
    fn search<'a>(
        &'a self,
        ctx: &'a Ctx,
        query: &'a str,
        filters: &'a SearchFilters,
        limit: usize,
    ) -> BoxFuture<'a, rapport_tools::Result<Vec<InteractionHit>>> {
        Box::pin(async move {
            let hits = Memory::search(self, ctx, query, filters, limit)
                .await
                .map_err(search_error)?;
            Ok(hits
                .into_iter()
                .map(|h| InteractionHit {
                    activity_id: h.activity_id,
                    score: h.score,
                    kind: h.kind,
                    occurred_at: h.occurred_at,
                    subject: h.subject,
                    who: h.who,
                    company: h.company,
                    company_id: h.company_id,
                    contact_id: h.contact_id,
                    deal_id: h.deal_id,
                    snippet: h.snippet,
                })
                .collect())
        })
    }
}

fn search_error(e: memory::Error) -> ToolError {
    match e {
        memory::Error::Invalid { field, message } => ToolError::invalid(field, message),
        memory::Error::Store(e) => ToolError::from(e),
        other => ToolError::internal(format!("search failed: {other}")).with_cause(other),
    }
}

/// The next-best-action engine with its ranking configuration.
#[derive(Debug, Clone, Default)]
pub struct ActionRanker {
    pub config: NbaConfig,
}

fn nba_error(e: nba::Error, not_found_field: &str) -> ToolError {
    match e {
        nba::Error::Crm(e @ rapport_crm::Error::NotFound { .. }) => {
            ToolError::from(e).with_field(not_found_field)
        }
        nba::Error::Crm(e) => ToolError::from(e),
        nba::Error::Invalid { field, message } => {
            ToolError::invalid(field, message).with_hint("correct the argument and call again")
        }
        other => ToolError::internal(other.to_string()).with_cause(other),
    }
}

impl ActionEngine for ActionRanker {
    fn rank<'a>(
        &'a self,
        store: &'a Store,
        tx: &'a mut Tx,
        ctx: &'a Ctx,
        rep: Id,
        limit: usize,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, rapport_tools::Result<NbaOutput>> {
        Box::pin(async move {
            let list = nba::for_rep(store, ctx, rep, &self.config, limit, now)
                .await
                .map_err(|e| nba_error(e, "rep_id"))?;
            nba::record_exposures(tx, ctx, &self.config, &list)
                .await
                .map_err(|e| nba_error(e, "rep_id"))?;
            Ok(NbaOutput {
                rep_id: list.rep_id,
                rep: list.rep,
                generated_at: list.generated_at,
                strategy: list.strategy.as_str().to_owned(),
                experiment: list.experiment,
                candidates: list.candidates,
                hidden_by_feedback: list.hidden_by_feedback,
                lead_score_model: list.models.lead_score,
                churn_model: list.models.churn,
                actions: list
                    .actions
                    .into_iter()
                    .map(|r| ActionOut {
                        rank: r.rank,
                        action_key: r.key,
                        rule: r.candidate.rule.as_str().to_owned(),
                        record_type: r.candidate.record_type.to_owned(),
                        record_id: r.candidate.record_id,
                        label: r.candidate.label,
                        reason: r.candidate.reason,
                        priority: r.priority,
                        probability: r.candidate.facts.probability,
                        probability_source: r.candidate.facts.probability_source.to_owned(),
                        value: r.candidate.facts.value,
                        urgency: r.candidate.facts.urgency,
                    })
                    .collect(),
            })
        })
    }

    fn feedback<'a>(
        &'a self,
        tx: &'a mut Tx,
        ctx: &'a Ctx,
        rep: Id,
        feedback: ActionFeedback,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, rapport_tools::Result<FeedbackOutput>> {
        Box::pin(async move {
            let input = FeedbackInput {
                action_key: feedback.action_key,
                status: feedback.status,
                reason: feedback.reason,
                until: feedback.until,
            };
            let fb = nba::record_feedback(tx, ctx, rep, &input, now)
                .await
                .map_err(|e| nba_error(e, "action_key"))?;
            Ok(FeedbackOutput {
                id: fb.id,
                action_key: fb.action_key,
                status: fb.status.as_str().to_owned(),
                reason: fb.reason,
                snoozed_until: fb.snoozed_until,
                created_at: fb.created_at,
            })
        })
    }
}
