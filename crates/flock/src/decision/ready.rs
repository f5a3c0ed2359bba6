//! What a decision made ready: the driver's work list.

use std::{sync::Arc, time::Duration};

use flock_batch::Discarded;
use flock_core::Artifact;
use flock_subscription::JoinKey;
use rustc_hash::FxHashMap;

use super::Run;
use crate::{
    agent::Agent,
    work::{BatchKey, UnitKey},
};

/// An artifact held until its `After` visibility begins.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    pub(crate) artifact: Arc<Artifact>,
    /// Only these agents may still take it (recovery: the others consumed it).
    pub(crate) only: Option<Arc<[u32]>>,
    /// In a cluster, the units it may go to once visible.
    pub(crate) scope: Scope,
}

/// In a cluster, the units a held artifact may go to once its visibility begins:
/// exactly those its owner collected it for, so that a unit taken over while the
/// artifact waits gets it once (from the takeover), not twice.
#[derive(Debug, Clone, Default)]
pub(crate) enum Scope {
    /// Outside a cluster: any subscription.
    #[default]
    Any,
    /// Read from the cluster's feed at this sequence number: the units owned since
    /// before it (a unit taken over later collects it again itself).
    Fed(u64),
    /// Collected again by a takeover: its units, while held under these epochs.
    TakenOver(Arc<FxHashMap<UnitKey, u64>>),
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

impl Ready {
    /// Whether there is nothing to carry out.
    pub(crate) fn is_empty(&self) -> bool {
        self.start.is_empty()
            && self.refused.is_empty()
            && self.completed.is_empty()
            && self.discarded.is_empty()
            && self.released.is_empty()
            && self.events.is_empty()
            && !self.rearm
            && !self.quiet
            && !self.room
    }

    /// Carries nothing out and frees nothing: the common outcome of a publish (an
    /// item joined a batch), where running the lists' destructors is a measurable
    /// share of the work. Dropped normally if any list ever allocated.
    pub(crate) fn done_if_empty(self) -> Option<Self> {
        let unallocated = self.start.capacity() == 0
            && self.refused.capacity() == 0
            && self.completed.capacity() == 0
            && self.discarded.capacity() == 0
            && self.released.capacity() == 0
            && self.events.capacity() == 0;
        if unallocated && self.is_empty() {
            // Every field is an empty, unallocated list or plain data: nothing to
            // free.
            std::mem::forget(self);
            return None;
        }
        Some(self)
    }
}

/// What shutdown left when it drained.
#[derive(Default)]
pub(crate) struct Drained {
    /// Incomplete join groups discarded (the store keeps nothing for later).
    pub(crate) discarded: Vec<Discard>,
    /// Incomplete join groups left to a durable store, and their artifacts: the
    /// next start (or, in a cluster, the units' next owners) collects them again.
    pub(crate) left: (usize, usize),
    pub(crate) events: Vec<crate::events::FlockEvent>,
    pub(crate) deferred_undelivered: usize,
}
