//! Inspection: the batches collecting and the join groups waiting, as
//! [`Flock::active_batches`] and [`Flock::pending_joins`] report them, and the
//! figures an operator watches (runs in flight, admission rejections, span export).

use std::time::Duration;

use chrono::{DateTime, Utc};
use flock_core::Visibility;
use flock_subscription::BatchSpec;
use flock_trace_duckdb::ExportStats;
use uuid::Uuid;

use crate::{AdmissionCounts, Flock, spans::per_type};

/// A batch still collecting, as [`Flock::active_batches`] reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveBatch {
    /// The agent.
    pub agent: String,
    /// The subscription's index in the agent's declaration order.
    pub subscription_index: usize,
    /// Items waiting: artifacts, or complete groups for a join subscription.
    pub items_waiting: usize,
    /// When the first item arrived.
    pub created_at: DateTime<Utc>,
    /// The spec.
    pub spec: BatchSpec,
    /// Time until the timeout flushes the batch (`None` without a timeout).
    pub time_left: Option<Duration>,
    /// The batch's key, for keyed batches (`Subscribe::keyed_by`), as text.
    pub key: Option<String>,
    /// Whoever may see every artifact waiting in the batch (see
    /// [`Visibility::derived_from`]): what a server shows an identity only when
    /// the identity may see all of it.
    pub visibility: Visibility,
}

/// An incomplete join group, as [`Flock::pending_joins`] reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingJoin {
    /// The agent.
    pub agent: String,
    /// The subscription's index in the agent's declaration order.
    pub subscription_index: usize,
    /// The key the group formed by.
    pub key: String,
    /// Types present in the group, with how many of each.
    pub present: Vec<(&'static str, usize)>,
    /// Types still missing, with how many of each.
    pub missing: Vec<(&'static str, usize)>,
    /// Artifacts waiting under the key, surplus duplicates included.
    pub waiting: usize,
    /// Arrival of the group's oldest artifact.
    pub created_at: DateTime<Utc>,
    /// Time until a time window discards the group.
    pub time_left: Option<Duration>,
    /// Artifacts the subscription may still accept before a count window discards
    /// the group.
    pub artifacts_left: Option<u64>,
    /// Whoever may see every artifact waiting under the key (see
    /// [`Visibility::derived_from`]).
    pub visibility: Visibility,
}

impl Flock {
    /// The batches still collecting, oldest first.
    pub fn active_batches(&self) -> Vec<ActiveBatch> {
        let runtime = &self.runtime;
        let now = runtime.now();
        let core = runtime.core();
        core.pending_batches(now)
            .into_iter()
            .map(|p| ActiveBatch {
                agent: core.agents()[p.key.agent as usize].name.to_string(),
                subscription_index: p.key.subscription as usize,
                items_waiting: p.items,
                created_at: runtime.clock().wall_at(p.first_arrival),
                spec: p.spec,
                time_left: p.time_left,
                key: p.key.partition.as_ref().map(ToString::to_string),
                visibility: core.batch_visibility(&p.key),
            })
            .collect()
    }

    /// What the admission bounds count now (`None` without bounds): units waiting
    /// for their run, in all and per subscription.
    pub fn admission_counts(&self) -> Option<AdmissionCounts> {
        self.runtime.core().admission_counts()
    }

    /// The incomplete groups of AND gates and joins, oldest first.
    pub fn pending_joins(&self) -> Vec<PendingJoin> {
        let runtime = &self.runtime;
        let now = runtime.now();
        let core = runtime.core();
        core.pending_groups(now)
            .into_iter()
            .map(|p| {
                let agent = &core.agents()[p.pool.agent as usize];
                let subscription = &agent.subscriptions[p.pool.subscription as usize];
                PendingJoin {
                    agent: agent.name.to_string(),
                    subscription_index: p.pool.subscription as usize,
                    key: p.key.to_string(),
                    present: per_type(subscription, &p.present),
                    missing: per_type(subscription, &p.missing),
                    waiting: p.waiting,
                    created_at: runtime.clock().wall_at(p.first_arrival),
                    time_left: p.time_left,
                    artifacts_left: p.artifacts_left,
                    visibility: core.group_visibility(&p.pool, &p.key),
                }
            })
            .collect()
    }

    /// Artifacts with this correlation id still waiting in batches and join groups:
    /// work the flock has not handed to an engine yet.
    pub fn waiting_with_correlation(&self, correlation_id: Uuid) -> usize {
        let now = self.runtime.now();
        self.runtime
            .core()
            .waiting_with_correlation(correlation_id, now)
    }

    /// The flock's wall clock: the UTC time artifacts are stamped with and
    /// visibility is judged at (one reading advanced by the monotonic clock, so it
    /// follows tokio's paused clock in tests).
    pub fn now(&self) -> DateTime<Utc> {
        self.runtime.now().wall
    }

    /// Runs scheduled and not finished: running, waiting for one of their agent's
    /// slots, or refused by a circuit breaker and not yet recorded.
    pub fn runs_in_flight(&self) -> usize {
        self.runtime.core().live_runs()
    }

    /// External publishes refused at an admission bound (with
    /// [`OnFull::Reject`](crate::OnFull::Reject)) since the flock started.
    pub fn admission_rejections(&self) -> u64 {
        self.runtime.rejected()
    }

    /// What the DuckDB trace export has done so far (spans written, spans of failed
    /// exports), while the flock traces; `None` without traces or after shutdown
    /// (whose [`ShutdownReport::traces`](crate::ShutdownReport::traces) has the final
    /// figures).
    pub fn trace_stats(&self) -> Option<ExportStats> {
        self.tracing
            .guard
            .lock()
            .as_ref()
            .map(|guard| guard.stats())
    }
}
