//! The blackboard store: the trait every backend implements, the filter queries
//! use, the in-memory store, and the identity-filtered view engines get.

mod durable;
mod filter;
mod memory;
mod view;

use std::sync::Arc;

use async_trait::async_trait;

pub use durable::{FailureCommit, FailureRecord, RunCommit};
pub use filter::ArtifactFilter;
pub use memory::{InMemoryStore, InvalidRetention, MemoryLog, Retention};
pub use view::BlackboardView;

use crate::{Artifact, ArtifactId, StoreError, TypeRegistry};

/// Where artifacts live. Every published artifact is kept: it is a blackboard.
///
/// Every store keeps arrival order: each stored artifact takes the next place in
/// one sequence, and every listing returns artifacts in that order. Every backend
/// must pass the conformance suite, `flock_core::conformance` (feature
/// `conformance`).
#[async_trait]
pub trait BlackboardStore: Send + Sync + 'static {
    /// Stores an artifact. Returns once it is stored: for a durable store, once it
    /// is durable.
    ///
    /// # Errors
    /// [`StoreError::Duplicate`] when its id is already stored (nothing is stored),
    /// or a backend failure.
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

    /// The artifacts matching `filter`, in arrival order; `filter.limit` keeps the
    /// first matches, counted after every condition (visibility included).
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

    // === durability ===
    //
    // A durable store keeps, beside the artifacts, what each agent consumed and the
    // failed runs. The runtime then records every run's consumption with its outputs
    // (`commit_run`), and on start collects again what no run consumed
    // (`unconsumed`). The defaults are a store that keeps artifacts only.

    /// Whether accepted artifacts survive the process: a publish returns only once
    /// its artifact is durable, and the runtime recovers on start.
    fn is_durable(&self) -> bool {
        false
    }

    /// The registry this store decodes stored payloads with, if it has one: a flock
    /// built on the store shares it, so the types its agents register decode.
    fn types(&self) -> Option<TypeRegistry> {
        None
    }

    /// Records an agent of the flock. The first time a name is recorded, the store
    /// notes how far its artifacts go: only artifacts stored after that are the
    /// agent's to recover. Called at registration (setup time; it may block briefly
    /// on a durable store's writer).
    ///
    /// # Errors
    /// A backend failure.
    fn register_agent(&self, _agent: &str) -> Result<(), StoreError> {
        Ok(())
    }

    /// Stores a run's outputs and records that its agent consumed its inputs, in
    /// one transaction; when the run retries a failed run (`commit.retries`), that
    /// failed run is forgotten in it too. Recording a consumption twice is harmless.
    ///
    /// # Errors
    /// As [`BlackboardStore::publish_all`] (a known or repeated output id is
    /// [`StoreError::Duplicate`]); then nothing was stored or recorded.
    async fn commit_run(&self, commit: RunCommit<'_>) -> Result<(), StoreError> {
        self.publish_all(commit.outputs).await
    }

    /// Keeps a failed run, stores its `WorkflowError` and records its inputs as
    /// consumed by its agent, in one transaction; a failed run it retried
    /// (`commit.retries`) is forgotten in it. In a cluster, `commit.fence` is the
    /// run's unit and the epoch of the lease its process held, as
    /// [`RunCommit::fence`]: a shared store keeps the failed run only while that
    /// epoch is current (the unit's new owner runs the inputs again).
    ///
    /// # Errors
    /// [`StoreError::Duplicate`] when the error artifact's id is already stored,
    /// [`StoreError::Fenced`] when the fence's epoch is not current, or a backend
    /// failure; then nothing was kept, stored, recorded or forgotten.
    async fn commit_failure(&self, commit: FailureCommit<'_>) -> Result<(), StoreError> {
        self.publish(commit.error.clone()).await
    }

    /// Forgets a failed run (it is being run again). An unknown id is no error.
    ///
    /// # Errors
    /// A backend failure.
    async fn forget_failure(&self, _id: uuid::Uuid) -> Result<(), StoreError> {
        Ok(())
    }

    /// The failed runs kept, oldest first.
    ///
    /// # Errors
    /// A backend failure.
    async fn failures(&self) -> Result<Vec<FailureRecord>, StoreError> {
        Ok(Vec::new())
    }

    /// The artifacts stored since `agent` was first recorded that it has not
    /// consumed, in the order they were stored (none for an agent never recorded).
    ///
    /// # Errors
    /// A backend failure.
    async fn unconsumed(&self, _agent: &str) -> Result<Vec<Arc<Artifact>>, StoreError> {
        Ok(Vec::new())
    }
}
