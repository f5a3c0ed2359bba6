//! The options of a publish, and what shutdown reports.

use std::collections::BTreeSet;

use flock_core::Visibility;
use flock_trace_duckdb::ExportReport;
use uuid::Uuid;

/// Options of one publish: metadata beyond the value.
#[derive(Debug, Clone, Default)]
pub struct PublishOptions {
    /// Correlation id (outputs of agents inherit it).
    pub correlation_id: Option<Uuid>,
    /// Partition key.
    pub partition_key: Option<String>,
    /// Tags.
    pub tags: BTreeSet<String>,
    /// Who may see the artifact (default: public).
    pub visibility: Visibility,
}

impl PublishOptions {
    /// Default options: public, no tags, no correlation id.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the correlation id.
    pub fn correlation_id(mut self, id: Uuid) -> Self {
        self.correlation_id = Some(id);
        self
    }

    /// Sets the partition key.
    pub fn partition_key(mut self, key: impl Into<String>) -> Self {
        self.partition_key = Some(key.into());
        self
    }

    /// Adds tags.
    pub fn tags<I, S>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tags.extend(tags.into_iter().map(Into::into));
        self
    }

    /// Sets the visibility.
    pub fn visibility(mut self, visibility: Visibility) -> Self {
        self.visibility = visibility;
        self
    }
}

/// What [`Flock::shutdown`](crate::Flock::shutdown) did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Partial batches flushed with reason `shutdown`.
    pub batches_flushed: usize,
    /// Artifacts in those batches.
    pub artifacts_flushed: usize,
    /// Artifacts whose `After` visibility had not begun: they stay on the blackboard
    /// but were never delivered to subscribers.
    pub deferred_undelivered: usize,
    /// Incomplete join groups discarded (each traced as a `join.discard` span with
    /// reason `shutdown`): an engine only ever receives complete groups. Their
    /// artifacts stay on the blackboard. Only with a store that is not durable.
    pub join_groups_discarded: usize,
    /// Artifacts in those groups.
    pub join_artifacts_discarded: usize,
    /// Incomplete join groups left unconsumed in a durable store: the next start
    /// (or, in a cluster, the units' next owners) collects them again, and they may
    /// still complete. Not traced as discards.
    pub join_groups_left: usize,
    /// Artifacts in those groups.
    pub join_artifacts_left: usize,
    /// What happened to the spans, when this flock traced into DuckDB (every
    /// pending span is flushed by the shutdown).
    pub traces: Option<ExportReport>,
}

/// What [`Flock::recover`](crate::Flock::recover) found in a durable store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// Artifacts collected again (each for the agents that had not consumed it).
    pub artifacts: usize,
    /// (artifact, agent) pairs collected again.
    pub deliveries: usize,
    /// Failed runs restored into [`Flock::failed_runs`](crate::Flock::failed_runs).
    pub failed_runs: usize,
}
