//! What a decision made ready: the driver's work list.

use std::{sync::Arc, time::Duration};

use flock_batch::Discarded;
use flock_core::Artifact;
use flock_subscription::JoinKey;

use super::Run;
use crate::{agent::Agent, work::BatchKey};

/// An artifact held until its `After` visibility begins.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    pub(crate) artifact: Arc<Artifact>,
    /// Only these agents may still take it (recovery: the others consumed it).
    pub(crate) only: Option<Arc<[u32]>>,
}

/// A held artifact whose visibility began, at `at`: to route and collect.
#[derive(Debug)]
pub(crate) struct Released {
    pub(crate) at: std::time::Instant,
    pub(crate) held: Held,
}

/// A join group discarded, with its agent (for the `join.discard` span).
pub(crate) type Discard = (Arc<Agent>, Discarded<BatchKey, JoinKey, Arc<Artifact>>);

/// A join group that completed: what its `join.complete` span records.
#[derive(Debug, Clone)]
pub(crate) struct JoinDone {
    pub(crate) subscription: u32,
    pub(crate) key: JoinKey,
    pub(crate) size: usize,
    pub(crate) wait: Duration,
}

/// What a core call made ready, for the driver to carry out.
#[derive(Default)]
#[must_use = "what became ready must be carried out, or runs never start and artifacts are lost"]
pub(crate) struct Ready {
    /// Runs holding a slot: start them.
    pub(crate) start: Vec<Run>,
    /// Runs the circuit breaker refused: record them as failed.
    pub(crate) refused: Vec<Run>,
    /// Join groups completed whose run did not start in this step.
    pub(crate) completed: Vec<(Arc<Agent>, JoinDone)>,
    /// Join groups discarded: trace them.
    pub(crate) discarded: Vec<Discard>,
    /// Artifacts whose visibility began: route and collect them (counted
    /// dispatching until then).
    pub(crate) released: Vec<Released>,
    /// Batches flushed, and their artifacts.
    pub(crate) flushed: (usize, usize),
    /// An earlier deadline appeared: re-arm the timer.
    pub(crate) rearm: bool,
    /// The flock became quiet and someone waits for it.
    pub(crate) quiet: bool,
    /// Admission counts went down (or shutdown began) and publishers wait.
    pub(crate) room: bool,
    /// Live events, when someone listens.
    pub(crate) events: Vec<crate::events::FlockEvent>,
}

/// What shutdown left when it drained.
#[derive(Default)]
pub(crate) struct Drained {
    pub(crate) discarded: Vec<Discard>,
    pub(crate) events: Vec<crate::events::FlockEvent>,
    pub(crate) deferred_undelivered: usize,
}
