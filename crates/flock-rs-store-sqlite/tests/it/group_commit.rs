//! Group commit under concurrent publishers on a multi-thread runtime: every publish
//! is committed when it returns, racing duplicates store one artifact, and a refused
//! write leaves the other writes of its transaction intact; rows inserted 32 at a
//! time keep each write's own outcome.

use std::sync::Arc;

use flock_core::{Artifact, ArtifactFilter, BlackboardStore, Payload, StoreError};
use flock_store_sqlite::{Durability, SqliteStore};

use crate::support::{Files, Order};

fn order(id: u64) -> Arc<Artifact> {
    Arc::new(Artifact::new(Payload::new(Order { id }), "external"))
}

fn open(files: &Files, durability: Durability) -> Arc<SqliteStore> {
    Arc::new(
        SqliteStore::options()
            .durability(durability)
            .open(files.fresh_path())
            .expect("open"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_publish_is_committed_when_it_returns() {
    let files = Files::new();
    let store = open(&files, Durability::Full);
    let publishers: Vec<_> = (0..64)
        .map(|task| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in 0..20 {
                    let artifact = order(task * 1000 + i);
                    store.publish(artifact.clone()).await.expect("publish");
                    // A read connection sees only committed transactions.
                    let stored = store.get(artifact.id).await.expect("get");
                    assert!(stored.is_some(), "a returned publish is committed");
                    ids.push(artifact.id);
                }
                ids
            })
        })
        .collect();
    let mut published = Vec::new();
    for publisher in publishers {
        published.push(publisher.await.expect("publisher"));
    }

    let stored = store.query(&ArtifactFilter::new()).await.expect("query");
    assert_eq!(stored.len(), 64 * 20, "every publish stored once");
    assert_eq!(store.count().await.expect("count"), 64 * 20);
    // Arrival order is each publisher's order: its publishes were sequential.
    for ids in &published {
        let positions: Vec<usize> = ids
            .iter()
            .map(|id| stored.iter().position(|a| a.id == *id).expect("stored"))
            .collect();
        assert!(
            positions.is_sorted(),
            "one publisher's artifacts in its order"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_duplicates_store_one_artifact() {
    let files = Files::new();
    let store = open(&files, Durability::Normal);
    for round in 0..50 {
        let artifact = order(round);
        let racers: Vec<_> = (0..8)
            .map(|_| {
                let (store, artifact) = (store.clone(), artifact.clone());
                tokio::spawn(async move { store.publish(artifact).await })
            })
            .collect();
        let mut accepted = 0;
        for racer in racers {
            match racer.await.expect("racer") {
                Ok(()) => accepted += 1,
                Err(StoreError::Duplicate(id)) => assert_eq!(id, artifact.id),
                Err(other) => panic!("unexpected error: {other}"),
            }
        }
        assert_eq!(accepted, 1, "round {round}: exactly one publish accepted");
    }
    assert_eq!(store.count().await.expect("count"), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_write_leaves_the_rest_of_its_group() {
    let files = Files::new();
    let store = open(&files, Durability::Normal);
    let known: Vec<_> = (0..32).map(order).collect();
    store.publish_all(&known).await.expect("publish_all");
    for round in 0..10u64 {
        let fresh: Vec<_> = (0..32).map(|i| order(1000 * (round + 1) + i)).collect();
        let mut tasks = Vec::new();
        for (good, bad) in fresh.iter().zip(&known) {
            let (s1, s2, s3) = (store.clone(), store.clone(), store.clone());
            let (good, bad, pair) = (good.clone(), bad.clone(), [order(0), bad.clone()]);
            tasks.push(tokio::spawn(async move { s1.publish(good).await }));
            tasks.push(tokio::spawn(async move { s2.publish(bad).await }));
            tasks.push(tokio::spawn(async move { s3.publish_all(&pair).await }));
        }
        for (i, task) in tasks.into_iter().enumerate() {
            let outcome = task.await.expect("task");
            match i % 3 {
                0 => outcome.expect("a fresh artifact is accepted"),
                _ => assert!(
                    matches!(outcome, Err(StoreError::Duplicate(_))),
                    "a known id is refused, got {outcome:?}"
                ),
            }
        }
        for artifact in &fresh {
            assert!(store.get(artifact.id).await.expect("get").is_some());
        }
    }
    // The known 32, ten rounds of 32 fresh ones, and no first half of a refused pair.
    assert_eq!(store.count().await.expect("count"), 32 + 10 * 32);
}

/// Single publishes that follow one another in a group are inserted 32 at a time
/// with one statement; a known or repeated id among them must still refuse only
/// its own publish.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn single_publishes_inserted_together_keep_their_own_outcomes() {
    let files = Files::new();
    let store = open(&files, Durability::Normal);
    let known: Vec<_> = (0..64).map(order).collect();
    store.publish_all(&known).await.expect("publish_all");
    for round in 0..20u64 {
        let fresh: Vec<_> = (0..128).map(|i| order(10_000 * (round + 1) + i)).collect();
        // In each block of four: a known id, two fresh artifacts, the first of them
        // again; all at once, so the writer groups them.
        let tasks: Vec<_> = (0..256usize)
            .map(|i| {
                let block = i / 4;
                let artifact = match i % 4 {
                    0 => known[block].clone(),
                    1 | 3 => fresh[2 * block].clone(),
                    _ => fresh[2 * block + 1].clone(),
                };
                let store = store.clone();
                tokio::spawn(async move { (artifact.id, store.publish(artifact).await) })
            })
            .collect();
        let mut accepted = std::collections::HashMap::new();
        for task in tasks {
            let (id, outcome) = task.await.expect("task");
            match outcome {
                Ok(()) => *accepted.entry(id).or_insert(0) += 1,
                Err(StoreError::Duplicate(refused)) => assert_eq!(refused, id),
                Err(other) => panic!("unexpected error: {other}"),
            }
        }
        assert!(
            fresh.iter().all(|a| accepted.get(&a.id) == Some(&1)),
            "round {round}: every fresh artifact accepted exactly once"
        );
        assert_eq!(accepted.len(), fresh.len(), "round {round}: no known id");
    }
    assert_eq!(
        store.count().await.expect("count"),
        64 + 20 * 128,
        "only what was accepted is stored"
    );
    let all = store.query(&ArtifactFilter::new()).await.expect("query");
    assert_eq!(all.len(), 64 + 20 * 128, "and it reads back");
}

/// `publish_all` and `commit_run` insert their rows 32 at a time: a known or
/// repeated id anywhere (in a full chunk or the rest) still refuses the whole write
/// and names the id; a good write keeps its order.
#[tokio::test]
async fn large_writes_are_all_or_none_whatever_chunk_the_refused_id_is_in() {
    let files = Files::new();
    let store = open(&files, Durability::Normal);
    let known = order(0);
    store.publish(known.clone()).await.expect("publish");
    for (position, repeat) in [(5, false), (40, false), (99, false), (70, true), (33, true)] {
        let mut rows: Vec<_> = (1..=100).map(|i| order(1_000_000 + i)).collect();
        let refused = match repeat {
            true => rows[position - 30].clone(),
            false => known.clone(),
        };
        rows[position] = refused.clone();
        match store.publish_all(&rows).await {
            Err(StoreError::Duplicate(id)) => assert_eq!(id, refused.id),
            other => panic!("a known or repeated id at {position}: {other:?}"),
        }
        assert_eq!(store.count().await.expect("count"), 1, "nothing stored");
    }
    let rows: Vec<_> = (1..=100).map(|i| order(2_000_000 + i)).collect();
    store.publish_all(&rows).await.expect("publish_all");
    let all = store.query(&ArtifactFilter::new()).await.expect("query");
    let ids: Vec<_> = all.iter().map(|a| a.id).collect();
    let expected: Vec<_> = std::iter::once(&known).chain(&rows).map(|a| a.id).collect();
    assert_eq!(ids, expected, "stored in order");
}
