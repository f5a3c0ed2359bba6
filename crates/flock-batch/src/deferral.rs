//! Items held until an instant: artifacts whose visibility begins later, released by
//! the runtime's one timer when it begins.

use std::{collections::BTreeMap, time::Instant};

/// Items waiting for their instant, released in instant order (arrival order among
/// equal instants). Like [`Batcher`](crate::Batcher), it reads no clock: every call
/// takes `now`.
///
/// ```
/// use std::time::{Duration, Instant};
/// use flock_batch::Deferrals;
///
/// let t0 = Instant::now();
/// let mut deferrals = Deferrals::new();
/// assert!(deferrals.push(t0 + Duration::from_secs(2), "b"));
/// assert!(deferrals.push(t0 + Duration::from_secs(1), "a"));
/// assert!(!deferrals.push(t0 + Duration::from_secs(3), "c"));
/// let due: Vec<&str> = deferrals
///     .poll_due(t0 + Duration::from_secs(2))
///     .into_iter()
///     .map(|(_, item)| item)
///     .collect();
/// assert_eq!(due, vec!["a", "b"]);
/// assert_eq!(deferrals.next_deadline(), Some(t0 + Duration::from_secs(3)));
/// ```
#[derive(Debug)]
pub struct Deferrals<T> {
    items: BTreeMap<(Instant, u64), T>,
    next_seq: u64,
}

impl<T> Default for Deferrals<T> {
    fn default() -> Self {
        Self {
            items: BTreeMap::new(),
            next_seq: 0,
        }
    }
}

impl<T> Deferrals<T> {
    /// Nothing held.
    pub fn new() -> Self {
        Self::default()
    }

    /// Holds `item` until `at`. Returns whether `at` is now the earliest instant held:
    /// the driver must re-arm its timer.
    pub fn push(&mut self, at: Instant, item: T) -> bool {
        let earliest = self.next_deadline().is_none_or(|next| at < next);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.items.insert((at, seq), item);
        earliest
    }

    /// Releases every item whose instant is at or before `now`, in instant order,
    /// each with its instant.
    pub fn poll_due(&mut self, now: Instant) -> Vec<(Instant, T)> {
        let later = self.items.split_off(&(now, u64::MAX));
        std::mem::replace(&mut self.items, later)
            .into_iter()
            .map(|((at, _), item)| (at, item))
            .collect()
    }

    /// The earliest instant held.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.items.first_key_value().map(|((at, _), _)| *at)
    }

    /// How many items are held.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}
