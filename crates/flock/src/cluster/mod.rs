//! Cluster mode: several processes run the same agents on one shared store
//! (PostgreSQL), each owning some units of work at a time (an agent's
//! subscription, or a partition of a keyed subscription's keys) through leases in
//! the store.
//!
//! In a cluster, a publish only stores its artifact (and the store notifies); every
//! process reads the store's feed in sequence order and collects an artifact for
//! the units it owns. A process that takes over a unit first collects again what
//! the unit's agent has not consumed up to the feed position it continues from, in
//! original arrival order, as recovery does. Runs commit their outputs with the
//! consumption of their inputs under the epoch of their unit's lease: a process that
//! lost the lease cannot commit, so what lands on the blackboard stays exactly-once
//! per agent. See `docs/adr/` (the cluster runtime) and `driver.rs`.

mod driver;

use std::{num::NonZeroU32, sync::Arc, time::Duration};

use flock_core::{ClusterStore, WorkUnit};
use flock_subscription::JoinKey;
use parking_lot::RwLock;
use rustc_hash::{FxHashMap, FxHasher};

pub(crate) use driver::spawn;

use crate::{
    agent::Agent,
    decision::{Take, Way},
};

/// Joining a cluster: the shared store, this process's name, and the lease time.
///
/// ```no_run
/// # async fn demo(store: std::sync::Arc<dyn flock::core::ClusterStore>) -> anyhow::Result<()> {
/// use std::time::Duration;
/// use flock::{Cluster, Flock};
///
/// let flock = Flock::builder()
///     .cluster(Cluster::new(store).process("worker-1").lease(Duration::from_secs(5))?)
///     .build();
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Cluster {
    pub(crate) store: Arc<dyn ClusterStore>,
    pub(crate) process: String,
    pub(crate) lease: Duration,
    pub(crate) partitions: NonZeroU32,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("process", &self.process)
            .field("lease", &self.lease)
            .field("partitions", &self.partitions)
            .finish_non_exhaustive()
    }
}

/// A lease time or partition count of zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{what} must be greater than zero")]
pub struct InvalidCluster {
    what: &'static str,
}

impl Cluster {
    /// Joins the cluster of `store` as `flock-<pid>`, with 10-second leases and 16
    /// partitions per keyed subscription.
    pub fn new(store: Arc<dyn ClusterStore>) -> Self {
        Self {
            store,
            process: format!("flock-{}", std::process::id()),
            lease: Duration::from_secs(10),
            partitions: NonZeroU32::new(16).expect("16 is not zero"),
        }
    }

    /// This process's name in the cluster (unique among live processes).
    pub fn process(mut self, name: impl Into<String>) -> Self {
        self.process = name.into();
        self
    }

    /// How long a lease lasts unless renewed: a process that dies loses its units
    /// after at most this long (renewed every third of it).
    ///
    /// # Errors
    /// [`InvalidCluster`] for zero.
    pub fn lease(mut self, lease: Duration) -> Result<Self, InvalidCluster> {
        if lease.is_zero() {
            return Err(InvalidCluster { what: "lease" });
        }
        self.lease = lease;
        Ok(self)
    }

    /// Partitions of each keyed subscription's keys: the units its batches spread
    /// over. Every process of a cluster must use the same number.
    ///
    /// # Errors
    /// [`InvalidCluster`] for zero.
    pub fn partitions(mut self, n: u32) -> Result<Self, InvalidCluster> {
        self.partitions = NonZeroU32::new(n).ok_or(InvalidCluster { what: "partitions" })?;
        Ok(self)
    }
}

/// A unit as the runtime names it: agent index, subscription, partition.
pub(crate) type UnitKey = (u32, u32, Option<u32>);

/// A unit this process owns: its lease's epoch, and the feed position its
/// takeover collected through (the feed delivers only what comes after).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Owned {
    pub(crate) epoch: u64,
    pub(crate) from_seq: u64,
}

/// This process's part in the cluster.
pub(crate) struct Membership {
    pub(crate) config: Cluster,
    owned: RwLock<FxHashMap<UnitKey, Owned>>,
}

impl Membership {
    pub(crate) fn new(config: Cluster) -> Self {
        Self {
            config,
            owned: RwLock::new(FxHashMap::default()),
        }
    }

    /// The unit a take files its artifact under.
    pub(crate) fn unit_of(&self, take: &Take) -> UnitKey {
        let partition = match &take.way {
            Way::Batch(Some(key)) => Some(self.partition_of(key)),
            _ => None,
        };
        (take.agent, take.subscription, partition)
    }

    /// The partition of a batch key: a hash every process of the same build agrees on.
    pub(crate) fn partition_of(&self, key: &JoinKey) -> u32 {
        use std::hash::{Hash, Hasher};
        let mut hasher = FxHasher::default();
        key.hash(&mut hasher);
        u32::try_from(hasher.finish() % u64::from(self.config.partitions.get()))
            .expect("a partition fits its count")
    }

    /// The owned unit of `take`, if this process owns it.
    pub(crate) fn owns(&self, take: &Take) -> Option<Owned> {
        self.owned.read().get(&self.unit_of(take)).copied()
    }

    /// The owned unit by key.
    pub(crate) fn owned(&self, unit: &UnitKey) -> Option<Owned> {
        self.owned.read().get(unit).copied()
    }

    /// Every unit of the registered agents, with its name in the store.
    pub(crate) fn units(&self, agents: &[Arc<Agent>]) -> Vec<(UnitKey, WorkUnit)> {
        let mut units = Vec::new();
        for agent in agents {
            for (index, subscription) in agent.subscriptions.iter().enumerate() {
                let partitions: Vec<Option<u32>> = if subscription.is_keyed() {
                    (0..self.config.partitions.get()).map(Some).collect()
                } else {
                    vec![None]
                };
                for partition in partitions {
                    let key = (
                        agent.index,
                        u32::try_from(index).expect("few subscriptions"),
                        partition,
                    );
                    let unit = WorkUnit {
                        agent: agent.name.to_string(),
                        subscription: index,
                        partition,
                    };
                    units.push((key, unit));
                }
            }
        }
        units
    }

    /// Sets the units owned now.
    pub(crate) fn set_owned(&self, owned: FxHashMap<UnitKey, Owned>) {
        *self.owned.write() = owned;
    }

    /// The units owned now, as `agent/subscription[/partition]`, sorted.
    pub(crate) fn owned_names(&self, agents: &[Arc<Agent>]) -> Vec<String> {
        let owned = self.owned.read();
        let mut names: Vec<String> = owned
            .keys()
            .map(|(agent, subscription, partition)| {
                WorkUnit {
                    agent: agents[*agent as usize].name.to_string(),
                    subscription: *subscription as usize,
                    partition: *partition,
                }
                .to_string()
            })
            .collect();
        names.sort();
        names
    }
}
