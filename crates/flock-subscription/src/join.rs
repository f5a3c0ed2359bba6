//! `JoinSpec`: correlate artifacts of several types by a key, within a window of time
//! or of artifacts; and `JoinKey`, the erased key groups are formed by.

use std::{
    any::{Any, TypeId},
    fmt,
    hash::{Hash, Hasher},
    marker::PhantomData,
    num::NonZeroUsize,
    panic::{AssertUnwindSafe, catch_unwind},
    sync::Arc,
    time::Duration,
};

use chrono::TimeDelta;
use flock_core::{Artifact, FlockType};
use uuid::Uuid;

use crate::{IntoTimeout, InvalidDuration};

type KeyFn = Arc<dyn Fn(&Artifact) -> Option<JoinKey> + Send + Sync>;

/// Why a join spec was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidJoinSpec {
    /// A zero duration window.
    #[error("join window must be greater than zero, got 0s")]
    ZeroDuration,
    /// A count window of 0 artifacts.
    #[error("join window must be at least 1 artifact, got 0")]
    ZeroCount,
    /// A negative `chrono::TimeDelta` window.
    #[error("join window must be positive: {0}")]
    NegativeDuration(#[from] InvalidDuration),
    /// No `.within(..)`.
    #[error("a join spec needs a window: add .within(duration) or .within(count)")]
    NoWindow,
    /// Two `.by(..)` for one type.
    #[error("join spec has two keys for type '{0}'; give one .by(..) per type")]
    DuplicateKey(&'static str),
    /// A type the subscription consumes has no key.
    #[error("join spec has no key for type '{0}'; add .by(|x: &{0}| ..)")]
    MissingKey(&'static str),
    /// A key for a type the subscription does not consume.
    #[error(
        "join spec has a key for type '{0}', which the subscription does not consume; add .of::<{0}>()"
    )]
    UnknownType(&'static str),
}

/// Why no key could be taken from an artifact.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoinKeyError {
    /// The spec has no key for the artifact's type.
    #[error("join spec has no key for type '{0}'")]
    NoKey(&'static str),
    /// The key function panicked.
    #[error("join key of type '{type_name}' panicked: {message}")]
    Panicked {
        /// The artifact's type.
        type_name: &'static str,
        /// The panic message.
        message: String,
    },
}

// === impl JoinWindow ===

/// How long an incomplete group waits for its missing artifacts.
///
/// A group's window opens with its first artifact:
/// - `Time(d)`: artifacts arriving less than `d` after it may join; at `first + d` the
///   group, still incomplete, is discarded (driven by a deadline, not by a scan).
/// - `Count(n)`: the next `n` artifacts the subscription accepts (of any key) may join;
///   the `n + 1`-th finds the group discarded. At most `n + 1` artifacts wait per
///   subscription, so count windows cannot leak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JoinWindow {
    /// A duration on a monotonic clock.
    Time(Duration),
    /// A number of artifacts accepted by the subscription after the group's first.
    Count(NonZeroUsize),
}

impl fmt::Display for JoinWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Time(d) => write!(f, "{d:?}"),
            Self::Count(n) if n.get() == 1 => f.write_str("1 artifact"),
            Self::Count(n) => write!(f, "{n} artifacts"),
        }
    }
}

/// A value usable as a join window: a `std::time::Duration`, a `chrono::TimeDelta`,
/// or a `usize` count of artifacts.
pub trait IntoJoinWindow {
    /// The validated window.
    ///
    /// # Errors
    /// [`InvalidJoinSpec`] for a zero or negative duration or a zero count.
    fn into_join_window(self) -> Result<JoinWindow, InvalidJoinSpec>;
}

impl IntoJoinWindow for JoinWindow {
    fn into_join_window(self) -> Result<JoinWindow, InvalidJoinSpec> {
        match self {
            Self::Time(d) => d.into_join_window(),
            Self::Count(_) => Ok(self),
        }
    }
}

impl IntoJoinWindow for Duration {
    fn into_join_window(self) -> Result<JoinWindow, InvalidJoinSpec> {
        if self.is_zero() {
            return Err(InvalidJoinSpec::ZeroDuration);
        }
        Ok(JoinWindow::Time(self))
    }
}

impl IntoJoinWindow for TimeDelta {
    fn into_join_window(self) -> Result<JoinWindow, InvalidJoinSpec> {
        self.into_timeout()?.into_join_window()
    }
}

impl IntoJoinWindow for usize {
    fn into_join_window(self) -> Result<JoinWindow, InvalidJoinSpec> {
        NonZeroUsize::new(self)
            .map(JoinWindow::Count)
            .ok_or(InvalidJoinSpec::ZeroCount)
    }
}

// === impl JoinKey ===

trait DynKey: Any + Send + Sync {
    fn eq_dyn(&self, other: &dyn DynKey) -> bool;
    fn hash_dyn(&self, state: &mut dyn Hasher);
    fn fmt_dyn(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;
    fn as_any(&self) -> &dyn Any;
}

impl<K: Hash + Eq + fmt::Debug + Send + Sync + 'static> DynKey for K {
    fn eq_dyn(&self, other: &dyn DynKey) -> bool {
        other.as_any().downcast_ref::<K>() == Some(self)
    }

    fn hash_dyn(&self, mut state: &mut dyn Hasher) {
        TypeId::of::<K>().hash(&mut state);
        self.hash(&mut state);
    }

    fn fmt_dyn(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The key a join groups artifacts by, erased over its type.
///
/// Keys of different Rust types never compare equal. `Display` shows strings plainly
/// (`dev-1`) and anything else with `Debug`, which is what traces record.
///
/// ```
/// use flock_subscription::JoinKey;
///
/// assert_eq!(JoinKey::new("dev-1".to_owned()), JoinKey::new("dev-1".to_owned()));
/// assert_ne!(JoinKey::new(1_u32), JoinKey::new(1_u64));
/// assert_eq!(JoinKey::new("dev-1".to_owned()).to_string(), "dev-1");
/// assert_eq!(JoinKey::new((3, 'b')).to_string(), "(3, 'b')");
/// ```
#[derive(Clone)]
pub struct JoinKey(Arc<dyn DynKey>);

impl JoinKey {
    /// Wraps a key.
    pub fn new<K: Hash + Eq + fmt::Debug + Send + Sync + 'static>(key: K) -> Self {
        Self(Arc::new(key))
    }

    /// The key as `&K`, if it is a `K`.
    pub fn downcast_ref<K: 'static>(&self) -> Option<&K> {
        self.0.as_any().downcast_ref()
    }
}

impl PartialEq for JoinKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_dyn(&*other.0)
    }
}

impl Eq for JoinKey {}

impl Hash for JoinKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash_dyn(state);
    }
}

impl fmt::Debug for JoinKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt_dyn(f)
    }
}

impl fmt::Display for JoinKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let any = self.0.as_any();
        if let Some(s) = any.downcast_ref::<String>() {
            f.write_str(s)
        } else if let Some(s) = any.downcast_ref::<&'static str>() {
            f.write_str(s)
        } else if let Some(s) = any.downcast_ref::<Arc<str>>() {
            f.write_str(s)
        } else if let Some(Some(id)) = any.downcast_ref::<Option<Uuid>>() {
            fmt::Display::fmt(id, f)
        } else {
            self.0.fmt_dyn(f)
        }
    }
}

// === impl JoinSpec ===

/// Correlates artifacts of several types by a key within a window.
///
/// Each type gets its own typed key function (`by`); all return the same key type.
/// The window (`within`) is a duration (`std::time::Duration` or `chrono::TimeDelta`)
/// or a count of artifacts (see [`JoinWindow`]). Use it with an all-of subscription
/// (`AllOf`): groups form per key, first come first paired, and a complete group is
/// delivered once.
///
/// ```
/// use std::time::Duration;
/// use flock_core::FlockType;
/// use flock_subscription::{JoinSpec, JoinWindow};
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Serialize, Deserialize, FlockType)]
/// # #[flock(crate = "flock_core")]
/// # struct TemperatureSensor { device_id: String, celsius: f64 }
/// # #[derive(Serialize, Deserialize, FlockType)]
/// # #[flock(crate = "flock_core")]
/// # struct PressureSensor { device_id: String, bar: f64 }
///
/// let spec = JoinSpec::by(|t: &TemperatureSensor| t.device_id.clone())
///     .by(|p: &PressureSensor| p.device_id.clone())
///     .within(Duration::from_secs(30))
///     .build()?;
/// assert_eq!(spec.window(), JoinWindow::Time(Duration::from_secs(30)));
///
/// // A count window: the partner must come within the next 10 artifacts.
/// let counted = JoinSpec::by(|t: &TemperatureSensor| t.device_id.clone())
///     .by(|p: &PressureSensor| p.device_id.clone())
///     .within(10)
///     .build()?;
/// assert_eq!(counted.window().to_string(), "10 artifacts");
///
/// assert_eq!(
///     JoinSpec::by(|t: &TemperatureSensor| t.device_id.clone())
///         .within(chrono::TimeDelta::zero())
///         .build()
///         .unwrap_err()
///         .to_string(),
///     "join window must be greater than zero, got 0s"
/// );
/// # Ok::<(), flock_subscription::InvalidJoinSpec>(())
/// ```
#[derive(Debug, Clone)]
pub struct JoinSpec {
    keys: Keys,
    window: JoinWindow,
}

/// The key functions of a spec: one per type, and the fallback of types without one.
#[derive(Clone, Default)]
struct Keys {
    by_type: Vec<(&'static str, KeyFn)>,
    /// The key of types without their own: the correlation id, for
    /// [`JoinSpec::by_correlation_id`].
    default: Option<KeyFn>,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys")
            .field("types", &self.types().collect::<Vec<_>>())
            .field("by_correlation_id", &self.default.is_some())
            .finish()
    }
}

impl Keys {
    fn types(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.by_type.iter().map(|(t, _)| *t)
    }

    fn of(&self, type_name: &str) -> Option<&KeyFn> {
        self.by_type
            .iter()
            .find(|(t, _)| *t == type_name)
            .map(|(_, f)| f)
            .or(self.default.as_ref())
    }
}

impl JoinSpec {
    /// Starts a spec whose key for artifacts of type `T` is `key(&t)`. Add the key of
    /// every other type with [`JoinSpecBuilder::by`], and the window with
    /// [`JoinSpecBuilder::within`].
    pub fn by<T, K, F>(key: F) -> JoinSpecBuilder<K>
    where
        T: FlockType,
        K: Hash + Eq + fmt::Debug + Send + Sync + 'static,
        F: Fn(&T) -> K + Send + Sync + 'static,
    {
        JoinSpecBuilder::empty().by(key)
    }

    /// Starts a spec keyed by the artifacts' correlation id (what an all-of
    /// subscription without a join spec does), so that it can take a window.
    /// [`JoinSpecBuilder::by`] may still give some types a key of their own.
    pub fn by_correlation_id() -> JoinSpecBuilder<Option<Uuid>> {
        let mut builder = JoinSpecBuilder::empty();
        builder.keys.default = Some(Arc::new(|artifact: &Artifact| {
            Some(JoinKey::new(artifact.correlation_id()))
        }));
        builder
    }

    /// The window.
    pub fn window(&self) -> JoinWindow {
        self.window
    }

    /// Whether artifacts of `type_name` get a key (their own, or the correlation id).
    pub fn has_key_for(&self, type_name: &str) -> bool {
        self.keys.of(type_name).is_some()
    }

    /// The types with a key function of their own, in declaration order.
    pub fn keyed_types(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.keys.types()
    }

    /// The key of an artifact. A panicking key function does not propagate.
    ///
    /// # Errors
    /// [`JoinKeyError::NoKey`] when the spec has no key for the artifact's type,
    /// [`JoinKeyError::Panicked`] when the key function panicked.
    pub fn key(&self, artifact: &Artifact) -> Result<JoinKey, JoinKeyError> {
        let type_name = artifact.type_name();
        let key = self
            .keys
            .of(type_name)
            .ok_or(JoinKeyError::NoKey(type_name))?;
        match catch_unwind(AssertUnwindSafe(|| key(artifact))) {
            Ok(Some(key)) => Ok(key),
            Ok(None) => Err(JoinKeyError::NoKey(type_name)),
            Err(panic) => Err(JoinKeyError::Panicked {
                type_name,
                message: flock_core::panic_message(panic.as_ref()),
            }),
        }
    }
}

/// Builds a [`JoinSpec`] whose keys are all of type `K`; validation happens in
/// [`JoinSpecBuilder::build`], or when the subscription is built.
#[derive(Debug)]
#[must_use = "a join spec builder does nothing until it is built or passed to a subscription"]
pub struct JoinSpecBuilder<K> {
    keys: Keys,
    window: Option<Result<JoinWindow, InvalidJoinSpec>>,
    duplicate: Option<&'static str>,
    _key: PhantomData<fn() -> K>,
}

impl<K: Hash + Eq + fmt::Debug + Send + Sync + 'static> JoinSpecBuilder<K> {
    fn empty() -> Self {
        Self {
            keys: Keys::default(),
            window: None,
            duplicate: None,
            _key: PhantomData,
        }
    }

    /// The key of artifacts of type `T`.
    pub fn by<T, F>(mut self, key: F) -> Self
    where
        T: FlockType,
        F: Fn(&T) -> K + Send + Sync + 'static,
    {
        if self.keys.types().any(|t| t == T::TYPE_NAME) {
            self.duplicate.get_or_insert(T::TYPE_NAME);
        }
        self.keys.by_type.push((
            T::TYPE_NAME,
            Arc::new(move |artifact: &Artifact| artifact.get::<T>().map(|t| JoinKey::new(key(t)))),
        ));
        self
    }

    /// How long (a duration) or for how many artifacts (a `usize`) an incomplete group
    /// waits; see [`JoinWindow`].
    pub fn within(mut self, window: impl IntoJoinWindow) -> Self {
        self.window = Some(window.into_join_window());
        self
    }

    /// The validated spec.
    ///
    /// # Errors
    /// [`InvalidJoinSpec`] for a missing, zero or negative window, or two keys for one
    /// type.
    pub fn build(self) -> Result<JoinSpec, InvalidJoinSpec> {
        if let Some(type_name) = self.duplicate {
            return Err(InvalidJoinSpec::DuplicateKey(type_name));
        }
        let window = self.window.ok_or(InvalidJoinSpec::NoWindow)??;
        Ok(JoinSpec {
            keys: self.keys,
            window,
        })
    }
}

/// Anything a subscription accepts as a join spec: a [`JoinSpec`] or its builder.
pub trait IntoJoinSpec {
    /// The validated spec.
    ///
    /// # Errors
    /// [`InvalidJoinSpec`] when the spec is invalid.
    fn into_join_spec(self) -> Result<JoinSpec, InvalidJoinSpec>;
}

impl IntoJoinSpec for JoinSpec {
    fn into_join_spec(self) -> Result<JoinSpec, InvalidJoinSpec> {
        Ok(self)
    }
}

impl<K: Hash + Eq + fmt::Debug + Send + Sync + 'static> IntoJoinSpec for JoinSpecBuilder<K> {
    fn into_join_spec(self) -> Result<JoinSpec, InvalidJoinSpec> {
        self.build()
    }
}

#[cfg(test)]
mod tests {
    use flock_core::Payload;
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Serialize, Deserialize, flock_core::FlockType)]
    #[flock(crate = "flock_core")]
    struct Temp {
        device: String,
    }

    #[derive(Serialize, Deserialize, flock_core::FlockType)]
    #[flock(crate = "flock_core")]
    struct Pressure {
        meta: Meta,
    }

    #[derive(Serialize, Deserialize)]
    struct Meta {
        device: String,
    }

    fn artifact<T: FlockType>(value: T) -> Artifact {
        Artifact::new(Payload::new(value), "external")
    }

    #[test]
    fn invalid_specs_are_rejected_with_messages() {
        let by = || JoinSpec::by(|t: &Temp| t.device.clone());
        let cases: [(Result<JoinSpec, InvalidJoinSpec>, &str); 5] = [
            (
                by().within(Duration::ZERO).build(),
                "join window must be greater than zero, got 0s",
            ),
            (
                by().within(0).build(),
                "join window must be at least 1 artifact, got 0",
            ),
            (
                by().within(TimeDelta::seconds(-30)).build(),
                "join window must be positive: duration must not be negative, got -PT30S",
            ),
            (
                by().build(),
                "a join spec needs a window: add .within(duration) or .within(count)",
            ),
            (
                by().by(|t: &Temp| t.device.clone()).within(5).build(),
                "join spec has two keys for type 'Temp'; give one .by(..) per type",
            ),
        ];
        for (result, message) in cases {
            assert_eq!(result.unwrap_err().to_string(), message);
        }
    }

    #[test]
    fn keys_are_typed_per_type_and_comparable_across_types() {
        let spec = JoinSpec::by(|t: &Temp| t.device.clone())
            .by(|p: &Pressure| p.meta.device.clone())
            .within(TimeDelta::seconds(30))
            .build()
            .unwrap();
        let temp = artifact(Temp {
            device: "dev-1".into(),
        });
        let pressure = artifact(Pressure {
            meta: Meta {
                device: "dev-1".into(),
            },
        });
        let other = artifact(Pressure {
            meta: Meta {
                device: "dev-2".into(),
            },
        });
        assert_eq!(spec.key(&temp).unwrap(), spec.key(&pressure).unwrap());
        assert_ne!(spec.key(&temp).unwrap(), spec.key(&other).unwrap());
        assert_eq!(spec.window(), JoinWindow::Time(Duration::from_secs(30)));
        assert_eq!(
            spec.keyed_types().collect::<Vec<_>>(),
            vec!["Temp", "Pressure"]
        );
    }

    #[test]
    fn panicking_key_is_an_error_not_a_panic() {
        let spec = JoinSpec::by(|_: &Temp| -> String { panic!("no device") })
            .within(3)
            .build()
            .unwrap();
        let err = spec
            .key(&artifact(Temp { device: "x".into() }))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "join key of type 'Temp' panicked: no device"
        );
        let err = spec
            .key(&artifact(Pressure {
                meta: Meta { device: "x".into() },
            }))
            .unwrap_err();
        assert_eq!(err, JoinKeyError::NoKey("Pressure"));
    }

    #[test]
    fn correlation_id_keys_types_without_their_own() {
        let spec = JoinSpec::by_correlation_id().within(5).build().unwrap();
        let id = Uuid::now_v7();
        let mut a = artifact(Temp { device: "x".into() });
        a.set_correlation_id(Some(id));
        let mut b = artifact(Pressure {
            meta: Meta { device: "y".into() },
        });
        b.set_correlation_id(Some(id));
        assert!(spec.has_key_for("Anything"));
        assert_eq!(spec.key(&a).unwrap(), spec.key(&b).unwrap());
        assert_eq!(spec.key(&a).unwrap().to_string(), id.to_string());
    }

    #[test]
    fn windows_display_for_traces() {
        assert_eq!(
            JoinWindow::Time(Duration::from_millis(1500)).to_string(),
            "1.5s"
        );
        assert_eq!(
            JoinWindow::Count(NonZeroUsize::MIN).to_string(),
            "1 artifact"
        );
    }
}
