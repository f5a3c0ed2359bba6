//! Subscriptions: the typed `Subscribe<T>` builder, the all-of `AllOf` builder (AND
//! gates and joins), and the erased `Subscription` the runtime matches against.

use std::{
    collections::BTreeSet,
    fmt,
    marker::PhantomData,
    num::NonZeroUsize,
    panic::{AssertUnwindSafe, catch_unwind},
    sync::Arc,
};

use flock_core::{Artifact, FlockType, Payload, TypeConflict, TypeRegistry};

use crate::{
    BatchSpec, IntoBatchSpec, IntoJoinSpec, InvalidBatchSpec, InvalidJoinSpec, JoinKey,
    JoinKeyError, JoinSpec,
};

/// Extracts the batch key of an artifact (keyed batches).
type BatchKeyFn = Arc<dyn Fn(&Payload) -> Option<JoinKey> + Send + Sync>;

type PredicateFn = Arc<dyn Fn(&Payload) -> bool + Send + Sync>;
type Registrar = fn(&TypeRegistry) -> Result<(), TypeConflict>;

/// A predicate on the artifacts of one type; artifacts of other types pass it.
#[derive(Clone)]
struct Predicate {
    type_name: &'static str,
    test: PredicateFn,
}

/// Why a subscription could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubscriptionError {
    /// The batch spec is invalid.
    #[error("invalid batch spec: {0}")]
    InvalidBatchSpec(#[from] InvalidBatchSpec),
    /// The join spec is invalid, or does not fit the subscription's types.
    #[error("invalid join spec: {0}")]
    InvalidJoinSpec(#[from] InvalidJoinSpec),
    /// An all-of subscription without types.
    #[error("an all-of subscription consumes nothing; add .of::<T>()")]
    NoTypes,
    /// `of_n::<T>(0)`.
    #[error("count of type '{0}' must be at least 1, got 0")]
    ZeroCount(&'static str),
    /// A filter on a type the subscription does not consume.
    #[error("filter on type '{0}', which the subscription does not consume; add .of::<{0}>()")]
    FilterOnUnknownType(&'static str),
    /// `keyed_by` without a batch spec.
    #[error(
        "keyed_by(..) groups batches by key, but the subscription does not batch; add .batch(..)"
    )]
    KeyWithoutBatch,
}

/// Why a subscription that accepted an artifact cannot file it under a key
/// ([`Subscription::key_of`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The keyed batch's key function panicked (its message).
    #[error("batch key function panicked: {0}")]
    BatchKeyPanicked(String),
    /// The join key could not be extracted.
    #[error("no join key: {0}")]
    NoJoinKey(#[from] JoinKeyError),
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

/// One type an all-of subscription waits for, and how many of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TypeSlot {
    /// The artifact type name.
    pub type_name: &'static str,
    /// How many artifacts of the type a group needs.
    pub count: NonZeroUsize,
}

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
    predicates: Vec<Predicate>,
    from_agents: Option<BTreeSet<String>>,
    tags: BTreeSet<String>,
    join: Option<Result<JoinSpec, InvalidJoinSpec>>,
    batch: Option<Result<BatchSpec, InvalidBatchSpec>>,
    batch_key: Option<BatchKeyFn>,
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

// === impl Subscription ===

/// A validated subscription, erased over its types.
#[derive(Clone)]
pub struct Subscription {
    slots: Vec<TypeSlot>,
    registrars: Vec<Registrar>,
    predicates: Vec<Predicate>,
    from_agents: Option<BTreeSet<String>>,
    tags: BTreeSet<String>,
    batch: Option<BatchSpec>,
    batch_key: Option<BatchKeyFn>,
    join: Option<JoinSpec>,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("types", &self.slots)
            .field("predicates", &self.predicates.len())
            .field("from_agents", &self.from_agents)
            .field("tags", &self.tags)
            .field("join", &self.join)
            .field("batch", &self.batch)
            .field("keyed", &self.batch_key.is_some())
            .finish()
    }
}

impl Subscription {
    /// The artifact type consumed; for an all-of subscription, the first of its types.
    pub fn type_name(&self) -> &'static str {
        self.slots[0].type_name
    }

    /// The types consumed and how many of each a group needs, in declaration order.
    pub fn slots(&self) -> &[TypeSlot] {
        &self.slots
    }

    /// The index of `type_name` in [`Subscription::slots`].
    pub fn slot_of(&self, type_name: &str) -> Option<usize> {
        self.slots.iter().position(|s| s.type_name == type_name)
    }

    /// How many artifacts make one delivery (1 unless an AND gate).
    pub fn group_size(&self) -> usize {
        self.slots.iter().map(|s| s.count.get()).sum()
    }

    /// Whether artifacts are collected into groups before delivery: several artifacts
    /// are needed, or a join spec is given.
    pub fn is_gate(&self) -> bool {
        self.join.is_some() || self.group_size() > 1
    }

    /// The batch spec, if the subscription batches.
    pub fn batch(&self) -> Option<&BatchSpec> {
        self.batch.as_ref()
    }

    /// The join spec, if given.
    pub fn join(&self) -> Option<&JoinSpec> {
        self.join.as_ref()
    }

    /// Whether batches are kept per key ([`Subscribe::keyed_by`]).
    pub fn is_keyed(&self) -> bool {
        self.batch_key.is_some()
    }

    /// The batch key of an artifact this subscription accepted: `Ok(None)` when
    /// batches are not keyed. A panic of the key function is contained and returned
    /// as its message.
    ///
    /// # Errors
    /// The panic message when the key function panics.
    pub fn batch_key(&self, artifact: &Artifact) -> Result<Option<JoinKey>, String> {
        match &self.batch_key {
            None => Ok(None),
            Some(key) => catch_unwind(AssertUnwindSafe(|| key(&artifact.payload)))
                .map_err(|panic| flock_core::panic_message(panic.as_ref())),
        }
    }

    /// The key this subscription files an accepted artifact under: the join key of
    /// an AND gate or join (the artifact's correlation id when the gate has no
    /// [`JoinSpec`]), the batch key of a keyed batch, `None` otherwise. User key
    /// functions that panic are contained.
    ///
    /// # Errors
    /// [`KeyError`] when the key cannot be computed: the subscription does not take
    /// the artifact then.
    pub fn key_of(&self, artifact: &Artifact) -> Result<Option<JoinKey>, KeyError> {
        if !self.is_gate() {
            return self.batch_key(artifact).map_err(KeyError::BatchKeyPanicked);
        }
        match &self.join {
            None => Ok(Some(JoinKey::new(artifact.correlation_id))),
            Some(join) => join.key(artifact).map(Some).map_err(KeyError::NoJoinKey),
        }
    }

    /// The producers accepted, if restricted.
    pub fn from_agents(&self) -> Option<&BTreeSet<String>> {
        self.from_agents.as_ref()
    }

    /// The tags required (any of them), if any.
    pub fn tags(&self) -> &BTreeSet<String> {
        &self.tags
    }

    /// Registers the consumed types, so they can be published as JSON by name.
    ///
    /// # Errors
    /// [`TypeConflict`] when another Rust type holds one of the names.
    pub fn register_types(&self, registry: &TypeRegistry) -> Result<(), TypeConflict> {
        self.registrars
            .iter()
            .try_for_each(|register| register(registry))
    }

    /// Matches an artifact: type, then producer, then tags, then the predicates on its
    /// type. A panicking predicate does not propagate; it is reported as
    /// [`MatchOutcome::PredicatePanicked`].
    pub fn matches(&self, artifact: &Artifact) -> MatchOutcome {
        let type_name = artifact.type_name();
        if self.slot_of(type_name).is_none()
            || self
                .from_agents
                .as_ref()
                .is_some_and(|agents| !agents.contains(&*artifact.produced_by))
            || (!self.tags.is_empty() && self.tags.is_disjoint(&artifact.tags))
        {
            return MatchOutcome::Rejected;
        }
        for (index, predicate) in self.predicates.iter().enumerate() {
            if predicate.type_name != type_name {
                continue;
            }
            match catch_unwind(AssertUnwindSafe(|| (predicate.test)(&artifact.payload))) {
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

    #[derive(Serialize, Deserialize, flock_core::FlockType)]
    #[flock(crate = "flock_core")]
    struct Signal {
        key: String,
        ok: bool,
    }

    fn signal(ok: bool) -> Artifact {
        Artifact::new(
            Payload::new(Signal {
                key: "k".into(),
                ok,
            }),
            "x",
        )
    }

    #[test]
    fn all_of_merges_counts_in_order_of_mention() {
        let sub = AllOf::new()
            .of::<Signal>()
            .of::<Order>()
            .of_n::<Signal>(2)
            .build()
            .unwrap();
        let slots: Vec<(&str, usize)> = sub
            .slots()
            .iter()
            .map(|s| (s.type_name, s.count.get()))
            .collect();
        assert_eq!(slots, vec![("Signal", 3), ("Order", 1)]);
        assert_eq!(sub.group_size(), 4);
        assert!(sub.is_gate());
        assert_eq!(sub.slot_of("Order"), Some(1));
        assert!(!Subscribe::<Order>::new().build().unwrap().is_gate());
    }

    #[test]
    fn all_of_filters_apply_to_their_type_only() {
        let sub = AllOf::new()
            .of::<Order>()
            .of::<Signal>()
            .filter(|s: &Signal| s.ok)
            .build()
            .unwrap();
        assert_eq!(sub.matches(&signal(true)), MatchOutcome::Accepted);
        assert_eq!(sub.matches(&signal(false)), MatchOutcome::Rejected);
        assert_eq!(sub.matches(&order(1.0, "x", &[])), MatchOutcome::Accepted);
        assert_eq!(
            sub.matches(&Artifact::new(Payload::new(Other), "x")),
            MatchOutcome::Rejected
        );
    }

    #[test]
    fn invalid_all_of_subscriptions_are_rejected_with_messages() {
        let key = || crate::JoinSpec::by(|s: &Signal| s.key.clone());
        let cases: [(Result<Subscription, SubscriptionError>, &str); 6] = [
            (
                AllOf::new().build(),
                "an all-of subscription consumes nothing; add .of::<T>()",
            ),
            (
                AllOf::new().of_n::<Signal>(0).build(),
                "count of type 'Signal' must be at least 1, got 0",
            ),
            (
                AllOf::new()
                    .of::<Signal>()
                    .filter(|o: &Order| o.amount > 0.0)
                    .build(),
                "filter on type 'Order', which the subscription does not consume; add .of::<Order>()",
            ),
            (
                AllOf::new()
                    .of::<Signal>()
                    .of::<Order>()
                    .join(key().within(3))
                    .build(),
                "invalid join spec: join spec has no key for type 'Order'; add .by(|x: &Order| ..)",
            ),
            (
                AllOf::new()
                    .of::<Order>()
                    .join(key().by(|o: &Order| o.amount.to_string()).within(3))
                    .build(),
                "invalid join spec: join spec has a key for type 'Signal', which the subscription does not consume; add .of::<Signal>()",
            ),
            (
                AllOf::new().of::<Signal>().join(key()).build(),
                "invalid join spec: a join spec needs a window: add .within(duration) or .within(count)",
            ),
        ];
        for (result, message) in cases {
            assert_eq!(result.unwrap_err().to_string(), message);
        }
    }

    #[test]
    fn register_types_registers_every_consumed_type() {
        let registry = TypeRegistry::new();
        let sub = AllOf::new().of::<Signal>().of::<Order>().build().unwrap();
        sub.register_types(&registry).unwrap();
        assert_eq!(
            registry.names(),
            vec!["Order".to_owned(), "Signal".to_owned()]
        );
    }
}
