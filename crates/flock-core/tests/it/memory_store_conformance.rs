//! The conformance suite against `InMemoryStore`: every check of artifacts and
//! queries; the durable checks return at once (the store is not durable), and
//! `commit_run_is_atomic` checks its outputs' all-or-none.

use flock_core::{BlackboardStore, InMemoryStore, TypeRegistry, conformance::StoreFactory};

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

flock_core::conformance_tests!(Memory);

#[tokio::test]
async fn the_in_memory_store_is_not_durable() {
    assert!(!InMemoryStore::new().is_durable());
    assert!(InMemoryStore::new().types().is_none());
}
