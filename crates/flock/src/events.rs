//! Live events: what happens in a flock as it happens, for dashboards and
//! operators ([`Flock::events`](crate::Flock::events)).
//!
//! Events cost nothing until someone subscribes: the runtime builds them only once
//! [`Flock::events`](crate::Flock::events) has been called. A subscriber that falls
//! behind by more than the channel's capacity loses the oldest events (tokio's
//! broadcast `Lagged`), never slows the flock down.
//!
//! Every event carries the visibility of what it is about (an artifact's own, or,
//! for batches, runs and join groups, whoever may see every artifact in them: see
//! [`Visibility::derived_from`]), so a consumer serving several identities can show
//! each only what it may see.

use std::time::Duration;

use chrono::{DateTime, Utc};
use flock_core::{ArtifactId, FlushReason, Visibility};
use serde::Serialize;
use uuid::Uuid;

/// One thing that happened in a flock.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum FlockEvent {
    /// An artifact was accepted onto the blackboard (external, or an agent's output).
    ArtifactPublished {
        /// Its id.
        id: ArtifactId,
        /// Its type name.
        type_name: &'static str,
        /// The agent that produced it, or `external`.
        produced_by: String,
        /// Its correlation id.
        correlation_id: Option<Uuid>,
        /// When it was created.
        created_at: DateTime<Utc>,
        /// Who may see it.
        visibility: Visibility,
    },
    /// An item (an artifact, or a complete join group) joined a batch.
    BatchItemAdded {
        /// The agent.
        agent: String,
        /// The subscription's index in the agent's declaration order.
        subscription_index: usize,
        /// The batch's key, for keyed batches.
        key: Option<String>,
        /// Items in the batch now.
        collected: usize,
        /// The size that flushes it, if it has one.
        target: Option<usize>,
        /// Time until its timeout flushes it, if it has one (JSON: milliseconds).
        #[serde(rename = "time_left_ms", with = "millis::option")]
        time_left: Option<Duration>,
        /// Who may see the item added.
        visibility: Visibility,
    },
    /// A batch flushed: its run is counted and about to start.
    BatchFlushed {
        /// When it flushed, on the flock's clock.
        at: DateTime<Utc>,
        /// The agent.
        agent: String,
        /// The subscription's index.
        subscription_index: usize,
        /// The batch's key, for keyed batches.
        key: Option<String>,
        /// Why it flushed.
        reason: FlushReason,
        /// Items in it.
        size: usize,
        /// `size / configured size` (1.0 without a size).
        efficiency: f64,
        /// From its first item's arrival to the flush (JSON: milliseconds).
        #[serde(rename = "wait_ms", with = "millis")]
        wait: Duration,
        /// Whoever may see every item.
        visibility: Visibility,
    },
    /// A run started.
    RunStarted {
        /// Identifies the run within this flock.
        run: u64,
        /// The agent.
        agent: String,
        /// Input artifacts.
        inputs: usize,
        /// The flush reason, for a batch.
        flush_reason: Option<FlushReason>,
        /// Whoever may see every input.
        visibility: Visibility,
    },
    /// A run finished and its outputs are on the blackboard.
    RunFinished {
        /// The run.
        run: u64,
        /// The agent.
        agent: String,
        /// Outputs published.
        outputs: usize,
        /// Whoever may see every input.
        visibility: Visibility,
    },
    /// A run failed for good (or the circuit breaker refused it): its inputs are in
    /// a failed run.
    RunFailed {
        /// The run.
        run: u64,
        /// The agent.
        agent: String,
        /// The last error.
        error: String,
        /// The failed run's id (for `Flock::retry_failed_run`).
        failed_run: Uuid,
        /// Whoever may see every input.
        visibility: Visibility,
    },
    /// In a cluster: the run's unit moved to another process before it committed;
    /// that process runs the inputs.
    RunMoved {
        /// The run.
        run: u64,
        /// The agent.
        agent: String,
        /// Whoever may see every input.
        visibility: Visibility,
    },
    /// A join group completed.
    JoinCompleted {
        /// The agent.
        agent: String,
        /// The subscription's index.
        subscription_index: usize,
        /// The key the group formed by.
        key: String,
        /// Artifacts in the group.
        group_size: usize,
        /// Whoever may see every artifact of the group.
        visibility: Visibility,
    },
    /// An incomplete join group was discarded (window ended, or shutdown).
    JoinDiscarded {
        /// The agent.
        agent: String,
        /// The subscription's index.
        subscription_index: usize,
        /// The key.
        key: String,
        /// `window` or `shutdown`.
        reason: &'static str,
        /// Artifacts discarded.
        artifacts: usize,
        /// Whoever may see every artifact of the group.
        visibility: Visibility,
    },
}

impl FlockEvent {
    /// Who may see what the event is about.
    pub fn visibility(&self) -> &Visibility {
        match self {
            Self::ArtifactPublished { visibility, .. }
            | Self::BatchItemAdded { visibility, .. }
            | Self::BatchFlushed { visibility, .. }
            | Self::RunStarted { visibility, .. }
            | Self::RunFinished { visibility, .. }
            | Self::RunFailed { visibility, .. }
            | Self::RunMoved { visibility, .. }
            | Self::JoinCompleted { visibility, .. }
            | Self::JoinDiscarded { visibility, .. } => visibility,
        }
    }
}

mod millis {
    //! Durations as whole milliseconds, for JSON consumers.
    use std::time::Duration;

    use serde::Serializer;

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) mod option {
        use std::time::Duration;

        use serde::Serializer;

        pub(crate) fn serialize<S: Serializer>(
            d: &Option<Duration>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }
    }
}
