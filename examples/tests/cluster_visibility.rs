//! An artifact whose `After` visibility has not begun waits in every process that
//! reads it from the feed. When a process takes a unit over while such artifacts
//! wait, it collects them again for that unit (they are not consumed): each must
//! still reach the unit once, not once from the feed and once from the takeover.
//! Two flocks of one test process on one PostgreSQL schema.

#![allow(
    clippy::disallowed_methods,
    reason = "the test waits on the real clock for leases"
)]

mod support;

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use flock::{Cluster, prelude::*};
use serde::{Deserialize, Serialize};
use support::{drop_schema, fresh_schema, postgres_url, store, until};

#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
#[flock(name = "visibility_test.Reading")]
struct Reading {
    id: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
#[flock(name = "visibility_test.Seen")]
struct Seen {
    id: u64,
}

/// How many readings are published, hidden for `HIDDEN`.
const READINGS: u64 = 20;
/// Long enough for the takeover to happen while the readings are hidden.
const HIDDEN: Duration = Duration::from_secs(8);
const LEASE: Duration = Duration::from_secs(1);

/// A worker with one agent (one unit: it is not keyed) that records each reading.
async fn worker(url: &str, schema: &str, name: &str) -> Flock {
    let cluster = Cluster::new(store(url, schema).await)
        .process(name)
        .lease(LEASE)
        .unwrap();
    let flock = Flock::builder().cluster(cluster).build();
    flock
        .agent("recorder")
        .consumes::<Reading>(Subscribe::new())
        .publishes::<Seen>()
        .with_engine(map_fn(|_: &EngineContext, r: Arc<Reading>| {
            Ok::<_, String>(Seen { id: r.id })
        }))
        .register()
        .unwrap();
    flock.recover().await.unwrap();
    flock
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_taken_over_while_an_artifact_is_hidden_gets_it_once() {
    let Some(url) = postgres_url() else {
        return;
    };
    let schema = fresh_schema("visibility");
    let deadline = Instant::now() + Duration::from_secs(30);

    // `first` owns the one unit; `second` joins and owns nothing.
    let first = worker(&url, &schema, "first").await;
    until("first owns the unit", deadline, || {
        !first.owned_units().is_empty()
    })
    .await;
    let second = worker(&url, &schema, "second").await;

    let published = Instant::now();
    for id in 0..READINGS {
        let hidden = PublishOptions::new().visibility(Visibility::after(HIDDEN, None));
        second.publish_with(Reading { id }, hidden).await.unwrap();
    }
    // Both have read the readings from the feed; they wait, hidden.
    first.run_until_idle().await;
    second.run_until_idle().await;
    assert!(second.owned_units().is_empty());

    // `first` leaves; `second` takes the unit over while the readings are hidden.
    first.shutdown().await;
    until("second takes the unit over", deadline, || {
        !second.owned_units().is_empty()
    })
    .await;
    assert!(
        published.elapsed() < HIDDEN,
        "the takeover came after the readings became visible; the test proves nothing on a machine this slow"
    );

    let mut seen = Vec::new();
    while seen.len() < usize::try_from(READINGS).unwrap() {
        assert!(
            Instant::now() < deadline,
            "{} of {READINGS} readings recorded",
            seen.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        seen = second.get_by_type::<Seen>().await.unwrap();
    }
    second.run_until_idle().await;
    let seen = second.get_by_type::<Seen>().await.unwrap();
    let mut times: BTreeMap<u64, usize> = BTreeMap::new();
    for s in &seen {
        *times.entry(s.id).or_default() += 1;
    }
    let twice: Vec<_> = times.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "readings recorded more than once: {twice:?}"
    );
    assert_eq!(times.len(), usize::try_from(READINGS).unwrap());

    second.shutdown().await;
    drop_schema(&url, &schema).await;
}
