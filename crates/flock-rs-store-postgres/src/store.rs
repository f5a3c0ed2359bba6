//! `PostgresStore` and the `BlackboardStore` contract on top of `write.rs` and
//! `read.rs` (its state is `inner.rs`; connecting is `connect.rs`).

use std::sync::Arc;

use async_trait::async_trait;
use flock_core::{
    Artifact, ArtifactFilter, ArtifactId, BlackboardStore, FailureCommit, FailureRecord, RunCommit,
    StoreError, TypeRegistry,
};

use crate::{inner::Inner, write::Write};

/// A blackboard in PostgreSQL: durable, and shareable by several processes (it is
/// a [`ClusterStore`](flock_core::ClusterStore)).
///
/// Connect with [`PostgresStore::connect`] or [`PostgresStore::builder`]. The store
/// is `Send + Sync`; share it behind an `Arc`.
pub struct PostgresStore {
    inner: Inner,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.inner.schema)
            .field("pool", &self.inner.pool.status())
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    pub(crate) fn from_inner(inner: Inner) -> Self {
        Self { inner }
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// The schema its tables are in.
    pub fn schema(&self) -> &str {
        &self.inner.schema
    }
}

#[async_trait]
impl BlackboardStore for PostgresStore {
    async fn publish(&self, artifact: Arc<Artifact>) -> Result<(), StoreError> {
        self.publish_all(std::slice::from_ref(&artifact)).await
    }

    async fn publish_all(&self, artifacts: &[Arc<Artifact>]) -> Result<(), StoreError> {
        self.inner
            .write(Write {
                outputs: artifacts,
                ..Write::default()
            })
            .await
    }

    async fn get(&self, id: ArtifactId) -> Result<Option<Arc<Artifact>>, StoreError> {
        self.inner.get(id).await
    }

    async fn query(&self, filter: &ArtifactFilter) -> Result<Vec<Arc<Artifact>>, StoreError> {
        self.inner.query(filter).await
    }

    async fn count(&self) -> Result<usize, StoreError> {
        self.inner.count().await
    }

    fn is_durable(&self) -> bool {
        true
    }

    fn types(&self) -> Option<TypeRegistry> {
        Some(self.inner.types.clone())
    }

    /// Records `agent` with the last sequence number handed out, the first time.
    /// Blocks the calling thread on a connection of its own (driven by a thread of
    /// its own), so it is safe inside any tokio runtime, current-thread included.
    fn register_agent(&self, agent: &str) -> Result<(), StoreError> {
        crate::blocking::register_agent(&self.inner, agent)
    }

    async fn commit_run(&self, commit: RunCommit<'_>) -> Result<(), StoreError> {
        self.inner
            .write(Write {
                outputs: commit.outputs,
                consumed: Some((commit.agent, commit.inputs)),
                failure: None,
                fence: commit.fence,
                forget: commit.retries,
            })
            .await
    }

    async fn commit_failure(&self, commit: FailureCommit<'_>) -> Result<(), StoreError> {
        let failure = commit.failure;
        self.inner
            .write(Write {
                outputs: std::slice::from_ref(commit.error),
                consumed: Some((&failure.agent, &failure.inputs)),
                failure: Some(failure),
                fence: commit.fence,
                forget: commit.retries,
            })
            .await
    }

    async fn forget_failure(&self, id: uuid::Uuid) -> Result<(), StoreError> {
        self.inner.forget_failure(id).await
    }

    async fn failures(&self) -> Result<Vec<FailureRecord>, StoreError> {
        self.inner.failures().await
    }

    async fn unconsumed(&self, agent: &str) -> Result<Vec<Arc<Artifact>>, StoreError> {
        self.inner.unconsumed(agent, None).await
    }
}
