//! Admission control: an optional bound on the items waiting in batches, and what an
//! external publish does when it is reached (wait for room, or fail).

use std::num::NonZeroUsize;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// What [`Flock::publish`](crate::Flock::publish) does when a limit is reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFull {
    /// Wait until flushes make room (backpressure). The wait ends with
    /// `PublishError::Closed` if the flock shuts down meanwhile.
    ///
    /// Room must always come: registration refuses a batch subscription without a
    /// timeout that the bounds could wedge (a per-subscription limit below its size, a
    /// keyed one under any bound, or size-only batches that together can hold the
    /// total bound without filling), with `RegistrationError::WouldBlock`.
    #[default]
    Wait,
    /// Fail at once with `PublishError::Full`.
    Reject,
}

/// A limit of 0 was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{what} must be at least 1, got 0; leave the limit unset for no limit")]
pub struct InvalidAdmission {
    what: &'static str,
}

/// Bounds on items waiting in batches (artifacts, or complete join groups).
///
/// The total bound counts every batch of the flock; the per-subscription bound
/// counts all batches of one subscription (all keys of a keyed subscription).
/// Only external publishes are held back: outputs of agents are always accepted, so
/// a running agent can never block on its own downstream. Artifacts still waiting
/// for join partners are bounded by the join's window, not by admission.
///
/// The check runs before the artifact is stored; concurrent publishers may pass it
/// together, so a bound can be exceeded by at most one item per concurrent publisher.
///
/// ```
/// use flock::{Admission, Flock, OnFull};
///
/// let admission = Admission::new()
///     .max_waiting(100_000)?
///     .max_waiting_per_subscription(10_000)?
///     .on_full(OnFull::Reject);
/// let flock = Flock::builder().admission(admission).build();
/// # Ok::<(), flock::InvalidAdmission>(())
/// ```
///
/// From configuration (serde), validated as the methods validate: `{ max_waiting =
/// 100000, max_waiting_per_subscription = 10000, on_full = "reject" }`, every field
/// optional (`on_full` defaults to `"wait"`); a limit of 0 is an error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Admission {
    pub(crate) max_waiting: Option<NonZeroUsize>,
    pub(crate) per_subscription: Option<NonZeroUsize>,
    pub(crate) on_full: OnFull,
}

impl Admission {
    /// No bounds (the default of a flock); add them with the methods below.
    pub fn new() -> Self {
        Self::default()
    }

    /// At most `n` items waiting in all batches together.
    ///
    /// # Errors
    /// [`InvalidAdmission`] for 0.
    pub fn max_waiting(mut self, n: usize) -> Result<Self, InvalidAdmission> {
        self.max_waiting = Some(NonZeroUsize::new(n).ok_or(InvalidAdmission {
            what: "max_waiting",
        })?);
        Ok(self)
    }

    /// At most `n` items waiting in the batches of any one subscription.
    ///
    /// # Errors
    /// [`InvalidAdmission`] for 0.
    pub fn max_waiting_per_subscription(mut self, n: usize) -> Result<Self, InvalidAdmission> {
        self.per_subscription = Some(NonZeroUsize::new(n).ok_or(InvalidAdmission {
            what: "max_waiting_per_subscription",
        })?);
        Ok(self)
    }

    /// What a publish does at a bound (default: [`OnFull::Wait`]).
    pub fn on_full(mut self, on_full: OnFull) -> Self {
        self.on_full = on_full;
        self
    }

    pub(crate) fn is_bounded(&self) -> bool {
        self.max_waiting.is_some() || self.per_subscription.is_some()
    }

    /// How a batch subscription that flushes by size only (`size` items, no timeout)
    /// could make publishing wait forever under these bounds, if it could.
    ///
    /// With [`OnFull::Wait`] a publish waits until a flush makes room. A batch with a
    /// timeout always flushes in time; a size-only batch flushes only when an item
    /// fills it, and that item may be the publish that waits. `size_only_waiting`
    /// is how many items the size-only batches registered before can hold without
    /// any of them filling; `join` subscriptions are not held to the per-subscription
    /// bound (the publish path does not check it for them).
    pub(crate) fn would_block(
        &self,
        size: usize,
        keyed: bool,
        join: bool,
        size_only_waiting: usize,
    ) -> Option<String> {
        if self.on_full != OnFull::Wait {
            return None;
        }
        if keyed && self.is_bounded() {
            return Some(format!(
                "it keeps one batch per key that flushes only at {size} items, and with \
                 OnFull::Wait under an admission bound the keys together can reach the bound \
                 before any batch fills"
            ));
        }
        if let Some(limit) = self.per_subscription.filter(|_| !join)
            && size > limit.get()
        {
            return Some(format!(
                "its batch flushes only at {size} items, but max_waiting_per_subscription is \
                 {limit} with OnFull::Wait: the batch can never fill"
            ));
        }
        if let Some(limit) = self.max_waiting {
            let held = size_only_waiting + (size - 1);
            if held >= limit.get() {
                return Some(format!(
                    "batches that flush only by size can hold {held} items together without \
                     filling, and max_waiting is {limit} with OnFull::Wait"
                ));
            }
        }
        None
    }
}

/// Units (artifacts, or complete join groups) waiting for their run, as the
/// admission bounds count them: from admission until the run that processes them
/// finishes. See [`Flock::admission_counts`](crate::Flock::admission_counts).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AdmissionCounts {
    /// Units waiting in all.
    pub total: usize,
    /// Units waiting per subscription, for each subscription with any: (agent,
    /// subscription index, units), in agent registration then declaration order.
    pub per_subscription: Vec<(String, usize, usize)>,
}

impl AdmissionCounts {
    /// Units waiting for one subscription.
    pub fn of(&self, agent: &str, subscription_index: usize) -> usize {
        self.per_subscription
            .iter()
            .find(|(a, s, _)| a == agent && *s == subscription_index)
            .map_or(0, |(_, _, n)| *n)
    }
}

// === impl Serialize, Deserialize for Admission ===

/// Admission bounds as written in configuration.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename = "Admission")]
struct AdmissionFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_waiting: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_waiting_per_subscription: Option<usize>,
    #[serde(default)]
    on_full: OnFull,
}

impl Serialize for Admission {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        AdmissionFields {
            max_waiting: self.max_waiting.map(NonZeroUsize::get),
            max_waiting_per_subscription: self.per_subscription.map(NonZeroUsize::get),
            on_full: self.on_full,
        }
        .serialize(serializer)
    }
}

/// Reads the fields [`Serialize`] writes; a limit of 0 is an [`InvalidAdmission`]
/// error, as from the methods.
impl<'de> Deserialize<'de> for Admission {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let fields = AdmissionFields::deserialize(deserializer)?;
        let mut admission = Admission::new().on_full(fields.on_full);
        if let Some(n) = fields.max_waiting {
            admission = admission.max_waiting(n).map_err(de::Error::custom)?;
        }
        if let Some(n) = fields.max_waiting_per_subscription {
            admission = admission
                .max_waiting_per_subscription(n)
                .map_err(de::Error::custom)?;
        }
        Ok(admission)
    }
}
