//! What a durable store keeps beyond artifacts: which agent consumed what (in the
//! same transaction as the outputs of the run that consumed it), and the failed
//! runs.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Artifact, ArtifactId, FailureKind, FlushReason};

/// What a finished run makes durable, as one fact: its outputs are stored and its
/// agent has consumed its inputs, or neither.
#[derive(Debug, Clone, Copy)]
pub struct RunCommit<'a> {
    /// The agent whose run it is.
    pub agent: &'a str,
    /// The run's id: stable across a crash and a re-run of the same inputs.
    pub run_id: Uuid,
    /// The artifacts the run consumed (for a join group discarded, the group).
    pub inputs: &'a [ArtifactId],
    /// Its outputs (none for a discarded join group).
    pub outputs: &'a [Arc<Artifact>],
    /// In a cluster: the unit the run belongs to and the epoch of the lease its
    /// process held. A shared store commits only while that epoch is current, and
    /// refuses otherwise (`StoreError::Fenced`): the unit's new owner runs the
    /// inputs again. `None` outside a cluster.
    pub fence: Option<(&'a crate::WorkUnit, u64)>,
    /// The failed run this run retries (`Flock::retry_failed_run`): forgotten in
    /// the same transaction, so a crash during the retry leaves it in place.
    pub retries: Option<Uuid>,
}

/// A run that failed for good, as one fact: the failed run is kept, its
/// `WorkflowError` stored and its inputs consumed by its agent, or none of it.
#[derive(Debug, Clone, Copy)]
pub struct FailureCommit<'a> {
    /// The failed run.
    pub failure: &'a FailureRecord,
    /// Its `WorkflowError`.
    pub error: &'a Arc<Artifact>,
    /// In a cluster, as [`RunCommit::fence`]: kept only while the epoch is current.
    pub fence: Option<(&'a crate::WorkUnit, u64)>,
    /// The failed run this run retried, which failed again: forgotten in the same
    /// transaction (the new one replaces it).
    pub retries: Option<Uuid>,
}

/// A failed run (a dead letter) as a store keeps it. Its inputs count as consumed
/// by its agent: [`Flock::retry_failed_run`] runs them again, nothing else does.
///
/// [`Flock::retry_failed_run`]: https://docs.rs/flock-rs/latest/flock/struct.Flock.html#method.retry_failed_run
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureRecord {
    /// The failed run's id.
    pub id: Uuid,
    /// The agent.
    pub agent: String,
    /// The run's stable id.
    pub run_id: Uuid,
    /// Why it is a failed run.
    pub kind: FailureKind,
    /// The last attempt's error.
    pub error: String,
    /// Attempts made.
    pub attempts: u32,
    /// The inputs, in delivery order.
    pub inputs: Vec<ArtifactId>,
    /// Item boundaries in `inputs` when the items were join groups: the length of
    /// each group, in order (empty otherwise).
    pub groups: Vec<usize>,
    /// The subscription (its index in the agent's declaration), when the run was a
    /// batch.
    pub subscription: Option<usize>,
    /// The flush reason, when the run was a batch.
    pub flush_reason: Option<FlushReason>,
    /// When it was given up.
    pub failed_at: DateTime<Utc>,
    /// The `WorkflowError` artifact published for it.
    pub workflow_error: ArtifactId,
}
