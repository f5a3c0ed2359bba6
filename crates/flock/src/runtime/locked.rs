//! The core's lock. With the default in-memory store it also guards the blackboard
//! itself ([`MemoryLog`]), and a copy of the routing table: a publish routes,
//! admits, stores and collects under this one lock while no subscription calls user
//! code (ADR 0016; benchmark 1: +16%, `docs/performance.md`).
//!
//! Queries of that store ([`LockedMemory`]) take the same lock to read; they do not
//! wait for each other, and nothing of the core waits for them longer than they take
//! to copy out what they select.

use std::sync::{Arc, Weak};

use async_trait::async_trait;
use flock_core::{Artifact, ArtifactFilter, ArtifactId, BlackboardStore, MemoryLog, StoreError};
use parking_lot::{MappedRwLockWriteGuard, RwLock, RwLockWriteGuard};

use crate::decision::{Core, Routing};

/// What the core's lock guards.
pub(crate) struct Locked {
    pub(crate) core: Core,
    /// The blackboard, when it is the in-memory default.
    pub(crate) log: Option<MemoryLog>,
    /// The routing table again, kept in step with the runtime's own (registration
    /// adds to both under this lock): a publish whose routing calls no user code
    /// routes under this lock and takes no other.
    pub(crate) routing: Routing,
}

/// The core's lock.
pub(crate) struct CoreLock(RwLock<Locked>);

impl CoreLock {
    /// `core` alone (another store keeps the blackboard), or with the in-memory
    /// blackboard.
    pub(crate) fn new(core: Core, log: Option<MemoryLog>) -> Self {
        Self(RwLock::new(Locked {
            core,
            log,
            routing: Routing::default(),
        }))
    }

    /// The core.
    pub(crate) fn lock(&self) -> MappedRwLockWriteGuard<'_, Core> {
        RwLockWriteGuard::map(self.0.write(), |locked| &mut locked.core)
    }

    /// The core and the in-memory blackboard together.
    pub(crate) fn lock_all(&self) -> RwLockWriteGuard<'_, Locked> {
        self.0.write()
    }

    /// Reads the in-memory blackboard.
    ///
    /// # Panics
    /// When the flock's store is another: only [`LockedMemory`] reads, and it exists
    /// only for the in-memory default.
    fn read<R>(&self, read: impl FnOnce(&MemoryLog) -> R) -> R {
        let locked = self.0.read();
        read(locked.log.as_ref().expect(NO_LOG))
    }

    /// Stores an artifact in the in-memory blackboard.
    ///
    /// # Panics
    /// As [`CoreLock::read`].
    pub(crate) fn insert(&self, artifact: Arc<Artifact>) -> Result<(), StoreError> {
        in_memory(&mut self.0.write().log).insert(artifact)
    }

    /// Stores artifacts in the in-memory blackboard, all or none.
    ///
    /// # Panics
    /// As [`CoreLock::read`].
    pub(crate) fn insert_all(&self, artifacts: &[Arc<Artifact>]) -> Result<(), StoreError> {
        in_memory(&mut self.0.write().log).insert_all(artifacts)
    }
}

const NO_LOG: &str = "only a flock on the in-memory store reaches its log";

/// The in-memory blackboard of [`Locked::log`], borrowed alone (beside the core).
///
/// # Panics
/// When the flock's store is another: only a flock on the in-memory store reaches
/// its log.
pub(crate) fn in_memory(log: &mut Option<MemoryLog>) -> &mut MemoryLog {
    log.as_mut().expect(NO_LOG)
}

/// The default in-memory store as the flock keeps it: inside the core's lock. What
/// queries, engines' views and invocations see as the store.
///
/// It refers to the lock weakly: the core holds the agents, an agent's engine may
/// keep a view of the blackboard, and a strong reference from that view would keep
/// the whole flock alive. A view kept past its flock reads nothing.
pub(crate) struct LockedMemory(Weak<CoreLock>);

impl LockedMemory {
    /// The store of the blackboard under `lock`.
    pub(crate) fn new(lock: &Arc<CoreLock>) -> Self {
        Self(Arc::downgrade(lock))
    }

    fn lock(&self) -> Result<Arc<CoreLock>, StoreError> {
        self.0.upgrade().ok_or_else(|| {
            StoreError::Backend(
                "the flock's in-memory blackboard is gone: its flock was dropped".into(),
            )
        })
    }
}

#[async_trait]
impl BlackboardStore for LockedMemory {
    async fn publish(&self, artifact: Arc<Artifact>) -> Result<(), StoreError> {
        self.lock()?.insert(artifact)
    }

    async fn publish_all(&self, artifacts: &[Arc<Artifact>]) -> Result<(), StoreError> {
        self.lock()?.insert_all(artifacts)
    }

    async fn get(&self, id: ArtifactId) -> Result<Option<Arc<Artifact>>, StoreError> {
        Ok(self.lock()?.read(|log| log.get(&id).cloned()))
    }

    async fn query(&self, filter: &ArtifactFilter) -> Result<Vec<Arc<Artifact>>, StoreError> {
        Ok(self.lock()?.read(|log| log.select(filter)))
    }

    async fn count(&self) -> Result<usize, StoreError> {
        Ok(self.lock()?.read(MemoryLog::len))
    }
}
