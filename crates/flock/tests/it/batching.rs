//! BatchSpec semantics: size, timeout, whichever first, resets, shutdown, predicates.

use std::time::Duration;

use flock::prelude::*;
use tokio::time::advance;

use crate::{Item, Run, publish_ids, recorder, spec};

fn agent_with(flock: &Flock, name: &str, sub: Subscribe<Item>) -> crate::Runs {
    let (runs, engine) = recorder();
    flock
        .agent(name)
        .consumes(sub)
        .with_engine(engine)
        .register()
        .unwrap();
    runs
}

#[tokio::test(start_paused = true)]
async fn flushes_at_size_in_order() {
    let flock = Flock::new();
    let runs = agent_with(&flock, "batcher", Subscribe::new().batch(spec(3)));
    publish_ids(&flock, [1, 2]).await;
    flock.run_until_idle().await;
    assert!(
        runs.lock().is_empty(),
        "two items must not run a batch of three"
    );
    publish_ids(&flock, [3]).await;
    flock.run_until_idle().await;
    assert_eq!(
        *runs.lock(),
        vec![Run::batch(&[1, 2, 3], FlushReason::Size)]
    );
}

#[tokio::test(start_paused = true)]
async fn batching_continues_after_a_flush() {
    let flock = Flock::new();
    let runs = agent_with(&flock, "batcher", Subscribe::new().batch(spec(3)));
    publish_ids(&flock, 1..=6).await;
    flock.run_until_idle().await;
    assert_eq!(
        *runs.lock(),
        vec![
            Run::batch(&[1, 2, 3], FlushReason::Size),
            Run::batch(&[4, 5, 6], FlushReason::Size)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn partial_batch_stays_pending_after_run_until_idle() {
    let flock = Flock::new();
    let runs = agent_with(&flock, "batcher", Subscribe::new().batch(spec(3)));
    publish_ids(&flock, 1..=4).await;
    flock.run_until_idle().await;
    assert_eq!(runs.lock().len(), 1);
    let active = flock.active_batches();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].items_waiting, 1);
    // Size-only batches have no deadline: time alone never flushes them.
    advance(Duration::from_secs(3600)).await;
    flock.run_until_idle().await;
    assert_eq!(runs.lock().len(), 1);
    assert_eq!(flock.active_batches()[0].items_waiting, 1);
}

#[tokio::test(start_paused = true)]
async fn two_agents_batch_independently() {
    let flock = Flock::new();
    let pairs = agent_with(&flock, "pairs", Subscribe::new().batch(spec(2)));
    let triples = agent_with(&flock, "triples", Subscribe::new().batch(spec(3)));
    publish_ids(&flock, 1..=6).await;
    flock.run_until_idle().await;
    let pair_ids: Vec<Vec<i64>> = pairs.lock().iter().map(|r| r.ids.clone()).collect();
    let triple_ids: Vec<Vec<i64>> = triples.lock().iter().map(|r| r.ids.clone()).collect();
    assert_eq!(pair_ids, vec![vec![1, 2], vec![3, 4], vec![5, 6]]);
    assert_eq!(triple_ids, vec![vec![1, 2, 3], vec![4, 5, 6]]);
}

#[tokio::test(start_paused = true)]
async fn flushes_on_timeout_at_the_deadline() {
    let flock = Flock::new();
    let runs = agent_with(
        &flock,
        "batcher",
        Subscribe::new().batch(spec(10).timeout(Duration::from_secs(30))),
    );
    publish_ids(&flock, [1, 2]).await;
    advance(Duration::from_millis(29_999)).await;
    flock.run_until_idle().await;
    assert!(runs.lock().is_empty(), "flushed before the deadline");
    advance(Duration::from_millis(1)).await;
    flock.run_until_idle().await;
    assert_eq!(
        *runs.lock(),
        vec![Run::batch(&[1, 2], FlushReason::Timeout)]
    );
    assert!(flock.active_batches().is_empty());
}

#[tokio::test(start_paused = true)]
async fn deadline_timer_fires_without_anyone_polling() {
    let flock = Flock::new();
    let runs = agent_with(
        &flock,
        "batcher",
        Subscribe::new().batch(spec(10).timeout(Duration::from_secs(5))),
    );
    publish_ids(&flock, [1]).await;
    // Only sleep: no run_until_idle, no check_batch_timeouts. The deadline task must
    // flush by itself; the engine run then happens on the runtime.
    tokio::time::sleep(Duration::from_secs(6)).await;
    tokio::task::yield_now().await;
    assert_eq!(*runs.lock(), vec![Run::batch(&[1], FlushReason::Timeout)]);
}

#[tokio::test(start_paused = true)]
async fn size_or_timeout_whichever_comes_first() {
    let flock = Flock::new();
    let runs = agent_with(
        &flock,
        "batcher",
        Subscribe::new().batch(spec(5).timeout(Duration::from_secs(1))),
    );
    publish_ids(&flock, 1..=3).await;
    advance(Duration::from_secs(1)).await;
    flock.run_until_idle().await;
    publish_ids(&flock, 4..=8).await;
    flock.run_until_idle().await;
    assert_eq!(
        *runs.lock(),
        vec![
            Run::batch(&[1, 2, 3], FlushReason::Timeout),
            Run::batch(&[4, 5, 6, 7, 8], FlushReason::Size)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn timeout_resets_after_a_flush() {
    let flock = Flock::new();
    let runs = agent_with(
        &flock,
        "batcher",
        Subscribe::new().batch(spec(3).timeout(Duration::from_secs(10))),
    );
    publish_ids(&flock, 1..=3).await; // t = 0: size flush
    advance(Duration::from_secs(5)).await;
    publish_ids(&flock, [4]).await; // t = 5: deadline 15, not 10
    advance(Duration::from_secs(5)).await; // t = 10
    flock.run_until_idle().await;
    assert_eq!(runs.lock().len(), 1, "spurious flush at the old deadline");
    advance(Duration::from_secs(5)).await; // t = 15
    flock.run_until_idle().await;
    assert_eq!(
        *runs.lock(),
        vec![
            Run::batch(&[1, 2, 3], FlushReason::Size),
            Run::batch(&[4], FlushReason::Timeout)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn guide_timeline_size_then_timeout() {
    // BatchSpec(size=10, timeout=30s): 5 at 0s, 3 at 10s, 2 at 20s → size flush;
    // 3 at 25s → timeout flush at 55s with 3.
    let flock = Flock::new();
    let runs = agent_with(
        &flock,
        "payments",
        Subscribe::new().batch(spec(10).timeout(chrono::TimeDelta::seconds(30))),
    );
    publish_ids(&flock, 1..=5).await;
    advance(Duration::from_secs(10)).await;
    publish_ids(&flock, 6..=8).await;
    advance(Duration::from_secs(10)).await;
    publish_ids(&flock, 9..=10).await;
    advance(Duration::from_secs(5)).await;
    publish_ids(&flock, 11..=13).await;
    advance(Duration::from_millis(29_999)).await;
    flock.run_until_idle().await;
    assert_eq!(runs.lock().len(), 1);
    advance(Duration::from_millis(1)).await;
    flock.run_until_idle().await;
    let runs = runs.lock();
    assert_eq!(
        runs[0],
        Run::batch(&(1..=10).collect::<Vec<_>>(), FlushReason::Size)
    );
    assert_eq!(runs[1], Run::batch(&[11, 12, 13], FlushReason::Timeout));
}

#[tokio::test(start_paused = true)]
async fn shutdown_flushes_every_partial_batch() {
    let flock = Flock::new();
    let a = agent_with(&flock, "a", Subscribe::new().batch(spec(10)));
    let b = agent_with(
        &flock,
        "b",
        Subscribe::new().batch(spec(4).timeout(Duration::from_secs(60))),
    );
    publish_ids(&flock, 1..=6).await;
    let report = flock.shutdown().await;
    assert_eq!(
        *a.lock(),
        vec![Run::batch(&[1, 2, 3, 4, 5, 6], FlushReason::Shutdown)]
    );
    assert_eq!(
        *b.lock(),
        vec![
            Run::batch(&[1, 2, 3, 4], FlushReason::Size),
            Run::batch(&[5, 6], FlushReason::Shutdown)
        ]
    );
    assert_eq!(report.batches_flushed, 2);
    assert_eq!(report.artifacts_flushed, 8);
    assert!(flock.active_batches().is_empty());
}

#[tokio::test(start_paused = true)]
async fn manual_flush_hands_over_partial_batches() {
    let flock = Flock::new();
    let runs = agent_with(&flock, "batcher", Subscribe::new().batch(spec(10)));
    publish_ids(&flock, [1, 2]).await;
    assert_eq!(flock.flush_batches().await, 1);
    flock.run_until_idle().await;
    assert_eq!(*runs.lock(), vec![Run::batch(&[1, 2], FlushReason::Manual)]);
}

#[tokio::test(start_paused = true)]
async fn check_batch_timeouts_flushes_only_due_batches() {
    let flock = Flock::new();
    let fast = agent_with(
        &flock,
        "fast",
        Subscribe::new().batch(BatchSpec::timeout(Duration::from_secs(1))),
    );
    let slow = agent_with(
        &flock,
        "slow",
        Subscribe::new().batch(BatchSpec::timeout(Duration::from_secs(9))),
    );
    publish_ids(&flock, [1]).await;
    assert_eq!(flock.check_batch_timeouts().await, 0);
    advance(Duration::from_secs(1)).await;
    let flushed = flock.check_batch_timeouts().await;
    // The deadline task may have flushed it first; either way exactly one run happens.
    assert!(flushed <= 1);
    flock.run_until_idle().await;
    assert_eq!(*fast.lock(), vec![Run::batch(&[1], FlushReason::Timeout)]);
    assert!(slow.lock().is_empty());
}

#[tokio::test(start_paused = true)]
async fn predicate_filters_before_batching() {
    let flock = Flock::new();
    let runs = agent_with(
        &flock,
        "evens",
        Subscribe::new()
            .filter(|i: &Item| i.id % 2 == 0)
            .batch(spec(2)),
    );
    publish_ids(&flock, 1..=5).await;
    flock.run_until_idle().await;
    assert_eq!(*runs.lock(), vec![Run::batch(&[2, 4], FlushReason::Size)]);
    assert!(
        flock.active_batches().is_empty(),
        "odd ids must not wait in the batch"
    );
}

#[tokio::test(start_paused = true)]
async fn simple_batch_engine_publishes_a_summary() {
    let flock = Flock::new();
    flock
        .agent("simple_batch")
        .consumes::<BatchItem>(Subscribe::new().batch(spec(3)))
        .publishes::<BatchSummary>()
        .with_engine(SimpleBatchEngine)
        .register()
        .unwrap();
    for value in 1..=3 {
        flock.publish(BatchItem { value }).await.unwrap();
    }
    flock.run_until_idle().await;
    let summaries = flock
        .query(&ArtifactFilter::new().type_name("BatchSummary"))
        .await
        .unwrap();
    assert_eq!(summaries.len(), 1);
    assert_eq!(&*summaries[0].produced_by, "simple_batch");
    assert_eq!(
        summaries[0].get::<BatchSummary>(),
        Some(&BatchSummary {
            batch_size: 3,
            values: vec![1, 2, 3]
        })
    );
}

#[tokio::test(start_paused = true)]
async fn outputs_trigger_downstream_agents() {
    let flock = Flock::new();
    flock
        .agent("simple_batch")
        .consumes::<BatchItem>(Subscribe::new().batch(spec(2)))
        .publishes::<BatchSummary>()
        .with_engine(SimpleBatchEngine)
        .register()
        .unwrap();
    flock
        .agent("totals")
        .consumes::<BatchSummary>(Subscribe::new().batch(spec(2)))
        .publishes::<Item>()
        .with_engine(batch_fn(
            |_: &EngineContext, sums: Vec<std::sync::Arc<BatchSummary>>| {
                Ok::<_, String>(Item {
                    id: sums.iter().flat_map(|s| s.values.iter()).sum(),
                })
            },
        ))
        .register()
        .unwrap();
    for value in 1..=4 {
        flock.publish(BatchItem { value }).await.unwrap();
    }
    flock.run_until_idle().await;
    let totals = flock.get_by_type::<Item>().await.unwrap();
    assert_eq!(totals.iter().map(|i| i.id).collect::<Vec<_>>(), vec![10]);
}

#[tokio::test(start_paused = true)]
async fn agent_ignores_its_own_outputs_unless_allowed() {
    for (prevent, expected_runs) in [(true, 1), (false, 3)] {
        let flock = Flock::new();
        flock
            .agent("echo")
            .consumes::<Item>(Subscribe::new().filter(|i: &Item| i.id < 3))
            .publishes::<Item>()
            .prevent_self_trigger(prevent)
            .with_engine(map_fn(|_: &EngineContext, i: std::sync::Arc<Item>| {
                Ok::<_, String>(Item { id: i.id + 1 })
            }))
            .register()
            .unwrap();
        flock.publish(Item { id: 0 }).await.unwrap();
        flock.run_until_idle().await;
        let produced = flock
            .query(&ArtifactFilter::new().produced_by("echo"))
            .await
            .unwrap();
        assert_eq!(
            produced.len(),
            expected_runs,
            "prevent_self_trigger({prevent})"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn flush_figures_reach_the_engine() {
    let flock = Flock::new();
    let seen = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
    let sink = seen.clone();
    flock
        .agent("metrics")
        .consumes::<Item>(Subscribe::new().batch(spec(4).timeout(Duration::from_secs(2))))
        .with_engine(batch_fn(
            move |ctx: &EngineContext, _: Vec<std::sync::Arc<Item>>| {
                sink.lock().push(ctx.batch.clone().unwrap());
                Ok::<_, String>(Outputs::none())
            },
        ))
        .register()
        .unwrap();
    publish_ids(&flock, [1]).await;
    advance(Duration::from_millis(500)).await;
    publish_ids(&flock, [2]).await;
    advance(Duration::from_millis(1500)).await;
    flock.run_until_idle().await;
    let seen = seen.lock();
    assert_eq!(seen.len(), 1);
    let m = &seen[0];
    assert_eq!(m.batch_size, 2);
    assert_eq!(m.flush_reason, FlushReason::Timeout);
    assert_eq!(m.configured_size, Some(4));
    assert_eq!(m.configured_timeout, Some(Duration::from_secs(2)));
    assert!((m.efficiency - 0.5).abs() < 1e-12);
    assert_eq!(m.wait, Duration::from_secs(2));
    assert_eq!(m.subscription_index, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_of_one_agent_run_in_flush_order_on_a_multi_thread_runtime() {
    let flock = Flock::new();
    let runs = agent_with(&flock, "ordered", Subscribe::new().batch(spec(2)));
    publish_ids(&flock, 1..=400).await;
    flock.run_until_idle().await;
    let firsts: Vec<i64> = runs.lock().iter().map(|r| r.ids[0]).collect();
    assert_eq!(firsts.len(), 200);
    assert!(
        firsts.windows(2).all(|w| w[0] < w[1]),
        "batches ran out of order with max_concurrency(1): {firsts:?}"
    );
}
