//! Connecting: bad URLs and schema names are refused with messages that say what
//! to do, the schema is created once however many processes connect at once, a
//! schema from a newer version is refused, and two schemas share nothing.

use flock_core::{BlackboardStore, TypeRegistry};
use flock_store_postgres::{ConnectError, PostgresStore};

use crate::support::{admin, fresh_schema, item, skip, store_in, url};

#[tokio::test]
async fn bad_urls_and_schema_names_are_refused() {
    if skip() {
        return;
    }
    let err = PostgresStore::connect("mysql://nope").await.unwrap_err();
    assert!(matches!(err, ConnectError::InvalidUrl(_)), "{err}");
    let err = PostgresStore::builder(&url())
        .schema("Robert'); DROP TABLE students;--")
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::InvalidSchema(_)), "{err}");
    assert!(
        err.to_string().starts_with("invalid schema name 'Robert'"),
        "{err}"
    );
}

#[tokio::test]
async fn no_server_says_how_to_start_one() {
    // Port 1 on loopback: nothing listens there.
    let err = PostgresStore::connect("postgres://postgres@127.0.0.1:1/postgres?connect_timeout=5")
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::Connect(_)), "{err}");
    assert!(
        err.to_string().contains("cargo xtask postgres start"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_connecting_at_once_create_the_schema_once() {
    if skip() {
        return;
    }
    let schema = fresh_schema();
    let connects: Vec<_> = (0..4)
        .map(|_| {
            let schema = schema.clone();
            tokio::spawn(async move { store_in(&schema, TypeRegistry::new()).await })
        })
        .collect();
    let mut stores = Vec::new();
    for connect in connects {
        stores.push(connect.await.unwrap());
    }
    let published = item(1);
    stores[0].publish(published.clone()).await.unwrap();
    assert!(
        stores[3].get(published.id).await.unwrap().is_some(),
        "one schema"
    );
    let versions = admin()
        .await
        .query(
            &format!("SELECT version FROM \"{schema}\".schema_version"),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(versions.len(), 1, "one version row");
}

#[tokio::test]
async fn a_schema_from_a_newer_version_is_refused() {
    if skip() {
        return;
    }
    let schema = fresh_schema();
    drop(store_in(&schema, TypeRegistry::new()).await);
    admin()
        .await
        .execute(
            &format!("UPDATE \"{schema}\".schema_version SET version = 99"),
            &[],
        )
        .await
        .unwrap();
    let err = PostgresStore::builder(&url())
        .schema(&schema)
        .connect()
        .await
        .unwrap_err();
    assert!(
        matches!(err, ConnectError::NewerSchema { found: 99, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn schemas_keep_blackboards_apart() {
    if skip() {
        return;
    }
    let one = store_in(&fresh_schema(), TypeRegistry::new()).await;
    let two = store_in(&fresh_schema(), TypeRegistry::new()).await;
    one.publish(item(1)).await.unwrap();
    assert_eq!(one.count().await.unwrap(), 1);
    assert_eq!(two.count().await.unwrap(), 0);
}
