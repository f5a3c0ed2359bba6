//! `ArtifactFilter`: which artifacts a query returns.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{AgentIdentity, Artifact};

/// Which artifacts a query returns. Every set field must match; unset fields match all.
#[derive(Debug, Clone, Default)]
pub struct ArtifactFilter {
    /// Artifact type names (any of them).
    pub type_names: Option<BTreeSet<String>>,
    /// Producers (any of them).
    pub produced_by: Option<BTreeSet<String>>,
    /// Correlation id.
    pub correlation_id: Option<Uuid>,
    /// Tags: the artifact must carry at least one of these (when non-empty).
    pub tags: BTreeSet<String>,
    /// Created at or after.
    pub created_after: Option<DateTime<Utc>>,
    /// Created before.
    pub created_before: Option<DateTime<Utc>>,
    /// Only artifacts this identity may see.
    pub visible_to: Option<AgentIdentity>,
    /// The moment visibility is judged at (default: the query's wall-clock time).
    pub as_of: Option<DateTime<Utc>>,
    /// At most this many artifacts, oldest first.
    pub limit: Option<usize>,
}

impl ArtifactFilter {
    /// A filter matching every artifact.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only artifacts of this type.
    pub fn type_name(mut self, name: impl Into<String>) -> Self {
        self.type_names
            .get_or_insert_with(BTreeSet::new)
            .insert(name.into());
        self
    }

    /// Only artifacts of this producer.
    pub fn produced_by(mut self, producer: impl Into<String>) -> Self {
        self.produced_by
            .get_or_insert_with(BTreeSet::new)
            .insert(producer.into());
        self
    }

    /// Only artifacts of this correlation id.
    pub fn correlation_id(mut self, id: Uuid) -> Self {
        self.correlation_id = Some(id);
        self
    }

    /// Only artifacts carrying this tag (or another tag given to the filter).
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.insert(tag.into());
        self
    }

    /// Only artifacts created in `[after, before)`.
    pub fn created_between(
        mut self,
        after: Option<DateTime<Utc>>,
        before: Option<DateTime<Utc>>,
    ) -> Self {
        self.created_after = after;
        self.created_before = before;
        self
    }

    /// Only artifacts `identity` may see.
    pub fn visible_to(mut self, identity: AgentIdentity) -> Self {
        self.visible_to = Some(identity);
        self
    }

    /// Judges visibility at `now` instead of the wall clock (runtimes with a clock
    /// of their own, e.g. tests on a paused clock).
    pub fn as_of(mut self, now: DateTime<Utc>) -> Self {
        self.as_of = Some(now);
        self
    }

    /// At most `n` artifacts.
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
    }

    /// Whether `artifact` passes the filter at time `now`.
    pub fn matches(&self, artifact: &Artifact, now: DateTime<Utc>) -> bool {
        self.type_names
            .as_ref()
            .is_none_or(|names| names.contains(artifact.type_name()))
            && self
                .produced_by
                .as_ref()
                .is_none_or(|producers| producers.contains(&*artifact.produced_by))
            && self
                .correlation_id
                .is_none_or(|id| artifact.correlation_id() == Some(id))
            && (self.tags.is_empty() || !self.tags.is_disjoint(artifact.tags()))
            && self
                .created_after
                .is_none_or(|after| artifact.created_at >= after)
            && self
                .created_before
                .is_none_or(|before| artifact.created_at < before)
            && self.visible_to.as_ref().is_none_or(|identity| {
                artifact
                    .visibility()
                    .allows(identity, artifact.created_at, now)
            })
    }
}
