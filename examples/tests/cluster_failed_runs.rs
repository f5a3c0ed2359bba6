//! Failed runs in a cluster follow their units: the process that takes a unit over
//! restores the unit's failed runs from the store, the one that lost it no longer
//! lists them, and each retries only its own. Two flocks of one test process on
//! one PostgreSQL schema.

#![allow(
    clippy::disallowed_methods,
    reason = "the test waits on the real clock for leases"
)]

mod support;

use std::{
    collections::BTreeSet,
    sync::Arc,
    time::{Duration, Instant},
};

use flock::{Cluster, RetryFailedRunError, prelude::*};
use serde::{Deserialize, Serialize};
use support::{drop_schema, fresh_schema, postgres_url, store, until};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_runs_follow_their_units() {
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

    // Failed runs follow their units: the second process restored those of the
    // partitions it took over from the store, the first no longer lists them.
    let ids = |flock: &Flock| -> BTreeSet<String> {
        flock
            .failed_runs()
            .iter()
            .map(|run| run.id.to_string())
            .collect()
    };
    until("the failed runs follow their units", deadline, || {
        ids(&first).len() + ids(&second).len() == KEYS as usize
    })
    .await;
    let (mine, theirs) = (ids(&first), ids(&second));
    assert!(
        !mine.is_empty() && !theirs.is_empty(),
        "{mine:?} {theirs:?}"
    );
    assert!(mine.is_disjoint(&theirs), "each listed by one process");

    // Each retries its own (the runs fail again and come back); an entry the
    // other process lists is not found here.
    for (flock, own) in [(&first, &mine), (&second, &theirs)] {
        for run in flock.failed_runs() {
            assert!(own.contains(&run.id.to_string()));
            flock.retry_failed_run(run.id).await.unwrap();
        }
        flock.run_until_idle().await;
    }
    let elsewhere = second.failed_runs()[0].id;
    assert!(matches!(
        first.retry_failed_run(elsewhere).await,
        Err(RetryFailedRunError::NotFound(_))
    ));
    until("the retried runs failed again", deadline, || {
        ids(&first).len() + ids(&second).len() == KEYS as usize && ids(&first).is_disjoint(&mine)
    })
    .await;

    // The first process leaves: the second takes over its units and their
    // failed runs.
    first.shutdown().await;
    until("the second lists every failed run", deadline, || {
        ids(&second).len() == KEYS as usize
    })
    .await;
    second.shutdown().await;
    drop_schema(&url, &schema).await;
}
