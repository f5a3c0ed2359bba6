//! How long the in-memory store keeps artifacts.

use std::{num::NonZeroUsize, time::Duration};

/// How long an [`InMemoryStore`](super::InMemoryStore) keeps artifacts.
///
/// By default it keeps every artifact for the life of the process (it is a
/// blackboard). With a retention, it evicts what no one holds any more and the
/// policy lets go of: by count (only the newest `n`), by age (only those created
/// within `d` of the newest), or as soon as every agent that takes the artifact is
/// done with it. An artifact still waiting in a batch, a join group, an `After`
/// deferral, a run's inputs or a failed run is never evicted, nor one a caller still
/// holds (an `Arc` from a query). Evicted artifacts are gone: `get` answers `None`
/// and queries leave them out.
///
/// ```
/// use std::time::Duration;
/// use flock_core::Retention;
///
/// let retention = Retention::new()
///     .max_artifacts(1_000_000)?
///     .max_age(Duration::from_secs(3600))?
///     .drop_consumed();
/// assert!(retention.evicts());
/// assert!(!Retention::new().evicts());
/// # Ok::<(), flock_core::InvalidRetention>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    pub(super) max_artifacts: Option<NonZeroUsize>,
    pub(super) max_age: Option<Duration>,
    pub(super) consumed: bool,
}

/// A retention limit of zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{what} must be greater than zero; leave it unset to keep artifacts regardless")]
pub struct InvalidRetention {
    what: &'static str,
}

impl Retention {
    /// Keep everything (the default).
    pub fn new() -> Self {
        Self::default()
    }

    /// Keep at most the newest `n` artifacts (beyond those held).
    ///
    /// # Errors
    /// [`InvalidRetention`] for 0.
    pub fn max_artifacts(mut self, n: usize) -> Result<Self, InvalidRetention> {
        self.max_artifacts = Some(NonZeroUsize::new(n).ok_or(InvalidRetention {
            what: "max_artifacts",
        })?);
        Ok(self)
    }

    /// Keep artifacts created within `age` of the newest one (beyond those held).
    ///
    /// # Errors
    /// [`InvalidRetention`] for a zero duration.
    pub fn max_age(mut self, age: Duration) -> Result<Self, InvalidRetention> {
        if age.is_zero() {
            return Err(InvalidRetention { what: "max_age" });
        }
        self.max_age = Some(age);
        Ok(self)
    }

    /// Drop an artifact once every agent that takes it is done with it (nothing holds
    /// it any more): the blackboard keeps only what is still waiting or running.
    pub fn drop_consumed(mut self) -> Self {
        self.consumed = true;
        self
    }

    /// Whether the store evicts anything under this retention.
    pub fn evicts(&self) -> bool {
        self.max_artifacts.is_some() || self.max_age.is_some() || self.consumed
    }
}
