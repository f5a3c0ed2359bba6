//! The orchestrator: publishing, matching, batching, scheduling runs, idling and
//! shutting down.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    fmt,
    sync::{
        Arc, Weak,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, TimeDelta, Utc};
use flock_batch::{Batch, Batcher, DiscardReason, Discarded, JoinShape, Joiner};
use flock_core::{
    AgentIdentity, Artifact, ArtifactFilter, ArtifactId, BlackboardStore, FlockType, FlushReason,
    InMemoryStore, Payload, PublishError, StoreError, TypeRegistry, Visibility,
};
use flock_subscription::{BatchSpec, JoinKey, MatchOutcome, Subscription};
use flock_trace_duckdb::{ExportReport, TraceConfig, TraceError, TraceGuard};
use parking_lot::{Mutex, RwLock};
use rustc_hash::FxHashMap;
use tokio::{
    sync::{Notify, OwnedSemaphorePermit},
    time::Instant,
};
use tracing::Instrument;
use uuid::Uuid;

use crate::{
    AgentBuilder, RegistrationError,
    admission::{Admission, OnFull},
    agent::Agent,
    failed::{FailedRun, FailureKind, RetryFailedRunError},
    run::{self, Flushed, Unit, Work},
    tracing_setup::{self, TraceChoice},
};

/// Identifies one batch accumulator (and one join pool): an agent, one of its
/// subscriptions, and for keyed batches the key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct BatchKey {
    pub(crate) agent: u32,
    pub(crate) subscription: u32,
    /// The batch key of a keyed subscription (`Subscribe::keyed_by`).
    pub(crate) partition: Option<JoinKey>,
}

/// Where artifacts of one type go: an agent's subscription.
#[derive(Clone)]
struct Route {
    agent_index: u32,
    agent: Arc<Agent>,
    subscription: u32,
}

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
}

/// What [`Flock::shutdown`] did.
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
    /// artifacts stay on the blackboard.
    pub join_groups_discarded: usize,
    /// Artifacts in those groups.
    pub join_artifacts_discarded: usize,
    /// What happened to the spans, when this flock traced into DuckDB (every
    /// pending span is flushed by the shutdown).
    pub traces: Option<ExportReport>,
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
}

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
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for Flock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Flock")
            .field("agents", &self.shared.agents.read().len())
            .field(
                "runs_in_flight",
                &self.shared.in_flight.load(Ordering::Acquire),
            )
            .field("closed", &self.shared.closed.load(Ordering::Acquire))
            .finish_non_exhaustive()
    }
}

impl Default for Flock {
    fn default() -> Self {
        Self::new()
    }
}

/// Configures a [`Flock`] before it starts.
#[derive(Default)]
#[must_use = "call .build() to get the Flock"]
pub struct FlockBuilder {
    store: Option<Arc<dyn BlackboardStore>>,
    trace: TraceChoice,
    admission: Admission,
}

impl fmt::Debug for FlockBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlockBuilder")
            .field("custom_store", &self.store.is_some())
            .field("trace", &self.trace)
            .finish()
    }
}

impl FlockBuilder {
    /// Uses another blackboard store than the in-memory one.
    pub fn store(mut self, store: Arc<dyn BlackboardStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Traces every flush, run and publish into a DuckDB file (table `spans`,
    /// queryable with SQL) and/or an OTLP collector. Joins the pipeline already
    /// writing that file in this process; uses the application's `tracing`
    /// subscriber when it includes the pipeline's layer, and installs a global one
    /// only when none is set (see `flock::trace`).
    ///
    /// Without this call, tracing follows the environment: `FLOCK_TRACE_FILE=true`
    /// writes `.flock/traces.duckdb`, `FLOCK_TRACE_FILE=<path>` another file,
    /// `FLOCK_TRACE_TTL_DAYS=N` deletes spans older than N days at start, and with
    /// the `otlp` feature the standard `OTEL_EXPORTER_OTLP_*` variables send spans
    /// to a collector.
    ///
    /// ```no_run
    /// # #[cfg(feature = "duckdb-prebuilt")] {
    /// use flock::{Flock, TraceConfig};
    ///
    /// let flock = Flock::builder()
    ///     .trace(TraceConfig::new(".flock/traces.duckdb").service_name("payments"))
    ///     .try_build()?;
    /// # }
    /// # Ok::<(), flock::TraceError>(())
    /// ```
    pub fn trace(mut self, config: TraceConfig) -> Self {
        self.trace = TraceChoice::On(config);
        self
    }

    /// Bounds the items waiting in batches; see [`Admission`] (default: unbounded).
    pub fn admission(mut self, admission: Admission) -> Self {
        self.admission = admission;
        self
    }

    /// Sets up no tracing, whatever the environment says. The flock's spans still
    /// go to whatever `tracing` subscriber the application set (which may include
    /// [`TraceGuard::layer`]).
    pub fn no_trace(mut self) -> Self {
        self.trace = TraceChoice::Off;
        self
    }

    /// The configured flock. When tracing cannot start (an unwritable directory, a
    /// file that is not DuckDB, a subscriber that does not feed the pipeline), the
    /// error is printed to stderr and the flock runs without traces; use
    /// [`FlockBuilder::try_build`] to treat that as an error instead.
    pub fn build(self) -> Flock {
        let (flock, error) = self.assemble();
        if let Some(error) = error {
            eprintln!("flock: tracing into DuckDB is off: {error}");
            tracing::error!(%error, "tracing into DuckDB is off");
        }
        flock
    }

    /// The configured flock, or the reason tracing could not start.
    ///
    /// # Errors
    /// [`TraceError`] when tracing was asked for (by [`FlockBuilder::trace`] or the
    /// environment) and could not be installed.
    pub fn try_build(self) -> Result<Flock, TraceError> {
        match self.assemble() {
            (_, Some(error)) => Err(error),
            (flock, None) => Ok(flock),
        }
    }

    fn assemble(self) -> (Flock, Option<TraceError>) {
        let (guard, error) = tracing_setup::start(self.trace);
        let (store, memory) = match self.store {
            Some(store) => (store, None),
            None => {
                let memory = Arc::new(InMemoryStore::new());
                (memory.clone() as Arc<dyn BlackboardStore>, Some(memory))
            }
        };
        let flock = Flock {
            shared: Arc::new(Shared {
                store,
                memory,
                registry: TypeRegistry::new(),
                agents: RwLock::new(Vec::new()),
                routes: RwLock::new(FxHashMap::default()),
                batcher: Mutex::new(Batcher::new()),
                admission: self.admission.is_bounded().then_some(self.admission),
                waiting_per_subscription: Mutex::new(HashMap::new()),
                admission_room: Notify::new(),
                joiner: Mutex::new(Joiner::new()),
                timer: Arc::new(Notify::new()),
                timer_started: AtomicBool::new(false),
                in_flight: AtomicUsize::new(0),
                idle: Notify::new(),
                closed: AtomicBool::new(false),
                drained: AtomicBool::new(false),
                failed: Mutex::new(Vec::new()),
                clock: RuntimeClock::new(),
                deferred: Mutex::new(BTreeMap::new()),
                deferred_seq: AtomicU64::new(0),
                trace_file: guard.as_ref().and_then(|g| g.path()).map(ToOwned::to_owned),
                trace: Mutex::new(guard),
            }),
        };
        (flock, error)
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
        AgentBuilder::new(self.clone(), name.into())
    }

    /// Registers an artifact type, so JSON can be published under its name before any
    /// agent consumes or publishes it.
    ///
    /// # Errors
    /// When another Rust type holds the name.
    pub fn register_type<T: FlockType>(&self) -> Result<(), flock_core::TypeConflict> {
        self.shared.registry.register::<T>()
    }

    /// The type registry.
    pub fn types(&self) -> &TypeRegistry {
        &self.shared.registry
    }

    /// Publishes a typed value as an external, public artifact.
    ///
    /// # Errors
    /// [`PublishError::Closed`] after shutdown; a type name conflict; a store failure.
    pub async fn publish<T: FlockType>(&self, value: T) -> Result<ArtifactId, PublishError> {
        self.publish_with(value, PublishOptions::default()).await
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
        self.shared.registry.register::<T>()?;
        self.publish_payload(Payload::new(value), options).await
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
        let payload = self.shared.registry.decode_envelope(envelope)?;
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
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(PublishError::Closed);
        }
        let mut artifact = Artifact::new_at(
            payload,
            Artifact::external_producer(),
            self.shared.clock.now(),
        );
        artifact.correlation_id = options.correlation_id;
        artifact.partition_key = options.partition_key;
        artifact.tags = options.tags;
        artifact.visibility = options.visibility;
        let id = artifact.id;
        if let Some(admission) = self.shared.admission {
            self.shared.admit(&artifact, admission).await?;
        }
        self.shared.publish_artifact(Arc::new(artifact)).await?;
        Ok(id)
    }

    /// Waits until no agent run is scheduled or running, no batch is due, and no
    /// artifact hidden by `After` visibility has become visible undelivered.
    ///
    /// Partial batches whose deadline has not come stay pending (they still flush at
    /// their deadline while the flock lives), as do artifacts whose visibility begins
    /// later (they are delivered when it begins). Returns as soon as the system is
    /// quiescent; it never sleeps a fixed interval.
    pub async fn run_until_idle(&self) {
        self.shared.wait_idle().await;
    }

    /// Flushes, with reason `timeout`, every batch whose deadline has passed; returns
    /// how many flushed. The runtime does this by itself at each deadline; call it in
    /// tests or for manual control.
    pub async fn check_batch_timeouts(&self) -> usize {
        self.shared.flush_due()
    }

    /// Flushes every partial batch now, with reason `manual`; returns how many flushed.
    /// Incomplete join groups are not batches: they keep waiting for their partners.
    pub async fn flush_batches(&self) -> usize {
        self.shared.flush_all(FlushReason::Manual).0
    }

    /// The batches still collecting, oldest first.
    pub fn active_batches(&self) -> Vec<ActiveBatch> {
        let now = Instant::now().into_std();
        let pending = self.shared.batcher.lock().pending(now);
        let agents = self.shared.agents.read();
        pending
            .into_iter()
            .map(|p| ActiveBatch {
                agent: agents[p.key.agent as usize].name.to_string(),
                subscription_index: p.key.subscription as usize,
                items_waiting: p.items,
                created_at: p.created_at,
                spec: p.spec,
                time_left: p.time_left,
                key: p.key.partition.as_ref().map(ToString::to_string),
            })
            .collect()
    }

    /// The incomplete groups of AND gates and joins, oldest first.
    pub fn pending_joins(&self) -> Vec<PendingJoin> {
        let now = Instant::now().into_std();
        let wall_now = self.shared.clock.now();
        let pending = self.shared.joiner.lock().pending(now);
        let agents = self.shared.agents.read();
        pending
            .into_iter()
            .map(|p| {
                let subscription =
                    &agents[p.pool.agent as usize].subscriptions[p.pool.subscription as usize];
                let age = now.saturating_duration_since(p.first_arrival);
                PendingJoin {
                    agent: agents[p.pool.agent as usize].name.to_string(),
                    subscription_index: p.pool.subscription as usize,
                    key: p.key.to_string(),
                    present: per_type(subscription, &p.present),
                    missing: per_type(subscription, &p.missing),
                    waiting: p.waiting,
                    created_at: wall_now - TimeDelta::from_std(age).unwrap_or(TimeDelta::MAX),
                    time_left: p.time_left,
                    artifacts_left: p.artifacts_left,
                }
            })
            .collect()
    }

    /// Stops accepting external publishes, flushes every partial batch with reason
    /// `shutdown`, and waits until every run (and every run those trigger) finished.
    /// Nothing waiting in a batch is lost; completed join groups waiting in a batch
    /// flush with it. Then incomplete join groups, which no engine may receive, are
    /// discarded, each traced as a `join.discard` span (reason `shutdown`) and counted
    /// in the report; their artifacts stay on the blackboard. Calling it again is
    /// harmless.
    pub async fn shutdown(&self) -> ShutdownReport {
        self.shared.closed.store(true, Ordering::Release);
        // Publishers waiting for room get `PublishError::Closed`.
        self.shared.admission_room.notify_waiters();
        let mut report = ShutdownReport::default();
        loop {
            self.shared.wait_idle().await;
            let (batches, artifacts) = self.shared.flush_all(FlushReason::Shutdown);
            if batches == 0 {
                break;
            }
            report.batches_flushed += batches;
            report.artifacts_flushed += artifacts;
        }
        self.shared.drained.store(true, Ordering::Release);
        let now = Instant::now().into_std();
        let incomplete = self
            .shared
            .joiner
            .lock()
            .drain(DiscardReason::Shutdown, now);
        report.join_groups_discarded = incomplete.len();
        report.join_artifacts_discarded = incomplete.iter().map(|d| d.items.len()).sum();
        if !incomplete.is_empty() {
            let agents = self.shared.agents.read().clone();
            for discarded in incomplete {
                trace_discard(&agents[discarded.pool.agent as usize], &discarded);
            }
        }
        report.deferred_undelivered = self.shared.deferred.lock().len();
        if report.deferred_undelivered > 0 {
            tracing::warn!(
                artifacts = report.deferred_undelivered,
                "shutdown with artifacts whose visibility had not begun; they stay on the blackboard undelivered"
            );
        }
        self.shared.timer.notify_one();
        self.shared.terminate_agents().await;
        let guard = self.shared.trace.lock().take();
        if let Some(guard) = guard {
            report.traces = tracing_setup::finish(guard).await;
        }
        report
    }

    /// The runs that failed for good or that a circuit breaker refused, oldest first,
    /// with their inputs: the dead letters. Nothing an agent could not process is
    /// lost; it is here until [taken](Flock::take_failed_runs) or
    /// [retried](Flock::retry_failed_run).
    pub fn failed_runs(&self) -> Vec<FailedRun> {
        self.shared.failed.lock().clone()
    }

    /// Removes and returns every failed run.
    pub fn take_failed_runs(&self) -> Vec<FailedRun> {
        std::mem::take(&mut *self.shared.failed.lock())
    }

    /// Runs a failed run again: the same agent, the same inputs (a batch stays one
    /// batch, with its flush reason), under the agent's retry policy and circuit
    /// breaker. The entry leaves the failed runs; if the run fails again, a new entry
    /// appears. Other agents do not see the inputs again.
    ///
    /// # Errors
    /// [`RetryFailedRunError::NotFound`] for an unknown id (or one already retried),
    /// [`RetryFailedRunError::Closed`] after shutdown.
    pub async fn retry_failed_run(&self, id: Uuid) -> Result<(), RetryFailedRunError> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(RetryFailedRunError::Closed(id));
        }
        let run = {
            let mut failed = self.shared.failed.lock();
            let index = failed
                .iter()
                .position(|r| r.id == id)
                .ok_or(RetryFailedRunError::NotFound(id))?;
            failed.remove(index)
        };
        self.shared.schedule(run.agent_ref, run.work);
        Ok(())
    }

    /// Publishes an artifact that already exists (forwarded from elsewhere, or taken
    /// from a failed run), keeping its id and metadata. An artifact is delivered to
    /// each agent at most once: if its id is already on the blackboard, the store
    /// refuses it and nobody receives it again.
    ///
    /// # Errors
    /// [`PublishError::Closed`] after shutdown; [`PublishError::Store`] with
    /// [`StoreError::Duplicate`] when the id is already stored; a type name conflict.
    pub async fn publish_artifact(&self, artifact: Arc<Artifact>) -> Result<(), PublishError> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(PublishError::Closed);
        }
        self.shared.publish_artifact(artifact).await
    }

    /// The file this flock traces into, if it traces.
    pub fn trace_file(&self) -> Option<&std::path::Path> {
        self.shared.trace_file.as_deref()
    }

    /// The artifact with this id.
    ///
    /// # Errors
    /// A store failure.
    pub async fn get(&self, id: ArtifactId) -> Result<Option<Arc<Artifact>>, StoreError> {
        self.shared.store.get(id).await
    }

    /// Every value of type `T` on the blackboard, oldest first.
    ///
    /// # Errors
    /// A store failure.
    pub async fn get_by_type<T: FlockType>(&self) -> Result<Vec<Arc<T>>, StoreError> {
        Ok(self
            .shared
            .store
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
        self.shared.store.query(filter).await
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
        self.shared
            .store
            .query(
                &filter
                    .visible_to(identity.clone())
                    .as_of(self.shared.clock.now()),
            )
            .await
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn BlackboardStore> {
        &self.shared.store
    }
}

// === impl Shared ===

pub(crate) struct Shared {
    pub(crate) store: Arc<dyn BlackboardStore>,
    /// The store again, when it is the in-memory default (the publish fast path).
    memory: Option<Arc<InMemoryStore>>,
    pub(crate) registry: TypeRegistry,
    agents: RwLock<Vec<Arc<Agent>>>,
    /// Type name → subscriptions consuming it, in agent registration then declaration order.
    routes: RwLock<FxHashMap<&'static str, Vec<Route>>>,
    batcher: Mutex<Batcher<BatchKey, Unit>>,
    /// Bounds on waiting items, when configured.
    admission: Option<Admission>,
    /// Items waiting per (agent, subscription); kept only with admission bounds.
    waiting_per_subscription: Mutex<HashMap<(u32, u32), usize>>,
    /// Signalled after flushes, for publishers waiting for room.
    admission_room: Notify,
    /// Incomplete groups of AND gates and joins, per (agent, subscription) and key.
    joiner: Mutex<Joiner<BatchKey, JoinKey, Arc<Artifact>>>,
    /// Wakes the deadline task to re-arm (an earlier deadline, or shutdown).
    timer: Arc<Notify>,
    timer_started: AtomicBool,
    /// Runs scheduled and not yet finished.
    in_flight: AtomicUsize,
    idle: Notify,
    closed: AtomicBool,
    /// Set once `shutdown` has flushed the last batch and no run is left: nothing can
    /// start a batch or a join group any more, so the deadline task ends.
    drained: AtomicBool,
    /// Dead letters: runs given up, oldest first.
    failed: Mutex<Vec<FailedRun>>,
    pub(crate) clock: RuntimeClock,
    /// Artifacts hidden by `After` visibility, to dispatch when they become visible:
    /// (monotonic instant, sequence) → artifact.
    deferred: Mutex<BTreeMap<(std::time::Instant, u64), Arc<Artifact>>>,
    deferred_seq: AtomicU64,
    /// The DuckDB trace pipeline, when tracing; shut down (flushed) by `shutdown()`.
    trace: Mutex<Option<TraceGuard>>,
    trace_file: Option<std::path::PathBuf>,
}

/// The runtime's wall clock: a UTC reading taken once, advanced by the monotonic
/// (tokio) clock. Visibility deadlines and `created_at` use it, so they agree with
/// batch deadlines, also on tokio's paused clock in tests.
pub(crate) struct RuntimeClock {
    wall: DateTime<Utc>,
    mono: Instant,
}

impl RuntimeClock {
    fn new() -> Self {
        Self {
            wall: Utc::now(),
            mono: Instant::now(),
        }
    }

    /// Now, in UTC.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        let elapsed = Instant::now().saturating_duration_since(self.mono);
        self.wall + TimeDelta::from_std(elapsed).unwrap_or(TimeDelta::MAX)
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let waiting = self.batcher.get_mut().waiting();
        if waiting > 0 {
            tracing::error!(
                artifacts = waiting,
                "flock dropped with artifacts waiting in batches; call Flock::shutdown() to flush them"
            );
        }
        let joining = self.joiner.get_mut().waiting();
        if joining > 0 {
            tracing::warn!(
                artifacts = joining,
                "flock dropped with incomplete join groups; call Flock::shutdown() to discard them traced"
            );
        }
        // Let the deadline task see that the flock is gone.
        self.timer.notify_one();
    }
}

impl Shared {
    pub(crate) fn register(&self, agent: Agent) -> Result<(), RegistrationError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(RegistrationError::Closed(agent.name.to_string()));
        }
        let mut agents = self.agents.write();
        if agents.iter().any(|a| a.name == agent.name) {
            return Err(RegistrationError::DuplicateAgent(agent.name.to_string()));
        }
        if let Some(admission) = self.admission {
            check_admission(&admission, &agents, &agent)?;
        }
        let agent = Arc::new(agent);
        let agent_index = u32::try_from(agents.len()).expect("fewer than 2^32 agents");
        let mut routes = self.routes.write();
        for (index, subscription) in agent.subscriptions.iter().enumerate() {
            for slot in subscription.slots() {
                routes.entry(slot.type_name).or_default().push(Route {
                    agent_index,
                    agent: agent.clone(),
                    subscription: u32::try_from(index).expect("fewer than 2^32 subscriptions"),
                });
            }
        }
        agents.push(agent);
        Ok(())
    }

    /// Stores an artifact and hands it to every matching subscription.
    pub(crate) async fn publish_artifact(
        self: &Arc<Self>,
        artifact: Arc<Artifact>,
    ) -> Result<(), PublishError> {
        match &self.memory {
            // The default store: no boxed future per publish.
            Some(memory) => memory.insert(artifact.clone())?,
            None => self.store.publish(artifact.clone()).await?,
        }
        self.dispatch(&artifact);
        // A publishing loop that never waits would otherwise starve the runs it
        // schedules on the same thread (a current-thread runtime): they and their
        // batches pile up until the loop ends. Every so often (tokio's cooperative
        // budget), yield to them.
        tokio::task::consume_budget().await;
        Ok(())
    }

    /// Matching order per agent and subscription: self-trigger prevention →
    /// visibility → type, producer, tags, predicates → join / AND-gate collection →
    /// batch → schedule. An artifact triggers an agent at most once, through its first
    /// matching subscription.
    fn dispatch(self: &Arc<Self>, artifact: &Arc<Artifact>) {
        // Only `After` depends on the time; the others ignore `now`.
        let timed = matches!(artifact.visibility, Visibility::After { .. });
        let now = if timed {
            self.clock.now()
        } else {
            artifact.created_at
        };
        if timed
            && let Some(visible_from) = artifact.visibility.visible_from(artifact.created_at)
            && visible_from > now
        {
            self.defer(artifact.clone(), visible_from - now);
            return;
        }
        let routes = self.routes.read();
        let Some(routes) = routes.get(artifact.type_name()) else {
            return;
        };
        let mut last_agent = None;
        for route in routes {
            let agent = &route.agent;
            if last_agent == Some(route.agent_index) || !agent.may_receive(artifact, now) {
                continue;
            }
            let subscription = &agent.subscriptions[route.subscription as usize];
            match subscription.matches(artifact) {
                MatchOutcome::Accepted => {}
                MatchOutcome::Rejected => continue,
                MatchOutcome::PredicatePanicked { predicate, message } => {
                    tracing::error!(
                        agent = %agent.name,
                        subscription_index = route.subscription,
                        predicate,
                        artifact_id = %artifact.id,
                        panic = %message,
                        "predicate panicked; the artifact does not match this subscription"
                    );
                    continue;
                }
            }
            let key_of = match subscription_key(agent, route.subscription, subscription, artifact) {
                Ok(key_of) => key_of,
                Err(NoKey::BatchKeyPanicked(panic)) => {
                    tracing::error!(
                        agent = %agent.name,
                        subscription_index = route.subscription,
                        artifact_id = %artifact.id,
                        %panic,
                        "batch key function panicked; the artifact does not match this subscription"
                    );
                    continue;
                }
                Err(NoKey::NoJoinKey(error)) => {
                    tracing::error!(
                        agent = %agent.name,
                        subscription_index = route.subscription,
                        artifact_id = %artifact.id,
                        %error,
                        "no join key; the artifact does not match this subscription"
                    );
                    continue;
                }
            };
            let Some(shape) = &agent.join_shapes[route.subscription as usize] else {
                last_agent = Some(route.agent_index);
                let key = BatchKey {
                    agent: route.agent_index,
                    subscription: route.subscription,
                    partition: key_of,
                };
                self.deliver(agent, key, subscription, Unit::One(artifact.clone()));
                continue;
            };
            let key = BatchKey {
                agent: route.agent_index,
                subscription: route.subscription,
                partition: None,
            };
            let join_key = key_of.expect("join subscriptions always key their artifacts");
            last_agent = Some(route.agent_index);
            let slot = subscription
                .slot_of(artifact.type_name())
                .expect("a matching artifact has a slot");
            let now = Instant::now().into_std();
            let joined =
                self.joiner
                    .lock()
                    .push(key.clone(), shape, join_key, slot, artifact.clone(), now);
            if joined.earlier_deadline.is_some() {
                self.ensure_timer();
                self.timer.notify_one();
            }
            for discarded in &joined.discarded {
                trace_discard(agent, discarded);
            }
            if let Some(group) = joined.completed {
                let span = tracing::info_span!(
                    "join.complete",
                    agent = %agent.name,
                    subscription_index = i64::from(route.subscription),
                    key = %group.key,
                    group_size = run::int(group.items.len()),
                    wait_ms = run::duration_ms(group.wait()),
                );
                let unit = Unit::Group(group.items.into_boxed_slice());
                span.in_scope(|| self.deliver(agent, key, subscription, unit));
            }
        }
    }

    /// Hands one unit (an artifact or a complete group) to its subscription's batch,
    /// or runs the agent on it directly.
    fn deliver(
        self: &Arc<Self>,
        agent: &Arc<Agent>,
        key: BatchKey,
        subscription: &Subscription,
        unit: Unit,
    ) {
        match subscription.batch() {
            None => self.schedule(agent.clone(), Work::Single(unit.into_vec())),
            Some(spec) => self.push_to_batch(agent, key, *spec, unit),
        }
    }

    /// Holds an artifact hidden by `After` visibility until it becomes visible; the
    /// deadline task dispatches it then, to the subscribers its rule allows.
    fn defer(self: &Arc<Self>, artifact: Arc<Artifact>, delay: TimeDelta) {
        let delay = delay.to_std().unwrap_or_default();
        let Some(at) = Instant::now().into_std().checked_add(delay) else {
            tracing::warn!(artifact_id = %artifact.id, "visibility delay beyond the clock's range; the artifact stays on the blackboard undelivered");
            return;
        };
        let seq = self.deferred_seq.fetch_add(1, Ordering::Relaxed);
        let earliest = {
            let mut deferred = self.deferred.lock();
            deferred.insert((at, seq), artifact);
            deferred.first_key_value().map(|(k, _)| k.1) == Some(seq)
        };
        if earliest {
            self.ensure_timer();
            self.timer.notify_one();
        }
    }

    /// Dispatches deferred artifacts whose visibility has begun; returns how many.
    fn release_due(self: &Arc<Self>) -> usize {
        if self.closed.load(Ordering::Acquire) {
            // After shutdown they stay on the blackboard, counted in the report.
            return 0;
        }
        let now = Instant::now().into_std();
        let due: Vec<Arc<Artifact>> = {
            let mut deferred = self.deferred.lock();
            let later = deferred.split_off(&(now, u64::MAX));
            std::mem::replace(&mut *deferred, later)
                .into_values()
                .collect()
        };
        for artifact in &due {
            self.dispatch(artifact);
        }
        due.len()
    }

    /// The earliest timer the deadline task must wake for.
    fn next_wakeup(&self) -> Option<std::time::Instant> {
        let batch = self.batcher.lock().next_deadline();
        let join = self.joiner.lock().next_deadline();
        let deferred = self.deferred.lock().first_key_value().map(|(k, _)| k.0);
        [batch, join, deferred].into_iter().flatten().min()
    }

    /// Admission bookkeeping after batches left the batcher: their items no longer
    /// wait, and publishers waiting for room may retry.
    fn flushed(&self, batches: &[Batch<BatchKey, Unit>]) {
        if self.admission.is_none() || batches.is_empty() {
            return;
        }
        {
            let mut waiting = self.waiting_per_subscription.lock();
            for batch in batches {
                let counted = (batch.key.agent, batch.key.subscription);
                if let Some(n) = waiting.get_mut(&counted) {
                    *n = n.saturating_sub(batch.items.len());
                }
            }
        }
        self.admission_room.notify_waiters();
    }

    /// Holds an external publish until its batches have room (or refuses it).
    async fn admit(&self, artifact: &Artifact, admission: Admission) -> Result<(), PublishError> {
        loop {
            let room = self.admission_room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if self.closed.load(Ordering::Acquire) {
                return Err(PublishError::Closed);
            }
            let Some(full) = self.full_for(artifact, admission) else {
                return Ok(());
            };
            match admission.on_full {
                OnFull::Reject => return Err(full),
                OnFull::Wait => room.await,
            }
        }
    }

    /// The bound `artifact` would exceed, if any: the total, or one of the batch
    /// subscriptions it would enter (matched as dispatch would, without side effects).
    fn full_for(&self, artifact: &Artifact, admission: Admission) -> Option<PublishError> {
        if let Some(limit) = admission.max_waiting {
            let waiting = self.batcher.lock().waiting();
            if waiting >= limit.get() {
                return Some(PublishError::Full {
                    scope: "all batches".to_owned(),
                    waiting,
                    limit: limit.get(),
                });
            }
        }
        let limit = admission.per_subscription?;
        let now = self.clock.now();
        let routes = self.routes.read();
        let waiting = self.waiting_per_subscription.lock();
        // As dispatch does: an agent takes the artifact through its first matching
        // subscription only, so only that subscription's bound applies.
        let mut taken_by = None;
        for route in routes.get(artifact.type_name())? {
            let agent = &route.agent;
            let subscription = &agent.subscriptions[route.subscription as usize];
            if taken_by == Some(route.agent_index)
                || !agent.may_receive(artifact, now)
                || subscription.matches(artifact) != MatchOutcome::Accepted
                || subscription_key(agent, route.subscription, subscription, artifact).is_err()
            {
                continue;
            }
            taken_by = Some(route.agent_index);
            let counted = waiting
                .get(&(route.agent_index, route.subscription))
                .copied()
                .unwrap_or(0);
            if counted >= limit.get()
                && subscription.batch().is_some()
                && agent.join_shapes[route.subscription as usize].is_none()
            {
                return Some(PublishError::Full {
                    scope: format!(
                        "agent '{}', subscription {}",
                        agent.name, route.subscription
                    ),
                    waiting: counted,
                    limit: limit.get(),
                });
            }
        }
        None
    }

    fn push_to_batch(
        self: &Arc<Self>,
        agent: &Arc<Agent>,
        key: BatchKey,
        spec: BatchSpec,
        unit: Unit,
    ) {
        let now = Instant::now().into_std();
        let counted = (key.agent, key.subscription);
        let pushed = self.batcher.lock().push(key, spec, unit, now);
        if self.admission.is_some() {
            *self
                .waiting_per_subscription
                .lock()
                .entry(counted)
                .or_default() += 1;
            if let Some(batch) = &pushed.flushed {
                self.flushed(std::slice::from_ref(batch));
            }
        }
        if pushed.earlier_deadline.is_some() {
            self.ensure_timer();
            self.timer.notify_one();
        }
        if let Some(batch) = pushed.flushed {
            // The agent is at hand: no need to take the agents lock under the routes lock.
            self.schedule(agent.clone(), Work::Batch(Flushed::new(batch)));
        }
    }

    fn schedule_batch(self: &Arc<Self>, batch: Batch<BatchKey, Unit>) {
        let agent = self.agents.read()[batch.key.agent as usize].clone();
        self.schedule(agent, Work::Batch(Flushed::new(batch)));
    }

    /// Counts the run in flight and spawns it, unless the agent's circuit breaker
    /// refuses it: then the work becomes a failed run (kind `CircuitOpen`) with a
    /// `WorkflowError`, still counted in flight until both are recorded.
    pub(crate) fn schedule(self: &Arc<Self>, agent: Arc<Agent>, work: Work) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let guard = InFlight(self.clone());
        let span = run::span_for(&agent, &work);
        let shared = self.clone();
        let refused = agent.max_iterations.and_then(|max| {
            let runs = agent.runs_since_idle.fetch_add(1, Ordering::AcqRel) + 1;
            (runs > max.get()).then_some(max)
        });
        match refused {
            None => {
                // Runs start in the order they were scheduled: take a slot now if one
                // is free and nobody is queued before us, else queue. Spawning first
                // and waiting for the slot inside the task would let the runtime poll
                // the tasks, and so start the runs, in any order.
                let job = Queued { work, span, guard };
                let mut backlog = agent.backlog.lock();
                let permit = if backlog.is_empty() {
                    agent.permits.clone().try_acquire_owned().ok()
                } else {
                    None
                };
                match permit {
                    Some(permit) => {
                        drop(backlog);
                        self.spawn_run(agent, job, permit);
                    }
                    None => backlog.push_back(job),
                }
            }
            Some(max) => {
                let refuse = async move {
                    let message = format!(
                        "circuit breaker open: agent '{}' reached max_iterations {max} runs \
                         since the flock was last idle; this run was refused and its inputs \
                         are kept in Flock::failed_runs()",
                        agent.name
                    );
                    let correlation = run::common_correlation(work.artifacts());
                    let kind = FailureKind::CircuitOpen;
                    run::fail(&shared, &agent, work, kind, message, 0, correlation).await;
                };
                tokio::spawn(async move {
                    refuse.instrument(span).await;
                    // The run's span has ended: shutdown, waiting for runs in
                    // flight, finds it ended and flushes it.
                    drop(guard);
                });
            }
        }
    }

    /// Runs one queued job holding one of the agent's slots, then hands the slot to
    /// the next queued job of the agent (in order), or frees it.
    fn spawn_run(self: &Arc<Self>, agent: Arc<Agent>, job: Queued, permit: OwnedSemaphorePermit) {
        let shared = self.clone();
        let Queued { work, span, guard } = job;
        let run = async move {
            run::execute(&shared, &agent, work).await;
            let mut backlog = agent.backlog.lock();
            match backlog.pop_front() {
                Some(next) => {
                    drop(backlog);
                    shared.spawn_run(agent.clone(), next, permit);
                }
                // Freed under the lock: a concurrent `schedule` either saw this
                // slot taken and queued (then we popped it), or sees it free.
                None => drop(permit),
            }
        };
        tokio::spawn(async move {
            run.instrument(span).await;
            // The run's span (`batch.flush`, `agent.run`) has ended: shutdown,
            // waiting for runs in flight, finds it ended and flushes it.
            drop(guard);
        });
    }

    pub(crate) fn record_failure(&self, run: FailedRun) {
        self.failed.lock().push(run);
    }

    /// Calls `on_terminate` on the components of every initialized agent, once.
    async fn terminate_agents(&self) {
        let agents = self.agents.read().clone();
        for agent in agents {
            if agent.initialized.initialized() && !agent.terminated.swap(true, Ordering::AcqRel) {
                for component in &agent.components {
                    let hook = component.on_terminate(&agent.name);
                    run::observe(component.as_ref(), "on_terminate", hook).await;
                }
            }
        }
    }

    /// Called when no run is scheduled or running: the circuit breakers start counting
    /// from zero.
    fn reset_breakers(&self) {
        for agent in self.agents.read().iter() {
            agent.runs_since_idle.store(0, Ordering::Release);
        }
    }

    /// Flushes due batches (reason `timeout`) after dispatching deferred artifacts
    /// that became visible (they may join those batches) and discarding join groups
    /// whose window ended (traced); returns how many batches.
    fn flush_due(self: &Arc<Self>) -> usize {
        self.release_due();
        let now = Instant::now().into_std();
        let expired = self.joiner.lock().poll_expired(now);
        if !expired.is_empty() {
            let agents = self.agents.read().clone();
            for discarded in &expired {
                trace_discard(&agents[discarded.pool.agent as usize], discarded);
            }
        }
        let due = self.batcher.lock().poll_expired(now);
        self.flushed(&due);
        let count = due.len();
        for batch in due {
            self.schedule_batch(batch);
        }
        count
    }

    /// Flushes every batch with `reason`; returns (batches, artifacts).
    fn flush_all(self: &Arc<Self>, reason: FlushReason) -> (usize, usize) {
        let now = Instant::now().into_std();
        let batches = self.batcher.lock().flush_all(reason, now);
        self.flushed(&batches);
        let artifacts = batches
            .iter()
            .flat_map(|b| &b.items)
            .map(|unit| unit.artifacts().len())
            .sum();
        let counts = (batches.len(), artifacts);
        for batch in batches {
            self.schedule_batch(batch);
        }
        counts
    }

    async fn wait_idle(self: &Arc<Self>) {
        loop {
            self.flush_due();
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.in_flight.load(Ordering::Acquire) == 0 {
                let now = Instant::now().into_std();
                let due = self
                    .batcher
                    .lock()
                    .next_deadline()
                    .is_some_and(|d| d <= now)
                    || self.joiner.lock().next_deadline().is_some_and(|d| d <= now);
                if !due {
                    return;
                }
                continue;
            }
            notified.await;
        }
    }

    /// Starts the deadline task on first need.
    fn ensure_timer(self: &Arc<Self>) {
        if self.timer_started.swap(true, Ordering::AcqRel) {
            return;
        }
        tokio::spawn(deadline_task(Arc::downgrade(self), self.timer.clone()));
    }
}

/// Sleeps until the earliest batch deadline, flushes what is due, and re-arms; woken
/// early when an earlier deadline appears. One timer for all batches: no scan.
async fn deadline_task(shared: Weak<Shared>, wake: Arc<Notify>) {
    loop {
        let notified = wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let next = {
            let Some(shared) = shared.upgrade() else {
                return;
            };
            // Not merely `closed`: while shutdown drains, runs in flight publish
            // outputs that start batches and join groups whose deadlines still count.
            if shared.drained.load(Ordering::Acquire) {
                return;
            }
            shared.flush_due();
            shared.next_wakeup()
        };
        match next {
            Some(deadline) => {
                tokio::select! {
                    () = tokio::time::sleep_until(Instant::from_std(deadline)) => {}
                    () = &mut notified => {}
                }
            }
            None => notified.await,
        }
    }
}

// === admission ===

/// Refuses an agent with a size-only batch subscription that the flock's admission
/// bounds could wedge (see [`Admission::would_block`]).
fn check_admission(
    admission: &Admission,
    agents: &[Arc<Agent>],
    agent: &Agent,
) -> Result<(), RegistrationError> {
    // Items the size-only batches can hold without any of them filling.
    let size_only = |agent: &Agent| -> usize {
        agent
            .subscriptions
            .iter()
            .filter_map(|s| s.batch())
            .filter(|spec| spec.max_wait().is_none())
            .filter_map(|spec| spec.max_size())
            .map(|size| size.get() - 1)
            .sum()
    };
    let mut held: usize = agents.iter().map(|a| size_only(a)).sum();
    for (index, subscription) in agent.subscriptions.iter().enumerate() {
        let Some(size) = subscription
            .batch()
            .filter(|spec| spec.max_wait().is_none())
            .and_then(BatchSpec::max_size)
        else {
            continue;
        };
        let join = agent.join_shapes[index].is_some();
        if let Some(reason) = admission.would_block(size.get(), subscription.is_keyed(), join, held)
        {
            return Err(RegistrationError::WouldBlock {
                agent: agent.name.to_string(),
                index,
                reason,
            });
        }
        held += size.get() - 1;
    }
    Ok(())
}

// === joins ===

/// Why a subscription that accepted an artifact cannot file it under a key.
enum NoKey {
    /// The keyed batch's key function panicked (its message).
    BatchKeyPanicked(String),
    /// The join key could not be extracted.
    NoJoinKey(flock_subscription::JoinKeyError),
}

/// The key a subscription files an accepted artifact under: the join key for a join
/// or AND gate (the correlation id without a `JoinSpec`), the batch key for a keyed
/// batch, `None` otherwise. Dispatch and admission both decide with it which
/// subscription takes the artifact.
fn subscription_key(
    agent: &Agent,
    subscription_index: u32,
    subscription: &Subscription,
    artifact: &Artifact,
) -> Result<Option<JoinKey>, NoKey> {
    if agent.join_shapes[subscription_index as usize].is_none() {
        return subscription
            .batch_key(artifact)
            .map_err(NoKey::BatchKeyPanicked);
    }
    match subscription.join() {
        None => Ok(Some(JoinKey::new(artifact.correlation_id))),
        Some(join) => join.key(artifact).map(Some).map_err(NoKey::NoJoinKey),
    }
}

/// `count` per slot as (type, count), leaving out zeros.
fn per_type(subscription: &Subscription, counts: &[usize]) -> Vec<(&'static str, usize)> {
    subscription
        .slots()
        .iter()
        .zip(counts)
        .filter(|(_, n)| **n > 0)
        .map(|(slot, n)| (slot.type_name, *n))
        .collect()
}

/// `TypeA, TypeB x2` (or `-` for none), for traces.
fn describe(types: &[(&'static str, usize)]) -> String {
    if types.is_empty() {
        return "-".to_owned();
    }
    types
        .iter()
        .map(|(t, n)| {
            if *n == 1 {
                (*t).to_owned()
            } else {
                format!("{t} x{n}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Records a discarded join group: a `join.discard` span with the agent, key, types
/// present and missing and the artifacts, and a warning inside it. Never silent.
fn trace_discard(agent: &Agent, discarded: &Discarded<BatchKey, JoinKey, Arc<Artifact>>) {
    let subscription = &agent.subscriptions[discarded.pool.subscription as usize];
    let present = describe(&per_type(subscription, &discarded.present));
    let missing = describe(&per_type(subscription, &discarded.missing));
    let window = agent.join_shapes[discarded.pool.subscription as usize]
        .as_ref()
        .and_then(JoinShape::window)
        .map_or_else(|| "none".to_owned(), |w| w.to_string());
    let ids = discarded
        .items
        .iter()
        .map(|a| a.id.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let span = tracing::info_span!(
        "join.discard",
        agent = %agent.name,
        subscription_index = i64::from(discarded.pool.subscription),
        key = %discarded.key,
        types_present = %present,
        types_missing = %missing,
        artifacts = run::int(discarded.items.len()),
        artifact_ids = %ids,
        reason = discarded.reason.as_str(),
        window = %window,
        waited_ms = run::duration_ms(discarded.wait()),
    );
    span.in_scope(|| {
        tracing::warn!(
            agent = %agent.name,
            key = %discarded.key,
            present = %present,
            missing = %missing,
            reason = discarded.reason.as_str(),
            "incomplete join group discarded"
        );
    });
}

/// Marks a run finished when dropped, even if its task panics or is cancelled.
pub(crate) struct InFlight(Arc<Shared>);

/// A run scheduled but waiting for a slot of its agent.
pub(crate) struct Queued {
    work: Work,
    span: tracing::Span,
    guard: InFlight,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.reset_breakers();
            self.0.idle.notify_waiters();
        }
    }
}
