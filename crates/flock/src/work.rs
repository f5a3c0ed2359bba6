//! What a run processes: units (an artifact, or a join's complete group), flushed
//! batches, and the work of one run.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

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

/// A flushed batch as a run holds it: what the batch was (key, reason, spec,
/// times) and its items as the engine gets them, shared between the run and the
/// engine (a retry or a failed run keeps them without copying the list).
#[derive(Clone)]
pub(crate) struct Flushed {
    pub(crate) key: BatchKey,
    pub(crate) reason: FlushReason,
    pub(crate) spec: BatchSpec,
    /// Time from the first item's arrival to the flush.
    pub(crate) wait: Duration,
    inputs: BatchInputs,
}

impl Flushed {
    pub(crate) fn new(batch: Batch<BatchKey, Unit>) -> Self {
        let wait = batch.wait();
        let Batch {
            key,
            items,
            reason,
            spec,
            ..
        } = batch;
        // A batch is homogeneous: a join subscription batches only groups.
        let inputs = if matches!(items.first(), Some(Unit::Group(_))) {
            BatchInputs::from_groups(items.into_iter().map(Unit::into_vec).collect())
        } else {
            BatchInputs::new(
                items
                    .into_iter()
                    .map(|unit| match unit {
                        Unit::One(artifact) => artifact,
                        Unit::Group(_) => unreachable!("a batch of artifacts holds no group"),
                    })
                    .collect(),
            )
        };
        Self {
            key,
            reason,
            spec,
            wait,
            inputs,
        }
    }

    /// Items: artifacts, or join groups.
    pub(crate) fn len(&self) -> usize {
        self.inputs.len()
    }

    /// Every artifact, flattened, in order.
    pub(crate) fn artifacts(&self) -> &[Arc<Artifact>] {
        self.inputs.artifacts()
    }

    /// `items / size` (1.0 when the spec has no size).
    pub(crate) fn efficiency(&self) -> f64 {
        self.spec.efficiency(self.len())
    }

    /// The engine's view: the items in order, join groups kept as groups.
    pub(crate) fn inputs(&self) -> BatchInputs {
        self.inputs.clone()
    }

    /// The figures the engine's context and the flush span carry.
    pub(crate) fn metrics(&self) -> BatchMetrics {
        BatchMetrics {
            batch_size: self.len(),
            flush_reason: self.reason,
            configured_size: self.spec.max_size().map(|n| n.get()),
            configured_timeout: self.spec.max_wait(),
            efficiency: self.efficiency(),
            wait: self.wait,
            subscription_index: self.key.subscription as usize,
            key: self.key.partition.as_ref().map(ToString::to_string),
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
            Self::Batch(flushed) => flushed.artifacts(),
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
            Self::Batch(flushed) if flushed.inputs.is_grouped() => {
                flushed.inputs.items().map(<[_]>::len).collect()
            }
            _ => Vec::new(),
        }
    }

    /// The subscription, for a batch.
    pub(crate) fn subscription(&self) -> Option<u32> {
        match self {
            Self::Batch(flushed) => Some(flushed.key.subscription),
            Self::Single(_) => None,
        }
    }

    /// The work of a failed run a durable store kept: a batch again (of the
    /// subscription's spec, flushed `now`) when it was one.
    pub(crate) fn restore(
        agent: &Agent,
        record: &FailureRecord,
        inputs: Vec<Arc<Artifact>>,
        now: Instant,
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
            Self::Batch(flushed) => Some(flushed.reason),
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
