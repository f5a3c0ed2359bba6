//! The store conformance suite of flock-core against `PostgresStore`: every check,
//! each on stores of fresh schemas; a reopen connects anew to the same schema.

use flock_core::{TypeRegistry, conformance::StoreFactory};
use flock_store_postgres::PostgresStore;

use crate::support::{fresh_schema, skip, store_in};

struct Postgres;

impl StoreFactory for Postgres {
    type Store = PostgresStore;

    async fn open(&self, types: TypeRegistry) -> PostgresStore {
        store_in(&fresh_schema(), types).await
    }

    async fn reopen(&self, store: PostgresStore, types: TypeRegistry) -> Option<PostgresStore> {
        let schema = store.schema().to_owned();
        drop(store);
        Some(store_in(&schema, types).await)
    }
}

flock_core::conformance_tests!(Postgres, skip_if = skip());
