//! What tools may use besides the database: long-lived services an adapter sets
//! up once (loaded models, the vector index) and hands to the [`Registry`]
//! with [`Registry::with_services`](crate::Registry::with_services). A missing
//! service is not an error until a tool needs it; the tool then says how to
//! set it up.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rapport_pipelines::memory::Memory;

#[derive(Clone, Default)]
pub struct Services {
    /// Semantic search over activity text (`search_interactions`).
    pub memory: Option<Arc<Memory>>,
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
    pub fn has_memory(&self) -> bool {
        self.memory.is_some()
    }
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("memory", &self.memory.is_some())
            .field("now", &self.now)
            .finish()
    }
}
