//! `Subscribe<T>`: the typed builder of a subscription to one artifact type.

use std::{fmt, marker::PhantomData, sync::Arc};

use flock_core::{FlockType, Payload};

use crate::{AllOf, IntoBatchSpec, JoinKey, Subscription, SubscriptionError};

// === impl Subscribe ===

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
    inner: AllOf,
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
            .field("predicates", &self.inner.predicates.len())
            .field("from_agents", &self.inner.from_agents)
            .field("tags", &self.inner.tags)
            .field("batch", &self.inner.batch)
            .finish()
    }
}

impl<T: FlockType> Subscribe<T> {
    /// Every artifact of type `T`, one at a time.
    pub fn new() -> Self {
        Self {
            inner: AllOf::new().of::<T>(),
            _type: PhantomData,
        }
    }

    /// Only artifacts for which `predicate` returns true (Python's `where=`).
    /// Several calls: all must pass. Predicates run before joins and batches.
    pub fn filter<F>(mut self, predicate: F) -> Self
    where
        F: Fn(&T) -> bool + Send + Sync + 'static,
    {
        self.inner = self.inner.filter(predicate);
        self
    }

    /// Only artifacts produced by these agents.
    pub fn from_agents<I, S>(mut self, agents: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.inner = self.inner.from_agents(agents);
        self
    }

    /// Only artifacts carrying at least one of these tags.
    pub fn tags<I, S>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.inner = self.inner.tags(tags);
        self
    }

    /// Keeps one batch per key instead of one per subscription: each key (a tenant,
    /// a customer, a device) collects its own items and flushes on its own size and
    /// deadline. Needs [`Subscribe::batch`]. A key function that panics makes the
    /// artifact a non-match, reported like a panicking predicate.
    ///
    /// ```
    /// use std::time::Duration;
    /// use flock_core::FlockType;
    /// use flock_subscription::{BatchSpec, Subscribe};
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Serialize, Deserialize, FlockType)]
    /// # #[flock(crate = "flock_core")]
    /// # struct Event { tenant_id: String }
    ///
    /// let per_tenant = Subscribe::<Event>::new()
    ///     .batch(BatchSpec::size(50).timeout(Duration::from_secs(300)))
    ///     .keyed_by(|e| e.tenant_id.clone())
    ///     .build()?;
    /// assert!(per_tenant.is_keyed());
    /// # Ok::<(), flock_subscription::SubscriptionError>(())
    /// ```
    pub fn keyed_by<K, F>(mut self, key: F) -> Self
    where
        K: std::hash::Hash + Eq + fmt::Debug + Send + Sync + 'static,
        F: Fn(&T) -> K + Send + Sync + 'static,
    {
        self.inner.batch_key = Some(Arc::new(move |payload: &Payload| {
            payload
                .downcast_ref::<T>()
                .map(|value| JoinKey::new(key(value)))
        }));
        self
    }

    /// Batches matching artifacts by size or timeout, whichever comes first.
    pub fn batch(mut self, spec: impl IntoBatchSpec) -> Self {
        self.inner = self.inner.batch(spec);
        self
    }

    /// The validated subscription.
    ///
    /// # Errors
    /// [`SubscriptionError`] when the batch spec is invalid.
    pub fn build(self) -> Result<Subscription, SubscriptionError> {
        self.inner.build()
    }
}
