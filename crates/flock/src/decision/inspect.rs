//! Inspection of the core's state: the batches collecting, the join groups waiting,
//! the runs live, and who may see what waits; read under the core's lock, changing
//! nothing.

use std::sync::Arc;

use flock_batch::{PendingBatch, PendingGroup};
use flock_core::{Artifact, Visibility};
use flock_subscription::JoinKey;
use uuid::Uuid;

use super::Core;
use crate::{clock::Now, work::BatchKey};

impl Core {
    /// The batches collecting, oldest first.
    pub(crate) fn pending_batches(&self, now: Now) -> Vec<PendingBatch<BatchKey>> {
        self.batcher.pending(now.mono)
    }

    /// The incomplete join groups, oldest first.
    pub(crate) fn pending_groups(&self, now: Now) -> Vec<PendingGroup<BatchKey, JoinKey>> {
        self.joiner.pending(now.mono)
    }

    /// Whoever may see every artifact waiting in the batch of `key` (public when
    /// none waits).
    pub(crate) fn batch_visibility(&self, key: &BatchKey) -> Visibility {
        match self.batcher.collecting(key) {
            Some((units, _)) => Visibility::derived_from(
                units
                    .iter()
                    .flat_map(|unit| unit.artifacts())
                    .map(|a| a.visibility()),
            ),
            None => Visibility::Public,
        }
    }

    /// Whoever may see every artifact waiting under `key` in the join pool `pool`.
    pub(crate) fn group_visibility(&self, pool: &BatchKey, key: &JoinKey) -> Visibility {
        match self.joiner.waiting_items(pool, key) {
            Some(items) => Visibility::derived_from(items.map(|a| a.visibility())),
            None => Visibility::Public,
        }
    }

    /// Artifacts with `correlation_id` waiting in batches and join groups.
    pub(crate) fn waiting_with_correlation(&self, correlation_id: Uuid, now: Now) -> usize {
        let of = |a: &&Arc<Artifact>| a.correlation_id() == Some(correlation_id);
        let batched: usize = self
            .batcher
            .pending(now.mono)
            .iter()
            .filter_map(|p| self.batcher.collecting(&p.key))
            .map(|(units, _)| units.iter().flat_map(|u| u.artifacts()).filter(of).count())
            .sum();
        let joining: usize = self
            .joiner
            .pending(now.mono)
            .iter()
            .filter_map(|p| self.joiner.waiting_items(&p.pool, &p.key))
            .map(|items| items.filter(of).count())
            .sum();
        batched + joining
    }

    /// Runs created and not finished: started, waiting for a slot, or refused and
    /// not yet recorded.
    pub(crate) fn live_runs(&self) -> usize {
        self.scheduler.live()
    }

    /// The admission counts, when the flock has bounds.
    pub(crate) fn admission_counts(&self) -> Option<crate::AdmissionCounts> {
        self.waiting.counts(&self.agents)
    }

    /// Items waiting in batches and join groups (what a dropped flock loses).
    pub(crate) fn held(&self) -> (usize, usize) {
        (self.batcher.waiting(), self.joiner.waiting())
    }
}
