//! The database file: created with its directories, in WAL mode, closed when the
//! store is dropped; files it cannot use, a schema from the future, a lock held by
//! another process and stored payloads that no longer fit are clear errors.

use std::{sync::Arc, time::Duration};

use flock_core::{Artifact, BlackboardStore, Payload, StoreError, TypeRegistry};
use flock_store_sqlite::{DEFAULT_PATH, SqliteError, SqliteStore};
use rusqlite::Connection;

use crate::support::{Files, Order};

fn order(id: u64) -> Arc<Artifact> {
    Arc::new(Artifact::new(Payload::new(Order { id }), "external"))
}

fn wal(path: &std::path::Path) -> std::path::PathBuf {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    wal.into()
}

#[tokio::test]
async fn open_creates_the_directories_and_a_wal_database() {
    let files = Files::new();
    let path = files.dir.path().join("a/b/c/blackboard.db");
    let store = SqliteStore::open(&path).expect("open");
    store.publish(order(1)).await.expect("publish");
    assert!(path.is_file(), "the database file exists");
    assert!(wal(&path).is_file(), "a write-ahead log beside it");
    let mode: String = Connection::open(&path)
        .expect("open")
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .expect("journal_mode");
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn dropping_the_store_closes_the_file() {
    let files = Files::new();
    let path = files.fresh_path();
    let store = SqliteStore::open(&path).expect("open");
    store.publish(order(1)).await.expect("publish");
    assert_eq!(store.count().await.expect("count"), 1);
    assert!(wal(&path).exists());
    drop(store);
    // SQLite removes the log when its last connection (writer and readers) closes.
    assert!(!wal(&path).exists(), "every connection closed on drop");
}

#[test]
fn open_default_uses_dot_flock() {
    let files = Files::new();
    // The only test that changes the working directory; the others use absolute paths.
    std::env::set_current_dir(files.dir.path()).expect("cd");
    let store = SqliteStore::open_default().expect("open");
    assert_eq!(store.path(), std::path::Path::new(DEFAULT_PATH));
    assert!(files.dir.path().join(".flock/blackboard.db").is_file());
}

#[test]
fn a_file_that_is_not_a_database_is_refused() {
    let files = Files::new();
    let path = files.dir.path().join("notes.txt");
    std::fs::write(
        &path,
        "shopping list: milk, eggs, and much more text than a header",
    )
    .unwrap();
    let err = SqliteStore::open(&path).expect_err("not a database");
    assert!(matches!(err, SqliteError::Sqlite { .. }), "{err:?}");
    assert!(err.to_string().contains("not a database"), "{err}");
}

#[test]
fn a_file_in_place_of_the_directory_is_refused() {
    let files = Files::new();
    let blocker = files.dir.path().join("blocker");
    std::fs::write(&blocker, "").unwrap();
    let err = SqliteStore::open(blocker.join("blackboard.db")).expect_err("no directory");
    assert!(matches!(err, SqliteError::CreateDir { .. }), "{err:?}");
}

#[test]
fn a_newer_schema_is_refused() {
    let files = Files::new();
    let path = files.fresh_path();
    drop(SqliteStore::open(&path).expect("open"));
    Connection::open(&path)
        .and_then(|conn| conn.execute_batch("PRAGMA user_version = 99"))
        .expect("bump the version");
    let err = SqliteStore::open(&path).expect_err("newer schema");
    assert!(
        matches!(err, SqliteError::Schema { found: 99, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_payload_that_no_longer_fits_its_type_is_an_error() {
    let files = Files::new();
    let types = TypeRegistry::new();
    let store = SqliteStore::options()
        .types(types.clone())
        .open(files.fresh_path())
        .expect("open");
    let json = serde_json::json!({"id": "not a number"});
    let stale = Arc::new(Artifact::new(
        Payload::raw_json("test.Order", json),
        "external",
    ));
    store.publish(stale.clone()).await.expect("publish");
    types.register::<Order>().expect("register");
    let err = store.get(stale.id).await.expect_err("does not decode");
    let StoreError::Backend(source) = &err else {
        panic!("expected a backend error, got {err:?}");
    };
    assert!(
        matches!(
            source.downcast_ref::<SqliteError>(),
            Some(SqliteError::Decode { .. })
        ),
        "{source:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains(&stale.id.to_string()) && message.contains("test.Order"),
        "the message names the artifact and its type: {message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_held_elsewhere_fails_writes_until_it_is_released() {
    let files = Files::new();
    let path = files.fresh_path();
    let store = SqliteStore::options()
        .busy_timeout(Duration::from_millis(50))
        .open(&path)
        .expect("open");
    store.publish(order(1)).await.expect("publish");

    // Another process's writer holds the file's write lock.
    let other = Connection::open(&path).expect("open");
    other.execute_batch("BEGIN IMMEDIATE").expect("lock");
    let err = store.publish(order(2)).await.expect_err("locked");
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    assert!(err.to_string().contains("locked"), "{err}");

    other.execute_batch("ROLLBACK").expect("unlock");
    let accepted = order(3);
    store
        .publish(accepted.clone())
        .await
        .expect("the writer goes on after a failed commit");
    assert_eq!(store.count().await.expect("count"), 2, "1 and 3, not 2");
    assert!(store.get(accepted.id).await.expect("get").is_some());
}
