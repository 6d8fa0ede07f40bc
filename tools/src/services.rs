//! What tools may use besides the database: long-lived services an adapter sets
//! up once (loaded models, the vector index, the next-best-action engine) and
//! hands to the [`Registry`](crate::Registry) with
//! [`Registry::with_services`](crate::Registry::with_services).
//!
//! The services are traits owned here and implemented in `rapport-pipelines`,
//! so this crate (and everything that only needs the tools: the API, the
//! agent) builds without llama.cpp, Candle or Polars. A missing service is not
//! an error until a tool needs it; the tool then says how to set it up.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rapport_crm::{Ctx, FeedbackStatus, Id, Store, Tx};

use crate::error::Result;
use crate::nba::{FeedbackOutput, NbaOutput};
use crate::search::InteractionHit;
use crate::tool::BoxFuture;

/// Filters of a semantic search besides the workspace (always applied).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SearchFilters {
    /// email, call, meeting or note.
    pub kind: Option<String>,
    /// Only interactions linked to this company.
    pub company_id: Option<Id>,
    /// Only interactions with this contact.
    pub contact_id: Option<Id>,
    /// Only interactions linked to this deal.
    pub deal_id: Option<Id>,
    /// Only interactions this user owns.
    pub owner_id: Option<Id>,
    /// Occurred at or after.
    pub since: Option<DateTime<Utc>>,
    /// Occurred before.
    pub until: Option<DateTime<Utc>>,
}

/// Semantic and keyword search over what was written and said
/// (`search_interactions`). Implemented by the memory of `rapport-pipelines`.
pub trait InteractionSearch: Send + Sync {
    /// The best `limit` interactions for `query`, best first.
    fn search<'a>(
        &'a self,
        ctx: &'a Ctx,
        query: &'a str,
        filters: &'a SearchFilters,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<InteractionHit>>>;
}

/// What a rep did with a next-best action.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionFeedback {
    /// The action's stable key as `next_best_actions` returned it.
    pub action_key: String,
    /// Done, dismissed or snoozed.
    pub status: FeedbackStatus,
    /// Why it was dismissed.
    pub reason: Option<String>,
    /// When a snooze ends.
    pub until: Option<DateTime<Utc>>,
}

/// Ranks a rep's next-best actions and records what the rep did with them
/// (`next_best_actions`, `nba_feedback`). Implemented by the NBA engine of
/// `rapport-pipelines`.
pub trait ActionEngine: Send + Sync {
    /// The rep's ranked actions; the exposures are written into `tx` so the
    /// experiment counts what was shown.
    fn rank<'a>(
        &'a self,
        store: &'a Store,
        tx: &'a mut Tx,
        ctx: &'a Ctx,
        rep: Id,
        limit: usize,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<NbaOutput>>;

    /// Records the rep's feedback on one action.
    fn feedback<'a>(
        &'a self,
        tx: &'a mut Tx,
        ctx: &'a Ctx,
        rep: Id,
        feedback: ActionFeedback,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<FeedbackOutput>>;
}

/// The services tools may use besides the database; each is optional, and a
/// tool whose service is missing says how to set it up.
#[derive(Clone, Default)]
pub struct Services {
    /// Semantic search over activity text (`search_interactions`).
    pub search: Option<Arc<dyn InteractionSearch>>,
    /// Next-best actions (`next_best_actions`, `nba_feedback`).
    pub actions: Option<Arc<dyn ActionEngine>>,
    /// A fixed "now" for reproducible runs (evals replay recorded model
    /// replies, and a priority computed from the wall clock would change
    /// what the model reads); `None` is the wall clock.
    pub now: Option<DateTime<Utc>>,
}

impl Services {
    /// The current time as the tools see it.
    pub fn now(&self) -> DateTime<Utc> {
        self.now.unwrap_or_else(Utc::now)
    }

    /// Whether a tool that needs semantic search can run.
    pub fn has_search(&self) -> bool {
        self.search.is_some()
    }

    /// Whether the next-best-action tools can run.
    pub fn has_actions(&self) -> bool {
        self.actions.is_some()
    }
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("search", &self.search.is_some())
            .field("actions", &self.actions.is_some())
            .field("now", &self.now)
            .finish()
    }
}
