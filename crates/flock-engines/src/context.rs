//! What an engine receives: its context, and the inputs of one run or one batch.

use std::{ops::Range, sync::Arc, time::Duration};

use flock_core::{Artifact, BlackboardView, FlockType, FlushReason};
use uuid::Uuid;

/// Figures of a flushed batch, handed to every batch run (the guide's `BatchMetrics`
/// pattern without boilerplate).
#[derive(Debug, Clone, PartialEq)]
pub struct BatchMetrics {
    /// Items in the batch (artifacts, or join groups).
    pub batch_size: usize,
    /// Why the batch flushed.
    pub flush_reason: FlushReason,
    /// The configured size trigger.
    pub configured_size: Option<usize>,
    /// The configured timeout trigger.
    pub configured_timeout: Option<Duration>,
    /// `batch_size / configured_size` (1.0 without a size trigger).
    pub efficiency: f64,
    /// Time from the batch's first item to its flush.
    pub wait: Duration,
    /// Index of the subscription in the agent's declaration order.
    pub subscription_index: usize,
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
        }
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
#[derive(Debug, Clone, Default)]
pub struct BatchInputs {
    artifacts: Vec<Arc<Artifact>>,
    /// Item boundaries for grouped batches; `None` when every item is one artifact.
    groups: Option<Vec<Range<usize>>>,
}

impl BatchInputs {
    /// A batch whose items are single artifacts.
    pub fn new(artifacts: Vec<Arc<Artifact>>) -> Self {
        Self {
            artifacts,
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
            artifacts,
            groups: Some(ranges),
        }
    }

    /// Number of items (artifacts, or groups).
    pub fn len(&self) -> usize {
        self.groups.as_ref().map_or(self.artifacts.len(), Vec::len)
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

    /// Every artifact, flattened, in order.
    pub fn artifacts(&self) -> &[Arc<Artifact>] {
        &self.artifacts
    }

    /// Every value of type `T`, flattened, in order.
    pub fn values<T: FlockType>(&self) -> impl Iterator<Item = &T> {
        self.artifacts.iter().filter_map(|a| a.get::<T>())
    }
}
