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
//! A backend's tests usually run each check as its own `#[tokio::test]`, so a
//! failure names the check: [`conformance_tests!`](crate::conformance_tests) writes
//! them (one per check, and one running [`all`]), as the tests of `InMemoryStore`
//! (`crates/flock-core/tests/it/`) and of the SQLite and PostgreSQL stores use it.

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
    failures_are_kept, register_agent_is_idempotent, retries_forget_their_failed_run,
    typed_decoding_after_reopen,
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
/// (Every check is also listed in [`conformance_tests!`](crate::conformance_tests).)
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
    retries_forget_their_failed_run(factory).await;
    everything_survives_reopen(factory).await;
    typed_decoding_after_reopen(factory).await;
}

/// Writes one `#[tokio::test]` per check of the suite (named as the check), and
/// `the_whole_suite_passes` running [`all`](crate::conformance::all), against the
/// factory `$factory` (an expression evaluated in each test). With
/// `skip_if = EXPR`, a test whose `EXPR` is true returns at once (a backend whose
/// server is absent on a developer's machine). Needs `tokio` (with `macros` and
/// `rt`) among the calling crate's dev-dependencies.
///
/// ```ignore
/// struct Postgres;
/// impl flock_core::conformance::StoreFactory for Postgres { /* ... */ }
///
/// flock_core::conformance_tests!(Postgres, skip_if = no_server());
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr $(,)?) => {
        $crate::conformance_tests!($factory, skip_if = false);
    };
    ($factory:expr, skip_if = $skip:expr $(,)?) => {
        $crate::conformance_tests!(@each ($factory) ($skip)
            publish_and_get,
            duplicate_publish_is_refused,
            publish_all_is_atomic,
            arrival_order,
            typed_and_raw_payloads,
            query_filters,
            query_limit,
            visibility_filter,
            register_agent_is_idempotent,
            consumption_and_unconsumed,
            commit_run_is_atomic,
            failures_are_kept,
            retries_forget_their_failed_run,
            everything_survives_reopen,
            typed_decoding_after_reopen,
            all,
        );
    };
    (@each ($factory:expr) ($skip:expr) $($check:ident),* $(,)?) => {$(
        #[::tokio::test]
        async fn $check() {
            if $skip {
                return;
            }
            $crate::conformance::$check(&$factory).await;
        }
    )*};
}
