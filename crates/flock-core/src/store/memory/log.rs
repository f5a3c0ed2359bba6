//! The in-memory store's log: artifacts in publish order with their id and type
//! indexes, and eviction under a [`Retention`].

use std::{collections::VecDeque, sync::Arc};

use rustc_hash::FxHashMap;

use super::Retention;
use crate::{Artifact, ArtifactId};

/// Publishes between two eviction passes: a pass walks the live artifacts, so it is
/// amortized over this many publishes.
const PASS_EVERY: usize = 1024;

/// Artifacts in publish order. Every artifact has a sequence number; `slots[0]`
/// holds sequence `base`, and an evicted artifact leaves `None` until the slots
/// before it are gone too.
#[derive(Default)]
pub(super) struct Log {
    slots: VecDeque<Option<Arc<Artifact>>>,
    base: u64,
    by_id: FxHashMap<ArtifactId, u64>,
    /// Sequences per type, ascending; may name evicted slots (skipped, trimmed).
    by_type: FxHashMap<&'static str, VecDeque<u64>>,
    live: usize,
    retention: Retention,
    since_pass: usize,
}

impl Log {
    pub(super) fn new(retention: Retention) -> Self {
        Self {
            retention,
            ..Self::default()
        }
    }

    /// Artifacts kept.
    pub(super) fn len(&self) -> usize {
        self.live
    }

    pub(super) fn contains(&self, id: &ArtifactId) -> bool {
        self.by_id.contains_key(id)
    }

    /// Appends an artifact whose id is not stored.
    pub(super) fn push(&mut self, artifact: Arc<Artifact>) {
        let seq = self.base + self.slots.len() as u64;
        self.by_id.insert(artifact.id, seq);
        self.by_type
            .entry(artifact.type_name())
            .or_default()
            .push_back(seq);
        self.slots.push_back(Some(artifact));
        self.live += 1;
        if self.retention.evicts() {
            self.since_pass += 1;
            if self.since_pass >= PASS_EVERY {
                self.since_pass = 0;
                self.evict();
            }
        }
    }

    fn at(&self, seq: u64) -> Option<&Arc<Artifact>> {
        let offset = usize::try_from(seq.checked_sub(self.base)?).ok()?;
        self.slots.get(offset)?.as_ref()
    }

    pub(super) fn get(&self, id: &ArtifactId) -> Option<&Arc<Artifact>> {
        self.at(*self.by_id.get(id)?)
    }

    /// Every artifact kept, in publish order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Arc<Artifact>> {
        self.slots.iter().flatten()
    }

    /// The artifacts of some types, in publish order.
    pub(super) fn of_types<'a>(
        &'a self,
        names: impl Iterator<Item = &'a str>,
    ) -> Vec<&'a Arc<Artifact>> {
        let mut seqs: Vec<u64> = Vec::new();
        let mut lists = 0;
        for name in names {
            if let Some(list) = self.by_type.get(name) {
                seqs.extend(list.iter().copied());
                lists += 1;
            }
        }
        if lists > 1 {
            seqs.sort_unstable();
        }
        seqs.into_iter().filter_map(|seq| self.at(seq)).collect()
    }

    /// Evicts what the retention lets go of and nothing holds. An artifact held
    /// elsewhere (a batch, a join group, a deferral, a run, a failed run, a caller)
    /// has a reference count above one; under the store's write lock nobody can take
    /// a new reference to one that has none.
    fn evict(&mut self) {
        let Retention {
            max_artifacts,
            max_age,
            consumed,
        } = self.retention;
        let cutoff = max_age.and_then(|age| {
            let newest = self.slots.iter().rev().flatten().next()?.created_at;
            newest.checked_sub_signed(chrono::TimeDelta::from_std(age).ok()?)
        });
        // The oldest of the newest `n`: everything before it is over the count.
        let newest_kept = max_artifacts.map(|n| {
            self.slots
                .iter()
                .enumerate()
                .rev()
                .filter(|(_, slot)| slot.is_some())
                .nth(n.get() - 1)
                .map_or(0, |(offset, _)| offset)
        });
        let mut evicted = Vec::new();
        for (offset, slot) in self.slots.iter_mut().enumerate() {
            let Some(artifact) = slot else { continue };
            let over_count = newest_kept.is_some_and(|kept| offset < kept);
            let too_old = cutoff.is_some_and(|cutoff| artifact.created_at < cutoff);
            if !(consumed || over_count || too_old) {
                if !consumed && cutoff.is_none() {
                    // Only the count applies, and it is met: the rest stays.
                    break;
                }
                continue;
            }
            if Arc::strong_count(artifact) > 1 {
                continue;
            }
            evicted.push(artifact.id);
            *slot = None;
        }
        self.live -= evicted.len();
        for id in &evicted {
            self.by_id.remove(id);
        }
        while matches!(self.slots.front(), Some(None)) {
            self.slots.pop_front();
            self.base += 1;
        }
        let mut stale = 0;
        for list in self.by_type.values_mut() {
            while list.front().is_some_and(|&seq| {
                seq < self.base || self.slots[(seq - self.base) as usize].is_none()
            }) {
                list.pop_front();
            }
            stale += list.len();
        }
        // Evicted artifacts behind a held one leave stale type entries; rebuild the
        // index when they outnumber the artifacts kept.
        if stale > 2 * self.live + PASS_EVERY {
            self.reindex_types();
        }
        self.by_type.retain(|_, list| !list.is_empty());
    }

    fn reindex_types(&mut self) {
        let mut by_type: FxHashMap<&'static str, VecDeque<u64>> = FxHashMap::default();
        for (offset, slot) in self.slots.iter().enumerate() {
            if let Some(artifact) = slot {
                by_type
                    .entry(artifact.type_name())
                    .or_default()
                    .push_back(self.base + offset as u64);
            }
        }
        self.by_type = by_type;
    }
}
