//! The erased `Subscription` the runtime matches against (built by `Subscribe<T>`
//! and `AllOf`), its errors, and what it makes of an artifact.

use std::{
    collections::BTreeSet,
    fmt,
    num::NonZeroUsize,
    panic::{AssertUnwindSafe, catch_unwind},
    sync::Arc,
};

use flock_core::{Artifact, Payload, TypeConflict, TypeRegistry};

use crate::{BatchSpec, InvalidBatchSpec, InvalidJoinSpec, JoinKey, JoinKeyError, JoinSpec};

/// Extracts the batch key of an artifact (keyed batches).
pub(crate) type BatchKeyFn = Arc<dyn Fn(&Payload) -> Option<JoinKey> + Send + Sync>;

pub(crate) type PredicateFn = Arc<dyn Fn(&Payload) -> bool + Send + Sync>;
pub(crate) type Registrar = fn(&TypeRegistry) -> Result<(), TypeConflict>;

/// A predicate on the artifacts of one type; artifacts of other types pass it.
#[derive(Clone)]
pub(crate) struct Predicate {
    pub(crate) type_name: &'static str,
    pub(crate) test: PredicateFn,
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

// === impl Subscription ===

/// A validated subscription, erased over its types.
#[derive(Clone)]
pub struct Subscription {
    pub(crate) slots: Vec<TypeSlot>,
    pub(crate) registrars: Vec<Registrar>,
    pub(crate) predicates: Vec<Predicate>,
    pub(crate) from_agents: Option<BTreeSet<String>>,
    pub(crate) tags: BTreeSet<String>,
    pub(crate) batch: Option<BatchSpec>,
    pub(crate) batch_key: Option<BatchKeyFn>,
    pub(crate) join: Option<JoinSpec>,
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
        // Type names are `&'static str` constants: mostly the same pointer.
        self.slots
            .iter()
            .position(|s| std::ptr::eq(s.type_name, type_name) || s.type_name == type_name)
    }

    /// How many artifacts make one delivery (1 unless an AND gate).
    pub fn group_size(&self) -> usize {
        self.slots.iter().map(|s| s.count.get()).sum()
    }

    /// Whether one delivery is one artifact of one type.
    #[inline]
    fn is_single(&self) -> bool {
        matches!(self.slots.as_slice(), [slot] if slot.count.get() == 1)
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

    /// Whether batches are kept per key ([`Subscribe::keyed_by`](crate::Subscribe::keyed_by)).
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
    #[inline]
    pub fn key_of(&self, artifact: &Artifact) -> Result<Option<JoinKey>, KeyError> {
        // The common subscription, of one artifact of one type and no key: decided
        // where it is asked, without a call.
        if self.batch_key.is_none() && self.join.is_none() && self.is_single() {
            return Ok(None);
        }
        self.key_of_rule(artifact)
    }

    fn key_of_rule(&self, artifact: &Artifact) -> Result<Option<JoinKey>, KeyError> {
        if !self.is_gate() {
            return self.batch_key(artifact).map_err(KeyError::BatchKeyPanicked);
        }
        match &self.join {
            None => Ok(Some(JoinKey::new(artifact.correlation_id()))),
            Some(join) => join.key(artifact).map(Some).map_err(KeyError::NoJoinKey),
        }
    }

    /// Whether deciding if this subscription takes an artifact may call user code:
    /// a predicate, a batch key function or a join's key functions. A runtime may
    /// route an artifact whose subscriptions call none while it holds a lock.
    pub fn calls_user_code(&self) -> bool {
        !self.predicates.is_empty() || self.batch_key.is_some() || self.join.is_some()
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
    #[inline]
    pub fn matches(&self, artifact: &Artifact) -> MatchOutcome {
        // The common subscription, to one type with no filter: decided where it is
        // asked, without a call.
        if self.predicates.is_empty()
            && self.from_agents.is_none()
            && self.tags.is_empty()
            && let [slot] = self.slots.as_slice()
            && std::ptr::eq(slot.type_name, artifact.type_name())
        {
            return MatchOutcome::Accepted;
        }
        self.matches_filters(artifact)
    }

    fn matches_filters(&self, artifact: &Artifact) -> MatchOutcome {
        let type_name = artifact.type_name();
        if self.slot_of(type_name).is_none()
            || self
                .from_agents
                .as_ref()
                .is_some_and(|agents| !agents.contains(&*artifact.produced_by))
            || (!self.tags.is_empty() && self.tags.is_disjoint(artifact.tags()))
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
    use crate::{AllOf, Subscribe};

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
        artifact.set_tags(tags.iter().map(|t| (*t).to_owned()).collect());
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
    fn user_code_is_predicates_and_key_functions() {
        let plain = Subscribe::<Order>::new()
            .from_agents(["shop"])
            .tags(["eu"])
            .batch(crate::BatchSpec::size(3))
            .build()
            .unwrap();
        assert!(
            !plain.calls_user_code(),
            "producers, tags and batches are not"
        );
        let gate = AllOf::new().of::<Signal>().of::<Order>().build().unwrap();
        assert!(
            !gate.calls_user_code(),
            "a gate keyed by correlation id is not"
        );
        let filtered = Subscribe::<Order>::new().filter(|o| o.amount > 1.0);
        assert!(filtered.build().unwrap().calls_user_code());
        let keyed = Subscribe::<Order>::new()
            .batch(crate::BatchSpec::size(3))
            .keyed_by(|o: &Order| o.amount > 1.0);
        assert!(keyed.build().unwrap().calls_user_code());
        let joined = AllOf::new()
            .of::<Signal>()
            .join(crate::JoinSpec::by(|s: &Signal| s.key.clone()).within(3))
            .build()
            .unwrap();
        assert!(joined.calls_user_code());
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
