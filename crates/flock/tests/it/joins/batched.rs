//! Join + batch: a complete group is one batch item.

use super::*;

fn join_batch(size: usize) -> AllOf {
    a_b_join(five_minutes()).batch(BatchSpec::size(size))
}

#[tokio::test(start_paused = true)]
async fn two_pairs_with_size_two_make_one_run_of_two_groups() {
    let flock = Flock::new();
    let seen = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
    let sink = seen.clone();
    flock
        .agent("pairs")
        .consumes_all(join_batch(2))
        .with_engine(group_batch_fn(
            move |ctx: &EngineContext, groups: Vec<Inputs>| {
                let metrics = ctx.batch.clone().ok_or("not a batch")?;
                sink.lock().push((
                    metrics.batch_size,
                    groups
                        .iter()
                        .map(|g| g.artifacts().len())
                        .collect::<Vec<_>>(),
                ));
                Ok::<_, &str>(Outputs::none())
            },
        ))
        .register()
        .unwrap();
    publish_a(&flock, "k1", "a1").await;
    publish_a(&flock, "k2", "a2").await;
    publish_b(&flock, "k1", "b1").await;
    flock.run_until_idle().await;
    assert!(seen.lock().is_empty(), "one group is not a batch of two");
    publish_b(&flock, "k2", "b2").await;
    flock.run_until_idle().await;
    // BatchSpec(size=2) counts groups: one run, two groups of two artifacts each.
    assert_eq!(*seen.lock(), vec![(2, vec![2, 2])]);
}

#[tokio::test(start_paused = true)]
async fn engine_receives_groups_as_groups() {
    let flock = Flock::new();
    let runs = batched(&flock, "grouped", join_batch(2));
    publish_b(&flock, "k1", "b1").await;
    publish_a(&flock, "k2", "a2").await;
    publish_a(&flock, "k1", "a1").await;
    publish_b(&flock, "k2", "b2").await;
    flock.run_until_idle().await;
    assert_eq!(
        *runs.lock(),
        vec![batch_of(
            &[&["A:a1", "B:b1"], &["A:a2", "B:b2"]],
            FlushReason::Size
        )]
    );
}

#[tokio::test(start_paused = true)]
async fn batching_continues_after_a_flush() {
    let flock = Flock::new();
    let runs = batched(&flock, "continuing", join_batch(2));
    for k in ["k1", "k2", "k3", "k4", "k5"] {
        publish_a(&flock, k, k).await;
        publish_b(&flock, k, k).await;
    }
    flock.run_until_idle().await;
    assert_eq!(
        *runs.lock(),
        vec![
            batch_of(&[&["A:k1", "B:k1"], &["A:k2", "B:k2"]], FlushReason::Size),
            batch_of(&[&["A:k3", "B:k3"], &["A:k4", "B:k4"]], FlushReason::Size),
        ]
    );
    let active = flock.active_batches();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].items_waiting, 1, "k5's group waits in the batch");
}

#[tokio::test(start_paused = true)]
async fn partial_correlation_waits_outside_the_batch() {
    let flock = Flock::new();
    let runs = batched(&flock, "partial_in_batch", join_batch(2));
    publish_a(&flock, "k1", "a1").await;
    publish_b(&flock, "k1", "b1").await;
    publish_a(&flock, "k2", "a2").await;
    publish_a(&flock, "k3", "a3").await;
    flock.run_until_idle().await;
    assert!(
        runs.lock().is_empty(),
        "partial groups do not count toward the size"
    );
    assert_eq!(flock.active_batches()[0].items_waiting, 1);
    assert_eq!(flock.pending_joins().len(), 2);
    publish_b(&flock, "k3", "b3").await;
    flock.run_until_idle().await;
    assert_eq!(
        *runs.lock(),
        vec![batch_of(
            &[&["A:a1", "B:b1"], &["A:a3", "B:b3"]],
            FlushReason::Size
        )]
    );
}

#[tokio::test(start_paused = true)]
async fn timeout_flushes_completed_groups() {
    let flock = Flock::new();
    let runs = batched(
        &flock,
        "qc",
        a_b_join(Duration::from_secs(30))
            .batch(BatchSpec::size(5).timeout(Duration::from_secs(45))),
    );
    publish_a(&flock, "dev-1", "t1").await;
    publish_b(&flock, "dev-1", "p1").await;
    advance(Duration::from_secs(10)).await;
    publish_a(&flock, "dev-2", "t2").await;
    publish_b(&flock, "dev-2", "p2").await;
    publish_a(&flock, "dev-3", "t3").await; // never completes
    advance(Duration::from_millis(34_999)).await;
    flock.run_until_idle().await;
    assert!(runs.lock().is_empty(), "flushed before the batch deadline");
    advance(Duration::from_millis(1)).await;
    flock.run_until_idle().await;
    assert_eq!(
        *runs.lock(),
        vec![batch_of(
            &[&["A:t1", "B:p1"], &["A:t2", "B:p2"]],
            FlushReason::Timeout
        )]
    );
    assert!(flock.pending_joins().is_empty(), "dev-3 expired at 40 s");
}

#[tokio::test(start_paused = true)]
async fn shutdown_flushes_completed_groups_and_discards_partial_ones() {
    let flock = Flock::new();
    let (spans, _guard) = Capture::install();
    let runs = batched(&flock, "closing_batch", join_batch(5));
    publish_a(&flock, "k1", "a1").await;
    publish_b(&flock, "k1", "b1").await;
    publish_a(&flock, "k2", "a2").await;
    let report = flock.shutdown().await;
    assert_eq!(
        *runs.lock(),
        vec![batch_of(&[&["A:a1", "B:b1"]], FlushReason::Shutdown)]
    );
    assert_eq!((report.batches_flushed, report.artifacts_flushed), (1, 2));
    assert_eq!(
        (
            report.join_groups_discarded,
            report.join_artifacts_discarded
        ),
        (1, 1)
    );
    let discards = spans.spans("join.discard");
    assert_eq!(discards.len(), 1);
    assert_eq!(
        (discards[0].field("key"), discards[0].field("reason")),
        ("k2", "shutdown")
    );
}

#[tokio::test(start_paused = true)]
async fn three_way_with_batching() {
    let flock = Flock::new();
    let runs = batched(
        &flock,
        "three_way_batch",
        AllOf::new()
            .of::<SignalA>()
            .of::<SignalB>()
            .of::<SignalC>()
            .join(
                by_id()
                    .by(|c: &SignalC| c.correlation_id.clone())
                    .within(five_minutes()),
            )
            .batch(BatchSpec::size(2)),
    );
    for k in ["x", "y"] {
        flock.publish(SignalC::new(k, k)).await.unwrap();
        publish_b(&flock, k, k).await;
    }
    publish_a(&flock, "y", "y").await;
    publish_a(&flock, "x", "x").await;
    flock.run_until_idle().await;
    assert_eq!(
        *runs.lock(),
        vec![batch_of(
            &[&["A:y", "B:y", "C:y"], &["A:x", "B:x", "C:x"]],
            FlushReason::Size
        )]
    );
}

#[tokio::test(start_paused = true)]
async fn mixed_completion_rates_batch_in_completion_order() {
    let flock = Flock::new();
    let (spans, _guard) = Capture::install();
    let runs = batched(
        &flock,
        "mixed_rates",
        a_b_join(Duration::from_secs(10))
            .batch(BatchSpec::size(3).timeout(Duration::from_secs(60))),
    );
    // Fast devices pair at once; slow ones late; one never.
    publish_a(&flock, "slow-1", "s1").await;
    publish_a(&flock, "never", "n").await;
    publish_a(&flock, "fast-1", "f1").await;
    publish_b(&flock, "fast-1", "f1").await;
    advance(Duration::from_secs(5)).await;
    publish_a(&flock, "fast-2", "f2").await;
    publish_b(&flock, "fast-2", "f2").await;
    publish_b(&flock, "slow-1", "s1").await; // 5 s after its A: in time
    flock.run_until_idle().await;
    assert_eq!(
        *runs.lock(),
        vec![batch_of(
            &[&["A:f1", "B:f1"], &["A:f2", "B:f2"], &["A:s1", "B:s1"]],
            FlushReason::Size
        )]
    );
    publish_a(&flock, "slow-2", "s2").await;
    advance(Duration::from_secs(9)).await;
    publish_b(&flock, "slow-2", "s2").await;
    advance(Duration::from_secs(60)).await;
    flock.run_until_idle().await;
    assert_eq!(
        runs.lock()[1],
        batch_of(&[&["A:s2", "B:s2"]], FlushReason::Timeout)
    );
    let discarded: Vec<String> = spans
        .spans("join.discard")
        .iter()
        .map(|d| d.field("key").to_owned())
        .collect();
    assert_eq!(discarded, vec!["never"]);
}

#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
struct PairReport {
    key: String,
}

#[tokio::test(start_paused = true)]
async fn per_input_outputs_count_groups_not_artifacts() {
    let flock = Flock::new();
    flock
        .agent("per_pair")
        .consumes_all(join_batch(2))
        .publishes_per_input::<PairReport>()
        .with_engine(group_batch_fn(|_: &EngineContext, groups: Vec<Inputs>| {
            groups
                .iter()
                .map(|g| {
                    let a = g.get::<SignalA>().ok_or("no A")?;
                    Ok(PairReport {
                        key: a.correlation_id.clone(),
                    })
                })
                .collect::<Result<Outputs, &str>>()
        }))
        .register()
        .unwrap();
    for k in ["k1", "k2"] {
        publish_a(&flock, k, k).await;
        publish_b(&flock, k, k).await;
    }
    flock.run_until_idle().await;
    let reports = flock.get_by_type::<PairReport>().await.unwrap();
    let keys: Vec<&str> = reports.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(
        keys,
        vec!["k1", "k2"],
        "one output per group, not per artifact"
    );
    assert!(
        flock
            .get_by_type::<WorkflowError>()
            .await
            .unwrap()
            .is_empty()
    );
}
