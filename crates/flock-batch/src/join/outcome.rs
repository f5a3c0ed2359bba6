//! What the join state machine hands back: the shape of a pool's groups, complete
//! groups, discarded groups, and what inspection sees.

use std::{
    fmt,
    num::NonZeroUsize,
    time::{Duration, Instant},
};

use flock_subscription::{JoinWindow, Subscription};

/// Why a join shape was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidJoinShape {
    /// No slot.
    #[error("a join needs at least one slot, got none")]
    NoSlots,
    /// A slot with count 0.
    #[error("slot {0} of a join needs a count of at least 1, got 0")]
    ZeroCount(usize),
}

/// What a group of one pool needs: a count per slot (a slot is one artifact type)
/// and an optional window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinShape {
    pub(super) counts: Box<[NonZeroUsize]>,
    pub(super) window: Option<JoinWindow>,
}

impl JoinShape {
    /// A shape from the count of each slot and a window.
    ///
    /// # Errors
    /// [`InvalidJoinShape`] when there is no slot or a count is 0.
    pub fn new(
        counts: impl IntoIterator<Item = usize>,
        window: Option<JoinWindow>,
    ) -> Result<Self, InvalidJoinShape> {
        let counts = counts
            .into_iter()
            .enumerate()
            .map(|(slot, n)| NonZeroUsize::new(n).ok_or(InvalidJoinShape::ZeroCount(slot)))
            .collect::<Result<Box<[_]>, _>>()?;
        if counts.is_empty() {
            return Err(InvalidJoinShape::NoSlots);
        }
        Ok(Self { counts, window })
    }

    /// The shape of a subscription's groups (its slots, and its join spec's window),
    /// or `None` when the subscription delivers artifacts one at a time.
    pub fn of(subscription: &Subscription) -> Option<Self> {
        subscription.is_gate().then(|| Self {
            counts: subscription.slots().iter().map(|s| s.count).collect(),
            window: subscription
                .join()
                .map(flock_subscription::JoinSpec::window),
        })
    }

    /// The count of each slot.
    pub fn counts(&self) -> &[NonZeroUsize] {
        &self.counts
    }

    /// The window, if any.
    pub fn window(&self) -> Option<JoinWindow> {
        self.window
    }

    /// Artifacts in a complete group.
    pub fn group_size(&self) -> usize {
        self.counts.iter().map(|n| n.get()).sum()
    }
}

/// Why a group was discarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DiscardReason {
    /// Its window ended before it completed.
    Window,
    /// The runtime shut down while it was incomplete.
    Shutdown,
}

impl DiscardReason {
    /// The reason as traces record it: `window` or `shutdown`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Window => "window",
            Self::Shutdown => "shutdown",
        }
    }
}

impl fmt::Display for DiscardReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A complete group.
#[derive(Debug, Clone, PartialEq)]
pub struct Group<P, K, T> {
    /// The pool (an agent's subscription).
    pub pool: P,
    /// The key the group formed by.
    pub key: K,
    /// The items: slot order, then arrival order within a slot.
    pub items: Vec<T>,
    /// Arrival of the group's oldest item.
    pub first_arrival: Instant,
    /// When it completed.
    pub completed_at: Instant,
}

impl<P, K, T> Group<P, K, T> {
    /// Time from the oldest item's arrival to completion.
    pub fn wait(&self) -> Duration {
        self.completed_at
            .saturating_duration_since(self.first_arrival)
    }
}

/// An incomplete group that was discarded.
#[derive(Debug, Clone, PartialEq)]
pub struct Discarded<P, K, T> {
    /// The pool (an agent's subscription).
    pub pool: P,
    /// The key the group formed by.
    pub key: K,
    /// The items, in arrival order.
    pub items: Vec<T>,
    /// Items present per slot.
    pub present: Vec<usize>,
    /// Items missing per slot.
    pub missing: Vec<usize>,
    /// Why it was discarded.
    pub reason: DiscardReason,
    /// Arrival of the group's oldest item.
    pub first_arrival: Instant,
    /// When it was discarded.
    pub discarded_at: Instant,
}

impl<P, K, T> Discarded<P, K, T> {
    /// Time from the oldest item's arrival to the discard.
    pub fn wait(&self) -> Duration {
        self.discarded_at
            .saturating_duration_since(self.first_arrival)
    }
}

/// What a push did.
#[derive(Debug)]
#[must_use = "a completed group must be delivered and discarded groups reported, or they are lost silently"]
pub struct Joined<P, K, T> {
    /// The group, when this item completed it.
    pub completed: Option<Group<P, K, T>>,
    /// Groups whose window this item's arrival ended.
    pub discarded: Vec<Discarded<P, K, T>>,
    /// Set when the push armed a deadline earlier than every deadline pending before:
    /// the driver must re-arm its timer.
    pub earlier_deadline: Option<Instant>,
}

/// An incomplete group, as seen by inspection.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingGroup<P, K> {
    /// The pool.
    pub pool: P,
    /// The key.
    pub key: K,
    /// Items of the current group per slot.
    pub present: Vec<usize>,
    /// Items missing per slot.
    pub missing: Vec<usize>,
    /// Items waiting under this key, surplus included.
    pub waiting: usize,
    /// Arrival of the oldest item.
    pub first_arrival: Instant,
    /// Time until a time window ends (zero when overdue).
    pub time_left: Option<Duration>,
    /// Artifacts the pool may still accept before a count window ends.
    pub artifacts_left: Option<u64>,
}
