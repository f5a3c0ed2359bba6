//! The blackboard store: a trait, a filter, and the in-memory implementation.

use std::{collections::BTreeSet, sync::Arc};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use parking_lot::RwLock;
use rustc_hash::FxHashMap;
use uuid::Uuid;

use crate::{AgentIdentity, Artifact, ArtifactId, StoreError};

/// Which artifacts a query returns. Every set field must match; unset fields match all.
#[derive(Debug, Clone, Default)]
pub struct ArtifactFilter {
    /// Artifact type names (any of them).
    pub type_names: Option<BTreeSet<String>>,
    /// Producers (any of them).
    pub produced_by: Option<BTreeSet<String>>,
    /// Correlation id.
    pub correlation_id: Option<Uuid>,
    /// Tags: the artifact must carry at least one of these (when non-empty).
    pub tags: BTreeSet<String>,
    /// Created at or after.
    pub created_after: Option<DateTime<Utc>>,
    /// Created before.
    pub created_before: Option<DateTime<Utc>>,
    /// Only artifacts this identity may see.
    pub visible_to: Option<AgentIdentity>,
    /// The moment visibility is judged at (default: the query's wall-clock time).
    pub as_of: Option<DateTime<Utc>>,
    /// At most this many artifacts, oldest first.
    pub limit: Option<usize>,
}

impl ArtifactFilter {
    /// A filter matching every artifact.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only artifacts of this type.
    pub fn type_name(mut self, name: impl Into<String>) -> Self {
        self.type_names
            .get_or_insert_with(BTreeSet::new)
            .insert(name.into());
        self
    }

    /// Only artifacts of this producer.
    pub fn produced_by(mut self, producer: impl Into<String>) -> Self {
        self.produced_by
            .get_or_insert_with(BTreeSet::new)
            .insert(producer.into());
        self
    }

    /// Only artifacts of this correlation id.
    pub fn correlation_id(mut self, id: Uuid) -> Self {
        self.correlation_id = Some(id);
        self
    }

    /// Only artifacts carrying this tag (or another tag given to the filter).
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.insert(tag.into());
        self
    }

    /// Only artifacts created in `[after, before)`.
    pub fn created_between(
        mut self,
        after: Option<DateTime<Utc>>,
        before: Option<DateTime<Utc>>,
    ) -> Self {
        self.created_after = after;
        self.created_before = before;
        self
    }

    /// Only artifacts `identity` may see.
    pub fn visible_to(mut self, identity: AgentIdentity) -> Self {
        self.visible_to = Some(identity);
        self
    }

    /// Judges visibility at `now` instead of the wall clock (runtimes with a clock
    /// of their own, e.g. tests on a paused clock).
    pub fn as_of(mut self, now: DateTime<Utc>) -> Self {
        self.as_of = Some(now);
        self
    }

    /// At most `n` artifacts.
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
    }

    /// Whether `artifact` passes the filter at time `now`.
    pub fn matches(&self, artifact: &Artifact, now: DateTime<Utc>) -> bool {
        self.type_names
            .as_ref()
            .is_none_or(|names| names.contains(artifact.type_name()))
            && self
                .produced_by
                .as_ref()
                .is_none_or(|producers| producers.contains(&*artifact.produced_by))
            && self
                .correlation_id
                .is_none_or(|id| artifact.correlation_id == Some(id))
            && (self.tags.is_empty() || !self.tags.is_disjoint(&artifact.tags))
            && self
                .created_after
                .is_none_or(|after| artifact.created_at >= after)
            && self
                .created_before
                .is_none_or(|before| artifact.created_at < before)
            && self.visible_to.as_ref().is_none_or(|identity| {
                artifact
                    .visibility
                    .allows(identity, artifact.created_at, now)
            })
    }
}

/// Where artifacts live. Every published artifact is kept: it is a blackboard.
#[async_trait]
pub trait BlackboardStore: Send + Sync + 'static {
    /// Stores an artifact.
    ///
    /// # Errors
    /// [`StoreError::Duplicate`] when its id is already stored, or a backend failure.
    async fn publish(&self, artifact: Arc<Artifact>) -> Result<(), StoreError>;

    /// Stores several artifacts: all of them, or (on an error) none, where the
    /// backend can. The runtime stores each run's outputs with one call, and a
    /// failure fails the run's attempt, so a backend with transactions should
    /// override this to keep a failed attempt from leaving part of its outputs
    /// behind. The default stores them one by one and stops at the first error.
    ///
    /// # Errors
    /// As [`BlackboardStore::publish`].
    async fn publish_all(&self, artifacts: &[Arc<Artifact>]) -> Result<(), StoreError> {
        for artifact in artifacts {
            self.publish(artifact.clone()).await?;
        }
        Ok(())
    }

    /// The artifact with this id.
    ///
    /// # Errors
    /// A backend failure.
    async fn get(&self, id: ArtifactId) -> Result<Option<Arc<Artifact>>, StoreError>;

    /// The artifacts matching `filter`, oldest first.
    ///
    /// # Errors
    /// A backend failure.
    async fn query(&self, filter: &ArtifactFilter) -> Result<Vec<Arc<Artifact>>, StoreError>;

    /// The artifacts of one type, oldest first.
    ///
    /// # Errors
    /// A backend failure.
    async fn list_by_type(&self, type_name: &str) -> Result<Vec<Arc<Artifact>>, StoreError> {
        self.query(&ArtifactFilter::new().type_name(type_name))
            .await
    }

    /// How many artifacts are stored.
    ///
    /// # Errors
    /// A backend failure.
    async fn count(&self) -> Result<usize, StoreError>;
}

#[derive(Default)]
struct Inner {
    /// Every artifact in publish order.
    log: Vec<Arc<Artifact>>,
    by_id: FxHashMap<ArtifactId, usize>,
    by_type: FxHashMap<&'static str, Vec<usize>>,
}

/// The default store: every artifact in memory, indexed by id and type.
#[derive(Default)]
pub struct InMemoryStore {
    inner: RwLock<Inner>,
}

impl InMemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores an artifact without going through the async trait (the runtime's fast path).
    ///
    /// # Errors
    /// [`StoreError::Duplicate`] when its id is already stored.
    pub fn insert(&self, artifact: Arc<Artifact>) -> Result<(), StoreError> {
        let mut inner = self.inner.write();
        let index = inner.log.len();
        if inner.by_id.contains_key(&artifact.id) {
            return Err(StoreError::Duplicate(artifact.id));
        }
        inner.by_id.insert(artifact.id, index);
        inner
            .by_type
            .entry(artifact.type_name())
            .or_default()
            .push(index);
        inner.log.push(artifact);
        Ok(())
    }

    /// Stores several artifacts, all or none (a known or repeated id refuses them
    /// all), without going through the async trait.
    ///
    /// # Errors
    /// [`StoreError::Duplicate`] naming the first known or repeated id.
    pub fn insert_all(&self, artifacts: &[Arc<Artifact>]) -> Result<(), StoreError> {
        let mut inner = self.inner.write();
        for (i, artifact) in artifacts.iter().enumerate() {
            if inner.by_id.contains_key(&artifact.id)
                || artifacts[..i].iter().any(|a| a.id == artifact.id)
            {
                return Err(StoreError::Duplicate(artifact.id));
            }
        }
        for artifact in artifacts {
            let index = inner.log.len();
            inner.by_id.insert(artifact.id, index);
            inner
                .by_type
                .entry(artifact.type_name())
                .or_default()
                .push(index);
            inner.log.push(artifact.clone());
        }
        Ok(())
    }

    fn select(&self, filter: &ArtifactFilter) -> Vec<Arc<Artifact>> {
        let now = filter.as_of.unwrap_or_else(crate::time::utc_now);
        let inner = self.inner.read();
        let limit = filter.limit.unwrap_or(usize::MAX);
        let mut out = Vec::new();
        match &filter.type_names {
            // With types given, walk only their indexes, then restore publish order.
            Some(names) => {
                let mut indexes: Vec<usize> = names
                    .iter()
                    .filter_map(|name| inner.by_type.get(name.as_str()))
                    .flatten()
                    .copied()
                    .collect();
                if names.len() > 1 {
                    indexes.sort_unstable();
                }
                for index in indexes {
                    if out.len() == limit {
                        break;
                    }
                    let artifact = &inner.log[index];
                    if filter.matches(artifact, now) {
                        out.push(artifact.clone());
                    }
                }
            }
            None => {
                for artifact in &inner.log {
                    if out.len() == limit {
                        break;
                    }
                    if filter.matches(artifact, now) {
                        out.push(artifact.clone());
                    }
                }
            }
        }
        out
    }
}

#[async_trait]
impl BlackboardStore for InMemoryStore {
    async fn publish(&self, artifact: Arc<Artifact>) -> Result<(), StoreError> {
        self.insert(artifact)
    }

    async fn publish_all(&self, artifacts: &[Arc<Artifact>]) -> Result<(), StoreError> {
        self.insert_all(artifacts)
    }

    async fn get(&self, id: ArtifactId) -> Result<Option<Arc<Artifact>>, StoreError> {
        let inner = self.inner.read();
        Ok(inner.by_id.get(&id).map(|&index| inner.log[index].clone()))
    }

    async fn query(&self, filter: &ArtifactFilter) -> Result<Vec<Arc<Artifact>>, StoreError> {
        Ok(self.select(filter))
    }

    async fn count(&self) -> Result<usize, StoreError> {
        Ok(self.inner.read().log.len())
    }
}

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
                .visibility
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
