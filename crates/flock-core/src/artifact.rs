//! Artifacts, their ids and their typed payloads.

use std::{any::Any, collections::BTreeSet, fmt, str::FromStr, sync::Arc};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{FlockType, Visibility};

/// `produced_by` of artifacts published from outside any agent.
pub const EXTERNAL_PRODUCER: &str = "external";

/// The id of an artifact: a UUID v7, so ids sort in creation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ArtifactId(pub Uuid);

/// The order of the UUIDs' bytes, compared as one big-endian number: the same
/// order as the bytes', without a byte-wise comparison (stores compare every new
/// id with the last).
impl Ord for ArtifactId {
    #[inline]
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.as_u128().cmp(&other.0.as_u128())
    }
}

impl PartialOrd for ArtifactId {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl ArtifactId {
    /// A fresh, time-ordered id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// A fresh UUID v7 whose timestamp is `at` (milliseconds), without reading a
    /// clock: ids made by one process sort in the order they were made (for
    /// timestamps that do not go back); the 74 bits after the timestamp hold a
    /// 42-bit counter shared by the process's threads, which starts at a random
    /// value (RFC 9562, a fixed-length dedicated counter), then a random 32-bit mark
    /// of the process, so ids of different processes do not collide. Several times
    /// cheaper than [`ArtifactId::new`], which reads the system clock and draws
    /// random bits for every id. Stores rely on the order: the in-memory store finds
    /// an id made in order by binary search, with no index entry.
    pub fn at(at: DateTime<Utc>) -> Self {
        use std::sync::{
            LazyLock,
            atomic::{AtomicU64, Ordering},
        };

        const COUNTER_BITS: u32 = 42;
        const COUNTER_MASK: u64 = (1 << COUNTER_BITS) - 1;
        /// The process's mark and the counter's start.
        static ORIGIN: LazyLock<(u32, u64)> = LazyLock::new(|| {
            // The standard library's random hash keys, seeded from the operating
            // system: random enough for a mark and a start.
            use std::hash::BuildHasher;
            let random = std::collections::hash_map::RandomState::new();
            let mark = random.hash_one(0u8);
            let start = random.hash_one(1u8);
            (mark as u32, start & COUNTER_MASK)
        });
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let (mark, start) = *ORIGIN;
        let counter = start.wrapping_add(COUNTER.fetch_add(1, Ordering::Relaxed)) & COUNTER_MASK;
        // Before 1970 (or unrepresentable): the epoch; ids still differ by counter.
        let millis = u64::try_from(at.timestamp_millis()).unwrap_or(0);
        // 74 bits: rand_a (12) then rand_b (62) of the UUID v7 layout.
        let random = (u128::from(counter) << 32) | u128::from(mark);
        let bytes = ((u128::from(millis) & ((1 << 48) - 1)) << 80)
            | (0x7 << 76)
            | ((random >> 62) << 64)
            | (0b10 << 62)
            | (random & ((1 << 62) - 1));
        Self(Uuid::from_u128(bytes))
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
    fn type_name(&self) -> &'static str;
    fn to_json(&self) -> serde_json::Result<serde_json::Value>;
    fn to_json_string(&self) -> serde_json::Result<String>;
}

impl<T: FlockType> ErasedValue for T {
    fn type_name(&self) -> &'static str {
        T::TYPE_NAME
    }

    fn to_json(&self) -> serde_json::Result<serde_json::Value> {
        serde_json::to_value(self)
    }

    fn to_json_string(&self) -> serde_json::Result<String> {
        serde_json::to_string(self)
    }
}

/// A payload read back (from a durable store) whose Rust type this process has not
/// registered: kept as JSON.
struct RawJson {
    type_name: &'static str,
    value: serde_json::Value,
}

impl ErasedValue for RawJson {
    fn type_name(&self) -> &'static str {
        self.type_name
    }

    fn to_json(&self) -> serde_json::Result<serde_json::Value> {
        Ok(self.value.clone())
    }

    fn to_json_string(&self) -> serde_json::Result<String> {
        serde_json::to_string(&self.value)
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
/// Cloning is cheap (a reference count). One pointer and its vtable, which also
/// knows the type name: an artifact's record stays small.
#[derive(Clone)]
pub struct Payload {
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
            value: Arc::new(RawJson {
                type_name: intern(type_name),
                value,
            }),
        }
    }

    /// Wraps a shared typed value without copying it.
    pub fn from_arc<T: FlockType>(value: Arc<T>) -> Self {
        Self { value }
    }

    /// The artifact type name of the value.
    pub fn type_name(&self) -> &'static str {
        self.value.type_name()
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
            Ok(json) => write!(f, "{}({json})", self.type_name()),
            Err(_) => write!(f, "{}(<unserializable>)", self.type_name()),
        }
    }
}

// === impl Artifact ===

/// An immutable record on the blackboard.
///
/// The fields every artifact has are public; the optional metadata (correlation id,
/// partition key, tags, a visibility other than public) sits behind accessors,
/// because it lives in one box that an artifact without any does not allocate: the
/// blackboard's record of a plain artifact stays under 100 bytes.
#[derive(Clone)]
#[non_exhaustive]
pub struct Artifact {
    /// Unique, time-ordered id.
    pub id: ArtifactId,
    /// The typed value.
    pub payload: Payload,
    /// The agent that produced it, or [`EXTERNAL_PRODUCER`].
    pub produced_by: Arc<str>,
    /// When it was published (UTC).
    pub created_at: DateTime<Utc>,
    /// Version of the record; 1 for a fresh artifact.
    pub version: u32,
    /// Correlation id, partition key, tags and visibility; `None` while all four
    /// have their defaults (none, none, no tags, public).
    meta: Option<Box<Meta>>,
}

/// The optional metadata of an artifact.
#[derive(Clone, Default, PartialEq)]
struct Meta {
    correlation_id: Option<Uuid>,
    partition_key: Option<String>,
    tags: BTreeSet<String>,
    visibility: Visibility,
}

/// What the accessors return for an artifact without metadata.
static NO_TAGS: BTreeSet<String> = BTreeSet::new();
static PUBLIC: Visibility = Visibility::Public;

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
        Self::with_id(ArtifactId::at(created_at), payload, produced_by, created_at)
    }

    /// [`Artifact::new_at`] with an id made beforehand ([`ArtifactId::at`]): a
    /// runtime can then take the id before it allocates the payload.
    pub fn with_id(
        id: ArtifactId,
        payload: Payload,
        produced_by: impl Into<Arc<str>>,
        created_at: DateTime<Utc>,
    ) -> Self {
        Self {
            id,
            payload,
            produced_by: produced_by.into(),
            created_at,
            version: 1,
            meta: None,
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

    /// Groups artifacts of one workflow; agents' outputs inherit their inputs' id.
    pub fn correlation_id(&self) -> Option<Uuid> {
        self.meta.as_ref().and_then(|meta| meta.correlation_id)
    }

    /// Optional partition key (for stores that shard, and for keyed processing).
    pub fn partition_key(&self) -> Option<&str> {
        self.meta
            .as_ref()
            .and_then(|meta| meta.partition_key.as_deref())
    }

    /// Free-form tags; subscriptions may require any of them.
    pub fn tags(&self) -> &BTreeSet<String> {
        self.meta.as_ref().map_or(&NO_TAGS, |meta| &meta.tags)
    }

    /// Who may see it.
    pub fn visibility(&self) -> &Visibility {
        self.meta.as_ref().map_or(&PUBLIC, |meta| &meta.visibility)
    }

    /// Sets the correlation id.
    #[inline]
    pub fn set_correlation_id(&mut self, correlation_id: Option<Uuid>) {
        let default = correlation_id.is_none();
        self.edit(default, |meta| meta.correlation_id = correlation_id);
    }

    /// Sets the partition key.
    #[inline]
    pub fn set_partition_key(&mut self, partition_key: Option<String>) {
        let default = partition_key.is_none();
        self.edit(default, |meta| meta.partition_key = partition_key);
    }

    /// Replaces the tags.
    #[inline]
    pub fn set_tags(&mut self, tags: BTreeSet<String>) {
        let default = tags.is_empty();
        self.edit(default, |meta| meta.tags = tags);
    }

    /// Sets the visibility.
    #[inline]
    pub fn set_visibility(&mut self, visibility: Visibility) {
        let default = matches!(visibility, Visibility::Public);
        self.edit(default, |meta| meta.visibility = visibility);
    }

    /// As [`Artifact::set_correlation_id`], by value.
    #[must_use]
    pub fn with_correlation_id(mut self, correlation_id: Option<Uuid>) -> Self {
        self.set_correlation_id(correlation_id);
        self
    }

    /// As [`Artifact::set_partition_key`], by value.
    #[must_use]
    pub fn with_partition_key(mut self, partition_key: Option<String>) -> Self {
        self.set_partition_key(partition_key);
        self
    }

    /// As [`Artifact::set_tags`], by value.
    #[must_use]
    pub fn with_tags(mut self, tags: BTreeSet<String>) -> Self {
        self.set_tags(tags);
        self
    }

    /// As [`Artifact::set_visibility`], by value.
    #[must_use]
    pub fn with_visibility(mut self, visibility: Visibility) -> Self {
        self.set_visibility(visibility);
        self
    }

    /// Changes the metadata: setting a field to its default (`default`) on an
    /// artifact without metadata allocates nothing (every publish sets all four),
    /// and the box is freed when every field is back to its default.
    #[inline]
    fn edit(&mut self, default: bool, change: impl FnOnce(&mut Meta)) {
        if default && self.meta.is_none() {
            return;
        }
        self.change_meta(change);
    }

    /// [`Artifact::edit`] past its common case, out of line.
    fn change_meta(&mut self, change: impl FnOnce(&mut Meta)) {
        let mut meta = self.meta.take().unwrap_or_default();
        change(&mut meta);
        if *meta != Meta::default() {
            self.meta = Some(meta);
        }
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
            "correlation_id": self.correlation_id(),
            "partition_key": self.partition_key(),
            "tags": self.tags(),
            "visibility": self.visibility(),
            "created_at": self.created_at,
            "version": self.version,
        }))
    }
}

impl fmt::Debug for Artifact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Artifact")
            .field("id", &self.id)
            .field("payload", &self.payload)
            .field("produced_by", &self.produced_by)
            .field("correlation_id", &self.correlation_id())
            .field("partition_key", &self.partition_key())
            .field("tags", self.tags())
            .field("visibility", self.visibility())
            .field("created_at", &self.created_at)
            .field("version", &self.version)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use chrono::TimeZone;

    use super::*;

    #[test]
    fn ids_order_as_their_bytes() {
        // Pairs whose order differs between the bytes and a little-endian reading,
        // then ids of one millisecond in the order they were made.
        let id = |bytes: [u8; 16]| ArtifactId(Uuid::from_bytes(bytes));
        let mut low_first = [0u8; 16];
        low_first[0] = 1;
        let mut low_last = [0u8; 16];
        low_last[15] = 2;
        let pairs = [
            (id(low_last), id(low_first)),
            (id([0; 16]), id([0xff; 16])),
            (id([0x7f; 16]), id([0x80; 16])),
        ];
        for (a, b) in pairs {
            assert_eq!(a.cmp(&b), a.0.as_bytes().cmp(b.0.as_bytes()));
            assert_eq!(b.cmp(&a), b.0.as_bytes().cmp(a.0.as_bytes()));
            assert_eq!(a.partial_cmp(&b), Some(a.0.as_bytes().cmp(b.0.as_bytes())));
        }
        let at = Utc.with_ymd_and_hms(2026, 12, 2, 0, 0, 0).unwrap();
        let made: Vec<ArtifactId> = (0..1_000).map(|_| ArtifactId::at(at)).collect();
        let mut by_bytes = made.clone();
        by_bytes.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let mut by_ord = made;
        by_ord.sort();
        assert_eq!(by_ord, by_bytes);
    }

    #[test]
    fn an_artifact_without_metadata_allocates_nothing_beyond_its_fields() {
        // 72 bytes: with the `Arc` header (16) and the store's slot (8), the record
        // of a plain artifact is 96 bytes.
        assert!(
            std::mem::size_of::<Artifact>() <= 72,
            "{}",
            std::mem::size_of::<Artifact>()
        );
        let mut artifact = Artifact::new(Payload::raw_json("T", serde_json::json!(1)), "a");
        assert!(artifact.meta.is_none());
        assert_eq!(artifact.visibility(), &Visibility::Public);
        assert!(artifact.tags().is_empty());
        artifact.set_partition_key(Some("k".into()));
        artifact.set_tags(["x".to_owned()].into());
        assert_eq!(artifact.partition_key(), Some("k"));
        assert!(artifact.tags().contains("x"));
        assert!(artifact.meta.is_some());
        artifact.set_partition_key(None);
        artifact.set_tags(BTreeSet::new());
        assert!(artifact.meta.is_none(), "back to defaults frees the box");
        let tenant = Visibility::Tenant {
            tenant_id: Some("t".into()),
        };
        let artifact = artifact
            .with_visibility(tenant.clone())
            .with_correlation_id(Some(Uuid::nil()));
        assert_eq!(artifact.visibility(), &tenant);
        assert_eq!(artifact.correlation_id(), Some(Uuid::nil()));
        assert_eq!(artifact.to_json().unwrap()["visibility"]["kind"], "tenant");
    }

    #[test]
    fn ids_at_a_time_are_v7_with_that_timestamp_and_sort_in_order() {
        let at = Utc.timestamp_millis_opt(1_764_547_200_123).unwrap();
        let ids: Vec<ArtifactId> = (0..1000).map(|_| ArtifactId::at(at)).collect();
        for id in &ids {
            assert_eq!(id.0.get_version_num(), 7);
            assert_eq!(id.0.get_variant(), uuid::Variant::RFC4122);
            let (secs, nanos) = id.0.get_timestamp().unwrap().to_unix();
            assert_eq!(
                secs * 1000 + u64::from(nanos / 1_000_000),
                1_764_547_200_123
            );
        }
        // One process, one millisecond: in the order made (unless the counter
        // wrapped, which a random start makes a one-in-four-billion event).
        let sorted = ids.windows(2).all(|w| w[0] < w[1]);
        let wrapped = ids.windows(2).filter(|w| w[0] > w[1]).count();
        assert!(sorted || wrapped == 1, "{wrapped} inversions");
        let later = ArtifactId::at(at + chrono::TimeDelta::milliseconds(1));
        assert!(ids.iter().all(|id| *id < later));
    }

    #[test]
    fn ids_of_many_threads_do_not_collide() {
        let at = Utc.timestamp_millis_opt(0).unwrap();
        let handles: Vec<_> = (0..8)
            .map(|_| {
                std::thread::spawn(move || {
                    (0..10_000).map(|_| ArtifactId::at(at)).collect::<Vec<_>>()
                })
            })
            .collect();
        let mut seen = HashSet::new();
        for handle in handles {
            for id in handle.join().unwrap() {
                assert!(seen.insert(id), "duplicate id {id}");
            }
        }
        assert_eq!(seen.len(), 80_000);
    }

    #[test]
    fn ids_made_later_on_another_thread_sort_after() {
        // In one millisecond, ids sort in the order made whichever thread made them:
        // the in-memory store finds ids made in order without an index entry.
        let at = Utc.timestamp_millis_opt(1_764_547_200_000).unwrap();
        let mut ids = Vec::new();
        for _ in 0..8 {
            let made = std::thread::spawn(move || (0..100).map(|_| ArtifactId::at(at)).collect());
            ids.extend::<Vec<ArtifactId>>(made.join().unwrap());
        }
        let inversions = ids.windows(2).filter(|w| w[0] > w[1]).count();
        // At most one, where the counter wrapped (one in billions).
        assert!(inversions <= 1, "{inversions} inversions");
    }
}
