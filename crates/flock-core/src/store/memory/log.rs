//! The in-memory store's log: artifacts in publish order (`pages.rs`, which also
//! finds them by id) with their type index (`by_type.rs`), and eviction under a
//! [`Retention`].

use std::sync::Arc;

use super::{
    Retention,
    by_type::TypeIndex,
    pages::{Evict, Pages},
};
use crate::{Artifact, ArtifactFilter, ArtifactId, StoreError};

/// Publishes between two eviction passes: a pass walks the live artifacts, so it is
/// amortized over this many publishes.
const PASS_EVERY: usize = 1024;

/// What [`InMemoryStore`](super::InMemoryStore) keeps, without its lock: artifacts
/// in publish order, found by id and by type, evicted under a [`Retention`].
///
/// For a runtime that already holds a lock of its own around every publish: it keeps
/// a `MemoryLog` under that lock and takes one lock per publish instead of two. The
/// `flock` runtime does this with its default store. Anyone else wants
/// [`InMemoryStore`](super::InMemoryStore), which is this behind a read-write lock.
///
/// ```
/// use std::sync::Arc;
/// use flock_core::{Artifact, ArtifactFilter, MemoryLog, Payload, Retention, WorkflowError};
///
/// let mut log = MemoryLog::new(Retention::new());
/// let report = WorkflowError {
///     agent: "a".into(),
///     error: String::new(),
///     attempts: 1,
///     input_ids: Vec::new(),
///     flush_reason: None,
/// };
/// let artifact = Arc::new(Artifact::new(Payload::new(report), "external"));
/// log.insert(artifact.clone())?;
/// assert!(log.insert(artifact.clone()).is_err(), "an id is stored once");
/// assert_eq!(log.get(&artifact.id).map(|a| a.id), Some(artifact.id));
/// assert_eq!(log.select(&ArtifactFilter::new().type_name("WorkflowError")).len(), 1);
/// # Ok::<(), flock_core::StoreError>(())
/// ```
#[derive(Default)]
pub struct MemoryLog {
    pages: Pages,
    by_type: TypeIndex,
    live: usize,
    retention: Retention,
    since_pass: usize,
}

impl MemoryLog {
    /// An empty log that evicts under `retention` (keeps everything under
    /// [`Retention::new`]).
    pub fn new(retention: Retention) -> Self {
        Self {
            retention,
            ..Self::default()
        }
    }

    /// Artifacts kept.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether no artifact is kept.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Stores an artifact.
    ///
    /// # Errors
    /// [`StoreError::Duplicate`] when its id is already stored.
    pub fn insert(&mut self, artifact: Arc<Artifact>) -> Result<(), StoreError> {
        if self.contains(&artifact.id) {
            return Err(StoreError::Duplicate(artifact.id));
        }
        self.push(artifact);
        Ok(())
    }

    /// Stores several artifacts, all or none (a known or repeated id refuses them
    /// all).
    ///
    /// # Errors
    /// [`StoreError::Duplicate`] naming the first known or repeated id.
    pub fn insert_all(&mut self, artifacts: &[Arc<Artifact>]) -> Result<(), StoreError> {
        for (i, artifact) in artifacts.iter().enumerate() {
            if self.contains(&artifact.id) || artifacts[..i].iter().any(|a| a.id == artifact.id) {
                return Err(StoreError::Duplicate(artifact.id));
            }
        }
        for artifact in artifacts {
            self.push(artifact.clone());
        }
        Ok(())
    }

    /// The artifacts `filter` selects, in publish order.
    pub fn select(&self, filter: &ArtifactFilter) -> Vec<Arc<Artifact>> {
        let now = filter.as_of.unwrap_or_else(crate::time::utc_now);
        let limit = filter.limit.unwrap_or(usize::MAX);
        let matching = |artifact: &&Arc<Artifact>| filter.matches(artifact, now);
        match &filter.type_names {
            // With types given, walk only their indexes.
            Some(names) => self
                .of_types(names.iter().map(String::as_str))
                .into_iter()
                .filter(matching)
                .take(limit)
                .cloned()
                .collect(),
            None => self.iter().filter(matching).take(limit).cloned().collect(),
        }
    }

    fn contains(&self, id: &ArtifactId) -> bool {
        self.pages.contains(id)
    }

    /// Appends an artifact whose id is not stored.
    fn push(&mut self, artifact: Arc<Artifact>) {
        let type_name = artifact.type_name();
        let seq = self.pages.push(artifact);
        self.by_type.push(type_name, seq);
        self.live += 1;
        if self.retention.evicts() {
            self.since_pass += 1;
            if self.since_pass >= PASS_EVERY {
                self.since_pass = 0;
                self.evict();
            }
        }
    }

    /// The artifact with this id, if it is kept.
    pub fn get(&self, id: &ArtifactId) -> Option<&Arc<Artifact>> {
        self.pages.at(self.pages.seq_of(id)?)
    }

    /// Every artifact kept, in publish order.
    fn iter(&self) -> impl Iterator<Item = &Arc<Artifact>> {
        self.pages.iter()
    }

    /// The artifacts of some types, in publish order.
    fn of_types<'a>(&'a self, names: impl Iterator<Item = &'a str>) -> Vec<&'a Arc<Artifact>> {
        self.by_type
            .seqs(names)
            .into_iter()
            .filter_map(|seq| self.pages.at(seq))
            .collect()
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
            let newest = self.pages.iter().next_back()?.created_at;
            newest.checked_sub_signed(chrono::TimeDelta::from_std(age).ok()?)
        });
        // The sequence of the oldest of the newest `n`: everything before it is over
        // the count.
        let newest_kept = max_artifacts.map(|n| {
            self.pages
                .slots()
                .rev()
                .filter(|(_, slot)| slot.is_some())
                .nth(n.get() - 1)
                .map_or(0, |(seq, _)| seq)
        });
        let evicted = self.pages.evict(|seq, artifact| {
            let over_count = newest_kept.is_some_and(|kept| seq < kept);
            let too_old = cutoff.is_some_and(|cutoff| artifact.created_at < cutoff);
            if !(consumed || over_count || too_old) {
                if !consumed && cutoff.is_none() {
                    // Only the count applies, and it is met: the rest stays.
                    return Evict::Stop;
                }
                return Evict::Keep;
            }
            if Arc::strong_count(artifact) > 1 {
                return Evict::Keep;
            }
            Evict::Drop
        });
        self.live -= evicted;
        let pages = &self.pages;
        let stale = self
            .by_type
            .trim(|seq| seq < pages.base() || pages.at(seq).is_none());
        // Evicted artifacts behind a held one leave stale type entries; rebuild the
        // index when they outnumber the artifacts kept.
        if stale > 2 * self.live + PASS_EVERY {
            self.reindex_types();
        }
    }

    fn reindex_types(&mut self) {
        self.by_type.clear();
        for (seq, slot) in self.pages.slots() {
            if let Some(artifact) = slot {
                self.by_type.push(artifact.type_name(), seq);
            }
        }
    }
}
