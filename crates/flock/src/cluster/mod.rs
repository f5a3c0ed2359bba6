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
//! per agent. See `docs/adr/` (the cluster runtime) and `runtime/driver.rs`.

use std::{num::NonZeroU32, sync::Arc, time::Duration};

use flock_core::{ClusterStore, WorkUnit};
use flock_subscription::JoinKey;
use parking_lot::{Mutex, RwLock};
use rustc_hash::{FxHashMap, FxHasher};
use tokio::sync::Notify;

pub(crate) use crate::work::UnitKey;
use crate::{
    agent::Agent,
    decision::{Take, Way},
    work::BatchKey,
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

    /// How soon the units of a process that dies are taken over by the others:
    /// leases last three quarters of it unless renewed, and every process renews
    /// its own and looks for lapsed ones every quarter of it. A process that cannot
    /// reach the store for half of it loses its units (its runs then cannot
    /// commit: the new owners run their inputs).
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

/// A unit this process owns: its lease's epoch, and the feed position its
/// takeover collected through (the feed delivers only what comes after; until the
/// takeover is done, `u64::MAX`: nothing).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Owned {
    pub(crate) epoch: u64,
    pub(crate) from_seq: u64,
}

/// This process's part in the cluster.
pub(crate) struct Membership {
    pub(crate) config: Cluster,
    owned: RwLock<FxHashMap<UnitKey, Owned>>,
    /// Units taken whose takeover (collecting again what their agent had not
    /// consumed) the feed task has yet to do, with their epochs.
    takeovers: Mutex<FxHashMap<UnitKey, u64>>,
    /// Wakes the feed task for a takeover.
    pub(crate) wake: Notify,
    /// Held while the lease task balances; `leaving` stops it for good (shutdown
    /// releases the leases after it, so no late balance takes them back).
    pub(crate) balancing: tokio::sync::Mutex<bool>,
}

impl Membership {
    pub(crate) fn new(config: Cluster) -> Self {
        Self {
            config,
            owned: RwLock::new(FxHashMap::default()),
            takeovers: Mutex::new(FxHashMap::default()),
            wake: Notify::new(),
            balancing: tokio::sync::Mutex::new(false),
        }
    }

    /// How often the lease task runs, and how long a lease lasts: a dead process's
    /// units are taken over within `period + ttl`, the lease time.
    pub(crate) fn timing(&self) -> (Duration, Duration) {
        let period = self.config.lease / 4;
        (period, self.config.lease - period)
    }

    /// The unit of a batch key (a join's, or an unkeyed subscription's, has no
    /// partition).
    pub(crate) fn unit_of_key(&self, key: &BatchKey) -> UnitKey {
        let partition = key.partition.as_ref().map(|k| self.partition_of(k));
        (key.agent, key.subscription, partition)
    }

    /// The epoch of a batch key's unit, if this process owns it: the fence of a run
    /// created now (read under the core's lock).
    pub(crate) fn fence(&self, key: &BatchKey) -> Option<u64> {
        self.owned(&self.unit_of_key(key)).map(|o| o.epoch)
    }

    /// Records the leases held now, as `(unit, epoch)`; returns the units lost (not
    /// held any more, or held again under another epoch). Units newly held wait for
    /// their takeover. Called under the core's lock, with forgetting the lost units.
    pub(crate) fn apply(&self, leases: &[(UnitKey, u64)]) -> Vec<UnitKey> {
        let mut owned = self.owned.write();
        let mut takeovers = self.takeovers.lock();
        let mut next = FxHashMap::default();
        for &(key, epoch) in leases {
            match owned.get(&key) {
                Some(held) if held.epoch == epoch => {
                    next.insert(key, *held);
                }
                _ => {
                    next.insert(
                        key,
                        Owned {
                            epoch,
                            from_seq: u64::MAX,
                        },
                    );
                    takeovers.insert(key, epoch);
                }
            }
        }
        let lost: Vec<UnitKey> = owned
            .iter()
            .filter(|(key, held)| next.get(key).is_none_or(|now| now.epoch != held.epoch))
            .map(|(key, _)| *key)
            .collect();
        takeovers.retain(|key, epoch| next.get(key).is_some_and(|o| o.epoch == *epoch));
        let wake = !takeovers.is_empty();
        *owned = next;
        if wake {
            self.wake.notify_one();
        }
        lost
    }

    /// The takeovers to do now.
    pub(crate) fn take_takeovers(&self) -> FxHashMap<UnitKey, u64> {
        std::mem::take(&mut *self.takeovers.lock())
    }

    /// Takeovers that failed, to do again (those still owned under their epoch).
    pub(crate) fn retry_takeovers(&self, failed: FxHashMap<UnitKey, u64>) {
        let owned = self.owned.read();
        let mut takeovers = self.takeovers.lock();
        for (key, epoch) in failed {
            if owned.get(&key).is_some_and(|o| o.epoch == epoch) {
                takeovers.entry(key).or_insert(epoch);
            }
        }
    }

    /// The takeover of `units` collected everything up to `through`: the feed
    /// delivers what comes after (to the units still owned under the same epoch).
    pub(crate) fn taken_over(&self, units: &FxHashMap<UnitKey, u64>, through: u64) {
        let mut owned = self.owned.write();
        for (key, epoch) in units {
            if let Some(held) = owned.get_mut(key)
                && held.epoch == *epoch
            {
                held.from_seq = through;
            }
        }
    }

    /// How many units this process owns.
    pub(crate) fn owned_count(&self) -> usize {
        self.owned.read().len()
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
