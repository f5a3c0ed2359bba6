//! Dead letters: runs that failed for good (or that the circuit breaker refused),
//! kept with their inputs so nothing is lost.

use std::{fmt, sync::Arc};

use chrono::{DateTime, Utc};
pub use flock_core::FailureKind;
use flock_core::{Artifact, ArtifactId, FailureRecord, FlushReason};
use uuid::Uuid;

use crate::{agent::Agent, work::Work};

/// A run that did not complete, with everything needed to inspect or retry it: the
/// dead-letter entry [`Flock::failed_runs`](crate::Flock::failed_runs) returns.
///
/// Its inputs stay on the blackboard as well; the entry says which agent could not
/// process them and why. A `WorkflowError` artifact with the same agent, error,
/// attempts and input ids was published when the run failed.
#[derive(Clone)]
#[non_exhaustive]
pub struct FailedRun {
    /// Identifies the entry, for [`Flock::retry_failed_run`](crate::Flock::retry_failed_run).
    pub id: Uuid,
    /// The run's id, the idempotency key its engine saw
    /// ([`EngineContext::run_id`](crate::EngineContext::run_id)).
    pub run_id: Uuid,
    /// The agent.
    pub agent: String,
    /// Why it is here.
    pub kind: FailureKind,
    /// The last attempt's error.
    pub error: String,
    /// Attempts made (0 when the circuit breaker refused the run).
    pub attempts: u32,
    /// The run's inputs, in order (a batch's items, or the one artifact).
    pub inputs: Vec<Arc<Artifact>>,
    /// The flush reason, when the run was a batch.
    pub flush_reason: Option<FlushReason>,
    /// When the run was given up.
    pub failed_at: DateTime<Utc>,
    /// The `WorkflowError` artifact published for it.
    pub workflow_error: ArtifactId,
    pub(crate) agent_ref: Arc<Agent>,
    /// The subscription that took the inputs.
    pub(crate) subscription: u32,
    /// In a cluster: the fence of the run (see `work::Origin`).
    pub(crate) fence: Option<u64>,
    /// The failed run this one retried (replaced by it in the store).
    pub(crate) retries: Option<Uuid>,
    pub(crate) work: Work,
}

impl FailedRun {
    #[expect(clippy::too_many_arguments, reason = "every field of a new entry")]
    pub(crate) fn new(
        agent: Arc<Agent>,
        origin: crate::work::Origin,
        run_id: Uuid,
        work: Work,
        kind: FailureKind,
        error: String,
        attempts: u32,
        workflow_error: ArtifactId,
        failed_at: DateTime<Utc>,
    ) -> Self {
        Self {
            id: Uuid::now_v7(),
            run_id,
            agent: agent.name.to_string(),
            kind,
            error,
            attempts,
            inputs: work.artifacts().to_vec(),
            flush_reason: work.flush_reason(),
            failed_at,
            workflow_error,
            agent_ref: agent,
            subscription: origin.subscription,
            fence: origin.fence,
            retries: origin.retries,
            work,
        }
    }

    /// The ids of the inputs, in order.
    pub fn input_ids(&self) -> Vec<ArtifactId> {
        self.inputs.iter().map(|a| a.id).collect()
    }

    /// The entry as a durable store keeps it.
    pub(crate) fn record(&self) -> FailureRecord {
        FailureRecord {
            id: self.id,
            agent: self.agent.clone(),
            run_id: self.run_id,
            kind: self.kind,
            error: self.error.clone(),
            attempts: self.attempts,
            inputs: self.input_ids(),
            groups: self.work.group_sizes(),
            subscription: Some(self.subscription as usize),
            flush_reason: self.flush_reason,
            failed_at: self.failed_at,
            workflow_error: self.workflow_error,
        }
    }

    /// The entry a durable store kept, with its inputs read back, for `agent`.
    pub(crate) fn restore(
        record: FailureRecord,
        agent: Arc<Agent>,
        inputs: Vec<Arc<Artifact>>,
        now: std::time::Instant,
    ) -> Self {
        let work = Work::restore(&agent, &record, inputs, now);
        let subscription = record
            .subscription
            .and_then(|s| u32::try_from(s).ok())
            .unwrap_or(0);
        Self {
            id: record.id,
            run_id: record.run_id,
            agent: record.agent,
            kind: record.kind,
            error: record.error,
            attempts: record.attempts,
            inputs: work.artifacts().to_vec(),
            flush_reason: record.flush_reason,
            failed_at: record.failed_at,
            workflow_error: record.workflow_error,
            agent_ref: agent,
            subscription,
            fence: None,
            retries: None,
            work,
        }
    }
}

impl fmt::Debug for FailedRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailedRun")
            .field("id", &self.id)
            .field("run_id", &self.run_id)
            .field("agent", &self.agent)
            .field("kind", &self.kind)
            .field("error", &self.error)
            .field("attempts", &self.attempts)
            .field("inputs", &self.input_ids())
            .field("flush_reason", &self.flush_reason)
            .field("failed_at", &self.failed_at)
            .field("workflow_error", &self.workflow_error)
            .finish()
    }
}

/// Why [`Flock::retry_failed_run`](crate::Flock::retry_failed_run) refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RetryFailedRunError {
    /// No failed run has this id (it was never there, or was already retried or taken).
    #[error("no failed run with id {0}; it may have been retried or taken already")]
    NotFound(Uuid),
    /// The flock has shut down.
    #[error("cannot retry failed run {0}: the flock has shut down")]
    Closed(Uuid),
    /// In a cluster: the run's unit moved to another process since it failed. The
    /// entry stays here and in the store; its inputs count as consumed by the agent,
    /// so no process runs them until the entry is retried where the unit is owned.
    #[error("cannot retry failed run {0}: its unit moved to another process of the cluster")]
    Moved(Uuid),
}
