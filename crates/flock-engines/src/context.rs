//! What an engine receives: its context, and the inputs of one run or one batch.

use std::{fmt, ops::Range, sync::Arc, time::Duration};

use flock_core::{Artifact, BlackboardView, FlockType, FlushReason};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::EngineError;

/// Figures of a flushed batch, handed to every batch run: the guide's `BatchMetrics`
/// pattern without boilerplate.
///
/// A batch engine reads them in one line with [`EngineContext::batch_metrics`]. They
/// are an artifact type themselves (type name `BatchMetrics`), so an engine can
/// publish them next to its report, or a report can carry them as a field, for a
/// monitoring agent to track efficiency and tune the `BatchSpec`. Serialized, the
/// durations are whole milliseconds, named like the `batch.flush` span's attributes:
///
/// ```
/// use std::time::Duration;
/// use flock_core::FlushReason;
/// use flock_engines::BatchMetrics;
///
/// let metrics = BatchMetrics {
///     batch_size: 10,
///     flush_reason: FlushReason::Timeout,
///     configured_size: Some(25),
///     configured_timeout: Some(Duration::from_secs(30)),
///     efficiency: 0.4,
///     wait: Duration::from_millis(30_002),
///     subscription_index: 0,
///     key: None,
/// };
/// assert_eq!(metrics.to_string(), "10 items, timeout flush, 40% of size 25, waited 30.0 s");
/// assert_eq!(
///     serde_json::to_value(&metrics).unwrap(),
///     serde_json::json!({
///         "batch_size": 10, "flush_reason": "timeout", "configured_size": 25,
///         "configured_timeout_ms": 30000, "efficiency": 0.4, "wait_ms": 30002,
///         "subscription_index": 0,
///     })
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, flock_core::FlockType)]
#[flock(crate = "flock_core")]
pub struct BatchMetrics {
    /// Items in the batch (artifacts, or join groups).
    pub batch_size: usize,
    /// Why the batch flushed.
    pub flush_reason: FlushReason,
    /// The configured size trigger.
    pub configured_size: Option<usize>,
    /// The configured timeout trigger (serialized as `configured_timeout_ms`).
    #[serde(rename = "configured_timeout_ms", with = "millis::option")]
    pub configured_timeout: Option<Duration>,
    /// `batch_size / configured_size` (1.0 without a size trigger).
    pub efficiency: f64,
    /// Time from the batch's first item to its flush (serialized as `wait_ms`).
    #[serde(rename = "wait_ms", with = "millis")]
    pub wait: Duration,
    /// Index of the subscription in the agent's declaration order.
    pub subscription_index: usize,
    /// The batch's key, for a keyed subscription (`Subscribe::keyed_by`), as text:
    /// every item of the batch has this key. Not serialized when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl fmt::Display for BatchMetrics {
    /// One line for logs: `10 items, timeout flush, 40% of size 25, waited 30.0 s`,
    /// prefixed with `key K: ` for a keyed batch.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(key) = &self.key {
            write!(f, "key {key}: ")?;
        }
        write!(f, "{} items, {} flush", self.batch_size, self.flush_reason)?;
        if let Some(size) = self.configured_size {
            write!(f, ", {:.0}% of size {size}", self.efficiency * 100.0)?;
        }
        write!(f, ", waited {:.1} s", self.wait.as_secs_f64())
    }
}

/// Durations as whole milliseconds, as the trace attributes carry them.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }

    pub(super) mod option {
        use std::time::Duration;

        use serde::{Deserialize, Deserializer, Serializer};

        pub(in super::super) fn serialize<S: Serializer>(
            d: &Option<Duration>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }

        pub(in super::super) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<Duration>, D::Error> {
            Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
        }
    }
}

/// The context of one engine run.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EngineContext {
    /// The agent running.
    pub agent: Arc<str>,
    /// The batch's figures, for batch runs.
    pub batch: Option<BatchMetrics>,
    /// The correlation id the outputs will carry.
    pub correlation_id: Option<Uuid>,
    /// 1 for the first attempt, 2 for the first retry, …
    pub attempt: u32,
    /// The blackboard as this agent may see it (set by the runtime).
    pub blackboard: Option<BlackboardView>,
    /// The run's id: the same for every attempt, and for a re-run of the same
    /// inputs after a crash (derived from the agent and its inputs), so an engine
    /// can use it as the idempotency key of its side effects (an API's
    /// `Idempotency-Key` header, a database's unique key). Nil outside a runtime.
    pub run_id: Uuid,
}

impl EngineContext {
    /// A context for `agent` with no batch, correlation id or retries.
    pub fn new(agent: impl Into<Arc<str>>) -> Self {
        Self {
            agent: agent.into(),
            batch: None,
            correlation_id: None,
            attempt: 1,
            blackboard: None,
            run_id: Uuid::nil(),
        }
    }

    /// Sets the run's id.
    pub fn with_run_id(mut self, id: Uuid) -> Self {
        self.run_id = id;
        self
    }

    /// Sets the agent's view of the blackboard.
    pub fn with_blackboard(mut self, view: BlackboardView) -> Self {
        self.blackboard = Some(view);
        self
    }

    /// Sets the batch figures.
    pub fn with_batch(mut self, batch: BatchMetrics) -> Self {
        self.batch = Some(batch);
        self
    }

    /// Sets the correlation id.
    pub fn with_correlation_id(mut self, id: Option<Uuid>) -> Self {
        self.correlation_id = id;
        self
    }

    /// Sets the attempt number.
    pub fn with_attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt;
        self
    }

    /// The flush reason, for batch runs.
    pub fn flush_reason(&self) -> Option<FlushReason> {
        self.batch.as_ref().map(|b| b.flush_reason)
    }

    /// The figures of the batch this run processes: `batch_size`, `flush_reason`,
    /// `efficiency`, the configured triggers and the wait. One line in a batch engine:
    ///
    /// ```
    /// use std::sync::Arc;
    /// use flock_engines::{BatchItem, BatchMetrics, EngineContext, EngineError, batch_fn};
    ///
    /// // An engine that reports each batch's figures (to a monitoring agent, say).
    /// let engine = batch_fn(|ctx: &EngineContext, _items: Vec<Arc<BatchItem>>| {
    ///     Ok::<BatchMetrics, EngineError>(ctx.batch_metrics()?.clone())
    /// });
    /// # let _ = engine;
    /// ```
    ///
    /// # Errors
    /// [`EngineError::NotABatch`] when the run is not a flushed batch (the agent's
    /// subscription has no `BatchSpec`); the runtime then reports the failure like
    /// any other engine error, naming the agent.
    pub fn batch_metrics(&self) -> Result<&BatchMetrics, EngineError> {
        self.batch.as_ref().ok_or_else(|| EngineError::NotABatch {
            agent: self.agent.to_string(),
        })
    }
}

/// The inputs of one run: one artifact, or one complete group of a join.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    artifacts: Vec<Arc<Artifact>>,
}

impl Inputs {
    /// Inputs from artifacts.
    pub fn new(artifacts: Vec<Arc<Artifact>>) -> Self {
        Self { artifacts }
    }

    /// The artifacts.
    pub fn artifacts(&self) -> &[Arc<Artifact>] {
        &self.artifacts
    }

    /// The first value of type `T`.
    pub fn get<T: FlockType>(&self) -> Option<&T> {
        self.artifacts.iter().find_map(|a| a.get::<T>())
    }

    /// Every value of type `T`, in order.
    pub fn values<T: FlockType>(&self) -> impl Iterator<Item = &T> {
        self.artifacts.iter().filter_map(|a| a.get::<T>())
    }

    /// Consumes the inputs, returning the artifacts.
    pub fn into_artifacts(self) -> Vec<Arc<Artifact>> {
        self.artifacts
    }
}

/// The items of a flushed batch, in arrival order. An item is one artifact, or, for
/// join subscriptions, one complete group.
///
/// Cloning is cheap (two reference counts): the runtime keeps the batch it hands
/// to the engine, for a retry or a failed run, without copying its artifacts.
#[derive(Debug, Clone, Default)]
pub struct BatchInputs {
    artifacts: Arc<[Arc<Artifact>]>,
    /// Item boundaries for grouped batches; `None` when every item is one artifact.
    groups: Option<Arc<[Range<usize>]>>,
}

impl BatchInputs {
    /// A batch whose items are single artifacts.
    pub fn new(artifacts: Vec<Arc<Artifact>>) -> Self {
        Self {
            artifacts: artifacts.into(),
            groups: None,
        }
    }

    /// A batch whose items are groups of artifacts (join subscriptions).
    pub fn from_groups(groups: Vec<Vec<Arc<Artifact>>>) -> Self {
        let mut artifacts = Vec::with_capacity(groups.iter().map(Vec::len).sum());
        let mut ranges = Vec::with_capacity(groups.len());
        for group in groups {
            let start = artifacts.len();
            artifacts.extend(group);
            ranges.push(start..artifacts.len());
        }
        Self {
            artifacts: artifacts.into(),
            groups: Some(ranges.into()),
        }
    }

    /// Number of items (artifacts, or groups).
    pub fn len(&self) -> usize {
        self.groups
            .as_ref()
            .map_or(self.artifacts.len(), |g| g.len())
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The items, each a slice of artifacts (one artifact unless grouped).
    pub fn items(&self) -> Box<dyn Iterator<Item = &[Arc<Artifact>]> + '_> {
        match &self.groups {
            Some(ranges) => Box::new(ranges.iter().map(|r| &self.artifacts[r.clone()])),
            None => Box::new(self.artifacts.chunks(1)),
        }
    }

    /// Whether the items are join groups ([`BatchInputs::from_groups`]).
    pub fn is_grouped(&self) -> bool {
        self.groups.is_some()
    }

    /// Every artifact, flattened, in order.
    pub fn artifacts(&self) -> &[Arc<Artifact>] {
        &self.artifacts
    }

    /// Every value of type `T`, flattened, in order.
    pub fn values<T: FlockType>(&self) -> impl Iterator<Item = &T> {
        self.artifacts.iter().filter_map(|a| a.get::<T>())
    }
}
