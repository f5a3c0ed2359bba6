//! The registry of artifact types: stable names to decoders, for JSON publishes.

use std::any::TypeId;

use rustc_hash::FxHashMap;

use parking_lot::RwLock;

use crate::{FlockType, Payload, PublishError, TypeConflict};

type DecodeError = serde_path_to_error::Error<serde_json::Error>;

struct Entry {
    type_id: TypeId,
    rust_name: &'static str,
    decode: fn(serde_json::Value) -> Result<Payload, DecodeError>,
}

/// Maps artifact type names to the Rust types registered under them.
///
/// Types are registered when an agent consumes or publishes them, when a typed value
/// is published, or explicitly; after that, JSON can be published by type name.
///
/// Cloning is cheap and clones share their entries: a durable store decodes what it
/// reads back with the registry of the flock built on it.
#[derive(Clone)]
pub struct TypeRegistry {
    entries: std::sync::Arc<RwLock<FxHashMap<&'static str, Entry>>>,
    /// Unique per registry (its clones share it): the key of the per-thread note of
    /// the type registered last, which lets a stream of publishes of one type skip
    /// the lock and the lookup. Entries are never removed, so the note stays true.
    id: u64,
}

impl Default for TypeRegistry {
    fn default() -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Self {
            entries: std::sync::Arc::default(),
            id: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }
}

thread_local! {
    /// (registry, type) of this thread's last successful registration.
    static REGISTERED_LAST: std::cell::Cell<Option<(u64, TypeId)>> =
        const { std::cell::Cell::new(None) };
}

impl std::fmt::Debug for TypeRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypeRegistry")
            .field("types", &self.names())
            .finish()
    }
}

impl TypeRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `T` under `T::TYPE_NAME`. Registering the same type twice is fine.
    ///
    /// # Errors
    /// [`TypeConflict`] when another Rust type already holds the name.
    pub fn register<T: FlockType>(&self) -> Result<(), TypeConflict> {
        let type_id = TypeId::of::<T>();
        let note = Some((self.id, type_id));
        if REGISTERED_LAST.with(std::cell::Cell::get) == note {
            return Ok(());
        }
        let checked = self
            .entries
            .read()
            .get(T::TYPE_NAME)
            .map(|entry| check_same(entry, type_id, T::TYPE_NAME, std::any::type_name::<T>()));
        let checked = checked.unwrap_or_else(|| {
            let mut entries = self.entries.write();
            let entry = entries.entry(T::TYPE_NAME).or_insert_with(|| Entry {
                type_id,
                rust_name: std::any::type_name::<T>(),
                // The path makes the error name the field that does not fit, however deep.
                decode: |json| serde_path_to_error::deserialize::<_, T>(json).map(Payload::new),
            });
            check_same(entry, type_id, T::TYPE_NAME, std::any::type_name::<T>())
        });
        if checked.is_ok() {
            REGISTERED_LAST.with(|last| last.set(note));
        }
        checked
    }

    /// Whether a type name is registered.
    pub fn contains(&self, type_name: &str) -> bool {
        self.entries.read().contains_key(type_name)
    }

    /// The registered names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .entries
            .read()
            .keys()
            .map(|k| (*k).to_owned())
            .collect();
        names.sort();
        names
    }

    /// Decodes a JSON payload into the type registered under `type_name`.
    ///
    /// # Errors
    /// [`PublishError::UnknownType`] for an unregistered name,
    /// [`PublishError::InvalidPayload`] when the payload does not deserialize, with
    /// the path of the field that does not fit (`items[2].price`).
    pub fn decode(
        &self,
        type_name: &str,
        payload: serde_json::Value,
    ) -> Result<Payload, PublishError> {
        let decode = match self.entries.read().get(type_name) {
            Some(entry) => entry.decode,
            None => {
                return Err(PublishError::UnknownType {
                    type_name: type_name.to_owned(),
                    known: self.names(),
                });
            }
        };
        decode(payload).map_err(|err| {
            let path = err.path().to_string();
            PublishError::InvalidPayload {
                type_name: type_name.to_owned(),
                // "." is the payload itself: serde's message says all there is.
                path: (path != ".").then_some(path),
                source: err.into_inner(),
            }
        })
    }

    /// Decodes a payload read back from a store: typed when its type is registered,
    /// [`Payload::raw_json`] otherwise.
    ///
    /// # Errors
    /// [`PublishError::InvalidPayload`] when a registered type does not accept the
    /// stored JSON (the type changed since it was stored).
    pub fn decode_stored(
        &self,
        type_name: &str,
        payload: serde_json::Value,
    ) -> Result<Payload, PublishError> {
        if self.contains(type_name) {
            self.decode(type_name, payload)
        } else {
            Ok(Payload::raw_json(type_name, payload))
        }
    }

    /// Decodes an envelope `{"type": "...", "payload": {...}}`.
    ///
    /// # Errors
    /// [`PublishError::MalformedEnvelope`] when the JSON is not such an object, plus
    /// the errors of [`TypeRegistry::decode`].
    pub fn decode_envelope(&self, envelope: serde_json::Value) -> Result<Payload, PublishError> {
        let serde_json::Value::Object(mut object) = envelope else {
            return Err(PublishError::MalformedEnvelope {
                reason: format!("expected a JSON object, got {}", json_kind(&envelope)),
            });
        };
        let type_name = match object.remove("type") {
            Some(serde_json::Value::String(name)) => name,
            Some(other) => {
                return Err(PublishError::MalformedEnvelope {
                    reason: format!("\"type\" must be a string, got {}", json_kind(&other)),
                });
            }
            None => {
                return Err(PublishError::MalformedEnvelope {
                    reason: "missing \"type\"".to_owned(),
                });
            }
        };
        let Some(payload) = object.remove("payload") else {
            return Err(PublishError::MalformedEnvelope {
                reason: format!("missing \"payload\" for type '{type_name}'"),
            });
        };
        self.decode(&type_name, payload)
    }
}

fn check_same(
    entry: &Entry,
    type_id: TypeId,
    type_name: &'static str,
    rust_name: &'static str,
) -> Result<(), TypeConflict> {
    if entry.type_id == type_id {
        Ok(())
    } else {
        Err(TypeConflict {
            type_name: type_name.to_owned(),
            existing: entry.rust_name,
            new: rust_name,
        })
    }
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Debug, Clone, Serialize, Deserialize, flock_macros::FlockType)]
    #[flock(crate = "crate", name = "Shared")]
    struct First {
        n: u32,
    }

    #[derive(Debug, Clone, Serialize, Deserialize, flock_macros::FlockType)]
    #[flock(crate = "crate", name = "Shared")]
    struct Second {
        s: String,
    }

    #[test]
    fn each_registry_learns_a_type_registered_last_in_another() {
        // The per-thread note of the last registration names its registry: a
        // registry made afterwards (even where a dropped one lived) still registers.
        for _ in 0..3 {
            let registry = TypeRegistry::new();
            registry.register::<First>().unwrap();
            assert!(registry.contains("Shared"));
            registry.register::<First>().unwrap();
        }
        let clone = TypeRegistry::new();
        let shared = clone.clone();
        clone.register::<First>().unwrap();
        assert!(shared.contains("Shared"), "clones share their entries");
        assert!(shared.register::<Second>().is_err(), "the name is taken");
        assert!(clone.register::<First>().is_ok());
    }
}
