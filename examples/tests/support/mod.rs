//! What the examples' process tests share: finding an example's binary, and the
//! PostgreSQL of the tests that need one.

use std::path::PathBuf;

/// The binary of example `name`: `cargo test` builds the examples next to the test
/// binaries (`target/<profile>/examples/`).
#[allow(
    dead_code,
    reason = "only the tests that run an example's process call it"
)]
pub(crate) fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let binary = profile_dir.join("examples").join(name);
    assert!(
        binary.exists(),
        "{} is missing: run the tests with `cargo xtask test` (cargo test builds the examples)",
        binary.display()
    );
    binary
}

/// The PostgreSQL of a test that needs one (`FLOCK_TEST_POSTGRES_URL`); `None` on a
/// developer's machine without one (the test passes over its body, saying so), a
/// failure in CI (see `flock_test_support::postgres`).
#[allow(dead_code, reason = "only the tests that need PostgreSQL call it")]
pub(crate) fn postgres_url() -> Option<String> {
    flock_test_support::postgres::url()
}

/// A schema of its own for one test on the shared PostgreSQL: `prefix`, the
/// process id and the clock's nanoseconds.
#[allow(dead_code, reason = "only the tests of a cluster call it")]
pub(crate) fn fresh_schema(prefix: &str) -> String {
    #[allow(clippy::disallowed_methods, reason = "a unique name, not a time")]
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}_{}_{nanos}", std::process::id())
}

/// A store on `schema` with a type registry of its own.
#[allow(dead_code, reason = "only the tests of a cluster call it")]
pub(crate) async fn store(
    url: &str,
    schema: &str,
) -> std::sync::Arc<flock::postgres::PostgresStore> {
    let store = flock::postgres::PostgresStore::builder(url)
        .schema(schema)
        .types(flock::core::TypeRegistry::new())
        .connect()
        .await
        .unwrap_or_else(|err| panic!("cannot reach PostgreSQL at {url}: {err}"));
    std::sync::Arc::new(store)
}

/// Drops a test's schema at its end.
#[allow(dead_code, reason = "only the tests of a cluster call it")]
pub(crate) async fn drop_schema(url: &str, schema: &str) {
    let (db, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    db.batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
        .unwrap();
}

/// Waits (polling every 20 ms) until `done`; fails the test, naming `what`, once
/// `deadline` passed.
#[allow(dead_code, reason = "only the tests of a cluster call it")]
pub(crate) async fn until(
    what: &str,
    deadline: std::time::Instant,
    mut done: impl FnMut() -> bool,
) {
    while !done() {
        #[allow(
            clippy::disallowed_methods,
            reason = "a deadline of real time for a test that waits on leases"
        )]
        let now = std::time::Instant::now();
        assert!(now < deadline, "{what}: not by the deadline");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
