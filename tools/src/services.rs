//! What tools may use besides the database: long-lived services an adapter sets
//! up once (loaded models, the vector index) and hands to the [`Registry`]
//! with [`Registry::with_services`](crate::Registry::with_services). A missing
//! service is not an error until a tool needs it; the tool then says how to
//! set it up.

use std::sync::Arc;

use rapport_pipelines::memory::Memory;

#[derive(Clone, Default)]
pub struct Services {
    /// Semantic search over activity text (`search_interactions`).
    pub memory: Option<Arc<Memory>>,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("memory", &self.memory.is_some())
            .finish()
    }
}
