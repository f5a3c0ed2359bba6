//! `shutdown` drains the flock: runs still in flight publish outputs, which start new
//! batches; those batches keep their timeouts until the drain is over.

use std::{sync::Arc, time::Duration};

use flock::prelude::*;
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::{Item, publish_ids};

/// Regression: the deadline task used to stop for good when it woke (for a deadline
/// whose batch had already flushed by size) to find the flock closed and no batch
/// waiting, although runs were still in flight. A batch their outputs started later
/// in the drain then missed its deadline and flushed only when the next output or the
/// end of the drain came.
#[tokio::test(start_paused = true)]
async fn batches_started_during_shutdown_flush_at_their_deadline() {
    let flock = Flock::new();
    let start = Instant::now();
    flock
        .agent("slow")
        .consumes::<Item>(Subscribe::new())
        .publishes::<BatchItem>()
        .with_engine(map_fn_async(
            |_: EngineContext, item: Arc<Item>| async move {
                // Works `id` milliseconds.
                tokio::time::sleep(Duration::from_millis(item.id.unsigned_abs())).await;
                Ok::<_, String>(BatchItem { value: item.id })
            },
        ))
        .register()
        .unwrap();
    type Flush = (Vec<i64>, FlushReason, Duration, Duration);
    let flushes: Arc<Mutex<Vec<Flush>>> = Arc::default();
    let sink = flushes.clone();
    flock
        .agent("downstream")
        .consumes::<BatchItem>(
            Subscribe::new().batch(BatchSpec::size(2).timeout(Duration::from_millis(40))),
        )
        .with_engine(batch_fn(
            move |ctx: &EngineContext, items: Vec<Arc<BatchItem>>| {
                let batch = ctx.batch.as_ref().unwrap();
                sink.lock().push((
                    items.iter().map(|i| i.value).collect(),
                    batch.flush_reason,
                    batch.wait,
                    start.elapsed(),
                ));
                Ok::<_, String>(Outputs::none())
            },
        ))
        .register()
        .unwrap();
    // One run at a time: outputs at 35, 70, 120 and 220 ms. The first batch fills at
    // 70 ms, so the timer armed for its deadline (75 ms) wakes to find nothing.
    publish_ids(&flock, [35, 35, 50, 100]).await;
    let report = flock.shutdown().await;
    let ms = Duration::from_millis;
    assert_eq!(
        *flushes.lock(),
        vec![
            (vec![35, 35], FlushReason::Size, ms(35), ms(70)),
            (vec![50], FlushReason::Timeout, ms(40), ms(160)),
            (vec![100], FlushReason::Shutdown, ms(0), ms(220)),
        ],
        "the batch started at 120 ms flushes at its deadline, while the drain goes on"
    );
    assert_eq!((report.batches_flushed, report.artifacts_flushed), (1, 1));
}

/// Regression: an `After` visibility that began while shutdown drained made the
/// timer spin at that past instant (nothing is released once closed, yet it stayed
/// the next wake-up): on the paused clock `shutdown` never returned, on the real
/// clock it burned a core. Artifacts whose visibility had not begun when shutdown
/// started are reported, not delivered.
#[test]
fn shutdown_returns_when_an_after_visibility_begins_during_the_drain() {
    crate::finishes_within(Duration::from_secs(60), "shutdown", || {
        crate::paused_runtime().block_on(async {
            let flock = Flock::builder().no_trace().build();
            let seen = Arc::new(Mutex::new(Vec::new()));
            let sink = seen.clone();
            flock
                .agent("slow")
                .consumes::<Item>(Subscribe::new())
                .with_engine(map_fn_async(move |_: EngineContext, item: Arc<Item>| {
                    let sink = sink.clone();
                    async move {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        sink.lock().push(item.id);
                        Ok::<_, String>(Outputs::none())
                    }
                }))
                .register()
                .unwrap();
            flock.publish(Item { id: 1 }).await.unwrap();
            let later = Visibility::after(Duration::from_millis(50), None);
            flock
                .publish_with(Item { id: 2 }, PublishOptions::new().visibility(later))
                .await
                .unwrap();
            let report = flock.shutdown().await;
            assert_eq!(*seen.lock(), vec![1]);
            assert_eq!(report.deferred_undelivered, 1);
        });
    });
}
