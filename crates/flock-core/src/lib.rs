//! Artifacts, type registration, identities, errors and the blackboard store of flock-rs.
//!
//! This is the small, stable core of the workspace. Engine authors depend on
//! `flock-core` and `flock-engines` alone; applications depend on the `flock`
//! facade, which re-exports everything here.
//!
//! - [`FlockType`] (derive it with `#[derive(FlockType)]`) gives a Rust type a stable
//!   artifact type name.
//! - [`Artifact`] is an immutable record on the blackboard; its [`Payload`] keeps the
//!   typed value, so predicates and engines read `&T` without re-parsing JSON.
//! - [`TypeRegistry`] maps type names to decoders for publishing JSON by type name.
//! - [`BlackboardStore`] is the store trait; [`InMemoryStore`] the default store.
//! - `conformance` (feature `conformance`): the tests every store backend must pass.

// docs.rs (`--cfg docsrs`) marks every feature-gated item with its feature.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod artifact;
mod cluster;
#[cfg(feature = "conformance")]
#[cfg_attr(docsrs, doc(cfg(feature = "conformance")))]
pub mod conformance;
mod error;
mod registry;
mod store;
mod time;
mod types;

pub use artifact::{Artifact, ArtifactId, EXTERNAL_PRODUCER, Payload};
pub use cluster::{ClusterStore, Fed, Lease, WorkUnit};
pub use error::{PublishError, StoreError, TypeConflict};
pub use flock_macros::FlockType;
pub use flock_visibility::{AgentIdentity, Visibility};
pub use registry::TypeRegistry;
pub use store::{
    ArtifactFilter, BlackboardStore, BlackboardView, FailureCommit, FailureRecord, InMemoryStore,
    InvalidRetention, MemoryLog, Retention, RunCommit,
};
pub use types::{FailureKind, FlushReason, WorkflowError};

use serde::{Serialize, de::DeserializeOwned};

/// A Rust type that can travel on the blackboard as an artifact.
///
/// Implement it with `#[derive(FlockType)]`; the name defaults to the type's name
/// and can be set with `#[flock(name = "...")]`. The name is what JSON publishes,
/// stored artifacts and traces use, so it must stay stable across releases.
///
/// ```
/// use flock_core::FlockType;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize, FlockType)]
/// #[flock(crate = "flock_core", name = "payments.Transaction")]
/// struct Transaction {
///     transaction_id: String,
///     amount: f64,
/// }
///
/// assert_eq!(Transaction::TYPE_NAME, "payments.Transaction");
/// ```
pub trait FlockType: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The stable artifact type name.
    const TYPE_NAME: &'static str;
}

/// The message of a caught panic (`&str` and `String` payloads; anything else is
/// described as such), for reporting panics of user code the runtime contained.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned())
}
