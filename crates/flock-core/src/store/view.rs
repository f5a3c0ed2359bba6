//! `BlackboardView`: the blackboard as one identity sees it.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{ArtifactFilter, BlackboardStore};
use crate::{AgentIdentity, Artifact, ArtifactId, StoreError};

/// The blackboard as one identity sees it: every query returns only artifacts the
/// identity may see. Engines get one for their agent through their context.
#[derive(Clone)]
pub struct BlackboardView {
    store: Arc<dyn BlackboardStore>,
    identity: Arc<AgentIdentity>,
    clock: Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>,
}

impl std::fmt::Debug for BlackboardView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlackboardView")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl BlackboardView {
    /// A view of `store` for `identity`, judging time-dependent visibility at `clock()`.
    pub fn new(
        store: Arc<dyn BlackboardStore>,
        identity: Arc<AgentIdentity>,
        clock: Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>,
    ) -> Self {
        Self {
            store,
            identity,
            clock,
        }
    }

    /// Whose view this is.
    pub fn identity(&self) -> &AgentIdentity {
        &self.identity
    }

    /// The visible artifacts matching `filter`, oldest first.
    ///
    /// # Errors
    /// A store failure.
    pub async fn query(&self, filter: ArtifactFilter) -> Result<Vec<Arc<Artifact>>, StoreError> {
        let filter = filter
            .visible_to(AgentIdentity::clone(&self.identity))
            .as_of((self.clock)());
        self.store.query(&filter).await
    }

    /// The artifact with this id, if it exists and is visible.
    ///
    /// # Errors
    /// A store failure.
    pub async fn get(&self, id: ArtifactId) -> Result<Option<Arc<Artifact>>, StoreError> {
        let now = (self.clock)();
        Ok(self.store.get(id).await?.filter(|artifact| {
            artifact
                .visibility()
                .allows(&self.identity, artifact.created_at, now)
        }))
    }

    /// Every visible value of type `T`, oldest first.
    ///
    /// # Errors
    /// A store failure.
    pub async fn get_by_type<T: crate::FlockType>(&self) -> Result<Vec<Arc<T>>, StoreError> {
        Ok(self
            .query(ArtifactFilter::new().type_name(T::TYPE_NAME))
            .await?
            .iter()
            .filter_map(|a| a.payload.downcast_arc::<T>())
            .collect())
    }
}
