//! Specs from configuration files: `BatchSpec`, join windows, `RetryPolicy` and
//! `Admission` read from TOML and JSON (durations such as "30s"), round-trip, and
//! refuse invalid values with the constructors' messages.

use std::time::Duration;

use flock::prelude::*;
use flock::{Admission, JoinWindow, OnFull};
use serde::{Deserialize, Serialize};

/// What an application's configuration file might hold for one agent.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct AgentConfig {
    batch: BatchSpec,
    window: JoinWindow,
    retry: RetryPolicy,
    admission: Admission,
}

const TOML: &str = r#"
window = "30s"

[batch]
size = 25
timeout = "30s"

[retry]
max_attempts = 3
backoff = "exponential"
delay = "100ms"
max_delay = "5s"

[admission]
max_waiting = 100000
on_full = "reject"
"#;

#[test]
fn an_agent_configuration_reads_from_toml_and_round_trips() {
    let config: AgentConfig = toml::from_str(TOML).unwrap();
    let expected = AgentConfig {
        batch: BatchSpec::size(25)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        window: JoinWindow::Time(Duration::from_secs(30)),
        retry: RetryPolicy::exponential(3, Duration::from_millis(100))
            .unwrap()
            .max_delay(Duration::from_secs(5))
            .unwrap(),
        admission: Admission::new()
            .max_waiting(100_000)
            .unwrap()
            .on_full(OnFull::Reject),
    };
    assert_eq!(config, expected);
    let written = toml::to_string(&config).unwrap();
    assert_eq!(toml::from_str::<AgentConfig>(&written).unwrap(), expected);
    let json = serde_json::to_string(&config).unwrap();
    assert_eq!(
        json,
        r#"{"batch":{"size":25,"timeout":"30s"},"window":"30s","retry":{"max_attempts":3,"backoff":"exponential","delay":"100ms","max_delay":"5s"},"admission":{"max_waiting":100000,"on_full":"reject"}}"#
    );
    assert_eq!(
        serde_json::from_str::<AgentConfig>(&json).unwrap(),
        expected
    );
}

#[test]
fn retry_policies_round_trip_in_every_shape() {
    for policy in [
        RetryPolicy::none(),
        RetryPolicy::fixed(4, Duration::from_millis(250)).unwrap(),
        RetryPolicy::exponential(5, Duration::from_secs(1)).unwrap(),
        RetryPolicy::exponential(2, Duration::from_millis(10))
            .unwrap()
            .max_delay(Duration::from_millis(40))
            .unwrap(),
    ] {
        let json = serde_json::to_string(&policy).unwrap();
        assert_eq!(
            serde_json::from_str::<RetryPolicy>(&json).unwrap(),
            policy,
            "{json}"
        );
    }
    assert_eq!(
        serde_json::to_string(&RetryPolicy::none()).unwrap(),
        r#"{"max_attempts":1,"backoff":"fixed","delay":"0s"}"#
    );
    // The defaults: fixed backoff, no wait.
    let minimal: RetryPolicy = serde_json::from_str(r#"{"max_attempts": 2}"#).unwrap();
    assert_eq!(minimal, RetryPolicy::fixed(2, Duration::ZERO).unwrap());
}

#[test]
fn admission_round_trips_and_defaults_to_wait() {
    let none: Admission = serde_json::from_str("{}").unwrap();
    assert_eq!(none, Admission::new());
    assert_eq!(
        serde_json::to_string(&none).unwrap(),
        r#"{"on_full":"wait"}"#
    );
    let both = Admission::new()
        .max_waiting(10)
        .unwrap()
        .max_waiting_per_subscription(5)
        .unwrap();
    let json = serde_json::to_string(&both).unwrap();
    assert_eq!(serde_json::from_str::<Admission>(&json).unwrap(), both);
}

/// Every invalid configuration is a deserialize error naming the problem.
#[test]
fn invalid_configurations_are_errors_naming_the_problem() {
    fn check<T: for<'de> Deserialize<'de> + std::fmt::Debug>(json: &str, message: &str) {
        let err = serde_json::from_str::<T>(json).unwrap_err().to_string();
        assert!(
            err.starts_with(message),
            "{json}: {err:?} lacks {message:?}"
        );
    }
    check::<RetryPolicy>(
        r#"{"max_attempts": 0}"#,
        "max attempts must be at least 1, got 0",
    );
    check::<RetryPolicy>(
        r#"{"max_attempts": 3, "backoff": "exponential"}"#,
        "exponential backoff needs its first wait: add delay = \"100ms\" or similar",
    );
    check::<RetryPolicy>(
        r#"{"max_attempts": 3, "backoff": "exponential", "delay": "1s", "max_delay": "500ms"}"#,
        "max delay must be at least the initial delay 1s, got 500ms",
    );
    check::<RetryPolicy>(
        r#"{"max_attempts": 3, "delay": "1s", "max_delay": "5s"}"#,
        "max_delay applies to exponential backoff only, got max_delay 5s with backoff \"fixed\"",
    );
    check::<RetryPolicy>(
        r#"{"max_attempts": 3, "backoff": "linear"}"#,
        "unknown variant `linear`, expected `fixed` or `exponential`",
    );
    check::<RetryPolicy>(
        r#"{"max_attempts": 3, "delay": "soon"}"#,
        "invalid duration \"soon\": expected number at 0",
    );
    check::<RetryPolicy>(
        r#"{"max_attempts": 3, "retries": 2}"#,
        "unknown field `retries`",
    );
    check::<Admission>(
        r#"{"max_waiting": 0}"#,
        "max_waiting must be at least 1, got 0; leave the limit unset for no limit",
    );
    check::<Admission>(
        r#"{"max_waiting_per_subscription": 0}"#,
        "max_waiting_per_subscription must be at least 1, got 0",
    );
    check::<Admission>(
        r#"{"on_full": "drop"}"#,
        "unknown variant `drop`, expected `wait` or `reject`",
    );
    check::<BatchSpec>(r#"{"size": 0}"#, "batch size must be at least 1, got 0");
    check::<JoinWindow>("0", "join window must be at least 1 artifact, got 0");
    // TOML reports the same messages, with the line.
    let err = toml::from_str::<AgentConfig>(&TOML.replace("size = 25", "size = 0")).unwrap_err();
    assert!(
        err.to_string()
            .contains("batch size must be at least 1, got 0"),
        "{err}"
    );
}

/// A spec read from configuration drives a real agent.
#[tokio::test(start_paused = true)]
async fn a_configured_batch_spec_batches() {
    let batch: BatchSpec = toml::from_str("size = 2\ntimeout = \"10s\"").unwrap();
    let flock = Flock::new();
    let (runs, engine) = crate::recorder();
    flock
        .agent("configured")
        .consumes::<crate::Item>(Subscribe::new().batch(batch))
        .with_engine(engine)
        .register()
        .unwrap();
    crate::publish_ids(&flock, [1, 2, 3]).await;
    flock.run_until_idle().await;
    tokio::time::advance(Duration::from_secs(10)).await;
    flock.run_until_idle().await;
    assert_eq!(
        *runs.lock(),
        vec![
            crate::Run::batch(&[1, 2], FlushReason::Size),
            crate::Run::batch(&[3], FlushReason::Timeout),
        ]
    );
    flock.shutdown().await;
}
