//! AND gates (`consumes_all`) without a join spec: groups per correlation id, counts,
//! completion, and OR through chained subscriptions.

use std::time::Duration;

use flock::prelude::*;
use flock_test_support::Capture;
use tokio::time::advance;
use uuid::Uuid;

use crate::{SignalA, SignalB, SignalC, gate_agent, gate_recorder, groups, strings};

fn a_and_b() -> AllOf {
    AllOf::new().of::<SignalA>().of::<SignalB>()
}

#[tokio::test(start_paused = true)]
async fn waits_for_both_types() {
    let flock = Flock::new();
    let runs = gate_agent(&flock, "and_gate_agent", a_and_b());
    flock.publish(SignalA::new("test", "a1")).await.unwrap();
    flock.run_until_idle().await;
    assert!(
        runs.lock().is_empty(),
        "an AND gate must not fire on TypeA alone"
    );
    flock.publish(SignalB::new("test", "b1")).await.unwrap();
    flock.run_until_idle().await;
    assert_eq!(groups(&runs), vec![strings(&["A:a1", "B:b1"])]);
    assert_eq!(
        runs.lock()[0].reason,
        None,
        "an unbatched gate runs evaluate"
    );
}

#[tokio::test(start_paused = true)]
async fn order_of_arrival_does_not_matter() {
    let flock = Flock::new();
    let runs = gate_agent(&flock, "order_test", a_and_b());
    flock.publish(SignalB::new("test", "b1")).await.unwrap();
    flock.run_until_idle().await;
    assert!(runs.lock().is_empty());
    flock.publish(SignalA::new("test", "a1")).await.unwrap();
    flock.run_until_idle().await;
    // Delivered in declaration order of the types, whatever the arrival order.
    assert_eq!(groups(&runs), vec![strings(&["A:a1", "B:b1"])]);
}

#[tokio::test(start_paused = true)]
async fn three_way_gate_waits_for_all_three() {
    let flock = Flock::new();
    let runs = gate_agent(&flock, "three_way", a_and_b().of::<SignalC>());
    flock.publish(SignalA::new("test", "a1")).await.unwrap();
    flock.publish(SignalB::new("test", "b1")).await.unwrap();
    flock.run_until_idle().await;
    assert!(runs.lock().is_empty(), "two of three types must not fire");
    flock.publish(SignalC::new("test", "c1")).await.unwrap();
    flock.run_until_idle().await;
    assert_eq!(groups(&runs), vec![strings(&["A:a1", "B:b1", "C:c1"])]);
}

#[tokio::test(start_paused = true)]
async fn count_gate_waits_for_three_as() {
    let flock = Flock::new();
    let runs = gate_agent(&flock, "count_gate", AllOf::new().of_n::<SignalA>(3));
    flock.publish(SignalA::new("test", "a1")).await.unwrap();
    flock.publish(SignalA::new("test", "a2")).await.unwrap();
    flock.run_until_idle().await;
    assert!(
        runs.lock().is_empty(),
        "two A's must not fire a gate of three"
    );
    flock.publish(SignalA::new("test", "a3")).await.unwrap();
    flock.run_until_idle().await;
    assert_eq!(groups(&runs), vec![strings(&["A:a1", "A:a2", "A:a3"])]);
}

#[tokio::test(start_paused = true)]
async fn repeated_of_counts_like_of_n() {
    let flock = Flock::new();
    let runs = gate_agent(
        &flock,
        "count_order",
        AllOf::new().of::<SignalA>().of::<SignalA>(),
    );
    flock.publish(SignalA::new("test", "first")).await.unwrap();
    flock.run_until_idle().await;
    assert!(runs.lock().is_empty());
    flock.publish(SignalA::new("test", "second")).await.unwrap();
    flock.run_until_idle().await;
    assert_eq!(groups(&runs), vec![strings(&["A:first", "A:second"])]);
}

#[tokio::test(start_paused = true)]
async fn mixed_count_and_type_gate() {
    let flock = Flock::new();
    let runs = gate_agent(
        &flock,
        "mixed_count",
        AllOf::new().of_n::<SignalA>(2).of::<SignalB>(),
    );
    flock.publish(SignalA::new("test", "a1")).await.unwrap();
    flock.publish(SignalB::new("test", "b1")).await.unwrap();
    flock.run_until_idle().await;
    assert!(runs.lock().is_empty(), "needs two A's");
    flock.publish(SignalA::new("test", "a2")).await.unwrap();
    flock.run_until_idle().await;
    assert_eq!(groups(&runs), vec![strings(&["A:a1", "A:a2", "B:b1"])]);
}

#[tokio::test(start_paused = true)]
async fn count_gate_completes_once_per_full_count() {
    let flock = Flock::new();
    let runs = gate_agent(&flock, "pairs", AllOf::new().of_n::<SignalA>(2));
    for data in ["a1", "a2", "a3", "a4", "a5"] {
        flock.publish(SignalA::new("test", data)).await.unwrap();
    }
    flock.run_until_idle().await;
    assert_eq!(
        groups(&runs),
        vec![strings(&["A:a1", "A:a2"]), strings(&["A:a3", "A:a4"])]
    );
    assert_eq!(
        flock.pending_joins()[0].waiting,
        1,
        "a5 waits for a partner"
    );
}

#[tokio::test(start_paused = true)]
async fn does_not_accumulate_across_completions() {
    let flock = Flock::new();
    let runs = gate_agent(&flock, "repeat_test", a_and_b());
    flock.publish(SignalA::new("test", "a1")).await.unwrap();
    flock.publish(SignalB::new("test", "b1")).await.unwrap();
    flock.run_until_idle().await;
    assert_eq!(runs.lock().len(), 1);
    flock.publish(SignalA::new("test", "a2")).await.unwrap();
    flock.run_until_idle().await;
    assert_eq!(
        runs.lock().len(),
        1,
        "a completed group is not reused: a2 needs a new B"
    );
    flock.publish(SignalB::new("test", "b2")).await.unwrap();
    flock.run_until_idle().await;
    assert_eq!(
        groups(&runs),
        vec![strings(&["A:a1", "B:b1"]), strings(&["A:a2", "B:b2"])]
    );
}

#[tokio::test(start_paused = true)]
async fn surplus_duplicates_wait_in_arrival_order() {
    let flock = Flock::new();
    let runs = gate_agent(&flock, "partial_test", a_and_b());
    for data in ["a1", "a2", "a3"] {
        flock.publish(SignalA::new("test", data)).await.unwrap();
    }
    flock.run_until_idle().await;
    assert!(runs.lock().is_empty(), "A's alone never fire");
    let pending = flock.pending_joins();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].present, vec![("SignalA", 1)]);
    assert_eq!(pending[0].missing, vec![("SignalB", 1)]);
    assert_eq!(pending[0].waiting, 3, "surplus A's wait behind the first");
    flock.publish(SignalB::new("test", "b1")).await.unwrap();
    flock.publish(SignalB::new("test", "b2")).await.unwrap();
    flock.run_until_idle().await;
    assert_eq!(
        groups(&runs),
        vec![strings(&["A:a1", "B:b1"]), strings(&["A:a2", "B:b2"])]
    );
}

#[tokio::test(start_paused = true)]
async fn groups_form_per_correlation_id() {
    let flock = Flock::new();
    let runs = gate_agent(&flock, "per_workflow", a_and_b());
    let (one, two) = (Uuid::now_v7(), Uuid::now_v7());
    let with = |id| PublishOptions::new().correlation_id(id);
    flock
        .publish_with(SignalA::new("-", "a-one"), with(one))
        .await
        .unwrap();
    flock
        .publish_with(SignalB::new("-", "b-two"), with(two))
        .await
        .unwrap();
    flock.run_until_idle().await;
    assert!(
        runs.lock().is_empty(),
        "different correlation ids never pair"
    );
    flock
        .publish_with(SignalB::new("-", "b-one"), with(one))
        .await
        .unwrap();
    flock.publish(SignalA::new("-", "a-none")).await.unwrap();
    flock.run_until_idle().await;
    assert_eq!(groups(&runs), vec![strings(&["A:a-one", "B:b-one"])]);
    let keys: Vec<String> = flock.pending_joins().into_iter().map(|p| p.key).collect();
    assert_eq!(keys, vec![two.to_string(), "None".to_owned()]);
}

#[tokio::test(start_paused = true)]
async fn two_agents_wait_independently() {
    let flock = Flock::new();
    let one = gate_agent(&flock, "agent1", a_and_b());
    let two = gate_agent(&flock, "agent2", a_and_b());
    flock.publish(SignalA::new("test", "a1")).await.unwrap();
    flock.publish(SignalB::new("test", "b1")).await.unwrap();
    flock.run_until_idle().await;
    assert_eq!(groups(&one), vec![strings(&["A:a1", "B:b1"])]);
    assert_eq!(groups(&two), vec![strings(&["A:a1", "B:b1"])]);
}

#[tokio::test(start_paused = true)]
async fn chained_consumes_is_or() {
    let flock = Flock::new();
    let (runs, engine) = gate_recorder();
    flock
        .agent("or_gate_agent")
        .consumes::<SignalA>(Subscribe::new())
        .consumes::<SignalB>(Subscribe::new())
        .consumes::<SignalC>(Subscribe::new())
        .with_engine(engine)
        .register()
        .unwrap();
    flock.publish(SignalA::new("test", "a1")).await.unwrap();
    flock.run_until_idle().await;
    flock.publish(SignalA::new("test", "a2")).await.unwrap();
    flock.publish(SignalB::new("test", "b1")).await.unwrap();
    flock.publish(SignalC::new("test", "c1")).await.unwrap();
    flock.run_until_idle().await;
    assert_eq!(
        groups(&runs),
        vec![
            strings(&["A:a1"]),
            strings(&["A:a2"]),
            strings(&["B:b1"]),
            strings(&["C:c1"])
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn and_and_or_subscriptions_mix() {
    let flock = Flock::new();
    let (runs, engine) = gate_recorder();
    flock
        .agent("mixed_agent")
        .consumes_all(a_and_b())
        .consumes::<SignalC>(Subscribe::new())
        .with_engine(engine)
        .register()
        .unwrap();
    flock.publish(SignalC::new("test", "c1")).await.unwrap();
    flock.run_until_idle().await;
    assert_eq!(groups(&runs), vec![strings(&["C:c1"])]);
    flock.publish(SignalA::new("test", "a1")).await.unwrap();
    flock.run_until_idle().await;
    assert_eq!(runs.lock().len(), 1, "the AND gate waits for B");
    flock.publish(SignalB::new("test", "b1")).await.unwrap();
    flock.run_until_idle().await;
    assert_eq!(
        groups(&runs),
        vec![strings(&["C:c1"]), strings(&["A:a1", "B:b1"])]
    );
}

#[tokio::test(start_paused = true)]
async fn engine_reads_the_group_typed() {
    let flock = Flock::new();
    let seen = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
    let sink = seen.clone();
    flock
        .agent("payload_test")
        .consumes_all(a_and_b())
        .with_engine(group_fn(move |_: &EngineContext, inputs: Inputs| {
            let a = inputs.get::<SignalA>().ok_or("no A")?;
            let b = inputs.get::<SignalB>().ok_or("no B")?;
            sink.lock()
                .push((a.data.clone(), b.data.clone(), inputs.artifacts().len()));
            Ok::<_, &str>(Outputs::none())
        }))
        .register()
        .unwrap();
    flock.publish(SignalA::new("test", "test_a")).await.unwrap();
    flock.publish(SignalB::new("test", "test_b")).await.unwrap();
    flock.run_until_idle().await;
    assert_eq!(
        *seen.lock(),
        vec![("test_a".to_owned(), "test_b".to_owned(), 2)]
    );
}

#[tokio::test(start_paused = true)]
async fn correlation_id_gate_can_take_a_window() {
    let flock = Flock::new();
    let (spans, _guard) = Capture::install();
    let runs = gate_agent(
        &flock,
        "bounded",
        a_and_b().join(JoinSpec::by_correlation_id().within(Duration::from_secs(10))),
    );
    let id = Uuid::now_v7();
    flock
        .publish_with(
            SignalA::new("-", "a1"),
            PublishOptions::new().correlation_id(id),
        )
        .await
        .unwrap();
    advance(Duration::from_secs(10)).await;
    flock.run_until_idle().await;
    assert!(flock.pending_joins().is_empty(), "the window ended");
    let discards = spans.spans("join.discard");
    assert_eq!(discards.len(), 1);
    assert_eq!(discards[0].field("key"), id.to_string());
    assert!(runs.lock().is_empty());
}

#[tokio::test(start_paused = true)]
async fn gate_registration_checks_engines_and_specs() {
    let flock = Flock::new();
    let err = flock
        .agent("needs_single")
        .consumes_all(a_and_b())
        .with_engine(group_batch_fn(|_: &EngineContext, _: Vec<Inputs>| {
            Ok::<_, String>(Outputs::none())
        }))
        .register()
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("delivers one artifact (or one join group) at a time"),
        "{err}"
    );
    let (_, engine) = gate_recorder();
    let err = flock
        .agent("bad_join")
        .consumes_all(a_and_b().join(JoinSpec::by(|a: &SignalA| a.data.clone()).within(5)))
        .with_engine(engine)
        .register()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "agent 'bad_join', subscription 0: invalid join spec: join spec has no key for type 'SignalB'; add .by(|x: &SignalB| ..)"
    );
    let (_, engine) = gate_recorder();
    let err = flock
        .agent("empty")
        .consumes_all(AllOf::new())
        .with_engine(engine)
        .register()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "agent 'empty', subscription 0: an all-of subscription consumes nothing; add .of::<T>()"
    );
}
