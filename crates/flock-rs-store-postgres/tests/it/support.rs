//! What the tests share: the server's URL (without one, a test fails in CI and
//! passes over its body elsewhere: see `flock_test_support::postgres`), fresh
//! schemas, stores, artifacts and an admin connection.

use std::{sync::Arc, time::Duration};

use flock_core::{Artifact, Payload, TypeRegistry, WorkUnit};
use flock_store_postgres::PostgresStore;
use serde::{Deserialize, Serialize};
use tokio_postgres::NoTls;

pub(crate) use flock_test_support::postgres::URL_VAR;
use flock_test_support::postgres::{self, HOW};

/// A test artifact type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, flock_core::FlockType)]
#[flock(crate = "flock_core", name = "pgtest.Item")]
pub(crate) struct Item {
    pub(crate) n: u64,
}

/// Whether the test passes over its body: no server on a developer's machine (in
/// CI, no server fails the test here).
pub(crate) fn skip() -> bool {
    postgres::url().is_none()
}

/// The server's URL (a test that got past [`skip`] has one).
pub(crate) fn url() -> String {
    postgres::url().unwrap_or_else(|| panic!("{URL_VAR} is not set: {HOW}"))
}

/// A schema name no other test (or earlier run) uses.
pub(crate) fn fresh_schema() -> String {
    format!("t_{}", uuid::Uuid::now_v7().simple())
}

/// A store in `schema`, decoding with `types`.
pub(crate) async fn store_in(schema: &str, types: TypeRegistry) -> PostgresStore {
    let url = url();
    PostgresStore::builder(&url)
        .schema(schema)
        .types(types)
        .connect()
        .await
        .unwrap_or_else(|err| {
            panic!(
                "cannot reach PostgreSQL at {URL_VAR}={url}: {err}; start one with \
                 `cargo xtask postgres start` or run the tests with `cargo xtask test`"
            )
        })
}

/// A store in a fresh schema.
pub(crate) async fn fresh_store() -> PostgresStore {
    store_in(&fresh_schema(), TypeRegistry::new()).await
}

/// A connection of the test's own, for looking behind the store's back.
pub(crate) async fn admin() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&url(), NoTls)
        .await
        .unwrap_or_else(|err| panic!("cannot reach PostgreSQL at {URL_VAR}: {err}"));
    tokio::spawn(connection);
    client
}

/// An `Item` artifact.
pub(crate) fn item(n: u64) -> Arc<Artifact> {
    Arc::new(Artifact::new(Payload::new(Item { n }), "external"))
}

/// Units `0..n` of agent `agent`.
pub(crate) fn units(agent: &str, n: usize) -> Vec<WorkUnit> {
    (0..n)
        .map(|i| WorkUnit {
            agent: agent.to_owned(),
            subscription: 0,
            partition: Some(u32::try_from(i).expect("few units")),
        })
        .collect()
}

/// Waits for `future`, failing the test if it takes longer than `limit` (a bound
/// far above what it needs: it catches a hang, not slowness).
pub(crate) async fn within<T>(limit: Duration, what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: still waiting after {limit:?}"))
}
