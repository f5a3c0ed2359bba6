//! The output contract: `.publishes::<T>()` is exactly one `T` per run,
//! `.publishes_many::<T>()` any number, `.publishes_per_input::<T>()` one per input
//! item; an engine that returns another count fails the run with a clear error.

use std::sync::Arc;

use flock::{AgentBuilder, RegistrationError, prelude::*};

use crate::{Item, publish_ids, spec};

/// An engine returning `n(batch size)` copies of a summary.
fn returning(n: fn(usize) -> usize) -> impl Engine {
    batch_fn(move |_: &EngineContext, items: Vec<Arc<Item>>| {
        let summary = BatchSummary {
            batch_size: items.len(),
            values: items.iter().map(|i| i.id).collect(),
        };
        Ok::<_, String>(std::iter::repeat_n(summary, n(items.len())).collect::<Outputs>())
    })
}

async fn run(builder: AgentBuilder, flock: &Flock) -> (usize, Vec<Arc<WorkflowError>>) {
    builder.register().unwrap();
    publish_ids(flock, 1..=3).await;
    flock.run_until_idle().await;
    (
        flock.get_by_type::<BatchSummary>().await.unwrap().len(),
        flock.get_by_type::<WorkflowError>().await.unwrap(),
    )
}

fn agent(flock: &Flock) -> AgentBuilder {
    flock
        .agent("summaries")
        .consumes::<Item>(Subscribe::new().batch(spec(3)))
}

#[tokio::test(start_paused = true)]
async fn publishes_means_exactly_one_per_run() {
    for (n, expected_error) in [
        (
            0,
            "agent 'summaries' must publish exactly one 'BatchSummary' per run (declared with .publishes::<BatchSummary>()), but the engine returned 0; return exactly one, or declare .publishes_many::<BatchSummary>() for any number",
        ),
        (
            2,
            "agent 'summaries' must publish exactly one 'BatchSummary' per run (declared with .publishes::<BatchSummary>()), but the engine returned 2; return exactly one, or declare .publishes_many::<BatchSummary>() for any number",
        ),
    ] {
        let flock = Flock::new();
        let engine = if n == 0 {
            returning(|_| 0)
        } else {
            returning(|_| 2)
        };
        let builder = agent(&flock)
            .publishes::<BatchSummary>()
            .with_engine(engine);
        let (published, errors) = run(builder, &flock).await;
        assert_eq!(published, 0, "nothing of a broken run is published");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].error, expected_error);
        assert_eq!(errors[0].input_ids.len(), 3);
        assert_eq!(flock.failed_runs().len(), 1, "the inputs are kept");
    }
    let flock = Flock::new();
    let builder = agent(&flock)
        .publishes::<BatchSummary>()
        .with_engine(returning(|_| 1));
    assert_eq!(run(builder, &flock).await.0, 1);
}

#[tokio::test(start_paused = true)]
async fn publishes_many_accepts_any_number() {
    for n in [0usize, 1, 5] {
        let flock = Flock::new();
        let engine = match n {
            0 => returning(|_| 0),
            1 => returning(|_| 1),
            _ => returning(|_| 5),
        };
        let builder = agent(&flock)
            .publishes_many::<BatchSummary>()
            .with_engine(engine);
        let (published, errors) = run(builder, &flock).await;
        assert_eq!((published, errors.len()), (n, 0));
    }
}

#[tokio::test(start_paused = true)]
async fn publishes_per_input_wants_one_per_batch_item() {
    let flock = Flock::new();
    let builder = agent(&flock)
        .publishes_per_input::<BatchSummary>()
        .with_engine(returning(|n| n));
    assert_eq!(run(builder, &flock).await, (3, vec![]));

    let flock = Flock::new();
    let builder = agent(&flock)
        .publishes_per_input::<BatchSummary>()
        .with_engine(returning(|n| n - 1));
    let (published, errors) = run(builder, &flock).await;
    assert_eq!(published, 0);
    assert_eq!(
        errors[0].error,
        "agent 'summaries' must publish one 'BatchSummary' per input (declared with .publishes_per_input::<BatchSummary>()), 3 for this run, but the engine returned 2"
    );
}

#[test]
fn one_type_declared_with_two_counts_is_a_registration_error() {
    let flock = Flock::new();
    let error = agent(&flock)
        .publishes::<BatchSummary>()
        .publishes_many::<BatchSummary>()
        .with_engine(returning(|_| 1))
        .register()
        .unwrap_err();
    assert!(matches!(error, RegistrationError::ConflictingOutput { .. }));
    assert_eq!(
        error.to_string(),
        "agent 'summaries' declares output type 'BatchSummary' twice, as .publishes::<BatchSummary>() and as .publishes_many::<BatchSummary>(); keep one"
    );
}
