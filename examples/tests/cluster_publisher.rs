//! A flock that joins a cluster without agents (a process that only publishes) is
//! not among the processes the units are shared by: it never heartbeats, the worker
//! keeps every unit, and what it publishes is processed by the worker. Two flocks
//! of one test process on one PostgreSQL schema. And `Flock::invoke`, refused in a
//! cluster.

#![allow(
    clippy::disallowed_methods,
    reason = "the test waits on the real clock"
)]

mod support;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use flock::{Cluster, InvokeError, core::Payload, postgres::PostgresStore, prelude::*};
use serde::{Deserialize, Serialize};
use support::{drop_schema, fresh_schema, postgres_url, store};

#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
#[flock(name = "publisher_test.Order")]
struct Order {
    id: u64,
    customer: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
#[flock(name = "publisher_test.Invoice")]
struct Invoice {
    orders: Vec<u64>,
}

fn cluster(store: Arc<PostgresStore>, name: &str) -> Cluster {
    Cluster::new(store)
        .process(name)
        .lease(Duration::from_secs(2))
        .unwrap()
        .partitions(4)
        .unwrap()
}

/// A worker invoicing orders in keyed batches of 5.
async fn worker(store: Arc<PostgresStore>) -> Flock {
    let worker = Flock::builder().cluster(cluster(store, "worker")).build();
    worker
        .agent("invoicer")
        .consumes::<Order>(
            Subscribe::new()
                .keyed_by(|o: &Order| o.customer)
                .batch(BatchSpec::size(5).timeout(Duration::from_millis(200))),
        )
        .publishes::<Invoice>()
        .with_engine(batch_fn(|_: &EngineContext, orders: Vec<Arc<Order>>| {
            Ok::<_, String>(Invoice {
                orders: orders.iter().map(|o| o.id).collect(),
            })
        }))
        .register()
        .unwrap();
    worker.recover().await.unwrap();
    worker
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_that_only_publishes_is_not_a_worker() {
    let Some(url) = postgres_url() else {
        return;
    };
    let schema = fresh_schema("publisher");
    let worker_store = store(&url, &schema).await;
    let worker = worker(worker_store.clone()).await;
    let publisher = Flock::builder()
        .cluster(cluster(store(&url, &schema).await, "publisher"))
        .build();
    for id in 0..40 {
        publisher
            .publish(Order {
                id,
                customer: u32::try_from(id % 7).unwrap(),
            })
            .await
            .unwrap();
    }

    let deadline = Instant::now() + Duration::from_secs(30);
    let invoiced = loop {
        let invoices = worker.get_by_type::<Invoice>().await.unwrap();
        let invoiced: usize = invoices.iter().map(|i| i.orders.len()).sum();
        if invoiced >= 40 {
            break invoiced;
        }
        assert!(
            Instant::now() < deadline,
            "{invoiced} of 40 orders invoiced after 30 s; the worker owns {:?}",
            worker.owned_units()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(invoiced, 40, "each order invoiced once");
    assert_eq!(worker.owned_units().len(), 4, "the worker owns every unit");
    assert!(publisher.owned_units().is_empty());
    let members =
        flock::core::ClusterStore::heartbeat(&*worker_store, "worker", Duration::from_secs(2))
            .await
            .unwrap();
    assert_eq!(members, ["worker"], "the publisher never heartbeats");

    publisher.shutdown().await;
    worker.shutdown().await;
    drop_schema(&url, &schema).await;
}

/// `Flock::invoke` runs an agent outside its subscriptions; in a cluster the feed
/// would deliver the stored inputs to the subscriptions too, so it is refused
/// before anything is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoking_an_agent_in_a_cluster_is_refused_and_stores_nothing() {
    let Some(url) = postgres_url() else {
        return;
    };
    let schema = fresh_schema("invoke");
    let store = store(&url, &schema).await;
    let worker = worker(store.clone()).await;

    let input = Payload::new(Order { id: 1, customer: 1 });
    let refused = worker
        .invoke("invoicer", vec![input], PublishOptions::new())
        .await;
    match refused {
        Err(InvokeError::InCluster { agent }) => assert_eq!(agent, "invoicer"),
        other => panic!("invoke in a cluster must be refused, got {other:?}"),
    }
    assert_eq!(
        flock::core::BlackboardStore::count(&*store).await.unwrap(),
        0,
        "nothing stored"
    );

    worker.shutdown().await;
    drop_schema(&url, &schema).await;
}

/// Admission bounds do not apply in a cluster; a flock built with both says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_bounds_in_a_cluster_are_reported_as_not_applying() {
    let Some(url) = postgres_url() else {
        return;
    };
    let schema = fresh_schema("admission");
    let store = store(&url, &schema).await;
    let (captured, guard) = flock_test_support::Capture::install();
    let bounded = Flock::builder()
        .cluster(cluster(store.clone(), "bounded"))
        .admission(flock::Admission::new().max_waiting(10).unwrap())
        .build();
    let unbounded = Flock::builder()
        .cluster(cluster(store, "unbounded"))
        .build();
    drop(guard);
    let warned = captured.events(
        tracing::Level::WARN,
        "admission bounds are set but do not apply",
    );
    assert_eq!(warned.len(), 1, "one warning, for the bounded flock only");

    bounded.shutdown().await;
    unbounded.shutdown().await;
    drop_schema(&url, &schema).await;
}
