//! What a shared store offers a cluster of flocks (several processes on one
//! blackboard): leases on units of work, the feed of artifacts in store order, and
//! a wake-up when new artifacts arrive. PostgreSQL implements it
//! (`flock-rs-store-postgres`); the runtime drives it.

use std::{fmt, sync::Arc, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{Artifact, BlackboardStore, StoreError};

/// A unit of work owned by one live process at a time: an agent's subscription,
/// or one partition of a keyed subscription's keys (`hash(key) % partitions`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkUnit {
    /// The agent.
    pub agent: String,
    /// The subscription's index in the agent's declaration.
    pub subscription: usize,
    /// The partition, for keyed subscriptions.
    pub partition: Option<u32>,
}

impl fmt::Display for WorkUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.partition {
            Some(p) => write!(f, "{}/{}/{p}", self.agent, self.subscription),
            None => write!(f, "{}/{}", self.agent, self.subscription),
        }
    }
}

/// A unit this process owns until `expires_at` unless renewed. `epoch` grows each
/// time the unit changes owner: a store commits a run only while its epoch is still
/// current (fencing), so a process that lost its lease cannot commit late.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The unit.
    pub unit: WorkUnit,
    /// The fencing token.
    pub epoch: u64,
    /// When the lease lapses unless renewed.
    pub expires_at: DateTime<Utc>,
}

/// An artifact of the feed with its store sequence number.
pub type Fed = (u64, Arc<Artifact>);

/// The cluster side of a shared store.
#[async_trait]
pub trait ClusterStore: BlackboardStore {
    /// Records that `process` is alive for `ttl`; returns the live processes (this
    /// one included), sorted.
    ///
    /// # Errors
    /// A backend failure.
    async fn heartbeat(&self, process: &str, ttl: Duration) -> Result<Vec<String>, StoreError>;

    /// Renews the leases `process` holds among `units` and takes free or expired
    /// ones until it holds `want` (or none is left); releases any beyond `want`.
    /// Returns the leases it holds now, each renewed for `ttl`.
    ///
    /// # Errors
    /// A backend failure: the process must assume it holds nothing once its leases
    /// expire.
    async fn balance(
        &self,
        process: &str,
        units: &[WorkUnit],
        want: usize,
        ttl: Duration,
    ) -> Result<Vec<Lease>, StoreError>;

    /// Gives up `process`'s leases (a graceful stop), so others take them at once.
    ///
    /// # Errors
    /// A backend failure.
    async fn release(&self, process: &str) -> Result<(), StoreError>;

    /// Up to `limit` artifacts stored after sequence `after`, in store order.
    ///
    /// # Errors
    /// A backend failure.
    async fn feed(&self, after: u64, limit: usize) -> Result<Vec<Fed>, StoreError>;

    /// The artifacts stored up to sequence `through` (inclusive) since `agent` was
    /// first recorded that it has not consumed, in store order: what a process
    /// that just took over a unit of the agent collects again, the feed delivering
    /// what comes after.
    ///
    /// # Errors
    /// A backend failure.
    async fn unconsumed_through(
        &self,
        agent: &str,
        through: u64,
    ) -> Result<Vec<Arc<Artifact>>, StoreError>;

    /// The latest sequence number (0 for an empty store).
    ///
    /// # Errors
    /// A backend failure.
    async fn head(&self) -> Result<u64, StoreError>;

    /// Resolves once an artifact after `after` may have been stored (a notification,
    /// or `timeout` passing): the caller then reads the feed. Never the only way a
    /// process learns of new artifacts: a missed wake-up is caught up by the next.
    ///
    /// # Errors
    /// A backend failure.
    async fn wait_for_more(&self, after: u64, timeout: Duration) -> Result<(), StoreError>;
}
