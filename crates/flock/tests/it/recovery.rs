//! Recovery on a real SQLite file (`flock::sqlite`): a "process" is a Tokio runtime
//! of its own with a flock on the file; dropping the runtime without `shutdown`
//! stops everything at once, as a crash would (what was accepted is committed, since
//! a publish returns only once durable), and the next process opens the same file.
//! Real time throughout: the store answers from its own threads, which a paused
//! clock would not wait for.

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use flock::{core::Payload, prelude::*, sqlite::SqliteStore};
use parking_lot::Mutex;
use uuid::Uuid;

use crate::{
    GroupRun, GroupRuns, Item, Run, Runs, SignalA, SignalB, groups, labels, publish_ids,
    register_gate, strings,
};

/// One process: a runtime of its own, dropped (tasks and all) at the end.
fn process<T>(work: impl Future<Output = T>) -> T {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(work)
}

/// A flock on the file at `db`.
fn open(db: &Path) -> Flock {
    let store = SqliteStore::open(db).expect("open the store");
    Flock::builder().no_trace().store(Arc::new(store)).build()
}

/// A batch engine recording the items and flush reason of every run, and the run
/// ids it was given.
fn recording(runs: &Runs, run_ids: &Arc<Mutex<Vec<Uuid>>>) -> impl Engine + use<> {
    let (runs, run_ids) = (runs.clone(), run_ids.clone());
    batch_fn(move |ctx: &EngineContext, items: Vec<Arc<Item>>| {
        run_ids.lock().push(ctx.run_id);
        runs.lock().push(Run {
            ids: items.iter().map(|i| i.id).collect(),
            reason: ctx.flush_reason(),
        });
        Ok::<_, String>(Outputs::none())
    })
}

/// Registers agent `name` with one batch subscription to `Item` of `spec`, its runs
/// recorded (see [`recording`]).
fn register_recording(
    flock: &Flock,
    name: &str,
    spec: impl flock::subscription::IntoBatchSpec,
    runs: &Runs,
    run_ids: &Arc<Mutex<Vec<Uuid>>>,
) {
    flock
        .agent(name)
        .consumes::<Item>(Subscribe::new().batch(spec))
        .with_engine(recording(runs, run_ids))
        .register()
        .unwrap();
}

#[test]
fn what_no_run_consumed_is_collected_again_and_the_rest_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("blackboard.db");
    let runs: Runs = Arc::default();
    let ids: Arc<Mutex<Vec<Uuid>>> = Arc::default();
    process(async {
        let flock = open(&db);
        register_recording(&flock, "batches", BatchSpec::size(3), &runs, &ids);
        publish_ids(&flock, 0..5).await;
        flock.run_until_idle().await;
        // Killed here: 3 and 4 wait in the partial batch.
    });
    assert_eq!(
        *runs.lock(),
        vec![Run::batch(&[0, 1, 2], FlushReason::Size)]
    );

    process(async {
        let flock = open(&db);
        register_recording(&flock, "batches", BatchSpec::size(3), &runs, &ids);
        let report = flock.recover().await.unwrap();
        assert_eq!((report.artifacts, report.deliveries), (2, 2));
        publish_ids(&flock, [5]).await;
        flock.run_until_idle().await;
        flock.shutdown().await;
    });
    assert_eq!(
        *runs.lock(),
        vec![
            Run::batch(&[0, 1, 2], FlushReason::Size),
            Run::batch(&[3, 4, 5], FlushReason::Size),
        ],
        "every item in exactly one batch, in arrival order"
    );

    // After a clean shutdown nothing is left to recover.
    process(async {
        let flock = open(&db);
        register_recording(&flock, "batches", BatchSpec::size(3), &runs, &ids);
        let report = flock.recover().await.unwrap();
        assert_eq!(report.artifacts, 0);
        assert_eq!(flock.store().count().await.unwrap(), 6);
    });
}

#[test]
fn a_batch_whose_timeout_passed_during_the_downtime_flushes_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("blackboard.db");
    let runs: Runs = Arc::default();
    let ids: Arc<Mutex<Vec<Uuid>>> = Arc::default();
    let timeout = Duration::from_secs(1);
    let register = |flock: &Flock| {
        register_recording(
            flock,
            "batches",
            BatchSpec::size(10).timeout(timeout),
            &runs,
            &ids,
        );
    };
    process(async {
        let flock = open(&db);
        register(&flock);
        publish_ids(&flock, [1, 2]).await;
    });
    assert!(
        runs.lock().is_empty(),
        "the first process stopped before the deadline"
    );
    std::thread::sleep(timeout);

    process(async {
        let flock = open(&db);
        register(&flock);
        let report = flock.recover().await.unwrap();
        assert_eq!(report.artifacts, 2);
        flock.run_until_idle().await;
    });
    assert_eq!(
        *runs.lock(),
        vec![Run::batch(&[1, 2], FlushReason::Timeout)],
        "overdue at recovery: flushed at once, as a timeout"
    );
}

#[test]
fn an_interrupted_run_runs_again_with_the_same_run_id() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("blackboard.db");
    let runs: Runs = Arc::default();
    let ids: Arc<Mutex<Vec<Uuid>>> = Arc::default();
    process(async {
        let flock = open(&db);
        let seen = ids.clone();
        flock
            .agent("batches")
            .consumes::<Item>(Subscribe::new().batch(BatchSpec::size(2)))
            .with_engine(batch_fn_async(
                move |ctx: EngineContext, _: Vec<Arc<Item>>| {
                    seen.lock().push(ctx.run_id);
                    async {
                        // Never finishes: the process dies during the run.
                        std::future::pending::<()>().await;
                        Ok::<_, String>(Outputs::none())
                    }
                },
            ))
            .register()
            .unwrap();
        publish_ids(&flock, [1, 2]).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while ids.lock().is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let first = ids.lock().clone();
    assert_eq!(first.len(), 1, "the run started before the crash");

    process(async {
        let flock = open(&db);
        register_recording(&flock, "batches", BatchSpec::size(2), &runs, &ids);
        flock.recover().await.unwrap();
        flock.run_until_idle().await;
    });
    assert_eq!(*runs.lock(), vec![Run::batch(&[1, 2], FlushReason::Size)]);
    assert_eq!(
        ids.lock()[1],
        first[0],
        "the same inputs: the same run id (an idempotency key)"
    );
}

#[test]
fn failed_runs_survive_and_their_inputs_are_not_delivered_again() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("blackboard.db");
    let calls: Arc<Mutex<Vec<i64>>> = Arc::default();
    let register = |flock: &Flock| {
        let calls = calls.clone();
        flock
            .agent("checks")
            .consumes::<Item>(Subscribe::new())
            .with_engine(map_fn(move |_: &EngineContext, item: Arc<Item>| {
                calls.lock().push(item.id);
                match item.id {
                    7 => Err("refused".to_owned()),
                    _ => Ok(Outputs::none()),
                }
            }))
            .register()
            .unwrap();
    };
    process(async {
        let flock = open(&db);
        register(&flock);
        publish_ids(&flock, [6, 7]).await;
        flock.run_until_idle().await;
        assert_eq!(flock.failed_runs().len(), 1);
    });
    calls.lock().sort_unstable();
    assert_eq!(*calls.lock(), vec![6, 7]);

    process(async {
        let flock = open(&db);
        register(&flock);
        let report = flock.recover().await.unwrap();
        assert_eq!(report.failed_runs, 1);
        flock.run_until_idle().await;
        let failed = flock.failed_runs();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].agent, "checks");
        assert!(failed[0].error.contains("refused"), "{}", failed[0].error);
        assert_eq!(failed[0].inputs[0].get::<Item>(), Some(&Item { id: 7 }));
        let errors = flock
            .store()
            .list_by_type(WorkflowError::TYPE_NAME)
            .await
            .unwrap();
        assert_eq!(errors.len(), 1, "its WorkflowError is stored once");
    });
    assert_eq!(
        *calls.lock(),
        vec![6, 7],
        "neither the consumed input nor the failed run's is delivered again"
    );
}

/// `Flock::invoke` runs one agent on its inputs, outside every subscription: after
/// a restart, no other agent collects them either.
#[test]
fn invoked_inputs_are_not_delivered_to_other_agents_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("blackboard.db");
    let runs: Runs = Arc::default();
    let ids: Arc<Mutex<Vec<Uuid>>> = Arc::default();
    let register = |flock: &Flock| {
        flock
            .agent("invoked")
            .consumes::<Item>(Subscribe::new())
            .with_engine(map_fn(|_: &EngineContext, _: Arc<Item>| {
                Ok::<_, String>(Outputs::none())
            }))
            .register()
            .unwrap();
        register_recording(flock, "bystander", BatchSpec::size(1), &runs, &ids);
    };
    process(async {
        let flock = open(&db);
        register(&flock);
        flock
            .invoke(
                "invoked",
                vec![Payload::new(Item { id: 7 })],
                PublishOptions::new(),
            )
            .await
            .unwrap();
        flock.shutdown().await;
    });
    assert!(runs.lock().is_empty(), "invoke delivers to no subscription");

    process(async {
        let flock = open(&db);
        register(&flock);
        flock.run_until_idle().await;
        flock.shutdown().await;
    });
    assert!(
        runs.lock().is_empty(),
        "after a restart, another agent collected the invoked input: {:?}",
        runs.lock()
    );
}

/// With a durable store, shutdown leaves an incomplete join group in the store
/// (reported as left, not discarded); the next start collects it again and it
/// completes when its partner arrives.
#[test]
fn an_incomplete_join_group_is_left_at_shutdown_and_completes_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("blackboard.db");
    let pairs: GroupRuns = Arc::default();
    let register = |flock: &Flock| {
        let sink = pairs.clone();
        let join = AllOf::new().of::<SignalA>().of::<SignalB>().join(
            JoinSpec::by(|a: &SignalA| a.correlation_id.clone())
                .by(|b: &SignalB| b.correlation_id.clone())
                .within(Duration::from_secs(3600)),
        );
        register_gate(
            flock,
            "pairs",
            join,
            (
                sink.clone(),
                group_fn(move |ctx: &EngineContext, inputs: Inputs| {
                    sink.lock().push(GroupRun {
                        groups: vec![labels(&inputs)],
                        reason: ctx.flush_reason(),
                    });
                    Ok::<_, String>(Outputs::none())
                }),
            ),
        );
    };
    let report = process(async {
        let flock = open(&db);
        register(&flock);
        flock.publish(SignalA::new("k", "a")).await.unwrap();
        flock.shutdown().await
    });
    assert_eq!(
        (report.join_groups_discarded, report.join_groups_left),
        (0, 1),
        "left in the store, not discarded"
    );
    assert_eq!(report.join_artifacts_left, 1);

    process(async {
        let flock = open(&db);
        register(&flock);
        flock.publish(SignalB::new("k", "b")).await.unwrap();
        flock.run_until_idle().await;
        flock.shutdown().await;
    });
    assert_eq!(groups(&pairs), vec![strings(&["A:a", "B:b"])]);
}

/// A retry of a failed run that the process dies during is not lost: the failed
/// run is forgotten only together with the retry's outputs, so the next start
/// restores it.
#[test]
fn a_retry_interrupted_by_a_crash_leaves_the_failed_run_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("blackboard.db");
    // What the engine does: fail, hang (the crash comes during the run), succeed.
    let mode = Arc::new(Mutex::new("fail"));
    let done: Arc<Mutex<Vec<i64>>> = Arc::default();
    let register = |flock: &Flock| {
        let (mode, done) = (mode.clone(), done.clone());
        flock
            .agent("checks")
            .consumes::<Item>(Subscribe::new())
            .with_engine(map_fn_async(move |_: EngineContext, item: Arc<Item>| {
                let (mode, done) = (*mode.lock(), done.clone());
                async move {
                    match mode {
                        "fail" => Err("refused".to_owned()),
                        "hang" => std::future::pending().await,
                        _ => {
                            done.lock().push(item.id);
                            Ok(Outputs::none())
                        }
                    }
                }
            }))
            .register()
            .unwrap();
    };
    process(async {
        let flock = open(&db);
        register(&flock);
        publish_ids(&flock, [7]).await;
        flock.run_until_idle().await;
        assert_eq!(flock.failed_runs().len(), 1);
    });

    *mode.lock() = "hang";
    process(async {
        let flock = open(&db);
        register(&flock);
        flock.recover().await.unwrap();
        let id = flock.failed_runs()[0].id;
        flock.retry_failed_run(id).await.unwrap();
        // Killed while the retry runs.
        tokio::time::sleep(Duration::from_millis(100)).await;
    });

    *mode.lock() = "succeed";
    process(async {
        let flock = open(&db);
        register(&flock);
        let report = flock.recover().await.unwrap();
        assert_eq!(report.failed_runs, 1, "the failed run is still there");
        let id = flock.failed_runs()[0].id;
        flock.retry_failed_run(id).await.unwrap();
        flock.run_until_idle().await;
        assert!(flock.failed_runs().is_empty());
        flock.shutdown().await;
    });
    assert_eq!(*done.lock(), vec![7], "the input ran");

    process(async {
        let flock = open(&db);
        register(&flock);
        let report = flock.recover().await.unwrap();
        assert_eq!(
            report.failed_runs, 0,
            "retried for good: no failed run left"
        );
        flock.run_until_idle().await;
        flock.shutdown().await;
    });
    assert_eq!(*done.lock(), vec![7], "and never again");
}
