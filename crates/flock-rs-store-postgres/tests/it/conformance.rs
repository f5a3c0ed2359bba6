//! The store conformance suite of flock-core against `PostgresStore`: every check,
//! each on stores of fresh schemas; a reopen connects anew to the same schema.

use flock_core::{
    TypeRegistry,
    conformance::{self, StoreFactory},
};
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

macro_rules! checks {
    ($($check:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $check() {
            if skip() {
                return;
            }
            conformance::$check(&Postgres).await;
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
    register_agent_is_idempotent,
    consumption_and_unconsumed,
    commit_run_is_atomic,
    failures_are_kept,
    everything_survives_reopen,
    typed_decoding_after_reopen,
);

/// `conformance::all` names every check; this keeps the list above complete.
#[tokio::test]
async fn the_whole_suite_passes() {
    if skip() {
        return;
    }
    conformance::all(&Postgres).await;
}
