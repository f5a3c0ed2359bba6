//! The bad-input catalogue: what a user can get wrong, and the clear error (or the
//! traced, contained failure) each gets. Nothing accepted is lost and the runtime
//! keeps going. `docs/reliability.md` has the whole table; entries tested elsewhere:
//!
//! | entry | tests |
//! |---|---|
//! | invalid `BatchSpec` | here; `registration::invalid_batch_specs_are_rejected_at_registration`; `flock-subscription` `batch_spec::tests::invalid_specs_are_rejected_with_messages` |
//! | invalid `JoinSpec` | here; `and_gates::gate_registration_checks_engines_and_specs`; `flock-subscription` `join::tests::invalid_specs_are_rejected_with_messages` |
//! | unknown type, malformed or mistyped JSON | here; `publishing::json_publish_errors_say_what_is_wrong`; `fuzz_json` |
//! | duplicate agent name | here; `registration::duplicate_names_are_rejected` |
//! | admission bounds that could block publishing forever (`OnFull::Wait`) | here |
//! | batch subscription, engine without batch evaluation | `registration::batch_subscription_needs_batch_evaluation` |
//! | predicate panic | here; `errors::panicking_predicate_is_a_non_match_and_runtime_continues` |
//! | join or batch key function panic | here; `joins::panicking_key_function_is_a_reported_non_match`; `keyed::panicking_key_function_is_a_reported_non_match` |
//! | engine error or panic | here; `errors::engine_panic_is_contained_and_reported`; `retries` |
//! | visibility function panic | here; component hooks: `hooks::a_panicking_hook_is_caught_and_reported` |
//! | publish after shutdown | here; `publishing::publish_after_shutdown_is_refused` |
//! | trace directory unwritable | here |
//! | trace file locked by a reader | here (through the facade); `flock-trace-duckdb` `locked_file::*` |
//!
//! Two entries run a child process (this test binary again, selecting one
//! `child_*` test through an environment variable): one to see what `build()`
//! prints on stderr, one because DuckDB's file lock only conflicts across processes.
//! Run normally, the `child_*` tests have nothing to do.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Arc,
    time::Duration,
};

use flock::{
    Admission, OnFull, Payload, PublishError, PublishOptions, RegistrationError, TraceConfig,
    TraceError, prelude::*,
};
use flock_test_support::Capture;
use tracing::Level;

use crate::{Item, Runs, SignalA, SignalB, recorder};

fn registration_error(result: Result<flock::AgentHandle, RegistrationError>) -> String {
    result.unwrap_err().to_string()
}

// === registration ===

#[test]
fn invalid_batch_spec_is_refused_at_registration_with_what_to_fix() {
    let flock = Flock::new();
    let cases = [
        (
            BatchSpec::size(0),
            "agent 'payments', subscription 0: invalid batch spec: batch size must be at least 1, got 0",
        ),
        (
            BatchSpec::timeout(Duration::ZERO),
            "agent 'payments', subscription 0: invalid batch spec: batch timeout must be greater than zero, got 0s",
        ),
        (
            BatchSpec::size(25).timeout(chrono::TimeDelta::seconds(-30)),
            "agent 'payments', subscription 0: invalid batch spec: batch timeout must be positive: duration must not be negative, got -PT30S",
        ),
        (
            flock::subscription::BatchSpecBuilder::default(),
            "agent 'payments', subscription 0: invalid batch spec: a batch spec needs a size, a timeout, or both; got neither",
        ),
    ];
    for (spec, expected) in cases {
        let (_, engine) = recorder();
        let result = flock
            .agent("payments")
            .consumes::<Item>(Subscribe::new().batch(spec))
            .with_engine(engine)
            .register();
        assert_eq!(registration_error(result), expected);
    }
    // The refusals registered nothing: the name is still free.
    let (_, engine) = recorder();
    flock
        .agent("payments")
        .consumes::<Item>(Subscribe::new().batch(BatchSpec::size(25)))
        .with_engine(engine)
        .register()
        .unwrap();
}

#[test]
fn invalid_join_spec_is_refused_at_registration_with_what_to_fix() {
    let flock = Flock::new();
    let a_b = || AllOf::new().of::<SignalA>().of::<SignalB>();
    let by_a = || JoinSpec::by(|a: &SignalA| a.correlation_id.clone());
    let both = || by_a().by(|b: &SignalB| b.correlation_id.clone());
    let prefix = "agent 'diagnostician', subscription 0: invalid join spec: ";
    let cases: Vec<(AllOf, &str)> = vec![
        (
            a_b().join(both().within(Duration::ZERO)),
            "join window must be greater than zero, got 0s",
        ),
        (
            a_b().join(both().within(0)),
            "join window must be at least 1 artifact, got 0",
        ),
        (
            a_b().join(both().within(chrono::TimeDelta::minutes(-5))),
            "join window must be positive: duration must not be negative, got -PT300S",
        ),
        (
            a_b().join(both()),
            "a join spec needs a window: add .within(duration) or .within(count)",
        ),
        (
            a_b().join(by_a().within(5)),
            "join spec has no key for type 'SignalB'; add .by(|x: &SignalB| ..)",
        ),
        (
            a_b().join(
                both()
                    .by(|a: &SignalA| a.data.clone())
                    .within(Duration::from_secs(60)),
            ),
            "join spec has two keys for type 'SignalA'; give one .by(..) per type",
        ),
        (
            AllOf::new().of::<SignalA>().join(both().within(5)),
            "join spec has a key for type 'SignalB', which the subscription does not consume; add .of::<SignalB>()",
        ),
    ];
    for (gate, expected) in cases {
        let result = flock
            .agent("diagnostician")
            .consumes_all(gate)
            .with_engine(group_fn(|_: &EngineContext, _: Inputs| {
                Ok::<_, String>(Outputs::none())
            }))
            .register();
        assert_eq!(registration_error(result), format!("{prefix}{expected}"));
    }
}

#[test]
fn duplicate_agent_name_is_refused_also_with_surrounding_spaces() {
    let flock = Flock::new();
    let register = |name: &str| {
        let (_, engine) = recorder();
        flock
            .agent(name)
            .consumes::<Item>(Subscribe::new().batch(BatchSpec::size(2)))
            .with_engine(engine)
            .register()
    };
    register("twin").unwrap();
    for name in ["twin", " twin ", "twin\t"] {
        assert_eq!(
            registration_error(register(name)),
            "an agent named 'twin' is already registered; agent names must be unique",
            "{name:?}"
        );
    }
    assert_eq!(
        registration_error(register("   ")),
        "agent name must not be empty"
    );
}

/// Regression: with `OnFull::Wait`, a per-subscription limit below the size of a
/// batch without a timeout registered fine, and the publish that would have filled
/// the batch waited forever for room only that very flush could make.
#[test]
fn admission_that_could_block_publishing_forever_is_refused_at_registration() {
    let wait = |per_subscription: Option<usize>, total: Option<usize>| {
        let mut admission = Admission::new();
        if let Some(n) = per_subscription {
            admission = admission.max_waiting_per_subscription(n).unwrap();
        }
        if let Some(n) = total {
            admission = admission.max_waiting(n).unwrap();
        }
        Flock::builder().no_trace().admission(admission).build()
    };
    let register = |flock: &Flock, name: &str, subscribe: Subscribe<Item>| {
        let (_, engine) = recorder();
        flock
            .agent(name)
            .consumes::<Item>(subscribe)
            .with_engine(engine)
            .register()
    };
    let advice = "; add a timeout to the batch (a timeout always makes room), raise the limit, or use OnFull::Reject";

    let flock = wait(Some(2), None);
    assert_eq!(
        registration_error(register(
            &flock,
            "sized",
            Subscribe::new().batch(BatchSpec::size(3))
        )),
        format!(
            "agent 'sized', subscription 0: its batch flushes only at 3 items, but max_waiting_per_subscription is 2 with OnFull::Wait: the batch can never fill{advice}"
        )
    );
    let keyed = Subscribe::new()
        .batch(BatchSpec::size(2))
        .keyed_by(|i: &Item| i.id % 10);
    assert_eq!(
        registration_error(register(&flock, "keyed", keyed)),
        format!(
            "agent 'keyed', subscription 0: it keeps one batch per key that flushes only at 2 items, and with OnFull::Wait under an admission bound the keys together can reach the bound before any batch fills{advice}"
        )
    );
    let flock = wait(None, Some(10));
    register(&flock, "first", Subscribe::new().batch(BatchSpec::size(6))).unwrap();
    assert_eq!(
        registration_error(register(
            &flock,
            "second",
            Subscribe::new().batch(BatchSpec::size(6))
        )),
        format!(
            "agent 'second', subscription 0: batches that flush only by size can hold 10 items together without filling, and max_waiting is 10 with OnFull::Wait{advice}"
        )
    );

    // What can always make room registers: a timeout, a limit at least the size,
    // a total above what size-only batches hold, or refusing instead of waiting.
    let flock = wait(Some(2), Some(10));
    for (name, subscribe) in [
        (
            "timed",
            Subscribe::new().batch(BatchSpec::size(3).timeout(Duration::from_secs(1))),
        ),
        ("fits", Subscribe::new().batch(BatchSpec::size(2))),
        (
            "keyed_timed",
            Subscribe::new()
                .batch(BatchSpec::size(5).timeout(Duration::from_secs(1)))
                .keyed_by(|i: &Item| i.id % 10),
        ),
        ("second_fits", Subscribe::new().batch(BatchSpec::size(2))),
    ] {
        register(&flock, name, subscribe).unwrap();
    }
    let reject = Flock::builder()
        .no_trace()
        .admission(
            Admission::new()
                .max_waiting_per_subscription(2)
                .unwrap()
                .on_full(OnFull::Reject),
        )
        .build();
    register(&reject, "sized", Subscribe::new().batch(BatchSpec::size(3))).unwrap();
}

/// What registers under `OnFull::Wait` never waits forever: a size-only batch at
/// its subscription's limit fills and flushes.
#[tokio::test(start_paused = true)]
async fn size_only_batch_at_the_limit_never_blocks_its_publisher() {
    let flock = Flock::builder()
        .no_trace()
        .admission(Admission::new().max_waiting_per_subscription(3).unwrap())
        .build();
    let (runs, engine) = recorder();
    flock
        .agent("sized")
        .consumes::<Item>(Subscribe::new().batch(BatchSpec::size(3)))
        .with_engine(engine)
        .register()
        .unwrap();
    let publishing = async {
        crate::publish_ids(&flock, 1..=7).await;
    };
    // On the paused clock an hour passes at once if the publisher is stuck.
    tokio::time::timeout(Duration::from_secs(3600), publishing)
        .await
        .expect("a publish waited for room that no flush could make");
    flock.shutdown().await;
    assert_eq!(ids(&runs), vec![vec![1, 2, 3], vec![4, 5, 6], vec![7]]);
}

// === JSON publishes ===

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, FlockType)]
#[flock(name = "payments.Transaction")]
struct Transaction {
    transaction_id: String,
    amount: f64,
}

async fn nothing_stored(flock: &Flock) {
    let stored = flock.query(&ArtifactFilter::new()).await.unwrap();
    assert!(stored.is_empty(), "a refused publish stored {stored:?}");
}

#[tokio::test]
async fn unknown_type_names_the_registered_types() {
    let flock = Flock::new();
    let err = flock
        .publish_json_str(r#"{"type": "Transaction", "payload": {}}"#)
        .await
        .unwrap_err();
    assert!(matches!(err, PublishError::UnknownType { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "unknown artifact type 'Transaction'; registered types: none"
    );
    flock.register_type::<Transaction>().unwrap();
    flock.register_type::<Item>().unwrap();
    let err = flock
        .publish_json(serde_json::json!({"type": "Transaction", "payload": {}}))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown artifact type 'Transaction'; registered types: Item, payments.Transaction"
    );
    nothing_stored(&flock).await;
}

#[tokio::test]
async fn malformed_or_mistyped_json_is_refused_with_what_is_wrong() {
    let flock = Flock::new();
    flock.register_type::<Transaction>().unwrap();
    let envelope = "expected {\"type\": \"TypeName\", \"payload\": {...}}";
    let cases = [
        ("", format!("malformed artifact envelope: not valid JSON: EOF while parsing a value at line 1 column 0; {envelope}")),
        ("{\"type\": \"payments.Transaction\", \"payload\": {\"amount\": 1", format!("malformed artifact envelope: not valid JSON: EOF while parsing an object at line 1 column 56; {envelope}")),
        ("[1, 2]", format!("malformed artifact envelope: expected a JSON object, got an array; {envelope}")),
        ("\"payments.Transaction\"", format!("malformed artifact envelope: expected a JSON object, got a string; {envelope}")),
        ("{\"payload\": {}}", format!("malformed artifact envelope: missing \"type\"; {envelope}")),
        ("{\"type\": 7, \"payload\": {}}", format!("malformed artifact envelope: \"type\" must be a string, got a number; {envelope}")),
        ("{\"type\": \"payments.Transaction\"}", format!("malformed artifact envelope: missing \"payload\" for type 'payments.Transaction'; {envelope}")),
        (
            "{\"type\": \"payments.Transaction\", \"payload\": [\"t1\", 12.5, 3]}",
            "payload does not fit artifact type 'payments.Transaction': invalid length 3, expected fewer elements in array".to_owned(),
        ),
        (
            "{\"type\": \"payments.Transaction\", \"payload\": {\"transaction_id\": \"t1\"}}",
            "payload does not fit artifact type 'payments.Transaction': missing field `amount`".to_owned(),
        ),
        (
            "{\"type\": \"payments.Transaction\", \"payload\": {\"transaction_id\": \"t1\", \"amount\": \"12.50\"}}",
            "payload does not fit artifact type 'payments.Transaction' at field 'amount': invalid type: string \"12.50\", expected f64".to_owned(),
        ),
        (
            "{\"type\": \"payments.Transaction\", \"payload\": null}",
            "payload does not fit artifact type 'payments.Transaction': invalid type: null, expected struct Transaction".to_owned(),
        ),
    ];
    for (text, expected) in cases {
        let err = flock.publish_json_str(text).await.unwrap_err();
        assert_eq!(err.to_string(), expected, "{text}");
    }
    nothing_stored(&flock).await;
    // The flock is unharmed: a good envelope goes through.
    flock
        .publish_json_str(
            r#"{"type": "payments.Transaction", "payload": {"transaction_id": "t1", "amount": 12.5}}"#,
        )
        .await
        .unwrap();
    assert_eq!(flock.get_by_type::<Transaction>().await.unwrap().len(), 1);
}

// === user code that panics: caught, traced, reported, and the runtime goes on ===

#[tokio::test(start_paused = true)]
async fn panicking_predicate_is_traced_and_the_artifact_goes_on_to_the_next_subscription() {
    let (captured, _guard) = Capture::install();
    let flock = Flock::new();
    let (runs, engine) = recorder();
    flock
        .agent("picky")
        .consumes::<Item>(
            Subscribe::new()
                .filter(|i: &Item| {
                    assert!(i.id != 2, "cannot judge item {}", i.id);
                    i.id % 2 == 0
                })
                .batch(BatchSpec::size(2)),
        )
        // An alternative (OR) subscription still sees what the first could not judge.
        .consumes::<Item>(Subscribe::new().batch(BatchSpec::size(3)))
        .with_engine(engine)
        .register()
        .unwrap();
    crate::publish_ids(&flock, 1..=4).await;
    flock.shutdown().await;
    let errors = captured.events(Level::ERROR, "predicate panicked");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        errors[0].field("message"),
        "predicate panicked; the artifact does not match this subscription"
    );
    assert_eq!(errors[0].field("agent"), "picky");
    assert_eq!(errors[0].field("panic"), "cannot judge item 2");
    assert_eq!(ids(&runs), vec![vec![1, 2, 3], vec![4]]);
    assert_eq!(
        stored_items(&flock).await,
        4,
        "the artifact stays on the blackboard"
    );
}

#[tokio::test(start_paused = true)]
async fn panicking_key_functions_are_traced_non_matches() {
    let (captured, _guard) = Capture::install();
    let flock = Flock::new();
    let (runs, engine) = recorder();
    flock
        .agent("per_key")
        .consumes::<Item>(
            Subscribe::new()
                .batch(BatchSpec::size(2))
                .keyed_by(|i: &Item| {
                    assert!(i.id != 3, "no key for item {}", i.id);
                    i.id % 2
                }),
        )
        .with_engine(engine)
        .register()
        .unwrap();
    let groups = crate::gate_agent(
        &flock,
        "joiner",
        AllOf::new().of::<SignalA>().of::<SignalB>().join(
            JoinSpec::by(|a: &SignalA| {
                assert!(a.data != "bad", "no key for {}", a.data);
                a.correlation_id.clone()
            })
            .by(|b: &SignalB| b.correlation_id.clone())
            .within(Duration::from_secs(60)),
        ),
    );
    crate::publish_ids(&flock, 1..=5).await;
    flock.publish(SignalA::new("k", "bad")).await.unwrap();
    flock.publish(SignalA::new("k", "good")).await.unwrap();
    flock.publish(SignalB::new("k", "b")).await.unwrap();
    flock.shutdown().await;

    let batch_key = captured.events(Level::ERROR, "batch key function panicked");
    assert_eq!(batch_key.len(), 1, "{batch_key:?}");
    assert_eq!(
        batch_key[0].field("message"),
        "batch key function panicked; the artifact does not match this subscription"
    );
    assert!(
        batch_key[0].field("panic").contains("no key for item 3"),
        "{batch_key:?}"
    );
    let join_key = captured.events(Level::ERROR, "no join key");
    assert_eq!(join_key.len(), 1, "{join_key:?}");
    assert_eq!(
        join_key[0].field("error"),
        "join key of type 'SignalA' panicked: no key for bad"
    );
    let mut delivered: Vec<i64> = ids(&runs).concat();
    delivered.sort_unstable();
    assert_eq!(delivered, vec![1, 2, 4, 5], "the others batch as usual");
    assert_eq!(
        crate::groups(&groups),
        vec![crate::strings(&["A:good", "B:b"])]
    );
}

#[tokio::test(start_paused = true)]
async fn panicking_engine_is_traced_reported_and_its_inputs_kept() {
    let (captured, _guard) = Capture::install();
    let flock = Flock::new();
    let done: Arc<parking_lot::Mutex<Vec<i64>>> = Arc::default();
    let sink = done.clone();
    flock
        .agent("payments")
        .consumes::<Item>(Subscribe::new().batch(BatchSpec::size(2)))
        .with_engine(batch_fn(move |_: &EngineContext, items: Vec<Arc<Item>>| {
            assert!(items.iter().all(|i| i.id != 2), "gateway client bug");
            sink.lock().extend(items.iter().map(|i| i.id));
            Ok::<_, String>(Outputs::none())
        }))
        .register()
        .unwrap();
    crate::publish_ids(&flock, 1..=4).await;
    flock.run_until_idle().await;

    let traced = captured.events(Level::ERROR, "agent run failed");
    assert_eq!(traced.len(), 1, "{traced:?}");
    assert_eq!(
        traced[0].field("message"),
        "agent run failed; publishing WorkflowError, inputs kept in Flock::failed_runs()"
    );
    assert_eq!(traced[0].field("agent"), "payments");
    assert_eq!(
        traced[0].field("error"),
        "engine panicked: gateway client bug"
    );
    let errors = flock.get_by_type::<WorkflowError>().await.unwrap();
    assert_eq!(errors.len(), 1);
    let failed = flock.failed_runs();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].input_ids(), errors[0].input_ids);
    let values: Vec<i64> = failed[0]
        .inputs
        .iter()
        .map(|a| a.get::<Item>().unwrap().id)
        .collect();
    assert_eq!(values, vec![1, 2], "the failed batch is kept whole");
    assert_eq!(errors[0].flush_reason, Some(FlushReason::Size));
    // The runtime goes on: the next batch ran.
    assert_eq!(*done.lock(), vec![3, 4]);
    flock.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn panicking_visibility_function_fails_the_run_before_anything_is_published() {
    let flock = Flock::new();
    flock
        .agent("tenant_reports")
        .consumes::<Item>(Subscribe::new().batch(BatchSpec::size(2)))
        .publishes_with(|report: &BatchSummary| {
            assert!(report.batch_size != 2, "no tenant for a report of 2");
            Visibility::tenant("acme")
        })
        .with_engine(batch_fn(|_: &EngineContext, items: Vec<Arc<Item>>| {
            Ok::<_, String>(BatchSummary {
                batch_size: items.len(),
                values: items.iter().map(|i| i.id).collect(),
            })
        }))
        .register()
        .unwrap();
    crate::publish_ids(&flock, 1..=3).await;
    flock.shutdown().await;
    let errors = flock.get_by_type::<WorkflowError>().await.unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0].error,
        "visibility function for 'BatchSummary' panicked: no tenant for a report of 2"
    );
    assert_eq!(errors[0].input_ids.len(), 2);
    // Nothing of the failed run was published; the shutdown batch of 1 was.
    let summaries = flock.get_by_type::<BatchSummary>().await.unwrap();
    assert_eq!(
        summaries.iter().map(|s| s.batch_size).collect::<Vec<_>>(),
        vec![1]
    );
}

// === after shutdown ===

#[tokio::test(start_paused = true)]
async fn everything_after_shutdown_is_refused_with_a_clear_error() {
    let flock = Flock::new();
    flock.register_type::<Item>().unwrap();
    flock
        .agent("failing")
        .consumes::<Item>(Subscribe::new())
        .with_engine(map_fn(|_: &EngineContext, _: Arc<Item>| {
            Err::<Outputs, _>("down")
        }))
        .register()
        .unwrap();
    crate::publish_ids(&flock, [1]).await;
    flock.run_until_idle().await;
    let failed = flock.failed_runs()[0].id;
    let before = flock.query(&ArtifactFilter::new()).await.unwrap().len();
    flock.shutdown().await;

    let closed = "the flock has shut down; artifacts published after shutdown() are refused";
    let refused: Vec<Result<_, PublishError>> = vec![
        flock.publish(Item { id: 2 }).await,
        flock
            .publish_with(Item { id: 3 }, PublishOptions::new().tags(["late"]))
            .await,
        flock
            .publish_json(serde_json::json!({"type": "Item", "payload": {"id": 4}}))
            .await,
        flock
            .publish_json_str(r#"{"type": "Item", "payload": {"id": 5}}"#)
            .await,
        flock
            .publish_payload(Payload::new(Item { id: 6 }), PublishOptions::new())
            .await,
    ];
    for result in refused {
        let err = result.unwrap_err();
        assert!(matches!(err, PublishError::Closed), "{err:?}");
        assert_eq!(err.to_string(), closed);
    }
    let artifact = Arc::new(Artifact::new(Payload::new(Item { id: 7 }), "elsewhere"));
    assert_eq!(
        flock
            .publish_artifact(artifact)
            .await
            .unwrap_err()
            .to_string(),
        closed
    );
    let (_, engine) = recorder();
    assert_eq!(
        registration_error(
            flock
                .agent("late")
                .consumes::<Item>(Subscribe::new().batch(BatchSpec::size(1)))
                .with_engine(engine)
                .register()
        ),
        "cannot register agent 'late': the flock has shut down"
    );
    assert_eq!(
        flock
            .retry_failed_run(failed)
            .await
            .unwrap_err()
            .to_string(),
        format!("cannot retry failed run {failed}: the flock has shut down")
    );
    assert_eq!(
        flock.query(&ArtifactFilter::new()).await.unwrap().len(),
        before,
        "nothing was stored after shutdown"
    );
    // Shutting down again is harmless.
    assert_eq!(flock.shutdown().await.batches_flushed, 0);
}

// === traces ===

const CHILD_TRACE_PATH: &str = "FLOCK_IT_UNWRITABLE_TRACE_PATH";
const CHILD_TRACED_FLOCK: &str = "FLOCK_IT_TRACED_FLOCK_PATH";
const CHILD_READER: &str = "FLOCK_IT_TRACE_READER_PATH";

/// A directory for one test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("flock-bad-input-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the `child_*` test `name` of this binary with `env`; returns stdout and
/// stderr once it exits successfully.
fn run_child(name: &str, env: &[(&str, &Path)]) -> (String, String) {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    );
    assert!(
        output.status.success(),
        "child {name} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    (stdout, stderr)
}

/// A trace path whose directory cannot be created: its parent is a regular file
/// (unwritable even for root, which ignores permission bits).
fn unwritable_trace_path(dir: &TempDir) -> PathBuf {
    let blocker = dir.0.join("not-a-directory");
    std::fs::write(&blocker, "a file where the trace directory should go").unwrap();
    blocker.join("traces").join("traces.duckdb")
}

#[test]
fn unwritable_trace_directory_is_an_error_from_try_build_and_a_printed_warning_from_build() {
    let dir = TempDir::new("unwritable");
    let path = unwritable_trace_path(&dir);
    let err = Flock::builder()
        .trace(TraceConfig::new(&path))
        .try_build()
        .unwrap_err();
    assert!(matches!(err, TraceError::CreateDir { .. }), "{err:?}");
    let expected = format!(
        "cannot create trace directory `{}`",
        path.parent().unwrap().display()
    );
    assert_eq!(err.to_string(), expected);
    let cause = std::error::Error::source(&err).unwrap().to_string();
    assert!(cause.contains("Not a directory"), "{cause}");

    // `build()` prints the error and the program goes on without traces.
    let (stdout, stderr) = run_child(
        "bad_input::child_runs_without_traces_when_the_directory_is_unwritable",
        &[(CHILD_TRACE_PATH, &path), ("FLOCK_TRACE_FILE", &path)],
    );
    let printed = format!("flock: tracing into DuckDB is off: {expected}");
    assert_eq!(
        stderr.matches(&printed).count(),
        2,
        "once for the builder, once for FLOCK_TRACE_FILE:\n{stderr}"
    );
    assert!(stdout.contains("continued: 2 batches, 5 items"), "{stdout}");
}

/// The child side of the test above: builds traced flocks (by the builder, then by
/// `FLOCK_TRACE_FILE`) and runs a batch agent on each.
#[test]
fn child_runs_without_traces_when_the_directory_is_unwritable() {
    let Some(path) = std::env::var_os(CHILD_TRACE_PATH) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let by_builder = Flock::builder().trace(TraceConfig::new(&path)).build();
        // The parent set FLOCK_TRACE_FILE to the same path for this process.
        assert_eq!(std::env::var_os("FLOCK_TRACE_FILE"), Some(path.clone()));
        let by_env = Flock::new();
        let mut batches = 0;
        let mut items = 0;
        for flock in [by_builder, by_env] {
            assert!(flock.trace_file().is_none());
            let (runs, engine) = recorder();
            flock
                .agent("payments")
                .consumes::<Item>(Subscribe::new().batch(BatchSpec::size(3)))
                .with_engine(engine)
                .register()
                .unwrap();
            for id in 0..(if batches == 0 { 3 } else { 2 }) {
                flock.publish(Item { id }).await.unwrap();
            }
            flock.shutdown().await;
            batches += runs.lock().len();
            items += runs.lock().iter().map(|r| r.ids.len()).sum::<usize>();
        }
        println!("continued: {batches} batches, {items} items");
    });
}

#[test]
fn trace_file_held_by_a_reader_delays_exports_and_loses_no_span() {
    let dir = TempDir::new("reader");
    let path = dir.0.join("traces.duckdb");
    // The file exists before the reader opens it.
    let guard = TraceConfig::new(&path).build().unwrap();
    assert!(guard.shutdown().is_complete());

    let mut reader = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "bad_input::child_holds_the_trace_file",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_READER, &path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_line(&mut reader, "reader-ready");

    let (stdout, _) = run_child(
        "bad_input::child_traces_a_flock",
        &[(CHILD_TRACED_FLOCK, &path)],
    );
    assert!(reader.wait().unwrap().success());
    let report = stdout
        .lines()
        .find_map(|l| l.split_once("traces: ").map(|(_, r)| r.to_owned()))
        .unwrap_or_else(|| panic!("no report in {stdout}"));
    assert!(report.ends_with("not exported"), "{report}");
    assert!(report.contains(", 0 not exported"), "{report}");

    let conn = flock::trace::duckdb::Connection::open(&path).unwrap();
    let flushes: i64 = conn
        .query_row(
            "SELECT count(*) FROM spans WHERE name = 'batch.flush'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(flushes, 4, "every flush span reached the file");
}

/// Reads the child's stdout until a line contains `marker`, then keeps draining it
/// in the background so the child can exit.
fn wait_for_line(child: &mut std::process::Child, marker: &str) {
    use std::io::BufRead as _;
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        if line.unwrap().contains(marker) {
            std::thread::spawn(move || lines.for_each(drop));
            return;
        }
    }
    panic!("child exited before printing {marker:?}");
}

/// The reader: holds the trace file open read-only for 1.5 s.
#[test]
fn child_holds_the_trace_file() {
    let Some(path) = std::env::var_os(CHILD_READER) else {
        return;
    };
    use flock::trace::duckdb::{AccessMode, Config, Connection};
    let config = Config::default().access_mode(AccessMode::ReadOnly).unwrap();
    let conn = Connection::open_with_flags(&path, config).unwrap();
    let _: i64 = conn
        .query_row("SELECT count(*) FROM spans", [], |row| row.get(0))
        .unwrap();
    println!("reader-ready");
    std::thread::sleep(Duration::from_millis(1500));
}

/// The traced program: a flock tracing into the held file, four batches, shutdown.
#[test]
fn child_traces_a_flock() {
    let Some(path) = std::env::var_os(CHILD_TRACED_FLOCK) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let flock = Flock::builder()
            .trace(TraceConfig::new(&path).lock_timeout(Duration::from_secs(60)))
            .try_build()
            .unwrap();
        let (runs, engine) = recorder();
        flock
            .agent("payments")
            .consumes::<Item>(Subscribe::new().batch(BatchSpec::size(5)))
            .with_engine(engine)
            .register()
            .unwrap();
        crate::publish_ids(&flock, 0..20).await;
        let report = flock.shutdown().await;
        assert_eq!(runs.lock().len(), 4);
        println!("traces: {}", report.traces.expect("this flock traces"));
    });
}

// === helpers ===

fn ids(runs: &Runs) -> Vec<Vec<i64>> {
    runs.lock().iter().map(|r| r.ids.clone()).collect()
}

async fn stored_items(flock: &Flock) -> usize {
    flock.get_by_type::<Item>().await.unwrap().len()
}
