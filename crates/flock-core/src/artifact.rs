//! Artifacts, their ids and their typed payloads.

use std::{any::Any, collections::BTreeSet, fmt, str::FromStr, sync::Arc};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{FlockType, Visibility};

/// `produced_by` of artifacts published from outside any agent.
pub const EXTERNAL_PRODUCER: &str = "external";

/// The id of an artifact: a UUID v7, so ids sort in creation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ArtifactId(pub Uuid);

impl ArtifactId {
    /// A fresh, time-ordered id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for ArtifactId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for ArtifactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for ArtifactId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

// === impl Payload ===

/// A typed value behind an erased handle: `&T` for code that knows the type, JSON for
/// code that does not (stores, traces, dynamic publishes).
trait ErasedValue: Any + Send + Sync {
    fn to_json(&self) -> serde_json::Result<serde_json::Value>;
    fn to_json_string(&self) -> serde_json::Result<String>;
}

impl<T: FlockType> ErasedValue for T {
    fn to_json(&self) -> serde_json::Result<serde_json::Value> {
        serde_json::to_value(self)
    }

    fn to_json_string(&self) -> serde_json::Result<String> {
        serde_json::to_string(self)
    }
}

/// A payload read back (from a durable store) whose Rust type this process has not
/// registered: kept as JSON.
struct RawJson(serde_json::Value);

impl ErasedValue for RawJson {
    fn to_json(&self) -> serde_json::Result<serde_json::Value> {
        Ok(self.0.clone())
    }

    fn to_json_string(&self) -> serde_json::Result<String> {
        serde_json::to_string(&self.0)
    }
}

/// Type names of raw payloads, interned: a payload's type name is `&'static str`,
/// and the names read back are few (one per artifact type ever stored).
fn intern(type_name: &str) -> &'static str {
    static NAMES: std::sync::LazyLock<parking_lot::Mutex<std::collections::HashSet<&'static str>>> =
        std::sync::LazyLock::new(Default::default);
    let mut names = NAMES.lock();
    match names.get(type_name) {
        Some(name) => name,
        None => {
            let name: &'static str = Box::leak(type_name.to_owned().into_boxed_str());
            names.insert(name);
            name
        }
    }
}

/// The value an artifact carries, kept typed.
///
/// Cloning is cheap (a reference count).
#[derive(Clone)]
pub struct Payload {
    type_name: &'static str,
    value: Arc<dyn ErasedValue>,
}

impl Payload {
    /// Wraps a typed value.
    pub fn new<T: FlockType>(value: T) -> Self {
        Self::from_arc(Arc::new(value))
    }

    /// A payload of an artifact type this process has no Rust type for (read back
    /// from a durable store): JSON under its type name. It downcasts to nothing;
    /// [`Payload::to_json`] returns the value.
    pub fn raw_json(type_name: &str, value: serde_json::Value) -> Self {
        Self {
            type_name: intern(type_name),
            value: Arc::new(RawJson(value)),
        }
    }

    /// Wraps a shared typed value without copying it.
    pub fn from_arc<T: FlockType>(value: Arc<T>) -> Self {
        Self {
            type_name: T::TYPE_NAME,
            value,
        }
    }

    /// The artifact type name of the value.
    pub fn type_name(&self) -> &'static str {
        self.type_name
    }

    /// Whether the value is a `T`.
    pub fn is<T: FlockType>(&self) -> bool {
        self.downcast_ref::<T>().is_some()
    }

    /// The value as `&T`, if it is a `T`.
    pub fn downcast_ref<T: FlockType>(&self) -> Option<&T> {
        let any: &dyn Any = &*self.value;
        any.downcast_ref::<T>()
    }

    /// The value as a shared `Arc<T>`, if it is a `T`.
    pub fn downcast_arc<T: FlockType>(&self) -> Option<Arc<T>> {
        let any: Arc<dyn Any + Send + Sync> = self.value.clone();
        any.downcast::<T>().ok()
    }

    /// The value as JSON.
    ///
    /// # Errors
    /// When the type's `Serialize` implementation fails (for example a map with
    /// non-string keys).
    pub fn to_json(&self) -> serde_json::Result<serde_json::Value> {
        self.value.to_json()
    }

    /// The value as JSON text, written straight from the value (no
    /// [`serde_json::Value`] in between): what stores write.
    ///
    /// # Errors
    /// As [`Payload::to_json`].
    pub fn to_json_string(&self) -> serde_json::Result<String> {
        self.value.to_json_string()
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_json() {
            Ok(json) => write!(f, "{}({json})", self.type_name),
            Err(_) => write!(f, "{}(<unserializable>)", self.type_name),
        }
    }
}

// === impl Artifact ===

/// An immutable record on the blackboard.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Artifact {
    /// Unique, time-ordered id.
    pub id: ArtifactId,
    /// The typed value.
    pub payload: Payload,
    /// The agent that produced it, or [`EXTERNAL_PRODUCER`].
    pub produced_by: Arc<str>,
    /// Groups artifacts of one workflow; agents' outputs inherit their inputs' id.
    pub correlation_id: Option<Uuid>,
    /// Optional partition key (for stores that shard, and for keyed processing).
    pub partition_key: Option<String>,
    /// Free-form tags; subscriptions may require any of them.
    pub tags: BTreeSet<String>,
    /// Who may see it.
    pub visibility: Visibility,
    /// When it was published (UTC).
    pub created_at: DateTime<Utc>,
    /// Version of the record; 1 for a fresh artifact.
    pub version: u32,
}

impl Artifact {
    /// A fresh artifact with default metadata: public, no tags, no correlation id,
    /// created now.
    pub fn new(payload: Payload, produced_by: impl Into<Arc<str>>) -> Self {
        Self::new_at(payload, produced_by, crate::time::utc_now())
    }

    /// A fresh artifact created at `created_at` (runtimes with a clock of their own).
    pub fn new_at(
        payload: Payload,
        produced_by: impl Into<Arc<str>>,
        created_at: DateTime<Utc>,
    ) -> Self {
        Self {
            id: ArtifactId::new(),
            payload,
            produced_by: produced_by.into(),
            correlation_id: None,
            partition_key: None,
            tags: BTreeSet::new(),
            visibility: Visibility::Public,
            created_at,
            version: 1,
        }
    }

    /// [`EXTERNAL_PRODUCER`] as a shared string, allocated once per process.
    pub fn external_producer() -> Arc<str> {
        static EXTERNAL: std::sync::LazyLock<Arc<str>> =
            std::sync::LazyLock::new(|| Arc::from(EXTERNAL_PRODUCER));
        EXTERNAL.clone()
    }

    /// The artifact type name.
    pub fn type_name(&self) -> &'static str {
        self.payload.type_name()
    }

    /// The payload as `&T`, if the artifact is a `T`.
    pub fn get<T: FlockType>(&self) -> Option<&T> {
        self.payload.downcast_ref()
    }

    /// The artifact as JSON: metadata plus `payload`, the form stores and exports use.
    ///
    /// # Errors
    /// When the payload does not serialize.
    pub fn to_json(&self) -> serde_json::Result<serde_json::Value> {
        Ok(serde_json::json!({
            "id": self.id,
            "type": self.type_name(),
            "payload": self.payload.to_json()?,
            "produced_by": &*self.produced_by,
            "correlation_id": self.correlation_id,
            "partition_key": self.partition_key,
            "tags": self.tags,
            "visibility": self.visibility,
            "created_at": self.created_at,
            "version": self.version,
        }))
    }
}
