//! The live events the core reports when someone listens ([`FlockEvent`]):
//! built here, under the core's lock, only when events are on.

use std::sync::Arc;

use flock_batch::{Batch, Discarded, Group};
use flock_core::{Artifact, Visibility};
use flock_subscription::{BatchSpec, JoinKey};

use crate::{
    agent::Agent,
    clock::Now,
    events::FlockEvent,
    work::{BatchKey, Unit},
};

/// Whoever may see every artifact of `units`.
fn visibility<'a>(artifacts: impl IntoIterator<Item = &'a Arc<Artifact>>) -> Visibility {
    Visibility::derived_from(artifacts.into_iter().map(|a| a.visibility()))
}

pub(super) fn item_added(
    agent: &Agent,
    key: &BatchKey,
    spec: &BatchSpec,
    collected: usize,
    deadline: Option<std::time::Instant>,
    now: Now,
    unit: &Unit,
) -> FlockEvent {
    FlockEvent::BatchItemAdded {
        agent: agent.name.to_string(),
        subscription_index: key.subscription as usize,
        key: key.partition.as_ref().map(ToString::to_string),
        collected,
        target: spec.max_size().map(|n| n.get()),
        time_left: deadline.map(|d| d.saturating_duration_since(now.mono)),
        visibility: visibility(unit.artifacts()),
    }
}

pub(super) fn batch_flushed(agent: &Agent, batch: &Batch<BatchKey, Unit>, now: Now) -> FlockEvent {
    FlockEvent::BatchFlushed {
        at: now.wall,
        agent: agent.name.to_string(),
        subscription_index: batch.key.subscription as usize,
        key: batch.key.partition.as_ref().map(ToString::to_string),
        reason: batch.reason,
        size: batch.items.len(),
        efficiency: batch.efficiency(),
        wait: batch.wait(),
        visibility: visibility(batch.items.iter().flat_map(Unit::artifacts)),
    }
}

pub(super) fn join_completed(
    agent: &Agent,
    group: &Group<BatchKey, JoinKey, Arc<Artifact>>,
) -> FlockEvent {
    FlockEvent::JoinCompleted {
        agent: agent.name.to_string(),
        subscription_index: group.pool.subscription as usize,
        key: group.key.to_string(),
        group_size: group.items.len(),
        visibility: visibility(&group.items),
    }
}

pub(super) fn join_discarded(
    agent: &Agent,
    discarded: &Discarded<BatchKey, JoinKey, Arc<Artifact>>,
) -> FlockEvent {
    FlockEvent::JoinDiscarded {
        agent: agent.name.to_string(),
        subscription_index: discarded.pool.subscription as usize,
        key: discarded.key.to_string(),
        reason: discarded.reason.as_str(),
        artifacts: discarded.items.len(),
        visibility: visibility(&discarded.items),
    }
}
