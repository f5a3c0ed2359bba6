//! Direct invocation (`Flock::invoke`): one run of one agent on given inputs,
//! outside its subscriptions, answering its outputs.

use std::sync::Arc;

use flock::{InvokeError, Payload, prelude::*};

use crate::{Item, spec};

fn summing(flock: &Flock, fail: bool) {
    flock
        .agent("summer")
        .consumes::<Item>(Subscribe::new().batch(spec(10)))
        .publishes::<BatchSummary>()
        .with_engine(batch_fn(move |_: &EngineContext, items: Vec<Arc<Item>>| {
            if fail {
                return Err("summing is down".to_owned());
            }
            Ok(BatchSummary {
                batch_size: items.len(),
                values: items.iter().map(|i| i.id).collect(),
            })
        }))
        .register()
        .unwrap();
}

#[tokio::test]
async fn invoke_runs_the_agent_once_on_the_inputs_and_returns_its_outputs() {
    let flock = Flock::builder().no_trace().build();
    summing(&flock, false);
    let inputs = vec![Payload::new(Item { id: 1 }), Payload::new(Item { id: 2 })];
    let outputs = flock
        .invoke("summer", inputs, PublishOptions::new())
        .await
        .unwrap();
    assert_eq!(outputs.len(), 1);
    let summary = outputs[0].get::<BatchSummary>().unwrap();
    assert_eq!(
        summary.values,
        vec![1, 2],
        "one run on both inputs, in order"
    );
    assert!(flock.active_batches().is_empty(), "not through the batch");
    assert_eq!(
        flock.get_by_type::<Item>().await.unwrap().len(),
        2,
        "stored"
    );
    flock.shutdown().await;
    let closed = flock
        .invoke(
            "summer",
            vec![Payload::new(Item { id: 3 })],
            PublishOptions::new(),
        )
        .await;
    assert!(matches!(closed, Err(InvokeError::Closed)), "{closed:?}");
}

#[tokio::test]
async fn a_failed_invocation_is_kept_as_a_failed_run() {
    let flock = Flock::builder().no_trace().build();
    summing(&flock, true);
    let error = flock
        .invoke(
            "summer",
            vec![Payload::new(Item { id: 1 })],
            PublishOptions::new(),
        )
        .await
        .unwrap_err();
    let InvokeError::RunFailed { failed_run, .. } = &error else {
        panic!("{error}");
    };
    assert!(
        error
            .to_string()
            .starts_with("agent 'summer' failed: summing is down")
    );
    assert_eq!(flock.failed_runs()[0].id, *failed_run);
    flock.shutdown().await;
}
