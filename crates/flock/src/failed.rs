//! Dead letters: runs that failed for good (or that the circuit breaker refused),
//! kept with their inputs so nothing is lost.

use std::{fmt, sync::Arc};

use chrono::{DateTime, Utc};
pub use flock_core::FailureKind;
use flock_core::{Artifact, ArtifactId, FlushReason};
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
    pub(crate) work: Work,
}

impl FailedRun {
    pub(crate) fn new(
        agent: Arc<Agent>,
        work: Work,
        kind: FailureKind,
        error: String,
        attempts: u32,
        workflow_error: ArtifactId,
        failed_at: DateTime<Utc>,
    ) -> Self {
        Self {
            id: Uuid::now_v7(),
            agent: agent.name.to_string(),
            kind,
            error,
            attempts,
            inputs: work.artifacts().to_vec(),
            flush_reason: work.flush_reason(),
            failed_at,
            workflow_error,
            agent_ref: agent,
            work,
        }
    }

    /// The ids of the inputs, in order.
    pub fn input_ids(&self) -> Vec<ArtifactId> {
        self.inputs.iter().map(|a| a.id).collect()
    }
}

impl fmt::Debug for FailedRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailedRun")
            .field("id", &self.id)
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
}
