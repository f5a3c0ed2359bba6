//! The join state machine: collects artifacts into groups per pool (an agent's
//! subscription) and key, completes a group once it holds every slot's count, and
//! discards an incomplete group when its window ends.
//!
//! Like [`Batcher`](crate::Batcher), [`Joiner`] does no IO and reads no clock: every
//! call takes `now`. Time windows end at deadlines kept in one ordered map shared by
//! all pools (the runtime sleeps until [`Joiner::next_deadline`]); count windows end
//! at an artifact ordinal kept in an ordered map per pool, checked as each artifact
//! arrives. Neither is a scan: ending a window touches only the groups that are due.
//!
//! # Semantics
//!
//! - **First come, first paired.** Per key, waiting artifacts are kept in arrival
//!   order. The key's current group is the first `count` artifacts of each slot; a
//!   **surplus duplicate** (an artifact of a slot the group already has enough of)
//!   waits behind it, in order, and belongs to the key's next group. Nothing is
//!   dropped: every artifact ends in exactly one completed or one discarded group.
//! - **Delivered once.** A group completes the moment it holds every slot's count; its
//!   items leave the joiner (slot order, then arrival order) and are never delivered
//!   again.
//! - **Windows.** A group's window opens with its oldest artifact. With a time window
//!   `d`, the group is discarded at `oldest + d`. With a count window `n`, the pool's
//!   next `n` artifacts (of any key) may complete it, and the `n + 1`-th discards it
//!   before joining anything, so at most `n + 1` artifacts wait per pool. Artifacts
//!   of a discarded group go with it; the surplus behind it forms the next group, whose
//!   window opened with its own oldest artifact. Without a window groups wait until
//!   [`Joiner::drain`].
//!
//! ```
//! use std::{num::NonZeroUsize, time::{Duration, Instant}};
//! use flock_batch::{DiscardReason, JoinShape, Joiner};
//! use flock_subscription::JoinWindow;
//!
//! // Slot 0: one temperature reading; slot 1: one pressure reading; 30 s window.
//! let shape = JoinShape::new([1, 1], Some(JoinWindow::Time(Duration::from_secs(30)))).unwrap();
//! let mut joiner = Joiner::new();
//! let t0 = Instant::now();
//! assert!(joiner.push("qc", &shape, "dev-1", 0, "t1", t0).completed.is_none());
//! assert!(joiner.push("qc", &shape, "dev-2", 0, "t2", t0).completed.is_none());
//! let pair = joiner.push("qc", &shape, "dev-1", 1, "p1", t0 + Duration::from_secs(5));
//! assert_eq!(pair.completed.unwrap().items, vec!["t1", "p1"]);
//!
//! let discarded = joiner.poll_expired(t0 + Duration::from_secs(30));
//! assert_eq!((discarded[0].key, discarded[0].reason), ("dev-2", DiscardReason::Window));
//! assert_eq!((discarded[0].present.clone(), discarded[0].missing.clone()), (vec![1, 0], vec![0, 1]));
//! assert!(joiner.is_empty());
//! ```

mod outcome;

pub use outcome::{
    DiscardReason, Discarded, Group, InvalidJoinShape, JoinShape, Joined, PendingGroup,
};

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    fmt,
    hash::Hash,
    num::NonZeroUsize,
    time::Instant,
};

use flock_subscription::JoinWindow;

struct Entry<T> {
    item: T,
    slot: usize,
    arrival: Instant,
    /// The pool's artifact ordinal at arrival (the count-window clock).
    ordinal: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Deadline {
    At(Instant),
    AtOrdinal(u64),
}

/// The artifacts waiting under one key.
struct Pending<T> {
    /// Arrival order: the current group's members and the surplus behind them.
    entries: VecDeque<Entry<T>>,
    /// Entries per slot.
    have: Box<[usize]>,
    /// Identifies the current group in the deadline maps.
    seq: u64,
    deadline: Option<Deadline>,
}

impl<T> Pending<T> {
    fn is_complete(&self, counts: &[NonZeroUsize]) -> bool {
        self.have
            .iter()
            .zip(counts)
            .all(|(have, n)| *have >= n.get())
    }

    /// Removes the current group's members (up to each slot's count, oldest first).
    fn take_members(&mut self, counts: &[NonZeroUsize]) -> Vec<Entry<T>> {
        let group_size: usize = counts.iter().map(|n| n.get()).sum();
        let mut taken = vec![0; counts.len()];
        let mut members = Vec::with_capacity(group_size.min(self.entries.len()));
        // Usually nothing is left: then this allocates nothing.
        let mut rest = VecDeque::with_capacity(self.entries.len().saturating_sub(group_size));
        for entry in self.entries.drain(..) {
            if taken[entry.slot] < counts[entry.slot].get() {
                taken[entry.slot] += 1;
                members.push(entry);
            } else {
                rest.push_back(entry);
            }
        }
        self.entries = rest;
        for (have, taken) in self.have.iter_mut().zip(&taken) {
            *have -= taken;
        }
        members
    }
}

struct Pool<K, T> {
    shape: JoinShape,
    groups: HashMap<K, Pending<T>>,
    /// Count windows: (ordinal that ends the window, seq) → key.
    ordinal_deadlines: BTreeMap<(u64, u64), K>,
    /// Artifacts accepted so far.
    accepted: u64,
}

/// The groups of every pool and key, and their deadlines. See the module docs for
/// the semantics.
pub struct Joiner<P, K, T> {
    pools: HashMap<P, Pool<K, T>>,
    /// Time windows of every pool: (deadline, seq) → (pool, key).
    deadlines: BTreeMap<(Instant, u64), (P, K)>,
    next_seq: u64,
    waiting: usize,
}

impl<P, K, T> Default for Joiner<P, K, T> {
    fn default() -> Self {
        Self {
            pools: HashMap::new(),
            deadlines: BTreeMap::new(),
            next_seq: 0,
            waiting: 0,
        }
    }
}

impl<P, K, T> fmt::Debug for Joiner<P, K, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Joiner")
            .field("pools", &self.pools.len())
            .field("deadlines", &self.deadlines.len())
            .field("waiting", &self.waiting)
            .finish()
    }
}

impl<P: Clone + Eq + Hash, K: Clone + Eq + Hash, T> Joiner<P, K, T> {
    /// No groups.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `item` of `slot` under `key` in `pool` at `now`. First ends the windows
    /// this arrival ends (count windows of the pool; the key's time window if its
    /// deadline passed before the timer fired), then adds the item, and returns the
    /// group if the item completed it.
    ///
    /// The shape of a pool is the one given with its first item.
    ///
    /// # Panics
    /// When `slot` is not a slot of the pool's shape.
    pub fn push(
        &mut self,
        pool: P,
        shape: &JoinShape,
        key: K,
        slot: usize,
        item: T,
        now: Instant,
    ) -> Joined<P, K, T> {
        let before = self.next_deadline();
        let mut discarded = Vec::new();
        let ordinal = {
            let state = self.pools.entry(pool.clone()).or_insert_with(|| Pool {
                shape: shape.clone(),
                groups: HashMap::new(),
                ordinal_deadlines: BTreeMap::new(),
                accepted: 0,
            });
            assert!(
                slot < state.shape.counts.len(),
                "slot {slot} is out of range for a join of {} slots",
                state.shape.counts.len()
            );
            state.accepted += 1;
            state.accepted
        };
        loop {
            let state = self.pools.get_mut(&pool).expect("pool exists");
            let Some(entry) = state.ordinal_deadlines.first_entry() else {
                break;
            };
            if entry.key().0 > ordinal {
                break;
            }
            let due = entry.remove();
            discarded.extend(self.discard_current(&pool, &due, DiscardReason::Window, now));
        }
        while self.time_deadline_of(&pool, &key).is_some_and(|d| d <= now) {
            discarded.extend(self.discard_current(&pool, &key, DiscardReason::Window, now));
        }

        let state = self.pools.get_mut(&pool).expect("pool exists");
        let pending = state.groups.entry(key.clone()).or_insert_with(|| Pending {
            entries: VecDeque::new(),
            have: vec![0; state.shape.counts.len()].into_boxed_slice(),
            seq: 0,
            deadline: None,
        });
        pending.entries.push_back(Entry {
            item,
            slot,
            arrival: now,
            ordinal,
        });
        pending.have[slot] += 1;
        self.waiting += 1;
        let opened = pending.entries.len() == 1;
        let complete = pending.is_complete(&state.shape.counts);
        if opened {
            self.arm(&pool, &key);
        }
        let completed = complete.then(|| self.complete(&pool, &key, now));

        let after = self.next_deadline();
        Joined {
            completed,
            discarded,
            earlier_deadline: after.filter(|a| before.is_none_or(|b| a < &b)),
        }
    }

    /// Discards, with reason [`DiscardReason::Window`], every group whose time window
    /// ended at or before `now`, earliest deadline first.
    pub fn poll_expired(&mut self, now: Instant) -> Vec<Discarded<P, K, T>> {
        let mut due = Vec::new();
        while let Some(entry) = self.deadlines.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (pool, key) = entry.remove();
            // `discard_current` disarms the entry just removed: harmless.
            due.extend(self.discard_current(&pool, &key, DiscardReason::Window, now));
        }
        due
    }

    /// Discards every waiting group with `reason` (the runtime uses
    /// [`DiscardReason::Shutdown`]), oldest group first; surplus artifacts come out as
    /// the groups they would have formed.
    pub fn drain(&mut self, reason: DiscardReason, now: Instant) -> Vec<Discarded<P, K, T>> {
        let mut open: Vec<(u64, P, K)> = self
            .pools
            .iter()
            .flat_map(|(pool, state)| {
                state
                    .groups
                    .iter()
                    .map(move |(key, pending)| (pending.seq, pool.clone(), key.clone()))
            })
            .collect();
        open.sort_unstable_by_key(|(seq, _, _)| *seq);
        let mut drained = Vec::new();
        for (_, pool, key) in open {
            while self.pools[&pool].groups.contains_key(&key) {
                drained.extend(self.discard_current(&pool, &key, reason, now));
            }
        }
        drained
    }

    /// The earliest time-window deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines
            .first_key_value()
            .map(|((deadline, _), _)| *deadline)
    }

    /// The groups waiting, oldest first.
    pub fn pending(&self, now: Instant) -> Vec<PendingGroup<P, K>> {
        let mut pending: Vec<(u64, PendingGroup<P, K>)> = Vec::new();
        for (pool, state) in &self.pools {
            for (key, group) in &state.groups {
                let Some(oldest) = group.entries.front() else {
                    continue;
                };
                let present: Vec<usize> = group
                    .have
                    .iter()
                    .zip(&state.shape.counts)
                    .map(|(have, n)| (*have).min(n.get()))
                    .collect();
                let missing = state
                    .shape
                    .counts
                    .iter()
                    .zip(&present)
                    .map(|(n, p)| n.get() - p)
                    .collect();
                pending.push((
                    group.seq,
                    PendingGroup {
                        pool: pool.clone(),
                        key: key.clone(),
                        present,
                        missing,
                        waiting: group.entries.len(),
                        first_arrival: oldest.arrival,
                        time_left: match group.deadline {
                            Some(Deadline::At(at)) => Some(at.saturating_duration_since(now)),
                            _ => None,
                        },
                        artifacts_left: match group.deadline {
                            Some(Deadline::AtOrdinal(end)) => {
                                Some(end.saturating_sub(state.accepted + 1))
                            }
                            _ => None,
                        },
                    },
                ));
            }
        }
        pending.sort_unstable_by_key(|(seq, _)| *seq);
        pending.into_iter().map(|(_, p)| p).collect()
    }

    /// The items waiting under `key` in `pool`, in arrival order (the current
    /// group's members and the surplus behind them), if any wait.
    pub fn waiting_items(&self, pool: &P, key: &K) -> Option<impl Iterator<Item = &T> + '_> {
        let pending = self.pools.get(pool)?.groups.get(key)?;
        Some(pending.entries.iter().map(|entry| &entry.item))
    }

    /// How many keys have artifacts waiting.
    pub fn groups(&self) -> usize {
        self.pools.values().map(|p| p.groups.len()).sum()
    }

    /// How many artifacts are waiting across all groups.
    pub fn waiting(&self) -> usize {
        self.waiting
    }

    /// Whether no artifact is waiting.
    pub fn is_empty(&self) -> bool {
        self.waiting == 0
    }

    fn time_deadline_of(&self, pool: &P, key: &K) -> Option<Instant> {
        match self.pools.get(pool)?.groups.get(key)?.deadline? {
            Deadline::At(at) => Some(at),
            Deadline::AtOrdinal(_) => None,
        }
    }

    /// Gives the key's current group (its oldest entry starts it) a fresh seq and
    /// deadline.
    fn arm(&mut self, pool: &P, key: &K) {
        let state = self.pools.get_mut(pool).expect("pool exists");
        let pending = state.groups.get_mut(key).expect("group exists");
        let oldest = pending.entries.front().expect("a group has an entry");
        let seq = self.next_seq;
        self.next_seq += 1;
        pending.seq = seq;
        pending.deadline = state.shape.window.map(|window| match window {
            JoinWindow::Time(d) => Deadline::At(oldest.arrival + d),
            JoinWindow::Count(n) => Deadline::AtOrdinal(oldest.ordinal + n.get() as u64 + 1),
        });
        match pending.deadline {
            Some(Deadline::At(at)) => {
                self.deadlines
                    .insert((at, seq), (pool.clone(), key.clone()));
            }
            Some(Deadline::AtOrdinal(end)) => {
                state.ordinal_deadlines.insert((end, seq), key.clone());
            }
            None => {}
        }
    }

    /// Removes the current group's deadline entry, then its members; re-arms for the
    /// surplus or forgets the key. Returns the members.
    fn remove_members(&mut self, pool: &P, key: &K) -> Option<(Vec<Entry<T>>, Vec<usize>)> {
        let state = self.pools.get_mut(pool)?;
        let pending = state.groups.get_mut(key)?;
        match pending.deadline.take() {
            Some(Deadline::At(at)) => {
                self.deadlines.remove(&(at, pending.seq));
            }
            Some(Deadline::AtOrdinal(end)) => {
                state.ordinal_deadlines.remove(&(end, pending.seq));
            }
            None => {}
        }
        let members = pending.take_members(&state.shape.counts);
        let mut present = vec![0; state.shape.counts.len()];
        for entry in &members {
            present[entry.slot] += 1;
        }
        self.waiting -= members.len();
        if pending.entries.is_empty() {
            state.groups.remove(key);
        } else {
            self.arm(pool, key);
        }
        Some((members, present))
    }

    fn complete(&mut self, pool: &P, key: &K, now: Instant) -> Group<P, K, T> {
        let (mut members, _) = self
            .remove_members(pool, key)
            .expect("a complete group exists");
        let first_arrival = members.iter().map(|e| e.arrival).min().unwrap_or(now);
        members.sort_by_key(|e| e.slot);
        Group {
            pool: pool.clone(),
            key: key.clone(),
            items: members.into_iter().map(|e| e.item).collect(),
            first_arrival,
            completed_at: now,
        }
    }

    fn discard_current(
        &mut self,
        pool: &P,
        key: &K,
        reason: DiscardReason,
        now: Instant,
    ) -> Option<Discarded<P, K, T>> {
        let (members, present) = self.remove_members(pool, key)?;
        let missing = self.pools[pool]
            .shape
            .counts
            .iter()
            .zip(&present)
            .map(|(n, p)| n.get().saturating_sub(*p))
            .collect();
        Some(Discarded {
            pool: pool.clone(),
            key: key.clone(),
            first_arrival: members.first().map_or(now, |e| e.arrival),
            items: members.into_iter().map(|e| e.item).collect(),
            present,
            missing,
            reason,
            discarded_at: now,
        })
    }
}
