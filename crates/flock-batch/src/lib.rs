//! The batch accumulator of flock-rs: a synchronous state machine that collects items
//! per key and decides when a batch flushes, by size or by deadline; and the join
//! state machine ([`Joiner`]) that correlates items into groups before they batch.
//!
//! [`Deferrals`] holds items until an instant (artifacts whose `After` visibility has
//! not begun), on the same timer.
//!
//! [`Batcher`] does no IO and reads no clock: every call takes `now`. The runtime
//! drives it from one async task that sleeps until [`Batcher::next_deadline`]; tests
//! drive it with explicit instants.
//!
//! Costs: a push is one hash lookup and a vector push; starting or flushing a batch
//! with a timeout is one ordered-map insert or removal (`O(log n)` in the number of
//! batches waiting on a deadline); finding due batches touches only the due ones.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use flock_batch::Batcher;
//! use flock_core::FlushReason;
//! use flock_subscription::BatchSpec;
//!
//! let spec = BatchSpec::size(3).timeout(Duration::from_secs(30)).build().unwrap();
//! let mut batcher = Batcher::new();
//! let t0 = Instant::now();
//! assert!(batcher.push("agent", spec, 1, t0).flushed.is_none());
//! assert!(batcher.push("agent", spec, 2, t0).flushed.is_none());
//! let batch = batcher.push("agent", spec, 3, t0).flushed.unwrap();
//! assert_eq!((batch.items, batch.reason), (vec![1, 2, 3], FlushReason::Size));
//!
//! batcher.push("agent", spec, 4, t0 + Duration::from_secs(1));
//! assert!(batcher.poll_expired(t0 + Duration::from_secs(30)).is_empty());
//! let due = batcher.poll_expired(t0 + Duration::from_secs(31));
//! assert_eq!((due[0].items.clone(), due[0].reason), (vec![4], FlushReason::Timeout));
//! ```

mod deferral;
mod join;
mod shards;

pub use deferral::Deferrals;
pub use join::{
    DiscardReason, Discarded, Group, InvalidJoinShape, JoinShape, Joined, Joiner, PendingGroup,
};
use shards::Shards;

use std::{
    collections::BTreeMap,
    hash::Hash,
    time::{Duration, Instant},
};

pub use flock_core::FlushReason;
use flock_subscription::BatchSpec;

/// A batch handed to its consumer.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch<K, T> {
    /// The accumulator's key.
    pub key: K,
    /// The items, in arrival order; never more than the spec's size.
    pub items: Vec<T>,
    /// Why it flushed.
    pub reason: FlushReason,
    /// The spec it was collected under.
    pub spec: BatchSpec,
    /// Arrival of the first item.
    pub first_arrival: Instant,
    /// When it flushed.
    pub flushed_at: Instant,
}

impl<K, T> Batch<K, T> {
    /// Time from the first item's arrival to the flush.
    pub fn wait(&self) -> Duration {
        self.flushed_at
            .saturating_duration_since(self.first_arrival)
    }

    /// `items / size` (1.0 when the spec has no size).
    pub fn efficiency(&self) -> f64 {
        self.spec.efficiency(self.items.len())
    }
}

/// What a push did.
#[derive(Debug)]
#[must_use = "a flushed batch must be handed to its consumer or it is lost"]
pub struct Pushed<K, T> {
    /// The batch, when this item filled it.
    pub flushed: Option<Batch<K, T>>,
    /// Set when this item started a batch whose deadline is earlier than every
    /// deadline pending before: the driver must re-arm its timer.
    pub earlier_deadline: Option<Instant>,
}

/// A batch still collecting, as seen by inspection.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingBatch<K> {
    /// The accumulator's key.
    pub key: K,
    /// Items waiting.
    pub items: usize,
    /// Arrival of the first item.
    pub first_arrival: Instant,
    /// The spec.
    pub spec: BatchSpec,
    /// Time until the timeout fires (`None` without a timeout; zero when overdue).
    pub time_left: Option<Duration>,
}

struct Accumulator<T> {
    spec: BatchSpec,
    items: Vec<T>,
    first_arrival: Instant,
    /// Creation order, for deterministic flush-all order.
    seq: u64,
    deadline: Option<Instant>,
}

/// The accumulators of every key, and their deadlines.
pub struct Batcher<K, T> {
    /// In shards: growing never rehashes every batch at once.
    accumulators: Shards<K, Accumulator<T>>,
    /// Pending deadlines: (deadline, seq) → key. Removed when a batch flushes by size.
    deadlines: BTreeMap<(Instant, u64), K>,
    next_seq: u64,
    waiting: usize,
}

impl<K, T> Default for Batcher<K, T> {
    fn default() -> Self {
        Self {
            accumulators: Shards::default(),
            deadlines: BTreeMap::new(),
            next_seq: 0,
            waiting: 0,
        }
    }
}

impl<K: Clone + Eq + Hash, T> Batcher<K, T> {
    /// No batches.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `item` to the batch of `key` at `now`, starting the batch (and its clock)
    /// if there is none. Returns the batch when the item fills it.
    ///
    /// The spec of a batch is the one given with its first item.
    pub fn push(&mut self, key: K, spec: BatchSpec, item: T, now: Instant) -> Pushed<K, T> {
        let mut earlier_deadline = None;
        let accumulator = match self.accumulators.get_mut(&key) {
            Some(accumulator) => accumulator,
            None => {
                let seq = self.next_seq;
                self.next_seq += 1;
                let deadline = spec.max_wait().map(|timeout| now + timeout);
                if let Some(deadline) = deadline {
                    if self.next_deadline().is_none_or(|next| deadline < next) {
                        earlier_deadline = Some(deadline);
                    }
                    self.deadlines.insert((deadline, seq), key.clone());
                }
                // A batch of up to 128 gets its room at once; a larger one grows as
                // items come. With many keyed batches of a large size that each hold
                // a few items (deadlines flushing them), room for 1,024 each was 16 KiB
                // per batch: 100,000 of them faulted in and freed 1.6 GB a second.
                let capacity = spec.max_size().map_or(0, |n| n.get().min(128));
                self.accumulators.insert_new(
                    key.clone(),
                    Accumulator {
                        spec,
                        items: Vec::with_capacity(capacity),
                        first_arrival: now,
                        seq,
                        deadline,
                    },
                )
            }
        };
        accumulator.items.push(item);
        self.waiting += 1;
        let full = accumulator
            .spec
            .max_size()
            .is_some_and(|size| accumulator.items.len() >= size.get());
        let flushed = full.then(|| self.take(&key, FlushReason::Size, now));
        Pushed {
            flushed: flushed.flatten(),
            earlier_deadline,
        }
    }

    /// Flushes, with reason `timeout`, every batch whose deadline is at or before `now`,
    /// earliest deadline first.
    pub fn poll_expired(&mut self, now: Instant) -> Vec<Batch<K, T>> {
        let mut due = Vec::new();
        while let Some(entry) = self.deadlines.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let key = entry.remove();
            due.extend(self.take(&key, FlushReason::Timeout, now));
        }
        due
    }

    /// The earliest pending deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines
            .first_key_value()
            .map(|((deadline, _), _)| *deadline)
    }

    /// Flushes every batch with `reason`, oldest batch first.
    pub fn flush_all(&mut self, reason: FlushReason, now: Instant) -> Vec<Batch<K, T>> {
        let mut keys: Vec<(u64, K)> = self
            .accumulators
            .iter()
            .map(|(key, acc)| (acc.seq, key.clone()))
            .collect();
        keys.sort_unstable_by_key(|(seq, _)| *seq);
        keys.into_iter()
            .filter_map(|(_, key)| self.take(&key, reason, now))
            .collect()
    }

    /// Flushes the batch of one key with `reason`, if it has one.
    pub fn flush_key(&mut self, key: &K, reason: FlushReason, now: Instant) -> Option<Batch<K, T>> {
        self.take(key, reason, now)
    }

    /// Removes the batches of every key `forget` names, unflushed (a cluster process
    /// that no longer owns them: their new owner forms them again). Returns them,
    /// each key with its items in arrival order.
    pub fn remove(&mut self, mut forget: impl FnMut(&K) -> bool) -> Vec<(K, Vec<T>)> {
        let keys: Vec<K> = self
            .accumulators
            .keys()
            .filter(|k| forget(k))
            .cloned()
            .collect();
        keys.into_iter()
            .filter_map(|key| {
                let accumulator = self.accumulators.remove(&key)?;
                if let Some(deadline) = accumulator.deadline {
                    self.deadlines.remove(&(deadline, accumulator.seq));
                }
                self.waiting -= accumulator.items.len();
                Some((key, accumulator.items))
            })
            .collect()
    }

    /// The batches still collecting, oldest first.
    pub fn pending(&self, now: Instant) -> Vec<PendingBatch<K>> {
        let mut pending: Vec<(u64, PendingBatch<K>)> = self
            .accumulators
            .iter()
            .map(|(key, acc)| {
                (
                    acc.seq,
                    PendingBatch {
                        key: key.clone(),
                        items: acc.items.len(),
                        first_arrival: acc.first_arrival,
                        spec: acc.spec,
                        time_left: acc
                            .deadline
                            .map(|deadline| deadline.saturating_duration_since(now)),
                    },
                )
            })
            .collect();
        pending.sort_unstable_by_key(|(seq, _)| *seq);
        pending.into_iter().map(|(_, p)| p).collect()
    }

    /// The batch of `key`, if one is collecting: its items, in arrival order, and
    /// its deadline.
    pub fn collecting(&self, key: &K) -> Option<(&[T], Option<Instant>)> {
        self.accumulators
            .get(key)
            .map(|acc| (acc.items.as_slice(), acc.deadline))
    }

    /// How many batches are collecting.
    pub fn batches(&self) -> usize {
        self.accumulators.len()
    }

    /// How many items are waiting across all batches.
    pub fn waiting(&self) -> usize {
        self.waiting
    }

    /// Whether no batch is collecting.
    pub fn is_empty(&self) -> bool {
        self.accumulators.is_empty()
    }

    fn take(&mut self, key: &K, reason: FlushReason, now: Instant) -> Option<Batch<K, T>> {
        let accumulator = self.accumulators.remove(key)?;
        if let Some(deadline) = accumulator.deadline {
            self.deadlines.remove(&(deadline, accumulator.seq));
        }
        self.waiting -= accumulator.items.len();
        Some(Batch {
            key: key.clone(),
            items: accumulator.items,
            reason,
            spec: accumulator.spec,
            first_arrival: accumulator.first_arrival,
            flushed_at: now,
        })
    }
}
