//! The conformance suite of [`BlackboardStore`]: the tests every backend must pass
//! (feature `conformance`). For store authors: run it from your backend's tests.
//!
//! Each check is an async function taking a [`StoreFactory`], which opens fresh
//! stores and, for a durable backend, reopens a store as a restarted process would.
//! A check panics (with a message naming what failed) when the store breaks the
//! contract documented on [`BlackboardStore`]. The checks of durability (consumption,
//! recovery, failed runs, surviving a reopen) run only against stores whose
//! [`BlackboardStore::is_durable`] is true; the others return at once.
//!
//! ```
//! use flock_core::{InMemoryStore, TypeRegistry, conformance::{self, StoreFactory}};
//!
//! struct Memory;
//!
//! impl StoreFactory for Memory {
//!     type Store = InMemoryStore;
//!
//!     async fn open(&self, _types: TypeRegistry) -> InMemoryStore {
//!         InMemoryStore::new()
//!     }
//!
//!     async fn reopen(&self, _store: InMemoryStore, _types: TypeRegistry) -> Option<InMemoryStore> {
//!         None // nothing survives a restart
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! conformance::all(&Memory).await;
//! # }
//! ```
//!
//! A backend's tests usually run each check as its own `#[tokio::test]` (so a
//! failure names the check), e.g. `conformance::publish_all_is_atomic(&factory).await`,
//! as the tests of `InMemoryStore` (`crates/flock-core/tests/it/`) and of the SQLite
//! store do.

mod artifacts;
mod durable;
mod fixtures;
mod queries;

use std::future::Future;

pub use artifacts::{
    arrival_order, duplicate_publish_is_refused, publish_all_is_atomic, publish_and_get,
    typed_and_raw_payloads,
};
pub use durable::{
    commit_run_is_atomic, consumption_and_unconsumed, everything_survives_reopen,
    failures_are_kept, register_agent_is_idempotent, typed_decoding_after_reopen,
};
pub use queries::{query_filters, query_limit, visibility_filter};

use crate::{BlackboardStore, TypeRegistry};

/// Opens the stores the suite runs against.
pub trait StoreFactory: Sync {
    /// The backend under test.
    type Store: BlackboardStore;

    /// Opens a fresh, empty store (its own file, database or schema) that decodes
    /// stored payloads with `types` (a backend that keeps typed values in memory may
    /// ignore it). A failure to open should panic: the suite cannot go on.
    fn open(&self, types: TypeRegistry) -> impl Future<Output = Self::Store> + Send;

    /// Opens again the data `store` was using, as a process restarted after it would:
    /// `store` is dropped first (closing it), then a new store is opened on the same
    /// data, decoding with `types`. `None` for a backend that keeps nothing across a
    /// restart (its [`BlackboardStore::is_durable`] is false).
    fn reopen(
        &self,
        store: Self::Store,
        types: TypeRegistry,
    ) -> impl Future<Output = Option<Self::Store>> + Send;
}

/// Runs every check of the suite, one after the other, each on fresh stores.
pub async fn all<F: StoreFactory>(factory: &F) {
    publish_and_get(factory).await;
    duplicate_publish_is_refused(factory).await;
    publish_all_is_atomic(factory).await;
    arrival_order(factory).await;
    typed_and_raw_payloads(factory).await;
    query_filters(factory).await;
    query_limit(factory).await;
    visibility_filter(factory).await;
    register_agent_is_idempotent(factory).await;
    consumption_and_unconsumed(factory).await;
    commit_run_is_atomic(factory).await;
    failures_are_kept(factory).await;
    everything_survives_reopen(factory).await;
    typed_decoding_after_reopen(factory).await;
}
