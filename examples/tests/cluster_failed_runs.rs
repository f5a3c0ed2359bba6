//! Failed runs in a cluster: a process retries a failed run only while it owns the
//! run's unit. When the unit moved, the retry is refused and the entry stays (its
//! inputs count as consumed, so nothing else would run them). Two flocks of one
//! test process on one PostgreSQL schema.

#![allow(
    clippy::disallowed_methods,
    reason = "the test waits on the real clock for leases"
)]

mod support;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use flock::{Cluster, RetryFailedRunError, prelude::*};
use serde::{Deserialize, Serialize};
use support::{drop_schema, fresh_schema, postgres_url, store};

#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
#[flock(name = "failed_runs_test.Job")]
struct Job {
    key: u32,
}

const PARTITIONS: u32 = 4;
const KEYS: u32 = 16;

/// A worker whose `runner` fails every job, keyed over `PARTITIONS` partitions.
async fn worker(url: &str, schema: &str, name: &str) -> Flock {
    let cluster = Cluster::new(store(url, schema).await)
        .process(name)
        .lease(Duration::from_secs(1))
        .unwrap()
        .partitions(PARTITIONS)
        .unwrap();
    let flock = Flock::builder().cluster(cluster).build();
    flock
        .agent("runner")
        .consumes::<Job>(
            Subscribe::new()
                .keyed_by(|j: &Job| j.key)
                .batch(BatchSpec::size(1)),
        )
        .with_engine(batch_fn(|_: &EngineContext, _: Vec<Arc<Job>>| {
            Err::<Outputs, _>("always fails")
        }))
        .register()
        .unwrap();
    flock.recover().await.unwrap();
    flock
}

async fn until(what: &str, deadline: Instant, mut done: impl FnMut() -> bool) {
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_is_retried_only_where_its_unit_is_owned() {
    let Some(url) = postgres_url() else {
        return;
    };
    let schema = fresh_schema("failed_runs");
    let deadline = Instant::now() + Duration::from_secs(30);
    let first = worker(&url, &schema, "first").await;
    until("first owns every partition", deadline, || {
        first.owned_units().len() == PARTITIONS as usize
    })
    .await;
    for key in 0..KEYS {
        first.publish(Job { key }).await.unwrap();
    }
    first.run_until_idle().await;
    until("every job failed", deadline, || {
        first.failed_runs().len() == KEYS as usize
    })
    .await;

    // A second process joins: the partitions are shared.
    let second = worker(&url, &schema, "second").await;
    until("the partitions are shared", deadline, || {
        first.owned_units().len() == (PARTITIONS / 2) as usize
            && second.owned_units().len() == (PARTITIONS / 2) as usize
    })
    .await;

    let (mut retried, mut moved) = (0, 0);
    for run in first.failed_runs() {
        match first.retry_failed_run(run.id).await {
            Ok(()) => retried += 1,
            Err(RetryFailedRunError::Moved(id)) => {
                assert_eq!(id, run.id);
                moved += 1;
            }
            Err(other) => panic!("unexpected refusal: {other}"),
        }
    }
    first.run_until_idle().await;
    assert!(
        retried > 0 && moved > 0,
        "some failed runs' units stayed, some moved: {retried} retried, {moved} moved"
    );
    assert_eq!(
        first.failed_runs().len(),
        KEYS as usize,
        "a moved entry stays; a retried one failed again and came back"
    );

    first.shutdown().await;
    second.shutdown().await;
    drop_schema(&url, &schema).await;
}
