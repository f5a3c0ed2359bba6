//! `InMemoryStore`: every artifact in memory, indexed by id and type.

use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::RwLock;
use rustc_hash::FxHashMap;

use super::{ArtifactFilter, BlackboardStore};
use crate::{Artifact, ArtifactId, StoreError};

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
