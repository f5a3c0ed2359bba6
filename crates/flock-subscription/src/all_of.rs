//! `AllOf`: the builder of an AND gate (several types, with counts), optionally
//! correlated by a `JoinSpec` and batched.

use std::{collections::BTreeSet, fmt, num::NonZeroUsize, sync::Arc};

use flock_core::{FlockType, Payload, TypeRegistry};

use crate::{
    BatchSpec, IntoBatchSpec, IntoJoinSpec, InvalidBatchSpec, InvalidJoinSpec, JoinSpec,
    Subscription, SubscriptionError,
    subscription::{BatchKeyFn, Predicate, Registrar, TypeSlot},
};

// === impl AllOf ===

/// A subscription to several artifacts at once (an AND gate), passed to
/// `.consumes_all(..)`: the agent runs once a group holds every type listed, as many
/// of each as listed.
///
/// Groups form per key: the artifacts' correlation id, unless a [`JoinSpec`] gives a
/// key per type and a window. Within a key, artifacts pair first come, first served;
/// a complete group is delivered once (to `evaluate`, or as **one** batch item when
/// the subscription also batches). Visibility, producers, tags and predicates apply
/// to each artifact before it joins a group.
///
/// ```
/// use std::time::Duration;
/// use flock_core::FlockType;
/// use flock_subscription::{AllOf, BatchSpec, JoinSpec};
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Serialize, Deserialize, FlockType)]
/// # #[flock(crate = "flock_core")]
/// # struct TemperatureSensor { device_id: String, celsius: f64 }
/// # #[derive(Serialize, Deserialize, FlockType)]
/// # #[flock(crate = "flock_core")]
/// # struct PressureSensor { device_id: String, bar: f64 }
///
/// let qc = AllOf::new()
///     .of::<TemperatureSensor>()
///     .of::<PressureSensor>()
///     .join(
///         JoinSpec::by(|t: &TemperatureSensor| t.device_id.clone())
///             .by(|p: &PressureSensor| p.device_id.clone())
///             .within(Duration::from_secs(30)), // correlate first
///     )
///     .batch(BatchSpec::size(5).timeout(Duration::from_secs(45))) // then batch 5 pairs
///     .build()?;
/// assert_eq!(qc.group_size(), 2);
///
/// // Counts: two readings of one type and one of another, per correlation id.
/// let two_and_one = AllOf::new()
///     .of_n::<TemperatureSensor>(2)
///     .of::<PressureSensor>()
///     .build()?;
/// assert_eq!(two_and_one.group_size(), 3);
/// # Ok::<(), flock_subscription::SubscriptionError>(())
/// ```
#[must_use = "a subscription does nothing until it is passed to `.consumes_all(..)`"]
pub struct AllOf {
    /// Types in order of mention, with counts; merged in `build`.
    types: Vec<(&'static str, usize, Registrar)>,
    pub(crate) predicates: Vec<Predicate>,
    pub(crate) from_agents: Option<BTreeSet<String>>,
    pub(crate) tags: BTreeSet<String>,
    join: Option<Result<JoinSpec, InvalidJoinSpec>>,
    pub(crate) batch: Option<Result<BatchSpec, InvalidBatchSpec>>,
    pub(crate) batch_key: Option<BatchKeyFn>,
}

impl Default for AllOf {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for AllOf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AllOf")
            .field(
                "types",
                &self
                    .types
                    .iter()
                    .map(|(t, n, _)| (*t, *n))
                    .collect::<Vec<_>>(),
            )
            .field("predicates", &self.predicates.len())
            .field("from_agents", &self.from_agents)
            .field("tags", &self.tags)
            .field("join", &self.join)
            .field("batch", &self.batch)
            .field("keyed", &self.batch_key.is_some())
            .finish()
    }
}

impl AllOf {
    /// No types yet; add them with [`AllOf::of`] and [`AllOf::of_n`].
    pub fn new() -> Self {
        Self {
            types: Vec::new(),
            predicates: Vec::new(),
            from_agents: None,
            tags: BTreeSet::new(),
            join: None,
            batch: None,
            batch_key: None,
        }
    }

    /// Waits for one more artifact of type `T` (`.of::<A>().of::<A>()` waits for two).
    pub fn of<T: FlockType>(self) -> Self {
        self.of_n::<T>(1)
    }

    /// Waits for `count` more artifacts of type `T`.
    pub fn of_n<T: FlockType>(mut self, count: usize) -> Self {
        self.types
            .push((T::TYPE_NAME, count, TypeRegistry::register::<T>));
        self
    }

    /// Only artifacts of type `T` for which `predicate` returns true; other types are
    /// not affected. Several calls: all must pass. Predicates run before correlation.
    pub fn filter<T, F>(mut self, predicate: F) -> Self
    where
        T: FlockType,
        F: Fn(&T) -> bool + Send + Sync + 'static,
    {
        self.predicates.push(Predicate {
            type_name: T::TYPE_NAME,
            test: Arc::new(move |payload: &Payload| {
                payload.downcast_ref::<T>().is_some_and(&predicate)
            }),
        });
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

    /// Groups by the spec's keys within its window, instead of by correlation id
    /// without a window.
    pub fn join(mut self, spec: impl IntoJoinSpec) -> Self {
        self.join = Some(spec.into_join_spec());
        self
    }

    /// Batches complete groups (each group is one item) by size or timeout.
    pub fn batch(mut self, spec: impl IntoBatchSpec) -> Self {
        self.batch = Some(spec.into_batch_spec());
        self
    }

    /// The validated subscription.
    ///
    /// # Errors
    /// [`SubscriptionError`] when no type is given, a count is 0, a filter or a join
    /// key names a type the subscription does not consume, a consumed type has no
    /// join key, or the batch or join spec is invalid.
    pub fn build(self) -> Result<Subscription, SubscriptionError> {
        let mut slots: Vec<TypeSlot> = Vec::with_capacity(self.types.len());
        let mut registrars: Vec<Registrar> = Vec::with_capacity(self.types.len());
        for (type_name, count, registrar) in self.types {
            let count = NonZeroUsize::new(count).ok_or(SubscriptionError::ZeroCount(type_name))?;
            match slots.iter_mut().find(|s| s.type_name == type_name) {
                Some(slot) => slot.count = slot.count.saturating_add(count.get()),
                None => {
                    slots.push(TypeSlot { type_name, count });
                    registrars.push(registrar);
                }
            }
        }
        if slots.is_empty() {
            return Err(SubscriptionError::NoTypes);
        }
        let consumes = |type_name: &str| slots.iter().any(|s| s.type_name == type_name);
        if let Some(p) = self.predicates.iter().find(|p| !consumes(p.type_name)) {
            return Err(SubscriptionError::FilterOnUnknownType(p.type_name));
        }
        let join = self.join.transpose()?;
        if let Some(join) = &join {
            if let Some(unknown) = join.keyed_types().find(|t| !consumes(t)) {
                return Err(InvalidJoinSpec::UnknownType(unknown).into());
            }
            if let Some(slot) = slots.iter().find(|s| !join.has_key_for(s.type_name)) {
                return Err(InvalidJoinSpec::MissingKey(slot.type_name).into());
            }
        }
        let batch = self.batch.transpose()?;
        if self.batch_key.is_some() && batch.is_none() {
            return Err(SubscriptionError::KeyWithoutBatch);
        }
        Ok(Subscription {
            slots,
            registrars,
            predicates: self.predicates,
            from_agents: self.from_agents,
            tags: self.tags,
            batch,
            batch_key: self.batch_key,
            join,
        })
    }
}
