//! What a run processes: units (an artifact, or a join's complete group), flushed
//! batches, and the work of one run.

use std::{ops::Range, sync::Arc};

use flock_batch::Batch;
use flock_core::{Artifact, FailureRecord, FlushReason};
use flock_engines::{BatchInputs, BatchMetrics};
use flock_subscription::BatchSpec;
use flock_subscription::JoinKey;

use crate::agent::Agent;

/// A unit of work in a cluster, as `(agent, subscription, partition)`: what one
/// lease covers (a join's, or an unkeyed subscription's, has no partition).
pub(crate) type UnitKey = (u32, u32, Option<u32>);

/// Identifies one batch accumulator (and one join pool): an agent, one of its
/// subscriptions, and for keyed batches the key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct BatchKey {
    pub(crate) agent: u32,
    pub(crate) subscription: u32,
    /// The batch key of a keyed subscription (`Subscribe::keyed_by`).
    pub(crate) partition: Option<JoinKey>,
}

/// One item of delivery: an artifact, or the complete group of a join. A batch of a
/// plain subscription holds only `One` (no allocation per artifact); a batch of a
/// join subscription holds only `Group`s, each counting as one item.
#[derive(Debug, Clone)]
pub(crate) enum Unit {
    /// One artifact.
    One(Arc<Artifact>),
    /// A join's complete group: slot order, then arrival order.
    Group(Box<[Arc<Artifact>]>),
}

impl Unit {
    /// The unit's artifacts.
    pub(crate) fn artifacts(&self) -> &[Arc<Artifact>] {
        match self {
            Self::One(artifact) => std::slice::from_ref(artifact),
            Self::Group(group) => group,
        }
    }

    /// The unit's artifacts, for a direct (unbatched) run.
    pub(crate) fn into_vec(self) -> Vec<Arc<Artifact>> {
        match self {
            Self::One(artifact) => vec![artifact],
            Self::Group(group) => group.into_vec(),
        }
    }
}

/// A flushed batch as a run holds it: the items' artifacts in one flat list (what
/// component hooks, failed runs and the correlation id read), and the item
/// boundaries when the items are join groups. Built once per flush; a plain batch
/// allocates nothing per artifact.
#[derive(Clone)]
pub(crate) struct Flushed {
    pub(crate) batch: Batch<BatchKey, Arc<Artifact>>,
    /// Item boundaries in `batch.items` for a batch of join groups.
    groups: Option<Vec<Range<usize>>>,
}

impl Flushed {
    pub(crate) fn new(batch: Batch<BatchKey, Unit>) -> Self {
        let Batch {
            key,
            items,
            reason,
            spec,
            first_arrival,
            flushed_at,
        } = batch;
        // A batch is homogeneous: a join subscription batches only groups.
        let (artifacts, groups) = if matches!(items.first(), Some(Unit::Group(_))) {
            let mut artifacts = Vec::with_capacity(items.iter().map(|u| u.artifacts().len()).sum());
            let mut ranges = Vec::with_capacity(items.len());
            for unit in items {
                let start = artifacts.len();
                artifacts.extend(unit.into_vec());
                ranges.push(start..artifacts.len());
            }
            (artifacts, Some(ranges))
        } else {
            let artifacts = items
                .into_iter()
                .map(|unit| match unit {
                    Unit::One(artifact) => artifact,
                    Unit::Group(_) => unreachable!("a batch of artifacts holds no group"),
                })
                .collect();
            (artifacts, None)
        };
        Self {
            batch: Batch {
                key,
                items: artifacts,
                reason,
                spec,
                first_arrival,
                flushed_at,
            },
            groups,
        }
    }

    /// Items: artifacts, or join groups.
    pub(crate) fn len(&self) -> usize {
        self.groups
            .as_ref()
            .map_or(self.batch.items.len(), Vec::len)
    }

    /// `items / size` (1.0 when the spec has no size).
    pub(crate) fn efficiency(&self) -> f64 {
        self.batch.spec.efficiency(self.len())
    }

    /// The engine's view: the items in order, join groups kept as groups.
    pub(crate) fn inputs(&self) -> BatchInputs {
        match &self.groups {
            None => BatchInputs::new(self.batch.items.clone()),
            Some(ranges) => BatchInputs::from_groups(
                ranges
                    .iter()
                    .map(|r| self.batch.items[r.clone()].to_vec())
                    .collect(),
            ),
        }
    }

    /// The figures the engine's context and the flush span carry.
    pub(crate) fn metrics(&self) -> BatchMetrics {
        let batch = &self.batch;
        BatchMetrics {
            batch_size: self.len(),
            flush_reason: batch.reason,
            configured_size: batch.spec.max_size().map(|n| n.get()),
            configured_timeout: batch.spec.max_wait(),
            efficiency: self.efficiency(),
            wait: batch.wait(),
            subscription_index: batch.key.subscription as usize,
            key: batch.key.partition.as_ref().map(ToString::to_string),
        }
    }
}

/// What a run processes.
#[derive(Clone)]
pub(crate) enum Work {
    /// One artifact, or one complete group, delivered directly.
    Single(Vec<Arc<Artifact>>),
    /// A flushed batch.
    Batch(Flushed),
}

impl Work {
    /// Every input artifact, flattened, in delivery order.
    pub(crate) fn artifacts(&self) -> &[Arc<Artifact>] {
        match self {
            Self::Single(artifacts) => artifacts,
            Self::Batch(flushed) => &flushed.batch.items,
        }
    }

    /// Input items: one for a single run (an artifact or a join group), the batch's
    /// items (artifacts or join groups) otherwise.
    pub(crate) fn items(&self) -> usize {
        match self {
            Self::Single(_) => 1,
            Self::Batch(flushed) => flushed.len(),
        }
    }

    /// The sizes of the input items when they are join groups (a batch of groups),
    /// empty otherwise.
    pub(crate) fn group_sizes(&self) -> Vec<usize> {
        match self {
            Self::Batch(Flushed {
                groups: Some(ranges),
                ..
            }) => ranges.iter().map(ExactSizeIterator::len).collect(),
            _ => Vec::new(),
        }
    }

    /// The subscription, for a batch.
    pub(crate) fn subscription(&self) -> Option<u32> {
        match self {
            Self::Batch(flushed) => Some(flushed.batch.key.subscription),
            Self::Single(_) => None,
        }
    }

    /// The work of a failed run a durable store kept: a batch again (of the
    /// subscription's spec, flushed `now`) when it was one.
    pub(crate) fn restore(
        agent: &Agent,
        record: &FailureRecord,
        inputs: Vec<Arc<Artifact>>,
        now: std::time::Instant,
    ) -> Self {
        let Some(reason) = record.flush_reason else {
            return Self::Single(inputs);
        };
        let subscription = record.subscription.unwrap_or(0);
        let spec = agent
            .subscriptions
            .get(subscription)
            .and_then(|s| s.batch().copied())
            .or_else(|| BatchSpec::size(inputs.len().max(1)).build().ok())
            .expect("a size of at least one is a valid spec");
        // A keyed batch's partition, from its first input (gates have none).
        let partition = agent
            .subscriptions
            .get(subscription)
            .filter(|s| !s.is_gate())
            .zip(inputs.first())
            .and_then(|(s, first)| s.key_of(first).ok().flatten());
        let items = if record.groups.is_empty() {
            inputs.into_iter().map(Unit::One).collect()
        } else {
            let mut rest = inputs.into_iter();
            record
                .groups
                .iter()
                .map(|&n| Unit::Group(rest.by_ref().take(n).collect()))
                .collect()
        };
        Self::Batch(Flushed::new(Batch {
            key: BatchKey {
                agent: agent.index,
                subscription: u32::try_from(subscription).unwrap_or(0),
                partition,
            },
            items,
            reason,
            spec,
            first_arrival: now,
            flushed_at: now,
        }))
    }

    pub(crate) fn flush_reason(&self) -> Option<FlushReason> {
        match self {
            Self::Batch(flushed) => Some(flushed.batch.reason),
            Self::Single(_) => None,
        }
    }
}

/// Where a run's inputs came from: the subscription that took them and, in a
/// cluster, the epoch of its unit's lease when the run was created: the fence its
/// commit is checked against (`None`: the unit was not this process's).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Origin {
    pub(crate) subscription: u32,
    pub(crate) fence: Option<u64>,
    /// The failed run this run retries: forgotten in the run's commit (its outputs,
    /// or its own failure), so a crash during the retry leaves it in place.
    pub(crate) retries: Option<uuid::Uuid>,
}
