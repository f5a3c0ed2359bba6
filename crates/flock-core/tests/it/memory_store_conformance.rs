//! The conformance suite against `InMemoryStore`: every check of artifacts and
//! queries; the durable checks return at once (the store is not durable), and
//! `commit_run_is_atomic` checks its outputs' all-or-none.

use flock_core::{
    BlackboardStore, InMemoryStore, TypeRegistry,
    conformance::{self, StoreFactory},
};

struct Memory;

impl StoreFactory for Memory {
    type Store = InMemoryStore;

    async fn open(&self, _types: TypeRegistry) -> InMemoryStore {
        InMemoryStore::new()
    }

    async fn reopen(&self, _store: InMemoryStore, _types: TypeRegistry) -> Option<InMemoryStore> {
        None
    }
}

macro_rules! checks {
    ($($check:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $check() {
            conformance::$check(&Memory).await;
        }
    )*};
}

checks!(
    publish_and_get,
    duplicate_publish_is_refused,
    publish_all_is_atomic,
    arrival_order,
    typed_and_raw_payloads,
    query_filters,
    query_limit,
    visibility_filter,
    commit_run_is_atomic,
);

#[tokio::test]
async fn the_in_memory_store_is_not_durable() {
    assert!(!InMemoryStore::new().is_durable());
    assert!(InMemoryStore::new().types().is_none());
}

#[tokio::test]
async fn the_whole_suite_passes() {
    conformance::all(&Memory).await;
}
