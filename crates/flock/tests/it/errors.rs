//! Failures of user code never lose inputs: they become `WorkflowError` artifacts.

use std::sync::Arc;

use flock::prelude::*;

use crate::{Item, publish_ids, recorder, spec};

async fn workflow_errors(flock: &Flock) -> Vec<Arc<WorkflowError>> {
    flock.get_by_type::<WorkflowError>().await.unwrap()
}

#[tokio::test(start_paused = true)]
async fn engine_error_becomes_a_workflow_error_with_input_ids() {
    let flock = Flock::new();
    flock
        .agent("flaky")
        .consumes::<Item>(Subscribe::new().batch(spec(2)))
        .with_engine(batch_fn(|_: &EngineContext, _: Vec<Arc<Item>>| {
            Err::<Outputs, _>("payment gateway unavailable")
        }))
        .register()
        .unwrap();
    publish_ids(&flock, [1, 2]).await;
    flock.run_until_idle().await;
    let errors = workflow_errors(&flock).await;
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].agent, "flaky");
    assert_eq!(errors[0].error, "payment gateway unavailable");
    assert_eq!(errors[0].flush_reason, Some(FlushReason::Size));
    let items = flock
        .query(&ArtifactFilter::new().type_name("Item"))
        .await
        .unwrap();
    let ids: Vec<_> = items.iter().map(|a| a.id).collect();
    assert_eq!(errors[0].input_ids, ids);

    // The process keeps running: the next batch is processed as usual.
    publish_ids(&flock, [3, 4]).await;
    flock.run_until_idle().await;
    assert_eq!(workflow_errors(&flock).await.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn engine_panic_is_contained_and_reported() {
    let flock = Flock::new();
    flock
        .agent("panicky")
        .consumes::<Item>(Subscribe::new())
        .with_engine(map_fn(|_: &EngineContext, item: Arc<Item>| {
            assert!(item.id != 2, "cannot handle item 2");
            Ok::<_, String>(Outputs::none())
        }))
        .register()
        .unwrap();
    let (runs, engine) = recorder();
    flock
        .agent("bystander")
        .consumes::<Item>(Subscribe::new().batch(spec(3)))
        .with_engine(engine)
        .register()
        .unwrap();
    publish_ids(&flock, 1..=3).await;
    flock.run_until_idle().await;
    let errors = workflow_errors(&flock).await;
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].agent, "panicky");
    assert!(
        errors[0]
            .error
            .contains("engine panicked: cannot handle item 2"),
        "{}",
        errors[0].error
    );
    assert_eq!(runs.lock().len(), 1, "other agents keep working");
}

#[tokio::test(start_paused = true)]
async fn undeclared_output_type_fails_the_run() {
    let flock = Flock::new();
    flock
        .agent("sloppy")
        .consumes::<Item>(Subscribe::new())
        .publishes::<BatchSummary>()
        .with_engine(map_fn(|_: &EngineContext, i: Arc<Item>| {
            Ok::<_, String>(BatchItem { value: i.id })
        }))
        .register()
        .unwrap();
    publish_ids(&flock, [1]).await;
    flock.run_until_idle().await;
    assert!(flock.get_by_type::<BatchItem>().await.unwrap().is_empty());
    let errors = workflow_errors(&flock).await;
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]
            .error
            .contains("output of type 'BatchItem', which agent 'sloppy' does not declare"),
        "{}",
        errors[0].error
    );
}

#[tokio::test(start_paused = true)]
async fn panicking_predicate_is_a_non_match_and_runtime_continues() {
    let flock = Flock::new();
    let (runs, engine) = recorder();
    flock
        .agent("picky")
        .consumes::<Item>(
            Subscribe::new()
                .filter(|i: &Item| {
                    assert!(i.id != 3, "predicate bug");
                    true
                })
                .batch(spec(2)),
        )
        .with_engine(engine)
        .register()
        .unwrap();
    publish_ids(&flock, 1..=5).await;
    flock.run_until_idle().await;
    let ids: Vec<Vec<i64>> = runs.lock().iter().map(|r| r.ids.clone()).collect();
    assert_eq!(ids, vec![vec![1, 2], vec![4, 5]]);
}
