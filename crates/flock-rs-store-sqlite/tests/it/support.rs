//! What the tests share: a factory of stores in a temporary directory, and an
//! artifact type.

use std::sync::atomic::{AtomicUsize, Ordering};

use flock_core::{TypeRegistry, conformance::StoreFactory};
use flock_store_sqlite::SqliteStore;
use serde::{Deserialize, Serialize};

/// Opens each store in a file of its own under one temporary directory (removed
/// when the factory is dropped); reopens a store on its file.
pub(crate) struct Files {
    pub(crate) dir: tempfile::TempDir,
    next: AtomicUsize,
}

impl Files {
    pub(crate) fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("a temporary directory"),
            next: AtomicUsize::new(0),
        }
    }

    /// A path for a new database, in a directory that does not exist yet.
    pub(crate) fn fresh_path(&self) -> std::path::PathBuf {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.dir.path().join(format!("store-{n}/blackboard.db"))
    }
}

impl StoreFactory for Files {
    type Store = SqliteStore;

    async fn open(&self, types: TypeRegistry) -> SqliteStore {
        SqliteStore::options()
            .types(types)
            .open(self.fresh_path())
            .expect("open a fresh store")
    }

    async fn reopen(&self, store: SqliteStore, types: TypeRegistry) -> Option<SqliteStore> {
        let path = store.path().to_owned();
        drop(store);
        Some(
            SqliteStore::options()
                .types(types)
                .open(path)
                .expect("reopen the store"),
        )
    }
}

/// An artifact type of the tests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, flock_core::FlockType)]
#[flock(crate = "flock_core", name = "test.Order")]
pub(crate) struct Order {
    pub(crate) id: u64,
}
