//! The in-memory store's slots: artifacts in publish order, in pages of fixed size,
//! searchable by id without a hash map.
//!
//! Ids are UUID v7 made from the creation time (`ArtifactId::at`), so artifacts
//! mostly arrive in id order. An artifact whose id is above every id in order so far
//! is *in order*: it is found by binary search (over the pages, then within one),
//! and needs no index entry at all. The others (published concurrently a little out
//! of order, or forwarded with an id from elsewhere) are *strays*, found through a
//! hash map. So a publish never rehashes a table that holds every artifact, and
//! checking that a fresh id is new is one comparison.
//!
//! Pages never move once allocated (no doubling copy of the whole log), and a page
//! whose artifacts were all evicted is freed.

use std::{collections::VecDeque, sync::Arc};

use rustc_hash::FxHashMap;

use crate::{Artifact, ArtifactId};

/// Slots per page (a power of two).
const PAGE: usize = 4096;
const WORDS: usize = PAGE / 64;

/// One page of slots: `None` where an artifact was evicted.
struct Page {
    slots: Vec<Option<Arc<Artifact>>>,
    /// Which slots hold an artifact in order (bit set) rather than a stray.
    ordered: Box<[u64; WORDS]>,
    /// The highest id in order before this page: every in-order id in it is above.
    low: Option<ArtifactId>,
    /// Slots still holding an artifact.
    live: usize,
}

impl Page {
    fn new(low: Option<ArtifactId>) -> Self {
        Self {
            slots: Vec::with_capacity(PAGE),
            ordered: Box::new([0; WORDS]),
            low,
            live: 0,
        }
    }

    fn is_ordered(&self, offset: usize) -> bool {
        self.ordered[offset / 64] & (1 << (offset % 64)) != 0
    }

    /// The in-order artifact at `offset`, if that slot holds one.
    fn ordered_at(&self, offset: usize) -> Option<&Arc<Artifact>> {
        if self.is_ordered(offset) {
            self.slots[offset].as_ref()
        } else {
            None
        }
    }

    /// The offset of the in-order artifact with this id: a binary search that steps
    /// over strays and evicted slots.
    fn find(&self, id: &ArtifactId) -> Option<usize> {
        let (mut lo, mut hi) = (0, self.slots.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            // The nearest in-order artifact at or before `mid`, within [lo, mid].
            let probe = (lo..=mid)
                .rev()
                .find_map(|offset| Some((offset, self.ordered_at(offset)?)));
            let Some((offset, artifact)) = probe else {
                lo = mid + 1;
                continue;
            };
            match artifact.id.cmp(id) {
                std::cmp::Ordering::Equal => return Some(offset),
                // Nothing in order between `offset` and `mid`.
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = offset,
            }
        }
        None
    }
}

/// Artifacts in publish order. Every artifact has a sequence number; the first
/// page starts at sequence `base` (a multiple of the page size).
#[derive(Default)]
pub(super) struct Pages {
    pages: VecDeque<Page>,
    base: u64,
    /// The sequence the next artifact gets.
    next: u64,
    /// The highest id in order so far.
    last: Option<ArtifactId>,
    /// Artifacts that arrived out of id order, by id.
    strays: FxHashMap<ArtifactId, u64>,
}

impl Pages {
    /// The first sequence still in a page.
    pub(super) fn base(&self) -> u64 {
        self.base
    }

    /// Whether an artifact with this id is kept.
    pub(super) fn contains(&self, id: &ArtifactId) -> bool {
        // Above every id in order: new (strays are below it too).
        if self.last.is_none_or(|last| *id > last) {
            return false;
        }
        self.seq_of(id).is_some()
    }

    /// Appends an artifact whose id is not kept; returns its sequence.
    pub(super) fn push(&mut self, artifact: Arc<Artifact>) -> u64 {
        let seq = self.next;
        let offset = (seq - self.base) as usize;
        if offset / PAGE == self.pages.len() {
            self.pages.push_back(Page::new(self.last));
        }
        let in_order = self.last.is_none_or(|last| artifact.id > last);
        let page = self.pages.back_mut().expect("a page for the slot");
        let offset = offset % PAGE;
        if in_order {
            self.last = Some(artifact.id);
            page.ordered[offset / 64] |= 1 << (offset % 64);
        } else {
            self.strays.insert(artifact.id, seq);
        }
        page.slots.push(Some(artifact));
        page.live += 1;
        self.next += 1;
        seq
    }

    /// The sequence of the kept artifact with this id.
    pub(super) fn seq_of(&self, id: &ArtifactId) -> Option<u64> {
        if let Some(&seq) = self.strays.get(id) {
            return Some(seq);
        }
        // The last page whose in-order ids may include `id`.
        let after = self.pages.partition_point(|page| page.low < Some(*id));
        let index = after.checked_sub(1)?;
        let offset = self.pages[index].find(id)?;
        Some(self.base + (index * PAGE + offset) as u64)
    }

    /// The artifact at a sequence, if kept.
    pub(super) fn at(&self, seq: u64) -> Option<&Arc<Artifact>> {
        let offset = usize::try_from(seq.checked_sub(self.base)?).ok()?;
        self.pages
            .get(offset / PAGE)?
            .slots
            .get(offset % PAGE)?
            .as_ref()
    }

    /// Every kept artifact, in publish order.
    pub(super) fn iter(&self) -> impl DoubleEndedIterator<Item = &Arc<Artifact>> {
        self.pages
            .iter()
            .flat_map(|page| page.slots.iter().flatten())
    }

    /// Every slot with its sequence, in publish order.
    pub(super) fn slots(&self) -> impl DoubleEndedIterator<Item = (u64, &Option<Arc<Artifact>>)> {
        let base = self.base;
        self.pages
            .iter()
            .enumerate()
            .flat_map(move |(index, page)| {
                page.slots
                    .iter()
                    .enumerate()
                    .map(move |(offset, slot)| (base + (index * PAGE + offset) as u64, slot))
            })
    }

    /// Empties the slots `evict` picks (given each kept artifact with its sequence),
    /// then frees the pages at the front left empty. Returns how many were evicted.
    pub(super) fn evict(&mut self, mut evict: impl FnMut(u64, &Arc<Artifact>) -> Evict) -> usize {
        let mut evicted = 0;
        let mut seq = self.base;
        'pages: for page in &mut self.pages {
            for slot in &mut page.slots {
                if let Some(artifact) = slot {
                    match evict(seq, artifact) {
                        Evict::Keep => {}
                        Evict::Drop => {
                            if !self.strays.is_empty() {
                                self.strays.remove(&artifact.id);
                            }
                            *slot = None;
                            page.live -= 1;
                            evicted += 1;
                        }
                        Evict::Stop => break 'pages,
                    }
                }
                seq += 1;
            }
        }
        // Only full pages go: the last one is still being filled.
        while self
            .pages
            .front()
            .is_some_and(|page| page.live == 0 && page.slots.len() == PAGE)
        {
            self.pages.pop_front();
            self.base += PAGE as u64;
        }
        evicted
    }
}

/// What [`Pages::evict`] does with one artifact.
pub(super) enum Evict {
    Keep,
    Drop,
    /// Keep this one and every later one.
    Stop,
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::{Payload, WorkflowError};

    fn artifact(id: u128) -> Arc<Artifact> {
        let report = WorkflowError {
            agent: String::new(),
            error: String::new(),
            attempts: 0,
            input_ids: Vec::new(),
            flush_reason: None,
        };
        let mut artifact = Artifact::new_at(
            Payload::new(report),
            "external",
            DateTime::<Utc>::UNIX_EPOCH,
        );
        artifact.id = ArtifactId(uuid::Uuid::from_u128(id));
        Arc::new(artifact)
    }

    #[test]
    fn ids_in_order_and_strays_are_all_found() {
        let mut pages = Pages::default();
        // Ascending with gaps, a descending run (strays), then ascending again.
        let mut ids: Vec<u128> = (0..10_000).map(|i| 1_000 + 3 * i).collect();
        ids.extend((0..500).map(|i| 999 - i));
        ids.extend((0..9_000).map(|i| 100_000 + 2 * i));
        ids.extend([40_001, 40_002, 120_000]);
        for (seq, &id) in ids.iter().enumerate() {
            assert!(
                !pages.contains(&ArtifactId(uuid::Uuid::from_u128(id))),
                "{id} new"
            );
            assert_eq!(pages.push(artifact(id)), seq as u64);
        }
        for (seq, &id) in ids.iter().enumerate() {
            let id = ArtifactId(uuid::Uuid::from_u128(id));
            assert_eq!(pages.seq_of(&id), Some(seq as u64), "{id}");
            assert_eq!(pages.at(seq as u64).unwrap().id, id);
        }
        for absent in [0, 1_001, 40_000, 99_999, 100_001, 200_000] {
            assert!(
                !pages.contains(&ArtifactId(uuid::Uuid::from_u128(absent))),
                "{absent}"
            );
        }
        assert_eq!(pages.iter().count(), ids.len());
    }

    #[test]
    fn evicted_artifacts_are_gone_and_empty_pages_freed() {
        let mut pages = Pages::default();
        for id in 1..=(3 * PAGE as u128) {
            pages.push(artifact(id));
        }
        // Keep every 1000th; the first page keeps one, so it stays.
        let evicted = pages.evict(|seq, _| {
            if seq % 1000 == 0 {
                Evict::Keep
            } else {
                Evict::Drop
            }
        });
        assert_eq!(evicted, 3 * PAGE - 13);
        for id in 1..=(3 * PAGE as u128) {
            let found = pages.seq_of(&ArtifactId(uuid::Uuid::from_u128(id)));
            assert_eq!(found.is_some(), (id - 1) % 1000 == 0, "{id}");
        }
        pages.evict(|_, _| Evict::Drop);
        assert_eq!(pages.base(), 3 * PAGE as u64);
        assert_eq!(pages.iter().count(), 0);
        assert_eq!(pages.push(artifact(1_000_000)), 3 * PAGE as u64);
        assert!(pages.contains(&ArtifactId(uuid::Uuid::from_u128(1_000_000))));
    }
}
