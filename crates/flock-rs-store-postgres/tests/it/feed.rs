//! The feed and wake-ups: store order, pages, `head`, `unconsumed_through`, no
//! artifact passed over while concurrent writers commit out of order, and
//! `wait_for_more` woken by another connection's publish or catching up after a
//! missed notification.

use std::{collections::HashSet, sync::Arc, time::Duration};

use flock_core::{ArtifactId, BlackboardStore, ClusterStore, FlockType, TypeRegistry};
use flock_store_postgres::PostgresStore;

use crate::support::{Item, admin, fresh_schema, fresh_store, item, skip, store_in, within};

/// Generous bounds that only a hang reaches.
const HANG: Duration = Duration::from_secs(30);
const FOREVER: Duration = Duration::from_secs(3_600);

/// Reads the whole feed after `after`, `page` at a time.
async fn read_feed(store: &PostgresStore, mut after: u64, page: usize) -> Vec<(u64, ArtifactId)> {
    let mut all = Vec::new();
    loop {
        let fed = store.feed(after, page).await.unwrap();
        assert!(fed.len() <= page, "a page holds at most `limit`");
        let Some(&(last, _)) = fed.last() else {
            return all;
        };
        all.extend(fed.iter().map(|(seq, a)| (*seq, a.id)));
        after = last;
    }
}

#[tokio::test]
async fn the_feed_is_in_store_order_page_by_page() {
    if skip() {
        return;
    }
    let store = fresh_store().await;
    assert_eq!(store.head().await.unwrap(), 0, "an empty store's head");
    assert!(store.feed(0, 10).await.unwrap().is_empty());
    let mut published = Vec::new();
    for chunk in 0..5 {
        let batch: Vec<_> = (0..5).map(|i| item(chunk * 5 + i)).collect();
        store.publish_all(&batch).await.unwrap();
        published.extend(batch.iter().map(|a| a.id));
    }
    let single = item(99);
    store.publish(single.clone()).await.unwrap();
    published.push(single.id);

    let fed = read_feed(&store, 0, 7).await;
    assert_eq!(fed.iter().map(|(_, id)| *id).collect::<Vec<_>>(), published);
    assert!(fed.windows(2).all(|w| w[0].0 < w[1].0), "sequences grow");
    let head = store.head().await.unwrap();
    assert_eq!(head, fed.last().unwrap().0, "head is the last sequence");
    assert!(store.feed(head, 10).await.unwrap().is_empty());
    assert_eq!(store.feed(0, 0).await.unwrap().len(), 0, "limit 0");
    let middle = fed[9].0;
    assert_eq!(
        read_feed(&store, middle, 100).await,
        fed[10..].to_vec(),
        "the feed resumes after any sequence"
    );
}

#[tokio::test]
async fn unconsumed_through_stops_at_the_given_sequence() {
    if skip() {
        return;
    }
    let store = fresh_store().await;
    store.register_agent("a").unwrap();
    let items: Vec<_> = (0..6).map(item).collect();
    store.publish_all(&items).await.unwrap();
    let fed = read_feed(&store, 0, 100).await;
    let through = fed[3].0;
    let types = [Item::TYPE_NAME];
    let got = store
        .unconsumed_through("a", &types, through)
        .await
        .unwrap();
    let ids: Vec<ArtifactId> = got.iter().map(|a| a.id).collect();
    assert_eq!(ids, items[..4].iter().map(|a| a.id).collect::<Vec<_>>());
    assert!(
        store
            .unconsumed_through("nobody", &types, through)
            .await
            .unwrap()
            .is_empty()
    );
    // Only the types asked for: an agent's takeover never reads back what it does
    // not take.
    assert!(
        store
            .unconsumed_through("a", &["pgtest.Other"], through)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Writers commit out of sequence order (numbers are taken before commits); a
/// reader that follows the feed while they write must still see every artifact
/// exactly once, in growing sequence order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_passes_over_nothing_while_writers_race() {
    if skip() {
        return;
    }
    let schema = fresh_schema();
    let writers = [
        Arc::new(store_in(&schema, TypeRegistry::new()).await),
        Arc::new(store_in(&schema, TypeRegistry::new()).await),
    ];
    let reader = store_in(&schema, TypeRegistry::new()).await;
    let (tasks, per_task) = (8, 25);
    let mut handles = Vec::new();
    for task in 0..tasks {
        let store = writers[task % 2].clone();
        handles.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..per_task {
                // Some alone, some in twos: transactions of different lengths.
                let batch: Vec<_> = (0..1 + i % 2).map(|_| item(i as u64)).collect();
                store.publish_all(&batch).await.unwrap();
                ids.extend(batch.iter().map(|a| a.id));
            }
            ids
        }));
    }
    let mut seen = Vec::new();
    let mut after = 0;
    within(HANG, "following the feed", async {
        loop {
            // Once the writers are done, an empty page means the end.
            let done = handles.iter().all(|h| h.is_finished());
            let fed = reader.feed(after, 16).await.unwrap();
            let Some(&(last, _)) = fed.last() else {
                if done {
                    break;
                }
                continue;
            };
            after = last;
            seen.extend(fed.into_iter().map(|(seq, a)| (seq, a.id)));
        }
    })
    .await;
    let mut published = HashSet::new();
    for handle in handles {
        published.extend(handle.await.unwrap());
    }
    assert_eq!(published.len(), tasks * (per_task + per_task / 2));
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "sequences grow");
    let fed: HashSet<ArtifactId> = seen.iter().map(|(_, id)| *id).collect();
    assert_eq!(fed.len(), seen.len(), "nothing fed twice");
    let missed = published.difference(&fed).count();
    assert_eq!(
        missed,
        0,
        "{missed} of {} artifacts passed over",
        published.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_more_wakes_on_a_publish_from_another_connection() {
    if skip() {
        return;
    }
    let schema = fresh_schema();
    let waiter = Arc::new(store_in(&schema, TypeRegistry::new()).await);
    let writer = store_in(&schema, TypeRegistry::new()).await;
    // Start the waiter's listener, and see a wait end at its timeout.
    within(
        HANG,
        "a wait with nothing to wake it",
        waiter.wait_for_more(0, Duration::from_millis(100)),
    )
    .await
    .unwrap();
    let head = waiter.head().await.unwrap();
    let waiting = tokio::spawn({
        let waiter = waiter.clone();
        async move { waiter.wait_for_more(head, FOREVER).await }
    });
    // Let the waiter get past its check of the table, so the notification wakes it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let published = item(1);
    writer.publish(published.clone()).await.unwrap();
    within(HANG, "the wait after a publish", waiting)
        .await
        .unwrap()
        .unwrap();
    let fed = waiter.feed(head, 10).await.unwrap();
    assert_eq!(fed.len(), 1);
    assert_eq!(fed[0].1.id, published.id);
}

#[tokio::test]
async fn wait_for_more_catches_up_after_missed_notifications() {
    if skip() {
        return;
    }
    let schema = fresh_schema();
    let waiter = store_in(&schema, TypeRegistry::new()).await;
    let writer = store_in(&schema, TypeRegistry::new()).await;
    // Published while nobody listened at all.
    writer.publish(item(1)).await.unwrap();
    within(
        HANG,
        "a wait with something already stored",
        waiter.wait_for_more(0, FOREVER),
    )
    .await
    .unwrap();
    let head = waiter.head().await.unwrap();

    // Published while the listening connection is down: terminate it, publish,
    // and the wait still ends (at once, or when the listener is back).
    let channel = format!("LISTEN \"{schema}_artifacts\"");
    let admin = admin().await;
    let killed = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = $1",
            &[&channel],
        )
        .await
        .unwrap();
    assert_eq!(killed.len(), 1, "one listening connection");
    let missed = item(2);
    writer.publish(missed.clone()).await.unwrap();
    within(
        HANG,
        "a wait after a missed notification",
        waiter.wait_for_more(head, FOREVER),
    )
    .await
    .unwrap();
    let fed = waiter.feed(head, 10).await.unwrap();
    assert_eq!(
        fed.iter().map(|(_, a)| a.id).collect::<Vec<_>>(),
        [missed.id]
    );
}
