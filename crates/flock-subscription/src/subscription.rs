//! Subscriptions: the typed `Subscribe<T>` builder and the erased `Subscription`.

use std::{
    collections::BTreeSet,
    fmt,
    marker::PhantomData,
    panic::{AssertUnwindSafe, catch_unwind},
    sync::Arc,
};

use flock_core::{Artifact, FlockType, Payload};

use crate::{BatchSpec, IntoBatchSpec, InvalidBatchSpec};

type PredicateFn = Arc<dyn Fn(&Payload) -> bool + Send + Sync>;

/// Why a subscription could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubscriptionError {
    /// The batch spec is invalid.
    #[error("invalid batch spec: {0}")]
    InvalidBatchSpec(#[from] InvalidBatchSpec),
}

/// What a subscription makes of an artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatchOutcome {
    /// Type, producer, tags and every predicate pass.
    Accepted,
    /// Something does not match.
    Rejected,
    /// A predicate panicked; the artifact counts as not matching.
    PredicatePanicked {
        /// Index of the predicate, in declaration order.
        predicate: usize,
        /// The panic message.
        message: String,
    },
}

/// The typed subscription builder passed to `.consumes::<T>(..)`.
///
/// ```
/// use std::time::Duration;
/// use flock_core::FlockType;
/// use flock_subscription::{BatchSpec, Subscribe};
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Serialize, Deserialize, FlockType)]
/// # #[flock(crate = "flock_core")]
/// # struct Order { amount: f64 }
///
/// let vip = Subscribe::<Order>::new()
///     .filter(|o| o.amount > 1000.0) // filter first
///     .batch(BatchSpec::size(10).timeout(Duration::from_secs(300))) // then batch
///     .build()?;
/// assert_eq!(vip.type_name(), "Order");
/// # Ok::<(), flock_subscription::SubscriptionError>(())
/// ```
#[must_use = "a subscription does nothing until it is passed to `.consumes(..)`"]
pub struct Subscribe<T> {
    predicates: Vec<PredicateFn>,
    from_agents: Option<BTreeSet<String>>,
    tags: BTreeSet<String>,
    batch: Option<Result<BatchSpec, InvalidBatchSpec>>,
    _type: PhantomData<fn(&T)>,
}

impl<T: FlockType> Default for Subscribe<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: FlockType> fmt::Debug for Subscribe<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscribe")
            .field("type", &T::TYPE_NAME)
            .field("predicates", &self.predicates.len())
            .field("from_agents", &self.from_agents)
            .field("tags", &self.tags)
            .field("batch", &self.batch)
            .finish()
    }
}

impl<T: FlockType> Subscribe<T> {
    /// Every artifact of type `T`, one at a time.
    pub fn new() -> Self {
        Self {
            predicates: Vec::new(),
            from_agents: None,
            tags: BTreeSet::new(),
            batch: None,
            _type: PhantomData,
        }
    }

    /// Only artifacts for which `predicate` returns true (Python's `where=`).
    /// Several calls: all must pass. Predicates run before joins and batches.
    pub fn filter<F>(mut self, predicate: F) -> Self
    where
        F: Fn(&T) -> bool + Send + Sync + 'static,
    {
        self.predicates.push(Arc::new(move |payload: &Payload| {
            payload.downcast_ref::<T>().is_some_and(&predicate)
        }));
        self
    }

    /// Only artifacts produced by these agents.
    pub fn from_agents<I, S>(mut self, agents: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.from_agents
            .get_or_insert_with(BTreeSet::new)
            .extend(agents.into_iter().map(Into::into));
        self
    }

    /// Only artifacts carrying at least one of these tags.
    pub fn tags<I, S>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tags.extend(tags.into_iter().map(Into::into));
        self
    }

    /// Batches matching artifacts by size or timeout, whichever comes first.
    pub fn batch(mut self, spec: impl IntoBatchSpec) -> Self {
        self.batch = Some(spec.into_batch_spec());
        self
    }

    /// The validated subscription.
    ///
    /// # Errors
    /// [`SubscriptionError`] when the batch spec is invalid.
    pub fn build(self) -> Result<Subscription, SubscriptionError> {
        Ok(Subscription {
            type_name: T::TYPE_NAME,
            predicates: self.predicates,
            from_agents: self.from_agents,
            tags: self.tags,
            batch: self.batch.transpose()?,
        })
    }
}

/// A validated subscription, erased over its type.
#[derive(Clone)]
pub struct Subscription {
    type_name: &'static str,
    predicates: Vec<PredicateFn>,
    from_agents: Option<BTreeSet<String>>,
    tags: BTreeSet<String>,
    batch: Option<BatchSpec>,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("type", &self.type_name)
            .field("predicates", &self.predicates.len())
            .field("from_agents", &self.from_agents)
            .field("tags", &self.tags)
            .field("batch", &self.batch)
            .finish()
    }
}

impl Subscription {
    /// The artifact type consumed.
    pub fn type_name(&self) -> &'static str {
        self.type_name
    }

    /// The batch spec, if the subscription batches.
    pub fn batch(&self) -> Option<&BatchSpec> {
        self.batch.as_ref()
    }

    /// The producers accepted, if restricted.
    pub fn from_agents(&self) -> Option<&BTreeSet<String>> {
        self.from_agents.as_ref()
    }

    /// The tags required (any of them), if any.
    pub fn tags(&self) -> &BTreeSet<String> {
        &self.tags
    }

    /// Matches an artifact: type, then producer, then tags, then predicates.
    /// A panicking predicate does not propagate; it is reported as
    /// [`MatchOutcome::PredicatePanicked`].
    pub fn matches(&self, artifact: &Artifact) -> MatchOutcome {
        if artifact.type_name() != self.type_name
            || self
                .from_agents
                .as_ref()
                .is_some_and(|agents| !agents.contains(&*artifact.produced_by))
            || (!self.tags.is_empty() && self.tags.is_disjoint(&artifact.tags))
        {
            return MatchOutcome::Rejected;
        }
        for (index, predicate) in self.predicates.iter().enumerate() {
            match catch_unwind(AssertUnwindSafe(|| predicate(&artifact.payload))) {
                Ok(true) => {}
                Ok(false) => return MatchOutcome::Rejected,
                Err(panic) => {
                    return MatchOutcome::PredicatePanicked {
                        predicate: index,
                        message: flock_core::panic_message(panic.as_ref()),
                    };
                }
            }
        }
        MatchOutcome::Accepted
    }
}

#[cfg(test)]
mod tests {
    use flock_core::Payload;
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Serialize, Deserialize, flock_core::FlockType)]
    #[flock(crate = "flock_core")]
    struct Order {
        amount: f64,
    }

    #[derive(Serialize, Deserialize, flock_core::FlockType)]
    #[flock(crate = "flock_core")]
    struct Other;

    fn order(amount: f64, by: &str, tags: &[&str]) -> Artifact {
        let mut artifact = Artifact::new(Payload::new(Order { amount }), by);
        artifact.tags = tags.iter().map(|t| (*t).to_owned()).collect();
        artifact
    }

    #[test]
    fn matches_type_producer_tags_and_every_predicate() {
        let sub = Subscribe::<Order>::new()
            .filter(|o| o.amount > 10.0)
            .filter(|o| o.amount < 100.0)
            .from_agents(["shop"])
            .tags(["vip", "eu"])
            .build()
            .unwrap();
        assert_eq!(
            sub.matches(&order(50.0, "shop", &["eu"])),
            MatchOutcome::Accepted
        );
        assert_eq!(
            sub.matches(&order(5.0, "shop", &["eu"])),
            MatchOutcome::Rejected
        );
        assert_eq!(
            sub.matches(&order(500.0, "shop", &["eu"])),
            MatchOutcome::Rejected
        );
        assert_eq!(
            sub.matches(&order(50.0, "other", &["eu"])),
            MatchOutcome::Rejected
        );
        assert_eq!(
            sub.matches(&order(50.0, "shop", &["us"])),
            MatchOutcome::Rejected
        );
        let other = Artifact::new(Payload::new(Other), "shop");
        assert_eq!(sub.matches(&other), MatchOutcome::Rejected);
    }

    #[test]
    fn panicking_predicate_is_a_reported_non_match() {
        let sub = Subscribe::<Order>::new()
            .filter(|o| o.amount > 0.0)
            .filter(|_| panic!("boom"))
            .build()
            .unwrap();
        assert_eq!(
            sub.matches(&order(1.0, "x", &[])),
            MatchOutcome::PredicatePanicked {
                predicate: 1,
                message: "boom".to_owned()
            }
        );
    }

    #[test]
    fn invalid_batch_spec_fails_the_build() {
        let err = Subscribe::<Order>::new()
            .batch(crate::BatchSpec::size(0))
            .build()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid batch spec: batch size must be at least 1, got 0"
        );
    }
}
