//! [`Flock`]: the blackboard and its agents, as applications drive it: publishing,
//! idling, shutting down, the failed runs, and queries.

use std::{fmt, path::PathBuf, sync::Arc};

use flock_core::{
    AgentIdentity, Artifact, ArtifactFilter, ArtifactId, BlackboardStore, FlockType, FlushReason,
    Payload, PublishError, StoreError, TypeRegistry,
};
use flock_trace_duckdb::TraceGuard;
use parking_lot::Mutex;
use uuid::Uuid;

use crate::{
    AgentBuilder, FlockBuilder,
    agent::Registrar,
    clock::Now,
    decision::{Phase, Source},
    failed::{FailedRun, RetryFailedRunError},
    options::{PublishOptions, RecoveryReport, ShutdownReport},
    runtime::Runtime,
};

/// The blackboard and its agents.
///
/// Cheap to clone: clones share one orchestrator.
///
/// ```
/// use std::{sync::Arc, time::Duration};
/// use flock::prelude::*;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let flock = Flock::new();
/// flock
///     .agent("simple_batch")
///     .consumes::<BatchItem>(Subscribe::new().batch(BatchSpec::size(3)))
///     .publishes::<BatchSummary>()
///     .with_engine(SimpleBatchEngine)
///     .register()?;
///
/// for value in 1..=3 {
///     flock.publish(BatchItem { value }).await?;
/// }
/// flock.run_until_idle().await;
///
/// let summaries = flock.get_by_type::<BatchSummary>().await?;
/// assert_eq!(summaries[0].values, vec![1, 2, 3]);
/// flock.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Flock {
    pub(crate) runtime: Arc<Runtime>,
    pub(crate) tracing: Arc<Tracing>,
}

/// The flock's guard on the trace pipeline, when it traces; released (after writing
/// every span that ended) by [`Flock::shutdown`].
pub(crate) struct Tracing {
    pub(crate) guard: Mutex<Option<TraceGuard>>,
    pub(crate) file: Option<PathBuf>,
}

impl fmt::Debug for Flock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let core = self.runtime.core();
        f.debug_struct("Flock")
            .field("agents", &core.agents().len())
            .field("quiet", &core.is_quiet())
            .field("phase", &core.phase())
            .finish_non_exhaustive()
    }
}

impl Default for Flock {
    fn default() -> Self {
        Self::new()
    }
}

impl Flock {
    /// A flock with the in-memory store.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// Configures a flock (store, …).
    pub fn builder() -> FlockBuilder {
        FlockBuilder::default()
    }

    /// Starts declaring an agent.
    pub fn agent(&self, name: impl Into<String>) -> AgentBuilder {
        AgentBuilder::new(self.runtime.clone(), name.into())
    }

    /// Registers an artifact type, so JSON can be published under its name before any
    /// agent consumes or publishes it.
    ///
    /// # Errors
    /// When another Rust type holds the name.
    pub fn register_type<T: FlockType>(&self) -> Result<(), flock_core::TypeConflict> {
        self.runtime.registry().register::<T>()
    }

    /// The type registry.
    pub fn types(&self) -> &TypeRegistry {
        self.runtime.registry()
    }

    // === publishing ===

    /// Publishes a typed value as an external, public artifact.
    ///
    /// # Errors
    /// [`PublishError::Closed`] after shutdown; a type name conflict; a store failure.
    pub async fn publish<T: FlockType>(&self, value: T) -> Result<ArtifactId, PublishError> {
        self.runtime.registry().register::<T>()?;
        let artifact = self.fresh(|| Payload::new(value), None);
        self.publish_fresh(artifact).await
    }

    /// Publishes a typed value with options (tags, correlation id, visibility, …).
    ///
    /// # Errors
    /// As [`Flock::publish`].
    pub async fn publish_with<T: FlockType>(
        &self,
        value: T,
        options: PublishOptions,
    ) -> Result<ArtifactId, PublishError> {
        self.runtime.registry().register::<T>()?;
        let artifact = self.fresh(|| Payload::new(value), Some(options));
        self.publish_fresh(artifact).await
    }

    /// Publishes JSON of the form `{"type": "TypeName", "payload": {...}}`.
    ///
    /// # Errors
    /// [`PublishError::MalformedEnvelope`], [`PublishError::UnknownType`] (naming the
    /// registered types), [`PublishError::InvalidPayload`] (naming the field serde
    /// rejected), and the errors of [`Flock::publish`].
    pub async fn publish_json(
        &self,
        envelope: serde_json::Value,
    ) -> Result<ArtifactId, PublishError> {
        let payload = self.runtime.registry().decode_envelope(envelope)?;
        self.publish_payload(payload, PublishOptions::default())
            .await
    }

    /// Publishes JSON text of the form `{"type": "TypeName", "payload": {...}}`.
    ///
    /// # Errors
    /// [`PublishError::MalformedEnvelope`] when the text is not JSON, and the errors
    /// of [`Flock::publish_json`].
    pub async fn publish_json_str(&self, text: &str) -> Result<ArtifactId, PublishError> {
        let envelope = serde_json::from_str(text).map_err(|e| PublishError::MalformedEnvelope {
            reason: format!("not valid JSON: {e}"),
        })?;
        self.publish_json(envelope).await
    }

    /// Publishes an erased payload with options.
    ///
    /// # Errors
    /// As [`Flock::publish`].
    pub async fn publish_payload(
        &self,
        payload: Payload,
        options: PublishOptions,
    ) -> Result<ArtifactId, PublishError> {
        let artifact = self.fresh(|| payload, Some(options));
        self.publish_fresh(artifact).await
    }

    /// A fresh artifact of `payload`, created now, with `options` (none: the
    /// defaults, which a new artifact has). Each publish builds its artifact itself
    /// before its one await, rather than through the publish calls below it: its
    /// future holds the value, not nested futures each holding it (and the options)
    /// again.
    ///
    /// The clock, the id and the producer's name come first, the payload's and the
    /// artifact's allocations last: the id's counter and the name's reference count
    /// are atomic operations, and each would wait for the writes into the fresh
    /// memory before it to leave the store buffer (benchmark 1: +5–11%,
    /// `docs/performance.md`).
    fn fresh(
        &self,
        payload: impl FnOnce() -> Payload,
        options: Option<PublishOptions>,
    ) -> (Arc<Artifact>, Now) {
        let now = self.runtime.now();
        let id = ArtifactId::at(now.wall);
        let produced_by = Artifact::external_producer();
        let mut artifact = Artifact::with_id(id, payload(), produced_by, now.wall);
        if let Some(options) = options {
            artifact.set_correlation_id(options.correlation_id);
            artifact.set_partition_key(options.partition_key);
            artifact.set_tags(options.tags);
            artifact.set_visibility(options.visibility);
        }
        (Arc::new(artifact), now)
    }

    /// Publishes an artifact `fresh` made, as an external publish.
    async fn publish_fresh(
        &self,
        (artifact, now): (Arc<Artifact>, Now),
    ) -> Result<ArtifactId, PublishError> {
        let id = artifact.id;
        self.runtime
            .publish(artifact, Source::External, now)
            .await?;
        Ok(id)
    }

    /// Publishes an artifact that already exists (forwarded from elsewhere, or taken
    /// from a failed run), keeping its id and metadata. It is an external publish:
    /// refused after shutdown and held to the admission bounds. An artifact is
    /// delivered to each agent at most once: if its id is already on the blackboard,
    /// the store refuses it and nobody receives it again.
    ///
    /// # Errors
    /// [`PublishError::Closed`] after shutdown; [`PublishError::Full`] at an
    /// admission bound with [`OnFull::Reject`](crate::OnFull::Reject);
    /// [`PublishError::Store`] with [`StoreError::Duplicate`] when the id is already
    /// stored; a type name conflict.
    pub async fn publish_artifact(&self, artifact: Arc<Artifact>) -> Result<(), PublishError> {
        self.runtime.ensure_recovered().await?;
        let now = self.runtime.now();
        self.runtime.publish(artifact, Source::External, now).await
    }

    // === idle and shutdown ===

    /// Waits until no agent run is scheduled or running, no batch is due, no publish
    /// is between its admission and its delivery, and no artifact hidden by `After`
    /// visibility has become visible undelivered.
    ///
    /// Partial batches whose deadline has not come stay pending (they still flush at
    /// their deadline while the flock lives), as do artifacts whose visibility begins
    /// later (they are delivered when it begins). Returns as soon as the system is
    /// quiescent; it never sleeps a fixed interval.
    pub async fn run_until_idle(&self) {
        self.recovered().await;
        // In a cluster, first read the feed up to what the store holds now.
        self.runtime.wait_fed().await;
        self.runtime.wait_idle().await;
    }

    /// With a durable store (SQLite, PostgreSQL): collects again what the agents
    /// had not consumed when the previous process stopped, in original arrival order
    /// with deadlines counted from the original arrivals, and restores the failed
    /// runs. Register every agent first. The flock does this by itself before its
    /// first publish, `run_until_idle`, flush or shutdown; call it to get the
    /// report, or to recover before traffic starts. Later calls return the first
    /// report. With a store that is not durable it does nothing.
    ///
    /// # Errors
    /// A store failure; the next call tries again.
    pub async fn recover(&self) -> Result<RecoveryReport, StoreError> {
        self.runtime.recover().await
    }

    /// Recovers first where needed; a failure is logged (the calls that wait for
    /// the flock have no error to return it in) and retried by the next call.
    pub(crate) async fn recovered(&self) {
        if let Err(error) = self.runtime.ensure_recovered().await {
            tracing::error!(%error, "recovery from the durable store failed; it is tried again on the next call");
        }
    }

    /// Flushes, with reason `timeout`, every batch whose deadline has passed; returns
    /// how many flushed. The runtime does this by itself at each deadline; call it in
    /// tests or for manual control.
    pub async fn check_batch_timeouts(&self) -> usize {
        self.recovered().await;
        self.runtime.tick()
    }

    /// Flushes every partial batch now, with reason `manual`; returns how many flushed.
    /// Incomplete join groups are not batches: they keep waiting for their partners.
    pub async fn flush_batches(&self) -> usize {
        self.recovered().await;
        self.runtime.flush_all(FlushReason::Manual).0
    }

    /// Stops accepting external publishes, flushes every partial batch with reason
    /// `shutdown`, and waits until every run (and every run those trigger) finished.
    ///
    /// A publish racing it either fails with [`PublishError::Closed`] or is delivered
    /// before this returns. Nothing waiting in a batch is lost; completed join groups
    /// waiting in a batch flush with it. Then incomplete join groups, which no engine
    /// may receive, are discarded, each traced as a `join.discard` span (reason
    /// `shutdown`) and counted in the report; with a durable store they are left
    /// instead (counted too): their artifacts are unconsumed, so the next start, or
    /// in a cluster the units' next owners, collects them again and the groups may
    /// still complete. Artifacts whose `After` visibility had not begun when shutdown
    /// started stay on the blackboard (counted). Calling it again is harmless.
    pub async fn shutdown(&self) -> ShutdownReport {
        self.recovered().await;
        let ((batches, artifacts), drained) = self.runtime.shutdown().await;
        let mut report = ShutdownReport {
            batches_flushed: batches,
            artifacts_flushed: artifacts,
            deferred_undelivered: drained.deferred_undelivered,
            join_groups_discarded: drained.discarded.len(),
            join_artifacts_discarded: drained.discarded.iter().map(|(_, d)| d.items.len()).sum(),
            join_groups_left: drained.left.0,
            join_artifacts_left: drained.left.1,
            traces: None,
        };
        if report.deferred_undelivered > 0 {
            tracing::warn!(
                artifacts = report.deferred_undelivered,
                "shutdown with artifacts whose visibility had not begun; they stay on the blackboard undelivered"
            );
        }
        if let Some(membership) = self.runtime.membership() {
            // The units go to the other processes at once, not when the leases
            // lapse; no late balance takes them back.
            self.runtime.leave_cluster().await;
            let process = &membership.config.process;
            if let Err(error) = membership.config.store.release(process).await {
                tracing::warn!(%process, %error, "could not release the cluster leases; they lapse by themselves");
            }
        }
        self.runtime.terminate_agents().await;
        let guard = self.tracing.guard.lock().take();
        if let Some(guard) = guard {
            report.traces = crate::tracing_setup::finish(guard).await;
        }
        report
    }

    /// Live events from now on: artifacts published, batches filling and flushing,
    /// runs starting, finishing and failing, join groups completing and discarded.
    /// See [`FlockEvent`](crate::FlockEvent).
    ///
    /// The flock builds events only once this has been called; a receiver that
    /// falls more than 16,384 events behind loses the oldest (it gets
    /// `RecvError::Lagged`), without slowing the flock down.
    pub fn events(&self) -> tokio::sync::broadcast::Receiver<crate::FlockEvent> {
        self.runtime.subscribe()
    }

    /// In a cluster: the units this process owns now, as
    /// `agent/subscription[/partition]`, sorted (empty outside a cluster).
    pub fn owned_units(&self) -> Vec<String> {
        match self.runtime.membership() {
            Some(membership) => membership.owned_names(&self.runtime.agents()),
            None => Vec::new(),
        }
    }

    // === failed runs ===

    /// The runs that failed for good or that a circuit breaker refused, oldest first,
    /// with their inputs: the dead letters. Nothing an agent could not process is
    /// lost; it is here until [taken](Flock::take_failed_runs) or
    /// [retried](Flock::retry_failed_run).
    pub fn failed_runs(&self) -> Vec<FailedRun> {
        self.runtime.failed().clone()
    }

    /// Removes and returns every failed run. With a durable store they stay in the
    /// store, and a restarted flock restores them; retry them to be done with them.
    pub fn take_failed_runs(&self) -> Vec<FailedRun> {
        std::mem::take(&mut *self.runtime.failed())
    }

    /// Runs a failed run again: the same agent, the same inputs (a batch stays one
    /// batch, with its flush reason), under the agent's retry policy and circuit
    /// breaker. The entry leaves the failed runs; if the run fails again, a new entry
    /// appears. Other agents do not see the inputs again. A durable store forgets
    /// the entry only in the retry's own commit (its outputs, or its new failure):
    /// if the process dies during the retry, the next start restores the entry.
    ///
    /// # Errors
    /// [`RetryFailedRunError::NotFound`] for an unknown id (or one already retried),
    /// [`RetryFailedRunError::Closed`] after shutdown, and in a cluster
    /// [`RetryFailedRunError::Moved`] when the run's unit is no longer this
    /// process's.
    pub async fn retry_failed_run(&self, id: Uuid) -> Result<(), RetryFailedRunError> {
        self.recovered().await;
        if self.runtime.core().phase() != Phase::Open {
            return Err(RetryFailedRunError::Closed(id));
        }
        let run = {
            let mut failed = self.runtime.failed();
            let index = failed
                .iter()
                .position(|r| r.id == id)
                .ok_or(RetryFailedRunError::NotFound(id))?;
            if !self.runtime.owns_failed_run(&failed[index]) {
                return Err(RetryFailedRunError::Moved(id));
            }
            failed.remove(index)
        };
        let agent = run.agent_ref.index;
        if self.runtime.run_again(agent, run.work.clone(), id) {
            Ok(())
        } else {
            // Shut down: the entry stays where it was found.
            self.runtime.failed().push(run);
            Err(RetryFailedRunError::Closed(id))
        }
    }

    // === queries ===

    /// The file this flock traces into, if it traces.
    pub fn trace_file(&self) -> Option<&std::path::Path> {
        self.tracing.file.as_deref()
    }

    /// The artifact with this id.
    ///
    /// # Errors
    /// A store failure.
    pub async fn get(&self, id: ArtifactId) -> Result<Option<Arc<Artifact>>, StoreError> {
        self.runtime.store().get(id).await
    }

    /// Every value of type `T` on the blackboard, oldest first.
    ///
    /// # Errors
    /// A store failure.
    pub async fn get_by_type<T: FlockType>(&self) -> Result<Vec<Arc<T>>, StoreError> {
        Ok(self
            .runtime
            .store()
            .list_by_type(T::TYPE_NAME)
            .await?
            .iter()
            .filter_map(|a| a.payload.downcast_arc::<T>())
            .collect())
    }

    /// The artifacts matching `filter`, oldest first.
    ///
    /// # Errors
    /// A store failure.
    pub async fn query(&self, filter: &ArtifactFilter) -> Result<Vec<Arc<Artifact>>, StoreError> {
        self.runtime.store().query(filter).await
    }

    /// The artifacts `identity` may see among those matching `filter`.
    ///
    /// # Errors
    /// A store failure.
    pub async fn query_as(
        &self,
        identity: &AgentIdentity,
        filter: ArtifactFilter,
    ) -> Result<Vec<Arc<Artifact>>, StoreError> {
        let now = self.runtime.now().wall;
        self.runtime
            .store()
            .query(&filter.visible_to(identity.clone()).as_of(now))
            .await
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn BlackboardStore> {
        self.runtime.store()
    }
}
