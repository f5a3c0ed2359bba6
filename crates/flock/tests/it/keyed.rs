//! Keyed batches: one accumulator per key, each with its own size and deadline.

use std::{sync::Arc, time::Duration};

use flock::{RegistrationError, prelude::*};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::time::advance;

#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
struct Event {
    tenant: String,
    n: i64,
}

type Seen = Arc<Mutex<Vec<(String, Vec<i64>, FlushReason)>>>;

fn keyed_agent(flock: &Flock, spec: flock::subscription::BatchSpecBuilder) -> Seen {
    let seen: Seen = Arc::default();
    let sink = seen.clone();
    flock
        .agent("per_tenant")
        .consumes::<Event>(
            Subscribe::new()
                .batch(spec)
                .keyed_by(|e: &Event| e.tenant.clone()),
        )
        .with_engine(batch_fn(
            move |ctx: &EngineContext, events: Vec<Arc<Event>>| {
                let tenants: Vec<&str> = events.iter().map(|e| e.tenant.as_str()).collect();
                assert!(
                    tenants.windows(2).all(|w| w[0] == w[1]),
                    "a batch mixes keys: {tenants:?}"
                );
                sink.lock().push((
                    events[0].tenant.clone(),
                    events.iter().map(|e| e.n).collect(),
                    ctx.flush_reason().expect("batch run"),
                ));
                Ok::<_, String>(Outputs::none())
            },
        ))
        .register()
        .unwrap();
    seen
}

async fn publish(flock: &Flock, tenant: &str, n: i64) {
    flock
        .publish(Event {
            tenant: tenant.into(),
            n,
        })
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn each_key_fills_its_own_batch() {
    let flock = Flock::new();
    let seen = keyed_agent(&flock, BatchSpec::size(2));
    for (n, tenant) in ["a", "b", "a", "c", "b", "a"].into_iter().enumerate() {
        publish(&flock, tenant, n as i64).await;
    }
    flock.run_until_idle().await;
    assert_eq!(
        *seen.lock(),
        vec![
            ("a".to_owned(), vec![0, 2], FlushReason::Size),
            ("b".to_owned(), vec![1, 4], FlushReason::Size),
        ]
    );
    let mut waiting: Vec<(Option<String>, usize)> = flock
        .active_batches()
        .into_iter()
        .map(|b| (b.key, b.items_waiting))
        .collect();
    waiting.sort();
    assert_eq!(waiting, vec![(Some("a".into()), 1), (Some("c".into()), 1)]);
}

#[tokio::test(start_paused = true)]
async fn flush_spans_carry_the_key() {
    let (spans, _capture) = flock_test_support::Capture::install();
    let flock = Flock::new();
    let _seen = keyed_agent(&flock, BatchSpec::size(1));
    publish(&flock, "acme", 1).await;
    flock.run_until_idle().await;
    let flushes = spans.spans("batch.flush");
    assert_eq!(flushes.len(), 1, "{flushes:?}");
    assert_eq!(flushes[0].field("key"), "acme");
    assert_eq!(flushes[0].field("agent"), "per_tenant");
}

#[tokio::test(start_paused = true)]
async fn each_key_has_its_own_deadline() {
    let flock = Flock::new();
    let seen = keyed_agent(&flock, BatchSpec::size(10).timeout(Duration::from_secs(10)));
    publish(&flock, "early", 1).await;
    advance(Duration::from_secs(6)).await;
    publish(&flock, "late", 2).await;
    advance(Duration::from_secs(4)).await; // t = 10: only "early" is due
    flock.run_until_idle().await;
    assert_eq!(
        *seen.lock(),
        vec![("early".to_owned(), vec![1], FlushReason::Timeout)]
    );
    let active = flock.active_batches();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].key.as_deref(), Some("late"));
    assert_eq!(active[0].time_left, Some(Duration::from_secs(6)));
    advance(Duration::from_secs(6)).await; // t = 16
    flock.run_until_idle().await;
    assert_eq!(seen.lock().len(), 2);
    assert_eq!(
        seen.lock()[1],
        ("late".to_owned(), vec![2], FlushReason::Timeout)
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_flushes_every_key() {
    let flock = Flock::new();
    let seen = keyed_agent(&flock, BatchSpec::size(100));
    for n in 0..30 {
        publish(&flock, &format!("tenant-{}", n % 10), n).await;
    }
    let report = flock.shutdown().await;
    assert_eq!(report.batches_flushed, 10);
    assert_eq!(report.artifacts_flushed, 30);
    let seen = seen.lock();
    assert_eq!(seen.len(), 10);
    assert!(
        seen.iter()
            .all(|(_, ns, reason)| ns.len() == 3 && *reason == FlushReason::Shutdown)
    );
}

#[tokio::test(start_paused = true)]
async fn panicking_key_function_is_a_reported_non_match() {
    let flock = Flock::new();
    let seen: Seen = Arc::default();
    let sink = seen.clone();
    flock
        .agent("fragile")
        .consumes::<Event>(
            Subscribe::new()
                .batch(BatchSpec::size(1))
                .keyed_by(|e: &Event| {
                    assert!(!e.tenant.is_empty(), "empty tenant");
                    e.tenant.clone()
                }),
        )
        .with_engine(batch_fn(
            move |_: &EngineContext, events: Vec<Arc<Event>>| {
                sink.lock().push((
                    events[0].tenant.clone(),
                    vec![events[0].n],
                    FlushReason::Size,
                ));
                Ok::<_, String>(Outputs::none())
            },
        ))
        .register()
        .unwrap();
    publish(&flock, "", 1).await;
    publish(&flock, "ok", 2).await;
    flock.run_until_idle().await;
    assert_eq!(
        *seen.lock(),
        vec![("ok".to_owned(), vec![2], FlushReason::Size)]
    );
}

#[test]
fn keyed_by_needs_a_batch() {
    let flock = Flock::new();
    let err = flock
        .agent("keyed")
        .consumes::<Event>(Subscribe::new().keyed_by(|e: &Event| e.tenant.clone()))
        .with_engine(map_fn(|_: &EngineContext, _: Arc<Event>| {
            Ok::<_, String>(Outputs::none())
        }))
        .register()
        .unwrap_err();
    assert!(
        matches!(err, RegistrationError::InvalidSubscription { .. }),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "agent 'keyed', subscription 0: keyed_by(..) groups batches by key, but the subscription does not batch; add .batch(..)"
    );
}
