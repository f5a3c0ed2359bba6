//! JoinSpec: correlation by a key per type within a time or count window, traced
//! discards, isolation; join + batch (a complete group is one batch item) in
//! `batched.rs`, spans in `traces.rs`, the exactly-once property in
//! `exactly_once.rs`.

use std::{collections::BTreeMap, time::Duration};

use flock::prelude::*;
use flock_test_support::Capture;
use serde::{Deserialize, Serialize};
use tokio::time::advance;

use crate::{
    GroupRun, GroupRuns, SignalA, SignalB, SignalC, batch_recorder, gate_agent, gate_recorder,
    groups, register_gate, strings,
};

fn by_id() -> flock::subscription::JoinSpecBuilder<String> {
    JoinSpec::by(|a: &SignalA| a.correlation_id.clone()).by(|b: &SignalB| b.correlation_id.clone())
}

fn five_minutes() -> Duration {
    Duration::from_secs(300)
}

fn batched(flock: &Flock, name: &str, all_of: AllOf) -> GroupRuns {
    register_gate(flock, name, all_of, batch_recorder())
}

fn a_b_join(within: impl flock::subscription::IntoJoinWindow) -> AllOf {
    AllOf::new()
        .of::<SignalA>()
        .of::<SignalB>()
        .join(by_id().within(within))
}

fn batch_of(groups: &[&[&str]], reason: FlushReason) -> GroupRun {
    GroupRun {
        groups: groups.iter().map(|g| strings(g)).collect(),
        reason: Some(reason),
    }
}

async fn publish_a(flock: &Flock, key: &str, data: &str) {
    flock.publish(SignalA::new(key, data)).await.unwrap();
}

async fn publish_b(flock: &Flock, key: &str, data: &str) {
    flock.publish(SignalB::new(key, data)).await.unwrap();
}

// === correlation ===

#[tokio::test(start_paused = true)]
async fn same_key_correlates_and_different_keys_never_cross() {
    let flock = Flock::new();
    let runs = gate_agent(&flock, "correlator", a_b_join(five_minutes()));
    publish_a(&flock, "patient-123", "xray").await;
    publish_b(&flock, "patient-123", "labs").await;
    flock.run_until_idle().await;
    assert_eq!(groups(&runs), vec![strings(&["A:xray", "B:labs"])]);

    publish_a(&flock, "patient-456", "xray2").await;
    publish_b(&flock, "patient-789", "labs2").await;
    flock.run_until_idle().await;
    assert_eq!(runs.lock().len(), 1, "no cross-correlation between keys");
    let keys: Vec<String> = flock.pending_joins().into_iter().map(|p| p.key).collect();
    assert_eq!(keys, vec!["patient-456", "patient-789"]);
}

#[tokio::test(start_paused = true)]
async fn several_keys_correlate_independently() {
    let flock = Flock::new();
    let runs = gate_agent(&flock, "multi_correlator", a_b_join(five_minutes()));
    for stock in ["AAPL", "MSFT", "TSLA"] {
        publish_a(&flock, stock, &format!("vol-{stock}")).await;
    }
    for stock in ["TSLA", "AAPL", "MSFT"] {
        publish_b(&flock, stock, &format!("sent-{stock}")).await;
    }
    flock.run_until_idle().await;
    assert_eq!(
        groups(&runs),
        vec![
            strings(&["A:vol-TSLA", "B:sent-TSLA"]),
            strings(&["A:vol-AAPL", "B:sent-AAPL"]),
            strings(&["A:vol-MSFT", "B:sent-MSFT"]),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn partial_correlation_waits() {
    let flock = Flock::new();
    let runs = gate_agent(&flock, "partial_correlator", a_b_join(five_minutes()));
    publish_a(&flock, "session-abc", "text-input").await;
    flock.run_until_idle().await;
    assert!(runs.lock().is_empty(), "one signal alone must not trigger");
    let pending = flock.pending_joins();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].agent, "partial_correlator");
    assert_eq!(pending[0].key, "session-abc");
    assert_eq!(pending[0].present, vec![("SignalA", 1)]);
    assert_eq!(pending[0].missing, vec![("SignalB", 1)]);
    assert_eq!(pending[0].time_left, Some(five_minutes()));
    publish_b(&flock, "session-abc", "image-upload").await;
    flock.run_until_idle().await;
    assert_eq!(
        groups(&runs),
        vec![strings(&["A:text-input", "B:image-upload"])]
    );
    assert!(flock.pending_joins().is_empty());
}

#[tokio::test(start_paused = true)]
async fn three_way_correlation() {
    let flock = Flock::new();
    let runs = gate_agent(
        &flock,
        "three_way_correlator",
        AllOf::new()
            .of::<SignalA>()
            .of::<SignalB>()
            .of::<SignalC>()
            .join(
                by_id()
                    .by(|c: &SignalC| c.correlation_id.clone())
                    .within(five_minutes()),
            ),
    );
    flock
        .publish(SignalC::new("batch-001", "viscosity-ok"))
        .await
        .unwrap();
    publish_a(&flock, "batch-001", "temperature-ok").await;
    flock.run_until_idle().await;
    assert!(runs.lock().is_empty());
    publish_b(&flock, "batch-001", "pressure-ok").await;
    flock.run_until_idle().await;
    assert_eq!(
        groups(&runs),
        vec![strings(&[
            "A:temperature-ok",
            "B:pressure-ok",
            "C:viscosity-ok"
        ])]
    );
}

#[tokio::test(start_paused = true)]
async fn order_of_arrival_does_not_matter() {
    let flock = Flock::new();
    let runs = gate_agent(&flock, "order_test", a_b_join(five_minutes()));
    publish_a(&flock, "order-1", "a1").await;
    publish_b(&flock, "order-1", "b1").await;
    flock.run_until_idle().await;
    publish_b(&flock, "order-2", "b2").await;
    publish_a(&flock, "order-2", "a2").await;
    flock.run_until_idle().await;
    assert_eq!(
        groups(&runs),
        vec![strings(&["A:a1", "B:b1"]), strings(&["A:a2", "B:b2"])]
    );
}

#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
struct ApiRequest {
    metadata: BTreeMap<String, String>,
    data: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
struct ApiResponse {
    envelope: Envelope,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Envelope {
    request_id: String,
}

#[tokio::test(start_paused = true)]
async fn key_from_a_nested_field() {
    let flock = Flock::new();
    let seen = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
    let sink = seen.clone();
    flock
        .agent("nested_correlator")
        .consumes_all(
            AllOf::new().of::<ApiRequest>().of::<ApiResponse>().join(
                JoinSpec::by(|r: &ApiRequest| r.metadata["request_id"].clone())
                    .by(|r: &ApiResponse| r.envelope.request_id.clone())
                    .within(five_minutes()),
            ),
        )
        .with_engine(group_fn(move |_: &EngineContext, inputs: Inputs| {
            let request = inputs.get::<ApiRequest>().ok_or("no request")?;
            sink.lock()
                .push((request.data.clone(), inputs.artifacts().len()));
            Ok::<_, &str>(Outputs::none())
        }))
        .register()
        .unwrap();
    let metadata = |id: &str| BTreeMap::from([("request_id".to_owned(), id.to_owned())]);
    flock
        .publish(ApiRequest {
            metadata: metadata("req-xyz"),
            data: "request".into(),
        })
        .await
        .unwrap();
    flock
        .publish(ApiResponse {
            envelope: Envelope {
                request_id: "req-other".into(),
            },
        })
        .await
        .unwrap();
    flock
        .publish(ApiResponse {
            envelope: Envelope {
                request_id: "req-xyz".into(),
            },
        })
        .await
        .unwrap();
    flock.run_until_idle().await;
    assert_eq!(*seen.lock(), vec![("request".to_owned(), 2)]);
}

#[tokio::test(start_paused = true)]
async fn count_window_admits_the_tenth_artifact_after_the_first() {
    let flock = Flock::new();
    let (spans, _guard) = Capture::install();
    let runs = gate_agent(&flock, "count_window_test", a_b_join(10));

    // B is the 10th artifact after A: 9 others in between.
    publish_a(&flock, "batch-1", "a1").await;
    for i in 0..9 {
        publish_a(&flock, &format!("noise-{i}"), "noise").await;
    }
    publish_b(&flock, "batch-1", "b1").await;
    flock.run_until_idle().await;
    assert_eq!(groups(&runs), vec![strings(&["A:a1", "B:b1"])]);

    // After 11 others, B is too late: the group was discarded (traced) on the way.
    publish_a(&flock, "batch-2", "a2").await;
    for i in 0..11 {
        publish_a(&flock, &format!("noise2-{i}"), "noise").await;
    }
    publish_b(&flock, "batch-2", "b2").await;
    flock.run_until_idle().await;
    assert_eq!(runs.lock().len(), 1, "batch-2 expired before its B arrived");
    let discard = spans
        .spans("join.discard")
        .into_iter()
        .find(|s| s.field("key") == "batch-2")
        .expect("the expired batch-2 group is traced");
    assert_eq!(discard.field("agent"), "count_window_test");
    assert_eq!(discard.field("types_present"), "SignalA");
    assert_eq!(discard.field("types_missing"), "SignalB");
    assert_eq!(discard.field("reason"), "window");
    assert_eq!(discard.field("window"), "10 artifacts");
    // The late B opened a group of its own; count windows bound what waits.
    assert!(flock.pending_joins().len() <= 11);
    assert!(flock.pending_joins().iter().any(|p| p.key == "batch-2"));
}

#[tokio::test(start_paused = true)]
async fn count_window_is_exclusive_after_ten_others() {
    let flock = Flock::new();
    let runs = gate_agent(&flock, "edge", a_b_join(10));
    publish_a(&flock, "k", "a").await;
    for i in 0..10 {
        publish_a(&flock, &format!("noise-{i}"), "noise").await;
    }
    publish_b(&flock, "k", "b").await; // the 11th artifact after A
    flock.run_until_idle().await;
    assert!(runs.lock().is_empty());
}

#[tokio::test(start_paused = true)]
async fn count_window_tracks_interleaved_keys() {
    let flock = Flock::new();
    let runs = gate_agent(&flock, "multi_count_window", a_b_join(5));
    publish_a(&flock, "req-1", "a1").await;
    publish_a(&flock, "req-2", "a2").await;
    publish_b(&flock, "req-1", "b1").await;
    publish_a(&flock, "req-3", "a3").await;
    publish_b(&flock, "req-2", "b2").await;
    flock.run_until_idle().await;
    assert_eq!(
        groups(&runs),
        vec![strings(&["A:a1", "B:b1"]), strings(&["A:a2", "B:b2"])]
    );
    let pending = flock.pending_joins();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        (pending[0].key.as_str(), pending[0].artifacts_left),
        ("req-3", Some(4))
    );
}

#[tokio::test(start_paused = true)]
async fn visibility_applies_before_correlation() {
    let flock = Flock::new();
    let (runs, engine) = gate_recorder();
    flock
        .agent("visibility_correlator")
        .labels(["team_a"])
        .consumes_all(a_b_join(five_minutes()))
        .with_engine(engine)
        .register()
        .unwrap();
    publish_a(&flock, "pub-1", "a1").await;
    publish_b(&flock, "pub-1", "b1").await;
    flock.run_until_idle().await;
    assert_eq!(runs.lock().len(), 1, "public artifacts correlate");

    flock
        .publish_with(
            SignalA::new("mixed-1", "hidden"),
            PublishOptions::new().visibility(Visibility::labelled(["team_b"])),
        )
        .await
        .unwrap();
    publish_b(&flock, "mixed-1", "b2").await;
    flock.run_until_idle().await;
    assert_eq!(runs.lock().len(), 1, "the hidden A never entered the group");
    publish_a(&flock, "mixed-1", "visible").await;
    flock.run_until_idle().await;
    assert_eq!(groups(&runs)[1], strings(&["A:visible", "B:b2"]));
}

#[tokio::test(start_paused = true)]
async fn predicates_apply_before_correlation() {
    let flock = Flock::new();
    let runs = gate_agent(
        &flock,
        "predicate_correlator",
        a_b_join(five_minutes()).filter(|b: &SignalB| b.data.starts_with("completed")),
    );
    publish_a(&flock, "lab-1", "xray").await;
    publish_b(&flock, "lab-1", "pending").await;
    flock.run_until_idle().await;
    assert!(
        runs.lock().is_empty(),
        "the rejected B does not enter the group"
    );
    assert_eq!(flock.pending_joins()[0].waiting, 1);
    publish_b(&flock, "lab-1", "completed-results").await;
    flock.run_until_idle().await;
    assert_eq!(
        groups(&runs),
        vec![strings(&["A:xray", "B:completed-results"])]
    );
}

#[tokio::test(start_paused = true)]
async fn correlation_state_is_isolated_per_agent() {
    let flock = Flock::new();
    let one = gate_agent(&flock, "agent1", a_b_join(five_minutes()));
    let two = gate_agent(&flock, "agent2", a_b_join(Duration::from_secs(1)));
    publish_a(&flock, "shared-1", "a").await;
    advance(Duration::from_secs(2)).await;
    flock.run_until_idle().await;
    publish_b(&flock, "shared-1", "b").await;
    flock.run_until_idle().await;
    assert_eq!(groups(&one), vec![strings(&["A:a", "B:b"])]);
    assert!(
        two.lock().is_empty(),
        "agent2's window ended; agent1's did not"
    );
    let pending = flock.pending_joins();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].agent, "agent2");
    assert_eq!(pending[0].present, vec![("SignalB", 1)]);
}

#[tokio::test(start_paused = true)]
async fn time_expiry_discards_a_partial_group_traced_then_a_fresh_pair_correlates() {
    let flock = Flock::new();
    let (spans, _guard) = Capture::install();
    let runs = gate_agent(&flock, "time_expiry_test", a_b_join(Duration::from_secs(1)));
    publish_a(&flock, "incomplete-1", "a").await;
    flock.run_until_idle().await;
    advance(Duration::from_millis(999)).await;
    flock.run_until_idle().await;
    assert_eq!(flock.pending_joins().len(), 1, "still inside its window");
    assert!(spans.spans("join.discard").is_empty());
    advance(Duration::from_millis(1)).await;
    flock.run_until_idle().await;
    assert!(
        runs.lock().is_empty(),
        "an incomplete group never reaches the engine"
    );
    assert!(flock.pending_joins().is_empty());
    let discards = spans.spans("join.discard");
    assert_eq!(discards.len(), 1);
    let d = &discards[0];
    assert_eq!(d.field("agent"), "time_expiry_test");
    assert_eq!(d.field("key"), "incomplete-1");
    assert_eq!(d.field("types_present"), "SignalA");
    assert_eq!(d.field("types_missing"), "SignalB");
    assert_eq!(d.field("reason"), "window");
    assert_eq!(d.field("artifacts"), "1");
    assert_eq!(d.field("waited_ms"), "1000");

    publish_a(&flock, "incomplete-1", "a2").await;
    publish_b(&flock, "incomplete-1", "b2").await;
    flock.run_until_idle().await;
    assert_eq!(groups(&runs), vec![strings(&["A:a2", "B:b2"])]);
    assert_eq!(spans.spans("join.complete").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn expiry_is_driven_by_the_timer_without_polling() {
    let flock = Flock::new();
    let (spans, _guard) = Capture::install();
    let _runs = gate_agent(&flock, "timer", a_b_join(Duration::from_secs(5)));
    publish_a(&flock, "k", "a").await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    tokio::task::yield_now().await;
    assert_eq!(spans.spans("join.discard").len(), 1);
    assert!(flock.pending_joins().is_empty());
}

#[tokio::test(start_paused = true)]
async fn join_expiry_discards_while_batch_timeout_flushes() {
    let flock = Flock::new();
    let joins = gate_agent(
        &flock,
        "correlation_agent",
        a_b_join(Duration::from_secs(1)),
    );
    let (batches, engine) = batch_recorder();
    flock
        .agent("batch_agent")
        .consumes::<SignalC>(
            Subscribe::new().batch(BatchSpec::size(10).timeout(Duration::from_secs(1))),
        )
        .with_engine(engine)
        .register()
        .unwrap();
    publish_a(&flock, "test", "a").await;
    flock.publish(SignalC::new("test", "c1")).await.unwrap();
    flock.run_until_idle().await;
    advance(Duration::from_secs(2)).await;
    flock.run_until_idle().await;
    assert!(joins.lock().is_empty(), "a partial join is discarded");
    assert_eq!(
        *batches.lock(),
        vec![batch_of(&[&["C:c1"]], FlushReason::Timeout)]
    );
}

#[tokio::test(start_paused = true)]
async fn surplus_duplicates_pair_first_come_with_later_partners() {
    let flock = Flock::new();
    let runs = gate_agent(&flock, "surplus", a_b_join(Duration::from_secs(30)));
    publish_a(&flock, "dev-1", "t1").await;
    advance(Duration::from_secs(20)).await;
    publish_a(&flock, "dev-1", "t2").await; // a duplicate: waits behind t1
    flock.run_until_idle().await;
    assert_eq!(flock.pending_joins()[0].waiting, 2);
    advance(Duration::from_secs(10)).await; // t1's window ends; t2's runs to 50 s
    flock.run_until_idle().await;
    publish_b(&flock, "dev-1", "p1").await;
    flock.run_until_idle().await;
    assert_eq!(groups(&runs), vec![strings(&["A:t2", "B:p1"])]);
}

#[tokio::test(start_paused = true)]
async fn panicking_key_function_is_a_reported_non_match() {
    let flock = Flock::new();
    let runs = gate_agent(
        &flock,
        "fragile",
        AllOf::new().of::<SignalA>().of::<SignalB>().join(
            JoinSpec::by(|a: &SignalA| {
                assert!(a.data != "bad", "cannot key {}", a.data);
                a.correlation_id.clone()
            })
            .by(|b: &SignalB| b.correlation_id.clone())
            .within(five_minutes()),
        ),
    );
    publish_a(&flock, "k", "bad").await;
    publish_a(&flock, "k", "good").await;
    publish_b(&flock, "k", "b").await;
    flock.run_until_idle().await;
    assert_eq!(groups(&runs), vec![strings(&["A:good", "B:b"])]);
}

#[tokio::test(start_paused = true)]
async fn shutdown_discards_incomplete_groups_traced_and_reported() {
    let flock = Flock::new();
    let (spans, _guard) = Capture::install();
    let runs = gate_agent(&flock, "closing", a_b_join(five_minutes()));
    publish_a(&flock, "done", "a").await;
    publish_b(&flock, "done", "b").await;
    publish_a(&flock, "half", "a").await;
    publish_b(&flock, "other-half", "b").await;
    let report = flock.shutdown().await;
    assert_eq!(groups(&runs), vec![strings(&["A:a", "B:b"])]);
    assert_eq!(report.join_groups_discarded, 2);
    assert_eq!(report.join_artifacts_discarded, 2);
    assert!(flock.pending_joins().is_empty());
    let discards = spans.spans("join.discard");
    let got: Vec<(&str, &str, &str)> = discards
        .iter()
        .map(|d| (d.field("key"), d.field("types_missing"), d.field("reason")))
        .collect();
    assert_eq!(
        got,
        vec![
            ("half", "SignalB", "shutdown"),
            ("other-half", "SignalA", "shutdown")
        ]
    );
}

mod batched;
mod exactly_once;
#[cfg(feature = "duckdb-prebuilt")]
mod traces;
