//! `InMemoryStore`: artifacts in memory, indexed by id and type, kept for the life
//! of the process or under a [`Retention`].

mod by_type;
mod log;
mod pages;
mod retention;

use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::RwLock;

pub use retention::{InvalidRetention, Retention};

use super::{ArtifactFilter, BlackboardStore};
use crate::{Artifact, ArtifactId, StoreError};
pub use log::MemoryLog;

/// The default store: artifacts in memory, indexed by id and type.
///
/// It keeps every artifact unless given a [`Retention`]
/// ([`InMemoryStore::with_retention`]); then it evicts what the retention lets go
/// of and nothing holds any more (see [`Retention`]).
#[derive(Default)]
pub struct InMemoryStore {
    log: RwLock<MemoryLog>,
}

impl InMemoryStore {
    /// An empty store that keeps every artifact.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store that evicts under `retention`.
    pub fn with_retention(retention: Retention) -> Self {
        Self {
            log: RwLock::new(MemoryLog::new(retention)),
        }
    }

    /// Stores an artifact without going through the async trait.
    ///
    /// # Errors
    /// [`StoreError::Duplicate`] when its id is already stored.
    pub fn insert(&self, artifact: Arc<Artifact>) -> Result<(), StoreError> {
        self.log.write().insert(artifact)
    }

    /// Stores several artifacts, all or none (a known or repeated id refuses them
    /// all), without going through the async trait.
    ///
    /// # Errors
    /// [`StoreError::Duplicate`] naming the first known or repeated id.
    pub fn insert_all(&self, artifacts: &[Arc<Artifact>]) -> Result<(), StoreError> {
        self.log.write().insert_all(artifacts)
    }

    fn select(&self, filter: &ArtifactFilter) -> Vec<Arc<Artifact>> {
        self.log.read().select(filter)
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
        Ok(self.log.read().get(&id).cloned())
    }

    async fn query(&self, filter: &ArtifactFilter) -> Result<Vec<Arc<Artifact>>, StoreError> {
        Ok(self.select(filter))
    }

    async fn count(&self) -> Result<usize, StoreError> {
        Ok(self.log.read().len())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::{DateTime, TimeDelta, Utc};

    use super::*;
    use crate::{Payload, WorkflowError};

    fn artifact(n: i64) -> Arc<Artifact> {
        let at = DateTime::<Utc>::from_timestamp(1_800_000_000 + n, 0).unwrap();
        let report = WorkflowError {
            agent: format!("a{n}"),
            error: String::new(),
            attempts: 0,
            input_ids: Vec::new(),
            flush_reason: None,
        };
        Arc::new(Artifact::new_at(Payload::new(report), "external", at))
    }

    /// Publishes `n` artifacts one second apart, holding those `hold` selects.
    fn fill(store: &InMemoryStore, n: i64, hold: impl Fn(i64) -> bool) -> Vec<Arc<Artifact>> {
        let mut held = Vec::new();
        for i in 0..n {
            let a = artifact(i);
            if hold(i) {
                held.push(a.clone());
            }
            store.insert(a).unwrap();
        }
        held
    }

    fn kept(store: &InMemoryStore) -> Vec<String> {
        store
            .select(&ArtifactFilter::new())
            .iter()
            .map(|a| a.get::<WorkflowError>().unwrap().agent.clone())
            .collect()
    }

    #[test]
    fn without_retention_everything_stays() {
        let store = InMemoryStore::new();
        fill(&store, 3_000, |_| false);
        assert_eq!(store.log.read().len(), 3_000);
    }

    #[test]
    fn dropping_consumed_keeps_only_what_is_held() {
        let store = InMemoryStore::with_retention(Retention::new().drop_consumed());
        let held = fill(&store, 5_000, |i| i % 1_000 == 7);
        let kept = kept(&store);
        // Everything unheld before the last pass is gone; the held ones stay.
        assert!(kept.len() < 1_100, "{} kept", kept.len());
        for a in &held {
            assert!(store.log.read().get(&a.id).is_some());
        }
        assert!(kept.contains(&"a7".to_owned()) && kept.contains(&"a4007".to_owned()));
        drop(held);
        fill(&store, 1_024, |_| false);
        assert!(store.log.read().get(&artifact(7).id).is_none());
        assert_eq!(
            store
                .select(&ArtifactFilter::new().type_name("WorkflowError"))
                .len(),
            store.log.read().len(),
            "the type index agrees with the log"
        );
    }

    #[test]
    fn max_artifacts_keeps_the_newest_and_whatever_is_held() {
        let store = InMemoryStore::with_retention(Retention::new().max_artifacts(100).unwrap());
        let held = fill(&store, 4_096, |i| i == 3);
        let kept = kept(&store);
        assert_eq!(kept.len(), 101);
        assert_eq!(kept[0], "a3");
        assert_eq!(kept[1], "a3996");
        drop(held);
    }

    #[test]
    fn max_age_keeps_what_is_recent_relative_to_the_newest() {
        let retention = Retention::new().max_age(Duration::from_secs(10)).unwrap();
        let store = InMemoryStore::with_retention(retention);
        fill(&store, 2_048, |_| false);
        let kept = store.select(&ArtifactFilter::new());
        let newest = kept.last().unwrap().created_at;
        assert!(
            kept.iter()
                .all(|a| newest - a.created_at <= TimeDelta::seconds(10))
        );
        assert_eq!(kept.len(), 11);
    }

    #[test]
    fn ids_out_of_order_are_found_and_refused_twice() {
        // Artifacts forwarded from elsewhere (or made concurrently) arrive with ids
        // below the newest: they are found, and refused as duplicates, like the rest.
        let store = InMemoryStore::new();
        let newer: Vec<Arc<Artifact>> = (0..5_000).map(|i| artifact(1_000 + i)).collect();
        let older: Vec<Arc<Artifact>> = (0..100).map(artifact).collect();
        for a in newer.iter().chain(&older) {
            store.insert(a.clone()).unwrap();
        }
        for a in newer.iter().chain(&older) {
            assert!(store.log.read().get(&a.id).is_some());
            assert!(matches!(
                store.insert(a.clone()),
                Err(StoreError::Duplicate(id)) if id == a.id
            ));
        }
        assert!(
            store
                .insert_all(&[artifact(7_000), older[3].clone()])
                .is_err()
        );
        assert_eq!(store.log.read().len(), 5_100, "all or none");
        assert_eq!(
            kept(&store)[5_000],
            "a0",
            "listed in publish order, not id order"
        );
    }

    #[test]
    fn zero_limits_are_refused() {
        assert!(Retention::new().max_artifacts(0).is_err());
        assert!(Retention::new().max_age(Duration::ZERO).is_err());
    }
}
